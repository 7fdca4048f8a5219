package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Counters read by another thread while the owner runs. They may be a few events stale, but never
 * show a state that never existed: a negative page count, or fewer pages in flight than are held
 * all along. Each reader runs for up to two seconds and stops at the first bad value (the reads
 * were wrong within that time on every run before their fixes).
 */
class StatsWhileRunningTest {

    private static final long RUN_NANOS = 2_000_000_000L;

    /** Runs {@code worker} on a thread until {@code probe} reports a bad value or time runs out; returns that value's description or null. */
    private static String race(Runnable workerStep, java.util.function.Supplier<String> probe) throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch started = new CountDownLatch(1);
        Thread worker = new Thread(() -> {
            started.countDown();
            try {
                while (!stop.get()) {
                    workerStep.run();
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "metrics-review-worker");
        worker.start();
        started.await();
        String bad = null;
        long deadline = System.nanoTime() + RUN_NANOS;
        try {
            while (bad == null && System.nanoTime() < deadline && failure.get() == null) {
                bad = probe.get();
            }
        } finally {
            stop.set(true);
            worker.join();
        }
        if (failure.get() != null) {
            throw new AssertionError("worker failed", failure.get());
        }
        return bad;
    }

    private static PagePoolStats statsOnceBuilt(AtomicReference<PagePool> pool, CountDownLatch built) {
        try {
            built.await();
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
        return pool.get().stats();
    }

    /** A batch a per-CPU set drains into the zone must not be counted both in the set and on the buddy lists. */
    @Test
    void allocatedPagesNeverNegativeWhileAThreadDrainsItsCpuCache() throws Exception {
        try (PageAllocator pages = PageAllocator.builder().capacity(1024L * 4096).pcpBatch(32).pcpHigh(32).build()) {
            int[] held = new int[256];
            String bad = race(() -> {
                for (int i = 0; i < held.length; i++) {
                    held[i] = pages.allocPages(0);
                }
                for (int i = 0; i < held.length; i++) {
                    pages.freePages(held[i], 0);
                }
            }, () -> {
                PageAllocatorStats s = pages.stats();
                return s.allocatedPages() < 0 ? s.toString() : null;
            });
            assertEquals(null, bad, "allocatedPages() went negative while another thread freed through its per-CPU set");
            pages.drainCpuCaches();
        }
    }

    /** Allocate/recycle pairs the owner completes during a read must not count as returned but not handed out. */
    @Test
    void poolInflightNeverNegativeWhileOwnerRecyclesDirectly() throws Exception {
        try (PageAllocator pages = PageAllocator.builder().capacity(1024L * 4096).build()) {
            AtomicReference<PagePool> poolRef = new AtomicReference<>();
            CountDownLatch built = new CountDownLatch(1);
            int[] held = new int[8];
            String bad = race(() -> {
                PagePool pool = poolRef.get();
                if (pool == null) {
                    pool = PagePool.builder(pages).build();
                    poolRef.set(pool);
                    built.countDown();
                }
                for (int i = 0; i < held.length; i++) {
                    held[i] = pool.allocPage();
                }
                for (int i = 0; i < held.length; i++) {
                    pool.putPage(held[i], 0, true);
                }
            }, () -> {
                PagePoolStats s = statsOnceBuilt(poolRef, built);
                return s.inflight() < 0 ? s.toString() : null;
            });
            poolRef.get().close();
            assertEquals(null, bad, "inflight() went negative while the owner allocated and recycled");
        }
    }

    /**
     * The owner holds 100 pages all along and cycles 64 more through the recycle ring: pages moving
     * from the ring to the cache during a read must not count twice as returned.
     */
    @Test
    void poolInflightNotUnderstatedByARingRefill() throws Exception {
        try (PageAllocator pages = PageAllocator.builder().capacity(1024L * 4096).build()) {
            AtomicReference<PagePool> poolRef = new AtomicReference<>();
            CountDownLatch built = new CountDownLatch(1);
            int kept = 100;
            int[] held = new int[64];
            int[] keptPages = new int[kept];
            String bad = race(() -> {
                PagePool pool = poolRef.get();
                if (pool == null) {
                    pool = PagePool.builder(pages).build();
                    for (int i = 0; i < kept; i++) {
                        keptPages[i] = pool.allocPage(); // held for the whole test: inflight never below 100
                    }
                    poolRef.set(pool);
                    built.countDown();
                }
                for (int i = 0; i < held.length; i++) {
                    held[i] = pool.allocPage();
                }
                for (int i = 0; i < held.length; i++) {
                    pool.putPage(held[i], 0, false); // through the recycle ring; the next allocations refill from it
                }
            }, () -> {
                PagePoolStats s = statsOnceBuilt(poolRef, built);
                return s.inflight() < kept ? s.toString() : null;
            });
            PagePool pool = poolRef.get();
            for (int pfn : keptPages) {
                pool.putPage(pfn, 0, false);
            }
            pool.close();
            assertEquals(null, bad, "inflight() fell far below the " + kept + " pages held all along");
        }
    }
}
