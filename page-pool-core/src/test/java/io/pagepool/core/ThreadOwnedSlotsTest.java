package io.pagepool.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The thread-to-object table in front of the thread-locals: a thread finds only its own object,
 * through the table and through the typed array it was made over, and a slot goes to a new owner
 * only once its holder is gone.
 */
class ThreadOwnedSlotsTest {

    static final class Item extends ThreadOwnedSlots.Owned {
        Item(Thread owner) {
            super(owner);
        }
    }

    @Test
    void aThreadFindsItsOwnObjectAndNoOneElses() throws Exception {
        Item[] array = new Item[1]; // every thread maps to the one slot
        ThreadOwnedSlots<Item> slots = new ThreadOwnedSlots<>(array);
        assertNull(slots.get(), "nothing claimed yet");
        Item mine = new Item(Thread.currentThread());
        slots.claim(mine);
        assertSame(mine, slots.get());
        assertSame(mine, ThreadOwnedSlots.get(array), "the typed array answers the same");

        // Another thread reads the same slot and must not get this thread's object.
        AtomicReference<Item> seen = new AtomicReference<>(new Item(null));
        Thread other = new Thread(() -> seen.set(slots.get()));
        other.start();
        other.join();
        assertNull(seen.get());

        slots.release(mine);
        assertNull(slots.get(), "released");
        assertNull(ThreadOwnedSlots.get(array));
    }

    @Test
    void aSlotHeldByALiveThreadIsNotTakenAndAnEndedOnesIs() throws Exception {
        Item[] array = new Item[1]; // every thread maps to the one slot
        ThreadOwnedSlots<Item> slots = new ThreadOwnedSlots<>(array);
        Item mine = new Item(Thread.currentThread());
        slots.claim(mine);

        Item[] theirs = new Item[1];
        Thread other = new Thread(() -> {
            theirs[0] = new Item(Thread.currentThread());
            slots.claim(theirs[0]);
        });
        other.start();
        other.join();
        assertSame(mine, array[0], "a live owner keeps its slot");

        CompletableFuture<Item> ended = new CompletableFuture<>();
        Thread gone = new Thread(() -> ended.complete(new Item(Thread.currentThread())));
        gone.start();
        gone.join();
        slots.release(mine);
        slots.claim(ended.get());
        Item next = new Item(Thread.currentThread());
        slots.claim(next);
        assertSame(next, array[0], "a slot whose owner ended goes to the next claim");
        assertEquals(next, slots.get());
    }

    @Test
    void theTableIsAPowerOfTwo() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ThreadOwnedSlots<>(new Item[3]));
        assertEquals("size 3 must be a positive power of two", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ThreadOwnedSlots<>(new Item[0]));
    }
}
