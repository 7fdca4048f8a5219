package io.pagepool.netty.jcstress;

import io.netty.buffer.ByteBuf;
import io.pagepool.netty.PagePoolByteBufAllocator;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.ZZ_Result;

/**
 * Two holders of one pagepool buffer (count 2) release it at the same time. Legal Netty use, and the
 * case the buffer's reference-count shortcut must leave alone: a release that reads 1 on the owner
 * thread stores 0 without a CAS, so a release that read 2 must still go through the CAS, or both
 * releases could see themselves as the last (two deallocations) or neither (a leak).
 *
 * <p>r1, r2: what each {@code release()} returned. (No arbiter reads the count afterwards: a
 * deallocated buffer object is recycled at once, and jcstress may already have handed it to the next
 * state, so its count then belongs to another holder.)
 */
@JCStressTest
@Description("Two holders release one buffer concurrently: exactly one release is the last")
@Outcome(id = {"true, false", "false, true"}, expect = Expect.ACCEPTABLE, desc = "one release deallocated")
@Outcome(id = "true, true", expect = Expect.FORBIDDEN, desc = "both deallocated: memory handed back twice")
@Outcome(id = "false, false", expect = Expect.FORBIDDEN, desc = "neither deallocated: the buffer leaks")
public class BufferTwoHoldersReleaseTest {

    /** One allocator for every state; each state's buffer goes back to it, so memory stays bounded. */
    static final PagePoolByteBufAllocator ALLOC = PagePoolByteBufAllocator.builder().capacity(64L << 20).build();

    @State
    public static class S {
        final ByteBuf buf = ALLOC.directBuffer(256).retain(); // the creating thread owns its arena
    }

    @Actor
    public void first(S s, ZZ_Result r) {
        r.r1 = s.buf.release();
    }

    @Actor
    public void second(S s, ZZ_Result r) {
        r.r2 = s.buf.release();
    }
}
