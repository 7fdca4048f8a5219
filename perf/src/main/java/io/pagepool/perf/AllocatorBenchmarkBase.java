package io.pagepool.perf;

import io.pagepool.core.CpuCacheMode;
import io.pagepool.core.PageAllocator;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * What every allocator benchmark shares: the JMH settings, the {@code cacheMode} parameter, and
 * the one {@link PageAllocator} all benchmark threads of a trial work against.
 *
 * <h2>Settings</h2>
 * {@link BenchmarkDefaults} holds the defaults for a plain JMH run
 * ({@code java -jar benchmarks.jar PageAllocBulk}). {@code seed-table} overrides the iteration
 * counts and times per profile ({@code --quick}, default, {@code --full}) and sets the thread
 * count; see {@link SeedTableCommand}.
 *
 * <h2>The allocator</h2>
 * Built once per trial (one cache mode, one size, one thread count), with the default page size,
 * max order, {@code high} and {@code batch}, and all its memory reserved and touched up front
 * ({@code preTouch}) so that reserving a region never lands inside a measurement. Its capacity is
 * {@link #capacityFor(long) twice the pages} the trial's threads hold at once, rounded up to a
 * power of two and at least {@link #MIN_CAPACITY_BYTES}: 64 MiB for most trials, 256 MiB for two
 * threads at N = 16384. (Touching 256 MiB costs ~0.4 s a trial here, which the quick run cannot
 * afford 192 times; the minimum keeps {@code batch} at its 64-page cap in every trial.) With two
 * threads both use this one allocator, each on its own pages: that is where the cache modes
 * differ.
 *
 * <h2>Leak check</h2>
 * Every invocation frees all it allocated. At the end of the trial {@link #closeAllocator()}
 * checks the allocator's invariants and closes it; {@link PageAllocator#close()} refuses, naming
 * the first allocated pfn, if a page leaked, and the trial then fails.
 *
 * <p>Thread safety: the allocator field is written in trial set-up and read by all benchmark
 * threads afterwards (JMH publishes it safely); subclasses keep per-thread data in
 * {@link Scope#Thread} states.
 */
@State(Scope.Benchmark)
@Threads(1)
public abstract class AllocatorBenchmarkBase extends BenchmarkDefaults {

    /** Smallest capacity: 16,384 pages, where the default {@code batch} (pages / 256) reaches its cap of 64. */
    public static final long MIN_CAPACITY_BYTES = 64L << 20;

    @Param({"PER_THREAD", "MAGAZINE", "NONE"})
    public CpuCacheMode cacheMode;

    protected PageAllocator allocator;

    /**
     * Pages all benchmark threads of this trial hold at the same time, at most.
     *
     * @param params the trial's parameters (thread count, {@code @Param} values)
     */
    protected abstract long pagesHeldAtOnce(BenchmarkParams params);

    /**
     * Capacity for a trial whose threads hold {@code pagesHeld} pages at once: twice that (room for
     * the per-CPU caches and for fragmentation), rounded up to a power of two, at least
     * {@link #MIN_CAPACITY_BYTES}.
     */
    static long capacityFor(long pagesHeld) {
        long pages = Math.max(MIN_CAPACITY_BYTES / PageAllocator.DEFAULT_PAGE_SIZE, 2 * pagesHeld);
        long pow2 = Long.highestOneBit(pages);
        return (pow2 == pages ? pages : pow2 << 1) * PageAllocator.DEFAULT_PAGE_SIZE;
    }

    @Setup(Level.Trial)
    public void buildAllocator(BenchmarkParams params) {
        allocator = PageAllocator.builder()
                .capacity(capacityFor(pagesHeldAtOnce(params)))
                .cpuCacheMode(cacheMode)
                .preTouch(true)
                .build();
    }

    @TearDown(Level.Trial)
    public void closeAllocator() {
        allocator.checkConsistency();
        allocator.close();
    }

    /** Throws the error for an allocation that came back short: the capacity is sized so it never does. */
    static IllegalStateException exhausted(PageAllocator allocator, String what) {
        return new IllegalStateException(what + " ran out of memory: " + allocator + ", "
                + allocator.freePageCount() + " pages free; the benchmark's capacity is too small");
    }
}
