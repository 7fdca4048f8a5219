package io.pagepool.perf;

import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The page pool's three paths, as the kernel's {@code bench_page_pool_simple} measures them, plus
 * fragments. Each figure is nanoseconds per page (or fragment) handed out and returned.
 *
 * <pre>
 *   fastPath   allocPage + recycleDirect                    cache pop / push, owner thread
 *   ringPath   allocPage + putPage(allowDirect=false)       every page through the recycle ring,
 *                                                           the cache refilled from it 64 at a time
 *   slowPath   64 x allocPage, recycle, trim()              pages never reused: each round's pages
 *                                                           come from allocPagesBulk(64) and go back
 *                                                           to the page allocator (one freePages each),
 *                                                           as the kernel's slow-path bench releases them
 *   frag       allocFrag(size) + putFrag(allowDirect=true)  the pool's own fragment path (two atomics
 *                                                           per release); sizes 1024 and 2048
 * </pre>
 * The pool and its allocator ({@link io.pagepool.core.CpuCacheMode#PER_THREAD}, the default,
 * 64 MiB, pre-touched) are built per trial on the benchmark thread, which owns the pool.
 *
 * <p>Targets (issue #3, this machine): fast path at most 8 ns, ring path at most 25 ns, slow path
 * at most 45 ns per page, 0 B/op under {@code -prof gc}. The kernel's published figures for
 * reference: 16-18, 47-55 and 173-243 cycles.
 */
@State(Scope.Thread)
public class PagePoolBenchmark extends BenchmarkDefaults {

    /** Pages per slow-path round: one pool refill. */
    static final int ROUND = PagePool.DEFAULT_REFILL_BATCH;

    PageAllocator allocator;
    PagePool pool;
    final int[] round = new int[ROUND];

    @Setup(Level.Trial)
    public void build() {
        allocator = PageAllocator.builder().capacity(64L << 20).preTouch(true).build();
        pool = PagePool.builder(allocator).build();
    }

    @TearDown(Level.Trial)
    public void close() {
        pool.close();
        allocator.checkConsistency();
        allocator.close(); // refuses, naming a pfn, if a page leaked
    }

    @Benchmark
    public void fastPath() {
        PagePool p = pool;
        p.recycleDirect(p.allocPage());
    }

    @Benchmark
    public void ringPath() {
        PagePool p = pool;
        p.putPage(p.allocPage(), 0, false);
    }

    @Benchmark
    @OperationsPerInvocation(ROUND)
    public void slowPath() {
        PagePool p = pool;
        int[] pages = round;
        for (int i = 0; i < ROUND; i++) {
            pages[i] = p.allocPage();
        }
        for (int i = 0; i < ROUND; i++) {
            p.recycleDirect(pages[i]);
        }
        p.trim();
    }

    /** Fragment size, a separate state so that only {@link #frag} runs once per size. */
    @State(Scope.Thread)
    public static class FragSize {
        @Param({"1024", "2048"})
        public int fragSize;
    }

    @Benchmark
    public void frag(FragSize size) {
        PagePool p = pool;
        p.putFrag(p.allocFrag(size.fragSize), true);
    }
}
