package io.pagepool.forwarder;

import io.netty.buffer.AdaptiveByteBufAllocator;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.pagepool.netty.PagePoolByteBufAllocator;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.DatagramChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The forwarder demo ({@code example-forwarder/target/forwarder.jar}): forwards datagrams over
 * loopback through a {@link UdpForwarder} with each allocator in turn, and prints what a packet
 * costs the forwarding thread, in nanoseconds and in cycles, against a per-packet budget.
 *
 * <pre>
 *   sender --&gt; UdpForwarder (one event loop; ALLOCATOR = pagepool | adaptive | pooled) --&gt; sink
 *   per allocator: a warm-up, then the measured packets; CPU time of the event loop thread / packets delivered
 * </pre>
 *
 * <p>A run that loses, duplicates or corrupts a datagram (or whose pagepool allocator still has a
 * page out at close) is marked FAILED on its row, and the demo exits 1.
 *
 * <p>The budget defaults to 67.2 ns, one 64-byte frame's time at 10 Gbit/s (84 bytes on the wire
 * with preamble and gap). Cycles are CPU nanoseconds times the clock ({@code --ghz}, by default the
 * "cpu MHz" of /proc/cpuinfo). On loopback most of a packet's time is the kernel's: the system
 * calls and the socket layers, microseconds a packet. An allocator's share is tens of nanoseconds,
 * below these rows' run-to-run noise; the JMH figures in docs/benchmarks.md have it alone.
 */
@Command(name = "forwarder.jar", mixinStandardHelpOptions = true, versionProvider = ForwarderDemo.Version.class,
        sortOptions = false,
        description = "Forwards UDP datagrams over loopback through a Netty forwarder with pagepool's allocator and"
                + " Netty's, and reports the forwarding thread's cost per packet against a per-packet budget.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:every row passed: no datagram lost, duplicated or corrupted, every pagepool page back",
            "1:a row FAILED (datagrams lost, duplicated or corrupted, or pages still out), or an error",
            "2:a bad argument: nothing ran"})
public final class ForwarderDemo implements Callable<Integer> {

    /** 64-byte frames at 10 Gbit/s: (64 + 8 preamble + 12 inter-frame gap) bytes * 8 / 10 Gbit/s. */
    static final double TEN_GBE_MIN_FRAME_NS = 67.2;
    private static final String LEAK_LEVEL_PROPERTY = "io.netty.leakDetection.level";
    static final List<String> ALLOCATORS = List.of("pagepool", "adaptive", "pooled");
    /** Most datagrams one recvmmsg call takes: Linux's UIO_MAXIOV, Netty's limit too. */
    static final int MAX_DATAGRAMS_PER_READ = 1024;

    @Option(names = {"-n", "--packets"}, description = "Packets measured per allocator (default: ${DEFAULT-VALUE}).")
    long packets = 500_000;

    @Option(names = "--warmup", description = "Packets forwarded first, not measured (default: ${DEFAULT-VALUE}).")
    long warmup = 100_000;

    @Option(names = "--quick", description = "100,000 packets and a 20,000-packet warm-up per allocator.")
    boolean quick;

    @Option(names = {"-s", "--size"}, description = "UDP payload bytes, 8 to 2048 (default: ${DEFAULT-VALUE}).")
    int size = 64;

    @Option(names = {"-t", "--transport"}, description = "EPOLL, IO_URING or NIO (default: EPOLL where it runs, else NIO).")
    Transport transport;

    @Option(names = {"-a", "--allocators"}, split = ",",
            description = "Allocators, in order: pagepool, adaptive, pooled (default: ${DEFAULT-VALUE}).")
    List<String> allocators = ALLOCATORS;

    @Option(names = "--recvmmsg", paramLabel = "N",
            description = "Up to N datagrams per read system call (epoll's recvmmsg; default: ${DEFAULT-VALUE}, one per recvmsg).")
    int datagramsPerRead = 1;

    @Option(names = {"-w", "--window"}, description = "Datagrams on the way at most; twice that after a 50 ms stall,"
            + " until the forwarder catches up (default: ${DEFAULT-VALUE}, lowered to what the socket buffers hold).")
    int window = 256;

    @Option(names = "--budget-ns", description = "Per-packet budget in ns (default: ${DEFAULT-VALUE}, 10GbE minimum frames).")
    double budgetNs = TEN_GBE_MIN_FRAME_NS;

    @Option(names = "--ghz", description = "Clock for ns-to-cycles (default: /proc/cpuinfo's cpu MHz, else 2.0).")
    Double ghz;

    @Spec
    CommandSpec spec;

    public static void main(String[] args) {
        System.exit(new CommandLine(new ForwarderDemo()).setCaseInsensitiveEnumValuesAllowed(true).execute(args));
    }

    /** What {@code -V/--version} prints: this build's version (from version.properties), and the JVM. */
    static final class Version implements CommandLine.IVersionProvider {
        /** Where the build put the project's version. */
        static final String RESOURCE = "version.properties";
        /** Printed when the build's version is missing (classes not built by Maven). */
        static final String UNKNOWN = "(version unknown: not built by Maven)";

        @Override
        public String[] getVersion() {
            return new String[] {"forwarder.jar " + version() + ", the pagepool UDP forwarder demo",
                "JVM: " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version")};
        }

        static String version() {
            try (InputStream in = ForwarderDemo.class.getResourceAsStream(RESOURCE)) {
                if (in != null) {
                    Properties p = new Properties();
                    p.load(in);
                    String v = p.getProperty("version", "");
                    if (!v.isBlank() && !v.contains("${")) {
                        return v;
                    }
                }
            } catch (IOException e) {
                // fall through: unknown
            }
            return UNKNOWN;
        }
    }

    /**
     * One allocator's run: {@code packets} measured, {@code lost} of them never delivered intact;
     * {@code duplicates} and {@code corrupt} over the whole run, warm-up included. The rates are
     * over the datagrams delivered, not the packets asked for.
     */
    record Row(String allocator, long packets, long lost, long duplicates, long corrupt, long wallNanos,
            long cpuNanos, MemoryReport memory) {
        long delivered() {
            return packets - lost;
        }

        double cpuNsPerPacket() {
            return (double) cpuNanos / delivered();
        }

        double kpps() {
            return delivered() * 1e6 / wallNanos;
        }

        /** Why the run failed, or empty: datagrams lost, duplicated or corrupted, or pages kept. */
        String failures() {
            StringBuilder why = new StringBuilder();
            if (lost != 0) {
                why.append(String.format(Locale.ROOT, ", %,d of %,d lost", lost, packets));
            }
            if (duplicates != 0) {
                why.append(String.format(Locale.ROOT, ", %,d duplicated", duplicates));
            }
            if (corrupt != 0) {
                why.append(String.format(Locale.ROOT, ", %,d corrupt", corrupt));
            }
            if (!memory.allBack()) {
                why.append(", pages still out");
            }
            return why.length() == 0 ? "" : why.substring(2);
        }
    }

    @Override
    public Integer call() throws Exception {
        if (quick) {
            CommandLine.ParseResult parsed = spec.commandLine().getParseResult();
            if (parsed.hasMatchedOption("--packets") || parsed.hasMatchedOption("--warmup")) {
                throw new CommandLine.ParameterException(spec.commandLine(),
                        "--quick sets --packets and --warmup: give either --quick or those");
            }
            packets = 100_000;
            warmup = 20_000;
        }
        if (packets > LoopbackLoad.MAX_COUNT || warmup > LoopbackLoad.MAX_COUNT) {
            throw new CommandLine.ParameterException(spec.commandLine(), String.format(Locale.ROOT,
                    "--packets and --warmup must be at most %,d (the sink keeps a bit per datagram)",
                    LoopbackLoad.MAX_COUNT));
        }
        if (packets < 1 || warmup < 0 || window < 1 || !positiveAndFinite(budgetNs)
                || (ghz != null && !positiveAndFinite(ghz))) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--packets and --window must be positive, --warmup not negative, --budget-ns and --ghz"
                            + " positive and finite");
        }
        if (allocators.isEmpty()) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--allocators: name at least one of " + String.join(", ", ALLOCATORS));
        }
        if (size < LoopbackLoad.HEADER || size > UdpForwarder.DATAGRAM_SIZE) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--size " + size + " must be between "
                    + LoopbackLoad.HEADER + " (the sequence number) and "
                    + UdpForwarder.DATAGRAM_SIZE + " (the forwarder's read buffer)");
        }
        Transport t = transport != null ? transport : Transport.best();
        if (datagramsPerRead < 1 || datagramsPerRead > MAX_DATAGRAMS_PER_READ) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--recvmmsg " + datagramsPerRead
                    + " must be between 1 and " + MAX_DATAGRAMS_PER_READ + " (Linux's UIO_MAXIOV)");
        }
        if (datagramsPerRead > 1 && t != Transport.EPOLL) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--recvmmsg " + datagramsPerRead + ": 1, or more with the EPOLL transport, not " + t);
        }
        if (!t.isAvailable()) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    t + " is not available here: " + t.unavailabilityCause());
        }
        for (String name : allocators) {
            if (!ALLOCATORS.contains(name)) {
                throw new CommandLine.ParameterException(spec.commandLine(),
                        "unknown allocator '" + name + "': " + String.join(", ", ALLOCATORS));
            }
        }
        if (System.getProperty(LEAK_LEVEL_PROPERTY) == null) {
            ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED); // as in the JMH runs
        }
        Clock clockSource = Clock.of(ghz, cpuinfo("cpu MHz"));
        double clock = clockSource.ghz();
        PrintWriter out = spec.commandLine().getOut();
        int granted = grantedReceiveBuffer();
        int fits = windowThatFits(granted, size);
        if (fits < window) {
            String why = String.format(Locale.ROOT, "the kernel grants a socket %,d bytes of receive buffer"
                    + " (net.core.rmem_max), and twice the window of %d-byte datagrams must fit", granted, size);
            if (spec.commandLine().getParseResult().hasMatchedOption("--window")) {
                out.printf(Locale.ROOT, "note: --window %d may lose datagrams here: %s (about %d do)%n", window, why,
                        fits);
            } else {
                out.printf(Locale.ROOT, "note: window lowered from %d to %d: %s%n", window, fits, why);
                window = fits;
            }
        }
        out.printf(Locale.ROOT, "pagepool UDP forwarder demo: %s transport, %d-byte payloads, %,d packets per allocator"
                + " after %,d warm-up, window %d, %s%n", t, size, packets, warmup, window,
                datagramsPerRead == 1 ? "one datagram per read" : "up to " + datagramsPerRead + " per recvmmsg");
        out.printf(Locale.ROOT, "machine: %s, %d CPUs, %s; clock %s%n", cpuModel(),
                Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name") + " "
                        + System.getProperty("java.version"), clockSource.label());
        out.printf(Locale.ROOT, "budget: %.1f ns = %.0f cycles per packet; Netty leak detection %s (-D%s=...)%n%n",
                budgetNs, budgetNs * clock, ResourceLeakDetector.getLevel(), LEAK_LEVEL_PROPERTY);
        out.flush();

        boolean allGood = true;
        out.printf(Locale.ROOT, "%-10s %10s %6s %6s %7s %8s %12s %12s %10s  %s%n", "allocator", "packets", "lost",
                "dup", "corrupt", "kpps", "CPU ns/pkt", "cycles/pkt", "x budget", "after close");
        out.flush();
        for (String name : allocators) {
            Row row = run(name, t);
            String failures = row.failures();
            allGood &= failures.isEmpty();
            boolean rates = row.delivered() > 0 && row.wallNanos() > 0;
            String kpps = rates ? String.format(Locale.ROOT, "%8.1f", row.kpps()) : String.format("%8s", "n/a");
            String cpu = row.cpuNanos() < 0 || !rates
                    ? String.format(Locale.ROOT, "%12s %12s %10s", "n/a", "n/a", "n/a")
                    : String.format(Locale.ROOT, "%12.1f %12.0f %10.1f", row.cpuNsPerPacket(),
                            row.cpuNsPerPacket() * clock, row.cpuNsPerPacket() / budgetNs);
            out.printf(Locale.ROOT, "%-10s %,10d %6d %6d %7d %s %s  %s%s%n", name, row.packets(), row.lost(),
                    row.duplicates(), row.corrupt(), kpps, cpu, row.memory().text(),
                    failures.isEmpty() ? "" : "  FAILED: " + failures);
            out.flush();
        }
        out.println();
        out.println("lost: measured packets that never reached the sink intact; dup, corrupt: datagrams that arrived"
                + " again or damaged,");
        out.println("warm-up included. Any of them, or a page still out, fails the row. kpps and CPU ns/pkt are over"
                + " the packets delivered.");
        out.println("CPU ns/pkt: the forwarding event loop's CPU time per packet, its system calls included;"
                + " cycles = ns x clock.");
        out.println("On loopback the kernel's receive and send dominate (microseconds a packet). An allocator's share"
                + " is tens of nanoseconds,");
        out.println("below the run-to-run noise of these rows: docs/benchmarks.md measures it alone (JMH).");
        if (!allGood) {
            out.println();
            out.println("FAILED: a row above lost, duplicated or corrupted datagrams, or kept pages (exit code 1).");
        }
        out.flush();
        return allGood ? 0 : 1;
    }

    /** The receive buffer a socket asking for {@link UdpForwarder#SOCKET_BUFFER} gets here (Linux reports twice the bytes it grants). */
    static int grantedReceiveBuffer() throws IOException {
        try (DatagramChannel probe = DatagramChannel.open()) {
            probe.setOption(StandardSocketOptions.SO_RCVBUF, UdpForwarder.SOCKET_BUFFER);
            return probe.getOption(StandardSocketOptions.SO_RCVBUF);
        }
    }

    /**
     * The largest window of which twice (what a stall may put on the way, see {@link LoopbackLoad})
     * fits in a receive buffer of {@code receiveBuffer} bytes, with {@code size}-byte datagrams. A
     * datagram takes more of the buffer than its payload (the kernel's socket buffer and its
     * headers): on this project's machine's kernel, datagrams sent to an unread loopback socket with
     * 416 KiB granted filled it at 832 bytes each for 64-byte payloads and 4,392 for 2,048-byte ones;
     * estimated here, on the safe side, as {@code max(1024, 2 * size + 640)}.
     */
    static int windowThatFits(int receiveBuffer, int size) {
        long perDatagram = Math.max(1024, 2L * size + 640);
        return (int) Math.max(1, receiveBuffer / (2 * perDatagram));
    }

    private static boolean positiveAndFinite(double x) {
        return x > 0 && x < Double.POSITIVE_INFINITY; // false for NaN
    }

    private Row run(String allocatorName, Transport t) throws IOException, InterruptedException {
        try (ClosableAllocator allocator = newAllocator(allocatorName); LoopbackLoad load = new LoopbackLoad(size)) {
            long lost;
            long wall;
            long cpu;
            try (UdpForwarder forwarder = UdpForwarder.start(t, allocator.get(),
                    new InetSocketAddress("127.0.0.1", 0), load.sinkAddress(), datagramsPerRead)) {
                load.send(forwarder.localAddress(), 0, warmup, window);
                long cpu0 = forwarder.cpuNanos();
                long t0 = System.nanoTime();
                lost = load.send(forwarder.localAddress(), warmup, packets, window);
                long cpu1 = forwarder.cpuNanos();
                wall = load.lastArrivalNanos() - t0; // not the wait for datagrams that never came
                cpu = cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0;
            }
            return new Row(allocatorName, packets, lost, load.duplicates(), load.corrupt(), wall, cpu,
                    allocator.closeAndReport());
        }
    }

    /** What closing an allocator said about the memory it handed out; {@code allBack} false fails the run. */
    record MemoryReport(boolean allBack, String text) {
    }

    /** An allocator, closed after its run. */
    interface ClosableAllocator extends AutoCloseable {
        ByteBufAllocator get();

        /** Closes the allocator (again: a no-op) and says whether every page came back. */
        MemoryReport closeAndReport();

        @Override
        default void close() {
            closeAndReport();
        }
    }

    static ClosableAllocator newAllocator(String name) {
        switch (name) {
            case "pagepool":
                return pagepool(PagePoolByteBufAllocator.builder().build());
            case "adaptive":
                return peer(new AdaptiveByteBufAllocator());
            case "pooled":
                return peer(new PooledByteBufAllocator(true));
            default:
                throw new IllegalArgumentException("unknown allocator '" + name + "': pagepool, adaptive or pooled");
        }
    }

    private static ClosableAllocator pagepool(PagePoolByteBufAllocator alloc) {
        return new ClosableAllocator() {
            private MemoryReport report;

            @Override
            public ByteBufAllocator get() {
                return alloc;
            }

            @Override
            public MemoryReport closeAndReport() {
                if (report == null) {
                    long fallbacks = alloc.metric().fallbackAllocations();
                    try {
                        alloc.close(); // throws if any page is still out
                        report = new MemoryReport(true,
                                "every page back" + (fallbacks == 0 ? "" : ", " + fallbacks + " fallback buffers"));
                    } catch (IllegalStateException e) {
                        report = new MemoryReport(false, "PAGES STILL OUT: " + e.getMessage());
                    }
                }
                return report;
            }
        };
    }

    /** Netty's allocators have no close; their arenas stay with the JVM, so there is nothing to check. */
    private static ClosableAllocator peer(ByteBufAllocator alloc) {
        MemoryReport report = new MemoryReport(true, "(not checked: no close)");
        return new ClosableAllocator() {
            @Override
            public ByteBufAllocator get() {
                return alloc;
            }

            @Override
            public MemoryReport closeAndReport() {
                return report;
            }
        };
    }

    /** The clock for ns-to-cycles and where it came from, as the header says it. */
    record Clock(double ghz, String source) {
        /** The clock when neither --ghz nor /proc/cpuinfo gives one. */
        static final double FALLBACK_GHZ = 2.0;

        /** {@code --ghz} if given, else /proc/cpuinfo's "cpu MHz" ({@code cpuMhz}, null if none), else 2.0. */
        static Clock of(Double ghzOption, String cpuMhz) {
            if (ghzOption != null) {
                return new Clock(ghzOption, "--ghz");
            }
            if (cpuMhz != null) {
                try {
                    double mhz = Double.parseDouble(cpuMhz);
                    if (positiveAndFinite(mhz)) {
                        return new Clock(mhz / 1000, "/proc/cpuinfo");
                    }
                } catch (NumberFormatException e) {
                    // not a number: assumed below
                }
            }
            return new Clock(FALLBACK_GHZ, "assumed: no cpu MHz in /proc/cpuinfo, give --ghz");
        }

        String label() {
            return String.format(Locale.ROOT, "%.2f GHz (%s)", ghz, source);
        }
    }

    private static String cpuModel() {
        String model = cpuinfo("model name");
        return model != null ? model : System.getProperty("os.arch");
    }

    private static String cpuinfo(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                int colon = line.indexOf(':');
                if (colon > 0 && line.substring(0, colon).trim().equals(key)) {
                    return line.substring(colon + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: the caller has a default
        }
        return null;
    }
}
