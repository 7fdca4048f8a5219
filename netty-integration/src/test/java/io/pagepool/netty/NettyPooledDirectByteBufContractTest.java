package io.pagepool.netty;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;

/** The reference: the contract cases against Netty's pooled direct buffers. */
class NettyPooledDirectByteBufContractTest extends ByteBufContractTest {

    private final PooledByteBufAllocator allocator = new PooledByteBufAllocator(true);

    @Override
    ByteBufAllocator allocator() {
        return allocator;
    }
}
