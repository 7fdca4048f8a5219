package io.pagepool.netty;

import static io.pagepool.netty.PagePoolByteBufContractTest.raw;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.RecvByteBufAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@link PagePoolRecvByteBufAllocator} on its own; its use on real sockets is in {@link LoopbackTrafficTest}. */
class PagePoolRecvByteBufAllocatorTest {

    private static PagePoolByteBufAllocator alloc;

    @BeforeAll
    static void setUp() {
        LeakCapture.install();
        alloc = PagePoolByteBufAllocator.builder().capacity(16L << 20).build();
    }

    @AfterAll
    static void tearDown() {
        alloc.close();
        LeakCapture.assertNoLeaks();
    }

    /** The README's one-liner keeps the type: it can be stored, and chained, as a PagePoolRecvByteBufAllocator. */
    @Test
    void maxMessagesPerReadReturnsThisAllocator() {
        PagePoolRecvByteBufAllocator recv = new PagePoolRecvByteBufAllocator().maxMessagesPerRead(16)
                .respectMaybeMoreData(false);
        assertEquals(16, recv.maxMessagesPerRead());
        assertEquals(false, recv.respectMaybeMoreData());
        assertEquals(PagePoolRecvByteBufAllocator.DEFAULT_DATAGRAM_SIZE, recv.datagramSize());
    }

    @Test
    void byDefaultEachReadGetsAHalfPageFragmentThatFitsAnMtu() {
        PagePoolRecvByteBufAllocator recv = new PagePoolRecvByteBufAllocator();
        assertEquals(2048, recv.datagramSize());
        assertEquals(1, recv.datagramsPerRead());
        RecvByteBufAllocator.ExtendedHandle handle = (RecvByteBufAllocator.ExtendedHandle) recv.newHandle();
        assertEquals(2048, handle.guess());
        for (int i = 0; i < 3; i++) {
            ByteBuf buf = handle.allocate(alloc);
            assertEquals(2048, buf.capacity());
            assertTrue(buf.capacity() >= 1500);
            assertTrue(buf.isDirect());
            assertSame(alloc, buf.alloc());
            assertEquals(PagePoolByteBuf.FRAG, raw(buf).kind(), "a fragment, two per 4 KiB page");
            buf.release();
        }
    }

    @Test
    void severalDatagramsPerReadShareOneBlock() {
        PagePoolRecvByteBufAllocator recv = new PagePoolRecvByteBufAllocator(2048, 16);
        RecvByteBufAllocator.ExtendedHandle handle = (RecvByteBufAllocator.ExtendedHandle) recv.newHandle();
        assertEquals(32768, handle.guess());
        ByteBuf buf = handle.allocate(alloc);
        assertEquals(32768, buf.capacity());
        assertEquals(PagePoolByteBuf.BLOCK, raw(buf).kind());
        buf.release();
    }

    @Test
    void aGivenAllocatorOverridesTheChannels() {
        PagePoolRecvByteBufAllocator recv = new PagePoolRecvByteBufAllocator(1500, 2, alloc);
        ByteBuf buf = recv.newHandle().allocate(UnpooledByteBufAllocator.DEFAULT);
        assertSame(alloc, buf.alloc());
        assertEquals(3000, buf.capacity());
        buf.release();
        ByteBuf channels = new PagePoolRecvByteBufAllocator(100, 1).newHandle().allocate(UnpooledByteBufAllocator.DEFAULT);
        assertSame(UnpooledByteBufAllocator.DEFAULT, channels.alloc(), "null allocator: the channel's");
        channels.release();
    }

    @Test
    void sizesMustBePositiveAndTheirProductFitAnInt() {
        assertThrows(IllegalArgumentException.class, () -> new PagePoolRecvByteBufAllocator(0, 1));
        assertThrows(IllegalArgumentException.class, () -> new PagePoolRecvByteBufAllocator(2048, 0));
        assertThrows(IllegalArgumentException.class, () -> new PagePoolRecvByteBufAllocator(1 << 20, 1 << 12));
    }
}
