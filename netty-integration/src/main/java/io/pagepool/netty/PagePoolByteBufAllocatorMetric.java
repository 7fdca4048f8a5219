package io.pagepool.netty;

import io.netty.buffer.ByteBufAllocatorMetric;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import io.pagepool.core.PageAllocator;
import io.pagepool.core.PageAllocatorStats;
import io.pagepool.core.PagePoolStats;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Metrics of a {@link PagePoolByteBufAllocator}: Netty's {@link ByteBufAllocatorMetric} plus the
 * page allocator's statistics, the fallback count, and each arena's page-pool counters.
 *
 * <p>Figures that belong to running threads are read without synchronization and may be a few
 * operations stale; they are exact once those threads are quiescent. Thread safety: thread-safe.
 */
public final class PagePoolByteBufAllocatorMetric implements ByteBufAllocatorMetric {

    private final PagePoolByteBufAllocator allocator;

    PagePoolByteBufAllocatorMetric(PagePoolByteBufAllocator allocator) {
        this.allocator = allocator;
    }

    /**
     * Bytes of direct memory in use: pages the page allocator has handed out (to buffers and to
     * pool caches and rings; pages parked in its own per-CPU caches count as free) plus live
     * fallback buffers. With a page allocator shared with other users, their pages count too.
     * Once the allocator has closed its page allocator (which it does only with no page out), the
     * fallback buffers'.
     */
    @Override
    public long usedDirectMemory() {
        PageAllocator pages = allocator.pageAllocator();
        long pageBytes = 0;
        if (!pages.isClosed()) {
            try {
                pageBytes = pages.stats().allocatedPages() * pages.pageSize();
            } catch (IllegalStateException e) {
                if (!pages.isClosed()) {
                    throw e;
                }
                // closed since the check: no page is out
            }
        }
        return pageBytes + allocator.fallbackBytes.sum();
    }

    /** The heap delegate's figure if it reports one, else -1. */
    @Override
    public long usedHeapMemory() {
        return allocator.heapDelegate() instanceof ByteBufAllocatorMetricProvider
                ? ((ByteBufAllocatorMetricProvider) allocator.heapDelegate()).metric().usedHeapMemory()
                : -1;
    }

    /**
     * Direct buffers served by the fallback allocator since the allocator was built; a buffer
     * resized into new fallback memory counts again.
     */
    public long fallbackAllocations() {
        return allocator.fallbackAllocations.sum();
    }

    /** Bytes held by fallback buffers not yet released. */
    public long fallbackBytes() {
        return allocator.fallbackBytes.sum();
    }

    /**
     * The page allocator's own statistics.
     *
     * @throws IllegalStateException once the page allocator is closed (by {@link PagePoolByteBufAllocator#close()}
     *         when the allocator owns it)
     */
    public PageAllocatorStats pageAllocatorStats() {
        return allocator.pageAllocator().stats();
    }

    /** One entry per open arena (per thread that allocated). */
    public List<ArenaMetric> arenas() {
        List<ArenaMetric> out = new ArrayList<>();
        for (PagePoolArena arena : allocator.arenasSnapshot()) {
            out.add(new ArenaMetric(arena));
        }
        return Collections.unmodifiableList(out);
    }

    /**
     * Pages handed out by all arenas' pools and not yet returned, including those of arenas closed
     * since (their thread ended, or the allocator was closed) whose buffers are still in use.
     */
    public long inflightPages() {
        return allocator.inflightPages();
    }

    /**
     * Times the owner thread and another thread released the same last reference at once (a caller
     * bug); each was caught and the memory returned once. Counted over the allocator's life, arenas
     * of ended threads included; see {@link ArenaMetric#concurrentDoubleReleases()} for one arena's.
     */
    public long concurrentDoubleReleases() {
        return allocator.concurrentDoubleReleases.sum();
    }

    /** Free pages parked in arenas' pool caches and rings, ready for reuse. */
    public long pagesParkedInPools() {
        long sum = 0;
        for (ArenaMetric a : arenas()) {
            sum += a.poolStats().cachedPages() + a.poolStats().ringPages();
        }
        return sum;
    }

    @Override
    public String toString() {
        return "PagePoolByteBufAllocatorMetric{usedDirectMemory=" + usedDirectMemory() + ", fallbackAllocations="
                + fallbackAllocations() + ", arenas=" + arenas() + "}";
    }

    /** A snapshot of one arena: its owner thread and its page pool's counters. Immutable. */
    public static final class ArenaMetric {
        private final String threadName;
        private final boolean threadAlive;
        private final PagePoolStats poolStats;
        private final int cachedFragments;
        private final int cachedBlocks;
        private final int pooledObjects;
        private final long buffersAllocated;
        private final long cacheHits;
        private final long concurrentDoubleReleases;

        ArenaMetric(PagePoolArena arena) {
            this.threadName = arena.owner.getName();
            this.threadAlive = arena.owner.isAlive();
            this.poolStats = arena.pool.stats();
            this.cachedFragments = arena.cachedFragments();
            this.cachedBlocks = arena.cachedBlocks();
            this.pooledObjects = arena.pooledObjects();
            this.buffersAllocated = arena.buffersAllocated();
            this.cacheHits = arena.cacheHits();
            this.concurrentDoubleReleases = arena.concurrentDoubleReleases;
        }

        /** Name of the thread that owns the arena (an event loop, typically). */
        public String threadName() {
            return threadName;
        }

        /**
         * Whether the owner thread was alive when the snapshot was taken: the arena of a live thread
         * other than the caller's makes {@link PagePoolByteBufAllocator#close()} refuse.
         */
        public boolean threadAlive() {
            return threadAlive;
        }

        /** The arena's page pool counters, kernel-named; {@code inflight()} is its pages in use. */
        public PagePoolStats poolStats() {
            return poolStats;
        }

        /** Released fragment buffers parked for reuse with their fragments (hot slot and class stacks). */
        public int cachedFragments() {
            return cachedFragments;
        }

        /**
         * Released whole-page buffers and buffers of order 1-3 blocks parked for reuse with their
         * memory (hot slot and per-order stacks, at most {@code blockCacheSize} per order). Their pages
         * count as in use: in the pool's {@code inflight()} for whole pages, allocated in the page
         * allocator for blocks.
         */
        public int cachedBlocks() {
            return cachedBlocks;
        }

        /** Buffer objects kept for reuse. */
        public int pooledObjects() {
            return pooledObjects;
        }

        /** Direct buffers this arena has handed out. */
        public long buffersAllocated() {
            return buffersAllocated;
        }

        /**
         * Buffers served from memory parked with a released buffer (fragments, pages and blocks) rather
         * than from the page pool or the page allocator.
         */
        public long cacheHits() {
            return cacheHits;
        }

        /**
         * Buffers of this arena whose last reference was released by the owner thread and another
         * thread at the same time. The owner's release skips the atomic, so this caller bug is caught
         * when the second release reaches the owner's queue: it is dropped (memory returned once),
         * logged, and counted here. Should stay 0; anything else points at a reference-count bug in
         * the application.
         */
        public long concurrentDoubleReleases() {
            return concurrentDoubleReleases;
        }

        @Override
        public String toString() {
            return "Arena{" + threadName + (threadAlive ? "" : " (ended)") + ", buffers=" + buffersAllocated + ", cacheHits=" + cacheHits
                    + ", cachedFragments=" + cachedFragments + ", cachedBlocks=" + cachedBlocks + ", pooledObjects="
                    + pooledObjects
                    + (concurrentDoubleReleases != 0 ? ", concurrentDoubleReleases=" + concurrentDoubleReleases : "")
                    + ", " + poolStats + "}";
        }
    }
}
