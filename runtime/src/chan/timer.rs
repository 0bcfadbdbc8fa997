//! Timer channels: [`after`], [`at`] and [`tick`] (Go's `time.After`,
//! `time.Tick`). A helper goroutine (or, made off a goroutine, a thread)
//! sleeps on the runtime timer and sends the time; the channel is made like
//! [`never`](super::never)'s, so it never reports disconnection once the
//! helper is done (Go's timer channels are never closed).
#![forbid(unsafe_code)]

use super::chan::Chan;
use super::{Receiver, Sender, TrySendError};
use std::time::{Duration, Instant};

fn timer_chan() -> (Sender<Instant>, Receiver<Instant>) {
    let c = Chan::new(1, false, 1, true);
    (Sender { chan: c.clone() }, Receiver { chan: c })
}

/// A receiver that delivers the current time once, after `duration`.
///
/// ```
/// use std::time::Duration;
/// let r = gort_runtime::chan::after(Duration::from_millis(1));
/// assert!(r.recv().is_ok());
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    at(Instant::now() + duration)
}

/// A receiver that delivers the current time once, at `when`.
pub fn at(when: Instant) -> Receiver<Instant> {
    let (s, r) = timer_chan();
    crate::time::spawn_helper(move || {
        crate::time::sleep_until(when);
        let _ = s.try_send(Instant::now());
    });
    r
}

/// A receiver that delivers the current time every `duration` (a tick is
/// dropped if the previous one was not received yet, as with Go's
/// `time.Ticker`). The helper stops once every receiver is dropped.
///
/// # Panics
///
/// If `duration` is zero.
pub fn tick(duration: Duration) -> Receiver<Instant> {
    assert!(!duration.is_zero(), "gort: chan: tick with a zero duration");
    let (s, r) = timer_chan();
    crate::time::spawn_helper(move || {
        let mut next = Instant::now() + duration;
        loop {
            crate::time::sleep_until(next);
            let now = Instant::now();
            if let Err(TrySendError::Disconnected(_)) = s.try_send(now) {
                return;
            }
            // Like Go's ticker: after a late wake-up, skip the missed
            // periods instead of firing a burst to catch up.
            next += duration;
            if next <= now {
                let d = duration.as_nanos();
                let skip = ((now - next).as_nanos() / d + 1) * d;
                next += Duration::from_nanos(u64::try_from(skip).unwrap_or(u64::MAX));
            }
        }
    });
    r
}
