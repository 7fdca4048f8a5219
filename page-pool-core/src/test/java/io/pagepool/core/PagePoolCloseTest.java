package io.pagepool.core;

import static io.pagepool.core.PagePoolTestSupport.onAnotherThread;
import static io.pagepool.core.PagePoolTestSupport.assertAccounting;
import static io.pagepool.core.PagePoolTestSupport.assertAllBackAndClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;

/**
 * {@link PagePool#close()}: the cache and ring go back to the allocator at once; pages in flight go back
 * when they are returned, before or after the close, from any thread; nothing is leaked, so the allocator
 * itself can be closed once every page is back.
 */
class PagePoolCloseTest {

    @Test
    void pagesInFlightAtCloseGoBackToTheAllocatorWhenReturnedFromAnyThread() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(1024);
        PagePool pool = PagePool.builder(allocator).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            out.add(pool.allocPage());
        }
        // returned before the close: cache, ring from the owner, ring from another thread
        pool.recycleDirect(out.remove(0));
        pool.recycleDirect(out.remove(0));
        pool.putPage(out.remove(0), 100, false);
        int viaOther = out.remove(0);
        onAnotherThread(() -> pool.putPage(viaOther, -1, true));
        assertEquals(2, pool.stats().ringPages());
        assertEquals(6, pool.inflight());

        pool.close();

        assertTrue(pool.isClosed());
        PagePoolStats s = pool.stats();
        assertEquals(64, s.pagesEntered(), s::toString);
        assertEquals(58, s.pagesReleased(), "cache and ring go back at close: " + s);
        assertEquals(0, s.cachedPages(), s::toString);
        assertEquals(0, s.ringPages(), s::toString);
        assertEquals(6, s.inflight(), s::toString);
        assertEquals(6, allocator.stats().allocatedPages());
        assertAccounting(pool);

        // returned after the close: by the owner, direct or not, and by another thread, direct or not
        pool.recycleDirect(out.remove(0));
        pool.putPage(out.remove(0), -1, false);
        List<Integer> rest = new ArrayList<>(out);
        onAnotherThread(() -> {
            for (int i = 0; i < rest.size(); i++) {
                pool.putPage(rest.get(i), -1, i % 2 == 0);
            }
        });

        s = pool.stats();
        assertEquals(6, s.recycleReleasedRefcnt(), "every late return is counted as released: " + s);
        assertEquals(2, s.recycleCached(), "nothing recycles into a closed pool's cache: " + s);
        assertEquals(2, s.recycleRing(), "nothing recycles into a closed pool's ring: " + s);
        assertTrue(pool.awaitInflight(Duration.ZERO));
        assertAllBackAndClose(pool);
    }

    @Test
    void theAllocatorRefusesToCloseWhileAPageIsStillOutAndClosesOnceItIsBack() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        pool.close();
        IllegalStateException ex = assertThrows(IllegalStateException.class, allocator::close);
        assertTrue(ex.getMessage().contains("pfn " + pfn), ex.getMessage());
        assertFalse(allocator.isClosed());
        pool.putPage(pfn, -1, false);
        assertAllBackAndClose(pool);
    }

    @Test
    void currentFragmentPageWithFragmentsOutGoesBackWithItsLastFragmentAfterClose() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long retiredA = pool.allocFrag(3000);
        long current1 = pool.allocFrag(2000); // retires retiredA's page
        long current2 = pool.allocFrag(500);
        assertEquals(2, pool.inflight());

        pool.close();

        assertEquals(2, pool.inflight(), "both carved pages still have fragments out");
        assertEquals(2, allocator.stats().allocatedPages());
        pool.putFrag(current1, true);
        assertEquals(2, allocator.stats().allocatedPages(), "one fragment of the current page is still out");
        onAnotherThread(() -> pool.putFrag(current2, false));
        assertEquals(1, allocator.stats().allocatedPages(), "its last fragment sent the current page back");
        onAnotherThread(() -> pool.putFrag(retiredA, true));
        PagePoolStats s = pool.stats();
        assertEquals(2, s.recycleReleasedRefcnt(), s::toString);
        assertAllBackAndClose(pool);
    }

    @Test
    void currentFragmentPageWithEveryFragmentBackGoesBackAtClose() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        long a = pool.allocFrag(100);
        long b = pool.allocFrag(100);
        pool.putFrag(a, true);
        pool.putFrag(b, false);
        assertEquals(1, pool.inflight(), "the current page is out until retired");
        pool.close();
        assertEquals(0, pool.inflight());
        assertAllBackAndClose(pool);
    }

    @Test
    void awaitInflightReturnsTrueOnceAnotherThreadReturnsEveryPage() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            out.add(pool.allocPage());
        }
        long frag = pool.allocFrag(64);
        long full = pool.allocFrag(4096); // retires frag's page: it goes back with frag
        long last = pool.allocFrag(64); // retires full's page; last's page is the current one
        pool.close();
        CountDownLatch closed = new CountDownLatch(1);
        CompletableFuture<Void> returner = CompletableFuture.runAsync(() -> {
            try {
                closed.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            for (int pfn : out) {
                pool.putPage(pfn, -1, false);
            }
            pool.putFrag(frag, false);
            pool.putFrag(full, true);
            pool.putFrag(last, false);
        });
        assertEquals(23, pool.inflight()); // 20 pages and 3 carved pages
        closed.countDown();
        assertTrue(pool.awaitInflight(Duration.ofSeconds(10)));
        returner.get(10, TimeUnit.SECONDS);
        assertEquals(0, pool.inflight());
        assertAllBackAndClose(pool);
    }

    @Test
    void awaitInflightReturnsFalseAndWarnsWithTheCountWhenPagesNeverComeBack() {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        int a = pool.allocPage();
        int b = pool.allocPage();
        int c = pool.allocPage();
        pool.close();

        List<LogRecord> records = new CopyOnWriteArrayList<>();
        Logger jul = Logger.getLogger(PagePool.class.getName());
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord record) {
                records.add(record);
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        jul.addHandler(capture);
        boolean allBack;
        try {
            allBack = pool.awaitInflight(Duration.ofMillis(20));
        } finally {
            jul.removeHandler(capture);
        }

        assertFalse(allBack);
        assertEquals(1, records.size(), "one warning: " + records);
        LogRecord warning = records.get(0);
        assertEquals(Level.WARNING, warning.getLevel());
        String text = new java.util.logging.SimpleFormatter().formatMessage(warning);
        assertTrue(text.contains("3 page(s) still in flight"), text);
        assertTrue(text.contains(pool.toString()), text);

        pool.putPage(a, -1, true);
        pool.putPage(b, -1, false);
        pool.recycleDirect(c);
        assertTrue(pool.awaitInflight(Duration.ZERO));
        assertAllBackAndClose(pool);
    }

    @Test
    void secondCloseIsHarmlessFromAnyThread() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(256);
        PagePool pool = PagePool.builder(allocator).build();
        int pfn = pool.allocPage();
        pool.close();
        String after = pool.stats().toString();
        pool.close();
        onAnotherThread(pool::close);
        assertEquals(after, pool.stats().toString());
        assertEquals(1, allocator.stats().allocatedPages());
        pool.putPage(pfn, -1, true);
        pool.close();
        assertAllBackAndClose(pool);
    }

    @Test
    void closeFromAnotherThreadAfterTheOwnerEndedReturnsEverything() throws Exception {
        PageAllocator allocator = PagePoolTestSupport.allocator(1024);
        CompletableFuture<PagePool> made = new CompletableFuture<>();
        List<Integer> out = new CopyOnWriteArrayList<>();
        List<Long> frags = new CopyOnWriteArrayList<>();
        Thread owner = new Thread(() -> {
            PagePool p = PagePool.builder(allocator).build();
            for (int i = 0; i < 100; i++) {
                int pfn = p.allocPage();
                if (i % 3 == 0) {
                    p.recycleDirect(pfn);
                } else if (i % 3 == 1) {
                    p.putPage(pfn, -1, false);
                } else {
                    out.add(pfn);
                }
            }
            for (int i = 0; i < 50; i++) {
                frags.add(p.allocFrag(700));
            }
            made.complete(p);
        }, "pool-owner");
        owner.start();
        PagePool pool = made.get(10, TimeUnit.SECONDS);
        owner.join();

        pool.close();

        assertEquals(0, pool.stats().ringPages());
        assertAccounting(pool);
        for (int pfn : out) {
            pool.putPage(pfn, -1, true);
        }
        for (long h : frags) {
            pool.putFrag(h, true);
        }
        assertTrue(pool.awaitInflight(Duration.ZERO));
        assertAllBackAndClose(pool);
    }

}
