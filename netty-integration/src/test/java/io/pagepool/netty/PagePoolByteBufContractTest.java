package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.pagepool.core.PageAllocator;

/**
 * The contract cases against {@link PagePoolByteBufAllocator}, one capacity per memory kind
 * (fragment, page, block of order 1 to 10, fallback), as a user gets them with the PARANOID leak
 * detector: wrapped in Netty's leak-aware buffer.
 */
class PagePoolByteBufContractTest extends ByteBufContractTest {

    final PagePoolByteBufAllocator allocator = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();

    @Override
    ByteBufAllocator allocator() {
        return allocator;
    }

    static PagePoolByteBuf raw(ByteBuf buf) {
        ByteBuf b = buf;
        while (!(b instanceof PagePoolByteBuf)) {
            b = b.unwrap();
        }
        return (PagePoolByteBuf) b;
    }

    /** The memory kind the default capacity list names, so each case really covers that kind. */
    static byte expectedKind(int capacity) {
        return capacity <= 2048 ? PagePoolByteBuf.FRAG
                : capacity <= 4096 ? PagePoolByteBuf.PAGE
                : capacity <= 4 * MIB ? PagePoolByteBuf.BLOCK
                : PagePoolByteBuf.FALLBACK;
    }

    @ForEachCapacity
    void eachCapacityIsServedByTheMemoryKindItNames(int capacity) {
        PagePoolByteBuf buf = raw(newBuffer(capacity));
        assertEquals(expectedKind(capacity), buf.kind(), buf::toString);
        assertTrue(buf.backingSize() >= capacity);
        assertEquals(capacity, buf.capacity());
    }

    /** Every buffer is back: the pools close and the page allocator has nothing allocated. */
    @Override
    void afterAllBuffersReleased() {
        PageAllocator pages = allocator.pageAllocator();
        assertEquals(0, allocator.metric().fallbackBytes(), "fallback buffers still held");
        allocator.close(); // closes the arenas; throws if the page allocator still has pages out
        assertTrue(pages.isClosed(), "page allocator left open: " + pages);
    }
}
