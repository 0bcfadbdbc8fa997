//! `Once` and `OnceLock<T>` (Go's `sync.Once` / `sync.OnceValue`, with std's
//! API). Design notes: `docs/design/sync.md`.
//!
//! # Algorithm
//!
//! `Once` keeps `done: AtomicBool` (the fast path: one Acquire load) and,
//! under a small lock, `running` plus the waiters.
//!
//! 1. `call_once`: if `done`, return. Else, under the lock: if done, return;
//!    if another caller is running the initialiser, register and park, then
//!    start again; else mark `running`, drop the lock, run `f`.
//! 2. On return: set `done` (Release), clear `running`, wake all waiters.
//! 3. On panic (a drop guard): clear `running` and wake all waiters; one of
//!    them (or the next caller) runs its own initialiser. So a panicking
//!    initialiser is retried, like std's `OnceLock` (std's `Once` poisons
//!    instead; Go's `Once` counts a panicking `f` as done). No poisoning.
//!
//! `OnceLock<T>` stores the value in a `std::sync::OnceLock<T>` (the `sync`
//! modules forbid `unsafe`) whose `set` is only ever called inside our
//! `Once`, so it never blocks a thread; our `Once` does the parking.
#![forbid(unsafe_code)]

use super::mutex::Signal;
use parking_lot::Mutex as PlMutex;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
struct OnceState {
    running: bool,
    waiters: Vec<Arc<Signal>>,
}

/// Runs an initialiser exactly once (Go's `sync.Once`); concurrent callers
/// park until it finishes. If it panics, the next caller retries.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static ONCE: gort_runtime::sync::Once = gort_runtime::sync::Once::new();
/// static N: AtomicUsize = AtomicUsize::new(0);
/// ONCE.call_once(|| { N.fetch_add(1, Ordering::Relaxed); });
/// ONCE.call_once(|| { N.fetch_add(1, Ordering::Relaxed); });
/// assert_eq!(N.load(Ordering::Relaxed), 1);
/// assert!(ONCE.is_completed());
/// ```
#[derive(Debug, Default)]
pub struct Once {
    /// Atomic: set once, Release after the initialiser returns; Acquire in
    /// the fast path.
    done: AtomicBool,
    /// Protected by: its own lock.
    state: PlMutex<OnceState>,
}

struct Reset<'a>(&'a Once);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        // Reached on success and on panic alike: wake everyone.
        let ws = {
            let mut st = self.0.state.lock();
            st.running = false;
            std::mem::take(&mut st.waiters)
        };
        for w in ws {
            w.fire(1);
        }
    }
}

impl Once {
    /// A `Once` that has not run.
    pub const fn new() -> Once {
        Once {
            done: AtomicBool::new(false),
            state: PlMutex::new(OnceState {
                running: false,
                waiters: Vec::new(),
            }),
        }
    }

    /// Whether an initialiser has completed.
    pub fn is_completed(&self) -> bool {
        self.done.load(Ordering::Acquire) // Acquire: pairs with Release in `call_once`
    }

    /// Runs `f` if no initialiser has completed yet; otherwise waits for
    /// the running one (parking) and returns without calling `f`.
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        self.call_slow(f);
    }

    #[cold]
    fn call_slow<F: FnOnce()>(&self, f: F) {
        loop {
            let sig = {
                let mut st = self.state.lock();
                if self.is_completed() {
                    return;
                }
                if st.running {
                    let s = Signal::new();
                    st.waiters.push(s.clone());
                    Some(s)
                } else {
                    st.running = true;
                    None
                }
            };
            match sig {
                Some(s) => {
                    s.wait(crate::sched::park::WaitReason::Once);
                }
                None => {
                    let reset = Reset(self);
                    f();
                    self.done.store(true, Ordering::Release); // Release: pairs with Acquire in `is_completed`
                    drop(reset);
                    return;
                }
            }
        }
    }
}

/// A cell written once (std's `OnceLock`, Go's `sync.OnceValue`):
/// concurrent initialisers park until the first finishes; if it panics, the
/// next caller retries.
///
/// ```
/// static CELL: gort_runtime::sync::OnceLock<u32> = gort_runtime::sync::OnceLock::new();
/// assert_eq!(CELL.get(), None);
/// assert_eq!(*CELL.get_or_init(|| 7), 7);
/// assert_eq!(CELL.set(8), Err(8));
/// assert_eq!(CELL.get(), Some(&7));
/// ```
pub struct OnceLock<T> {
    /// Serialises initialisers (and parks the losers).
    once: Once,
    /// Written only inside `once` (so `set` never contends).
    value: std::sync::OnceLock<T>,
}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: std::sync::OnceLock::new(),
        }
    }

    /// The value, if initialised.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Mutable access to the value, if initialised.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut()
    }

    /// The value, running `f` to produce it if the cell is empty. Concurrent
    /// callers park until one initialiser finishes.
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.value.get() {
            return v;
        }
        self.once.call_once(|| {
            let _ = self.value.set(f());
        });
        self.value.get().expect("OnceLock initialised")
    }

    /// Stores `value` if the cell is empty; otherwise returns it back.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut v = Some(value);
        if self.value.get().is_none() {
            self.once.call_once(|| {
                let _ = self.value.set(v.take().expect("value"));
            });
        }
        match v {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// Consumes the cell, returning the value if set.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> Self {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnceLock").field(&self.value.get()).finish()
    }
}

impl std::panic::RefUnwindSafe for Once {}
impl std::panic::UnwindSafe for Once {}
