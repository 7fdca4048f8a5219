package io.pagepool.core;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One contiguous block of off-heap memory: the Java stand-in for a range of physical memory
 * that the buddy allocator carves into pages.
 *
 * <p>How the memory is obtained depends on the JDK, and neither way needs a JVM flag:
 * <ul>
 *   <li><b>JDK 22 and later</b>: a shared {@code java.lang.foreign.Arena}; {@link #release()}
 *       closes the arena, after which the region's {@link ByteBuffer} throws
 *       {@link IllegalStateException} instead of touching freed memory.</li>
 *   <li><b>JDK 17 to 21</b>: {@link ByteBuffer#allocateDirect}; the native address is read and
 *       the memory released through {@code sun.misc.Unsafe}, which those JDKs expose without
 *       warnings. If Unsafe is unavailable the address reads as 0 and release is left to the
 *       garbage collector.</li>
 * </ul>
 * Both paths zero the memory when it is reserved, so reserving a region also touches every page
 * of it. The foreign-memory API is reached through method handles because the library is
 * compiled for release 17.
 *
 * <p>Thread safety: immutable after construction except {@link #release()}, which the owner
 * calls once, when no other thread uses the region.
 */
final class OffHeapRegion {

    /** Alignment of every region's base address: the smallest page size we allow. */
    static final int REGION_ALIGNMENT = 4096;

    private static final Backend BACKEND = Backend.select();

    /** The region's bytes; big-endian, position 0, limit = capacity. Absolute access only. */
    final ByteBuffer buffer;
    /** Native address of byte 0, or 0 when the platform gives no way to learn it. */
    final long address;
    private final Object owner;

    private OffHeapRegion(ByteBuffer buffer, long address, Object owner) {
        this.buffer = buffer.order(ByteOrder.BIG_ENDIAN);
        this.address = address;
        this.owner = owner;
    }

    /**
     * Reserves {@code bytes} of zeroed off-heap memory aligned to {@link #REGION_ALIGNMENT}.
     *
     * @throws OutOfMemoryError when the JVM or the OS refuses the memory
     */
    static OffHeapRegion reserve(int bytes) {
        return BACKEND.reserve(bytes);
    }

    /** Returns the memory to the OS. Not idempotent: the owner calls it exactly once. */
    void release() {
        BACKEND.release(this);
    }

    /**
     * True when released memory is not reclaimed by the garbage collector (foreign arenas), so an
     * owner dropped without being closed must release its regions through a {@link java.lang.ref.Cleaner}.
     * Direct buffers are left to the collector instead: a cleaner must not free memory that a
     * surviving view of the buffer could still touch.
     */
    static boolean needsExplicitRelease() {
        return BACKEND instanceof ForeignArenaBackend;
    }

    /** Name of the mechanism in use, for diagnostics and docs. */
    static String backendName() {
        return BACKEND.name();
    }

    private abstract static class Backend {
        abstract OffHeapRegion reserve(int bytes);

        abstract void release(OffHeapRegion region);

        abstract String name();

        static Backend select() {
            if (Runtime.version().feature() >= 22) {
                try {
                    return new ForeignArenaBackend();
                } catch (ReflectiveOperationException | RuntimeException e) {
                    // fall through: the direct-buffer backend still works, with warnings on 24+
                }
            }
            return new DirectBufferBackend();
        }
    }

    /** JDK 22+: one shared arena per region, closed on release. */
    private static final class ForeignArenaBackend extends Backend {
        private final MethodHandle ofShared;
        private final MethodHandle allocate;
        private final MethodHandle asByteBuffer;
        private final MethodHandle segmentAddress;
        private final MethodHandle close;

        ForeignArenaBackend() throws ReflectiveOperationException {
            MethodHandles.Lookup lookup = MethodHandles.publicLookup();
            Class<?> arena = Class.forName("java.lang.foreign.Arena");
            Class<?> segment = Class.forName("java.lang.foreign.MemorySegment");
            ofShared = lookup.findStatic(arena, "ofShared", MethodType.methodType(arena));
            allocate = lookup.findVirtual(arena, "allocate",
                    MethodType.methodType(segment, long.class, long.class));
            asByteBuffer = lookup.findVirtual(segment, "asByteBuffer",
                    MethodType.methodType(ByteBuffer.class));
            segmentAddress = lookup.findVirtual(segment, "address", MethodType.methodType(long.class));
            close = lookup.findVirtual(arena, "close", MethodType.methodType(void.class));
        }

        @Override
        OffHeapRegion reserve(int bytes) {
            Object arena;
            try {
                arena = ofShared.invoke();
            } catch (Throwable t) {
                throw rethrow(t);
            }
            try {
                Object segment = allocate.invoke(arena, (long) bytes, (long) REGION_ALIGNMENT);
                ByteBuffer buffer = (ByteBuffer) asByteBuffer.invoke(segment);
                long address = (long) segmentAddress.invoke(segment);
                return new OffHeapRegion(buffer, address, arena);
            } catch (Throwable t) {
                try {
                    close.invoke(arena);
                } catch (Throwable suppressed) {
                    t.addSuppressed(suppressed);
                }
                throw rethrow(t);
            }
        }

        @Override
        void release(OffHeapRegion region) {
            try {
                close.invoke(region.owner);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        @Override
        String name() {
            return "java.lang.foreign shared arena";
        }
    }

    /** JDK 17-21: a direct ByteBuffer, sliced to an aligned start, freed with Unsafe's cleaner hook. */
    private static final class DirectBufferBackend extends Backend {
        private final Object unsafe;
        private final MethodHandle getLong;
        private final MethodHandle invokeCleaner;
        private final long addressOffset;

        DirectBufferBackend() {
            Object u = null;
            MethodHandle gl = null;
            MethodHandle ic = null;
            long off = -1;
            try {
                Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
                Field theUnsafe = unsafeClass.getDeclaredField("theUnsafe");
                theUnsafe.setAccessible(true);
                u = theUnsafe.get(null);
                Method objectFieldOffset = unsafeClass.getMethod("objectFieldOffset", Field.class);
                off = (long) objectFieldOffset.invoke(u, Buffer.class.getDeclaredField("address"));
                MethodHandles.Lookup lookup = MethodHandles.lookup();
                gl = lookup.unreflect(unsafeClass.getMethod("getLong", Object.class, long.class)).bindTo(u);
                ic = lookup.unreflect(unsafeClass.getMethod("invokeCleaner", ByteBuffer.class)).bindTo(u);
            } catch (ReflectiveOperationException | RuntimeException e) {
                u = null;
            }
            unsafe = u;
            getLong = gl;
            invokeCleaner = ic;
            addressOffset = off;
        }

        @Override
        OffHeapRegion reserve(int bytes) {
            ByteBuffer raw = ByteBuffer.allocateDirect(bytes + REGION_ALIGNMENT);
            ByteBuffer aligned = raw.alignedSlice(REGION_ALIGNMENT);
            aligned.limit(bytes);
            ByteBuffer view = aligned.slice();
            long address = 0;
            if (unsafe != null) {
                try {
                    address = (long) getLong.invoke(view, addressOffset);
                } catch (Throwable t) {
                    address = 0;
                }
            }
            return new OffHeapRegion(view, address, raw);
        }

        @Override
        void release(OffHeapRegion region) {
            if (invokeCleaner == null) {
                return; // the garbage collector frees it once unreachable
            }
            try {
                invokeCleaner.invoke((ByteBuffer) region.owner);
            } catch (Throwable t) {
                throw rethrow(t);
            }
        }

        @Override
        String name() {
            return unsafe != null ? "direct ByteBuffer (freed eagerly)" : "direct ByteBuffer (freed by GC)";
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException) {
            throw (RuntimeException) t;
        }
        if (t instanceof Error) {
            throw (Error) t;
        }
        throw new IllegalStateException(t);
    }
}
