package io.pagepool.core;

/**
 * {@link CpuCacheMode#MAGAZINE}: seed 003's replacement for per-CPU lists. A fixed array of
 * {@link CpuPageLists} ("magazines"), each behind a {@link SpinLock}; the zone
 * lock is taken only to refill or drain a magazine.
 *
 * <pre>
 *   thread --hash(thread id)--> preferred magazine m
 *   1. tryLock(m)                      -> use it
 *   2. tryLock(m+1), tryLock(m+2), ... -> first free one   (round-robin, counted as "busy")
 *   3. all busy: spin, then yield, on m                    (counted as "wait")
 * </pre>
 * A thread id stands in for the kernel's CPU id, since a Java thread is not pinned. There is no
 * per-thread state, so parked memory is bounded by {@code magazines * (high + 4 * batch)} pages
 * however many threads come and go. The price, as the seed found, is a lock (one CAS and one
 * release store) per operation, contention when threads outnumber magazines, and cache lines of
 * a magazine moving between the cores that share it.
 *
 * <p>Lock order: a magazine, then the zone. {@link #drainReachable()} takes magazines one at a
 * time and never while holding another.
 *
 * <p>Thread safety: thread-safe.
 */
final class MagazinePageCaches implements CpuPageCache {

    private final Magazine[] magazines;

    MagazinePageCaches(BuddyZone zone, int count, int high, int batch) {
        magazines = new Magazine[count];
        for (int i = 0; i < count; i++) {
            magazines[i] = new Magazine(zone, high, batch);
        }
    }

    int magazineCount() {
        return magazines.length;
    }

    @SuppressWarnings("deprecation") // Thread.getId(): threadId() is JDK 19+, the library targets 17
    private int preferredIndex() {
        long id = Thread.currentThread().getId();
        return (int) (((id * 0x9E3779B97F4A7C15L) >>> 33) % magazines.length);
    }

    /** Locks a magazine: the preferred one if free, else the next free one round-robin, else waits for the preferred. */
    private Magazine acquire() {
        Magazine[] mags = magazines;
        int n = mags.length;
        int preferred = preferredIndex();
        Magazine m = mags[preferred];
        if (m.tryLock()) {
            return m;
        }
        for (int i = 1; i < n; i++) {
            int index = preferred + i;
            Magazine other = mags[index >= n ? index - n : index];
            if (other.tryLock()) {
                other.counters.magazineBusy++;
                return other;
            }
        }
        m.lock();
        m.counters.magazineWaits++;
        return m;
    }

    @Override
    public int alloc(int order) {
        Magazine m = acquire();
        try {
            return m.alloc(order);
        } finally {
            m.unlock();
        }
    }

    @Override
    public void free(int pfn, int order) {
        Magazine m = acquire();
        try {
            m.free(pfn, order);
        } finally {
            m.unlock();
        }
    }

    @Override
    public int allocBulk(int[] pages, int nrPages) {
        Magazine m = acquire();
        try {
            return m.allocBulk(pages, nrPages);
        } finally {
            m.unlock();
        }
    }

    @Override
    public void freeBulk(int[] pfns, int n) {
        Magazine m = acquire();
        try {
            m.freeBulk(pfns, n);
        } finally {
            m.unlock();
        }
    }

    /** Drains every magazine, one at a time. */
    @Override
    public void drainReachable() {
        for (Magazine m : magazines) {
            m.lock();
            try {
                m.drainAll();
            } finally {
                m.unlock();
            }
        }
    }

    @Override
    public long cachedPages() {
        long sum = 0;
        for (Magazine m : magazines) {
            sum += m.count;
        }
        return sum;
    }

    @Override
    public int pageSets() {
        return magazines.length;
    }

    @Override
    public void sumCounters(AllocCounters sum) {
        for (Magazine m : magazines) {
            m.lock();
            try {
                m.counters.addTo(sum);
            } finally {
                m.unlock();
            }
        }
    }

    @Override
    public void forEachCachedBlock(CpuPageLists.BlockVisitor visitor) {
        for (Magazine m : magazines) {
            m.lock();
            try {
                m.forEachBlock(visitor);
            } finally {
                m.unlock();
            }
        }
    }

    @Override
    public void close() {
    }

    /** A magazine: page lists plus their lock. */
    static final class Magazine extends CpuPageLists {
        private final SpinLock lock = new SpinLock();

        Magazine(BuddyZone zone, int high, int batch) {
            super(zone, null, high, batch);
        }

        boolean tryLock() {
            return lock.tryLock();
        }

        void lock() {
            lock.lock();
        }

        void unlock() {
            lock.unlock();
        }
    }
}
