package io.pagepool.netty;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.internal.PlatformDependent;

/** The reference: the contract cases against Netty's unpooled direct buffers. */
class NettyUnpooledDirectByteBufContractTest extends ByteBufContractTest {

    private final UnpooledByteBufAllocator allocator = new UnpooledByteBufAllocator(true);

    @Override
    ByteBufAllocator allocator() {
        return allocator;
    }

    /**
     * Netty 4.2.18's {@code UnpooledDirectByteBuf} little-endian accessors ({@code getShortLE},
     * {@code getIntLE}, {@code getLongLE}, every {@code set*LE}, and what is built on them) check
     * only accessibility, not bounds, and the unsafe subclass does not override them:
     * {@code setIntLE(Integer.MAX_VALUE, v)} writes outside the buffer and crashes the JVM. A Netty
     * bug, so those bounds cases are not run against this reference.
     */
    @Override
    boolean checksBounds(Getter getter) {
        return !(getter.littleEndian() && getter.width() != 3);
    }

    @Override
    boolean checksBounds(Setter setter) {
        return !setter.littleEndian();
    }

    /**
     * Without {@code sun.misc.Unsafe} (Netty's choice on JDK 25), {@code UnpooledDirectByteBuf.getBytes(int,
     * OutputStream, int)} positions a ByteBuffer without a range check first: an out-of-range request
     * throws the ByteBuffer's IllegalArgumentException rather than IndexOutOfBoundsException.
     */
    @Override
    boolean checksStreamBounds() {
        return PlatformDependent.hasUnsafe();
    }
}
