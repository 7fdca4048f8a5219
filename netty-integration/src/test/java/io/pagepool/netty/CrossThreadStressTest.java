package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.DefaultEventLoopGroup;
import io.netty.channel.EventLoop;
import io.netty.util.ResourceLeakDetector;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Buffers crossing threads under stress: bounded runs, invariants checked afterwards (every buffer
 * keeps its bytes, nothing stays in use, the allocator closes). Leak detection is off so
 * that the recycled views and the owner's plain-store release are what runs (surefire sets
 * PARANOID, under which every buffer is wrapped and views share the wrapper's count).
 */
class CrossThreadStressTest {

    static final int MIB = 1 << 20;
    private static ResourceLeakDetector.Level saved;

    @BeforeAll
    static void leakDetectionOff() {
        saved = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
    }

    @AfterAll
    static void leakDetectionBack() {
        ResourceLeakDetector.setLevel(saved);
    }

    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicLong ids = new AtomicLong(1);

    // ------------------------------------------------------------------ helpers

    /** Fills the whole capacity with a pattern derived from {@code id}. */
    static void fill(ByteBuf buf, long id) {
        int cap = buf.capacity();
        int i = 0;
        for (; i + 8 <= cap; i += 8) {
            buf.setLong(i, id * 0x9E3779B97F4A7C15L + i);
        }
        for (; i < cap; i++) {
            buf.setByte(i, (int) (id + i));
        }
    }

    static void check(ByteBuf buf, long id, String what) {
        int cap = buf.capacity();
        int i = 0;
        for (; i + 8 <= cap; i += 8) {
            long want = id * 0x9E3779B97F4A7C15L + i;
            long got = buf.getLong(i);
            if (got != want) {
                throw new AssertionError(what + ": buffer " + id + " (" + buf + ") overwritten at byte " + i);
            }
        }
        for (; i < cap; i++) {
            if (buf.getByte(i) != (byte) (id + i)) {
                throw new AssertionError(what + ": buffer " + id + " (" + buf + ") overwritten at byte " + i);
            }
        }
    }

    private void record(Throwable t) {
        failure.compareAndSet(null, t);
    }

    private Thread start(String name, Runnable r) {
        Thread t = new Thread(() -> {
            try {
                r.run();
            } catch (Throwable e) {
                record(e);
            }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static void join(List<Thread> threads) throws InterruptedException {
        for (Thread t : threads) {
            t.join(30_000);
            assertTrue(!t.isAlive(), t.getName() + " did not finish");
        }
    }

    static void awaitNoArenas(PagePoolByteBufAllocator alloc) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!alloc.metric().arenas().isEmpty() && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        assertEquals(List.of(), alloc.metric().arenas().stream().map(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName)
                .collect(Collectors.toList()), "arenas of ended threads are gone");
    }

    /** Everything went back: nothing in use, and the allocator closes. */
    private void assertAllBack(PagePoolByteBufAllocator alloc) {
        try {
            assertNull(failure.get(), () -> "failure: " + failure.get());
            alloc.pageAllocator().drainCpuCaches();
            assertEquals(0, alloc.metric().usedDirectMemory(), () -> "used after all released: "
                    + alloc.pageAllocator().stats());
            assertEquals(0, alloc.metric().fallbackBytes(), "fallback bytes");
        } finally {
            alloc.close();
        }
    }

    /** A buffer filled with {@link #fill}'s pattern for {@code id}. */
    private record Msg(ByteBuf buf, long id) {
    }

    /** A buffer of one of {@link #SIZES}, filled under a new id. */
    private Msg newFilled(ByteBufAllocator alloc, SplittableRandom rnd) {
        ByteBuf buf = alloc.directBuffer(SIZES[rnd.nextInt(SIZES.length)]);
        long id = ids.getAndIncrement();
        fill(buf, id);
        return new Msg(buf, id);
    }

    /** {@code m}'s buffer resized to one of {@link #SIZES} and filled again under a new id. */
    private Msg resizedAndRefilled(Msg m, SplittableRandom rnd) {
        m.buf.capacity(SIZES[rnd.nextInt(SIZES.length)]);
        long id = ids.getAndIncrement();
        fill(m.buf, id);
        return new Msg(m.buf, id);
    }

    private static final int[] SIZES = {40, 100, 700, 1500, 2048, 3000, 4096, 6000, 9000, 16384, 20000, 32768, 50000};

    // ------------------------------------------------------------------ 1: growth with views elsewhere

    /**
     * An event loop allocates, writes, takes a retained slice and a retained duplicate (recycled
     * views of its arena), and passes the buffer to thread X and the views to thread Y. X grows or
     * shrinks the buffer (new memory from X's arena, another size class), rewrites and checks it and
     * releases; Y releases the views (and some views of views). Every live buffer's bytes stay its own.
     */
    @Test
    void growthOnAnotherThreadWhileViewsAreReleasedOnAThird() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(32L * MIB).build();
        DefaultEventLoopGroup group = new DefaultEventLoopGroup(1);
        EventLoop loop = group.next();
        BlockingQueue<Msg> toX = new LinkedBlockingQueue<>();
        BlockingQueue<ByteBuf> toY = new LinkedBlockingQueue<>();
        int rounds = 4000;
        CountDownLatch produced = new CountDownLatch(1);
        loop.execute(new Runnable() {
            final SplittableRandom rnd = new SplittableRandom(1);
            int n;

            @Override
            public void run() {
                try {
                    for (int k = 0; k < 50 && n < rounds; k++, n++) {
                        Msg m = newFilled(alloc, rnd);
                        ByteBuf buf = m.buf;
                        ByteBuf s = buf.retainedSlice(1, buf.capacity() / 2);
                        ByteBuf d = buf.retainedDuplicate();
                        ByteBuf ss = s.retainedSlice(0, Math.max(1, s.capacity() / 2));
                        toY.add(s);
                        toY.add(d);
                        toY.add(ss);
                        toX.add(m);
                        // own short-lived traffic on the loop too, so its stacks cycle
                        Msg own = newFilled(alloc, rnd);
                        check(own.buf, own.id, "loop own");
                        own.buf.release();
                    }
                } catch (Throwable t) {
                    record(t);
                    produced.countDown();
                    return;
                }
                if (n < rounds) {
                    loop.execute(this);
                } else {
                    toX.add(new Msg(null, 0));
                    toY.add(io.netty.buffer.Unpooled.EMPTY_BUFFER);
                    produced.countDown();
                }
            }
        });
        List<Thread> threads = new ArrayList<>();
        threads.add(start("X-grower", () -> {
            SplittableRandom rnd = new SplittableRandom(2);
            List<Msg> held = new ArrayList<>();
            try {
                for (;;) {
                    Msg m = toX.take();
                    if (m.buf == null) {
                        break;
                    }
                    check(m.buf, m.id, "X received");
                    held.add(resizedAndRefilled(m, rnd));
                    // X's own traffic, so its arena's stacks hold and hand out what growth freed
                    held.add(newFilled(alloc, rnd));
                    if (held.size() > 16) {
                        for (Msg h : held) {
                            check(h.buf, h.id, "X before release");
                            h.buf.release();
                        }
                        held.clear();
                    }
                }
                for (Msg h : held) {
                    check(h.buf, h.id, "X before release");
                    h.buf.release();
                }
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        }));
        threads.add(start("Y-view-releaser", () -> {
            try {
                for (;;) {
                    ByteBuf v = toY.take();
                    if (v == io.netty.buffer.Unpooled.EMPTY_BUFFER) {
                        break;
                    }
                    v.release();
                }
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        }));
        assertTrue(produced.await(30, TimeUnit.SECONDS));
        join(threads);
        assertTrue(group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS));
        awaitNoArenas(alloc);
        assertAllBack(alloc);
    }

    // ------------------------------------------------------------------ 2: exhaustion, give-back, trims

    /**
     * Two event loops and two plain threads share a 2 MiB allocator: buffers of every class pass
     * between them, some are held for a while, trimCurrentThreadCache runs now and then, and memory
     * runs out often (fallback and give-back requests). Every live buffer keeps its bytes; at the end
     * nothing is in use and the allocator closes.
     */
    @Test
    void exhaustionGiveBackAndTrimsWhileBuffersCrossThreads() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(2L * MIB).build();
        DefaultEventLoopGroup group = new DefaultEventLoopGroup(2);
        EventLoop[] loops = {group.next(), group.next()};
        int actors = 4;
        List<BlockingQueue<Msg>> inbox = new ArrayList<>();
        for (int i = 0; i < actors; i++) {
            inbox.add(new LinkedBlockingQueue<>());
        }
        int perActor = 6000;
        AtomicInteger outstanding = new AtomicInteger();
        CountDownLatch loopsDone = new CountDownLatch(2);
        for (int a = 0; a < 2; a++) {
            int self = a;
            loops[a].execute(new Runnable() {
                final SplittableRandom rnd = new SplittableRandom(10 + self);
                final List<Msg> held = new ArrayList<>();
                int n;

                @Override
                public void run() {
                    try {
                        step(alloc, rnd, self, inbox, held, outstanding, 40);
                        n += 40;
                    } catch (Throwable t) {
                        record(t);
                        n = perActor;
                    }
                    if (n < perActor && failure.get() == null) {
                        loops[self].execute(this);
                    } else {
                        for (Msg h : held) {
                            release(h, "loop end");
                            outstanding.decrementAndGet();
                        }
                        held.clear();
                        loopsDone.countDown();
                    }
                }
            });
        }
        List<Thread> threads = new ArrayList<>();
        for (int a = 2; a < actors; a++) {
            int self = a;
            threads.add(start("plain-" + a, () -> {
                SplittableRandom rnd = new SplittableRandom(10 + self);
                List<Msg> held = new ArrayList<>();
                for (int n = 0; n < perActor && failure.get() == null; n += 40) {
                    step(alloc, rnd, self, inbox, held, outstanding, 40);
                }
                for (Msg h : held) {
                    release(h, "plain end");
                    outstanding.decrementAndGet();
                }
            }));
        }
        join(threads);
        assertTrue(loopsDone.await(30, TimeUnit.SECONDS));
        // whatever is left in the inboxes is released here (main thread: yet another thread)
        for (BlockingQueue<Msg> q : inbox) {
            Msg m;
            while ((m = q.poll()) != null) {
                release(m, "leftover");
                outstanding.decrementAndGet();
            }
        }
        assertEquals(0, outstanding.get());
        assertTrue(group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS));
        awaitNoArenas(alloc);
        assertAllBack(alloc);
    }

    private static void release(Msg m, String what) {
        check(m.buf, m.id, what);
        m.buf.release();
    }

    private void step(PagePoolByteBufAllocator alloc, SplittableRandom rnd, int self, List<BlockingQueue<Msg>> inbox,
            List<Msg> held, AtomicInteger outstanding, int count) {
        for (int k = 0; k < count; k++) {
            Msg in;
            while ((in = inbox.get(self).poll()) != null) {
                if (rnd.nextInt(4) == 0) {
                    in = resizedAndRefilled(in, rnd); // grow it here
                }
                if (rnd.nextBoolean()) {
                    held.add(in);
                } else {
                    release(in, "received");
                    outstanding.decrementAndGet();
                }
            }
            Msg out = newFilled(alloc, rnd);
            outstanding.incrementAndGet();
            int to = rnd.nextInt(inbox.size());
            if (to == self) {
                held.add(out);
            } else {
                inbox.get(to).add(out);
            }
            if (held.size() > 24) {
                int i = rnd.nextInt(held.size());
                Msg h = held.remove(i);
                release(h, "held");
                outstanding.decrementAndGet();
            }
            if (rnd.nextInt(64) == 0) {
                alloc.trimCurrentThreadCache();
            }
        }
    }

    // ------------------------------------------------------------------ 3: short-lived plain threads

    /**
     * Waves of short-lived plain threads allocate, write, and pass buffers to threads of the next wave,
     * which check and release them (after their allocating thread ended, and its arena was reaped by a
     * new arena's creation or the reaper).
     */
    @Test
    void shortLivedThreadsReleaseEachOthersBuffersWhileArenasAreReaped() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(4L * MIB).build();
        BlockingQueue<Msg> pass = new LinkedBlockingQueue<>();
        AtomicInteger outstanding = new AtomicInteger();
        for (int wave = 0; wave < 40 && failure.get() == null; wave++) {
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 6; t++) {
                int seed = wave * 100 + t;
                threads.add(start("short-" + wave + "-" + t, () -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    for (int k = 0; k < 150; k++) {
                        Msg in = pass.poll();
                        if (in != null) {
                            if (rnd.nextInt(3) == 0) {
                                in = resizedAndRefilled(in, rnd);
                            }
                            if (rnd.nextBoolean()) {
                                ByteBuf v = in.buf.retainedSlice(0, Math.min(16, in.buf.capacity()));
                                pass.add(in);
                                v.release();
                            } else {
                                release(in, "short received");
                                outstanding.decrementAndGet();
                            }
                        }
                        Msg own = newFilled(alloc, rnd);
                        outstanding.incrementAndGet();
                        if (rnd.nextBoolean()) {
                            pass.add(own);
                        } else {
                            check(own.buf, own.id, "own");
                            own.buf.release();
                            outstanding.decrementAndGet();
                        }
                    }
                }));
            }
            join(threads);
        }
        Msg m;
        while ((m = pass.poll()) != null) {
            release(m, "leftover");
            outstanding.decrementAndGet();
        }
        assertEquals(0, outstanding.get());
        awaitNoArenas(alloc);
        assertAllBack(alloc);
    }

    // ------------------------------------------------------------------ 4: event loops shut down under releases

    /**
     * Event loops allocate buffers (and recycled views of them) that plain threads release while the
     * group shuts down (each loop closes its arena on its own thread as it ends). Afterwards nothing
     * is in use and the allocator closes.
     */
    @Test
    void eventLoopsShutDownWhileTheirBuffersAreReleasedElsewhere() throws Exception {
        for (int round = 0; round < 15 && failure.get() == null; round++) {
            PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(8L * MIB).build();
            DefaultEventLoopGroup group = new DefaultEventLoopGroup(3);
            BlockingQueue<ByteBuf> out = new ArrayBlockingQueue<>(100_000);
            CountDownLatch filled = new CountDownLatch(3);
            for (int l = 0; l < 3; l++) {
                int seed = round * 10 + l;
                EventLoop loop = group.next();
                loop.execute(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    try {
                        for (int k = 0; k < 400; k++) {
                            ByteBuf buf = alloc.directBuffer(SIZES[rnd.nextInt(SIZES.length)]);
                            fill(buf, 7);
                            if (rnd.nextBoolean()) {
                                out.add(buf.retainedSlice(0, Math.min(8, buf.capacity())));
                            }
                            if (rnd.nextInt(4) == 0) {
                                buf.release(); // parked, on the loop
                            } else {
                                out.add(buf);
                            }
                        }
                    } catch (Throwable t) {
                        record(t);
                    }
                    filled.countDown();
                });
            }
            assertTrue(filled.await(10, TimeUnit.SECONDS));
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                threads.add(start("releaser-" + t, () -> {
                    ByteBuf b;
                    while ((b = out.poll()) != null) {
                        b.release();
                    }
                }));
            }
            group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            join(threads);
            assertTrue(group.terminationFuture().awaitUninterruptibly(10, TimeUnit.SECONDS));
            ByteBuf b;
            while ((b = out.poll()) != null) {
                b.release();
            }
            // no waiting for the reaper: the loops closed their arenas as they ended
            assertAllBack(alloc);
        }
    }

    // ------------------------------------------------------------------ 5: pages stranded on a releasing thread

    /**
     * A plain thread allocates 2 MiB of page buffers on a 4 MiB allocator and hands them to a worker
     * thread that only releases (it never allocates, so it has no arena), then ends; its arena is
     * reaped. The worker releases everything and waits. Nothing is in use, and every other thread
     * has ended or is idle: a request for the whole capacity should be served.
     */
    @Test
    void pagesReleasedByAThreadWithoutAnArenaAreReachableAfterTheirArenaClosed() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(4L * MIB)
                .fallbackPolicy(FallbackPolicy.FAIL).build();
        BlockingQueue<ByteBuf> handOff = new LinkedBlockingQueue<>();
        CountDownLatch released = new CountDownLatch(1);
        CountDownLatch finish = new CountDownLatch(1);
        Thread producer = start("page-producer", () -> {
            for (int i = 0; i < 512; i++) {
                ByteBuf b = alloc.directBuffer(4096);
                fill(b, i);
                handOff.add(b);
            }
        });
        producer.join(10_000);
        ArenaLifecycleEdgesTest.awaitArenaReaped(alloc, producer.getName());
        Thread worker = start("release-only-worker", () -> {
            ByteBuf b;
            while ((b = handOff.poll()) != null) {
                b.release();
            }
            released.countDown();
            try {
                finish.await(); // an idle worker thread, as an executor's
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        try {
            assertTrue(released.await(10, TimeUnit.SECONDS));
            assertEquals(0, alloc.metric().usedDirectMemory(), "nothing is in use");
            ByteBuf whole = null;
            PagePoolOutOfMemoryError last = null;
            // The first request that runs out only asks the arenas to give back; give the later ones a chance.
            for (int attempt = 0; attempt < 5 && whole == null; attempt++) {
                try {
                    whole = alloc.directBuffer(4 * MIB);
                } catch (PagePoolOutOfMemoryError e) {
                    last = e;
                    Thread.sleep(50);
                }
            }
            if (whole == null) {
                throw new AssertionError("nothing in use, yet 5 requests for the whole capacity failed: "
                        + last.getMessage() + "; " + alloc.pageAllocator().stats());
            }
            whole.release();
        } finally {
            finish.countDown();
            worker.join(10_000);
            alloc.close();
        }
        assertNull(failure.get(), () -> "failure: " + failure.get());
    }
}
