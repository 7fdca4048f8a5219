package io.pagepool.netty;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.util.ResourceLeakDetector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The contract cases against our raw buffer objects, as most buffers reach a user in production,
 * where the leak detector samples one allocation in 128 and hands out the rest unwrapped. Without
 * the wrapper, copies between two of our buffers take their direct path.
 */
class PagePoolUnwrappedByteBufContractTest extends PagePoolByteBufContractTest {

    private ResourceLeakDetector.Level saved;

    @BeforeAll
    void disableLeakDetection() {
        saved = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
        ByteBuf probe = allocator.directBuffer(1);
        try {
            assertTrue(probe instanceof PagePoolByteBuf, "the allocator still wraps its buffers");
        } finally {
            probe.release();
        }
    }

    @AfterAll
    void restoreLeakDetection() {
        ResourceLeakDetector.setLevel(saved);
    }
}
