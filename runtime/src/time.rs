//! Sleeping (Go's `time.Sleep`): parks the goroutine on a runtime timer,
//! never the M; on a plain thread it sleeps the thread. `after` and `tick`
//! (Go's `time.After`/`time.Tick`) are the timer channels of `gort::chan`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

pub use crate::chan::{after, tick};

/// Sleeps for `d` (Go's `time.Sleep`). In a goroutine this parks only the
/// goroutine; its M runs others meanwhile.
///
/// ```
/// let t = std::time::Instant::now();
/// gort_runtime::run(|| gort_runtime::time::sleep(std::time::Duration::from_millis(5)));
/// assert!(t.elapsed() >= std::time::Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    sleep_until(Instant::now() + d);
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) {
    while Instant::now() < deadline {
        crate::sched::park::park_current_until(deadline, crate::sched::park::WaitReason::Sleep);
    }
}
