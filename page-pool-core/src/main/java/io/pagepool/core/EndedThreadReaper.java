package io.pagepool.core;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Returns what threads leave behind when they end, without any call from the user: one daemon
 * thread per JVM, {@value #THREAD_NAME}, calls every watched {@link Target} every
 * {@value #PERIOD_MS} ms while at least one is watched, and stops when none is left.
 *
 * <p>Java has no hook that runs when an arbitrary thread ends, so per-thread state (a per-thread
 * page cache, a Netty arena on a plain thread) is registered with its owner thread, and the
 * target checks {@link Thread#isAlive()}: a false answer is the happens-before edge (JLS 17.4.4)
 * that makes reading the ended thread's plain fields safe. Targets are held weakly: a target
 * dropped without being closed does not stay reachable because of the reaper.
 *
 * <p>Used by {@link CpuCacheMode#PER_THREAD} page caches here and by the Netty integration's
 * per-thread arenas.
 *
 * <p>Thread safety: thread-safe.
 */
public final class EndedThreadReaper {

    static final String THREAD_NAME = "pagepool-ended-thread-reaper";
    static final long PERIOD_MS = 1000;

    private static final MethodHandle IS_VIRTUAL = findIsVirtual();
    private static final List<WeakReference<Target>> WATCHED = new ArrayList<>();
    private static ScheduledExecutorService executor;

    /** Something that holds per-thread state and can return the state of ended threads. */
    public interface Target {
        /**
         * Returns the state of threads that have ended. Called on the reaper thread.
         *
         * @return false once the target is closed and need not be called again
         */
        boolean reapEndedThreads();
    }

    private EndedThreadReaper() {
    }

    /** Starts calling {@code target} periodically; it is held weakly. */
    public static synchronized void watch(Target target) {
        WATCHED.add(new WeakReference<>(target));
        if (executor == null) {
            executor = Executors.newSingleThreadScheduledExecutor(runnable -> {
                Thread t = new Thread(runnable, THREAD_NAME);
                t.setDaemon(true);
                return t;
            });
            executor.scheduleWithFixedDelay(EndedThreadReaper::sweep, PERIOD_MS, PERIOD_MS, TimeUnit.MILLISECONDS);
        }
    }

    private static void sweep() {
        List<Target> targets = new ArrayList<>();
        synchronized (EndedThreadReaper.class) {
            for (WeakReference<Target> ref : WATCHED) {
                Target t = ref.get();
                if (t != null) {
                    targets.add(t);
                }
            }
        }
        List<Target> finished = new ArrayList<>();
        for (Target t : targets) {
            try {
                if (!t.reapEndedThreads()) {
                    finished.add(t);
                }
            } catch (RuntimeException | Error e) {
                // Never let one target's failure stop reaping for the others, nor an Error end the
                // schedule (a periodic task that throws is never run again).
                System.getLogger(EndedThreadReaper.class.getName())
                        .log(System.Logger.Level.WARNING, "reaping state of ended threads failed", e);
            }
        }
        synchronized (EndedThreadReaper.class) {
            WATCHED.removeIf(ref -> ref.get() == null || finished.contains(ref.get()));
            if (WATCHED.isEmpty() && executor != null) {
                executor.shutdown();
                executor = null;
            }
        }
    }

    /**
     * True for a virtual thread (JDK 21+). Per-thread state is not kept for virtual threads: there
     * may be millions of them.
     */
    public static boolean isVirtual(Thread thread) {
        if (IS_VIRTUAL == null) {
            return false;
        }
        try {
            return (boolean) IS_VIRTUAL.invokeExact(thread);
        } catch (Throwable t) {
            return false;
        }
    }

    /** {@code Thread.isVirtual()} exists from JDK 21; the library is compiled for 17. */
    private static MethodHandle findIsVirtual() {
        try {
            return MethodHandles.publicLookup()
                    .findVirtual(Thread.class, "isVirtual", MethodType.methodType(boolean.class));
        } catch (ReflectiveOperationException e) {
            return null;
        }
    }
}
