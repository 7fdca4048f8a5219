package io.pagepool.netty;

import static io.pagepool.netty.PagePoolByteBufContractTest.raw;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.DefaultEventLoop;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.internal.ThreadExecutorMap;
import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link PagePoolByteBufAllocator} as a whole: sizes, reuse, isolation of live buffers, the heap
 * delegate, the builder, exhaustion and the fallback policy, metrics, and the close protocol.
 * Each case builds its own allocator and closes it at the end: a close that succeeds proves that
 * every page went back to the page allocator.
 */
class PagePoolByteBufAllocatorTest {

    static final int MIB = 1 << 20;
    static final byte[] CONTENT = ByteBufContractTest.CONTENT;

    @BeforeAll
    static void installLeakCapture() {
        LeakCapture.install();
    }

    @AfterAll
    static void noLeaks() {
        LeakCapture.assertNoLeaks();
    }

    static PagePoolByteBufAllocator newAllocator() {
        return PagePoolByteBufAllocator.builder().capacity(64L * MIB).build();
    }

    static void fill(ByteBuf buf, int seed) {
        buf.setBytes(0, CONTENT, seed & 4095, buf.capacity());
    }

    static void verify(ByteBuf buf, int seed) {
        byte[] got = new byte[buf.capacity()];
        buf.getBytes(0, got);
        int mismatch = Arrays.mismatch(got, 0, got.length, CONTENT, seed & 4095, (seed & 4095) + got.length);
        if (mismatch >= 0) {
            fail("buffer " + seed + " (" + buf + ") was overwritten at byte " + mismatch);
        }
    }

    // ------------------------------------------------------------------ sizes

    @Test
    void capacityIsTheRequestedInitialCapacityForEverySize() {
        PagePoolByteBufAllocator alloc = newAllocator();
        int[] sizes = {0, 1, 63, 64, 65, 127, 128, 1000, 1500, 2047, 2048, 2049, 3000, 4095, 4096, 4097, 8191, 8192,
            8193, 16384, 16385, 32768, 32769, 65536, 100_000, MIB, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 6 * MIB};
        for (int size : sizes) {
            ByteBuf buf = alloc.directBuffer(size);
            assertEquals(size, buf.capacity(), () -> "directBuffer(" + size + ")");
            assertEquals(Integer.MAX_VALUE, buf.maxCapacity());
            assertTrue(buf.isDirect());
            assertSame(alloc, buf.alloc());
            buf.release();
            ByteBuf bounded = alloc.directBuffer(size, size + 7);
            assertEquals(size, bounded.capacity());
            assertEquals(size + 7, bounded.maxCapacity());
            bounded.release();
            ByteBuf io = alloc.ioBuffer(size);
            assertEquals(size, io.capacity());
            assertTrue(io.isDirect(), "ioBuffer is direct");
            io.release();
            ByteBuf plain = alloc.buffer(size);
            assertTrue(plain.isDirect(), "buffer() prefers direct");
            assertEquals(size, plain.capacity());
            plain.release();
        }
        ByteBuf dflt = alloc.directBuffer();
        assertEquals(256, dflt.capacity(), "Netty's default initial capacity");
        dflt.release();
        CompositeByteBuf composite = alloc.compositeDirectBuffer();
        composite.addComponent(true, alloc.directBuffer(10).writeBytes(CONTENT, 0, 10));
        assertEquals(10, composite.readableBytes());
        composite.release();
        assertThrows(IllegalArgumentException.class, () -> alloc.directBuffer(-1));
        assertThrows(IllegalArgumentException.class, () -> alloc.directBuffer(10, 5));
        alloc.close();
    }

    @Test
    void liveBuffersOfMixedSizesNeverShareMemory() {
        PagePoolByteBufAllocator alloc = newAllocator();
        Random random = new Random(7);
        int[] sizes = {16, 64, 100, 256, 700, 1024, 1500, 2048, 2049, 4000, 4096, 5000, 8192, 12_000, 16384, 40_000,
            70_000, 300_000};
        Map<Integer, ByteBuf> live = new java.util.HashMap<>();
        int next = 0;
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < 1500; i++) {
                int size = sizes[Math.min(sizes.length - 1, (int) Math.abs(random.nextGaussian() * 6))];
                ByteBuf buf = alloc.directBuffer(size);
                fill(buf, next);
                live.put(next++, buf);
            }
            assertNoOverlap(live.values());
            for (Map.Entry<Integer, ByteBuf> e : live.entrySet()) {
                verify(e.getValue(), e.getKey());
            }
            // release a random half, then allocate again into the holes
            List<Integer> ids = new ArrayList<>(live.keySet());
            Collections.shuffle(ids, random);
            for (int id : ids.subList(0, ids.size() / 2)) {
                assertTrue(live.remove(id).release());
            }
        }
        for (Map.Entry<Integer, ByteBuf> e : live.entrySet()) {
            verify(e.getValue(), e.getKey());
            e.getValue().release();
        }
        alloc.pageAllocator().checkConsistency();
        alloc.close();
    }

    /** Sorts by native address and checks that no two live buffers' byte ranges intersect. */
    static void assertNoOverlap(Iterable<ByteBuf> buffers) {
        TreeMap<Long, ByteBuf> byAddress = new TreeMap<>();
        for (ByteBuf buf : buffers) {
            assertTrue(buf.hasMemoryAddress(), "OpenJDK 17-25 gives native addresses");
            ByteBuf previous = byAddress.put(buf.memoryAddress(), buf);
            assertTrue(previous == null || buf.capacity() == 0, () -> "two live buffers at one address: " + buf);
        }
        long end = 0;
        ByteBuf last = null;
        for (Map.Entry<Long, ByteBuf> e : byAddress.entrySet()) {
            if (e.getKey() < end) {
                fail("live buffers overlap: " + last + " and " + e.getValue());
            }
            end = e.getKey() + e.getValue().capacity();
            last = e.getValue();
        }
    }

    // ------------------------------------------------------------------ reuse

    /**
     * An arena parks objects by id, and has one id per place it can park one (here the hot slot, 6
     * fragment classes, 4 page and block orders and the object stack, one place each: 12):
     * every object past that, and every fragment left behind when a buffer grows, must still find its
     * way back. Seeded bug that this catches: dropping the fragment when its spare holder object has no
     * id (the pages then stay allocated and close() refuses). Leak detection is off here: under it,
     * every buffer handed out gives its id back, and the table never fills.
     */
    @Test
    void moreLiveBuffersThanTheArenaCanParkLoseNothing() {
        ResourceLeakDetector.Level saved = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
        try {
            parkMoreThanTheArenaHasPlacesFor();
        } finally {
            ResourceLeakDetector.setLevel(saved);
        }
    }

    private static void parkMoreThanTheArenaHasPlacesFor() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L * MIB)
                .fragmentCacheSize(1).blockCacheSize(1).objectCacheSize(1).build();
        Random random = new Random(11);
        int[] sizes = {64, 100, 256, 700, 1500, 2048, 3000};
        for (int round = 0; round < 3; round++) {
            List<ByteBuf> live = new ArrayList<>();
            for (int i = 0; i < 400; i++) {
                ByteBuf buf = alloc.directBuffer(sizes[random.nextInt(sizes.length)]);
                fill(buf, i);
                live.add(buf);
            }
            for (int i = 0; i < live.size(); i += 2) {
                ByteBuf buf = live.get(i);
                buf.capacity(Math.min(buf.capacity() * 2 + 1, 5000)); // moves it, its old fragment goes back
                buf.setBytes(0, CONTENT, i & 4095, buf.capacity());
            }
            assertNoOverlap(live);
            for (int i = 0; i < live.size(); i++) {
                ByteBuf buf = live.get(i);
                verify(buf, i);
                assertTrue(buf.release());
            }
            PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().get(0);
            assertTrue(arena.pooledObjects() <= 12, () -> "more objects parked than the arena has places: " + arena);
        }
        alloc.pageAllocator().checkConsistency();
        alloc.close(); // throws if any page is still allocated
    }

    @Test
    void allocateReleaseLoopsReuseObjectsAndMemory() {
        PagePoolByteBufAllocator alloc = newAllocator();
        long baseline = alloc.metric().usedDirectMemory();
        for (int size : new int[] {64, 2048, 4096, 16384}) {
            ByteBuf first = alloc.directBuffer(size);
            PagePoolByteBuf firstObject = raw(first);
            long firstAddress = first.memoryAddress();
            first.release();
            ByteBuf again = alloc.directBuffer(size);
            assertSame(firstObject, raw(again), () -> size + ": the buffer object was not reused");
            assertEquals(firstAddress, again.memoryAddress(), () -> size + ": the memory was not reused");
            again.release();
            for (int i = 0; i < 25_000; i++) {
                ByteBuf buf = alloc.directBuffer(size);
                buf.setLong(0, i);
                buf.release();
            }
            long used = alloc.metric().usedDirectMemory() - baseline;
            assertTrue(used <= 2 * MIB, () -> size + ": usedDirectMemory grew by " + used + " over 25k allocate/release");
        }
        PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().get(0);
        assertEquals(Thread.currentThread().getName(), arena.threadName());
        assertTrue(arena.buffersAllocated() >= 100_000, arena::toString);
        assertTrue(arena.cacheHits() >= 99_000, () -> "every size should recycle through parked buffers: " + arena);
        assertEquals(2, arena.cachedFragments(), () -> "the 64-byte and 2 KiB buffers are parked: " + arena);
        assertEquals(2, arena.cachedBlocks(), () -> "the page and the 16 KiB block buffers are parked: " + arena);
        assertEquals(4, arena.pooledObjects(), () -> "one object per size was enough: " + arena);
        // Still out of the pool: the page being cut into fragments, and the page parked with its buffer.
        assertTrue(arena.poolStats().inflight() <= 3, arena::toString);
        List<PagePool> pools = pools(alloc);
        alloc.close();
        for (PagePool pool : pools) {
            assertEquals(0, pool.inflight(), pool::toString);
        }
    }

    /**
     * A page or block buffer released on another thread comes home bound to its memory: the owner's
     * next buffer of that order is the same object at the same address, and its bytes are what the
     * other thread left. Seeded bug that this catches: draining a queued page or block buffer back
     * into the pool instead of onto its class stack (object and memory still come back, through the
     * LIFO object stack and pool cache; the cache-hit count tells the two paths apart).
     */
    @Test
    void pageAndBlockBuffersReleasedElsewhereAreParkedWithTheirMemoryOnTheOwner() throws Exception {
        PagePoolByteBufAllocator alloc = newAllocator();
        int[] sizes = {4096, 8192, 16384, 32768};
        for (int size : sizes) {
            ByteBuf buf = alloc.directBuffer(size);
            PagePoolByteBuf object = raw(buf);
            long address = buf.memoryAddress();
            fill(buf, size);
            Thread releaser = new Thread(buf::release, "releases-" + size);
            releaser.start();
            releaser.join(10_000);
            ByteBuf again = alloc.directBuffer(size);
            assertSame(object, raw(again), () -> size + ": the owner did not get its buffer object back");
            assertEquals(address, again.memoryAddress(), () -> size + ": the memory did not come back with it");
            assertEquals(size, again.capacity());
            assertEquals(0, again.writerIndex(), () -> size + ": a reused buffer starts empty");
            verify(again, size);
            again.release();
        }
        PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().stream()
                .filter(a -> a.threadName().equals(Thread.currentThread().getName())).findFirst().orElseThrow();
        assertEquals(sizes.length, arena.cachedBlocks(), () -> "one buffer parked per order: " + arena);
        assertEquals(sizes.length, arena.cacheHits(), () -> "the second buffer of each order was a parked one: " + arena);
        alloc.close(); // throws if any page is still allocated: parked memory went back
    }

    /** With {@code blockCacheSize(0)} only the hot slot keeps a page or block buffer bound; the rest go back. */
    @Test
    void blockCacheSizeZeroReturnsPageAndBlockMemoryOnRelease() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L * MIB).blockCacheSize(0).build();
        List<ByteBuf> held = new ArrayList<>();
        for (int size : new int[] {4096, 4096, 16384, 16384, 32768}) {
            held.add(alloc.directBuffer(size));
        }
        for (ByteBuf buf : held) {
            buf.release();
        }
        PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().get(0);
        assertEquals(1, arena.cachedBlocks(), () -> "only the hot slot holds one: " + arena);
        assertTrue(arena.poolStats().inflight() <= 1, () -> "the pages are back in the pool: " + arena);
        alloc.close();
    }

    /**
     * A class stack holds exactly {@code fragmentCacheSize} buffers and hands out only its own: the
     * stacks share one array, and a pop or push that ran past its class's end would take or
     * overwrite a neighbour's.
     */
    @Test
    void aClassStackHoldsItsSizeAndServesOnlyItsClass() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L * MIB).fragmentCacheSize(4)
                .build();
        // Six 1 KiB buffers released: one into the hot slot, four onto the 1 KiB stack (full), one
        // fragment back to the pool. Six 2 KiB buffers are new ones (their first allocation moves the
        // hot 1 KiB buffer to its full stack, so its fragment goes back too); released: one into the
        // hot slot, four onto the 2 KiB stack (full), one fragment back.
        releaseAll(allocate(alloc, 1024, 6));
        releaseAll(allocate(alloc, 2048, 6));
        PagePoolByteBufAllocatorMetric.ArenaMetric parked = arena(alloc);
        assertEquals(1 + 4 + 4, parked.cachedFragments(), () -> "hot slot + two full stacks of 4: " + parked);
        long hits = parked.cacheHits();

        // Five 2 KiB buffers are parked ones (hot slot, then the stack); the sixth finds the stack
        // empty and must not take a 1 KiB buffer from the stack below it.
        List<ByteBuf> held = allocate(alloc, 2048, 6);
        PagePoolByteBufAllocatorMetric.ArenaMetric after = arena(alloc);
        assertEquals(hits + 5, after.cacheHits(), () -> "five parked 2 KiB buffers, then a new one: " + after);
        assertEquals(4, after.cachedFragments(), () -> "the 1 KiB buffers are still parked: " + after);
        for (int i = 0; i < held.size(); i++) {
            fill(held.get(i), i);
        }
        for (int i = 0; i < held.size(); i++) {
            assertEquals(2048, held.get(i).capacity());
            verify(held.get(i), i);
        }
        releaseAll(held);
        alloc.close(); // throws if a fragment was lost
    }

    /**
     * {@code trimCurrentThreadCache()} gives back everything the calling thread keeps for reuse
     * (parked fragments, pages and blocks, the pool's cached pages, its per-CPU page sets) and
     * nothing in use; a thread without an arena gets false, and no arena.
     */
    @Test
    void trimCurrentThreadCacheGivesBackWhatTheThreadKeepsAndNothingInUse() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L * MIB).build();
        assertFalse(alloc.trimCurrentThreadCache(), "this thread has no arena yet");
        assertTrue(alloc.metric().arenas().isEmpty(), "trimming must not make an arena");

        ByteBuf kept = alloc.directBuffer(2048);
        fill(kept, 7);
        releaseAll(allocate(alloc, 1024, 40));
        releaseAll(allocate(alloc, 4096, 20));
        releaseAll(allocate(alloc, 16384, 10));
        PagePoolByteBufAllocatorMetric.ArenaMetric before = arena(alloc);
        assertTrue(before.cachedFragments() > 0 && before.cachedBlocks() > 0, () -> "parked: " + before);
        long usedBefore = alloc.metric().usedDirectMemory();

        assertTrue(alloc.trimCurrentThreadCache());
        PagePoolByteBufAllocatorMetric.ArenaMetric after = arena(alloc);
        assertEquals(0, after.cachedFragments(), () -> "fragments given back: " + after);
        assertEquals(0, after.cachedBlocks(), () -> "pages and blocks given back: " + after);
        assertEquals(0, alloc.metric().pagesParkedInPools(), () -> "the pool's cache given back: " + after);
        long pageSize = alloc.pageAllocator().pageSize();
        long used = alloc.metric().usedDirectMemory();
        assertTrue(used <= 2 * pageSize && used < usedBefore,
                () -> "only the kept buffer's page (and the pool's current fragment page) stay in use: " + used
                        + " bytes of " + usedBefore + " before; " + alloc.metric());
        verify(kept, 7);

        List<ByteBuf> again = allocate(alloc, 1024, 40); // served afresh after the trim
        for (int i = 0; i < again.size(); i++) {
            fill(again.get(i), i);
        }
        for (int i = 0; i < again.size(); i++) {
            verify(again.get(i), i);
        }
        releaseAll(again);
        verify(kept, 7);
        kept.release();

        AtomicReference<Boolean> otherThread = new AtomicReference<>();
        Thread other = new Thread(() -> otherThread.set(alloc.trimCurrentThreadCache()), "no-arena");
        other.start();
        other.join(10_000);
        assertEquals(Boolean.FALSE, otherThread.get(), "a thread that never allocated has nothing to trim");
        assertEquals(1, alloc.metric().arenas().size(), "and still has no arena");
        alloc.close(); // throws if a page is still allocated
        assertFalse(alloc.trimCurrentThreadCache(), "a closed allocator has no arenas");
    }

    private static List<ByteBuf> allocate(PagePoolByteBufAllocator alloc, int size, int count) {
        List<ByteBuf> bufs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            bufs.add(alloc.directBuffer(size));
        }
        return bufs;
    }

    private static void releaseAll(List<ByteBuf> bufs) {
        bufs.forEach(ByteBuf::release);
    }

    private static PagePoolByteBufAllocatorMetric.ArenaMetric arena(PagePoolByteBufAllocator alloc) {
        return alloc.metric().arenas().stream().filter(a -> a.threadName().equals(Thread.currentThread().getName()))
                .findFirst().orElseThrow();
    }

    /**
     * Every block parked with a released buffer is given back when the page allocator runs dry: a
     * request of a higher order, which only the merged blocks can serve, succeeds under the FAIL policy.
     */
    @Test
    void blocksParkedAfterABurstAreGivenBackForALargerRequest() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB)
                .fallbackPolicy(FallbackPolicy.FAIL).build();
        allocateAllThenRelease(alloc, 32768, 32, "the burst took all memory");
        assertEquals(32, alloc.metric().arenas().get(0).cachedBlocks(), "every block is parked with its buffer");
        ByteBuf large;
        try {
            large = alloc.directBuffer(MIB);
        } catch (PagePoolOutOfMemoryError e) {
            throw new AssertionError("with every buffer released: " + e.getMessage());
        }
        fill(large, 7);
        verify(large, 7);
        large.release();
        alloc.pageAllocator().checkConsistency();
        alloc.close();
    }

    /**
     * Memory parked on one event loop is given back when another thread runs out: the request that
     * ran out takes the fallback, the parking loop runs a give-back task, and the next request is
     * served from the pool. Seeded bug that this catches: not asking the other arenas (the second
     * request then falls back too, for as long as the first loop stays idle).
     */
    @Test
    void anotherEventLoopGivesBackWhatItParkedWhenOneRunsOut() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB).build();
        DefaultEventLoop parker = new DefaultEventLoop();
        DefaultEventLoop needy = new DefaultEventLoop();
        try {
            String parkerName = parker.submit(() -> {
                allocateAllThenRelease(alloc, 32768, 32, "the burst took all memory");
                return Thread.currentThread().getName();
            }).get(10, TimeUnit.SECONDS);
            assertEquals(32, arenaOf(alloc, parkerName).cachedBlocks(), "the whole capacity is parked on one loop");

            ByteBuf first = needy.submit(() -> alloc.directBuffer(32768)).get(10, TimeUnit.SECONDS);
            assertEquals(1, alloc.metric().fallbackAllocations(), "the request that ran out takes the fallback");
            parker.submit(() -> { }).get(10, TimeUnit.SECONDS); // runs after the give-back task queued before it
            assertEquals(0, arenaOf(alloc, parkerName).cachedBlocks(), "the idle loop gave its blocks back");

            ByteBuf second = needy.submit(() -> alloc.directBuffer(32768)).get(10, TimeUnit.SECONDS);
            assertEquals(1, alloc.metric().fallbackAllocations(), "the next request is served from the pool");
            assertTrue(raw(second).pfn() >= 0, second::toString);
            fill(second, 3);
            verify(second, 3);
            first.release();
            second.release();
            assertEquals(0, alloc.metric().fallbackBytes());
        } finally {
            parker.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
            needy.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
        }
        alloc.close(); // throws if any page is still allocated
    }

    /** A plain thread (no event loop to run a task) gives back at its next allocation that misses its stacks. */
    @Test
    void aPlainThreadGivesBackWhatItParkedAtItsNextSlowAllocation() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB).build();
        CountDownLatch parked = new CountDownLatch(1);
        CountDownLatch allocateAgain = new CountDownLatch(1);
        CountDownLatch gaveBack = new CountDownLatch(1);
        Thread parker = new Thread(() -> {
            allocateAllThenRelease(alloc, 32768, 32, "the burst took all memory");
            parked.countDown();
            await(allocateAgain);
            alloc.directBuffer(100).release(); // a fragment: no stack holds one yet, so the slow path runs
            gaveBack.countDown();
            await(allocateAgain);
        }, "plain-parker");
        parker.start();
        try {
            assertTrue(parked.await(10, TimeUnit.SECONDS));
            ByteBuf first = alloc.directBuffer(32768);
            assertEquals(1, alloc.metric().fallbackAllocations(), "the request that ran out takes the fallback");
            assertEquals(32, arenaOf(alloc, "plain-parker").cachedBlocks(), "an idle plain thread keeps what it parked");
            letItGiveBackThenAllocate(alloc, "plain-parker", allocateAgain, gaveBack, first);
        } finally {
            allocateAgain.countDown();
            parker.join(10_000);
        }
        alloc.close();
    }

    /**
     * An arena's give-back task can reach a thread other than its owner: the owner's executor (the
     * event loop it ran on) may run tasks on another thread, as a Netty 4.2 event loop does after it
     * was suspended and resumed on a new one. That thread must not touch the owner's stacks; the
     * request waits for the owner's next slow allocation. Seeded bug that this catches: trimming on
     * whichever thread runs the task (the stacks emptied by the loop's thread, which then fails in
     * the pool's owner check).
     */
    @Test
    void aGiveBackTaskRunByAnotherThreadLeavesTheOwnersStacksToTheOwner() throws Exception {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB).build();
        DefaultEventLoop loop = new DefaultEventLoop();
        CountDownLatch parked = new CountDownLatch(1);
        CountDownLatch allocateAgain = new CountDownLatch(1);
        CountDownLatch gaveBack = new CountDownLatch(1);
        // The owner runs with the loop as its current executor, but on a thread of its own.
        Thread owner = new Thread(ThreadExecutorMap.apply(() -> {
            allocateAllThenRelease(alloc, 32768, 32, "the burst took all memory");
            parked.countDown();
            await(allocateAgain);
            alloc.directBuffer(100).release(); // misses the stacks: answers the pending request
            gaveBack.countDown();
        }, loop), "owner-off-its-loop");
        owner.start();
        try {
            assertTrue(parked.await(10, TimeUnit.SECONDS));
            ByteBuf first = alloc.directBuffer(32768); // runs out: the task goes to the loop
            loop.submit(() -> { }).get(10, TimeUnit.SECONDS); // runs after the give-back task queued before it
            assertEquals(32, arenaOf(alloc, "owner-off-its-loop").cachedBlocks(),
                    "the loop's thread ran the task and left the owner's stacks alone");
            assertTrue(loop.submit(() -> true).get(10, TimeUnit.SECONDS), "the loop is still running");
            letItGiveBackThenAllocate(alloc, "owner-off-its-loop", allocateAgain, gaveBack, first);
        } finally {
            allocateAgain.countDown();
            owner.join(10_000);
            loop.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
        }
        alloc.pageAllocator().checkConsistency();
        alloc.close();
    }

    /**
     * Lets a parked thread go on to its next allocation that misses its stacks, which answers the
     * pending give-back; then the pool, not the fallback, serves the next 32 KiB request.
     */
    private static void letItGiveBackThenAllocate(PagePoolByteBufAllocator alloc, String thread,
            CountDownLatch allocateAgain, CountDownLatch gaveBack, ByteBuf first) throws InterruptedException {
        allocateAgain.countDown();
        assertTrue(gaveBack.await(10, TimeUnit.SECONDS));
        assertEquals(0, arenaOf(alloc, thread).cachedBlocks(), thread + " gave back at its next slow allocation");
        ByteBuf second = alloc.directBuffer(32768);
        assertEquals(1, alloc.metric().fallbackAllocations(), "the next request is served from the pool");
        first.release();
        second.release();
    }

    /** Allocates {@code count} buffers of {@code size}, checks that no memory is left, and releases them all. */
    private static void allocateAllThenRelease(PagePoolByteBufAllocator alloc, int size, int count, String message) {
        List<ByteBuf> burst = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            burst.add(alloc.directBuffer(size));
        }
        assertEquals(0, alloc.pageAllocator().stats().freePages(), message);
        burst.forEach(ByteBuf::release);
    }

    private static PagePoolByteBufAllocatorMetric.ArenaMetric arenaOf(PagePoolByteBufAllocator alloc, String thread) {
        return alloc.metric().arenas().stream().filter(a -> a.threadName().equals(thread)).findFirst()
                .orElseThrow(() -> new AssertionError("no arena for " + thread + ": " + alloc.metric()));
    }

    /** The page pools of the allocator's open arenas (package access: the test lives in the same package). */
    static List<PagePool> pools(PagePoolByteBufAllocator alloc) {
        return alloc.arenasSnapshot().stream().map(a -> a.pool).collect(Collectors.toList());
    }

    // ------------------------------------------------------------------ heap, DEFAULT, builder

    @Test
    void heapBuffersComeFromTheDocumentedDelegate() {
        PagePoolByteBufAllocator alloc = newAllocator();
        ByteBuf heap = alloc.heapBuffer(100);
        assertFalse(heap.isDirect());
        assertTrue(heap.hasArray());
        assertSame(UnpooledByteBufAllocator.DEFAULT, heap.alloc(), "default delegate");
        assertEquals(100, heap.capacity());
        heap.release();
        assertTrue(alloc.metric().usedHeapMemory() >= 0, "UnpooledByteBufAllocator reports heap use");
        alloc.close();

        PooledByteBufAllocator pooled = new PooledByteBufAllocator(false);
        PagePoolByteBufAllocator custom = PagePoolByteBufAllocator.builder().capacity(MIB).heapDelegate(pooled).build();
        ByteBuf h = custom.heapBuffer(10, 20);
        assertSame(pooled, h.alloc());
        assertEquals(20, h.maxCapacity());
        assertEquals(pooled.metric().usedHeapMemory(), custom.metric().usedHeapMemory());
        h.release();
        custom.close();

        AbstractByteBufAllocator noMetric = new AbstractByteBufAllocator(false) {
            @Override
            protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
                return Unpooled.buffer(initialCapacity, maxCapacity);
            }

            @Override
            protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
                throw new UnsupportedOperationException();
            }

            @Override
            public boolean isDirectBufferPooled() {
                return false;
            }
        };
        assertFalse(noMetric instanceof ByteBufAllocatorMetricProvider);
        PagePoolByteBufAllocator third = PagePoolByteBufAllocator.builder().capacity(MIB).heapDelegate(noMetric).build();
        assertEquals(-1, third.metric().usedHeapMemory(), "a delegate without metrics reports -1");
        third.close();
    }

    @Test
    void directBuffersArePooledAndTheDefaultInstanceCannotBeClosed() {
        PagePoolByteBufAllocator dflt = PagePoolByteBufAllocator.DEFAULT;
        assertTrue(dflt.isDirectBufferPooled());
        ByteBuf buf = dflt.directBuffer(1500);
        buf.writeBytes(CONTENT, 0, 1500);
        assertEquals(1500, buf.readableBytes());
        assertTrue(buf.release());
        assertThrows(UnsupportedOperationException.class, dflt::close);
        assertFalse(dflt.isClosed());
        ByteBuf after = dflt.directBuffer(64);
        assertTrue(after.release(), "DEFAULT still works after the refused close");
        assertEquals(256L * MIB, (long) dflt.pageAllocator().totalPages() * dflt.pageAllocator().pageSize(),
                "DEFAULT is documented as 256m unless -Dio.pagepool.netty.capacity says otherwise");
        assertEquals(FallbackPolicy.UNPOOLED, dflt.fallbackPolicy());
    }

    @Test
    void theBuilderRejectsSettingsOutOfRangeAndSaysWhich() {
        Map<String, Supplier<PagePoolByteBufAllocator.Builder>> bad = new java.util.LinkedHashMap<>();
        bad.put("maxFragmentSize", () -> PagePoolByteBufAllocator.builder().maxFragmentSize(32));
        bad.put("maxFragmentSize ", () -> PagePoolByteBufAllocator.builder().maxFragmentSize(100));
        bad.put("maxFragmentSize  ", () -> PagePoolByteBufAllocator.builder().maxFragmentSize(4096));
        bad.put("fragmentCacheSize", () -> PagePoolByteBufAllocator.builder().fragmentCacheSize(-1));
        bad.put("blockCacheSize", () -> PagePoolByteBufAllocator.builder().blockCacheSize(-1));
        bad.put("objectCacheSize", () -> PagePoolByteBufAllocator.builder().objectCacheSize(-1));
        bad.put("poolCacheSize", () -> PagePoolByteBufAllocator.builder().poolCacheSize(0));
        bad.put("poolRefillBatch", () -> PagePoolByteBufAllocator.builder().poolRefillBatch(200));
        bad.put("poolRingSize", () -> PagePoolByteBufAllocator.builder().poolRingSize(1));
        bad.put("poolRingSize ", () -> PagePoolByteBufAllocator.builder().poolRingSize((1 << 30) + 1));
        bad.put("fragmentCacheSize ", () -> PagePoolByteBufAllocator.builder().fragmentCacheSize(Integer.MAX_VALUE));
        bad.put("blockCacheSize ", () -> PagePoolByteBufAllocator.builder().blockCacheSize((1 << 20) + 1));
        bad.put("objectCacheSize ", () -> PagePoolByteBufAllocator.builder().objectCacheSize(Integer.MAX_VALUE));
        bad.put("pageSize", () -> PagePoolByteBufAllocator.builder().pageSize(1000));
        bad.put("capacity", () -> PagePoolByteBufAllocator.builder().capacity(0));
        bad.put("capacity ", () -> PagePoolByteBufAllocator.builder().capacity(4097));
        bad.put("maxOrder", () -> PagePoolByteBufAllocator.builder().maxOrder(-1));
        for (Map.Entry<String, Supplier<PagePoolByteBufAllocator.Builder>> e : bad.entrySet()) {
            IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> e.getValue().get().build(),
                    e.getKey());
            assertTrue(ex.getMessage().contains(e.getKey().trim()), () -> "message does not name " + e.getKey() + ": "
                    + ex.getMessage());
        }
        assertThrows(NullPointerException.class, () -> PagePoolByteBufAllocator.builder().fallbackPolicy(null));
        assertThrows(NullPointerException.class, () -> PagePoolByteBufAllocator.builder().heapDelegate(null));
        assertThrows(NullPointerException.class, () -> PagePoolByteBufAllocator.builder().fallbackAllocator(null));
        assertThrows(NullPointerException.class, () -> PagePoolByteBufAllocator.builder().pageAllocator(null));
        // and the edges that are fine
        PagePoolByteBufAllocator ok = PagePoolByteBufAllocator.builder().capacity(MIB).maxFragmentSize(64)
                .fragmentCacheSize(0).objectCacheSize(0).poolCacheSize(1).poolRefillBatch(1).poolRingSize(2).build();
        assertEquals(64, ok.maxFragmentSize());
        for (int size : new int[] {1, 64, 65, 2048, 4096, 9000}) {
            ByteBuf buf = ok.directBuffer(size).writeZero(size);
            assertEquals(size, buf.readableBytes());
            buf.release();
        }
        ok.close();
        assertEquals(2048, PagePoolByteBufAllocator.builder().capacity(MIB).build().maxFragmentSize(),
                "half a page by default");
    }

    @Test
    void theDefaultCapacityPropertyAcceptsByteCountsWithSuffixes() {
        assertEquals(123, PagePoolByteBufAllocator.parseBytes("123"));
        assertEquals(64L << 10, PagePoolByteBufAllocator.parseBytes("64k"));
        assertEquals(256L << 20, PagePoolByteBufAllocator.parseBytes(" 256M "));
        assertEquals(1L << 30, PagePoolByteBufAllocator.parseBytes("1g"));
        for (String bad : new String[] {"", "m", "12x", "1.5g", "ten", "17179869185g", "9223372036854775807k"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> PagePoolByteBufAllocator.parseBytes(bad), bad);
            assertTrue(e.getMessage().contains("\"" + bad + "\""), e::getMessage);
        }
    }

    // ------------------------------------------------------------------ exhaustion and fallback

    /**
     * A request larger than the largest block is not memory running out: it takes the fallback at
     * once, and the arena keeps what it parked (its stacks are given back only when memory runs out).
     */
    @Test
    void aRequestLargerThanTheLargestBlockKeepsWhatTheArenaParked() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(64L * MIB).build();
        List<ByteBuf> bufs = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            bufs.add(alloc.directBuffer(1024));
        }
        bufs.forEach(ByteBuf::release);
        assertEquals(10, alloc.metric().arenas().get(0).cachedFragments());
        ByteBuf big = alloc.directBuffer(4 * MIB + 1);
        assertEquals(PagePoolByteBuf.FALLBACK, raw(big).kind());
        assertEquals(10, alloc.metric().arenas().get(0).cachedFragments(), "the oversized request emptied the stacks");
        big.release();
        alloc.close();
    }

    @Test
    void aCustomFallbackAllocatorServesWhatThePoolsCannot() {
        PooledByteBufAllocator pooled = new PooledByteBufAllocator(true);
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(8L * MIB)
                .fallbackAllocator(pooled).build();
        long before = pooled.metric().usedDirectMemory();
        ByteBuf big = alloc.directBuffer(6 * MIB);
        assertEquals(PagePoolByteBuf.FALLBACK, raw(big).kind());
        assertSame(alloc, big.alloc(), "still our buffer, whatever memory it has");
        assertTrue(pooled.metric().usedDirectMemory() >= before + 6 * MIB, "the memory came from the given allocator");
        fill(big, 3);
        verify(big, 3);
        big.capacity(100); // shrinks back into pooled memory of ours
        assertEquals(PagePoolByteBuf.FRAG, raw(big).kind());
        assertEquals(0, alloc.metric().fallbackBytes());
        byte[] head = new byte[100];
        big.getBytes(0, head);
        assertEquals(-1, Arrays.mismatch(head, 0, 100, CONTENT, 3, 103));
        big.release();
        alloc.close();
    }

    @Test
    void pastExhaustionTheUnpooledPolicyKeepsServingAndCountsFallbacks() {
        PageAllocator pages = PageAllocator.builder().capacity(MIB).build();
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
        List<ByteBuf> held = new ArrayList<>();
        int[] sizes = {4096, 2048, 100, 9000};
        for (int i = 0; i < 600; i++) {
            ByteBuf buf = alloc.directBuffer(sizes[i % sizes.length]);
            fill(buf, i);
            held.add(buf);
        }
        long fallbacks = alloc.metric().fallbackAllocations();
        assertTrue(fallbacks >= 200, () -> "1 MiB cannot hold 600 such buffers, yet only " + fallbacks + " fell back");
        assertTrue(alloc.metric().fallbackBytes() > 0);
        assertEquals(0, pages.stats().freePages(), "the pooled memory is all in use");
        long kinds = held.stream().filter(b -> raw(b).kind() == PagePoolByteBuf.FALLBACK).count();
        assertEquals(fallbacks, kinds, "every fallback allocation is a fallback buffer");
        assertNoOverlap(held);
        for (int i = 0; i < held.size(); i++) {
            verify(held.get(i), i);
        }
        // a pooled buffer grows into fallback memory when the pool has nothing larger
        ByteBuf grower = held.get(0);
        grower.writerIndex(grower.capacity()).writeBytes(CONTENT, 0, 10_000);
        assertEquals(PagePoolByteBuf.FALLBACK, raw(grower).kind());
        for (ByteBuf buf : held) {
            assertTrue(buf.release());
        }
        assertEquals(0, alloc.metric().fallbackBytes(), "fallback buffers gave their memory back");
        // the pooled memory works again
        ByteBuf again = alloc.directBuffer(4096);
        assertTrue(raw(again).kind() != PagePoolByteBuf.FALLBACK);
        again.release();
        alloc.close();
        assertEquals(0, pages.stats().allocatedPages(), "arenas closed: every page is back in the page allocator");
        pages.checkConsistency();
        pages.close();
    }

    @Test
    void aFallbackBufferGrowsBackIntoPooledMemoryOnceThereIsRoom() {
        PageAllocator pages = PageAllocator.builder().capacity(MIB).build();
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
        List<int[]> hogged = new ArrayList<>();
        for (int order = pages.maxOrder(); order >= 0; order--) {
            int pfn;
            while ((pfn = pages.allocPages(order)) != PageAllocator.NO_PAGE) {
                hogged.add(new int[] {pfn, order});
            }
        }
        ByteBuf buf = alloc.directBuffer(100).writeBytes(CONTENT, 0, 100);
        assertEquals(PagePoolByteBuf.FALLBACK, raw(buf).kind());
        for (int[] block : hogged) {
            pages.freePages(block[0], block[1]);
        }
        buf.writeBytes(CONTENT, 100, 9900);
        assertEquals(PagePoolByteBuf.BLOCK, raw(buf).kind(), "grown into pooled memory");
        byte[] got = new byte[10_000];
        buf.getBytes(0, got);
        assertEquals(-1, Arrays.mismatch(got, 0, 10_000, CONTENT, 0, 10_000));
        assertEquals(0, alloc.metric().fallbackBytes(), "the fallback memory went back when the buffer moved");
        buf.release();
        alloc.close();
        assertEquals(0, pages.stats().allocatedPages());
        pages.close();
    }

    @Test
    void exhaustionUnderTheFailPolicyThrowsAnOutOfMemoryErrorNamingTheAllocator() {
        for (int size : new int[] {4096, 2048, 16384}) {
            PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB)
                    .fallbackPolicy(FallbackPolicy.FAIL).build();
            List<ByteBuf> held = new ArrayList<>();
            PagePoolOutOfMemoryError error = null;
            for (int i = 0; i < 1000 && error == null; i++) {
                try {
                    ByteBuf buf = alloc.directBuffer(size);
                    fill(buf, i);
                    held.add(buf);
                } catch (PagePoolOutOfMemoryError e) {
                    error = e;
                }
            }
            assertNotNull(error, () -> size + ": 1 MiB never ran out");
            assertInstanceOf(OutOfMemoryError.class, error);
            assertTrue(error.getMessage().contains(alloc.toString()), error::getMessage);
            assertTrue(error.getMessage().contains("exhausted"), error::getMessage);
            assertTrue(error.getMessage().contains(String.valueOf(size)), error::getMessage);
            assertTrue(held.size() * (long) size <= MIB, "more handed out than the allocator holds");
            assertEquals(0, alloc.metric().fallbackAllocations());
            for (int i = 0; i < held.size(); i++) {
                verify(held.get(i), i);
            }
            // a failed growth leaves the buffer as it was
            ByteBuf full = held.get(0);
            full.writerIndex(full.capacity());
            assertThrows(PagePoolOutOfMemoryError.class, () -> full.ensureWritable(2 * MIB));
            assertEquals(size, full.capacity());
            verify(full, 0);
            for (ByteBuf buf : held) {
                buf.release();
            }
            ByteBuf works = alloc.directBuffer(size);
            works.release();
            alloc.pageAllocator().checkConsistency();
            alloc.close();
        }
    }

    /**
     * After a burst of page-sized buffers on one thread, every released page sits in that thread's
     * arena (parked with its buffer) or pool (its cache, then its recycle ring). Nothing is in use, yet
     * a block request finds the page allocator empty: the arena must give its parked memory back to
     * serve it.
     */
    @Test
    void memoryParkedInAPoolAfterABurstStillServesALargerRequest() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(MIB)
                .fallbackPolicy(FallbackPolicy.FAIL).build();
        allocateAllThenRelease(alloc, 4096, 256, "the burst took all memory");
        PagePoolByteBufAllocatorMetric.ArenaMetric arena = alloc.metric().arenas().get(0);
        assertEquals(1 + 64, arena.cachedBlocks(), () -> "the hot slot and blockCacheSize page buffers: " + arena);
        assertEquals(arena.cachedBlocks(), alloc.metric().inflightPages(),
                "nothing is in use: the pages still out of the pool are parked with released buffers");
        ByteBuf block;
        try {
            block = alloc.directBuffer(16384);
        } catch (PagePoolOutOfMemoryError e) {
            // JUnit aborts the whole run on an OutOfMemoryError; report it as a failure instead
            throw new AssertionError("with every buffer released: " + e.getMessage());
        }
        block.release();
        alloc.close();
    }

    @Test
    void requestsLargerThanTheLargestBlockFollowThePolicy() {
        PagePoolByteBufAllocator unpooled = newAllocator();
        ByteBuf big = unpooled.directBuffer(4 * MIB + 1);
        assertEquals(4 * MIB + 1, big.capacity());
        assertEquals(PagePoolByteBuf.FALLBACK, raw(big).kind());
        assertEquals(1, unpooled.metric().fallbackAllocations());
        assertEquals(4 * MIB + 1, unpooled.metric().fallbackBytes());
        fill(big, 1);
        verify(big, 1);
        ByteBuf largestBlock = unpooled.directBuffer(4 * MIB);
        assertEquals(PagePoolByteBuf.BLOCK, raw(largestBlock).kind());
        assertEquals(1, unpooled.metric().fallbackAllocations());
        largestBlock.release();
        big.release();
        assertEquals(0, unpooled.metric().fallbackBytes());
        unpooled.close();

        PagePoolByteBufAllocator failing = PagePoolByteBufAllocator.builder().capacity(16L * MIB)
                .fallbackPolicy(FallbackPolicy.FAIL).build();
        PagePoolOutOfMemoryError e = assertThrows(PagePoolOutOfMemoryError.class,
                () -> failing.directBuffer(4 * MIB + 1));
        assertTrue(e.getMessage().contains("larger than the largest block"), e::getMessage);
        assertTrue(e.getMessage().contains(failing.toString()), e::getMessage);
        ByteBuf ok = failing.directBuffer(4 * MIB);
        ok.release();
        ByteBuf grows = failing.directBuffer(MIB).writeZero(MIB);
        assertThrows(PagePoolOutOfMemoryError.class, () -> grows.writeZero(4 * MIB));
        assertEquals(MIB, grows.writerIndex());
        grows.release();
        failing.close();
    }

    // ------------------------------------------------------------------ metrics

    @Test
    void usedDirectMemoryGrowsAndShrinksWithTheBuffers() {
        PagePoolByteBufAllocator alloc = newAllocator();
        long base = alloc.metric().usedDirectMemory();
        ByteBuf block = alloc.directBuffer(MIB);
        assertEquals(base + MIB, alloc.metric().usedDirectMemory(), "a 1 MiB block");
        ByteBuf fallback = alloc.directBuffer(5 * MIB);
        assertEquals(base + 6 * MIB, alloc.metric().usedDirectMemory(), "plus a 5 MiB fallback");
        fallback.release();
        assertEquals(base + MIB, alloc.metric().usedDirectMemory());
        block.release();
        assertEquals(base, alloc.metric().usedDirectMemory());
        ByteBuf frag = alloc.directBuffer(100);
        assertTrue(alloc.metric().usedDirectMemory() >= base + 4096, "a fragment takes at least its page");
        assertTrue(alloc.metric().inflightPages() >= 1);
        frag.release();
        assertTrue(alloc.metric().toString().contains("usedDirectMemory"));
        assertEquals(alloc.pageAllocator().stats().allocatedPages(), alloc.metric().pageAllocatorStats().allocatedPages());
        alloc.close();
    }

    @Test
    void arenasListEveryAllocatingThreadWithItsPoolStats() throws Exception {
        PagePoolByteBufAllocator alloc = newAllocator();
        CountDownLatch allocated = new CountDownLatch(2);
        CountDownLatch done = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (String name : new String[] {"arena-test-A", "arena-test-B"}) {
            Thread t = new Thread(() -> {
                ByteBuf page = alloc.directBuffer(4096);
                ByteBuf frag = alloc.directBuffer(512);
                allocated.countDown();
                await(done);
                page.release();
                frag.release();
            }, name);
            t.start();
            threads.add(t);
        }
        assertTrue(allocated.await(10, TimeUnit.SECONDS));
        PagePoolByteBufAllocatorMetric metric = alloc.metric();
        Map<String, PagePoolByteBufAllocatorMetric.ArenaMetric> byName = metric.arenas().stream()
                .collect(Collectors.toMap(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName, a -> a));
        assertTrue(byName.keySet().containsAll(List.of("arena-test-A", "arena-test-B")), byName::toString);
        for (String name : new String[] {"arena-test-A", "arena-test-B"}) {
            PagePoolByteBufAllocatorMetric.ArenaMetric a = byName.get(name);
            assertEquals(2, a.buffersAllocated(), a::toString);
            assertTrue(a.poolStats().inflight() >= 2, () -> "a page buffer and a fragment's page: " + a);
            assertTrue(a.toString().contains(name));
        }
        assertTrue(metric.inflightPages() >= 4);
        done.countDown();
        for (Thread t : threads) {
            t.join(10_000);
        }
        alloc.close();
    }

    // ------------------------------------------------------------------ close

    @Test
    void closeRefusesWhileAnotherLiveThreadOwnsAnArenaAndSucceedsOnceItEnded() throws Exception {
        PagePoolByteBufAllocator alloc = newAllocator();
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch finish = new CountDownLatch(1);
        Thread owner = new Thread(() -> {
            alloc.directBuffer(100).release();
            ready.countDown();
            await(finish);
        }, "still-running-owner");
        owner.start();
        assertTrue(ready.await(10, TimeUnit.SECONDS));
        ByteBuf mine = alloc.directBuffer(4096);
        IllegalStateException e = assertThrows(IllegalStateException.class, alloc::close);
        assertTrue(e.getMessage().contains("still-running-owner"), e::getMessage);
        assertFalse(alloc.isClosed(), "a refused close changes nothing");
        assertFalse(alloc.pageAllocator().isClosed());
        mine.writeBytes(CONTENT, 0, 4096);
        mine.release();
        alloc.directBuffer(100).release();
        finish.countDown();
        owner.join(10_000);
        assertFalse(owner.isAlive());
        alloc.close();
        assertTrue(alloc.isClosed());
        assertTrue(alloc.pageAllocator().isClosed());
        assertThrows(IllegalStateException.class, () -> alloc.directBuffer(10), "allocation after close");
        alloc.close(); // a second close is harmless
    }

    @Test
    void buffersReleasedAfterTheAllocatorClosedReturnTheirMemoryToThePageAllocator() throws Exception {
        PageAllocator pages = PageAllocator.builder().capacity(32L * MIB).build();
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
        List<ByteBuf> held = new ArrayList<>();
        for (int size : new int[] {100, 2048, 4096, 8192, 32768, MIB, 5 * MIB}) {
            held.add(alloc.directBuffer(size));
            held.add(alloc.directBuffer(size));
        }
        // and from a thread that has ended by the time the allocator closes
        Thread other = new Thread(() -> {
            held.add(alloc.directBuffer(300));
            held.add(alloc.directBuffer(4096));
        }, "ended-allocator-thread");
        other.start();
        other.join();
        for (int i = 0; i < held.size(); i++) {
            fill(held.get(i), i);
        }
        List<PagePool> pools = pools(alloc);
        assertEquals(2, pools.size());
        alloc.close();
        assertTrue(pages.stats().allocatedPages() > 0, "the buffers still hold their pages");
        for (int i = 0; i < held.size(); i++) {
            verify(held.get(i), i);
            fill(held.get(i), i + 1);
            verify(held.get(i), i + 1);
        }
        for (ByteBuf buf : held) {
            assertTrue(buf.release());
        }
        assertEquals(0, pages.stats().allocatedPages(), "every page went back to the page allocator");
        for (PagePool pool : pools) {
            assertTrue(pool.isClosed());
            assertEquals(0, pool.inflight(), pool::toString);
            assertEquals(pool.stats().pagesEntered(), pool.stats().pagesReleased(), pool::toString);
        }
        assertEquals(0, alloc.metric().fallbackBytes());
        pages.checkConsistency();
        pages.close();
    }

    @Test
    void closingWithBuffersOutNamesAPageAndTheirReleaseFreesEveryPage() {
        PagePoolByteBufAllocator alloc = newAllocator();
        ByteBuf out = alloc.directBuffer(8192).writeBytes(CONTENT, 0, 8192);
        IllegalStateException e = assertThrows(IllegalStateException.class, alloc::close);
        assertTrue(e.getMessage().contains("pfn"), e::getMessage);
        assertEquals(8192, out.readableBytes());
        assertEquals(CONTENT[8191], out.getByte(8191), "a buffer still out keeps working");
        out.release();
        assertEquals(0, alloc.pageAllocator().stats().allocatedPages());
        alloc.pageAllocator().close();
    }

    @Test
    void closeCanBeRetriedOnceTheBuffersStillOutAreReleased() {
        PagePoolByteBufAllocator alloc = newAllocator();
        ByteBuf out = alloc.directBuffer(8192);
        assertThrows(IllegalStateException.class, alloc::close);
        out.release();
        alloc.close();
        assertTrue(alloc.pageAllocator().isClosed(), "the retried close left the page allocator's memory reserved");
    }

    /** Monitoring that polls Netty's metric (Micrometer's allocator gauges do) keeps working after a clean shutdown. */
    /**
     * A buffer that grows or shrinks after its allocator closed binds memory without an arena (as a
     * virtual thread's buffers do): its capacity is still what was asked for, 0 included.
     */
    @Test
    void aBufferResizedAfterTheAllocatorClosedHasTheCapacityAskedFor() {
        PageAllocator pages = PageAllocator.builder().capacity(8L * MIB).build();
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
        ByteBuf buf = alloc.directBuffer(4096).writeInt(42);
        alloc.close(); // buffers still out keep working
        assertEquals(5000, buf.capacity(5000).capacity(), "grown");
        assertEquals(42, buf.getInt(0), "contents kept");
        assertEquals(0, buf.capacity(0).capacity(), () -> "capacity(0) left " + buf);
        assertEquals(0, buf.writerIndex());
        buf.release();
        alloc.close();
        assertEquals(0, pages.stats().allocatedPages());
        pages.close();
    }

    @Test
    void theMetricStillAnswersOnceTheAllocatorIsClosed() {
        PagePoolByteBufAllocator alloc = newAllocator();
        alloc.directBuffer(100).release();
        assertTrue(alloc.metric().usedDirectMemory() > 0, "the arena's pool holds pages while open");
        alloc.close();
        assertEquals(0, alloc.metric().usedDirectMemory());
        assertEquals(0, alloc.metric().inflightPages());
        assertEquals(List.of(), alloc.metric().arenas());
        assertTrue(alloc.metric().toString().contains("usedDirectMemory=0"), alloc.metric()::toString);
        assertThrows(IllegalStateException.class, alloc.metric()::pageAllocatorStats, "documented: closed");
    }

    // ------------------------------------------------------------------ threads that are not event loops

    @Test
    void plainThreadsThatEndGetTheirArenaReturned() throws Exception {
        PagePoolByteBufAllocator alloc = newAllocator();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Thread t = new Thread(() -> {
                for (int size : new int[] {64, 2048, 4096, 20_000}) {
                    ByteBuf buf = alloc.directBuffer(size);
                    buf.writeZero(size);
                    buf.release();
                }
            }, "short-lived-" + i);
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(10_000);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        List<String> names;
        do {
            names = alloc.metric().arenas().stream().map(PagePoolByteBufAllocatorMetric.ArenaMetric::threadName)
                    .filter(n -> n.startsWith("short-lived-")).collect(Collectors.toList());
            if (names.isEmpty()) {
                break;
            }
            Thread.sleep(50);
        } while (System.nanoTime() < deadline);
        assertEquals(List.of(), names, "arenas of ended threads are reaped");
        assertEquals(0, alloc.pageAllocator().stats().allocatedPages(), "their pages went back");
        alloc.close();
    }

    @Test
    void virtualThreadsGetWorkingBuffersWithoutAnArena() throws Exception {
        Method start;
        try {
            start = Thread.class.getMethod("startVirtualThread", Runnable.class);
        } catch (NoSuchMethodException e) {
            assumeTrue(false, "virtual threads need JDK 21+");
            return;
        }
        PagePoolByteBufAllocator alloc = newAllocator();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Byte> kinds = Collections.synchronizedList(new ArrayList<>());
        Thread vt = (Thread) start.invoke(null, (Runnable) () -> {
            try {
                for (int size : new int[] {100, 2048, 4096, 20_000, 5 * MIB}) {
                    ByteBuf buf = alloc.directBuffer(size);
                    fill(buf, size);
                    verify(buf, size);
                    kinds.add(raw(buf).kind());
                    buf.writerIndex(size).writeBytes(CONTENT, 0, 5000);
                    assertEquals(size + 5000, buf.readableBytes());
                    buf.release();
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        });
        vt.join(10_000);
        if (failure.get() != null) {
            throw new AssertionError("on a virtual thread", failure.get());
        }
        assertEquals(List.of(PagePoolByteBuf.BLOCK, PagePoolByteBuf.BLOCK, PagePoolByteBuf.BLOCK, PagePoolByteBuf.BLOCK,
                PagePoolByteBuf.FALLBACK), kinds, "no arena: pages and blocks straight from the page allocator");
        assertEquals(List.of(), alloc.metric().arenas(), "virtual threads get no arena");
        assertEquals(0, alloc.pageAllocator().stats().allocatedPages());
        alloc.close();
    }

    static void await(CountDownLatch latch) {
        try {
            if (!latch.await(30, TimeUnit.SECONDS)) {
                throw new AssertionError("timed out");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
