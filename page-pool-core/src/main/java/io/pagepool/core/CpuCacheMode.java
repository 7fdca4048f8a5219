package io.pagepool.core;

/**
 * Where freed pages of orders 0 to 3 wait before they go back to the buddy lists, and where
 * allocations of those orders look first. The choice is the trade-off of seed 003: a private
 * cache per thread never contends but parks pages per thread; shared magazines bound the parked
 * memory but take a lock per operation.
 */
public enum CpuCacheMode {

    /**
     * A lock-free page set per thread with the kernel's {@code count}/{@code high}/{@code batch}
     * (Linux's per-CPU pageset, with a Java thread standing in for the CPU). Frees go to the
     * freeing thread's set, as in Linux. Fastest; parks up to {@code high + 4 * batch} pages per
     * thread that uses the allocator (a refill can land on each of the order 0-3 lists before a
     * free drains). Virtual threads bypass it and use the zone directly.
     */
    PER_THREAD,

    /**
     * Seed 003's design: a fixed set of page sets ("magazines", 2 per available processor by
     * default), each behind a spin lock. A thread prefers the magazine its thread id hashes to
     * and tries the others round-robin when that one is busy. No per-thread state; parked memory
     * is bounded by the number of magazines.
     */
    MAGAZINE,

    /** No per-CPU caching: every operation goes to the buddy lists under the zone lock. The baseline. */
    NONE
}
