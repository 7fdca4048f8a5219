package io.pagepool.core;

/**
 * The device-mapping hook of a {@link PagePool}: what a NIC driver does with the DMA API, or
 * what an io_uring registered-buffer table needs. The pool calls {@link #map} once when a page
 * enters it, {@link #syncForDevice} each time a page is recycled, and {@link #unmap} once when
 * the page leaves it for good. A page stays mapped for its whole stay in the pool, however many
 * packets it carries: the mapping cost is paid per page, never per packet.
 *
 * <p>Failures: an exception from any method reaches the pool's caller, and the pool loses no
 * page over it. A page {@code map} refuses goes back to the allocator unmapped (with the rest of
 * its refill batch; the pages mapped before it stay in the pool); a page {@code syncForDevice}
 * refuses is unmapped and freed instead of recycled; a page whose {@code unmap} throws is
 * freed to the allocator all the same, since the pool cannot keep a page it is releasing, and
 * {@code close()} goes on releasing the rest before it rethrows the first failure.
 *
 * <p>Thread safety: {@code map} is called on the pool's owner thread; {@code syncForDevice} and
 * {@code unmap} on whichever thread returns the page. Implementations must be thread-safe.
 */
public interface DmaMapper {

    /**
     * Maps a page (a block of the pool's order) that is entering the pool.
     *
     * @param pfn     the page's head pfn
     * @param address its native address ({@link PageAllocator#address(int)})
     * @param length  bytes in the block
     * @return the device address, kept by the pool and returned by {@link PagePool#dmaAddress(int)}
     */
    long map(int pfn, long address, int length);

    /** Undoes {@link #map} for a page that leaves the pool. */
    void unmap(int pfn, long dmaAddress, int length);

    /**
     * Hands the first {@code length} bytes from {@code offset} back to the device before the page
     * is reused; {@code length} is the caller's sync length capped by the pool's
     * {@code maxSyncLength}.
     */
    void syncForDevice(int pfn, long dmaAddress, int offset, int length);
}
