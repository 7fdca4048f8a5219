package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBufAllocator;
import io.pagepool.core.PageAllocator;
import java.util.ArrayList;
import java.util.List;

/**
 * The contract cases when the page allocator is exhausted: every buffer, whatever its size, is a
 * fallback buffer under {@link FallbackPolicy#UNPOOLED}, and still behaves as a ByteBuf, including
 * growth (which tries pooled memory again, finds none, and falls back again).
 */
class PagePoolExhaustedByteBufContractTest extends ByteBufContractTest {

    private final PageAllocator pages = PageAllocator.builder().capacity(8L << 20).build();
    private final PagePoolByteBufAllocator allocator = PagePoolByteBufAllocator.builder().pageAllocator(pages).build();
    /** Blocks taken straight from the page allocator so that the pools find nothing: {pfn, order}. */
    private final List<int[]> hogged = new ArrayList<>();

    PagePoolExhaustedByteBufContractTest() {
        for (int order = pages.maxOrder(); order >= 0; order--) {
            int pfn;
            while ((pfn = pages.allocPages(order)) != PageAllocator.NO_PAGE) {
                hogged.add(new int[] {pfn, order});
            }
        }
        assertEquals(0, pages.stats().freePages(), "the page allocator should be exhausted");
    }

    @Override
    ByteBufAllocator allocator() {
        return allocator;
    }

    @ForEachCapacity
    void everyCapacityIsServedByTheFallback(int capacity) {
        long before = allocator.metric().fallbackAllocations();
        PagePoolByteBuf buf = PagePoolByteBufContractTest.raw(newBuffer(capacity));
        assertEquals(PagePoolByteBuf.FALLBACK, buf.kind(), buf::toString);
        assertEquals(capacity, buf.capacity());
        assertEquals(before + 1, allocator.metric().fallbackAllocations());
        assertTrue(allocator.metric().fallbackBytes() >= capacity);
    }

    @Override
    void afterAllBuffersReleased() {
        assertEquals(0, allocator.metric().fallbackBytes(), "fallback buffers still held");
        assertTrue(allocator.metric().fallbackAllocations() > 0, "the cases ran on fallback buffers");
        allocator.close();
        assertTrue(!pages.isClosed(), "an allocator given a page allocator leaves it open");
        for (int[] block : hogged) {
            pages.freePages(block[0], block[1]);
        }
        pages.checkConsistency();
        assertEquals(0, pages.stats().allocatedPages());
        pages.close();
    }

}
