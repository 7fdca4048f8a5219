package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.allocator;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.onAnotherThread;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** {@link PagePool#trim()}: parked pages go back to the allocator, in-flight ones stay out. */
class PagePoolTrimTest {

    @Test
    void trimReleasesTheCacheAndTheRingButNotPagesInFlight() {
        PageAllocator allocator = allocator(1024);
        AtomicInteger unmapped = new AtomicInteger();
        PagePool pool = PagePool.builder(allocator).dmaMapper(new DmaMapper() {
            @Override
            public long map(int pfn, long address, int length) {
                return address;
            }

            @Override
            public void unmap(int pfn, long dmaAddress, int length) {
                unmapped.incrementAndGet();
            }

            @Override
            public void syncForDevice(int pfn, long dmaAddress, int offset, int length) {
            }
        }).build();
        int kept = pool.allocPage();        // slow path: 64 pages enter, 63 stay cached
        int viaRing = pool.allocPage();
        pool.putPage(viaRing, 0, false);    // parked in the ring
        assertEquals(64, allocator.stats().allocatedPages());

        assertEquals(63, pool.trim(), "62 cached + 1 in the ring");

        PagePoolStats s = pool.stats();
        assertEquals(0, s.cachedPages());
        assertEquals(0, s.ringPages());
        assertEquals(1, s.inflight());
        assertEquals(1, s.pagesHeld());
        assertEquals(63, unmapped.get(), "every released page is unmapped once");
        assertEquals(1, allocator.stats().allocatedPages(), "only the page in flight is still out");
        assertAccounting(pool);

        pool.recycleDirect(kept);
        long slowBefore = pool.stats().allocSlow();
        assertEquals(kept, pool.allocPage());
        assertEquals(slowBefore, pool.stats().allocSlow(), "the returned page serves the next allocation");
        pool.close();
    }

    @Test
    void aTrimmedPoolRefillsFromTheAllocator() {
        PageAllocator allocator = allocator(1024);
        PagePool pool = PagePool.builder(allocator).build();
        pool.recycleDirect(pool.allocPage());
        pool.trim();
        int pfn = pool.allocPage();
        assertEquals(2, pool.stats().allocSlow(), "after a trim the cache is empty: the slow path refills it");
        pool.recycleDirect(pfn);
        pool.close();
        allocator.checkConsistency();
        assertEquals(0, allocator.stats().allocatedPages());
    }

    @Test
    void trimIsForTheOwnerOfAnOpenPool() throws Exception {
        PageAllocator allocator = allocator(1024);
        PagePool pool = PagePool.builder(allocator).build();
        pool.recycleDirect(pool.allocPage());
        onAnotherThread(() -> {
            IllegalStateException e = assertThrows(IllegalStateException.class, pool::trim);
            assertTrue(e.getMessage().contains("owner"), e.getMessage());
        });
        assertEquals(64, pool.stats().cachedPages(), "a refused trim releases nothing");
        pool.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, pool::trim);
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
}
