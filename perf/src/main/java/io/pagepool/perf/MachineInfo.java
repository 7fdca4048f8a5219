package io.pagepool.perf;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The facts a published table must name: CPU model, cores, TSC rate, JDK. Read from
 * {@code /proc/cpuinfo} on Linux; elsewhere the fields say "unknown".
 *
 * @param cpuModel       {@code model name} of the first processor
 * @param processors     {@code processor} entries in /proc/cpuinfo (0 if unreadable)
 * @param coresPerSocket {@code cpu cores} of the first processor (0 if absent)
 * @param cpuMhz         {@code cpu MHz} of the first processor: the TSC rate when the CPU has
 *                       {@code constant_tsc} (0 if absent)
 * @param constantTsc    whether the {@code flags} include {@code constant_tsc}
 * @param jdk            {@code java.vm.name} and {@code java.vm.version}
 */
record MachineInfo(String cpuModel, int processors, int coresPerSocket, double cpuMhz, boolean constantTsc,
                   String jdk) {

    static MachineInfo read() {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/cpuinfo"));
        } catch (IOException | RuntimeException e) {
            lines = List.of();
        }
        return parse(lines, System.getProperty("java.vm.name") + " " + System.getProperty("java.vm.version"));
    }

    static MachineInfo parse(List<String> cpuinfo, String jdk) {
        String model = null;
        int processors = 0;
        int cores = 0;
        double mhz = 0;
        boolean constantTsc = false;
        for (String line : cpuinfo) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String key = line.substring(0, colon).trim();
            String value = line.substring(colon + 1).trim();
            switch (key) {
                case "processor":
                    processors++;
                    break;
                case "model name":
                    if (model == null) {
                        model = value;
                    }
                    break;
                case "cpu cores":
                    if (cores == 0) {
                        cores = parseInt(value);
                    }
                    break;
                case "cpu MHz":
                    if (mhz == 0) {
                        mhz = parseDouble(value);
                    }
                    break;
                case "flags":
                    constantTsc |= (" " + value + " ").contains(" constant_tsc ");
                    break;
                default:
                    break;
            }
        }
        return new MachineInfo(model == null ? "unknown CPU" : model, processors, cores, mhz, constantTsc, jdk);
    }

    /** Cycles at the {@code cpu MHz} rate for a duration in ns, or NaN when the rate is unknown. */
    double cycles(double ns) {
        return cpuMhz > 0 ? ns * cpuMhz / 1000.0 : Double.NaN;
    }

    String describe() {
        int available = Runtime.getRuntime().availableProcessors();
        StringBuilder sb = new StringBuilder(cpuModel);
        sb.append(", ").append(processors > 0 ? processors : available).append(" logical CPUs");
        if (coresPerSocket > 0) {
            sb.append(" (cpu cores: ").append(coresPerSocket).append(')');
        }
        sb.append(", JVM sees ").append(available);
        if (cpuMhz > 0) {
            sb.append(String.format(Locale.ROOT, ", cpu MHz %.3f", cpuMhz));
            sb.append(constantTsc ? " (constant_tsc)" : " (no constant_tsc flag)");
        }
        return sb.toString();
    }

    private static int parseInt(String s) {
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private static double parseDouble(String s) {
        try {
            return Double.parseDouble(s);
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
