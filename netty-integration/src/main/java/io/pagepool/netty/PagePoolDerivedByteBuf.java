package io.pagepool.netty;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.IllegalReferenceCountException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;

/**
 * The buffer {@code retainedSlice} and {@code retainedDuplicate} return for a
 * {@link PagePoolByteBuf}: a view of part (a slice) or all (a duplicate) of its memory, with its own
 * reader and writer indexes and its own reference count, recycled by the root buffer's arena.
 *
 * <h2>Why not Netty's default</h2>
 * {@code AbstractByteBuf.retainedSlice()} is {@code slice().retain()}: a new view object per call,
 * sharing the parent's count. Frame decoders call it once per frame (Netty's
 * {@code LengthFieldBasedFrameDecoder} does), so every frame would leave an object for the garbage
 * collector. Netty's pooled allocator recycles these views; so does this class.
 *
 * <h2>Life cycle</h2>
 * <pre>
 *   parent.retainedSlice(i, n)  -&gt; parent.retain(); view from the root's arena (owner thread) or new;
 *                                  view count 1, indexes 0 and n
 *   view.retain() / release()   -&gt; the view's own count (CAS); the parent's is untouched
 *   view count reaches 0        -&gt; the view forgets parent and root and goes back to the arena (its
 *                                  stack on the owner thread, its queue of returned views elsewhere);
 *                                  then parent.release()
 * </pre>
 * {@code parent} is the buffer the view was taken from and holds one reference of it (another view,
 * for a slice of a slice); {@code root} is the {@link PagePoolByteBuf} that owns the memory. Every
 * access goes to {@code root} at {@code index + adjustment} after this view's own checks (count,
 * and bounds against this view's capacity), so a duplicate follows the root if it grows, as Netty's
 * derived buffers do. A slice has a fixed capacity ({@code capacity(int)} throws, as for Netty's
 * slices); a duplicate's capacity is the root's. If the root shrinks below a slice's range, an
 * access past the root's capacity throws (the root checks its bulk transfers itself, the view
 * checks its primitive ones, and it offers no native address, through which Netty's string writers
 * would go unchecked), as with Netty's unpooled slices; Netty's pooled slices do not check, and
 * would reach memory the root no longer owns.
 *
 * <p>Thread safety: as any Netty buffer, not thread-safe except for reference counting. A view
 * released on a thread other than its arena's owner goes back through the arena's queue of
 * returned views (as a proxy's frames do, released on the event loop that wrote them out); a view
 * made on a thread other than the owner is a new object, left to the garbage collector.
 */
final class PagePoolDerivedByteBuf extends PagePoolDirectByteBuf {

    private static final VarHandle REF_CNT;

    static {
        try {
            REF_CNT = MethodHandles.lookup().findVarHandle(PagePoolDerivedByteBuf.class, "refCnt", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Arena whose stack (or queue, from other threads) this view returns to; null for views made off the owner thread. */
    private final PagePoolArena home;
    private volatile int refCnt;
    private ByteBufAllocator alloc;
    /** The buffer this view holds a reference of; null once released. */
    private ByteBuf parent;
    /**
     * The buffer that owns the memory; null once released, so that a parked view keeps no buffer
     * reachable (a released view then reports the capacity it had, as a slice).
     */
    private PagePoolByteBuf root;
    private int adjustment;
    /** True for a slice (capacity fixed at {@link #sliceLength}), false for a duplicate. */
    private boolean slice;
    private int sliceLength;

    private PagePoolDerivedByteBuf(PagePoolArena home) {
        super(0);
        this.home = home;
    }

    /**
     * A slice of {@code root}'s bytes {@code [adjustment, adjustment + length)}, holding one reference
     * of {@code parent} (retained here). The caller has checked the range and that parent is live.
     */
    static PagePoolDerivedByteBuf slice(PagePoolByteBuf root, ByteBuf parent, int adjustment, int length) {
        PagePoolDerivedByteBuf view = take(root);
        view.init(root, parent, adjustment, true, length, length);
        view.markReaderIndex(); // marks 0, as for Netty's slices
        view.markWriterIndex();
        view.writerIndex(length);
        return view;
    }

    /** A duplicate of all of {@code root}, indexes {@code readerIndex} and {@code writerIndex}, holding one reference of parent. */
    static PagePoolDerivedByteBuf duplicate(PagePoolByteBuf root, ByteBuf parent, int readerIndex, int writerIndex) {
        // Checked before the parent is retained: a duplicate's indexes may lie past a capacity that
        // shrank since (the root's, or a sibling duplicate's capacity(int)).
        int capacity = root.capacity();
        if (readerIndex < 0 || readerIndex > writerIndex || writerIndex > capacity) {
            throw new IndexOutOfBoundsException("readerIndex: " + readerIndex + ", writerIndex: " + writerIndex
                    + " (expected: 0 <= readerIndex <= writerIndex <= capacity(" + capacity + "))");
        }
        PagePoolDerivedByteBuf view = take(root);
        view.init(root, parent, 0, false, 0, root.maxCapacity());
        view.setIndexAndMark(readerIndex, writerIndex);
        return view;
    }

    /** A released view of the root's arena if this is its owner thread, else a new one. */
    private static PagePoolDerivedByteBuf take(PagePoolByteBuf root) {
        PagePoolArena arena = root.home;
        if (arena == null || Thread.currentThread() != arena.owner) {
            return new PagePoolDerivedByteBuf(null);
        }
        PagePoolDerivedByteBuf view = arena.takeView();
        return view != null ? view : new PagePoolDerivedByteBuf(arena);
    }

    private void init(PagePoolByteBuf root, ByteBuf parent, int adjustment, boolean slice, int sliceLength,
            int maxCapacity) {
        parent.retain();
        this.parent = parent;
        this.root = root;
        this.alloc = root.alloc();
        this.adjustment = adjustment;
        this.slice = slice;
        this.sliceLength = sliceLength;
        maxCapacity(maxCapacity);
        REF_CNT.setRelease(this, 1);
        setIndex(0, 0); // a recycled view's old indexes may not fit its new capacity
    }

    private void setIndexAndMark(int readerIndex, int writerIndex) {
        setIndex(readerIndex, writerIndex);
        markReaderIndex();
        markWriterIndex();
    }

    private int idx(int index) {
        return index + adjustment;
    }

    /**
     * {@link #idx} for a primitive access of {@code width} bytes, which the root does unchecked: a
     * slice's range is fixed when it is made, and the root may have shrunk (into other memory)
     * since. Past the root's capacity the access throws, as Netty's unpooled slices do, instead of
     * reaching bytes that may now be another buffer's.
     */
    private int rootIdx(int index, int width) {
        int i = index + adjustment;
        int rootCapacity = root.capacity();
        if (i > rootCapacity - width) {
            throw new IndexOutOfBoundsException("index: " + index + ", length: " + width + " (this slice's bytes "
                    + adjustment + ".." + (adjustment + sliceLength) + " of its buffer, which has shrunk to capacity "
                    + rootCapacity + ")");
        }
        return i;
    }

    // ------------------------------------------------------------------ reference count

    @Override
    public int refCnt() {
        return refCnt;
    }

    @Override
    public ByteBuf retain() {
        return retain(1);
    }

    @Override
    public ByteBuf retain(int increment) {
        if (increment <= 0) {
            throw new IllegalArgumentException("increment: " + increment + " (expected: > 0)");
        }
        for (;;) {
            int c = refCnt;
            if (c == 0 || c + increment <= 0) {
                throw new IllegalReferenceCountException(c, increment);
            }
            if (REF_CNT.compareAndSet(this, c, c + increment)) {
                return this;
            }
        }
    }

    @Override
    public boolean release() {
        return release(1);
    }

    @Override
    public boolean release(int decrement) {
        if (decrement <= 0) {
            throw new IllegalArgumentException("decrement: " + decrement + " (expected: > 0)");
        }
        for (;;) {
            int c = refCnt;
            if (c < decrement) {
                throw new IllegalReferenceCountException(c, -decrement);
            }
            if (REF_CNT.compareAndSet(this, c, c - decrement)) {
                if (c != decrement) {
                    return false;
                }
                ByteBuf p = parent;
                // Keep answering capacity() as before, so that a use after release fails on the count
                // (IllegalReferenceCountException), not on bounds: the view now acts as a fixed slice.
                sliceLength = capacity();
                slice = true;
                parent = null;
                root = null;
                if (home != null) {
                    home.recycleView(this); // fields cleared first: the owner may hand it out at once
                }
                p.release();
                return true;
            }
        }
    }

    // ------------------------------------------------------------------ capacity and identity

    @Override
    public int capacity() {
        return slice ? sliceLength : root.capacity();
    }

    /** A duplicate resizes its root and trims its own indexes to the new capacity; a slice cannot. */
    @Override
    public ByteBuf capacity(int newCapacity) {
        ensureAccessible();
        if (slice) {
            throw new UnsupportedOperationException("sliced buffer");
        }
        root.capacity(newCapacity);
        if (newCapacity < writerIndex()) {
            trimIndicesToCapacity(newCapacity);
        }
        return this;
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    public ByteBuf unwrap() {
        return root;
    }

    @Override
    public boolean hasMemoryAddress() {
        PagePoolByteBuf r = root;
        return r != null && r.hasMemoryAddress() && withinRoot(r);
    }

    /**
     * The native address of this view's index 0. Not for a slice that reaches past its root's
     * capacity (the root shrank since): Netty's helpers write through the address unchecked, so
     * {@link #hasMemoryAddress()} is false then and they take the checked paths.
     */
    @Override
    public long memoryAddress() {
        ensureAccessible();
        if (!withinRoot(root)) {
            throw new UnsupportedOperationException("memoryAddress(): this slice's bytes " + adjustment + ".."
                    + (adjustment + capacity()) + " reach past its buffer, which has shrunk to capacity "
                    + root.capacity());
        }
        return root.memoryAddress() + adjustment;
    }

    /** All of this view's bytes lie within {@code r}'s capacity (a slice of a root that shrank may not). */
    private boolean withinRoot(PagePoolByteBuf r) {
        return adjustment + capacity() <= r.capacity();
    }

    // ------------------------------------------------------------------ derived views of a view

    @Override
    public ByteBuf retainedSlice() {
        return retainedSlice(readerIndex(), readableBytes());
    }

    @Override
    public ByteBuf retainedSlice(int index, int length) {
        checkIndex(index, length);
        return slice(root, this, idx(index), length);
    }

    /** A retained view of the same bytes with this view's indexes: for a slice, a slice of the same range. */
    @Override
    public ByteBuf retainedDuplicate() {
        ensureAccessible();
        if (slice) {
            PagePoolDerivedByteBuf view = slice(root, this, adjustment, sliceLength);
            view.setIndexAndMark(readerIndex(), writerIndex());
            return view;
        }
        return duplicate(root, this, readerIndex(), writerIndex());
    }

    // ------------------------------------------------------------------ primitive access

    @Override
    protected byte _getByte(int index) {
        return root._getByte(rootIdx(index, 1));
    }

    @Override
    protected short _getShort(int index) {
        return root._getShort(rootIdx(index, 2));
    }

    @Override
    protected short _getShortLE(int index) {
        return root._getShortLE(rootIdx(index, 2));
    }

    @Override
    protected int _getUnsignedMedium(int index) {
        return root._getUnsignedMedium(rootIdx(index, 3));
    }

    @Override
    protected int _getUnsignedMediumLE(int index) {
        return root._getUnsignedMediumLE(rootIdx(index, 3));
    }

    @Override
    protected int _getInt(int index) {
        return root._getInt(rootIdx(index, 4));
    }

    @Override
    protected int _getIntLE(int index) {
        return root._getIntLE(rootIdx(index, 4));
    }

    @Override
    protected long _getLong(int index) {
        return root._getLong(rootIdx(index, 8));
    }

    @Override
    protected long _getLongLE(int index) {
        return root._getLongLE(rootIdx(index, 8));
    }

    @Override
    protected void _setByte(int index, int value) {
        root._setByte(rootIdx(index, 1), value);
    }

    @Override
    protected void _setShort(int index, int value) {
        root._setShort(rootIdx(index, 2), value);
    }

    @Override
    protected void _setShortLE(int index, int value) {
        root._setShortLE(rootIdx(index, 2), value);
    }

    @Override
    protected void _setMedium(int index, int value) {
        root._setMedium(rootIdx(index, 3), value);
    }

    @Override
    protected void _setMediumLE(int index, int value) {
        root._setMediumLE(rootIdx(index, 3), value);
    }

    @Override
    protected void _setInt(int index, int value) {
        root._setInt(rootIdx(index, 4), value);
    }

    @Override
    protected void _setIntLE(int index, int value) {
        root._setIntLE(rootIdx(index, 4), value);
    }

    @Override
    protected void _setLong(int index, long value) {
        root._setLong(rootIdx(index, 8), value);
    }

    @Override
    protected void _setLongLE(int index, long value) {
        root._setLongLE(rootIdx(index, 8), value);
    }

    // ------------------------------------------------------------------ bulk transfers
    // Each checks this view's count and bounds, then lets the root copy (it checks its own as well).

    @Override
    public ByteBuf getBytes(int index, ByteBuf dst, int dstIndex, int length) {
        checkIndex(index, length);
        root.getBytes(idx(index), dst, dstIndex, length);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, byte[] dst, int dstIndex, int length) {
        checkIndex(index, length);
        root.getBytes(idx(index), dst, dstIndex, length);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, ByteBuffer dst) {
        checkIndex(index, dst.remaining());
        root.getBytes(idx(index), dst);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, OutputStream out, int length) throws IOException {
        checkIndex(index, length);
        root.getBytes(idx(index), out, length);
        return this;
    }

    @Override
    public int getBytes(int index, GatheringByteChannel out, int length) throws IOException {
        checkIndex(index, length);
        return root.getBytes(idx(index), out, length);
    }

    @Override
    public int getBytes(int index, FileChannel out, long position, int length) throws IOException {
        checkIndex(index, length);
        return root.getBytes(idx(index), out, position, length);
    }

    @Override
    public ByteBuf setBytes(int index, ByteBuf src, int srcIndex, int length) {
        checkIndex(index, length);
        root.setBytes(idx(index), src, srcIndex, length);
        return this;
    }

    @Override
    public ByteBuf setBytes(int index, byte[] src, int srcIndex, int length) {
        checkIndex(index, length);
        root.setBytes(idx(index), src, srcIndex, length);
        return this;
    }

    @Override
    public ByteBuf setBytes(int index, ByteBuffer src) {
        checkIndex(index, src.remaining());
        root.setBytes(idx(index), src);
        return this;
    }

    @Override
    public int setBytes(int index, InputStream in, int length) throws IOException {
        checkIndex(index, length);
        return root.setBytes(idx(index), in, length);
    }

    @Override
    public int setBytes(int index, ScatteringByteChannel in, int length) throws IOException {
        checkIndex(index, length);
        return root.setBytes(idx(index), in, length);
    }

    @Override
    public int setBytes(int index, FileChannel in, long position, int length) throws IOException {
        checkIndex(index, length);
        return root.setBytes(idx(index), in, position, length);
    }

    @Override
    public ByteBuf copy(int index, int length) {
        checkIndex(index, length);
        return root.copy(idx(index), length);
    }

    // ------------------------------------------------------------------ NIO views

    @Override
    public ByteBuffer nioBuffer(int index, int length) {
        checkIndex(index, length);
        return root.nioBuffer(idx(index), length);
    }

    /**
     * A new NIO view, as Netty's derived buffers give: the root's cached one is shared by the root
     * and all its views, and Netty's NIO transport keeps what this returns while it gathers the
     * other buffers of a write (two slices of one buffer would otherwise both send the second's bytes).
     */
    @Override
    public ByteBuffer internalNioBuffer(int index, int length) {
        return nioBuffer(index, length);
    }

    @Override
    public String toString() {
        if (refCnt == 0) {
            return "PagePoolDerivedByteBuf(freed)";
        }
        return "PagePoolDerivedByteBuf(" + (slice ? "slice" : "duplicate") + " of " + root + ", ridx: " + readerIndex()
                + ", widx: " + writerIndex() + ", cap: " + capacity() + ")";
    }
}
