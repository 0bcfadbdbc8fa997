//! `RwLock<T>` (Go's `sync.RWMutex`, with std's data-owning API):
//! writer-preferring, and readers cannot be starved either. Design notes:
//! `docs/design/sync.md`.
//!
//! # Algorithm
//!
//! Under one small lock: `readers` (active), `writer` (active), the queued
//! writers (FIFO) and the queued readers.
//!
//! 1. `read`: granted at once if no writer is active *or queued* (a waiting
//!    writer blocks new readers, as in Go); else queue and park.
//! 2. `write`: granted at once if nobody is active; else queue and park.
//! 3. Last reader out: hand the lock to the oldest queued writer.
//! 4. Writer out: admit *all* queued readers if any (so a stream of writers
//!    cannot starve readers; Go does the same), else the next writer.
//!
//! Grants are hand-offs: the releaser updates the counts and fires the
//! waiter's signal, so a woken waiter already owns its share.
//!
//! # The data cell
//!
//! As for [`Mutex`](super::Mutex): `sync` forbids `unsafe`, so the data
//! sits in a `parking_lot::RwLock<T>` that is only ever `try_read` /
//! `try_write`-locked by a party our state already admitted (always
//! uncontended: readers drop their inner guard before leaving our state,
//! so an admitted writer finds it free). No poisoning.
#![forbid(unsafe_code)]

use super::mutex::Signal;
use parking_lot::Mutex as PlMutex;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

#[derive(Debug, Default)]
struct RwState {
    readers: usize,
    writer: bool,
    writers: VecDeque<Arc<Signal>>,
    readers_q: Vec<Arc<Signal>>,
}

/// A reader-writer lock protecting a `T` (Go's `sync.RWMutex`); blocking
/// parks the goroutine or blocks the thread. A queued writer blocks new
/// readers; a departing writer admits the queued readers first.
///
/// ```
/// let l = gort_runtime::sync::RwLock::new(1);
/// {
///     let a = l.read();
///     let b = l.read();
///     assert_eq!(*a + *b, 2);
///     assert!(l.try_write().is_none());
/// }
/// *l.write() += 1;
/// assert_eq!(l.into_inner(), 2);
/// ```
pub struct RwLock<T: ?Sized> {
    /// Protected by: its own lock.
    state: PlMutex<RwState>,
    /// Protected by: `state` (only admitted parties `try_*` it).
    data: parking_lot::RwLock<T>,
}

/// Shared access; released on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    data: Option<parking_lot::RwLockReadGuard<'a, T>>,
}

/// Exclusive access; released on drop.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    data: Option<parking_lot::RwLockWriteGuard<'a, T>>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            state: PlMutex::new(RwState {
                readers: 0,
                writer: false,
                writers: VecDeque::new(),
                readers_q: Vec::new(),
            }),
            data: parking_lot::RwLock::new(value),
        }
    }

    /// Consumes the lock, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, parking while a writer is active or queued.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        let sig = {
            let mut st = self.state.lock();
            if !st.writer && st.writers.is_empty() {
                st.readers += 1;
                None
            } else {
                let s = Signal::new();
                st.readers_q.push(s.clone());
                Some(s)
            }
        };
        if let Some(s) = sig {
            s.wait(crate::sched::park::WaitReason::RwLockRLock); // granted: `readers` already counts us
        }
        self.read_guard()
    }

    /// Shared access if available right now.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        {
            let mut st = self.state.lock();
            if st.writer || !st.writers.is_empty() {
                return None;
            }
            st.readers += 1;
        }
        Some(self.read_guard())
    }

    /// Exclusive access, parking while anyone else holds the lock.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        let sig = {
            let mut st = self.state.lock();
            if !st.writer && st.readers == 0 {
                st.writer = true;
                None
            } else {
                let s = Signal::new();
                st.writers.push_back(s.clone());
                Some(s)
            }
        };
        if let Some(s) = sig {
            s.wait(crate::sched::park::WaitReason::RwLockLock); // granted: `writer` already set for us
        }
        self.write_guard()
    }

    /// Exclusive access if available right now.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        {
            let mut st = self.state.lock();
            if st.writer || st.readers != 0 {
                return None;
            }
            st.writer = true;
        }
        Some(self.write_guard())
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        match self.data.try_read() {
            Some(g) => RwLockReadGuard {
                lock: self,
                data: Some(g),
            },
            None => {
                panic!("gort: sync::RwLock data cell busy for an admitted reader (runtime bug)")
            }
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        match self.data.try_write() {
            Some(g) => RwLockWriteGuard {
                lock: self,
                data: Some(g),
            },
            None => {
                panic!("gort: sync::RwLock data cell busy for an admitted writer (runtime bug)")
            }
        }
    }

    fn read_unlock(&self) {
        let next = {
            let mut st = self.state.lock();
            st.readers -= 1;
            if st.readers == 0 {
                let w = st.writers.pop_front();
                if w.is_some() {
                    st.writer = true;
                }
                w
            } else {
                None
            }
        };
        if let Some(w) = next {
            w.fire(1);
        }
    }

    fn write_unlock(&self) {
        let (readers, writer) = {
            let mut st = self.state.lock();
            st.writer = false;
            if !st.readers_q.is_empty() {
                let rs = std::mem::take(&mut st.readers_q);
                st.readers += rs.len();
                (rs, None)
            } else {
                let w = st.writers.pop_front();
                if w.is_some() {
                    st.writer = true;
                }
                (Vec::new(), w)
            }
        };
        for r in readers {
            r.fire(1);
        }
        if let Some(w) = writer {
            w.fire(1);
        }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.data.take());
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.data.take());
        self.lock.write_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data.as_ref().expect("guard holds the data")
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data.as_ref().expect("guard holds the data")
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data.as_mut().expect("guard holds the data")
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
