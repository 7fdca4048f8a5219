package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;

/**
 * Shared helpers for the allocator tests: small allocators that exhaust quickly, page patterns
 * that reveal overlapping allocations, and the "everything came back" check.
 *
 * <p>Everything here goes through the public API only, as a user of the allocator would.
 */
final class AllocatorTesting {

    static final int PAGE = PageAllocator.DEFAULT_PAGE_SIZE;

    private AllocatorTesting() {
    }

    /**
     * 1024 pages (4 MiB), max order 6 (so 16 regions of 64 pages, reserved lazily), small per-CPU
     * sets (batch 8, high 32) and 4 magazines: orders 4..6 take the zone path, 0..3 the caches.
     */
    static PageAllocator.Builder small(CpuCacheMode mode) {
        return PageAllocator.builder()
                .capacity(1024L * PAGE)
                .maxOrder(6)
                .pcpBatch(8)
                .pcpHigh(32)
                .magazines(4)
                .cpuCacheMode(mode);
    }

    /** What page {@code pfn} of an allocation with {@code token} holds: unique per (allocation, page). */
    static long pattern(int token, int pfn) {
        return ((long) token << 32) | (pfn & 0xFFFF_FFFFL);
    }

    /** Writes the allocation's pattern at the first and last 8 bytes of every page of the block. */
    static void writePattern(PageAllocator a, int pfn, int order, int token) {
        int pageSize = a.pageSize();
        for (int p = pfn, end = pfn + (1 << order); p < end; p++) {
            ByteBuffer region = a.regionBuffer(p);
            int off = a.regionOffset(p);
            long v = pattern(token, p);
            region.putLong(off, v);
            region.putLong(off + pageSize - Long.BYTES, ~v);
        }
    }

    /** Fails unless every page of the block still holds what {@link #writePattern} put there. */
    static void verifyPattern(PageAllocator a, int pfn, int order, int token) {
        int pageSize = a.pageSize();
        for (int p = pfn, end = pfn + (1 << order); p < end; p++) {
            ByteBuffer region = a.regionBuffer(p);
            int off = a.regionOffset(p);
            long v = pattern(token, p);
            long head = region.getLong(off);
            long tail = region.getLong(off + pageSize - Long.BYTES);
            if (head != v || tail != ~v) {
                fail("page " + p + " of the order-" + order + " block at pfn " + pfn + " (allocation #" + token
                        + ") was overwritten: it holds allocation #" + (head >>> 32) + "'s data for pfn "
                        + (int) head + " (and tail " + Long.toHexString(tail) + "): another allocation overlaps it");
            }
        }
    }

    /**
     * Free blocks of {@code order} that the buddy lists hold once every page of the reserved
     * regions is free and merged: one max-order block per full region, and a short last region cut
     * into the binary decomposition of its length.
     */
    static long expectedFreeBlocksWhenAllFree(long reservedPages, int maxOrder, int order) {
        if (order == maxOrder) {
            return reservedPages >> maxOrder;
        }
        long rest = reservedPages & ((1L << maxOrder) - 1);
        return (rest >> order) & 1;
    }

    /**
     * After every page has been freed: drains the caches, then checks that the allocator is back to
     * its pristine shape: consistent, every page free, nothing parked, and the buddy lists merged
     * back into the largest blocks the reserved memory allows.
     */
    static void assertEverythingFreeAndMerged(PageAllocator a) {
        a.drainCpuCaches();
        a.checkConsistency();
        assertEquals(a.totalPages(), a.freePageCount(), "every page is free again");
        assertEquals(0, a.cachedPageCount(), "no page stays parked after drainCpuCaches()");
        PageAllocatorStats s = a.stats();
        assertEquals(0, s.allocatedPages(), "stats report no allocated page");
        long reserved = a.totalPages() - s.unreservedPages();
        assertEquals(reserved, s.buddyFreePages(), "every reserved page is on the buddy lists");
        for (int o = 0; o <= a.maxOrder(); o++) {
            assertEquals(expectedFreeBlocksWhenAllFree(reserved, a.maxOrder(), o), s.freeBlocks(o),
                    "free order-" + o + " blocks once everything is free and merged: " + s);
        }
    }

    static void assertContains(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message != null && message.contains(part),
                    "message should contain \"" + part + "\" but was: " + message);
        }
    }
}
