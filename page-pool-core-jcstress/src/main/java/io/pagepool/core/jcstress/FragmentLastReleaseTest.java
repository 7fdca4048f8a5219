package io.pagepool.core.jcstress;

import io.pagepool.core.PagePool;
import io.pagepool.core.PagePoolStats;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.IIII_Result;

/**
 * Two threads release the last two fragments of a retired page at the same time. The page's fragment
 * reference count must reach zero exactly once, so exactly one of them recycles the page (into the ring:
 * allowDirect is false), never both (the page would be in the ring twice) and never neither (it would leak).
 *
 * <p>r1, r2: each release's outcome (0 returned, 1 IllegalStateException, 2 other exception, 9 no memory for
 * the setup); r3: times the page was put into the ring; r4: integrity (0 fine; +10 the pool's books do not
 * balance; +20..29 pages still held after every fragment came back and the pool closed; +40 cleanup threw).
 */
@JCStressTest
@Description("Last two fragments of a retired page released concurrently: the page is recycled exactly once")
@Outcome(id = "0, 0, 1, 0", expect = Expect.ACCEPTABLE, desc = "both releases succeed; exactly one recycles the page")
@Outcome(id = "0, 0, 0, .*", expect = Expect.FORBIDDEN, desc = "nobody recycled the page: it leaks")
@Outcome(id = "0, 0, 2, .*", expect = Expect.FORBIDDEN, desc = "both recycled the page: it is in the ring twice")
@Outcome(expect = Expect.FORBIDDEN, desc = "a release threw, a page was lost or double-counted, or setup ran out of memory")
public class FragmentLastReleaseTest {

    @State
    public static class S {
        final PagePool pool = Pools.smallPool();
        final long a = pool.allocFrag(2048);
        final long b = pool.allocFrag(2048);
        // does not fit on the page of a and b: retires it (two fragments out) and carves a new page
        final long c = pool.allocFrag(64);
        final boolean ok = a != PagePool.NO_FRAG && b != PagePool.NO_FRAG && c != PagePool.NO_FRAG;
    }

    @Actor
    public void releaseA(S s, IIII_Result r) {
        r.r1 = s.ok ? Pools.code(() -> s.pool.putFrag(s.a, false)) : Pools.NO_MEMORY;
    }

    @Actor
    public void releaseB(S s, IIII_Result r) {
        r.r2 = s.ok ? Pools.code(() -> s.pool.putFrag(s.b, false)) : Pools.NO_MEMORY;
    }

    @Arbiter
    public void arbiter(S s, IIII_Result r) {
        PagePoolStats st = s.pool.stats();
        r.r3 = (int) st.recycleRing();
        r.r4 = (st.inflight() != 1 || st.ringPages() != st.recycleRing() ? 10 : 0) + Pools.cleanUp(s.pool, s.c);
    }
}
