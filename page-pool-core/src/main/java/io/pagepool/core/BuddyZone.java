package io.pagepool.core;

import java.util.Arrays;

/**
 * The zone: off-heap memory, the buddy allocator's free lists, and the one lock that guards them
 * (the kernel's {@code zone->lock}).
 *
 * <h2>Memory</h2>
 * Memory is reserved in regions of one max-order block each (2^maxOrder pages; the last region
 * may be shorter). Regions are reserved lazily, the first time the free lists cannot satisfy a
 * request, or all at build time with {@code preTouch}. A region is one max-order block of pfn
 * space, so a buddy below max order always lies in the same region as its partner.
 *
 * <h2>Free lists</h2>
 * {@code freeHead[o]} starts an intrusive doubly linked list, threaded through
 * {@link PageTable#next}/{@link PageTable#prev}, of the free blocks of order {@code o}. Lists are
 * LIFO: the most recently freed (cache-warm) block goes out first.
 *
 * <h2>Allocation (take)</h2>
 * <ol>
 *   <li>Find the lowest order {@code o >= order} whose list is not empty (if none, reserve the
 *       next region and retry; if memory is all reserved, fail with {@link PageAllocator#NO_PAGE}).</li>
 *   <li>Unlink the head block of that list.</li>
 *   <li>Expand: while {@code o > order}, halve the block and put the upper half, of order
 *       {@code o-1}, on its free list.</li>
 *   <li>Mark the head with the caller's state (allocated, or cached for a per-CPU list).</li>
 * </ol>
 *
 * <h2>Free (put) with coalescing</h2>
 * <pre>
 *   while order &lt; maxOrder:
 *       buddy = pfn XOR (1 &lt;&lt; order)             e.g. pfn 8, order 2 -> buddy 12
 *       stop unless buddy is a FREE head of the same order
 *       unlink buddy; the upper of the two heads becomes a tail (NONE)
 *       pfn = min(pfn, buddy); order++
 *   mark pfn FREE at order; push it on freeHead[order]
 * </pre>
 * Blocks parked in per-CPU caches are {@link PageTable#CACHED}, not free, so they never merge,
 * as in the kernel.
 *
 * <h2>Contiguous free (seed 004)</h2>
 * {@link #freeContigRange} cuts a run of order-0 pages into the largest naturally aligned
 * power-of-two chunks ({@code order = min(ctz(pfn), log2(remaining), maxOrder)}) and puts each
 * chunk as one block, instead of putting and merging page by page.
 *
 * <p>The lock is a {@link SpinLock}: it never allocates, unlike a contended
 * {@code ReentrantLock}, and every section it guards is one bounded batch.
 *
 * <p>Thread safety: every method except the constructor, {@link #regionFor},
 * {@link #memoryReleaser} and the {@code locked*} methods (which take it themselves) requires the
 * caller to hold the zone lock ({@link #lock()}).
 */
final class BuddyZone {

    final PageTable table;
    final int maxOrder;
    final int totalPages;
    final int pageShift;
    final int regionPages;
    final int regionShift;

    private final SpinLock lock = new SpinLock();
    private final OffHeapRegion[] regions;
    private final int[] freeHead;
    private final long[] freeBlocks;
    private long freePages;
    private int reservedRegions;
    private int reservedPages;

    /** Counters of the operations done directly on the zone (no per-CPU cache in between). */
    final AllocCounters counters = new AllocCounters();
    /** Counters folded in from per-thread caches of threads that have ended. */
    final AllocCounters retiredCacheCounters = new AllocCounters();
    long lockAcquisitions;
    long contigFreeCalls;
    long contigFreePages;
    long contigFreeChunks;
    long reserveFailures;
    long threadCachesReaped;
    OutOfMemoryError lastReserveFailure;

    BuddyZone(int totalPages, int pageShift, int maxOrder) {
        this.table = new PageTable(totalPages);
        this.totalPages = totalPages;
        this.pageShift = pageShift;
        this.maxOrder = maxOrder;
        this.regionShift = maxOrder;
        this.regionPages = 1 << maxOrder;
        this.regions = new OffHeapRegion[(totalPages + regionPages - 1) >>> regionShift];
        this.freeHead = new int[maxOrder + 1];
        this.freeBlocks = new long[maxOrder + 1];
        Arrays.fill(freeHead, PageAllocator.NO_PAGE);
    }

    void lock() {
        lock.lock();
        lockAcquisitions++;
    }

    /** Takes the lock without counting it: for statistics and checks, which should not move the figures they read. */
    void lockQuietly() {
        lock.lock();
    }

    void unlock() {
        lock.unlock();
    }

    // ---------------------------------------------------------------- memory

    /** Region holding {@code pfn}, or null when it is not reserved. Lock not needed for a pfn the caller holds. */
    OffHeapRegion regionFor(int pfn) {
        return regions[pfn >>> regionShift];
    }

    int regionCount() {
        return regions.length;
    }

    int reservedPages() {
        return reservedPages;
    }

    int reservedRegions() {
        return reservedRegions;
    }

    long unreservedPages() {
        return (long) totalPages - reservedPages;
    }

    /**
     * Reserves the next region and puts its pages on the free lists.
     *
     * @return false when every region is reserved already or the memory was refused
     */
    boolean reserveNextRegion() {
        if (reservedRegions == regions.length) {
            return false;
        }
        int index = reservedRegions;
        int first = index << regionShift;
        int pages = Math.min(regionPages, totalPages - first);
        OffHeapRegion region;
        try {
            region = OffHeapRegion.reserve(pages << pageShift);
        } catch (OutOfMemoryError e) {
            reserveFailures++;
            lastReserveFailure = e;
            return false;
        }
        regions[index] = region;
        reservedRegions++;
        reservedPages = first + pages;
        // A full region is one max-order block; a short last region is cut into aligned chunks.
        for (int pfn = first, end = first + pages; pfn < end; ) {
            int o = chunkOrder(pfn, end - pfn);
            table.order[pfn] = (byte) o;
            push(pfn, o);
            freePages += 1L << o;
            pfn += 1 << o;
        }
        return true;
    }

    /** Largest order a chunk starting at pfn may have: aligned, not past the range, not past maxOrder. */
    int chunkOrder(int pfn, int remaining) {
        int aligned = Integer.numberOfTrailingZeros(pfn); // 32 for pfn 0: any order is aligned
        int fits = 31 - Integer.numberOfLeadingZeros(remaining);
        return Math.min(maxOrder, Math.min(aligned, fits));
    }

    /**
     * The action that frees every reserved region, run once: by close, or by a {@link
     * java.lang.ref.Cleaner} if the allocator is dropped unclosed. It holds only the region array,
     * never the zone, so it cannot keep the allocator reachable.
     */
    Runnable memoryReleaser() {
        return new RegionReleaser(regions);
    }

    private static final class RegionReleaser implements Runnable {
        private final OffHeapRegion[] regions;

        RegionReleaser(OffHeapRegion[] regions) {
            this.regions = regions;
        }

        @Override
        public void run() {
            for (int i = 0; i < regions.length; i++) {
                OffHeapRegion region = regions[i];
                if (region != null) {
                    regions[i] = null;
                    region.release();
                }
            }
        }
    }

    // ---------------------------------------------------------------- free lists

    private void push(int pfn, int order) {
        int[] next = table.next;
        int[] prev = table.prev;
        int head = freeHead[order];
        next[pfn] = head;
        prev[pfn] = PageAllocator.NO_PAGE;
        if (head != PageAllocator.NO_PAGE) {
            prev[head] = pfn;
        }
        freeHead[order] = pfn;
        freeBlocks[order]++;
        table.state[pfn] = PageTable.FREE;
    }

    private void unlink(int pfn, int order) {
        int[] next = table.next;
        int[] prev = table.prev;
        int n = next[pfn];
        int p = prev[pfn];
        if (p == PageAllocator.NO_PAGE) {
            freeHead[order] = n;
        } else {
            next[p] = n;
        }
        if (n != PageAllocator.NO_PAGE) {
            prev[n] = p;
        }
        freeBlocks[order]--;
    }

    /**
     * Takes one block of exactly {@code order}, splitting a larger one if needed and reserving a
     * new region when the lists run dry.
     *
     * @param newState {@link PageTable#ALLOCATED} or {@link PageTable#CACHED}
     * @return the head pfn, or {@link PageAllocator#NO_PAGE} when memory is exhausted
     */
    int takeBlock(int order, byte newState) {
        int pfn;
        while ((pfn = takeFreeBlock(order, newState)) == PageAllocator.NO_PAGE) {
            if (!reserveNextRegion()) {
                return PageAllocator.NO_PAGE;
            }
        }
        return pfn;
    }

    /** {@link #takeBlock} from the free lists only: {@link PageAllocator#NO_PAGE} if none of {@code order} or above is free. */
    private int takeFreeBlock(int order, byte newState) {
        for (int o = order; o <= maxOrder; o++) {
            int pfn = freeHead[o];
            if (pfn != PageAllocator.NO_PAGE) {
                unlink(pfn, o);
                while (o > order) {
                    o--;
                    int upper = pfn + (1 << o);
                    table.order[upper] = (byte) o;
                    push(upper, o);
                }
                table.state[pfn] = newState;
                table.order[pfn] = (byte) order;
                freePages -= 1L << order;
                return pfn;
            }
        }
        return PageAllocator.NO_PAGE;
    }

    /**
     * Fills the {@link PageAllocator#NO_PAGE} slots of {@code pages[from, to)} with allocated
     * order-0 pages ({@link #takeOrder0Pages}), counting them in {@code counters.bulkAllocPages}.
     *
     * @return {@code to} when every slot is populated, else the index of the first slot left empty
     */
    int fillSlots(int[] pages, int from, int to, AllocCounters counters) {
        int holes = 0;
        for (int i = from; i < to; i++) {
            if (pages[i] == PageAllocator.NO_PAGE) {
                holes++;
            }
        }
        int taken = takeOrder0Pages(pages, from, holes, true, PageTable.ALLOCATED);
        counters.bulkAllocPages += taken;
        if (taken == holes) {
            return to;
        }
        int stop = from;
        while (pages[stop] != PageAllocator.NO_PAGE) {
            stop++;
        }
        return stop;
    }

    /**
     * Takes {@code n} order-0 pages into {@code dst} from index {@code at} on (into its
     * {@link PageAllocator#NO_PAGE} slots only, if {@code holesOnly}), marked {@code newState}.
     *
     * <p>Bulk carving: free order-0 blocks (fragments) are used first; after that each step takes
     * one free block of the largest order that does not exceed what is still needed and writes its
     * 2^o consecutive pages out as order-0 pages, two byte stores each, instead of splitting down to
     * order 0 and pushing and popping a list entry per page. A new region is reserved only when no
     * free block of any order up to that is left, not while smaller ones could serve.
     *
     * @return the number of pages taken: {@code n}, or fewer when memory ran out
     */
    int takeOrder0Pages(int[] dst, int at, int n, boolean holesOnly, byte newState) {
        byte[] state = table.state;
        byte[] orders = table.order;
        int i = at;
        int need = n;
        while (need > 0) {
            int start = freeHead[0] != PageAllocator.NO_PAGE ? 0
                    : Math.min(maxOrder, 31 - Integer.numberOfLeadingZeros(need));
            int o;
            int head;
            do { // every smaller free block before a new region (which may itself be short)
                head = PageAllocator.NO_PAGE;
                for (o = start; o >= 0 && head == PageAllocator.NO_PAGE; o--) {
                    head = takeFreeBlock(o, newState);
                }
            } while (head == PageAllocator.NO_PAGE && reserveNextRegion());
            if (head == PageAllocator.NO_PAGE) {
                break;
            }
            o++;
            for (int p = head, end = head + (1 << o); p < end; p++) {
                if (holesOnly) {
                    while (dst[i] != PageAllocator.NO_PAGE) {
                        i++;
                    }
                }
                dst[i++] = p;
                state[p] = newState;
                orders[p] = 0;
            }
            need -= 1 << o;
        }
        return n - need;
    }

    /** Puts a block back, merging it with free buddies. The caller has validated the block. */
    void freeBlock(int pfn, int order) {
        byte[] state = table.state;
        byte[] orders = table.order;
        freePages += 1L << order;
        int limit = reservedPages;
        while (order < maxOrder) {
            int buddy = pfn ^ (1 << order);
            if (buddy >= limit || state[buddy] != PageTable.FREE || orders[buddy] != order) {
                break;
            }
            unlink(buddy, order);
            if (buddy < pfn) {
                state[pfn] = PageTable.NONE;
                pfn = buddy;
            } else {
                state[buddy] = PageTable.NONE;
            }
            order++;
        }
        orders[pfn] = (byte) order;
        push(pfn, order);
    }

    /**
     * Frees the order-0 pages {@code [pfn, pfn + nrPages)} chunk by chunk. The caller has
     * validated that each is an allocated order-0 page.
     */
    void freeContigRange(int pfn, int nrPages) {
        byte[] state = table.state;
        int end = pfn + nrPages;
        long chunks = 0;
        while (pfn < end) {
            int o = chunkOrder(pfn, end - pfn);
            int size = 1 << o;
            if (size > 1) {
                Arrays.fill(state, pfn + 1, pfn + size, PageTable.NONE);
            }
            freeBlock(pfn, o);
            pfn += size;
            chunks++;
        }
        contigFreeCalls++;
        contigFreePages += nrPages;
        contigFreeChunks += chunks;
    }

    // ---------------------------------------------------------------- operations that take the lock

    /** allocPages straight from the buddy lists: the NONE mode, and orders above the per-CPU lists. */
    int lockedAlloc(int order) {
        lock();
        try {
            int pfn = takeBlock(order, PageTable.ALLOCATED);
            if (pfn != PageAllocator.NO_PAGE) {
                counters.allocs++;
            }
            return pfn;
        } finally {
            unlock();
        }
    }

    /** freePages straight to the buddy lists, for a validated block. */
    void lockedFree(int pfn, int order) {
        lock();
        try {
            freeBlock(pfn, order);
            counters.frees++;
        } finally {
            unlock();
        }
    }

    /** allocPagesBulk straight from the buddy lists under one lock; returns the populated count. */
    int lockedAllocBulk(int[] pages, int nrPages) {
        int stop;
        lock();
        try {
            counters.bulkAllocCalls++;
            stop = fillSlots(pages, 0, nrPages, counters);
        } finally {
            unlock();
        }
        return stop == nrPages ? nrPages : PageAllocator.countPopulated(pages, nrPages);
    }

    /** freePagesBulk straight to the buddy lists under one lock, for validated order-0 pages. */
    void lockedFreeBulk(int[] pfns, int n) {
        lock();
        try {
            for (int i = 0; i < n; i++) {
                freeBlock(pfns[i], 0);
            }
            counters.bulkFreeCalls++;
            counters.bulkFreePages += n;
        } finally {
            unlock();
        }
    }

    // ---------------------------------------------------------------- introspection

    long freePages() {
        return freePages;
    }

    long freeBlocks(int order) {
        return freeBlocks[order];
    }

    int freeHead(int order) {
        return freeHead[order];
    }
}
