package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.channel.EventLoop;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.util.IllegalReferenceCountException;
import io.netty.util.AsciiString;
import io.netty.util.CharsetUtil;
import io.netty.util.ResourceLeakDetector;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.jctools.queues.SpscArrayQueue;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code retainedSlice} and {@code retainedDuplicate} of a pagepool buffer return recycled views
 * ({@link PagePoolDerivedByteBuf}) with their own reference count. The contract cases check them
 * against Netty's own buffers; these check what is particular to recycling: the view object comes
 * back (also when released on another thread or event loop), its count is its own, releases go up a chain of views exactly once, a duplicate follows its
 * root when the root moves, views of a root that shrank refuse what would reach past it, and a
 * recycled view shows nothing of its previous use. Leak detection is
 * off here, so that the buffers are ours rather than the detector's wrappers and view objects can
 * be compared.
 */
class RecycledDerivedBufferTest {

    private static ResourceLeakDetector.Level savedLevel;

    @BeforeAll
    static void leakDetectionOff() {
        savedLevel = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
    }

    @AfterAll
    static void leakDetectionBack() {
        ResourceLeakDetector.setLevel(savedLevel);
    }

    private final PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();

    @AfterEach
    void everythingWentBack() {
        alloc.close(); // throws if a page is still allocated
    }

    private PagePoolByteBuf newRaw(int capacity) {
        PagePoolByteBuf buf = (PagePoolByteBuf) alloc.directBuffer(capacity);
        for (int i = 0; i < capacity; i++) {
            buf.setByte(i, i * 7);
        }
        return buf;
    }

    /** {@link #newRaw} with its writer index at the end. */
    private PagePoolByteBuf newWritten(int capacity) {
        PagePoolByteBuf buf = newRaw(capacity);
        buf.writerIndex(capacity);
        return buf;
    }

    @Test
    void aReleasedViewIsTheNextViewOfTheSameThread() {
        PagePoolByteBuf buf = newRaw(2048);
        ByteBuf first = buf.retainedSlice(0, 1500);
        assertInstanceOf(PagePoolDerivedByteBuf.class, first);
        assertTrue(first.release());
        ByteBuf second = buf.retainedSlice(100, 200);
        assertSame(first, second, "the released view was not reused");
        assertEquals(0, second.readerIndex());
        assertEquals(200, second.writerIndex());
        assertEquals(200, second.capacity());
        assertEquals((byte) (100 * 7), second.getByte(0), "the reused view must show its new range");
        second.resetWriterIndex();
        assertEquals(0, second.writerIndex(), "a slice's marks start at 0, as Netty's do");
        ByteBuf dup = buf.retainedDuplicate();
        assertNotSame(second, dup, "a view in use is not handed out twice");
        assertTrue(second.release());
        assertTrue(dup.release());
        assertTrue(buf.release());
    }

    /** Every access of a slice lands at its offset in the root, and nowhere else. */
    @Test
    void aSliceReadsAndWritesTheRootAtItsOffset() throws Exception {
        int offset = 301;
        PagePoolByteBuf buf = newRaw(2048);
        ByteBuf slice = buf.retainedSlice(offset, 1000);
        byte[] before = new byte[2048];
        buf.getBytes(0, before);

        slice.setShort(0, 0x0102).setShortLE(2, 0x0304).setMedium(4, 0x050607).setMediumLE(7, 0x08090a)
                .setInt(10, 0x0b0c0d0e).setIntLE(14, 0x0f101112).setLong(18, 0x1314151617181920L)
                .setLongLE(26, 0x2122232425262728L).setByte(34, 0x29);
        slice.setBytes(35, new byte[] {1, 2, 3}).setBytes(38, java.nio.ByteBuffer.wrap(new byte[] {4, 5}));
        assertEquals(0x0102, buf.getShort(offset));
        assertEquals(0x0304, buf.getShortLE(offset + 2));
        assertEquals(0x050607, buf.getMedium(offset + 4));
        assertEquals(0x08090a, buf.getMediumLE(offset + 7));
        assertEquals(0x0b0c0d0e, buf.getInt(offset + 10));
        assertEquals(0x0f101112, buf.getIntLE(offset + 14));
        assertEquals(0x1314151617181920L, buf.getLong(offset + 18));
        assertEquals(0x2122232425262728L, buf.getLongLE(offset + 26));
        assertEquals(0x29, buf.getByte(offset + 34));
        assertEquals(5, buf.getByte(offset + 39));
        assertEquals(0x1314151617181920L, slice.getLong(18));
        assertEquals(0x050607, slice.getUnsignedMedium(4));
        assertEquals(0x08090a, slice.getUnsignedMediumLE(7));
        assertEquals(0x0f101112, slice.getIntLE(14));
        assertEquals(0x2122232425262728L, slice.getLongLE(26));
        assertEquals(0x0304, slice.getShortLE(2));
        assertEquals(buf.memoryAddress() + offset, slice.memoryAddress());
        assertEquals(buf.getByte(offset + 500), slice.nioBuffer(500, 1).get(0));
        byte[] out = new byte[40];
        slice.getBytes(0, out);
        byte[] expected = new byte[40];
        buf.getBytes(offset, expected);
        assertEquals(java.util.Arrays.toString(expected), java.util.Arrays.toString(out));
        for (int i = 0; i < 2048; i++) {
            if (i < offset || i >= offset + 40) {
                assertEquals(before[i], buf.getByte(i), "byte " + i + " outside the slice's writes changed");
            }
        }
        assertThrows(IndexOutOfBoundsException.class, () -> slice.getByte(1000));
        assertThrows(IndexOutOfBoundsException.class, () -> slice.setLong(996, 0));
        assertTrue(slice.release());
        assertTrue(buf.release());
    }

    @Test
    void aViewCountsItsOwnReferencesAndHoldsOneOfItsParent() {
        PagePoolByteBuf buf = newRaw(1024);
        ByteBuf slice = buf.retainedSlice(10, 100);
        assertEquals(2, buf.refCnt());
        slice.retain(3);
        assertEquals(4, slice.refCnt());
        assertEquals(2, buf.refCnt(), "retaining the view does not touch the parent");
        assertFalse(slice.release(3));
        assertEquals(2, buf.refCnt());
        assertTrue(slice.release());
        assertEquals(1, buf.refCnt(), "the view's last release gave its one reference back");
        assertThrows(IllegalReferenceCountException.class, () -> slice.getByte(0));
        assertThrows(IllegalReferenceCountException.class, slice::release);
        assertThrows(IllegalReferenceCountException.class, slice::retain);
        assertEquals(1, buf.refCnt(), "a misused view leaves its parent alone");
        assertTrue(buf.release());
    }

    @Test
    void aChainOfViewsReleasesEachParentOnce() {
        PagePoolByteBuf buf = newRaw(1024);
        ByteBuf outer = buf.retainedSlice(10, 500);
        ByteBuf inner = outer.retainedSlice(5, 20);
        ByteBuf innerDup = inner.retainedDuplicate();
        assertEquals((byte) (15 * 7), inner.getByte(0));
        assertEquals((byte) (15 * 7), innerDup.getByte(0));
        assertEquals(20, innerDup.capacity(), "a duplicate of a slice is a slice of the same range");
        assertEquals(2, buf.refCnt());
        assertEquals(2, outer.refCnt());
        assertTrue(outer.release() == false && buf.refCnt() == 2, "inner still holds outer");
        assertFalse(inner.release(), "innerDup still holds inner");
        assertTrue(innerDup.release());
        assertEquals(0, inner.refCnt());
        assertEquals(0, outer.refCnt());
        assertEquals(1, buf.refCnt());
        assertTrue(buf.release());
    }

    @Test
    void aSliceCannotGrowAndADuplicateFollowsItsRootToNewMemory() {
        PagePoolByteBuf buf = newRaw(1000);
        ByteBuf slice = buf.retainedSlice(0, 100);
        assertThrows(UnsupportedOperationException.class, () -> slice.capacity(200));
        ByteBuf dup = buf.retainedDuplicate();
        long before = buf.memoryAddress();
        dup.capacity(10_000); // grows the root: its bytes move to an order-2 block
        assertEquals(10_000, buf.capacity());
        assertTrue(buf.memoryAddress() != before, "the root was expected to move");
        assertEquals(10_000, dup.capacity());
        assertEquals(buf.memoryAddress(), dup.memoryAddress());
        dup.setByte(9_999, 42);
        assertEquals(42, buf.getByte(9_999));
        assertEquals((byte) (999 * 7), dup.getByte(999), "the bytes moved with the root");
        assertTrue(slice.release());
        assertTrue(dup.release());
        assertTrue(buf.release());
    }

    @Test
    void aViewReleasedOnAnotherThreadReleasesItsParentThere() throws Exception {
        PagePoolByteBuf buf = newRaw(2048);
        ByteBuf slice = buf.retainedSlice(0, 64);
        assertFalse(buf.release());
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread other = new Thread(() -> {
            try {
                assertTrue(slice.release());
            } catch (Throwable t) {
                failure.set(t);
            }
        });
        other.start();
        other.join();
        assertEquals(null, failure.get());
        assertEquals(0, buf.refCnt(), "the view's release on the other thread was the buffer's last");
        // The memory came home through the owner's queue; allocating drains it.
        alloc.directBuffer(2048).release();
    }

    /**
     * A proxy's frames: views made on the owner thread and released on another (the event loop that
     * wrote them out) come back to the owner through its queue, so its next views are those objects,
     * each showing only its new range.
     */
    @Test
    void viewsReleasedOnAnotherThreadAreTheOwnersNextViews() throws Exception {
        PagePoolByteBuf buf = newRaw(2048);
        int n = 8;
        Set<ByteBuf> released = Collections.newSetFromMap(new IdentityHashMap<>());
        List<ByteBuf> views = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ByteBuf view = buf.retainedSlice(i * 100, 100);
            views.add(view);
            released.add(view);
        }
        assertEquals(1 + n, buf.refCnt());
        Thread other = new Thread(() -> views.forEach(ByteBuf::release), "releases-views");
        other.start();
        other.join(10_000);
        assertEquals(1, buf.refCnt(), "each view gave its parent reference back on the other thread");

        List<ByteBuf> again = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ByteBuf view = i % 2 == 0 ? buf.retainedSlice(1000 + i, 10) : buf.retainedDuplicate();
            assertTrue(released.contains(view), "view " + i + " is a new object: the released ones did not come back");
            assertFalse(again.stream().anyMatch(v -> v == view), "view " + i + " was handed out twice");
            assertEquals(1, view.refCnt());
            if (i % 2 == 0) {
                assertEquals(10, view.capacity());
                assertEquals((byte) ((1000 + i) * 7), view.getByte(0), "the reused view must show its new range");
            } else {
                assertEquals(2048, view.capacity());
                assertEquals((byte) (5 * 7), view.getByte(5));
            }
            again.add(view);
        }
        again.forEach(v -> assertTrue(v.release()));
        assertTrue(buf.release());
    }

    /**
     * The owner makes views while another thread releases them, both at full speed: no view is
     * handed out while still in use, every view sees its own range, every parent reference comes
     * back, and the views are recycled rather than made anew.
     */
    @Test
    void viewsRecycledAcrossThreadsAreNeverHandedOutTwice() throws Exception {
        PagePoolByteBuf buf = newRaw(2048);
        int frames = 200_000;
        Set<ByteBuf> live = Collections.synchronizedSet(Collections.newSetFromMap(new IdentityHashMap<>()));
        Set<ByteBuf> distinct = Collections.newSetFromMap(new IdentityHashMap<>());
        SpscArrayQueue<ByteBuf> handoff = new SpscArrayQueue<>(256);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread releaser = new Thread(() -> {
            try {
                for (int done = 0; done < frames; ) {
                    ByteBuf view = handoff.poll();
                    if (view == null) {
                        Thread.onSpinWait();
                        continue;
                    }
                    assertTrue(live.remove(view), "a view not in use was passed on");
                    assertTrue(view.release());
                    done++;
                }
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "releases-views");
        releaser.start();
        for (int i = 0; i < frames && failure.get() == null; i++) {
            int offset = i % 1900;
            ByteBuf view = buf.retainedSlice(offset, 100);
            assertTrue(live.add(view), () -> "a view still in use was handed out again: " + view);
            distinct.add(view);
            assertEquals((byte) (offset * 7), view.getByte(0));
            assertEquals((byte) ((offset + 99) * 7), view.getByte(99));
            while (!handoff.offer(view)) {
                Thread.onSpinWait();
            }
        }
        releaser.join(60_000);
        assertEquals(null, failure.get());
        assertTrue(live.isEmpty(), "every view was released");
        assertEquals(1, buf.refCnt(), "every view gave its parent reference back");
        assertTrue(distinct.size() < frames / 10,
                () -> distinct.size() + " view objects for " + frames + " frames: views released on the other thread were not recycled");
        assertTrue(buf.release());
    }

    /**
     * The same on two Netty event loops, as in a proxy: loop 0 receives (allocates) a buffer, cuts it
     * into frames with {@code readRetainedSlice} and hands each frame to loop 1 as a task; loop 1
     * checks the frame's bytes and releases it. The frames come back to loop 0 as views, so loop 0
     * makes few view objects; every page comes back when the loops end (the allocator's close,
     * after each test, checks that).
     */
    @Test
    void framesReleasedOnAnotherEventLoopComeBackAsViews() throws Exception {
        MultiThreadIoEventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        EventLoop receiver = group.next();
        EventLoop sender = group.next();
        int rounds = 50;
        int buffersPerRound = 100;
        int framesPerBuffer = 4;
        int frame = 500;
        int frames = rounds * buffersPerRound * framesPerBuffer;
        Set<ByteBuf> views = Collections.synchronizedSet(Collections.newSetFromMap(new IdentityHashMap<>()));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        try {
            for (int r = 0; r < rounds && failure.get() == null; r++) {
                int round = r;
                CountDownLatch released = new CountDownLatch(buffersPerRound * framesPerBuffer);
                receiver.submit(() -> {
                    for (int b = 0; b < buffersPerRound; b++) {
                        int seed = round * buffersPerRound + b;
                        ByteBuf received = alloc.directBuffer(frame * framesPerBuffer);
                        for (int i = 0; i < received.capacity(); i++) {
                            received.writeByte(seed + i);
                        }
                        for (int f = 0; f < framesPerBuffer; f++) {
                            int first = seed + f * frame;
                            ByteBuf view = received.readRetainedSlice(frame);
                            views.add(view);
                            sender.execute(() -> {
                                try {
                                    for (int i = 0; i < frame; i += 37) {
                                        assertEquals((byte) (first + i), view.getByte(i), "frame byte " + i);
                                    }
                                    assertTrue(view.release(), "the frame's only reference");
                                } catch (Throwable t) {
                                    failure.compareAndSet(null, t);
                                } finally {
                                    released.countDown();
                                }
                            });
                        }
                        received.release(); // the frames hold the buffer until loop 1 releases the last
                    }
                }).get(30, TimeUnit.SECONDS);
                assertTrue(released.await(30, TimeUnit.SECONDS), "loop 1 did not release round " + round);
            }
            assertNull(failure.get(), () -> "failure: " + failure.get());
            assertTrue(views.size() <= 2 * buffersPerRound * framesPerBuffer,
                    () -> views.size() + " view objects for " + frames
                            + " frames: frames released on the other loop did not come back");
            assertEquals(0, alloc.metric().fallbackAllocations(), "every buffer came from the pools");
        } finally {
            assertTrue(group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(20, TimeUnit.SECONDS),
                    "the event loops did not terminate");
        }
    }

    /**
     * Views of a buffer that shrank under them. A duplicate keeps indexes past the new capacity;
     * duplicating it again must refuse, as Netty's unpooled duplicates do, without taking a
     * reference of it that nobody would hold (the page would then never come back). Here the root
     * shrinks through its own {@code capacity(int)}.
     */
    @Test
    void duplicatingADuplicateWhoseRootShrankRefusesAndTakesNoReference() {
        PagePoolByteBuf root = newWritten(2048);
        ByteBuf dup = root.retainedDuplicate();
        assertInstanceOf(PagePoolDerivedByteBuf.class, dup);
        root.capacity(100); // out of its 2 KiB fragment into a 128-byte one; dup's writer index stays 2048
        assertEquals(100, dup.capacity());

        IndexOutOfBoundsException thrown = assertThrows(IndexOutOfBoundsException.class, dup::retainedDuplicate);
        assertEquals("readerIndex: 0, writerIndex: 2048 (expected: 0 <= readerIndex <= writerIndex <= capacity(100))",
                thrown.getMessage());
        assertEquals(1, dup.refCnt(), "the refused duplicate took no reference of its parent");
        assertTrue(dup.release());
        assertTrue(root.release());
    }

    /**
     * The same through the public view API only: two duplicates of one buffer, the buffer's own
     * reference given up, one duplicate shrinks the shared buffer, then the other duplicate is
     * duplicated again.
     */
    @Test
    void duplicatingAfterASiblingDuplicateShrankTheBufferRefusesAndTakesNoReference() {
        PagePoolByteBuf root = newWritten(2048);
        ByteBuf first = root.retainedDuplicate();
        ByteBuf second = root.retainedDuplicate();
        root.release();
        second.capacity(64); // the shared buffer shrinks (and moves); first's writer index stays 2048

        assertThrows(IndexOutOfBoundsException.class, first::retainedDuplicate);
        assertEquals(1, first.refCnt(), "the refused duplicate took no reference of its parent");
        assertTrue(first.release());
        assertTrue(second.release());
        assertEquals(0, root.refCnt(), "the shared buffer's last reference was given back");
    }

    /**
     * A slice keeps its range; an access past the root's new capacity must refuse rather than reach
     * memory that may now be another buffer's.
     */
    @Test
    void aSliceOfABufferThatShrankRefusesAccessPastTheBufferAndCorruptsNoOtherBuffer() {
        PagePoolByteBuf root = newWritten(2048);
        ByteBuf slice = root.retainedSlice(1024, 1024);
        root.capacity(100); // into a 128-byte fragment; its 2 KiB fragment is free for the next buffer
        ByteBuf other = alloc.directBuffer(2048);
        other.writeZero(2048);

        assertThrows(IndexOutOfBoundsException.class, () -> slice.getByte(0));
        assertThrows(IndexOutOfBoundsException.class, () -> slice.setLong(8, -1L));
        assertThrows(IndexOutOfBoundsException.class, () -> slice.setByte(1023, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> slice.getBytes(0, new byte[8]));
        for (int i = 0; i < 2048; i++) {
            assertEquals(0, other.getByte(i), "byte " + i + " of the buffer that took the old memory");
        }

        ByteBuf head = root.retainedSlice(8, 64); // within the shrunk buffer: still readable and writable
        assertEquals((byte) (9 * 7), head.getByte(1));
        head.setInt(0, 0x01020304);
        assertEquals(0x01020304, root.getInt(8));
        assertThrows(IndexOutOfBoundsException.class, () -> head.getLong(60),
                "the slice's own bounds still apply first");

        assertTrue(head.release());
        assertTrue(other.release());
        assertTrue(slice.release());
        assertTrue(root.release());
    }

    /**
     * Netty's UTF-8 writer goes through a buffer's native address when it has one, unchecked: a slice
     * reaching past its shrunk root must not offer one, so the write refuses instead of landing in
     * another buffer.
     */
    @Test
    void utf8SetCharSequenceOnASliceOfAShrunkBufferRefusesAndCorruptsNoOtherBuffer() {
        charSequenceOnASliceOfAShrunkBuffer("h\u00e9llo w\u00f6rld", CharsetUtil.UTF_8);
    }

    /** The same through Netty's writer of an {@code AsciiString}, which copies to the native address. */
    @Test
    void asciiStringSetCharSequenceOnASliceOfAShrunkBufferRefusesAndCorruptsNoOtherBuffer() {
        charSequenceOnASliceOfAShrunkBuffer(new AsciiString("hello world"), CharsetUtil.US_ASCII);
    }

    private void charSequenceOnASliceOfAShrunkBuffer(CharSequence text, Charset charset) {
        ByteBuf root = alloc.directBuffer(2048);
        root.writeZero(2048);
        ByteBuf slice = root.retainedSlice(1024, 1024);
        root.capacity(100); // into a 128-byte fragment right after the 2 KiB one
        ByteBuf other = alloc.directBuffer(1024); // the next fragment of the same page
        other.writeZero(1024);
        if (root.hasMemoryAddress()) {
            assertFalse(slice.hasMemoryAddress(), "a slice reaching past its shrunk buffer offers no native address");
            assertThrows(UnsupportedOperationException.class, slice::memoryAddress);
        }

        assertThrows(IndexOutOfBoundsException.class, () -> slice.setByte(0, 'x'), "primitive path refuses");
        Throwable thrown = null;
        try {
            slice.setCharSequence(0, text, charset);
        } catch (Throwable t) {
            thrown = t;
        }
        int firstChanged = -1;
        for (int i = 0; i < other.capacity(); i++) {
            if (other.getByte(i) != 0) {
                firstChanged = i;
                break;
            }
        }
        other.release();
        slice.release();
        root.release();
        assertEquals(-1, firstChanged, "byte " + firstChanged + " of an unrelated buffer was overwritten");
        assertTrue(thrown instanceof IndexOutOfBoundsException,
                "setCharSequence(" + charset + ") past the shrunk root should throw, threw " + thrown);
    }
}
