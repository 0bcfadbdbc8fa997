//! Timers: the runtime's sleeping goroutines (Go: `time.go`, `pp.timers`).
//!
//! # Design (first version)
//!
//! One timer heap per P (`PShared::timers`, Go's `pp.timers`), ordered by
//! deadline, each entry a [`Waiter`] to wake. A goroutine's sleep goes on
//! its current P's heap; any M may fire (or cancel) it, so timers of idle or
//! retired Ps are never stranded (see docs/design/timers.md).
//!
//! Who fires timers:
//! 1. every M, at the top of `find_runnable`, when the earliest deadline has
//!    passed (one relaxed load when no timer exists, plus a clock read when
//!    one does);
//! 2. when every M is idle, **one** of them — the timer sleeper — waits on
//!    its note with the earliest deadline as timeout (Go's last M blocking
//!    in `netpoll(delay)`); when it times out it takes an idle P and runs
//!    the schedule loop, which fires the due timers.
//!
//! Adding a timer that becomes the earliest wakes the sleeper (or an idle
//! M, which becomes the sleeper) to recompute its timeout.
//!
//! Cancelling (a wait that ended before its deadline) removes the entry
//! from the index; its heap slot is skipped when it surfaces.
#![forbid(unsafe_code)]

use super::park::Waiter;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The timer heap.
///
/// Entries live in a slab (`slots`, reused through `free`); a timer's id is
/// `generation << 32 | slot`, so cancelling and firing are an index and a
/// generation compare — no hashing (a `HashMap` of live timers cost two
/// SipHash operations per sleep). The heap holds `(deadline, id)`, the
/// deadline in `clock::nanotime` ns; an entry
/// whose slot no longer carries that id was cancelled and is skipped when
/// it surfaces.
///
/// # Fields
/// - all: Protected by: `PShared::timers` (a leaf lock).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    waiter: Option<Waiter>,
}

fn slot_of(id: u64) -> usize {
    (id & 0xffff_ffff) as usize
}

impl Timers {
    /// Adds a timer; returns its id and whether it is now the earliest.
    pub(crate) fn add(&mut self, when: u64, w: Waiter) -> (u64, bool) {
        let slot = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let s = &mut self.slots[slot];
        s.generation = s.generation.wrapping_add(1);
        s.waiter = Some(w);
        let id = (u64::from(s.generation) << 32) | slot as u64;
        self.heap.push(Reverse((when, id)));
        self.live += 1;
        let earliest = self.next().is_some_and(|n| n >= when);
        (id, earliest)
    }

    /// Takes the waiter of timer `id` if it is still live.
    fn take(&mut self, id: u64) -> Option<Waiter> {
        let slot = slot_of(id);
        let s = self.slots.get_mut(slot)?;
        if u64::from(s.generation) != id >> 32 {
            return None;
        }
        let w = s.waiter.take()?;
        self.free.push(slot as u32);
        self.live -= 1;
        Some(w)
    }

    fn is_live(&self, id: u64) -> bool {
        self.slots
            .get(slot_of(id))
            .is_some_and(|s| u64::from(s.generation) == id >> 32 && s.waiter.is_some())
    }

    /// Removes a timer that has not fired (no effect if it has).
    pub(crate) fn cancel(&mut self, id: u64) {
        drop(self.take(id));
        self.prune();
    }

    /// The earliest live deadline.
    pub(crate) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((w, _))| *w)
    }

    /// Takes every timer due at `now`, earliest first, with its deadline.
    pub(crate) fn take_due(&mut self, now: u64, out: &mut Vec<(u64, Waiter)>) {
        while let Some(Reverse((when, id))) = self.heap.peek().copied() {
            if when > now {
                break;
            }
            self.heap.pop();
            if let Some(w) = self.take(id) {
                out.push((when, w));
            }
        }
        self.prune();
    }

    /// Drops cancelled entries from the top of the heap.
    fn prune(&mut self) {
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.is_live(*id) {
                break;
            }
            self.heap.pop();
        }
        if self.live == 0 {
            self.heap.clear();
        }
    }

    /// Number of live timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn w() -> Waiter {
        Waiter::Thread(std::thread::current())
    }

    #[test]
    fn due_order_and_cancel() {
        let t0 = 1_000 * MS;
        let mut t = Timers::default();
        let (a, e1) = t.add(t0 + 30 * MS, w());
        assert!(e1);
        let (_b, e2) = t.add(t0 + 10 * MS, w());
        assert!(e2, "an earlier deadline becomes the earliest");
        let (_c, e3) = t.add(t0 + 20 * MS, w());
        assert!(!e3);
        assert_eq!(t.next(), Some(t0 + 10 * MS));
        let mut out = Vec::new();
        t.take_due(t0 + 25 * MS, &mut out);
        assert_eq!(out.len(), 2);
        t.cancel(a);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next(), None, "cancelled entries do not linger at the top");
        t.take_due(t0 + 1_000 * MS, &mut out);
        assert_eq!(out.len(), 2, "a cancelled timer never fires");
    }

    #[test]
    fn reused_slots_do_not_confuse_old_ids() {
        let t0 = 1_000 * MS;
        let mut t = Timers::default();
        let (a, _) = t.add(t0 + 5 * MS, w());
        t.cancel(a);
        // The slot is reused by a new timer; cancelling the old id again
        // must not cancel the new one.
        let (b, _) = t.add(t0 + 7 * MS, w());
        assert_ne!(a, b);
        t.cancel(a);
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.take_due(t0 + 6 * MS, &mut out);
        assert!(out.is_empty(), "the stale heap entry of `a` fired");
        t.take_due(t0 + 8 * MS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next(), None);
    }
}
