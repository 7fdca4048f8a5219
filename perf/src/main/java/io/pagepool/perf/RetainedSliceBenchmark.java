package io.pagepool.perf;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import org.jctools.queues.atomic.SpscAtomicArrayQueue;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Control;

/**
 * What a frame decoder pays per frame: {@code readRetainedSlice(512)} of a 2 KiB direct buffer, the
 * frame handed on and released, four frames per invocation (ns and bytes per frame), for pagepool
 * and Netty's allocators in the same run. Netty's default derived buffers allocate one view object per slice;
 * pagepool recycles its views, Netty's pooled allocator recycles its own through its
 * {@code Recycler}, which on a plain thread such as JMH's pools nothing.
 *
 * <pre>
 *   readRetainedSlices   one thread: four frames sliced, read and released
 *   crossThread          a proxy's frames: one thread slices its own buffer into four frames and
 *                        passes them through a single-producer single-consumer queue to a second
 *                        thread, which reads and releases them (the slicing thread keeps its buffer)
 * </pre>
 * In {@code crossThread} each frame counts one operation on each side, so JMH's
 * {@code gc.alloc.rate.norm}, which divides the bytes allocated by both threads by both threads'
 * operations, is half the bytes per frame (docs/benchmarks.md doubles it).
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
    SpscAtomicArrayQueue<ByteBuf> handoff;

    @Setup(Level.Trial)
    public void build() {
        alloc = PeerAllocators.named(allocator, 16L << 20, false);
        buffer = alloc.directBuffer(FRAME * FRAMES);
        buffer.writerIndex(FRAME * FRAMES);
        handoff = new SpscAtomicArrayQueue<>(1024);
    }

    @TearDown(Level.Trial)
    public void release() {
        ByteBuf left;
        while ((left = handoff.poll()) != null) {
            left.release();
        }
        if (buffer.refCnt() != 1 || !buffer.release()) {
            throw new IllegalStateException("the frames did not give their references back: " + buffer);
        }
    }

    /** The slicing thread's own buffer, allocated on that thread (a pagepool buffer's arena is its allocating thread's). */
    @State(Scope.Thread)
    public static class Received {
        ByteBuf buffer;

        @Setup(Level.Trial)
        public void receive(RetainedSliceBenchmark b) {
            buffer = b.alloc.directBuffer(FRAME * FRAMES);
            buffer.writerIndex(FRAME * FRAMES);
        }

        @TearDown(Level.Trial)
        public void done() {
            buffer.release(); // frames still queued hold their own references
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

    @Benchmark
    @Group("crossThread")
    @GroupThreads(1)
    @OperationsPerInvocation(FRAMES)
    public void slice(Received received, Control control) {
        ByteBuf b = received.buffer;
        b.readerIndex(0);
        for (int i = 0; i < FRAMES; i++) {
            ByteBuf frame = b.readRetainedSlice(FRAME);
            while (!handoff.offer(frame)) {
                if (control.stopMeasurement) {
                    frame.release();
                    break;
                }
                Thread.onSpinWait();
            }
        }
    }

    @Benchmark
    @Group("crossThread")
    @GroupThreads(1)
    @OperationsPerInvocation(FRAMES)
    public int readAndRelease(Control control) {
        int sum = 0;
        for (int i = 0; i < FRAMES; i++) {
            ByteBuf frame;
            while ((frame = handoff.poll()) == null) {
                if (control.stopMeasurement) {
                    return sum;
                }
                Thread.onSpinWait();
            }
            sum += frame.getInt(0);
            frame.release();
        }
        return sum;
    }
}
