package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.fail;

import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * Captures what Netty's {@link ResourceLeakDetector} reports. With no SLF4J or Log4J on the test
 * class path Netty logs through java.util.logging, so a handler on the detector's logger sees
 * every "LEAK:" report; {@code LeakDetectorSanityTest} proves that a real leak of one of our
 * buffers is caught this way, so a clean result here means something.
 *
 * <p>The detector reports a leak only when a buffer it tracked has been garbage-collected and a
 * later tracked allocation polls its reference queue, hence {@link #collectReports()}.
 */
final class LeakCapture {

    private static final Logger LOGGER = Logger.getLogger(ResourceLeakDetector.class.getName());
    private static final List<String> REPORTS = new ArrayList<>();
    private static boolean installed;

    private LeakCapture() {
    }

    static synchronized void install() {
        if (installed) {
            return;
        }
        installed = true;
        LOGGER.addHandler(new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (record.getLevel().intValue() >= Level.SEVERE.intValue()) {
                    String text = String.valueOf(record.getMessage());
                    synchronized (REPORTS) {
                        REPORTS.add(text.length() > 4000 ? text.substring(0, 4000) + "..." : text);
                    }
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        });
    }

    /** Forces garbage collection and tracked allocations so pending leaks get reported. */
    static void collectReports() {
        install();
        for (int i = 0; i < 4; i++) {
            System.gc();
            try {
                TimeUnit.MILLISECONDS.sleep(25);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            // A tracked (direct: Netty does not track unpooled heap buffers) allocation polls the
            // detector's reference queue and reports what it finds.
            UnpooledByteBufAllocator.DEFAULT.directBuffer(1).release();
        }
    }

    /** Reports captured so far, cleared. */
    static List<String> drain() {
        synchronized (REPORTS) {
            List<String> out = new ArrayList<>(REPORTS);
            REPORTS.clear();
            return out;
        }
    }

    /** Fails if Netty's leak detector reported (or, after a GC, reports) any leak. */
    static void assertNoLeaks() {
        collectReports();
        List<String> reports = drain();
        if (!reports.isEmpty()) {
            fail("Netty's leak detector reported " + reports.size() + " leak(s); first:\n" + reports.get(0));
        }
    }
}
