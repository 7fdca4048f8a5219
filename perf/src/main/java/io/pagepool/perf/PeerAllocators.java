package io.pagepool.perf;

import io.netty.buffer.AdaptiveByteBufAllocator;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.pagepool.netty.PagePoolByteBufAllocator;

/**
 * The allocators the Netty benchmarks compare, by their {@code @Param} name: pagepool's, built per
 * trial with the given capacity, and Netty's adaptive (a new one, the 4.2 default), pooled
 * ({@link PooledByteBufAllocator#DEFAULT}) and unpooled ({@link UnpooledByteBufAllocator#DEFAULT}).
 */
final class PeerAllocators {

    private PeerAllocators() {
    }

    static ByteBufAllocator named(String allocator, long pagepoolCapacity, boolean preTouch) {
        switch (allocator) {
            case "pagepool":
                return PagePoolByteBufAllocator.builder().capacity(pagepoolCapacity).preTouch(preTouch).build();
            case "adaptive":
                return new AdaptiveByteBufAllocator();
            case "pooled":
                return PooledByteBufAllocator.DEFAULT;
            case "unpooled":
                return UnpooledByteBufAllocator.DEFAULT;
            default:
                throw new IllegalArgumentException("unknown allocator " + allocator);
        }
    }
}
