package io.pagepool.netty;

import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import io.pagepool.core.ThreadOwnedSlots;
import io.netty.util.internal.logging.InternalLogger;
import io.netty.util.internal.logging.InternalLoggerFactory;
import java.nio.ByteBuffer;
import org.jctools.queues.atomic.MpscAtomicArrayQueue;

/**
 * One thread's share of a {@link PagePoolByteBufAllocator}: the thread's {@link PagePool} (the
 * kernel's one page pool per NAPI context, with a Netty event loop as the context), caches of
 * fragment handles per size class, and the buffer objects the thread hands out.
 *
 * <h2>Where a buffer's memory comes from</h2>
 * <pre>
 *   requested capacity          memory                                   released on owner / elsewhere
 *   &lt;= maxFragmentSize         fragment of a pool page, by size class    handle cache / putFrag (atomic)
 *     (64, 128, ... pageSize/2)  (handle cache first, then allocFrag)
 *   &lt;= pageSize                a whole pool page (allocPage)             recycleDirect / ring
 *   &lt;= pageSize &lt;&lt; 3         a block from the PageAllocator, through   owner's per-CPU cache / queue
 *                               its per-CPU caches (orders 1-3)           to the owner, freed there
 *   &lt;= pageSize &lt;&lt; maxOrder   a block from the PageAllocator            freePages on the releasing thread
 *   larger, or exhausted        the allocator's fallback policy
 * </pre>
 *
 * <h2>Why a handle cache in front of the pool's fragments</h2>
 * {@link PagePool#putFrag} is safe from any thread, so it pays two atomic operations (a bitmap
 * bit that catches double release, and the page's fragment count). A buffer released on its owner
 * thread instead pushes its fragment handle onto a plain per-class stack, and the next buffer of
 * that class reuses it: a same-thread allocate/release pair costs no atomic operation besides
 * Netty's own reference count. The stacks are bounded ({@code fragmentCacheSize} handles per class); past
 * that, fragments go back to the pool.
 *
 * <h2>Buffers released on other threads: a remote-free queue</h2>
 * A buffer released on a thread other than its arena's owner does not touch the pool's shared
 * fragment counters (which the owner is writing as it carves, so every release would move their
 * cache lines between cores). It is offered, object and memory binding together, to a bounded
 * multi-producer queue; the owner drains the queue when its object stack or a fragment class runs
 * dry and returns the memory with plain operations. A cross-thread release thus costs one
 * reference-count CAS and one queue offer. Memory waits in the queue until the owner drains it
 * (at most {@code objectCacheSize} buffers); if the queue is full, or the arena closed, the
 * releasing thread returns the memory itself through the pool's thread-safe paths.
 *
 * <p>Blocks of orders 1-3 (up to 32 KiB with 4 KiB pages) take the same route. Freed on the
 * releasing thread they would land in that thread's per-CPU set, which never allocates them, while
 * the owner's set runs dry: both threads would then take the zone lock every batch (16 KiB buffers
 * passed between two threads cost 1.6x less than Netty's instead of 2-4x). Routed home, they refill
 * the owner's per-CPU set. The price is memory parked in the queue: at most {@code objectCacheSize}
 * blocks of 32 KiB (32 MiB with the default 1024) per arena until the owner drains it. Larger blocks
 * are freed in place.
 *
 * <p>The queue also catches one caller bug the buffer's reference count no longer does (see
 * {@link PagePoolByteBuf}): the owner and another thread releasing the same last reference at once.
 * A legitimate entry is an object with count 0 that is not on the object stack; any other entry is
 * the second of two releases, and is dropped, logged and counted instead of freeing memory twice.
 *
 * <h2>Buffer objects</h2>
 * Recycled through a plain stack on the owner thread, and through the same queue from other
 * threads (if the stack is full, an object is left to the garbage collector). Netty's {@code Recycler} is not used: it
 * only pools objects on {@code FastThreadLocalThread}s and by default keeps one new object in
 * eight, so plain threads would allocate a buffer object per call.
 *
 * <p>Thread safety: {@link #newBuffer} and {@link #bind} on the owner thread only;
 * {@link #returnFromOtherThread}, {@link #releaseFrag}, {@link #releasePage} and
 * {@link #recycleObject} from any thread;
 * {@link #close()} on the owner thread or after it ended.
 */
final class PagePoolArena extends ThreadOwnedSlots.Owned {

    private static final InternalLogger logger = InternalLoggerFactory.getInstance(PagePoolArena.class);

    static final int MIN_FRAG_SIZE = 64;
    /** Blocks up to this order (the page allocator's per-CPU orders) go home to the owner when released elsewhere. */
    static final int MAX_ROUTED_BLOCK_ORDER = 3;
    private static final int MIN_FRAG_SHIFT = 6;

    final PagePoolByteBufAllocator parent;
    /** Same as {@link #owner()}, read directly on every release. */
    final Thread owner;
    final PagePool pool;
    private final PageAllocator pages;
    private final int pageSize;
    private final int maxFragSize;
    private final int regionShift;
    private final ByteBuffer[] regionBuffers;
    private final long[] regionAddresses;

    private final long[][] fragCache;
    private final int[] fragCacheCount;
    private final PagePoolByteBuf[] objects;
    private int objectCount;
    private final MpscAtomicArrayQueue<PagePoolByteBuf> returnedObjects;
    private volatile boolean closed;
    /** Serializes close with late drains of {@link #returnedObjects} (the queue has one consumer at a time). */
    private final Object closeLock = new Object();

    // Owner-thread counters, read racily by metrics. The fast path bumps only one.
    /** Buffers served by the fast path: a fragment-cache hit. */
    long fastAllocations;
    /** Buffers served by {@link #newBufferSlow}. */
    long slowAllocations;
    /** Fragment-cache hits outside the fast path (a buffer growing into a cached fragment). */
    long otherFragCacheHits;
    /** Queued releases dropped because the object had already come back: see the class comment. */
    long concurrentDoubleReleases;
    private final int regionMask;
    private final int pageShift;

    PagePoolArena(PagePoolByteBufAllocator parent, Thread owner, PagePool pool, int maxFragSize, int fragmentCacheSize,
            int objectCacheSize) {
        super(owner);
        this.parent = parent;
        this.owner = owner;
        this.pool = pool;
        this.pages = pool.allocator();
        this.pageSize = pages.pageSize();
        this.maxFragSize = maxFragSize;
        this.regionShift = Integer.numberOfTrailingZeros(pages.regionPages());
        this.regionMask = pages.regionPages() - 1;
        this.pageShift = Integer.numberOfTrailingZeros(pageSize);
        int regions = (pages.totalPages() + pages.regionPages() - 1) >>> regionShift;
        this.regionBuffers = new ByteBuffer[regions];
        this.regionAddresses = new long[regions];
        int classes = sizeClass(maxFragSize) + 1;
        this.fragCache = new long[classes][];
        this.fragCacheCount = new int[classes];
        for (int c = 0; c < classes; c++) {
            fragCache[c] = new long[fragmentCacheSize];
        }
        this.objects = new PagePoolByteBuf[objectCacheSize];
        this.returnedObjects = new MpscAtomicArrayQueue<>(Math.max(2, objectCacheSize));
    }

    /** Size class of a fragment request: 0 for up to 64 bytes, 1 for up to 128, ... */
    static int sizeClass(int capacity) {
        return capacity <= MIN_FRAG_SIZE ? 0 : 32 - Integer.numberOfLeadingZeros(capacity - 1) - MIN_FRAG_SHIFT;
    }

    static int classSize(int sizeClass) {
        return MIN_FRAG_SIZE << sizeClass;
    }

    // ------------------------------------------------------------------ owner thread

    /**
     * A buffer of {@code initialCapacity} bytes. The fast path, a fragment-cache hit with a pooled
     * object, is kept small enough for the JIT to inline; everything else is in {@link #newBufferSlow}.
     */
    PagePoolByteBuf newBuffer(int initialCapacity, int maxCapacity) {
        PagePoolByteBuf buf = takeObject();
        buf.reuse(maxCapacity);
        if (initialCapacity <= maxFragSize) {
            int sizeClass = sizeClass(initialCapacity);
            int n = fragCacheCount[sizeClass];
            if (n > 0) {
                fragCacheCount[sizeClass] = n - 1;
                long handle = fragCache[sizeClass][n - 1];
                if (!buf.rebindSameFrag(this, handle, sizeClass, initialCapacity)) {
                    bindFrag(buf, handle, sizeClass, initialCapacity);
                }
                fastAllocations++;
                return buf;
            }
        }
        return newBufferSlow(buf, initialCapacity);
    }

    private PagePoolByteBuf newBufferSlow(PagePoolByteBuf buf, int initialCapacity) {
        if (!returnedObjects.isEmpty()) {
            drainReturned(); // buffers released on other threads may have brought memory back
        }
        try {
            bind(buf, initialCapacity);
        } catch (RuntimeException | Error e) {
            recycleObject(buf);
            throw e;
        }
        slowAllocations++;
        return buf;
    }

    long buffersAllocated() {
        return fastAllocations + slowAllocations;
    }

    long fragCacheHits() {
        return fastAllocations + otherFragCacheHits;
    }

    private PagePoolByteBuf takeObject() {
        int n = objectCount;
        if (n > 0) {
            objectCount = n - 1;
            return objects[n - 1]; // the slot keeps a stale reference until overwritten: harmless
        }
        return takeObjectSlow();
    }

    private PagePoolByteBuf takeObjectSlow() {
        drainReturned();
        int n = objectCount;
        if (n > 0) {
            objectCount = n - 1;
            return objects[n - 1];
        }
        return new PagePoolByteBuf(parent, this);
    }

    /**
     * Owner thread: takes back every buffer released on other threads, returning the memory each
     * brought (fragment handle to the class cache, page to the pool's cache) and keeping the object.
     */
    private void drainReturned() {
        PagePoolByteBuf buf;
        while ((buf = returnedObjects.relaxedPoll()) != null) {
            if (releaseReturnedMemory(buf) && objectCount < objects.length) {
                buf.parked = true;
                objects[objectCount++] = buf;
            }
        }
    }

    /**
     * Returns the memory a queued object brought, or, if the entry is the second of two releases of
     * one last reference (the object is back on the stack, or in use again), drops it and reports it.
     *
     * @return true if the entry was genuine and the object may be kept
     */
    private boolean releaseReturnedMemory(PagePoolByteBuf buf) {
        if (buf.parked || buf.refCnt() != 0) {
            reportConcurrentDoubleRelease(buf);
            return false;
        }
        byte kind = buf.kind();
        if (kind == PagePoolByteBuf.FRAG) {
            releaseFrag(buf.fragHandle(), buf.fragClass());
        } else if (kind == PagePoolByteBuf.PAGE) {
            releasePage(buf.boundPfn());
        } else if (kind == PagePoolByteBuf.BLOCK) {
            pages.freePages(buf.boundPfn(), buf.boundOrder()); // on the owner: into its per-CPU set
        }
        return true;
    }

    private void reportConcurrentDoubleRelease(PagePoolByteBuf buf) {
        concurrentDoubleReleases++; // owner thread, or under closeLock after close
        logger.error("{} was released twice at the same time: its owner thread {} and another thread both released"
                + " the last reference. The second release was ignored and the memory returned once; a caller"
                + " holds a reference it does not own.", buf.describe(), owner.getName());
    }

    /**
     * Binds {@code capacity} bytes of memory from this arena (or the allocator) to {@code buf}. When
     * memory runs out, the arena first gives back everything it has parked (see {@link
     * #reclaimParked()}) and tries once more; only then does the allocator's fallback policy apply.
     */
    void bind(PagePoolByteBuf buf, int capacity) {
        if (tryBind(buf, capacity) || (reclaimParked() && tryBind(buf, capacity))) {
            return;
        }
        parent.bindFallback(buf, capacity);
    }

    private boolean tryBind(PagePoolByteBuf buf, int capacity) {
        if (capacity <= maxFragSize) {
            int sizeClass = sizeClass(capacity);
            long handle = popFrag(sizeClass);
            if (handle == PagePool.NO_FRAG) {
                handle = pool.allocFrag(classSize(sizeClass));
            }
            if (handle != PagePool.NO_FRAG) {
                bindFrag(buf, handle, sizeClass, capacity);
                return true;
            }
            return false;
        }
        if (capacity <= pageSize) {
            int pfn = pool.allocPage();
            if (pfn == PageAllocator.NO_PAGE) {
                return false;
            }
            ByteBuffer region = regionBuffer(pfn);
            buf.bindPage(this, pfn, region, regionOffset(pfn), pageAddress(pfn, 0), capacity, pageSize);
            return true;
        }
        return parent.bindBlock(buf, capacity, this);
    }

    /**
     * Owner thread, when memory ran out: takes back buffers released on other threads, returns every
     * cached fragment to the pool, and gives the pool's cache and ring back to the page allocator, so
     * that pages this thread parked can serve the request (the pool's current fragment page and pages
     * in use stay). Like the page allocator's per-CPU caches, other threads' arenas are not touched.
     *
     * @return true if anything was given back
     */
    private boolean reclaimParked() {
        boolean any = !returnedObjects.isEmpty();
        drainReturned();
        for (int c = 0; c < fragCache.length; c++) {
            long[] cache = fragCache[c];
            for (int i = 0, n = fragCacheCount[c]; i < n; i++) {
                pool.putFrag(cache[i], true);
                any = true;
            }
            fragCacheCount[c] = 0;
        }
        return pool.trim() > 0 || any;
    }

    private void bindFrag(PagePoolByteBuf buf, long handle, int sizeClass, int capacity) {
        int pfn = PagePool.fragPfn(handle);
        int offset = PagePool.fragOffset(handle);
        ByteBuffer region = regionBuffer(pfn);
        buf.bindFrag(this, handle, sizeClass, classSize(sizeClass), region, regionOffset(pfn) + offset,
                pageAddress(pfn, offset), capacity);
    }

    private long popFrag(int sizeClass) {
        int n = fragCacheCount[sizeClass];
        if (n == 0) {
            return PagePool.NO_FRAG;
        }
        fragCacheCount[sizeClass] = n - 1;
        otherFragCacheHits++;
        return fragCache[sizeClass][n - 1];
    }

    private ByteBuffer regionBuffer(int pfn) {
        ByteBuffer buffer = regionBuffers[pfn >>> regionShift];
        return buffer != null ? buffer : loadRegion(pfn);
    }

    private ByteBuffer loadRegion(int pfn) {
        int region = pfn >>> regionShift;
        ByteBuffer buffer = pages.regionBuffer(pfn);
        long address = pages.address(pfn);
        regionAddresses[region] = address == 0 ? 0 : address - regionOffset(pfn);
        regionBuffers[region] = buffer;
        return buffer;
    }

    /** Native address of byte {@code offset} of page {@code pfn}, or 0; after {@link #regionBuffer} for that pfn. */
    private long pageAddress(int pfn, int offset) {
        long regionAddress = regionAddresses[pfn >>> regionShift];
        return regionAddress == 0 ? 0 : regionAddress + regionOffset(pfn) + offset;
    }

    /** {@link PageAllocator#regionOffset(int)} without its open check: the arena only sees pfns it holds. */
    private int regionOffset(int pfn) {
        return (pfn & regionMask) << pageShift;
    }

    // ------------------------------------------------------------------ any thread

    /**
     * The owner-thread release of a fragment buffer: its handle onto the class cache and the object
     * onto the stack, with one ownership check. False (nothing done) off the owner thread, after
     * close, or when either stack is full; the caller then takes the general path.
     */
    boolean recycleFragLocally(PagePoolByteBuf buf, long handle, int sizeClass) {
        if (Thread.currentThread() != owner || closed) {
            return false;
        }
        int n = fragCacheCount[sizeClass];
        long[] cache = fragCache[sizeClass];
        int m = objectCount;
        if (n == cache.length || m == objects.length) {
            return false;
        }
        cache[n] = handle;
        fragCacheCount[sizeClass] = n + 1;
        buf.parked = true;
        objects[m] = buf;
        objectCount = m + 1;
        return true;
    }

    /**
     * A buffer whose memory belongs to this arena is released on another thread: queue the whole
     * object for the owner. False (nothing done) on the owner thread, after close, or when the queue
     * is full; the caller then returns the memory itself.
     */
    boolean returnFromOtherThread(PagePoolByteBuf buf) {
        if (Thread.currentThread() == owner || closed || !returnedObjects.offer(buf)) {
            return false;
        }
        if (closed) {
            drainReturnedAfterClose(); // close may have drained the queue before this offer landed
        }
        return true;
    }

    private void drainReturnedAfterClose() {
        synchronized (closeLock) {
            PagePoolByteBuf buf;
            while ((buf = returnedObjects.poll()) != null) {
                releaseReturnedMemory(buf); // closed: thread-safe paths into the closed pool
            }
        }
    }

    /** A fragment comes back: into the owner's handle cache, else to the pool. */
    void releaseFrag(long handle, int sizeClass) {
        if (Thread.currentThread() == owner && !closed) {
            int n = fragCacheCount[sizeClass];
            long[] cache = fragCache[sizeClass];
            if (n < cache.length) {
                cache[n] = handle;
                fragCacheCount[sizeClass] = n + 1;
                return;
            }
            pool.putFrag(handle, true);
            return;
        }
        pool.putFrag(handle, false);
    }

    /** A whole page comes back: into the pool's cache on the owner thread, through its ring elsewhere. */
    void releasePage(int pfn) {
        pool.putPage(pfn, 0, Thread.currentThread() == owner);
    }

    /** A buffer object without memory comes back: onto the owner's stack, or into the queue the owner drains. */
    void recycleObject(PagePoolByteBuf buf) {
        if (closed) {
            return;
        }
        if (Thread.currentThread() == owner) {
            if (objectCount < objects.length) {
                buf.parked = true;
                objects[objectCount++] = buf;
            }
        } else {
            returnedObjects.offer(buf);
        }
    }

    // ------------------------------------------------------------------ lifecycle and metrics

    boolean isClosed() {
        return closed;
    }

    /**
     * Returns every cached fragment and the pool's pages to the allocator, and closes the pool; buffers
     * still out return their memory to the allocator when released. Owner thread, or after it ended.
     */
    void close() {
        synchronized (closeLock) {
            if (closed) {
                return;
            }
            closed = true;
            PagePoolByteBuf buf;
            while ((buf = returnedObjects.poll()) != null) {
                releaseReturnedMemory(buf); // the objects go with the arena
            }
            for (int c = 0; c < fragCache.length; c++) {
                long[] cache = fragCache[c];
                for (int i = 0, n = fragCacheCount[c]; i < n; i++) {
                    pool.putFrag(cache[i], false);
                }
                fragCacheCount[c] = 0;
            }
            pool.close();
            for (int i = 0; i < objectCount; i++) {
                objects[i] = null;
            }
            objectCount = 0;
        }
    }

    /** Fragment handles parked in the per-class caches (racy while the owner runs). */
    int cachedFragments() {
        int sum = 0;
        for (int n : fragCacheCount) {
            sum += n;
        }
        return sum;
    }

    int pooledObjects() {
        return objectCount + returnedObjects.size();
    }
}
