package io.pagepool.core.jcstress;

import io.pagepool.core.PageAllocator;
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
 * Two threads return a page each through the recycle ring, and the second then closes the pool, so the first
 * producer's offer races both the other offer and close's drain of the ring. Whatever the interleaving, each
 * page must end up back in the allocator exactly once: drained by close, released by a producer that saw the
 * pool closed, or drained by the producer whose offer landed after close's drain. A page left in the ring of
 * a closed pool is leaked; a page released twice is a double free in the allocator (which throws).
 * (Two actors, not three: jcstress cannot schedule three actors on this project's two-CPU machines.)
 *
 * <p>r1, r2: each actor's outcome (0 ok, 1/2 threw, 9 no memory); r3: pages the pool still holds
 * (entered - released) after both are done; r4: pages left in the ring.
 */
@JCStressTest
@Description("A ring producer racing another producer and close(): every page ends in the allocator exactly once")
@Outcome(id = "0, 0, 0, 0", expect = Expect.ACCEPTABLE, desc = "both pages went back to the allocator, once each")
@Outcome(id = "0, 0, .*, [1-9]", expect = Expect.FORBIDDEN, desc = "a page is stranded in the closed pool's ring")
@Outcome(expect = Expect.FORBIDDEN, desc = "a page released twice or never, an exception, or setup ran out of memory")
public class RingPutVersusCloseTest {

    @State
    public static class S {
        final PagePool pool = Pools.smallPool();
        final int p = pool.allocPage();
        final int q = pool.allocPage();
        final boolean ok = p != PageAllocator.NO_PAGE && q != PageAllocator.NO_PAGE;
    }

    @Actor
    public void putP(S s, IIII_Result r) {
        r.r1 = s.ok ? Pools.code(() -> s.pool.putPage(s.p, -1, false)) : Pools.NO_MEMORY;
    }

    @Actor
    public void putQThenClose(S s, IIII_Result r) {
        r.r2 = s.ok ? Pools.code(() -> {
            s.pool.putPage(s.q, -1, false);
            s.pool.close();
        }) : Pools.NO_MEMORY;
    }

    @Arbiter
    public void arbiter(S s, IIII_Result r) {
        PagePoolStats st = s.pool.stats();
        r.r3 = (int) st.pagesHeld();
        r.r4 = st.ringPages();
        if (!s.ok) {
            Pools.cleanUp(s.pool, PagePool.NO_FRAG);
        }
    }
}
