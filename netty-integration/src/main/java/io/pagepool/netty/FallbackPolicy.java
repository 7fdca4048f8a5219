package io.pagepool.netty;

/** What {@link PagePoolByteBufAllocator} does with a direct buffer its pools cannot serve. */
public enum FallbackPolicy {

    /**
     * Serve it from the fallback allocator (by default Netty's unpooled direct buffers) and count
     * it in {@link PagePoolByteBufAllocatorMetric#fallbackAllocations()}. The buffer is still a
     * pagepool buffer: it can grow back into pooled memory.
     */
    UNPOOLED,

    /**
     * Throw {@link PagePoolOutOfMemoryError}, naming the allocator and the request. For allocators
     * the application's own code calls, where it can handle the error. Not for channels whose reads
     * allocate from this allocator: the error is thrown inside Netty's read loop, where Netty closes
     * the channel or spins on it (epoll, NIO) or, on io_uring, ends the event loop thread. See
     * docs/tuning.md, "FAIL on a receive path".
     */
    FAIL
}
