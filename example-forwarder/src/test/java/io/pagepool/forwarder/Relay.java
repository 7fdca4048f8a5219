package io.pagepool.forwarder;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongPredicate;

/**
 * A plain-socket forwarder for testing the load itself, and the demo against forwarders that
 * misbehave: reads nothing for {@code holdMillis}, then passes datagrams on to {@code upstream} in
 * order, except those {@code drop} selects, and twice those {@code duplicate} selects; optionally
 * {@link #throttle throttled}, or {@link #forwardOnly stopping} after a number of datagrams.
 */
final class Relay implements AutoCloseable {
    private static final InetSocketAddress ANY_LOOPBACK_PORT = new InetSocketAddress("127.0.0.1", 0);

    private final DatagramChannel socket;
    private final Thread thread;
    private volatile long perDatagramNanos;
    private volatile long measureFrom = Long.MAX_VALUE;
    private volatile long forwardOnly = Long.MAX_VALUE;
    private final AtomicLong maxWaiting = new AtomicLong();
    private final AtomicLong seen = new AtomicLong();

    /** Drops, if {@code dropEvery} is not 0, the datagrams whose number is one less than a multiple of it. */
    Relay(InetSocketAddress upstream, long holdMillis, long dropEvery) throws IOException {
        this(upstream, holdMillis, dropEvery, 0);
    }

    /** As above, and sends twice, if {@code duplicateEvery} is not 0, those whose number is a multiple of it. */
    Relay(InetSocketAddress upstream, long holdMillis, long dropEvery, long duplicateEvery) throws IOException {
        this(upstream, holdMillis, seq -> dropEvery != 0 && seq % dropEvery == dropEvery - 1,
                seq -> duplicateEvery != 0 && seq % duplicateEvery == 0);
    }

    Relay(InetSocketAddress upstream, long holdMillis, LongPredicate drop, LongPredicate duplicate) throws IOException {
        socket = DatagramChannel.open().bind(ANY_LOOPBACK_PORT);
        socket.setOption(StandardSocketOptions.SO_RCVBUF, 4 << 20); // as the forwarder's own socket asks
        socket.configureBlocking(false);
        thread = new Thread(() -> {
            ArrayDeque<ByteBuffer> waiting = new ArrayDeque<>();
            long highest = -1;
            long passedOn = 0;
            long lastPass = 0;
            try {
                Thread.sleep(holdMillis);
                for (;;) {
                    ByteBuffer datagram;
                    while (socket.receive(datagram = ByteBuffer.allocate(2048)) != null) {
                        datagram.flip();
                        highest = Math.max(highest, datagram.getLong(0));
                        seen.set(highest + 1);
                        waiting.add(datagram);
                    }
                    if (highest >= measureFrom && highest + 1 - passedOn > maxWaiting.get()) {
                        maxWaiting.set(highest + 1 - passedOn); // sent and not yet passed on, at least
                    }
                    long now = System.nanoTime();
                    if (!waiting.isEmpty() && now - lastPass >= perDatagramNanos) {
                        ByteBuffer next = waiting.poll();
                        long seq = next.getLong(0);
                        if (!drop.test(seq) && passedOn < forwardOnly) {
                            socket.send(next.duplicate(), upstream);
                            if (duplicate.test(seq)) {
                                socket.send(next.duplicate(), upstream);
                            }
                        }
                        passedOn++;
                        lastPass = now;
                    } else if (waiting.isEmpty()) {
                        LockSupport.parkNanos(10_000);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // closed: done
            }
        }, "relay");
        thread.start();
    }

    /** At most one datagram per {@code nanos}; measure {@link #maxWaiting} once {@code from} has been seen. */
    void throttle(long nanos, long from) {
        perDatagramNanos = nanos;
        measureFrom = from;
    }

    /** Measure {@link #maxWaiting} once {@code from} has been seen. */
    void measureFrom(long from) {
        measureFrom = from;
    }

    /** Drops every datagram after the first {@code count}. */
    void forwardOnly(long count) {
        forwardOnly = count;
    }

    /** The highest sequence number received + 1. */
    long seen() {
        return seen.get();
    }

    /** The most datagrams seen sent (highest number + 1) and not yet passed on, once measuring. */
    long maxWaiting() {
        return maxWaiting.get();
    }

    /** The receive buffer the kernel granted (Linux: twice what was asked, capped by net.core.rmem_max). */
    int receiveBuffer() throws IOException {
        return socket.getOption(StandardSocketOptions.SO_RCVBUF);
    }

    InetSocketAddress address() throws IOException {
        return (InetSocketAddress) socket.getLocalAddress();
    }

    @Override
    public void close() throws IOException, InterruptedException {
        socket.close();
        thread.join();
    }
}
