package io.pagepool.core;

import java.util.Arrays;

/**
 * {@link PageAllocator#checkConsistency()}: walks every free list, every per-CPU cache and the
 * whole page table, and throws {@link IllegalStateException} naming the first violation.
 *
 * <ol>
 *   <li>Collect the blocks parked in per-CPU caches (under their own locks, before the zone lock,
 *       to keep the lock order cache, then zone), with the cache layer quiesced throughout, so that
 *       no ended thread's set is reaped into the zone between this step and the next.</li>
 *   <li>Under the zone lock, walk each free list: every entry must be a reserved, aligned,
 *       {@code FREE} head of that list's order, seen once, with a correct back link; the per-order
 *       block counts and the free-page total must match.</li>
 *   <li>Every cached block must be a {@code CACHED} head of its list's order, held by one cache.</li>
 *   <li>Scan the page table block by block: each reserved pfn lies in exactly one aligned block
 *       whose head is {@code FREE} (and on a list, with no free buddy of the same order left
 *       unmerged), {@code CACHED} (and in a cache), {@code ALLOCATED}, or {@code POOLED} (and only
 *       then held by a page pool), and whose tails are
 *       {@code NONE}. Unreserved pages are all {@code NONE}.</li>
 * </ol>
 * Thread safety: exact only while no other thread uses the allocator.
 */
final class ConsistencyCheck {

    private static final byte ON_FREE_LIST = 1;
    private static final byte IN_CACHE = 2;

    private ConsistencyCheck() {
    }

    /** {@code pools} is the allocator's page-pool table, or null if no pool was ever built on it. */
    static void run(BuddyZone zone, CpuPageCache cache, PoolPageTable pools) {
        cache.quiesced(() -> { // no ended thread's set is reaped between the two reads
            CachedBlocks cached = new CachedBlocks();
            cache.forEachCachedBlock(cached);
            zone.lockQuietly();
            try {
                check(zone, cached, pools);
            } finally {
                zone.unlock();
            }
            return null;
        });
    }

    private static void check(BuddyZone zone, CachedBlocks cached, PoolPageTable pools) {
        PageTable t = zone.table;
        int reserved = zone.reservedPages();
        int maxOrder = zone.maxOrder;
        byte[] seen = new byte[reserved];

        long listPages = 0;
        for (int o = 0; o <= maxOrder; o++) {
            long blocks = 0;
            int prev = PageAllocator.NO_PAGE;
            for (int pfn = zone.freeHead(o); pfn != PageAllocator.NO_PAGE; pfn = t.next[pfn]) {
                if (pfn < 0 || pfn >= reserved) {
                    fail("the order-" + o + " free list holds pfn " + pfn + ", outside the reserved pfns 0.."
                            + (reserved - 1));
                }
                if (seen[pfn] != 0) {
                    fail("pfn " + pfn + " is on the free lists twice (or the order-" + o + " list has a cycle)");
                }
                seen[pfn] = ON_FREE_LIST;
                if (t.state[pfn] != PageTable.FREE || t.order[pfn] != o) {
                    fail("pfn " + pfn + " is on the order-" + o + " free list but is " + t.describe(pfn, maxOrder));
                }
                if ((pfn & ((1 << o) - 1)) != 0) {
                    fail("pfn " + pfn + " is on the order-" + o + " free list but is not aligned to 2^" + o);
                }
                if (t.prev[pfn] != prev) {
                    fail("pfn " + pfn + " on the order-" + o + " free list links back to " + t.prev[pfn]
                            + " instead of " + prev);
                }
                prev = pfn;
                blocks++;
                listPages += 1L << o;
            }
            if (blocks != zone.freeBlocks(o)) {
                fail("the order-" + o + " free list holds " + blocks + " blocks but the zone counts "
                        + zone.freeBlocks(o));
            }
        }
        if (listPages != zone.freePages()) {
            fail("the free lists hold " + listPages + " pages but the zone counts " + zone.freePages());
        }

        for (int i = 0; i < cached.size; i++) {
            int pfn = cached.pfns[i];
            int o = cached.orders[i];
            if (pfn < 0 || pfn >= reserved) {
                fail("a per-CPU cache holds pfn " + pfn + ", outside the reserved pfns 0.." + (reserved - 1));
            }
            if (seen[pfn] != 0) {
                fail("pfn " + pfn + " is held by a per-CPU cache and is also "
                        + (seen[pfn] == ON_FREE_LIST ? "on a free list" : "held by another (or the same) cache"));
            }
            seen[pfn] = IN_CACHE;
            if (t.state[pfn] != PageTable.CACHED || t.order[pfn] != o) {
                fail("pfn " + pfn + " is on a per-CPU order-" + o + " list but is " + t.describe(pfn, maxOrder));
            }
        }

        for (int p = 0; p < reserved; ) {
            byte s = t.state[p];
            if (s == PageTable.NONE) {
                fail("pfn " + p + " is covered by no block (a tail page with no head)");
            }
            int o = t.order[p];
            if (o < 0 || o > maxOrder || (p & ((1 << o) - 1)) != 0 || p + (1 << o) > reserved) {
                fail("pfn " + p + " heads an order-" + o + " block that is misaligned or runs past the reserved pages");
            }
            if (s == PageTable.FREE) {
                if (seen[p] != ON_FREE_LIST) {
                    fail("pfn " + p + " is marked free but is on no free list");
                }
                int buddy = p ^ (1 << o);
                if (o < maxOrder && buddy < reserved && t.state[buddy] == PageTable.FREE && t.order[buddy] == o) {
                    fail("pfn " + p + " and its buddy " + buddy + " are both free at order " + o + " but were not merged");
                }
            } else if (s == PageTable.CACHED) {
                if (seen[p] != IN_CACHE) {
                    fail("pfn " + p + " is marked cached but no per-CPU cache holds it");
                }
            } else if (s != PageTable.ALLOCATED && s != PageTable.POOLED) {
                fail("pfn " + p + " is left in the transient state " + s);
            }
            int pool = pools == null ? 0 : pools.pool[p];
            if ((s == PageTable.POOLED) != (pool != 0)) {
                fail("pfn " + p + " is " + t.describe(p, maxOrder) + " but " + (pool != 0 ? "PagePool#" + pool
                        + " holds it" : "no page pool holds it"));
            }
            for (int q = p + 1, end = p + (1 << o); q < end; q++) {
                if (t.state[q] != PageTable.NONE) {
                    fail("pfn " + q + " lies inside the order-" + o + " block headed by pfn " + p
                            + " but is itself marked as " + PageTable.stateName(t.state[q]) + " head");
                }
            }
            p += 1 << o;
        }
        for (int p = reserved; p < zone.totalPages; p++) {
            if (t.state[p] != PageTable.NONE) {
                fail("pfn " + p + " is in a region not reserved yet but is marked as "
                        + PageTable.stateName(t.state[p]) + " head");
            }
        }
    }

    private static void fail(String message) {
        throw new IllegalStateException("page allocator inconsistent: " + message);
    }

    /** Growable (pfn, order) list. */
    private static final class CachedBlocks implements CpuPageLists.BlockVisitor {
        int[] pfns = new int[64];
        int[] orders = new int[64];
        int size;

        @Override
        public void visit(int pfn, int order) {
            if (size == pfns.length) {
                pfns = Arrays.copyOf(pfns, size * 2);
                orders = Arrays.copyOf(orders, size * 2);
            }
            pfns[size] = pfn;
            orders[size] = order;
            size++;
        }
    }
}
