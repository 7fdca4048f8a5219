package io.pagepool.netty;

import static io.pagepool.netty.PagePoolByteBufContractTest.raw;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.Test;

/**
 * The allocation shortcut that rebinds a recycled buffer object to the fragment it held last.
 *
 * <p>A released object keeps its stale binding (handle, size class, backing size). A fragment
 * handle's generation repeats every 512 carvings of its page, so an object that waited deep in the
 * object stack can later meet a handle of the same value that names a fragment of another size at
 * the same offset. Rebinding on the handle alone then gave a 64-byte buffer the 2048-byte backing
 * of its stale binding: {@code ensureWritable} grew it in place over live neighbours, and its
 * release filed the small fragment under the large class. A reviewer reproduced that through the
 * public API over 512 carvings of one page; these cases pin the rule that prevents it.
 */
class FragmentRebindTest {

    @Test
    void aRecycledObjectIsNotReboundToAnEqualHandleOfAnotherSizeClass() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(1 << 20).build();
        ByteBuf first = alloc.directBuffer(2048);
        PagePoolByteBuf object = raw(first);
        long handle = object.fragHandle();
        int largeClass = object.fragClass();
        PagePoolArena arena = alloc.arenasSnapshot().get(0);
        first.release(); // the object and its handle go back to the arena; the stale binding stays

        int smallClass = PagePoolArena.sizeClass(64);
        assertNotEquals(largeClass, smallClass);
        assertFalse(object.rebindSameFrag(arena, handle, smallClass, 64),
                "an equal handle of another size class names other bytes: the object must be bound afresh");
        assertTrue(object.rebindSameFrag(arena, handle, largeClass, 1500),
                "the same handle and class is the same fragment: the shortcut applies");

        ByteBuf again = alloc.directBuffer(1500);
        assertSame(object, raw(again), "LIFO: the next buffer of the class reuses the object");
        assertEquals(handle, raw(again).fragHandle(), "... and the fragment it held");
        assertEquals(1500, again.capacity());
        assertEquals(2048, raw(again).backingSize());
        again.release();
        alloc.close(); // refuses while any page is still out: everything went back
    }
}
