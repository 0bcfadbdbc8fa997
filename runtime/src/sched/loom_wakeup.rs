//! Loom model of the no-lost-wake-up protocol between a goroutine that
//! queues work (`Sched::wakep`) and an M that found nothing and goes idle
//! (the `Step::Idle` path of `Sched::find_runnable`). The model keeps the
//! real code's atomics, fences and lock in the same order, with the run
//! queues reduced to a counter (loom cannot see inside crossbeam-deque; see
//! docs/testing.md).
#![cfg(all(test, loom))]

use loom::sync::atomic::{AtomicUsize, Ordering, fence};
use loom::sync::{Arc, Mutex};

struct Model {
    queued: AtomicUsize,
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    /// Idle Ps under `sched.lock`.
    lock: Mutex<usize>,
}

/// `queue push; wakep()`. Returns whether it handed a P to a new M.
fn submit(s: &Model) -> bool {
    s.queued.fetch_add(1, Ordering::Release);
    fence(Ordering::SeqCst);
    wakep(s)
}

/// `wakep` after the fence. Returns whether it handed a P to a new M.
fn wakep(s: &Model) -> bool {
    if s.npidle.load(Ordering::SeqCst) == 0 {
        return false;
    }
    if s.nmspinning.load(Ordering::SeqCst) != 0
        || s.nmspinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return false;
    }
    let mut idle = s.lock.lock().unwrap();
    if *idle > 0 {
        *idle -= 1;
        s.npidle.fetch_sub(1, Ordering::SeqCst);
        true // startm: the new M spins and finds the work
    } else {
        s.nmspinning.fetch_sub(1, Ordering::SeqCst);
        false
    }
}

/// The idle path of an M holding a P. Returns whether it got back to work.
fn go_idle(s: &Model, spinning: bool) -> bool {
    {
        let mut idle = s.lock.lock().unwrap();
        if s.queued.load(Ordering::Acquire) > 0 {
            return true; // "checks the global queue under sched.lock"
        }
        *idle += 1; // pidleput
        s.npidle.fetch_add(1, Ordering::SeqCst);
    }
    if spinning {
        s.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }
    fence(Ordering::SeqCst);
    if s.queued.load(Ordering::Acquire) > 0 {
        let mut idle = s.lock.lock().unwrap();
        if *idle > 0 {
            *idle -= 1;
            s.npidle.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
    }
    false // stopm
}

/// `handoffp` of a P whose run queue is empty (sysmon took it from an M
/// blocked in the kernel): start an M if the global queue has work, else
/// make the P idle — and, with `recheck`, look at the queue again after
/// the SeqCst increment (the fix of 2026-11-24: the global queue is
/// lock-free, so the check under `sched.lock` alone can miss a push whose
/// `wakep` saw no idle P). Returns whether it got the work running.
fn handoff(s: &Model, recheck: bool) -> bool {
    {
        let mut idle = s.lock.lock().unwrap();
        if s.queued.load(Ordering::Acquire) > 0 {
            return true; // startm
        }
        *idle += 1; // pidleput
        s.npidle.fetch_add(1, Ordering::SeqCst);
    }
    if !recheck {
        return false;
    }
    fence(Ordering::SeqCst);
    s.queued.load(Ordering::Acquire) > 0 && wakep(s)
}

fn check_handoff(recheck: bool) {
    race(0, move |s| handoff(s, recheck), "sysmon idled the last P");
}

#[test]
fn loom_wakeup_handoffp_rechecks_the_global_queue() {
    check_handoff(true);
}

/// The model can fail: without the second look the work is stranded.
#[test]
#[should_panic(expected = "nobody woke")]
fn loom_wakeup_handoffp_without_recheck_strands_work() {
    check_handoff(false);
}

fn check(spinning: bool) {
    race(
        usize::from(spinning),
        move |s| go_idle(s, spinning),
        "the only M went idle",
    );
}

/// A goroutine queued (`submit`) against `other` on another thread (an M
/// going idle, or `handoffp`), from `nmspinning` spinning Ms: in every
/// interleaving somebody gets the work run.
fn race(
    nmspinning: usize,
    other: impl Fn(&Model) -> bool + Copy + Send + Sync + 'static,
    what: &'static str,
) {
    loom::model(move || {
        let s = Arc::new(Model {
            queued: AtomicUsize::new(0),
            npidle: AtomicUsize::new(0),
            nmspinning: AtomicUsize::new(nmspinning),
            lock: Mutex::new(0),
        });
        let s2 = s.clone();
        let t = loom::thread::spawn(move || other(&s2));
        let started = submit(&s);
        let ran = t.join().unwrap();
        assert!(started || ran, "work queued while {what}, and nobody woke");
    });
}

#[test]
fn loom_wakeup_spinning_m_goes_idle() {
    check(true);
}

#[test]
fn loom_wakeup_non_spinning_m_goes_idle() {
    check(false);
}
