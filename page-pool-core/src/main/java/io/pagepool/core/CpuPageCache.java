package io.pagepool.core;

import java.util.function.Supplier;

/**
 * The per-CPU layer between callers and the buddy zone, for orders 0 to
 * {@link CpuPageLists#TOP_ORDER}: one implementation per {@link CpuCacheMode}.
 *
 * <p>Arguments are validated by {@link PageAllocator} before they get here. A method returning
 * {@link PageAllocator#NO_PAGE} or a short count has not yet tried to reclaim pages parked
 * elsewhere; the allocator calls {@link #drainReachable()} and retries on the zone before it
 * reports exhaustion.
 */
interface CpuPageCache {

    int alloc(int order);

    void free(int pfn, int order);

    int allocBulk(int[] pages, int nrPages);

    void freeBulk(int[] pfns, int n);

    /** Returns to the zone every parked page this thread may touch: see {@link PageAllocator#drainCpuCaches()}. */
    void drainReachable();

    /**
     * Returns to the zone the pages parked in a set only the calling thread takes from, if it has
     * one; creates no set and reaps nothing. Only {@link PerThreadPageCaches} has such sets.
     */
    default void drainCallingThread() {
    }

    /** Pages parked right now (racy while other threads run). */
    long cachedPages();

    /** Page sets in existence (per-thread caches alive, or magazines). */
    int pageSets();

    void sumCounters(AllocCounters sum);

    void forEachCachedBlock(CpuPageLists.BlockVisitor visitor);

    /**
     * Returns {@code read}'s result, computed while this layer moves no page and no counter on its
     * own (no ended thread's set is reaped meanwhile), so that a read of the sets followed by a read
     * of the zone counts each page and each operation in one place. Callers' own operations are not
     * held off. Lock order: this layer's, then the zone's. The default holds nothing: only
     * {@link PerThreadPageCaches} moves pages without a caller.
     */
    default <T> T quiesced(Supplier<T> read) {
        return read.get();
    }

    void close();
}
