package io.pagepool.core;

/** {@link CpuCacheMode#NONE}: every operation on the buddy lists under the zone lock. Thread-safe. */
final class NoCpuCache implements CpuPageCache {

    private final BuddyZone zone;

    NoCpuCache(BuddyZone zone) {
        this.zone = zone;
    }

    @Override
    public int alloc(int order) {
        return zone.lockedAlloc(order);
    }

    @Override
    public void free(int pfn, int order) {
        zone.lockedFree(pfn, order);
    }

    @Override
    public int allocBulk(int[] pages, int nrPages) {
        return zone.lockedAllocBulk(pages, nrPages);
    }

    @Override
    public void freeBulk(int[] pfns, int n) {
        zone.lockedFreeBulk(pfns, n);
    }

    @Override
    public void drainReachable() {
    }

    @Override
    public long cachedPages() {
        return 0;
    }

    @Override
    public int pageSets() {
        return 0;
    }

    @Override
    public void sumCounters(AllocCounters sum) {
    }

    @Override
    public void forEachCachedBlock(CpuPageLists.BlockVisitor visitor) {
    }

    @Override
    public void close() {
    }
}
