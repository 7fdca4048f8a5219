package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.DatagramPacket;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringDatagramChannel;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerSocketChannel;
import io.netty.channel.uring.IoUringSocketChannel;
import io.pagepool.core.PagePool;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Real loopback traffic with {@link PagePoolByteBufAllocator} set on the bootstraps, as a user
 * plugs it in: TCP echo and UDP round trips on epoll, io_uring and NIO, every byte checked. The
 * native transports read and write our buffers through {@code memoryAddress()}, NIO through their
 * NIO views. Each case ends by shutting the event loops down (which closes their arenas) and
 * checks that every page pool has nothing in flight, the page allocator has no page allocated,
 * and Netty's PARANOID leak detector reported nothing.
 */
@Timeout(60)
class LoopbackTrafficTest {

    private static final InetSocketAddress LOCALHOST = new InetSocketAddress("127.0.0.1", 0);
    private static final long TIMEOUT_SECONDS = 20;

    enum Transport {
        NIO(NioIoHandler::newFactory, NioServerSocketChannel.class, NioSocketChannel.class, NioDatagramChannel.class),
        EPOLL(EpollIoHandler::newFactory, EpollServerSocketChannel.class, EpollSocketChannel.class,
                EpollDatagramChannel.class),
        IO_URING(IoUringIoHandler::newFactory, IoUringServerSocketChannel.class, IoUringSocketChannel.class,
                IoUringDatagramChannel.class);

        final java.util.function.Supplier<IoHandlerFactory> factory;
        final Class<? extends ServerChannel> server;
        final Class<? extends SocketChannel> socket;
        final Class<? extends DatagramChannel> datagram;

        Transport(java.util.function.Supplier<IoHandlerFactory> factory, Class<? extends ServerChannel> server,
                Class<? extends SocketChannel> socket, Class<? extends DatagramChannel> datagram) {
            this.factory = factory;
            this.server = server;
            this.socket = socket;
            this.datagram = datagram;
        }

        void assumeAvailable() {
            if (this == EPOLL) {
                assumeTrue(Epoll.isAvailable(), () -> "epoll unavailable: " + Epoll.unavailabilityCause());
            } else if (this == IO_URING) {
                assumeTrue(IoUring.isAvailable(), () -> "io_uring unavailable: " + IoUring.unavailabilityCause());
            }
        }
    }

    @BeforeAll
    static void installLeakCapture() {
        LeakCapture.install();
    }

    @Test
    void bothNativeTransportsAreAvailableOnThisMachine() {
        // Not an assumption: on this project's machine both must run, or the cases below skip silently.
        assertTrue(Epoll.isAvailable(), () -> "epoll: " + Epoll.unavailabilityCause());
        assertTrue(IoUring.isAvailable(), () -> "io_uring: " + IoUring.unavailabilityCause());
    }

    // ------------------------------------------------------------------ TCP

    @ParameterizedTest
    @EnumSource(Transport.class)
    void tcpEchoReturnsEveryByteIntact(Transport transport) throws Exception {
        transport.assumeAvailable();
        Random random = new Random(42 + transport.ordinal());
        List<Integer> sizes = new ArrayList<>(List.of(1, 2, 63, 64, 65, 2047, 2048, 2049, 4095, 4096, 4097, 16384,
                32768, 65535, 65536));
        while (sizes.size() < 300) {
            int kind = random.nextInt(4);
            sizes.add(1 + random.nextInt(kind == 0 ? 256 : kind == 1 ? 4096 : kind == 2 ? 16384 : 65536));
        }
        int total = sizes.stream().mapToInt(Integer::intValue).sum();
        byte[] stream = new byte[total];
        random.nextBytes(stream);

        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(2, transport.factory.get());
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CompletableFuture<Integer> done = new CompletableFuture<>();
        AtomicInteger serverReads = new AtomicInteger();
        List<PagePool> pools = new ArrayList<>();
        Channel server = null;
        Channel client = null;
        try {
            server = new ServerBootstrap().group(group).channel(transport.server)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .childOption(ChannelOption.ALLOCATOR, alloc)
                    .childHandler(new ChannelInitializer<Channel>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            ch.pipeline().addLast(new ChannelInboundHandlerAdapter() {
                                @Override
                                public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                    ByteBuf buf = (ByteBuf) msg;
                                    if (buf.alloc() != alloc) {
                                        failure.compareAndSet(null, new AssertionError("server read into " + buf));
                                    }
                                    serverReads.incrementAndGet();
                                    ctx.write(msg);
                                }

                                @Override
                                public void channelReadComplete(ChannelHandlerContext ctx) {
                                    ctx.flush();
                                }

                                @Override
                                public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                    failure.compareAndSet(null, cause);
                                    ctx.close();
                                }
                            });
                        }
                    })
                    .bind(LOCALHOST).sync().channel();

            client = new Bootstrap().group(group).channel(transport.socket)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .handler(new ChannelInboundHandlerAdapter() {
                        private int received;

                        @Override
                        public void channelActive(ChannelHandlerContext ctx) {
                            int offset = 0;
                            for (int size : sizes) {
                                ByteBuf msg = ctx.alloc().directBuffer(size);
                                msg.writeBytes(stream, offset, size);
                                offset += size;
                                ctx.write(msg);
                            }
                            ctx.flush();
                        }

                        @Override
                        public void channelRead(ChannelHandlerContext ctx, Object msg) {
                            ByteBuf buf = (ByteBuf) msg;
                            try {
                                if (buf.alloc() != alloc) {
                                    throw new AssertionError("client read into " + buf);
                                }
                                int n = buf.readableBytes();
                                if (received + n > total) {
                                    throw new AssertionError("echo returned more than was sent");
                                }
                                byte[] got = new byte[n];
                                buf.getBytes(buf.readerIndex(), got);
                                int mismatch = Arrays.mismatch(got, 0, n, stream, received, received + n);
                                if (mismatch >= 0) {
                                    throw new AssertionError("byte " + (received + mismatch) + " of the echo differs");
                                }
                                received += n;
                                if (received == total) {
                                    done.complete(received);
                                }
                            } catch (Throwable t) {
                                failure.compareAndSet(null, t);
                                done.completeExceptionally(t);
                            } finally {
                                buf.release();
                            }
                        }

                        @Override
                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                            failure.compareAndSet(null, cause);
                            done.completeExceptionally(cause);
                        }
                    })
                    .connect(server.localAddress()).sync().channel();
            assertSame(alloc, client.alloc());

            assertEquals(total, done.get(TIMEOUT_SECONDS, TimeUnit.SECONDS));
            assertNull(failure.get());
            assertTrue(serverReads.get() > 0);
            capturePools(alloc, pools);
        } finally {
            shutDown(group, client, server);
        }
        assertNull(failure.get(), () -> "failure: " + failure.get());
        assertEverythingReturned(alloc, pools);
    }

    // ------------------------------------------------------------------ UDP

    @ParameterizedTest
    @EnumSource(Transport.class)
    void udpRoundTripsReturnEveryDatagramIntact(Transport transport) throws Exception {
        transport.assumeAvailable();
        udpRoundTrips(transport, b -> {
        }, 8, packet -> {
        });
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void udpWithThePagePoolRecvAllocatorReadsEachDatagramIntoAFragment(Transport transport) throws Exception {
        transport.assumeAvailable();
        AtomicInteger fragmentReads = new AtomicInteger();
        udpRoundTrips(transport, b -> b.option(ChannelOption.RECVBUF_ALLOCATOR, new PagePoolRecvByteBufAllocator()), 8,
                packet -> {
                    ByteBuf root = root(packet.content());
                    if (root instanceof PagePoolByteBuf && ((PagePoolByteBuf) root).kind() == PagePoolByteBuf.FRAG
                            && root.capacity() == PagePoolRecvByteBufAllocator.DEFAULT_DATAGRAM_SIZE) {
                        fragmentReads.incrementAndGet();
                    }
                });
        assertTrue(fragmentReads.get() > 0, "no datagram was read into a 2048-byte fragment");
    }

    @Test
    void udpOnEpollWithRecvmmsgReadsSeveralDatagramsPerCallIntact() throws Exception {
        Transport.EPOLL.assumeAvailable();
        AtomicInteger blockReads = new AtomicInteger();
        udpRoundTrips(Transport.EPOLL, b -> b
                .option(ChannelOption.RECVBUF_ALLOCATOR, new PagePoolRecvByteBufAllocator(2048, 16))
                .option(EpollChannelOption.MAX_DATAGRAM_PAYLOAD_SIZE, 2048), 32, packet -> {
                    ByteBuf root = root(packet.content());
                    if (root.capacity() == 2048 * 16 && packet.content() != root) {
                        blockReads.incrementAndGet();
                    }
                });
        assertTrue(blockReads.get() > 0, "no datagram arrived as a slice of a 16 x 2048-byte recvmmsg buffer");
    }

    /** The buffer under any slices and leak-aware wrappers. */
    static ByteBuf root(ByteBuf buf) {
        ByteBuf b = buf;
        while (b.unwrap() != null) {
            b = b.unwrap();
        }
        return b;
    }

    /**
     * Sends datagrams of 4 to 1472 bytes (each carrying its sequence number and a pattern derived
     * from it) from a client to an echo server, at most {@code window} unanswered at a time, and
     * checks every echo byte for byte. {@code options} configures both bootstraps;
     * {@code serverSees} is shown every datagram the server reads.
     */
    private void udpRoundTrips(Transport transport, Consumer<Bootstrap> options, int window,
            Consumer<DatagramPacket> serverSees) throws Exception {
        int count = 600;
        Random random = new Random(7 + transport.ordinal());
        int[] sizes = new int[count];
        for (int i = 0; i < count; i++) {
            sizes[i] = i < 3 ? new int[] {4, 1472, 1024}[i] : 4 + random.nextInt(1472 - 4 + 1);
        }
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(2, transport.factory.get());
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CompletableFuture<Integer> done = new CompletableFuture<>();
        List<PagePool> pools = new ArrayList<>();
        Channel server = null;
        Channel client = null;
        try {
            Bootstrap sb = new Bootstrap().group(group).channel(transport.datagram)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .option(ChannelOption.SO_RCVBUF, 1 << 20)
                    .handler(new SimpleChannelInboundHandler<DatagramPacket>(false) {
                        @Override
                        protected void channelRead0(ChannelHandlerContext ctx, DatagramPacket packet) {
                            if (packet.content().alloc() != alloc) {
                                failure.compareAndSet(null, new AssertionError("server read into " + packet.content()));
                            }
                            serverSees.accept(packet);
                            ctx.writeAndFlush(new DatagramPacket(packet.content(), packet.sender()));
                        }

                        @Override
                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                            failure.compareAndSet(null, cause);
                        }
                    });
            options.accept(sb);
            server = sb.bind(LOCALHOST).sync().channel();
            InetSocketAddress serverAddress = (InetSocketAddress) server.localAddress();

            boolean[] seen = new boolean[count];
            Bootstrap cb = new Bootstrap().group(group).channel(transport.datagram)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .option(ChannelOption.SO_RCVBUF, 1 << 20)
                    .handler(new SimpleChannelInboundHandler<DatagramPacket>() {
                        private int next;
                        private int inFlight;
                        private int received;

                        @Override
                        public void channelActive(ChannelHandlerContext ctx) {
                            sendMore(ctx);
                        }

                        private void sendMore(ChannelHandlerContext ctx) {
                            while (inFlight < window && next < count) {
                                int seq = next++;
                                ByteBuf buf = ctx.alloc().directBuffer(sizes[seq]);
                                fillDatagram(buf, seq, sizes[seq]);
                                ctx.write(new DatagramPacket(buf, serverAddress));
                                inFlight++;
                            }
                            ctx.flush();
                        }

                        @Override
                        protected void channelRead0(ChannelHandlerContext ctx, DatagramPacket packet) {
                            try {
                                ByteBuf buf = packet.content();
                                if (buf.alloc() != alloc) {
                                    throw new AssertionError("client read into " + buf);
                                }
                                int seq = buf.getInt(buf.readerIndex());
                                if (seq < 0 || seq >= count || seen[seq]) {
                                    throw new AssertionError("unexpected or repeated datagram " + seq);
                                }
                                seen[seq] = true;
                                checkDatagram(buf, seq, sizes[seq]);
                                received++;
                                inFlight--;
                                if (received == count) {
                                    done.complete(received);
                                } else {
                                    sendMore(ctx);
                                }
                            } catch (Throwable t) {
                                failure.compareAndSet(null, t);
                                done.completeExceptionally(t);
                            }
                        }

                        @Override
                        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                            failure.compareAndSet(null, cause);
                            done.completeExceptionally(cause);
                        }
                    });
            options.accept(cb);
            client = cb.bind(LOCALHOST).sync().channel();
            try {
                assertEquals(count, done.get(TIMEOUT_SECONDS, TimeUnit.SECONDS));
            } catch (java.util.concurrent.TimeoutException e) {
                int missing = 0;
                for (boolean s : seen) {
                    missing += s ? 0 : 1;
                }
                throw new AssertionError(missing + " of " + count + " datagrams never came back", e);
            }
            assertNull(failure.get());
            capturePools(alloc, pools);
        } finally {
            shutDown(group, client, server);
        }
        assertNull(failure.get(), () -> "failure: " + failure.get());
        assertEverythingReturned(alloc, pools);
    }

    private static void fillDatagram(ByteBuf buf, int seq, int size) {
        buf.writeInt(seq);
        buf.writeBytes(ByteBufContractTest.CONTENT, patternOffset(seq), size - 4);
    }

    private static void checkDatagram(ByteBuf buf, int seq, int size) {
        if (buf.readableBytes() != size) {
            throw new AssertionError("datagram " + seq + " came back with " + buf.readableBytes() + " bytes, not " + size);
        }
        byte[] got = new byte[size - 4];
        buf.getBytes(buf.readerIndex() + 4, got);
        int off = patternOffset(seq);
        int mismatch = Arrays.mismatch(got, 0, got.length, ByteBufContractTest.CONTENT, off, off + got.length);
        if (mismatch >= 0) {
            throw new AssertionError("datagram " + seq + " differs at byte " + (4 + mismatch));
        }
    }

    private static int patternOffset(int seq) {
        return seq * 37 & 4095;
    }

    // ------------------------------------------------------------------ accounting

    /** Closes the channels and ends the event loops, each within a bounded wait. */
    private static void shutDown(MultiThreadIoEventLoopGroup group, Channel... channels) {
        for (Channel ch : channels) {
            if (ch != null) {
                assertTrue(ch.close().awaitUninterruptibly(10, TimeUnit.SECONDS), () -> ch + " did not close");
            }
        }
        assertTrue(group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(20, TimeUnit.SECONDS),
                "the event loops did not terminate");
    }

    /** The page pools of the arenas open now: the event loops that allocated. */
    private static void capturePools(PagePoolByteBufAllocator alloc, List<PagePool> pools) {
        for (PagePoolArena arena : alloc.arenasSnapshot()) {
            pools.add(arena.pool);
        }
        assertTrue(!pools.isEmpty(), "the event loops allocated from the allocator");
        for (PagePoolArena arena : alloc.arenasSnapshot()) {
            assertTrue(arena.owner instanceof io.netty.util.concurrent.FastThreadLocalThread,
                    () -> "only event loops allocate here, not " + arena.owner);
        }
    }

    /** After the event loops ended: pools empty and closed, no page allocated, no leak reported. */
    private static void assertEverythingReturned(PagePoolByteBufAllocator alloc, List<PagePool> pools) {
        assertEquals(List.of(), alloc.metric().arenas().stream()
                .map(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName).collect(Collectors.toList()),
                "event loops close their arenas when they end");
        for (PagePool pool : pools) {
            assertTrue(pool.isClosed(), pool::toString);
            assertEquals(0, pool.inflight(), () -> "pages still in flight: " + pool.stats());
        }
        assertEquals(0, alloc.metric().fallbackBytes());
        assertEquals(0, alloc.pageAllocator().stats().allocatedPages(), alloc.pageAllocator().stats()::toString);
        alloc.close(); // throws if any page is still allocated
        assertTrue(alloc.pageAllocator().isClosed());
        LeakCapture.assertNoLeaks();
    }
}
