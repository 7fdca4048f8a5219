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
 * The owner retires its current fragment page (an allocFrag that does not fit) while another thread releases
 * the page's last fragment. The owner gives up the unused bias and the releaser decrements, both atomically:
 * whichever comes second brings the count to zero and recycles the page, exactly once. If the owner is
 * second, the page goes into its cache (direct) and is carved again at once; if the releaser is second, the
 * page goes into the ring.
 *
 * <p>The pool must be owned by the thread that runs {@code owner}, so that actor builds the pool and carves
 * the page itself, then publishes the last fragment through a volatile field; {@code releaser} spins until
 * it is published (it never blocks the owner) and releases it while the owner goes on to retire the page.
 *
 * <p>r1: the owner's outcome (0 ok, 1/2 threw, 9 no memory); r2: the releaser's; r3: who recycled the page:
 * 1 the owner (into its cache), 2 the releaser (into the ring), 0 nobody, 3 both; r4: integrity (0 fine;
 * +10 the books do not balance; +20..29 pages held after cleanup; +40 cleanup threw).
 */
@JCStressTest
@Description("Owner retires a fragment page while another thread releases its last fragment: recycled once")
@Outcome(id = "0, 0, 1, 0", expect = Expect.ACCEPTABLE, desc = "release first; the owner's retire recycles the page into its cache")
@Outcome(id = "0, 0, 2, 0", expect = Expect.ACCEPTABLE, desc = "retire first; the last release recycles the page into the ring")
@Outcome(id = "0, 0, 0, .*", expect = Expect.FORBIDDEN, desc = "nobody recycled the page: it leaks")
@Outcome(id = "0, 0, 3, .*", expect = Expect.FORBIDDEN, desc = "both recycled the page")
@Outcome(expect = Expect.FORBIDDEN, desc = "a call threw, a page was lost or double-counted, or setup ran out of memory")
public class FragmentRetireVersusReleaseTest {

    private static final long UNSET = -2;

    @State
    public static class S {
        PagePool pool;
        long next = PagePool.NO_FRAG;
        volatile long last = UNSET;
    }

    @Actor
    public void owner(S s, IIII_Result r) {
        PagePool p = Pools.smallPool(); // owned by this actor's thread
        s.pool = p;
        long a = p.allocFrag(2048);
        long b = p.allocFrag(2048);
        if (a == PagePool.NO_FRAG || b == PagePool.NO_FRAG) {
            s.last = PagePool.NO_FRAG;
            r.r1 = Pools.NO_MEMORY;
            return;
        }
        p.putFrag(a, false); // the page is still being carved: nothing happens yet
        s.last = b; // publish (volatile): the releaser may now release the page's last fragment
        r.r1 = Pools.code(() -> s.next = p.allocFrag(64)); // retires the full page concurrently
    }

    @Actor
    public void releaser(S s, IIII_Result r) {
        long h;
        while ((h = s.last) == UNSET) {
            Thread.onSpinWait();
        }
        long handle = h;
        r.r2 = handle == PagePool.NO_FRAG ? Pools.NO_MEMORY : Pools.code(() -> s.pool.putFrag(handle, false));
    }

    @Arbiter
    public void arbiter(S s, IIII_Result r) {
        if (r.r1 == Pools.NO_MEMORY) {
            r.r4 = Pools.cleanUp(s.pool, PagePool.NO_FRAG);
            return;
        }
        PagePoolStats st = s.pool.stats();
        long cached = st.recycleCached();
        long ring = st.recycleRing();
        r.r3 = (cached > 0 ? 1 : 0) + (ring > 0 ? 2 : 0);
        r.r4 = (cached + ring != 1 || st.inflight() != 1 ? 10 : 0) + Pools.cleanUp(s.pool, s.next);
    }
}
