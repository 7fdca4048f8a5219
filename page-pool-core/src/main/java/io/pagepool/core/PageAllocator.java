package io.pagepool.core;

import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;

/**
 * A page allocator over off-heap memory: the Java counterpart of the Linux page allocator that
 * seeds 000-004 optimise, with a buddy allocator underneath, per-CPU page caches on top, and bulk
 * and contiguous-range paths that take the zone lock once per batch.
 *
 * <h2>Terms</h2>
 * <ul>
 *   <li><b>page</b>: {@link #pageSize()} bytes (4 KiB by default), named by its page frame
 *       number (<b>pfn</b>), an {@code int} from 0 to {@link #totalPages()}{@code - 1}.
 *       {@link #NO_PAGE} (-1) means "none".</li>
 *   <li><b>block of order n</b>: 2^n contiguous pages whose first pfn is a multiple of 2^n.
 *       Orders run from 0 to {@link #maxOrder()} (10 by default: 4 MiB blocks).</li>
 *   <li><b>zone</b>: all the memory, its free lists and the zone lock ({@link BuddyZone}).</li>
 *   <li><b>per-CPU page set</b>: a small cache of free blocks of orders 0-3 in front of the zone
 *       ({@link CpuPageLists}), one per thread or one per magazine ({@link CpuCacheMode}).</li>
 * </ul>
 *
 * <h2>Layers</h2>
 * <pre>
 *   allocPages(o &lt;= 3) / freePages      allocPagesBulk / freePagesBulk      allocPages(o &gt; 3), freeContigRange
 *            |                                   |                                      |
 *            v                                   v                                      |
 *   +------------------------------------------------------------+                     |
 *   | per-CPU page sets: PER_THREAD (lock-free) | MAGAZINE (spin   |                     |
 *   | lock each) | NONE (absent). count/high/batch, lists 0..3    |                     |
 *   +------------------------------------------------------------+                     |
 *            | refill `batch` / drain `batch`: one zone lock per batch                  |
 *            v                                                                          v
 *   +--------------------------------------------------------------------------------------+
 *   | zone: buddy free lists per order 0..maxOrder, split on take, coalesce on put,        |
 *   |       one spin lock; regions of off-heap memory reserved on first need               |
 *   +--------------------------------------------------------------------------------------+
 *            |
 *            v
 *   page table (PageTable): state, order, list links per pfn, in primitive arrays
 * </pre>
 *
 * <h2>Operations</h2>
 * <ol>
 *   <li><b>allocPages(order)</b>: orders 0-3 pop from the per-CPU set (refilled with
 *       {@code batch} pages under one zone lock when empty); larger orders take a block from the
 *       zone. On failure, {@link #drainCpuCaches() every page this thread can reach} is returned
 *       to the zone and the zone is tried once more; only then is {@link #NO_PAGE} returned.</li>
 *   <li><b>allocPagesBulk(n, array)</b>: fills the empty slots from the per-CPU order-0 list, then
 *       takes all that is still missing (plus a refill of the list) under a single zone lock.
 *       Returns the number of populated slots, fewer than {@code n} only when memory is
 *       exhausted. This is the path a {@link PagePool} refills 64 pages at a time through.</li>
 *   <li><b>freePages / freePagesBulk</b>: validate every page first (so a bad one changes
 *       nothing), then park in the per-CPU set; above {@code high} a batch drains to the zone
 *       under one lock. A bulk free parks up to {@code high} and puts the rest into the zone
 *       under one lock.</li>
 *   <li><b>splitPage(pfn, order)</b>: an allocated order-n block becomes 2^n allocated order-0
 *       pages, each freeable on its own.</li>
 *   <li><b>freeContigRange(pfn, n)</b>: frees n allocated order-0 pages by cutting the range
 *       into the largest aligned power-of-two chunks and putting each chunk into the zone as one
 *       block, all under one zone lock (seed 004).</li>
 * </ol>
 *
 * <h2>Misuse and exhaustion</h2>
 * Exhaustion is not an error: {@link #allocPages} returns {@link #NO_PAGE}, {@link #allocPagesBulk}
 * a short count, and both succeed again once pages come back. Misuse throws before anything is
 * changed, with a message naming the pfn and the mistake: {@link IllegalStateException} for a
 * double free (including a page parked in a per-CPU cache) and for any use after
 * {@link #close()}; {@link IllegalArgumentException} for a pfn out of range or not the head of an
 * allocated block, a wrong order, a range that is not all allocated order-0 pages, a pfn listed
 * twice in one bulk free, and a negative or oversized order or count. Misuse is detected exactly
 * when the conflicting calls are ordered (happens-before); two threads racing to free the same
 * page are a data race in the caller that the allocator does not promise to catch.
 *
 * <h2>Thread safety</h2>
 * Every method may be called from any thread at any time, except {@link #close()}, which must
 * not race with other calls, and {@link #checkConsistency()}, which is exact only while no other
 * thread is using the allocator. A pfn obtained on one thread may be freed on another.
 *
 * @see PagePool the recycling page pool built on this allocator
 */
public final class PageAllocator implements AutoCloseable {

    /** The pfn that means "no page": returned on exhaustion, and the empty-slot marker for bulk arrays. */
    public static final int NO_PAGE = -1;
    public static final int DEFAULT_PAGE_SIZE = 4096;
    public static final int DEFAULT_MAX_ORDER = 10;
    public static final long DEFAULT_CAPACITY = 64L << 20;
    /** Largest block, in bytes, that {@code pageSize << maxOrder} may reach (one region). */
    public static final int MAX_BLOCK_BYTES = 1 << 30;

    private static final Cleaner CLEANER = Cleaner.create();

    private final BuddyZone zone;
    private final PageTable table;
    private final CpuPageCache cpuCache;
    private final CpuCacheMode cacheMode;
    private final int cachedTopOrder;
    private final int pageSize;
    private final int pageShift;
    private final int maxOrder;
    private final int totalPages;
    private final int pcpHigh;
    private final int pcpBatch;
    private final LongAdder splits = new LongAdder();
    private final Runnable releaseMemory;
    private final Cleaner.Cleanable cleanable;
    private PoolPageTable poolPageTable;
    private volatile boolean closed;

    private PageAllocator(Builder b, int totalPages, int high, int batch, int magazines) {
        this.pageSize = b.pageSize;
        this.pageShift = Integer.numberOfTrailingZeros(b.pageSize);
        this.maxOrder = b.maxOrder;
        this.totalPages = totalPages;
        this.cacheMode = b.cpuCacheMode;
        this.pcpHigh = high;
        this.pcpBatch = batch;
        this.zone = new BuddyZone(totalPages, pageShift, maxOrder);
        this.table = zone.table;
        this.cachedTopOrder = Math.min(CpuPageLists.TOP_ORDER, maxOrder);
        switch (cacheMode) {
            case PER_THREAD:
                cpuCache = new PerThreadPageCaches(zone, high, batch);
                break;
            case MAGAZINE:
                cpuCache = new MagazinePageCaches(zone, magazines, high, batch);
                break;
            default:
                cpuCache = new NoCpuCache(zone);
                break;
        }
        this.releaseMemory = zone.memoryReleaser();
        // Foreign-memory arenas are not freed by the GC: make sure a dropped allocator still frees them.
        this.cleanable = OffHeapRegion.needsExplicitRelease() ? CLEANER.register(this, releaseMemory) : null;
        if (b.preTouch) {
            zone.lockQuietly();
            try {
                while (zone.reserveNextRegion()) {
                    // reserve every region now; reserving zeroes, which touches every page
                }
                if (zone.lastReserveFailure != null) {
                    OutOfMemoryError e = zone.lastReserveFailure;
                    throw e;
                }
            } finally {
                zone.unlock();
            }
        }
    }

    /** Starts a builder with the defaults: 64 MiB, 4 KiB pages, max order 10, {@link CpuCacheMode#PER_THREAD}. */
    public static Builder builder() {
        return new Builder();
    }

    // ------------------------------------------------------------------ allocation

    /**
     * Allocates one block of 2^{@code order} contiguous pages.
     *
     * @param order 0 to {@link #maxOrder()}
     * @return the pfn of the block's first page, or {@link #NO_PAGE} when no block of that order
     *         can be found even after draining every cache this thread can reach
     * @throws IllegalArgumentException if {@code order} is out of range
     * @throws IllegalStateException after {@link #close()}
     */
    public int allocPages(int order) {
        checkOpen();
        checkOrder("allocPages", order);
        int pfn = order <= cachedTopOrder ? cpuCache.alloc(order) : zone.lockedAlloc(order);
        return pfn != NO_PAGE ? pfn : allocAfterReclaim(order);
    }

    private int allocAfterReclaim(int order) {
        cpuCache.drainReachable();
        zone.lock();
        try {
            int pfn = zone.takeBlock(order, PageTable.ALLOCATED);
            if (pfn != NO_PAGE) {
                zone.counters.allocs++;
            } else {
                zone.counters.allocFailures++;
            }
            return pfn;
        } finally {
            zone.unlock();
        }
    }

    /**
     * Fills the slots of {@code pageArray[0, nrPages)} that hold {@link #NO_PAGE} with allocated
     * order-0 pages; slots holding anything else are left alone and count as populated. Takes the
     * zone lock at most once for the pages the per-CPU set cannot supply (plus once more if it
     * first has to reclaim cached pages because memory ran out).
     *
     * @return how many of the first {@code nrPages} slots are populated, those already set
     *         included; fewer than {@code nrPages} only when memory is exhausted
     * @throws IllegalArgumentException if {@code nrPages} is negative or exceeds the array
     * @throws IllegalStateException after {@link #close()}
     */
    public int allocPagesBulk(int nrPages, int[] pageArray) {
        checkOpen();
        Objects.requireNonNull(pageArray, "pageArray");
        if (nrPages < 0 || nrPages > pageArray.length) {
            throw new IllegalArgumentException("allocPagesBulk: nrPages " + nrPages
                    + " is outside 0.." + pageArray.length + " (the array's length)");
        }
        if (nrPages == 0) {
            return 0;
        }
        int populated = cpuCache.allocBulk(pageArray, nrPages);
        return populated == nrPages ? populated : allocBulkAfterReclaim(pageArray, nrPages);
    }

    private int allocBulkAfterReclaim(int[] pageArray, int nrPages) {
        cpuCache.drainReachable();
        int stop;
        zone.lock();
        try {
            stop = zone.fillSlots(pageArray, 0, nrPages, zone.counters);
            if (stop < nrPages) {
                zone.counters.allocFailures++;
            }
        } finally {
            zone.unlock();
        }
        return stop == nrPages ? nrPages : countPopulated(pageArray, nrPages);
    }

    static int countPopulated(int[] pages, int nrPages) {
        int n = 0;
        for (int i = 0; i < nrPages; i++) {
            if (pages[i] != NO_PAGE) {
                n++;
            }
        }
        return n;
    }

    // ------------------------------------------------------------------ free

    /**
     * Frees a block obtained from {@link #allocPages(int)} with the same order (or an order-0
     * page from {@link #allocPagesBulk} or {@link #splitPage}).
     *
     * @throws IllegalStateException if the block is already free (double free), or after close
     * @throws IllegalArgumentException if {@code pfn} is out of range, is not the head of an
     *         allocated block, or was allocated with another order
     */
    public void freePages(int pfn, int order) {
        if (closed) {
            throw closedError("freePages", pfn, "order", order);
        }
        if (order < 0 || order > maxOrder) {
            throw badOrder("freePages(pfn " + pfn + ", order " + order + ")", order);
        }
        checkAllocatedHead("freePages", pfn, order);
        if (order <= cachedTopOrder) {
            cpuCache.free(pfn, order);
        } else {
            zone.lockedFree(pfn, order);
        }
    }

    /**
     * Frees {@code count} allocated order-0 pages listed in {@code pfns[0, count)}. Every entry is
     * validated before any is freed: on error nothing is freed.
     *
     * @throws IllegalStateException if a page is already free, or after close
     * @throws IllegalArgumentException if {@code count} is out of range, a pfn is out of range,
     *         not an allocated order-0 page, or listed twice
     */
    public void freePagesBulk(int[] pfns, int count) {
        Objects.requireNonNull(pfns, "pfns");
        if (closed) {
            throw closedBulkError(pfns, count);
        }
        if (count < 0 || count > pfns.length) {
            throw new IllegalArgumentException("freePagesBulk: count " + count
                    + " is outside 0.." + pfns.length + " (the array's length)");
        }
        if (count == 0) {
            return;
        }
        markFreeing(pfns, count);
        cpuCache.freeBulk(pfns, count);
    }

    /** Validates a bulk free and marks every page FREEING; on error restores the marks and throws. */
    private void markFreeing(int[] pfns, int count) {
        byte[] state = table.state;
        byte[] order = table.order;
        for (int i = 0; i < count; i++) {
            int pfn = pfns[i];
            if (pfn < 0 || pfn >= totalPages || state[pfn] != PageTable.ALLOCATED || order[pfn] != 0) {
                RuntimeException error = pfn >= 0 && pfn < totalPages && state[pfn] == PageTable.FREEING
                        ? new IllegalArgumentException("freePagesBulk: pfn " + pfn + " is listed twice (at index "
                                + indexOf(pfns, pfn) + " and at index " + i + "); nothing was freed")
                        : null;
                for (int j = 0; j < i; j++) {
                    state[pfns[j]] = PageTable.ALLOCATED;
                }
                if (error == null) {
                    error = misuse("freePagesBulk", "index " + i + ": ", pfn, 0, "; nothing was freed");
                }
                throw error;
            }
            state[pfn] = PageTable.FREEING;
        }
    }

    private static int indexOf(int[] a, int value) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == value) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Turns an allocated block of 2^{@code order} pages into as many allocated order-0 pages, each
     * to be freed on its own (with {@link #freePages(int, int) freePages(pfn, 0)},
     * {@link #freePagesBulk} or {@link #freeContigRange}). Splitting an order-0 page is a no-op.
     *
     * @throws IllegalArgumentException if {@code pfn} is not the head of an allocated block of {@code order}
     * @throws IllegalStateException if the block is free, or after close
     */
    public void splitPage(int pfn, int order) {
        if (closed) {
            throw closedError("splitPage", pfn, "order", order);
        }
        if (order < 0 || order > maxOrder) {
            throw badOrder("splitPage(pfn " + pfn + ", order " + order + ")", order);
        }
        checkAllocatedHead("splitPage", pfn, order);
        byte[] state = table.state;
        byte[] orders = table.order;
        for (int p = pfn + 1, end = pfn + (1 << order); p < end; p++) {
            state[p] = PageTable.ALLOCATED;
            orders[p] = 0;
        }
        orders[pfn] = 0;
        splits.increment();
    }

    /**
     * Frees the {@code nrPages} allocated order-0 pages starting at {@code pfn} (typically a block
     * split with {@link #splitPage}) as the largest aligned power-of-two chunks, under one zone lock.
     * Every page is validated first: on error nothing is freed.
     *
     * @throws IllegalArgumentException if {@code nrPages} is negative, the range leaves the
     *         allocator, or a page in it is not an allocated order-0 page
     * @throws IllegalStateException if a page in it is already free, or after close
     */
    public void freeContigRange(int pfn, int nrPages) {
        if (closed) {
            throw closedError("freeContigRange", pfn, "nrPages", nrPages);
        }
        if (nrPages < 0) {
            throw new IllegalArgumentException("freeContigRange(pfn " + pfn + ", nrPages " + nrPages
                    + "): nrPages is negative");
        }
        if (pfn < 0 || pfn >= totalPages || (long) pfn + nrPages > totalPages) {
            throw new IllegalArgumentException("freeContigRange(pfn " + pfn + ", nrPages " + nrPages
                    + "): the range is not inside this allocator's pfns 0.." + (totalPages - 1));
        }
        if (nrPages == 0) {
            return;
        }
        byte[] state = table.state;
        byte[] order = table.order;
        for (int p = pfn, end = pfn + nrPages; p < end; p++) {
            if (state[p] != PageTable.ALLOCATED || order[p] != 0) {
                throw misuse("freeContigRange", "range [" + pfn + ", " + (pfn + nrPages) + "): ", p, 0,
                        "; every page of the range must be an allocated order-0 page; nothing was freed");
            }
        }
        zone.lock();
        try {
            zone.freeContigRange(pfn, nrPages);
        } finally {
            zone.unlock();
        }
    }

    // ------------------------------------------------------------------ validation

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the page allocator is closed");
        }
    }

    /**
     * Use after close by a call that names pages: the message names the call and its pages. Built
     * here, not at the call site, to keep the hot methods' bytecode (and so their inlining) as it was.
     */
    private static IllegalStateException closedError(String op, int pfn, String second, int value) {
        return new IllegalStateException(op + "(pfn " + pfn + ", " + second + " " + value + "): the page allocator is closed");
    }

    private static IllegalStateException closedBulkError(int[] pfns, int count) {
        return new IllegalStateException("freePagesBulk(count " + count
                + (count > 0 && pfns.length > 0 ? ", first pfn " + pfns[0] : "") + "): the page allocator is closed");
    }

    private void checkOrder(String op, int order) {
        if (order < 0 || order > maxOrder) {
            throw badOrder(op, order);
        }
    }

    private IllegalArgumentException badOrder(String op, int order) {
        return new IllegalArgumentException(op + ": order " + order + " is outside 0.." + maxOrder);
    }

    private void checkAllocatedHead(String op, int pfn, int order) {
        if (pfn < 0 || pfn >= totalPages || table.state[pfn] != PageTable.ALLOCATED || table.order[pfn] != order) {
            throw misuse(op, "", pfn, order, "");
        }
    }

    private IllegalArgumentException notAPage(String call, int pfn, String tail) {
        return new IllegalArgumentException(call + "pfn " + pfn + " is not a page of this allocator (pfns are 0.."
                + (totalPages - 1) + ")" + tail);
    }

    /** Builds the exception for a pfn that is not an allocated block of {@code order}. */
    private RuntimeException misuse(String op, String where, int pfn, int order, String tail) {
        String call = op + "(pfn " + pfn + ", order " + order + "): " + where;
        if (pfn < 0 || pfn >= totalPages) {
            return notAPage(call, pfn, tail);
        }
        int head = table.headOf(pfn, maxOrder);
        byte s = head == NO_PAGE ? PageTable.NONE : table.state[head];
        if (s == PageTable.FREE || s == PageTable.CACHED) {
            return new IllegalStateException(call + (op.startsWith("free") ? "double free: " : "not allocated: ")
                    + "pfn " + pfn + " is already free (it is " + table.describe(pfn, maxOrder) + ")" + tail);
        }
        if (s == PageTable.POOLED) {
            return new IllegalArgumentException(call + "pfn " + pfn + " is held by " + poolHolding(head) + " (it is "
                    + table.describe(pfn, maxOrder) + "); only the pool frees it: give it back with putPage or putFrag"
                    + tail);
        }
        if (s == PageTable.ALLOCATED && head == pfn) {
            return new IllegalArgumentException(call + "wrong order: pfn " + pfn + " was allocated at order "
                    + table.order[pfn] + ", not " + order + tail);
        }
        return new IllegalArgumentException(call + "pfn " + pfn + " is not the head of an allocated block: it is "
                + table.describe(pfn, maxOrder) + tail);
    }

    /** Names the pool that holds block {@code head}, for error messages. */
    private String poolHolding(int head) {
        PoolPageTable pt = poolPageTable;
        int id = pt == null ? 0 : pt.pool[head];
        return id == 0 ? "a PagePool" : "PagePool#" + id;
    }

    // ------------------------------------------------------------------ memory access

    /**
     * Native address of page {@code pfn}'s first byte; valid until {@link #close()}. Returns 0 on a
     * JVM that gives no way to learn native addresses (not the case on OpenJDK 17 to 25).
     *
     * @throws IllegalArgumentException if {@code pfn} is out of range or its memory is not reserved yet
     */
    public long address(int pfn) {
        OffHeapRegion region = region("address", pfn);
        return region.address == 0 ? 0 : region.address + regionOffset(pfn);
    }

    /**
     * The shared buffer over the region that holds {@code pfn}; the page's bytes start at
     * {@link #regionOffset(int)}. Use absolute get/put only and never change its position, limit
     * or byte order: other threads use the same buffer. Does not allocate. Valid until
     * {@link #close()}, as {@link #address}: a buffer kept past it reads freed memory on JDK 17-21
     * (which can crash the JVM) and throws on JDK 22 and later.
     *
     * @throws IllegalArgumentException if {@code pfn} is out of range or its memory is not reserved yet
     */
    public ByteBuffer regionBuffer(int pfn) {
        return region("regionBuffer", pfn).buffer;
    }

    /**
     * Pages per region: memory is reserved in regions of one max-order block, so this is
     * {@code 1 << maxOrder()}. Pages {@code [r * regionPages(), (r + 1) * regionPages())} share one
     * {@link #regionBuffer(int)} and one contiguous address range, which lets a caller cache them per
     * region index {@code pfn / regionPages()}.
     */
    public int regionPages() {
        return zone.regionPages;
    }

    /** Byte offset of page {@code pfn} within {@link #regionBuffer(int)}. Does not allocate. */
    public int regionOffset(int pfn) {
        checkOpen();
        if (pfn < 0 || pfn >= totalPages) {
            throw notAPage("regionOffset: ", pfn, "");
        }
        return (pfn & (zone.regionPages - 1)) << pageShift;
    }

    /**
     * A new buffer over exactly the block of 2^{@code order} pages at {@code pfn}, position 0,
     * big-endian. Allocates a small object per call: for setup and tests, not per packet
     * (use {@link #regionBuffer(int)} there).
     */
    public ByteBuffer pageBuffer(int pfn, int order) {
        checkOrder("pageBuffer", order);
        ByteBuffer region = regionBuffer(pfn);
        if ((pfn & ((1 << order) - 1)) != 0) {
            throw new IllegalArgumentException("pageBuffer(pfn " + pfn + ", order " + order
                    + "): pfn is not aligned to an order-" + order + " block");
        }
        if ((long) pfn + (1L << order) > totalPages) {
            throw new IllegalArgumentException("pageBuffer(pfn " + pfn + ", order " + order
                    + "): the block would run past the last page (pfn " + (totalPages - 1) + ")");
        }
        return region.slice(regionOffset(pfn), pageSize << order);
    }

    private OffHeapRegion region(String op, int pfn) {
        checkOpen();
        if (pfn < 0 || pfn >= totalPages) {
            throw notAPage(op + ": ", pfn, "");
        }
        OffHeapRegion region = zone.regionFor(pfn);
        if (region == null) {
            throw new IllegalArgumentException(op + ": pfn " + pfn + " lies in a region not reserved yet"
                    + " (it has never been allocated)");
        }
        return region;
    }

    // ------------------------------------------------------------------ caches, accounting, lifecycle

    /**
     * Returns parked pages to the buddy lists: the calling thread's per-thread cache and the caches
     * of threads that have ended ({@link CpuCacheMode#PER_THREAD}), or every magazine
     * ({@link CpuCacheMode#MAGAZINE}). Caches of other live threads are left alone: Java has no way
     * to make another thread drain, so each thread's cache drains when that thread calls this, when
     * it frees past {@code high}, or when it ends. Thread-safe.
     */
    public void drainCpuCaches() {
        checkOpen();
        cpuCache.drainReachable();
    }

    /**
     * Returns to the buddy lists the pages parked in the calling thread's own per-thread cache
     * ({@link CpuCacheMode#PER_THREAD}), if it has one: for a thread that frees but will not
     * allocate again, whose parked pages no other thread could take. Unlike
     * {@link #drainCpuCaches()} it creates no cache, reaps no ended thread's, leaves the shared
     * magazines alone and does nothing once the allocator is closed. Thread-safe.
     */
    public void drainCallingThreadCache() {
        if (!closed) {
            cpuCache.drainCallingThread();
        }
    }

    public int pageSize() {
        return pageSize;
    }

    public int maxOrder() {
        return maxOrder;
    }

    /** Bytes of memory this allocator manages: {@link #totalPages()} pages of {@link #pageSize()}. */
    public long capacity() {
        return (long) totalPages * pageSize;
    }

    public int totalPages() {
        return totalPages;
    }

    public CpuCacheMode cpuCacheMode() {
        return cacheMode;
    }

    /** The per-CPU sets' {@code high}: pages a set may hold before it drains a batch. */
    public int pcpHigh() {
        return pcpHigh;
    }

    /** The per-CPU sets' {@code batch}: pages moved per refill or drain. */
    public int pcpBatch() {
        return pcpBatch;
    }

    /**
     * Free pages: on the buddy lists, parked in per-CPU caches (see {@link #cachedPageCount()}),
     * and in regions not reserved yet. Exact when no other thread is using the allocator.
     */
    public long freePageCount() {
        checkOpen();
        return cpuCache.quiesced(() -> {
            zone.lockQuietly();
            try {
                // The caches' counts under the zone lock: a set drains into the zone under it, so a
                // drained batch is never counted both in its set and on the buddy lists.
                return zone.freePages() + zone.unreservedPages() + cpuCache.cachedPages();
            } finally {
                zone.unlock();
            }
        });
    }

    /** Free pages parked in per-thread caches or magazines (part of {@link #freePageCount()}). */
    public long cachedPageCount() {
        checkOpen();
        return cpuCache.cachedPages();
    }

    /** A snapshot of counters and page accounting. Thread-safe; see {@link PageAllocatorStats}. */
    public PageAllocatorStats stats() {
        checkOpen();
        return cpuCache.quiesced(() -> {
            AllocCounters sum = new AllocCounters();
            cpuCache.sumCounters(sum);
            int sets = cpuCache.pageSets();
            zone.lockQuietly();
            try {
                zone.counters.addTo(sum);
                zone.retiredCacheCounters.addTo(sum);
                // Under the zone lock, as in freePageCount(): a refill racing this read can make the
                // allocated figure a batch too high for a moment, a drain never makes it too low.
                return new PageAllocatorStats(sum, splits.sum(), zone, cpuCache.cachedPages(), sets);
            } finally {
                zone.unlock();
            }
        });
    }

    /**
     * Walks the page table, every free list and every per-CPU cache, and throws
     * {@link IllegalStateException} naming the first violation found: a free list entry that is
     * not a free head of that order, a misaligned or overlapping block, a page covered by no
     * block, two free buddies left unmerged, a cached block that is not marked cached (or the
     * reverse), a block a page pool holds that is not marked as such (or the reverse), or a
     * free-page count that disagrees with the lists. Exact only while no other
     * thread is using the allocator.
     */
    public void checkConsistency() {
        checkOpen();
        PoolPageTable pools;
        synchronized (this) {
            pools = poolPageTable;
        }
        ConsistencyCheck.run(zone, cpuCache, pools);
    }

    /**
     * Frees the off-heap memory. Refuses, with an {@link IllegalStateException} naming the first
     * allocated pfn and leaving the allocator open and unchanged, while any page is still
     * allocated, because freeing memory that callers still use would corrupt it. A second call
     * after a successful close does nothing; every other operation and query then throws
     * {@link IllegalStateException} (the configuration getters and {@link #isClosed()} still answer).
     * Must not race with other calls.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        zone.lockQuietly();
        try {
            byte[] state = table.state;
            int first = NO_PAGE;
            long pages = 0;
            long blocks = 0;
            long pooled = 0;
            for (int p = 0, end = zone.reservedPages(); p < end; p++) {
                if (state[p] == PageTable.ALLOCATED || state[p] == PageTable.POOLED) {
                    if (first == NO_PAGE) {
                        first = p;
                    }
                    blocks++;
                    pages += 1L << table.order[p];
                    if (state[p] == PageTable.POOLED) {
                        pooled += 1L << table.order[p];
                    }
                }
            }
            if (first != NO_PAGE) {
                throw new IllegalStateException("close(): " + pages + " page(s) in " + blocks
                        + " block(s) are still allocated"
                        + (pooled > 0 ? " (" + pooled + " of them held by page pools)" : "")
                        + ", the first at pfn " + first + " (order " + table.order[first]
                        + (state[first] == PageTable.POOLED ? ", held by " + poolHolding(first) : "")
                        + "); free them first"
                        + (pooled > 0 ? " (close each PagePool and give back what it handed out)" : "")
                        + ". The allocator stays open.");
            }
            closed = true;
        } finally {
            zone.unlock();
        }
        cpuCache.close();
        if (cleanable != null) {
            cleanable.clean();
        } else {
            releaseMemory.run();
        }
    }

    /**
     * Marks allocated block {@code pfn} as held by a page pool (entering) or as an ordinary allocated
     * block again (leaving, just before the pool frees it). Called by whoever holds the block.
     */
    void markPooled(int pfn, boolean pooled) {
        table.state[pfn] = pooled ? PageTable.POOLED : PageTable.ALLOCATED;
    }

    /** The page-pool fields of every page, created for the first {@link PagePool} built on this allocator. */
    synchronized PoolPageTable poolPageTable() {
        checkOpen();
        if (poolPageTable == null) {
            poolPageTable = new PoolPageTable(totalPages, pageSize);
        }
        return poolPageTable;
    }

    /** True once {@link #close()} has succeeded. */
    public boolean isClosed() {
        return closed;
    }

    @Override
    public String toString() {
        return "PageAllocator[" + ((long) totalPages * pageSize >> 20) + " MiB = " + totalPages + " pages of "
                + pageSize + " B, maxOrder " + maxOrder + ", " + cacheMode + " (high " + pcpHigh + ", batch "
                + pcpBatch + "), memory: " + OffHeapRegion.backendName() + (closed ? ", closed]" : "]");
    }

    // ------------------------------------------------------------------ builder

    /**
     * Configures a {@link PageAllocator}. Not thread-safe; {@link #build()} may be called more than
     * once, each call making an independent allocator.
     */
    public static final class Builder {
        private long capacity = DEFAULT_CAPACITY;
        private int pageSize = DEFAULT_PAGE_SIZE;
        private int maxOrder = DEFAULT_MAX_ORDER;
        private CpuCacheMode cpuCacheMode = CpuCacheMode.PER_THREAD;
        private boolean preTouch;
        private static final int UNSET = Integer.MIN_VALUE;
        private int pcpHigh = UNSET;
        private int pcpBatch = UNSET;
        private int magazines = UNSET;

        private Builder() {
        }

        /** Bytes of off-heap memory to manage; a positive multiple of the page size. Default 64 MiB. */
        public Builder capacity(long bytes) {
            this.capacity = bytes;
            return this;
        }

        /** Page size in bytes: a power of two, at least 4096. Default 4096. */
        public Builder pageSize(int bytes) {
            this.pageSize = bytes;
            return this;
        }

        /** Largest block order; {@code pageSize << maxOrder} must not exceed 1 GiB. Default 10. */
        public Builder maxOrder(int maxOrder) {
            this.maxOrder = maxOrder;
            return this;
        }

        /** Per-CPU caching strategy. Default {@link CpuCacheMode#PER_THREAD}. */
        public Builder cpuCacheMode(CpuCacheMode mode) {
            this.cpuCacheMode = Objects.requireNonNull(mode, "mode");
            return this;
        }

        /**
         * Reserve (and so touch: the JDK zeroes new memory) all memory in {@link #build()} instead
         * of one max-order region at a time on first need. Costs startup time and resident memory;
         * removes the one-off cost of reserving a region from the first allocations that need it.
         * Default false.
         */
        public Builder preTouch(boolean preTouch) {
            this.preTouch = preTouch;
            return this;
        }

        /**
         * Pages a per-CPU set may hold before a free drains a batch (the kernel's {@code high}).
         * Default {@code 6 * batch} (at most the page count). Must be between {@code batch} and the
         * page count: a cache never needs to hold more pages than exist.
         */
        public Builder pcpHigh(int pages) {
            this.pcpHigh = pages;
            return this;
        }

        /**
         * Pages moved between a per-CPU set and the zone per refill or drain (the kernel's
         * {@code batch}). Default: {@code totalPages / 256} rounded down to a power of two, between
         * 1 and 64. Must be between 1 and the page count.
         */
        public Builder pcpBatch(int pages) {
            this.pcpBatch = pages;
            return this;
        }

        /** Number of magazines in {@link CpuCacheMode#MAGAZINE} mode. Default 2 per available processor. */
        public Builder magazines(int count) {
            this.magazines = count;
            return this;
        }

        /**
         * Builds the allocator.
         *
         * @throws IllegalArgumentException if a setting is out of range (the message says which)
         * @throws OutOfMemoryError if {@code preTouch} is set and the memory cannot be reserved
         */
        public PageAllocator build() {
            if (pageSize < DEFAULT_PAGE_SIZE || Integer.bitCount(pageSize) != 1) {
                throw new IllegalArgumentException("pageSize " + pageSize + " must be a power of two >= 4096");
            }
            int pageShift = Integer.numberOfTrailingZeros(pageSize);
            if (maxOrder < 0 || pageShift + maxOrder > 30) {
                throw new IllegalArgumentException("maxOrder " + maxOrder + " must be >= 0 with pageSize << maxOrder"
                        + " <= 1 GiB (at most " + (30 - pageShift) + " for " + pageSize + "-byte pages)");
            }
            if (capacity <= 0 || capacity % pageSize != 0) {
                throw new IllegalArgumentException("capacity " + capacity + " must be a positive multiple of the page size "
                        + pageSize);
            }
            long pages = capacity / pageSize;
            if (pages > (1 << 30)) {
                throw new IllegalArgumentException("capacity " + capacity + " is " + pages + " pages; at most 2^30"
                        + " pages are supported");
            }
            int totalPages = (int) pages;
            if (pcpBatch != UNSET && (pcpBatch < 1 || pcpBatch > totalPages)) {
                throw new IllegalArgumentException("pcpBatch " + pcpBatch + " must be between 1 and the page count "
                        + totalPages);
            }
            int batch = pcpBatch != UNSET ? pcpBatch : defaultBatch(totalPages);
            if (pcpHigh != UNSET && (pcpHigh < batch || pcpHigh > totalPages)) {
                throw new IllegalArgumentException("pcpHigh " + pcpHigh + " must be between pcpBatch " + batch
                        + " and the page count " + totalPages);
            }
            int high = pcpHigh != UNSET ? pcpHigh : Math.min(totalPages, 6 * batch);
            if (magazines != UNSET && magazines < 1) {
                throw new IllegalArgumentException("magazines " + magazines + " must be at least 1");
            }
            int mags = magazines != UNSET ? magazines : 2 * Runtime.getRuntime().availableProcessors();
            return new PageAllocator(this, totalPages, high, batch, mags);
        }

        private static int defaultBatch(int totalPages) {
            return Math.max(1, Math.min(64, Integer.highestOneBit(Math.max(1, totalPages / 256))));
        }
    }
}
