//! `Barrier` (std's API): `n` parties meet, then all proceed; reusable.
//! Design notes: `docs/design/sync.md`.
//!
//! # Algorithm
//!
//! Under one small lock: `count` (arrivals this generation), `generation`,
//! and the parked waiters.
//!
//! 1. `wait`: `count += 1`. The `n`-th arrival is the leader: it resets
//!    `count`, bumps `generation`, drains and wakes the waiters.
//! 2. Others register a one-shot signal and park until the leader fires it
//!    (after bumping `generation`); spurious park returns re-check the
//!    signal, and next-generation arrivals register fresh signals.
#![forbid(unsafe_code)]

use super::mutex::Signal;
use parking_lot::Mutex as PlMutex;
use std::sync::Arc;

#[derive(Debug)]
struct BarrierState {
    count: usize,
    generation: u64,
    waiters: Vec<Arc<Signal>>,
}

/// Lets `n` goroutines or threads wait for each other, generation after
/// generation; waiting parks the goroutine or blocks the thread.
///
/// ```
/// use std::sync::Arc;
/// gort_runtime::run(|| {
///     let b = Arc::new(gort_runtime::sync::Barrier::new(2));
///     let b2 = b.clone();
///     let h = gort_runtime::go(move || b2.wait().is_leader());
///     let me = b.wait().is_leader();
///     assert!(me ^ h.join().unwrap());
/// });
/// ```
#[derive(Debug)]
pub struct Barrier {
    /// Immutable after init.
    n: usize,
    /// Protected by: its own lock.
    state: PlMutex<BarrierState>,
}

/// What [`Barrier::wait`] returns: exactly one party per generation is the
/// leader.
#[derive(Debug, Clone, Copy)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this party was the last to arrive (one per generation).
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` parties (`n == 0` behaves like `1`, as in std).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            state: PlMutex::new(BarrierState {
                count: 0,
                generation: 0,
                waiters: Vec::new(),
            }),
        }
    }

    /// Blocks until `n` parties have called `wait` in this generation.
    pub fn wait(&self) -> BarrierWaitResult {
        let (gen_, sig) = {
            let mut st = self.state.lock();
            st.count += 1;
            if st.count >= self.n {
                st.count = 0;
                st.generation += 1;
                let ws = std::mem::take(&mut st.waiters);
                drop(st);
                for w in ws {
                    w.fire(1);
                }
                return BarrierWaitResult(true);
            }
            let s = Signal::new();
            st.waiters.push(s.clone());
            (st.generation, s)
        };
        // Fired only by the leader, after it bumped the generation.
        sig.wait(crate::sched::park::WaitReason::Semacquire);
        debug_assert_ne!(self.state.lock().generation, gen_);
        BarrierWaitResult(false)
    }
}
