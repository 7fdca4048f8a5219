package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.netty.buffer.ByteBuf;

/**
 * The contract cases against recycled views: every buffer under test is a
 * {@link PagePoolDerivedByteBuf} duplicate whose parent has been released, so the view holds the only
 * reference and every access, copy, growth and release goes through it to the root's memory. Leak
 * detection is off (as in the parent class), so the views are ours, not the detector's wrappers.
 */
class PagePoolRetainedDuplicateContractTest extends PagePoolUnwrappedByteBufContractTest {

    @Override
    ByteBuf newBuffer(int capacity) {
        return keep(duplicateOf(allocator.directBuffer(capacity)));
    }

    @Override
    ByteBuf newBuffer(int capacity, int maxCapacity) {
        return keep(duplicateOf(allocator.directBuffer(capacity, maxCapacity)));
    }

    private static ByteBuf duplicateOf(ByteBuf parent) {
        ByteBuf view = parent.retainedDuplicate();
        parent.release();
        assertInstanceOf(PagePoolDerivedByteBuf.class, view, "retainedDuplicate did not return a recycled view");
        return view;
    }
}
