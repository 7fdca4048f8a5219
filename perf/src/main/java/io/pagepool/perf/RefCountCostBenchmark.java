package io.pagepool.perf;

import io.netty.buffer.ByteBuf;
import io.pagepool.netty.PagePoolByteBufAllocator;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What one reference-count update costs on this machine, to explain where the Netty allocator's
 * same-thread time goes. Every pooled Netty buffer pays one atomic compare-and-swap in
 * {@code release()} (Netty's {@code RefCnt}); the page pool's fast path pays none.
 *
 * <pre>
 *   plainIncrement      a counter in a field, no atomic: the baseline (loop and call overhead)
 *   casIncrement        AtomicInteger.compareAndSet(v, v + 1), uncontended, one thread
 *   nettyRetainRelease  retain() + release() on a live pagepool buffer: two compare-and-swaps on
 *                       its own count (what Netty's RefCnt pays), nothing allocated or freed
 * </pre>
 *
 * <pre>
 *   java -jar perf/target/benchmarks.jar RefCountCostBenchmark -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class RefCountCostBenchmark extends BenchmarkDefaults {

    int plain;
    final AtomicInteger atomic = new AtomicInteger();
    PagePoolByteBufAllocator alloc;
    ByteBuf buffer;

    @Setup
    public void setUp() {
        alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
        buffer = alloc.directBuffer(2048);
    }

    @TearDown
    public void tearDown() {
        buffer.release();
        alloc.close();
    }

    @Benchmark
    public int plainIncrement() {
        return ++plain;
    }

    @Benchmark
    public boolean casIncrement() {
        int v = atomic.get();
        return atomic.compareAndSet(v, v + 1);
    }

    @Benchmark
    public boolean nettyRetainRelease() {
        return buffer.retain().release();
    }
}
