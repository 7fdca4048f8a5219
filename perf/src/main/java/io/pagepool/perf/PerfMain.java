package io.pagepool.perf;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

/**
 * Entry point of {@code perf/target/benchmarks.jar}.
 *
 * <pre>
 *   java -jar benchmarks.jar seed-table [--quick|--full] [options]   the seed-style tables
 *   java -jar benchmarks.jar jmh [JMH options] [regex...]            plain JMH
 *   java -jar benchmarks.jar [JMH options] [regex...]                plain JMH too
 *   java -jar benchmarks.jar help [seed-table]                        this tool's help
 * </pre>
 * Anything whose first word is not one of this tool's subcommands goes to JMH's own
 * {@code org.openjdk.jmh.Main} unchanged, so {@code -h}, {@code -l}, {@code -lp}, {@code -prof gc}
 * and benchmark regexes all mean what they mean in JMH.
 */
@Command(name = "benchmarks.jar",
        description = {"pagepool benchmarks. Without a subcommand, or with 'jmh', the arguments go to JMH's own"
                + " command line (try 'jmh -h', 'jmh -l')."},
        subcommands = {SeedTableCommand.class, PerfMain.JmhCommand.class, CommandLine.HelpCommand.class})
public final class PerfMain implements Runnable {

    private static final Set<String> SUBCOMMANDS = Set.of("seed-table", "jmh", "help");

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || !SUBCOMMANDS.contains(args[0])) {
            runJmh(args);
            return;
        }
        System.exit(new CommandLine(new PerfMain()).execute(args));
    }

    /** JMH's command line; it exits the JVM itself on errors. */
    static void runJmh(String[] args) throws Exception {
        org.openjdk.jmh.Main.main(args);
    }

    @Override
    public void run() {
        // Not reached: main() hands an empty command line to JMH. Kept for picocli.
        new CommandLine(this).usage(System.out);
    }

    /** {@code jmh ARGS...}: every argument, options included, goes to JMH unchanged. */
    @Command(name = "jmh", description = "Runs JMH's own command line with the remaining arguments"
            + " (e.g. 'jmh PageAllocBulk -p nrPages=64 -prof gc').")
    static final class JmhCommand implements java.util.concurrent.Callable<Integer> {
        @Unmatched
        List<String> jmhArgs = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            runJmh(jmhArgs.toArray(new String[0]));
            return 0;
        }
    }
}
