package io.pagepool.perf;

import java.io.PrintStream;
import java.util.Collection;
import java.util.Locale;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.format.OutputFormat;

/**
 * A JMH {@link OutputFormat} that prints one line per finished trial instead of JMH's full log,
 * and keeps the current trial's log so that a failure can be shown in full ({@link #lastTrialLog()}).
 * With {@code verbose}, every line also goes to the wrapped JMH format.
 *
 * <p>Thread safety: JMH calls it from the runner's thread only.
 */
final class ProgressOutput implements OutputFormat {

    private final PrintStream progress;
    private final OutputFormat verbose;
    private final int totalTrials;
    private final long startNanos;
    private final StringBuilder trialLog = new StringBuilder();
    private int doneTrials;

    /**
     * @param progress    where the one-line summaries go
     * @param verbose     JMH's own format to copy everything to, or null
     * @param totalTrials trials expected over all runs, for the counter
     * @param doneTrials  trials finished before this runner started
     * @param startNanos  when the whole command started
     */
    ProgressOutput(PrintStream progress, OutputFormat verbose, int totalTrials, int doneTrials, long startNanos) {
        this.progress = progress;
        this.verbose = verbose;
        this.totalTrials = totalTrials;
        this.doneTrials = doneTrials;
        this.startNanos = startNanos;
    }

    int doneTrials() {
        return doneTrials;
    }

    /** JMH's log of the trial running (or failed) last. */
    String lastTrialLog() {
        return trialLog.toString();
    }

    @Override
    public void startBenchmark(BenchmarkParams params) {
        trialLog.setLength(0);
        if (verbose != null) {
            verbose.startBenchmark(params);
        }
    }

    @Override
    public void endBenchmark(BenchmarkResult result) {
        if (verbose != null) {
            verbose.endBenchmark(result);
        }
        doneTrials++;
        if (result == null) {
            return;
        }
        BenchmarkParams p = result.getParams();
        String name = p.getBenchmark().substring(p.getBenchmark().lastIndexOf('.', p.getBenchmark().lastIndexOf('.') - 1) + 1);
        String n = p.getParamsKeys().contains("nrPages") ? " N=" + p.getParam("nrPages") : "";
        String detail = perUnit(result);
        long secs = (System.nanoTime() - startNanos) / 1_000_000_000L;
        progress.printf(Locale.ROOT, "[%3d/%3d %2d:%02d] %-40s %-10s %dt%-7s %s%n", doneTrials, totalTrials,
                secs / 60, secs % 60, name, p.getParam("cacheMode"), p.getThreads(), n, detail);
        progress.flush();
    }

    /** Per-page (or per-range) phase costs summed over the trial, for the progress line. */
    private static String perUnit(BenchmarkResult result) {
        java.util.Map<String, Result> sec = result.getSecondaryResults();
        Result pages = sec.get("pages");
        if (pages != null && pages.getScore() > 0) {
            return String.format(Locale.ROOT, "alloc %7.2f  free %7.2f ns/page", sec.get("allocNs").getScore()
                    / pages.getScore(), sec.get("freeNs").getScore() / pages.getScore());
        }
        Result ranges = sec.get("ranges");
        if (ranges != null && ranges.getScore() > 0) {
            return String.format(Locale.ROOT, "alloc+split %8.1f  free %8.1f ns/range",
                    sec.get("allocSplitNs").getScore() / ranges.getScore(),
                    sec.get("rangeFreeNs").getScore() / ranges.getScore());
        }
        Result primary = result.getPrimaryResult();
        return primary == null ? "" : String.format(Locale.ROOT, "%.1f %s", primary.getScore(), primary.getScoreUnit());
    }

    @Override
    public void iteration(BenchmarkParams benchParams, IterationParams params, int iteration) {
        if (verbose != null) {
            verbose.iteration(benchParams, params, iteration);
        }
    }

    @Override
    public void iterationResult(BenchmarkParams benchParams, IterationParams params, int iteration,
                                IterationResult data) {
        if (verbose != null) {
            verbose.iterationResult(benchParams, params, iteration, data);
        }
    }

    @Override
    public void startRun() {
        if (verbose != null) {
            verbose.startRun();
        }
    }

    @Override
    public void endRun(Collection<RunResult> result) {
        if (verbose != null) {
            verbose.endRun(result);
        }
    }

    @Override
    public void print(String s) {
        trialLog.append(s);
        if (verbose != null) {
            verbose.print(s);
        }
    }

    @Override
    public void println(String s) {
        trialLog.append(s).append('\n');
        if (verbose != null) {
            verbose.println(s);
        }
    }

    @Override
    public void verbosePrintln(String s) {
        trialLog.append(s).append('\n');
        if (verbose != null) {
            verbose.verbosePrintln(s);
        }
    }

    @Override
    public void write(int b) {
        trialLog.append((char) b);
        if (verbose != null) {
            verbose.write(b);
        }
    }

    @Override
    public void write(byte[] b) throws java.io.IOException {
        trialLog.append(new String(b, java.nio.charset.StandardCharsets.UTF_8));
        if (verbose != null) {
            verbose.write(b);
        }
    }

    @Override
    public void flush() {
        progress.flush();
        if (verbose != null) {
            verbose.flush();
        }
    }

    @Override
    public void close() {
        // the streams belong to the caller
    }
}
