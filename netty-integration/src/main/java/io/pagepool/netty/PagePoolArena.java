package io.pagepool.netty;

import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import io.pagepool.core.ThreadOwnedSlots;
import io.netty.util.internal.ThreadExecutorMap;
import io.netty.util.internal.logging.InternalLogger;
import io.netty.util.internal.logging.InternalLoggerFactory;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jctools.queues.atomic.MpscAtomicArrayQueue;

/**
 * One thread's share of a {@link PagePoolByteBufAllocator}: the thread's {@link PagePool} (the
 * kernel's one page pool per NAPI context, with a Netty event loop as the context), released
 * buffers parked with their memory (a hot slot and one stack per park class), and the buffer
 * objects the thread hands out.
 *
 * <h2>Where a buffer's memory comes from</h2>
 * <pre>
 *   requested capacity          park class     memory when none is parked             released on owner / elsewhere
 *   &lt;= maxFragmentSize         0 .. F-1       fragment of a pool page (allocFrag)    parked / queue to the owner,
 *     (64, 128, ... pageSize/2)  size classes                                         parked there
 *   &lt;= pageSize                F (pages)      a whole pool page (allocPage)          parked / queue, parked there
 *   &lt;= pageSize &lt;&lt; 3         F+1 .. F+3     a block from the PageAllocator,        parked / queue, parked there
 *                               (orders 1-3)   through its per-CPU caches
 *   &lt;= pageSize &lt;&lt; maxOrder   none           a block from the PageAllocator         freePages on the releasing thread
 *   larger, or exhausted        none           the allocator's fallback policy
 * </pre>
 * "Parked" is the hot slot or the class's stack ({@code fragmentCacheSize} buffers per fragment
 * class, {@code blockCacheSize} per page or block order); past that the memory goes back (fragment
 * or page to the pool, into its cache on the owner; block to the owner's per-CPU set).
 *
 * <h2>Why per-class stacks of bound buffers in front of the pool</h2>
 * {@link PagePool#putFrag} is safe from any thread, so it pays two atomic operations (a bitmap
 * bit that catches double release, and the page's fragment count). A buffer released on its owner
 * thread instead goes, object and fragment together, onto a plain stack for its size class, and
 * the next buffer of that class is that object again with its capacity and indexes reset: a
 * same-thread allocate/release pair is one pop and one push (or a take from and a put into the hot
 * slot, below), with no atomic operation at all (see
 * {@link PagePoolByteBuf} for the reference count). Keeping the fragment in the object, rather
 * than its handle in a separate stack, removes a second chain of dependent loads and stores from
 * every pair: 14.6 to 10.8 ns per 2 KiB pair on the machine in docs/benchmarks.md. The stacks are
 * bounded ({@code fragmentCacheSize} buffers per class); past that, fragments go back to the pool.
 * A fragment that comes back without an object (a buffer grew out of it) borrows a spare object
 * from the object stack to join its class stack.
 *
 * <p>Whole pages and blocks of orders 1-3 are parked the same way, one class per order. Returned to
 * the pool or the per-CPU set instead, each pair would pay the pool's page-state checks, a region
 * lookup and a rebinding (a 4 KiB pair cost about 28 ns against 8 ns for 2 KiB), and a page released
 * on another thread would make the owner poll the remote-free queue on every allocation rather than
 * once per emptied stack (cross-thread 4 KiB: about 255 ns a buffer against 120 parked; the A/B
 * figures are in docs/benchmarks.md). The price is memory: at most {@code blockCacheSize} buffers per
 * order stay bound (3.75 MiB per arena with the defaults), counted as in use by the pool (pages) and
 * the page allocator (blocks) and given back when memory runs out ({@link #reclaimParked()}).
 *
 * <h2>Parked objects are ids, not references</h2>
 * Under G1 (the default collector) storing a reference into an object costs a write barrier, and
 * once holder and value are both in the old generation (a pool's arrays and buffer objects are,
 * after the first few collections of a server's life) that barrier runs a StoreLoad fence on every
 * store. A stack of references would pay one fence per release. So each object this arena can park
 * gets an id, an index into {@code byId}, written once when the object is made; the class stacks
 * and the object stack hold ids ({@code int[]}, no barrier), and a take reads {@code byId[id]}. The
 * hot slot keeps a reference, but taking the buffer leaves it in place and parking the same object
 * again stores nothing, so a packet loop stores no reference either. The gain shows with every
 * object old (JMH {@code -gc true}, figures in docs/benchmarks.md, "Old generation"); with young
 * objects it is within this machine's noise.
 *
 * <p>There is one id per place an object can be parked (hot slot, {@code fragmentCacheSize} per
 * fragment class, {@code blockCacheSize} per page or block order, {@code objectCacheSize}); an
 * object made when none is free has none and goes to the
 * garbage collector when released, as one past a full stack always did. {@code byId} keeps every
 * object with an id reachable, which would hide a leaked buffer from Netty's leak detector: a buffer
 * the detector tracks gives its id back when it is handed out ({@link #letGoOfTracked}) and takes a
 * free one when it is parked again.
 *
 * <h2>Stacks bounded by end marks</h2>
 * The class stacks and their tops share one {@code int[]}, each stack between two entries that hold
 * {@link #STACK_END} (an id is never negative):
 * <pre>
 *   stacks  | top 0 | top 1 | ... | E | class 0 ids ... | E | class 1 ids ... | E | ... | E | E |
 *                                       ^ stackBase[0]    ^ stackLimit[0]               ^ the unparked
 *                                                                                         class: no room
 *   pop  class c:  top = stacks[c], id = stacks[top - 1]   E: empty, else stacks[c] = top - 1, byId[id]
 *   push class c:  top = stacks[c], stacks[top] is E:      full, else stacks[top] = id, stacks[c] = top + 1
 * </pre>
 * A pop reads the entry below the top anyway, and a push writes the entry at the top, so the mark
 * answers "empty?" and "full?" without loading the class's base or limit, and the top lives in the
 * same array: one array and one range check on the index fewer per pop and per push than separate
 * top, base and limit arrays. Entries left behind by pops are stale ids, never marks: only the
 * constructor writes a mark, and a push never writes over one.
 *
 * <h2>Buffers released on other threads: a remote-free queue</h2>
 * A buffer released on a thread other than its arena's owner does not touch the pool's shared
 * fragment counters (which the owner is writing as it carves, so every release would move their
 * cache lines between cores). It is offered, object and memory binding together, to a bounded
 * multi-producer queue; the owner drains the queue when its object stack or the requested park
 * class runs dry, and parks each buffer on its class stack as it is (or, past the stack's bound,
 * returns the memory with plain operations). A cross-thread release thus costs one reference-count
 * CAS and one queue offer, and the owner touches the queue's shared cache lines once per emptied
 * stack, not once per buffer. Memory waits in the queue until the owner drains it
 * (at most {@code objectCacheSize} buffers); if the queue is full, or the arena closed, the
 * releasing thread returns the memory itself through the pool's thread-safe paths.
 *
 * <p>Blocks of orders 1-3 (up to 32 KiB with 4 KiB pages) take the same route. Freed on the
 * releasing thread they would land in that thread's per-CPU set, which never allocates them, while
 * the owner's set runs dry: both threads would then take the zone lock every batch (16 KiB buffers
 * passed between two threads cost 1.6x less than Netty's instead of 2-4x). Routed home, they are
 * parked for the owner's next buffers of their order. The price is memory parked in the queue: at
 * most {@code objectCacheSize} blocks of 32 KiB (32 MiB with the default 1024) per arena until the
 * owner drains it. Larger blocks are freed in place.
 *
 * <p>The queue also catches one caller bug the buffer's reference count no longer does (see
 * {@link PagePoolByteBuf}): the owner and another thread releasing the same last reference at once.
 * A legitimate entry is an object with count 0 that is not parked (hot slot, class stack or object
 * stack); any other entry is
 * the second of two releases, and is dropped, logged and counted instead of freeing memory twice.
 *
 * <h2>Buffer objects</h2>
 * Objects without memory are recycled through a plain stack on the owner thread, and through the
 * same queue from other threads (if the stack is full, an object is left to the garbage collector). Netty's {@code Recycler} is not used: it
 * only pools objects on {@code FastThreadLocalThread}s and by default keeps one new object in
 * eight, so plain threads would allocate a buffer object per call.
 *
 * <p>Thread safety: {@link #newBuffer}, {@link #takeParked}, {@link #bind}, {@link #parkOnOwner}, {@link #letGoOfTracked},
 * {@link #takeView} and {@link #trim} on the owner thread only;
 * {@link #returnFromOtherThread}, {@link #releaseFrag}, {@link #releasePage},
 * {@link #recycleObject}, {@link #recycleView} and {@link #requestGiveBack} from any thread;
 * {@link #close()} on the owner thread or after it ended.
 */
final class PagePoolArena extends ThreadOwnedSlots.Owned {

    private static final InternalLogger logger = InternalLoggerFactory.getInstance(PagePoolArena.class);

    static final int MIN_FRAG_SIZE = 64;
    /** Blocks up to this order (the page allocator's per-CPU orders) go home to the owner when released elsewhere. */
    static final int MAX_ROUTED_BLOCK_ORDER = 3;
    private static final int MIN_FRAG_SHIFT = 6;
    /** The entry of {@code stacks} just below and just above every class stack; never an id. */
    private static final int STACK_END = -1;

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

    /**
     * Every object this arena can park, by its {@link PagePoolByteBuf#parkId}. The slots and stacks
     * below hold ids, not references: see "Parked objects are ids" in the class comment. Written when
     * an object gets or gives back an id, never on the fast path.
     */
    private final PagePoolByteBuf[] byId;
    /** Ids 0 to {@code idsIssued - 1} have been given to an object at least once. */
    private int idsIssued;
    /** Ids of objects given up to the garbage collector, free for new objects. */
    private final int[] freeIds;
    private int freeIdCount;
    /**
     * The buffer the owner released last, any park class: checked before the class stacks. A packet
     * loop (allocate, use, release, allocate ...) then never touches a stack, and the release needs no
     * load that depends on the buffer (its park class) to find where it goes. The slot is full when
     * {@code hotClass} is the buffer's park class, empty when it is -1; taking the buffer
     * leaves the reference in place, so the same object cycling through the slot is parked without a
     * reference store (see "Parked objects are ids" in the class comment).
     */
    private PagePoolByteBuf hotBuf;
    private int hotClass = -1;
    /** Park classes: fragment size classes {@code 0 .. pageParkClass - 1}, then whole pages, then block orders 1-3. */
    private final int pageParkClass;
    /** The class of requests too large to park: its stack is empty and never filled. */
    private final int unparkedClass;
    /** Largest request served from a park class: a block of {@link #MAX_ROUTED_BLOCK_ORDER}. */
    private final int maxParkedSize;
    /**
     * The park classes' stacks of ids of released buffers still bound to their memory (LIFO), and
     * their tops: {@code stacks[c]} is the top of class {@code c}'s stack, which is
     * {@code stacks[stackBase[c], stacks[c])}, full at {@code stackLimit[c]}. Each stack lies
     * between two {@link #STACK_END} entries (neighbours share one), so the fast path finds an
     * empty or a full stack from the entry it reads anyway: see "Stacks bounded by end marks" in
     * the class comment. {@code stackBase} and {@code stackLimit} are for the slow paths.
     */
    private final int[] stacks;
    private final int[] stackBase;
    private final int[] stackLimit;
    /** Ids of objects without memory (LIFO). */
    private final int[] objectIds;
    private int objectCount;
    private final MpscAtomicArrayQueue<PagePoolByteBuf> returnedObjects;
    /**
     * Released {@link PagePoolDerivedByteBuf} views (retained slices and duplicates), owner thread only.
     * References, not ids: a view's release already pays a CAS, and views park no memory.
     */
    private final PagePoolDerivedByteBuf[] views;
    private int viewCount;
    /** Views released on other threads, on their way back to {@link #views}: drained when it is empty. */
    private final MpscAtomicArrayQueue<PagePoolDerivedByteBuf> returnedViews;
    private volatile boolean closed;
    /**
     * {@link #closed} as the owner thread sees it. Both are written by {@link #close()}, which runs
     * on the owner thread or after it ended, so the owner's release paths read this plain copy.
     */
    private boolean closedOnOwner;
    /** Serializes close with late drains of {@link #returnedObjects} (the queue has one consumer at a time). */
    private final Object closeLock = new Object();
    /** The event loop running on the owner thread, or null for a plain thread: runs {@link #giveBackOnOwner}. */
    private final Executor ownerExecutor;
    /** Set by another arena that ran out of memory; cleared when the owner has given its parked memory back. */
    private final AtomicBoolean giveBackRequested = new AtomicBoolean();
    private final Runnable giveBackTask = this::giveBackOnOwner;

    // Owner-thread counters, read racily by metrics. The fast path bumps only one.
    /** Buffers served by the fast path: a parked buffer taken as it is. */
    long fastAllocations;
    /** Buffers served by {@link #newBufferSlow}. */
    long slowAllocations;
    /** Buffers served by {@link #newBufferSlow} with memory parked with another buffer (not counted: resizes). */
    long otherCacheHits;
    /** Parked memory taken outside the fast path: by a new buffer, or a buffer resized into its class. */
    private long parkedReuses;
    /** Queued releases dropped because the object had already come back: see the class comment. */
    long concurrentDoubleReleases;
    private final int regionMask;
    private final int pageShift;

    PagePoolArena(PagePoolByteBufAllocator parent, Thread owner, PagePool pool, int maxFragSize, int fragmentCacheSize,
            int blockCacheSize, int objectCacheSize) {
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
        this.pageParkClass = sizeClass(maxFragSize) + 1;
        this.unparkedClass = pageParkClass + MAX_ROUTED_BLOCK_ORDER + 1;
        this.maxParkedSize = pageSize << MAX_ROUTED_BLOCK_ORDER;
        int classes = unparkedClass + 1;
        this.stackBase = new int[classes];
        this.stackLimit = new int[classes];
        int slots = 0;
        int end = classes; // index of the end mark below class c's stack; the tops come first
        for (int c = 0; c < classes; c++) {
            int size = c < pageParkClass ? fragmentCacheSize : c < unparkedClass ? blockCacheSize : 0;
            stackBase[c] = end + 1;
            stackLimit[c] = end + 1 + size;
            end = stackLimit[c];
            slots += size;
        }
        this.stacks = new int[end + 1];
        for (int c = 0; c < classes; c++) {
            stacks[c] = stackBase[c];
            stacks[stackBase[c] - 1] = STACK_END;
            stacks[stackLimit[c]] = STACK_END;
        }
        this.objectIds = new int[objectCacheSize];
        // One id per place an object can be parked: an object with an id always has a place to go.
        int ids = 1 + slots + objectCacheSize;
        this.byId = new PagePoolByteBuf[ids];
        this.freeIds = new int[ids];
        this.returnedObjects = new MpscAtomicArrayQueue<>(Math.max(2, objectCacheSize));
        this.views = new PagePoolDerivedByteBuf[objectCacheSize];
        this.returnedViews = new MpscAtomicArrayQueue<>(Math.max(2, objectCacheSize));
        this.ownerExecutor = Thread.currentThread() == owner ? ThreadExecutorMap.currentExecutor() : null;
    }

    /** Size class of a fragment request: 0 for up to 64 bytes, 1 for up to 128, ... */
    static int sizeClass(int capacity) {
        return capacity <= MIN_FRAG_SIZE ? 0 : 32 - Integer.numberOfLeadingZeros(capacity - 1) - MIN_FRAG_SHIFT;
    }

    static int classSize(int sizeClass) {
        return MIN_FRAG_SIZE << sizeClass;
    }

    /** Park class of a request of {@code capacity} bytes (see {@link #pageParkClass}). */
    private int parkClass(int capacity) {
        return capacity <= maxFragSize ? sizeClass(capacity) : largeParkClass(capacity);
    }

    /** Park class of a request larger than a fragment: the page class, a block order's, or {@link #unparkedClass}. */
    private int largeParkClass(int capacity) {
        if (capacity <= pageSize) {
            return pageParkClass;
        }
        if (capacity <= maxParkedSize) {
            return pageParkClass + 32 - Integer.numberOfLeadingZeros((capacity - 1) >>> pageShift);
        }
        return unparkedClass;
    }

    /** Park class of whole-page buffers. */
    int pageParkClass() {
        return pageParkClass;
    }

    /** Park class of buffers bound to a block of {@code order} (1 to {@link #MAX_ROUTED_BLOCK_ORDER}). */
    int blockParkClass(int order) {
        return pageParkClass + order;
    }

    // ------------------------------------------------------------------ owner thread

    /**
     * A buffer of {@code initialCapacity} bytes: {@link #takeParked} if it finds one, else
     * {@link #newBufferSlow}.
     */
    PagePoolByteBuf newBuffer(int initialCapacity, int maxCapacity) {
        PagePoolByteBuf buf = takeParked(initialCapacity, maxCapacity);
        return buf != null ? buf : newBufferSlow(initialCapacity, maxCapacity, parkClass(initialCapacity));
    }

    /**
     * The fast path: a parked buffer of {@code initialCapacity}'s park class, from the hot slot or a
     * pop from the class's stack, made ready for use; null if there is none. It calls nothing the
     * JIT does not inline ({@code reuse} and the size-class arithmetic are small), so that with it
     * inlined the caller's only call is its own slow path (every call on an inlined path makes the
     * JIT keep the caller's values in memory around it).
     */
    PagePoolByteBuf takeParked(int initialCapacity, int maxCapacity) {
        int c = parkClass(initialCapacity);
        PagePoolByteBuf buf;
        if (hotClass == c) {
            hotClass = -1;
            buf = hotBuf; // left in place: see hotBuf
        } else {
            int[] s = stacks;
            int top = s[c];
            int id = s[top - 1];
            if (id == STACK_END) {
                return null;
            }
            s[c] = top - 1;
            buf = byId[id];
        }
        buf.reuse(initialCapacity, maxCapacity);
        fastAllocations++;
        return buf;
    }

    private PagePoolByteBuf newBufferSlow(int initialCapacity, int maxCapacity, int parkClass) {
        if (giveBackRequested.get()) {
            giveBackOnOwner(); // another arena ran out of memory while this thread was away (a plain thread)
        }
        if (!returnedObjects.isEmpty()) {
            drainReturned(); // buffers released on other threads may have brought memory back
            if (stacks[parkClass] > stackBase[parkClass]) {
                return newBuffer(initialCapacity, maxCapacity); // served by the stack the drain refilled
            }
        }
        PagePoolByteBuf buf = takeObject();
        buf.reuse(initialCapacity, maxCapacity);
        long reused = parkedReuses;
        try {
            bind(buf, initialCapacity);
        } catch (RuntimeException | Error e) {
            recycleObject(buf);
            throw e;
        }
        slowAllocations++;
        if (parkedReuses != reused) {
            otherCacheHits++;
        }
        return buf;
    }

    long buffersAllocated() {
        return fastAllocations + slowAllocations;
    }

    long cacheHits() {
        return fastAllocations + otherCacheHits;
    }

    private PagePoolByteBuf takeObject() {
        int n = objectCount;
        if (n > 0) {
            objectCount = n - 1;
            return byId[objectIds[n - 1]];
        }
        return takeObjectSlow();
    }

    private PagePoolByteBuf takeObjectSlow() {
        drainReturned();
        int n = objectCount;
        if (n > 0) {
            objectCount = n - 1;
            return byId[objectIds[n - 1]];
        }
        return newObject();
    }

    private PagePoolByteBuf newObject() {
        PagePoolByteBuf buf = new PagePoolByteBuf(parent, this);
        assignId(buf);
        return buf;
    }

    /**
     * Gives {@code buf} an id if it has none and one is free: {@link PagePoolByteBuf#NO_ID} if not, and
     * the object then goes to the garbage collector when it has nowhere else to park.
     */
    private int assignId(PagePoolByteBuf buf) {
        int id = buf.parkId;
        if (id == PagePoolByteBuf.NO_ID) {
            id = freeIdCount > 0 ? freeIds[--freeIdCount] : idsIssued < byId.length ? idsIssued++ : PagePoolByteBuf.NO_ID;
            if (id != PagePoolByteBuf.NO_ID) {
                byId[id] = buf;
                buf.parkId = id;
            }
        }
        return id;
    }

    /** Takes {@code buf}'s id back: the table no longer keeps the object reachable. */
    private void releaseId(PagePoolByteBuf buf) {
        int id = buf.parkId;
        if (id != PagePoolByteBuf.NO_ID) {
            buf.parkId = PagePoolByteBuf.NO_ID;
            byId[id] = null;
            freeIds[freeIdCount++] = id;
        }
    }

    /**
     * Owner thread: {@code buf}, just handed out, is tracked by Netty's leak detector, which reports it
     * only if the object becomes unreachable without a release. The arena lets go of it (its id, and
     * the hot slot's leftover reference); it gets an id again when it is parked.
     */
    void letGoOfTracked(PagePoolByteBuf buf) {
        if (hotBuf == buf && hotClass < 0) {
            hotBuf = null;
        }
        releaseId(buf);
    }

    /**
     * Owner thread: takes back every buffer released on other threads. A buffer bound to memory of a
     * park class joins its class stack as it is; otherwise (the stack is full, or the buffer holds no
     * memory) the memory goes back (fragment or page to the pool, block to the owner's per-CPU set)
     * and the object onto the object stack.
     */
    private void drainReturned() {
        PagePoolByteBuf buf;
        while ((buf = returnedObjects.relaxedPoll()) != null) {
            if (isSecondRelease(buf)) {
                continue;
            }
            int c = buf.homeParkClass();
            if (c >= 0 && pushParked(buf, c)) {
                continue;
            }
            returnMemory(buf);
            buf.unbind();
            pushObject(buf);
        }
    }

    /** Owner thread: {@code buf} onto the object stack if there is room and it has or gets an id, else to the garbage collector. */
    private void pushObject(PagePoolByteBuf buf) {
        if (objectCount < objectIds.length) {
            int id = assignId(buf);
            if (id != PagePoolByteBuf.NO_ID) {
                buf.parked = true;
                objectIds[objectCount++] = id;
                return;
            }
        }
        releaseId(buf);
    }

    /** Owner thread: a released buffer, still bound, onto its park class's stack; false if full or no id is free. */
    private boolean pushParked(PagePoolByteBuf buf, int parkClass) {
        int[] s = stacks;
        int top = s[parkClass];
        if (s[top] == STACK_END) {
            return false; // the end mark above this class's stack: full
        }
        int id = buf.parkId;
        if (id == PagePoolByteBuf.NO_ID && (id = assignId(buf)) == PagePoolByteBuf.NO_ID) {
            return false;
        }
        buf.parked = true;
        s[top] = id;
        s[parkClass] = top + 1;
        return true;
    }

    /**
     * True if a queued entry is the second of two releases of one last reference: its object is
     * already back on a stack, or in use again. It is reported and must be dropped.
     */
    private boolean isSecondRelease(PagePoolByteBuf buf) {
        if (buf.parked || buf.refCnt() != 0) {
            reportConcurrentDoubleRelease(buf);
            return true;
        }
        return false;
    }

    /**
     * Returns the memory of this arena bound to {@code buf} (a parked buffer, or a genuine queued one)
     * to where it came from: a fragment or page to the pool (into its cache on the owner thread while
     * it is open), a block to the calling thread's per-CPU set. The caller unbinds the object.
     */
    private void returnMemory(PagePoolByteBuf buf) {
        byte kind = buf.kind();
        if (kind == PagePoolByteBuf.FRAG) {
            pool.putFrag(buf.fragHandle(), true);
        } else if (kind == PagePoolByteBuf.PAGE) {
            pool.putPage(buf.boundPfn(), 0, true);
        } else if (kind == PagePoolByteBuf.BLOCK) {
            pages.freePages(buf.boundPfn(), buf.boundOrder());
        }
    }

    private void reportConcurrentDoubleRelease(PagePoolByteBuf buf) {
        concurrentDoubleReleases++; // owner thread, or under closeLock after close
        parent.concurrentDoubleReleases.increment();
        logger.error("{} was released twice at the same time: its owner thread {} and another thread both released"
                + " the last reference. The second release was ignored and the memory returned once; a caller"
                + " holds a reference it does not own.", buf.describe(), owner.getName());
    }

    /**
     * Binds {@code capacity} bytes of memory from this arena (or the allocator) to {@code buf}. When
     * memory runs out, the arena first gives back everything it has parked (see {@link
     * #reclaimParked()}) and tries once more; only then does the allocator's fallback policy apply.
     * A request larger than the largest block goes to the fallback policy at once: that is not
     * memory running out, and giving back what is parked would not serve it.
     */
    void bind(PagePoolByteBuf buf, int capacity) {
        if (tryBind(buf, capacity)) {
            return;
        }
        if (!parent.fitsInABlock(capacity)) {
            parent.bindFallback(buf, capacity);
            return;
        }
        if (reclaimParked() && tryBind(buf, capacity)) {
            return;
        }
        parent.askOtherArenasToGiveBack(this);
        parent.bindFallback(buf, capacity);
    }

    /**
     * Another arena ran out of memory: this one gives back what it parked, on its owner thread (the
     * stacks are the owner's alone), as the kernel drains other CPUs' page lists through per-CPU work
     * when an allocation fails. An event loop gets a task; a plain thread does it at its next
     * allocation that misses the stacks. The request that ran out does not wait: it takes the
     * fallback, and later requests find the memory. One request is outstanding at a time. Any thread.
     */
    void requestGiveBack() {
        if (closed || !giveBackRequested.compareAndSet(false, true)) {
            return;
        }
        if (ownerExecutor != null) {
            try {
                ownerExecutor.execute(giveBackTask);
            } catch (RejectedExecutionException e) {
                // the event loop is shutting down: closing the arena returns everything
            }
        }
    }

    /**
     * Answers {@link #requestGiveBack} with a {@link #trim} on the owner thread. The owner's
     * executor may run the task elsewhere (a Netty 4.2 event loop that was suspended and resumed on
     * a new thread, or an executor of the caller's): there the request is left pending, and the
     * owner answers it at its next allocation that misses the stacks, as a plain thread does.
     */
    private void giveBackOnOwner() {
        if (giveBackRequested.get() && Thread.currentThread() == owner) {
            trim();
        }
    }

    /**
     * Owner thread, on request ({@link PagePoolByteBufAllocator#trimCurrentThreadCache}, or another
     * arena's {@link #requestGiveBack}): gives back what this arena keeps for reuse, as when memory
     * runs out ({@link #reclaimParked()}), and drains this thread's per-CPU page sets. Buffers in use keep their memory; spare objects stay.
     *
     * @return true if any memory was given back
     */
    boolean trim() {
        if (closedOnOwner) {
            return false;
        }
        giveBackRequested.set(false); // a pending request is answered here too
        boolean any = reclaimParked();
        pages.drainCpuCaches(); // what reclaimParked freed on this thread is otherwise out of others' reach
        return any;
    }

    private boolean tryBind(PagePoolByteBuf buf, int capacity) {
        PagePoolByteBuf holder = popParked(parkClass(capacity));
        if (holder != null) {
            buf.adoptBinding(holder, capacity);
            holder.unbind();
            pushObject(holder);
            return true;
        }
        if (capacity <= maxFragSize) {
            int sizeClass = sizeClass(capacity);
            long handle = pool.allocFrag(classSize(sizeClass));
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
     * Owner thread, when memory ran out: takes back buffers released on other threads, returns the
     * memory of every parked buffer (fragments and pages to the pool, blocks to the page allocator),
     * and gives the pool's cache and ring back to the page allocator, so that pages this thread
     * parked can serve the request (the pool's current fragment page and pages in use stay). Other
     * threads' arenas are only asked to do the same on their own threads ({@link #requestGiveBack}).
     *
     * @return true if anything was given back
     */
    private boolean reclaimParked() {
        boolean any = !returnedObjects.isEmpty() || hotClass >= 0;
        drainReturned();
        coolHotBuf();
        for (int c = 0; c < unparkedClass; c++) {
            for (int i = stackBase[c], top = stacks[c]; i < top; i++) {
                spill(byId[stacks[i]]);
                any = true;
            }
            stacks[c] = stackBase[c];
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

    /** Moves the hot buffer, if any, onto its class stack (or its memory back if that is full). */
    private void coolHotBuf() {
        int c = hotClass;
        if (c >= 0) {
            hotClass = -1;
            PagePoolByteBuf hot = hotBuf;
            if (!pushParked(hot, c)) {
                spill(hot);
            }
        }
    }

    /** Owner thread: a parked buffer's memory goes back, the object onto the object stack. */
    private void spill(PagePoolByteBuf buf) {
        returnMemory(buf);
        buf.unbind();
        pushObject(buf);
    }

    /**
     * A parked buffer whose memory is to serve a buffer that is not itself (the caller moves the
     * binding and makes the holder a spare object), or null if the class has none.
     */
    private PagePoolByteBuf popParked(int parkClass) {
        coolHotBuf();
        int top = stacks[parkClass];
        if (top == stackBase[parkClass]) {
            return null;
        }
        stacks[parkClass] = top - 1;
        parkedReuses++;
        return byId[stacks[top - 1]];
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
     * The owner-thread release of a buffer bound to memory of park class {@code parkClass}: the
     * object, still bound, into the hot slot if it is free, else onto its class stack, with one
     * ownership check. False (nothing done) off the owner thread, after close, or when the stack is
     * full; the caller then takes the general path.
     */
    boolean recycleLocally(PagePoolByteBuf buf, int parkClass) {
        return Thread.currentThread() == owner && parkOnOwner(buf, parkClass);
    }

    /** {@link #recycleLocally} for a caller that has checked it runs on the owner thread. */
    boolean parkOnOwner(PagePoolByteBuf buf, int parkClass) {
        if (closedOnOwner) {
            return false;
        }
        if (hotClass < 0) {
            buf.parked = true;
            if (hotBuf != buf) {
                hotBuf = buf;
            }
            hotClass = parkClass;
            return true;
        }
        return pushParked(buf, parkClass);
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

    /** Returns the memory of every queued object through the closed pool's thread-safe paths; the objects go. */
    private void drainReturnedAfterClose() {
        synchronized (closeLock) {
            PagePoolByteBuf buf;
            while ((buf = returnedObjects.poll()) != null) {
                if (!isSecondRelease(buf)) {
                    returnMemory(buf);
                }
            }
        }
    }

    /**
     * A fragment comes back without its buffer (the buffer grew, or its object was queued): on the
     * owner bound to a spare object onto its class stack, else to the pool.
     */
    void releaseFrag(long handle, int sizeClass) {
        if (Thread.currentThread() == owner && !closedOnOwner) {
            if (stacks[sizeClass] < stackLimit[sizeClass]) {
                PagePoolByteBuf holder = takeObject();
                bindFrag(holder, handle, sizeClass, classSize(sizeClass));
                if (!pushParked(holder, sizeClass)) {
                    spill(holder); // no id left for it
                }
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

    /** Owner thread: a released view to reuse (from the stack, else from the views other threads sent back), or null. */
    PagePoolDerivedByteBuf takeView() {
        int n = viewCount;
        if (n == 0) {
            n = drainReturnedViews();
            if (n == 0) {
                return null;
            }
        }
        viewCount = n - 1;
        PagePoolDerivedByteBuf view = views[n - 1];
        views[n - 1] = null;
        return view;
    }

    /** Owner thread, view stack empty: moves the views released on other threads onto it; the new count. */
    private int drainReturnedViews() {
        if (closedOnOwner) {
            return 0;
        }
        int n = 0;
        PagePoolDerivedByteBuf view;
        while (n < views.length && (view = returnedViews.relaxedPoll()) != null) {
            views[n++] = view;
        }
        viewCount = n;
        return n;
    }

    /**
     * A view of this arena's buffers is released (its count reached 0, its fields cleared): onto the
     * owner's stack on the owner thread, else into the queue the owner drains when its stack runs
     * dry. Dropped for the garbage collector when the stack or the queue is full, or after close.
     */
    void recycleView(PagePoolDerivedByteBuf view) {
        if (Thread.currentThread() == owner) {
            if (viewCount < views.length && !closedOnOwner) {
                views[viewCount++] = view;
            }
        } else if (!closed) {
            returnedViews.offer(view);
        }
    }

    /** A buffer object without memory comes back: onto the owner's stack, or into the queue the owner drains. */
    void recycleObject(PagePoolByteBuf buf) {
        if (closed) {
            return;
        }
        if (Thread.currentThread() == owner) {
            pushObject(buf);
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
            closedOnOwner = true;
            drainReturnedAfterClose();
            if (hotClass >= 0) {
                hotClass = -1;
                returnMemory(hotBuf);
            }
            hotBuf = null;
            for (int c = 0; c < unparkedClass; c++) {
                for (int i = stackBase[c], top = stacks[c]; i < top; i++) {
                    returnMemory(byId[stacks[i]]);
                }
                stacks[c] = stackBase[c];
            }
            pool.close();
            if (Thread.currentThread() != owner) {
                // The memory went into this thread's per-CPU set (the reaper's, or the closing
                // thread's), where nothing might ever take it: back to the buddy lists.
                pages.drainCallingThreadCache();
            }
            objectCount = 0;
            Arrays.fill(views, null);
            viewCount = 0;
            returnedViews.clear();
            Arrays.fill(byId, null); // buffers still out keep their ids: after close they are never parked
        }
    }

    /** Fragment buffers parked with their fragments, hot slot included (racy while the owner runs). */
    int cachedFragments() {
        return parkedIn(0, pageParkClass);
    }

    /** Whole-page and block buffers (orders 1-3) parked with their memory, hot slot included (racy). */
    int cachedBlocks() {
        return parkedIn(pageParkClass, unparkedClass);
    }

    private int parkedIn(int fromClass, int toClass) {
        int hot = hotClass;
        int sum = hot >= fromClass && hot < toClass ? 1 : 0;
        for (int c = fromClass; c < toClass; c++) {
            sum += stacks[c] - stackBase[c];
        }
        return sum;
    }

    /** Buffer objects held for reuse: on the object stack, on the class stacks, and queued. */
    int pooledObjects() {
        return objectCount + cachedFragments() + cachedBlocks() + returnedObjects.size();
    }
}
