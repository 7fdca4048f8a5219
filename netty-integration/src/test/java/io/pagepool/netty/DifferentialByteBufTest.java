package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Side by side: the same random sequence of operations (accessors of every width and order at
 * random, sometimes out-of-range indexes, bulk copies, index moves, discards, growth and shrink,
 * copies within the buffer and from another of our buffers) applied to one of our buffers and to
 * Netty's pooled heap buffer. After each operation both must have returned the same value or thrown
 * the same exception type, and hold the same indexes; their bytes are compared every few steps.
 * Run on raw buffer objects (leak detection off for this class) so that the direct paths between
 * our buffers are taken and the run stays fast.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DifferentialByteBufTest {

    private static final int OPS = 2500;
    private final PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();
    /**
     * Netty's pooled heap buffers: every accessor bounds-checked before it touches memory. (Its
     * unpooled heap buffers lean on the array's own checks, so an out-of-range {@code setIntLE}
     * writes the bytes that fit before it throws: not a reference for range errors.)
     */
    private final PooledByteBufAllocator reference = new PooledByteBufAllocator(false);
    private ResourceLeakDetector.Level saved;
    /** Memory kinds our buffers had during the runs: the sequences must have crossed them all. */
    private final java.util.Set<Byte> kindsSeen = new java.util.TreeSet<>();

    @BeforeAll
    void rawBuffers() {
        LeakCapture.install();
        saved = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
    }

    @AfterAll
    void restore() {
        ResourceLeakDetector.setLevel(saved);
        assertEquals(java.util.Set.of(PagePoolByteBuf.FRAG, PagePoolByteBuf.PAGE, PagePoolByteBuf.BLOCK,
                PagePoolByteBuf.FALLBACK), kindsSeen, "memory kinds the random sequences went through");
        alloc.close(); // every page back, or this throws
        LeakCapture.assertNoLeaks();
    }

    static IntStream seeds() {
        return IntStream.range(0, 24);
    }

    /** One operation: applied to a buffer (and, for copies, a second buffer of the same kind). */
    private interface Op {
        Object apply(ByteBuf buf, ByteBuf other);
    }

    private static final class Named {
        final String name;
        final Op op;

        Named(String name, Op op) {
            this.name = name;
            this.op = op;
        }
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void randomOperationSequencesMatchNettysPooledHeapBuffer(int seed) {
        Random r = new Random(seed * 7919L + 1);
        int[] capacities = {16, 200, 2048, 2049, 4096, 4097, 9000, 40_000, 300_000};
        int capacity = capacities[seed % capacities.length];
        int maxCapacity = seed % 3 == 0 ? capacity + r.nextInt(3 * capacity + 1) : Integer.MAX_VALUE;
        ByteBuf ours = alloc.directBuffer(capacity, maxCapacity);
        ByteBuf ref = reference.heapBuffer(capacity, maxCapacity);
        ByteBuf oursOther = alloc.directBuffer(capacity);
        ByteBuf refOther = reference.heapBuffer(capacity, capacity);
        byte[] init = new byte[capacity];
        r.nextBytes(init);
        ours.setBytes(0, init);
        ref.setBytes(0, init);
        r.nextBytes(init);
        oursOther.setBytes(0, init);
        refOther.setBytes(0, init);
        assertTrue(ours instanceof PagePoolByteBuf, "leak detection is off for this class");

        List<String> trail = new ArrayList<>();
        try {
            for (int step = 0; step < OPS; step++) {
                Named op = randomOp(r, ref);
                trail.add(op.name);
                if (trail.size() > 12) {
                    trail.remove(0);
                }
                int capBefore = ref.capacity();
                Object expected = run(op.op, ref, refOther);
                Object actual = run(op.op, ours, oursOther);
                if (!Objects.deepEquals(expected, actual)) {
                    fail("step " + step + " " + op.name + ": Netty's pooled heap buffer gave " + show(expected) + ", ours "
                            + show(actual) + "\n  recent: " + trail + "\n  ours: " + ours + "\n  ref: " + ref);
                }
                kindsSeen.add(((PagePoolByteBuf) ours).kind());
                assertEquals(ref.readerIndex(), ours.readerIndex(), () -> "readerIndex after " + trail);
                assertEquals(ref.writerIndex(), ours.writerIndex(), () -> "writerIndex after " + trail);
                if (ours.capacity() != ref.capacity()) {
                    // growth policies may pick different capacities; both must hold what was asked
                    ref.capacity(ours.capacity());
                }
                if (ours.capacity() > capBefore) {
                    // bytes past the old capacity are unspecified after growth: take ours as they are
                    byte[] grown = new byte[ours.capacity() - capBefore];
                    ours.getBytes(capBefore, grown);
                    ref.setBytes(capBefore, grown);
                }
                if (step % 50 == 0 || step == OPS - 1) {
                    assertSameBytes(ref, ours, trail);
                    assertSameBytes(refOther, oursOther, trail);
                }
            }
        } finally {
            ours.release();
            oursOther.release();
            ref.release();
            refOther.release();
        }
    }

    private static Object run(Op op, ByteBuf buf, ByteBuf other) {
        try {
            Object v = op.apply(buf, other);
            return v instanceof ByteBuf ? "this" : v;
        } catch (IndexOutOfBoundsException e) {
            return IndexOutOfBoundsException.class; // the heap buffer's may be its array's subclass
        } catch (RuntimeException e) {
            return e.getClass();
        }
    }

    private static String show(Object o) {
        return o instanceof byte[] ? Arrays.toString((byte[]) o) : String.valueOf(o);
    }

    private static void assertSameBytes(ByteBuf ref, ByteBuf ours, List<String> trail) {
        assertEquals(ref.capacity(), ours.capacity(), () -> "capacity after " + trail);
        byte[] a = new byte[ref.capacity()];
        byte[] b = new byte[ours.capacity()];
        ref.getBytes(0, a);
        ours.getBytes(0, b);
        int mismatch = Arrays.mismatch(a, b);
        if (mismatch >= 0) {
            fail("bytes differ at " + mismatch + " after " + trail);
        }
    }

    private static Named randomOp(Random r, ByteBuf ref) {
        int cap = ref.capacity();
        // mostly in range, sometimes just outside
        int idx = r.nextInt(10) == 0 ? cap - r.nextInt(4) : r.nextInt(10) == 0 ? -1 : r.nextInt(Math.max(1, cap));
        long v = r.nextLong();
        int len = r.nextInt(10) == 0 ? cap - idx + 1 : r.nextInt(Math.max(1, Math.min(cap, 3000)));
        int len2 = Math.max(0, Math.min(len, cap - Math.max(0, idx)));
        int src = r.nextInt(Math.max(1, cap));
        byte[] bytes = new byte[Math.max(0, len)];
        r.nextBytes(bytes);
        switch (r.nextInt(44)) {
            case 0: return op("getByte " + idx, (b, o) -> b.getByte(idx));
            case 1: return op("getShort " + idx, (b, o) -> b.getShort(idx));
            case 2: return op("getShortLE " + idx, (b, o) -> b.getShortLE(idx));
            case 3: return op("getUnsignedMedium " + idx, (b, o) -> b.getUnsignedMedium(idx));
            case 4: return op("getMediumLE " + idx, (b, o) -> b.getMediumLE(idx));
            case 5: return op("getInt " + idx, (b, o) -> b.getInt(idx));
            case 6: return op("getIntLE " + idx, (b, o) -> b.getIntLE(idx));
            case 7: return op("getLong " + idx, (b, o) -> b.getLong(idx));
            case 8: return op("getLongLE " + idx, (b, o) -> b.getLongLE(idx));
            case 9: return op("getChar " + idx, (b, o) -> (int) b.getChar(idx));
            case 10: return op("setByte " + idx, (b, o) -> b.setByte(idx, (int) v));
            case 11: return op("setShortLE " + idx, (b, o) -> b.setShortLE(idx, (int) v));
            case 12: return op("setMedium " + idx, (b, o) -> b.setMedium(idx, (int) v));
            case 13: return op("setMediumLE " + idx, (b, o) -> b.setMediumLE(idx, (int) v));
            case 14: return op("setIntLE " + idx, (b, o) -> b.setIntLE(idx, (int) v));
            case 15: return op("setLong " + idx, (b, o) -> b.setLong(idx, v));
            case 16: return op("setLongLE " + idx, (b, o) -> b.setLongLE(idx, v));
            case 17: return op("setShort " + idx, (b, o) -> b.setShort(idx, (int) v));
            case 18: return op("writeInt", (b, o) -> b.writeInt((int) v));
            case 19: return op("writeLongLE", (b, o) -> b.writeLongLE(v));
            case 20: return op("readInt", (b, o) -> b.readInt());
            case 21: return op("readMediumLE", (b, o) -> b.readMediumLE());
            case 22: return op("setBytes(byte[]) " + idx + "+" + bytes.length, (b, o) -> b.setBytes(idx, bytes));
            case 23: return op("getBytes(byte[]) " + idx + "+" + len, (b, o) -> {
                byte[] out = new byte[Math.max(0, len)];
                b.getBytes(idx, out);
                return out;
            });
            case 24: return op("writeBytes(byte[]) " + bytes.length, (b, o) -> b.writeBytes(bytes));
            case 25: return op("readBytes(byte[]) " + len, (b, o) -> {
                byte[] out = new byte[Math.max(0, len)];
                b.readBytes(out);
                return out;
            });
            case 26: return op("setBytes(ByteBuffer) " + idx + "+" + bytes.length,
                    (b, o) -> b.setBytes(idx, ByteBuffer.wrap(bytes)));
            case 27: return op("getBytes(direct ByteBuffer) " + idx + "+" + len, (b, o) -> {
                ByteBuffer out = ByteBuffer.allocateDirect(Math.max(0, len));
                b.getBytes(idx, out);
                out.flip();
                byte[] a = new byte[out.remaining()];
                out.get(a);
                return a;
            });
            case 28: return op("setBytes(self) " + idx + "<-" + src + "+" + len2,
                    (b, o) -> b.setBytes(idx, b, src, Math.min(len2, b.capacity() - src)));
            case 29: return op("setBytes(other) " + idx + "<-" + src + "+" + len2,
                    (b, o) -> b.setBytes(idx, o, Math.min(src, o.capacity() - 1), Math.min(len2, o.capacity()
                            - Math.min(src, o.capacity() - 1))));
            case 30: return op("getBytes(other) " + idx + "->" + len2, (b, o) -> b.getBytes(idx, o, 0,
                    Math.min(len2, o.capacity())));
            // length 0 is left out: AbstractByteBuf.setZero returns early for it, unchecked, where
            // Netty's pooled heap buffer checks the index first
            case 31: return op("setZero " + idx + "+" + Math.max(1, len), (b, o) -> b.setZero(idx, Math.max(1, len)));
            case 32: return op("writerIndex " + idx, (b, o) -> b.writerIndex(idx));
            case 33: return op("readerIndex " + idx, (b, o) -> b.readerIndex(idx));
            case 34: return op("discardReadBytes", (b, o) -> b.discardReadBytes());
            case 35: return op("discardSomeReadBytes", (b, o) -> b.discardSomeReadBytes());
            case 36: return op("ensureWritable " + len, (b, o) -> {
                b.ensureWritable(len);
                return b.writableBytes() >= len;
            });
            case 37: {
                // grow up to past the largest block (into the fallback), but not without bound
                int newCap = r.nextBoolean() || cap > 3 << 20 ? r.nextInt(cap + 1) : cap + r.nextInt(2 * cap + 1);
                return op("capacity " + newCap, (b, o) -> b.capacity(newCap));
            }
            case 38: return op("indexOf " + idx, (b, o) -> b.indexOf(Math.max(0, idx), b.capacity(), (byte) v));
            case 39: return op("mark/reset reader", (b, o) -> {
                b.markReaderIndex();
                b.readerIndex(Math.min(b.writerIndex(), b.readerIndex() + 1));
                b.resetReaderIndex();
                return b.readerIndex();
            });
            case 40: return op("copy " + idx + "+" + len2, (b, o) -> {
                ByteBuf c = b.copy(idx, len2);
                byte[] out = new byte[c.readableBytes()];
                c.readBytes(out);
                c.release();
                return out;
            });
            case 41: return op("setCharSequence " + idx, (b, o) -> b.setCharSequence(idx, "h\u00e9\u4e16!",
                    StandardCharsets.UTF_8));
            case 42: return op("skipBytes " + (len & 7), (b, o) -> b.skipBytes(len & 7));
            default: return op("nioBuffer " + idx + "+" + len, (b, o) -> {
                ByteBuffer nio = b.nioBuffer(idx, len);
                byte[] a = new byte[nio.remaining()];
                nio.get(a);
                return a;
            });
        }
    }

    private static Named op(String name, Op op) {
        return new Named(name, op);
    }
}
