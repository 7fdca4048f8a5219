package io.pagepool.core;

import static io.pagepool.core.AllocatorTesting.PAGE;
import static io.pagepool.core.AllocatorTesting.assertContains;
import static io.pagepool.core.AllocatorTesting.assertEverythingFreeAndMerged;
import static io.pagepool.core.AllocatorTesting.small;
import static io.pagepool.core.AllocatorTesting.verifyPattern;
import static io.pagepool.core.AllocatorTesting.writePattern;
import static io.pagepool.core.PageAllocator.NO_PAGE;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every public operation of {@link PageAllocator}, each under all three {@link CpuCacheMode}s,
 * asserting what a user of the allocator observes: pfns, counts, page contents and statistics.
 * Most tests use {@link AllocatorTesting#small}: 1024 pages, max order 6 (orders 4-6 take the
 * zone path), batch 8, high 32.
 */
class PageAllocatorOperationsTest {

    // ------------------------------------------------------------------ allocPages / freePages

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void allocPagesReturnsAlignedNonOverlappingBlocksAtEveryOrder(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            BitSet used = new BitSet();
            int[] pfns = new int[a.maxOrder() + 1];
            long free = a.totalPages();
            for (int order = 0; order <= a.maxOrder(); order++) {
                int pfn = a.allocPages(order);
                int size = 1 << order;
                assertNotEquals(NO_PAGE, pfn, "order " + order);
                assertEquals(0, pfn & (size - 1), "an order-" + order + " block is aligned to its size");
                assertTrue(pfn + size <= a.totalPages());
                assertTrue(used.get(pfn, pfn + size).isEmpty(), "order-" + order + " block at " + pfn + " overlaps another");
                used.set(pfn, pfn + size);
                free -= size;
                assertEquals(free, a.freePageCount(), "free pages after allocating order " + order);
                writePattern(a, pfn, order, order + 1);
                pfns[order] = pfn;
            }
            for (int order = 0; order <= a.maxOrder(); order++) {
                verifyPattern(a, pfns[order], order, order + 1);
                a.freePages(pfns[order], order);
                free += 1 << order;
                assertEquals(free, a.freePageCount(), "free pages after freeing order " + order);
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void maxOrderBlocksRunOutWithNoPageAndComeBackWhenFreed(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int max = a.maxOrder();
            List<Integer> blocks = new ArrayList<>();
            for (int pfn; (pfn = a.allocPages(max)) != NO_PAGE; ) {
                blocks.add(pfn);
                assertTrue(blocks.size() <= a.totalPages() >> max, "more max-order blocks than memory holds");
            }
            assertEquals(a.totalPages() >> max, blocks.size(), "every max-order block can be allocated");
            assertEquals(0, a.freePageCount());
            assertEquals(NO_PAGE, a.allocPages(0), "no order-0 page is left either");
            assertEquals(2, a.stats().allocFailures(), "both failed calls are counted");

            a.freePages(blocks.remove(3), max);
            int again = a.allocPages(max);
            assertNotEquals(NO_PAGE, again, "a freed block can be allocated again");
            blocks.add(again);
            for (int pfn : blocks) {
                a.freePages(pfn, max);
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void largeAllocationReclaimsPagesParkedInThisThreadsCacheBeforeFailing(CpuCacheMode mode) {
        // One region of 64 pages: an order-6 allocation needs every page free and merged.
        try (PageAllocator a = small(mode).capacity(64L * PAGE).build()) {
            int[] pages = new int[64];
            for (int i = 0; i < 64; i++) {
                pages[i] = a.allocPages(0);
                assertNotEquals(NO_PAGE, pages[i]);
            }
            for (int pfn : pages) {
                a.freePages(pfn, 0);
            }
            if (mode != CpuCacheMode.NONE) {
                assertTrue(a.cachedPageCount() > 0, "precondition: some pages are parked in the cache");
            }
            int block = a.allocPages(6);
            assertEquals(0, block, "the whole region is allocatable once the parked pages are reclaimed");
            assertEquals(0, a.cachedPageCount());
            a.freePages(block, 6);
            assertEverythingFreeAndMerged(a);
        }
    }

    // ------------------------------------------------------------------ bulk allocation and free

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkAllocFillsOnlyEmptySlotsAmongTheFirstNrPagesAndCountsPrePopulatedOnes(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int held1 = a.allocPages(0);
            int held2 = a.allocPages(0);
            int[] array = new int[16];
            Arrays.fill(array, NO_PAGE);
            array[3] = held1;
            array[7] = held2;

            assertEquals(12, a.allocPagesBulk(12, array), "12 slots populated, the 2 pre-set ones included");
            assertEquals(held1, array[3], "a pre-populated slot is left alone");
            assertEquals(held2, array[7], "a pre-populated slot is left alone");
            for (int i = 12; i < 16; i++) {
                assertEquals(NO_PAGE, array[i], "slot " + i + " lies beyond nrPages and stays empty");
            }
            BitSet seen = new BitSet();
            for (int i = 0; i < 12; i++) {
                assertNotEquals(NO_PAGE, array[i], "slot " + i);
                assertFalse(seen.get(array[i]), "pfn " + array[i] + " is in the array twice");
                seen.set(array[i]);
            }
            assertEquals(a.totalPages() - 12, a.freePageCount(), "10 new pages plus the 2 held before");
            for (int i = 0; i < 12; i++) {
                writePattern(a, array[i], 0, i + 1);
            }
            for (int i = 0; i < 12; i++) {
                verifyPattern(a, array[i], 0, i + 1);
            }
            a.freePagesBulk(array, 12);
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkAllocOfZeroPagesReturnsZeroAndTouchesNothing(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int[] array = {NO_PAGE, NO_PAGE, 5};
            assertEquals(0, a.allocPagesBulk(0, array));
            assertArrayEquals(new int[] {NO_PAGE, NO_PAGE, 5}, array);
            assertEquals(0, a.allocPagesBulk(0, new int[0]));
            assertEquals(a.totalPages(), a.freePageCount());
            a.freePagesBulk(new int[] {1, 2}, 0); // count 0 frees nothing, whatever the array holds
            assertEquals(a.totalPages(), a.freePageCount());
            a.checkConsistency();
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkAllocReturnsFewerWhenZoneIsEmpty(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            List<int[]> held = new ArrayList<>();
            // Hold all but 5 pages: 15 max-order blocks, then 59 single pages of the last region.
            for (int i = 0; i < 15; i++) {
                held.add(new int[] {a.allocPages(6), 6});
            }
            for (int i = 0; i < 59; i++) {
                held.add(new int[] {a.allocPages(0), 0});
            }
            for (int[] h : held) {
                assertNotEquals(NO_PAGE, h[0]);
            }
            assertEquals(5, a.freePageCount());

            int[] array = new int[20];
            Arrays.fill(array, NO_PAGE);
            array[0] = held.get(15)[0];
            array[9] = held.get(16)[0];
            long failuresBefore = a.stats().allocFailures();
            int populated = a.allocPagesBulk(16, array);
            assertEquals(7, populated, "the 5 pages left plus the 2 pre-populated slots; no exception");
            assertEquals(7, Arrays.stream(array, 0, 16).filter(p -> p != NO_PAGE).count());
            assertEquals(0, a.freePageCount());
            assertEquals(failuresBefore + 1, a.stats().allocFailures(), "a short bulk call is counted as a failure");

            int[] empty = new int[8];
            Arrays.fill(empty, NO_PAGE);
            assertEquals(0, a.allocPagesBulk(8, empty), "nothing left: zero, not an exception");
            assertTrue(Arrays.stream(empty).allMatch(p -> p == NO_PAGE));

            // Recovery: once pages come back, a bulk call is served in full again.
            for (int i = 0; i < 16; i++) {
                if (array[i] != NO_PAGE && i != 0 && i != 9) {
                    a.freePages(array[i], 0);
                }
            }
            int[] block = held.remove(0);
            a.freePages(block[0], block[1]);
            int[] again = new int[32];
            Arrays.fill(again, NO_PAGE);
            assertEquals(32, a.allocPagesBulk(32, again), "served in full once memory came back");
            a.freePagesBulk(again, 32);
            for (int[] h : held) {
                a.freePages(h[0], h[1]);
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkFreeFreesExactlyTheFirstCountPages(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int[] array = new int[40];
            Arrays.fill(array, NO_PAGE);
            assertEquals(40, a.allocPagesBulk(40, array));
            a.freePagesBulk(array, 30);
            assertEquals(a.totalPages() - 10, a.freePageCount(), "only the first 30 pages were freed");
            for (int i = 30; i < 40; i++) {
                a.freePages(array[i], 0); // still allocated: freeing them once succeeds
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void bulkAllocThatMissesTheCacheTakesTheZoneLockOnce(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            a.freePages(a.allocPages(0), 0); // set this thread up, then start from empty caches
            a.drainCpuCaches();

            long before = a.stats().zoneLockAcquisitions();
            int[] array = new int[64];
            Arrays.fill(array, NO_PAGE);
            assertEquals(64, a.allocPagesBulk(64, array));
            assertEquals(1, a.stats().zoneLockAcquisitions() - before, "64 pages from the zone under one lock");

            before = a.stats().zoneLockAcquisitions();
            int[] more = new int[a.pcpBatch()];
            Arrays.fill(more, NO_PAGE);
            assertEquals(more.length, a.allocPagesBulk(more.length, more));
            assertEquals(mode == CpuCacheMode.NONE ? 1 : 0, a.stats().zoneLockAcquisitions() - before,
                    "the first bulk call refilled the cache, so a batch-sized one needs no zone lock");

            int[] all = new int[64 + more.length];
            System.arraycopy(array, 0, all, 0, 64);
            System.arraycopy(more, 0, all, 64, more.length);
            before = a.stats().zoneLockAcquisitions();
            a.freePagesBulk(all, all.length);
            assertEquals(1, a.stats().zoneLockAcquisitions() - before,
                    "a bulk free of more than pcpHigh pages puts the overflow into the zone under one lock");
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void singleFreesPastHighDrainInBatchesAndKeepTheCacheBounded(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int[] pages = new int[100];
            for (int i = 0; i < pages.length; i++) {
                pages[i] = a.allocPages(i % 4);
                assertNotEquals(NO_PAGE, pages[i]);
            }
            long bound = mode == CpuCacheMode.NONE ? 0 : a.pcpHigh() + Math.max(a.pcpBatch(), 8);
            for (int i = 0; i < pages.length; i++) {
                a.freePages(pages[i], i % 4);
                assertTrue(a.cachedPageCount() <= bound,
                        "parked pages stay within high + batch: " + a.cachedPageCount() + " > " + bound);
            }
            PageAllocatorStats s = a.stats();
            if (mode == CpuCacheMode.NONE) {
                assertEquals(0, s.cpuCacheRefills());
                assertEquals(0, s.cpuCacheDrains());
            } else {
                assertTrue(s.cpuCacheRefills() > 0, "orders 0-3 were served from refilled caches");
                assertTrue(s.cpuCacheDrains() > 0, "frees past high drained batches to the zone");
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    // ------------------------------------------------------------------ splitPage

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void splitBlockPagesCanEachBeFreedAlone(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            Random random = new Random(42);
            int token = 1;
            for (int order : new int[] {1, 3, 5, 6}) {
                int pfn = a.allocPages(order);
                assertNotEquals(NO_PAGE, pfn);
                writePattern(a, pfn, order, token);
                long splits = a.stats().splits();
                a.splitPage(pfn, order);
                assertEquals(splits + 1, a.stats().splits());
                assertEquals(a.totalPages() - (1 << order), a.freePageCount(), "splitting frees nothing");
                List<Integer> pages = new ArrayList<>();
                for (int p = pfn; p < pfn + (1 << order); p++) {
                    verifyPattern(a, p, 0, token); // splitting leaves the contents alone
                    pages.add(p);
                }
                Collections.shuffle(pages, random);
                long free = a.freePageCount();
                for (int p : pages) {
                    a.freePages(p, 0);
                    assertEquals(++free, a.freePageCount(), "each page of a split block frees alone");
                }
                a.checkConsistency();
                token++;
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void splittingAnOrderZeroPageChangesNothing(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int pfn = a.allocPages(0);
            a.splitPage(pfn, 0);
            assertEquals(a.totalPages() - 1, a.freePageCount());
            a.freePages(pfn, 0);
            assertEverythingFreeAndMerged(a);
        }
    }

    // ------------------------------------------------------------------ freeContigRange

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOfAWholeSplitMaxOrderBlockFreesOneChunkUnderOneLock(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int pfn = a.allocPages(6);
            a.splitPage(pfn, 6);
            PageAllocatorStats before = a.stats();
            a.freeContigRange(pfn, 64);
            PageAllocatorStats after = a.stats();
            assertEquals(1, after.contigFreeCalls() - before.contigFreeCalls());
            assertEquals(64, after.contigFreePages() - before.contigFreePages());
            assertEquals(1, after.contigFreeChunks() - before.contigFreeChunks(), "an aligned block is one chunk");
            assertEquals(1, after.zoneLockAcquisitions() - before.zoneLockAcquisitions());
            assertEquals(a.totalPages(), a.freePageCount());
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOfASplitOrder9BlockFreesExactlyOneChunk(CpuCacheMode mode) {
        try (PageAllocator a = PageAllocator.builder().capacity(8L << 20).cpuCacheMode(mode).build()) {
            int pfn = a.allocPages(9);
            assertEquals(0, pfn % 512);
            writePattern(a, pfn, 9, 9);
            a.splitPage(pfn, 9);
            verifyPattern(a, pfn, 9, 9);
            PageAllocatorStats before = a.stats();
            a.freeContigRange(pfn, 512);
            PageAllocatorStats after = a.stats();
            assertEquals(1, after.contigFreeChunks() - before.contigFreeChunks(), "512 aligned pages are one chunk");
            assertEquals(512, after.contigFreePages() - before.contigFreePages());
            assertEquals(1, after.zoneLockAcquisitions() - before.zoneLockAcquisitions(), "one zone lock for the range");
            assertEverythingFreeAndMerged(a);
            assertEquals(1, a.stats().freeBlocks(10), "the order-10 block it came from is whole again");
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOfASubRangeLeavesTheRestOfTheBlockAllocated(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int pfn = a.allocPages(5);
            writePattern(a, pfn, 5, 7);
            a.splitPage(pfn, 5);
            long chunks = a.stats().contigFreeChunks();
            a.freeContigRange(pfn + 8, 16);
            assertEquals(2, a.stats().contigFreeChunks() - chunks, "[8,16) and [16,24) are two order-3 chunks");
            assertEquals(a.totalPages() - 16, a.freePageCount());
            for (int p = pfn; p < pfn + 32; p++) {
                if (p < pfn + 8 || p >= pfn + 24) {
                    verifyPattern(a, p, 0, 7);
                    a.freePages(p, 0); // still allocated: frees exactly once
                }
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOfAnUnalignedRangeCutsItIntoAlignedChunks(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int pfn = a.allocPages(5);
            a.splitPage(pfn, 5);
            long chunks = a.stats().contigFreeChunks();
            a.freeContigRange(pfn + 3, 21); // [3,4) [4,8) [8,16) [16,24)
            assertEquals(4, a.stats().contigFreeChunks() - chunks);
            assertEquals(a.totalPages() - 11, a.freePageCount());
            a.checkConsistency();
            int[] rest = {pfn, pfn + 1, pfn + 2, pfn + 24, pfn + 25, pfn + 26, pfn + 27, pfn + 28, pfn + 29, pfn + 30, pfn + 31};
            a.freePagesBulk(rest, rest.length);
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeAcceptsSeparatelyAllocatedOrderZeroPages(CpuCacheMode mode) {
        // 64 pages, one region: allocating every page singly yields exactly pfns 0..63.
        try (PageAllocator a = small(mode).capacity(64L * PAGE).build()) {
            int[] pages = new int[64];
            for (int i = 0; i < 64; i++) {
                pages[i] = a.allocPages(0);
            }
            int[] sorted = pages.clone();
            Arrays.sort(sorted);
            for (int i = 0; i < 64; i++) {
                assertEquals(i, sorted[i]);
            }
            long chunks = a.stats().contigFreeChunks();
            a.freeContigRange(10, 20); // [10,12) [12,16) [16,24) [24,28) [28,30)
            assertEquals(5, a.stats().contigFreeChunks() - chunks);
            a.freeContigRange(0, 10); // [0,8) [8,10)
            a.freeContigRange(30, 34); // [30,32) [32,64)
            assertEquals(9, a.stats().contigFreeChunks() - chunks);
            assertEverythingFreeAndMerged(a);
            assertEquals(1, a.stats().freeBlocks(6), "the 64 separately allocated pages merged into one block");
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void contigFreeOfZeroPagesDoesNothing(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int pfn = a.allocPages(0);
            a.freeContigRange(pfn, 0);
            assertEquals(a.totalPages() - 1, a.freePageCount());
            a.freePages(pfn, 0);
            assertEverythingFreeAndMerged(a);
        }
    }

    // ------------------------------------------------------------------ memory access

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void pageBuffersReadBackWhatWasWrittenAndDistinctPagesDoNotAlias(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int[] pages = new int[16];
            Arrays.fill(pages, NO_PAGE);
            assertEquals(16, a.allocPagesBulk(16, pages));
            // Fill every byte of every page through the shared region buffer...
            for (int p : pages) {
                ByteBuffer region = a.regionBuffer(p);
                int off = a.regionOffset(p);
                for (int i = 0; i < PAGE; i += Long.BYTES) {
                    region.putLong(off + i, ((long) p << 32) | i);
                }
            }
            // ...and read it all back through per-page buffers: no page saw another's writes.
            for (int p : pages) {
                ByteBuffer page = a.pageBuffer(p, 0);
                assertEquals(PAGE, page.capacity());
                for (int i = 0; i < PAGE; i += Long.BYTES) {
                    assertEquals(((long) p << 32) | i, page.getLong(i), "pfn " + p + " byte " + i);
                }
            }
            a.freePagesBulk(pages, 16);

            int block = a.allocPages(2);
            ByteBuffer view = a.pageBuffer(block, 2);
            assertEquals(4 * PAGE, view.capacity());
            assertEquals(0, view.position());
            assertEquals(ByteOrder.BIG_ENDIAN, view.order());
            for (int k = 0; k < 4; k++) {
                view.putLong(k * PAGE + 100, 0x5EED0000L + k);
            }
            for (int k = 0; k < 4; k++) {
                int p = block + k;
                assertEquals(0x5EED0000L + k, a.regionBuffer(p).getLong(a.regionOffset(p) + 100),
                        "page " + k + " of the block seen through the region buffer");
            }
            a.freePages(block, 2);
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void adjacentPagesOfARegionArePageSizeApartInMemory(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            int region = a.allocPages(a.maxOrder());
            int pages = 1 << a.maxOrder();
            assertNotEquals(0, a.address(region), "OpenJDK 17-25 expose native addresses");
            assertEquals(0, a.address(region) % 4096, "regions are page aligned");
            for (int i = 0; i < pages - 1; i++) {
                int p = region + i;
                assertEquals(PAGE, a.address(p + 1) - a.address(p), "address(pfn + 1) - address(pfn) at pfn " + p);
                assertEquals(a.regionOffset(region) + (long) i * PAGE, a.regionOffset(p));
                assertSame(a.regionBuffer(region), a.regionBuffer(p), "one shared buffer per region");
            }
            a.freePages(region, a.maxOrder());
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void largerPageSizesWorkEndToEnd(CpuCacheMode mode) {
        int pageSize = 16384;
        try (PageAllocator a = PageAllocator.builder().pageSize(pageSize).capacity(16L << 20).maxOrder(4)
                .pcpBatch(4).cpuCacheMode(mode).build()) {
            assertEquals(1024, a.totalPages());
            assertEquals(16L << 20, a.capacity());
            int single = a.allocPages(0);
            int block = a.allocPages(4);
            writePattern(a, single, 0, 1);
            writePattern(a, block, 4, 2);
            assertEquals(pageSize, a.address(block + 1) - a.address(block));
            assertEquals(pageSize << 4, a.pageBuffer(block, 4).capacity());
            verifyPattern(a, single, 0, 1);
            verifyPattern(a, block, 4, 2);
            a.freePages(single, 0);
            a.freePages(block, 4);
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void pageBufferOfABlockRunningPastTheLastPageIsRejected(CpuCacheMode mode) {
        try (PageAllocator a = PageAllocator.builder().capacity(4096L * 1000).cpuCacheMode(mode).build()) {
            int p = a.allocPages(0); // reserves the only (1000-page) region
            // pfn 992 is aligned to 32, but an order-5 block there would end at 1024 > 1000.
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> a.pageBuffer(992, 5));
            assertContains(e.getMessage(), "pfn 992", "order 5");
            a.freePages(p, 0);
        }
    }

    // ------------------------------------------------------------------ statistics and counts

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void statsCountEveryOperation(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            PageAllocatorStats s0 = a.stats();
            int p0 = a.allocPages(0);
            int p1 = a.allocPages(1);
            int p5 = a.allocPages(5);
            int[] bulk = new int[10];
            Arrays.fill(bulk, NO_PAGE);
            assertEquals(10, a.allocPagesBulk(10, bulk));
            a.splitPage(p1, 1);

            PageAllocatorStats mid = a.stats();
            assertEquals(1 + 2 + 32 + 10, mid.allocatedPages());
            assertEquals(a.freePageCount(), mid.freePages());
            assertEquals(a.cachedPageCount(), mid.cachedPages());
            assertEquals(a.totalPages(), mid.totalPages());
            assertEquals(a.maxOrder(), mid.maxOrder());

            a.freePages(p0, 0);
            a.freePages(p5, 5);
            a.freePages(p1, 0);
            a.freePages(p1 + 1, 0);
            a.freePagesBulk(bulk, 10);
            PageAllocatorStats s1 = a.stats();
            assertEquals(3, s1.allocs() - s0.allocs());
            assertEquals(4, s1.frees() - s0.frees());
            assertEquals(1, s1.bulkAllocCalls() - s0.bulkAllocCalls());
            assertEquals(10, s1.bulkAllocPages() - s0.bulkAllocPages());
            assertEquals(1, s1.bulkFreeCalls() - s0.bulkFreeCalls());
            assertEquals(10, s1.bulkFreePages() - s0.bulkFreePages());
            assertEquals(1, s1.splits() - s0.splits());
            assertEquals(0, s1.allocFailures());
            assertEquals(0, s1.allocatedPages());
            switch (mode) {
                case PER_THREAD:
                    assertTrue(s1.cpuCacheRefills() > 0);
                    assertTrue(s1.cpuPageSets() >= 1, "this thread has a cache");
                    break;
                case MAGAZINE:
                    assertTrue(s1.cpuCacheRefills() > 0);
                    assertEquals(4, s1.cpuPageSets(), "the configured number of magazines");
                    break;
                default:
                    assertEquals(0, s1.cpuCacheRefills());
                    assertEquals(0, s1.cpuPageSets());
                    break;
            }
            assertTrue(s1.toString().contains("buddyinfo"), s1.toString());
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void freePageCountIncludesPagesParkedInCpuCaches(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            boolean cached = mode != CpuCacheMode.NONE;
            assertEquals(a.totalPages(), a.freePageCount());
            assertEquals(0, a.cachedPageCount());

            int pfn = a.allocPages(0);
            assertEquals(a.totalPages() - 1, a.freePageCount());
            assertEquals(cached ? a.pcpBatch() - 1 : 0, a.cachedPageCount(), "a refill brings batch pages, one is taken");
            a.freePages(pfn, 0);
            assertEquals(a.totalPages(), a.freePageCount(), "a parked page counts as free");
            assertEquals(cached ? a.pcpBatch() : 0, a.cachedPageCount());
            assertEquals(a.cachedPageCount(), a.stats().cachedPages());

            long drains = a.stats().cpuCacheDrains();
            a.drainCpuCaches();
            assertEquals(0, a.cachedPageCount());
            assertEquals(a.totalPages(), a.freePageCount());
            assertEquals(cached ? drains + 1 : drains, a.stats().cpuCacheDrains());
            assertEverythingFreeAndMerged(a);
        }
    }

    /**
     * The documented bound on what one page set parks: {@code high + 4 * batch} pages, since a refill
     * can land on each of the four order lists (0 to 3) before a free drains. Random allocations and
     * frees of orders 0 to 3 on one thread, checked after every operation.
     */
    @Test
    void onePageSetParksAtMostHighPlusFourBatches() {
        for (int batch : new int[] {8, 16, 64}) {
            try (PageAllocator a = PageAllocator.builder().capacity(4096L * PAGE).pcpBatch(batch).pcpHigh(batch)
                    .cpuCacheMode(CpuCacheMode.PER_THREAD).build()) {
                long bound = a.pcpHigh() + 4L * a.pcpBatch();
                Random random = new Random(batch);
                List<int[]> held = new ArrayList<>();
                long most = 0;
                for (int op = 0; op < 20_000; op++) {
                    if (held.isEmpty() || (held.size() < 400 && random.nextBoolean())) {
                        int order = random.nextInt(4);
                        int pfn = a.allocPages(order);
                        if (pfn != NO_PAGE) {
                            held.add(new int[] {pfn, order});
                        }
                    } else {
                        int[] block = held.remove(random.nextInt(held.size()));
                        a.freePages(block[0], block[1]);
                    }
                    most = Math.max(most, a.cachedPageCount());
                    assertTrue(a.cachedPageCount() <= bound, "batch " + batch + ", operation " + op + ": parked "
                            + a.cachedPageCount() + " pages, more than high + 4 * batch = " + bound);
                }
                assertTrue(most > a.pcpHigh() + a.pcpBatch(), "the run reached past high + batch (" + most + "), so"
                        + " the bound is the one that holds");
                for (int[] block : held) {
                    a.freePages(block[0], block[1]);
                }
            }
        }
    }

    @Test
    void drainCpuCachesLeavesALiveThreadsCacheAloneUntilThatThreadEnds() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.PER_THREAD).build()) {
            CountDownLatch parked = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            Thread owner = new Thread(() -> {
                int[] pages = new int[5];
                for (int i = 0; i < pages.length; i++) {
                    pages[i] = a.allocPages(0);
                }
                for (int p : pages) {
                    a.freePages(p, 0);
                }
                parked.countDown();
                awaitQuietly(release);
            }, "cache-owner");
            owner.start();
            try {
                assertTrue(parked.await(10, TimeUnit.SECONDS));
                long parkedPages = a.cachedPageCount();
                assertEquals(a.pcpBatch(), parkedPages, "the owner parked its refill");
                a.drainCpuCaches();
                assertEquals(parkedPages, a.cachedPageCount(), "another live thread's cache is left alone");
                assertEquals(a.totalPages(), a.freePageCount(), "its pages still count as free");
            } finally {
                release.countDown();
                owner.join(10_000);
            }
            assertFalse(owner.isAlive());
            assertEverythingFreeAndMerged(a); // drainCpuCaches() now reaps the ended thread's cache
        }
    }

    @Test
    void drainCpuCachesEmptiesEveryMagazineEvenWhileTheirUsersLive() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.MAGAZINE).build()) {
            CountDownLatch parked = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            Thread user = new Thread(() -> {
                a.freePages(a.allocPages(0), 0);
                parked.countDown();
                awaitQuietly(release);
            }, "magazine-user");
            user.start();
            try {
                assertTrue(parked.await(10, TimeUnit.SECONDS));
                assertEquals(a.pcpBatch(), a.cachedPageCount());
                a.drainCpuCaches();
                assertEquals(0, a.cachedPageCount(), "every magazine drained, whoever filled it");
            } finally {
                release.countDown();
                user.join(10_000);
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    // ------------------------------------------------------------------ memory reservation and capacity

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void memoryIsReservedOneRegionAtATimeOnFirstNeed(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).build()) {
            PageAllocatorStats fresh = a.stats();
            assertEquals(0, fresh.regionsReserved());
            assertEquals(1024, fresh.unreservedPages());
            assertEquals(1024, a.freePageCount(), "unreserved pages count as free");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> a.address(0));
            assertContains(e.getMessage(), "pfn 0", "not reserved");

            int p = a.allocPages(0);
            assertEquals(1, a.stats().regionsReserved());
            assertEquals(1024 - 64, a.stats().unreservedPages());
            int block = a.allocPages(6);
            assertEquals(2, a.stats().regionsReserved(), "the first region is split, so a second one is reserved");
            assertEquals(1024 - 128, a.stats().unreservedPages());
            a.freePages(p, 0);
            a.freePages(block, 6);
            assertEverythingFreeAndMerged(a);
            assertEquals(2, a.stats().freeBlocks(6));
        }
    }

    /**
     * A bulk allocation carves the largest blocks that fit, but reserves a new region only when the
     * free lists are empty: smaller free blocks that hold the pages are used first.
     */
    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void aBulkAllocationUsesSmallerFreeBlocksBeforeReservingARegion(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).pcpBatch(1).pcpHigh(1).build()) { // caches hold next to nothing
            int[] pairs = new int[32];
            for (int i = 0; i < pairs.length; i++) {
                pairs[i] = a.allocPages(1); // the whole first region (64 pages) as order-1 blocks
            }
            assertEquals(1, a.stats().regionsReserved());
            a.freePages(0, 1); // two order-1 blocks that are not buddies: 4 free pages, no order-2 block
            a.freePages(4, 1);
            a.drainCpuCaches();
            assertEquals(4, a.stats().buddyFreePages());

            int[] four = new int[4];
            Arrays.fill(four, NO_PAGE);
            assertEquals(4, a.allocPagesBulk(4, four));
            Arrays.sort(four);
            assertArrayEquals(new int[] {0, 1, 4, 5}, four, "the free pages, not a new region's");
            if (mode == CpuCacheMode.NONE) { // with a per-CPU cache, the refill that follows may reserve one for the cache
                assertEquals(1, a.stats().regionsReserved(), () -> "a region reserved with 4 pages free: " + a.stats());
            }
            a.freePagesBulk(four, 4);
            for (int pair : pairs) {
                if (pair != 0 && pair != 4) {
                    a.freePages(pair, 1);
                }
            }
            assertEverythingFreeAndMerged(a);
        }
    }

    /**
     * The last region is shorter than the others when the capacity is not a multiple of theirs: a
     * bulk allocation that asks for more than its largest block still gets its pages.
     */
    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void aBulkAllocationGetsTheShortLastRegionsPages(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).capacity((1024L + 8) * PAGE).build()) {
            int[] all = new int[1024];
            Arrays.fill(all, NO_PAGE);
            int[] rest = new int[16];
            Arrays.fill(rest, NO_PAGE);
            int first = a.allocPagesBulk(all.length, all);
            int more = a.allocPagesBulk(rest.length, rest);
            assertEquals(1024, first);
            assertEquals(8, more, "the short region's 8 pages");
            assertEquals(NO_PAGE, a.allocPages(0), "nothing is left");
            a.freePagesBulk(all, first);
            a.freePagesBulk(rest, more);
            assertEverythingFreeAndMerged(a);
        }
    }

    /** A per-CPU refill that finds the zone empty moves no batch, and is not counted as one. */
    @ParameterizedTest
    @EnumSource(value = CpuCacheMode.class, names = {"MAGAZINE", "PER_THREAD"})
    void aRefillThatFindsTheZoneEmptyIsNotCounted(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).magazines(1).build()) {
            int[] all = new int[a.totalPages()];
            Arrays.fill(all, NO_PAGE);
            assertEquals(a.totalPages(), a.allocPagesBulk(all.length, all));
            long refills = a.stats().cpuCacheRefills();
            for (int i = 0; i < 5; i++) {
                assertEquals(NO_PAGE, a.allocPages(0));
            }
            assertEquals(5, a.stats().allocFailures());
            assertEquals(refills, a.stats().cpuCacheRefills(), () -> "refills that moved nothing: " + a.stats());
            a.freePagesBulk(all, all.length);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void preTouchReservesAllMemoryAtBuild(CpuCacheMode mode) {
        try (PageAllocator a = small(mode).preTouch(true).build()) {
            PageAllocatorStats s = a.stats();
            assertEquals(0, s.unreservedPages());
            assertEquals(16, s.regionsReserved());
            assertEquals(1024, s.buddyFreePages());
            assertEquals(16, s.freeBlocks(6));
            assertNotEquals(0, a.address(1023), "the last page is addressable before any allocation");
            assertEverythingFreeAndMerged(a);
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void capacityThatIsNotAWholeNumberOfMaxOrderBlocksWorksEndToEnd(CpuCacheMode mode) {
        for (int maxOrder : new int[] {10, 4}) {
            try (PageAllocator a = PageAllocator.builder().capacity(4096L * 1000).maxOrder(maxOrder)
                    .pcpBatch(8).pcpHigh(32).cpuCacheMode(mode).build()) {
                assertEquals(1000, a.totalPages());
                int[] all = new int[1000];
                Arrays.fill(all, NO_PAGE);
                assertEquals(1000, a.allocPagesBulk(1000, all), "maxOrder " + maxOrder + ": every page");
                BitSet seen = new BitSet();
                for (int p : all) {
                    assertTrue(p >= 0 && p < 1000 && !seen.get(p), "pfn " + p);
                    seen.set(p);
                    writePattern(a, p, 0, p + 1);
                }
                assertEquals(NO_PAGE, a.allocPages(0));
                for (int p : all) {
                    verifyPattern(a, p, 0, p + 1);
                }
                a.freePagesBulk(all, 1000);
                assertEverythingFreeAndMerged(a); // 1000 = 512+256+128+64+32+8 (or 62 x 16 + 8)

                if (maxOrder == 10) {
                    assertEquals(NO_PAGE, a.allocPages(10), "1000 pages hold no order-10 block");
                    int big = a.allocPages(9);
                    assertEquals(0, big);
                    a.freePages(big, 9);
                } else {
                    List<Integer> blocks = new ArrayList<>();
                    for (int b; (b = a.allocPages(4)) != NO_PAGE; ) {
                        blocks.add(b);
                    }
                    assertEquals(62, blocks.size());
                    int tail = a.allocPages(3);
                    assertEquals(992, tail, "the short last region holds one order-3 block");
                    a.freePages(tail, 3);
                    for (int b : blocks) {
                        a.freePages(b, 4);
                    }
                }
                assertEverythingFreeAndMerged(a);
            }
        }
    }

    // ------------------------------------------------------------------ builder

    @Test
    void defaultsAreThoseDocumented() {
        try (PageAllocator a = PageAllocator.builder().build()) {
            assertEquals(16384, a.totalPages(), "64 MiB of 4 KiB pages");
            assertEquals(4096, a.pageSize());
            assertEquals(10, a.maxOrder());
            assertEquals(CpuCacheMode.PER_THREAD, a.cpuCacheMode());
            assertEquals(64, a.pcpBatch(), "totalPages / 256, at most 64");
            assertEquals(6 * 64, a.pcpHigh());
            assertEquals(16384, a.stats().unreservedPages(), "no memory reserved before first use");
        }
        try (PageAllocator a = PageAllocator.builder().cpuCacheMode(CpuCacheMode.MAGAZINE).build()) {
            assertEquals(2 * Runtime.getRuntime().availableProcessors(), a.stats().cpuPageSets(), "2 magazines per CPU");
        }
        try (PageAllocator a = PageAllocator.builder().capacity(256L * PAGE).build()) {
            assertEquals(1, a.pcpBatch(), "a small allocator gets batch 1");
        }
    }

    @Test
    void oneBuilderBuildsIndependentAllocators() {
        PageAllocator.Builder b = small(CpuCacheMode.NONE);
        try (PageAllocator first = b.build(); PageAllocator second = b.build()) {
            int pfn = first.allocPages(6);
            assertEquals(first.totalPages() - 64, first.freePageCount());
            assertEquals(second.totalPages(), second.freePageCount());
            first.freePages(pfn, 6);
        }
    }

    static Stream<Arguments> badSettings() {
        return Stream.of(
                bad("pageSize", "0", b -> b.pageSize(0)),
                bad("pageSize", "2048", b -> b.pageSize(2048)),
                bad("pageSize", "4097", b -> b.pageSize(4097)),
                bad("pageSize", "12288", b -> b.pageSize(12288)),
                bad("pageSize", "-4096", b -> b.pageSize(-4096)),
                bad("maxOrder", "-1", b -> b.maxOrder(-1)),
                bad("maxOrder", "19", b -> b.maxOrder(19)),
                bad("maxOrder", "18", b -> b.pageSize(8192).maxOrder(18)),
                bad("capacity", "0", b -> b.capacity(0)),
                bad("capacity", "-4096", b -> b.capacity(-4096)),
                bad("capacity", "4097", b -> b.capacity(4097)),
                bad("capacity", "4096", b -> b.pageSize(8192).capacity(4096)),
                bad("capacity", String.valueOf(4096L << 31), b -> b.capacity(4096L << 31)),
                bad("pcpBatch", "0", b -> b.pcpBatch(0)),
                bad("pcpBatch", "-2", b -> b.pcpBatch(-2)),
                bad("pcpHigh", "4", b -> b.pcpBatch(8).pcpHigh(4)),
                bad("pcpHigh", "0", b -> b.pcpHigh(0)),
                bad("magazines", "0", b -> b.magazines(0)),
                bad("magazines", "-2", b -> b.magazines(-2)));
    }

    /**
     * Negative values the builder silently reads as "use the default". Nothing documents -1 as a
     * sentinel, and pcpHigh takes any negative value that way.
     */
    static Stream<Arguments> negativeSettingsTakenAsDefault() {
        return Stream.of(
                bad("pcpHigh", "-5", b -> b.pcpHigh(-5)),
                bad("pcpHigh", "-1", b -> b.pcpHigh(-1)),
                bad("pcpBatch", "-1", b -> b.pcpBatch(-1)),
                bad("magazines", "-1", b -> b.magazines(-1)));
    }

    private static Arguments bad(String setting, String value, Consumer<PageAllocator.Builder> configure) {
        return Arguments.of(setting, value, configure);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("badSettings")
    void buildRejectsEachBadSettingByName(String setting, String value, Consumer<PageAllocator.Builder> configure) {
        PageAllocator.Builder b = PageAllocator.builder();
        configure.accept(b);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
        assertContains(e.getMessage(), setting + " ", value);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("negativeSettingsTakenAsDefault")
    void buildRejectsNegativeSettings(String setting, String value, Consumer<PageAllocator.Builder> configure) {
        buildRejectsEachBadSettingByName(setting, value, configure);
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void buildRejectsAPcpHighTooLargeToHonour(CpuCacheMode mode) {
        // Today: MAGAZINE fails in build() with NegativeArraySizeException; PER_THREAD builds, then
        // every allocPages(0) on every thread throws NegativeArraySizeException.
        PageAllocator.Builder b = small(mode).pcpHigh(Integer.MAX_VALUE);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
        assertContains(e.getMessage(), "pcpHigh ", String.valueOf(Integer.MAX_VALUE));
    }

    @Test
    void builderRejectsANullCacheMode() {
        assertThrows(NullPointerException.class, () -> PageAllocator.builder().cpuCacheMode(null));
    }

    // ------------------------------------------------------------------ close

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void closeRefusesWhilePagesAreAllocatedAndLeavesTheAllocatorUsable(CpuCacheMode mode) {
        PageAllocator a = small(mode).build();
        int block = a.allocPages(6);
        int single = a.allocPages(0);
        int pair = a.allocPages(1);
        int first = Math.min(block, Math.min(single, pair));

        IllegalStateException e = assertThrows(IllegalStateException.class, a::close);
        assertContains(e.getMessage(), "pfn " + first, "still allocated");
        assertFalse(a.isClosed());
        a.checkConsistency();
        assertEquals(a.totalPages() - 67, a.freePageCount(), "the refused close changed nothing");
        int more = a.allocPages(2);
        assertNotEquals(NO_PAGE, more, "the allocator stays usable");
        writePattern(a, more, 2, 1);
        verifyPattern(a, more, 2, 1);

        a.freePages(more, 2);
        a.freePages(block, 6);
        a.freePages(single, 0);
        e = assertThrows(IllegalStateException.class, a::close);
        assertContains(e.getMessage(), "pfn " + pair, "still allocated");
        a.freePages(pair, 1);
        a.close();
        assertTrue(a.isClosed());
        a.close(); // harmless
        assertTrue(a.isClosed());
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void closeSucceedsWhilePagesAreStillParkedInCaches(CpuCacheMode mode) {
        PageAllocator a = small(mode).build();
        int[] pages = new int[20];
        Arrays.fill(pages, NO_PAGE);
        a.allocPagesBulk(20, pages);
        a.freePagesBulk(pages, 20);
        a.close(); // parked pages are free pages
        assertTrue(a.isClosed());
        a.close();
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void everyOperationThrowsIllegalStateExceptionAfterClose(CpuCacheMode mode) {
        PageAllocator a = small(mode).build();
        int pfn = a.allocPages(0);
        a.freePages(pfn, 0);
        a.close();
        int[] array = {NO_PAGE};
        assertAll(
                closed("allocPages", () -> a.allocPages(0)),
                closed("allocPagesBulk", () -> a.allocPagesBulk(1, array)),
                closed("freePages", () -> a.freePages(pfn, 0)),
                closed("freePagesBulk", () -> a.freePagesBulk(new int[] {pfn}, 1)),
                closed("splitPage", () -> a.splitPage(pfn, 0)),
                closed("freeContigRange", () -> a.freeContigRange(pfn, 1)),
                closed("address", () -> a.address(pfn)),
                closed("regionBuffer", () -> a.regionBuffer(pfn)),
                closed("pageBuffer", () -> a.pageBuffer(pfn, 0)),
                closed("drainCpuCaches", a::drainCpuCaches),
                closed("checkConsistency", a::checkConsistency));
        a.close(); // still harmless
        assertTrue(a.isClosed());
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void stateQueriesThrowIllegalStateExceptionAfterClose(CpuCacheMode mode) {
        PageAllocator a = small(mode).build();
        a.close();
        AtomicLong sink = new AtomicLong();
        assertAll(
                closed("freePageCount", () -> sink.set(a.freePageCount())),
                closed("cachedPageCount", () -> sink.set(a.cachedPageCount())),
                closed("stats", () -> sink.set(a.stats().totalPages())),
                closed("regionOffset", () -> sink.set(a.regionOffset(0))));
    }

    private static Executable closed(String method, Executable call) {
        return () -> {
            IllegalStateException e = assertThrows(IllegalStateException.class, call, method + " after close()");
            assertContains(e.getMessage(), "closed");
        };
    }

    private static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
