package io.pagepool.forwarder;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.socket.DatagramPacket;
import io.pagepool.netty.PagePoolRecvByteBufAllocator;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A UDP forwarder: every datagram that arrives on its socket is sent on, unchanged, to one upstream
 * address, from one Netty event loop. The buffer the datagram was read into is the buffer that is
 * written out (no copy), so each packet costs the allocator one allocate (by the read) and one
 * release (when the write completes), both on the event loop: the per-packet path the
 * {@code PagePoolByteBufAllocator} is built for.
 *
 * <pre>
 *   sender --datagram--&gt; [ socket | read into a buffer from the ALLOCATOR | write it upstream ] --&gt; upstream
 *                                      one event loop thread, one buffer per packet
 * </pre>
 *
 * <p>The allocator is plugged in the usual way, {@code ChannelOption.ALLOCATOR}, with
 * {@link PagePoolRecvByteBufAllocator} sizing each read to one datagram (2 KiB, a 1500-byte MTU
 * with room) from whichever allocator is set, so allocators compare on equal terms.
 *
 * <p>{@link #cpuNanos()} is the event loop thread's CPU time: the forwarding work, the system calls
 * that receive and send included.
 */
public final class UdpForwarder implements AutoCloseable {

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    /** Bytes of receive and send buffer each socket asks for (Linux caps it at net.core.rmem_max / wmem_max). */
    static final int SOCKET_BUFFER = 4 << 20;
    /** Read buffer per datagram: a 1500-byte MTU with room, a half-page fragment. */
    static final int DATAGRAM_SIZE = PagePoolRecvByteBufAllocator.DEFAULT_DATAGRAM_SIZE;

    private final EventLoopGroup group;
    private final Channel channel;
    private final Thread eventLoopThread;
    private final AtomicLong forwarded;

    private UdpForwarder(EventLoopGroup group, Channel channel, Thread eventLoopThread, AtomicLong forwarded) {
        this.group = group;
        this.channel = channel;
        this.eventLoopThread = eventLoopThread;
        this.forwarded = forwarded;
    }

    /**
     * Binds a forwarder to {@code bind} (port 0 for any) on {@code transport}, sending what it
     * receives to {@code upstream}, with buffers from {@code allocator}, one datagram per read.
     */
    public static UdpForwarder start(Transport transport, ByteBufAllocator allocator, InetSocketAddress bind,
            InetSocketAddress upstream) throws InterruptedException {
        return start(transport, allocator, bind, upstream, 1);
    }

    /**
     * As {@link #start(Transport, ByteBufAllocator, InetSocketAddress, InetSocketAddress)}, reading
     * up to {@code datagramsPerRead} datagrams per system call: above 1, epoll's {@code recvmmsg}
     * into one buffer of {@code datagramsPerRead} x 2 KiB, each datagram passed on as a slice of it
     * (the buffer is released when the last slice's write completes). Epoll only.
     */
    public static UdpForwarder start(Transport transport, ByteBufAllocator allocator, InetSocketAddress bind,
            InetSocketAddress upstream, int datagramsPerRead) throws InterruptedException {
        if (!transport.isAvailable()) {
            throw new IllegalStateException(transport + " is not available here: " + transport.unavailabilityCause());
        }
        if (datagramsPerRead < 1 || (datagramsPerRead > 1 && transport != Transport.EPOLL)) {
            throw new IllegalArgumentException("datagramsPerRead " + datagramsPerRead
                    + ": 1, or more with EPOLL (recvmmsg), not " + transport);
        }
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, transport.newIoHandlerFactory());
        boolean started = false;
        try {
            Thread thread = group.next().submit(Thread::currentThread).get();
            AtomicLong forwarded = new AtomicLong();
            Bootstrap bootstrap = new Bootstrap();
            if (datagramsPerRead > 1) {
                bootstrap.option(EpollChannelOption.MAX_DATAGRAM_PAYLOAD_SIZE, DATAGRAM_SIZE);
            }
            Channel channel = bootstrap.group(group).channel(transport.datagramChannel())
                    .option(ChannelOption.ALLOCATOR, allocator)
                    .option(ChannelOption.RECVBUF_ALLOCATOR,
                            new PagePoolRecvByteBufAllocator(DATAGRAM_SIZE, datagramsPerRead))
                    .option(ChannelOption.SO_RCVBUF, SOCKET_BUFFER)
                    .option(ChannelOption.SO_SNDBUF, SOCKET_BUFFER)
                    .handler(new SimpleChannelInboundHandler<DatagramPacket>(false) {
                        @Override
                        protected void channelRead0(ChannelHandlerContext ctx, DatagramPacket packet) {
                            // The received buffer goes out as it is; the write releases it when done.
                            ctx.write(new DatagramPacket(packet.content(), upstream), ctx.voidPromise());
                            forwarded.lazySet(forwarded.get() + 1); // one writer: this thread
                        }

                        @Override
                        public void channelReadComplete(ChannelHandlerContext ctx) {
                            ctx.flush();
                        }
                    })
                    .bind(bind).sync().channel();
            UdpForwarder forwarder = new UdpForwarder(group, channel, thread, forwarded);
            started = true;
            return forwarder;
        } catch (ExecutionException e) {
            throw new IllegalStateException("the event loop did not start", e.getCause());
        } finally {
            if (!started) {
                // Also on a failed bind, which sync() rethrows as the undeclared checked BindException.
                group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            }
        }
    }

    /** The address the forwarder receives on. */
    public InetSocketAddress localAddress() {
        return (InetSocketAddress) channel.localAddress();
    }

    /** Datagrams handed to the socket so far. */
    public long forwarded() {
        return forwarded.get();
    }

    /** CPU time of the forwarding thread so far, in nanoseconds (user and system); -1 where the JVM cannot tell. */
    @SuppressWarnings("deprecation") // Thread.getId(): threadId() is JDK 19+, this module targets 17
    public long cpuNanos() {
        return THREADS.isThreadCpuTimeSupported() ? THREADS.getThreadCpuTime(eventLoopThread.getId()) : -1;
    }

    /** Closes the socket and stops the event loop, waiting for both. */
    @Override
    public void close() throws InterruptedException {
        try {
            channel.close().sync();
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        }
    }
}
