package io.pagepool.core;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.function.Supplier;

/**
 * {@link CpuCacheMode#PER_THREAD}: one {@link CpuPageLists} per thread, the Java stand-in for
 * Linux's per-CPU pagesets. A Java thread is not pinned to a CPU, so the thread is the unit that
 * owns a set; this is what makes the fast path lock-free and atomic-free.
 *
 * <h2>Lifecycle of a thread's set</h2>
 * <ol>
 *   <li>Created on the thread's first allocation or free of order 0..3, and registered
 *       (thread, set) here. Virtual threads get no set: they go straight to the zone, so that a
 *       million virtual threads cannot park a million sets' worth of pages.</li>
 *   <li>Used only by its owner thread: no lock, no atomic.</li>
 *   <li>When the owner ends, the set is <em>reaped</em>: its pages go back to the zone and its
 *       counters are folded into the allocator's totals. Reaping needs no call from the user:
 *       it happens within a second on the shared {@link EndedThreadReaper} daemon, and also
 *       whenever a new thread registers, on {@link PageAllocator#drainCpuCaches()}, and before
 *       an allocation reports exhaustion. {@link Thread#isAlive()} returning false is the
 *       happens-before edge that makes reading the dead thread's plain fields safe (JLS 17.4.4).</li>
 * </ol>
 * The sets of <em>live</em> threads are never touched by other threads: there is no Java
 * equivalent of the kernel's IPI to make another CPU drain. A live thread's parked pages (at most
 * {@code high + 4 * batch}) come back when that thread drains them itself, frees enough to pass
 * {@code high}, calls {@code drainCpuCaches()}, or ends.
 *
 * <p>Thread safety: thread-safe; the registry is guarded by its own monitor, and lock order is
 * registry, then zone.
 */
final class PerThreadPageCaches implements CpuPageCache, EndedThreadReaper.Target {

    private static final int SLOTS = 1024;

    private final BuddyZone zone;
    private final int high;
    private final int batch;
    /** The thread's set once registered; unset before (see {@link #current()}). */
    private final ThreadLocal<CpuPageLists> local = new ThreadLocal<>();
    /** Checked before {@link #local}: a hit avoids the ThreadLocal hash probe. */
    private final ThreadOwnedSlots<CpuPageLists> slots = new ThreadOwnedSlots<>(new CpuPageLists[SLOTS]);
    /** Every live thread's set; guarded by itself. */
    private final ArrayList<CpuPageLists> registry = new ArrayList<>();
    private boolean closed;

    PerThreadPageCaches(BuddyZone zone, int high, int batch) {
        this.zone = zone;
        this.high = high;
        this.batch = batch;
        EndedThreadReaper.watch(this);
    }

    private CpuPageLists register() {
        Thread thread = Thread.currentThread();
        if (EndedThreadReaper.isVirtual(thread)) {
            return null;
        }
        CpuPageLists set = new CpuPageLists(zone, thread, high, batch);
        synchronized (registry) {
            reapEndedLocked();
            registry.add(set);
            slots.claim(set);
        }
        return set;
    }

    /** The calling thread's set: from the slot table, else the thread-local (creating it); null for a virtual thread. */
    private CpuPageLists current() {
        CpuPageLists set = slots.get();
        return set != null ? set : currentSlow(); // kept this small: it is on every alloc and free
    }

    /** {@link #current()} after a miss in the slot table: the thread-local, registering a new set. */
    private CpuPageLists currentSlow() {
        CpuPageLists set = local.get();
        if (set == null) {
            set = register();
            if (set != null) {
                local.set(set);
            }
        }
        return set;
    }

    /** The calling thread's set if it has one; creates none. */
    private CpuPageLists existing() {
        CpuPageLists set = slots.get();
        return set != null ? set : local.get();
    }

    @Override
    public int alloc(int order) {
        CpuPageLists set = current();
        return set != null ? set.alloc(order) : zone.lockedAlloc(order);
    }

    @Override
    public void free(int pfn, int order) {
        CpuPageLists set = current();
        if (set != null) {
            set.free(pfn, order);
        } else {
            zone.lockedFree(pfn, order);
        }
    }

    @Override
    public int allocBulk(int[] pages, int nrPages) {
        CpuPageLists set = current();
        return set != null ? set.allocBulk(pages, nrPages) : zone.lockedAllocBulk(pages, nrPages);
    }

    @Override
    public void freeBulk(int[] pfns, int n) {
        CpuPageLists set = current();
        if (set != null) {
            set.freeBulk(pfns, n);
        } else {
            zone.lockedFreeBulk(pfns, n);
        }
    }

    /** Drains the calling thread's set and reaps the sets of threads that have ended. */
    @Override
    public void drainReachable() {
        CpuPageLists set = current();
        if (set != null) {
            set.drainAll();
        }
        reapEnded();
    }

    @Override
    public void drainCallingThread() {
        CpuPageLists set = existing();
        if (set != null) {
            set.drainAll();
        }
    }

    /** Returns the pages of ended threads' sets to the zone. */
    void reapEnded() {
        synchronized (registry) {
            if (!closed) {
                reapEndedLocked();
            }
        }
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
        Iterator<CpuPageLists> it = registry.iterator();
        while (it.hasNext()) {
            CpuPageLists set = it.next();
            if (!set.owner().isAlive()) {
                zone.lock();
                try {
                    if (set.count > 0) {
                        set.counters.cacheDrains++; // as drainAll(): an empty set drains nothing
                    }
                    set.drainAllLocked();
                    set.counters.addTo(zone.retiredCacheCounters);
                    zone.threadCachesReaped++;
                } finally {
                    zone.unlock();
                }
                it.remove();
                slots.release(set);
            }
        }
    }

    @Override
    public long cachedPages() {
        long sum = 0;
        synchronized (registry) {
            for (CpuPageLists set : registry) {
                sum += set.count;
            }
        }
        return sum;
    }

    @Override
    public int pageSets() {
        synchronized (registry) {
            return registry.size();
        }
    }

    @Override
    public void sumCounters(AllocCounters sum) {
        synchronized (registry) {
            for (CpuPageLists set : registry) {
                set.counters.addTo(sum);
            }
        }
    }

    @Override
    public void forEachCachedBlock(CpuPageLists.BlockVisitor visitor) {
        synchronized (registry) {
            for (CpuPageLists set : registry) {
                set.forEachBlock(visitor);
            }
        }
    }

    /** Holds the registry: reaping, which moves an ended thread's pages and counters to the zone, waits. */
    @Override
    public <T> T quiesced(Supplier<T> read) {
        synchronized (registry) {
            return read.get();
        }
    }

    @Override
    public void close() {
        synchronized (registry) {
            closed = true;
            registry.clear();
            slots.clear();
        }
        local.remove();
    }
}
