//! The park word: the lock-free state machine behind `park`/`unpark`
//! (`gen << 32 | state`), separated from `G` so loom can check it alone.
//! See `g.rs` for the protocol and its diagram.
#![forbid(unsafe_code)]

use crate::loom::sync::atomic::{AtomicU64, Ordering};

pub(crate) const IDLE: u64 = 0;
pub(crate) const RUNNABLE: u64 = 1;
/// (2 was `PARKING`, a state between the goroutine's suspend and g0's
/// commit; the window is now plain `RUNNABLE`, see `begin_park`.)
pub(crate) const PARKED: u64 = 3;
pub(crate) const NOTIFIED: u64 = 4;

#[inline]
pub(crate) fn state(w: u64) -> u64 {
    w & 0xffff_ffff
}
#[inline]
pub(crate) fn generation(w: u64) -> u32 {
    (w >> 32) as u32
}
#[inline]
fn word(gen_: u32, st: u64) -> u64 {
    (u64::from(gen_) << 32) | st
}

/// What an `unpark` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Unpark {
    /// The G was parked: the caller now owns its run token and must ready it.
    Readied,
    /// The wake-up was recorded (the G is running or parking); it will not sleep.
    Recorded,
    /// Nothing to do: a wake-up was already pending, or the goroutine of
    /// that generation has exited.
    Nothing,
}

/// The park word.
///
/// # Fields
/// - `0`: Atomic; every state change is a read-modify-write with AcqRel:
///   the CAS of [`ParkWord::transition`], or `reset`/`set_idle`'s update
///   (the token holder's, racing only stale unparkers).
#[derive(Debug)]
pub(crate) struct ParkWord(AtomicU64);

impl ParkWord {
    pub(crate) fn new() -> ParkWord {
        ParkWord(AtomicU64::new(word(0, IDLE)))
    }

    /// The raw word (diagnostics, handles).
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves the word from `w` (just loaded) to state `next` in the same
    /// generation: the one CAS every transition below makes (AcqRel, so a
    /// transition reads the latest write and acquires it). `false`: the
    /// word changed meanwhile; reload and decide again.
    #[inline]
    fn transition(&self, w: u64, next: u64) -> bool {
        self.0
            .compare_exchange(
                w,
                word(generation(w), next),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Token holder: a new goroutine in this G (new generation, RUNNABLE).
    pub(crate) fn reset(&self) {
        // An RMW, not load+store: a stale unparker may CAS concurrently.
        let prev = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(word(generation(w).wrapping_add(1), RUNNABLE))
            })
            .expect("always Some");
        debug_assert_eq!(state(prev), IDLE);
    }

    /// Token holder: the goroutine exited.
    pub(crate) fn set_idle(&self) {
        // An RMW: a concurrent `unpark` may have just recorded NOTIFIED.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(word(generation(w), IDLE))
            });
    }

    /// Step 1, on the goroutine: `true` = suspend now, `false` = a wake-up
    /// was pending and has been consumed.
    ///
    /// The common case (`RUNNABLE`) is a load only: the goroutine suspends
    /// and g0's [`ParkWord::commit`] makes the one transition, so a park
    /// costs one compare-and-swap, not two (about 4 % of an unbuffered
    /// channel round trip). A wake-up that arrives in between finds
    /// `RUNNABLE` and records `NOTIFIED`, which `commit` then consumes.
    pub(crate) fn begin_park(&self) -> bool {
        loop {
            let w = self.0.load(Ordering::Acquire);
            match state(w) {
                RUNNABLE => return true,
                // Consumed by an RMW, which reads the latest write: a
                // waker that rewrote a stale NOTIFIED is acquired here
                // (`loom_stale_notification_does_not_hide_a_wake_up`).
                NOTIFIED => {
                    if self.transition(w, RUNNABLE) {
                        return false;
                    }
                }
                s => panic!("gort: park in state {s}"),
            }
        }
    }

    /// Step 2, on g0 after the switch: `true` = parked (token released),
    /// `false` = a wake-up raced the switch; the G is RUNNABLE again and the
    /// caller still holds the token.
    pub(crate) fn commit(&self) -> bool {
        loop {
            let w = self.0.load(Ordering::Relaxed);
            let next = match state(w) {
                RUNNABLE => PARKED,
                // Consumed by an RMW, as in `begin_park`.
                NOTIFIED => RUNNABLE,
                s => panic!("gort: park commit in state {s}"),
            };
            // Release (to PARKED): publishes the goroutine's saved state to
            // the unparker, whose Acquire CAS pairs with it.
            if self.transition(w, next) {
                return next == PARKED;
            }
        }
    }

    /// Step 3, anyone: wake generation `gen_`.
    pub(crate) fn unpark(&self, gen_: u32) -> Unpark {
        loop {
            let w = self.0.load(Ordering::Acquire);
            if generation(w) != gen_ {
                return Unpark::Nothing;
            }
            let (next, r) = match state(w) {
                PARKED => (RUNNABLE, Unpark::Readied),
                RUNNABLE => (NOTIFIED, Unpark::Recorded),
                // A wake-up is already pending, maybe a stale one that the
                // goroutine is consuming right now to re-check its
                // condition. Rewrite the word anyway (an RMW, not just the
                // load above): the consuming CAS then reads our write and
                // acquires our caller's condition store. With the load
                // alone, that store could still sit in this CPU's store
                // buffer when the goroutine re-checks, and it parked for
                // good (`loom_stale_notification_does_not_hide_a_wake_up`;
                // found as channel operations parked with their result
                // already delivered).
                NOTIFIED => (NOTIFIED, Unpark::Nothing),
                _ => return Unpark::Nothing,
            };
            if self.transition(w, next) {
                return r; // `w`'s generation is `gen_` (checked above)
            }
        }
    }

    /// At shutdown: claim a parked G's token (`PARKED → IDLE`).
    pub(crate) fn claim_parked(&self) -> bool {
        let w = self.0.load(Ordering::Acquire);
        state(w) == PARKED && self.transition(w, IDLE)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn park_then_unpark_readies_once() {
        let p = ParkWord::new();
        p.reset();
        let g = generation(p.load());
        assert!(p.begin_park());
        assert!(p.commit());
        assert_eq!(p.unpark(g), Unpark::Readied);
        assert_eq!(
            p.unpark(g),
            Unpark::Recorded,
            "running again: the next park returns at once"
        );
        assert!(!p.begin_park());
    }

    #[test]
    fn unpark_during_switch_is_not_lost() {
        let p = ParkWord::new();
        p.reset();
        let g = generation(p.load());
        assert!(p.begin_park());
        assert_eq!(p.unpark(g), Unpark::Recorded);
        assert!(
            !p.commit(),
            "the commit sees the wake-up and keeps the G runnable"
        );
        assert_eq!(state(p.load()), RUNNABLE);
    }

    #[test]
    fn stale_handles_are_inert() {
        let p = ParkWord::new();
        p.reset();
        let old = generation(p.load());
        p.set_idle();
        assert_eq!(p.unpark(old), Unpark::Nothing, "exited");
        p.reset();
        assert!(p.begin_park());
        assert!(p.commit());
        assert_eq!(
            p.unpark(old),
            Unpark::Nothing,
            "a later goroutine in the same G"
        );
        assert!(p.claim_parked());
        assert!(!p.claim_parked());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// A park word with a goroutine running in it, and that goroutine's
    /// generation.
    fn running() -> (Arc<ParkWord>, u32) {
        let p = Arc::new(ParkWord::new());
        p.reset();
        let g = generation(p.load());
        (p, g)
    }

    /// One goroutine parks while another thread unparks it: in every
    /// interleaving the goroutine ends up running exactly once more —
    /// either `begin_park`/`commit` saw the wake-up, or the unparker got the
    /// token — and never both.
    #[test]
    fn loom_park_unpark_exactly_once() {
        loom::model(|| {
            let (p, g) = running();
            let resumed = Arc::new(AtomicUsize::new(0));
            let (p2, r2) = (p.clone(), resumed.clone());
            let waker = loom::thread::spawn(move || {
                if p2.unpark(g) == Unpark::Readied {
                    r2.fetch_add(1, Ordering::SeqCst); // the waker readies the G
                }
            });
            // The goroutine + its M.
            if !p.begin_park() || !p.commit() {
                resumed.fetch_add(1, Ordering::SeqCst); // did not sleep
            }
            waker.join().unwrap();
            assert_eq!(resumed.load(Ordering::SeqCst), 1);
        });
    }

    /// Two wakers race for one parked goroutine: exactly one readies it.
    #[test]
    fn loom_two_wakers_one_token() {
        loom::model(|| {
            let (p, g) = running();
            assert!(p.begin_park());
            assert!(p.commit());
            let readied = Arc::new(AtomicUsize::new(0));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let (p, r) = (p.clone(), readied.clone());
                    loom::thread::spawn(move || {
                        if p.unpark(g) == Unpark::Readied {
                            r.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(readied.load(Ordering::SeqCst), 1);
        });
    }

    /// A waker holding a handle from an exited goroutine never touches the
    /// next goroutine in the same G.
    #[test]
    fn loom_stale_generation() {
        loom::model(|| {
            let (p, old) = running();
            let p2 = p.clone();
            let t = loom::thread::spawn(move || p2.unpark(old));
            p.set_idle();
            p.reset();
            let w = p.load();
            assert!(
                p.begin_park(),
                "word before park: gen {} state {}",
                generation(w),
                state(w)
            );
            let r = t.join().unwrap();
            if r == Unpark::Recorded {
                // It caught the *old* goroutine still running.
                assert_eq!(generation(p.load()), old + 1);
            }
            assert!(
                p.commit(),
                "the new goroutine's park is never cancelled by a stale handle"
            );
        });
    }

    /// The waker's side of every wait loop is "set the condition, then
    /// unpark"; the goroutine's is "check the condition, then park". With a
    /// stale wake-up already pending (`NOTIFIED`: a waker whose goroutine
    /// had already seen its condition and moved on), the goroutine's next
    /// `begin_park` consumes that stale notification and re-checks the
    /// condition; the second waker must not then return having done only a
    /// *load* of the word, or its condition store may still be invisible to
    /// that re-check (store→load reordering: the store-buffering litmus
    /// test) and the goroutine parks for good. In every interleaving the
    /// goroutine must end up seeing the condition or being readied.
    #[test]
    fn loom_stale_notification_does_not_hide_a_wake_up() {
        loom::model(|| {
            let (p, g) = running();
            // The stale wake-up, already delivered.
            assert_eq!(p.unpark(g), Unpark::Recorded);
            let cond = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let (p2, c2) = (p.clone(), cond.clone());
            let waker = loom::thread::spawn(move || {
                c2.store(true, Ordering::Release);
                p2.unpark(g) == Unpark::Readied
            });
            // The goroutine's wait loop, with its M's commit.
            let mut parked = false;
            for _ in 0..3 {
                if cond.load(Ordering::Acquire) {
                    break;
                }
                if p.begin_park() && p.commit() {
                    parked = true;
                    break;
                }
            }
            let readied = waker.join().unwrap();
            assert!(
                !parked || readied,
                "the goroutine parked after the condition was set and nobody readied it"
            );
        });
    }
}
