package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.buffer.ByteBuf;
import io.netty.channel.DefaultEventLoop;
import io.pagepool.core.CpuCacheMode;
import io.pagepool.core.PageAllocator;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Edges of the allocator's lifecycle that a review found broken: arenas of ended threads and of
 * pool workers that lose their thread locals, the give-back path for threads without an arena,
 * builder boundaries and the DEFAULT instance's system property.
 */
class ArenaLifecycleEdgesTest {

    static final int MIB = 1 << 20;

    /** Waits (at most 10 s) until no arena of {@code threadName} is listed: the reaper has closed it. */
    static void awaitArenaReaped(PagePoolByteBufAllocator alloc, String threadName) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            List<String> names = alloc.metric().arenas().stream()
                    .map(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName).collect(Collectors.toList());
            if (!names.contains(threadName)) {
                return;
            }
            Thread.sleep(20);
        }
        fail("the arena of " + threadName + " was not reaped within 10 s: " + alloc.metric());
    }

    /**
     * A plain thread parks a few 8 KiB buffers with their blocks and ends; the reaper closes its
     * arena on the reaper thread. The blocks it frees there must not stay in the reaper's own
     * per-CPU page set (the reaper never allocates or ends, and a failed allocation drains only its
     * own thread's set): a request for the whole 4 MiB is served afterwards.
     */
    @Test
    void pagesOfAReapedArenaStayReachableForALargeBlock() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(4L * MIB)
                .fallbackPolicy(FallbackPolicy.FAIL).build();
        try {
            Thread t = new Thread(() -> {
                List<ByteBuf> bufs = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    bufs.add(alloc.directBuffer(8192));
                }
                bufs.forEach(ByteBuf::release); // parked in this thread's arena with their blocks
            }, "short-lived-block-parker");
            t.start();
            t.join(10_000);
            awaitArenaReaped(alloc, t.getName());
            assertEquals(0, alloc.metric().usedDirectMemory(), "nothing is in use");
            ByteBuf whole;
            try {
                whole = alloc.directBuffer(4 * MIB);
            } catch (PagePoolOutOfMemoryError e) {
                throw new AssertionError("with nothing in use and no thread alive that allocated, a block of the"
                        + " whole capacity failed: " + e.getMessage() + "; " + alloc.pageAllocator().stats());
            }
            assertNotNull(whole);
            whole.release();
        } finally {
            alloc.close();
        }
    }

    /** Runs {@code task} on a new virtual thread (JDK 21+; the test is skipped on older JDKs) and returns its result. */
    static <T> T onVirtualThread(Callable<T> task) throws Exception {
        Method start;
        try {
            start = Thread.class.getMethod("startVirtualThread", Runnable.class);
        } catch (NoSuchMethodException e) {
            assumeTrue(false, "virtual threads need JDK 21+");
            return null;
        }
        AtomicReference<T> result = new AtomicReference<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread vt = (Thread) start.invoke(null, (Runnable) () -> {
            try {
                result.set(task.call());
            } catch (Throwable t) {
                failure.set(t);
            }
        });
        vt.join(10_000);
        if (failure.get() != null) {
            throw new AssertionError("on a virtual thread", failure.get());
        }
        return result.get();
    }

    /**
     * A virtual thread has no arena; when the page allocator has nothing left for it, the arenas
     * are still asked to give back what they parked, as for a plain thread or another event loop
     * (anotherEventLoopGivesBackWhatItParkedWhenOneRunsOut): its first request falls back, its next
     * is pooled, though the loop that parked the whole capacity stays idle.
     */
    @Test
    void aVirtualThreadThatRunsOutGetsTheIdleArenasToGiveBack() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB).build();
        DefaultEventLoop parker = new DefaultEventLoop();
        try {
            parker.submit(() -> {
                List<ByteBuf> burst = new ArrayList<>();
                for (int i = 0; i < 32; i++) {
                    burst.add(alloc.directBuffer(32768));
                }
                burst.forEach(ByteBuf::release);
            }).get(10, TimeUnit.SECONDS);
            assertEquals(32, alloc.metric().arenas().get(0).cachedBlocks(), "the whole capacity is parked on the loop");

            ByteBuf first = onVirtualThread(() -> alloc.directBuffer(32768));
            assertEquals(PagePoolByteBuf.FALLBACK, PagePoolByteBufContractTest.raw(first).kind(), "ran out: fallback");
            parker.submit(() -> { }).get(10, TimeUnit.SECONDS); // after any give-back task queued before it
            ByteBuf second = onVirtualThread(() -> alloc.directBuffer(32768));
            byte kind = PagePoolByteBufContractTest.raw(second).kind();
            first.release();
            second.release();
            assertEquals(PagePoolByteBuf.BLOCK, kind, () -> "the loop still parks " + alloc.metric().arenas().get(0)
                    .cachedBlocks() + " blocks and the virtual thread keeps falling back: fallbacks "
                    + alloc.metric().fallbackAllocations());
        } finally {
            parker.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
        }
        alloc.close();
    }

    /**
     * The common pool's workers erase their thread locals between tasks (on JDK 17 and 25), so the
     * thread-local that holds a plain thread's arena is emptied without {@code onRemoval}, and when
     * the worker's slot in the 1024-entry table is held by another live thread (thread ids equal
     * mod 1024) only the registry still knows the arena. The worker must keep that one arena, not
     * make one per task, each with its own page pool, none reaped until the worker ends.
     */
    @Test
    @SuppressWarnings("deprecation") // Thread.getId(): the slot table indexes by it
    void aCommonPoolWorkerKeepsOneArenaAcrossTasks() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(8L * MIB).build();
        ForkJoinPool pool = ForkJoinPool.commonPool();
        ThreadLocal<String> probe = new ThreadLocal<>();
        Thread worker = onPool(pool, () -> {
            probe.set("set");
            return Thread.currentThread();
        });
        assumeTrue(worker instanceof ForkJoinWorkerThread, "the task ran on the caller");
        Boolean erased = null;
        for (int i = 0; i < 50 && erased == null; i++) { // a later task may run on another worker
            erased = onPool(pool, () -> Thread.currentThread() == worker ? probe.get() == null : null);
        }
        assumeTrue(Boolean.TRUE.equals(erased), "this JDK's common pool keeps thread locals between tasks");

        // a live thread whose id shares the worker's slot claims it first
        CountDownLatch claimed = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        Thread colliding = slotHolder(alloc, worker, claimed, done);
        colliding.start();
        try {
            assertTrue(claimed.await(10, TimeUnit.SECONDS));
            int tasks = 0;
            for (int i = 0; i < 20; i++) {
                if (onPool(pool, () -> {
                    alloc.directBuffer(100).release();
                    return Thread.currentThread() == worker;
                })) {
                    tasks++;
                }
            }
            int onWorker = tasks;
            assumeTrue(onWorker > 1, "the tasks ran on other threads");
            long arenas = alloc.metric().arenas().stream().filter(a -> a.threadName().equals(worker.getName())).count();
            assertEquals(1, arenas, () -> onWorker + " tasks on " + worker.getName() + " left " + arenas + " arenas: "
                    + alloc.metric().arenas());
        } finally {
            done.countDown();
            colliding.join(10_000);
            closeFrom(pool, alloc, worker);
        }
    }

    /**
     * The same without depending on a pool's habits: a plain thread whose thread locals are erased
     * after each use, as a common-pool worker's are ({@code InternalThreadLocalMap.remove()}: no
     * {@code onRemoval}), its slot held by another live thread, keeps its one arena.
     */
    @Test
    @SuppressWarnings("deprecation") // Thread.getId(): the slot table indexes by it
    void aThreadWhoseThreadLocalsAreErasedKeepsOneArena() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(8L * MIB).build();
        CountDownLatch claimed = new CountDownLatch(1);
        CountDownLatch used = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread worker = new Thread(() -> {
            try {
                PagePoolByteBufAllocatorTest.await(claimed);
                for (int i = 0; i < 20; i++) {
                    alloc.directBuffer(100).release();
                    io.netty.util.internal.InternalThreadLocalMap.remove();
                }
            } catch (Throwable t) {
                failure.set(t);
            } finally {
                used.countDown();
                PagePoolByteBufAllocatorTest.await(done); // alive: an ended thread's arena would be reaped
            }
        }, "erases-its-thread-locals");
        Thread colliding = slotHolder(alloc, worker, claimed, done);
        colliding.start();
        worker.start();
        try {
            assertTrue(used.await(10, TimeUnit.SECONDS));
            assertNull(failure.get());
            long arenas = alloc.metric().arenas().stream().filter(a -> a.threadName().equals(worker.getName())).count();
            assertEquals(1, arenas, () -> "20 uses left " + arenas + " arenas: " + alloc.metric().arenas());
        } finally {
            done.countDown();
            colliding.join(10_000);
            worker.join(10_000);
        }
        alloc.close();
    }

    /**
     * A new (unstarted) thread whose id shares {@code worker}'s slot in the allocator's 1024-entry
     * table: it allocates (claiming the slot), counts {@code claimed} down, and lives until {@code done}.
     */
    @SuppressWarnings("deprecation") // Thread.getId(): the slot table indexes by it
    private static Thread slotHolder(PagePoolByteBufAllocator alloc, Thread worker, CountDownLatch claimed,
            CountDownLatch done) {
        Thread colliding;
        do {
            colliding = new Thread(() -> {
                alloc.directBuffer(100).release();
                claimed.countDown();
                PagePoolByteBufAllocatorTest.await(done);
            }, "slot-holder");
        } while ((colliding.getId() & 1023) != (worker.getId() & 1023));
        return colliding;
    }

    /** Runs {@code task} on {@code pool} and waits on a latch, so that the caller never runs it itself (as ForkJoinTask.get() may). */
    private static <T> T onPool(ForkJoinPool pool, Callable<T> task) throws Exception {
        AtomicReference<T> result = new AtomicReference<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch done = new CountDownLatch(1);
        pool.execute(() -> {
            try {
                result.set(task.call());
            } catch (Throwable t) {
                failure.set(t);
            } finally {
                done.countDown();
            }
        });
        assertTrue(done.await(10, TimeUnit.SECONDS), "the pool did not run the task");
        if (failure.get() != null) {
            throw new AssertionError("on " + pool, failure.get());
        }
        return result.get();
    }

    /** Closes {@code alloc} on {@code worker} itself (its arenas may be closed only there while it lives). */
    private static void closeFrom(ForkJoinPool pool, PagePoolByteBufAllocator alloc, Thread worker) throws Exception {
        for (int i = 0; i < 50 && !alloc.isClosed(); i++) {
            onPool(pool, () -> {
                if (Thread.currentThread() == worker) {
                    alloc.close();
                }
                return null;
            });
        }
        assertTrue(alloc.isClosed(), "could not close the allocator on " + worker.getName());
    }

    /**
     * A thread without an arena that frees memory drains only its own per-CPU set, if it has one: a
     * 64 KiB block (order 4) goes straight to the zone, and its release must not register a set for
     * the releasing thread (the registry lock and a sweep of every set, on each such release).
     */
    @Test
    void releasingABlockThatBypassesPerCpuSetsDoesNotRegisterASetForTheReleasingThread() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L * MIB).build();
        try {
            PageAllocator pages = alloc.pageAllocator();
            ByteBuf big = alloc.directBuffer(64 * 1024); // order 4: freed in place, straight to the zone
            CountDownLatch released = new CountDownLatch(1);
            CountDownLatch measured = new CountDownLatch(1);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            int setsBefore = pages.stats().cpuPageSets();
            Thread releaser = new Thread(() -> {
                try {
                    big.release();
                } catch (Throwable t) {
                    failure.set(t);
                } finally {
                    released.countDown();
                }
                try {
                    measured.await(10, TimeUnit.SECONDS); // stay alive: an ended thread's set would be reaped
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "release-only-thread");
            releaser.start();
            assertTrue(released.await(10, TimeUnit.SECONDS));
            int setsAfter = pages.stats().cpuPageSets();
            measured.countDown();
            releaser.join(10_000);
            if (failure.get() != null) {
                throw new AssertionError(failure.get());
            }
            assertEquals(setsBefore, setsAfter, "a thread that only released a block freed to the zone got a per-CPU"
                    + " page set registered (drainCpuCaches on its release)");
        } finally {
            alloc.close();
        }
    }

    /**
     * An arena closed off its owner drains the closing thread's own set only: in MAGAZINE mode,
     * whose magazines every thread reaches, reaping an ended thread's arena must leave the
     * magazines live threads use alone.
     */
    @Test
    void reapingAnArenaInMagazineModeDoesNotEmptyTheLiveThreadsMagazines() throws Exception {
        PageAllocator shared = PageAllocator.builder().capacity(16L * MIB).cpuCacheMode(CpuCacheMode.MAGAZINE)
                .magazines(1).build();
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(shared).build();
        try {
            // this (live) thread keeps some pages parked in the shared magazine
            int[] mine = new int[16];
            for (int i = 0; i < mine.length; i++) {
                mine[i] = shared.allocPages(0);
            }
            for (int pfn : mine) {
                shared.freePages(pfn, 0);
            }
            long parkedByMe = shared.cachedPageCount();
            assertTrue(parkedByMe > 0, "setup: pages parked in the magazine");
            Thread t = new Thread(() -> alloc.directBuffer(100).release(), "short-lived-plain-thread");
            t.start();
            t.join(10_000);
            ArenaLifecycleEdgesTest.awaitArenaReaped(alloc, t.getName());
            assertTrue(shared.cachedPageCount() > 0, "reaping one ended thread's arena drained every magazine ("
                    + shared.cachedPageCount() + " pages left parked; " + parkedByMe + " before): " + shared.stats());
        } finally {
            alloc.close();
            shared.close();
        }
    }

    /**
     * The shutdown a user writes for a plain thread pool: shutdown(), awaitTermination(), close().
     * awaitTermination() may return while a worker thread is still alive for a moment, and close()
     * refused in about half the runs, naming the worker; it now waits for such threads to end.
     */
    @Test
    void closeRightAfterAnExecutorTerminatesSucceeds() throws Exception {
        for (int round = 0; round < 30; round++) {
            PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(4L * MIB).build();
            java.util.concurrent.ExecutorService workers = java.util.concurrent.Executors.newFixedThreadPool(2);
            for (int i = 0; i < 4; i++) {
                workers.submit(() -> alloc.directBuffer(1024).release()).get(10, TimeUnit.SECONDS);
            }
            workers.shutdown();
            assertTrue(workers.awaitTermination(10, TimeUnit.SECONDS));
            alloc.close(); // threw "threads [pool-..] still own arenas" when a worker had not quite ended
            assertTrue(alloc.isClosed());
        }
    }

    /** A thread that lives on still stops close(), after the grace period, naming it; nothing is closed. */
    @Test
    void closeStillRefusesWhileAnotherThreadThatOwnsAnArenaLives() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(4L * MIB).build();
        CountDownLatch allocated = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        Thread owner = new Thread(() -> {
            alloc.directBuffer(100).release();
            allocated.countDown();
            PagePoolByteBufAllocatorTest.await(done);
        }, "lives-on");
        owner.start();
        try {
            assertTrue(allocated.await(10, TimeUnit.SECONDS));
            assertTrue(alloc.metric().arenas().stream().anyMatch(a -> a.threadName().equals("lives-on") && a.threadAlive()),
                    () -> "the metric shows the live owner: " + alloc.metric());
            IllegalStateException e = assertThrows(IllegalStateException.class, alloc::close);
            assertTrue(e.getMessage().contains("lives-on"), e::getMessage);
            assertTrue(!alloc.isClosed(), "nothing closed");
        } finally {
            done.countDown();
            owner.join(10_000);
        }
        alloc.close();
    }

    // ------------------------------------------------------------------ builder and DEFAULT

    /**
     * Each arena's page pool makes an {@code int[poolCacheSize]} when its thread first allocates, so
     * {@code build()} bounds it by MAX_CACHE_SIZE, as the other per-arena array sizes: a value too
     * large would pass {@code build()} and fail every thread's first buffer with an OutOfMemoryError.
     */
    @Test
    void aPoolCacheSizeTooLargeForAnArrayIsRefusedByBuild() {
        PagePoolByteBufAllocator built = null;
        try {
            built = PagePoolByteBufAllocator.builder().capacity(MIB).poolCacheSize(Integer.MAX_VALUE).build();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("poolCacheSize"), e::getMessage);
            return;
        }
        String later;
        try {
            built.directBuffer(100).release();
            later = "nothing";
        } catch (OutOfMemoryError e) { // JUnit aborts the run on an OutOfMemoryError: report it instead
            later = e.toString();
        } finally {
            built.close();
        }
        fail("build() accepted poolCacheSize " + Integer.MAX_VALUE + "; the first allocation then threw " + later);
    }

    /**
     * {@code maxFragmentSize} is "a power of two from 64 to half a page": -1 is refused like 0, -2
     * or 100, not taken as "unset".
     */
    @Test
    void maxFragmentSizeMinusOneIsRefusedLikeEveryOtherNegative() {
        assertThrows(IllegalArgumentException.class,
                () -> PagePoolByteBufAllocator.builder().capacity(MIB).maxFragmentSize(-2).build().close());
        PagePoolByteBufAllocator built = null;
        try {
            built = PagePoolByteBufAllocator.builder().capacity(MIB).maxFragmentSize(-1).build();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("maxFragmentSize"), e::getMessage);
            return;
        }
        int got = built.maxFragmentSize();
        built.close();
        fail("maxFragmentSize(-1) was accepted (the allocator uses " + got + ")");
    }

    /**
     * DEFAULT is built in the class's static initializer from {@code -Dio.pagepool.netty.capacity}.
     * A value it cannot parse (here "256MB": the docs allow k, m, g) is logged and replaced by 256m;
     * were it thrown, the whole class, {@code builder()} included, would be unusable for users who
     * never touch DEFAULT. The class is loaded afresh in its own class loader to see this.
     */
    @Test
    void aBadDefaultCapacityPropertyDoesNotBreakTheBuilder() throws Exception {
        String key = "io.pagepool.netty.capacity";
        String old = System.getProperty(key);
        System.setProperty(key, "256MB");
        try {
            ClassLoader fresh = new ChildFirstLoader(getClass().getClassLoader(), "io.pagepool.netty.");
            Class<?> cls = Class.forName(PagePoolByteBufAllocator.class.getName(), false, fresh);
            Object builder;
            try {
                builder = cls.getMethod("builder").invoke(null);
            } catch (InvocationTargetException e) {
                throw new AssertionError("with " + key + "=256MB, PagePoolByteBufAllocator.builder() threw "
                        + e.getCause(), e.getCause());
            } catch (ExceptionInInitializerError e) {
                throw new AssertionError("with " + key + "=256MB, PagePoolByteBufAllocator.builder() threw " + e
                        + " caused by " + e.getCause(), e);
            }
            Object built = builder.getClass().getMethod("capacity", long.class).invoke(builder, (long) MIB);
            Object alloc = built.getClass().getMethod("build").invoke(built);
            alloc.getClass().getMethod("close").invoke(alloc);
        } finally {
            if (old == null) {
                System.clearProperty(key);
            } else {
                System.setProperty(key, old);
            }
        }
    }

    /** Defines the classes of one package itself (so their static initializers run again); delegates the rest. */
    static final class ChildFirstLoader extends ClassLoader {
        private final String prefix;

        ChildFirstLoader(ClassLoader parent, String prefix) {
            super(parent);
            this.prefix = prefix;
        }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            synchronized (getClassLoadingLock(name)) {
                Class<?> c = findLoadedClass(name);
                if (c == null && name.startsWith(prefix)) {
                    try (InputStream in = getParent().getResourceAsStream(name.replace('.', '/') + ".class")) {
                        if (in != null) {
                            byte[] bytes = in.readAllBytes();
                            c = defineClass(name, bytes, 0, bytes.length);
                        }
                    } catch (IOException e) {
                        throw new ClassNotFoundException(name, e);
                    }
                }
                if (c == null) {
                    c = getParent().loadClass(name);
                }
                if (resolve) {
                    resolveClass(c);
                }
                return c;
            }
        }
    }
}
