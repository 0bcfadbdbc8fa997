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
//!
//! Timers of one duration (a ticker, a loop of equal sleeps, equal
//! timeouts) are added in deadline order: such a timer goes to the back
//! of a first-in-first-out run instead of into the heap, and leaves it from
//! the front: O(1) both ways, where the heap costs a sift of log₂ n levels
//! per fire (docs/design/timers.md). A timer due before the run's last one
//! goes to the heap; the earliest of the two fronts fires first.
#![forbid(unsafe_code)]

use super::park::Waiter;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The timer heap, and the run of timers added in deadline order.
///
/// Entries live in a slab (`slots`, reused through `free`); a timer's id is
/// `generation << 32 | slot`, so cancelling and firing are an index and a
/// generation compare — no hashing (a `HashMap` of live timers cost two
/// SipHash operations per sleep). The heap and the run hold
/// `(deadline, id)`, the deadline in `clock::nanotime` ns; an entry
/// whose slot no longer carries that id was cancelled and is skipped when
/// it surfaces.
///
/// # Fields
/// - all: Protected by: `PShared::timers` (a leaf lock).
/// - `run`: deadlines non-decreasing from front to back.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    run: VecDeque<(u64, u64)>,
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
        if self.run.back().is_none_or(|&(last, _)| when >= last) {
            self.run.push_back((when, id));
        } else {
            self.heap.push(Reverse((when, id)));
        }
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
        self.first().map(|((when, _), _)| when)
    }

    /// The earlier of the heap's and the run's fronts (live or not), and
    /// whether it is the heap's.
    fn first(&self) -> Option<((u64, u64), bool)> {
        let h = self.heap.peek().map(|Reverse(e)| *e);
        match (h, self.run.front().copied()) {
            (Some(he), Some(re)) if he.0 < re.0 => Some((he, true)),
            (_, Some(re)) => Some((re, false)),
            (Some(he), None) => Some((he, true)),
            (None, None) => None,
        }
    }

    /// Removes and returns the earliest entry (live or not) if due at `now`.
    fn pop_due(&mut self, now: u64) -> Option<(u64, u64)> {
        let (e, from_heap) = self.first()?;
        if e.0 > now {
            return None;
        }
        if from_heap {
            self.heap.pop();
        } else {
            self.run.pop_front();
        }
        Some(e)
    }

    /// Takes every timer due at `now`, earliest first, with its deadline.
    pub(crate) fn take_due(&mut self, now: u64, out: &mut Vec<(u64, Waiter)>) {
        while let Some((when, id)) = self.pop_due(now) {
            if let Some(w) = self.take(id) {
                out.push((when, w));
            }
        }
        self.prune();
    }

    /// Drops cancelled entries from the fronts of the heap and the run.
    fn prune(&mut self) {
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.is_live(*id) {
                break;
            }
            self.heap.pop();
        }
        while let Some(&(_, id)) = self.run.front() {
            if self.is_live(id) {
                break;
            }
            self.run.pop_front();
        }
        if self.live == 0 {
            self.heap.clear();
            self.run.clear();
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

    /// Random adds (some in deadline order, so they take the run; some
    /// earlier, so they take the heap), cancels and firings against a
    /// plain sorted list: the same timers fire, earliest first, and
    /// `next` is always the earliest live deadline. Seeded.
    #[test]
    fn heap_and_run_fire_like_one_sorted_list() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut t = Timers::default();
        let mut model: Vec<(u64, u64)> = Vec::new(); // (deadline, id), live
        let mut now = 1_000 * MS;
        let mut out = Vec::new();
        for step in 0..if cfg!(miri) { 300 } else { 20_000 } {
            match rand(10) {
                0..=4 => {
                    // Mostly one duration (the run); sometimes shorter.
                    let d = if rand(4) == 0 { rand(MS) } else { MS };
                    let (id, _) = t.add(now + d, w());
                    model.push((now + d, id));
                }
                5 if !model.is_empty() => {
                    let i = rand(model.len() as u64) as usize;
                    let (_, id) = model.swap_remove(i);
                    t.cancel(id);
                }
                _ => {
                    now += rand(MS / 2);
                    out.clear();
                    t.take_due(now, &mut out);
                    let mut due: Vec<u64> =
                        model.iter().filter(|e| e.0 <= now).map(|e| e.0).collect();
                    due.sort_unstable();
                    model.retain(|e| e.0 > now);
                    let got: Vec<u64> = out.iter().map(|e| e.0).collect();
                    assert_eq!(got, due, "step {step}: fired deadlines");
                }
            }
            assert_eq!(t.len(), model.len(), "step {step}: live count");
            let earliest = model.iter().map(|e| e.0).min();
            assert_eq!(t.next(), earliest, "step {step}: next");
        }
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
