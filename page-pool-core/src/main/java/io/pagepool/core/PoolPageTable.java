package io.pagepool.core;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * The page-pool fields of every page of one {@link PageAllocator}: the Java counterpart of the
 * {@code pp}, {@code pp_ref_count} and {@code dma_addr} fields the kernel keeps in
 * {@code struct page}. One table per allocator, shared by all its {@link PagePool}s (a page
 * belongs to at most one pool at a time), created when the first pool is built.
 *
 * <pre>
 *   per pfn       meaning                                          written by
 *   pool[pfn]     id of the pool holding the page, 0 = none        the pool when the page enters / leaves
 *   state[pfn]    IN_POOL, IN_FLIGHT (whole page), FRAGMENTED      whoever holds the page
 *   fragRefs[pfn] fragments still out, plus a bias while carving   atomically, by fragment releases
 *   fragGen[pfn]  generation of the page's current fragment run    the owner, when carving starts
 *   dma[pfn]      the mapping a DmaMapper returned                 the pool, when the page enters
 *   box[pfn]      the pfn as an Integer, for the recycle ring      once, lazily
 *
 *   per 64-byte fragment slot of a page (pageSize / 4096 words per page):
 *   fragStarts    bit set where a fragment handed out starts       the owner, plainly
 *   fragReleased  bit set once that fragment came back             atomically, by releases
 * </pre>
 *
 * <p>Thread safety: fields are plain arrays; each write is made by the party that holds the
 * page at that moment, and the hand-over between parties (a lock, the ring's release/acquire, or
 * the caller's own synchronization) orders them. {@link #fragRefs} and {@link #fragReleased} are
 * written concurrently and only through {@link #REFS} and {@link #RELEASED}.
 */
final class PoolPageTable {

    static final byte NOT_IN_POOL = 0;
    /** In a pool's cache or recycle ring. */
    static final byte IN_POOL = 1;
    /** Handed out as a whole page (or block). */
    static final byte IN_FLIGHT = 2;
    /** Handed out and carved into fragments. */
    static final byte FRAGMENTED = 3;

    /** Fragment slots are 64 bytes: a page of 4096 bytes has 64 slots, one bitmap word. */
    static final int SLOT_SHIFT = 6;
    static final int SLOTS_PER_WORD_SHIFT = 6;

    static final VarHandle REFS = MethodHandles.arrayElementVarHandle(int[].class);
    static final VarHandle RELEASED = MethodHandles.arrayElementVarHandle(long[].class);

    final int[] pool;
    final byte[] state;
    final int[] fragRefs;
    final short[] fragGen;
    final long[] fragStarts;
    final long[] fragReleased;
    /** Bitmap words per page: pageSize / 4096. */
    final int wordsPerPage;
    private final Integer[] boxes;
    private volatile long[] dma;
    private int lastPoolId;

    PoolPageTable(int totalPages, int pageSize) {
        pool = new int[totalPages];
        state = new byte[totalPages];
        fragRefs = new int[totalPages];
        fragGen = new short[totalPages];
        wordsPerPage = pageSize >>> (SLOT_SHIFT + SLOTS_PER_WORD_SHIFT);
        fragStarts = new long[totalPages * wordsPerPage];
        fragReleased = new long[totalPages * wordsPerPage];
        boxes = new Integer[totalPages];
    }

    synchronized int nextPoolId() {
        return ++lastPoolId;
    }

    /** The array of DMA addresses, created the first time a pool with a {@link DmaMapper} asks. */
    long[] dmaAddresses() {
        long[] d = dma;
        if (d == null) {
            synchronized (this) {
                d = dma;
                if (d == null) {
                    d = new long[pool.length];
                    dma = d;
                }
            }
        }
        return d;
    }

    /**
     * The pfn as a canonical Integer, so the recycle ring carries a reference without allocating.
     * Racy lazy creation is benign: Integer is immutable and safely published through its final field.
     */
    Integer box(int pfn) {
        Integer b = boxes[pfn];
        if (b == null) {
            b = Integer.valueOf(pfn);
            boxes[pfn] = b;
        }
        return b;
    }
}
