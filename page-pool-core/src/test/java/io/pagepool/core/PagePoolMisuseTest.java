package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.PAGE;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.assertAllBackAndClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Misuse of {@link PagePool}: every mistake throws an exception whose message names the pfn and the
 * mistake, and leaves the pool and the allocator exactly as they were: the counters do not move, legitimate
 * returns still work, and the accounting identities hold.
 */
class PagePoolMisuseTest {

    private PageAllocator allocator;
    private PagePool pool;

    @BeforeEach
    void setUp() {
        allocator = PagePoolTestSupport.allocator(512);
        pool = PagePool.builder(allocator).build();
    }

    @AfterEach
    void everythingStillAddsUp() {
        if (!allocator.isClosed()) {
            allocator.checkConsistency();
        }
    }

    /**
     * Runs the mistake, checks the exception's type and that its message contains each fragment, and that
     * neither the pool's counters nor the allocator's allocated pages changed.
     */
    private <T extends RuntimeException> T assertMisuse(Class<T> type, Executable mistake, String... mustContain) {
        String poolBefore = pool.stats().toString();
        long allocatedBefore = allocator.stats().allocatedPages();
        T ex = assertThrows(type, mistake);
        for (String s : mustContain) {
            assertTrue(ex.getMessage().contains(s), () -> "message should contain \"" + s + "\": " + ex.getMessage());
        }
        assertEquals(poolBefore, pool.stats().toString(), "a rejected call must change nothing");
        assertEquals(allocatedBefore, allocator.stats().allocatedPages());
        allocator.checkConsistency();
        return ex;
    }

    /** A page that came in with a refill and waits in the cache was never handed out: putting it is a double put. */
    @Test
    void putOfAPageTheRefillParkedIsADoublePut() {
        pool.close();
        List<Integer> entered = new ArrayList<>();
        pool = PagePool.builder(allocator).dmaMapper(new DmaMapper() { // only to learn which pages entered
            @Override
            public long map(int pfn, long address, int length) {
                entered.add(pfn);
                return address;
            }

            @Override
            public void unmap(int pfn, long dmaAddress, int length) {
            }

            @Override
            public void syncForDevice(int pfn, long dmaAddress, int offset, int length) {
            }
        }).build();
        int out = pool.allocPage(); // the refill parked the rest of its batch in the cache
        int parked = entered.get(0) != out ? entered.get(0) : entered.get(1);
        assertMisuse(IllegalStateException.class, () -> pool.putPage(parked, 0, true),
                "double put: pfn " + parked + " is already back in");
        pool.putPage(out, 0, true);
    }

    /** A negative timeout is "do not wait", however large: toNanos() overflows past 292 years. */
    @Test
    void awaitInflightWithAHugeNegativeTimeoutDoesNotWait() {
        int pfn = pool.allocPage();
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            assertFalse(pool.awaitInflight(Duration.ofSeconds(-1)));
            assertFalse(pool.awaitInflight(Duration.ofSeconds(Long.MIN_VALUE)));
        });
        pool.putPage(pfn, 0, true);
        assertTrue(pool.awaitInflight(Duration.ofSeconds(Long.MAX_VALUE)), "and a huge positive one returns once all are back");
    }

    @Test
    void doublePutOfAPageInTheCacheThrowsAndChangesNothing() {
        int pfn = pool.allocPage();
        int other = pool.allocPage();
        pool.recycleDirect(pfn);

        assertMisuse(IllegalStateException.class, () -> pool.putPage(pfn, -1, true), "pfn " + pfn, "double put");
        assertMisuse(IllegalStateException.class, () -> pool.recycleDirect(pfn), "pfn " + pfn, "double put");
        assertMisuse(IllegalStateException.class, () -> pool.putPage(pfn, -1, false), "pfn " + pfn, "double put");
        assertAccounting(pool);

        // the page is in the cache once: handed out once, then the cache moves on to other pages
        assertEquals(pfn, pool.allocPage());
        assertNotEquals(pfn, pool.allocPage());
        pool.putPage(other, -1, false);
        pool.recycleDirect(pfn);
        assertAccounting(pool);
    }

    @Test
    void doublePutOfAPageInTheRingThrowsAndChangesNothing() throws Exception {
        int pfn = pool.allocPage();
        PagePoolTestSupport.onAnotherThread(() -> pool.putPage(pfn, -1, false));
        assertEquals(1, pool.stats().ringPages());

        assertMisuse(IllegalStateException.class, () -> pool.putPage(pfn, -1, false), "pfn " + pfn, "double put");
        PagePoolTestSupport.onAnotherThread(() -> assertMisuse(IllegalStateException.class,
                () -> pool.putPage(pfn, -1, true), "pfn " + pfn, "double put"));
        assertEquals(1, pool.stats().ringPages(), "the page is in the ring once");
        assertAccounting(pool);
    }

    @Test
    void putOfAPageTheAllocatorGaveSomeoneElseThrows() {
        int foreign = allocator.allocPages(0);
        pool.allocPage();
        assertMisuse(IllegalArgumentException.class, () -> pool.putPage(foreign, -1, true), "pfn " + foreign,
                "does not belong", "in no pool");
        assertAccounting(pool, 1);
        allocator.freePages(foreign, 0); // still the caller's page: the allocator takes it back
        assertAccounting(pool);
    }

    @Test
    void putOfAPfnOutOfRangeThrows() {
        int total = allocator.totalPages();
        for (int pfn : new int[] {-1, PageAllocator.NO_PAGE, total, total + 1, Integer.MAX_VALUE, Integer.MIN_VALUE}) {
            assertMisuse(IllegalArgumentException.class, () -> pool.putPage(pfn, -1, true), "pfn " + pfn,
                    "not a page of the allocator");
        }
        assertAccounting(pool);
    }

    @Test
    void putOfAPageOfAnotherPoolThrowsAndLeavesBothPoolsIntact() {
        PagePool other = PagePool.builder(allocator).build();
        int theirs = other.allocPage();
        int mine = pool.allocPage();
        String otherBefore = other.stats().toString();

        assertMisuse(IllegalArgumentException.class, () -> pool.putPage(theirs, -1, true), "pfn " + theirs,
                "does not belong", "belongs to PagePool#");
        assertEquals(otherBefore, other.stats().toString());

        other.putPage(theirs, -1, true); // the right pool still takes it
        pool.putPage(mine, -1, true);
        assertEquals(0, other.inflight());
        assertEquals(0, pool.inflight());
        other.close();
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void putPageOfAFragmentedPageThrows() {
        long frag = pool.allocFrag(100);
        int pfn = PagePool.fragPfn(frag);
        assertMisuse(IllegalArgumentException.class, () -> pool.putPage(pfn, -1, true), "pfn " + pfn,
                "carved into fragments");
        assertMisuse(IllegalArgumentException.class, () -> pool.recycleDirect(pfn), "pfn " + pfn, "fragments");
        pool.putFrag(frag, true); // the fragment still goes back normally
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void fragmentReleasedTwiceThrowsWhileItsPageIsStillCarved() {
        long a = pool.allocFrag(100);
        long b = pool.allocFrag(100);
        pool.allocFrag(4000); // retires the page of a and b
        int pfn = PagePool.fragPfn(a);
        pool.putFrag(a, true);

        assertMisuse(IllegalStateException.class, () -> pool.putFrag(a, true), "pfn " + pfn, "released twice");
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(a, false), "pfn " + pfn, "released twice");
        assertEquals(2, pool.inflight(), "b still holds its page");

        pool.putFrag(b, false); // the real last fragment: the page goes back exactly once
        PagePoolStats s = pool.stats();
        assertEquals(1, s.recycleRing(), s::toString);
        assertEquals(1, s.inflight(), s::toString);
        assertAccounting(pool);
    }

    @Test
    void fragmentReleasedTwiceAfterItsPageWasRecycledIsAStaleHandle() {
        long a = pool.allocFrag(4096);
        pool.allocFrag(64); // retires a's page
        int pfn = PagePool.fragPfn(a);
        pool.putFrag(a, false); // last fragment: the page goes to the ring

        assertMisuse(IllegalStateException.class, () -> pool.putFrag(a, false), "pfn " + pfn, "stale");
        assertAccounting(pool);
    }

    @Test
    void staleHandleAfterThePageWasRecycledAndCarvedAgainThrowsWithoutReleasingTheNewFragment() {
        long old = pool.allocFrag(2048);
        long old2 = pool.allocFrag(2048);
        int pfn = PagePool.fragPfn(old);
        pool.putFrag(old, true);
        pool.putFrag(old2, true);
        long fresh = pool.allocFrag(2048); // retires the page (all back): it is recycled and carved again
        assertEquals(pfn, PagePool.fragPfn(fresh));
        assertEquals(PagePool.fragOffset(old), PagePool.fragOffset(fresh), "same pfn, same offset, new generation");
        assertNotEquals(old, fresh);

        assertMisuse(IllegalStateException.class, () -> pool.putFrag(old, true), "pfn " + pfn, "stale handle");
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(old2, true), "pfn " + pfn, "stale handle");

        // the new fragment is intact: releasing it works, once
        pool.putFrag(fresh, true);
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(fresh, true), "pfn " + pfn, "released twice");
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void staleHandleOfAPageNowHandedOutWholeThrows() {
        long a = pool.allocFrag(4096);
        pool.allocFrag(64);
        int pfn = PagePool.fragPfn(a);
        pool.putFrag(a, true); // back into the cache
        assertEquals(pfn, pool.allocPage(), "the same page, now handed out whole");
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(a, true), "pfn " + pfn, "stale handle");
        pool.recycleDirect(pfn);
        assertAccounting(pool);
    }

    @Test
    void forgedHandlesThrow() {
        long a = pool.allocFrag(100); // [0, 128)
        long b = pool.allocFrag(100); // [128, 256)
        int pfn = PagePool.fragPfn(a);
        long slotMask = (1L << 24) - 1;

        long inside = (a & ~slotMask) | 1; // offset 64: inside a, not a fragment start
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(inside, true), "pfn " + pfn, "offset 64",
                "no fragment");
        long notYetCarved = (a & ~slotMask) | 10; // offset 640: past the carving point
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(notYetCarved, true), "pfn " + pfn,
                "no fragment");
        long pastTheBlock = (a & ~slotMask) | (PAGE / 64); // offset 4096
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(pastTheBlock, true), "pfn " + pfn,
                "outside the block");
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(PagePool.NO_FRAG, true),
                "not a fragment handle");
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(Long.MIN_VALUE, true),
                "not a fragment handle");
        long outOfRange = (long) allocator.totalPages() << 24;
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(outOfRange, true),
                "pfn " + allocator.totalPages(), "not a fragment handle");
        int wholePage = pool.allocPage();
        long wholeAsFrag = (a & ~(((1L << 30) - 1) << 24)) | ((long) wholePage << 24);
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(wholeAsFrag, true), "pfn " + wholePage);

        PagePool other = PagePool.builder(allocator).build();
        long theirs = other.allocFrag(100);
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(theirs, true),
                "pfn " + PagePool.fragPfn(theirs), "does not belong");
        other.putFrag(theirs, true);
        other.close();

        int foreign = allocator.allocPages(0);
        long foreignHandle = (long) foreign << 24;
        assertMisuse(IllegalArgumentException.class, () -> pool.putFrag(foreignHandle, true), "pfn " + foreign,
                "does not belong");
        allocator.freePages(foreign, 0);

        // nothing was released by the forgeries: both real fragments go back once each
        pool.putFrag(a, true);
        pool.putFrag(b, true);
        pool.recycleDirect(wholePage);
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void putAfterCloseOfAPageAlreadyReturnedThrows() {
        int returnedBefore = pool.allocPage();
        int returnedAfter = pool.allocPage();
        int stillOut = pool.allocPage();
        pool.recycleDirect(returnedBefore);
        pool.close();
        pool.putPage(returnedAfter, -1, true);

        // both pages are back in the allocator: a second put must not free them again
        assertMisuse(IllegalArgumentException.class, () -> pool.putPage(returnedBefore, -1, true),
                "pfn " + returnedBefore, "in no pool");
        assertMisuse(IllegalArgumentException.class, () -> pool.putPage(returnedAfter, -1, false),
                "pfn " + returnedAfter, "in no pool");
        assertEquals(1, pool.inflight());
        pool.putPage(stillOut, -1, false); // the legitimate late return still works
        assertAllBackAndClose(pool);
    }

    @Test
    void fragmentReleasedTwiceAfterCloseThrows() {
        long a = pool.allocFrag(100);
        long b = pool.allocFrag(100);
        int pfn = PagePool.fragPfn(a);
        pool.close();
        pool.putFrag(a, false);
        assertMisuse(IllegalStateException.class, () -> pool.putFrag(a, false), "pfn " + pfn, "released twice");
        pool.putFrag(b, true); // the last fragment: the page goes back to the allocator
        assertMisuse(RuntimeException.class, () -> pool.putFrag(b, true), "pfn " + pfn);
        assertAllBackAndClose(pool);
    }
    /**
     * A pool's pages are the pool's: the allocator's own free, bulk free, contiguous free and split
     * refuse them, naming the pool, whether the pool handed the page out, carved it into fragments
     * or parks it. Accepted, the free of a parked page let the allocator hand it to a second owner
     * while the pool handed it out again.
     */
    @Test
    void theAllocatorRefusesToFreeOrSplitAPagePoolsPage() {
        int out = pool.allocPage();
        int parked = pool.allocPage();
        pool.recycleDirect(parked);
        long frag = pool.allocFrag(256);
        int carved = PagePool.fragPfn(frag);
        String holder = "held by PagePool#";
        for (int pfn : new int[] {out, parked, carved}) {
            assertMisuse(IllegalArgumentException.class, () -> allocator.freePages(pfn, 0),
                    "freePages(pfn " + pfn + ", order 0)", holder, "putPage or putFrag");
            assertMisuse(IllegalArgumentException.class, () -> allocator.freePagesBulk(new int[] {pfn}, 1),
                    "pfn " + pfn, holder, "nothing was freed");
            assertMisuse(IllegalArgumentException.class, () -> allocator.freeContigRange(pfn, 1), "pfn " + pfn, holder);
            assertMisuse(IllegalArgumentException.class, () -> allocator.splitPage(pfn, 0), "pfn " + pfn, holder);
        }
        int fromAllocator = allocator.allocPages(0);
        assertNotEquals(parked, fromAllocator, "the parked page stays the pool's alone");
        allocator.freePages(fromAllocator, 0);
        pool.putPage(out, 0, true);
        pool.putFrag(frag, true);
        IllegalStateException e = assertThrows(IllegalStateException.class, allocator::close);
        assertTrue(e.getMessage().contains("held by page pools"), e.getMessage());
        assertFalse(allocator.isClosed());
    }

    /** checkConsistency() sees a pool's page that the page table does not mark as held by a pool, and the reverse. */
    @Test
    void theConsistencyCheckMatchesThePageTableWithThePools() {
        int pfn = pool.allocPage();
        allocator.markPooled(pfn, false); // as if the pool had forgotten to mark it
        IllegalStateException e = assertThrows(IllegalStateException.class, allocator::checkConsistency);
        assertTrue(e.getMessage().contains("pfn " + pfn) && e.getMessage().contains("holds it"), e.getMessage());
        allocator.markPooled(pfn, true);
        allocator.checkConsistency();
        int own = allocator.allocPages(0);
        allocator.markPooled(own, true);
        e = assertThrows(IllegalStateException.class, allocator::checkConsistency);
        assertTrue(e.getMessage().contains("pfn " + own) && e.getMessage().contains("no page pool holds it"), e.getMessage());
        allocator.markPooled(own, false);
        allocator.freePages(own, 0);
        pool.putPage(pfn, 0, true);
    }

    /** The same for a pool of blocks: splitting one of its order-2 blocks is refused. */
    @Test
    void theAllocatorRefusesToSplitAPagePoolsBlock() {
        PagePool blocks = PagePool.builder(allocator).order(2).build();
        int pfn = blocks.allocPage();
        assertMisuse(IllegalArgumentException.class, () -> allocator.splitPage(pfn, 2),
                "splitPage(pfn " + pfn + ", order 2)", "held by PagePool#");
        assertMisuse(IllegalArgumentException.class, () -> allocator.freePages(pfn, 2), "held by PagePool#");
        blocks.putPage(pfn, 0, true);
        blocks.close();
    }

    /** {@link PagePool#NO_FRAG} is not a handle: decoding it is an error, not a plausible pfn. */
    @Test
    void decodingNoFragIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PagePool.fragPfn(PagePool.NO_FRAG));
        assertTrue(e.getMessage().contains("NO_FRAG"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PagePool.fragOffset(PagePool.NO_FRAG));
        assertThrows(IllegalArgumentException.class, () -> PagePool.fragPfn(Long.MIN_VALUE));
    }
}
