package io.pagepool.perf;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What a frame decoder pays per frame: {@code readRetainedSlice(512)} of a 2 KiB direct buffer, the
 * frame handed on and released, four frames per invocation (ns and bytes per frame), for pagepool
 * and Netty's allocators in the same run. Netty's default derived buffers allocate one view object per slice;
 * pagepool recycles its views, Netty's pooled allocator recycles its own through its
 * {@code Recycler}, which on a plain thread such as JMH's pools nothing.
 */
@State(Scope.Benchmark)
public class RetainedSliceBenchmark extends BenchmarkDefaults {

    static final int FRAME = 512;
    static final int FRAMES = 4;

    @Param({"pagepool", "adaptive", "pooled", "unpooled"})
    public String allocator;

    ByteBufAllocator alloc;
    ByteBuf buffer;
    final ByteBuf[] frames = new ByteBuf[FRAMES];

    @Setup(Level.Trial)
    public void build() {
        alloc = PeerAllocators.named(allocator, 16L << 20, false);
        buffer = alloc.directBuffer(FRAME * FRAMES);
        buffer.writerIndex(FRAME * FRAMES);
    }

    @TearDown(Level.Trial)
    public void release() {
        if (buffer.refCnt() != 1 || !buffer.release()) {
            throw new IllegalStateException("the frames did not give their references back: " + buffer);
        }
    }

    /**
     * As a decoder and the handler after it: the frames are handed on (here, into an array, so that
     * escape analysis cannot remove a view object), then read and released.
     */
    @Benchmark
    @OperationsPerInvocation(FRAMES)
    public int readRetainedSlices() {
        ByteBuf b = buffer;
        ByteBuf[] out = frames;
        b.readerIndex(0);
        for (int i = 0; i < FRAMES; i++) {
            out[i] = b.readRetainedSlice(FRAME);
        }
        int sum = 0;
        for (int i = 0; i < FRAMES; i++) {
            sum += out[i].getInt(0);
            out[i].release();
        }
        return sum;
    }
}
