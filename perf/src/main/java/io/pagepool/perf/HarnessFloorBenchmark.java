package io.pagepool.perf;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The floor under {@link ByteBufAllocatorBenchmark}: the same two loops against an allocator that
 * does no work, to show how much of a figure there is the benchmark and Netty's API rather than
 * the allocator. Its {@code directBuffer} goes through {@link AbstractByteBufAllocator}'s checks
 * and the leak detector's level check as every Netty allocator's does, then hands out the next of
 * 64 buffers made at setup; their {@code release()} does nothing ({@link Unpooled#unreleasableBuffer}).
 * The loops store each buffer into an array and read it back, with G1's write barrier, as the
 * allocator benchmark's do.
 *
 * <pre>
 *   allocRelease   directBuffer(2048).release()                                  (ns per buffer)
 *   batch64        64 x directBuffer(2048) into an array, then 64 x release()    (ns per buffer)
 *
 *   java -jar perf/target/benchmarks.jar HarnessFloorBenchmark -f 3 -prof gc
 * </pre>
 */
@State(Scope.Benchmark)
public class HarnessFloorBenchmark extends BenchmarkDefaults {

    static final int SIZE = 2048;

    final NoWorkAllocator alloc = new NoWorkAllocator();

    /** One thread's batch, as in {@link ByteBufAllocatorBenchmark.Batch}. */
    @State(Scope.Thread)
    public static class Batch {
        final ByteBuf[] buffers = new ByteBuf[ByteBufAllocatorBenchmark.BATCH];
    }

    @Benchmark
    public void allocRelease() {
        alloc.directBuffer(SIZE).release();
    }

    @Benchmark
    @OperationsPerInvocation(ByteBufAllocatorBenchmark.BATCH)
    public void batch64(Batch batch) {
        ByteBuf[] b = batch.buffers;
        ByteBufAllocator a = alloc;
        for (int i = 0; i < ByteBufAllocatorBenchmark.BATCH; i++) {
            b[i] = a.directBuffer(SIZE);
        }
        for (int i = 0; i < ByteBufAllocatorBenchmark.BATCH; i++) {
            b[i].release();
        }
    }

    @TearDown
    public void freeMemory() {
        alloc.free();
    }

    /** Hands out 64 buffers made up front, round robin; nothing is allocated or freed per call. */
    static final class NoWorkAllocator extends AbstractByteBufAllocator {
        private final ByteBuf[] ring = new ByteBuf[ByteBufAllocatorBenchmark.BATCH];
        private int next;

        NoWorkAllocator() {
            super(true);
            for (int i = 0; i < ring.length; i++) {
                ring[i] = Unpooled.unreleasableBuffer(Unpooled.directBuffer(SIZE));
            }
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf buf = ring[next++ & (ring.length - 1)];
            return toLeakAwareBuffer(buf);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            throw new UnsupportedOperationException("direct buffers only");
        }

        @Override
        public boolean isDirectBufferPooled() {
            return true;
        }

        void free() {
            for (ByteBuf buf : ring) {
                buf.unwrap().release();
            }
        }
    }
}
