package io.pagepool.netty;

/**
 * Thrown under {@link FallbackPolicy#FAIL} when a direct buffer cannot be served from the page
 * pools: the page allocator is exhausted, or the request exceeds its largest block. Like Netty's
 * own {@code OutOfDirectMemoryError}, an {@link OutOfMemoryError}, so code that handles running
 * out of direct memory handles this too.
 */
public final class PagePoolOutOfMemoryError extends OutOfMemoryError {
    private static final long serialVersionUID = 1L;

    public PagePoolOutOfMemoryError(String message) {
        super(message);
    }
}
