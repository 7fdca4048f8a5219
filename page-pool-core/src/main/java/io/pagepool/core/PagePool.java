package io.pagepool.core;

import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.jctools.queues.atomic.MpscAtomicArrayQueue;

/**
 * A recycling page pool owned by one thread: the Java counterpart of the kernel's
 * {@code page_pool} bound to one NAPI context (seeds 000 and 002). A Netty event loop allocates
 * every packet buffer from its own pool; pages come back to the pool instead of the allocator,
 * stay DMA-mapped while they recycle, and are refilled from the allocator 64 at a time.
 *
 * <h2>Where a page comes from ({@link #allocPage()})</h2>
 * <pre>
 *   owner thread only
 *   1. fast path:  cache[--count]                                  allocFast
 *   2. cache empty: move up to refillBatch pages ring -> cache      allocRefill (ring empty: allocEmpty)
 *   3. ring empty:  allocPagesBulk(refillBatch) -> cache            allocSlow
 *                   (order &gt; 0: one allocPages(order) block)     allocSlowHighOrder
 *      every page entering the pool is mapped once: DmaMapper.map
 *   4. allocator exhausted: NO_PAGE                                allocFailed
 * </pre>
 *
 * <h2>Where a page goes back ({@link #putPage})</h2>
 * <pre>
 *   any thread
 *   0. pool closed: unmap, back to the allocator                   recycleReleasedRefcnt
 *   1. sync for device: DmaMapper.syncForDevice(min(len, maxSyncLength))
 *   2. allowDirect and on the owner thread, cache not full:
 *        cache[count++] = pfn                                      recycleCached
 *      (cache full: recycleCacheFull, then step 3)
 *   3. offer to the recycle ring (multi-producer)                  recycleRing
 *   4. ring full: unmap, back to the allocator                     recycleRingFull
 * </pre>
 * {@code allowDirect} from a thread other than the owner is not an error: the page silently goes
 * to the ring (step 3), so a caller that gets it wrong can never corrupt the lock-free cache.
 *
 * <h2>Fragments ({@link #allocFrag}, {@link #putFrag})</h2>
 * Several packet buffers share a page, as {@code page_pool_alloc_frag} does: the owner bumps an
 * offset through the current page in steps of {@code fragAlign} (64 bytes by default). The page's
 * reference count starts at a large bias instead of being incremented per fragment; when the page
 * is used up, the owner subtracts the unused part of the bias in one atomic step. Each release
 * decrements it once, and whoever brings it to zero recycles the page, from any thread. So
 * {@code allocFrag} costs no atomic operation and {@code putFrag} one decrement, plus one atomic
 * bit-set in a per-page bitmap that catches a fragment released twice.
 *
 * <pre>
 *   fragment handle (long, never negative; NO_FRAG = -1)
 *    63 62       54 53                          24 23                      0
 *   +--+-----------+------------------------------+------------------------+
 *   |0 | gen (9)   |          pfn (30)            |  slot (24) = offset/64  |
 *   +--+-----------+------------------------------+------------------------+
 * </pre>
 * {@code gen} counts how often the page has been carved into fragments, so a handle kept past its
 * page's recycling is recognised as stale instead of releasing someone else's fragment. The count
 * wraps after {@link #FRAG_GENERATIONS} carvings (the handle has no spare bits): a stale handle
 * released after its page was carved again exactly a multiple of 512 times is indistinguishable
 * from the current one.
 *
 * <h2>Close</h2>
 * {@link #close()} empties the cache and the ring back to the allocator (unmapping every page).
 * Pages still in flight go back to the allocator, unmapped and counted as
 * {@code recycleReleasedRefcnt}, whenever they are returned later: never into a closed pool,
 * never leaked. {@link #awaitInflight(Duration)} waits for them.
 *
 * <h2>Misuse</h2>
 * Returning a page twice, a page or fragment this pool did not hand out, a fragment twice or a
 * stale fragment handle, and allocating off the owner thread or after close throw (with the pfn in
 * the message) before anything changes. A page handed out again by the pool is indistinguishable
 * from its previous use: a stale {@code putPage} of a pfn that has been reallocated cannot be
 * caught, which is why fragments carry a generation.
 *
 * <h2>Thread safety</h2>
 * {@link #allocPage()}, {@link #allocFrag(int)} and {@link #trim()}: the owner thread only (others
 * get {@link IllegalStateException}). {@link #putPage}, {@link #recycleDirect}, {@link #putFrag},
 * {@link #stats()}, {@link #inflight()}, {@link #dmaAddress} and {@link #awaitInflight}: any thread.
 * {@link #close()}: the owner thread, or any thread once the owner has stopped using the pool, that is
 * allocating from it and recycling into it directly (for a Netty event loop: after it terminated),
 * as the kernel destroys a page pool only after its NAPI context is disabled. Returns through the
 * ring may race with close from any thread; they are released to the allocator.
 */
public final class PagePool implements AutoCloseable {

    /** The fragment handle that means "none": returned by {@link #allocFrag} on exhaustion. */
    public static final long NO_FRAG = -1L;
    public static final int DEFAULT_CACHE_SIZE = 128;
    /** Largest cache a pool may have: the cache is an array of that many pfns, made when the pool is built. */
    public static final int MAX_CACHE_SIZE = 1 << 20;
    /** Largest recycle ring a pool may have. */
    public static final int MAX_RING_SIZE = 1 << 30;
    public static final int DEFAULT_REFILL_BATCH = 64;
    public static final int DEFAULT_RING_SIZE = 1024;
    public static final int DEFAULT_FRAG_ALIGN = 64;

    private static final int SLOT_BITS = 24;
    private static final int PFN_BITS = 30;
    private static final int GEN_BITS = 9;
    private static final int PFN_SHIFT = SLOT_BITS;
    private static final int GEN_SHIFT = SLOT_BITS + PFN_BITS;
    private static final long SLOT_MASK = (1L << SLOT_BITS) - 1;
    private static final long PFN_MASK = (1L << PFN_BITS) - 1;
    private static final int GEN_MASK = (1 << GEN_BITS) - 1;

    /** Carvings of one page before the generation in a fragment handle repeats. */
    public static final int FRAG_GENERATIONS = 1 << GEN_BITS;

    /** Initial fragment reference count of a page being carved; far above any fragment count. */
    private static final int FRAG_BIAS = 1 << 30;
    private static final byte[] ZEROS = new byte[4096];
    private static final System.Logger LOG = System.getLogger(PagePool.class.getName());

    private final PageAllocator allocator;
    private final PoolPageTable pt;
    private final int id;
    private final int order;
    private final int blockBytes;
    private final int cacheSize;
    private final int refillBatch;
    private final Thread owner;
    private final DmaMapper mapper;
    private final long[] dma;
    private final int maxSyncLength;
    private final int syncOffset;
    private final boolean zeroOnAlloc;
    private final int fragAlign;

    // Owner-thread state: plain fields, never touched by other threads while the pool is open.
    private final int[] cache;
    private int cacheCount;
    private int fragPfn = PageAllocator.NO_PAGE;
    private int fragOffset;
    private int fragUsers;
    private long allocFast;
    private long allocSlow;
    private long allocSlowHighOrder;
    private long allocEmpty;
    private long allocRefill;
    private long allocFailed;
    private long recycleCached;
    private long recycleCacheFull;
    private long ringTaken;
    private long fragAllocs;
    private long pagesEntered;

    /**
     * Multi-producer, single-consumer ring of returned pages. JCTools' array queue in its
     * {@code atomic} flavour (field updaters, no Unsafe, so no warnings on JDK 25); pfns travel as
     * the allocator's canonical Integer boxes, so offering does not allocate.
     */
    private final MpscAtomicArrayQueue<Integer> ring;

    // Shared state.
    private final LongAdder recycleRingFull = new LongAdder();
    private final LongAdder recycleReleasedRefcnt = new LongAdder();
    private final LongAdder pagesReleased = new LongAdder();
    private final Object closeLock = new Object();
    /** Pages drained from the ring by close; guarded by closeLock. */
    private long ringDrained;
    private volatile boolean closed;

    private PagePool(Builder b) {
        this.allocator = b.allocator;
        this.pt = allocator.poolPageTable();
        this.id = pt.nextPoolId();
        this.order = b.order;
        this.blockBytes = allocator.pageSize() << order;
        this.cacheSize = b.cacheSize;
        this.refillBatch = b.refillBatch;
        this.owner = b.owner != null ? b.owner : Thread.currentThread();
        this.mapper = b.dmaMapper;
        this.dma = mapper != null ? pt.dmaAddresses() : null;
        this.maxSyncLength = Math.min(b.maxSyncLengthSet ? b.maxSyncLength : blockBytes, blockBytes - b.syncOffset);
        this.syncOffset = b.syncOffset;
        this.zeroOnAlloc = b.zeroOnAlloc;
        this.fragAlign = b.fragAlign;
        this.cache = new int[cacheSize];
        this.ring = new MpscAtomicArrayQueue<>(b.ringSize);
    }

    /** Starts a builder for a pool that takes its pages from {@code allocator}. */
    public static Builder builder(PageAllocator allocator) {
        return new Builder(allocator);
    }

    // ------------------------------------------------------------------ fragment handles

    private static long encodeFrag(int gen, int pfn, int offset) {
        return ((long) (gen & GEN_MASK) << GEN_SHIFT) | ((long) pfn << PFN_SHIFT)
                | (offset >>> PoolPageTable.SLOT_SHIFT);
    }

    /**
     * The pfn of the page a fragment handle points into.
     *
     * @throws IllegalArgumentException for a negative handle, such as {@link #NO_FRAG}
     */
    public static int fragPfn(long handle) {
        if (handle < 0) {
            throw notAHandle("fragPfn", handle);
        }
        return handlePfn(handle);
    }

    /**
     * The fragment's byte offset within its page (block), a multiple of 64.
     *
     * @throws IllegalArgumentException for a negative handle, such as {@link #NO_FRAG}
     */
    public static int fragOffset(long handle) {
        if (handle < 0) {
            throw notAHandle("fragOffset", handle);
        }
        return handleOffset(handle);
    }

    /** {@link #fragPfn} without the sign check, for callers that check the handle themselves. */
    private static int handlePfn(long handle) {
        return (int) ((handle >>> PFN_SHIFT) & PFN_MASK);
    }

    private static int handleOffset(long handle) {
        return (int) (handle & SLOT_MASK) << PoolPageTable.SLOT_SHIFT;
    }

    private static IllegalArgumentException notAHandle(String op, long handle) {
        return new IllegalArgumentException(op + "(" + handle + "): not a fragment handle"
                + (handle == NO_FRAG ? " (NO_FRAG: allocFrag found no memory)" : ""));
    }

    private static int fragGeneration(long handle) {
        return (int) (handle >>> GEN_SHIFT) & GEN_MASK;
    }

    // ------------------------------------------------------------------ allocation (owner thread)

    /**
     * Hands out one page (a block of this pool's order). Owner thread only.
     *
     * @return the pfn, or {@link PageAllocator#NO_PAGE} when the allocator is exhausted
     * @throws IllegalStateException off the owner thread, or after {@link #close()}
     */
    public int allocPage() {
        if (Thread.currentThread() != owner || closed) {
            throw notOwnerOrClosed("allocPage()");
        }
        int pfn = takePage();
        if (pfn != PageAllocator.NO_PAGE) {
            handOut(pfn, PoolPageTable.IN_FLIGHT);
        }
        return pfn;
    }

    private int takePage() {
        int count = cacheCount;
        if (count > 0) {
            cacheCount = --count;
            allocFast++;
            return cache[count];
        }
        return takePageSlow();
    }

    /** Cache empty: refill from the ring, else from the allocator. */
    private int takePageSlow() {
        int n = refillFromRing();
        if (n > 0) {
            allocRefill++;
            cacheCount = n - 1;
            return cache[n - 1];
        }
        if (order > 0) {
            int pfn = allocator.allocPages(order);
            if (pfn == PageAllocator.NO_PAGE) {
                allocFailed++;
                return PageAllocator.NO_PAGE;
            }
            try {
                enterPool(pfn);
            } catch (RuntimeException | Error e) { // the mapper refused it: the block goes back, unmapped
                allocator.freePages(pfn, order);
                throw e;
            }
            allocSlowHighOrder++;
            return pfn;
        }
        int[] c = cache;
        for (int i = 0; i < refillBatch; i++) {
            c[i] = PageAllocator.NO_PAGE;
        }
        int got = allocator.allocPagesBulk(refillBatch, c);
        if (got == 0) {
            allocFailed++;
            return PageAllocator.NO_PAGE;
        }
        int k = 0;
        for (int i = 0; i < refillBatch; i++) {
            int pfn = c[i];
            if (pfn == PageAllocator.NO_PAGE) {
                continue;
            }
            try {
                enterPool(pfn);
            } catch (RuntimeException | Error e) { // the mapper refused this page: it and the rest go back
                for (int j = i; j < refillBatch; j++) {
                    if (c[j] != PageAllocator.NO_PAGE) {
                        allocator.freePages(c[j], 0);
                    }
                }
                cacheCount = k; // the pages mapped so far stay usable
                throw e;
            }
            c[k++] = pfn;
        }
        allocSlow++;
        cacheCount = k - 1;
        return c[k - 1];
    }

    /** Moves up to refillBatch pages from the ring into the empty cache; returns how many. */
    private int refillFromRing() {
        int[] c = cache;
        int n = 0;
        while (n < refillBatch) {
            Integer box = ring.relaxedPoll();
            if (box == null) {
                break;
            }
            c[n++] = box;
        }
        if (n == 0) {
            allocEmpty++;
        } else {
            ringTaken += n;
        }
        return n;
    }

    private void enterPool(int pfn) {
        if (mapper != null) {
            dma[pfn] = mapper.map(pfn, allocator.address(pfn), blockBytes);
        }
        pt.pool[pfn] = id;
        pt.state[pfn] = PoolPageTable.IN_POOL; // parked until handed out: a put of it is a double put
        allocator.markPooled(pfn, true); // the allocator's own free and split now refuse it
        pagesEntered++;
    }

    private void handOut(int pfn, byte state) {
        pt.state[pfn] = state;
        if (zeroOnAlloc) {
            ByteBuffer buf = allocator.regionBuffer(pfn);
            int base = allocator.regionOffset(pfn);
            for (int done = 0; done < blockBytes; done += ZEROS.length) {
                buf.put(base + done, ZEROS, 0, Math.min(ZEROS.length, blockBytes - done));
            }
        }
    }

    /**
     * Hands out a fragment of at least {@code size} bytes, carved from the current page. Owner thread only.
     *
     * @param size 1 to the pool's block size
     * @return a handle for {@link #fragPfn}/{@link #fragOffset}/{@link #putFrag}, or {@link #NO_FRAG}
     *         when the allocator is exhausted
     * @throws IllegalArgumentException if {@code size} is out of range
     * @throws IllegalStateException off the owner thread, or after {@link #close()}
     */
    public long allocFrag(int size) {
        if (Thread.currentThread() != owner || closed) {
            throw notOwnerOrClosed("allocFrag(" + size + ")");
        }
        if (size <= 0 || size > blockBytes) {
            throw new IllegalArgumentException("allocFrag(" + size + "): size must be between 1 and the block size "
                    + blockBytes);
        }
        int need = (size + fragAlign - 1) & -fragAlign;
        int pfn = fragPfn;
        if (pfn != PageAllocator.NO_PAGE) {
            int offset = fragOffset;
            if (need <= blockBytes - offset) {
                fragOffset = offset + need;
                fragUsers++;
                fragAllocs++;
                markFragStart(pfn, offset);
                return encodeFrag(pt.fragGen[pfn], pfn, offset);
            }
            retireFragPage();
        }
        return allocFragFromNewPage(need);
    }

    private long allocFragFromNewPage(int need) {
        int pfn = takePage();
        if (pfn == PageAllocator.NO_PAGE) {
            return NO_FRAG;
        }
        handOut(pfn, PoolPageTable.FRAGMENTED);
        int gen = (pt.fragGen[pfn] + 1) & GEN_MASK;
        pt.fragGen[pfn] = (short) gen;
        pt.fragRefs[pfn] = FRAG_BIAS;
        int words = pt.wordsPerPage << order;
        int first = pfn * pt.wordsPerPage;
        for (int w = first; w < first + words; w++) {
            pt.fragStarts[w] = 0;
            pt.fragReleased[w] = 0;
        }
        fragPfn = pfn;
        fragOffset = need;
        fragUsers = 1;
        fragAllocs++;
        markFragStart(pfn, 0);
        return encodeFrag(gen, pfn, 0);
    }

    private void markFragStart(int pfn, int offset) {
        int slot = offset >>> PoolPageTable.SLOT_SHIFT;
        pt.fragStarts[pfn * pt.wordsPerPage + (slot >>> PoolPageTable.SLOTS_PER_WORD_SHIFT)] |= 1L << slot;
    }

    /** The current fragment page is used up: give up the unused bias; recycle the page if every fragment is back. */
    private void retireFragPage() {
        int pfn = fragPfn;
        int unused = FRAG_BIAS - fragUsers;
        fragPfn = PageAllocator.NO_PAGE;
        if ((int) PoolPageTable.REFS.getAndAdd(pt.fragRefs, pfn, -unused) == unused) {
            fragPageReturned(pfn, true);
        }
    }

    private void fragPageReturned(int pfn, boolean allowDirect) {
        pt.state[pfn] = PoolPageTable.IN_POOL;
        recycle(pfn, -1, allowDirect);
    }

    private IllegalStateException notOwnerOrClosed(String op) {
        if (closed) {
            return new IllegalStateException(op + ": " + this + " is closed");
        }
        return new IllegalStateException(op + " called on thread \"" + Thread.currentThread().getName() + "\"; only "
                + this + "'s owner thread \"" + owner.getName() + "\" may allocate from it");
    }

    // ------------------------------------------------------------------ return (any thread)

    /**
     * Returns a page handed out by {@link #allocPage()}.
     *
     * @param pfn           the page
     * @param dmaSyncLength bytes the device may have written, synced for the device before reuse
     *                      (capped by {@code maxSyncLength}; negative means the whole block; 0 none)
     * @param allowDirect   recycle straight into the cache; honoured only on the owner thread,
     *                      elsewhere the page goes through the ring
     * @throws IllegalStateException if the page is already back in the pool (double put)
     * @throws IllegalArgumentException if the pfn is not a page this pool handed out whole
     */
    public void putPage(int pfn, int dmaSyncLength, boolean allowDirect) {
        PoolPageTable t = pt;
        if (pfn < 0 || pfn >= t.pool.length || t.pool[pfn] != id || t.state[pfn] != PoolPageTable.IN_FLIGHT) {
            throw badPut(pfn);
        }
        t.state[pfn] = PoolPageTable.IN_POOL;
        recycle(pfn, dmaSyncLength, allowDirect);
    }

    /**
     * Returns a page straight into the cache: the kernel's {@code page_pool_recycle_direct}. Meant
     * for the owner thread; from another thread the page goes through the ring instead. Syncs the
     * whole {@code maxSyncLength}.
     */
    public void recycleDirect(int pfn) {
        putPage(pfn, -1, true);
    }

    private void recycle(int pfn, int dmaSyncLength, boolean allowDirect) {
        if (closed) {
            try {
                release(pfn);
            } finally {
                recycleReleasedRefcnt.increment(); // counted once back in the allocator: see awaitInflight
            }
            return;
        }
        if (mapper != null && dmaSyncLength != 0) {
            int length = dmaSyncLength < 0 ? maxSyncLength : Math.min(dmaSyncLength, maxSyncLength);
            if (length > 0) {
                try {
                    mapper.syncForDevice(pfn, dma[pfn], syncOffset, length);
                } catch (RuntimeException | Error e) {
                    // Not synced, so not reusable: the page leaves the pool (counted as returned)
                    // rather than staying neither in flight nor parked.
                    try {
                        release(pfn);
                    } catch (RuntimeException | Error unmapFailure) {
                        e.addSuppressed(unmapFailure); // the sync failure is the caller's first news
                    } finally {
                        recycleReleasedRefcnt.increment();
                    }
                    throw e;
                }
            }
        }
        if (allowDirect && Thread.currentThread() == owner) {
            int count = cacheCount;
            if (count < cacheSize) {
                cache[count] = pfn;
                cacheCount = count + 1;
                recycleCached++;
                return;
            }
            recycleCacheFull++;
        }
        if (ring.offer(pt.box(pfn))) {
            if (closed) {
                drainRingAfterClose(); // close may have drained the ring before this offer landed
            }
            return;
        }
        try {
            release(pfn);
        } finally {
            recycleRingFull.increment();
        }
    }

    /** The page leaves the pool for good: unmap it and free it to the allocator. */
    private void release(int pfn) {
        try {
            if (mapper != null) {
                mapper.unmap(pfn, dma[pfn], blockBytes);
            }
        } finally {
            pt.state[pfn] = PoolPageTable.NOT_IN_POOL;
            pt.pool[pfn] = 0;
            allocator.markPooled(pfn, false);
            try {
                allocator.freePages(pfn, order);
            } finally {
                pagesReleased.increment(); // after the free: a page counted released is the allocator's
            }
        }
    }

    private void drainRingAfterClose() {
        synchronized (closeLock) {
            rethrow(releaseRing(null));
        }
    }

    private RuntimeException badPut(int pfn) {
        String call = "putPage(pfn " + pfn + "): ";
        if (pfn < 0 || pfn >= pt.pool.length) {
            return new IllegalArgumentException(call + "pfn " + pfn + " is not a page of the allocator (pfns are 0.."
                    + (pt.pool.length - 1) + ")");
        }
        if (pt.pool[pfn] != id) {
            return new IllegalArgumentException(call + "pfn " + pfn + " does not belong to " + this
                    + (pt.pool[pfn] == 0 ? " (it is in no pool)" : " (it belongs to PagePool#" + pt.pool[pfn] + ")"));
        }
        if (pt.state[pfn] == PoolPageTable.IN_POOL) {
            return new IllegalStateException(call + "double put: pfn " + pfn + " is already back in " + this);
        }
        return new IllegalArgumentException(call + "pfn " + pfn + " is carved into fragments; release each with putFrag");
    }

    /**
     * Releases a fragment handed out by {@link #allocFrag}. When the last fragment of a used-up page
     * comes back, the page is recycled (into the cache if {@code allowDirect} and on the owner
     * thread, else through the ring). Any thread.
     *
     * @throws IllegalStateException if the fragment was already released, or the handle is stale
     *         (its page has been recycled since)
     * @throws IllegalArgumentException if the handle does not name a fragment this pool handed out
     */
    public void putFrag(long handle, boolean allowDirect) {
        int pfn = handlePfn(handle); // a negative handle fails the check below
        int offset = handleOffset(handle);
        PoolPageTable t = pt;
        if (handle < 0 || pfn >= t.pool.length || t.pool[pfn] != id || t.state[pfn] != PoolPageTable.FRAGMENTED
                || t.fragGen[pfn] != fragGeneration(handle) || offset >= blockBytes) {
            throw badFrag(handle, pfn, offset);
        }
        int slot = offset >>> PoolPageTable.SLOT_SHIFT;
        int word = pfn * t.wordsPerPage + (slot >>> PoolPageTable.SLOTS_PER_WORD_SHIFT);
        long bit = 1L << slot;
        if ((t.fragStarts[word] & bit) == 0) {
            throw new IllegalArgumentException("putFrag(pfn " + pfn + ", offset " + offset + "): no fragment of "
                    + this + " starts at offset " + offset + " of pfn " + pfn);
        }
        long before = (long) PoolPageTable.RELEASED.getAndBitwiseOr(t.fragReleased, word, bit);
        if ((before & bit) != 0) {
            throw new IllegalStateException("putFrag(pfn " + pfn + ", offset " + offset + "): fragment released twice");
        }
        int[] refs = t.fragRefs;
        // Sole holder (count 1): nobody else can touch the count, so skip the atomic decrement.
        if ((int) PoolPageTable.REFS.getVolatile(refs, pfn) == 1 || (int) PoolPageTable.REFS.getAndAdd(refs, pfn, -1) == 1) {
            refs[pfn] = 0;
            fragPageReturned(pfn, allowDirect);
        }
    }

    private RuntimeException badFrag(long handle, int pfn, int offset) {
        String call = "putFrag(handle 0x" + Long.toHexString(handle) + " = pfn " + pfn + ", offset " + offset + "): ";
        if (handle < 0 || pfn >= pt.pool.length) {
            return new IllegalArgumentException(call + "not a fragment handle of " + this);
        }
        if (pt.pool[pfn] != id) {
            return new IllegalArgumentException(call + "pfn " + pfn + " does not belong to " + this);
        }
        if (pt.state[pfn] != PoolPageTable.FRAGMENTED || pt.fragGen[pfn] != fragGeneration(handle)) {
            return new IllegalStateException(call + "stale handle: pfn " + pfn + " has been recycled since this"
                    + " fragment was handed out (released twice?)");
        }
        return new IllegalArgumentException(call + "offset " + offset + " is outside the block of " + blockBytes + " bytes");
    }

    // ------------------------------------------------------------------ introspection

    /**
     * The device address the {@link DmaMapper} returned for {@code pfn}, or 0 without a mapper.
     *
     * @throws IllegalArgumentException if {@code pfn} is not a page of this pool
     */
    public long dmaAddress(int pfn) {
        if (pfn < 0 || pfn >= pt.pool.length || pt.pool[pfn] != id) {
            throw new IllegalArgumentException("dmaAddress(pfn " + pfn + "): pfn " + pfn + " is not a page of " + this);
        }
        return dma != null ? dma[pfn] : 0;
    }

    /** Pages handed out and not returned. Any thread; exact when the pool is quiescent. */
    public long inflight() {
        return stats().inflight();
    }

    /** A snapshot of the kernel-style counters. Any thread; see {@link PagePoolStats}. */
    public PagePoolStats stats() {
        // Returns are read before hand-outs, with a fence between: a page counted as returned was
        // handed out before, so a reading taken while the pool runs errs toward more pages in
        // flight, never fewer. Pages leaving the ring are counted as taken after they leave it, so
        // reading the taken count before the ring's size counts a page moving out in neither.
        long drained;
        synchronized (closeLock) {
            drained = ringDrained;
        }
        long taken = ringTaken;
        VarHandle.acquireFence();
        int ringPages = ring.size();
        long cached = recycleCached;
        long ringFull = recycleRingFull.sum();
        long releasedRefcnt = recycleReleasedRefcnt.sum();
        long released = pagesReleased.sum();
        VarHandle.acquireFence();
        return new PagePoolStats(allocFast, allocSlow, allocSlowHighOrder, allocEmpty, allocRefill, allocFailed,
                cached, recycleCacheFull, taken + drained + ringPages, ringFull, releasedRefcnt, fragAllocs,
                pagesEntered, released, closed ? 0 : cacheCount, ringPages);
    }

    public PageAllocator allocator() {
        return allocator;
    }

    /** Order of the blocks this pool hands out (0: single pages). */
    public int order() {
        return order;
    }

    /** Bytes per block handed out: {@code pageSize << order}. */
    public int blockBytes() {
        return blockBytes;
    }

    public Thread owner() {
        return owner;
    }

    public int cacheSize() {
        return cacheSize;
    }

    public int refillBatch() {
        return refillBatch;
    }

    public int fragAlign() {
        return fragAlign;
    }

    public boolean isClosed() {
        return closed;
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * Gives every page parked in the cache and the recycle ring back to the allocator (unmapped),
     * for an owner that goes idle or wants to return memory; pages in flight and the current
     * fragment page are untouched, and the pool refills from the allocator on its next allocation.
     * Owner thread only.
     *
     * @return the number of pages released
     * @throws IllegalStateException off the owner thread, or after {@link #close()}
     */
    public int trim() {
        if (Thread.currentThread() != owner || closed) {
            throw notOwnerOrClosed("trim()");
        }
        int released = 0;
        // Oldest first (the order pages reach the allocator shapes what its per-CPU sets keep). A
        // failing unmap still frees its page (see release), and the pages after it stay cached,
        // so the cache never holds a page that went back to the allocator.
        int n = cacheCount;
        cacheCount = 0;
        for (int i = 0; i < n; i++) {
            try {
                release(cache[i]);
            } catch (RuntimeException | Error e) {
                int rest = n - i - 1;
                System.arraycopy(cache, i + 1, cache, 0, rest);
                cacheCount = rest;
                throw e;
            }
            released++;
        }
        Integer box;
        while ((box = ring.relaxedPoll()) != null) {
            ringTaken++;
            release(box);
            released++;
        }
        return released;
    }

    /**
     * Closes the pool: the cache, the ring and the current fragment page (once its fragments are
     * back) return to the allocator, unmapped. Pages still in flight return to the allocator when
     * they are put back. A second call does nothing. Call it on the owner thread, or after the owner
     * has stopped using the pool: the owner's cache is owner-private, so a direct recycle racing a
     * close on another thread could leave a page in the closed pool's cache (making that safe would
     * put a full fence on every direct recycle).
     */
    @Override
    public void close() {
        synchronized (closeLock) {
            if (closed) {
                return;
            }
            closed = true;
            // A failing unmap must not strand the pages after it: every page is freed (release
            // frees even when unmap throws) and the first failure is rethrown at the end.
            Throwable failure = null;
            if (fragPfn != PageAllocator.NO_PAGE) {
                try {
                    retireFragPage(); // sees closed: a page whose fragments are all back is released now
                } catch (RuntimeException | Error e) {
                    failure = e;
                }
            }
            int n = cacheCount;
            cacheCount = 0;
            for (int i = 0; i < n; i++) {
                failure = releaseNoting(cache[i], failure);
            }
            rethrow(releaseRing(failure));
        }
    }

    /** Releases every page the ring holds, going on past a failing unmap; the failures so far. */
    private Throwable releaseRing(Throwable failure) {
        Integer box;
        while ((box = ring.poll()) != null) {
            ringDrained++;
            failure = releaseNoting(box, failure);
        }
        return failure;
    }

    /** {@link #release}, adding what it throws to {@code failure} (the first, with later ones suppressed). */
    private Throwable releaseNoting(int pfn, Throwable failure) {
        try {
            release(pfn);
            return failure;
        } catch (RuntimeException | Error e) {
            if (failure == null) {
                return e;
            }
            failure.addSuppressed(e);
            return failure;
        }
    }

    private static void rethrow(Throwable failure) {
        if (failure instanceof RuntimeException) {
            throw (RuntimeException) failure;
        }
        if (failure != null) {
            throw (Error) failure;
        }
    }

    /**
     * Waits until no page is in flight, for at most {@code timeout}; once the pool is closed, until
     * every page it held is back in the allocator (a page returned after close is counted only once
     * freed, so {@link PageAllocator#close()} may follow a true result at once). If some never come
     * back, logs a warning naming how many (they will still be released when returned) and returns
     * false.
     *
     * @return true when every page handed out has come back (and, once closed, reached the allocator)
     */
    public boolean awaitInflight(Duration timeout) {
        long nanos;
        try {
            nanos = timeout.toNanos();
        } catch (ArithmeticException longerThan292Years) {
            nanos = timeout.isNegative() ? 0 : Long.MAX_VALUE;
        }
        long deadline = System.nanoTime() + nanos;
        for (;;) {
            if (closed) {
                drainRingAfterClose();
            }
            long inflight = closed ? stats().pagesHeld() : inflight();
            if (inflight == 0) {
                return true;
            }
            if (System.nanoTime() - deadline >= 0) {
                LOG.log(System.Logger.Level.WARNING, "{0}: {1} page(s) still in flight after {2}; they will go back to"
                        + " the allocator when returned", this, inflight, timeout);
                return false;
            }
            LockSupport.parkNanos(1_000_000L);
        }
    }

    @Override
    public String toString() {
        return "PagePool#" + id + "[order " + order + ", owner \"" + owner.getName() + "\"" + (closed ? ", closed]" : "]");
    }

    // ------------------------------------------------------------------ builder

    /** Configures a {@link PagePool}. Not thread-safe. */
    public static final class Builder {
        private final PageAllocator allocator;
        private int order;
        private int cacheSize = DEFAULT_CACHE_SIZE;
        private int refillBatch = DEFAULT_REFILL_BATCH;
        private int ringSize = DEFAULT_RING_SIZE;
        private Thread owner;
        private DmaMapper dmaMapper;
        private int maxSyncLength;
        private boolean maxSyncLengthSet; // if not, the rest of the block from syncOffset
        private int syncOffset;
        private boolean zeroOnAlloc;
        private int fragAlign = DEFAULT_FRAG_ALIGN;

        private Builder(PageAllocator allocator) {
            this.allocator = Objects.requireNonNull(allocator, "allocator");
        }

        /** Order of the blocks handed out; 0 (single pages) by default. */
        public Builder order(int order) {
            this.order = order;
            return this;
        }

        /**
         * Pages the owner's lock-free cache holds (the kernel's PP_ALLOC_CACHE_SIZE), 1 to
         * {@link #MAX_CACHE_SIZE}. Default 128.
         */
        public Builder cacheSize(int pages) {
            this.cacheSize = pages;
            return this;
        }

        /** Pages moved into an empty cache per refill, from the ring or the allocator (PP_ALLOC_CACHE_REFILL). Default 64. */
        public Builder refillBatch(int pages) {
            this.refillBatch = pages;
            return this;
        }

        /** Capacity of the recycle ring, rounded up to a power of two. Default 1024. */
        public Builder ringSize(int pages) {
            this.ringSize = pages;
            return this;
        }

        /** The thread that may allocate and recycle directly. Default: the thread that calls {@link #build()}. */
        public Builder owner(Thread owner) {
            this.owner = Objects.requireNonNull(owner, "owner");
            return this;
        }

        /** Maps pages entering the pool and syncs them on recycle. Default: none. */
        public Builder dmaMapper(DmaMapper mapper) {
            this.dmaMapper = mapper;
            return this;
        }

        /**
         * Most bytes synced for the device per recycle, not negative (0: recycles sync nothing).
         * Default, and at most: the rest of the block from {@link #syncOffset}.
         */
        public Builder maxSyncLength(int bytes) {
            this.maxSyncLength = bytes;
            this.maxSyncLengthSet = true;
            return this;
        }

        /** Offset within the block at which syncs start (headroom the device does not write). Default 0. */
        public Builder syncOffset(int bytes) {
            this.syncOffset = bytes;
            return this;
        }

        /** Zero every page before handing it out (costs a memset per page). Default false. */
        public Builder zeroOnAlloc(boolean zero) {
            this.zeroOnAlloc = zero;
            return this;
        }

        /** Alignment of fragment offsets: a power of two, at least 64. Default 64 (a cache line). */
        public Builder fragAlign(int bytes) {
            this.fragAlign = bytes;
            return this;
        }

        /**
         * Builds the pool.
         *
         * @throws IllegalArgumentException if a setting is out of range (the message says which)
         * @throws IllegalStateException if the allocator is closed
         */
        public PagePool build() {
            if (allocator.isClosed()) {
                throw new IllegalStateException("cannot build a PagePool on a closed allocator");
            }
            if (order < 0 || order > allocator.maxOrder()) {
                throw new IllegalArgumentException("order " + order + " is outside 0.." + allocator.maxOrder());
            }
            int blockBytes = allocator.pageSize() << order;
            if (cacheSize < 1 || cacheSize > MAX_CACHE_SIZE) {
                throw new IllegalArgumentException("cacheSize " + cacheSize + " must be between 1 and " + MAX_CACHE_SIZE
                        + " (MAX_CACHE_SIZE)");
            }
            if (refillBatch < 1 || refillBatch > cacheSize) {
                throw new IllegalArgumentException("refillBatch " + refillBatch + " must be between 1 and cacheSize "
                        + cacheSize);
            }
            if (ringSize < 2 || ringSize > MAX_RING_SIZE) {
                throw new IllegalArgumentException("ringSize " + ringSize + " must be between 2 and 2^30");
            }
            if (maxSyncLengthSet && maxSyncLength < 0) {
                throw new IllegalArgumentException("maxSyncLength " + maxSyncLength + " must not be negative");
            }
            if (maxSyncLength > blockBytes) {
                throw new IllegalArgumentException("maxSyncLength " + maxSyncLength + " exceeds the block size " + blockBytes);
            }
            if (syncOffset < 0 || syncOffset >= blockBytes) {
                throw new IllegalArgumentException("syncOffset " + syncOffset + " must be within the block of "
                        + blockBytes + " bytes");
            }
            if (fragAlign < DEFAULT_FRAG_ALIGN || Integer.bitCount(fragAlign) != 1 || fragAlign > blockBytes) {
                throw new IllegalArgumentException("fragAlign " + fragAlign + " must be a power of two between 64 and "
                        + blockBytes);
            }
            return new PagePool(this);
        }
    }
}
