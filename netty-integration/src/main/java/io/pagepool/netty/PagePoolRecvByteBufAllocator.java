package io.pagepool.netty;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.DefaultMaxMessagesRecvByteBufAllocator;

/**
 * A {@link io.netty.channel.RecvByteBufAllocator} for datagram channels: every read gets a buffer
 * of {@code datagramSize * datagramsPerRead} bytes. With the default (2048 bytes, one datagram per
 * read) and a {@link PagePoolByteBufAllocator}, each datagram lands in a page fragment big enough
 * for a 1500-byte MTU, two per 4 KiB page.
 *
 * <p>For epoll's {@code recvmmsg}, set {@code EpollChannelOption.MAX_DATAGRAM_PAYLOAD_SIZE} to
 * {@link #datagramSize()} and ask for several datagrams per read: epoll then fills one buffer of
 * {@code datagramSize * datagramsPerRead} bytes (a page-allocator block) with up to that many
 * datagrams in one system call, and hands each on as a slice of it.
 *
 * <pre>{@code
 * bootstrap.option(ChannelOption.ALLOCATOR, PagePoolByteBufAllocator.DEFAULT)
 *          .option(ChannelOption.RECVBUF_ALLOCATOR, new PagePoolRecvByteBufAllocator(2048, 16))
 *          .option(EpollChannelOption.MAX_DATAGRAM_PAYLOAD_SIZE, 2048);
 * }</pre>
 *
 * <p>Reads per wake-up: as with Netty's own {@code FixedRecvByteBufAllocator}, a channel loops
 * over at most {@link #maxMessagesPerRead()} reads (default 1) before it fires
 * {@code channelReadComplete}. A datagram channel's built-in allocator gets 16 from the channel
 * (Netty applies the channel's default only to that one), so to read as many datagrams per wake-up
 * as before set it: {@code new PagePoolRecvByteBufAllocator().maxMessagesPerRead(16)}. Netty counts
 * the limit in datagrams, not system calls: with {@code recvmmsg}, one full read of
 * {@code datagramsPerRead} datagrams counts that many, so for {@code k} reads per wake-up set
 * {@code k * datagramsPerRead}.
 *
 * <p>A datagram larger than {@link #datagramSize()} arrives cut to that size, without an error, as
 * with Netty's {@code FixedRecvByteBufAllocator}; give a larger size for jumbo frames.
 *
 * <p>Use {@link FallbackPolicy#UNPOOLED} (the default) on the allocator these buffers come from: under
 * {@link FallbackPolicy#FAIL} an exhausted read throws inside Netty's read loop (see that constant).
 *
 * <p>Buffers come from the channel's allocator, or from the one given to the constructor.
 * Thread safety: thread-safe (handles are per channel, as Netty requires).
 */
public final class PagePoolRecvByteBufAllocator extends DefaultMaxMessagesRecvByteBufAllocator {

    /** Fits a 1500-byte MTU datagram with room to spare, in a half-page fragment. */
    public static final int DEFAULT_DATAGRAM_SIZE = 2048;

    private final int datagramSize;
    private final int datagramsPerRead;
    private final ByteBufAllocator allocator;

    /** One datagram of up to {@value #DEFAULT_DATAGRAM_SIZE} bytes per read, from the channel's allocator. */
    public PagePoolRecvByteBufAllocator() {
        this(DEFAULT_DATAGRAM_SIZE, 1);
    }

    /** {@code datagramsPerRead} datagrams of up to {@code datagramSize} bytes per read, from the channel's allocator. */
    public PagePoolRecvByteBufAllocator(int datagramSize, int datagramsPerRead) {
        this(datagramSize, datagramsPerRead, null);
    }

    /**
     * As {@link #PagePoolRecvByteBufAllocator(int, int)}, always allocating from {@code allocator}
     * whatever the channel's {@code ALLOCATOR} option says; null means the channel's.
     */
    public PagePoolRecvByteBufAllocator(int datagramSize, int datagramsPerRead, ByteBufAllocator allocator) {
        if (datagramSize < 1 || datagramsPerRead < 1 || (long) datagramSize * datagramsPerRead > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("datagramSize " + datagramSize + " and datagramsPerRead "
                    + datagramsPerRead + " must be positive, with a product that fits in an int");
        }
        this.datagramSize = datagramSize;
        this.datagramsPerRead = datagramsPerRead;
        this.allocator = allocator;
    }

    public int datagramSize() {
        return datagramSize;
    }

    /** As Netty's, returning this type, so that {@code new PagePoolRecvByteBufAllocator().maxMessagesPerRead(16)} is one. */
    @Override
    public PagePoolRecvByteBufAllocator maxMessagesPerRead(int maxMessagesPerRead) {
        super.maxMessagesPerRead(maxMessagesPerRead);
        return this;
    }

    /** As Netty's, returning this type. */
    @Override
    public PagePoolRecvByteBufAllocator respectMaybeMoreData(boolean respectMaybeMoreData) {
        super.respectMaybeMoreData(respectMaybeMoreData);
        return this;
    }

    public int datagramsPerRead() {
        return datagramsPerRead;
    }

    /** The handle: {@code RecvByteBufAllocator.newHandle()} still returns the deprecated {@code Handle} type in 4.2. */
    @Override
    @SuppressWarnings("deprecation")
    public Handle newHandle() {
        return new MaxMessageHandle() {
            @Override
            public int guess() {
                return datagramSize * datagramsPerRead;
            }

            @Override
            public ByteBuf allocate(ByteBufAllocator alloc) {
                return (allocator != null ? allocator : alloc).ioBuffer(guess());
            }
        };
    }
}
