package io.pagepool.perf;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The JMH settings every pagepool benchmark shares: average time per operation in nanoseconds,
 * 3 warm-up and 5 measurement iterations of one second, one fork with a fixed heap and Netty's
 * leak detector off (it samples buffers and would be measured too). Subclasses add their own
 * {@code @State} and, where they need to, their own {@code @Fork} arguments.
 *
 * <p>Override from the command line as usual ({@code -wi}, {@code -i}, {@code -f}, ...); note that
 * {@code -jvmArgsAppend} on the command line replaces the arguments below, leak-detection setting
 * included.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m", "-XX:MaxDirectMemorySize=1g",
        "-Dio.netty.leakDetection.level=disabled"})
public abstract class BenchmarkDefaults {
}
