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
 * <p>The sender keeps at most {@code window} datagrams on the way to the sink, so the sockets'
 * buffers do not overflow and the forwarder runs flat out without loss. On the way are the
 * datagrams sent after the latest one that arrived: the path keeps order (one event loop, loopback
 * sockets), so one that a later datagram overtook is presumed lost, and a loss in mid-run neither
 * shrinks the window nor stalls the sender. When nothing arrives for {@value #STALL_MILLIS} ms with
 * the window full, the sender writes what is outstanding off and sends one more window, so up to
 * twice the window may be on the way; it writes nothing off again until a datagram sent after that
 * write-off has arrived (everything before it has then arrived or is lost), so on an order-keeping
 * path no more than twice the window is ever on the way, however long the forwarder stalls. If
 * nothing new arrives for {@value #DRAIN_MILLIS} ms while the window is full after a write-off, the
 * sender gives the forwarder up: it sends no more, and what it did not send counts as lost. At the
 * end the sender waits for every datagram until none has arrived for {@value #DRAIN_MILLIS} ms, and
 * only what is missing then counts as lost. So a forwarder that stops for less than
 * {@value #DRAIN_MILLIS} ms (its first packets run in the interpreter and load classes) loses
 * nothing, provided its socket holds twice the window; one that drops datagrams costs one drain
 * wait, plus a stall for each time it drops a whole window's tail; one that drops everything costs
 * a stall and a drain wait, not a hang. Each {@link #send} counts only the datagrams of its own
 * sequence range, so stragglers of an earlier send (a warm-up) are not credited to it.
 *
 * <p>The sink keeps a bit per sequence number of the current send, so it counts distinct datagrams:
 * one that arrives twice is a {@linkplain #duplicates duplicate}, which neither opens the window nor
 * makes up for a lost one. A datagram with a wrong length or content is {@linkplain #corrupt
 * corrupt} and not an arrival (its number cannot be trusted): unless it also arrives intact, it
 * counts as lost too.
 */
public final class LoopbackLoad implements AutoCloseable {

    /** How long the sender waits for the sink, window full, before it writes what is outstanding off. */
    static final long STALL_MILLIS = 50;
    /**
     * How long without a new arrival the sender waits before it gives up: on the datagrams still
     * missing at the end of a send, or on the rest of the send when the window is full after a
     * write-off.
     */
    static final long DRAIN_MILLIS = 2_000;
    /** Bytes of the sequence number at the start of each datagram. */
    static final int HEADER = Long.BYTES;

    private final DatagramChannel sink;
    private final Thread sinkThread;
    private final AtomicLong received = new AtomicLong();
    private final AtomicLong corrupt = new AtomicLong();
    private final AtomicLong duplicates = new AtomicLong();
    private final int size;
    /** The current send's sequence range and which of it arrived; replaced whole by each send. */
    private volatile Range range = new Range(0, 0);
    /** Why the sink thread stopped, if it failed. */
    private volatile Throwable sinkFailure;

    /**
     * Datagrams numbered {@code first} to {@code end - 1}: which of them arrived intact (a bit each,
     * by {@code seq - first}), how many of them did ({@code distinct}: a duplicate is not counted
     * again) and when the latest of those arrived ({@link System#nanoTime()}). All written by the sink
     * thread only; the counters are read by the sender. {@code frontier} is one past the index
     * ({@code seq - first}) of the highest that arrived, 0 before any did.
     */
    private record Range(long first, long end, long[] seen, AtomicLong distinct, AtomicLong frontier,
            AtomicLong lastArrival) {
        Range(long first, long end) {
            this(first, end, new long[(int) ((end - first + 63) >>> 6)], new AtomicLong(), new AtomicLong(),
                    new AtomicLong(System.nanoTime()));
        }

        boolean contains(long seq) {
            return seq >= first && seq < end;
        }

        /** Marks {@code seq} (in the range) arrived: true the first time, false for a duplicate. */
        boolean arrive(long seq) {
            long index = seq - first;
            int word = (int) (index >>> 6);
            long bit = 1L << index; // the low six bits
            if ((seen[word] & bit) != 0) {
                return false;
            }
            seen[word] |= bit;
            if (index >= frontier.get()) {
                frontier.lazySet(index + 1);
            }
            return true;
        }
    }

    /** Opens the sink on a loopback port and starts its thread; datagrams are {@code size} bytes. */
    public LoopbackLoad(int size) throws IOException {
        if (size < HEADER) {
            throw new IllegalArgumentException("size " + size + " must be at least " + HEADER
                    + " bytes (the sequence number)");
        }
        this.size = size;
        this.sink = DatagramChannel.open();
        try {
            sink.setOption(StandardSocketOptions.SO_RCVBUF, 4 << 20);
            sink.bind(new InetSocketAddress("127.0.0.1", 0));
        } catch (IOException | RuntimeException e) {
            sink.close();
            throw e;
        }
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
     * Intact datagrams of a send's range that the sink had already received, over every send so far:
     * a forwarder that passes a datagram on twice. A duplicate neither counts as an arrival nor
     * makes up for a lost datagram.
     */
    public long duplicates() {
        return duplicates.get();
    }

    /** Most datagrams one {@link #send} takes: the sink keeps a bit per datagram of it. */
    public static final long MAX_COUNT = Integer.MAX_VALUE;

    /**
     * Sends {@code count} datagrams numbered from {@code firstSeq} to {@code target}, at most
     * {@code window} of them on the way (twice that after a stall: see the class comment), and waits
     * until the sink has them all or none has arrived for {@value #DRAIN_MILLIS} ms.
     *
     * @return how many of them the sink did not receive intact: {@code count} minus the distinct
     *     sequence numbers that arrived, so never negative, whatever arrived twice; the datagrams not
     *     sent because the sender gave the forwarder up are among them
     */
    public long send(InetSocketAddress target, long firstSeq, long count, int window) throws IOException {
        if (firstSeq < 0 || count < 0 || count > MAX_COUNT || firstSeq > Long.MAX_VALUE - count || window < 1) {
            throw new IllegalArgumentException("firstSeq " + firstSeq + " and count " + count
                    + " must not be negative, count at most " + MAX_COUNT + ", window " + window
                    + " must be positive");
        }
        Range r = new Range(firstSeq, firstSeq + count);
        range = r;
        AtomicLong arrived = r.distinct(); // distinct: a duplicate neither opens the window nor hides a loss
        AtomicLong frontier = r.frontier();
        long writtenOffBelow = 0; // a stall wrote off what was sent before this index and had not arrived
        boolean writeOffPending = false; // and nothing sent since has arrived: no second write-off yet
        boolean gaveUp = false;
        try (DatagramChannel sender = DatagramChannel.open()) {
            sender.setOption(StandardSocketOptions.SO_SNDBUF, 4 << 20);
            sender.connect(target);
            ByteBuffer out = ByteBuffer.allocateDirect(size);
            sending:
            for (long i = 0; i < count; i++) {
                for (;;) {
                    long f = frontier.get();
                    if (f > writtenOffBelow) {
                        writeOffPending = false; // one sent after the write-off arrived: those before it are through or lost
                    }
                    if (i - Math.max(f, writtenOffBelow) < window) { // on the way: sent after the latest arrival and the write-off
                        break;
                    }
                    if (progressed(arrived, STALL_MILLIS)) {
                        continue;
                    }
                    if (!writeOffPending) {
                        writtenOffBelow = i;
                        writeOffPending = true;
                    } else if (System.nanoTime() - r.lastArrival().get() > TimeUnit.MILLISECONDS.toNanos(DRAIN_MILLIS)) {
                        gaveUp = true; // nothing new for the drain time, window full after a write-off
                        break sending;
                    }
                }
                fill(out, firstSeq + i);
                sender.write(out);
            }
            // Every datagram gets its chance to arrive, the written-off ones too: a slow start (a
            // cold JIT, class loading on the forwarder's first packets) delays datagrams, it does
            // not lose them.
            while (!gaveUp && arrived.get() < count && progressed(arrived, DRAIN_MILLIS)) {
                // each arrival restarts the clock
            }
        }
        return count - arrived.get();
    }

    /**
     * When the latest new datagram of the last {@link #send}'s range arrived, on the
     * {@link System#nanoTime()} scale (the start of that send if none did): the end of a run for a
     * rate, without the drain wait for datagrams that never came.
     */
    public long lastArrivalNanos() {
        return range.lastArrival().get();
    }

    /**
     * Waits for the sink to receive one more datagram of the current range: true if it does, false
     * if it makes no progress for {@code millis} ms. Throws if the sink thread has failed.
     */
    private boolean progressed(AtomicLong arrived, long millis) {
        long seen = arrived.get();
        long since = System.nanoTime();
        while (arrived.get() == seen) {
            Throwable failure = sinkFailure;
            if (failure != null) {
                throw new IllegalStateException("the sink failed", failure);
            }
            if (System.nanoTime() - since > TimeUnit.MILLISECONDS.toNanos(millis)) {
                return false;
            }
            Thread.yield(); // two cores, three busy threads: let the forwarder and the sink run
        }
        return true;
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
                // One writer for every counter: this thread (lazySet, no read-modify-write). received
                // first, distinct last: send() waits on distinct and then reads the others.
                received.lazySet(received.get() + 1);
                if (!intact(in)) {
                    corrupt.lazySet(corrupt.get() + 1); // not an arrival: its number cannot be trusted
                    continue;
                }
                Range r = range;
                long seq = in.getLong(0);
                if (!r.contains(seq)) {
                    continue; // another send's straggler
                }
                if (r.arrive(seq)) {
                    r.lastArrival().lazySet(System.nanoTime());
                    r.distinct().lazySet(r.distinct().get() + 1);
                } else {
                    duplicates.lazySet(duplicates.get() + 1);
                }
            }
        } catch (ClosedChannelException e) {
            // close(): done
        } catch (IOException | RuntimeException | Error e) {
            sinkFailure = e; // the sender sees it in awaitProgress
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
