package io.pagepool.docs;

import java.awt.Color;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

/**
 * Renders the generated tables of {@code docs/benchmarks.md} and {@code README.md}, and
 * {@code docs/images/*.png}, from the JMH
 * results committed in {@code docs/results/}.
 *
 * <pre>
 *   mvn -B -q -pl docs exec:java          (after copying new results into docs/results/)
 * </pre>
 * Inputs: {@value #POOL_NETTY_RESULTS} ({@code PagePoolBenchmark} and {@code ByteBufAllocatorBenchmark},
 * {@code -prof gc -rf json}), {@value #CROSS_THREAD_RESULTS} (the cross-thread benchmark again with
 * five forks, which replaces its one-fork figures), {@value #REFCOUNT_RESULTS} ({@code RefCountCostBenchmark}),
 * {@value #OLD_GEN_RESULTS} (2 KiB allocRelease and batch64 with {@code -gc true}),
 * {@value #RETAINED_SLICE_RESULTS} ({@code RetainedSliceBenchmark}), {@value #JDK25_RESULTS}
 * ({@code ByteBufAllocatorBenchmark} on JDK 25), {@code results/collector-<name>.json} (2 KiB batches
 * under each of {@link #COLLECTORS}), the three files of {@link #THREAD_SETUPS} (the 2 KiB cases on
 * plain and on event-loop threads) and {@value #SEED_RESULTS} ({@code seed-table --json}).
 */
public final class RenderBenchmarkDocs {

    static final String POOL_NETTY_RESULTS = "results/pool-and-netty.json";
    /** Cross-thread results with more forks; they take precedence over the same benchmarks in the file above. */
    static final String CROSS_THREAD_RESULTS = "results/cross-thread.json";
    static final String SEED_RESULTS = "results/seed-table.json";
    /** What one reference-count update costs ({@code RefCountCostBenchmark}). */
    static final String REFCOUNT_RESULTS = "results/refcount-cost.json";
    /** allocRelease and batch64 at 2 KiB with {@code -gc true} (objects in the old generation). */
    static final String OLD_GEN_RESULTS = "results/old-gen.json";
    /** {@code RetainedSliceBenchmark}: a frame decoder's retained slice per frame. */
    static final String RETAINED_SLICE_RESULTS = "results/retained-slice.json";
    /** {@code ByteBufAllocatorBenchmark}, every case, run on JDK 25 ({@code -jvm}); the sets above run on JDK 17. */
    static final String JDK25_RESULTS = "results/jdk25-netty.json";
    /** 2 KiB batch64 of pagepool and Adaptive on JDK 17, one file per collector ({@code -XX:+Use<name>GC}). */
    static final List<String> COLLECTORS = List.of("G1", "Serial", "Parallel");
    /**
     * The 2 KiB cases in one session under three setups, by table label: the file, the JVM
     * arguments its runs must carry (space-separated) and one they must not. JMH's threads are
     * plain threads; the last setup runs the benchmarks on Netty event-loop-style threads
     * ({@code io.pagepool.perf.EventLoopThreads}).
     */
    static final List<String[]> THREAD_SETUPS = List.of(
            new String[] {"JMH's plain threads, -Xmx512m (as the tables above)", "results/threads-plain-512m.json",
                    "-Xmx512m", "-Djmh.executor"},
            new String[] {"JMH's plain threads, -Xmx1g", "results/threads-plain-1g.json", "-Xmx1g", "-Djmh.executor"},
            new String[] {"event-loop threads, -Xmx1g", "results/threads-event-loop-1g.json",
                    "-Xmx1g -Djmh.executor.class=io.pagepool.perf.EventLoopThreads", "-Xmx512m"});
    static final String BENCHMARKS_MD = "benchmarks.md";

    private RenderBenchmarkDocs() {
    }

    public static void main(String[] args) throws IOException {
        Path docs = Path.of(args.length > 0 ? args[0] : "docs");
        BenchmarkDocs model = load(docs);
        Path md = docs.resolve(BENCHMARKS_MD);
        Files.writeString(md, replaceSections(Files.readString(md, StandardCharsets.UTF_8), model.sections()),
                StandardCharsets.UTF_8);
        Path readme = readme(docs);
        Files.writeString(readme, replaceSections(Files.readString(readme, StandardCharsets.UTF_8),
                model.readmeSections()), StandardCharsets.UTF_8);
        Path images = docs.resolve("images");
        Files.createDirectories(images);
        for (String benchmark : List.of("allocRelease", "batch64", "crossThread")) {
            BitmapEncoder.saveBitmap(nettyChart(model, "ByteBufAllocatorBenchmark." + benchmark),
                    images.resolve("netty-" + benchmark).toString(), BitmapEncoder.BitmapFormat.PNG);
        }
        BitmapEncoder.saveBitmap(seedChart(model), images.resolve("seed-alloc-per-page").toString(),
                BitmapEncoder.BitmapFormat.PNG);
        System.out.println("rendered " + md + " and " + images);
    }

    /** The repository's README.md: the docs module sits directly under the root. */
    static Path readme(Path docs) {
        return docs.toAbsolutePath().normalize().getParent().resolve("README.md");
    }

    static BenchmarkDocs load(Path docs) throws IOException {
        List<JmhResult> poolAndNetty = new ArrayList<>(JmhResult.load(docs.resolve(POOL_NETTY_RESULTS)));
        poolAndNetty.addAll(JmhResult.load(docs.resolve(CROSS_THREAD_RESULTS)));
        poolAndNetty.addAll(JmhResult.load(docs.resolve(REFCOUNT_RESULTS)));
        return new BenchmarkDocs(poolAndNetty, JmhResult.load(docs.resolve(SEED_RESULTS)),
                JmhResult.load(docs.resolve(OLD_GEN_RESULTS)), JmhResult.load(docs.resolve(RETAINED_SLICE_RESULTS)),
                JmhResult.load(docs.resolve(JDK25_RESULTS)), loadCollectors(docs), loadThreadSetups(docs));
    }

    private static Map<String, List<JmhResult>> loadThreadSetups(Path docs) throws IOException {
        Map<String, List<JmhResult>> bySetup = new LinkedHashMap<>();
        for (String[] setup : THREAD_SETUPS) {
            List<JmhResult> results = JmhResult.load(docs.resolve(setup[1]));
            for (JmhResult r : results) {
                String args = String.join(" ", r.jvmArgs());
                if (!List.of(args.split(" ")).containsAll(List.of(setup[2].split(" "))) || args.contains(setup[3])) {
                    throw new IllegalStateException(setup[1] + " holds a run whose JVM arguments do not match \""
                            + setup[0] + "\": " + r.jvmArgs());
                }
            }
            bySetup.put(setup[0], results);
        }
        return bySetup;
    }

    private static Map<String, List<JmhResult>> loadCollectors(Path docs) throws IOException {
        Map<String, List<JmhResult>> byCollector = new LinkedHashMap<>();
        for (String gc : COLLECTORS) {
            String file = "results/collector-" + gc.toLowerCase(Locale.ROOT) + ".json";
            List<JmhResult> results = JmhResult.load(docs.resolve(file));
            for (JmhResult r : results) {
                if (!r.jvmArgs().contains("-XX:+Use" + gc + "GC")) {
                    throw new IllegalStateException(file + " holds a run without -XX:+Use" + gc + "GC: " + r.jvmArgs());
                }
            }
            byCollector.put(gc, results);
        }
        return byCollector;
    }

    /** Replaces the body of every {@code <!-- generated:NAME -->} section with {@code sections.get(NAME)}. */
    static String replaceSections(String text, Map<String, String> sections) {
        String out = text;
        for (Map.Entry<String, String> e : sections.entrySet()) {
            String open = "<!-- generated:" + e.getKey() + " -->\n";
            String close = "<!-- /generated:" + e.getKey() + " -->";
            int start = out.indexOf(open);
            int end = out.indexOf(close);
            if (start < 0 || end < start) {
                throw new IllegalStateException("no section markers for " + e.getKey());
            }
            out = out.substring(0, start + open.length()) + e.getValue() + out.substring(end);
        }
        return out;
    }

    private static XYChart nettyChart(BenchmarkDocs model, String benchmark) {
        String title = benchmark.endsWith("allocRelease") ? "Allocate + release, one thread"
                : benchmark.endsWith("batch64") ? "64 allocations then 64 releases, one thread"
                : "Allocate on one thread, release on another";
        XYChart chart = new XYChartBuilder().width(900).height(480).title(title)
                .xAxisTitle("buffer size (bytes, log scale)").yAxisTitle("ns per buffer (log scale)").build();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setYAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        for (String allocator : BenchmarkDocs.ALLOCATORS) {
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (String size : model.sizes(benchmark)) {
                JmhResult r = model.nettyResult(benchmark, allocator, size);
                if (r != null && r.score() > 0) {
                    xs.add(Double.parseDouble(size));
                    ys.add(r.score());
                }
            }
            if (!xs.isEmpty()) {
                chart.addSeries(allocator, xs, ys);
            }
        }
        return chart;
    }

    private static XYChart seedChart(BenchmarkDocs model) {
        XYChart chart = new XYChartBuilder().width(900).height(480)
                .title("Order-0 allocation, one thread: single-page loop vs allocPagesBulk")
                .xAxisTitle("pages per batch N (log scale)").yAxisTitle("ns per page allocated").build();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideE);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        for (String mode : BenchmarkDocs.CACHE_MODES) {
            for (String method : List.of("singlePages", "bulkPages")) {
                List<Double> xs = new ArrayList<>();
                List<Double> ys = new ArrayList<>();
                for (int n = 1; n <= 16384; n <<= 1) {
                    JmhResult r = model.seedResult("PageAllocBulkBenchmark." + method, mode, 1, Integer.toString(n));
                    if (r != null) {
                        xs.add((double) n);
                        ys.add(BenchmarkDocs.seedMeans(r, "allocNs", "freeNs", "pages")[0]);
                    }
                }
                if (!xs.isEmpty()) {
                    chart.addSeries(mode + (method.equals("singlePages") ? " single" : " bulk"), xs, ys);
                }
            }
        }
        return chart;
    }
}
