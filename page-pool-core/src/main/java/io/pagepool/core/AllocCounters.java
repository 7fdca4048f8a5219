package io.pagepool.core;

/**
 * Plain event counters kept by whoever serializes the events: the zone (under its lock), a
 * magazine (under its lock) or a per-thread cache (its owner thread). Never atomics: the sums
 * are formed only when {@link PageAllocator#stats()} is read.
 */
final class AllocCounters {
    long allocs;
    long allocFailures;
    long frees;
    long bulkAllocCalls;
    long bulkAllocPages;
    long bulkFreeCalls;
    long bulkFreePages;
    long cacheRefills;
    long cacheDrains;
    /** Magazine mode: the preferred magazine was busy and another one was used. */
    long magazineBusy;
    /** Magazine mode: every magazine was busy and the thread waited for its preferred one. */
    long magazineWaits;

    void addTo(AllocCounters sum) {
        sum.allocs += allocs;
        sum.allocFailures += allocFailures;
        sum.frees += frees;
        sum.bulkAllocCalls += bulkAllocCalls;
        sum.bulkAllocPages += bulkAllocPages;
        sum.bulkFreeCalls += bulkFreeCalls;
        sum.bulkFreePages += bulkFreePages;
        sum.cacheRefills += cacheRefills;
        sum.cacheDrains += cacheDrains;
        sum.magazineBusy += magazineBusy;
        sum.magazineWaits += magazineWaits;
    }
}
