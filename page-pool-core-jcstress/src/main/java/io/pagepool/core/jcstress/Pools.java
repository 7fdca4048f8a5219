package io.pagepool.core.jcstress;

import io.pagepool.core.PageAllocator;
import io.pagepool.core.PagePool;

/**
 * The allocator every jcstress state takes its pool's pages from, and the bookkeeping the arbiters share.
 * jcstress creates states by the thousand: each state builds a small pool (a cache of one page, refilled one
 * page at a time) on this allocator, and its arbiter closes the pool and returns every page, so the pages
 * held at any time stay bounded by the number of live states.
 */
final class Pools {

    /** 512 MiB of pfn space; regions are reserved only as states need them. */
    static final PageAllocator ALLOCATOR = PageAllocator.builder().capacity(512L << 20).build();

    private Pools() {
    }

    /** A pool owned by the calling thread that takes one page from the allocator per miss. */
    static PagePool smallPool() {
        return PagePool.builder(ALLOCATOR).cacheSize(1).refillBatch(1).ringSize(2).build();
    }

    /** Outcome code of a state whose setup could not get pages (the allocator ran out): never expected. */
    static final int NO_MEMORY = 9;

    /**
     * Returns {@code lastFragment} (unless NO_FRAG) and closes the pool, so that every page the state took goes
     * back to the allocator. Returns 0 when the pool then holds no page; 20 + pages held when some are still
     * held (lost by a broken reference count); 40 if the cleanup threw (a double free detected there).
     */
    static int cleanUp(PagePool pool, long lastFragment) {
        if (pool == null) {
            return 0;
        }
        try {
            if (lastFragment != PagePool.NO_FRAG) {
                pool.putFrag(lastFragment, false);
            }
            pool.close();
            long held = pool.stats().pagesHeld();
            return held == 0 ? 0 : (int) (20 + Math.min(held, 9));
        } catch (Throwable e) {
            return 40;
        }
    }

    /**
     * Outcome codes of one actor's call: 0 returned normally, 1 threw IllegalStateException (the pool's
     * answer to a double release), 2 threw anything else.
     */
    static int code(Runnable call) {
        try {
            call.run();
            return 0;
        } catch (IllegalStateException e) {
            return 1;
        } catch (Throwable e) {
            return 2;
        }
    }
}
