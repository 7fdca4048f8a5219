package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.onAnotherThread;
import static io.pagepool.core.PagePoolTestSupport.PAGE;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.assertAllBackAndClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pagepool.core.PagePoolTestSupport.CountingDmaMapper;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The {@link DmaMapper} hook: a page is mapped once when it enters the pool and unmapped once when it leaves
 * (ring full, close, a return after close), never per packet; every recycle syncs
 * {@code min(dmaSyncLength, maxSyncLength)} bytes from {@code syncOffset}; {@code dmaAddress} is what map
 * returned. The counting mapper also checks the protocol per page (no double map, no sync or unmap of an
 * unmapped page, unmap with the address map returned).
 */
class PagePoolDmaMapperTest {

    private static final int PAGES = 1024;

    @Test
    void pagesAreMappedOnceWhenTheyEnterAndDmaAddressIsWhatMapReturned() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).build();

        int pfn = pool.allocPage();

        assertEquals(64, mapper.maps.get(), "the whole refill batch is mapped as it enters");
        assertEquals(0, mapper.unmaps.get());
        assertEquals(0, mapper.syncs.get(), "allocation does not sync");
        assertEquals(CountingDmaMapper.deviceAddress(pfn), pool.dmaAddress(pfn));
        for (int i = 0; i < 63; i++) {
            int p = pool.allocPage();
            assertEquals(CountingDmaMapper.deviceAddress(p), pool.dmaAddress(p));
            assertEquals(1, mapper.mapCount.get(p));
        }
        assertEquals(64, mapper.maps.get(), "pages from the cache are not mapped again");
        mapper.assertNoViolations();
    }

    @Test
    void recyclingTenThousandTimesMapsOnlyTheInitialPages() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).build();
        int[] burst = new int[32];
        int recycles = 0;
        for (int i = 0; i < 10_000 / burst.length; i++) {
            for (int j = 0; j < burst.length; j++) {
                burst[j] = pool.allocPage();
            }
            for (int j = 0; j < burst.length; j++) {
                if ((i + j) % 3 == 0) {
                    pool.recycleDirect(burst[j]);
                } else {
                    pool.putPage(burst[j], 1500, (i + j) % 3 == 1); // direct or through the ring
                }
                recycles++;
            }
        }
        assertTrue(pool.stats().allocRefill() > 0, "the ring path must be exercised too");
        assertEquals(64, mapper.maps.get(), "only the 64 pages of the first refill were ever mapped");
        assertEquals(0, mapper.unmaps.get(), "a recycled page stays mapped");
        assertEquals(recycles, mapper.syncs.get(), "each recycle syncs once");
        assertAccounting(pool);

        pool.close();
        assertEquals(64, mapper.unmaps.get(), "each page is unmapped once when it leaves at close");
        for (int pfn = 0; pfn < PAGES; pfn++) {
            assertEquals(mapper.mapCount.get(pfn), mapper.unmapCount.get(pfn), "pfn " + pfn);
        }
        mapper.assertNoViolations();
        assertAllBackAndClose(pool);
    }

    @Test
    void syncLengthIsTheCallersCappedByMaxSyncLengthFromSyncOffset() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).maxSyncLength(1500).syncOffset(128).build();
        int pfn = pool.allocPage();

        assertSync(mapper, pool, pfn, 100, 100);
        assertSync(mapper, pool, pfn, 1500, 1500);
        assertSync(mapper, pool, pfn, 1501, 1500);
        assertSync(mapper, pool, pfn, 9000, 1500);
        assertSync(mapper, pool, pfn, -1, 1500); // negative: the whole maxSyncLength
        assertSync(mapper, pool, pfn, Integer.MIN_VALUE, 1500);

        long before = mapper.syncs.get();
        pool.putPage(pfn, 0, true); // 0: no sync at all
        assertEquals(before, mapper.syncs.get());
        assertEquals(pfn, pool.allocPage());

        before = mapper.syncs.get();
        pool.recycleDirect(pfn); // recycleDirect syncs the whole maxSyncLength
        assertEquals(before + 1, mapper.syncs.get());
        assertEquals(1500, mapper.lastSyncLength);
        assertEquals(128, mapper.lastSyncOffset);
        mapper.assertNoViolations();
    }

    private static void assertSync(CountingDmaMapper mapper, PagePool pool, int pfn, int dmaSyncLength, int expected) {
        long before = mapper.syncs.get();
        pool.putPage(pfn, dmaSyncLength, true);
        assertEquals(before + 1, mapper.syncs.get(), "putPage(" + dmaSyncLength + ") syncs once");
        assertEquals(pfn, mapper.lastSyncPfn);
        assertEquals(expected, mapper.lastSyncLength, "putPage(" + dmaSyncLength + ")");
        assertEquals(128, mapper.lastSyncOffset, "syncOffset is passed through");
        assertEquals(pfn, pool.allocPage());
    }

    @Test
    void withoutMaxSyncLengthTheWholeBlockIsSyncedAndZeroMeansNeverSync() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper whole = new CountingDmaMapper(PAGES, 4 * PAGE);
        PagePool order2 = PagePool.builder(allocator).order(2).dmaMapper(whole).build();
        int block = order2.allocPage();
        order2.putPage(block, -1, false);
        assertEquals(4 * PAGE, whole.lastSyncLength, "default maxSyncLength is the whole block");
        assertEquals(0, whole.lastSyncOffset);
        assertEquals(1, whole.maps.get());
        whole.assertNoViolations();
        order2.close();
        assertEquals(1, whole.unmaps.get());

        CountingDmaMapper none = new CountingDmaMapper(PAGES, PAGE);
        PagePool noSync = PagePool.builder(allocator).dmaMapper(none).maxSyncLength(0).build();
        for (int i = 0; i < 100; i++) {
            noSync.putPage(noSync.allocPage(), 1000, i % 2 == 0);
        }
        assertEquals(0, none.syncs.get(), "maxSyncLength 0: nothing to sync");
        none.assertNoViolations();
        noSync.close();
        assertAllBackAndClose(noSync);
    }

    @Test
    void aPageIsUnmappedOnceWhenItLeavesThroughAFullRing() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).cacheSize(1).refillBatch(1).ringSize(2).build();
        int[] pfns = new int[4];
        for (int i = 0; i < 4; i++) {
            pfns[i] = pool.allocPage();
        }
        assertEquals(4, mapper.maps.get());
        for (int pfn : pfns) {
            pool.putPage(pfn, -1, false);
        }
        assertEquals(2, pool.stats().recycleRingFull());
        assertEquals(2, mapper.unmaps.get());
        assertFalse(mapper.isMapped(pfns[2]));
        assertFalse(mapper.isMapped(pfns[3]));
        assertTrue(mapper.isMapped(pfns[0]) && mapper.isMapped(pfns[1]), "pages in the ring stay mapped");
        assertThrows(IllegalArgumentException.class, () -> pool.dmaAddress(pfns[2]), "a page that left has no mapping");

        // a page that leaves and comes back is mapped again: once per stay
        int a = pool.allocPage(); // ring refill
        int b = pool.allocPage(); // ring refill
        int c = pool.allocPage(); // slow path: a page from the allocator, mapped on entry
        assertEquals(5, mapper.maps.get());
        assertEquals(CountingDmaMapper.deviceAddress(c), pool.dmaAddress(c));
        for (int pfn : new int[] {a, b, c}) {
            pool.putPage(pfn, -1, true);
        }
        pool.close();
        assertEquals(5, mapper.unmaps.get());
        assertEquals(0, mapper.mappedNow());
        mapper.assertNoViolations();
        assertAllBackAndClose(pool);
    }

    @Test
    void pagesReturnedAfterCloseAreUnmappedOnceAndNotSynced() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            out.add(pool.allocPage());
        }
        long frag = pool.allocFrag(100); // from the cache: no new mapping
        assertEquals(64, mapper.maps.get());

        pool.close();

        assertEquals(53, mapper.unmaps.get(), "the 53 cached pages are unmapped as they leave at close");
        for (int pfn : out) {
            assertTrue(mapper.isMapped(pfn), "a page in flight stays mapped after close");
        }
        for (int i = 0; i < 5; i++) {
            pool.putPage(out.get(i), -1, true);
        }
        List<Integer> rest = out.subList(5, 10);
        onAnotherThread(() -> {
            for (int pfn : rest) {
                pool.putPage(pfn, 1000, false);
            }
            pool.putFrag(frag, false);
        });
        assertEquals(64, mapper.unmaps.get(), "each late return is unmapped once");
        assertEquals(0, mapper.syncs.get(), "a page leaving a closed pool is not synced for the device");
        assertEquals(0, mapper.mappedNow());
        for (int pfn = 0; pfn < PAGES; pfn++) {
            assertTrue(mapper.mapCount.get(pfn) <= 1 && mapper.mapCount.get(pfn) == mapper.unmapCount.get(pfn),
                    "pfn " + pfn);
        }
        mapper.assertNoViolations();
        assertAllBackAndClose(pool);
    }

    @Test
    void aFragmentPageIsMappedOnceAndSyncedOnceWhenItsLastFragmentReturns() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper mapper = new CountingDmaMapper(PAGES, PAGE);
        PagePool pool = PagePool.builder(allocator).dmaMapper(mapper).maxSyncLength(2048).build();
        long[] frags = new long[16];
        for (int i = 0; i < 16; i++) {
            frags[i] = pool.allocFrag(256); // one page, 16 fragments
        }
        int pfn = PagePool.fragPfn(frags[0]);
        long next = pool.allocFrag(256); // retires pfn
        assertEquals(64, mapper.maps.get());
        for (int i = 0; i < 15; i++) {
            pool.putFrag(frags[i], i % 2 == 0);
        }
        assertEquals(0, mapper.syncCount.get(pfn), "fragments are not synced one by one");
        onAnotherThread(() -> pool.putFrag(frags[15], false));
        assertEquals(1, mapper.syncCount.get(pfn), "the page is synced once when it is recycled");
        assertEquals(2048, mapper.lastSyncLength);
        assertEquals(64, mapper.maps.get());
        pool.putFrag(next, true);
        pool.close();
        assertEquals(64, mapper.unmaps.get());
        mapper.assertNoViolations();
        assertAllBackAndClose(pool);
    }

    @Test
    void poolsSharingAnAllocatorKeepTheirOwnMappings() {
        PageAllocator allocator = PagePoolTestSupport.allocator(PAGES);
        CountingDmaMapper m1 = new CountingDmaMapper(PAGES, PAGE);
        PagePool mapped = PagePool.builder(allocator).dmaMapper(m1).build();
        PagePool unmapped = PagePool.builder(allocator).build();
        int a = mapped.allocPage();
        int b = unmapped.allocPage();
        assertEquals(CountingDmaMapper.deviceAddress(a), mapped.dmaAddress(a));
        assertEquals(0, unmapped.dmaAddress(b), "a pool without a mapper has no device addresses");
        assertThrows(IllegalArgumentException.class, () -> mapped.dmaAddress(b));
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 64; i++) {
            seen.add(unmapped.allocPage());
        }
        for (int pfn : seen) {
            assertEquals(0, m1.mapCount.get(pfn), "a page of the other pool was mapped by this pool's mapper");
        }
        m1.assertNoViolations();
    }
}
