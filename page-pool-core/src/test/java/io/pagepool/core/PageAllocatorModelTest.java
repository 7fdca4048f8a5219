package io.pagepool.core;

import static io.pagepool.core.AllocatorTesting.assertEverythingFreeAndMerged;
import static io.pagepool.core.AllocatorTesting.verifyPattern;
import static io.pagepool.core.AllocatorTesting.writePattern;
import static io.pagepool.core.PageAllocator.NO_PAGE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.RandomDistribution;
import net.jqwik.api.EdgeCasesMode;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/**
 * Model-based property tests: random sequences of allocator calls, checked after every step
 * against a reference model that only knows which blocks the test holds.
 *
 * <p>After each step: held blocks never overlap (no pfn handed out twice), held pages plus
 * {@link PageAllocator#freePageCount()} equal {@link PageAllocator#totalPages()}, and the
 * allocator's own {@link PageAllocator#checkConsistency()} passes. Every allocation writes a
 * unique pattern into each of its pages, verified just before the page is freed, so an allocation
 * overlapping another shows up as overwritten data. Exhaustion is checked to be genuine:
 * {@code NO_PAGE} only when no aligned run of free pages of that order exists, a short bulk count
 * only when no page is left. At the end everything is freed and the buddy lists must hold only
 * the largest blocks again.
 *
 * <p>Allocators are small (256-1024 pages, max order 4-6, tiny per-CPU sets) so that sequences
 * run into exhaustion; a coverage check makes sure a fair share of them do.
 */
class PageAllocatorModelTest {

    private static final int TRIES = 500;
    /** A non-pfn, non-NO_PAGE value a bulk array may hold; the allocator must leave it alone. */
    private static final int MARKER = -7;

    enum Kind { ALLOC, FREE, BULK_ALLOC, BULK_FREE, ALLOC_AND_SPLIT, CONTIG_FREE, DRAIN }

    /** One generated step; {@code a} and {@code b} pick orders, counts and targets. */
    static final class Step {
        final Kind kind;
        final int a;
        final int b;

        Step(Kind kind, int a, int b) {
            this.kind = kind;
            this.a = a;
            this.b = b;
        }

        @Override
        public String toString() {
            return kind + "(" + a + "," + b + ")";
        }
    }

    /** Allocator shape for one try. */
    static final class Shape {
        final int maxOrder;
        final int totalPages;
        final int batch;
        final int high;
        final int magazines;
        final boolean preTouch;

        Shape(int maxOrder, int totalPages, int batch, int highFactor, int magazines, boolean preTouch) {
            this.maxOrder = maxOrder;
            this.totalPages = totalPages;
            this.batch = batch;
            this.high = batch * highFactor;
            this.magazines = magazines;
            this.preTouch = preTouch;
        }

        PageAllocator build(CpuCacheMode mode) {
            return PageAllocator.builder().capacity((long) totalPages * AllocatorTesting.PAGE).maxOrder(maxOrder)
                    .pcpBatch(batch).pcpHigh(high).magazines(magazines).preTouch(preTouch).cpuCacheMode(mode).build();
        }

        @Override
        public String toString() {
            return "Shape{pages=" + totalPages + ", maxOrder=" + maxOrder + ", batch=" + batch + ", high=" + high
                    + ", magazines=" + magazines + ", preTouch=" + preTouch + "}";
        }
    }

    @Property(tries = TRIES, edgeCases = EdgeCasesMode.NONE)
    void perThreadCachesMatchTheModel(@ForAll("shapes") Shape shape, @ForAll("steps") List<Step> steps) {
        run(CpuCacheMode.PER_THREAD, shape, steps);
    }

    @Property(tries = TRIES, edgeCases = EdgeCasesMode.NONE)
    void magazinesMatchTheModel(@ForAll("shapes") Shape shape, @ForAll("steps") List<Step> steps) {
        run(CpuCacheMode.MAGAZINE, shape, steps);
    }

    @Property(tries = TRIES, edgeCases = EdgeCasesMode.NONE)
    void noCpuCacheMatchesTheModel(@ForAll("shapes") Shape shape, @ForAll("steps") List<Step> steps) {
        run(CpuCacheMode.NONE, shape, steps);
    }

    @Provide
    Arbitrary<Shape> shapes() {
        Arbitrary<Integer> maxOrder = Arbitraries.integers().between(4, 6);
        Arbitrary<Integer> pages = Arbitraries.oneOf(
                Arbitraries.integers().between(4, 16).map(regions -> regions * 64), // whole max-order-6 blocks
                Arbitraries.integers().between(256, 1024));                        // any size, short last region
        Arbitrary<Integer> batch = Arbitraries.of(1, 2, 4, 8);
        Arbitrary<Integer> highFactor = Arbitraries.integers().between(1, 4);
        Arbitrary<Integer> magazines = Arbitraries.integers().between(1, 3);
        Arbitrary<Boolean> preTouch = Arbitraries.of(true, false);
        return Combinators.combine(maxOrder, pages, batch, highFactor, magazines, preTouch).as(Shape::new);
    }

    @Provide
    Arbitrary<List<Step>> steps() {
        Arbitrary<Kind> kind = Arbitraries.frequency(
                Tuple.of(30, Kind.ALLOC),
                Tuple.of(12, Kind.FREE),
                Tuple.of(18, Kind.BULK_ALLOC),
                Tuple.of(8, Kind.BULK_FREE),
                Tuple.of(12, Kind.ALLOC_AND_SPLIT),
                Tuple.of(10, Kind.CONTIG_FREE),
                Tuple.of(4, Kind.DRAIN));
        Arbitrary<Integer> param = Arbitraries.integers().between(0, 9999);
        return Combinators.combine(kind, param, param).as(Step::new).list().ofMinSize(1).ofMaxSize(150)
                .withSizeDistribution(RandomDistribution.uniform());
    }

    private static void run(CpuCacheMode mode, Shape shape, List<Step> steps) {
        PageAllocator a = shape.build(mode);
        Model m = new Model(a);
        boolean exhausted = false;
        for (Step step : steps) {
            exhausted |= m.apply(step);
            m.checkInvariants(step);
        }
        Statistics.label("exhaustion reached").collect(exhausted);
        Statistics.label("exhaustion reached").coverage(c -> c.check(true).percentage(p -> p >= 20));
        m.freeEverything();
        assertEverythingFreeAndMerged(a);
        if (shape.preTouch) {
            assertEquals(0, a.stats().unreservedPages());
        }
        a.close();
    }

    /** The reference model: which blocks the test holds, and who owns each page. */
    private static final class Model {
        private final PageAllocator a;
        private final int total;
        private final int maxOrder;
        /** Per pfn: 0 when the test does not hold it, else the token of the allocation holding it. */
        private final int[] owner;
        /** Held blocks as {pfn, order, token}; split blocks become order-0 entries. */
        private final List<int[]> held = new ArrayList<>();
        private long heldPages;
        private int nextToken = 1;

        Model(PageAllocator a) {
            this.a = a;
            this.total = a.totalPages();
            this.maxOrder = a.maxOrder();
            this.owner = new int[total];
        }

        /** Applies a step; returns true if it met exhaustion. */
        boolean apply(Step s) {
            switch (s.kind) {
                case ALLOC:
                    return alloc(s.a % 2 == 0 ? s.b % (maxOrder + 1) : s.b % 4) == NO_PAGE;
                case FREE:
                    if (!held.isEmpty()) {
                        freeBlock(held.get(s.a % held.size()));
                    }
                    return false;
                case BULK_ALLOC:
                    return bulkAlloc(s.a % 97, s.b);
                case BULK_FREE:
                    bulkFree(s.a, s.b);
                    return false;
                case ALLOC_AND_SPLIT: {
                    int order = 1 + s.a % maxOrder;
                    int pfn = alloc(order);
                    if (pfn == NO_PAGE) {
                        return true;
                    }
                    int[] block = findHeld(pfn);
                    held.remove(block);
                    a.splitPage(pfn, order);
                    for (int p = pfn; p < pfn + (1 << order); p++) {
                        held.add(new int[] {p, 0, block[2]});
                    }
                    return false;
                }
                case CONTIG_FREE:
                    contigFree(s.a, s.b);
                    return false;
                case DRAIN:
                    a.drainCpuCaches();
                    assertEquals(0, a.cachedPageCount(), "one thread: drainCpuCaches() empties every cache");
                    return false;
                default:
                    throw new AssertionError(s.kind);
            }
        }

        private int alloc(int order) {
            int pfn = a.allocPages(order);
            if (pfn == NO_PAGE) {
                assertNoFreeAlignedRun(order);
                return NO_PAGE;
            }
            if ((pfn & ((1 << order) - 1)) != 0 || pfn + (1 << order) > total) {
                fail("allocPages(" + order + ") returned pfn " + pfn + ", not an aligned block inside 0.." + (total - 1));
            }
            take(pfn, order);
            return pfn;
        }

        /** Records a block handed out by the allocator; fails if any page is already held. */
        private void take(int pfn, int order) {
            int token = nextToken++;
            for (int p = pfn; p < pfn + (1 << order); p++) {
                if (owner[p] != 0) {
                    fail("pfn " + p + " handed out again (order-" + order + " block at " + pfn
                            + ") while allocation #" + owner[p] + " still holds it");
                }
                owner[p] = token;
            }
            held.add(new int[] {pfn, order, token});
            heldPages += 1 << order;
            writePattern(a, pfn, order, token);
        }

        /** Forgets a block the test is about to free, after checking its pages were not overwritten. */
        private void release(int[] block) {
            verifyPattern(a, block[0], block[1], block[2]);
            for (int p = block[0]; p < block[0] + (1 << block[1]); p++) {
                owner[p] = 0;
            }
            heldPages -= 1 << block[1];
        }

        private void freeBlock(int[] block) {
            release(block);
            held.remove(block);
            a.freePages(block[0], block[1]);
        }

        /** Bulk-allocates into an array with some pre-populated slots and slots beyond nrPages. */
        private boolean bulkAlloc(int nrPages, int b) {
            int[] array = new int[nrPages + 3];
            Arrays.fill(array, NO_PAGE);
            int preset = 0;
            for (int k = 0; nrPages > 0 && k < b % 3; k++) {
                int i = (b / 3 + 5 * k) % nrPages;
                if (array[i] == NO_PAGE) {
                    array[i] = MARKER;
                    preset++;
                }
            }
            int[] before = array.clone();
            int populated = a.allocPagesBulk(nrPages, array);
            int filled = 0;
            for (int i = 0; i < array.length; i++) {
                if (before[i] == MARKER || i >= nrPages) {
                    assertEquals(before[i], array[i], "bulk alloc touched slot " + i + " it must leave alone");
                } else if (array[i] != NO_PAGE) {
                    take(array[i], 0);
                    filled++;
                }
            }
            assertEquals(preset + filled, populated, "populated slots, pre-set ones included");
            if (populated < nrPages) {
                assertEquals(total, heldPages, "a bulk alloc came back short while pages were free");
                return true;
            }
            return false;
        }

        /** Bulk-frees a random subset of the held order-0 pages; an extra held page after count must survive. */
        private void bulkFree(int a1, int b) {
            List<int[]> pages = new ArrayList<>();
            for (int[] h : held) {
                if (h[1] == 0) {
                    pages.add(h);
                }
            }
            if (pages.isEmpty()) {
                return;
            }
            Collections.shuffle(pages, new Random(a1));
            int count = Math.min(pages.size(), b % 65);
            int[] pfns = new int[count + 1];
            for (int i = 0; i < count; i++) {
                int[] h = pages.get(i);
                release(h);
                held.remove(h);
                pfns[i] = h[0];
            }
            pfns[count] = count < pages.size() ? pages.get(count)[0] : NO_PAGE; // beyond count: left alone
            a.freePagesBulk(pfns, count);
        }

        /** Frees a random sub-range of a random run of contiguous held order-0 pages. */
        private void contigFree(int a1, int b) {
            int[] zeroOwner = new int[total]; // token + 1 of held order-0 pages, else 0
            for (int[] h : held) {
                if (h[1] == 0) {
                    zeroOwner[h[0]] = 1;
                }
            }
            List<int[]> runs = new ArrayList<>(); // {start, length}
            for (int p = 0; p < total; ) {
                if (zeroOwner[p] == 0) {
                    p++;
                    continue;
                }
                int start = p;
                while (p < total && zeroOwner[p] != 0) {
                    p++;
                }
                runs.add(new int[] {start, p - start});
            }
            if (runs.isEmpty()) {
                return;
            }
            int[] run = runs.get(a1 % runs.size());
            int offset = b % run[1];
            int length = 1 + (b / run[1]) % (run[1] - offset);
            int start = run[0] + offset;
            for (int p = start; p < start + length; p++) {
                int[] h = findHeld(p);
                release(h);
                held.remove(h);
            }
            a.freeContigRange(start, length);
        }

        private int[] findHeld(int pfn) {
            for (int[] h : held) {
                if (h[0] == pfn) {
                    return h;
                }
            }
            throw new AssertionError("pfn " + pfn + " is not held");
        }

        /**
         * allocPages may only fail once every cache it can reach is drained: in a single thread that
         * is all of them, so after a failure no aligned run of 2^order pages may be entirely free.
         */
        private void assertNoFreeAlignedRun(int order) {
            int size = 1 << order;
            for (int start = 0; start + size <= total; start += size) {
                boolean allFree = true;
                for (int p = start; p < start + size && allFree; p++) {
                    allFree = owner[p] == 0;
                }
                if (allFree) {
                    fail("allocPages(" + order + ") returned NO_PAGE although pfns [" + start + ", " + (start + size)
                            + ") are all free");
                }
            }
        }

        void checkInvariants(Step step) {
            assertEquals(total, heldPages + a.freePageCount(), () -> "after " + step
                    + ": held pages + freePageCount() must be every page");
            assertTrue(a.cachedPageCount() <= a.freePageCount(), () -> "after " + step);
            a.checkConsistency();
        }

        void freeEverything() {
            for (int[] h : new ArrayList<>(held)) {
                freeBlock(h);
            }
            assertEquals(0, heldPages);
        }
    }
}
