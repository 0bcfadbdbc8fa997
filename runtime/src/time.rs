//! Go's `time` package, the runtime half: [`sleep`] (Go's `time.Sleep`)
//! parks the goroutine on a runtime timer, never the M, and sleeps the
//! thread on a plain thread; [`Timer`] and [`Ticker`] are Go 1.23's
//! `time.Timer` / `time.Ticker`; `after` and `tick` (Go's `time.After` /
//! `time.Tick`) are the timer channels of `gort::chan`. Full notes:
//! `docs/design/timers.md`.
//!
//! # Concepts
//!
//! - A `Timer`/`Ticker` owns an `Arc<Shared>`: a capacity-1 channel (both
//!   ends, so it never disconnects while either the owner or its helper
//!   lives) and a `Mutex<State>`: the armed deadline `when` (`None` =
//!   stopped), the ticker `period`, whether a **helper** runs, and the
//!   helper's parking slot (`sleeper`: its `Waiter` and the instant it
//!   sleeps until).
//! - The **helper** is a goroutine (a thread when made off a goroutine) that
//!   sleeps on the runtime timer (`park_current_until`) until `when`, sends
//!   the value and exits once the timer is stopped or has fired. At most
//!   one helper per timer runs at a time (`State::helper`).
//!
//! # Algorithm
//!
//! 1. Arm (`new`, `reset`): under the state lock, note whether the timer
//!    was pending, set `when`/`period`, and drain the channel (a value
//!    left there was sent before this call: Go 1.23 guarantees it is never
//!    received after it; it counts as "pending", because a Go 1.23 timer
//!    channel is unbuffered and a value not yet received has not fired).
//!    If `when` has already passed, send now, under the lock (so a
//!    non-blocking receive right after `Timer::new(ZERO)` succeeds, as in
//!    Go). Else start a helper if none runs, or wake the helper if it
//!    sleeps past the new deadline.
//! 2. Stop: the same with `when = None`; the sleeping helper is woken so it
//!    exits now rather than at the old deadline (Go frees a stopped timer).
//! 3. Helper: under the lock, exit if `when` is `None`; if `when` is in the
//!    future, record itself as `sleeper`, unlock and park until `when`
//!    (early and spurious wake-ups just loop); else `try_send(when)` under
//!    the lock (a full buffer drops a ticker's tick, as in Go), then set
//!    `when` to `None` (timer) or the next period boundary after now
//!    (ticker: Go's `when + period * (1 + (now - when) / period)`, so a
//!    slow receiver gets no burst of late ticks).
//!
//! # Race protocol
//!
//! Every send and every drain happens under the state lock, and the helper
//! re-reads `when` under that lock before sending, so no value prepared
//! before a `reset`/`stop` is received after it. Lock order: the state
//! lock is taken before a channel's lock (the send and the drain), never
//! after; a `Waiter` is woken after the state lock is released.
//!
//! # Differences from Go
//!
//! - A value is delivered by the helper, not lazily by the receiver: a
//!   non-blocking receive from a timer whose deadline just passed may find
//!   nothing until the helper has run (Go runs a due timer inside the
//!   receive). `Receiver::len` reports 1 while a value waits (Go 1.23: 0).
//! - The value is the instant the timer was due (as Go 1.23 sends), not
//!   the instant of the send.
//! - Dropping the `Timer`/`Ticker` stops it; a cloned receiver then sees a
//!   disconnected channel (`RecvError`) once the helper has exited, instead
//!   of blocking forever.
#![forbid(unsafe_code)]

use crate::chan::{Receiver, Sender, bounded};
use crate::sched::park::{self, WaitReason, Waiter};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::chan::{after, at, tick};

/// Sleeps for `d` (Go's `time.Sleep`). In a goroutine this parks only the
/// goroutine; its M runs others meanwhile.
///
/// ```
/// let t = std::time::Instant::now();
/// gort_runtime::run(|| gort_runtime::time::sleep(std::time::Duration::from_millis(5)));
/// assert!(t.elapsed() >= std::time::Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    let now = crate::sched::clock::nanotime();
    let deadline = crate::sched::clock::after(now, d);
    // One clock read for the deadline and the first check alike.
    if park::park_until_nanos_at(deadline, WaitReason::Sleep, now) {
        return;
    }
    while !park::park_until_nanos(deadline, WaitReason::Sleep) {}
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) {
    let deadline = crate::sched::clock::to_nanos(deadline);
    while !park::park_until_nanos(deadline, WaitReason::Sleep) {}
}

/// State shared by a [`Timer`] or [`Ticker`] and its helper.
struct Shared {
    /// Protected by: itself. Taken before the channel's lock.
    state: Mutex<State>,
    /// Immutable after init. The only sender; sends happen under `state`.
    tx: Sender<Instant>,
    /// Immutable after init. Drained under `state` by `reset`/`stop`.
    rx: Receiver<Instant>,
}

/// # Fields
///
/// All protected by `Shared::state`.
struct State {
    /// When the next value is due; `None` when stopped or fired (timer).
    when: Option<Instant>,
    /// A ticker's period; `None` for a timer.
    period: Option<Duration>,
    /// A helper runs (at most one at a time).
    helper: bool,
    /// The helper, parked until the given instant.
    sleeper: Option<(Waiter, Instant)>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        let (tx, rx) = bounded(1);
        Arc::new(Shared {
            state: Mutex::new(State {
                when: None,
                period: None,
                helper: false,
                sleeper: None,
            }),
            tx,
            rx,
        })
    }

    /// Arms (`Some`) or stops (`None`) the timer; returns whether it was
    /// pending: armed, or fired with its value not yet received.
    fn set(self: &Arc<Self>, when: Option<Instant>, period: Option<Duration>) -> bool {
        let mut st = self.state.lock();
        let mut pending = st.when.is_some();
        // A value sent before this call must never be received after it.
        if self.rx.try_recv().is_ok() {
            pending = true;
        }
        st.when = when;
        st.period = period;
        let now = Instant::now();
        if when.is_some_and(|w| w <= now) {
            self.fire(&mut st, now);
        }
        let mut wake = None;
        let mut spawn = false;
        match st.when {
            Some(w) => {
                if !st.helper {
                    st.helper = true;
                    spawn = true;
                } else if st.sleeper.as_ref().is_some_and(|&(_, until)| w < until) {
                    wake = st.sleeper.take();
                }
            }
            None => wake = st.sleeper.take(),
        }
        drop(st);
        if let Some((w, _)) = wake {
            w.wake();
        }
        if spawn {
            let me = self.clone();
            spawn_helper(move || me.helper());
        }
        pending
    }

    /// Sends the value that was due and advances or disarms the timer.
    ///
    /// # Context
    ///
    /// Called with `state` locked (the guard is the parameter); `when` is
    /// set and not after `now`.
    fn fire(&self, st: &mut State, now: Instant) {
        let Some(when) = st.when else { return };
        // Full: the previous tick is still unread, and this one is dropped
        // (only a ticker can find the buffer full: arming drains it).
        let _ = self.tx.try_send(when);
        st.when = st.period.map(|p| next_tick(when, p, now));
    }

    /// The helper's loop (step 3 of the module docs).
    fn helper(&self) {
        let mut st = self.state.lock();
        loop {
            let Some(when) = st.when else {
                st.helper = false;
                st.sleeper = None;
                return;
            };
            let now = Instant::now();
            if when <= now {
                self.fire(&mut st, now);
                continue;
            }
            st.sleeper = Some((Waiter::current(), when));
            drop(st);
            park::park_current_until(when, WaitReason::Sleep);
            st = self.state.lock();
            st.sleeper = None;
        }
    }
}

/// The first period boundary of a ticker due at `when` that is after
/// `now` (Go's `when + period * (1 + (now - when) / period)`): ticks missed
/// by a late wake-up are skipped, not fired as a burst.
fn next_tick(when: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(when).as_nanos();
    let periods = late / period.as_nanos() + 1;
    let step = period.as_nanos().saturating_mul(periods);
    when + Duration::from_nanos(u64::try_from(step).unwrap_or(u64::MAX))
}

/// Runs `f` in a goroutine when called from one, else in a thread. A timer
/// made on a plain thread must not depend on a runtime that happens to be
/// running: its helper goroutine would be abandoned when that runtime
/// stops, and the thread would wait for the value forever (found by
/// `timers_and_tickers_on_plain_threads` hanging when another test's
/// runtime was running as it made its "no runtime" timers). Also the
/// helper of `chan::after`/`at`/`tick`.
pub(crate) fn spawn_helper(f: impl FnOnce() + Send + 'static) {
    if crate::coro::on_goroutine() {
        drop(crate::spawn::go(f));
    } else {
        std::thread::spawn(f);
    }
}

/// A single event (Go's `time.Timer`, with Go 1.23's semantics): after its
/// deadline, the instant it was due is delivered on [`receiver`](Self::receiver).
///
/// [`reset`](Self::reset) re-arms it, [`stop`](Self::stop) disarms it, and
/// after either returns, no value prepared before the call is received
/// (the channel behaves as Go 1.23's unbuffered timer channel). Dropping
/// the `Timer` stops it. Waiting parks the goroutine (a plain thread
/// blocks); the deadline is served by a helper goroutine sleeping on the
/// runtime timer (a helper thread for a timer made on a plain thread, so
/// that it does not die with a runtime that stops).
///
/// The receiver is reached through a method rather than a public field (Go's
/// `t.C`) so it cannot be replaced or moved out of the timer, which keeps
/// the no-stale-value guarantee; clone it to wait elsewhere or use it in
/// [`select!`](crate::chan::select).
///
/// ```
/// use gort_runtime::chan::select;
/// use gort_runtime::time::Timer;
/// use std::time::{Duration, Instant};
///
/// gort_runtime::run(|| {
///     let start = Instant::now();
///     let t = Timer::new(Duration::from_millis(2));
///     let due = t.receiver().recv().unwrap();
///     assert!(due >= start + Duration::from_millis(2));
///
///     // A timeout in a select; stop returns true: it had not fired.
///     let (_s, r) = gort_runtime::chan::bounded::<i32>(0);
///     let t = Timer::new(Duration::from_secs(60));
///     select! {
///         recv(r) -> _ => unreachable!(),
///         default => {}
///     }
///     assert!(t.stop());
///     assert!(t.receiver().try_recv().is_err());
/// });
/// ```
#[doc(alias = "NewTimer")]
pub struct Timer {
    shared: Arc<Shared>,
}

impl Timer {
    /// A timer that fires once, after `d` (Go's `time.NewTimer(d)`). A zero
    /// duration makes the value available at once.
    pub fn new(d: Duration) -> Timer {
        Timer::at(Instant::now() + d)
    }

    /// A timer that fires once, at `when` (at once if `when` has passed).
    pub fn at(when: Instant) -> Timer {
        let shared = Shared::new();
        shared.set(Some(when), None);
        Timer { shared }
    }

    /// The channel on which the timer delivers the instant it was due.
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.shared.rx
    }

    /// Re-arms the timer to fire after `d` (Go's `Timer.Reset`). Returns
    /// `true` if it was pending (armed, or fired with the value not yet
    /// received: that value is discarded), `false` if it had been stopped
    /// or its value was received.
    ///
    /// ```
    /// use gort_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::ZERO);
    /// // The value is ready but unreceived: reset discards it.
    /// assert!(t.reset(Duration::from_millis(1)));
    /// assert!(t.receiver().recv().is_ok());
    /// assert!(!t.reset(Duration::from_millis(1)));
    /// ```
    pub fn reset(&self, d: Duration) -> bool {
        self.reset_at(Instant::now() + d)
    }

    /// Re-arms the timer to fire at `when`; returns as [`reset`](Self::reset).
    pub fn reset_at(&self, when: Instant) -> bool {
        self.shared.set(Some(when), None)
    }

    /// Stops the timer (Go's `Timer.Stop`). Returns `true` if it was
    /// pending (armed, or fired with the value not yet received: that value
    /// is discarded), `false` if it had already been stopped or its value
    /// received. After `stop` returns, no value arrives until a `reset`.
    ///
    /// ```
    /// use gort_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::from_secs(60));
    /// assert!(t.stop());
    /// assert!(!t.stop());
    /// assert!(t.receiver().recv_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn stop(&self) -> bool {
        self.shared.set(None, None)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.shared.set(None, None);
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("Timer").field("when", &st.when).finish()
    }
}

/// Periodic events (Go's `time.Ticker`, with Go 1.23's semantics): every
/// period the instant the tick was due is delivered on
/// [`receiver`](Self::receiver).
///
/// A tick is dropped while the previous one is unreceived, and the next
/// tick after a late one falls on the period grid, so a slow receiver gets
/// neither a backlog nor a burst. [`reset`](Self::reset) and
/// [`stop`](Self::stop) discard an unreceived tick; dropping the `Ticker`
/// stops it.
///
/// ```
/// use gort_runtime::time::Ticker;
/// use std::time::{Duration, Instant};
///
/// gort_runtime::run(|| {
///     let start = Instant::now();
///     let t = Ticker::new(Duration::from_millis(1));
///     let a = t.receiver().recv().unwrap();
///     let b = t.receiver().recv().unwrap();
///     assert!(a >= start + Duration::from_millis(1) && b > a);
///     t.stop();
///     assert!(t.receiver().try_recv().is_err());
/// });
/// ```
#[doc(alias = "NewTicker")]
pub struct Ticker {
    shared: Arc<Shared>,
}

impl Ticker {
    /// A ticker whose first tick is due after `d`, then every `d` (Go's
    /// `time.NewTicker(d)`).
    ///
    /// # Panics
    ///
    /// If `d` is zero, as Go's `NewTicker` panics on a non-positive interval.
    pub fn new(d: Duration) -> Ticker {
        assert!(
            !d.is_zero(),
            "gort: time: non-positive interval for Ticker::new"
        );
        let shared = Shared::new();
        shared.set(Some(Instant::now() + d), Some(d));
        Ticker { shared }
    }

    /// The channel on which ticks are delivered.
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.shared.rx
    }

    /// Restarts the ticker with period `d`: the next tick is due `d` from
    /// now (Go's `Ticker.Reset`; also restarts a stopped ticker). An
    /// unreceived tick is discarded.
    ///
    /// # Panics
    ///
    /// If `d` is zero.
    pub fn reset(&self, d: Duration) {
        assert!(
            !d.is_zero(),
            "gort: time: non-positive interval for Ticker::reset"
        );
        self.shared.set(Some(Instant::now() + d), Some(d));
    }

    /// Stops the ticker (Go's `Ticker.Stop`): no tick is received after
    /// this returns, until a [`reset`](Self::reset).
    pub fn stop(&self) {
        self.shared.set(None, None);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.set(None, None);
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("Ticker")
            .field("next", &st.when)
            .field("period", &st.period)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_lands_on_the_grid_after_now() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        assert_eq!(next_tick(t0, p, t0), t0 + p);
        assert_eq!(next_tick(t0, p, t0 + Duration::from_millis(9)), t0 + p);
        assert_eq!(next_tick(t0, p, t0 + p), t0 + 2 * p);
        assert_eq!(next_tick(t0, p, t0 + Duration::from_millis(35)), t0 + 4 * p);
    }

    #[test]
    fn timers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Timer>();
        check::<Ticker>();
    }

    #[test]
    fn timer_on_a_plain_thread() {
        let t = Timer::new(Duration::from_millis(1));
        assert!(t.receiver().recv().is_ok());
        assert!(!t.stop());
        let t = Timer::new(Duration::from_secs(60));
        assert!(t.reset(Duration::ZERO));
        assert!(t.receiver().try_recv().is_ok());
    }
}
