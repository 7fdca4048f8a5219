package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;
import io.netty.util.concurrent.FastThreadLocalThread;
import io.pagepool.core.PageAllocator;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * PagePoolByteBufAllocator's metrics against what they document, read while other threads run and
 * across arena retirement, trims and resizes. The racing readers run up to two seconds each and stop
 * at the first bad value (each read went wrong within that time before its fix).
 */
@Timeout(60)
class MetricsAccountingTest {

    private static final long RUN_NANOS = 2_000_000_000L;

    /**
     * Runs {@code step} in a loop on a plain thread while {@code probes} threads (the caller among them)
     * call {@code probe} until one describes a bad reading (returned) or time runs out (null). More
     * probing threads than cores get the probes preempted at arbitrary points, as a metrics thread on a
     * busy server is.
     */
    private static String race(Runnable step, Supplier<String> probe, int probes) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicReference<String> bad = new AtomicReference<>();
        CountDownLatch warm = new CountDownLatch(1);
        Thread worker = new Thread(() -> {
            try {
                step.run();
                warm.countDown();
                while (!stop.get()) {
                    step.run();
                }
            } catch (Throwable t) {
                failure.set(t);
                warm.countDown();
            }
        }, "metrics-test-worker");
        worker.start();
        warm.await();
        long deadline = System.nanoTime() + RUN_NANOS;
        Runnable probing = () -> {
            while (bad.get() == null && failure.get() == null && System.nanoTime() < deadline) {
                String b = probe.get();
                if (b != null) {
                    bad.compareAndSet(null, b);
                }
            }
        };
        List<Thread> others = new ArrayList<>();
        for (int i = 1; i < probes; i++) {
            Thread t = new Thread(probing, "metrics-test-probe-" + i);
            t.start();
            others.add(t);
        }
        try {
            probing.run();
            for (Thread t : others) {
                t.join();
            }
        } finally {
            stop.set(true);
            worker.join();
        }
        if (failure.get() != null) {
            throw new AssertionError("worker failed", failure.get());
        }
        return bad.get();
    }

    /**
     * usedDirectMemory() is never negative while another thread frees through its per-CPU set (the
     * small per-CPU batch only makes drains frequent).
     */
    @Test
    void usedDirectMemoryNeverNegativeWhileAnotherThreadAllocates() throws Exception {
        try (PageAllocator pages = PageAllocator.builder().capacity(4L << 20).pcpBatch(32).pcpHigh(32).build()) {
            PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).blockCacheSize(0)
                    .build();
            ByteBuf[] held = new ByteBuf[32];
            String bad = race(() -> {
                for (int i = 0; i < held.length; i++) {
                    held[i] = alloc.directBuffer(8192);
                }
                for (ByteBuf b : held) {
                    b.release();
                }
            }, () -> {
                long used = alloc.metric().usedDirectMemory();
                return used < 0 ? "usedDirectMemory=" + used + ", " + pages.stats() : null;
            }, 1);
            alloc.close();
            pages.drainCpuCaches();
            assertNull(bad, "usedDirectMemory() went negative while another thread allocated");
        }
    }

    /**
     * inflightPages() never falls below the 16 whole-page buffers the worker holds all along, read by
     * more threads than cores (so reads are preempted midway, as a metrics thread on a busy server is).
     */
    @Test
    void inflightPagesNeverBelowThePagesHeldWhileTheOwnerRecycles() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).blockCacheSize(0).build();
        int keep = 16;
        List<ByteBuf> kept = new ArrayList<>();
        ByteBuf[] cycled = new ByteBuf[32];
        String bad = race(() -> {
            if (kept.isEmpty()) {
                for (int i = 0; i < keep; i++) {
                    kept.add(alloc.directBuffer(4096)); // whole pool pages, held until the end
                }
            }
            for (int i = 0; i < cycled.length; i++) {
                cycled[i] = alloc.directBuffer(4096);
            }
            for (ByteBuf b : cycled) {
                b.release(); // blockCacheSize 0: all but the hot slot's go straight back to the pool's cache
            }
        }, () -> {
            long inflight = alloc.metric().inflightPages();
            return inflight < keep ? "inflightPages=" + inflight + " with " + keep + " page buffers held: "
                    + alloc.metric().arenas() : null;
        }, 4);
        for (ByteBuf b : kept) {
            b.release(); // on another thread than the (ended) owner: fine
        }
        alloc.close();
        assertNull(bad, "inflightPages() fell below the pages held by live buffers");
    }

    /**
     * inflightPages() keeps counting the pages of an arena whose thread ended while its buffers are
     * still in use elsewhere, until they come back.
     */
    @Test
    void inflightPagesKeepsCountingPagesOfAnEndedThreadsArenaStillHeldByBuffers() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        List<ByteBuf> handedOver = new ArrayList<>();
        Thread producer = new Thread(() -> {
            for (int i = 0; i < 8; i++) {
                handedOver.add(alloc.directBuffer(4096)); // 8 whole pool pages, given to the main thread
            }
        }, "metrics-test-producer");
        producer.start();
        producer.join();
        long before = alloc.metric().inflightPages();
        // The reaper closes the ended thread's arena within about a second; so does any new arena.
        Thread other = new Thread(() -> alloc.directBuffer(64).release(), "metrics-test-other");
        other.start();
        other.join();
        long after = alloc.metric().inflightPages();
        long used = alloc.metric().usedDirectMemory();
        try {
            assertEquals(8, before, "inflightPages() while the producer's arena was listed");
            assertTrue(after >= 8, "inflightPages()=" + after + " while 8 whole-page buffers of the ended producer"
                    + " thread are still in use (usedDirectMemory()=" + used + " still counts them); arenas="
                    + alloc.metric().arenas());
        } finally {
            for (ByteBuf b : handedOver) {
                b.release();
            }
            // What stays is the second thread's fragment page (its 64 B buffer's), in its own arena.
            assertEquals(1, alloc.metric().inflightPages(), () -> "every page of the ended thread's arena is back: "
                    + alloc.metric());
            alloc.close();
        }
    }

    /**
     * With every buffer released on the only thread and that thread trimmed, what stays is the page
     * the pool carves fragments from (documented in tuning.md and trimCurrentThreadCache()).
     */
    @Test
    void trimCurrentThreadCacheLeavesOnlyTheFragmentPage() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        try {
            List<ByteBuf> bufs = new ArrayList<>();
            for (int size : new int[] {64, 100, 2048, 4096, 8192, 32768}) {
                bufs.add(alloc.directBuffer(size));
            }
            for (ByteBuf b : bufs) {
                b.release();
            }
            assertTrue(alloc.trimCurrentThreadCache());
            PagePoolByteBufAllocatorMetric m = alloc.metric();
            assertEquals(4096, m.usedDirectMemory(), () -> "after trimCurrentThreadCache() with no buffer out: " + m
                    + ", inflightPages=" + m.inflightPages());
            assertEquals(1, m.inflightPages(), () -> "the fragment page only: " + m);
        } finally {
            alloc.close();
        }
    }

    /** cacheHits() counts buffers served, so resizes do not push it past buffersAllocated(). */
    @Test
    void cacheHitsNeverExceedBuffersAllocated() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        try {
            ByteBuf buf = alloc.directBuffer(64);
            for (int i = 0; i < 10; i++) {
                buf.capacity(1024); // served from the 1024-byte fragment parked by the previous move
                buf.capacity(64);
            }
            buf.release();
            PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().get(0);
            assertTrue(arena.cacheHits() <= arena.buffersAllocated(), () -> "one buffer allocated, resized 20 times: "
                    + arena);
        } finally {
            alloc.close();
        }
    }

    /** close() on a thread that owns an arena, with one of its buffers still out, counts that buffer's page once. */
    @Test
    void closeOnAThreadOwningAnArenaCountsItsOutstandingPagesOnce() {
        try (PageAllocator pages = PageAllocator.builder().capacity(16L << 20).build()) {
            PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
            ByteBuf buf = alloc.directBuffer(4096); // one whole pool page, on this thread's arena
            PagePoolByteBufAllocatorMetric metric = alloc.metric();
            assertEquals(1, metric.inflightPages(), "before close");
            alloc.close();
            long after = metric.inflightPages();
            buf.release();
            long released = metric.inflightPages();
            pages.drainCpuCaches();
            assertEquals(1, after, "inflightPages() after close() with the one-page buffer still out");
            assertEquals(0, released, "inflightPages() once the buffer is back");
        }
    }

    /**
     * An event loop's thread ending retires its arena (FastThreadLocal.removeAll, then onRemoval):
     * inflightPages() keeps counting the pages of the buffers it handed over at every moment of that.
     * A probe thread watches while short-lived FastThreadLocalThreads each hand one whole-page buffer
     * over and end.
     */
    @Test
    void inflightPagesNeverBelowThePagesOfBuffersHandedOverByEndingEventLoopThreads() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();
        List<ByteBuf> handedOver = Collections.synchronizedList(new ArrayList<>());
        AtomicLong held = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<String> bad = new AtomicReference<>();
        Thread probe = new Thread(() -> {
            while (!stop.get() && bad.get() == null) {
                long before = held.get();
                long inflight = alloc.metric().inflightPages();
                if (inflight < before) {
                    bad.set("inflightPages()=" + inflight + " with at least " + before + " whole-page buffers held");
                }
            }
        }, "metrics-test-probe");
        probe.start();
        long deadline = System.nanoTime() + 2_000_000_000L;
        try {
            while (bad.get() == null && System.nanoTime() < deadline && held.get() < 3000) {
                Thread t = new FastThreadLocalThread(() -> {
                    try {
                        handedOver.add(alloc.directBuffer(4096));
                        held.incrementAndGet();
                    } finally {
                        FastThreadLocal.removeAll(); // as Netty's event loop threads do
                    }
                }, "metrics-test-loop");
                t.start();
                t.join();
            }
        } finally {
            stop.set(true);
            probe.join();
            for (ByteBuf b : handedOver) {
                b.release();
            }
            alloc.close();
        }
        assertEquals(null, bad.get(), "after " + held.get() + " ending threads");
    }
}
