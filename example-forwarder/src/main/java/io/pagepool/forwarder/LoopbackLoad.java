package io.pagepool.forwarder;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Drives a forwarder over loopback: a sender that numbers each datagram and fills it with a
 * pattern derived from the number, and a sink (the forwarder's upstream) that checks every byte it
 * receives. Both use the JDK's blocking {@link DatagramChannel}, not Netty, so they cost every
 * allocator the same.
 *
 * <p>The sender keeps at most {@code window} datagrams between itself and the sink, so the sockets'
 * buffers never overflow and the forwarder runs flat out without loss; a datagram that is lost all
 * the same (the kernel may drop on loopback) stalls the window for {@value #STALL_MILLIS} ms, after
 * which the sender goes on and the loss is counted.
 */
public final class LoopbackLoad implements AutoCloseable {

    /** How long the sender waits for the sink before it counts what is outstanding as lost. */
    static final long STALL_MILLIS = 50;
    /** Bytes of the sequence number at the start of each datagram. */
    static final int HEADER = Long.BYTES;

    private final DatagramChannel sink;
    private final Thread sinkThread;
    private final AtomicLong received = new AtomicLong();
    private final AtomicLong corrupt = new AtomicLong();
    private final int size;

    /** Opens the sink on a loopback port and starts its thread; datagrams are {@code size} bytes. */
    public LoopbackLoad(int size) throws IOException {
        if (size < HEADER) {
            throw new IllegalArgumentException("size " + size + " must be at least " + HEADER
                    + " bytes (the sequence number)");
        }
        this.size = size;
        this.sink = DatagramChannel.open();
        sink.setOption(StandardSocketOptions.SO_RCVBUF, 4 << 20);
        sink.bind(new InetSocketAddress("127.0.0.1", 0));
        this.sinkThread = new Thread(this::receiveAll, "loopback-sink");
        sinkThread.setDaemon(true);
        sinkThread.start();
    }

    /** Where the forwarder should send: the sink. */
    public InetSocketAddress sinkAddress() throws IOException {
        return (InetSocketAddress) sink.getLocalAddress();
    }

    /** Datagrams the sink has received so far, intact or not. */
    public long received() {
        return received.get();
    }

    /** Datagrams the sink received with a wrong length or content. */
    public long corrupt() {
        return corrupt.get();
    }

    /**
     * Sends {@code count} datagrams numbered from {@code firstSeq} to {@code target}, at most
     * {@code window} of them not yet at the sink, and waits until the sink has them all (or gives
     * the stragglers up after {@value #STALL_MILLIS} ms without progress).
     *
     * @return how many of them the sink did not receive
     */
    public long send(InetSocketAddress target, long firstSeq, long count, int window) throws IOException {
        long base = received.get();
        long givenUp = 0; // counted lost to keep the window moving
        try (DatagramChannel sender = DatagramChannel.open()) {
            sender.setOption(StandardSocketOptions.SO_SNDBUF, 4 << 20);
            sender.connect(target);
            ByteBuffer out = ByteBuffer.allocateDirect(size);
            for (long i = 0; i < count; i++) {
                long inFlight;
                while ((inFlight = i - (received.get() - base) - givenUp) >= window) {
                    givenUp += awaitProgress(inFlight);
                }
                fill(out, firstSeq + i);
                sender.write(out);
            }
            long inFlight;
            while ((inFlight = count - (received.get() - base) - givenUp) > 0) {
                givenUp += awaitProgress(inFlight);
            }
        }
        return Math.max(0, count - (received.get() - base));
    }

    /**
     * Waits for the sink to receive one more datagram: 0 if it does, or {@code inFlight} (all of
     * them given up as lost) if it makes no progress for {@value #STALL_MILLIS} ms.
     */
    private long awaitProgress(long inFlight) {
        long seen = received.get();
        long since = System.nanoTime();
        while (received.get() == seen) {
            if (System.nanoTime() - since > TimeUnit.MILLISECONDS.toNanos(STALL_MILLIS)) {
                return inFlight;
            }
            Thread.yield(); // two cores, three busy threads: let the forwarder and the sink run
        }
        return 0;
    }

    private void fill(ByteBuffer out, long seq) {
        out.clear();
        out.putLong(seq);
        for (int i = HEADER; i < size; i++) {
            out.put(patternByte(seq, i));
        }
        out.flip();
    }

    static byte patternByte(long seq, int index) {
        return (byte) (seq * 31 + index);
    }

    private void receiveAll() {
        ByteBuffer in = ByteBuffer.allocateDirect(65536);
        try {
            for (;;) {
                in.clear();
                sink.receive(in);
                in.flip();
                if (!intact(in)) {
                    corrupt.incrementAndGet();
                }
                received.lazySet(received.get() + 1); // one writer: this thread
            }
        } catch (ClosedChannelException e) {
            // close(): done
        } catch (IOException e) {
            throw new IllegalStateException("the sink failed", e);
        }
    }

    private boolean intact(ByteBuffer in) {
        if (in.remaining() != size) {
            return false;
        }
        long seq = in.getLong(0);
        for (int i = HEADER; i < size; i++) {
            if (in.get(i) != patternByte(seq, i)) {
                return false;
            }
        }
        return true;
    }

    /** Closes the sink and waits for its thread. */
    @Override
    public void close() throws IOException, InterruptedException {
        sink.close();
        sinkThread.join(TimeUnit.SECONDS.toMillis(5));
    }
}
