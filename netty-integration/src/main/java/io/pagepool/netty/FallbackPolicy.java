package io.pagepool.netty;

/** What {@link PagePoolByteBufAllocator} does with a direct buffer its pools cannot serve. */
public enum FallbackPolicy {

    /**
     * Serve it from the fallback allocator (by default Netty's unpooled direct buffers) and count
     * it in {@link PagePoolByteBufAllocatorMetric#fallbackAllocations()}. The buffer is still a
     * pagepool buffer: it can grow back into pooled memory.
     */
    UNPOOLED,

    /** Throw {@link PagePoolOutOfMemoryError}, naming the allocator and the request. */
    FAIL
}
