package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.util.ResourceLeakDetector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Views of a buffer that shrank under them. A duplicate keeps indexes past the new capacity;
 * duplicating it again must refuse, as Netty's unpooled duplicates do, without taking a reference
 * of it that nobody would hold (the page would then never come back). A slice keeps its range;
 * an access past the root's new capacity must refuse rather than reach memory that may now be
 * another buffer's.
 *
 * <p>Leak detection is off so that the buffers are our raw objects and their views are ours (under
 * PARANOID every buffer is wrapped and its views are Netty's shared-count ones).
 */
class ViewsAfterShrinkTest {

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

    /** Every page came back: close() refuses while one is still allocated. */
    @AfterEach
    void everythingWentBack() {
        alloc.close();
    }

    private PagePoolByteBuf newFull(int capacity) {
        PagePoolByteBuf buf = (PagePoolByteBuf) alloc.directBuffer(capacity);
        for (int i = 0; i < capacity; i++) {
            buf.writeByte(i * 7);
        }
        return buf;
    }

    /**
     * The root shrinks through its own {@code capacity(int)}.
     */
    @Test
    void duplicatingADuplicateWhoseRootShrankRefusesAndTakesNoReference() {
        PagePoolByteBuf root = newFull(2048);
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
        PagePoolByteBuf root = newFull(2048);
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

    @Test
    void aSliceOfABufferThatShrankRefusesAccessPastTheBufferAndCorruptsNoOtherBuffer() {
        PagePoolByteBuf root = newFull(2048);
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
}
