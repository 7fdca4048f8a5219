package io.pagepool.perf;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;

/**
 * Turns JMH results of {@link PageAllocBulkBenchmark} and {@link ContigRangeFreeBenchmark} into
 * the seed threads' tables.
 *
 * <h2>Figures</h2>
 * For every measured iteration (all forks), the phase counters give one value per page
 * ({@code allocNs / pages}, {@code freeNs / pages}) or per range; a row shows the arithmetic
 * mean ("Amean", as the seeds) of those per-iteration values, and total = alloc + free. With two
 * threads the counters are summed over both threads, so a figure is still the cost of one page
 * on one thread while the other thread works too.
 *
 * <h2>Layout (seed 001)</h2>
 * <pre>
 *   Amean alloc-odr0-64        148.23 (  0.00%)       41.00 ( 72.34%)   |   384.8    106.4
 *         ^row                 ^single loop, ns/page  ^bulk, ns/page and how much cheaper
 *                                                                          ^ the same in cycles
 * </pre>
 * The percentage is {@code (single - bulk) / single}: positive when bulk is cheaper.
 *
 * <p>Not thread-safe; used once by {@link SeedTableCommand}.
 */
final class SeedTable {

    static final String BULK = PageAllocBulkBenchmark.class.getName();
    static final String CONTIG = ContigRangeFreeBenchmark.class.getName();
    static final String SINGLE_METHOD = "singlePages";
    static final String BULK_METHOD = "bulkPages";
    static final String PAGE_BY_PAGE_METHOD = "pageByPage";
    static final String CONTIG_METHOD = "contigRange";

    /** Issue #2's targets. */
    static final int TARGET_BULK_N = 64;
    static final double TARGET_BULK_CHEAPER_PERCENT = 60.0;
    static final double TARGET_CONTIG_SPEEDUP = 10.0;
    /**
     * Largest gc.alloc.rate.norm, in bytes per page handled, that counts as zero. JMH's GC profiler
     * counts every thread of the forked JVM, so its own ~50 KB per iteration shows up as up to
     * ~0.02 B/page in 100 ms iterations; one 16-byte object per call would be >= 16 B/page in the
     * single-page loops and >= 0.25 B/page in bulk calls of N <= 64.
     */
    static final double GC_ZERO_BYTES_PER_PAGE = 0.05;

    /** One trial: which method, cache mode, thread count, and N (0 for the contiguous-free benchmark). */
    record Key(String method, String mode, int threads, int nrPages) {
    }

    /** Phase 0: alloc (bulk) or alloc + split (contig); 1: free; 2: the two together. */
    static final int FIRST = 0;
    static final int SECOND = 1;
    static final int TOTAL = 2;

    /**
     * A trial's phase costs per measured iteration (all forks), in ns per page (bulk) or per range
     * (contig).
     *
     * @param perIteration [phase][iteration], phases {@link #FIRST}, {@link #SECOND}, {@link #TOTAL}
     * @param gcBytesPerOp gc.alloc.rate.norm (B/op), NaN when the GC profiler was off
     * @param pagesPerOp   pages allocated and freed per JMH operation
     */
    record Phases(double[][] perIteration, double gcBytesPerOp, double pagesPerOp) {
        /** Arithmetic mean over iterations ("Amean"), NaN when none was measured. */
        double mean(int phase) {
            double[] v = perIteration[phase];
            double sum = 0;
            for (double x : v) {
                sum += x;
            }
            return v.length == 0 ? Double.NaN : sum / v.length;
        }

        /** Largest over smallest iteration: how much the machine disturbed this figure. */
        double spread(int phase) {
            double[] v = perIteration[phase];
            double min = Double.MAX_VALUE;
            double max = 0;
            for (double x : v) {
                min = Math.min(min, x);
                max = Math.max(max, x);
            }
            return v.length < 2 || min <= 0 ? 1.0 : max / min;
        }

        double first() {
            return mean(FIRST);
        }

        double second() {
            return mean(SECOND);
        }

        double total() {
            return mean(TOTAL);
        }

        double gcBytesPerPage() {
            return gcBytesPerOp / pagesPerOp;
        }
    }

    /** A cell is marked noisy when its iterations differ by more than this factor. */
    static final double NOISY_SPREAD = 1.5;

    private final Map<Key, Phases> trials = new HashMap<>();
    private final MachineInfo machine;
    private int noisyCells;

    SeedTable(MachineInfo machine) {
        this.machine = machine;
    }

    /** Adds every trial of the two benchmarks found in {@code results}; others are ignored. */
    void addAll(Collection<RunResult> results) {
        for (RunResult run : results) {
            String benchmark = run.getParams().getBenchmark();
            int dot = benchmark.lastIndexOf('.');
            String cls = benchmark.substring(0, dot);
            String method = benchmark.substring(dot + 1);
            String mode = run.getParams().getParam("cacheMode");
            int threads = run.getParams().getThreads();
            double gc = secondaryScore(run, "gc.alloc.rate.norm");
            if (cls.equals(BULK)) {
                int n = Integer.parseInt(run.getParams().getParam("nrPages"));
                int phasePages = Integer.parseInt(run.getParams().getParam("phasePages"));
                Phases p = means(run, "allocNs", "freeNs", "pages", gc,
                        PageAllocBulkBenchmark.roundsFor(n, phasePages) * (double) n);
                trials.put(new Key(method, mode, threads, n), p);
            } else if (cls.equals(CONTIG)) {
                // @OperationsPerInvocation(RANGES): one JMH op is one range.
                Phases p = means(run, "allocSplitNs", "rangeFreeNs", "ranges", gc, ContigRangeFreeBenchmark.RANGE_PAGES);
                trials.put(new Key(method, mode, threads, 0), p);
            }
        }
    }

    boolean isEmpty() {
        return trials.isEmpty();
    }

    private static double secondaryScore(RunResult run, String label) {
        Result r = run.getSecondaryResults().get(label);
        return r == null ? Double.NaN : r.getScore();
    }

    private static Phases means(RunResult run, String firstLabel, String secondLabel, String unitLabel, double gc,
                                double pagesPerOp) {
        List<double[]> rows = new ArrayList<>();
        for (BenchmarkResult fork : run.getBenchmarkResults()) {
            for (IterationResult it : fork.getIterationResults()) {
                Map<String, Result> sec = it.getSecondaryResults();
                Result units = sec.get(unitLabel);
                if (units == null || units.getScore() <= 0) {
                    continue;
                }
                double first = sec.get(firstLabel).getScore() / units.getScore();
                double second = sec.get(secondLabel).getScore() / units.getScore();
                rows.add(new double[] {first, second, first + second});
            }
        }
        double[][] perIteration = new double[3][rows.size()];
        for (int i = 0; i < rows.size(); i++) {
            for (int phase = 0; phase < 3; phase++) {
                perIteration[phase][i] = rows.get(i)[phase];
            }
        }
        return new Phases(perIteration, gc, pagesPerOp);
    }

    // ------------------------------------------------------------------ printing

    /** Prints every (mode, threads) block present, in the given orders, then the target checks. */
    String render(List<String> header, List<String> modes, List<Integer> threadCounts, List<Integer> sizes) {
        StringBuilder out = new StringBuilder();
        for (String line : header) {
            out.append(line).append('\n');
        }
        out.append('\n');
        for (int threads : threadCounts) {
            for (String mode : modes) {
                if (hasBulk(mode, threads, sizes)) {
                    bulkBlocks(out, mode, threads, sizes);
                }
                if (trials.containsKey(new Key(PAGE_BY_PAGE_METHOD, mode, threads, 0))
                        || trials.containsKey(new Key(CONTIG_METHOD, mode, threads, 0))) {
                    contigBlock(out, mode, threads);
                }
            }
        }
        if (noisyCells > 0) {
            out.append(String.format(Locale.ROOT, "* %d figures are noisy: their measured iterations differ by more"
                    + " than %.1fx (a busy machine, or too few iterations); rerun on a quiet machine.%n%n", noisyCells,
                    NOISY_SPREAD));
        }
        targets(out, modes, threadCounts);
        gcSummary(out);
        return out.toString();
    }

    private boolean hasBulk(String mode, int threads, List<Integer> sizes) {
        for (int n : sizes) {
            if (trials.containsKey(new Key(SINGLE_METHOD, mode, threads, n))
                    || trials.containsKey(new Key(BULK_METHOD, mode, threads, n))) {
                return true;
            }
        }
        return false;
    }

    private static String threadsLabel(int threads) {
        return threads + (threads == 1 ? " thread" : " threads");
    }

    private String cyclesLabel() {
        return machine.cpuMhz() > 0
                ? String.format(Locale.ROOT, "cycles at %.0f MHz", machine.cpuMhz())
                : "cycles (cpu MHz unknown)";
    }

    private void bulkBlocks(StringBuilder out, String mode, int threads, List<Integer> sizes) {
        out.append(String.format(Locale.ROOT, "pagealloc  %s, %s: ns per order-0 page (%s)%n",
                mode, threadsLabel(threads), cyclesLabel()));
        out.append(String.format(Locale.ROOT, "%-27s%19s %20s   | %9s%9s%n", "", "single-page loop", "bulk",
                "single", "bulk"));
        String[] phases = {"alloc", "free", "total"};
        for (int ph = 0; ph < phases.length; ph++) {
            for (int n : sizes) {
                Phases single = trials.get(new Key(SINGLE_METHOD, mode, threads, n));
                Phases bulk = trials.get(new Key(BULK_METHOD, mode, threads, n));
                row(out, phases[ph] + "-odr0-" + n, single, bulk, ph, "");
            }
            out.append('\n');
        }
    }

    private void contigBlock(StringBuilder out, String mode, int threads) {
        Phases byPage = trials.get(new Key(PAGE_BY_PAGE_METHOD, mode, threads, 0));
        Phases contig = trials.get(new Key(CONTIG_METHOD, mode, threads, 0));
        out.append(String.format(Locale.ROOT,
                "contig-free  %s, %s: ns per split order-%d range of %d pages (%s)%n", mode, threadsLabel(threads),
                ContigRangeFreeBenchmark.ORDER, ContigRangeFreeBenchmark.RANGE_PAGES, cyclesLabel()));
        out.append(String.format(Locale.ROOT, "%-27s%19s %20s   | %9s%9s   %s%n", "", "page-by-page",
                "freeContigRange", "by page", "contig", "speed-up"));
        row(out, "free-odr9-range", byPage, contig, SECOND, speedUp(byPage, contig, false));
        row(out, "round-odr9", byPage, contig, TOTAL, speedUp(byPage, contig, true));
        out.append('\n');
    }

    private static String speedUp(Phases byPage, Phases contig, boolean round) {
        if (byPage == null || contig == null) {
            return "";
        }
        double x = round ? byPage.total() / contig.total() : byPage.second() / contig.second();
        return String.format(Locale.ROOT, "%7.1fx", x);
    }

    /**
     * {@code Amean <label>  <base> (  0.00%)  <other> (<gain>%)   | <cycles> <cycles>  <suffix>}; a
     * {@code *} after a figure marks it noisy (its iterations differ by more than {@link #NOISY_SPREAD}x).
     */
    private void row(StringBuilder out, String label, Phases basePhases, Phases otherPhases, int phase,
                     String suffix) {
        double base = basePhases == null ? Double.NaN : basePhases.mean(phase);
        double other = otherPhases == null ? Double.NaN : otherPhases.mean(phase);
        String baseMark = noisy(basePhases, phase) ? "*" : " ";
        String otherMark = noisy(otherPhases, phase) ? "*" : " ";
        String baseCol = Double.isNaN(base) ? String.format(Locale.ROOT, "%19s", "n/a")
                : String.format(Locale.ROOT, "%10.2f (%6.2f%%)", base, 0.0);
        String otherCol;
        if (Double.isNaN(other)) {
            otherCol = String.format(Locale.ROOT, "%20s", "n/a");
        } else if (Double.isNaN(base)) {
            otherCol = String.format(Locale.ROOT, "%11.2f %8s", other, "");
        } else {
            otherCol = String.format(Locale.ROOT, "%11.2f (%6.2f%%)", other, cheaperPercent(base, other));
        }
        out.append(String.format(Locale.ROOT, "%-6s%-21s%s%s%s%s  | %9s%9s   %s", "Amean", label, baseCol, baseMark,
                otherCol, otherMark, cyclesCol(base), cyclesCol(other), suffix).stripTrailing()).append('\n');
    }

    private boolean noisy(Phases p, int phase) {
        if (p != null && p.spread(phase) > NOISY_SPREAD) {
            noisyCells++;
            return true;
        }
        return false;
    }

    private String cyclesCol(double ns) {
        double c = machine.cycles(ns);
        return Double.isNaN(c) ? "n/a" : String.format(Locale.ROOT, "%.1f", c);
    }

    /** How much cheaper {@code other} is than {@code base}, in percent of {@code base}. */
    static double cheaperPercent(double base, double other) {
        return (base - other) / base * 100.0;
    }

    // ------------------------------------------------------------------ checks

    private void targets(StringBuilder out, List<String> modes, List<Integer> threadCounts) {
        out.append("Targets (issue #2), per cache mode / thread count:\n");
        Tally bulkTally = new Tally();
        Tally contigTally = new Tally();
        for (int threads : threadCounts) {
            for (String mode : modes) {
                String where = mode + "/" + threads + "t ";
                boolean perCpu = !mode.equals("NONE");
                Phases single = trials.get(new Key(SINGLE_METHOD, mode, threads, TARGET_BULK_N));
                Phases bulk = trials.get(new Key(BULK_METHOD, mode, threads, TARGET_BULK_N));
                if (single != null && bulk != null) {
                    double pct = cheaperPercent(single.first(), bulk.first());
                    boolean ok = pct >= TARGET_BULK_CHEAPER_PERCENT;
                    bulkTally.add(ok, perCpu, String.format(Locale.ROOT, "%s%.1f%% %s", where, pct, ok ? "ok" : "MISSED"));
                }
                Phases byPage = trials.get(new Key(PAGE_BY_PAGE_METHOD, mode, threads, 0));
                Phases contig = trials.get(new Key(CONTIG_METHOD, mode, threads, 0));
                if (byPage != null && contig != null) {
                    double x = byPage.second() / contig.second();
                    boolean ok = x >= TARGET_CONTIG_SPEEDUP;
                    contigTally.add(ok, perCpu, String.format(Locale.ROOT, "%s%.1fx (round %.1fx) %s", where, x,
                            byPage.total() / contig.total(), ok ? "ok" : "MISSED"));
                }
            }
        }
        out.append(String.format(Locale.ROOT, "  [%s] bulk alloc-odr0-%d at least %.0f%% cheaper per page than the"
                        + " single-page loop: %s%n", bulkTally.verdict(), TARGET_BULK_N, TARGET_BULK_CHEAPER_PERCENT,
                bulkTally.seen == 0 ? "not measured (needs --sizes with " + TARGET_BULK_N + ")" : bulkTally.summary()));
        wrap(out, bulkTally.parts);
        out.append(String.format(Locale.ROOT, "  [%s] freeContigRange at least %.0fx faster than page-by-page freePages"
                        + " for order-9 ranges (free phase; seed 004 timed the whole round): %s%n",
                contigTally.verdict(), TARGET_CONTIG_SPEEDUP,
                contigTally.seen == 0 ? "not measured" : contigTally.summary()));
        wrap(out, contigTally.parts);
    }

    /** Pass counts of one target over all cases, and over the per-CPU modes (not NONE, the no-cache baseline). */
    private static final class Tally {
        final List<String> parts = new ArrayList<>();
        int seen;
        int pass;
        int perCpuSeen;
        int perCpuPass;

        void add(boolean ok, boolean perCpu, String part) {
            parts.add(part);
            seen++;
            pass += ok ? 1 : 0;
            if (perCpu) {
                perCpuSeen++;
                perCpuPass += ok ? 1 : 0;
            }
        }

        String verdict() {
            return seen == 0 ? "SKIP" : pass == seen ? "PASS" : "FAIL";
        }

        String summary() {
            return pass + " of " + seen + " met" + (perCpuSeen == seen || perCpuSeen == 0 ? ""
                    : " (per-CPU modes PER_THREAD/MAGAZINE: " + perCpuPass + " of " + perCpuSeen + ")");
        }
    }

    private static void wrap(StringBuilder out, List<String> parts) {
        for (int i = 0; i < parts.size(); i += 3) {
            out.append("        ").append(String.join("   ", parts.subList(i, Math.min(parts.size(), i + 3))))
                    .append('\n');
        }
    }

    private void gcSummary(StringBuilder out) {
        List<Map.Entry<Key, Phases>> measured = new ArrayList<>();
        for (Map.Entry<Key, Phases> e : trials.entrySet()) {
            if (!Double.isNaN(e.getValue().gcBytesPerOp())) {
                measured.add(e);
            }
        }
        if (measured.isEmpty()) {
            out.append("  [----] gc.alloc.rate.norm ~ 0: not measured (add --prof-gc)\n");
            return;
        }
        measured.sort((a, b) -> Double.compare(b.getValue().gcBytesPerPage(), a.getValue().gcBytesPerPage()));
        int over = 0;
        for (Map.Entry<Key, Phases> e : measured) {
            over += e.getValue().gcBytesPerPage() > GC_ZERO_BYTES_PER_PAGE ? 1 : 0;
        }
        out.append(String.format(Locale.ROOT, "  [%s] gc.alloc.rate.norm ~ 0 (at most %.2f B per page handled): %d of %d"
                        + " trials within; highest:%n", over == 0 ? "PASS" : "FAIL", GC_ZERO_BYTES_PER_PAGE,
                measured.size() - over, measured.size()));
        for (Map.Entry<Key, Phases> e : measured.subList(0, Math.min(measured.size(), Math.max(3, over)))) {
            Key k = e.getKey();
            Phases p = e.getValue();
            out.append(String.format(Locale.ROOT, "        %-12s %-10s %dt %-8s %10.3f B/op = %8.4f B/page%s%n",
                    k.method(), k.mode(), k.threads(), k.nrPages() > 0 ? "N=" + k.nrPages() : "order-9",
                    p.gcBytesPerOp(), p.gcBytesPerPage(), p.gcBytesPerPage() > GC_ZERO_BYTES_PER_PAGE ? "  over" : ""));
        }
    }
}
