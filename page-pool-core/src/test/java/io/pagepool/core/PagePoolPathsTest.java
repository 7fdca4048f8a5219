package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.PAGE;
import static io.pagepool.core.PagePoolTestSupport.allZero;
import static io.pagepool.core.PagePoolTestSupport.allocator;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.fill;
import static io.pagepool.core.PagePoolTestSupport.handedOut;
import static io.pagepool.core.PagePoolTestSupport.intact;
import static io.pagepool.core.PagePoolTestSupport.onAnotherThread;
import static io.pagepool.core.PagePoolTestSupport.returned;
import static io.pagepool.core.PagePoolTestSupport.uncachedAllocator;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every allocation and recycle path of {@link PagePool}, driven one at a time on the owner thread, with
 * every counter checked exactly. Each test ends with the accounting identities of
 * {@link PagePoolTestSupport#assertAccounting}: the pool's held pages are the allocator's allocated pages,
 * and they are in the cache, the ring or in flight.
 */
class PagePoolPathsTest {

    private PageAllocator allocator;

    @BeforeEach
    void newAllocator() {
        allocator = allocator(1024); // 4 MiB, one max-order region
    }

    @AfterEach
    void allocatorClosesCleanly() {
        if (!allocator.isClosed()) {
            allocator.checkConsistency();
        }
    }

    /** Expected counters, compared field by field so a failure names the counter. */
    private static final class Expect {
        long fast, slow, slowHigh, empty, refill, failed, cached, cacheFull, ring, ringFull, released;
        long entered, releasedPages, inflight;
        int cachedPages, ringPages;

        void check(PagePool pool) {
            PagePoolStats s = pool.stats();
            String all = s.toString();
            assertEquals(fast, s.allocFast(), () -> "allocFast: " + all);
            assertEquals(slow, s.allocSlow(), () -> "allocSlow: " + all);
            assertEquals(slowHigh, s.allocSlowHighOrder(), () -> "allocSlowHighOrder: " + all);
            assertEquals(empty, s.allocEmpty(), () -> "allocEmpty: " + all);
            assertEquals(refill, s.allocRefill(), () -> "allocRefill: " + all);
            assertEquals(0, s.allocWaive(), () -> "allocWaive: " + all);
            assertEquals(failed, s.allocFailed(), () -> "allocFailed: " + all);
            assertEquals(cached, s.recycleCached(), () -> "recycleCached: " + all);
            assertEquals(cacheFull, s.recycleCacheFull(), () -> "recycleCacheFull: " + all);
            assertEquals(ring, s.recycleRing(), () -> "recycleRing: " + all);
            assertEquals(ringFull, s.recycleRingFull(), () -> "recycleRingFull: " + all);
            assertEquals(released, s.recycleReleasedRefcnt(), () -> "recycleReleasedRefcnt: " + all);
            assertEquals(entered, s.pagesEntered(), () -> "pagesEntered: " + all);
            assertEquals(releasedPages, s.pagesReleased(), () -> "pagesReleased: " + all);
            assertEquals(inflight, s.inflight(), () -> "inflight: " + all);
            assertEquals(inflight, pool.inflight(), () -> "pool.inflight(): " + all);
            assertEquals(cachedPages, s.cachedPages(), () -> "cachedPages: " + all);
            assertEquals(ringPages, s.ringPages(), () -> "ringPages: " + all);
        }
    }

    @Test
    void firstAllocTakesTheSlowPathAndBulkAllocatesOneRefillBatch() {
        PagePool pool = PagePool.builder(allocator).build();
        Expect e = new Expect();
        e.check(pool);
        assertEquals(0, allocator.stats().allocatedPages());

        int pfn = pool.allocPage();

        assertNotEquals(PageAllocator.NO_PAGE, pfn);
        e.slow = 1;
        e.empty = 1; // the ring was looked at first, and was empty
        e.entered = 64;
        e.cachedPages = 63;
        e.inflight = 1;
        e.check(pool);
        assertEquals(64, allocator.stats().allocatedPages());
        assertAccounting(pool);

        // the other 63 come from the cache, then the next miss bulk-allocates again
        Set<Integer> pfns = new HashSet<>();
        pfns.add(pfn);
        for (int i = 0; i < 63; i++) {
            assertTrue(pfns.add(pool.allocPage()), "a page handed out twice");
        }
        e.fast = 63;
        e.cachedPages = 0;
        e.inflight = 64;
        e.check(pool);
        assertTrue(pfns.add(pool.allocPage()));
        e.slow = 2;
        e.empty = 2;
        e.entered = 128;
        e.cachedPages = 63;
        e.inflight = 65;
        e.check(pool);
        assertAccounting(pool);
    }

    @Test
    void allocAfterRecycleDirectTakesTheFastPathAndReusesTheSamePage() {
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        pool.recycleDirect(pfn);

        Expect e = new Expect();
        e.slow = 1;
        e.empty = 1;
        e.entered = 64;
        e.cached = 1;
        e.cachedPages = 64;
        e.check(pool);
        assertAccounting(pool);

        assertEquals(pfn, pool.allocPage(), "the cache is LIFO: the page just recycled goes out first");
        e.fast = 1;
        e.cachedPages = 63;
        e.inflight = 1;
        e.check(pool);
        assertAccounting(pool);
    }

    @Test
    void emptyCacheRefillsFromTheRingBeforeTheAllocator() {
        PagePool pool = PagePool.builder(allocator).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            out.add(pool.allocPage()); // 1 slow + 63 fast: the cache is now empty
        }
        for (int i = 0; i < 10; i++) {
            pool.putPage(out.get(i), -1, false); // owner thread, but not direct: through the ring
        }
        Expect e = new Expect();
        e.slow = 1;
        e.empty = 1;
        e.fast = 63;
        e.entered = 64;
        e.ring = 10;
        e.ringPages = 10;
        e.inflight = 54;
        e.check(pool);
        assertAccounting(pool);

        int pfn = pool.allocPage();

        assertTrue(out.subList(0, 10).contains(pfn), "the refill must hand out a page from the ring");
        e.refill = 1;
        e.ringPages = 0;
        e.cachedPages = 9; // the other nine moved into the cache in the same refill
        e.inflight = 55;
        e.check(pool);
        assertEquals(64, allocator.stats().allocatedPages(), "a ring refill must not touch the allocator");
        assertAccounting(pool);

        for (int i = 0; i < 9; i++) {
            assertTrue(out.subList(0, 10).contains(pool.allocPage()));
        }
        e.fast = 72;
        e.cachedPages = 0;
        e.inflight = 64;
        e.check(pool);
        assertAccounting(pool);
    }

    @Test
    void aRingRefillMovesAtMostRefillBatchPages() {
        PagePool pool = PagePool.builder(allocator).cacheSize(8).refillBatch(4).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            out.add(pool.allocPage()); // slow, 3 fast, slow, 3 fast, slow, 3 fast
        }
        for (int pfn : out) {
            pool.putPage(pfn, -1, false);
        }
        assertEquals(12, pool.stats().ringPages());

        pool.allocPage();

        PagePoolStats s = pool.stats();
        assertEquals(1, s.allocRefill());
        assertEquals(3, s.cachedPages());
        assertEquals(8, s.ringPages());
        assertAccounting(pool);
    }

    @Test
    void orderAboveZeroPoolAllocatesOneBlockPerSlowPath() {
        PagePool pool = PagePool.builder(allocator).order(2).build();
        assertEquals(4 * PAGE, pool.blockBytes());

        int a = pool.allocPage();
        int b = pool.allocPage();

        assertEquals(0, a % 4, "a block's head pfn is aligned to its order");
        assertEquals(0, b % 4);
        assertNotEquals(a, b);
        Expect e = new Expect();
        e.slowHigh = 2;
        e.empty = 2;
        e.entered = 2; // blocks, not pages
        e.inflight = 2;
        e.check(pool);
        assertEquals(8, allocator.stats().allocatedPages());
        assertAccounting(pool);

        pool.recycleDirect(a);
        assertEquals(a, pool.allocPage());
        e.cached = 1;
        e.fast = 1;
        e.check(pool);
        pool.putPage(b, -1, false);
        pool.putPage(a, -1, false);
        int c = pool.allocPage();
        assertTrue(c == a || c == b);
        e.ring = 2;
        e.refill = 1;
        e.cachedPages = 1;
        e.inflight = 1;
        e.check(pool);
        assertAccounting(pool);
        pool.recycleDirect(c);
        pool.close();
        PagePoolTestSupport.assertAllBackAndClose(pool);
    }

    @Test
    void directRecycleIntoAFullCacheCountsCacheFullAndGoesToTheRing() {
        PagePool pool = PagePool.builder(allocator).cacheSize(4).refillBatch(4).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            out.add(pool.allocPage());
        }
        for (int pfn : out) {
            pool.recycleDirect(pfn);
        }
        Expect e = new Expect();
        e.slow = 2;
        e.empty = 2;
        e.fast = 6;
        e.entered = 8;
        e.cached = 4;
        e.cacheFull = 4;
        e.ring = 4;
        e.cachedPages = 4;
        e.ringPages = 4;
        e.check(pool);
        assertAccounting(pool);
    }

    @Test
    void fullRingSendsThePageBackToTheAllocator() {
        PagePool pool = PagePool.builder(allocator).cacheSize(1).refillBatch(1).ringSize(2).build();
        int[] pfns = new int[4];
        for (int i = 0; i < 4; i++) {
            pfns[i] = pool.allocPage();
        }
        assertEquals(4, allocator.stats().allocatedPages());

        for (int pfn : pfns) {
            pool.putPage(pfn, -1, false);
        }

        Expect e = new Expect();
        e.slow = 4;
        e.empty = 4;
        e.entered = 4;
        e.ring = 2;
        e.ringFull = 2;
        e.releasedPages = 2;
        e.ringPages = 2;
        e.check(pool);
        assertEquals(2, allocator.stats().allocatedPages(), "the two pages the ring could not take went back");
        // they really are free in the allocator: freeing them again is a double free there
        for (int i = 2; i < 4; i++) {
            int pfn = pfns[i];
            IllegalStateException ex = assertThrows(IllegalStateException.class, () -> allocator.freePages(pfn, 0));
            assertTrue(ex.getMessage().contains(Integer.toString(pfn)), ex.getMessage());
        }
        assertAccounting(pool);
    }

    @Test
    void pageReturnedAfterCloseGoesBackToTheAllocatorAsReleased() {
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        pool.close();
        Expect e = new Expect();
        e.slow = 1;
        e.empty = 1;
        e.entered = 64;
        e.releasedPages = 63; // the cache went back at close
        e.inflight = 1;
        e.check(pool);
        assertEquals(1, allocator.stats().allocatedPages());

        pool.putPage(pfn, -1, true);

        e.released = 1;
        e.releasedPages = 64;
        e.inflight = 0;
        e.check(pool);
        PagePoolTestSupport.assertAllBackAndClose(pool);
    }

    @Test
    void everyPageHandedOutAndReturnedIsCountedExactlyOnce() {
        PagePool pool = PagePool.builder(allocator).cacheSize(8).refillBatch(4).ringSize(4).build();
        java.util.Random rnd = new java.util.Random(42);
        List<Integer> out = new ArrayList<>();
        long allocs = 0;
        long puts = 0;
        for (int step = 0; step < 20_000; step++) {
            boolean filling = (step / 500) % 2 == 0; // phases of mostly allocating, then mostly returning
            if (out.isEmpty() || (out.size() < 60 && rnd.nextInt(4) < (filling ? 3 : 1))) {
                int pfn = pool.allocPage();
                assertNotEquals(PageAllocator.NO_PAGE, pfn);
                assertFalse(out.contains(pfn), "page handed out twice");
                out.add(pfn);
                allocs++;
            } else {
                int pfn = out.remove(rnd.nextInt(out.size()));
                switch (rnd.nextInt(3)) {
                    case 0:
                        pool.recycleDirect(pfn);
                        break;
                    case 1:
                        pool.putPage(pfn, 100, false);
                        break;
                    default:
                        pool.putPage(pfn, 0, true);
                        break;
                }
                puts++;
            }
            if (step % 1000 == 0) {
                PagePoolStats s = pool.stats();
                assertEquals(allocs, handedOut(s), s::toString);
                assertEquals(puts, returned(s), s::toString);
                assertEquals(out.size(), s.inflight(), s::toString);
                assertAccounting(pool);
            }
        }
        PagePoolStats s = pool.stats();
        assertTrue(s.recycleRingFull() > 0 && s.allocRefill() > 0 && s.recycleCacheFull() > 0 && s.allocFast() > 0,
                () -> "the mix must exercise every path: " + s);
        assertEquals(allocs, handedOut(s));
        assertEquals(puts, returned(s));
        assertAccounting(pool);
        for (int pfn : out) {
            pool.putPage(pfn, -1, false);
        }
        pool.close();
        PagePoolTestSupport.assertAllBackAndClose(pool);
    }

    @Test
    void exhaustedAllocatorGivesNoPageAndNoFragThenRecoversWhenPagesComeBack() {
        PageAllocator small = uncachedAllocator(16);
        int[] held = new int[8];
        for (int i = 0; i < 8; i++) {
            held[i] = small.allocPages(0); // someone else holds half the memory
        }
        PagePool pool = PagePool.builder(small).build();

        int first = pool.allocPage();
        assertNotEquals(PageAllocator.NO_PAGE, first);
        PagePoolStats s0 = pool.stats();
        assertEquals(8, s0.pagesEntered(), "a partial bulk result is used, not discarded: " + s0);
        List<Integer> out = new ArrayList<>(List.of(first));
        for (int i = 0; i < 7; i++) {
            out.add(pool.allocPage());
        }
        assertEquals(8, new HashSet<>(out).size());
        assertAccounting(pool, 8);

        assertEquals(PageAllocator.NO_PAGE, pool.allocPage());
        assertEquals(PagePool.NO_FRAG, pool.allocFrag(100));
        PagePoolStats s = pool.stats();
        assertEquals(2, s.allocFailed(), s::toString);
        assertEquals(8, s.inflight(), "a failed allocation hands nothing out: " + s);
        assertEquals(1 + 7, handedOut(s));
        assertAccounting(pool, 8);

        // pages coming back to the pool's ring make it allocate again
        pool.putPage(out.remove(0), -1, false);
        int again = pool.allocPage();
        assertNotEquals(PageAllocator.NO_PAGE, again);
        out.add(again);
        assertEquals(1, pool.stats().allocRefill());

        // pages coming back to the allocator make the slow path succeed again
        assertEquals(PageAllocator.NO_PAGE, pool.allocPage());
        small.freePages(held[0], 0);
        small.freePages(held[1], 0);
        int fromAllocator = pool.allocPage();
        assertNotEquals(PageAllocator.NO_PAGE, fromAllocator);
        out.add(fromAllocator);
        long frag = pool.allocFrag(100);
        assertNotEquals(PagePool.NO_FRAG, frag);
        PagePoolStats s2 = pool.stats();
        assertEquals(3, s2.allocFailed(), s2::toString);
        assertEquals(10, s2.pagesEntered(), s2::toString);
        assertEquals(10, s2.inflight(), s2::toString);
        assertAccounting(pool, 6);

        pool.putFrag(frag, false);
        for (int pfn : out) {
            pool.putPage(pfn, -1, false);
        }
        pool.close();
        for (int i = 2; i < 8; i++) {
            small.freePages(held[i], 0);
        }
        PagePoolTestSupport.assertAllBackAndClose(pool);
    }

    @Test
    void partialBulkRefillHandsOutEveryPageThatExists() {
        for (PageAllocator small : new PageAllocator[] {allocator(10), uncachedAllocator(10)}) {
            PagePool pool = PagePool.builder(small).build(); // refillBatch 64 > 10 pages
            Set<Integer> pfns = new HashSet<>();
            for (int i = 0; i < 10; i++) {
                int pfn = pool.allocPage();
                assertNotEquals(PageAllocator.NO_PAGE, pfn, "page " + i + " of 10 with " + small.cpuCacheMode());
                assertTrue(pfns.add(pfn));
            }
            assertEquals(PageAllocator.NO_PAGE, pool.allocPage());
            PagePoolStats s = pool.stats();
            assertEquals(1, s.allocSlow(), s::toString);
            assertEquals(9, s.allocFast(), s::toString);
            assertEquals(10, s.pagesEntered(), s::toString);
            assertEquals(1, s.allocFailed(), s::toString);
            assertEquals(10, small.stats().allocatedPages());
            assertAccounting(pool);
            for (int pfn : pfns) {
                pool.recycleDirect(pfn);
            }
            pool.close();
            PagePoolTestSupport.assertAllBackAndClose(pool);
        }
    }

    @Test
    void zeroOnAllocHandsOutZeroedPagesEvenAfterTheyWereDirtied() {
        PagePool pool = PagePool.builder(allocator).zeroOnAlloc(true).build();
        int pfn = pool.allocPage();
        assertTrue(allZero(allocator, pfn, 0, PAGE));
        fill(allocator, pfn, 0, PAGE, 7);
        pool.recycleDirect(pfn);
        assertEquals(pfn, pool.allocPage(), "fast path: the same, dirty page");
        assertTrue(allZero(allocator, pfn, 0, PAGE), "zeroOnAlloc must clear a recycled page");

        fill(allocator, pfn, 0, PAGE, 8);
        pool.putPage(pfn, -1, false); // through the ring
        for (int i = 0; i < 63; i++) {
            pool.allocPage(); // drain the cache so the next alloc refills from the ring
        }
        assertEquals(pfn, pool.allocPage());
        assertTrue(allZero(allocator, pfn, 0, PAGE), "zeroOnAlloc must clear a page refilled from the ring");

        fill(allocator, pfn, 0, PAGE, 9);
        pool.recycleDirect(pfn);
        long frag = pool.allocFrag(64);
        assertEquals(pfn, PagePool.fragPfn(frag));
        assertTrue(allZero(allocator, pfn, 0, PAGE), "a page carved into fragments is zeroed too");
    }

    @Test
    void withoutZeroOnAllocARecycledPageKeepsItsBytes() {
        // the counterpart of the test above: shows that test can fail
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        fill(allocator, pfn, 0, PAGE, 7);
        pool.recycleDirect(pfn);
        assertEquals(pfn, pool.allocPage());
        assertTrue(intact(allocator, pfn, 0, PAGE, 7));
    }

    @Test
    void zeroOnAllocZeroesTheWholeBlockOfAHighOrderPool() {
        PagePool pool = PagePool.builder(allocator).order(3).zeroOnAlloc(true).build();
        int pfn = pool.allocPage();
        fill(allocator, pfn, 0, 8 * PAGE, 3);
        pool.recycleDirect(pfn);
        assertEquals(pfn, pool.allocPage());
        assertTrue(allZero(allocator, pfn, 0, 8 * PAGE));
    }

    @Test
    void allowDirectFromAnotherThreadGoesToTheRingAndLeavesTheCacheAlone() throws Exception {
        // Documented fallback (PagePool class comment, "Where a page goes back"): allowDirect off the owner
        // thread is not an error; the page silently goes through the ring.
        PagePool pool = PagePool.builder(allocator).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            out.add(pool.allocPage());
        }
        PagePoolStats before = pool.stats();

        onAnotherThread(() -> {
            pool.putPage(out.get(0), -1, true);
            pool.recycleDirect(out.get(1));
        });

        PagePoolStats s = pool.stats();
        assertEquals(0, s.recycleCached(), s::toString);
        assertEquals(0, s.recycleCacheFull(), s::toString);
        assertEquals(2, s.recycleRing(), s::toString);
        assertEquals(2, s.ringPages(), s::toString);
        assertEquals(before.cachedPages(), s.cachedPages(), "the cache must not change: " + s);
        assertAccounting(pool);

        // the cache still works: its 60 pages, then the two from the ring, all distinct
        Set<Integer> seen = new HashSet<>(out.subList(2, 4));
        for (int i = 0; i < 62; i++) {
            int pfn = pool.allocPage();
            assertTrue(seen.add(pfn), "page " + pfn + " handed out twice");
        }
        assertTrue(seen.contains(out.get(0)) && seen.contains(out.get(1)));
        assertEquals(1, pool.stats().allocRefill());
        assertAccounting(pool);
    }

    @Test
    void allocatingOffTheOwnerThreadThrowsAndChangesNothing() throws Exception {
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        String before = pool.stats().toString();

        onAnotherThread(() -> {
            IllegalStateException a = assertThrows(IllegalStateException.class, pool::allocPage);
            assertTrue(a.getMessage().contains("owner"), a.getMessage());
            assertTrue(a.getMessage().contains(Thread.currentThread().getName()), a.getMessage());
            IllegalStateException f = assertThrows(IllegalStateException.class, () -> pool.allocFrag(64));
            assertTrue(f.getMessage().contains("owner"), f.getMessage());
        });

        assertEquals(before, pool.stats().toString());
        pool.recycleDirect(pfn);
        assertEquals(pfn, pool.allocPage());
        assertAccounting(pool);
    }

    @Test
    void ownerSetInTheBuilderIsTheOnlyThreadThatMayAllocate() throws Exception {
        Thread[] worker = new Thread[1];
        CompletableFuture<PagePool> built = new CompletableFuture<>();
        CompletableFuture<Void> done = new CompletableFuture<>();
        worker[0] = new Thread(() -> {
            try {
                PagePool p = built.get();
                int pfn = p.allocPage();
                p.recycleDirect(pfn);
                done.complete(null);
            } catch (Throwable t) {
                done.completeExceptionally(t);
            }
        }, "pool-owner");
        PagePool pool = PagePool.builder(allocator).owner(worker[0]).build();
        assertEquals(worker[0], pool.owner());
        assertThrows(IllegalStateException.class, pool::allocPage, "the building thread is not the owner");
        worker[0].start();
        built.complete(pool);
        done.get();
        worker[0].join();
        assertEquals(1, pool.stats().recycleCached(), "the owner recycles directly into its cache");
        assertAccounting(pool);
    }

    @Test
    void allocatingAfterCloseThrows() {
        PagePool pool = PagePool.builder(allocator).build();
        pool.close();
        IllegalStateException a = assertThrows(IllegalStateException.class, pool::allocPage);
        assertTrue(a.getMessage().contains("closed"), a.getMessage());
        assertThrows(IllegalStateException.class, () -> pool.allocFrag(64));
        PagePoolTestSupport.assertAllBackAndClose(pool);
    }

    @Test
    void builderRejectsSettingsOutOfRangeNamingTheSetting() {
        assertThrows(NullPointerException.class, () -> PagePool.builder(null));
        assertThrows(NullPointerException.class, () -> PagePool.builder(allocator).owner(null));
        assertRejected("order", b -> b.order(-1));
        assertRejected("order", b -> b.order(allocator.maxOrder() + 1));
        assertRejected("cacheSize", b -> b.cacheSize(0));
        assertRejected("cacheSize", b -> b.cacheSize(PagePool.MAX_CACHE_SIZE + 1));
        assertRejected("cacheSize", b -> b.cacheSize(Integer.MAX_VALUE));
        assertRejected("refillBatch", b -> b.refillBatch(0));
        assertRejected("refillBatch", b -> b.cacheSize(16).refillBatch(17));
        assertRejected("ringSize", b -> b.ringSize(1));
        assertRejected("ringSize", b -> b.ringSize((1 << 30) + 1));
        assertRejected("maxSyncLength", b -> b.maxSyncLength(PAGE + 1));
        assertRejected("syncOffset", b -> b.syncOffset(-1));
        assertRejected("syncOffset", b -> b.syncOffset(PAGE));
        assertRejected("fragAlign", b -> b.fragAlign(32));
        assertRejected("fragAlign", b -> b.fragAlign(96));
        assertRejected("fragAlign", b -> b.fragAlign(2 * PAGE));

        // the edges that are allowed
        PagePool edges = PagePool.builder(allocator).order(allocator.maxOrder()).cacheSize(1).refillBatch(1).ringSize(2)
                .maxSyncLength(PAGE << allocator.maxOrder()).syncOffset((PAGE << allocator.maxOrder()) - 1)
                .fragAlign(PAGE << allocator.maxOrder()).build();
        assertEquals(allocator.maxOrder(), edges.order());
        assertEquals(1, edges.cacheSize());
        assertEquals(1, edges.refillBatch());
        edges.close();
        PagePool defaults = PagePool.builder(allocator).build();
        assertEquals(PagePool.DEFAULT_CACHE_SIZE, defaults.cacheSize());
        assertEquals(PagePool.DEFAULT_REFILL_BATCH, defaults.refillBatch());
        assertEquals(PagePool.DEFAULT_FRAG_ALIGN, defaults.fragAlign());
        assertEquals(0, defaults.order());
        assertEquals(Thread.currentThread(), defaults.owner());
        defaults.close();

        PageAllocator closed = allocator(16);
        closed.close();
        IllegalStateException ex = assertThrows(IllegalStateException.class, () -> PagePool.builder(closed).build());
        assertTrue(ex.getMessage().contains("closed"), ex.getMessage());
    }

    private void assertRejected(String setting, Consumer<PagePool.Builder> configure) {
        PagePool.Builder b = PagePool.builder(allocator);
        configure.accept(b);
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, b::build, setting);
        assertTrue(ex.getMessage().contains(setting), () -> "message should name " + setting + ": " + ex.getMessage());
    }
}
