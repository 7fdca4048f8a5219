package io.pagepool.core;

import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * One daemon thread per JVM, {@value #THREAD_NAME}, that returns the pages parked in per-thread
 * caches of threads that have ended, so that a thread pool which replaces its threads does not
 * strand pages until the next allocation failure. It wakes every {@value #PERIOD_MS} ms while at
 * least one open {@link PageAllocator} in {@link CpuCacheMode#PER_THREAD} mode exists, and stops
 * when none is left. Allocators are held weakly: an allocator that is dropped without
 * {@code close()} does not stay reachable because of the reaper.
 *
 * <p>Thread safety: thread-safe (all state under the class monitor).
 */
final class EndedThreadReaper {

    static final String THREAD_NAME = "pagepool-ended-thread-reaper";
    static final long PERIOD_MS = 1000;

    private static final List<WeakReference<PerThreadPageCaches>> WATCHED = new ArrayList<>();
    private static ScheduledExecutorService executor;

    private EndedThreadReaper() {
    }

    static synchronized void watch(PerThreadPageCaches caches) {
        WATCHED.add(new WeakReference<>(caches));
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
        List<PerThreadPageCaches> open = new ArrayList<>();
        synchronized (EndedThreadReaper.class) {
            WATCHED.removeIf(ref -> {
                PerThreadPageCaches c = ref.get();
                if (c == null || c.isClosed()) {
                    return true;
                }
                open.add(c);
                return false;
            });
            if (WATCHED.isEmpty() && executor != null) {
                executor.shutdown();
                executor = null;
            }
        }
        for (PerThreadPageCaches c : open) {
            try {
                c.reapEnded();
            } catch (RuntimeException e) {
                // Never let one allocator's failure stop reaping for the others.
                System.getLogger(EndedThreadReaper.class.getName())
                        .log(System.Logger.Level.WARNING, "reaping ended threads' page caches failed", e);
            }
        }
    }
}
