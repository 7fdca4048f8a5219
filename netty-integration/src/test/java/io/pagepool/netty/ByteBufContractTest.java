package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.util.ByteProcessor;
import io.netty.util.IllegalReferenceCountException;
import io.netty.util.internal.PlatformDependent;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.nio.channels.FileChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.Pipe;
import java.nio.channels.ScatteringByteChannel;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.provider.Arguments;

/**
 * The {@link ByteBuf} contract as a user of Netty relies on it, written once and run against
 * several allocators: Netty's own pooled and unpooled direct buffers (the known-good reference)
 * and {@link PagePoolByteBufAllocator} in every memory kind it has. A case that passes for Netty's
 * buffers and fails for ours is a bug in ours.
 *
 * <p>Every case runs once per capacity of {@link #capacities()}; the default list covers each of
 * our memory kinds: fragments (up to 2048 bytes), whole pages (2049-4096), blocks of order 1 to 10
 * (4097 bytes to 4 MiB) and the fallback past the largest block.
 *
 * <p>Buffers come from {@link #newBuffer}, which keeps them so that a failing case cannot leak
 * them into the next; the subclass checks at the end that everything went back.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ByteBufContractTest {

    static final int MIB = 1 << 20;
    /** Deterministic, non-repeating content used to fill buffers (bigger than the largest capacity). */
    static final byte[] CONTENT = new byte[8 * MIB + 4096];

    static {
        new Random(0x5eed).nextBytes(CONTENT);
        LeakCapture.install();
    }

    private final List<ByteBuf> allocated = new ArrayList<>();

    /** The allocator under test. */
    abstract ByteBufAllocator allocator();

    /** The capacities every {@link ForEachCapacity} case runs with. */
    Stream<Arguments> capacities() {
        return Stream.of(
                capacity("fragment", 16),
                capacity("fragment", 2048),
                capacity("page", 2049),
                capacity("page", 4096),
                capacity("order-1 block", 4097),
                capacity("order-2 block", 8193),
                capacity("order-3 block", 16385),
                capacity("order-9 block", MIB + 1),
                capacity("order-10 block", 4 * MIB),
                capacity("fallback", 4 * MIB + 1));
    }

    static Arguments capacity(String kind, int capacity) {
        return Arguments.of(Named.of(kind + " " + capacity, capacity));
    }

    /** False for a getter whose bounds check the reference is known to skip (a Netty bug, not ours). */
    boolean checksBounds(Getter getter) {
        return true;
    }

    /** False for a setter whose bounds check the reference is known to skip (a Netty bug, not ours). */
    boolean checksBounds(Setter setter) {
        return true;
    }

    /** False if the reference's getBytes(int, OutputStream, int) is known to skip its range check. */
    boolean checksStreamBounds() {
        return true;
    }

    /** Called once every buffer of the class has been released: subclasses check their accounting. */
    void afterAllBuffersReleased() {
    }

    // ------------------------------------------------------------------ fixtures

    @BeforeAll
    void installLeakCapture() {
        LeakCapture.install();
    }

    ByteBuf newBuffer(int capacity) {
        return keep(allocator().directBuffer(capacity));
    }

    ByteBuf newBuffer(int capacity, int maxCapacity) {
        return keep(allocator().directBuffer(capacity, maxCapacity));
    }

    /** A buffer of {@code capacity} filled with {@link #CONTENT} from {@code offset}, writerIndex at the end. */
    ByteBuf filled(int capacity, int offset) {
        ByteBuf buf = newBuffer(capacity);
        buf.writeBytes(CONTENT, offset, capacity);
        return buf;
    }

    ByteBuf keep(ByteBuf buf) {
        allocated.add(buf);
        return buf;
    }

    /**
     * Releases what a case left allocated. A handle the case released may since have been reused
     * by a later allocation (pooled buffer objects are recycled), so only the newest handle of
     * each underlying buffer object is trusted; older ones are stale and skipped.
     */
    @AfterEach
    void releaseLeftovers() {
        Set<ByteBuf> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = allocated.size() - 1; i >= 0; i--) {
            ByteBuf buf = allocated.get(i);
            if (seen.add(unwrapAll(buf)) && buf.refCnt() > 0) {
                buf.release(buf.refCnt());
            }
        }
        allocated.clear();
    }

    @AfterAll
    void checkNothingLeaked() {
        afterAllBuffersReleased();
        LeakCapture.assertNoLeaks();
    }

    static byte[] content(int offset, int length) {
        return Arrays.copyOfRange(CONTENT, offset, offset + length);
    }

    static byte[] bytes(ByteBuf buf, int index, int length) {
        byte[] out = new byte[length];
        buf.getBytes(index, out);
        return out;
    }

    /** Asserts {@code buf[index, index + length)} equals {@code CONTENT[offset, offset + length)}. */
    static void assertContent(ByteBuf buf, int index, int offset, int length) {
        byte[] actual = bytes(buf, index, length);
        int mismatch = Arrays.mismatch(actual, 0, length, CONTENT, offset, offset + length);
        if (mismatch >= 0) {
            fail("byte " + (index + mismatch) + " of " + buf + " is " + actual[mismatch] + ", expected "
                    + CONTENT[offset + mismatch]);
        }
    }

    static ByteBuffer directCopy(byte[] bytes) {
        ByteBuffer bb = ByteBuffer.allocateDirect(bytes.length);
        bb.put(bytes).flip();
        return bb;
    }

    // ------------------------------------------------------------------ primitive accessors

    /** One primitive getter: absolute and relative forms, its width, byte order and signedness. */
    record Getter(String name, int width, boolean littleEndian, boolean signed, GetFn get, ReadFn read) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** One primitive setter: absolute and relative forms. */
    record Setter(String name, int width, boolean littleEndian, SetFn set, WriteFn write) {
        @Override
        public String toString() {
            return name;
        }
    }

    interface GetFn {
        long get(ByteBuf buf, int index);
    }

    interface ReadFn {
        long read(ByteBuf buf);
    }

    interface SetFn {
        void set(ByteBuf buf, int index, long bits);
    }

    interface WriteFn {
        void write(ByteBuf buf, long bits);
    }

    static final List<Getter> GETTERS = List.of(
            new Getter("byte", 1, false, true, ByteBuf::getByte, ByteBuf::readByte),
            new Getter("unsignedByte", 1, false, false, ByteBuf::getUnsignedByte, ByteBuf::readUnsignedByte),
            new Getter("short", 2, false, true, ByteBuf::getShort, ByteBuf::readShort),
            new Getter("shortLE", 2, true, true, ByteBuf::getShortLE, ByteBuf::readShortLE),
            new Getter("unsignedShort", 2, false, false, ByteBuf::getUnsignedShort, ByteBuf::readUnsignedShort),
            new Getter("unsignedShortLE", 2, true, false, ByteBuf::getUnsignedShortLE, ByteBuf::readUnsignedShortLE),
            new Getter("char", 2, false, false, ByteBuf::getChar, ByteBuf::readChar),
            new Getter("medium", 3, false, true, ByteBuf::getMedium, ByteBuf::readMedium),
            new Getter("mediumLE", 3, true, true, ByteBuf::getMediumLE, ByteBuf::readMediumLE),
            new Getter("unsignedMedium", 3, false, false, ByteBuf::getUnsignedMedium, ByteBuf::readUnsignedMedium),
            new Getter("unsignedMediumLE", 3, true, false, ByteBuf::getUnsignedMediumLE,
                    ByteBuf::readUnsignedMediumLE),
            new Getter("int", 4, false, true, ByteBuf::getInt, ByteBuf::readInt),
            new Getter("intLE", 4, true, true, ByteBuf::getIntLE, ByteBuf::readIntLE),
            new Getter("unsignedInt", 4, false, false, ByteBuf::getUnsignedInt, ByteBuf::readUnsignedInt),
            new Getter("unsignedIntLE", 4, true, false, ByteBuf::getUnsignedIntLE, ByteBuf::readUnsignedIntLE),
            new Getter("float", 4, false, true, (b, i) -> Float.floatToRawIntBits(b.getFloat(i)),
                    b -> Float.floatToRawIntBits(b.readFloat())),
            new Getter("floatLE", 4, true, true, (b, i) -> Float.floatToRawIntBits(b.getFloatLE(i)),
                    b -> Float.floatToRawIntBits(b.readFloatLE())),
            new Getter("long", 8, false, true, ByteBuf::getLong, ByteBuf::readLong),
            new Getter("longLE", 8, true, true, ByteBuf::getLongLE, ByteBuf::readLongLE),
            new Getter("double", 8, false, true, (b, i) -> Double.doubleToRawLongBits(b.getDouble(i)),
                    b -> Double.doubleToRawLongBits(b.readDouble())),
            new Getter("doubleLE", 8, true, true, (b, i) -> Double.doubleToRawLongBits(b.getDoubleLE(i)),
                    b -> Double.doubleToRawLongBits(b.readDoubleLE())));

    static final List<Setter> SETTERS = List.of(
            new Setter("byte", 1, false, (b, i, v) -> b.setByte(i, (int) v), (b, v) -> b.writeByte((int) v)),
            new Setter("short", 2, false, (b, i, v) -> b.setShort(i, (int) v), (b, v) -> b.writeShort((int) v)),
            new Setter("shortLE", 2, true, (b, i, v) -> b.setShortLE(i, (int) v), (b, v) -> b.writeShortLE((int) v)),
            new Setter("char", 2, false, (b, i, v) -> b.setChar(i, (int) v), (b, v) -> b.writeChar((int) v)),
            new Setter("medium", 3, false, (b, i, v) -> b.setMedium(i, (int) v), (b, v) -> b.writeMedium((int) v)),
            new Setter("mediumLE", 3, true, (b, i, v) -> b.setMediumLE(i, (int) v),
                    (b, v) -> b.writeMediumLE((int) v)),
            new Setter("int", 4, false, (b, i, v) -> b.setInt(i, (int) v), (b, v) -> b.writeInt((int) v)),
            new Setter("intLE", 4, true, (b, i, v) -> b.setIntLE(i, (int) v), (b, v) -> b.writeIntLE((int) v)),
            new Setter("float", 4, false, (b, i, v) -> b.setFloat(i, Float.intBitsToFloat((int) v)),
                    (b, v) -> b.writeFloat(Float.intBitsToFloat((int) v))),
            new Setter("floatLE", 4, true, (b, i, v) -> b.setFloatLE(i, Float.intBitsToFloat((int) v)),
                    (b, v) -> b.writeFloatLE(Float.intBitsToFloat((int) v))),
            new Setter("long", 8, false, ByteBuf::setLong, ByteBuf::writeLong),
            new Setter("longLE", 8, true, ByteBuf::setLongLE, ByteBuf::writeLongLE),
            new Setter("double", 8, false, (b, i, v) -> b.setDouble(i, Double.longBitsToDouble(v)),
                    (b, v) -> b.writeDouble(Double.longBitsToDouble(v))),
            new Setter("doubleLE", 8, true, (b, i, v) -> b.setDoubleLE(i, Double.longBitsToDouble(v)),
                    (b, v) -> b.writeDoubleLE(Double.longBitsToDouble(v))));

    /** Distinct bytes, high bits set (so sign extension shows), and not a NaN as float or double. */
    static final long[] VALUES = {0x8182838485868788L, 0x0102030405060708L, 0x7f00ff11ee22dd33L};

    /** The {@code width} low bytes of {@code bits} in memory order. */
    static byte[] layout(long bits, int width, boolean littleEndian) {
        byte[] out = new byte[width];
        for (int i = 0; i < width; i++) {
            byte b = (byte) (bits >>> (8 * i));
            out[littleEndian ? i : width - 1 - i] = b;
        }
        return out;
    }

    /** What a getter of this width, order and signedness must return for {@code raw}. */
    static long decode(byte[] raw, boolean littleEndian, boolean signed) {
        long v = 0;
        int width = raw.length;
        for (int i = 0; i < width; i++) {
            int b = raw[littleEndian ? width - 1 - i : i] & 0xff;
            v = v << 8 | b;
        }
        if (signed && width < 8) {
            int shift = 64 - 8 * width;
            v = v << shift >> shift;
        }
        return v;
    }

    /** Indexes worth testing for a field of {@code width}: both ends and an odd one in between. */
    static int[] indexes(int capacity, int width) {
        if (capacity < width) {
            return new int[0];
        }
        int last = capacity - width;
        return new int[] {0, Math.min(1, last), Math.min(last, (last / 2) | 1), last};
    }

    @ForEachCapacity
    void everyGetterDecodesTheBytesInItsWidthAndByteOrder(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        for (Getter g : GETTERS) {
            for (int index : indexes(capacity, g.width())) {
                for (long v : VALUES) {
                    byte[] raw = layout(v, g.width(), false);
                    for (int i = 0; i < raw.length; i++) {
                        buf.setByte(index + i, raw[i]);
                    }
                    assertEquals(decode(raw, g.littleEndian(), g.signed()), g.get().get(buf, index),
                            () -> g + " at " + index + " of " + capacity);
                }
            }
        }
    }

    @ForEachCapacity
    void everySetterWritesItsWidthInItsByteOrderAndNothingElse(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        for (Setter s : SETTERS) {
            for (int index : indexes(capacity, s.width())) {
                for (long v : VALUES) {
                    int from = Math.max(0, index - 1);
                    int to = Math.min(capacity, index + s.width() + 1);
                    for (int i = from; i < to; i++) {
                        buf.setByte(i, 0x5a);
                    }
                    s.set().set(buf, index, v);
                    assertArrayEquals(layout(v, s.width(), s.littleEndian()), bytes(buf, index, s.width()),
                            () -> s + " at " + index + " of " + capacity);
                    if (from < index) {
                        assertEquals(0x5a, buf.getByte(from), () -> s + " wrote before " + index);
                    }
                    if (index + s.width() < to) {
                        assertEquals(0x5a, buf.getByte(index + s.width()), () -> s + " wrote past its width");
                    }
                }
            }
        }
    }

    @ForEachCapacity
    void booleansAreOneByteZeroOrNonZero(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        int last = capacity - 1;
        buf.setBoolean(0, true).setBoolean(last, false);
        assertEquals(1, buf.getByte(0));
        assertTrue(buf.getBoolean(0));
        assertFalse(buf.getBoolean(last));
        buf.setByte(last, 0x80);
        assertTrue(buf.getBoolean(last));
        buf.writerIndex(last).writeBoolean(true);
        assertEquals(1, buf.getByte(last));
        buf.readerIndex(last);
        assertTrue(buf.readBoolean());
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getBoolean(capacity));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setBoolean(-1, true));
    }

    @ForEachCapacity
    void primitiveAccessOutsideTheBufferThrowsIndexOutOfBounds(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        for (Getter g : GETTERS) {
            if (!checksBounds(g)) {
                continue;
            }
            for (int index : new int[] {-1, capacity - g.width() + 1, capacity, Integer.MAX_VALUE, Integer.MIN_VALUE}) {
                assertThrows(IndexOutOfBoundsException.class, () -> g.get().get(buf, index), () -> g + " at " + index);
            }
        }
        for (Setter s : SETTERS) {
            if (!checksBounds(s)) {
                continue;
            }
            for (int index : new int[] {-1, capacity - s.width() + 1, capacity, Integer.MAX_VALUE}) {
                assertThrows(IndexOutOfBoundsException.class, () -> s.set().set(buf, index, 1), () -> s + " at " + index);
            }
        }
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getBoolean(capacity));
    }

    @ForEachCapacity
    void relativeWritesThenReadsRoundTripAndMoveTheIndexes(int capacity) {
        for (Setter s : SETTERS) {
            Getter g = GETTERS.stream().filter(x -> x.name().equals(s.name())).findFirst().orElseThrow();
            if (capacity < 2 * s.width()) {
                continue;
            }
            ByteBuf buf = newBuffer(capacity, capacity);
            int start = capacity - 2 * s.width();
            buf.writerIndex(start).readerIndex(start);
            s.write().write(buf, VALUES[0]);
            s.write().write(buf, VALUES[2]);
            assertEquals(capacity, buf.writerIndex(), s::toString);
            assertThrows(IndexOutOfBoundsException.class, () -> s.write().write(buf, 1), () -> s + " past maxCapacity");
            assertEquals(capacity, buf.writerIndex(), () -> s + ": failed write moved the writer index");
            assertEquals(decode(layout(VALUES[0], g.width(), g.littleEndian()), g.littleEndian(), g.signed()),
                    g.read().read(buf), g::toString);
            assertEquals(start + s.width(), buf.readerIndex());
            assertEquals(decode(layout(VALUES[2], g.width(), g.littleEndian()), g.littleEndian(), g.signed()),
                    g.read().read(buf), g::toString);
            assertThrows(IndexOutOfBoundsException.class, () -> g.read().read(buf), () -> g + " past writerIndex");
            assertEquals(capacity, buf.readerIndex(), () -> g + ": failed read moved the reader index");
            buf.release();
        }
    }

    @ForEachCapacity
    void relativeReadsOfEveryGetterAtTheEndOfTheData(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        for (Getter g : GETTERS) {
            if (capacity < g.width()) {
                continue;
            }
            byte[] raw = layout(VALUES[0], g.width(), false);
            buf.clear().writerIndex(capacity - g.width());
            buf.readerIndex(buf.writerIndex());
            buf.writeBytes(raw);
            assertEquals(decode(raw, g.littleEndian(), g.signed()), g.read().read(buf), g::toString);
            assertFalse(buf.isReadable());
        }
    }

    @ForEachCapacity
    void swappedOrderViewReadsLittleEndian(int capacity) {
        ByteBuf buf = filled(capacity, 3);
        @SuppressWarnings("deprecation")
        ByteBuf le = buf.order(ByteOrder.LITTLE_ENDIAN);
        int at = capacity - 8;
        if (at < 0) {
            return;
        }
        assertEquals(buf.getIntLE(at), le.getInt(at));
        assertEquals(buf.getLongLE(at), le.getLong(at));
        assertEquals(buf.getShortLE(at + 6), le.getShort(at + 6));
        le.setInt(at, 0x01020304);
        assertEquals(0x04030201, buf.getInt(at));
    }

    // ------------------------------------------------------------------ bulk: arrays and ByteBuffers

    @ForEachCapacity
    void byteArraysCopyInAndOutAtAnyOffset(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        buf.setBytes(0, CONTENT, 7, capacity);
        assertContent(buf, 0, 7, capacity);
        byte[] out = new byte[capacity + 10];
        buf.getBytes(0, out, 5, capacity);
        assertEquals(-1, Arrays.mismatch(out, 5, 5 + capacity, CONTENT, 7, 7 + capacity), "getBytes(byte[]) content");
        int mid = capacity / 3;
        buf.setBytes(mid, CONTENT, 100, capacity - mid);
        assertContent(buf, mid, 100, capacity - mid);
        assertContent(buf, 0, 7, mid);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(1, new byte[capacity]));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(1, new byte[capacity]));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(0, new byte[4], 2, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(0, new byte[4], 2, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(-1, new byte[1]));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(0, new byte[4], -1, 1));
        assertContent(buf, 0, 7, mid);
    }

    @ForEachCapacity
    void readAndWriteBytesMoveTheIndexes(int capacity) {
        ByteBuf buf = newBuffer(capacity, capacity);
        int half = capacity / 2;
        buf.writeBytes(CONTENT, 0, half);
        assertEquals(half, buf.writerIndex());
        buf.writeBytes(CONTENT, half, capacity - half);
        assertEquals(capacity, buf.writerIndex());
        assertThrows(IndexOutOfBoundsException.class, () -> buf.writeBytes(new byte[1]));
        byte[] out = new byte[capacity];
        buf.readBytes(out, 0, half);
        assertEquals(half, buf.readerIndex());
        buf.readBytes(out, half, capacity - half);
        assertArrayEquals(content(0, capacity), out);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.readBytes(new byte[1]));
        assertEquals(capacity, buf.readerIndex());
    }

    @ForEachCapacity
    void heapAndDirectByteBuffersCopyInAndOutAndAdvanceTheirPositions(int capacity) {
        for (boolean direct : new boolean[] {false, true}) {
            ByteBuf buf = newBuffer(capacity);
            ByteBuffer src = direct ? directCopy(content(11, capacity + 3)) : ByteBuffer.wrap(content(11, capacity + 3));
            src.position(3);
            buf.setBytes(0, src);
            assertEquals(capacity + 3, src.position(), "setBytes(ByteBuffer) consumes the source");
            assertContent(buf, 0, 14, capacity);

            ByteBuffer dst = direct ? ByteBuffer.allocateDirect(capacity + 8) : ByteBuffer.allocate(capacity + 8);
            dst.position(4).limit(4 + capacity - 1);
            buf.getBytes(1, dst);
            assertEquals(4 + capacity - 1, dst.position(), "getBytes(ByteBuffer) fills the destination");
            byte[] got = new byte[capacity - 1];
            dst.position(4);
            dst.get(got);
            assertArrayEquals(content(15, capacity - 1), got);

            ByteBuffer tooBig = direct ? ByteBuffer.allocateDirect(capacity + 1) : ByteBuffer.allocate(capacity + 1);
            assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(0, tooBig));
            assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(1, ByteBuffer.allocate(capacity)));

            buf.clear();
            buf.writeBytes(ByteBuffer.wrap(content(0, capacity)));
            assertEquals(capacity, buf.writerIndex());
            ByteBuffer readInto = ByteBuffer.allocate(capacity);
            buf.readBytes(readInto);
            assertEquals(capacity, buf.readerIndex());
            assertArrayEquals(content(0, capacity), readInto.array());
            buf.release();
        }
    }

    @ForEachCapacity
    void copyingIntoAReadOnlyByteBufferThrowsReadOnlyBufferException(int capacity) {
        ByteBuf buf = filled(capacity, 0);
        assertThrows(ReadOnlyBufferException.class, () -> buf.getBytes(0, ByteBuffer.allocate(capacity).asReadOnlyBuffer()));
        assertThrows(ReadOnlyBufferException.class,
                () -> buf.getBytes(0, ByteBuffer.allocateDirect(capacity).asReadOnlyBuffer()));
        assertContent(buf, 0, 0, capacity);
        // A read-only source is fine.
        buf.setBytes(0, ByteBuffer.wrap(content(5, capacity)).asReadOnlyBuffer());
        assertContent(buf, 0, 5, capacity);
    }

    // ------------------------------------------------------------------ bulk: other ByteBufs

    @ForEachCapacity
    void copiesToAndFromHeapDirectAndOurBuffers(int capacity) {
        ByteBuf buf = filled(capacity, 21);
        List<ByteBuf> others = List.of(
                keep(Unpooled.buffer(capacity + 2)),
                keep(Unpooled.directBuffer(capacity + 2)),
                keep(ByteBufAllocator.DEFAULT.directBuffer(capacity + 2)),
                newBuffer(capacity + 2));
        for (ByteBuf other : others) {
            other.setZero(0, other.capacity());
            buf.getBytes(0, other, 1, capacity);
            assertContent(other, 1, 21, capacity);
            assertEquals(0, other.getByte(0), "getBytes wrote before dstIndex");
            assertEquals(0, other.getByte(capacity + 1), "getBytes wrote past length");

            other.setBytes(1, CONTENT, 500, capacity);
            buf.setBytes(0, other, 1, capacity);
            assertContent(buf, 0, 500, capacity);

            assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(0, other, 3, capacity));
            assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(0, other, 3, capacity));
            assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(1, other, 0, capacity));
            assertThrows(IndexOutOfBoundsException.class, () -> buf.setBytes(1, other, 0, capacity));
            buf.setBytes(0, CONTENT, 21, capacity);
        }
    }

    @ForEachCapacity
    void writeBytesAndReadBytesOfByteBufsMoveBothBuffersIndexes(int capacity) {
        ByteBuf src = filled(capacity, 9);
        ByteBuf dst = newBuffer(capacity);
        dst.writeBytes(src);
        assertEquals(capacity, src.readerIndex());
        assertEquals(capacity, dst.writerIndex());
        assertContent(dst, 0, 9, capacity);

        ByteBuf back = keep(Unpooled.directBuffer(capacity));
        dst.readBytes(back);
        assertEquals(capacity, dst.readerIndex());
        assertEquals(capacity, back.writerIndex());
        assertContent(back, 0, 9, capacity);

        src.setIndex(0, capacity);
        ByteBuf heap = keep(Unpooled.buffer(capacity));
        src.getBytes(0, heap);
        assertEquals(capacity, heap.writerIndex(), "getBytes(index, ByteBuf) fills dst's writable bytes");
        assertEquals(0, src.readerIndex(), "getBytes does not move the source reader index");
        dst.clear();
        dst.setBytes(0, heap);
        assertEquals(capacity, heap.readerIndex(), "setBytes(index, ByteBuf) consumes src's readable bytes");
        assertEquals(0, dst.writerIndex());
        assertContent(dst, 0, 9, capacity);
    }

    @ForEachCapacity
    void copiesBetweenTwoBuffersOfThisAllocatorInTheSameRegion(int capacity) {
        // Two buffers allocated back to back share a page or region where the allocator packs them.
        ByteBuf a = filled(capacity, 1);
        ByteBuf b = filled(capacity, 2);
        ByteBuf c = newBuffer(capacity);
        c.setBytes(0, a, 0, capacity);
        assertContent(c, 0, 1, capacity);
        a.getBytes(0, b, 0, capacity);
        assertContent(b, 0, 1, capacity);
        assertContent(a, 0, 1, capacity);
        c.setBytes(0, CONTENT, 3, capacity);
        b.setBytes(0, c, 0, capacity);
        assertContent(b, 0, 3, capacity);
        assertContent(a, 0, 1, capacity);
        // Through the raw buffer objects too (what a user gets when the leak detector skips a buffer).
        c.setBytes(0, unwrapAll(a), 0, capacity);
        assertContent(c, 0, 1, capacity);
        unwrapAll(b).getBytes(0, c, 0, capacity);
        assertContent(c, 0, 3, capacity);
        c.setBytes(0, unwrapAll(a), capacity / 2, capacity - capacity / 2);
        assertContent(c, 0, 1 + capacity / 2, capacity - capacity / 2);
    }

    /** The innermost buffer: our raw object under a leak-aware wrapper, or a reference's own. */
    static ByteBuf unwrapAll(ByteBuf buf) {
        ByteBuf b = buf;
        while (b.unwrap() != null && b.getClass().getSimpleName().contains("LeakAware")) {
            b = b.unwrap();
        }
        return b;
    }

    @ForEachCapacity
    void overlappingCopiesWithinOneBufferBehaveLikeMemmove(int capacity) {
        if (capacity < 4) {
            return;
        }
        int len = capacity - capacity / 4;
        int shift = capacity / 4;
        for (boolean raw : new boolean[] {false, true}) {
            ByteBuf buf = filled(capacity, 40);
            ByteBuf src = raw ? unwrapAll(buf) : buf;
            // forward: destination after source
            buf.setBytes(shift, src, 0, len);
            assertContent(buf, shift, 40, len);
            assertContent(buf, 0, 40, shift);
            // backward: destination before source
            buf.setBytes(0, CONTENT, 40, capacity);
            buf.setBytes(0, src, shift, len);
            assertContent(buf, 0, 40 + shift, len);
            // getBytes into itself
            buf.setBytes(0, CONTENT, 40, capacity);
            buf.getBytes(0, buf, shift, len);
            assertContent(buf, shift, 40, len);
            // and through the raw object
            buf.setBytes(0, CONTENT, 40, capacity);
            buf.setBytes(shift, unwrapAll(buf), 0, len);
            assertContent(buf, shift, 40, len);
            buf.setBytes(0, CONTENT, 40, capacity);
            unwrapAll(buf).setBytes(0, unwrapAll(buf), shift, len);
            assertContent(buf, 0, 40 + shift, len);
            buf.release();
        }
    }

    @ForEachCapacity
    void compositeBuffersOfTheseBuffersReadAndWriteThrough(int capacity) {
        ByteBuf a = filled(capacity, 0);
        ByteBuf b = filled(capacity, capacity);
        CompositeByteBuf composite = Unpooled.compositeBuffer();
        composite.addComponents(true, a.retain(), b.retain());
        keep(composite);
        assertEquals(2 * capacity, composite.readableBytes());
        assertContent(composite, 0, 0, 2 * capacity);
        ByteBuffer[] nio = composite.nioBuffers();
        int total = 0;
        for (ByteBuffer bb : nio) {
            total += bb.remaining();
        }
        assertEquals(2 * capacity, total);
        ByteBuf target = newBuffer(2 * capacity);
        target.writeBytes(composite, 0, 2 * capacity);
        assertContent(target, 0, 0, 2 * capacity);
        composite.setBytes(0, CONTENT, 77, 2 * capacity);
        assertContent(a, 0, 77, capacity);
        assertContent(b, 0, 77 + capacity, capacity);
        composite.release();
        assertEquals(1, a.refCnt());
        assertEquals(1, b.refCnt());
    }

    // ------------------------------------------------------------------ bulk: streams and channels

    @ForEachCapacity
    void inputAndOutputStreamsCopyTheBytes(int capacity) throws IOException {
        ByteBuf buf = newBuffer(capacity);
        int n = buf.setBytes(0, new ByteArrayInputStream(content(33, capacity)), capacity);
        assertEquals(capacity, n);
        assertContent(buf, 0, 33, capacity);
        assertEquals(-1, buf.setBytes(0, InputStream.nullInputStream(), 1), "end of stream is -1");
        assertContent(buf, 0, 33, capacity);

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        buf.getBytes(0, out, capacity);
        assertArrayEquals(content(33, capacity), out.toByteArray());

        buf.clear();
        assertEquals(capacity, buf.writeBytes(new ByteArrayInputStream(content(44, capacity)), capacity));
        assertEquals(capacity, buf.writerIndex());
        out.reset();
        buf.readBytes(out, capacity);
        assertEquals(capacity, buf.readerIndex());
        assertArrayEquals(content(44, capacity), out.toByteArray());
        if (checksStreamBounds()) {
            assertThrows(IndexOutOfBoundsException.class, () -> buf.getBytes(1, new ByteArrayOutputStream(), capacity));
        }
        assertThrows(IndexOutOfBoundsException.class,
                () -> buf.setBytes(1, new ByteArrayInputStream(new byte[capacity]), capacity));
    }

    @ForEachCapacity
    void fileChannelsCopyTheBytesWithAndWithoutPosition(int capacity, @TempDir Path dir) throws IOException {
        Path file = dir.resolve("data");
        ByteBuf buf = filled(capacity, 55);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            // GatheringByteChannel form, relative to the channel's position
            int written = 0;
            while (written < capacity) {
                written += buf.getBytes(written, (GatheringByteChannel) ch, capacity - written);
            }
            assertEquals(capacity, ch.size());
            assertEquals(0, buf.readerIndex(), "getBytes does not move the reader index");
            // FileChannel form at an explicit position, leaving the channel position alone
            long pos = ch.position();
            int w2 = 0;
            while (w2 < capacity) {
                w2 += buf.getBytes(w2, ch, capacity + 10 + w2, capacity - w2);
            }
            assertEquals(pos, ch.position());
            byte[] disk = Files.readAllBytes(file);
            assertEquals(-1, Arrays.mismatch(disk, 0, capacity, CONTENT, 55, 55 + capacity));
            assertEquals(-1, Arrays.mismatch(disk, capacity + 10, 2 * capacity + 10, CONTENT, 55, 55 + capacity));

            ByteBuf in = newBuffer(capacity);
            int read = 0;
            while (read < capacity) {
                int r = in.setBytes(read, ch, capacity + 10 + read, capacity - read);
                assertTrue(r > 0);
                read += r;
            }
            assertContent(in, 0, 55, capacity);
            in.setZero(0, capacity);
            ch.position(0);
            read = 0;
            while (read < capacity) {
                int r = in.setBytes(read, (ScatteringByteChannel) ch, capacity - read);
                assertTrue(r > 0);
                read += r;
            }
            assertContent(in, 0, 55, capacity);
            assertEquals(-1, in.setBytes(0, ch, 3L * capacity + 20, 1), "reading past the end of file is -1");

            in.clear();
            ch.position(0);
            assertEquals(capacity, in.writeBytes(ch, 0L, capacity));
            assertEquals(capacity, in.writerIndex());
            assertContent(in, 0, 55, capacity);
            ch.truncate(0);
            ch.position(0);
            int out = 0;
            while (in.isReadable()) {
                out += in.readBytes((GatheringByteChannel) ch, in.readableBytes());
            }
            assertEquals(capacity, out);
            assertEquals(capacity, in.readerIndex());
        }
    }

    @ForEachCapacity
    void pipesAreGatheringAndScatteringChannelsToo(int capacity) throws IOException {
        int length = Math.min(capacity, 4096); // fits a pipe's kernel buffer without a reader thread
        ByteBuf buf = filled(capacity, 66);
        Pipe pipe = Pipe.open();
        Pipe.SinkChannel sink = pipe.sink();
        try (Pipe.SourceChannel source = pipe.source()) {
            int w = 0;
            while (w < length) {
                w += buf.getBytes(capacity - length + w, sink, length - w);
            }
            ByteBuf in = newBuffer(capacity);
            int r = 0;
            while (r < length) {
                r += in.setBytes(r, source, length - r);
            }
            assertContent(in, 0, 66 + capacity - length, length);
            sink.close();
            assertEquals(-1, in.setBytes(0, source, 1), "a closed pipe reads as end of stream");
        } finally {
            sink.close();
        }
    }

    // ------------------------------------------------------------------ NIO views and addresses

    @ForEachCapacity
    void nioBufferSharesContentButNotIndexes(int capacity) {
        ByteBuf buf = filled(capacity, 13);
        buf.readerIndex(1);
        ByteBuffer nio = buf.nioBuffer();
        assertEquals(capacity - 1, nio.remaining());
        assertEquals(ByteOrder.BIG_ENDIAN, nio.order());
        byte[] got = new byte[capacity - 1];
        nio.duplicate().get(got);
        assertArrayEquals(content(14, capacity - 1), got);
        nio.position(nio.limit());
        assertEquals(1, buf.readerIndex(), "moving the NIO buffer does not move the ByteBuf");
        assertEquals(capacity, buf.writerIndex());

        ByteBuffer other = buf.nioBuffer(0, capacity);
        assertNotSame(nio, other);
        assertEquals(0, other.position());
        assertEquals(capacity, other.remaining());
        other.put(capacity - 1, (byte) 0x42);
        assertEquals(0x42, buf.getByte(capacity - 1), "a direct buffer's NIO view shares its memory");
        buf.setByte(0, 0x24);
        assertEquals(0x24, other.get(0));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.nioBuffer(1, capacity));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.nioBuffer(-1, 1));
    }

    @ForEachCapacity
    void nioBuffersCoverTheRequestedRange(int capacity) {
        ByteBuf buf = filled(capacity, 17);
        assertTrue(buf.nioBufferCount() >= 1);
        int from = capacity / 3;
        ByteBuffer[] parts = buf.nioBuffers(from, capacity - from);
        ByteBuffer joined = ByteBuffer.allocate(capacity - from);
        for (ByteBuffer p : parts) {
            joined.put(p.duplicate());
        }
        assertFalse(joined.hasRemaining());
        assertArrayEquals(content(17 + from, capacity - from), joined.array());
        ByteBuffer[] all = buf.nioBuffers();
        int total = 0;
        for (ByteBuffer p : all) {
            total += p.remaining();
        }
        assertEquals(capacity, total);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.nioBuffers(from, capacity));
    }

    @ForEachCapacity
    void internalNioBufferCoversExactlyTheRange(int capacity) {
        ByteBuf buf = filled(capacity, 19);
        int from = capacity / 2;
        ByteBuffer in = buf.internalNioBuffer(from, capacity - from);
        assertEquals(capacity - from, in.remaining());
        byte[] got = new byte[capacity - from];
        in.duplicate().get(got);
        assertArrayEquals(content(19 + from, capacity - from), got);
        ByteBuffer again = buf.internalNioBuffer(0, 1);
        assertEquals(1, again.remaining());
        assertEquals(CONTENT[19], again.get(again.position()));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.internalNioBuffer(from, capacity));
    }

    @ForEachCapacity
    void memoryAddressIsNonZeroStableAndPointsAtTheBytes(int capacity) {
        ByteBuf buf = filled(capacity, 23);
        if (!buf.hasMemoryAddress()) {
            assertThrows(UnsupportedOperationException.class, buf::memoryAddress);
            return;
        }
        long address = buf.memoryAddress();
        assertNotEquals(0, address);
        buf.setInt(0, 42);
        buf.readerIndex(3);
        buf.getBytes(0, new byte[capacity]);
        assertEquals(address, buf.memoryAddress(), "memoryAddress changed without reallocation");
        assertTrue(buf.isContiguous());
        long nioAddress = directAddress(buf.nioBuffer(0, capacity));
        if (nioAddress != -1) {
            assertEquals(address, nioAddress, "memoryAddress is where the NIO view's bytes are");
            assertEquals(address + capacity - 1, directAddress(buf.nioBuffer(capacity - 1, 1)));
        }
        if (PlatformDependent.hasUnsafe()) {
            assertEquals(buf.getByte(capacity - 1), PlatformDependent.getByte(address + capacity - 1));
            assertEquals(buf.getByte(3), PlatformDependent.getByte(address + 3));
            PlatformDependent.putByte(address + capacity / 2, (byte) 0x77);
            assertEquals(0x77, buf.getByte(capacity / 2));
        }
        ByteBuf slice = buf.slice(1, capacity - 1);
        assertTrue(slice.hasMemoryAddress());
        assertEquals(address + 1, slice.memoryAddress());
    }

    /**
     * Native address of a direct ByteBuffer's first remaining byte: through Netty's Unsafe access
     * where it has it (JDK 17), else through {@code java.lang.foreign} (JDK 22+, by reflection since
     * the tests compile for 17); -1 if neither is there.
     */
    static long directAddress(ByteBuffer bb) {
        if (PlatformDependent.hasUnsafe()) {
            return PlatformDependent.directBufferAddress(bb) + bb.position();
        }
        try {
            Class<?> segment = Class.forName("java.lang.foreign.MemorySegment");
            Object seg = segment.getMethod("ofBuffer", java.nio.Buffer.class).invoke(null, bb);
            return (long) segment.getMethod("address").invoke(seg);
        } catch (ReflectiveOperationException | LinkageError e) {
            return -1;
        }
    }

    // ------------------------------------------------------------------ copies and derived buffers

    @ForEachCapacity
    void copyIsIndependentAndExact(int capacity) {
        ByteBuf buf = filled(capacity, 29);
        buf.readerIndex(1);
        ByteBuf copy = keep(buf.copy());
        assertEquals(capacity - 1, copy.capacity());
        assertEquals(0, copy.readerIndex());
        assertEquals(capacity - 1, copy.writerIndex());
        assertContent(copy, 0, 30, capacity - 1);
        copy.setByte(0, ~CONTENT[30]);
        assertEquals(CONTENT[30], buf.getByte(1), "writing the copy changed the original");
        assertEquals(1, buf.refCnt());
        assertEquals(1, copy.refCnt());
        assertTrue(copy.isDirect());
        ByteBuf range = keep(buf.copy(capacity / 2, capacity - capacity / 2));
        assertContent(range, 0, 29 + capacity / 2, capacity - capacity / 2);
        assertThrows(IndexOutOfBoundsException.class, () -> keep(buf.copy(1, capacity)));
        copy.release();
        range.release();
        assertContent(buf, 0, 29, capacity);
    }

    @ForEachCapacity
    void sliceAndDuplicateShareContentWithIndependentIndexes(int capacity) {
        ByteBuf buf = filled(capacity, 31);
        buf.readerIndex(1);
        ByteBuf slice = buf.slice();
        assertEquals(capacity - 1, slice.capacity());
        assertEquals(0, slice.readerIndex());
        assertEquals(capacity - 1, slice.writerIndex());
        assertContent(slice, 0, 32, capacity - 1);
        slice.setByte(0, 0x11);
        assertEquals(0x11, buf.getByte(1), "slice writes show in the parent");
        buf.setByte(capacity - 1, 0x22);
        assertEquals(0x22, slice.getByte(capacity - 2), "parent writes show in the slice");
        slice.readerIndex(5);
        assertEquals(1, buf.readerIndex());
        assertThrows(IndexOutOfBoundsException.class, () -> slice.getByte(capacity - 1));
        assertThrows(IndexOutOfBoundsException.class, () -> slice.writeByte(1), "a slice cannot grow");

        ByteBuf dup = buf.duplicate();
        assertEquals(capacity, dup.capacity());
        assertEquals(1, dup.readerIndex());
        assertEquals(capacity, dup.writerIndex());
        dup.readerIndex(0).writerIndex(3);
        assertEquals(1, buf.readerIndex());
        assertEquals(capacity, buf.writerIndex());
        dup.setByte(2, 0x33);
        assertEquals(0x33, buf.getByte(2));

        ByteBuf readSlice = buf.readSlice(Math.min(4, capacity - 1));
        assertEquals(1 + Math.min(4, capacity - 1), buf.readerIndex());
        assertEquals(0x11, readSlice.getByte(0));

        assertEquals(1, buf.refCnt());
        assertEquals(1, slice.refCnt(), "a plain slice shares the parent's count");
        slice.retain();
        assertEquals(2, buf.refCnt());
        slice.release();
        assertEquals(1, buf.refCnt());
    }

    @ForEachCapacity
    void retainedSliceKeepsTheMemoryAliveAfterTheParentIsReleased(int capacity) {
        ByteBuf buf = filled(capacity, 37);
        ByteBuf slice = buf.retainedSlice(1, capacity - 1);
        ByteBuf dup = buf.retainedDuplicate();
        assertEquals(3, buf.refCnt());
        assertFalse(buf.release(), "the derived buffers still hold references");
        // Churn the allocator: if the memory had gone back it would now hold other bytes.
        List<ByteBuf> churn = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            ByteBuf other = newBuffer(capacity);
            other.writeBytes(CONTENT, 1000, capacity);
            churn.add(other);
        }
        assertContent(slice, 0, 38, capacity - 1);
        assertContent(dup, 0, 37, capacity);
        dup.release();
        for (ByteBuf other : churn) {
            other.release();
        }
        for (int i = 0; i < 8; i++) {
            churn.set(i, newBuffer(capacity).writeBytes(CONTENT, 2000, capacity));
        }
        assertContent(slice, 0, 38, capacity - 1);
        assertTrue(slice.release());
        for (ByteBuf other : churn) {
            other.release();
        }
        assertEquals(0, buf.refCnt());
    }

    @ForEachCapacity
    void retainedSliceAndDuplicateEachHoldOneReference(int capacity) {
        ByteBuf buf = filled(capacity, 41);
        ByteBuf slice = buf.retainedSlice();
        assertEquals(2, buf.refCnt());
        assertContent(slice, 0, 41, capacity);
        assertFalse(buf.release());
        assertEquals(1, slice.refCnt());
        assertContent(slice, 0, 41, capacity);
        assertTrue(slice.release());
        assertEquals(0, buf.refCnt());
        assertThrows(IllegalReferenceCountException.class, () -> slice.getByte(0));

        ByteBuf buf2 = filled(capacity, 43);
        ByteBuf dup = buf2.retainedDuplicate();
        assertTrue(buf2.release() == false);
        assertContent(dup, 0, 43, capacity);
        assertTrue(dup.release());
        assertEquals(0, buf2.refCnt());
    }

    @ForEachCapacity
    void readRetainedSliceMovesTheReaderAndHoldsAReference(int capacity) {
        ByteBuf buf = filled(capacity, 47);
        int n = capacity / 2;
        ByteBuf part = buf.readRetainedSlice(n);
        assertEquals(n, buf.readerIndex());
        assertEquals(n, part.readableBytes());
        assertEquals(2, buf.refCnt());
        buf.release();
        assertContent(part, 0, 47, n);
        assertTrue(part.release());
        assertThrows(IndexOutOfBoundsException.class, () -> filled(capacity, 0).readRetainedSlice(capacity + 1));
    }

    @ForEachCapacity
    void retainAndReleaseCountReferences(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        assertEquals(1, buf.refCnt());
        assertSame(buf, buf.retain());
        buf.retain(3);
        assertEquals(5, buf.refCnt());
        assertFalse(buf.release(2));
        assertEquals(3, buf.refCnt());
        assertThrows(IllegalReferenceCountException.class, () -> buf.release(4));
        assertEquals(3, buf.refCnt(), "a release that would go negative changes nothing");
        assertThrows(IllegalArgumentException.class, () -> buf.release(0));
        assertThrows(IllegalArgumentException.class, () -> buf.retain(0));
        assertFalse(buf.release());
        assertTrue(buf.release(2));
        assertEquals(0, buf.refCnt());
        assertThrows(IllegalReferenceCountException.class, buf::release);
        assertThrows(IllegalReferenceCountException.class, buf::retain);
        assertThrows(IllegalReferenceCountException.class, () -> buf.retain(2));
    }

    /** Every access a user might attempt on a released buffer. */
    static List<Named<Consumer<ByteBuf>>> accessesAfterRelease() {
        List<Named<Consumer<ByteBuf>>> all = new ArrayList<>();
        all.add(Named.of("getByte", b -> b.getByte(0)));
        all.add(Named.of("getUnsignedByte", b -> b.getUnsignedByte(0)));
        all.add(Named.of("getShortLE", b -> b.getShortLE(0)));
        all.add(Named.of("getInt", b -> b.getInt(0)));
        all.add(Named.of("getLongLE", b -> b.getLongLE(0)));
        all.add(Named.of("getDouble", b -> b.getDouble(0)));
        all.add(Named.of("setByte", b -> b.setByte(0, 1)));
        all.add(Named.of("setMedium", b -> b.setMedium(0, 1)));
        all.add(Named.of("setIntLE", b -> b.setIntLE(0, 1)));
        all.add(Named.of("setLong", b -> b.setLong(0, 1)));
        all.add(Named.of("readByte", ByteBuf::readByte));
        all.add(Named.of("readInt", ByteBuf::readInt));
        all.add(Named.of("writeByte", b -> b.writeByte(1)));
        all.add(Named.of("writeLong", b -> b.writeLong(1)));
        all.add(Named.of("getBytes(byte[])", b -> b.getBytes(0, new byte[1])));
        all.add(Named.of("setBytes(byte[])", b -> b.setBytes(0, new byte[1])));
        all.add(Named.of("readBytes(byte[])", b -> b.readBytes(new byte[1])));
        all.add(Named.of("writeBytes(byte[])", b -> b.writeBytes(new byte[1])));
        all.add(Named.of("getBytes(ByteBuffer)", b -> b.getBytes(0, ByteBuffer.allocate(1))));
        all.add(Named.of("setBytes(ByteBuffer)", b -> b.setBytes(0, ByteBuffer.allocate(1))));
        all.add(Named.of("getBytes(heap ByteBuf)", b -> b.getBytes(0, Unpooled.wrappedBuffer(new byte[1]), 0, 1)));
        all.add(Named.of("setBytes(heap ByteBuf)", b -> b.setBytes(0, Unpooled.wrappedBuffer(new byte[1]), 0, 1)));
        all.add(Named.of("getBytes(OutputStream)", b -> {
            try {
                b.getBytes(0, new ByteArrayOutputStream(), 1);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }));
        all.add(Named.of("setBytes(InputStream)", b -> {
            try {
                b.setBytes(0, new ByteArrayInputStream(new byte[1]), 1);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }));
        all.add(Named.of("setZero", b -> b.setZero(0, 1)));
        all.add(Named.of("writeZero", b -> b.writeZero(1)));
        all.add(Named.of("setCharSequence", b -> b.setCharSequence(0, "a", StandardCharsets.UTF_8)));
        all.add(Named.of("getCharSequence", b -> b.getCharSequence(0, 1, StandardCharsets.US_ASCII)));
        all.add(Named.of("nioBuffer()", ByteBuf::nioBuffer));
        all.add(Named.of("nioBuffer(index, length)", b -> b.nioBuffer(0, 1)));
        all.add(Named.of("nioBuffers()", ByteBuf::nioBuffers));
        all.add(Named.of("internalNioBuffer", b -> b.internalNioBuffer(0, 1)));
        all.add(Named.of("capacity(grow)", b -> b.capacity(b.capacity() * 2 + 1)));
        all.add(Named.of("capacity(shrink)", b -> b.capacity(1)));
        all.add(Named.of("ensureWritable", b -> b.ensureWritable(1)));
        all.add(Named.of("copy", ByteBuf::copy));
        all.add(Named.of("slice().getByte", b -> b.slice().getByte(0)));
        all.add(Named.of("duplicate().getByte", b -> b.duplicate().getByte(0)));
        all.add(Named.of("retainedSlice", ByteBuf::retainedSlice));
        all.add(Named.of("retainedDuplicate", ByteBuf::retainedDuplicate));
        all.add(Named.of("forEachByte", b -> b.forEachByte(ByteProcessor.FIND_NUL)));
        all.add(Named.of("indexOf", b -> b.indexOf(0, 1, (byte) 0)));
        all.add(Named.of("discardReadBytes", ByteBuf::discardReadBytes));
        return all;
    }

    @ForEachCapacity
    void everyAccessAfterReleaseThrowsIllegalReferenceCount(int capacity) {
        List<String> failures = new ArrayList<>();
        for (Named<Consumer<ByteBuf>> access : accessesAfterRelease()) {
            ByteBuf buf = filled(capacity, 0);
            buf.readerIndex(1);
            boolean hadAddress = buf.hasMemoryAddress();
            assertTrue(buf.release());
            try {
                access.getPayload().accept(buf);
                failures.add(access.getName() + ": no exception");
            } catch (IllegalReferenceCountException expected) {
                // the contract
            } catch (RuntimeException e) {
                failures.add(access.getName() + ": " + e);
            }
            if (hadAddress) {
                assertThrows(IllegalReferenceCountException.class, buf::memoryAddress);
            }
        }
        assertEquals(List.of(), failures, "accesses after release that did not throw IllegalReferenceCountException");
    }

    @ForEachCapacity
    void copyingFromOrIntoAReleasedBufferOfThisAllocatorThrowsIllegalReferenceCount(int capacity) {
        ByteBuf live = filled(capacity, 0);
        List<String> failures = new ArrayList<>();
        for (boolean raw : new boolean[] {false, true}) {
            ByteBuf dead = newBuffer(capacity);
            ByteBuf deadView = raw ? unwrapAll(dead) : dead;
            dead.release();
            String which = raw ? "raw " : "wrapped ";
            for (Named<Consumer<ByteBuf>> copy : List.<Named<Consumer<ByteBuf>>>of(
                    Named.of("setBytes from a released source", b -> b.setBytes(0, deadView, 0, 1)),
                    Named.of("getBytes into a released destination", b -> b.getBytes(0, deadView, 0, 1)),
                    Named.of("writeBytes from a released source", b -> b.writeBytes(deadView, 0, 1)))) {
                try {
                    copy.getPayload().accept(live);
                    failures.add(which + copy.getName() + ": no exception");
                } catch (IllegalReferenceCountException expected) {
                    // the contract
                } catch (RuntimeException e) {
                    failures.add(which + copy.getName() + ": " + e);
                }
                live.writerIndex(capacity);
            }
        }
        assertEquals(List.of(), failures);
        assertContent(live, 0, 0, capacity);
    }

    // ------------------------------------------------------------------ indexes and marks

    @ForEachCapacity
    void readerAndWriterIndexesAreValidated(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        assertEquals(0, buf.readerIndex());
        assertEquals(0, buf.writerIndex());
        assertEquals(capacity, buf.writableBytes());
        buf.writerIndex(capacity);
        assertEquals(capacity, buf.readableBytes());
        assertThrows(IndexOutOfBoundsException.class, () -> buf.writerIndex(capacity + 1));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.readerIndex(capacity + 1));
        buf.readerIndex(capacity / 2);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.writerIndex(capacity / 2 - 1));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.readerIndex(-1));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setIndex(2, 1));
        buf.setIndex(0, 0);
        assertTrue(buf.isWritable(capacity));
        assertFalse(buf.isReadable());
        buf.writerIndex(capacity);
        buf.skipBytes(capacity - 1);
        assertTrue(buf.isReadable(1));
        assertFalse(buf.isReadable(2));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.skipBytes(2));
        assertEquals(capacity - 1, buf.readerIndex());
    }

    @ForEachCapacity
    void marksRestoreTheIndexes(int capacity) {
        ByteBuf buf = filled(capacity, 0);
        buf.readerIndex(1).markReaderIndex();
        buf.readerIndex(capacity);
        buf.resetReaderIndex();
        assertEquals(1, buf.readerIndex());
        buf.writerIndex(capacity - 1).markWriterIndex();
        buf.writerIndex(capacity);
        buf.resetWriterIndex();
        assertEquals(capacity - 1, buf.writerIndex());
        buf.clear();
        buf.writerIndex(1).markWriterIndex();
        buf.writerIndex(2).readerIndex(2);
        assertThrows(IndexOutOfBoundsException.class, buf::resetWriterIndex, "marked writer index below reader index");
    }

    @ForEachCapacity
    void discardReadBytesMovesTheUnreadBytesToTheFront(int capacity) {
        ByteBuf buf = filled(capacity, 50);
        int read = capacity / 3;
        buf.readerIndex(read);
        buf.markReaderIndex();
        buf.discardReadBytes();
        assertEquals(0, buf.readerIndex());
        assertEquals(capacity - read, buf.writerIndex());
        assertContent(buf, 0, 50 + read, capacity - read);
        buf.resetReaderIndex();
        assertEquals(0, buf.readerIndex(), "marks move down with the discarded bytes");
        assertEquals(capacity, buf.capacity());

        ByteBuf all = filled(capacity, 60);
        all.readerIndex(capacity);
        all.discardSomeReadBytes();
        assertEquals(0, all.readerIndex());
        assertEquals(0, all.writerIndex());

        ByteBuf some = filled(capacity, 70);
        some.readerIndex(read);
        some.discardSomeReadBytes();
        assertEquals(capacity - read, some.readableBytes());
        assertContent(some, some.readerIndex(), 70 + read, capacity - read);
    }

    // ------------------------------------------------------------------ capacity and growth

    @ForEachCapacity
    void capacityIsTheRequestedCapacity(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        assertEquals(capacity, buf.capacity());
        assertEquals(Integer.MAX_VALUE, buf.maxCapacity());
        assertTrue(buf.isDirect());
        assertFalse(buf.hasArray());
        assertThrows(UnsupportedOperationException.class, buf::array);
        assertThrows(UnsupportedOperationException.class, buf::arrayOffset);
        assertFalse(buf.isReadOnly());
        assertSame(allocator(), buf.alloc());
        ByteBuf bounded = newBuffer(capacity, capacity + 5);
        assertEquals(capacity, bounded.capacity());
        assertEquals(capacity + 5, bounded.maxCapacity());
    }

    @ForEachCapacity
    void growingTheCapacityKeepsTheContent(int capacity) {
        ByteBuf buf = filled(capacity, 80);
        buf.readerIndex(1);
        int[] targets = {capacity + 1, Math.min(capacity * 2, 5 * MIB), Math.min(capacity * 2 + 4096, 5 * MIB), 5 * MIB};
        for (int target : targets) {
            if (target <= buf.capacity()) {
                continue;
            }
            buf.capacity(target);
            assertEquals(target, buf.capacity());
            assertEquals(1, buf.readerIndex());
            assertEquals(capacity, buf.writerIndex());
            assertContent(buf, 0, 80, capacity);
            buf.setBytes(capacity, CONTENT, 80 + capacity, target - capacity);
            assertContent(buf, 0, 80, target);
        }
    }

    @ForEachCapacity
    void shrinkingTheCapacityKeepsTheHeadAndTrimsTheIndexes(int capacity) {
        ByteBuf buf = filled(capacity, 90);
        buf.readerIndex(capacity - 1);
        int half = capacity / 2;
        buf.capacity(half);
        assertEquals(half, buf.capacity());
        assertEquals(half, buf.writerIndex());
        assertEquals(half, buf.readerIndex());
        assertContent(buf, 0, 90, half);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.getByte(half));

        ByteBuf small = filled(capacity, 91);
        small.readerIndex(1).writerIndex(3);
        small.capacity(2);
        assertEquals(2, small.capacity());
        assertEquals(1, small.readerIndex());
        assertEquals(2, small.writerIndex());
        assertContent(small, 0, 91, 2);
        small.capacity(capacity);
        assertContent(small, 0, 91, 2);

        ByteBuf zero = filled(capacity, 92);
        zero.capacity(0);
        assertEquals(0, zero.capacity());
        assertEquals(0, zero.readerIndex());
        assertEquals(0, zero.writerIndex());
        zero.writeBytes(CONTENT, 0, capacity);
        assertContent(zero, 0, 0, capacity);

        ByteBuf shrinkByOne = filled(capacity, 93);
        shrinkByOne.capacity(capacity - 1);
        assertContent(shrinkByOne, 0, 93, capacity - 1);
        assertEquals(capacity - 1, shrinkByOne.writerIndex());
    }

    @ForEachCapacity
    void capacityBeyondTheMaximumIsRejected(int capacity) {
        ByteBuf buf = newBuffer(capacity, capacity + 10);
        assertThrows(IllegalArgumentException.class, () -> buf.capacity(capacity + 11));
        assertThrows(IllegalArgumentException.class, () -> buf.capacity(-1));
        buf.writerIndex(capacity);
        buf.writeBytes(CONTENT, 0, 10);
        assertEquals(capacity + 10, buf.capacity());
        assertThrows(IndexOutOfBoundsException.class, () -> buf.writeByte(1));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.ensureWritable(1));
        assertEquals(1, buf.ensureWritable(1, false), "1: not enough room, capacity unchanged");
        assertEquals(capacity + 10, buf.capacity());
        assertContent(buf, capacity, 0, 10);
    }

    @ForEachCapacity
    void ensureWritableReportsWhatItDid(int capacity) {
        ByteBuf buf = newBuffer(capacity, 2 * capacity + 100);
        assertEquals(0, buf.ensureWritable(capacity, false), "0: enough room already");
        buf.writeBytes(CONTENT, 0, capacity);
        assertEquals(2, buf.ensureWritable(capacity, false), "2: grown");
        assertTrue(buf.writableBytes() >= capacity);
        assertContent(buf, 0, 0, capacity);
        int tooMuch = buf.maxCapacity() - buf.writerIndex() + 1;
        assertEquals(1, buf.ensureWritable(tooMuch, false), "1: cannot grow that far");
        int cap = buf.capacity();
        assertEquals(cap == buf.maxCapacity() ? 1 : 3, buf.ensureWritable(tooMuch, true), "3: grown to the maximum");
        assertEquals(buf.maxCapacity(), buf.capacity());
        assertContent(buf, 0, 0, capacity);
    }

    @ForEachCapacity
    void maxFastWritableBytesIsAtLeastTheWritableBytesAndNeedsNoCopy(int capacity) {
        ByteBuf buf = filled(capacity, 95);
        buf.writerIndex(capacity / 2);
        assertTrue(buf.maxFastWritableBytes() >= buf.writableBytes());
        buf.writerIndex(capacity);
        int fast = buf.maxFastWritableBytes();
        assertTrue(fast >= 0);
        if (fast > 0 && buf.hasMemoryAddress()) {
            long address = buf.memoryAddress();
            buf.ensureWritable(fast);
            assertEquals(address, buf.memoryAddress(), "growth within maxFastWritableBytes moved the memory");
            assertContent(buf, 0, 95, capacity);
        }
        ByteBuf bounded = newBuffer(capacity, capacity);
        assertEquals(capacity, bounded.maxFastWritableBytes(), "never more than maxCapacity allows");
    }

    @Test
    void ensureWritableGrowsAcrossEverySizeClassKeepingTheContent() {
        ByteBuf buf = newBuffer(64);
        int[] steps = {64, 2048, 4096, 32768, 4 * MIB, 4 * MIB + 1, 9 * MIB};
        int written = 0;
        for (int step : steps) {
            buf.ensureWritable(step - written);
            assertTrue(buf.capacity() >= step, () -> "capacity " + buf.capacity() + " after growing to " + step);
            buf.writeBytes(CONTENT, written % 4096, step - written);
            assertContent(buf, written, written % 4096, step - written);
            written = step;
        }
        // re-check the whole history: segment i spans [steps[i-1], steps[i]) from CONTENT[steps[i-1] % 4096]
        int prev = 0;
        for (int step : steps) {
            assertContent(buf, prev, prev % 4096, step - prev);
            prev = step;
        }
    }

    @Test
    void capacityGrowsAcrossEverySizeClassKeepingTheContent() {
        ByteBuf buf = newBuffer(1);
        buf.writeByte(CONTENT[0]);
        int[] steps = {64, 2048, 2049, 4096, 4097, 32768, 32769, 4 * MIB, 4 * MIB + 1, 64, 1};
        int valid = 1;
        for (int step : steps) {
            buf.capacity(step);
            assertEquals(step, buf.capacity());
            valid = Math.min(valid, step);
            assertContent(buf, 0, 0, valid);
            buf.setBytes(0, CONTENT, 0, step);
            valid = step;
        }
    }

    // ------------------------------------------------------------------ comparison and text

    @ForEachCapacity
    void equalsHashCodeAndCompareToAgreeWithNettyBuffersOfEqualContent(int capacity) {
        ByteBuf buf = filled(capacity, 100);
        ByteBuf heap = keep(Unpooled.wrappedBuffer(content(100, capacity)));
        ByteBuf direct = keep(Unpooled.directBuffer(capacity).writeBytes(CONTENT, 100, capacity));
        // Netty's utilities read the other side byte by byte; through a PARANOID leak-aware wrapper
        // every read records a stack trace, so they are handed the innermost buffer.
        ByteBuf inner = unwrapAll(buf);
        for (ByteBuf other : List.of(heap, unwrapAll(direct))) {
            assertEquals(other, inner);
            assertEquals(buf, other);
            assertEquals(other.hashCode(), buf.hashCode());
            assertEquals(0, buf.compareTo(other));
            assertEquals(0, other.compareTo(inner));
        }
        int at = capacity - 1;
        int original = buf.getUnsignedByte(at);
        buf.setByte(at, original + 1);
        assertNotEquals(heap, inner);
        assertNotEquals(buf, heap);
        assertEquals(Integer.signum(((original + 1) & 0xff) - original), Integer.signum(buf.compareTo(heap)),
                "compareTo compares unsigned bytes");
        buf.setByte(at, original);
        buf.readerIndex(1);
        assertNotEquals(heap, inner, "equality is over the readable bytes");
        heap.readerIndex(1);
        assertEquals(heap, inner);
        assertEquals(heap.hashCode(), buf.hashCode());
    }

    @ForEachCapacity
    void textAndHexDumpMatchTheBytes(int capacity) {
        String text = "h\u00e9llo \u4e16\u754c \uD83D\uDE00 ascii".repeat(Math.max(1, capacity / 25));
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        ByteBuf buf = newBuffer(capacity);
        int n = Math.min(utf8.length, capacity);
        buf.writeBytes(utf8, 0, n);
        ByteBuf heap = keep(Unpooled.wrappedBuffer(utf8, 0, n));
        for (Charset cs : List.of(StandardCharsets.UTF_8, StandardCharsets.ISO_8859_1, StandardCharsets.US_ASCII,
                StandardCharsets.UTF_16BE)) {
            assertEquals(heap.toString(cs), buf.toString(cs), cs::name);
        }
        assertEquals(new String(utf8, 0, n, StandardCharsets.ISO_8859_1), buf.toString(StandardCharsets.ISO_8859_1));
        assertEquals(ByteBufUtil.hexDump(heap), ByteBufUtil.hexDump(unwrapAll(buf)));
        int pretty = Math.min(n, 300);
        assertEquals(ByteBufUtil.prettyHexDump(heap, 0, pretty), ByteBufUtil.prettyHexDump(buf, 0, pretty));
        buf.clear().writeBytes(new byte[] {0x00, 0x0f, (byte) 0xa5, (byte) 0xff});
        assertEquals("000fa5ff", ByteBufUtil.hexDump(buf));
        assertArrayEquals(new byte[] {0x00, 0x0f, (byte) 0xa5, (byte) 0xff}, ByteBufUtil.getBytes(buf));
    }

    @ForEachCapacity
    void charSequencesRoundTrip(int capacity) {
        String text = "a\u00e9\u4e16\uD83D\uDE00z";
        int utf8Length = text.getBytes(StandardCharsets.UTF_8).length;
        if (capacity < 3 * text.length() + 8) {
            return;
        }
        ByteBuf buf = newBuffer(capacity);
        // setCharSequence needs room for the worst case, 3 bytes per char, as Netty's own buffers do
        int at = capacity - 3 * text.length();
        assertEquals(utf8Length, buf.setCharSequence(at, text, StandardCharsets.UTF_8));
        assertArrayEquals(text.getBytes(StandardCharsets.UTF_8), bytes(buf, at, utf8Length));
        assertEquals(text, buf.getCharSequence(at, utf8Length, StandardCharsets.UTF_8).toString());
        buf.clear();
        assertEquals(5, buf.writeCharSequence("ascii", StandardCharsets.US_ASCII));
        assertEquals(utf8Length, buf.writeCharSequence(text, StandardCharsets.UTF_8));
        assertEquals("ascii", buf.readCharSequence(5, StandardCharsets.US_ASCII).toString());
        assertEquals(text, buf.readCharSequence(utf8Length, StandardCharsets.UTF_8).toString());
        assertEquals(5 + utf8Length, buf.readerIndex());
        buf.clear();
        assertEquals(utf8Length, ByteBufUtil.writeUtf8(buf, text));
        assertEquals(text, buf.toString(StandardCharsets.UTF_8));
        buf.clear();
        ByteBufUtil.writeAscii(buf, "plain");
        assertEquals("plain", buf.toString(StandardCharsets.US_ASCII));
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setCharSequence(capacity - 1, "xyz",
                StandardCharsets.US_ASCII));
    }

    @ForEachCapacity
    void forEachByteIndexOfAndBytesBeforeFindTheByte(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        buf.writeZero(capacity);
        int first = capacity / 3;
        int last = capacity - 1;
        buf.setByte(first, 7).setByte(last, 7);
        assertEquals(first, buf.indexOf(0, capacity, (byte) 7));
        assertEquals(last, buf.indexOf(first + 1, capacity, (byte) 7));
        assertEquals(last, buf.indexOf(capacity, 0, (byte) 7), "a descending search finds the last");
        assertEquals(-1, buf.indexOf(0, first, (byte) 7));
        assertEquals(first, buf.bytesBefore((byte) 7));
        assertEquals(-1, buf.bytesBefore(first, (byte) 7));
        buf.readerIndex(first + 1);
        assertEquals(last - first - 1, buf.bytesBefore((byte) 7));
        buf.readerIndex(0);
        assertEquals(first, buf.forEachByte(value -> value != 7));
        assertEquals(last, buf.forEachByteDesc(value -> value != 7));
        assertEquals(first == last ? -1 : first, buf.forEachByteDesc(0, last, value -> value != 7));
        int[] seen = {0};
        assertEquals(-1, buf.forEachByte(0, capacity, value -> {
            seen[0]++;
            return true;
        }));
        assertEquals(capacity, seen[0]);
        assertThrows(IndexOutOfBoundsException.class, () -> buf.forEachByte(1, capacity, v -> true));
    }

    @ForEachCapacity
    void setZeroAndWriteZeroClearExactlyTheRange(int capacity) {
        ByteBuf buf = newBuffer(capacity);
        byte[] ones = new byte[capacity];
        Arrays.fill(ones, (byte) 0xff);
        buf.setBytes(0, ones);
        int from = capacity / 4;
        int len = capacity / 2;
        buf.setZero(from, len);
        for (int i : new int[] {0, from - 1, from, from + len - 1, from + len, capacity - 1}) {
            if (i < 0 || i >= capacity) {
                continue;
            }
            boolean inRange = i >= from && i < from + len;
            assertEquals(inRange ? 0 : -1, buf.getByte(i), "byte " + i);
        }
        byte[] all = bytes(buf, 0, capacity);
        for (int i = 0; i < capacity; i++) {
            if ((all[i] == 0) != (i >= from && i < from + len)) {
                fail("byte " + i + " is " + all[i]);
            }
        }
        buf.writerIndex(1);
        buf.writeZero(capacity - 1);
        assertEquals(capacity, buf.writerIndex());
        for (byte b : bytes(buf, 1, capacity - 1)) {
            assertEquals(0, b);
        }
        assertThrows(IndexOutOfBoundsException.class, () -> buf.setZero(1, capacity));
    }

    @ForEachCapacity
    void readOnlyViewRefusesWrites(int capacity) {
        ByteBuf buf = filled(capacity, 110);
        ByteBuf ro = buf.asReadOnly();
        assertTrue(ro.isReadOnly());
        assertContent(ro, 0, 110, capacity);
        assertThrows(ReadOnlyBufferException.class, () -> ro.setByte(0, 1));
        assertThrows(ReadOnlyBufferException.class, () -> ro.setBytes(0, new byte[1]));
        assertTrue(ro.nioBuffer().isReadOnly());
    }

    @ForEachCapacity
    void readBytesIntoANewBufferCopies(int capacity) {
        ByteBuf buf = filled(capacity, 120);
        ByteBuf part = keep(buf.readBytes(capacity / 2));
        assertEquals(capacity / 2, buf.readerIndex());
        assertEquals(capacity / 2, part.readableBytes());
        assertContent(part, 0, 120, capacity / 2);
        part.release();
    }

    // ------------------------------------------------------------------ recycling

    @ForEachCapacity
    void aRecycledBufferComesBackClean(int capacity) {
        for (int round = 0; round < 3; round++) {
            ByteBuf buf = newBuffer(capacity, capacity + 1000);
            assertEquals(0, buf.readerIndex());
            assertEquals(0, buf.writerIndex());
            assertEquals(capacity, buf.capacity());
            assertEquals(capacity + 1000, buf.maxCapacity());
            assertEquals(1, buf.refCnt());
            buf.resetReaderIndex();
            buf.resetWriterIndex();
            assertEquals(0, buf.readerIndex(), "reader mark survived recycling");
            assertEquals(0, buf.writerIndex(), "writer mark survived recycling");
            buf.writeBytes(CONTENT, 0, capacity);
            buf.readerIndex(capacity / 2).markReaderIndex();
            buf.markWriterIndex();
            buf.capacity(capacity + 1000);
            assertTrue(buf.release());
        }
        ByteBuf other = newBuffer(capacity);
        assertEquals(capacity, other.capacity());
        assertEquals(Integer.MAX_VALUE, other.maxCapacity());
    }

    @ForEachCapacity
    void aReleasedBufferIsNotAliasedByLiveOnes(int capacity) {
        // Allocate, release, allocate again: the new buffers must not share memory with each other.
        ByteBuf a = filled(capacity, 0);
        a.release();
        ByteBuf b = filled(capacity, 1);
        ByteBuf c = filled(capacity, 2);
        assertContent(b, 0, 1, capacity);
        assertContent(c, 0, 2, capacity);
        if (b.hasMemoryAddress() && c.hasMemoryAddress()) {
            long b0 = b.memoryAddress();
            long c0 = c.memoryAddress();
            assertTrue(b0 + capacity <= c0 || c0 + capacity <= b0, "live buffers overlap");
        }
    }
}
