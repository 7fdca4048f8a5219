package io.pagepool.perf;

import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.FastThreadLocalThread;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * A JMH executor whose benchmark threads are made by Netty's {@link DefaultThreadFactory}, as an
 * event loop's are: {@link FastThreadLocalThread}s that clean up their thread locals. JMH's own
 * threads are plain threads, on which Netty 4.2's allocators take their shared paths: Pooled keeps
 * no thread cache, Adaptive uses its shared magazines (a lock per allocation), and the
 * {@code Recycler} pools no buffer objects. On these threads each gets what it has on an event loop.
 *
 * <pre>
 *   java -jar perf/target/benchmarks.jar 'ByteBufAllocatorBenchmark' -jvmArgsAppend \
 *     "-Xms1g -Xmx1g -XX:MaxDirectMemorySize=1g -Dio.netty.leakDetection.level=disabled \
 *      -Djmh.executor=CUSTOM -Djmh.executor.class=io.pagepool.perf.EventLoopThreads"
 * </pre>
 * (A heap of more than 512 MiB also keeps Adaptive out of its low-memory mode, in which it has no
 * per-thread magazines at all.)
 */
public final class EventLoopThreads extends ThreadPoolExecutor {

    /** The constructor JMH's {@code CUSTOM} executor type calls. */
    public EventLoopThreads(int maxThreads, String prefix) {
        super(maxThreads, maxThreads, 1, TimeUnit.MINUTES, new LinkedBlockingQueue<>(),
                new DefaultThreadFactory(prefix, true));
    }
}
