package io.pagepool.perf;

import io.pagepool.core.PageAllocator;
import java.util.Arrays;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * Seed 001's table: order-0 pages allocated and freed one call at a time versus through the bulk
 * API, for batch sizes N = 1 .. 16384.
 *
 * <h2>One invocation</h2>
 * <pre>
 *   R = ceil(P / N) rounds of N pages, P = phasePages (default 256): every timed phase covers >= P pages
 *   t0
 *   alloc phase:  for each round: N x allocPages(0)          | singlePages
 *                                 allocPagesBulk(N, round)   | bulkPages
 *   t1                           (all R x N pages are allocated now)
 *   free phase:   for each round: N x freePages(pfn, 0)      | singlePages
 *                                 freePagesBulk(round, N)    | bulkPages
 *   t2
 *   (bulkPages only, untimed: reset the slots to NO_PAGE for the next allocPagesBulk)
 * </pre>
 * Two {@link System#nanoTime()} reads per phase cost ~20-30 ns: a few percent of a phase of
 * single-page calls, but 8-12% of the cheapest, a bulk phase (256 pages at about 1 ns), which
 * they make look about 0.1 ns per page dearer than it is. That error is against the bulk calls, so
 * it can only shrink the "bulk is cheaper" figures. The phase times go to {@link PhaseTimes}, a JMH
 * {@link AuxCounters} state, as sums over the iteration; {@code alloc ns / page} is then
 * {@code allocNs / pages} and so on ({@link SeedTable} computes it per iteration).
 *
 * <p>Why P = 256: the seeds' loop (alloc N, free N, repeat) keeps small N entirely on the
 * per-CPU list, and a phase of 256 pages still fits in one per-CPU set (default {@code high} 384),
 * so small N measure the same thing here; N above {@code high} overflow the set into batched
 * refills and drains from the buddy lists, which is also where the seeds' costs rise.
 * {@code -p phasePages=1024} (or {@code seed-table --phase-pages 1024}) trades that fidelity for
 * a smaller relative timer cost.
 *
 * <p>The primary score is the average time of one invocation: allocating and freeing R x N
 * pages, timer reads (and, for {@code bulkPages}, the slot reset) included. Divide by R x N
 * ({@link #roundsFor(int, int)}) for a per-page figure that includes those overheads.
 *
 * <p>With two threads each thread has its own {@link Rounds} and works on its own pages against
 * the shared allocator.
 */
public class PageAllocBulkBenchmark extends AllocatorBenchmarkBase {

    /** Default fewest pages a timed phase covers, so that the timer's cost stays negligible. */
    public static final int DEFAULT_PHASE_PAGES = 256;
    /** Largest N the capacity is sized for (per thread, two threads). */
    public static final int MAX_PAGES = 16384;

    @Override
    protected long pagesHeldAtOnce(BenchmarkParams params) {
        int n = Integer.parseInt(params.getParam("nrPages"));
        int p = Integer.parseInt(params.getParam("phasePages"));
        return (long) params.getThreads() * roundsFor(n, p) * n;
    }

    /** Rounds of {@code nrPages} per invocation: {@code ceil(phasePages / nrPages)}. */
    public static int roundsFor(int nrPages, int phasePages) {
        return (phasePages + nrPages - 1) / nrPages;
    }

    /** One thread's slots: {@link #roundsFor(int, int) R} arrays of {@code nrPages} pfns. */
    @State(Scope.Thread)
    public static class Rounds {
        /** N: pages per single-page loop or per bulk call. */
        @Param({"1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096", "8192",
                "16384"})
        public int nrPages;

        /** P: fewest pages per timed phase; R = ceil(P / N) rounds. */
        @Param({"" + DEFAULT_PHASE_PAGES})
        public int phasePages;

        int[][] slots;

        @Setup(Level.Trial)
        public void makeSlots() {
            if (nrPages < 1 || nrPages > MAX_PAGES) {
                throw new IllegalArgumentException("nrPages " + nrPages + " is outside 1.." + MAX_PAGES);
            }
            if (phasePages < 1 || phasePages > MAX_PAGES) {
                throw new IllegalArgumentException("phasePages " + phasePages + " is outside 1.." + MAX_PAGES);
            }
            slots = new int[roundsFor(nrPages, phasePages)][nrPages];
            for (int[] round : slots) {
                Arrays.fill(round, PageAllocator.NO_PAGE);
            }
        }
    }

    /**
     * Phase times and pages, summed per iteration by JMH (counters of type EVENTS are reset
     * before each iteration and added up over threads).
     */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class PhaseTimes {
        /** Nanoseconds spent in alloc phases. */
        public long allocNs;
        /** Nanoseconds spent in free phases. */
        public long freeNs;
        /** Pages allocated (and freed) in those phases. */
        public long pages;

        void add(long allocPhaseNs, long freePhaseNs, long phasePages) {
            allocNs += allocPhaseNs;
            freeNs += freePhaseNs;
            pages += phasePages;
        }
    }

    /** (a) a loop of N {@code allocPages(0)} calls, then N {@code freePages(pfn, 0)}, per round. */
    @Benchmark
    public long singlePages(Rounds rounds, PhaseTimes times) {
        final PageAllocator a = allocator;
        final int[][] slots = rounds.slots;
        final int n = rounds.nrPages;
        long t0 = System.nanoTime();
        for (int[] round : slots) {
            for (int i = 0; i < n; i++) {
                round[i] = a.allocPages(0);
            }
        }
        long t1 = System.nanoTime();
        for (int[] round : slots) {
            for (int i = 0; i < n; i++) {
                a.freePages(round[i], 0); // NO_PAGE (exhaustion) would throw here, naming the pfn
            }
        }
        long t2 = System.nanoTime();
        times.add(t1 - t0, t2 - t1, (long) slots.length * n);
        return t2 - t0;
    }

    /** (b) one {@code allocPagesBulk(N)}, then one {@code freePagesBulk(N)}, per round. */
    @Benchmark
    public long bulkPages(Rounds rounds, PhaseTimes times) {
        final PageAllocator a = allocator;
        final int[][] slots = rounds.slots;
        final int n = rounds.nrPages;
        long t0 = System.nanoTime();
        for (int[] round : slots) {
            if (a.allocPagesBulk(n, round) != n) {
                throw exhausted(a, "allocPagesBulk(" + n + ")");
            }
        }
        long t1 = System.nanoTime();
        for (int[] round : slots) {
            a.freePagesBulk(round, n);
        }
        long t2 = System.nanoTime();
        for (int[] round : slots) {
            Arrays.fill(round, 0, n, PageAllocator.NO_PAGE);
        }
        times.add(t1 - t0, t2 - t1, (long) slots.length * n);
        return t2 - t0;
    }
}
