package io.pagepool.core;

/**
 * One per-CPU page set: the kernel's {@code struct per_cpu_pages} with its {@code count},
 * {@code high} and {@code batch}, and one list per order 0..{@link #TOP_ORDER} (order-aware as
 * in Linux 5.14 and later). A per-thread cache is one of these owned by a thread; a magazine is
 * one of these behind a lock.
 *
 * <pre>
 *   lists[0]  [ cold ............................ hot ]  &lt;- alloc pops / free pushes here
 *   lists[1]  [ cold ......... hot ]                       (drain takes from the cold end)
 *   lists[2]  [ ... ]
 *   lists[3]  [ ... ]
 *   count = pages held over all lists;  high = drain threshold;  batch = pages per refill/drain
 * </pre>
 *
 * <ul>
 *   <li><b>alloc(order)</b>: pop the hot end of {@code lists[order]}. Empty: refill
 *       {@code max(1, batch >> order)} blocks from the zone under <em>one</em> zone lock.</li>
 *   <li><b>free(pfn, order)</b>: push on the hot end; if {@code count > high}, drain about
 *       {@code batch} pages from the cold ends (starting at the order just freed, then the
 *       others in turn) under one zone lock.</li>
 *   <li><b>allocBulk</b>: pop what the order-0 list has, then take every missing page plus a
 *       refill under a single zone lock.</li>
 *   <li><b>freeBulk</b>: push them all (what the list has no room for goes straight to the
 *       zone), then drain down to {@code high - batch} if above {@code high}: one zone lock.</li>
 * </ul>
 * Lists are plain int stacks; draining the cold end shifts the survivors down with one
 * {@code System.arraycopy} per batch, which is cheaper than a ring's index arithmetic on every
 * push and pop. (Agrona's {@code IntArrayQueue} is FIFO, which would hand out the coldest page
 * first, and grows by allocating.)
 *
 * <p>Thread safety: not thread-safe. A per-thread cache is used only by its owner thread (or,
 * after the owner ended, by the reaper); a magazine only under its lock. Methods that touch the
 * zone take the zone lock themselves; callers must not hold it.
 */
class CpuPageLists extends ThreadOwnedSlots.Owned {

    /** Highest order kept on per-CPU lists, as the kernel's PAGE_ALLOC_COSTLY_ORDER. */
    static final int TOP_ORDER = 3;

    final BuddyZone zone;
    final int high;
    final int batch;
    final int topOrder;
    private final byte[] state;
    private final int[][] lists;
    private final int[] sizes;
    /** Pages held over all lists. Read racily by statistics. */
    int count;
    final AllocCounters counters = new AllocCounters();

    /** @param owner the thread that owns a per-thread set; null for a magazine */
    CpuPageLists(BuddyZone zone, Thread owner, int high, int batch) {
        super(owner);
        this.zone = zone;
        this.high = high;
        this.batch = batch;
        this.topOrder = Math.min(TOP_ORDER, zone.maxOrder);
        this.state = zone.table.state;
        this.lists = new int[topOrder + 1][];
        this.sizes = new int[topOrder + 1];
        for (int o = 0; o <= topOrder; o++) {
            // Worst case for one list: count just above high, then a refill of batch pages.
            lists[o] = new int[((high + batch) >> o) + 2];
        }
    }

    /** Blocks moved per refill for this order. */
    private int refillBlocks(int order) {
        return Math.max(1, batch >> order);
    }

    /**
     * Pops a block of {@code order} (at most {@link #topOrder}), refilling from the zone if the
     * list is empty.
     *
     * @return the pfn, marked allocated, or {@link PageAllocator#NO_PAGE} when the zone is empty too
     */
    final int alloc(int order) {
        int size = sizes[order];
        if (size == 0) {
            size = refill(order);
            if (size == 0) {
                return PageAllocator.NO_PAGE;
            }
        }
        int pfn = lists[order][--size];
        sizes[order] = size;
        count -= 1 << order;
        state[pfn] = PageTable.ALLOCATED;
        counters.allocs++;
        return pfn;
    }

    /** Slow path of {@link #alloc}: one zone lock, {@code batch >> order} blocks. Returns the new list size. */
    private int refill(int order) {
        int[] list = lists[order];
        int want = refillBlocks(order);
        int size = 0;
        zone.lock();
        try {
            if (order == 0) {
                size = zone.takeOrder0Pages(list, 0, want, false, PageTable.CACHED);
            } else {
                while (size < want) {
                    int pfn = zone.takeBlock(order, PageTable.CACHED);
                    if (pfn == PageAllocator.NO_PAGE) {
                        break;
                    }
                    list[size++] = pfn;
                }
            }
        } finally {
            zone.unlock();
        }
        sizes[order] = size;
        count += size << order;
        if (size > 0) {
            counters.cacheRefills++; // a batch moved; an empty zone moved none
        }
        return size;
    }

    /** Parks a validated allocated block; drains a batch if the set grew above {@code high}. */
    final void free(int pfn, int order) {
        state[pfn] = PageTable.CACHED;
        lists[order][sizes[order]++] = pfn;
        count += 1 << order;
        counters.frees++;
        if (count > high) {
            drain(batch, order);
        }
    }

    /**
     * Fills the {@link PageAllocator#NO_PAGE} slots among {@code pages[0, nrPages)} with order-0
     * pages: first from the order-0 list, then from the zone under one lock (topping the list
     * up with a refill while the lock is held).
     *
     * @return the number of populated slots among the first {@code nrPages}
     */
    final int allocBulk(int[] pages, int nrPages) {
        counters.bulkAllocCalls++;
        int[] list = lists[0];
        int size = sizes[0];
        int taken = 0;
        int i = 0;
        for (; i < nrPages && size > 0; i++) {
            if (pages[i] == PageAllocator.NO_PAGE) {
                int pfn = list[--size];
                state[pfn] = PageTable.ALLOCATED;
                pages[i] = pfn;
                taken++;
            }
        }
        sizes[0] = size;
        count -= taken;
        counters.bulkAllocPages += taken;
        if (i == nrPages || !hasEmptySlot(pages, i, nrPages)) {
            return nrPages;
        }
        int stop;
        zone.lock();
        try {
            stop = zone.fillSlots(pages, i, nrPages, counters);
            if (stop == nrPages && size < refillBlocks(0)) {
                int added = zone.takeOrder0Pages(list, size, refillBlocks(0) - size, false, PageTable.CACHED);
                size += added;
                count += added;
                sizes[0] = size;
                if (added > 0) {
                    counters.cacheRefills++;
                }
            }
        } finally {
            zone.unlock();
        }
        return stop == nrPages ? nrPages : PageAllocator.countPopulated(pages, nrPages);
    }

    static boolean hasEmptySlot(int[] pages, int from, int to) {
        for (int i = from; i < to; i++) {
            if (pages[i] == PageAllocator.NO_PAGE) {
                return true;
            }
        }
        return false;
    }

    /**
     * Frees validated order-0 pages (marked {@link PageTable#FREEING}): parks them on the order-0
     * list, and if that takes the set above {@code high} (or the list is full), drains it down to
     * {@code high - batch} under one zone lock, putting any pages the list had no room for straight
     * into the zone under the same lock. As with single frees, a run of small bulk frees therefore
     * takes the zone lock about once per {@code batch} pages.
     */
    final void freeBulk(int[] pfns, int n) {
        counters.bulkFreeCalls++;
        counters.bulkFreePages += n;
        int[] list = lists[0];
        int size = sizes[0];
        int parked = Math.min(n, list.length - size);
        for (int i = 0; i < parked; i++) {
            int pfn = pfns[i];
            state[pfn] = PageTable.CACHED;
            list[size++] = pfn;
        }
        sizes[0] = size;
        count += parked;
        if (parked == n && count <= high) {
            return;
        }
        zone.lock();
        try {
            for (int i = parked; i < n; i++) {
                zone.freeBlock(pfns[i], 0);
            }
            if (count > high) {
                drainLocked(count - high + batch, 0);
            }
        } finally {
            zone.unlock();
        }
        counters.cacheDrains++;
    }

    /**
     * Returns about {@code pages} pages from the cold ends to the zone under one zone lock,
     * starting with {@code firstOrder}'s list and visiting the others in turn.
     */
    final void drain(int pages, int firstOrder) {
        zone.lock();
        try {
            drainLocked(pages, firstOrder);
        } finally {
            zone.unlock();
        }
        counters.cacheDrains++;
    }

    private void drainLocked(int pages, int firstOrder) {
        int freed = 0;
        int o = firstOrder;
        for (int visited = 0; visited <= topOrder && freed < pages; visited++) {
            int size = sizes[o];
            if (size > 0) {
                int[] list = lists[o];
                int blocks = Math.min(size, Math.max(1, (pages - freed) >> o));
                for (int j = 0; j < blocks; j++) {
                    zone.freeBlock(list[j], o);
                }
                System.arraycopy(list, blocks, list, 0, size - blocks);
                sizes[o] = size - blocks;
                freed += blocks << o;
            }
            o = o == topOrder ? 0 : o + 1;
        }
        count -= freed;
    }

    /** Returns every parked block to the zone under one zone lock. */
    final void drainAll() {
        if (count == 0) {
            return;
        }
        zone.lock();
        try {
            drainAllLocked();
        } finally {
            zone.unlock();
        }
        counters.cacheDrains++;
    }

    /** As {@link #drainAll()}, for a caller that already holds the zone lock. */
    final void drainAllLocked() {
        for (int o = 0; o <= topOrder; o++) {
            int[] list = lists[o];
            for (int j = 0, size = sizes[o]; j < size; j++) {
                zone.freeBlock(list[j], o);
            }
            sizes[o] = 0;
        }
        count = 0;
    }

    /** Visits every parked block; for consistency checks. */
    final void forEachBlock(BlockVisitor visitor) {
        for (int o = 0; o <= topOrder; o++) {
            int[] list = lists[o];
            for (int j = 0, size = sizes[o]; j < size; j++) {
                visitor.visit(list[j], o);
            }
        }
    }

    /** Receives (pfn, order) pairs from {@link #forEachBlock}. */
    interface BlockVisitor {
        void visit(int pfn, int order);
    }
}
