package io.pagepool.netty;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.IllegalReferenceCountException;
import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;

/**
 * A direct {@link ByteBuf} over memory from a {@link PagePoolByteBufAllocator}: a fragment of a
 * pool page, a whole pool page, a block from the page allocator, or (when memory is exhausted and
 * the policy allows) an unpooled fallback buffer.
 *
 * <h2>Memory binding</h2>
 * Every access goes to {@code memory} at {@code base + index}. {@code memory} is the page
 * allocator's shared region buffer (absolute get/put only, never repositioned), so binding a
 * buffer to new memory allocates nothing. The same code therefore runs on every JDK without
 * {@code sun.misc.Unsafe}; {@link #memoryAddress()} is still exposed so native transports
 * (epoll, io_uring) read and write the memory directly.
 *
 * <pre>
 *   region buffer (one per max-order block, shared)
 *   |.............|&lt;-- backingSize --------------&gt;|.........|
 *                 ^ base          ^ base + capacity()
 *                 index 0         (capacity may grow up to backingSize in place)
 * </pre>
 *
 * <h2>Life cycle</h2>
 * Objects are recycled by the arena that created them ({@link #home}); the memory returns to the
 * arena or allocator it came from ({@link #memArena}), from whichever thread releases it. Growth
 * beyond the backing moves the buffer to new memory of the right size class and frees the old.
 *
 * <h2>Reference count: the last release on the owner thread is a plain store</h2>
 * Netty's own buffers release with a compare-and-swap, which costs more on its own (11 ns on the
 * machine in docs/benchmarks.md) than the rest of a pooled allocate + release pair. This class
 * keeps its own count and takes one shortcut:
 * <pre>
 *   release(n) reads count c (release() is n = 1)
 *     c == n (the caller holds every reference), on the home arena's owner thread, memory of a
 *     class the arena parks (fragment, page, block up to order 3)
 *                                  -&gt; store 0 (plain), park or deallocate no atomic
 *     otherwise                    -&gt; CAS c -&gt; c-n (0: deallocate)       as Netty
 *   retain(n): CAS, as Netty
 * </pre>
 * A count of 1 means the caller holds the only reference, so no correct program has another thread
 * touching the count at that moment: legal concurrent use (two holders releasing together) starts
 * at 2 and goes through the CAS. Sequential misuse is caught as before (release or access at 0
 * throws {@link IllegalReferenceCountException}). What is lost is Netty's catch of one caller bug:
 * the owner and another thread releasing the same last reference at the same instant. Both then
 * deallocate; the other thread's release reaches the owner through the arena's remote-free queue,
 * where the owner sees the object is already back in its stack or in use again, drops the entry,
 * logs it and counts it ({@code concurrentDoubleReleases} in the metrics), so the memory is still
 * returned once. Memory that does not go home that way (blocks above order 3, another arena's
 * memory after the buffer grew there, the unpooled fallback) is freed in place by whichever thread
 * releases it, so its last release stays a CAS and the bug is refused as in Netty. The jcstress
 * module checks the legal case; ConcurrentDoubleReleaseTest the caught and the refused ones.
 *
 * <p>Thread safety: as any Netty buffer, not thread-safe except for reference counting.
 */
final class PagePoolByteBuf extends PagePoolDirectByteBuf {

    private static final VarHandle REF_CNT;

    static {
        try {
            REF_CNT = MethodHandles.lookup().findVarHandle(PagePoolByteBuf.class, "refCnt", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** No memory bound: it was returned by the thread that released the buffer. */
    static final byte NONE = 0;
    static final byte FRAG = 1;
    static final byte PAGE = 2;
    static final byte BLOCK = 3;
    static final byte FALLBACK = 4;

    private static final int STREAM_CHUNK = 8192;

    /** {@link #parkId} of an object its arena will not park (made off any arena, or past the arena's table). */
    static final int NO_ID = -1;

    /** Arena whose object stack this object returns to; null for objects made off any arena. */
    final PagePoolArena home;
    /** {@code home.owner}, or null: the thread whose release of the last reference needs no atomic. */
    private final Thread owner;
    private final PagePoolByteBufAllocator alloc;

    /** References held; 0 once released (and while the object waits in a stack or queue). */
    private volatile int refCnt;
    /**
     * Parked in the home arena (hot slot, a class stack or the object stack). Owner thread only:
     * tells a stale queued release from a real one.
     */
    boolean parked;
    /**
     * Index of this object in its home arena's table of parkable objects, or {@link #NO_ID}. Owner
     * thread only. The arena parks ids rather than references: see PagePoolArena.
     */
    int parkId = NO_ID;
    /**
     * Handed out inside Netty's leak-detecting wrapper. Netty's wrapper closes its leak record when a
     * derived buffer's release returns true, which is right for views that share their parent's
     * count and wrong for ours (the record would close twice), so such a buffer's retained slices and
     * duplicates are Netty's shared-count views. Set by the allocator, cleared on reuse.
     */
    boolean leakTracked;

    // The memory binding. Written by bind(), read by every access.
    private byte kind;
    private PagePoolArena memArena;
    /**
     * The class under which the home arena parks this buffer with its memory (a fragment size class,
     * the page class, or a block order's class: see PagePoolArena) if that memory is the home arena's,
     * else -1: the owner's last release parks such a buffer after one check of this field.
     */
    private int homeParkClass = -1;
    private long fragHandle;
    private int fragClass;
    private int pfn;
    private int order;
    private ByteBuf fallback;
    private ByteBuffer memory;
    private int base;
    private long address;
    private int length;
    private int backingSize;

    /** Cached duplicate of {@link #memory} for {@link #internalNioBuffer}, and the buffer it duplicates. */
    private ByteBuffer tmpNioBuf;
    private ByteBuffer tmpNioBufOf;

    PagePoolByteBuf(PagePoolByteBufAllocator alloc, PagePoolArena home) {
        super(0);
        this.alloc = alloc;
        this.home = home;
        this.owner = home != null ? home.owner : null;
    }

    // ------------------------------------------------------------------ binding (arena side)

    /**
     * Prepares a recycled or new object for use: reference count 1, capacity {@code capacity} (within
     * the backing it is still bound to, or before a new binding), indexes and marks 0.
     */
    void reuse(int capacity, int maxCapacity) {
        REF_CNT.set(this, 1); // not yet visible to any other thread: a plain store
        parked = false;
        leakTracked = false;
        length = capacity;
        if (maxCapacity() != maxCapacity) {
            maxCapacity(maxCapacity);
        }
        clear();
        markReaderIndex();
        markWriterIndex();
    }

    void bindFrag(PagePoolArena arena, long handle, int sizeClass, int classSize, ByteBuffer memory, int base,
            long address, int capacity) {
        this.kind = FRAG;
        this.memArena = arena;
        this.fallback = null;
        this.fragHandle = handle;
        this.fragClass = sizeClass;
        bindMemory(memory, base, address, capacity, classSize);
        this.homeParkClass = arena == home ? sizeClass : -1;
    }

    void bindPage(PagePoolArena arena, int pfn, ByteBuffer memory, int base, long address, int capacity,
            int pageSize) {
        this.kind = PAGE;
        this.memArena = arena;
        this.fallback = null;
        this.pfn = pfn;
        bindMemory(memory, base, address, capacity, pageSize);
        this.homeParkClass = arena == home ? arena.pageParkClass() : -1;
    }

    /** {@code arena} is where a release on another thread sends the block, or null to free it in place. */
    void bindBlock(PagePoolArena arena, int pfn, int order, ByteBuffer memory, int base, long address, int capacity,
            int blockSize) {
        this.kind = BLOCK;
        this.memArena = arena;
        this.fallback = null;
        this.pfn = pfn;
        this.order = order;
        bindMemory(memory, base, address, capacity, blockSize);
        this.homeParkClass = arena != null && arena == home ? arena.blockParkClass(order) : -1;
    }

    /**
     * Takes over the memory binding of {@code holder}, a parked buffer of this buffer's arena, at
     * {@code capacity} bytes; the caller then unbinds the holder. Used when a buffer that is not the
     * holder (a new or growing one) is served from a parked buffer's memory.
     */
    void adoptBinding(PagePoolByteBuf holder, int capacity) {
        this.kind = holder.kind;
        this.memArena = holder.memArena;
        this.fallback = null;
        this.fragHandle = holder.fragHandle;
        this.fragClass = holder.fragClass;
        this.pfn = holder.pfn;
        this.order = holder.order;
        bindMemory(holder.memory, holder.base, holder.address, capacity, holder.backingSize);
        this.homeParkClass = memArena == home ? holder.homeParkClass : -1;
    }

    void bindFallback(ByteBuf fallback, int capacity) {
        this.kind = FALLBACK;
        this.memArena = null;
        this.fallback = fallback;
        ByteBuffer view = fallback.internalNioBuffer(0, fallback.capacity()).slice().order(ByteOrder.BIG_ENDIAN);
        bindMemory(view, 0, fallback.hasMemoryAddress() ? fallback.memoryAddress() : 0, capacity, fallback.capacity());
    }

    /** {@code address} is the native address of index 0 (of {@code memory[base]}), or 0 when unknown. */
    private void bindMemory(ByteBuffer memory, int base, long address, int capacity, int backingSize) {
        this.homeParkClass = -1;
        this.memory = memory;
        this.base = base;
        this.address = address;
        this.length = capacity;
        this.backingSize = backingSize;
    }

    byte kind() {
        return kind;
    }

    /** Forgets the memory binding (the memory went back elsewhere): the object may be bound afresh. */
    void unbind() {
        kind = NONE;
        homeParkClass = -1;
        fallback = null;
        fragHandle = PagePool.NO_FRAG;
    }

    long fragHandle() {
        return fragHandle;
    }

    int fragClass() {
        return fragClass;
    }

    int homeParkClass() {
        return homeParkClass;
    }

    int boundPfn() {
        return pfn;
    }

    int boundOrder() {
        return order;
    }

    int backingSize() {
        return backingSize;
    }

    /** Returns a memory binding to where it came from, from whichever thread calls. */
    private void releaseBinding(byte kind, PagePoolArena arena, long handle, int sizeClass, int pfn, int order,
            ByteBuf fallback) {
        switch (kind) {
            case FRAG:
                arena.releaseFrag(handle, sizeClass);
                break;
            case PAGE:
                arena.releasePage(pfn);
                break;
            case BLOCK:
                alloc.pageAllocator().freePages(pfn, order); // into the calling thread's per-CPU set
                break;
            default:
                alloc.fallbackReleased(fallback.capacity());
                fallback.release();
                break;
        }
    }

    // ------------------------------------------------------------------ reference count

    @Override
    public int refCnt() {
        return refCnt;
    }

    @Override
    public ByteBuf retain() {
        return retain0(1);
    }

    @Override
    public ByteBuf retain(int increment) {
        if (increment <= 0) {
            throw new IllegalArgumentException("increment: " + increment + " (expected: > 0)");
        }
        return retain0(increment);
    }

    private ByteBuf retain0(int increment) {
        for (;;) {
            int c = refCnt;
            if (c == 0 || c + increment <= 0) { // released, or the count would overflow
                throw new IllegalReferenceCountException(c, increment);
            }
            if (REF_CNT.compareAndSet(this, c, c + increment)) {
                return this;
            }
        }
    }

    @Override
    public boolean release() {
        return release0(1);
    }

    @Override
    public boolean release(int decrement) {
        if (decrement <= 0) {
            throw new IllegalArgumentException("decrement: " + decrement + " (expected: > 0)");
        }
        return release0(decrement);
    }

    /**
     * See the class comment: the owner's release of the only reference is a plain store when the
     * memory is its arena's to park (a racing release elsewhere then reaches the owner's queue, where
     * it is caught); all else, memory that another thread would free in place included, a CAS.
     */
    private boolean release0(int decrement) {
        int c = (int) REF_CNT.getAcquire(this); // orders the bytes another holder wrote before its release
        int parkClass = homeParkClass;
        if (c == decrement && parkClass >= 0 && Thread.currentThread() == owner) {
            REF_CNT.setRelease(this, 0);
            if (!home.parkOnOwner(this, parkClass)) {
                deallocate();
            }
            return true;
        }
        for (;;) {
            if (c < decrement) {
                throw new IllegalReferenceCountException(c, -decrement);
            }
            if (REF_CNT.compareAndSet(this, c, c - decrement)) {
                if (c == decrement) {
                    deallocate();
                    return true;
                }
                return false;
            }
            c = refCnt;
        }
    }

    /**
     * The last reference is gone. Memory of the home arena (fragments, pages, and blocks up to the
     * per-CPU orders) goes back with the object: on the owner thread parked with it, on any other
     * thread through the owner's queue of returned objects (one offer; the owner parks the pair, or
     * returns the memory with plain operations, when it drains the queue). Anything else is returned
     * here, thread-safely, and the object follows on its own. Memory parked with the object stays
     * bound to it (use after release still fails in {@code ensureAccessible}, the count being 0), so
     * the owner hands the pair out again as it is.
     */
    private void deallocate() {
        PagePoolArena arena = home;
        if (arena != null && memArena == arena) {
            int parkClass = homeParkClass;
            if (parkClass >= 0 && arena.recycleLocally(this, parkClass)) {
                return;
            }
            if (arena.returnFromOtherThread(this)) {
                return;
            }
        }
        deallocateSlow();
    }

    private void deallocateSlow() {
        byte boundKind = kind;
        releaseBinding(boundKind, memArena, fragHandle, fragClass, pfn, order, fallback);
        unbind();
        if (home != null) {
            home.recycleObject(this);
        }
        if (boundKind != FALLBACK) {
            alloc.freedOnCallingThread();
        }
    }

    // ------------------------------------------------------------------ capacity

    @Override
    public int capacity() {
        return length;
    }

    @Override
    public int maxFastWritableBytes() {
        return Math.min(backingSize, maxCapacity()) - writerIndex();
    }

    /**
     * Grows or shrinks the buffer. Within the current backing (growing up to it, or shrinking to
     * more than half of it) only the capacity changes; otherwise the bytes move to memory of the
     * right size class, allocated on the calling thread's arena, and the old memory is freed.
     */
    @Override
    public ByteBuf capacity(int newCapacity) {
        checkNewCapacity(newCapacity);
        if (newCapacity == length) {
            return this;
        }
        if (newCapacity <= backingSize && newCapacity > backingSize >>> 1) {
            length = newCapacity;
            if (newCapacity < writerIndex() || newCapacity < readerIndex()) {
                trimIndicesToCapacity(newCapacity);
            }
            return this;
        }
        if (newCapacity < length && backingSize <= PagePoolArena.MIN_FRAG_SIZE) {
            length = newCapacity;
            trimIndicesToCapacity(newCapacity);
            return this;
        }
        reallocate(newCapacity);
        return this;
    }

    private void reallocate(int newCapacity) {
        byte oldKind = kind;
        PagePoolArena oldArena = memArena;
        long oldHandle = fragHandle;
        int oldClass = fragClass;
        int oldPfn = pfn;
        int oldOrder = order;
        ByteBuf oldFallback = fallback;
        ByteBuffer oldMemory = memory;
        int oldBase = base;
        int oldLength = length;

        alloc.bindNewMemory(this, newCapacity);
        int copy = Math.min(oldLength, newCapacity);
        if (copy > 0) {
            memory.put(base, oldMemory, oldBase, copy);
        }
        releaseBinding(oldKind, oldArena, oldHandle, oldClass, oldPfn, oldOrder, oldFallback);
        if (newCapacity < oldLength) {
            trimIndicesToCapacity(newCapacity);
        }
    }

    // ------------------------------------------------------------------ recycled derived buffers

    @Override
    public ByteBuf retainedSlice() {
        return retainedSlice(readerIndex(), readableBytes());
    }

    /**
     * A recycled view with its own count (see {@link PagePoolDerivedByteBuf}) rather than Netty's
     * one-object-per-call default, except for a buffer handed out inside the leak detector's wrapper
     * (see {@link #leakTracked}).
     */
    @Override
    public ByteBuf retainedSlice(int index, int length) {
        if (leakTracked) {
            return super.retainedSlice(index, length);
        }
        checkIndex(index, length);
        return PagePoolDerivedByteBuf.slice(this, this, index, length);
    }

    @Override
    public ByteBuf retainedDuplicate() {
        if (leakTracked) {
            return super.retainedDuplicate();
        }
        ensureAccessible();
        return PagePoolDerivedByteBuf.duplicate(this, this, readerIndex(), writerIndex());
    }

    // ------------------------------------------------------------------ identity

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    public ByteBuf unwrap() {
        return null;
    }

    @Override
    public boolean hasMemoryAddress() {
        return address != 0;
    }

    @Override
    public long memoryAddress() {
        ensureAccessible();
        if (address == 0) {
            throw new UnsupportedOperationException("this JVM gives no native address for the memory");
        }
        return address;
    }

    // ------------------------------------------------------------------ primitive access

    @Override
    protected byte _getByte(int index) {
        return memory.get(base + index);
    }

    @Override
    protected short _getShort(int index) {
        return memory.getShort(base + index);
    }

    @Override
    protected short _getShortLE(int index) {
        return Short.reverseBytes(memory.getShort(base + index));
    }

    @Override
    protected int _getUnsignedMedium(int index) {
        int i = base + index;
        return (memory.get(i) & 0xff) << 16 | (memory.getShort(i + 1) & 0xffff);
    }

    @Override
    protected int _getUnsignedMediumLE(int index) {
        int i = base + index;
        return (memory.get(i) & 0xff) | (Short.reverseBytes(memory.getShort(i + 1)) & 0xffff) << 8;
    }

    @Override
    protected int _getInt(int index) {
        return memory.getInt(base + index);
    }

    @Override
    protected int _getIntLE(int index) {
        return Integer.reverseBytes(memory.getInt(base + index));
    }

    @Override
    protected long _getLong(int index) {
        return memory.getLong(base + index);
    }

    @Override
    protected long _getLongLE(int index) {
        return Long.reverseBytes(memory.getLong(base + index));
    }

    @Override
    protected void _setByte(int index, int value) {
        memory.put(base + index, (byte) value);
    }

    @Override
    protected void _setShort(int index, int value) {
        memory.putShort(base + index, (short) value);
    }

    @Override
    protected void _setShortLE(int index, int value) {
        memory.putShort(base + index, Short.reverseBytes((short) value));
    }

    @Override
    protected void _setMedium(int index, int value) {
        int i = base + index;
        memory.put(i, (byte) (value >>> 16));
        memory.putShort(i + 1, (short) value);
    }

    @Override
    protected void _setMediumLE(int index, int value) {
        int i = base + index;
        memory.put(i, (byte) value);
        memory.putShort(i + 1, Short.reverseBytes((short) (value >>> 8)));
    }

    @Override
    protected void _setInt(int index, int value) {
        memory.putInt(base + index, value);
    }

    @Override
    protected void _setIntLE(int index, int value) {
        memory.putInt(base + index, Integer.reverseBytes(value));
    }

    @Override
    protected void _setLong(int index, long value) {
        memory.putLong(base + index, value);
    }

    @Override
    protected void _setLongLE(int index, long value) {
        memory.putLong(base + index, Long.reverseBytes(value));
    }

    // ------------------------------------------------------------------ bulk transfers out

    @Override
    public ByteBuf getBytes(int index, ByteBuf dst, int dstIndex, int length) {
        checkDstIndex(index, length, dstIndex, dst.capacity());
        if (dst instanceof PagePoolByteBuf) {
            PagePoolByteBuf d = (PagePoolByteBuf) dst;
            d.ensureAccessible(); // the direct path skips dst's own checks: a released dst must still throw
            d.memory.put(d.base + dstIndex, memory, base + index, length);
        } else if (dst.hasArray()) {
            memory.get(base + index, dst.array(), dst.arrayOffset() + dstIndex, length);
        } else if (dst.nioBufferCount() > 0) {
            for (ByteBuffer bb : dst.nioBuffers(dstIndex, length)) {
                int n = bb.remaining();
                bb.put(bb.position(), memory, base + index, n);
                index += n;
            }
        } else {
            dst.setBytes(dstIndex, this, index, length);
        }
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, byte[] dst, int dstIndex, int length) {
        checkDstIndex(index, length, dstIndex, dst.length);
        memory.get(base + index, dst, dstIndex, length);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, ByteBuffer dst) {
        int n = dst.remaining();
        checkIndex(index, n);
        dst.put(dst.position(), memory, base + index, n);
        dst.position(dst.position() + n);
        return this;
    }

    @Override
    public ByteBuf getBytes(int index, OutputStream out, int length) throws IOException {
        checkIndex(index, length);
        // Stream copies go through a heap array: streams take nothing else. Not a per-packet path.
        byte[] tmp = new byte[Math.min(length, STREAM_CHUNK)];
        while (length > 0) {
            int n = Math.min(length, tmp.length);
            memory.get(base + index, tmp, 0, n);
            out.write(tmp, 0, n);
            index += n;
            length -= n;
        }
        return this;
    }

    /**
     * A new NIO view, not the cached one: index-based reads leave this buffer unchanged, so Netty lets
     * them run on several threads at once (its pooled buffers duplicate here too), and the views of
     * this buffer, each on its own thread perhaps, reach the memory through this method.
     */
    @Override
    public int getBytes(int index, GatheringByteChannel out, int length) throws IOException {
        return out.write(nioBuffer(index, length));
    }

    @Override
    public int getBytes(int index, FileChannel out, long position, int length) throws IOException {
        return out.write(nioBuffer(index, length), position);
    }

    /** The cached NIO view, as Netty's pooled buffers: a read that moves this buffer's index is single-threaded anyway. */
    @Override
    public int readBytes(GatheringByteChannel out, int length) throws IOException {
        checkReadableBytes(length);
        int n = out.write(internalNioBuffer(readerIndex(), length));
        readerIndex(readerIndex() + n);
        return n;
    }

    @Override
    public int readBytes(FileChannel out, long position, int length) throws IOException {
        checkReadableBytes(length);
        int n = out.write(internalNioBuffer(readerIndex(), length), position);
        readerIndex(readerIndex() + n);
        return n;
    }

    // ------------------------------------------------------------------ bulk transfers in

    @Override
    public ByteBuf setBytes(int index, ByteBuf src, int srcIndex, int length) {
        checkSrcIndex(index, length, srcIndex, src.capacity());
        if (src instanceof PagePoolByteBuf) {
            PagePoolByteBuf s = (PagePoolByteBuf) src;
            s.ensureAccessible(); // as in getBytes: a released src must throw, not be read
            memory.put(base + index, s.memory, s.base + srcIndex, length);
        } else if (src.hasArray()) {
            memory.put(base + index, src.array(), src.arrayOffset() + srcIndex, length);
        } else if (src.nioBufferCount() > 0) {
            for (ByteBuffer bb : src.nioBuffers(srcIndex, length)) {
                int n = bb.remaining();
                memory.put(base + index, bb, bb.position(), n);
                index += n;
            }
        } else {
            src.getBytes(srcIndex, this, index, length);
        }
        return this;
    }

    @Override
    public ByteBuf setBytes(int index, byte[] src, int srcIndex, int length) {
        checkSrcIndex(index, length, srcIndex, src.length);
        memory.put(base + index, src, srcIndex, length);
        return this;
    }

    @Override
    public ByteBuf setBytes(int index, ByteBuffer src) {
        int n = src.remaining();
        checkIndex(index, n);
        memory.put(base + index, src, src.position(), n);
        src.position(src.position() + n);
        return this;
    }

    @Override
    public int setBytes(int index, InputStream in, int length) throws IOException {
        checkIndex(index, length);
        // One read, as Netty's own buffers do; the heap array is the only thing a stream takes.
        byte[] tmp = new byte[length];
        int read = in.read(tmp, 0, length);
        if (read > 0) {
            memory.put(base + index, tmp, 0, read);
        }
        return read;
    }

    @Override
    public int setBytes(int index, ScatteringByteChannel in, int length) throws IOException {
        checkIndex(index, length);
        try {
            return in.read(internalNioBuffer(index, length));
        } catch (ClosedChannelException ignored) {
            return -1;
        }
    }

    @Override
    public int setBytes(int index, FileChannel in, long position, int length) throws IOException {
        checkIndex(index, length);
        try {
            return in.read(internalNioBuffer(index, length), position);
        } catch (ClosedChannelException ignored) {
            return -1;
        }
    }

    @Override
    public ByteBuf copy(int index, int length) {
        checkIndex(index, length);
        ByteBuf copy = alloc().directBuffer(length, maxCapacity());
        return copy.writeBytes(this, index, length);
    }

    // ------------------------------------------------------------------ NIO views

    @Override
    public ByteBuffer nioBuffer(int index, int length) {
        checkIndex(index, length);
        return memory.slice(base + index, length);
    }

    @Override
    public ByteBuffer internalNioBuffer(int index, int length) {
        checkIndex(index, length);
        ByteBuffer tmp = tmpNioBuf;
        if (tmpNioBufOf != memory) {
            tmp = memory.duplicate();
            tmpNioBuf = tmp;
            tmpNioBufOf = memory;
        }
        tmp.clear();
        tmp.position(base + index);
        tmp.limit(base + index + length);
        return tmp;
    }

    @Override
    public String toString() {
        if (refCnt() == 0) {
            return "PagePoolByteBuf(freed)";
        }
        return "PagePoolByteBuf(" + kindName() + ", ridx: " + readerIndex() + ", widx: " + writerIndex() + ", cap: "
                + length + "/" + maxCapacity() + ", backing: " + backingSize + where() + ")";
    }

    /** The object and its memory binding, whatever the reference count: for error messages. */
    String describe() {
        return "PagePoolByteBuf@" + Integer.toHexString(System.identityHashCode(this)) + "(" + kindName() + where()
                + ")";
    }

    private String where() {
        long handle = fragHandle; // read once: a racy report may see it cleared (NO_FRAG) under kind FRAG
        return kind == FRAG ? (handle < 0 ? "" : ", pfn " + PagePool.fragPfn(handle) + " +" + PagePool.fragOffset(handle))
                : kind == FALLBACK || kind == NONE ? "" : ", pfn " + pfn;
    }

    private String kindName() {
        switch (kind) {
            case FRAG:
                return "fragment";
            case PAGE:
                return "page";
            case BLOCK:
                return "order-" + order + " block";
            case NONE:
                return "no memory";
            default:
                return "unpooled fallback";
        }
    }

    /** pfn of the page or block holding the buffer, or {@link PageAllocator#NO_PAGE} for a fallback. For tests and metrics. */
    int pfn() {
        long handle = fragHandle;
        return kind == FRAG ? (handle < 0 ? PageAllocator.NO_PAGE : PagePool.fragPfn(handle))
                : kind == FALLBACK ? PageAllocator.NO_PAGE : pfn;
    }
}
