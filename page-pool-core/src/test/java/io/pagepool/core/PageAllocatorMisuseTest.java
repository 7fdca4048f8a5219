package io.pagepool.core;

import static io.pagepool.core.AllocatorTesting.assertContains;
import static io.pagepool.core.AllocatorTesting.assertEverythingFreeAndMerged;
import static io.pagepool.core.AllocatorTesting.small;
import static io.pagepool.core.AllocatorTesting.verifyPattern;
import static io.pagepool.core.AllocatorTesting.writePattern;
import static io.pagepool.core.PageAllocator.NO_PAGE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.function.Executable;

/**
 * Every misuse case of issue 2's "Bad input" list, under all three cache modes. Each case asserts
 * the exception type, that the message names the pfn (or the bad value) and the mistake, and that
 * nothing changed: {@link PageAllocator#checkConsistency()} passes and the free/cached page counts
 * are what they were. After each test every block the test still holds is freed exactly once
 * (which fails if the bad call freed or corrupted it), and the allocator must then be entirely
 * free, merged back to max-order blocks, and closable (which fails if anything leaked).
 */
class PageAllocatorMisuseTest {

    private PageAllocator a;
    /** Blocks the test holds, pfn to order, with the allocation's token for content checks. */
    private final Map<Integer, int[]> held = new LinkedHashMap<>();
    private int nextToken = 1;

    private PageAllocator open(CpuCacheMode mode) {
        a = small(mode).build(); // lazy: regions beyond those used are never reserved
        return a;
    }

    private int alloc(int order) {
        int pfn = a.allocPages(order);
        assertNotEquals(NO_PAGE, pfn);
        int token = nextToken++;
        writePattern(a, pfn, order, token);
        held.put(pfn, new int[] {order, token});
        return pfn;
    }

    private void split(int pfn) {
        int[] h = held.remove(pfn);
        a.splitPage(pfn, h[0]);
        for (int p = pfn; p < pfn + (1 << h[0]); p++) {
            held.put(p, new int[] {0, h[1]});
        }
    }

    private void free(int pfn) {
        int[] h = held.remove(pfn);
        verifyPattern(a, pfn, h[0], h[1]);
        a.freePages(pfn, h[0]);
    }

    /** A page that was allocated and freed again (so parked in a per-CPU cache in the cached modes). */
    private int freedPage(int order) {
        int pfn = alloc(order);
        free(pfn);
        return pfn;
    }

    @AfterEach
    void everyHeldBlockFreesExactlyOnceAndNothingLeaked() {
        if (a == null || a.isClosed()) {
            return;
        }
        for (int pfn : held.keySet().toArray(new Integer[0])) {
            free(pfn);
        }
        assertEverythingFreeAndMerged(a);
        a.close(); // refuses if any page is still allocated
    }

    /**
     * Runs a call that must be refused, and checks the refusal: exception type, message naming
     * {@code what} and each of {@code mistake}, and an allocator left exactly as it was.
     */
    private <T extends RuntimeException> T assertMisuse(Class<T> type, Executable call, String what, String... mistake) {
        long free = a.freePageCount();
        long cached = a.cachedPageCount();
        long allocated = a.stats().allocatedPages();
        T e = assertThrows(type, call);
        assertContains(e.getMessage(), what);
        assertContains(e.getMessage(), mistake);
        a.checkConsistency();
        assertEquals(free, a.freePageCount(), "free pages unchanged by the refused call");
        assertEquals(cached, a.cachedPageCount(), "parked pages unchanged by the refused call");
        assertEquals(allocated, a.stats().allocatedPages(), "allocated pages unchanged by the refused call");
        for (Map.Entry<Integer, int[]> h : held.entrySet()) {
            verifyPattern(a, h.getKey(), h.getValue()[0], h.getValue()[1]);
        }
        return e;
    }

    private static String pfn(int pfn) {
        return "pfn " + pfn;
    }

    // ------------------------------------------------------------------ double free

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void doubleFreeOfAPageStillParkedInTheCpuCacheIsCaught(CpuCacheMode mode) {
        open(mode);
        alloc(0);
        int parked = freedPage(0);
        int parkedPair = freedPage(1);
        if (mode != CpuCacheMode.NONE) {
            assertTrue(a.cachedPageCount() > 0, "precondition: the freed pages are parked");
        }
        String where = mode == CpuCacheMode.NONE ? "free" : "parked in a per-CPU cache";
        assertMisuse(IllegalStateException.class, () -> a.freePages(parked, 0), pfn(parked), "double free", where);
        assertMisuse(IllegalStateException.class, () -> a.freePages(parkedPair, 1), pfn(parkedPair), "double free");
        assertMisuse(IllegalStateException.class, () -> a.freePagesBulk(new int[] {parked}, 1), pfn(parked),
                "double free", "nothing was freed");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void doubleFreeOfAPageMergedIntoALargerFreeBlockIsCaught(CpuCacheMode mode) {
        open(mode);
        // Orders above 3 go straight to the zone. On a fresh allocator the first two order-4
        // blocks are buddies (0 and 16); once both are freed, 16 is a tail of a merged block.
        int lower = alloc(4);
        int upper = alloc(4);
        assertEquals(lower ^ 16, upper, "precondition: the two blocks are buddies");
        free(upper);
        free(lower);
        int tail = Math.max(lower, upper);
        assertMisuse(IllegalStateException.class, () -> a.freePages(tail, 4), pfn(tail), "double free",
                "of a free order-6 block headed by pfn " + Math.min(lower, upper));
        assertMisuse(IllegalStateException.class, () -> a.freePages(lower, 4), pfn(lower), "double free");

        // Order 0: a split pair, both freed, merged once the caches are drained.
        int pair = alloc(1);
        split(pair);
        free(pair);
        free(pair + 1);
        a.drainCpuCaches();
        assertMisuse(IllegalStateException.class, () -> a.freePages(pair + 1, 0), pfn(pair + 1), "double free",
                "of a free order-");
        assertMisuse(IllegalStateException.class, () -> a.freePagesBulk(new int[] {pair + 1}, 1), pfn(pair + 1),
                "double free");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void doubleFreeInsideABulkFreeFreesNothing(CpuCacheMode mode) {
        open(mode);
        int p1 = alloc(0);
        int p2 = alloc(0);
        int gone = freedPage(0);
        int[] pfns = {p1, p2, gone};
        assertMisuse(IllegalStateException.class, () -> a.freePagesBulk(pfns, 3), pfn(gone), "double free",
                "index 2", "nothing was freed");
        // p1 and p2 were validated before the bad entry: they must still be allocated (freed once in @AfterEach).
    }

    // ------------------------------------------------------------------ pfn out of range / not allocated

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void pfnOutOfRangeIsRejected(CpuCacheMode mode) {
        open(mode);
        alloc(0);
        int total = a.totalPages();
        for (int bad : new int[] {-1, -4096, total, total + 7, Integer.MAX_VALUE, Integer.MIN_VALUE}) {
            String why = "not a page of this allocator";
            assertMisuse(IllegalArgumentException.class, () -> a.freePages(bad, 0), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.freePages(bad, 3), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.splitPage(bad, 1), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {bad}, 1), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(bad, 1), pfn(bad), "not inside");
            assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(bad, 0), pfn(bad), "not inside");
            assertMisuse(IllegalArgumentException.class, () -> a.regionOffset(bad), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.address(bad), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.regionBuffer(bad), pfn(bad), why);
            assertMisuse(IllegalArgumentException.class, () -> a.pageBuffer(bad, 0), pfn(bad), why);
        }
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(total - 2, 3), pfn(total - 2), "not inside");
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(1, Integer.MAX_VALUE), pfn(1), "not inside");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void pfnInARegionNeverReservedIsRejected(CpuCacheMode mode) {
        open(mode);
        alloc(0);
        int last = a.totalPages() - 1;
        assertTrue(a.stats().unreservedPages() > 0, "precondition: the last region is not reserved");
        String why = "never reserved";
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(last, 0), pfn(last), "not the head of an allocated block", why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(last - 7, 3), pfn(last - 7), why);
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(last, 0), pfn(last), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {last}, 1), pfn(last), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(last - 3, 4), pfn(last - 3), why);
        assertMisuse(IllegalArgumentException.class, () -> a.address(last), pfn(last), "not reserved");
        assertMisuse(IllegalArgumentException.class, () -> a.regionBuffer(last), pfn(last), "not reserved");
        assertEquals(1, a.stats().regionsReserved(), "a refused call reserves no memory");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void tailPageOfAnAllocatedBlockIsRejected(CpuCacheMode mode) {
        open(mode);
        int head = alloc(2);
        int zoneHead = alloc(5);
        String why = "not the head of an allocated block";
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(head + 1, 0), pfn(head + 1), why, "headed by pfn " + head);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(head + 2, 1), pfn(head + 2), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {head + 3}, 1), pfn(head + 3), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(zoneHead + 16, 4), pfn(zoneHead + 16), why,
                "headed by pfn " + zoneHead);
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void freeWithTheWrongOrderIsRejected(CpuCacheMode mode) {
        open(mode);
        int block = alloc(2);
        int zoneBlock = alloc(5);
        int split = alloc(3);
        split(split);
        String why = "wrong order";
        for (int order : new int[] {0, 1, 3, 6}) {
            assertMisuse(IllegalArgumentException.class, () -> a.freePages(block, order), pfn(block), why,
                    "allocated at order 2");
        }
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(zoneBlock, 4), pfn(zoneBlock), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(zoneBlock, 6), pfn(zoneBlock), why);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(split, 3), pfn(split), why,
                "allocated at order 0");
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {block}, 1), pfn(block), why);
    }

    // ------------------------------------------------------------------ freeContigRange

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOverAFreePageInTheMiddleFreesNothing(CpuCacheMode mode) {
        open(mode);
        int s = alloc(3);
        split(s);
        free(s + 4);
        assertMisuse(IllegalStateException.class, () -> a.freeContigRange(s, 8), pfn(s + 4), "double free",
                "every page of the range must be an allocated order-0 page", "nothing was freed");
        a.drainCpuCaches(); // the freed page now sits in the zone's lists instead of a cache
        assertMisuse(IllegalStateException.class, () -> a.freeContigRange(s + 1, 6), pfn(s + 4), "double free");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOverABlockThatWasNotSplitIsRejected(CpuCacheMode mode) {
        open(mode);
        int pair = alloc(1);
        int s = alloc(2);
        split(s);
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(pair, 2), pfn(pair), "wrong order",
                "every page of the range must be an allocated order-0 page");
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(pair + 1, 1), pfn(pair + 1),
                "not the head of an allocated block");
        int big = alloc(4);
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(big, 16), pfn(big), "wrong order");
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(big + 1, 15), pfn(big + 1),
                "not the head of an allocated block");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOverARangeThatRunsPastTheSplitBlockFreesNothing(CpuCacheMode mode) {
        open(mode);
        int s = alloc(4);
        split(s);
        int after = s + 16;
        // Whatever pfn s+16 is (free, or another block), it is not an allocated order-0 page of ours.
        RuntimeException e = assertMisuse(RuntimeException.class, () -> a.freeContigRange(s, 17), pfn(after),
                "every page of the range must be an allocated order-0 page");
        assertTrue(e instanceof IllegalStateException || e instanceof IllegalArgumentException, e.toString());
    }

    // ------------------------------------------------------------------ splitPage

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void splitOfAFreeBlockIsRejected(CpuCacheMode mode) {
        open(mode);
        alloc(0);
        int zoneBlock = freedPage(4);
        int cacheBlock = freedPage(1);
        assertMisuse(IllegalStateException.class, () -> a.splitPage(zoneBlock, 4), pfn(zoneBlock), "already free");
        assertMisuse(IllegalStateException.class, () -> a.splitPage(cacheBlock, 1), pfn(cacheBlock), "already free");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void splitWithTheWrongOrderOrOfATailPageIsRejected(CpuCacheMode mode) {
        open(mode);
        int block = alloc(2);
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block, 1), pfn(block), "wrong order");
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block, 3), pfn(block), "wrong order");
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block + 2, 1), pfn(block + 2),
                "not the head of an allocated block");
        split(block);
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block, 2), pfn(block), "wrong order",
                "allocated at order 0");
    }

    // ------------------------------------------------------------------ orders and counts

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void negativeOrOversizedOrderIsRejected(CpuCacheMode mode) {
        open(mode);
        int block = alloc(1);
        int max = a.maxOrder();
        for (int order : new int[] {-1, max + 1, 31, Integer.MIN_VALUE}) {
            String named = "order " + order;
            assertMisuse(IllegalArgumentException.class, () -> a.allocPages(order), named, "outside 0.." + max);
            assertMisuse(IllegalArgumentException.class, () -> a.freePages(block, order), named, "outside");
            assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block, order), named, "outside");
            assertMisuse(IllegalArgumentException.class, () -> a.pageBuffer(block, order), named, "outside");
            assertMisuse(IllegalArgumentException.class, () -> a.stats().freeBlocks(order), named, "outside 0.." + max);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void outOfRangeOrderMessageNamesThePfn(CpuCacheMode mode) {
        open(mode);
        int block = alloc(1);
        assertMisuse(IllegalArgumentException.class, () -> a.freePages(block, -1), pfn(block), "order -1");
        assertMisuse(IllegalArgumentException.class, () -> a.splitPage(block, 99), pfn(block), "order 99");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void negativeOrOversizedCountIsRejected(CpuCacheMode mode) {
        open(mode);
        int[] array = new int[4];
        Arrays.fill(array, NO_PAGE);
        assertMisuse(IllegalArgumentException.class, () -> a.allocPagesBulk(-1, array), "nrPages -1", "outside 0..4");
        assertMisuse(IllegalArgumentException.class, () -> a.allocPagesBulk(5, array), "nrPages 5", "outside 0..4");
        assertArrayEquals(new int[] {NO_PAGE, NO_PAGE, NO_PAGE, NO_PAGE}, array, "a refused bulk call fills no slot");

        int p1 = alloc(0);
        int p2 = alloc(0);
        int[] pfns = {p1, p2};
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(pfns, -1), "count -1", "outside 0..2");
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(pfns, 3), "count 3", "outside 0..2");

        int s = alloc(2);
        split(s);
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(s, -1), pfn(s), "nrPages -1", "negative");
        assertMisuse(IllegalArgumentException.class, () -> a.freeContigRange(s, Integer.MIN_VALUE), pfn(s), "negative");
        // all of p1, p2 and the split pages are still allocated: @AfterEach frees each once
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void pfnListedTwiceInOneBulkFreeIsRejected(CpuCacheMode mode) {
        open(mode);
        int p1 = alloc(0);
        int p2 = alloc(0);
        int p3 = alloc(0);
        int[] pfns = {p1, p2, p3, p1};
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(pfns, 4), pfn(p1), "listed twice",
                "index 0", "index 3", "nothing was freed");
        int[] adjacent = {p2, p2};
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(adjacent, 2), pfn(p2), "listed twice");
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkFreeWithABadEntryAfterGoodOnesFreesNothing(CpuCacheMode mode) {
        open(mode);
        int p1 = alloc(0);
        int p2 = alloc(0);
        int block = alloc(2);
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {p1, p2, block}, 3), pfn(block),
                "wrong order", "index 2");
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {p1, block + 1}, 2),
                pfn(block + 1), "not the head of an allocated block");
        assertMisuse(IllegalArgumentException.class, () -> a.freePagesBulk(new int[] {p1, p2, NO_PAGE}, 3),
                pfn(NO_PAGE), "not a page of this allocator");
    }

    // ------------------------------------------------------------------ use after close

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void useAfterCloseIsRejected(CpuCacheMode mode) {
        open(mode);
        int pfn = freedPage(0);
        a.close();
        String why = "closed";
        IllegalStateException e;
        e = assertThrows(IllegalStateException.class, () -> a.freePages(pfn, 0));
        assertContains(e.getMessage(), why, "freePages(" + pfn(pfn));
        e = assertThrows(IllegalStateException.class, () -> a.allocPages(0));
        assertContains(e.getMessage(), why);
        e = assertThrows(IllegalStateException.class, () -> a.allocPagesBulk(1, new int[] {NO_PAGE}));
        assertContains(e.getMessage(), why);
        e = assertThrows(IllegalStateException.class, () -> a.freePagesBulk(new int[] {pfn}, 1));
        assertContains(e.getMessage(), why, "freePagesBulk(count 1, first " + pfn(pfn));
        e = assertThrows(IllegalStateException.class, () -> a.splitPage(pfn, 0));
        assertContains(e.getMessage(), why, "splitPage(" + pfn(pfn));
        e = assertThrows(IllegalStateException.class, () -> a.freeContigRange(pfn, 1));
        assertContains(e.getMessage(), why, "freeContigRange(" + pfn(pfn));
        e = assertThrows(IllegalStateException.class, () -> a.regionBuffer(pfn));
        assertContains(e.getMessage(), why);
        a.close();
        assertTrue(a.isClosed(), "still closed; a second close() is harmless");
    }
}
