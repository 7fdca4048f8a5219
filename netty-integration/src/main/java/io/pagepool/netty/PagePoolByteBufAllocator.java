package io.pagepool.netty;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.concurrent.FastThreadLocal;
import io.netty.util.internal.logging.InternalLoggerFactory;
import io.pagepool.core.CpuCacheMode;
import io.pagepool.core.EndedThreadReaper;
import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;
import io.pagepool.core.ThreadOwnedSlots;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

/**
 * A Netty {@link ByteBufAllocator} whose direct buffers come from a {@link PageAllocator} through
 * one {@link PagePool} per thread: the kernel's page pool per NAPI context, with a Netty event loop
 * as the context. Plug it in with one line:
 *
 * <pre>{@code
 * bootstrap.option(ChannelOption.ALLOCATOR, PagePoolByteBufAllocator.DEFAULT)
 *          .childOption(ChannelOption.ALLOCATOR, PagePoolByteBufAllocator.DEFAULT);
 * }</pre>
 *
 * <h2>Direct buffers</h2>
 * Each thread that allocates gets an arena ({@link PagePoolArena}) on first use, holding its own
 * page pool. By requested capacity:
 * <ul>
 *   <li>up to {@code maxFragmentSize} (default half a page): a fragment of a pool page, in size
 *       classes 64, 128, ... bytes;</li>
 *   <li>up to a page: a whole pool page;</li>
 *   <li>up to {@code pageSize << maxOrder} (4 MiB by default): a block from the page allocator,
 *       orders 1-3 through its per-CPU caches;</li>
 *   <li>larger, or when memory is exhausted: the {@link FallbackPolicy} (by default an unpooled
 *       direct buffer, counted in {@link PagePoolByteBufAllocatorMetric#fallbackAllocations()}).</li>
 * </ul>
 * {@code capacity()} is the requested capacity; the size class's slack is available to
 * {@code ensureWritable} without copying ({@code maxFastWritableBytes()}). Growth past it moves the
 * bytes to memory of the right class.
 *
 * <p>A buffer released on the thread that allocated it is parked there with its memory (fragments,
 * pages and blocks up to order 3), and the next buffer of its size class is that object again (its
 * last release there costs no atomic instruction: see {@link PagePoolByteBuf}); released on another
 * thread, it goes home through the arena's remote-free queue (blocks above 32 KiB are freed where
 * they are released), never lost.
 *
 * <h2>Threads</h2>
 * Event-loop threads (Netty's {@code FastThreadLocalThread}) close their arena when they end,
 * returning every cached page. Other platform threads get an arena too; it is returned at most about
 * a second after the thread ends ({@link EndedThreadReaper}). Virtual threads get no arena (there
 * may be millions): their buffers take whole pages or blocks straight from the page allocator, and
 * their buffer objects are not recycled.
 *
 * <h2>Heap buffers</h2>
 * Delegated, by default to {@link UnpooledByteBufAllocator#DEFAULT}; such buffers report the
 * delegate as their {@code alloc()}.
 *
 * <p>Thread safety: thread-safe. {@link #close()} must be called after the threads that allocate
 * from it (event-loop groups included) have ended, or from the only remaining one.
 */
public final class PagePoolByteBufAllocator extends AbstractByteBufAllocator
        implements ByteBufAllocatorMetricProvider, AutoCloseable, EndedThreadReaper.Target {

    private static final int ARENA_SLOTS = 1024;
    static final String CAPACITY_PROPERTY = "io.pagepool.netty.capacity";
    private static final String DEFAULT_CAPACITY = "256m";

    /**
     * A shared instance for servers that need one allocator: a lazily reserved page allocator of
     * {@code -Dio.pagepool.netty.capacity} bytes (default 256m; suffixes k, m, g; a value that is
     * not a valid capacity is logged as a warning and replaced by 256m) with the other settings at
     * their defaults. Never closed.
     */
    public static final PagePoolByteBufAllocator DEFAULT = buildDefault();

    private final PageAllocator pages;
    private final boolean ownsPages;
    private final int pageSize;
    private final int maxFragmentSize;
    private final int fragmentCacheSize;
    private final int blockCacheSize;
    private final int objectCacheSize;
    private final int poolCacheSize;
    private final int poolRefillBatch;
    private final int poolRingSize;
    private final FallbackPolicy fallbackPolicy;
    private final ByteBufAllocator fallbackAllocator;
    private final ByteBufAllocator heapDelegate;
    private final PagePoolByteBufAllocatorMetric metric;

    private final FastThreadLocal<PagePoolArena> arenas = new FastThreadLocal<PagePoolArena>() {
        @Override
        protected PagePoolArena initialValue() {
            return newArena();
        }

        @Override
        protected void onRemoval(PagePoolArena arena) {
            if (arena != null) {
                retire(arena);
            }
        }
    };
    /** Checked before {@link #arenas}: a hit avoids the thread-local lookup on threads that are not event loops. */
    private final PagePoolArena[] arenaTable = new PagePoolArena[ARENA_SLOTS];
    /** {@link #arenaTable}'s owner-checked slots; the fast path reads the typed array directly. */
    private final ThreadOwnedSlots<PagePoolArena> arenaSlots = new ThreadOwnedSlots<>(arenaTable);
    /** Every open arena; guarded by itself. */
    private final List<PagePoolArena> registry = new ArrayList<>();
    /**
     * Pools of closed arenas that still have pages out (buffers of an ended thread, still in use
     * elsewhere): counted by {@link PagePoolByteBufAllocatorMetric#inflightPages()} until the last
     * page is back. Registry lock.
     */
    private final List<PagePool> retiredPools = new ArrayList<>();
    private volatile boolean closed;

    final LongAdder fallbackAllocations = new LongAdder();
    final LongAdder fallbackBytes = new LongAdder();
    /** Every arena's caught concurrent double releases, kept when an arena is retired. */
    final LongAdder concurrentDoubleReleases = new LongAdder();

    private PagePoolByteBufAllocator(Builder b) {
        super(true);
        this.ownsPages = b.pageAllocator == null;
        this.pages = ownsPages ? b.pages.build() : b.pageAllocator;
        this.pageSize = pages.pageSize();
        if (b.maxFragmentSizeSet && (b.maxFragmentSize < PagePoolArena.MIN_FRAG_SIZE
                || Integer.bitCount(b.maxFragmentSize) != 1 || b.maxFragmentSize > pageSize / 2)) {
            if (ownsPages) {
                pages.close();
            }
            throw new IllegalArgumentException("maxFragmentSize " + b.maxFragmentSize
                    + " must be a power of two between 64 and half a page (" + pageSize / 2 + ")");
        }
        this.maxFragmentSize = b.maxFragmentSizeSet ? b.maxFragmentSize : pageSize / 2;
        this.fragmentCacheSize = b.fragmentCacheSize;
        this.blockCacheSize = b.blockCacheSize;
        this.objectCacheSize = b.objectCacheSize;
        this.poolCacheSize = b.poolCacheSize;
        this.poolRefillBatch = b.poolRefillBatch;
        this.poolRingSize = b.poolRingSize;
        this.fallbackPolicy = b.fallbackPolicy;
        this.fallbackAllocator = b.fallbackAllocator;
        this.heapDelegate = b.heapDelegate;
        this.metric = new PagePoolByteBufAllocatorMetric(this);
        EndedThreadReaper.watch(this);
    }

    /** Starts a builder; see {@link Builder} for the settings and their defaults. */
    public static Builder builder() {
        return new Builder();
    }

    // ------------------------------------------------------------------ ByteBufAllocator

    /**
     * The fast path: the calling thread's arena from {@link #arenaSlots} and a buffer it parked, with
     * one call, to {@link #newDirectBufferSlow}, for everything else (see
     * {@link PagePoolArena#takeParked}).
     */
    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        PagePoolArena arena = ThreadOwnedSlots.get(arenaTable);
        PagePoolByteBuf buf = arena != null ? arena.takeParked(initialCapacity, maxCapacity) : null;
        return buf != null ? trackLeaks(arena, buf) : newDirectBufferSlow(arena, initialCapacity, maxCapacity);
    }

    /** {@code arena} is the calling thread's from {@link #arenaSlots}, or null if the slot had none. */
    private ByteBuf newDirectBufferSlow(PagePoolArena arena, int initialCapacity, int maxCapacity) {
        // A live thread's arena exists only while the allocator is open (close() refuses while another
        // live thread owns one, and the closing thread drops its own), so only the arena-less path
        // needs the volatile check.
        if (arena == null) {
            arena = arenas.get();
        }
        if (arena != null) {
            return trackLeaks(arena, arena.newBuffer(initialCapacity, maxCapacity));
        }
        if (closed) {
            throw new IllegalStateException(this + " is closed");
        }
        PagePoolByteBuf buf = new PagePoolByteBuf(this, null);
        buf.reuse(initialCapacity, maxCapacity);
        bindWithoutArena(buf, initialCapacity);
        ByteBuf out = toLeakAwareBuffer(buf);
        buf.leakTracked = out != buf;
        return out;
    }

    /** Netty's leak detector wraps {@code buf} if it samples it; the arena then lets go of the object (see {@link PagePoolArena#letGoOfTracked}). */
    private static ByteBuf trackLeaks(PagePoolArena arena, PagePoolByteBuf buf) {
        ByteBuf out = toLeakAwareBuffer(buf);
        if (out != buf) {
            buf.leakTracked = true;
            arena.letGoOfTracked(buf);
        }
        return out;
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return heapDelegate.heapBuffer(initialCapacity, maxCapacity);
    }

    @Override
    public boolean isDirectBufferPooled() {
        return true;
    }

    @Override
    public PagePoolByteBufAllocatorMetric metric() {
        return metric;
    }

    // ------------------------------------------------------------------ arenas

    /**
     * Memory was just freed on the calling thread, so its pages may sit in the thread's per-CPU set
     * ({@link CpuCacheMode#PER_THREAD}), which only the thread itself takes from. A thread with no
     * arena here only releases (an executor's worker, after the owner's arena closed or its queue
     * was full) and would keep them for as long as it lives: they go back to the buddy lists now.
     * Slow path.
     */
    void freedOnCallingThread() {
        if (arenaSlots.get() == null && !arenas.isSet()) {
            pages.drainCallingThreadCache(); // its own set only, if it has one: nothing else is touched
        }
    }

    /** The calling thread's arena, created on first use; null for virtual threads or once closed. */
    private PagePoolArena currentArena() {
        PagePoolArena arena = arenaSlots.get();
        return arena != null ? arena : arenas.get();
    }

    private PagePoolArena newArena() {
        Thread thread = Thread.currentThread();
        if (closed || EndedThreadReaper.isVirtual(thread)) {
            return null;
        }
        synchronized (registry) {
            // The thread-local lost it but the thread still owns one: ForkJoinPool's common-pool
            // workers erase their thread locals after each task, without onRemoval.
            for (PagePoolArena arena : registry) {
                if (arena.owner == thread) {
                    return arena;
                }
            }
        }
        PagePool pool = PagePool.builder(pages).owner(thread).cacheSize(poolCacheSize).refillBatch(poolRefillBatch)
                .ringSize(poolRingSize).build();
        PagePoolArena arena = new PagePoolArena(this, thread, pool, maxFragmentSize, fragmentCacheSize, blockCacheSize,
                objectCacheSize);
        synchronized (registry) {
            if (closed) { // close() ran since the check above: it would never close this arena
                arena.close();
                return null;
            }
            reapEndedLocked();
            registry.add(arena);
            arenaSlots.claim(arena);
        }
        return arena;
    }

    /** The owner thread is ending (Netty calls this for event loops) or dropped the arena. */
    private void retire(PagePoolArena arena) {
        synchronized (registry) {
            if (registry.remove(arena)) {
                // Counted from here until its pages are back, with no moment counted nowhere or
                // twice (close() and the reaper retire arenas under this lock too).
                retiredPools.add(arena.pool);
            }
            arenaSlots.release(arena);
        }
        try {
            arena.close();
        } catch (RuntimeException | Error e) {
            // Netty calls this while an event loop terminates: an exception here would stop the
            // termination from completing and hang shutdownGracefully().
            System.getLogger(PagePoolByteBufAllocator.class.getName()).log(System.Logger.Level.ERROR,
                    "closing the arena of thread \"" + arena.owner.getName() + "\" failed", e);
        }
    }

    /**
     * Gives back the memory the calling thread's arena keeps for reuse: buffers parked with their
     * memory (fragments, pages, blocks), buffers other threads released and queued for it, the
     * thread's page pool cache and its per-CPU page sets. Buffers in use are not touched, and the
     * thread's next buffers are carved afresh. The page the pool is carving fragments from stays
     * (one page), until the thread ends. As Netty's
     * {@code PooledByteBufAllocator.trimCurrentThreadCache()}, for a plain thread about to idle: an
     * arena gives its memory back by itself only when another arena runs out (an event loop at once,
     * a plain thread at its next allocation), so an idle plain thread otherwise keeps up to
     * {@code fragmentCacheSize} fragments per size class and {@code blockCacheSize} buffers per page
     * or block order bound to their memory.
     *
     * @return true if the calling thread has an arena of this allocator, which was trimmed; false
     *         if it has none (none is created)
     */
    public boolean trimCurrentThreadCache() {
        PagePoolArena arena = arenaSlots.get();
        if (arena == null && arenas.isSet()) {
            arena = arenas.get();
        }
        if (arena == null || arena.isClosed()) {
            return false;
        }
        arena.trim();
        return true;
    }

    @Override
    public boolean reapEndedThreads() {
        synchronized (registry) {
            if (closed) {
                return false;
            }
            reapEndedLocked();
            return true;
        }
    }

    private void reapEndedLocked() {
        Iterator<PagePoolArena> it = registry.iterator();
        while (it.hasNext()) {
            PagePoolArena arena = it.next();
            if (!arena.owner.isAlive()) {
                arena.close();
                it.remove();
                arenaSlots.release(arena);
                keepIfPagesOut(arena);
            }
        }
    }

    /**
     * A closed arena, just taken out of the registry, joins {@link #retiredPools} if buffers still
     * hold its pages. Registry lock held.
     */
    private void keepIfPagesOut(PagePoolArena arena) {
        retiredPools.removeIf(pool -> pool.stats().pagesHeld() <= 0);
        if (arena.pool.stats().pagesHeld() > 0) {
            retiredPools.add(arena.pool);
        }
    }

    /**
     * Pages handed out by the open arenas' pools and not returned, plus those of closed arenas'
     * pools still held (a retiring arena's pool counts its parked pages too until it is closed);
     * under one registry lock, so an arena moving from one to the other is counted once. Drops the
     * retired pools that have every page back.
     */
    long inflightPages() {
        synchronized (registry) {
            retiredPools.removeIf(pool -> pool.stats().pagesHeld() <= 0);
            long sum = 0;
            for (PagePool pool : retiredPools) {
                sum += pool.stats().pagesHeld();
            }
            for (PagePoolArena arena : registry) {
                sum += arena.pool.stats().inflight();
            }
            return sum;
        }
    }

    List<PagePoolArena> arenasSnapshot() {
        synchronized (registry) {
            return new ArrayList<>(registry);
        }
    }

    // ------------------------------------------------------------------ memory binding (any thread)

    /** Binds new memory to {@code buf} from the calling thread's arena: used when a buffer grows. */
    void bindNewMemory(PagePoolByteBuf buf, int capacity) {
        PagePoolArena arena = closed ? null : currentArena();
        if (arena != null) {
            arena.bind(buf, capacity);
        } else {
            bindWithoutArena(buf, capacity);
        }
    }

    private void bindWithoutArena(PagePoolByteBuf buf, int capacity) {
        if (!bindBlock(buf, capacity, null)) {
            if (fitsInABlock(capacity)) {
                askOtherArenasToGiveBack(null); // as an arena that ran out does, for the requests that follow
            }
            bindFallback(buf, capacity);
        }
    }

    /**
     * Binds a block of the smallest order that holds {@code capacity}; false if too large or exhausted.
     * A block of at most {@link PagePoolArena#MAX_ROUTED_BLOCK_ORDER} allocated for {@code arena}
     * (null: none) goes back to that arena's owner when released on another thread.
     */
    boolean bindBlock(PagePoolByteBuf buf, int capacity, PagePoolArena arena) {
        int pagesNeeded = (int) ((Math.max(capacity, 1L) + pageSize - 1) / pageSize); // a 0-byte buffer takes a page
        int order = pagesNeeded <= 1 ? 0 : 32 - Integer.numberOfLeadingZeros(pagesNeeded - 1);
        if (order > pages.maxOrder() || pages.isClosed()) {
            return false;
        }
        int pfn = pages.allocPages(order);
        if (pfn == PageAllocator.NO_PAGE) {
            return false;
        }
        long address = pages.address(pfn);
        PagePoolArena home = order <= PagePoolArena.MAX_ROUTED_BLOCK_ORDER ? arena : null;
        buf.bindBlock(home, pfn, order, pages.regionBuffer(pfn), pages.regionOffset(pfn), address, capacity,
                pageSize << order);
        return true;
    }

    /** Whether {@code capacity} bytes fit in the page allocator's largest block (else only the fallback can serve them). */
    boolean fitsInABlock(int capacity) {
        return capacity <= (pageSize << pages.maxOrder());
    }

    /**
     * {@code requester} ran out of memory after giving back what it parked: every other open arena
     * is asked to give back its own (see {@link PagePoolArena#requestGiveBack}). Fallback path only.
     */
    void askOtherArenasToGiveBack(PagePoolArena requester) {
        PagePoolArena[] others;
        synchronized (registry) {
            others = registry.toArray(new PagePoolArena[0]);
        }
        // Outside the lock: a request hands a task to the owner's executor, which may block (a
        // rejection handler that backs off) and would otherwise stall every arena's creation and close.
        for (PagePoolArena arena : others) {
            if (arena != requester) {
                arena.requestGiveBack();
            }
        }
    }

    /** The pool could not serve {@code capacity}: apply the fallback policy. */
    void bindFallback(PagePoolByteBuf buf, int capacity) {
        if (fallbackPolicy == FallbackPolicy.FAIL) {
            throw new PagePoolOutOfMemoryError("cannot allocate a direct buffer of " + capacity + " bytes from " + this
                    + (capacity > (pageSize << pages.maxOrder())
                            ? ": larger than the largest block (" + (pageSize << pages.maxOrder()) + " bytes)"
                            : ": the page allocator is exhausted (" + pages.stats().freePages() + " pages free)"));
        }
        ByteBuf fallback = fallbackAllocator.directBuffer(capacity, capacity);
        fallbackAllocations.increment();
        fallbackBytes.add(fallback.capacity());
        buf.bindFallback(fallback, capacity);
    }

    void fallbackReleased(int bytes) {
        fallbackBytes.add(-bytes);
    }

    // ------------------------------------------------------------------ accessors and lifecycle

    /** The page allocator behind every pool of this allocator. */
    public PageAllocator pageAllocator() {
        return pages;
    }

    ByteBufAllocator heapDelegate() {
        return heapDelegate;
    }

    public FallbackPolicy fallbackPolicy() {
        return fallbackPolicy;
    }

    public int maxFragmentSize() {
        return maxFragmentSize;
    }

    /**
     * Closes every arena (returning pooled and cached pages to the page allocator) and, if this
     * allocator built its page allocator, closes that too. Buffers still out keep working and return
     * their memory when released, but the page allocator then refuses to close: the
     * {@link IllegalStateException} names the first page still allocated, and {@code close()} may be
     * called again once those buffers are released. Call it after the threads
     * that use the allocator have ended; it waits up to {@value #CLOSE_GRACE_MILLIS} ms for threads
     * that own arenas to finish ending (an {@code ExecutorService}'s workers can still be alive for a
     * moment after {@code awaitTermination} returns), then the arenas of threads still alive (other
     * than the caller) make it throw {@link IllegalStateException} naming them, and nothing is
     * closed. Not for {@link #DEFAULT}.
     */
    @Override
    public void close() {
        if (this == DEFAULT) {
            throw new UnsupportedOperationException("PagePoolByteBufAllocator.DEFAULT cannot be closed");
        }
        awaitOwnersEnding();
        synchronized (registry) {
            if (!closed) {
                closeArenasLocked();
            }
        }
        arenas.remove();
        if (ownsPages && !pages.isClosed()) {
            try {
                pages.close(); // refuses, naming a page, while buffers are still out; close() may be retried
            } catch (IllegalStateException stillOut) {
                throw new IllegalStateException("close(): buffers of " + this + " still hold memory: release them"
                        + " and call close() again (" + stillOut.getMessage() + ")", stillOut);
            }
        }
    }

    /** How long {@link #close()} waits for threads that own arenas to end. */
    static final long CLOSE_GRACE_MILLIS = 500;

    /**
     * Waits, up to {@link #CLOSE_GRACE_MILLIS} in all, for the other threads that own arenas to end.
     * Outside the registry lock: an ending event loop retires its arena under it.
     */
    private void awaitOwnersEnding() {
        List<Thread> owners = new ArrayList<>();
        synchronized (registry) {
            if (closed) {
                return;
            }
            for (PagePoolArena arena : registry) {
                if (arena.owner != Thread.currentThread() && arena.owner.isAlive()) {
                    owners.add(arena.owner);
                }
            }
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_GRACE_MILLIS);
        for (Thread owner : owners) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) {
                return;
            }
            try {
                owner.join(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // close() goes on and refuses if they still live
                return;
            }
        }
    }

    /** Closes every arena; refuses (changing nothing) while another live thread owns one. Registry lock held. */
    private void closeArenasLocked() {
        List<String> alive = new ArrayList<>();
        for (PagePoolArena arena : registry) {
            if (arena.owner != Thread.currentThread() && arena.owner.isAlive()) {
                alive.add(arena.owner.getName());
            }
        }
        if (!alive.isEmpty()) {
            throw new IllegalStateException("close(): threads " + alive + " still own arenas of " + this
                    + "; shut down their event loops (or let them end) first");
        }
        closed = true;
        for (PagePoolArena arena : registry) {
            arena.close();
            keepIfPagesOut(arena);
        }
        registry.clear();
        arenaSlots.clear();
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public String toString() {
        return "PagePoolByteBufAllocator[" + pages + ", fallback " + fallbackPolicy + "]";
    }

    /**
     * {@link #DEFAULT}, of {@code -Dio.pagepool.netty.capacity} bytes. A value that is not a valid
     * capacity is reported and replaced by 256m, as Netty does with its own properties: failing
     * here would make the class unusable, {@link #builder()} included.
     */
    private static PagePoolByteBufAllocator buildDefault() {
        String value = System.getProperty(CAPACITY_PROPERTY, DEFAULT_CAPACITY);
        try {
            return builder().capacity(parseBytes(value)).build();
        } catch (IllegalArgumentException e) {
            InternalLoggerFactory.getInstance(PagePoolByteBufAllocator.class).warn("-D" + CAPACITY_PROPERTY + "=" + value
                    + " is not a valid capacity (" + e.getMessage() + "); PagePoolByteBufAllocator.DEFAULT uses "
                    + DEFAULT_CAPACITY);
            return builder().capacity(parseBytes(DEFAULT_CAPACITY)).build();
        }
    }

    static long parseBytes(String text) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        long unit = 1;
        char last = t.isEmpty() ? ' ' : t.charAt(t.length() - 1);
        if (last == 'k' || last == 'm' || last == 'g') {
            unit = last == 'k' ? 1L << 10 : last == 'm' ? 1L << 20 : 1L << 30;
            t = t.substring(0, t.length() - 1);
        }
        try {
            return Math.multiplyExact(Long.parseLong(t.trim()), unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("not a byte count: \"" + text + "\" (use e.g. 268435456, 256m or 1g)", e);
        }
    }

    // ------------------------------------------------------------------ builder

    /** Most entries any of the builder's per-arena cache sizes may ask for: each is an array of that many per arena. */
    public static final int MAX_CACHE_SIZE = 1 << 20;

    private static void checkCacheSize(String name, int size) {
        if (size < 0 || size > MAX_CACHE_SIZE) {
            throw new IllegalArgumentException(name + " " + size + " must be between 0 and " + MAX_CACHE_SIZE
                    + " (MAX_CACHE_SIZE)");
        }
    }

    /** Configures a {@link PagePoolByteBufAllocator}. Not thread-safe. */
    public static final class Builder {
        private PageAllocator pageAllocator;
        /** Settings of the page allocator this builder makes, unless {@link #pageAllocator} gives one. */
        private final PageAllocator.Builder pages = PageAllocator.builder();
        private int maxFragmentSize;
        private boolean maxFragmentSizeSet;
        private int fragmentCacheSize = 128;
        private int blockCacheSize = 64;
        private int objectCacheSize = 1024;
        private int poolCacheSize = PagePool.DEFAULT_CACHE_SIZE;
        private int poolRefillBatch = PagePool.DEFAULT_REFILL_BATCH;
        private int poolRingSize = PagePool.DEFAULT_RING_SIZE;
        private FallbackPolicy fallbackPolicy = FallbackPolicy.UNPOOLED;
        private ByteBufAllocator fallbackAllocator = UnpooledByteBufAllocator.DEFAULT;
        private ByteBufAllocator heapDelegate = UnpooledByteBufAllocator.DEFAULT;

        private Builder() {
        }

        /**
         * Use an existing page allocator (which the caller closes) instead of building one from
         * {@link #capacity}, {@link #pageSize}, {@link #maxOrder}, {@link #cpuCacheMode} and {@link #preTouch}.
         */
        public Builder pageAllocator(PageAllocator allocator) {
            this.pageAllocator = Objects.requireNonNull(allocator, "allocator");
            return this;
        }

        /** Off-heap bytes the page allocator manages, reserved lazily. Default 64 MiB. */
        public Builder capacity(long bytes) {
            pages.capacity(bytes);
            return this;
        }

        /** Page size: a power of two, at least 4096. Default 4096. */
        public Builder pageSize(int bytes) {
            pages.pageSize(bytes);
            return this;
        }

        /** Largest block order; buffers above {@code pageSize << maxOrder} take the fallback. Default 10. */
        public Builder maxOrder(int maxOrder) {
            pages.maxOrder(maxOrder);
            return this;
        }

        /** The page allocator's per-CPU cache strategy. Default {@link CpuCacheMode#PER_THREAD}. */
        public Builder cpuCacheMode(CpuCacheMode mode) {
            pages.cpuCacheMode(mode);
            return this;
        }

        /** Reserve all memory up front. Default false. */
        public Builder preTouch(boolean preTouch) {
            pages.preTouch(preTouch);
            return this;
        }

        /**
         * Largest buffer served from page fragments: a power of two from 64 to half a page. Default:
         * half a page (2048 for 4 KiB pages).
         */
        public Builder maxFragmentSize(int bytes) {
            this.maxFragmentSize = bytes;
            this.maxFragmentSizeSet = true;
            return this;
        }

        /**
         * Released fragments each arena keeps per size class for reuse by the next buffer of that
         * class: 128 by default, like the page pool's cache (at most about half a MiB per arena over
         * all classes with 4 KiB pages). 0 sends every release straight back to the pool; at most
         * {@link #MAX_CACHE_SIZE}.
         */
        public Builder fragmentCacheSize(int fragments) {
            this.fragmentCacheSize = fragments;
            return this;
        }

        /**
         * Released whole-page buffers, and buffers of order 1-3 blocks (up to 32 KiB with 4 KiB pages),
         * each arena keeps per order with their memory for reuse by the next buffer of that order: 64
         * by default, like Netty's per-thread cache of normal sizes (at most 64 x (4 + 8 + 16 + 32) KiB
         * = 3.75 MiB per arena with 4 KiB pages, and only as much as the thread once had in use at
         * once; given back when memory runs out). 0 returns every such buffer's memory on release;
         * at most {@link #MAX_CACHE_SIZE}.
         */
        public Builder blockCacheSize(int buffers) {
            this.blockCacheSize = buffers;
            return this;
        }

        /** Buffer objects each arena keeps for reuse. Default 1024, at most {@link #MAX_CACHE_SIZE}. */
        public Builder objectCacheSize(int objects) {
            this.objectCacheSize = objects;
            return this;
        }

        /** Each arena's page pool cache size, 1 to {@link PagePool#MAX_CACHE_SIZE}. Default 128. */
        public Builder poolCacheSize(int pages) {
            this.poolCacheSize = pages;
            return this;
        }

        /** Each arena's page pool refill batch. Default 64. */
        public Builder poolRefillBatch(int pages) {
            this.poolRefillBatch = pages;
            return this;
        }

        /** Each arena's page pool recycle ring size, 2 to {@link PagePool#MAX_RING_SIZE}. Default 1024. */
        public Builder poolRingSize(int pages) {
            this.poolRingSize = pages;
            return this;
        }

        /** What to do when the pools cannot serve a request. Default {@link FallbackPolicy#UNPOOLED}. */
        public Builder fallbackPolicy(FallbackPolicy policy) {
            this.fallbackPolicy = Objects.requireNonNull(policy, "policy");
            return this;
        }

        /** Allocator of fallback direct buffers. Default {@link UnpooledByteBufAllocator#DEFAULT}. */
        public Builder fallbackAllocator(ByteBufAllocator allocator) {
            this.fallbackAllocator = Objects.requireNonNull(allocator, "allocator");
            return this;
        }

        /** Allocator of heap buffers. Default {@link UnpooledByteBufAllocator#DEFAULT}. */
        public Builder heapDelegate(ByteBufAllocator allocator) {
            this.heapDelegate = Objects.requireNonNull(allocator, "allocator");
            return this;
        }

        /**
         * Builds the allocator.
         *
         * @throws IllegalArgumentException if a setting is out of range (the message says which)
         */
        public PagePoolByteBufAllocator build() {
            checkCacheSize("fragmentCacheSize", fragmentCacheSize);
            checkCacheSize("blockCacheSize", blockCacheSize);
            checkCacheSize("objectCacheSize", objectCacheSize);
            // PagePool's own bounds, checked here so that build() refuses, not each thread's first buffer
            if (poolCacheSize > PagePool.MAX_CACHE_SIZE || poolRefillBatch < 1 || poolRefillBatch > poolCacheSize
                    || poolRingSize < 2 || poolRingSize > PagePool.MAX_RING_SIZE) {
                throw new IllegalArgumentException("pool sizes must satisfy 1 <= poolRefillBatch (" + poolRefillBatch
                        + ") <= poolCacheSize (" + poolCacheSize + ") <= 2^20 and 2 <= poolRingSize (" + poolRingSize
                        + ") <= 2^30");
            }
            return new PagePoolByteBufAllocator(this);
        }
    }
}
