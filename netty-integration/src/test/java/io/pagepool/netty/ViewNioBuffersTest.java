package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.AdaptiveByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.ResourceLeakDetector;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * NIO buffers of views (retained slices and duplicates): each view gets its own, as Netty's derived
 * buffers give, so that two views of one buffer written together, or on two threads, send their
 * own bytes. Side by side with Netty's allocators. Leak detection off: under PARANOID (the level of
 * the other tests) every buffer is wrapped and its views are Netty's, not ours, while production's
 * sampling leaves most buffers unwrapped.
 */
@Timeout(60)
class ViewNioBuffersTest {

    private static ResourceLeakDetector.Level saved;

    @BeforeAll
    static void off() {
        saved = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
    }

    @AfterAll
    static void back() {
        ResourceLeakDetector.setLevel(saved);
    }

    /** Pagepool allocators the current case made; closed after it. */
    private static final List<PagePoolByteBufAllocator> OPENED = new ArrayList<>();

    /** Every view released gives its root's memory back: close() refuses while a page is still out. */
    @AfterEach
    void everyPageCameBack() {
        for (PagePoolByteBufAllocator alloc : OPENED) {
            alloc.close();
        }
        OPENED.clear();
    }

    static Stream<Named<ByteBufAllocator>> allocators() {
        PagePoolByteBufAllocator pagepool = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        OPENED.add(pagepool);
        return Stream.of(
                Named.of("pagepool", pagepool),
                Named.of("netty pooled", new PooledByteBufAllocator(true)),
                Named.of("netty adaptive", new AdaptiveByteBufAllocator()));
    }

    private static final byte[] TEXT = "ABCDEFGHIJKLMNOP".getBytes(StandardCharsets.US_ASCII);

    private static String content(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return new String(out, StandardCharsets.US_ASCII);
    }

    /** What ChannelOutboundBuffer.nioBuffers() does for two flushed slices of one buffer. */
    @ParameterizedTest
    @MethodSource("allocators")
    void internalNioBuffersOfTwoSlicesOfOneBufferAreIndependent(ByteBufAllocator alloc) {
        ByteBuf root = alloc.directBuffer(16).writeBytes(TEXT);
        ByteBuf first = root.retainedSlice(0, 8);
        ByteBuf second = root.retainedSlice(8, 8);
        root.release();
        ByteBuffer a = first.internalNioBuffer(first.readerIndex(), first.readableBytes());
        ByteBuffer b = second.internalNioBuffer(second.readerIndex(), second.readableBytes());
        try {
            assertEquals("IJKLMNOP", content(b));
            assertEquals("ABCDEFGH", content(a), "the first slice's NIO buffer now shows the second's bytes");
        } finally {
            first.release();
            second.release();
        }
    }

    /** Two retained slices of one buffer written and flushed together on NIO: the peer must get them in order. */
    @ParameterizedTest
    @MethodSource("allocators")
    void nioSocketSendsTwoSlicesOfOneBufferIntact(ByteBufAllocator alloc) throws Exception {
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        CompletableFuture<String> received = new CompletableFuture<>();
        Channel server = null;
        Channel client = null;
        try {
            server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                    .childOption(ChannelOption.ALLOCATOR, alloc)
                    .childHandler(new ChannelInitializer<Channel>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            ch.pipeline().addLast(new ChannelInboundHandlerAdapter() {
                                private final StringBuilder sb = new StringBuilder();

                                @Override
                                public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                    ByteBuf buf = (ByteBuf) msg;
                                    sb.append(buf.toString(StandardCharsets.US_ASCII));
                                    buf.release();
                                    if (sb.length() >= 16) {
                                        received.complete(sb.toString());
                                    }
                                }
                            });
                        }
                    })
                    .bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
            client = new Bootstrap().group(group).channel(NioSocketChannel.class)
                    .option(ChannelOption.ALLOCATOR, alloc)
                    .handler(new ChannelInboundHandlerAdapter())
                    .connect(server.localAddress()).sync().channel();
            Channel ch = client;
            ch.eventLoop().submit(() -> {
                ByteBuf root = ch.alloc().directBuffer(16).writeBytes(TEXT);
                ch.write(root.retainedSlice(0, 8));
                ch.write(root.retainedSlice(8, 8));
                root.release();
                ch.flush();
            }).sync();
            assertEquals("ABCDEFGHIJKLMNOP", received.get(20, TimeUnit.SECONDS));
        } finally {
            if (client != null) {
                client.close().sync();
            }
            if (server != null) {
                server.close().sync();
            }
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        }
    }

    /**
     * Two threads each write their own retainedDuplicate of one shared buffer to a channel with
     * getBytes(int, GatheringByteChannel, int), as a broadcast to channels on two event loops does.
     */
    @ParameterizedTest
    @MethodSource("allocators")
    void concurrentGetBytesToChannelsFromTwoDuplicates(ByteBufAllocator alloc) throws Exception {
        int half = 1024;
        ByteBuf root = alloc.directBuffer(2 * half);
        for (int i = 0; i < 2 * half; i++) {
            root.writeByte(i < half ? 'a' : 'b');
        }
        ByteBuf[] dups = {root.retainedDuplicate(), root.retainedDuplicate()};
        root.release();
        AtomicReference<String> failure = new AtomicReference<>();
        CountDownLatch start = new CountDownLatch(1);
        Thread[] threads = new Thread[2];
        for (int t = 0; t < 2; t++) {
            int me = t;
            threads[t] = new Thread(() -> {
                byte expected = (byte) (me == 0 ? 'a' : 'b');
                GatheringByteChannel check = new CheckingChannel(expected, half, failure);
                try {
                    start.await();
                    for (int i = 0; i < 50_000 && failure.get() == null; i++) {
                        int n = dups[me].getBytes(me * half, check, half);
                        if (n != half) {
                            failure.compareAndSet(null, "thread " + me + " wrote " + n + " bytes");
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, "thread " + me + ": " + e);
                }
            });
            threads[t].start();
        }
        start.countDown();
        for (Thread t : threads) {
            t.join();
        }
        dups[0].release();
        dups[1].release();
        assertNull(failure.get());
    }

    private static final class CheckingChannel implements GatheringByteChannel {
        private final byte expected;
        private final int length;
        private final AtomicReference<String> failure;

        CheckingChannel(byte expected, int length, AtomicReference<String> failure) {
            this.expected = expected;
            this.length = length;
            this.failure = failure;
        }

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            if (n != length) {
                failure.compareAndSet(null, "got a buffer of " + n + " bytes, expected " + length);
            }
            for (int i = 0; i < n; i++) {
                byte b = src.get();
                if (b != expected) {
                    failure.compareAndSet(null, "byte " + i + " is '" + (char) b + "', expected '" + (char) expected + "'");
                    break;
                }
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int len) {
            throw new UnsupportedOperationException();
        }

        @Override
        public long write(ByteBuffer[] srcs) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }
}
