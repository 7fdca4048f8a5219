package io.pagepool.core;

import static io.pagepool.core.AllocatorTesting.assertEverythingFreeAndMerged;
import static io.pagepool.core.AllocatorTesting.small;
import static io.pagepool.core.AllocatorTesting.verifyPattern;
import static io.pagepool.core.AllocatorTesting.writePattern;
import static io.pagepool.core.PageAllocator.NO_PAGE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Queue;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Multi-threaded use of the allocator with real threads, bounded by a deadline rather than an
 * iteration count. Invariants are checked during the run (no pfn held by two owners at once, page
 * contents intact until freed) and after it (exact accounting, {@link PageAllocator#checkConsistency()},
 * free lists merged back). No test asserts a duration; the only sleep is the bounded polling for
 * the ended-thread reaper.
 */
class PageAllocatorConcurrencyTest {

    private static final long STRESS_NANOS = TimeUnit.MILLISECONDS.toNanos(2_000);
    private static final long JOIN_MILLIS = 30_000;

    /** A block some thread holds: its pages are owned by {@code token} in {@link Owners}. */
    static final class Block {
        final int pfn;
        final int order;
        final int token;
        final Thread allocatedBy;

        Block(int pfn, int order, int token, Thread allocatedBy) {
            this.pfn = pfn;
            this.order = order;
            this.token = token;
            this.allocatedBy = allocatedBy;
        }
    }

    /**
     * Who holds each pfn, shared by all threads. Taking a page that someone else holds is recorded
     * as a violation: the allocator handed it out twice.
     */
    static final class Owners {
        final PageAllocator a;
        final AtomicIntegerArray owner;
        final AtomicInteger tokens = new AtomicInteger();
        final Queue<String> violations = new ConcurrentLinkedQueue<>();
        final LongAdder allocatedBlocks = new LongAdder();
        final LongAdder crossThreadFrees = new LongAdder();

        Owners(PageAllocator a) {
            this.a = a;
            this.owner = new AtomicIntegerArray(a.totalPages());
        }

        Block claim(int pfn, int order) {
            int token = tokens.incrementAndGet();
            for (int p = pfn; p < pfn + (1 << order); p++) {
                if (!owner.compareAndSet(p, 0, token)) {
                    violations.add("pfn " + p + " was handed to allocation #" + token + " (order-" + order
                            + " block at " + pfn + ") while allocation #" + owner.get(p) + " held it");
                }
            }
            writePattern(a, pfn, order, token);
            allocatedBlocks.increment();
            return new Block(pfn, order, token, Thread.currentThread());
        }

        /** Gives up ownership before the block is freed (after the free, another thread may take it at once). */
        void release(Block b) {
            verifyPattern(a, b.pfn, b.order, b.token);
            for (int p = b.pfn; p < b.pfn + (1 << b.order); p++) {
                if (!owner.compareAndSet(p, b.token, 0)) {
                    violations.add("pfn " + p + " should be held by allocation #" + b.token + " but is held by #"
                            + owner.get(p));
                }
            }
            if (b.allocatedBy != Thread.currentThread()) {
                crossThreadFrees.increment();
            }
        }

        void free(Block b) {
            release(b);
            a.freePages(b.pfn, b.order);
        }

        /** Splits a held block into order-0 blocks with the same token. */
        List<Block> split(Block b) {
            a.splitPage(b.pfn, b.order);
            List<Block> pages = new ArrayList<>(1 << b.order);
            for (int p = b.pfn; p < b.pfn + (1 << b.order); p++) {
                pages.add(new Block(p, 0, b.token, b.allocatedBy));
            }
            return pages;
        }

        void assertNothingHeld() {
            for (int p = 0; p < owner.length(); p++) {
                assertEquals(0, owner.get(p), "pfn " + p + " still marked as held");
            }
        }
    }

    /** Everything a stress run shares. */
    static final class Run {
        final PageAllocator a;
        final Owners owners;
        final long deadline;
        final Queue<Block> handoff = new ConcurrentLinkedQueue<>();
        final Queue<Throwable> errors = new ConcurrentLinkedQueue<>();
        final LongAdder exhaustion = new LongAdder();
        final LongAdder endedThreads = new LongAdder();

        Run(PageAllocator a, long deadline) {
            this.a = a;
            this.owners = new Owners(a);
            this.deadline = deadline;
        }

        boolean going() {
            return System.nanoTime() < deadline && errors.isEmpty() && owners.violations.isEmpty();
        }
    }

    /** A long-lived thread allocating, freeing, splitting and exchanging pages until the deadline. */
    static final class Worker implements Runnable {
        private final Run run;
        private final PageAllocator a;
        private final SplittableRandom random;
        private final List<Block> mine = new ArrayList<>();
        private final int cap;
        private long heldPages;

        Worker(Run run, long seed) {
            this.run = run;
            this.a = run.a;
            this.random = new SplittableRandom(seed);
            this.cap = a.totalPages() / 8;
        }

        @Override
        public void run() {
            try {
                while (run.going()) {
                    step();
                }
            } catch (Throwable t) {
                run.errors.add(t);
            } finally {
                run.handoff.addAll(mine); // leftovers are freed by the test thread
            }
        }

        private void step() {
            if (heldPages > cap) {
                freeSome(mine.size() / 2);
                return;
            }
            int r = random.nextInt(100);
            if (r < 25) {
                int order = random.nextInt(10) < 8 ? random.nextInt(4) : 4 + random.nextInt(a.maxOrder() - 3);
                int pfn = a.allocPages(order);
                if (pfn == NO_PAGE) {
                    exhausted();
                } else {
                    keep(run.owners.claim(pfn, order));
                }
            } else if (r < 40) {
                int[] pages = new int[1 + random.nextInt(64)];
                Arrays.fill(pages, NO_PAGE);
                int n = a.allocPagesBulk(pages.length, pages);
                int seen = 0;
                for (int p : pages) {
                    if (p != NO_PAGE) {
                        keep(run.owners.claim(p, 0));
                        seen++;
                    }
                }
                assertEquals(n, seen, "allocPagesBulk's count matches the filled slots");
                if (n < pages.length) {
                    exhausted();
                }
            } else if (r < 55) {
                freeSome(1 + random.nextInt(4));
            } else if (r < 63) {
                bulkFreeSome();
            } else if (r < 73) {
                for (int i = 1 + random.nextInt(8); i > 0 && !mine.isEmpty(); i--) {
                    run.handoff.add(take(random.nextInt(mine.size())));
                }
            } else if (r < 88) {
                for (int i = 1 + random.nextInt(16); i > 0; i--) {
                    Block b = run.handoff.poll();
                    if (b == null) {
                        break;
                    }
                    run.owners.free(b);
                }
            } else if (r < 98) {
                splitAndFree();
            } else {
                a.drainCpuCaches();
            }
        }

        private void splitAndFree() {
            int order = 1 + random.nextInt(5);
            int pfn = a.allocPages(order);
            if (pfn == NO_PAGE) {
                exhausted();
                return;
            }
            List<Block> pages = run.owners.split(run.owners.claim(pfn, order));
            int size = pages.size();
            int from = random.nextInt(size);
            int to = from + 1 + random.nextInt(size - from);
            for (int i = from; i < to; i++) {
                run.owners.release(pages.get(i));
            }
            a.freeContigRange(pfn + from, to - from);
            for (int i = 0; i < size; i++) {
                if (i < from || i >= to) {
                    if (random.nextBoolean()) {
                        run.handoff.add(pages.get(i));
                    } else {
                        keep(pages.get(i));
                    }
                }
            }
        }

        private void bulkFreeSome() {
            int[] pfns = new int[64];
            int n = 0;
            for (int i = mine.size() - 1; i >= 0 && n < pfns.length; i--) {
                if (mine.get(i).order == 0 && random.nextBoolean()) {
                    Block b = take(i);
                    run.owners.release(b);
                    pfns[n++] = b.pfn;
                }
            }
            a.freePagesBulk(pfns, n);
        }

        private void exhausted() {
            run.exhaustion.increment();
            freeSome(mine.size() / 2);
        }

        private void freeSome(int count) {
            for (int i = 0; i < count && !mine.isEmpty(); i++) {
                run.owners.free(take(random.nextInt(mine.size())));
            }
        }

        private void keep(Block b) {
            mine.add(b);
            heldPages += 1 << b.order;
        }

        private Block take(int index) {
            Block last = mine.remove(mine.size() - 1);
            Block b = index == mine.size() ? last : mine.set(index, last);
            heldPages -= 1 << b.order;
            return b;
        }
    }

    /**
     * Starts short-lived threads one after another until the deadline; each allocates, parks pages
     * in its own cache by freeing them, hands some pages to the others, and ends.
     */
    static Runnable spawner(Run run) {
        return () -> {
            long seed = 1;
            try {
                while (run.going()) {
                    SplittableRandom random = new SplittableRandom(seed++);
                    Thread t = new Thread(() -> shortLived(run, random), "short-lived-" + seed);
                    t.start();
                    t.join(JOIN_MILLIS);
                    if (t.isAlive()) {
                        run.errors.add(new AssertionError("short-lived thread did not end"));
                        return;
                    }
                    run.endedThreads.increment();
                }
            } catch (Throwable t) {
                run.errors.add(t);
            }
        };
    }

    private static void shortLived(Run run, SplittableRandom random) {
        PageAllocator a = run.a;
        List<Block> mine = new ArrayList<>();
        try {
            for (int i = random.nextInt(16); i > 0; i--) {
                int order = random.nextInt(4);
                int pfn = a.allocPages(order);
                if (pfn != NO_PAGE) {
                    mine.add(run.owners.claim(pfn, order));
                }
            }
            int[] pages = new int[1 + random.nextInt(32)];
            Arrays.fill(pages, NO_PAGE);
            a.allocPagesBulk(pages.length, pages);
            for (int p : pages) {
                if (p != NO_PAGE) {
                    mine.add(run.owners.claim(p, 0));
                }
            }
            // Free about half (these park in this thread's cache), hand the rest to the workers.
            List<Block> kept = new ArrayList<>();
            for (Block b : mine) {
                if (random.nextBoolean()) {
                    run.owners.free(b);
                } else {
                    kept.add(b);
                }
            }
            mine = kept;
        } catch (Throwable t) {
            run.errors.add(t);
        } finally {
            run.handoff.addAll(mine);
        }
    }

    private static PageAllocator stressAllocator(CpuCacheMode mode) {
        return PageAllocator.builder().capacity(2048L * AllocatorTesting.PAGE).maxOrder(6)
                .pcpBatch(8).pcpHigh(32).magazines(4).cpuCacheMode(mode).build();
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void threadsExchangingPagesNeverShareAPageAndLoseNone(CpuCacheMode mode) throws Exception {
        try (PageAllocator a = stressAllocator(mode)) {
            Run run = new Run(a, System.nanoTime() + STRESS_NANOS);
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                threads.add(new Thread(new Worker(run, 1000 + i), "stress-worker-" + i));
            }
            threads.add(new Thread(spawner(run), "stress-spawner"));
            threads.forEach(Thread::start);
            for (Thread t : threads) {
                t.join(JOIN_MILLIS);
                assertFalse(t.isAlive(), t.getName() + " did not stop after the deadline");
            }
            assertNoPageHeldTwice(run.owners, run.errors);
            rethrowFirst(run.errors);

            for (Block b; (b = run.handoff.poll()) != null; ) {
                run.owners.free(b);
            }
            assertTrue(run.owners.violations.isEmpty(), () -> String.join("; ", run.owners.violations));
            run.owners.assertNothingHeld();
            assertEverythingFreeAndMerged(a); // exact accounting, consistency, merged free lists

            assertTrue(run.owners.allocatedBlocks.sum() > 100, "the run did real work");
            assertTrue(run.owners.crossThreadFrees.sum() > 0, "some pages were freed by another thread");
            assertTrue(run.endedThreads.sum() > 0, "some threads used the allocator and ended");
        }
    }

    @Test
    void pagesParkedByAThreadThatEndedComeBackWithoutAnyCall() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.PER_THREAD).preTouch(true).build()) {
            AtomicLong parked = new AtomicLong();
            Thread t = new Thread(() -> {
                int[] pages = new int[20];
                Arrays.fill(pages, NO_PAGE);
                a.allocPagesBulk(20, pages);
                a.freePagesBulk(pages, 20);
                parked.set(a.cachedPageCount());
            }, "parks-then-ends");
            t.start();
            t.join(JOIN_MILLIS);
            assertFalse(t.isAlive());
            assertTrue(parked.get() > 0, "precondition: the thread ended with pages parked in its cache");

            // From here on only read-only queries, which never reclaim anything themselves.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while ((a.cachedPageCount() != 0 || a.stats().threadCachesReaped() == 0) && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertEquals(0, a.cachedPageCount(), "the ended thread's parked pages came back (waited up to 10 s)");
            PageAllocatorStats s = a.stats();
            assertEquals(1, s.threadCachesReaped());
            assertEquals(0, s.cpuPageSets(), "the ended thread's cache is gone");
            assertEquals(a.totalPages(), s.buddyFreePages(), "its pages are back on the buddy lists");
            assertEquals(a.totalPages() >> a.maxOrder(), s.freeBlocks(a.maxOrder()), "and merged");
            a.checkConsistency();
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void allocationOnAnExhaustedAllocatorReclaimsPagesParkedElsewhereFirst(CpuCacheMode mode) throws Exception {
        try (PageAllocator a = small(mode).capacity(256L * AllocatorTesting.PAGE).preTouch(true).build()) {
            int total = a.totalPages();
            a.freePages(a.allocPages(0), 0); // this thread is set up before the others end

            // Order-0 pages through the cache path.
            parkPagesInThreadsThatEnd(a, mode);
            List<Integer> singles = new ArrayList<>();
            for (int p; (p = a.allocPages(0)) != NO_PAGE; ) {
                singles.add(p);
            }
            assertEquals(total, singles.size(), "every page, parked ones included, before NO_PAGE");
            a.freePagesBulk(singles.stream().mapToInt(Integer::intValue).toArray(), total);

            // Max-order blocks through the zone path: parked pages must be reclaimed and merged.
            parkPagesInThreadsThatEnd(a, mode);
            List<Integer> blocks = new ArrayList<>();
            for (int p; (p = a.allocPages(a.maxOrder())) != NO_PAGE; ) {
                blocks.add(p);
            }
            assertEquals(total >> a.maxOrder(), blocks.size(), "every max-order block before NO_PAGE");
            for (int p : blocks) {
                a.freePages(p, a.maxOrder());
            }

            // One bulk call for everything.
            parkPagesInThreadsThatEnd(a, mode);
            int[] all = new int[total];
            Arrays.fill(all, NO_PAGE);
            assertEquals(total, a.allocPagesBulk(total, all), "a bulk call reaches the parked pages too");
            a.freePagesBulk(all, total);
            assertEverythingFreeAndMerged(a);
        }
    }

    /**
     * Runs eight threads at once; each takes 12 pages and frees them, leaving them parked in its
     * own cache (PER_THREAD) or in a magazine (MAGAZINE), waits until all have done so (a thread
     * that registers reaps the caches of threads that already ended), then ends.
     */
    private static void parkPagesInThreadsThatEnd(PageAllocator a, CpuCacheMode mode) throws InterruptedException {
        int parkers = 8;
        CountDownLatch allParked = new CountDownLatch(parkers);
        Queue<Throwable> errors = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < parkers; i++) {
            threads.add(new Thread(() -> {
                try {
                    int[] pages = new int[12];
                    Arrays.fill(pages, NO_PAGE);
                    int n = a.allocPagesBulk(pages.length, pages);
                    for (int k = 0; k < n; k++) {
                        a.freePages(pages[k], 0);
                    }
                } catch (Throwable t) {
                    errors.add(t);
                } finally {
                    allParked.countDown();
                }
                try {
                    allParked.await(JOIN_MILLIS, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "parker-" + i));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join(JOIN_MILLIS);
            assertFalse(t.isAlive());
        }
        assertTrue(errors.isEmpty(), () -> errors.toString());
        long limitOfOneSet = a.pcpHigh() + a.pcpBatch();
        if (mode == CpuCacheMode.MAGAZINE) {
            assertTrue(a.cachedPageCount() > limitOfOneSet,
                    "precondition: more pages parked than one magazine holds, so other magazines than this thread's hold some");
        } else if (mode == CpuCacheMode.PER_THREAD) {
            // The reaper daemon may (rarely) have returned them already; then there is nothing to show.
            assumeTrue(a.cachedPageCount() > limitOfOneSet, "precondition: ended threads' caches hold pages");
        }
    }

    /**
     * drainCallingThreadCache() empties the calling thread's own set and nothing else: another live
     * thread's parked pages stay where they are, and a thread that has no set gets none.
     */
    @Test
    void drainCallingThreadCacheTouchesOnlyTheCallersOwnSet() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.PER_THREAD).build()) {
            CountDownLatch parked = new CountDownLatch(1);
            CountDownLatch done = new CountDownLatch(1);
            Thread other = new Thread(() -> {
                a.freePages(a.allocPages(0), 0);
                parked.countDown();
                try {
                    done.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "parks-and-waits");
            other.start();
            try {
                assertTrue(parked.await(JOIN_MILLIS, TimeUnit.MILLISECONDS));
                long othersParked = a.cachedPageCount();
                assertTrue(othersParked > 0, "precondition: the other thread parks pages");
                Thread noSet = new Thread(a::drainCallingThreadCache, "has-no-set");
                noSet.start();
                noSet.join(JOIN_MILLIS);
                assertEquals(1, a.stats().cpuPageSets(), "a thread with no set got one");
                a.freePages(a.allocPages(0), 0);
                assertTrue(a.cachedPageCount() > othersParked, "precondition: this thread parks pages too");
                a.drainCallingThreadCache();
                assertEquals(othersParked, a.cachedPageCount(), "only this thread's own set is emptied");
            } finally {
                done.countDown();
                other.join(JOIN_MILLIS);
            }
        }
    }

    /** Reaping an ended thread's empty cache moves no page, and is not counted as a drain (as drainCpuCaches() is not). */
    @Test
    void reapingAnEmptyCacheIsNotCountedAsADrain() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.PER_THREAD).build()) {
            AtomicLong drainsWhenItEnded = new AtomicLong();
            Thread t = new Thread(() -> {
                a.freePages(a.allocPages(0), 0);
                a.drainCpuCaches(); // its set is empty from here on
                drainsWhenItEnded.set(a.stats().cpuCacheDrains());
            }, "empties-then-ends");
            t.start();
            t.join(JOIN_MILLIS);
            assertFalse(t.isAlive());
            a.drainCpuCaches(); // reaps the ended thread's set, unless the reaper daemon already did
            PageAllocatorStats s = a.stats();
            assertEquals(1, s.threadCachesReaped());
            assertEquals(drainsWhenItEnded.get(), s.cpuCacheDrains(), () -> "an empty set counted as drained: " + s);
        }
    }

    /**
     * Reaping an ended thread's cache moves its pages and its counters to the zone. Reaped while
     * {@code stats()} or {@code checkConsistency()} runs, between their reading the caches and their
     * reading the zone, the pages would be counted twice (allocated pages below zero, frees above
     * allocations) or found in neither place. Only reaping runs here, so both must be exact throughout.
     */
    @Test
    void statsAndConsistencyStayExactWhileEndedThreadsAreReaped() throws Exception {
        try (PageAllocator a = small(CpuCacheMode.PER_THREAD).preTouch(true).build()) {
            for (int round = 0; round < 300; round++) {
                for (int i = 0; i < 4; i++) { // every page free, some parked in the caches of threads that ended
                    Thread parker = new Thread(() -> {
                        for (int k = 0; k < 12; k++) {
                            a.freePages(a.allocPages(0), 0);
                        }
                    }, "parks-then-ends");
                    parker.start();
                    parker.join(JOIN_MILLIS);
                }
                Thread reaper = new Thread(a::drainCpuCaches, "reaps-on-register"); // its set is empty: only reaps
                reaper.start();
                int checks = 0;
                do {
                    PageAllocatorStats s = a.stats();
                    assertEquals(0, s.allocatedPages(), () -> "pages counted twice or lost: " + s);
                    assertEquals(s.allocs(), s.frees(), () -> "counters counted twice or lost: " + s);
                    assertEquals(a.totalPages(), a.freePageCount(), "free pages counted twice or lost");
                    a.checkConsistency();
                    checks++;
                } while (reaper.isAlive() || checks < 2);
                reaper.join(JOIN_MILLIS);
            }
            assertTrue(a.stats().threadCachesReaped() > 0, "threads' caches were reaped during the run");
        }
    }

    @ParameterizedTest
    @EnumSource(CpuCacheMode.class)
    void manyVirtualThreadsAllocateAndFreeWithoutParkingPages(CpuCacheMode mode) throws Exception {
        assumeTrue(Runtime.version().feature() >= 21, "virtual threads need JDK 21+");
        Method isVirtual = Thread.class.getMethod("isVirtual");
        ExecutorService virtualThreads = (ExecutorService) Executors.class
                .getMethod("newVirtualThreadPerTaskExecutor").invoke(null);
        try (PageAllocator a = small(mode).build()) {
            Owners owners = new Owners(a);
            int setsBefore = a.stats().cpuPageSets();
            AtomicInteger ranVirtual = new AtomicInteger();
            List<Future<?>> tasks = new ArrayList<>();
            int count = 2000;
            for (int i = 0; i < count; i++) {
                int order = i % 4;
                tasks.add(virtualThreads.submit(() -> {
                    if ((boolean) isVirtual.invoke(Thread.currentThread())) {
                        ranVirtual.incrementAndGet();
                    }
                    int pfn = a.allocPages(order);
                    if (pfn != NO_PAGE) {
                        Block b = owners.claim(pfn, order);
                        Thread.yield(); // let other virtual threads run while this one holds the block
                        owners.free(b);
                    }
                    int[] pages = {NO_PAGE, NO_PAGE, NO_PAGE, NO_PAGE};
                    int n = a.allocPagesBulk(4, pages);
                    List<Block> bulk = new ArrayList<>();
                    for (int p : pages) {
                        if (p != NO_PAGE) {
                            bulk.add(owners.claim(p, 0));
                        }
                    }
                    assertEquals(n, bulk.size());
                    int[] pfns = new int[bulk.size()];
                    for (int k = 0; k < pfns.length; k++) {
                        owners.release(bulk.get(k));
                        pfns[k] = bulk.get(k).pfn;
                    }
                    a.freePagesBulk(pfns, pfns.length);
                    return null;
                }));
            }
            virtualThreads.shutdown();
            assertTrue(virtualThreads.awaitTermination(60, TimeUnit.SECONDS), "virtual threads finished");
            for (Future<?> f : tasks) {
                f.get(); // rethrows a task's failure
            }
            assertEquals(count, ranVirtual.get(), "every task ran on a virtual thread");
            assertTrue(owners.violations.isEmpty(), () -> String.join("; ", owners.violations));
            owners.assertNothingHeld();
            assertEquals(a.totalPages(), a.freePageCount());
            switch (mode) {
                case PER_THREAD:
                    assertEquals(0, a.cachedPageCount(), "virtual threads bypass per-thread caches: nothing parked");
                    assertEquals(setsBefore, a.stats().cpuPageSets(), "no per-thread cache was created for them");
                    break;
                case MAGAZINE:
                    assertTrue(a.cachedPageCount() <= a.stats().cpuPageSets() * (long) (a.pcpHigh() + a.pcpBatch()),
                            "magazines bound what is parked");
                    break;
                default:
                    assertEquals(0, a.cachedPageCount());
                    break;
            }
            assertEverythingFreeAndMerged(a);
        } finally {
            virtualThreads.shutdownNow();
        }
    }

    /** Fails, with any worker errors attached, if some pfn was held by two owners at once. */
    private static void assertNoPageHeldTwice(Owners owners, Queue<Throwable> errors) {
        if (owners.violations.isEmpty()) {
            return;
        }
        StringBuilder b = new StringBuilder("pages held by two owners at once (" + owners.violations.size() + "): ");
        owners.violations.stream().limit(10).forEach(v -> b.append(v).append("; "));
        AssertionError failure = new AssertionError(b.toString());
        errors.forEach(failure::addSuppressed);
        throw failure;
    }

    private static void rethrowFirst(Queue<Throwable> errors) throws Exception {
        Throwable first = errors.poll();
        if (first == null) {
            return;
        }
        for (Throwable other; (other = errors.poll()) != null; ) {
            first.addSuppressed(other);
        }
        if (first instanceof Exception) {
            throw (Exception) first;
        }
        if (first instanceof Error) {
            throw (Error) first;
        }
        fail(first);
    }
}
