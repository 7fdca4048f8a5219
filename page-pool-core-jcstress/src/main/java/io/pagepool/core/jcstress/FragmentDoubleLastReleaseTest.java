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
 * Two threads release the same fragment at once, and it is the last fragment of a retired page: the winner
 * recycles the page, the loser must be refused ("released twice", or "stale" if the page is already back)
 * and must not recycle it a second time.
 *
 * <p>r1, r2: each release's outcome (0 ok, 1 IllegalStateException, 2 other, 9 no memory); r3: times the page
 * went into the ring; r4: integrity (0 fine; +10 books off; +20..29 pages held after cleanup; +40 cleanup threw).
 */
@JCStressTest
@Description("Last fragment of a retired page released twice concurrently: one release, one refusal, one recycle")
@Outcome(id = {"0, 1, 1, 0", "1, 0, 1, 0"}, expect = Expect.ACCEPTABLE, desc = "one release recycles the page, the other is refused")
@Outcome(id = "0, 0, .*", expect = Expect.FORBIDDEN, desc = "both releases succeeded: a double free went unnoticed")
@Outcome(expect = Expect.FORBIDDEN, desc = "the page was recycled twice or never, another exception, or no memory")
public class FragmentDoubleLastReleaseTest {

    @State
    public static class S {
        final PagePool pool = Pools.smallPool();
        final long a = pool.allocFrag(2048);
        final long b = pool.allocFrag(2048);
        final long c = pool.allocFrag(64); // retires the page of a and b
        final boolean ok;

        S() {
            boolean got = a != PagePool.NO_FRAG && b != PagePool.NO_FRAG && c != PagePool.NO_FRAG;
            if (got) {
                pool.putFrag(b, false); // a is now the page's last fragment
            }
            ok = got;
        }
    }

    @Actor
    public void first(S s, IIII_Result r) {
        r.r1 = s.ok ? Pools.code(() -> s.pool.putFrag(s.a, false)) : Pools.NO_MEMORY;
    }

    @Actor
    public void second(S s, IIII_Result r) {
        r.r2 = s.ok ? Pools.code(() -> s.pool.putFrag(s.a, false)) : Pools.NO_MEMORY;
    }

    @Arbiter
    public void arbiter(S s, IIII_Result r) {
        PagePoolStats st = s.pool.stats();
        r.r3 = (int) st.recycleRing();
        r.r4 = (st.inflight() != 1 || st.ringPages() != st.recycleRing() ? 10 : 0) + Pools.cleanUp(s.pool, s.c);
    }
}
