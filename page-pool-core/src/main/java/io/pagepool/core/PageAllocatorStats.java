package io.pagepool.core;

/**
 * A snapshot of a {@link PageAllocator}'s counters and page accounting, as returned by
 * {@link PageAllocator#stats()}.
 *
 * <p>Counters are summed from the zone, the magazines and every per-thread cache (including
 * those of ended threads). Figures that belong to live threads' caches are read without
 * synchronization and may be a few operations stale while those threads run; they are exact
 * once the threads are quiescent, also while the allocator's own reaper returns the caches of
 * threads that ended (it waits for the snapshot).
 *
 * <p>Thread safety: immutable.
 */
public final class PageAllocatorStats {

    private final long allocs;
    private final long allocFailures;
    private final long frees;
    private final long bulkAllocCalls;
    private final long bulkAllocPages;
    private final long bulkFreeCalls;
    private final long bulkFreePages;
    private final long splits;
    private final long contigFreeCalls;
    private final long contigFreePages;
    private final long contigFreeChunks;
    private final long cpuCacheRefills;
    private final long cpuCacheDrains;
    private final long magazineBusy;
    private final long magazineWaits;
    private final long zoneLockAcquisitions;
    private final long threadCachesReaped;
    private final int cpuPageSets;
    private final int regionsReserved;
    private final long regionReserveFailures;
    private final int totalPages;
    private final long buddyFreePages;
    private final long cachedPages;
    private final long unreservedPages;
    private final long[] freeBlocks;

    PageAllocatorStats(AllocCounters c, long splits, BuddyZone zone, long cachedPages, int cpuPageSets) {
        this.allocs = c.allocs;
        this.allocFailures = c.allocFailures;
        this.frees = c.frees;
        this.bulkAllocCalls = c.bulkAllocCalls;
        this.bulkAllocPages = c.bulkAllocPages;
        this.bulkFreeCalls = c.bulkFreeCalls;
        this.bulkFreePages = c.bulkFreePages;
        this.cpuCacheRefills = c.cacheRefills;
        this.cpuCacheDrains = c.cacheDrains;
        this.magazineBusy = c.magazineBusy;
        this.magazineWaits = c.magazineWaits;
        this.splits = splits;
        this.contigFreeCalls = zone.contigFreeCalls;
        this.contigFreePages = zone.contigFreePages;
        this.contigFreeChunks = zone.contigFreeChunks;
        this.zoneLockAcquisitions = zone.lockAcquisitions;
        this.threadCachesReaped = zone.threadCachesReaped;
        this.regionsReserved = zone.reservedRegions();
        this.regionReserveFailures = zone.reserveFailures;
        this.totalPages = zone.totalPages;
        this.buddyFreePages = zone.freePages();
        this.unreservedPages = zone.unreservedPages();
        this.cachedPages = cachedPages;
        this.cpuPageSets = cpuPageSets;
        this.freeBlocks = new long[zone.maxOrder + 1];
        for (int o = 0; o <= zone.maxOrder; o++) {
            freeBlocks[o] = zone.freeBlocks(o);
        }
    }

    /** Successful {@code allocPages} calls. */
    public long allocs() {
        return allocs;
    }

    /** {@code allocPages} calls that returned {@code NO_PAGE} and bulk calls that came back short. */
    public long allocFailures() {
        return allocFailures;
    }

    /** {@code freePages} calls. */
    public long frees() {
        return frees;
    }

    public long bulkAllocCalls() {
        return bulkAllocCalls;
    }

    /** Pages placed into arrays by {@code allocPagesBulk}. */
    public long bulkAllocPages() {
        return bulkAllocPages;
    }

    public long bulkFreeCalls() {
        return bulkFreeCalls;
    }

    public long bulkFreePages() {
        return bulkFreePages;
    }

    /** {@code splitPage} calls. */
    public long splits() {
        return splits;
    }

    public long contigFreeCalls() {
        return contigFreeCalls;
    }

    public long contigFreePages() {
        return contigFreePages;
    }

    /** Power-of-two chunks that {@code freeContigRange} freed as units. */
    public long contigFreeChunks() {
        return contigFreeChunks;
    }

    /** Batches moved from the zone into a per-thread cache or magazine. */
    public long cpuCacheRefills() {
        return cpuCacheRefills;
    }

    /** Batches (or whole caches) moved from a per-thread cache or magazine back to the zone. */
    public long cpuCacheDrains() {
        return cpuCacheDrains;
    }

    /** Magazine mode: operations that found their preferred magazine locked and used another. */
    public long magazineBusy() {
        return magazineBusy;
    }

    /** Magazine mode: operations that found every magazine locked and waited. */
    public long magazineWaits() {
        return magazineWaits;
    }

    /** Times the zone lock was taken: the figure that bulk paths keep to one per batch. */
    public long zoneLockAcquisitions() {
        return zoneLockAcquisitions;
    }

    /** Per-thread caches of ended threads returned to the zone. */
    public long threadCachesReaped() {
        return threadCachesReaped;
    }

    /** Per-thread caches alive, or magazines. */
    public int cpuPageSets() {
        return cpuPageSets;
    }

    /** Regions of off-heap memory reserved so far. */
    public int regionsReserved() {
        return regionsReserved;
    }

    /** Times the JVM or OS refused a region (allocation then reported exhaustion). */
    public long regionReserveFailures() {
        return regionReserveFailures;
    }

    public int totalPages() {
        return totalPages;
    }

    /** Free pages on the buddy free lists. */
    public long buddyFreePages() {
        return buddyFreePages;
    }

    /** Free pages parked in per-thread caches or magazines. */
    public long cachedPages() {
        return cachedPages;
    }

    /** Pages of regions not reserved yet; free, and reserved on first need. */
    public long unreservedPages() {
        return unreservedPages;
    }

    /** Every free page: on the buddy lists, parked in per-CPU caches, or not reserved yet. */
    public long freePages() {
        return buddyFreePages + cachedPages + unreservedPages;
    }

    /** Pages held by callers. */
    public long allocatedPages() {
        return totalPages - freePages();
    }

    /**
     * Free blocks of {@code order} on the buddy lists (one column of {@code /proc/buddyinfo}).
     *
     * @throws IllegalArgumentException if {@code order} is outside 0 to {@link #maxOrder()}
     */
    public long freeBlocks(int order) {
        if (order < 0 || order >= freeBlocks.length) {
            throw new IllegalArgumentException("freeBlocks(order " + order + "): order is outside 0.."
                    + (freeBlocks.length - 1));
        }
        return freeBlocks[order];
    }

    public int maxOrder() {
        return freeBlocks.length - 1;
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder(256);
        b.append("PageAllocatorStats{pages: total=").append(totalPages)
                .append(" allocated=").append(allocatedPages())
                .append(" buddyFree=").append(buddyFreePages)
                .append(" cached=").append(cachedPages)
                .append(" unreserved=").append(unreservedPages)
                .append("; ops: allocs=").append(allocs)
                .append(" allocFailures=").append(allocFailures)
                .append(" frees=").append(frees)
                .append(" bulkAlloc=").append(bulkAllocCalls).append('/').append(bulkAllocPages)
                .append(" bulkFree=").append(bulkFreeCalls).append('/').append(bulkFreePages)
                .append(" splits=").append(splits)
                .append(" contigFree=").append(contigFreeCalls).append('/').append(contigFreePages)
                .append('/').append(contigFreeChunks)
                .append("; cpu caches: sets=").append(cpuPageSets)
                .append(" refills=").append(cpuCacheRefills)
                .append(" drains=").append(cpuCacheDrains)
                .append(" reaped=").append(threadCachesReaped)
                .append(" magazineBusy=").append(magazineBusy)
                .append(" magazineWaits=").append(magazineWaits)
                .append("; zone: lockAcquisitions=").append(zoneLockAcquisitions)
                .append(" regions=").append(regionsReserved)
                .append(" reserveFailures=").append(regionReserveFailures)
                .append("; buddyinfo=[");
        for (int o = 0; o < freeBlocks.length; o++) {
            b.append(o == 0 ? "" : " ").append(freeBlocks[o]);
        }
        return b.append("]}").toString();
    }
}
