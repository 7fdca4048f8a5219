package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * README.md's "pieces underneath" example, statement for statement, so the snippet users copy
 * first keeps compiling and keeps doing what its comments say. Change both together.
 */
class ReadmeExampleTest {

    @Test
    void theReadmeExampleRunsAndGivesEveryPageBack() {
        long freeAfterwards;
        int total;
        try (PageAllocator pages = PageAllocator.builder().capacity(256L << 20).build()) {
            int[] batch = new int[64];
            Arrays.fill(batch, PageAllocator.NO_PAGE);
            int got = pages.allocPagesBulk(64, batch);       // fewer than 64 only when memory runs out
            ByteBuffer region = pages.regionBuffer(batch[0]); // absolute access at pages.regionOffset(pfn)
            region.putLong(pages.regionOffset(batch[0]), 0x1122334455667788L);
            assertEquals(0x1122334455667788L, region.getLong(pages.regionOffset(batch[0])));
            assertEquals(64, got);
            pages.freePagesBulk(batch, got);

            PagePool pool = PagePool.builder(pages).build();  // owned by this thread
            int pfn = pool.allocPage();                       // cache, then ring, then allocPagesBulk(64)
            assertNotEquals(PageAllocator.NO_PAGE, pfn);
            assertEquals(1, pool.stats().allocSlow());
            pool.recycleDirect(pfn);                          // back into the cache: no atomics
            assertEquals(1, pool.stats().recycleCached());
            long frag = pool.allocFrag(1500);                 // several fragments per page
            assertNotEquals(PagePool.NO_FRAG, frag);
            pool.putFrag(frag, false);                        // from any thread
            pool.close();
            assertEquals(0, pool.inflight());

            pages.drainCpuCaches();
            pages.checkConsistency();
            freeAfterwards = pages.freePageCount();
            total = pages.totalPages();
        }
        assertEquals(total, freeAfterwards, "every page back in the allocator");
    }
}
