package io.pagepool.core;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A test-and-test-and-set spin lock that never allocates: the zone lock and each magazine's lock.
 * Acquiring costs one CAS; releasing one release store. A waiter spins briefly with
 * {@link Thread#onSpinWait()}, then yields its CPU between attempts, so a preempted holder is not
 * starved on a machine with few cores. Not reentrant, not fair.
 *
 * <p>Why not {@link java.util.concurrent.locks.ReentrantLock}: every thread that has to wait for it
 * allocates a queue node, so a contended zone lock made the page allocator produce garbage
 * (measured with JMH {@code -prof gc}: 4.3 B per page for two threads freeing single pages in
 * {@link CpuCacheMode#NONE} mode). The critical sections here are short and bounded (one batch of
 * list operations), which is what spinning suits.
 *
 * <p>The lock word sits between two cache lines of padding so that neither neighbouring objects nor
 * the data it guards share its line (the JCTools padding-chain layout).
 *
 * <p>Thread safety: thread-safe; {@link #unlock()} only by the thread that locked.
 */
final class SpinLock extends SpinLockWord {

    private static final VarHandle LOCKED;
    private static final int SPINS_BEFORE_YIELD = 128;

    static {
        try {
            LOCKED = MethodHandles.lookup().findVarHandle(SpinLockWord.class, "locked", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    long p10, p11, p12, p13, p14, p15, p16, p17;

    /** Takes the lock if it is free; never waits. */
    boolean tryLock() {
        return locked == 0 && LOCKED.compareAndSet(this, 0, 1);
    }

    /** Takes the lock, spinning and then yielding while another thread holds it. */
    void lock() {
        if (!tryLock()) {
            lockSlow();
        }
    }

    private void lockSlow() {
        int spins = 0;
        while (!tryLock()) {
            if (++spins < SPINS_BEFORE_YIELD) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
        }
    }

    void unlock() {
        LOCKED.setRelease(this, 0);
    }
}

/** Padding before {@link SpinLock}'s lock word. */
abstract class SpinLockLeftPad {
    long p00, p01, p02, p03, p04, p05, p06, p07;
}

/** {@link SpinLock}'s lock word: 0 free, 1 held. */
abstract class SpinLockWord extends SpinLockLeftPad {
    volatile int locked;
}
