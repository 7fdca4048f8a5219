package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.PAGE;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.assertAllBackAndClose;
import static io.pagepool.core.PagePoolTestSupport.fill;
import static io.pagepool.core.PagePoolTestSupport.handedOut;
import static io.pagepool.core.PagePoolTestSupport.intact;
import static io.pagepool.core.PagePoolTestSupport.returned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.pagepool.core.PagePoolTestSupport.SlotClaims;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Cross-thread returns under stress, bounded in time, then exact accounting. The owner thread allocates
 * pages and fragments and hands most of them through queues to other threads that return them (with
 * {@code allowDirect} true and false); it returns the rest itself. Every range handed out is claimed in a
 * slot bitmap (nothing may be handed out again while in use) and stamped with a byte pattern that the
 * returner checks (nothing may be overwritten while in use). Afterwards the pool's and allocator's books must
 * balance exactly.
 */
class PagePoolConcurrencyTest {

    private static final Duration STRESS = Duration.ofMillis(1500);

    /** A page or fragment in flight. */
    private static final class Item {
        static final Item POISON = new Item(false, -1, -1, 0, 0, 0);
        final boolean frag;
        final long handle;
        final int pfn;
        final int offset;
        final int size;
        final int seed;

        Item(boolean frag, long handle, int pfn, int offset, int size, int seed) {
            this.frag = frag;
            this.handle = handle;
            this.pfn = pfn;
            this.offset = offset;
            this.size = size;
            this.seed = seed;
        }

        @Override
        public String toString() {
            return (frag ? "fragment" : "page") + " pfn " + pfn + " [" + offset + ", +" + size + ")";
        }
    }

    /** Checks an item's bytes, releases its claim and returns it to the pool. */
    private static void giveBack(PagePool pool, SlotClaims claims, Item it, boolean allowDirect, int syncLength,
            List<String> failures) {
        if (!intact(pool.allocator(), it.pfn, it.offset, it.size, it.seed)) {
            failures.add(it + " was overwritten while in use (handed out twice?)");
        }
        claims.release(it.pfn, it.offset, it.size);
        if (it.frag) {
            pool.putFrag(it.handle, allowDirect);
        } else {
            pool.putPage(it.pfn, syncLength, allowDirect);
        }
    }

    @Test
    void pagesAndFragmentsReturnedFromOtherThreadsAreNeverHandedOutTwiceAndAllAccountedFor() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(4096);
        PagePoolTestSupport.CountingDmaMapper mapper = new PagePoolTestSupport.CountingDmaMapper(4096, PAGE);
        PagePool pool = PagePool.builder(allocator).ringSize(256).dmaMapper(mapper).build();
        SlotClaims claims = new SlotClaims(allocator.totalPages());
        List<String> failures = new CopyOnWriteArrayList<>();
        AtomicLong returnedByOthers = new AtomicLong();
        int returners = 3;
        List<BlockingQueue<Item>> queues = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < returners; t++) {
            BlockingQueue<Item> q = new ArrayBlockingQueue<>(256);
            queues.add(q);
            int id = t;
            Thread th = new Thread(() -> {
                Random rnd = new Random(100 + id);
                try {
                    for (;;) {
                        Item it = q.take();
                        if (it == Item.POISON) {
                            return;
                        }
                        try {
                            giveBack(pool, claims, it, rnd.nextBoolean(), rnd.nextInt(3) - 1, failures);
                            returnedByOthers.incrementAndGet();
                        } catch (Throwable e) {
                            failures.add("returner " + id + " failed to return " + it + ": " + e);
                        }
                    }
                } catch (InterruptedException e) {
                    failures.add("returner " + id + " interrupted");
                }
            }, "returner-" + t);
            th.start();
            threads.add(th);
        }

        Random rnd = new Random(7);
        int[] sizes = {64, 100, 256, 512, 1000, 1500, 2048, 3000, 4096};
        ArrayDeque<Item> mine = new ArrayDeque<>();
        long pages = 0;
        long frags = 0;
        int seed = 0;
        long deadline = System.nanoTime() + STRESS.toNanos();
        try {
            while (System.nanoTime() - deadline < 0 && failures.isEmpty()) {
                Item it;
                if (rnd.nextInt(3) == 0) {
                    int pfn = pool.allocPage();
                    assertNotEquals(PageAllocator.NO_PAGE, pfn, "16 MiB never runs out here");
                    it = new Item(false, -1, pfn, 0, PAGE, ++seed);
                    pages++;
                } else {
                    int size = sizes[rnd.nextInt(sizes.length)];
                    long h = pool.allocFrag(size);
                    assertNotEquals(PagePool.NO_FRAG, h);
                    it = new Item(true, h, PagePool.fragPfn(h), PagePool.fragOffset(h), size, ++seed);
                    frags++;
                }
                if (!claims.claim(it.pfn, it.offset, it.size)) {
                    failures.add(it + " handed out while still in use");
                    break;
                }
                fill(allocator, it.pfn, it.offset, it.size, it.seed);
                if (rnd.nextInt(4) == 0) {
                    mine.add(it); // the owner returns a quarter itself, a little later
                    if (mine.size() > 48) {
                        Item back = mine.poll();
                        giveBack(pool, claims, back, rnd.nextInt(4) != 0, -1, failures);
                    }
                } else if (!queues.get(rnd.nextInt(returners)).offer(it, 10, TimeUnit.SECONDS)) {
                    failures.add("a returner is stuck");
                    break;
                }
            }
            while (!mine.isEmpty()) {
                giveBack(pool, claims, mine.poll(), true, -1, failures);
            }
        } finally {
            for (BlockingQueue<Item> q : queues) {
                q.put(Item.POISON);
            }
            for (Thread th : threads) {
                th.join(TimeUnit.SECONDS.toMillis(10));
                assertFalse(th.isAlive(), th.getName() + " did not finish");
            }
        }
        if (!failures.isEmpty()) {
            fail(failures.size() + " failures, first: " + failures.subList(0, Math.min(5, failures.size())));
        }

        PagePoolStats s = pool.stats();
        assertEquals(frags, s.fragAllocs(), s::toString);
        assertTrue(pages > 1000 && frags > 1000 && returnedByOthers.get() > 1000,
                "the run must do real work: " + pages + " pages, " + frags + " fragments, " + s);
        assertTrue(s.recycleRing() > 0 && s.allocRefill() > 0 && s.recycleCached() > 0, s::toString);
        // everything came back except the owner's current fragment page, which is only retired at close
        assertEquals(1, s.inflight(), s::toString);
        assertEquals(handedOut(s) - 1, returned(s), s::toString);
        assertAccounting(pool);
        mapper.assertNoViolations();

        pool.close();
        assertEquals(0, pool.inflight());
        assertEquals(0, mapper.mappedNow(), "every page that left was unmapped");
        mapper.assertNoViolations();
        assertAllBackAndClose(pool);
    }

    /**
     * close() on the owner races putPage/putFrag from two other threads, on a fresh pool each iteration. The
     * DmaMapper spins a little in syncForDevice, which a return does between its closed check and its ring
     * offer: that is the window in which close can drain the ring before the offer lands, which the return
     * must notice (and drain again). Without that re-check this test strands pages within a few iterations.
     */
    @Test
    void closeRacingPutPageFromOtherThreadsStrandsNothing() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(2048);
        PagePoolTestSupport.CountingDmaMapper mapper = new PagePoolTestSupport.CountingDmaMapper(2048, PAGE);
        mapper.syncSpins = 400;
        int workers = 2;
        CyclicBarrier start = new CyclicBarrier(workers + 1);
        CyclicBarrier end = new CyclicBarrier(workers + 1);
        List<String> failures = new CopyOnWriteArrayList<>();
        // per iteration: the pool and what each worker returns (set by the owner before the start barrier)
        PagePool[] current = new PagePool[1];
        List<List<Item>> shares = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            shares.add(new ArrayList<>());
        }
        boolean[] stop = new boolean[1];
        List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            int id = w;
            Thread th = new Thread(() -> {
                Random rnd = new Random(id);
                try {
                    for (;;) {
                        start.await(10, TimeUnit.SECONDS);
                        if (stop[0]) {
                            return;
                        }
                        PagePool pool = current[0];
                        for (Item it : shares.get(id)) {
                            try {
                                if (it.frag) {
                                    pool.putFrag(it.handle, rnd.nextBoolean());
                                } else {
                                    pool.putPage(it.pfn, -1, rnd.nextBoolean());
                                }
                            } catch (Throwable e) {
                                failures.add("worker " + id + " returning " + it + ": " + e);
                            }
                        }
                        end.await(10, TimeUnit.SECONDS);
                    }
                } catch (Exception e) {
                    failures.add("worker " + id + ": " + e);
                }
            }, "close-racer-" + w);
            th.start();
            threads.add(th);
        }

        Random rnd = new Random(1);
        int iterations = 0;
        long deadline = System.nanoTime() + STRESS.toNanos();
        try {
            while ((System.nanoTime() - deadline < 0 || iterations < 20) && iterations < 5000 && failures.isEmpty()) {
                PagePool pool = PagePool.builder(allocator).cacheSize(32).refillBatch(16).ringSize(16)
                        .dmaMapper(mapper).build();
                for (List<Item> share : shares) {
                    share.clear();
                }
                int n = 8 + rnd.nextInt(40);
                for (int i = 0; i < n; i++) {
                    Item it;
                    if (rnd.nextInt(4) == 0) {
                        long h = pool.allocFrag(1 + rnd.nextInt(PAGE));
                        it = new Item(true, h, PagePool.fragPfn(h), 0, 0, 0);
                    } else {
                        it = new Item(false, -1, pool.allocPage(), 0, 0, 0);
                    }
                    shares.get(rnd.nextInt(workers)).add(it);
                }
                current[0] = pool;
                start.await(10, TimeUnit.SECONDS); // publishes the pool and the shares
                if (rnd.nextBoolean()) {
                    Thread.onSpinWait();
                }
                pool.close(); // races the workers' returns
                end.await(10, TimeUnit.SECONDS);

                PagePoolStats s = pool.stats();
                if (s.ringPages() != 0 || s.pagesHeld() != 0 || s.inflight() != 0
                        || allocator.stats().allocatedPages() != 0 || mapper.mappedNow() != 0) {
                    failures.add("iteration " + iterations + ": pages stranded after close: " + s + " / "
                            + allocator.stats() + " / still mapped: " + mapper.mappedNow());
                }
                iterations++;
            }
        } finally {
            stop[0] = true;
            start.await(10, TimeUnit.SECONDS);
            for (Thread th : threads) {
                th.join(TimeUnit.SECONDS.toMillis(10));
            }
        }
        if (!failures.isEmpty()) {
            fail(failures.size() + " failures, first: " + failures.subList(0, Math.min(5, failures.size())));
        }
        assertTrue(iterations >= 20, "iterations: " + iterations);
        mapper.assertNoViolations();
        allocator.checkConsistency();
        allocator.close();
    }
}
