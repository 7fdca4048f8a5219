package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.PAGE;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.assertAllBackAndClose;
import static io.pagepool.core.PagePoolTestSupport.fill;
import static io.pagepool.core.PagePoolTestSupport.handedOut;
import static io.pagepool.core.PagePoolTestSupport.handleGeneration;
import static io.pagepool.core.PagePoolTestSupport.intact;
import static io.pagepool.core.PagePoolTestSupport.returned;
import static io.pagepool.core.PagePoolTestSupport.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Fragments ({@code allocFrag}/{@code putFrag}): several buffers share a page; offsets are aligned; fragments
 * never overlap (checked by writing a pattern per fragment into the real off-heap page); the page goes back
 * to the pool exactly when it has been retired (the owner moved on to another page) and its last fragment
 * has come back, whatever the release order and thread.
 */
class PagePoolFragmentTest {

    enum ReleaseOrder { FORWARD, REVERSE, RANDOM, INTERLEAVED }

    /** One fragment handed out: its handle, requested size and the seed of the bytes written into it. */
    static final class Frag {
        final long handle;
        final int size;
        final int seed;

        Frag(long handle, int size, int seed) {
            this.handle = handle;
            this.size = size;
            this.seed = seed;
        }

        int pfn() {
            return PagePool.fragPfn(handle);
        }

        int offset() {
            return PagePool.fragOffset(handle);
        }
    }

    /**
     * What the pool should have done, tracked independently: a run is one page's carving (pfn + generation).
     * The current run is in flight; a retired run is in flight until its last fragment comes back, and counts
     * as returned exactly then.
     */
    static final class Ledger {
        final PagePool pool;
        final PageAllocator allocator;
        final Map<Long, Integer> outstanding = new HashMap<>();
        final Map<Long, TreeMap<Integer, Integer>> extents = new HashMap<>();
        final Set<Long> retired = new HashSet<>();
        long current = -1;
        /** Whole pages (allocPage) out, for tests that mix them in. */
        long pagesOut;
        long runs;
        long returns;
        long frags;
        int seeds;

        Ledger(PagePool pool) {
            this.pool = pool;
            this.allocator = pool.allocator();
        }

        Frag alloc(int size) {
            long h = pool.allocFrag(size);
            assertNotEquals(PagePool.NO_FRAG, h, "allocFrag(" + size + ") failed");
            assertTrue(h >= 0, "a handle is never negative");
            int offset = PagePool.fragOffset(h);
            assertEquals(0, offset % pool.fragAlign(), "offset " + offset + " not aligned to " + pool.fragAlign());
            assertTrue(offset + size <= pool.blockBytes(), "fragment [" + offset + ", +" + size + ") leaves the block");
            long r = run(h);
            if (r != current) {
                if (current != -1) {
                    retired.add(current);
                    if (outstanding.get(current) == 0) {
                        returns++; // retired with every fragment back: returns at once
                    }
                }
                assertTrue(!outstanding.containsKey(r), "run reused without a new generation");
                current = r;
                runs++;
                outstanding.put(r, 0);
                extents.put(r, new TreeMap<>());
            }
            outstanding.merge(r, 1, Integer::sum);
            // no overlap with any fragment of the same run (released or not: a run never reuses space)
            TreeMap<Integer, Integer> ex = extents.get(r);
            Map.Entry<Integer, Integer> below = ex.floorEntry(offset);
            Map.Entry<Integer, Integer> above = ex.ceilingEntry(offset);
            assertTrue(below == null || below.getKey() + below.getValue() <= offset,
                    () -> "fragment at " + offset + " overlaps one at " + below.getKey());
            assertTrue(above == null || offset + size <= above.getKey(),
                    () -> "fragment at " + offset + " overlaps one at " + above.getKey());
            ex.put(offset, size);
            frags++;
            Frag f = new Frag(h, size, ++seeds);
            fill(allocator, f.pfn(), f.offset(), size, f.seed);
            check();
            return f;
        }

        void release(Frag f, boolean allowDirect) {
            assertTrue(intact(allocator, f.pfn(), f.offset(), f.size, f.seed),
                    () -> "bytes of fragment pfn " + f.pfn() + " offset " + f.offset() + " were overwritten");
            pool.putFrag(f.handle, allowDirect);
            released(f);
            check();
        }

        /** Records a release made elsewhere (another thread). */
        void released(Frag f) {
            long r = run(f.handle);
            int left = outstanding.merge(r, -1, Integer::sum);
            assertTrue(left >= 0);
            if (left == 0 && retired.contains(r)) {
                returns++;
            }
        }

        long expectedInflight() {
            long n = pagesOut + (current != -1 ? 1 : 0);
            for (long r : retired) {
                if (outstanding.get(r) > 0) {
                    n++;
                }
            }
            return n;
        }

        void check() {
            PagePoolStats s = pool.stats();
            assertEquals(expectedInflight(), s.inflight(), s::toString);
            assertEquals(runs, handedOut(s), () -> "each carved page is handed out once: " + s);
            assertEquals(returns, returned(s), () -> "a page returns exactly with its last fragment: " + s);
            assertEquals(frags, s.fragAllocs(), s::toString);
        }
    }

    private static List<Frag> inOrder(List<Frag> frags, ReleaseOrder order, long seed) {
        List<Frag> l = new ArrayList<>(frags);
        switch (order) {
            case REVERSE:
                Collections.reverse(l);
                break;
            case RANDOM:
                Collections.shuffle(l, new Random(seed));
                break;
            case INTERLEAVED: // evens forward, then odds backward
                List<Frag> x = new ArrayList<>();
                for (int i = 0; i < l.size(); i += 2) {
                    x.add(l.get(i));
                }
                for (int i = l.size() - 1 - (l.size() % 2 == 0 ? 0 : 1); i >= 1; i -= 2) {
                    x.add(l.get(i));
                }
                l = x;
                break;
            default:
                break;
        }
        return l;
    }

    @ParameterizedTest
    @EnumSource(ReleaseOrder.class)
    void mixedSizeFragmentsAreAlignedDisjointAndTheirPageReturnsWithTheLastOne(ReleaseOrder order) {
        PageAllocator allocator = PagePoolTestSupport.allocator(1024);
        PagePool pool = PagePool.builder(allocator).build();
        Ledger ledger = new Ledger(pool);
        Random rnd = new Random(order.ordinal() * 31L + 5);
        List<Frag> frags = new ArrayList<>();
        for (int i = 0; i < 400; i++) {
            int size = 64 + rnd.nextInt(4096 - 64 + 1);
            if (i % 7 == 0) {
                size = 1 + rnd.nextInt(200); // and some tiny ones
            }
            frags.add(ledger.alloc(size));
        }
        assertTrue(ledger.runs > 50, "the sizes must spread over many pages");
        for (Frag f : frags) {
            assertTrue(intact(allocator, f.pfn(), f.offset(), f.size, f.seed), "fragments overlap");
        }
        assertAccounting(pool);

        int i = 0;
        for (Frag f : inOrder(frags, order, 77)) {
            ledger.release(f, (i++ & 1) == 0);
        }
        assertEquals(1, pool.inflight(), "only the current, unretired page is still out");
        assertAccounting(pool);
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Property(tries = 60)
    void anyFragmentSizesReleasedInAnyOrderReturnEveryPage(
            @ForAll @Size(min = 1, max = 80) List<@IntRange(min = 1, max = 4096) Integer> sizes,
            @ForAll Random random, @ForAll boolean allowDirect) {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).cacheSize(8).refillBatch(4).build();
        Ledger ledger = new Ledger(pool);
        List<Frag> frags = new ArrayList<>();
        for (int size : sizes) {
            frags.add(ledger.alloc(size));
            if (random.nextInt(4) == 0 && !frags.isEmpty()) { // interleave releases with allocations
                ledger.release(frags.remove(random.nextInt(frags.size())), allowDirect);
            }
        }
        Collections.shuffle(frags, random);
        for (Frag f : frags) {
            ledger.release(f, allowDirect);
        }
        assertEquals(1, pool.inflight());
        assertAccounting(pool);
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void pageReturnsExactlyWhenTheLastFragmentOfARetiredPageComesBack() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long a = pool.allocFrag(1000);
        long b = pool.allocFrag(1000);
        long c = pool.allocFrag(1000);
        int pfn = PagePool.fragPfn(a);
        assertEquals(pfn, PagePool.fragPfn(b));
        assertEquals(pfn, PagePool.fragPfn(c));
        long d = pool.allocFrag(2000); // does not fit: retires the first page, carves a second
        assertNotEquals(pfn, PagePool.fragPfn(d));
        assertEquals(2, pool.inflight());

        pool.putFrag(b, false);
        pool.putFrag(a, false);
        assertEquals(2, pool.inflight(), "one fragment of the retired page is still out");
        assertEquals(0, returned(pool.stats()));

        pool.putFrag(c, false);
        PagePoolStats s = pool.stats();
        assertEquals(1, s.inflight(), s::toString);
        assertEquals(1, s.recycleRing(), s::toString);
        assertEquals(1, s.ringPages(), s::toString);
        assertAccounting(pool);
        pool.putFrag(d, true);
        pool.close();
        assertAllBackAndClose(pool);
    }

    /** 1 GiB blocks: the fit check must not overflow int when a fragment fills the whole block. */
    @Test
    void aSecondWholeBlockFragmentOfAOneGibBlockIsExhaustionNotAFragmentPastTheEnd() {
        PageAllocator allocator = PageAllocator.builder().maxOrder(18).capacity(1L << 30).preTouch(false).build();
        PagePool pool = PagePool.builder(allocator).order(18).build();
        long first = pool.allocFrag(1 << 30);
        assumeTrue(first != PagePool.NO_FRAG, "needs 1 GiB off-heap (JDK 22+, or a larger -XX:MaxDirectMemorySize)");
        assertEquals(0, PagePool.fragOffset(first));
        assertEquals(PagePool.NO_FRAG, pool.allocFrag(1 << 30), "the only block is still carved");
        pool.putFrag(first, true);
        pool.close();
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.close();
    }

    @Test
    void lastFragmentReturnedDirectlyOnTheOwnerGoesIntoTheCache() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long a = pool.allocFrag(4096);
        long b = pool.allocFrag(64); // retires a's page
        int cachedBefore = pool.stats().cachedPages();
        pool.putFrag(a, true);
        PagePoolStats s = pool.stats();
        assertEquals(1, s.recycleCached(), s::toString);
        assertEquals(cachedBefore + 1, s.cachedPages(), s::toString);
        assertEquals(PagePool.fragPfn(a), pool.allocPage(), "the fragment page is reused whole from the cache");
        assertAccounting(pool);
        pool.putFrag(b, true);
    }

    @Test
    void retiredPageWhoseFragmentsAreAllBackReturnsImmediately() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long a = pool.allocFrag(2048);
        long b = pool.allocFrag(2048);
        int pfn = PagePool.fragPfn(a);
        pool.putFrag(a, true);
        pool.putFrag(b, true);
        assertEquals(1, pool.inflight(), "the current page stays out until it is retired");
        assertEquals(0, pool.stats().recycleCached());

        long c = pool.allocFrag(64); // retiring the full page returns it at once, into the cache

        PagePoolStats s = pool.stats();
        assertEquals(1, s.recycleCached(), s::toString);
        assertEquals(pfn, PagePool.fragPfn(c), "and the cache hands the same page out for the new fragment");
        assertNotEquals(handleGeneration(a), handleGeneration(c), "a new carving has a new generation");
        assertEquals(1, s.inflight(), s::toString);
        assertAccounting(pool);

        // closing retires the current page too: with its fragment back, it goes straight to the allocator
        pool.putFrag(c, false);
        pool.close();
        assertEquals(0, pool.inflight());
        assertAllBackAndClose(pool);
    }

    @Test
    void fragmentsReleasedFromSeveralThreadsReturnEveryRetiredPage() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(1024);
        PagePool pool = PagePool.builder(allocator).build();
        Ledger ledger = new Ledger(pool);
        Random rnd = new Random(11);
        for (int round = 0; round < 20; round++) {
            List<Frag> frags = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                frags.add(ledger.alloc(new int[] {64, 100, 256, 1000, 1500, 2048, 4096}[rnd.nextInt(7)]));
            }
            List<List<Frag>> shares = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
            for (Frag f : frags) {
                shares.get(rnd.nextInt(3)).add(f);
            }
            CountDownLatch start = new CountDownLatch(1);
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                List<Frag> mine = shares.get(t);
                Collections.shuffle(mine, rnd);
                CompletableFuture<Void> f = new CompletableFuture<>();
                done.add(f);
                boolean direct = t == 0; // allowDirect off the owner: must go through the ring
                new Thread(() -> {
                    try {
                        start.await();
                        for (Frag fr : mine) {
                            if (!intact(allocator, fr.pfn(), fr.offset(), fr.size, fr.seed)) {
                                throw new AssertionError("fragment pfn " + fr.pfn() + " offset " + fr.offset()
                                        + " overwritten before release");
                            }
                            pool.putFrag(fr.handle, direct);
                        }
                        f.complete(null);
                    } catch (Throwable e) {
                        f.completeExceptionally(e);
                    }
                }, "frag-releaser-" + t).start();
            }
            start.countDown();
            CompletableFuture.allOf(done.toArray(new CompletableFuture<?>[0])).get(10, TimeUnit.SECONDS);
            for (Frag f : frags) {
                ledger.released(f);
            }
            // every retired page came back, each exactly once; only the current page is still out
            ledger.check();
            PagePoolStats s = pool.stats();
            assertEquals(1, s.inflight(), s::toString);
            // other threads never recycle into the cache; only the owner does, when its first allocFrag of a
            // round retires the previous round's page whose fragments are all back
            assertTrue(s.recycleCached() <= round, "other threads recycled into the cache: " + s);
            assertAccounting(pool);
        }
        pool.close();
        assertAllBackAndClose(pool);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void highOrderPoolCarvesFragmentsAcrossTheWholeBlock(int order) {
        PageAllocator allocator = PagePoolTestSupport.allocator(1024);
        PagePool pool = PagePool.builder(allocator).order(order).build();
        int block = PAGE << order;
        Ledger ledger = new Ledger(pool);
        List<Frag> frags = new ArrayList<>();
        Random rnd = new Random(order);
        int maxOffset = 0;
        for (int i = 0; i < 200; i++) {
            Frag f = ledger.alloc(1 + rnd.nextInt(block / 3));
            maxOffset = Math.max(maxOffset, f.offset());
            frags.add(f);
        }
        assertTrue(maxOffset >= PAGE, "fragments must use the pages past the head page");
        assertEquals(block, pool.blockBytes());
        Frag whole = ledger.alloc(block);
        assertEquals(0, whole.offset(), "a block-sized fragment takes a block of its own");
        frags.add(whole);
        Collections.shuffle(frags, rnd);
        for (Frag f : frags) {
            ledger.release(f, false);
        }
        assertEquals(1, pool.inflight());
        assertAccounting(pool);
        pool.close();
        assertAllBackAndClose(pool);
    }

    @ParameterizedTest
    @ValueSource(ints = {8192, 16384})
    void largerPagesUseEveryBitmapWordOfThePage(int pageSize) {
        PageAllocator allocator = PageAllocator.builder().capacity(256L * pageSize).pageSize(pageSize).maxOrder(4)
                .build();
        PagePool pool = PagePool.builder(allocator).build();
        assertEquals(pageSize, pool.blockBytes());
        Ledger ledger = new Ledger(pool);
        Random rnd = new Random(pageSize);
        List<Frag> frags = new ArrayList<>();
        int maxOffset = 0;
        for (int i = 0; i < 300; i++) {
            Frag f = ledger.alloc(1 + rnd.nextInt(pageSize / 4));
            maxOffset = Math.max(maxOffset, f.offset());
            frags.add(f);
        }
        assertTrue(maxOffset >= pageSize - pageSize / 4, "fragments must reach the end of the page");
        // a fragment in the last 4 KiB of a page is tracked in the page's last bitmap word
        Frag late = frags.stream().filter(f -> f.offset() >= pageSize - 4096).findFirst().orElseThrow();
        ledger.release(late, true);
        assertThrows(IllegalStateException.class, () -> pool.putFrag(late.handle, true), "released twice");
        frags.remove(late);
        for (Frag f : inOrder(frags, ReleaseOrder.RANDOM, 5)) {
            ledger.release(f, false);
        }
        pool.close();
        assertAllBackAndClose(pool);
    }

    /**
     * A fragment handle carries 9 bits of its page's carving generation, so a stale handle whose page has
     * since been carved again a multiple of 512 times looks current: releasing it twice then releases
     * somebody else's fragment (the one now at the same offset) instead of throwing, and that fragment's
     * holder is the one who gets "released twice". The class comment says a stale handle "is recognised as
     * stale instead of releasing someone else's fragment", without that limit.
     */
    /** The documented period: a stale handle is recognised while its page has been re-carved fewer than 512 times. */
    @Test
    void staleHandleIsRefusedThroughoutTheGenerationPeriod() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long stale = pool.allocFrag(PAGE); // a whole-page fragment: the next allocFrag retires its page
        int pfn = PagePool.fragPfn(stale);
        pool.putFrag(stale, true);
        long current = stale;
        for (int carving = 1; carving <= PagePool.FRAG_GENERATIONS - 1; carving++) {
            current = pool.allocFrag(PAGE); // retires the previous carving (all back) and carves the same page
            assertEquals(pfn, PagePool.fragPfn(current), "LIFO cache: the same page is carved again");
            if (carving < PagePool.FRAG_GENERATIONS - 1) {
                pool.putFrag(current, true);
            }
        }
        // 'current' is out, at the same pfn and offset as 'stale'; 'stale' was released 511 carvings ago
        long holder = current;
        assertThrows(IllegalStateException.class, () -> pool.putFrag(stale, true),
                "a stale handle must be refused, not release the current holder's fragment");
        pool.putFrag(holder, true);
    }

    @ParameterizedTest
    @CsvSource({"64", "128", "256", "4096"})
    void fragmentOffsetsFollowFragAlign(int align) {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).fragAlign(align).build();
        assertEquals(align, pool.fragAlign());
        Ledger ledger = new Ledger(pool);
        Frag one = ledger.alloc(1);
        Frag two = ledger.alloc(1);
        if (align < PAGE) {
            assertEquals(0, one.offset());
            assertEquals(align, two.offset(), "a 1-byte fragment still takes a whole alignment unit");
            assertEquals(one.pfn(), two.pfn());
        } else {
            assertNotEquals(one.pfn(), two.pfn());
        }
        List<Frag> frags = new ArrayList<>(List.of(one, two));
        Random rnd = new Random(align);
        for (int i = 0; i < 200; i++) {
            frags.add(ledger.alloc(1 + rnd.nextInt(Math.min(3 * align, PAGE))));
        }
        for (Frag f : inOrder(frags, ReleaseOrder.RANDOM, align)) {
            ledger.release(f, true);
        }
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void allocFragRejectsSizesOutsideOneToTheBlockSize() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long h = pool.allocFrag(100);
        String before = pool.stats().toString();
        for (int size : new int[] {0, -1, PAGE + 1, Integer.MAX_VALUE, Integer.MIN_VALUE}) {
            IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> pool.allocFrag(size));
            assertTrue(ex.getMessage().contains(Integer.toString(size)), ex.getMessage());
        }
        assertEquals(before, pool.stats().toString(), "a rejected size changes nothing");
        long next = pool.allocFrag(100);
        assertEquals(PagePool.fragPfn(h), PagePool.fragPfn(next));
        assertEquals(128, PagePool.fragOffset(next), "carving goes on where it was");
        long whole = pool.allocFrag(PAGE);
        assertEquals(0, PagePool.fragOffset(whole));
        assertNotEquals(PagePool.fragPfn(h), PagePool.fragPfn(whole));
        for (long x : new long[] {h, next, whole}) {
            pool.putFrag(x, false);
        }
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void fragmentsAndWholePagesShareTheCacheWithoutOverlapping() {
        PageAllocator allocator = PagePoolTestSupport.allocator(512);
        PagePool pool = PagePool.builder(allocator).cacheSize(16).refillBatch(8).build();
        Random rnd = new Random(3);
        Ledger ledger = new Ledger(pool);
        List<Frag> frags = new ArrayList<>();
        List<Integer> pages = new ArrayList<>();
        Map<Integer, Integer> pageSeeds = new HashMap<>();
        for (int step = 0; step < 5000; step++) {
            int op = rnd.nextInt(4);
            if (op == 0) {
                frags.add(ledger.alloc(1 + rnd.nextInt(3000)));
            } else if (op == 1 && !frags.isEmpty()) {
                ledger.release(frags.remove(rnd.nextInt(frags.size())), rnd.nextBoolean());
            } else if (op == 2) {
                int pfn = pool.allocPage();
                assertTrue(!pageSeeds.containsKey(pfn), "page " + pfn + " handed out twice");
                for (Frag f : frags) {
                    assertNotEquals(pfn, f.pfn(), "page " + pfn + " handed out whole while carved");
                }
                pages.add(pfn);
                pageSeeds.put(pfn, step);
                fill(allocator, pfn, 0, PAGE, step);
                ledger.runs++;
                ledger.pagesOut++;
                ledger.check();
            } else if (!pages.isEmpty()) {
                int pfn = pages.remove(rnd.nextInt(pages.size()));
                assertTrue(intact(allocator, pfn, 0, PAGE, pageSeeds.remove(pfn)));
                pool.putPage(pfn, -1, rnd.nextBoolean());
                ledger.returns++;
                ledger.pagesOut--;
                ledger.check();
            }
        }
        assertEquals(ledger.expectedInflight(), pool.inflight());
        assertTrue(pool.stats().allocRefill() > 0, pool.stats()::toString);
        assertAccounting(pool);
    }
}
