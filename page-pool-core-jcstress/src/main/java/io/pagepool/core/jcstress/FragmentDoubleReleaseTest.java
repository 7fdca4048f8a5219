package io.pagepool.core.jcstress;

import io.pagepool.core.PagePool;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.III_Result;

/**
 * Two threads release the same fragment at once, while another fragment of the same (current, not yet
 * retired) page is still out. The per-page released bitmap is set atomically, so exactly one release
 * succeeds and the other throws IllegalStateException ("released twice"); the page's reference count is
 * decremented once, so when the other fragment comes back and the pool closes, the page goes back to the
 * allocator.
 *
 * <p>r1, r2: each release's outcome (0 ok, 1 IllegalStateException, 2 other, 9 no memory); r3: pages the
 * pool still holds after the cleanup (0 expected; 20 + n if something went wrong in it).
 */
@JCStressTest
@Description("Same fragment released twice concurrently: exactly one release succeeds, the other throws")
@Outcome(id = {"0, 1, 0", "1, 0, 0"}, expect = Expect.ACCEPTABLE, desc = "one release wins, the other is refused")
@Outcome(id = "0, 0, .*", expect = Expect.FORBIDDEN, desc = "both releases succeeded: a double free went unnoticed")
@Outcome(id = "1, 1, .*", expect = Expect.FORBIDDEN, desc = "both releases were refused")
@Outcome(expect = Expect.FORBIDDEN, desc = "a page was lost, another exception, or setup ran out of memory")
public class FragmentDoubleReleaseTest {

    @State
    public static class S {
        final PagePool pool = Pools.smallPool();
        final long a = pool.allocFrag(1000);
        final long b = pool.allocFrag(1000);
        final boolean ok = a != PagePool.NO_FRAG && b != PagePool.NO_FRAG;
    }

    @Actor
    public void first(S s, III_Result r) {
        r.r1 = s.ok ? Pools.code(() -> s.pool.putFrag(s.a, false)) : Pools.NO_MEMORY;
    }

    @Actor
    public void second(S s, III_Result r) {
        r.r2 = s.ok ? Pools.code(() -> s.pool.putFrag(s.a, false)) : Pools.NO_MEMORY;
    }

    @Arbiter
    public void arbiter(S s, III_Result r) {
        r.r3 = Pools.cleanUp(s.pool, s.b);
    }
}
