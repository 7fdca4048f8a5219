package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A {@link DmaMapper} that throws (an IOMMU out of space, a device gone): the exception reaches the
 * caller, and the pool neither loses a page nor lets one be in two places.
 */
class PagePoolDmaMapperFailureTest {

    /** Throws from map, unmap or syncForDevice on the given call (1-based; 0 never). */
    static class FailingMapper implements DmaMapper {
        final AtomicInteger maps = new AtomicInteger();
        final AtomicInteger unmaps = new AtomicInteger();
        final AtomicInteger syncs = new AtomicInteger();
        final int failMap;
        final int failUnmap;
        final int failSync;

        FailingMapper(int failMap, int failUnmap, int failSync) {
            this.failMap = failMap;
            this.failUnmap = failUnmap;
            this.failSync = failSync;
        }

        @Override
        public long map(int pfn, long address, int length) {
            if (maps.incrementAndGet() == failMap) {
                throw new IllegalStateException("IOMMU full at pfn " + pfn);
            }
            return address;
        }

        @Override
        public void unmap(int pfn, long dmaAddress, int length) {
            if (unmaps.incrementAndGet() == failUnmap) {
                throw new IllegalStateException("unmap failed at pfn " + pfn);
            }
        }

        @Override
        public void syncForDevice(int pfn, long dmaAddress, int offset, int length) {
            if (syncs.incrementAndGet() == failSync) {
                throw new IllegalStateException("sync failed at pfn " + pfn);
            }
        }
    }

    private static PageAllocator allocator() {
        return PageAllocator.builder().capacity(1024 * 4096L).build();
    }

    @Test
    void aMapFailureInTheMiddleOfARefillReturnsTheRestOfTheBatchAndKeepsWhatWasMapped() {
        PageAllocator allocator = allocator();
        PagePool pool = PagePool.builder(allocator).dmaMapper(new FailingMapper(3, 0, 0)).build();

        IllegalStateException e = assertThrows(IllegalStateException.class, pool::allocPage);
        assertTrue(e.getMessage().startsWith("IOMMU full"), e.getMessage());
        assertEquals(2, allocator.stats().allocatedPages(), "the two pages mapped stay in the pool, the other 62 went back");
        assertEquals(2, pool.stats().cachedPages());
        assertEquals(0, pool.inflight());

        int a = pool.allocPage();
        int b = pool.allocPage();
        assertNotEquals(a, b);
        pool.putPage(a, 0, true);
        pool.putPage(b, 0, true);
        pool.close();
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.checkConsistency();
        allocator.close();
    }

    @Test
    void aMapFailureOnAHighOrderBlockReturnsTheBlock() {
        PageAllocator allocator = allocator();
        PagePool pool = PagePool.builder(allocator).order(2).dmaMapper(new FailingMapper(1, 0, 0)).build();

        assertThrows(IllegalStateException.class, pool::allocPage);
        assertEquals(0, allocator.stats().allocatedPages());
        int pfn = pool.allocPage(); // the next map succeeds
        pool.putPage(pfn, 0, true);
        pool.close();
        allocator.checkConsistency();
        allocator.close();
    }

    @Test
    void anUnmapFailureDuringTrimLeavesNoFreedPageInTheCache() {
        PageAllocator allocator = allocator();
        PagePool pool = PagePool.builder(allocator).dmaMapper(new FailingMapper(0, 2, 0)).build();
        Set<Integer> fromPool = new HashSet<>();
        fromPool.add(pool.allocPage()); // 64 pages enter, 63 stay cached

        assertThrows(IllegalStateException.class, pool::trim); // the first page goes, the second unmap throws
        int cached = pool.stats().cachedPages();
        assertEquals(61, cached, "both pages trim reached left the cache");
        for (int i = 0; i < cached; i++) {
            assertTrue(fromPool.add(pool.allocPage()));
        }
        assertEquals(62, allocator.stats().allocatedPages(), "the page whose unmap threw was freed all the same");
        int direct = allocator.allocPages(0);
        assertTrue(!fromPool.contains(direct), "pfn " + direct + " is held by a pool user and an allocator user");
        allocator.freePages(direct, 0);
        for (int pfn : fromPool) {
            pool.putPage(pfn, 0, true);
        }
        pool.close();
        allocator.checkConsistency();
        allocator.close();
    }

    @Test
    void anUnmapFailureDuringCloseStillReleasesEveryOtherPage() {
        PageAllocator allocator = allocator();
        FailingMapper mapper = new FailingMapper(0, 5, 0);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).build();
        pool.putPage(pool.allocPage(), 0, true); // 64 pages cached

        IllegalStateException e = assertThrows(IllegalStateException.class, pool::close);
        assertTrue(e.getMessage().startsWith("unmap failed"), e.getMessage());
        assertEquals(64, mapper.unmaps.get(), "every page was unmapped once, the failing one included");
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.checkConsistency();
        allocator.close();
    }

    @Test
    void aSyncFailureOnReturnTakesThePageOutOfThePoolInsteadOfLosingIt() {
        PageAllocator allocator = allocator();
        PagePool pool = PagePool.builder(allocator).dmaMapper(new FailingMapper(0, 0, 1)).build();
        int pfn = pool.allocPage();

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.putPage(pfn, -1, true));
        assertTrue(e.getMessage().startsWith("sync failed"), e.getMessage());
        assertEquals(0, pool.inflight(), "the page counts as returned");
        assertEquals(63, allocator.stats().allocatedPages(), "the page went back to the allocator, the cache kept 63");
        IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> pool.putPage(pfn, -1, true));
        assertTrue(again.getMessage().contains("pfn " + pfn), again.getMessage());
        pool.close();
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.checkConsistency();
        allocator.close();
    }

    @Test
    void syncsFromAnOffsetStayInsideTheBlock() {
        int[] last = new int[2];
        PagePool pool = PagePool.builder(allocator()).syncOffset(256).dmaMapper(new FailingMapper(0, 0, 0) {
            @Override
            public void syncForDevice(int pfn, long dmaAddress, int offset, int length) {
                last[0] = offset;
                last[1] = length;
            }
        }).build();
        pool.putPage(pool.allocPage(), -1, true);
        assertEquals(256, last[0]);
        assertEquals(pool.blockBytes() - 256, last[1], "the whole block from the offset, not past its end");
        pool.close();
    }
    /**
     * close() first retires the page fragments are carved from; when its fragments are all back it
     * is released right there, and an unmap failing on it must not stop close() before the cache.
     */
    @Test
    void anUnmapFailureOnTheFragmentPageDuringCloseStillReleasesTheCache() {
        PageAllocator allocator = allocator();
        FailingMapper mapper = new FailingMapper(0, 1, 0);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).build();
        pool.putFrag(pool.allocFrag(64), true); // 64 pages entered: one carved (its fragment back), 63 cached

        IllegalStateException e = assertThrows(IllegalStateException.class, pool::close);
        assertTrue(e.getMessage().startsWith("unmap failed"), e.getMessage());
        pool.close(); // a second close does nothing
        assertEquals(64, mapper.unmaps.get(), () -> "every page unmapped once: " + pool.stats());
        assertEquals(0, allocator.stats().allocatedPages(), () -> "pages kept by the closed pool: " + pool.stats());
        allocator.checkConsistency();
        allocator.close();
    }

    /** A sync that fails and then an unmap that fails on the same page: the caller hears of both. */
    @Test
    void aSyncFailureIsReportedEvenWhenReleasingThePageFailsToo() {
        PageAllocator allocator = allocator();
        PagePool pool = PagePool.builder(allocator).dmaMapper(new FailingMapper(0, 1, 1)).build();
        int pfn = pool.allocPage();

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.putPage(pfn, -1, true));
        assertTrue(e.getMessage().startsWith("sync failed"), e::toString);
        assertEquals(1, e.getSuppressed().length);
        assertTrue(e.getSuppressed()[0].getMessage().startsWith("unmap failed"), e.getSuppressed()[0]::toString);
        assertEquals(0, pool.inflight());
        pool.close();
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.close();
    }

    @Test
    void aNegativeMaxSyncLengthIsRefused() {
        PageAllocator allocator = allocator();
        for (int bytes : new int[] {-1, -100}) {
            PagePool.Builder b = PagePool.builder(allocator).maxSyncLength(bytes).dmaMapper(new FailingMapper(0, 0, 0));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
            assertTrue(e.getMessage().contains("maxSyncLength " + bytes + " must not be negative"), e::getMessage);
        }
        assertEquals(0, allocator.stats().allocatedPages());
        allocator.close();
    }
}
