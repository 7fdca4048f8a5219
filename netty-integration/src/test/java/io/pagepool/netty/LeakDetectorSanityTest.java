package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.util.ResourceLeakDetector;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Proves that the leak check the other classes end with can fail: a buffer of ours dropped without
 * release is reported by Netty's PARANOID leak detector, and {@link LeakCapture} sees the report.
 */
class LeakDetectorSanityTest {

    @Test
    void aBufferOfOursDroppedWithoutReleaseIsReportedByNettysLeakDetector() throws Exception {
        assertEquals(ResourceLeakDetector.Level.PARANOID, ResourceLeakDetector.getLevel(),
                "surefire runs this module with -Dio.netty.leakDetection.level=paranoid");
        LeakCapture.install();
        LeakCapture.collectReports();
        List<String> earlier = LeakCapture.drain();
        assertEquals(List.of(), earlier, "a leak from an earlier test was reported");

        // Never closed: the leaked buffer's page stays allocated; the allocator is dropped with it.
        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(1 << 20).build();
        dropWithoutRelease(alloc);

        List<String> reports = new ArrayList<>();
        for (int i = 0; i < 40 && reports.isEmpty(); i++) {
            LeakCapture.collectReports();
            reports.addAll(LeakCapture.drain());
        }
        assertEquals(1, reports.size(), () -> "expected exactly our leak, got " + reports);
        assertTrue(reports.get(0).contains("LEAK"), reports.get(0));
        assertTrue(reports.get(0).contains("dropWithoutRelease"), "the report shows where the buffer was allocated");
    }

    /**
     * The same for recycled objects: the arena parks released buffers and may keep a reference to the
     * last one it handed out, which must not keep a leaked buffer reachable. Seeded bug that this
     * catches: leaving tracked buffers in the arena's table of parkable objects.
     */
    @Test
    void recycledBuffersDroppedWithoutReleaseAreReportedToo() throws Exception {
        LeakCapture.install();
        LeakCapture.collectReports();
        assertEquals(List.of(), LeakCapture.drain(), "a leak from an earlier test was reported");

        PagePoolByteBufAllocator alloc = PagePoolByteBufAllocator.builder().capacity(1 << 20).build();
        parkTwo(alloc);
        dropRecycledWithoutRelease(alloc);

        List<String> reports = new ArrayList<>();
        for (int i = 0; i < 40 && reports.size() < 2; i++) {
            LeakCapture.collectReports();
            reports.addAll(LeakCapture.drain());
        }
        assertEquals(2, reports.size(), () -> "expected both recycled buffers reported, got " + reports);
        for (String report : reports) {
            assertTrue(report.contains("dropRecycledWithoutRelease"), report);
        }
    }

    /** In a method of its own, so that no local variable keeps the recycled objects reachable. */
    private static void parkTwo(PagePoolByteBufAllocator alloc) {
        ByteBuf first = alloc.directBuffer(1000);
        ByteBuf second = alloc.directBuffer(1000);
        first.release(); // parked in the hot slot
        second.release(); // parked on the class stack
    }

    private static void dropRecycledWithoutRelease(PagePoolByteBufAllocator alloc) {
        alloc.directBuffer(1000).writeInt(1); // the hot slot's object
        alloc.directBuffer(1000).writeInt(2); // the class stack's object
    }

    private static void dropWithoutRelease(PagePoolByteBufAllocator alloc) {
        ByteBuf leaked = alloc.directBuffer(1000);
        leaked.writeInt(42);
    }
}
