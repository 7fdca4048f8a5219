package io.pagepool.core;

/**
 * A snapshot of a {@link PagePool}'s counters, named after the kernel's {@code page_pool_stats}.
 *
 * <p>Each page handed out counts exactly once as {@link #allocFast()}, {@link #allocSlow()},
 * {@link #allocSlowHighOrder()} or {@link #allocRefill()}; each page returned exactly once as
 * {@link #recycleCached()}, {@link #recycleRing()}, {@link #recycleRingFull()} or
 * {@link #recycleReleasedRefcnt()} ({@link #recycleCacheFull()} and {@link #allocEmpty()} count
 * in addition). A page carved into fragments counts once when it is taken and once when its last
 * fragment comes back.
 *
 * <p>Counters kept by the owner thread are read without synchronization: exact when the pool is
 * quiescent, possibly a few events stale while it runs. The returns are read before the
 * hand-outs, so while the pool runs {@link #inflight()} may be too high for a moment, not too low
 * (on x86; the owner's counters are plain stores, which a weaker memory model may let a reader see
 * out of order, by a few events).
 * Thread safety: immutable.
 */
public final class PagePoolStats {

    private final long allocFast;
    private final long allocSlow;
    private final long allocSlowHighOrder;
    private final long allocEmpty;
    private final long allocRefill;
    private final long allocFailed;
    private final long recycleCached;
    private final long recycleCacheFull;
    private final long recycleRing;
    private final long recycleRingFull;
    private final long recycleReleasedRefcnt;
    private final long fragAllocs;
    private final long pagesEntered;
    private final long pagesReleased;
    private final int cachedPages;
    private final int ringPages;

    PagePoolStats(long allocFast, long allocSlow, long allocSlowHighOrder, long allocEmpty, long allocRefill,
            long allocFailed, long recycleCached, long recycleCacheFull, long recycleRing, long recycleRingFull,
            long recycleReleasedRefcnt, long fragAllocs, long pagesEntered, long pagesReleased, int cachedPages,
            int ringPages) {
        this.allocFast = allocFast;
        this.allocSlow = allocSlow;
        this.allocSlowHighOrder = allocSlowHighOrder;
        this.allocEmpty = allocEmpty;
        this.allocRefill = allocRefill;
        this.allocFailed = allocFailed;
        this.recycleCached = recycleCached;
        this.recycleCacheFull = recycleCacheFull;
        this.recycleRing = recycleRing;
        this.recycleRingFull = recycleRingFull;
        this.recycleReleasedRefcnt = recycleReleasedRefcnt;
        this.fragAllocs = fragAllocs;
        this.pagesEntered = pagesEntered;
        this.pagesReleased = pagesReleased;
        this.cachedPages = cachedPages;
        this.ringPages = ringPages;
    }

    /** Pages handed out from the cache. */
    public long allocFast() {
        return allocFast;
    }

    /** Slow-path calls that bulk-allocated order-0 pages from the allocator (the page they returned). */
    public long allocSlow() {
        return allocSlow;
    }

    /** Slow-path calls of an order &gt; 0 pool, which allocate one block from the allocator. */
    public long allocSlowHighOrder() {
        return allocSlowHighOrder;
    }

    /** Refill attempts that found the recycle ring empty. */
    public long allocEmpty() {
        return allocEmpty;
    }

    /** Refills from the recycle ring (the page they returned). */
    public long allocRefill() {
        return allocRefill;
    }

    /**
     * Pages the kernel would drop as belonging to another NUMA node during a ring refill. A Java
     * pool has no NUMA placement to honour, so it never waives a page: always 0, kept so the
     * counter set matches the kernel's.
     */
    public long allocWaive() {
        return 0;
    }

    /** Allocations that returned {@code NO_PAGE}/{@code NO_FRAG} because memory was exhausted (not a kernel counter). */
    public long allocFailed() {
        return allocFailed;
    }

    /** Pages recycled straight into the cache by the owner thread. */
    public long recycleCached() {
        return recycleCached;
    }

    /** Direct recycles that found the cache full (they went on to the ring), counted in addition. */
    public long recycleCacheFull() {
        return recycleCacheFull;
    }

    /** Pages put into the recycle ring. */
    public long recycleRing() {
        return recycleRing;
    }

    /** Pages returned to the allocator because the recycle ring was full. */
    public long recycleRingFull() {
        return recycleRingFull;
    }

    /**
     * Pages that came back but could not be recycled, and went to the allocator: in a Java pool,
     * pages returned after {@link PagePool#close()}, and pages whose {@link DmaMapper#syncForDevice}
     * threw. (The kernel counts here pages whose reference count showed another user.)
     */
    public long recycleReleasedRefcnt() {
        return recycleReleasedRefcnt;
    }

    /** Fragments handed out by {@code allocFrag}. */
    public long fragAllocs() {
        return fragAllocs;
    }

    /** Pages the pool took from the allocator (the kernel's {@code pages_state_hold_cnt}). */
    public long pagesEntered() {
        return pagesEntered;
    }

    /** Pages the pool gave back to the allocator (the kernel's {@code pages_state_release_cnt}). */
    public long pagesReleased() {
        return pagesReleased;
    }

    /** Pages the pool holds from the allocator: in its cache, its ring, or in flight. */
    public long pagesHeld() {
        return pagesEntered - pagesReleased;
    }

    /** Pages in the cache right now. */
    public int cachedPages() {
        return cachedPages;
    }

    /** Pages in the recycle ring right now. */
    public int ringPages() {
        return ringPages;
    }

    /** Pages handed out and not returned. */
    public long inflight() {
        return allocFast + allocSlow + allocSlowHighOrder + allocRefill
                - recycleCached - recycleRing - recycleRingFull - recycleReleasedRefcnt;
    }

    @Override
    public String toString() {
        return "PagePoolStats{alloc: fast=" + allocFast + " slow=" + allocSlow + " slowHighOrder=" + allocSlowHighOrder
                + " empty=" + allocEmpty + " refill=" + allocRefill + " waive=0 failed=" + allocFailed
                + "; recycle: cached=" + recycleCached + " cacheFull=" + recycleCacheFull + " ring=" + recycleRing
                + " ringFull=" + recycleRingFull + " releasedRefcnt=" + recycleReleasedRefcnt
                + "; frags=" + fragAllocs + "; pages: entered=" + pagesEntered + " released=" + pagesReleased
                + " cached=" + cachedPages + " ring=" + ringPages + " inflight=" + inflight() + "}";
    }
}
