package io.pagepool.core;

/**
 * The page table: the Java counterpart of the kernel's {@code mem_map} of {@code struct page},
 * stored as parallel primitive arrays indexed by page frame number (pfn), so that no object
 * exists per page.
 *
 * <pre>
 *   pfn        0      1      2      3      4      5      6      7     ...
 *   state   ALLOC  NONE   FREE   NONE   CACHED NONE   NONE   NONE
 *   order     1     -      1      -       2     -      -      -
 *            \_block_/   \_block_/     \_______block________/
 * </pre>
 *
 * <p>Every reserved page belongs to exactly one <em>block</em> of 2^order pages whose first
 * page (the head) is aligned to 2^order. Only heads carry a state; the other pages of a block
 * (tails) are {@link #NONE}, as are pages of regions not reserved yet. Keeping tails at NONE is
 * what lets every misuse check look at one byte: a pfn whose state is not
 * {@link #ALLOCATED} cannot be freed, split or used as part of a contiguous range. Blocks a
 * {@link PagePool} holds are {@link #POOLED}, so the same check keeps callers from freeing a
 * pool's pages behind its back.
 *
 * <p>{@link #next} and {@link #prev} link free heads into the buddy allocator's per-order
 * lists (intrusive, doubly linked so a buddy can be unlinked in O(1) when it merges).
 *
 * <p>Thread safety: none of its own. Heads of free blocks are read and written under the zone
 * lock; heads of cached blocks by the owner of the per-CPU cache that holds them; heads of
 * allocated blocks by whoever holds the page (the caller). Every hand-over between those goes
 * through a lock, a thread's termination, or the caller's own synchronization.
 */
final class PageTable {

    /** Not a block head: a tail page of a larger block, or a page not reserved yet. */
    static final byte NONE = 0;
    /** Head of a block on a buddy free list. */
    static final byte FREE = 1;
    /** Head of a block owned by a caller of the allocator. */
    static final byte ALLOCATED = 2;
    /** Head of a block parked in a per-thread cache or a magazine: free, but not in the buddy lists. */
    static final byte CACHED = 3;
    /** Transient mark used while validating a bulk free, to catch a pfn listed twice. */
    static final byte FREEING = 4;
    /**
     * Head of an allocated block that a {@link PagePool} holds (in its cache, its ring or handed
     * out by it): only the pool gives it back, so the allocator's own free and split calls refuse
     * it. Set when the page enters the pool, cleared just before the pool frees it.
     */
    static final byte POOLED = 5;

    final byte[] state;
    final byte[] order;
    final int[] next;
    final int[] prev;

    PageTable(int totalPages) {
        state = new byte[totalPages];
        order = new byte[totalPages];
        next = new int[totalPages];
        prev = new int[totalPages];
    }

    int size() {
        return state.length;
    }

    /**
     * The head of the block that contains {@code pfn}: {@code pfn} itself when it is a head,
     * otherwise the nearest aligned head whose block reaches it, or {@link PageAllocator#NO_PAGE}
     * for a page of a region not reserved yet.
     */
    int headOf(int pfn, int maxOrder) {
        if (state[pfn] != NONE) {
            return pfn;
        }
        for (int o = 1; o <= maxOrder; o++) {
            int head = pfn & -(1 << o);
            if (state[head] != NONE && order[head] >= o) {
                return head;
            }
        }
        return PageAllocator.NO_PAGE;
    }

    /**
     * Describes what pfn {@code pfn} currently is, for error messages: its own state when it is
     * a head, otherwise the block that contains it.
     */
    String describe(int pfn, int maxOrder) {
        int head = headOf(pfn, maxOrder);
        if (head == PageAllocator.NO_PAGE) {
            return "in a region that was never reserved";
        }
        if (head == pfn) {
            return "the head of " + stateName(state[pfn]) + " order-" + order[pfn] + " block";
        }
        return "page " + (pfn - head) + " of " + stateName(state[head]) + " order-" + order[head]
                + " block headed by pfn " + head;
    }

    static String stateName(byte s) {
        switch (s) {
            case FREE:
                return "a free";
            case ALLOCATED:
                return "an allocated";
            case CACHED:
                return "a free (parked in a per-CPU cache)";
            case FREEING:
                return "a being-freed";
            case POOLED:
                return "a page-pool-held";
            default:
                return "no";
        }
    }
}
