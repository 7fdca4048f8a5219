package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.channel.EventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Buffers allocated on one thread and released on another, under load for a bounded time: two
 * event loops and two plain threads each allocate buffers of mixed sizes, fill them with a
 * pattern naming the buffer, and hand each to a random one of the four (itself included). The
 * receiver checks the pattern and releases it; some buffers travel as retained slices (the sender
 * drops its own reference at once) and some are grown by the receiver before release, which moves
 * them to the receiver's memory and frees the sender's from the receiver's thread.
 *
 * <p>While it runs, every live buffer's byte range is registered: a range handed out while
 * another live buffer holds any of its bytes fails the test. Afterwards every buffer came back,
 * the threads' arenas are gone (event loops close theirs when they end, plain threads' are
 * reaped), every page pool has nothing in flight, and the page allocator is consistent with no
 * page allocated.
 */
@Timeout(60)
class CrossThreadReleaseTest {

    private static final long RUN_NANOS = TimeUnit.MILLISECONDS.toNanos(2000);
    private static final int MAX_OUTSTANDING = 2048;
    private static final int[] SIZES = {64, 100, 500, 1024, 1500, 2048, 2100, 3000, 4096, 5000, 9000, 16384, 20_000,
        65_536};
    private static final byte[] CONTENT = ByteBufContractTest.CONTENT;
    private static final String[] NAMES = {"loop-0", "loop-1", "plain-0", "plain-1"};

    private final PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(128L << 20).build();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicLong outstanding = new AtomicLong();
    private final AtomicLong nextId = new AtomicLong();
    private final AtomicLongArray routes = new AtomicLongArray(16); // from * 4 + to
    private final AtomicLong slices = new AtomicLong();
    private final AtomicLong grown = new AtomicLong();
    private final AtomicLong fallbacks = new AtomicLong();
    /** Live byte ranges: start address to end address. Guarded by itself. */
    private final TreeMap<Long, Long> live = new TreeMap<>();
    private volatile boolean stop;

    /** What travels between the actors: the buffer to release and the identity of its bytes. */
    private static final class Message {
        final ByteBuf buf;
        final long id;
        final int from;
        final long start;
        final int length;

        Message(ByteBuf buf, long id, int from, long start, int length) {
            this.buf = buf;
            this.id = id;
            this.from = from;
            this.start = start;
            this.length = length;
        }
    }

    @BeforeAll
    static void installLeakCapture() {
        LeakCapture.install();
    }

    @AfterAll
    static void noLeaks() {
        LeakCapture.assertNoLeaks();
    }

    @Test
    void buffersReleasedOnOtherEventLoopsAndPlainThreadsComeBackIntactAndAccountedFor() throws Exception {
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        EventLoop[] loops = {group.next(), group.next()};
        assertTrue(loops[0] != loops[1]);
        List<PagePool> pools;
        List<Thread> plain = new ArrayList<>();
        try {
            List<Queue<Message>> inboxes = List.of(new ConcurrentLinkedQueue<>(), new ConcurrentLinkedQueue<>());
            long deadline = System.nanoTime() + RUN_NANOS;

            // Actors 0 and 1: event loops. A message for one is a task on it.
            for (int a = 0; a < 2; a++) {
                int self = a;
                loops[a].execute(new Runnable() {
                    @Override
                    public void run() {
                        produce(self, 16, loops, inboxes);
                        if (System.nanoTime() < deadline && failure.get() == null) {
                            loops[self].execute(this);
                        } else {
                            stop = true;
                        }
                    }
                });
            }
            // Actors 2 and 3: plain threads with an inbox each.
            for (int a = 2; a < 4; a++) {
                int self = a;
                Thread t = new Thread(() -> {
                    Queue<Message> inbox = inboxes.get(self - 2);
                    while (true) {
                        boolean idle = true;
                        Message m;
                        while ((m = inbox.poll()) != null) {
                            consume(self, m);
                            idle = false;
                        }
                        if (System.nanoTime() < deadline && !stop && failure.get() == null) {
                            produce(self, 16, loops, inboxes);
                            idle = false;
                        } else if (outstanding.get() == 0 || failure.get() != null
                                || System.nanoTime() - deadline > TimeUnit.SECONDS.toNanos(15)) {
                            return;
                        }
                        if (idle) {
                            Thread.onSpinWait();
                        }
                    }
                }, NAMES[a]);
                t.setDaemon(true); // never outlives a failed run
                plain.add(t);
                t.start();
            }

            // The pools of all four actors, caught while they run.
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (alloc.arenasSnapshot().size() < 4 && System.nanoTime() < until) {
                Thread.sleep(5);
            }
            pools = alloc.arenasSnapshot().stream().map(a -> a.pool).collect(Collectors.toList());
            Map<String, Integer> arenaThreads = alloc.metric().arenas().stream().collect(
                    Collectors.toMap(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName, x -> 1, Integer::sum));
            assertEquals(4, pools.size(), () -> "one arena per allocating thread: " + arenaThreads);

            for (Thread t : plain) {
                t.join(30_000);
                assertTrue(!t.isAlive(), t.getName() + " did not finish");
            }
            // The event loops drain their last deliveries, then shut down (closing their arenas).
            until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (outstanding.get() != 0 && failure.get() == null && System.nanoTime() < until) {
                Thread.sleep(5);
            }
        } finally {
            stop = true;
            assertTrue(group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(20, TimeUnit.SECONDS),
                    "the event loops did not terminate");
        }
        assertNull(failure.get(), () -> "failure: " + failure.get());
        assertEquals(0, outstanding.get(), "every buffer was released");

        long total = 0;
        for (int from = 0; from < 4; from++) {
            for (int to = 0; to < 4; to++) {
                long n = routes.get(from * 4 + to);
                int f = from;
                int t = to;
                assertTrue(n > 0, () -> "no buffer went from " + NAMES[f] + " to " + NAMES[t]);
                total += n;
            }
        }
        assertTrue(total > 5000, "the run exchanged only " + total + " buffers");
        assertTrue(slices.get() > 0 && grown.get() > 0, "slices and growth were exercised");

        // Plain threads' arenas are reaped within about a second of their end; event loops' at once.
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!alloc.metric().arenas().isEmpty() && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        assertEquals(List.of(), alloc.metric().arenas(), "arenas of ended threads are gone");
        for (PagePool pool : pools) {
            assertTrue(pool.isClosed(), pool::toString);
            assertEquals(0, pool.inflight(), () -> "pages still in flight: " + pool.stats());
            assertEquals(pool.stats().pagesEntered(), pool.stats().pagesReleased(), pool::toString);
        }
        PageAllocator pages = alloc.pageAllocator();
        pages.drainCpuCaches(); // folds in the per-thread caches of the ended threads, so the check is exact
        pages.checkConsistency();
        assertEquals(0, pages.stats().allocatedPages(), pages.stats()::toString);
        assertEquals(0, alloc.metric().fallbackBytes());
        alloc.close();
    }

    @Test
    void buffersWhoseMemoryCameFromAReapedArenaAreStillReleasedSafely() throws Exception {
        PagePoolByteBufAllocator own = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        List<ByteBuf> grownElsewhere = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            grownElsewhere.add(own.directBuffer(100).writeBytes(CONTENT, i, 100));
        }
        List<ByteBuf> fromEnded = new java.util.concurrent.CopyOnWriteArrayList<>();
        Thread worker = new Thread(() -> {
            for (ByteBuf b : grownElsewhere) {
                b.writeBytes(CONTENT, 0, 900); // moves to a fragment of this thread's arena
            }
            for (int i = 0; i < 50; i++) {
                fromEnded.add(own.directBuffer(1 + i * 300).writeZero(1 + i * 300));
            }
        }, "ended-worker");
        worker.start();
        worker.join(10_000);
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (own.metric().arenas().size() > 1 && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        assertEquals(List.of(Thread.currentThread().getName()), own.metric().arenas().stream()
                .map(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName).collect(Collectors.toList()),
                "the ended worker's arena was reaped while its memory is still in use");
        for (int i = 0; i < grownElsewhere.size(); i++) {
            ByteBuf b = grownElsewhere.get(i);
            assertEquals(1000, b.readableBytes());
            byte[] got = new byte[100];
            b.getBytes(0, got);
            assertEquals(-1, Arrays.mismatch(got, 0, 100, CONTENT, i, i + 100));
            assertTrue(b.release());
        }
        for (ByteBuf b : fromEnded) {
            assertTrue(b.release());
        }
        for (int i = 0; i < 2000; i++) {
            own.directBuffer(1 + i % 3000).release(); // and the allocator keeps working
        }
        own.pageAllocator().drainCpuCaches();
        own.pageAllocator().checkConsistency();
        own.close(); // throws if a page is still allocated
        alloc.close();
    }

    private void produce(int self, int count, EventLoop[] loops, List<Queue<Message>> inboxes) {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        for (int i = 0; i < count; i++) {
            if (outstanding.get() >= MAX_OUTSTANDING) {
                return;
            }
            try {
                long id = nextId.getAndIncrement();
                int size = random.nextInt(400) == 0 ? (4 << 20) + 100 : SIZES[random.nextInt(SIZES.length)];
                ByteBuf buf = alloc.directBuffer(size);
                if (size > 4 << 20) {
                    fallbacks.incrementAndGet();
                }
                long start = buf.hasMemoryAddress() ? buf.memoryAddress() : 0;
                register(start, size, buf);
                buf.setLong(0, id);
                buf.setBytes(8, CONTENT, offset(id), size - 8);
                buf.writerIndex(size);
                ByteBuf sent = buf;
                if (random.nextInt(8) == 0) {
                    sent = buf.retainedSlice(0, size);
                    buf.release(); // the sender's reference; the slice keeps the memory
                    slices.incrementAndGet();
                }
                int to = random.nextInt(4);
                Message m = new Message(sent, id, self, start, size);
                outstanding.incrementAndGet();
                routes.incrementAndGet(self * 4 + to);
                if (to < 2) {
                    loops[to].execute(() -> consume(to, m));
                } else {
                    inboxes.get(to - 2).add(m);
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
                return;
            }
        }
    }

    private void consume(int self, Message m) {
        try {
            ByteBuf buf = m.buf;
            assertEquals(1, buf.refCnt(), "received buffer's reference count");
            assertEquals(m.id, buf.getLong(0), () -> NAMES[self] + " got buffer " + m.id + " from " + NAMES[m.from]
                    + " overwritten: " + buf);
            check(buf, m.id, m.length);
            unregister(m.start);
            if (isOurs(buf) && ThreadLocalRandom.current().nextInt(16) == 0) {
                // grow it here: new memory from this thread's arena, the old freed from this thread
                buf.capacity(m.length * 2);
                long start = buf.hasMemoryAddress() ? buf.memoryAddress() : 0;
                register(start, buf.capacity(), buf);
                check(buf, m.id, m.length);
                buf.setBytes(m.length, CONTENT, 0, m.length);
                unregister(start);
                grown.incrementAndGet();
            }
            assertTrue(buf.release(), "the last reference frees the buffer");
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        } finally {
            outstanding.decrementAndGet();
        }
    }

    /** A buffer of ours that can grow (not a slice). */
    private static boolean isOurs(ByteBuf buf) {
        return buf.unwrap() instanceof PagePoolByteBuf || buf instanceof PagePoolByteBuf;
    }

    private static int offset(long id) {
        return (int) (id * 31 & 4095);
    }

    private static void check(ByteBuf buf, long id, int length) {
        byte[] got = new byte[length - 8];
        buf.getBytes(8, got);
        int mismatch = Arrays.mismatch(got, 0, got.length, CONTENT, offset(id), offset(id) + got.length);
        if (mismatch >= 0) {
            throw new AssertionError("buffer " + id + " overwritten at byte " + (8 + mismatch) + ": " + buf);
        }
    }

    private void register(long start, int length, ByteBuf buf) {
        if (start == 0) {
            return;
        }
        long end = start + length;
        synchronized (live) {
            Map.Entry<Long, Long> below = live.floorEntry(start);
            Map.Entry<Long, Long> above = live.ceilingEntry(start);
            if (below != null && below.getValue() > start || above != null && above.getKey() < end) {
                throw new AssertionError("memory handed out twice: [" + start + ", " + end + ") of " + buf
                        + " overlaps a live buffer " + (below != null && below.getValue() > start ? below : above));
            }
            live.put(start, end);
        }
    }

    private void unregister(long start) {
        if (start == 0) {
            return;
        }
        synchronized (live) {
            live.remove(start);
        }
    }
}
