package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The JVM-wide reaper keeps calling every target whatever one of them throws. */
class EndedThreadReaperTest {

    /**
     * A target that throws an Error on its first call: the reaper logs it and goes on, in that sweep
     * and in the next ones. A periodic task that let the Error out would never run again, and the
     * ended threads of every allocator in the JVM would keep their pages.
     */
    @Test
    void anErrorFromOneTargetDoesNotStopTheReaping() throws InterruptedException {
        AtomicInteger thrown = new AtomicInteger();
        EndedThreadReaper.Target failing = () -> {
            if (thrown.getAndIncrement() == 0) {
                throw new AssertionError("a target's bug (expected by this test)");
            }
            return false; // done: the reaper drops it
        };
        CountDownLatch laterSweeps = new CountDownLatch(3);
        EndedThreadReaper.Target counting = () -> {
            laterSweeps.countDown();
            return laterSweeps.getCount() > 0;
        };
        EndedThreadReaper.watch(failing);
        EndedThreadReaper.watch(counting);
        assertTrue(laterSweeps.await(10 * EndedThreadReaper.PERIOD_MS, TimeUnit.MILLISECONDS),
                "the reaper stopped after a target threw an Error");
        assertTrue(thrown.get() >= 1, "the failing target was called");
    }
}
