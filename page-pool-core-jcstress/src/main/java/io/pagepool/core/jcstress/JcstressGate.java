package io.pagepool.core.jcstress;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.openjdk.jcstress.infra.Status;
import org.openjdk.jcstress.infra.collectors.DiskReadCollector;
import org.openjdk.jcstress.infra.collectors.InProcessCollector;
import org.openjdk.jcstress.infra.collectors.TestResult;
import org.openjdk.jcstress.infra.runners.TestList;

/**
 * Runs jcstress and turns its verdict into an exit code a build can check. jcstress 0.16's own main only
 * signals failure by an uncaught AssertionError after the report (FORBIDDEN outcomes, test errors, timeouts,
 * VM errors); it says nothing when a test did not run at all (a typo in {@code -t}, a missing test list) or
 * when a test only reached the API-mismatch state. So after the run this gate reads jcstress's result file
 * back and requires, for every test of this module that the {@code -t} selector matches: at least one
 * result, every result NORMAL, every result graded passed, and a non-zero number of samples.
 *
 * <p>Usage: {@code JcstressGate <work dir> [jcstress options...]}; each option argument may hold several
 * whitespace-separated options (Maven properties), except {@code --jvmArgs=<line>}, passed to jcstress as
 * one {@code -jvmArgs} line. jcstress runs with the work dir as its current directory (the exec plugin sets
 * it); the result file it writes there is the one checked.
 * Exit codes: 0 pass, 1 failure.
 */
public final class JcstressGate {

    private JcstressGate() {
    }

    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]).getAbsoluteFile();
        List<String> jcstressArgs = new ArrayList<>();
        for (String a : Arrays.asList(args).subList(1, args.length)) {
            if (a.startsWith("--jvmArgs=")) { // one option line for the forked VMs; empty: jcstress's own
                String line = a.substring("--jvmArgs=".length()).trim();
                if (!line.isEmpty()) {
                    jcstressArgs.add("-jvmArgs");
                    jcstressArgs.add(line);
                }
                continue;
            }
            for (String part : a.trim().split("\\s+")) { // "-t Foo" arrives as one Maven property
                if (!part.isEmpty()) {
                    jcstressArgs.add(part);
                }
            }
        }
        System.out.println("JCSTRESS GATE: jcstress " + jcstressArgs);
        File[] old = dir.listFiles((d, n) -> n.startsWith("jcstress-results-"));
        if (old != null) {
            for (File f : old) {
                if (!f.delete()) {
                    throw new IOException("cannot delete " + f);
                }
            }
        }

        try {
            org.openjdk.jcstress.Main.main(jcstressArgs.toArray(new String[0]));
        } catch (AssertionError e) { // jcstress's way of saying FORBIDDEN outcomes or errors were seen
            System.out.println();
            System.out.println("JCSTRESS GATE: FAILED — " + e.getMessage());
            System.exit(1);
        }

        Pattern selector = Pattern.compile(option(jcstressArgs, "-t", ".*"));
        List<String> expected = new ArrayList<>();
        for (String name : TestList.tests()) {
            if (selector.matcher(name).find()) {
                expected.add(name);
            }
        }
        File[] results = dir.listFiles((d, n) -> n.startsWith("jcstress-results-"));
        if (expected.isEmpty() || results == null || results.length != 1) {
            fail("expected one result file in " + dir + " for tests " + expected + ", found "
                    + (results == null ? "none" : Arrays.toString(results)));
        }
        InProcessCollector collector = new InProcessCollector();
        DiskReadCollector reader = new DiskReadCollector(results[0].getPath(), collector);
        reader.dump();
        reader.close();

        Map<String, long[]> samples = new TreeMap<>(); // test -> {results, samples}
        List<String> problems = new ArrayList<>();
        Collection<TestResult> all = collector.getTestResults();
        for (TestResult r : all) {
            samples.computeIfAbsent(r.getName(), k -> new long[2]);
            long[] s = samples.get(r.getName());
            s[0]++;
            s[1] += r.getTotalCount();
            if (r.status() != Status.NORMAL) {
                problems.add(r.getName() + " " + r.getConfig() + ": status " + r.status() + " " + r.getMessages());
            } else if (!r.grading().isPassed) {
                problems.add(r.getName() + " " + r.getConfig() + ": " + r.grading().failureMessages);
            }
        }
        for (String name : expected) {
            long[] s = samples.get(name);
            if (s == null || s[1] == 0) {
                problems.add(name + ": did not run (no samples)");
            }
        }
        System.out.println();
        for (Map.Entry<String, long[]> e : samples.entrySet()) {
            System.out.printf("JCSTRESS GATE: %-70s %3d configs, %,14d samples%n", e.getKey(), e.getValue()[0],
                    e.getValue()[1]);
        }
        if (!problems.isEmpty()) {
            fail(String.join("\n  ", problems));
        }
        System.out.println("JCSTRESS GATE: PASSED — " + expected.size() + " tests, no forbidden outcome, no error");
    }

    private static String option(List<String> args, String name, String otherwise) {
        int i = args.indexOf(name);
        return i >= 0 && i + 1 < args.size() ? args.get(i + 1) : otherwise;
    }

    private static void fail(String why) {
        System.out.println("JCSTRESS GATE: FAILED — " + why);
        System.exit(1);
    }
}
