package io.pagepool.perf;

import io.pagepool.core.CpuCacheMode;
import io.pagepool.core.PageAllocator;
import java.io.File;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.format.OutputFormat;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code seed-table}: runs {@link PageAllocBulkBenchmark} and {@link ContigRangeFreeBenchmark}
 * through the JMH Runner API, once per thread count, and prints the seeds' tables with
 * {@link SeedTable}.
 *
 * <h2>Profiles</h2>
 * <pre>
 *   --quick    warm-up 2 x 100 ms, measurement 3 x 100 ms, 1 fork    (~1 s a trial, ~3.5 min in all)
 *   (default)  the benchmarks' annotations: 3 x 1 s, 5 x 1 s, 1 fork (~9 s a trial, ~30 min)
 *   --full     warm-up 5 x 1 s, measurement 10 x 1 s, 3 forks       (~46 s a trial, ~2.5 h)
 * </pre>
 * All modes, sizes and both thread counts make 2 x (3 x 15 x 2 + 3 x 2) = 192 trials.
 */
@Command(name = "seed-table", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Runs the allocator benchmarks and prints the seed threads' tables: alloc/free/total-odr0-N"
                + " (single-page loop vs bulk) per cache mode and thread count, and the order-9 contiguous free.",
                "Quick run (fresh machine): java -jar perf/target/benchmarks.jar seed-table --quick"})
final class SeedTableCommand implements Callable<Integer> {

    static final class Profile {
        @Option(names = "--quick", description = "Few short iterations, 1 fork: a few minutes in all. Noisy.")
        boolean quick;

        @Option(names = "--full", description = "Warm-up 5 x 1 s, measurement 10 x 1 s, 3 forks: for publishing"
                + " (hours).")
        boolean full;
    }

    @Spec
    CommandSpec spec;

    @ArgGroup(exclusive = true)
    Profile profile = new Profile();

    @Option(names = "--modes", split = ",", paramLabel = "MODE",
            description = "Cache modes, comma-separated (default: ${DEFAULT-VALUE}).",
            defaultValue = "PER_THREAD,MAGAZINE,NONE")
    List<CpuCacheMode> modes;

    @Option(names = "--threads", split = ",", paramLabel = "N",
            description = "Thread counts, comma-separated, 1 and/or 2 (default: ${DEFAULT-VALUE}).",
            defaultValue = "1,2")
    List<Integer> threads;

    @Option(names = "--sizes", split = ",", paramLabel = "N",
            description = "Pages per batch, comma-separated, 1..16384 (default: 1,2,4,...,16384).")
    List<Integer> sizes = defaultSizes();

    @Option(names = "--phase-pages", paramLabel = "P", defaultValue = "" + PageAllocBulkBenchmark.DEFAULT_PHASE_PAGES,
            description = "Fewest pages per timed phase: R = ceil(P/N) rounds are all allocated, then all freed"
                    + " (default: ${DEFAULT-VALUE}, which stays within one per-CPU set's high).")
    int phasePages;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write all JMH results to FILE as JSON.")
    File json;

    @Option(names = "--prof-gc", description = "Run JMH's GC profiler and check gc.alloc.rate.norm ~ 0.")
    boolean profGc;

    @Option(names = "--verbose", description = "Show JMH's full log instead of one line per trial.")
    boolean verbose;

    @Option(names = "--lock-wait", paramLabel = "SECONDS", defaultValue = "600",
            description = "How long to wait while another JMH run holds JMH's lock (default: ${DEFAULT-VALUE}).")
    int lockWaitSeconds;

    private static List<Integer> defaultSizes() {
        List<Integer> s = new ArrayList<>();
        for (int n = 1; n <= PageAllocBulkBenchmark.MAX_PAGES; n <<= 1) {
            s.add(n);
        }
        return s;
    }

    /** Iteration settings of the chosen profile; null fields keep the annotations' values. */
    private record Settings(String name, Integer warmups, TimeValue warmupTime, Integer measurements,
                            TimeValue measurementTime, Integer forks) {
        String describe() {
            return name + ": warm-up " + (warmups == null ? "3" : warmups) + " x "
                    + (warmupTime == null ? "1 s" : warmupTime) + ", measurement "
                    + (measurements == null ? "5" : measurements) + " x "
                    + (measurementTime == null ? "1 s" : measurementTime) + ", " + (forks == null ? 1 : forks)
                    + " fork(s) per trial";
        }

        double secondsPerTrial() {
            double w = (warmups == null ? 3 : warmups) * seconds(warmupTime);
            double m = (measurements == null ? 5 : measurements) * seconds(measurementTime);
            return (forks == null ? 1 : forks) * (w + m + 0.7);
        }

        private static double seconds(TimeValue t) {
            return t == null ? 1.0 : t.convertTo(java.util.concurrent.TimeUnit.MILLISECONDS) / 1000.0;
        }
    }

    private Settings settings() {
        if (profile.quick) {
            return new Settings("quick", 2, TimeValue.milliseconds(100), 3, TimeValue.milliseconds(100), 1);
        }
        if (profile.full) {
            return new Settings("full", 5, TimeValue.seconds(1), 10, TimeValue.seconds(1), 3);
        }
        return new Settings("default", null, null, null, null, null);
    }

    @Override
    public Integer call() throws Exception {
        validate();
        long start = System.nanoTime();
        Settings s = settings();
        MachineInfo machine = MachineInfo.read();
        List<String> modeNames = modes.stream().map(Enum::name).distinct().collect(Collectors.toList());
        List<Integer> threadCounts = threads.stream().distinct().collect(Collectors.toList());
        List<Integer> sizeList = sizes.stream().distinct().sorted().collect(Collectors.toList());
        int trialsPerThreadCount = modeNames.size() * (sizeList.size() * 2 + 2);
        int totalTrials = trialsPerThreadCount * threadCounts.size();

        List<String> header = header(machine, s);
        for (String line : header) {
            System.out.println(line);
        }
        System.out.printf(Locale.ROOT, "%nRunning %d trials, about %.1f min...%n", totalTrials,
                totalTrials * s.secondsPerTrial() / 60.0);

        List<RunResult> all = new ArrayList<>();
        int done = 0;
        for (int t : threadCounts) {
            ChainedOptionsBuilder opts = new OptionsBuilder()
                    .include(Pattern.quote(PageAllocBulkBenchmark.class.getName()) + "\\.")
                    .include(Pattern.quote(ContigRangeFreeBenchmark.class.getName()) + "\\.")
                    .param("cacheMode", modeNames.toArray(new String[0]))
                    .param("nrPages", sizeList.stream().map(String::valueOf).toArray(String[]::new))
                    .param("phasePages", String.valueOf(phasePages))
                    .threads(t)
                    .shouldFailOnError(true)
                    .verbosity(verbose ? VerboseMode.NORMAL : VerboseMode.SILENT);
            if (s.warmups() != null) {
                opts.warmupIterations(s.warmups()).warmupTime(s.warmupTime())
                        .measurementIterations(s.measurements()).measurementTime(s.measurementTime())
                        .forks(s.forks());
            }
            if (profGc) {
                opts.addProfiler(GCProfiler.class);
            }
            OutputFormat jmhFormat = verbose ? OutputFormatFactory.createFormatInstance(System.out, VerboseMode.NORMAL)
                    : null;
            ProgressOutput progress = new ProgressOutput(System.out, jmhFormat, totalTrials, done, start);
            all.addAll(runWaitingForLock(opts, progress));
            done = progress.doneTrials();
        }

        if (json != null) {
            try (PrintStream out = new PrintStream(new FileOutputStream(json), true, StandardCharsets.UTF_8)) {
                ResultFormatFactory.getInstance(ResultFormatType.JSON, out).writeOut(all);
            }
        }

        SeedTable table = new SeedTable(machine);
        table.addAll(all);
        long secs = (System.nanoTime() - start) / 1_000_000_000L;
        List<String> footerHeader = new ArrayList<>(header);
        footerHeader.add(String.format(Locale.ROOT, "Wall time  %d:%02d for %d trials%s", secs / 60, secs % 60,
                all.size(), json == null ? "" : "; JMH results in " + json));
        System.out.println();
        System.out.print(table.render(footerHeader, modeNames, threadCounts, sizeList));
        return 0;
    }

    private void validate() {
        if (phasePages < 1 || phasePages > PageAllocBulkBenchmark.MAX_PAGES) {
            throw new ParameterException(spec.commandLine(),
                    "--phase-pages: " + phasePages + " is outside 1.." + PageAllocBulkBenchmark.MAX_PAGES);
        }
        for (int n : sizes) {
            if (n < 1 || n > PageAllocBulkBenchmark.MAX_PAGES) {
                throw new ParameterException(spec.commandLine(),
                        "--sizes: " + n + " is outside 1.." + PageAllocBulkBenchmark.MAX_PAGES);
            }
        }
        for (int t : threads) {
            if (t != 1 && t != 2) {
                throw new ParameterException(spec.commandLine(),
                        "--threads: " + t + " is not 1 or 2 (the allocator's capacity is sized for two threads)");
            }
        }
    }

    /** JMH allows one run per machine (a file lock); another session's run makes us wait, not fail. */
    private Collection<RunResult> runWaitingForLock(ChainedOptionsBuilder opts, ProgressOutput progress)
            throws RunnerException, InterruptedException {
        long deadline = System.nanoTime() + lockWaitSeconds * 1_000_000_000L;
        boolean told = false;
        for (;;) {
            try {
                return new Runner(opts.build(), progress).run();
            } catch (RunnerException e) {
                boolean lockBusy = String.valueOf(e.getMessage()).contains("JMH lock");
                if (!lockBusy) {
                    System.err.println("JMH failed; the log of the failing trial follows.");
                    System.err.println(progress.lastTrialLog());
                    throw e;
                }
                if (System.nanoTime() > deadline) {
                    throw new RunnerException("another JMH run held the JMH lock for more than " + lockWaitSeconds
                            + " s; try again later (" + e.getMessage() + ")");
                }
                if (!told) {
                    System.out.println("Another JMH run holds the JMH lock; waiting for it to finish...");
                    told = true;
                }
                Thread.sleep(2000);
            }
        }
    }

    private List<String> header(MachineInfo machine, Settings s) {
        List<String> h = new ArrayList<>();
        h.add("pagepool seed-style tables: PageAllocator order-0 single-page loop vs bulk (seeds 000-002),"
                + " split order-9 range freed page by page vs freeContigRange (seed 004)");
        h.add("Machine    " + machine.describe());
        h.add("JDK        " + machine.jdk() + " (java.vm.name + java.vm.version); JMH 1.37");
        h.add("Date       " + ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME));
        h.add("Command    " + commandLine());
        h.add("Profile    " + s.describe() + "; forked JVMs: -Xms512m -Xmx512m -XX:MaxDirectMemorySize=1g");
        h.add("Allocator  " + allocatorDescription() + ", pre-touched, built per trial");
        h.add("Method     per-page (per-range) figures are phase times from System.nanoTime inside each invocation"
                + " (every timed phase >= " + phasePages + " pages: R = ceil(" + phasePages + "/N) rounds allocated,"
                + " then freed), Amean over measured iterations; cycles = ns x cpu MHz (TSC rate from /proc/cpuinfo)");
        return h;
    }

    private static String allocatorDescription() {
        try (PageAllocator a = PageAllocator.builder().capacity(AllocatorBenchmarkBase.MIN_CAPACITY_BYTES).build()) {
            String text = a.toString();
            int memory = text.indexOf("memory: ");
            return String.format(Locale.ROOT, "%d-%d MiB a trial (2x the pages its threads hold at once, a power of"
                            + " two, >= %d MiB), %d-byte pages, maxOrder %d, per-CPU high %d / batch %d, %s",
                    AllocatorBenchmarkBase.MIN_CAPACITY_BYTES >> 20,
                    AllocatorBenchmarkBase.capacityFor(2L * PageAllocBulkBenchmark.MAX_PAGES) >> 20,
                    AllocatorBenchmarkBase.MIN_CAPACITY_BYTES >> 20, a.pageSize(), a.maxOrder(), a.pcpHigh(),
                    a.pcpBatch(), memory < 0 ? "" : text.substring(memory, text.length() - 1));
        }
    }

    private static String commandLine() {
        return ProcessHandle.current().info().commandLine().orElseGet(() ->
                "java " + String.join(" ", java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
                        + " -jar " + System.getProperty("java.class.path") + " (arguments unavailable)");
    }
}
