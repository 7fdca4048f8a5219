package io.pagepool.perf;

import io.pagepool.core.PageAllocator;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * Seed 004's measurement: an order-9 block is allocated, split into 512 order-0 pages, and freed
 * either page by page ({@code freePages(p, 0)} x 512) or with one {@code freeContigRange(pfn, 512)}.
 *
 * <h2>One invocation ({@value #RANGES} ranges)</h2>
 * <pre>
 *   t0
 *   alloc phase:  RANGES x { pfn = allocPages(9); splitPage(pfn, 9) }
 *   t1
 *   free phase:   RANGES x { freePages(p, 0) for p in pfn .. pfn+511 }   | pageByPage
 *                 RANGES x { freeContigRange(pfn, 512) }                 | contigRange
 *   t2
 * </pre>
 * Several ranges per invocation keep the two timer reads well under 1% of the free phase even
 * for the fast path. The seed timed the whole round (alloc + split + free); the primary score is
 * that, per range ({@link OperationsPerInvocation}). {@link RangeTimes} carries the phases
 * separately so the table can show the free phase on its own.
 */
public class ContigRangeFreeBenchmark extends AllocatorBenchmarkBase {

    /** Order of the split blocks: 2^9 = 512 pages, the seed's HPAGE_PMD_ORDER on x86. */
    public static final int ORDER = 9;
    public static final int RANGE_PAGES = 1 << ORDER;
    /** Ranges allocated, split and freed per invocation. */
    public static final int RANGES = 16;

    @Override
    protected long pagesHeldAtOnce(BenchmarkParams params) {
        return (long) params.getThreads() * RANGES * RANGE_PAGES;
    }

    /** One thread's block heads. */
    @State(Scope.Thread)
    public static class Blocks {
        final int[] heads = new int[RANGES];
    }

    /** Phase times and ranges, summed per iteration by JMH. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class RangeTimes {
        /** Nanoseconds spent in allocPages(9) + splitPage. */
        public long allocSplitNs;
        /** Nanoseconds spent freeing the split ranges. */
        public long rangeFreeNs;
        /** Ranges allocated, split and freed. */
        public long ranges;

        void add(long allocSplitPhaseNs, long freePhaseNs, int phaseRanges) {
            allocSplitNs += allocSplitPhaseNs;
            rangeFreeNs += freePhaseNs;
            ranges += phaseRanges;
        }
    }

    private static void allocAndSplit(PageAllocator a, int[] heads) {
        for (int k = 0; k < RANGES; k++) {
            int pfn = a.allocPages(ORDER);
            if (pfn == PageAllocator.NO_PAGE) {
                throw exhausted(a, "allocPages(" + ORDER + ")");
            }
            a.splitPage(pfn, ORDER);
            heads[k] = pfn;
        }
    }

    @Benchmark
    @OperationsPerInvocation(RANGES)
    public long pageByPage(Blocks blocks, RangeTimes times) {
        final PageAllocator a = allocator;
        final int[] heads = blocks.heads;
        long t0 = System.nanoTime();
        allocAndSplit(a, heads);
        long t1 = System.nanoTime();
        for (int k = 0; k < RANGES; k++) {
            for (int p = heads[k], end = p + RANGE_PAGES; p < end; p++) {
                a.freePages(p, 0);
            }
        }
        long t2 = System.nanoTime();
        times.add(t1 - t0, t2 - t1, RANGES);
        return t2 - t0;
    }

    @Benchmark
    @OperationsPerInvocation(RANGES)
    public long contigRange(Blocks blocks, RangeTimes times) {
        final PageAllocator a = allocator;
        final int[] heads = blocks.heads;
        long t0 = System.nanoTime();
        allocAndSplit(a, heads);
        long t1 = System.nanoTime();
        for (int k = 0; k < RANGES; k++) {
            a.freeContigRange(heads[k], RANGE_PAGES);
        }
        long t2 = System.nanoTime();
        times.add(t1 - t0, t2 - t1, RANGES);
        return t2 - t0;
    }
}
