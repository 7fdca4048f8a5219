package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/** Helpers shared by the PagePool*Test classes: allocators, accounting checks, a counting DmaMapper. */
final class PagePoolTestSupport {

    static final int PAGE = PageAllocator.DEFAULT_PAGE_SIZE;

    private PagePoolTestSupport() {
    }

    /** An allocator of {@code pages} 4 KiB pages with the default per-thread caches. */
    static PageAllocator allocator(int pages) {
        return PageAllocator.builder().capacity((long) pages * PAGE).build();
    }

    /** An allocator without per-CPU caches: every free page is visible to every thread at once. */
    static PageAllocator uncachedAllocator(int pages) {
        return PageAllocator.builder().capacity((long) pages * PAGE).cpuCacheMode(CpuCacheMode.NONE).build();
    }

    /** Pages handed out, as the stats count them: each exactly once as fast, slow, slow high order or refill. */
    static long handedOut(PagePoolStats s) {
        return s.allocFast() + s.allocSlow() + s.allocSlowHighOrder() + s.allocRefill();
    }

    /** Pages returned, as the stats count them: each exactly once as cached, ring, ring full or released. */
    static long returned(PagePoolStats s) {
        return s.recycleCached() + s.recycleRing() + s.recycleRingFull() + s.recycleReleasedRefcnt();
    }

    /**
     * The accounting identities that hold whenever the pool is quiescent and is the allocator's only user
     * (besides {@code otherPages} pages the test holds from the allocator directly):
     * <ul>
     *   <li>the pages the pool holds are exactly the allocator's allocated pages (a block of order n is 2^n pages);</li>
     *   <li>what the pool holds is in its cache, its ring, or in flight;</li>
     *   <li>the allocator's structures are consistent.</li>
     * </ul>
     */
    static void assertAccounting(PagePool pool, long otherPages) {
        PageAllocator allocator = pool.allocator();
        PagePoolStats s = pool.stats();
        assertEquals(handedOut(s) - returned(s), s.inflight(), () -> "inflight is handed out - returned: " + s);
        assertTrue(s.inflight() >= 0, () -> "negative inflight: " + s);
        assertEquals(s.pagesHeld(), s.cachedPages() + s.ringPages() + s.inflight(),
                () -> "pages held must be in the cache, the ring or in flight: " + s);
        assertEquals((s.pagesHeld() << pool.order()) + otherPages, allocator.stats().allocatedPages(),
                () -> "allocator's allocated pages must be the pool's held pages: " + s + " / " + allocator.stats());
        allocator.checkConsistency();
    }

    static void assertAccounting(PagePool pool) {
        assertAccounting(pool, 0);
    }

    /** After close and every page returned: nothing held, nothing allocated, and the allocator closes. */
    static void assertAllBackAndClose(PagePool pool) {
        PageAllocator allocator = pool.allocator();
        PagePoolStats s = pool.stats();
        assertEquals(0, s.inflight(), () -> "inflight after everything came back: " + s);
        assertEquals(0, s.pagesHeld(), () -> "pages held after close: " + s);
        assertEquals(0, s.ringPages(), () -> "pages stranded in the ring: " + s);
        assertEquals(0, allocator.stats().allocatedPages(), () -> "leaked pages: " + allocator.stats() + " " + s);
        allocator.checkConsistency();
        allocator.close();
    }

    /** Fills {@code length} bytes of {@code pfn}'s block from {@code offset} with a pattern derived from {@code seed}. */
    static void fill(PageAllocator allocator, int pfn, int offset, int length, int seed) {
        ByteBuffer buf = allocator.regionBuffer(pfn);
        int base = allocator.regionOffset(pfn) + offset;
        for (int i = 0; i < length; i++) {
            buf.put(base + i, patternByte(seed, i));
        }
    }

    /** True when the bytes written by {@link #fill} with the same arguments are intact. */
    static boolean intact(PageAllocator allocator, int pfn, int offset, int length, int seed) {
        ByteBuffer buf = allocator.regionBuffer(pfn);
        int base = allocator.regionOffset(pfn) + offset;
        for (int i = 0; i < length; i++) {
            if (buf.get(base + i) != patternByte(seed, i)) {
                return false;
            }
        }
        return true;
    }

    static boolean allZero(PageAllocator allocator, int pfn, int offset, int length) {
        ByteBuffer buf = allocator.regionBuffer(pfn);
        int base = allocator.regionOffset(pfn) + offset;
        for (int i = 0; i < length; i++) {
            if (buf.get(base + i) != 0) {
                return false;
            }
        }
        return true;
    }

    private static byte patternByte(int seed, int i) {
        int x = seed * 0x9E3779B1 + i * 0x85EBCA6B;
        return (byte) (x ^ (x >>> 15) ^ 0x5A);
    }

    /** Runs {@code body} on a fresh thread and rethrows what it threw (assertion failures included). */
    static void onAnotherThread(Runnable body) throws Exception {
        CompletableFuture<Void> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                body.run();
                f.complete(null);
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        }, "not-the-owner");
        t.start();
        try {
            f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Error) {
                throw (Error) e.getCause();
            }
            throw e;
        } finally {
            t.join();
        }
    }

    /** The generation bits of a fragment handle (bits 54-62, as PagePool's class comment draws the handle). */
    static int handleGeneration(long handle) {
        return (int) (handle >>> 54) & 0x1FF;
    }

    /** The run a fragment belongs to: its page and that page's carving generation. */
    static long run(long handle) {
        return handle >>> 24;
    }

    /**
     * Claims byte ranges of pages for the concurrency tests: one bit per 64-byte slot, set with a CAS when
     * the pool hands the range out and cleared by whoever returns it just before it goes back. A range
     * handed out while any of its slots is still claimed is a page (or fragment) handed out twice.
     */
    static final class SlotClaims {
        /** One word of 64 slots per 4 KiB page; a block of order n uses the words of its 2^n pages. */
        private final AtomicLongArray words;

        SlotClaims(int totalPages) {
            this.words = new AtomicLongArray(totalPages);
        }

        private static int word(int pfn, int slot) {
            return pfn + (slot >>> 6);
        }

        /** Claims [offset, offset + length) of pfn's block; returns false if any slot was already claimed. */
        boolean claim(int pfn, int offset, int length) {
            for (int slot = offset >>> 6, end = (offset + length + 63) >>> 6; slot < end; slot++) {
                int w = word(pfn, slot);
                long bit = 1L << slot;
                long before = words.getAndUpdate(w, v -> v | bit);
                if ((before & bit) != 0) {
                    return false;
                }
            }
            return true;
        }

        void release(int pfn, int offset, int length) {
            for (int slot = offset >>> 6, end = (offset + length + 63) >>> 6; slot < end; slot++) {
                int w = word(pfn, slot);
                long bit = 1L << slot;
                long before = words.getAndUpdate(w, v -> v & ~bit);
                if ((before & bit) == 0) {
                    throw new AssertionError("slot " + slot + " of pfn " + pfn + " released but not claimed");
                }
            }
        }
    }

    /**
     * A thread-safe DmaMapper that counts calls and checks the protocol per page: map once while the page is
     * not mapped, sync and unmap only while mapped, unmap with the address map returned and the block length.
     * Violations are collected (the pool may call it on any thread) and reported by {@link #assertNoViolations}.
     */
    static final class CountingDmaMapper implements DmaMapper {
        final AtomicLong maps = new AtomicLong();
        final AtomicLong unmaps = new AtomicLong();
        final AtomicLong syncs = new AtomicLong();
        final AtomicLong syncedBytes = new AtomicLong();
        final AtomicIntegerArray mapCount;
        final AtomicIntegerArray unmapCount;
        final AtomicIntegerArray syncCount;
        private final AtomicLongArray dmaOf;
        private final AtomicIntegerArray mapped;
        final List<String> violations = new CopyOnWriteArrayList<>();
        private final int blockBytes;
        volatile int lastSyncPfn = -1;
        volatile int lastSyncOffset = -1;
        volatile int lastSyncLength = -1;
        /**
         * Up to this many spin-wait rounds (random) inside syncForDevice, as a real cache flush takes time.
         * It widens the window between a return's closed check and its cache or ring write, so races
         * against close() show up in a bounded run.
         */
        volatile int syncSpins;

        CountingDmaMapper(int totalPages, int blockBytes) {
            this.blockBytes = blockBytes;
            mapCount = new AtomicIntegerArray(totalPages);
            unmapCount = new AtomicIntegerArray(totalPages);
            syncCount = new AtomicIntegerArray(totalPages);
            dmaOf = new AtomicLongArray(totalPages);
            mapped = new AtomicIntegerArray(totalPages);
        }

        /** The fake device address handed out for pfn: distinct per pfn and never equal to the native address. */
        static long deviceAddress(int pfn) {
            return 0x7_0000_0000L + ((long) pfn << 16) + 0x40;
        }

        @Override
        public long map(int pfn, long address, int length) {
            maps.incrementAndGet();
            mapCount.incrementAndGet(pfn);
            if (length != blockBytes) {
                violations.add("map(pfn " + pfn + ") length " + length + " != block " + blockBytes);
            }
            if (address == 0) {
                violations.add("map(pfn " + pfn + ") got native address 0");
            }
            if (!mapped.compareAndSet(pfn, 0, 1)) {
                violations.add("map(pfn " + pfn + ") while already mapped");
            }
            long dma = deviceAddress(pfn);
            dmaOf.set(pfn, dma);
            return dma;
        }

        @Override
        public void unmap(int pfn, long dmaAddress, int length) {
            unmaps.incrementAndGet();
            unmapCount.incrementAndGet(pfn);
            if (length != blockBytes) {
                violations.add("unmap(pfn " + pfn + ") length " + length + " != block " + blockBytes);
            }
            if (dmaAddress != dmaOf.get(pfn)) {
                violations.add("unmap(pfn " + pfn + ") with dma 0x" + Long.toHexString(dmaAddress) + ", map returned 0x"
                        + Long.toHexString(dmaOf.get(pfn)));
            }
            if (!mapped.compareAndSet(pfn, 1, 0)) {
                violations.add("unmap(pfn " + pfn + ") while not mapped");
            }
        }

        @Override
        public void syncForDevice(int pfn, long dmaAddress, int offset, int length) {
            int spins = syncSpins;
            for (int i = spins > 0 ? java.util.concurrent.ThreadLocalRandom.current().nextInt(spins) : 0; i > 0; i--) {
                Thread.onSpinWait();
            }
            syncs.incrementAndGet();
            syncCount.incrementAndGet(pfn);
            syncedBytes.addAndGet(length);
            lastSyncPfn = pfn;
            lastSyncOffset = offset;
            lastSyncLength = length;
            if (mapped.get(pfn) != 1) {
                violations.add("syncForDevice(pfn " + pfn + ") while not mapped");
            }
            if (dmaAddress != dmaOf.get(pfn)) {
                violations.add("syncForDevice(pfn " + pfn + ") with dma 0x" + Long.toHexString(dmaAddress));
            }
            if (length <= 0 || offset < 0 || length > blockBytes) {
                violations.add("syncForDevice(pfn " + pfn + ") offset " + offset + " length " + length);
            }
        }

        boolean isMapped(int pfn) {
            return mapped.get(pfn) == 1;
        }

        long mappedNow() {
            long n = 0;
            for (int i = 0; i < mapped.length(); i++) {
                n += mapped.get(i);
            }
            return n;
        }

        void assertNoViolations() {
            if (!violations.isEmpty()) {
                fail("DmaMapper protocol violations: " + violations.subList(0, Math.min(10, violations.size())));
            }
        }
    }
}
