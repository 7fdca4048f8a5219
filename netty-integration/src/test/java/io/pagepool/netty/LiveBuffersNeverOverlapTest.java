package io.pagepool.netty;

import static io.pagepool.netty.PagePoolByteBufContractTest.raw;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.netty.buffer.ByteBuf;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Live buffers never share a byte, whatever mix of sizes, growth and release recycled their objects
 * and fragments. Every live buffer holds a pattern of its own over its whole capacity; after each
 * step every live buffer must still hold it.
 *
 * <p>This is the property an earlier rebinding shortcut broke: a recycled object compared only the
 * fragment handle it held last, and after a page's 9-bit handle generation wrapped (512 carvings)
 * an equal handle could name a smaller fragment at the same offset; the object kept its stale larger
 * backing and grew in place over live neighbours. The small allocator below carves its pages many
 * thousand times, so the generation wraps over and over.
 */
class LiveBuffersNeverOverlapTest {

    private static final int[] SIZES = {1, 64, 100, 128, 256, 500, 1024, 1500, 2048, 4096, 9000};

    @Test
    void randomAllocateGrowReleaseKeepsEveryLiveBuffersBytes() {
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(1 << 20).fragmentCacheSize(8)
                .objectCacheSize(16).build();
        SplittableRandom random = new SplittableRandom(42);
        List<ByteBuf> live = new ArrayList<>();
        List<Byte> seeds = new ArrayList<>();
        for (int step = 0; step < 40_000; step++) {
            int action = random.nextInt(10);
            if (live.isEmpty() || (action < 5 && live.size() < 64)) {
                ByteBuf buf = alloc.directBuffer(SIZES[random.nextInt(SIZES.length)]);
                byte seed = (byte) random.nextInt();
                fill(buf, seed);
                live.add(buf);
                seeds.add(seed);
            } else if (action < 7) {
                int i = random.nextInt(live.size());
                ByteBuf buf = live.get(i);
                if (buf.capacity() > 8192) {
                    continue;
                }
                buf.writerIndex(buf.capacity());
                buf.ensureWritable(1 + random.nextInt(3000)); // grows in place or moves to a larger class
                fill(buf, seeds.get(i));
            } else {
                int i = random.nextInt(live.size());
                live.remove(i).release();
                seeds.remove(i);
            }
            if (step % 64 == 0 || step > 39_900) {
                for (int i = 0; i < live.size(); i++) {
                    check(live.get(i), seeds.get(i), step);
                }
            }
        }
        live.forEach(ByteBuf::release);
        alloc.close(); // refuses while any page is still out
    }

    /** Byte i of a buffer with seed s is (byte) (s + i): the pattern starting at offset s & 0xff. */
    private static final byte[] PATTERN = new byte[256 + 16384];

    static {
        for (int i = 0; i < PATTERN.length; i++) {
            PATTERN[i] = (byte) i;
        }
    }

    private static void fill(ByteBuf buf, byte seed) {
        buf.setBytes(0, PATTERN, seed & 0xff, buf.capacity()); // one call: PARANOID records one trace
    }

    private static void check(ByteBuf buf, byte seed, int step) {
        byte[] actual = new byte[buf.capacity()];
        buf.getBytes(0, actual);
        for (int i = 0; i < actual.length; i++) {
            if (actual[i] != (byte) (seed + i)) {
                assertEquals((byte) (seed + i), actual[i],
                        "step " + step + ": byte " + i + " of " + raw(buf).describe() + " was overwritten");
            }
        }
    }
}
