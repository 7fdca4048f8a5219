package io.pagepool.docs;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Turns committed JMH results into the tables of {@code docs/benchmarks.md}. Each table is a
 * named section; {@link RenderBenchmarkDocs} writes them between {@code <!-- generated:NAME -->}
 * and {@code <!-- /generated:NAME -->} markers, and {@code BenchmarkDocsInSyncTest} fails when the
 * committed markdown differs from what the committed results produce.
 *
 * <p>Figures are JMH's own scores (average time per operation, with its 99.9% error where there
 * were enough iterations) except the seed tables' per-page figures, computed as the seed-table
 * command does: per measured iteration, phase nanoseconds divided by pages, then the arithmetic
 * mean over iterations.
 */
final class BenchmarkDocs {

    static final List<String> ALLOCATORS = List.of("pagepool", "adaptive", "pooled", "unpooled");
    static final List<String> CACHE_MODES = List.of("PER_THREAD", "MAGAZINE", "NONE");

    private final List<JmhResult> poolAndNetty;
    private final List<JmhResult> seed;
    /** The same Netty benchmarks run with JMH's {@code -gc true}: every long-lived object in the old generation. */
    private final List<JmhResult> oldGen;
    /** {@code RetainedSliceBenchmark}. */
    private final List<JmhResult> retainedSlice;
    /** {@code ByteBufAllocatorBenchmark} again, every case, on JDK 25 (the other sets run on JDK 17). */
    private final List<JmhResult> jdk25;
    /** 2 KiB batches of 64 on JDK 17 under each collector, by collector name. */
    private final Map<String, List<JmhResult>> collectors;
    /** The 2 KiB cases on JMH's plain threads and on event-loop threads, by setup label (one run). */
    private final Map<String, List<JmhResult>> threadSetups;

    BenchmarkDocs(List<JmhResult> poolAndNetty, List<JmhResult> seed, List<JmhResult> oldGen,
            List<JmhResult> retainedSlice, List<JmhResult> jdk25, Map<String, List<JmhResult>> collectors,
            Map<String, List<JmhResult>> threadSetups) {
        this.poolAndNetty = poolAndNetty;
        this.seed = seed;
        this.oldGen = oldGen;
        this.retainedSlice = retainedSlice;
        for (JmhResult r : jdk25) {
            if (!r.vm().contains(" 25")) {
                throw new IllegalStateException("the JDK 25 results hold a run on " + r.vm() + ": " + r.benchmark());
            }
        }
        this.jdk25 = jdk25;
        this.collectors = collectors;
        this.threadSetups = threadSetups;
    }

    /** Every generated section, by marker name, in document order. */
    Map<String, String> sections() {
        Map<String, String> s = new LinkedHashMap<>();
        s.put("targets", targets());
        s.put("seed-n64", seedSummary());
        s.put("pool-paths", poolPaths());
        s.put("netty-allocRelease", nettyTable("ByteBufAllocatorBenchmark.allocRelease"));
        s.put("netty-batch64", nettyTable("ByteBufAllocatorBenchmark.batch64"));
        s.put("netty-crossThread", nettyTable("ByteBufAllocatorBenchmark.crossThread"));
        s.put("refcount-cost", refCountCost());
        s.put("old-gen", oldGenTable());
        s.put("retained-slice", retainedSliceTable());
        s.put("jdk25", jdk25Table());
        s.put("collectors", collectorTable());
        s.put("thread-setups", threadSetupTable());
        return s;
    }

    /** The generated section of the repository's README.md: the headline figures. */
    Map<String, String> readmeSections() {
        Map<String, String> s = new LinkedHashMap<>();
        s.put("readme-headline", headline());
        return s;
    }

    private String headline() {
        StringBuilder t = new StringBuilder();
        t.append("| 2 KiB direct buffer, allocate + release | pagepool | Netty Adaptive (4.2 default) | Netty Pooled |\n");
        t.append("|---|---|---|---|\n");
        for (String[] b : new String[][] {{"allocRelease", "one thread"}, {"batch64", "one thread, batches of 64"},
                {"crossThread", "allocated on one thread, released on another"}}) {
            String bench = "ByteBufAllocatorBenchmark." + b[0];
            JmhResult ours = nettyResult(bench, "pagepool", "2048");
            JmhResult adaptive = nettyResult(bench, "adaptive", "2048");
            JmhResult pooled = nettyResult(bench, "pooled", "2048");
            if (ours == null || adaptive == null || pooled == null) {
                continue;
            }
            t.append(String.format(Locale.ROOT, "| %s | **%.1f ns**, %s | %.1f ns, %s | %.1f ns, %s |%n", b[1],
                    ours.score(), bytes(ours), adaptive.score(), bytes(adaptive), pooled.score(), bytes(pooled)));
        }
        t.append("\n| page pool (`PagePool`), per page | ns | issue target |\n|---|---|---|\n");
        for (String[] p : new String[][] {{"fastPath", "fast path: cache", "≤ 8"},
                {"ringPath", "ring path: returned through the recycle ring", "≤ 25"},
                {"slowPath", "slow path: refilled 64 at a time from the page allocator", "≤ 45"}}) {
            JmhResult r = find(poolAndNetty, x -> x.benchmark().equals("PagePoolBenchmark." + p[0]));
            if (r != null) {
                t.append(String.format(Locale.ROOT, "| %s | %.1f | %s |%n", p[1], r.score(), p[2]));
            }
        }
        SeedRow row = seedRow("PER_THREAD", 1);
        if (row != null) {
            t.append(String.format(Locale.ROOT, "%nPage allocator (`PER_THREAD`, one thread): an order-0 page costs"
                    + " %.2f ns through `allocPagesBulk(64)` against %.2f ns one call at a time (%.0f%% cheaper; the"
                    + " seeds measured 64-72%%), and a split order-9 block is freed %.0fx faster by"
                    + " `freeContigRange` than page by page; the whole round of allocating, splitting and freeing"
                    + " it is %.0fx faster (seed 004, which timed the round: 12x).%n", row.bulk[0], row.single[0],
                    row.bulkCheaperPercent(), row.contigSpeedup(), row.contigRoundSpeedup()));
        }
        return t.toString();
    }

    // ------------------------------------------------------------------ targets

    /** Below this many bytes per operation counts as no allocation: one object is at least 16 B. */
    static final double ZERO_BYTES = 1.0;
    /** The seed tables' equivalent, per page handled (the seed-table command's threshold). */
    static final double ZERO_BYTES_PER_PAGE = 0.05;

    /** Every issue target, the figure the committed results give for it, and whether it was met. */
    private String targets() {
        StringBuilder t = new StringBuilder("| issue | target | measured | |\n|---|---|---|---|\n");
        double worstBulk = Double.MAX_VALUE;
        String worstBulkAt = "";
        double worstContig = Double.MAX_VALUE;
        String worstContigAt = "";
        for (int threads : new int[] {1, 2}) {
            for (String mode : CACHE_MODES) {
                SeedRow row = seedRow(mode, threads);
                if (row == null) {
                    continue;
                }
                String at = mode + ", " + threads + (threads == 1 ? " thread" : " threads");
                if (row.bulkCheaperPercent() < worstBulk) {
                    worstBulk = row.bulkCheaperPercent();
                    worstBulkAt = at;
                }
                if (row.contigSpeedup() < worstContig) {
                    worstContig = row.contigSpeedup();
                    worstContigAt = at;
                }
            }
        }
        if (worstBulkAt.isEmpty() || worstContigAt.isEmpty()) {
            throw new IllegalStateException("the seed results lack N = 64 or the order-9 range benchmarks");
        }
        target(t, "#2", "`allocPagesBulk(64)` at least 60% cheaper per page than 64 `allocPages(0)` calls, every"
                + " cache mode, 1 and 2 threads", String.format(Locale.ROOT, "lowest %.0f%% (%s)", worstBulk,
                worstBulkAt), worstBulk >= 60);
        target(t, "#2", "`freeContigRange` at least 10x faster than page-by-page for a split order-9 block",
                String.format(Locale.ROOT, "lowest %.1fx (%s)", worstContig, worstContigAt), worstContig >= 10);
        double seedGc = 0;
        for (JmhResult r : seed) {
            seedGc = Math.max(seedGc, r.secondary("gc.alloc.rate.norm") / seedPagesPerOp(r));
        }
        target(t, "#2", "no allocation on any allocator path", String.format(Locale.ROOT,
                "highest %.4f B per page over %d trials", seedGc, seed.size()), seedGc <= ZERO_BYTES_PER_PAGE);
        for (String[] p : new String[][] {{"fastPath", "fast path", "8"}, {"ringPath", "ring path", "25"},
                {"slowPath", "slow path", "45"}}) {
            JmhResult r = required(find(poolAndNetty, x -> x.benchmark().equals("PagePoolBenchmark." + p[0])),
                    "PagePoolBenchmark." + p[0]);
            target(t, "#3", p[1] + " at most " + p[2] + " ns per page", String.format(Locale.ROOT, "%.1f ns",
                    r.score()), r.score() <= Double.parseDouble(p[2]));
        }
        target(t, "#3", "0 B/op on every pool path", maxBytes("PagePoolBenchmark.", null),
                maxBytesValue("PagePoolBenchmark.", null) < ZERO_BYTES);
        for (String[] b : new String[][] {{"allocRelease", "same thread"}, {"batch64", "batches of 64"}}) {
            String benchmark = "ByteBufAllocatorBenchmark." + b[0];
            sameThreadTargets(t, b[1], required(nettyResult(benchmark, "pagepool", "2048"), benchmark + " pagepool"),
                    required(nettyResult(benchmark, "adaptive", "2048"), benchmark + " adaptive"));
            sameThreadTargets(t, b[1] + " (JDK 25)",
                    required(jdk25Result(benchmark, "pagepool", "2048"), "JDK 25 " + benchmark + " pagepool"),
                    required(jdk25Result(benchmark, "adaptive", "2048"), "JDK 25 " + benchmark + " adaptive"));
        }
        double worstCross = Double.MAX_VALUE;
        String worstCrossAt = "";
        for (String size : sizes("ByteBufAllocatorBenchmark.crossThread")) {
            JmhResult ours = required(nettyResult("ByteBufAllocatorBenchmark.crossThread", "pagepool", size),
                    "crossThread pagepool " + size);
            JmhResult adaptive = required(nettyResult("ByteBufAllocatorBenchmark.crossThread", "adaptive", size),
                    "crossThread adaptive " + size);
            if (adaptive.score() / ours.score() < worstCross) {
                worstCross = adaptive.score() / ours.score();
                worstCrossAt = size + " B";
            }
        }
        required(worstCrossAt.isEmpty() ? null : worstCrossAt, "crossThread results");
        target(t, "#4", "cross-thread at least 2x faster than Adaptive, every size", String.format(Locale.ROOT,
                "lowest %.1fx (%s)", worstCross, worstCrossAt), worstCross >= 2);
        target(t, "#4", "0 B/op for pagepool buffers", maxBytes("ByteBufAllocatorBenchmark.", "pagepool"),
                maxBytesValue("ByteBufAllocatorBenchmark.", "pagepool") < ZERO_BYTES);
        return t.toString();
    }

    /**
     * A result a target is read from: missing (a trial that failed its sanity check leaves no row),
     * the target would silently drop out of the table, so rendering fails instead.
     */
    private static <T> T required(T result, String what) {
        if (result == null) {
            throw new IllegalStateException("no result for " + what + " in docs/results: a target would go unreported");
        }
        return result;
    }

    /** Issue #4's two same-thread targets for one benchmark at 2 KiB. */
    private static void sameThreadTargets(StringBuilder t, String what, JmhResult ours, JmhResult adaptive) {
        target(t, "#4", what + ", 2 KiB: at most 10 ns per buffer", String.format(Locale.ROOT, "%.1f ns",
                ours.score()), ours.score() <= 10);
        double x = adaptive.score() / ours.score();
        target(t, "#4", what + ", 2 KiB: at least 5x faster than Adaptive", String.format(Locale.ROOT,
                "%.1fx (%.1f vs %.1f ns)", x, ours.score(), adaptive.score()), x >= 5);
    }

    private static void target(StringBuilder t, String issue, String target, String measured, boolean met) {
        t.append("| ").append(issue).append(" | ").append(target).append(" | ").append(measured).append(" | ")
                .append(met ? "met" : "**missed**").append(" |\n");
    }

    /** Pages one operation of a seed benchmark handles, to express its allocation per page. */
    static double seedPagesPerOp(JmhResult r) {
        if (r.benchmark().startsWith("ContigRangeFreeBenchmark.")) {
            return 512; // one JMH operation is one order-9 range
        }
        int n = Integer.parseInt(r.param("nrPages"));
        int phasePages = Integer.parseInt(r.param("phasePages"));
        return (double) ((phasePages + n - 1) / n) * n; // rounds of N per invocation, as PageAllocBulkBenchmark
    }

    private double maxBytesValue(String prefix, String allocator) {
        double max = 0;
        for (JmhResult r : poolAndNetty) {
            if (r.benchmark().startsWith(prefix) && (allocator == null || r.param("allocator").equals(allocator))) {
                max = Math.max(max, bytesPerItem(r));
            }
        }
        return max;
    }

    private String maxBytes(String prefix, String allocator) {
        return String.format(Locale.ROOT, "highest %.3f B/op", maxBytesValue(prefix, allocator));
    }

    // ------------------------------------------------------------------ seed tables

    /** Per-page means of one seed benchmark: {alloc, free, total} or {free phase, round} for contiguous frees. */
    static double[] seedMeans(JmhResult r, String first, String second, String units) {
        List<List<Double>> a = r.secondary().get(first).rawData();
        List<List<Double>> b = r.secondary().get(second).rawData();
        List<List<Double>> u = r.secondary().get(units).rawData();
        double sumA = 0;
        double sumB = 0;
        int n = 0;
        for (int fork = 0; fork < u.size(); fork++) {
            for (int it = 0; it < u.get(fork).size(); it++) {
                double pages = u.get(fork).get(it);
                if (pages > 0) {
                    sumA += a.get(fork).get(it) / pages;
                    sumB += b.get(fork).get(it) / pages;
                    n++;
                }
            }
        }
        return new double[] {sumA / n, sumB / n, (sumA + sumB) / n};
    }

    JmhResult seedResult(String benchmark, String mode, int threads, String nrPages) {
        return find(seed, r -> r.benchmark().equals(benchmark) && r.param("cacheMode").equals(mode)
                && r.threads() == threads && (nrPages == null || r.param("nrPages").equals(nrPages)));
    }

    /**
     * One cache mode and thread count of the seed tables at N = 64: per-page {alloc, free, total}
     * of the single-page loop and the bulk call, per-range {alloc + split, free, round} of the two
     * order-9 frees. Null if any of the four trials is missing.
     */
    record SeedRow(double[] single, double[] bulk, double[] byPage, double[] contig) {
        double bulkCheaperPercent() {
            return 100 * (1 - bulk[0] / single[0]);
        }

        double contigSpeedup() {
            return byPage[1] / contig[1];
        }

        /** The whole round (allocate, split, free), which is what seed 004 timed. */
        double contigRoundSpeedup() {
            return byPage[2] / contig[2];
        }
    }

    SeedRow seedRow(String mode, int threads) {
        JmhResult single = seedResult("PageAllocBulkBenchmark.singlePages", mode, threads, "64");
        JmhResult bulk = seedResult("PageAllocBulkBenchmark.bulkPages", mode, threads, "64");
        JmhResult byPage = seedResult("ContigRangeFreeBenchmark.pageByPage", mode, threads, null);
        JmhResult contig = seedResult("ContigRangeFreeBenchmark.contigRange", mode, threads, null);
        if (single == null || bulk == null || byPage == null || contig == null) {
            return null;
        }
        return new SeedRow(seedMeans(single, "allocNs", "freeNs", "pages"), seedMeans(bulk, "allocNs", "freeNs", "pages"),
                seedMeans(byPage, "allocSplitNs", "rangeFreeNs", "ranges"),
                seedMeans(contig, "allocSplitNs", "rangeFreeNs", "ranges"));
    }

    private String seedSummary() {
        StringBuilder t = new StringBuilder();
        t.append("| cache mode | threads | alloc-odr0-64 single | bulk | cheaper | total-odr0-64 single | bulk | cheaper"
                + " | free order-9 range page by page | freeContigRange | speed-up |\n");
        t.append("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (int threads : new int[] {1, 2}) {
            for (String mode : CACHE_MODES) {
                SeedRow r = seedRow(mode, threads);
                if (r == null) {
                    continue;
                }
                t.append(String.format(Locale.ROOT,
                        "| %s | %d | %.2f ns | %.2f ns | %.0f%% | %.2f ns | %.2f ns | %.0f%% | %,.0f ns | %,.0f ns | %.1fx |%n",
                        mode, threads, r.single[0], r.bulk[0], r.bulkCheaperPercent(), r.single[2], r.bulk[2],
                        100 * (1 - r.bulk[2] / r.single[2]), r.byPage[1], r.contig[1], r.contigSpeedup()));
            }
        }
        return t.toString();
    }

    // ------------------------------------------------------------------ page pool

    private String poolPaths() {
        StringBuilder t = new StringBuilder();
        t.append("| path | ns per page | B/op (`-prof gc`) | issue #3 target | kernel (cycles) |\n");
        t.append("|---|---|---|---|---|\n");
        row(t, "PagePoolBenchmark.fastPath", null, "fast path: `allocPage` + `recycleDirect`", "≤ 8 ns", "16–18");
        row(t, "PagePoolBenchmark.ringPath", null, "ring path: `allocPage` + `putPage(…, false)`", "≤ 25 ns", "47–55");
        row(t, "PagePoolBenchmark.slowPath", null, "slow path: bulk refill of 64, pages back to the allocator",
                "≤ 45 ns", "173–243");
        row(t, "PagePoolBenchmark.frag", "1024", "`allocFrag(1024)` + `putFrag`", "—", "—");
        row(t, "PagePoolBenchmark.frag", "2048", "`allocFrag(2048)` + `putFrag`", "—", "—");
        return t.toString();
    }

    private void row(StringBuilder t, String benchmark, String fragSize, String label, String target, String kernel) {
        JmhResult r = find(poolAndNetty, x -> x.benchmark().equals(benchmark)
                && (fragSize == null || x.param("fragSize").equals(fragSize)));
        if (r == null) {
            return;
        }
        t.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s |%n", label, scoreWithError(r), bytes(r),
                target, kernel));
    }

    // ------------------------------------------------------------------ netty allocators

    private String nettyTable(String benchmark) {
        StringBuilder t = allocatorTableHeader("size");
        for (String size : sizes(benchmark)) {
            allocatorRow(t, size + " B", a -> nettyResult(benchmark, a, size));
        }
        return t.toString();
    }

    /** 2 KiB, one thread, every allocator, with the pools' objects in the old generation. */
    private String oldGenTable() {
        StringBuilder t = allocatorTableHeader("2 KiB, one thread, after `System.gc()`");
        for (String[] b : new String[][] {{"allocRelease", "allocate + release"}, {"batch64", "batches of 64"}}) {
            String benchmark = "ByteBufAllocatorBenchmark." + b[0];
            allocatorRow(t, b[1], a -> oldGenResult(benchmark, a));
        }
        return t.toString();
    }

    /** Header of a table with one column per allocator and the Adaptive ÷ pagepool ratio. */
    private static StringBuilder allocatorTableHeader(String firstColumn) {
        StringBuilder t = new StringBuilder("| " + firstColumn + " |");
        StringBuilder rule = new StringBuilder("|---|");
        for (String a : ALLOCATORS) {
            t.append(' ').append(a).append(" |");
            rule.append("---|");
        }
        return t.append(" Adaptive ÷ pagepool |\n").append(rule).append("---|\n");
    }

    /** One row of such a table: each allocator's result, then the ratio. */
    private static void allocatorRow(StringBuilder t, String label, Function<String, JmhResult> resultOf) {
        t.append("| ").append(label).append(" |");
        for (String a : ALLOCATORS) {
            JmhResult r = resultOf.apply(a);
            t.append(' ').append(r == null ? "—" : scoreWithError(r) + ", " + bytes(r)).append(" |");
        }
        JmhResult ours = resultOf.apply("pagepool");
        JmhResult adaptive = resultOf.apply("adaptive");
        t.append(ours == null || adaptive == null ? " — |"
                : String.format(Locale.ROOT, " %.1fx |", adaptive.score() / ours.score()));
        t.append('\n');
    }

    /** Every case of {@code ByteBufAllocatorBenchmark} on JDK 25, one row per benchmark and size. */
    private String jdk25Table() {
        StringBuilder t = allocatorTableHeader("JDK 25");
        for (String[] b : new String[][] {{"allocRelease", "one thread"}, {"batch64", "batches of 64"},
                {"crossThread", "cross-thread"}}) {
            String benchmark = "ByteBufAllocatorBenchmark." + b[0];
            for (String size : sizes(jdk25, benchmark)) {
                allocatorRow(t, b[1] + ", " + size + " B", a -> jdk25Result(benchmark, a, size));
            }
        }
        return t.toString();
    }

    /** 2 KiB batches of 64 under each JDK 17 collector, then JDK 25's G1 row from {@link #jdk25}. */
    private String collectorTable() {
        StringBuilder t = new StringBuilder("| 2 KiB, batches of 64 | pagepool | adaptive | Adaptive ÷ pagepool |\n"
                + "|---|---|---|---|\n");
        for (Map.Entry<String, List<JmhResult>> e : collectors.entrySet()) {
            collectorRow(t, "JDK 17, " + e.getKey(), a -> find(e.getValue(), x -> x.param("allocator").equals(a)));
        }
        collectorRow(t, "JDK 25, G1 (table above)", a -> jdk25Result("ByteBufAllocatorBenchmark.batch64", a, "2048"));
        return t.toString();
    }

    /** Per setup and case: pagepool, Adaptive and Pooled at 2 KiB, and how many times faster pagepool is. */
    private String threadSetupTable() {
        StringBuilder t = new StringBuilder("| threads, heap | 2 KiB | pagepool | adaptive | pooled "
                + "| Adaptive ÷ pagepool | Pooled ÷ pagepool |\n|---|---|---|---|---|---|---|\n");
        for (Map.Entry<String, List<JmhResult>> e : threadSetups.entrySet()) {
            for (String[] b : new String[][] {{"allocRelease", "one thread"}, {"batch64", "batches of 64"},
                    {"crossThread", "cross-thread"}}) {
                Function<String, JmhResult> of = a -> required(find(e.getValue(), x -> x.benchmark()
                        .equals("ByteBufAllocatorBenchmark." + b[0]) && x.param("allocator").equals(a)),
                        e.getKey() + " " + b[0] + " " + a);
                JmhResult ours = of.apply("pagepool");
                JmhResult adaptive = of.apply("adaptive");
                JmhResult pooled = of.apply("pooled");
                t.append(String.format(Locale.ROOT, "| %s | %s | %s, %s | %s, %s | %s, %s | %.1fx | %.1fx |%n", e.getKey(),
                        b[1], scoreWithError(ours), bytes(ours), scoreWithError(adaptive), bytes(adaptive),
                        scoreWithError(pooled), bytes(pooled), adaptive.score() / ours.score(),
                        pooled.score() / ours.score()));
            }
        }
        return t.toString();
    }

    private static void collectorRow(StringBuilder t, String label, Function<String, JmhResult> resultOf) {
        JmhResult ours = resultOf.apply("pagepool");
        JmhResult adaptive = resultOf.apply("adaptive");
        if (ours != null && adaptive != null) {
            t.append(String.format(Locale.ROOT, "| %s | %s, %s | %s, %s | %.1fx |%n", label, scoreWithError(ours),
                    bytes(ours), scoreWithError(adaptive), bytes(adaptive), adaptive.score() / ours.score()));
        }
    }

    private JmhResult jdk25Result(String benchmark, String allocator, String size) {
        return find(jdk25, x -> x.benchmark().equals(benchmark) && x.param("allocator").equals(allocator)
                && x.param("size").equals(size));
    }

    private JmhResult oldGenResult(String benchmark, String allocator) {
        return find(oldGen, x -> x.benchmark().equals(benchmark) && x.param("allocator").equals(allocator)
                && x.param("size").equals("2048"));
    }

    /**
     * One row per allocator: a frame's {@code readRetainedSlice} + release on one thread, and sliced
     * on one thread, released on another ({@code crossThread}, whose per-frame heap bytes are twice
     * JMH's norm: each frame counts one operation on each of the two threads).
     */
    private String retainedSliceTable() {
        StringBuilder t = new StringBuilder("| allocator | one thread: ns per frame | heap per frame "
                + "| sliced on one thread, released on another: ns per frame | heap per frame |\n|---|---|---|---|---|\n");
        for (String a : ALLOCATORS) {
            JmhResult one = find(retainedSlice, x -> x.benchmark().equals("RetainedSliceBenchmark.readRetainedSlices")
                    && x.param("allocator").equals(a));
            JmhResult cross = find(retainedSlice, x -> x.benchmark().equals("RetainedSliceBenchmark.crossThread")
                    && x.param("allocator").equals(a));
            if (one != null || cross != null) {
                t.append("| ").append(a)
                        .append(" | ").append(one == null ? "—" : scoreWithError(one))
                        .append(" | ").append(one == null ? "—" : bytes(one))
                        .append(" | ").append(cross == null ? "—" : scoreWithError(cross))
                        .append(" | ").append(cross == null ? "—" : bytesPerFrameOfTwoThreads(cross))
                        .append(" |\n");
            }
        }
        return t.toString();
    }

    /** Heap bytes per frame of a two-thread group in which both threads count each frame (see {@link #bytesPerItem}). */
    static String bytesPerFrameOfTwoThreads(JmhResult r) {
        double b = bytesPerItem(r);
        if (Double.isNaN(b)) {
            return "— B";
        }
        return String.format(Locale.ROOT, b < 1 ? "%.2f B" : "%.0f B", b);
    }

    private String refCountCost() {
        StringBuilder t = new StringBuilder("| operation | ns | B/op |\n|---|---|---|\n");
        for (String[] b : new String[][] {{"plainIncrement", "a counter in a field (no atomic): loop overhead"},
                {"casIncrement", "one uncontended `AtomicInteger.compareAndSet`"},
                {"nettyRetainRelease", "`retain()` + `release()` of a live pagepool buffer: two compare-and-swaps on its count"}}) {
            JmhResult r = find(poolAndNetty, x -> x.benchmark().equals("RefCountCostBenchmark." + b[0]));
            if (r != null) {
                t.append("| ").append(b[1]).append(" | ").append(scoreWithError(r)).append(" | ").append(bytes(r))
                        .append(" |\n");
            }
        }
        return t.toString();
    }

    JmhResult nettyResult(String benchmark, String allocator, String size) {
        return find(poolAndNetty, r -> r.benchmark().equals(benchmark) && r.param("allocator").equals(allocator)
                && r.param("size").equals(size));
    }

    List<String> sizes(String benchmark) {
        return sizes(poolAndNetty, benchmark);
    }

    private static List<String> sizes(List<JmhResult> results, String benchmark) {
        List<String> sizes = new ArrayList<>();
        for (JmhResult r : results) {
            if (r.benchmark().equals(benchmark) && !sizes.contains(r.param("size"))) {
                sizes.add(r.param("size"));
            }
        }
        sizes.sort((x, y) -> Integer.compare(Integer.parseInt(x), Integer.parseInt(y)));
        return sizes;
    }

    // ------------------------------------------------------------------ formatting

    static String scoreWithError(JmhResult r) {
        return Double.isNaN(r.error()) ? String.format(Locale.ROOT, "%.1f ns", r.score())
                : String.format(Locale.ROOT, "%.1f ± %.1f ns", r.score(), r.error());
    }

    /**
     * Heap bytes per buffer (or frame). JMH divides a group's allocation by the operations of all its
     * threads, and a {@code crossThread} group counts each buffer once on each of its threads, so
     * its figure is JMH's times the thread count.
     */
    static double bytesPerItem(JmhResult r) {
        double b = r.secondary("gc.alloc.rate.norm");
        return r.benchmark().endsWith(".crossThread") ? b * r.threads() : b;
    }

    static String bytes(JmhResult r) {
        double b = bytesPerItem(r);
        if (Double.isNaN(b)) {
            return "— B/op";
        }
        return String.format(Locale.ROOT, b < 1 ? "%.2f B/op" : "%.0f B/op", b);
    }

    /** The last result matching {@code p}: results loaded later (re-runs with more forks) win. */
    static JmhResult find(List<JmhResult> results, Predicate<JmhResult> p) {
        for (int i = results.size() - 1; i >= 0; i--) {
            if (p.test(results.get(i))) {
                return results.get(i);
            }
        }
        return null;
    }
}
