//! The live feed's channel: every subscriber receives every event, and what
//! the channel holds is bounded in bytes, not in events.
//!
//! A broadcast channel bounded by a number of events holds either too
//! little or too much: a million-line build is about 500 batches of 13 KiB,
//! and a thousand followers that each take a few seconds to read them need
//! the channel to keep all of them (if it does not, each follower catches up
//! from the log file on its own, re-reading and re-encoding the whole log a
//! thousand times); but a bound in events that allows that allows a
//! thousand 64 KiB batches too. So the channel keeps events until every
//! subscriber has read them, up to [`RING_BYTES`]: past that, the oldest
//! events go, and a subscriber that had not read them learns it (`Lagged`)
//! and catches up from the log files. An event every subscriber has read is
//! dropped at once, so an idle server holds nothing.
//!
//! Publishing never waits for a subscriber. Subscribers wait on a
//! [`Notify`], woken together by each publication.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// The most the channel holds for its slowest subscriber: 32 MiB. A
/// million-line build's batches and their frames are about 15 MiB.
pub const RING_BYTES: usize = 32 * 1024 * 1024;

/// Something published, with the bytes it holds.
pub trait Weighed {
    /// Bytes of memory the value holds (its buffers).
    fn bytes(&self) -> usize;
}

struct Slot<T> {
    value: T,
    bytes: usize,
    /// Subscribers that have not read it yet.
    unread: usize,
}

struct Ring<T> {
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot<T>>,
    bytes: usize,
    subscribers: usize,
}

impl<T> Ring<T> {
    fn end(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// Drops the slots at the front that nobody will read.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.unread == 0) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(slot) = self.slots.pop_front() {
            self.bytes -= slot.bytes;
            self.first += 1;
        }
    }
}

struct Shared<T> {
    ring: Mutex<Ring<T>>,
    notify: Notify,
    limit: usize,
}

impl<T> Shared<T> {
    fn ring(&self) -> MutexGuard<'_, Ring<T>> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A subscriber fell behind: this many events were dropped before it read
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged(pub u64);

/// The receiving side of one subscriber; it stops counting as one when
/// dropped.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    next: u64,
}

/// A channel holding at most `limit` bytes of unread events.
pub fn channel<T: Clone + Weighed>(limit: usize) -> Sender<T> {
    Sender {
        shared: Arc::new(Shared {
            ring: Mutex::new(Ring {
                first: 0,
                slots: VecDeque::new(),
                bytes: 0,
                subscribers: 0,
            }),
            notify: Notify::new(),
            limit,
        }),
    }
}

impl<T: Clone + Weighed> Sender<T> {
    /// Publishes `value` to the current subscribers; with none, it is
    /// dropped at once.
    pub fn send(&self, value: T) {
        {
            let mut ring = self.shared.ring();
            if ring.subscribers == 0 {
                return;
            }
            let bytes = value.bytes();
            let unread = ring.subscribers;
            ring.slots.push_back(Slot {
                value,
                bytes,
                unread,
            });
            ring.bytes += bytes;
            // Over the bound: the oldest go, whoever has not read them.
            while ring.bytes > self.shared.limit && ring.slots.len() > 1 {
                ring.pop();
            }
        }
        self.shared.notify.notify_waiters();
    }

    /// Subscribers now.
    pub fn receiver_count(&self) -> usize {
        self.shared.ring().subscribers
    }

    /// Bytes held now (for `/metrics` and tests).
    pub fn held(&self) -> usize {
        self.shared.ring().bytes
    }

    /// A subscriber receiving every event published from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut ring = self.shared.ring();
        ring.subscribers += 1;
        Receiver {
            shared: self.shared.clone(),
            next: ring.end(),
        }
    }
}

impl<T: Clone + Weighed> Receiver<T> {
    /// The next event if there is one already.
    pub fn try_recv(&mut self) -> Result<Option<T>, Lagged> {
        let mut ring = self.shared.ring();
        if self.next < ring.first {
            let missed = ring.first - self.next;
            self.next = ring.first;
            return Err(Lagged(missed));
        }
        let index = (self.next - ring.first) as usize;
        let Some(slot) = ring.slots.get_mut(index) else {
            return Ok(None);
        };
        slot.unread -= 1;
        let value = slot.value.clone();
        self.next += 1;
        if index == 0 {
            ring.trim();
        }
        Ok(Some(value))
    }

    /// The next event, waiting for it.
    pub async fn recv(&mut self) -> Result<T, Lagged> {
        let shared = self.shared.clone();
        loop {
            let notified = shared.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a publication in between wakes it.
            notified.as_mut().enable();
            if let Some(value) = self.try_recv()? {
                return Ok(value);
            }
            notified.await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut ring = self.shared.ring();
        ring.subscribers -= 1;
        let from = self.next.max(ring.first);
        let start = (from - ring.first) as usize;
        for slot in ring.slots.iter_mut().skip(start) {
            slot.unread -= 1;
        }
        ring.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Value(u32, usize);

    impl Weighed for Value {
        fn bytes(&self) -> usize {
            self.1
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_and_read_events_are_dropped() {
        let sender = channel(1000);
        sender.send(Value(0, 10)); // nobody listens: dropped
        assert_eq!(sender.held(), 0);
        let mut a = sender.subscribe();
        let mut b = sender.subscribe();
        for i in 1..=3 {
            sender.send(Value(i, 10));
        }
        assert_eq!(sender.held(), 30);
        for i in 1..=3 {
            assert_eq!(a.recv().await, Ok(Value(i, 10)));
        }
        assert_eq!(sender.held(), 30, "b has not read them");
        assert_eq!(b.try_recv(), Ok(Some(Value(1, 10))));
        assert_eq!(sender.held(), 20);
        drop(b);
        assert_eq!(sender.held(), 0, "read by every remaining subscriber");
        assert_eq!(a.try_recv(), Ok(None));
        let waiting = tokio::spawn(async move { a.recv().await });
        tokio::task::yield_now().await;
        sender.send(Value(9, 1));
        assert_eq!(waiting.await.unwrap(), Ok(Value(9, 1)));
    }

    #[tokio::test]
    async fn a_subscriber_past_the_bound_is_told_how_much_it_lost() {
        let sender = channel(100);
        let mut slow = sender.subscribe();
        let mut fast = sender.subscribe();
        for i in 0..10 {
            sender.send(Value(i, 30));
            assert_eq!(fast.try_recv(), Ok(Some(Value(i, 30))));
        }
        assert!(sender.held() <= 100);
        assert_eq!(slow.try_recv(), Err(Lagged(7)));
        assert_eq!(slow.try_recv(), Ok(Some(Value(7, 30))));
        // One event larger than the bound still goes through.
        sender.send(Value(10, 500));
        assert_eq!(fast.try_recv(), Ok(Some(Value(10, 500))));
        assert_eq!(slow.try_recv(), Err(Lagged(2)));
        assert_eq!(slow.try_recv(), Ok(Some(Value(10, 500))));
        assert_eq!(sender.held(), 0);
    }
}
