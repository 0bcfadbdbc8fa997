//! The runtime's clock (Go: `nanotime`): `CLOCK_MONOTONIC` in nanoseconds,
//! the unit of every timer deadline, and conversions from and to
//! [`Instant`] (also `CLOCK_MONOTONIC` on Linux) at the API boundary.
//!
//! Timers keep `u64` deadlines rather than `Instant`s: a heap compare is one
//! integer compare, and reading the clock is one vDSO call with no
//! `Timespec` normalisation (`Instant` arithmetic was ~15 % of the
//! instructions of a 10,000-sleeper run).
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `CLOCK_MONOTONIC` now, in ns.
#[inline]
pub(crate) fn nanotime() -> u64 {
    // Cannot fail for CLOCK_MONOTONIC on Linux; fall back to std if it did.
    super::preempt::clock_ns(libc::CLOCK_MONOTONIC).unwrap_or_else(|| to_nanos(Instant::now()))
}

thread_local! {
    /// A `nanotime` read by the goroutine that is switching away on this
    /// thread, for the schedule that follows (0 = none).
    static FRESH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Offers `now` (read just before a park) to the schedule that follows on
/// this thread: its timer check then needs no clock read of its own. The
/// value is at most the park's own duration old (well under a
/// microsecond), and using it is conservative: a timer is fired only if
/// due by then; one that fell due since is fired by the next schedule.
///
/// Not inlined: `park_until_nanos_at` calls it and [`take_fresh`] on either
/// side of a park, and an inlined pair could share one computation of the
/// thread-local's address — the old M's after a migration
/// (docs/design/soundness.md).
#[inline(never)]
pub(crate) fn set_fresh(now: u64) {
    FRESH.with(|f| f.set(now));
}

/// Takes (and clears) the value left by [`set_fresh`], if any. Every
/// schedule takes it, so it is never used twice or late.
#[inline(never)] // a thread-local accessor (see `set_fresh`)
pub(crate) fn take_fresh() -> Option<u64> {
    let v = FRESH.with(|f| f.replace(0));
    (v != 0).then_some(v)
}

/// An `Instant` and the `nanotime` read next to it.
///
/// The pair is read between two `nanotime`s and kept only if they are
/// close: a thread preempted between the two reads would otherwise skew
/// every conversion of the process by as long as the OS kept it off the
/// CPU (a timer set `at` an `Instant` firing that much late, a tick's
/// `Instant` that much before it was sent).
fn anchor() -> (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    *ANCHOR.get_or_init(|| {
        let ns = || super::preempt::clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(1 << 62);
        let mut best: Option<(u64, Instant, u64)> = None;
        for _ in 0..100 {
            let n0 = ns();
            let i = Instant::now();
            let n1 = ns();
            let gap = n1.saturating_sub(n0);
            if best.is_none_or(|(g, _, _)| gap < g) {
                best = Some((gap, i, n0 + gap / 2));
            }
            if gap < 2_000 {
                break;
            }
        }
        let (_, i, n) = best.expect("at least one read");
        (i, n)
    })
}

/// `i` on the `nanotime` scale (saturating).
pub(crate) fn to_nanos(i: Instant) -> u64 {
    let (ai, an) = anchor();
    match i.checked_duration_since(ai) {
        Some(d) => an.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        None => an.saturating_sub(u64::try_from((ai - i).as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// `n` (a `nanotime` value) as an `Instant`.
pub(crate) fn to_instant(n: u64) -> Instant {
    let (ai, an) = anchor();
    if n >= an {
        ai.checked_add(Duration::from_nanos(n - an))
            .unwrap_or(ai + Duration::from_secs(1 << 32))
    } else {
        ai.checked_sub(Duration::from_nanos(an - n)).unwrap_or(ai)
    }
}

/// `now + d` on the `nanotime` scale, capped below `u64::MAX` (which
/// means "no timer").
pub(crate) fn after(now: u64, d: Duration) -> u64 {
    now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .min(u64::MAX - 1)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn nanotime_and_instant_agree() {
        let i0 = Instant::now();
        let n = nanotime();
        let i1 = Instant::now();
        assert!(to_nanos(i0) <= n + 1_000_000 && n <= to_nanos(i1) + 1_000_000);
        let back = to_instant(to_nanos(i0));
        let skew = back.max(i0) - back.min(i0);
        assert!(
            skew < Duration::from_micros(1),
            "round trip off by {skew:?}"
        );
    }

    #[test]
    fn a_fresh_read_is_taken_once() {
        assert_eq!(take_fresh(), None);
        set_fresh(42);
        assert_eq!(take_fresh(), Some(42));
        assert_eq!(take_fresh(), None, "never used twice");
    }

    #[test]
    fn after_saturates_below_the_sentinel() {
        assert_eq!(after(5, Duration::from_nanos(7)), 12);
        assert_eq!(after(5, Duration::MAX), u64::MAX - 1);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(1)), u64::MAX - 1);
    }
}
