//! A waiting channel operation's landing slot (Go: `sudog.elem`, which
//! points at the parked receiver's stack so the sender writes the value
//! straight there, and `sg.success`, which tells a parked sender how its
//! send ended).
//!
//! A plain channel send or receive that has to wait puts a [`Landing`] on
//! its own stack, pinned, and queues the unique writer handle
//! ([`LandingRef`]) in its entry. Whoever completes it (the other side, or
//! the last sender's or receiver's drop) [`fill`](LandingRef::fill)s it
//! under the channel lock and then wakes the waiter: a receiver gets its
//! value (`None`: disconnected), a sender `None` (taken) or its value back
//! (no receivers left). The waiter reads the result with
//! [`Landing::take`] once it sees `done`, without taking the lock again:
//! one lock round trip (two atomic read-modify-writes) less per woken wait
//! than leaving the result in the channel for it to collect.
//!
//! # Protocol (what makes the raw pointer sound)
//!
//! - **One writer.** `arm` hands out the only `LandingRef` (it is not
//!   `Clone`); `fill` consumes it and is the only code that writes
//!   `value`, once, then stores `done` (Release). After that store the
//!   writer never touches the landing again.
//! - **The owner reads only after `done`** (Acquire), so the write happens
//!   before the read; or, having taken the handle back ([`Landing::disarm`],
//!   e.g. on timeout), it knows nobody can write any more.
//! - **The landing outlives its handle.** It is pinned (it cannot move while
//!   the handle points at it), and its `Drop` checks that it is not armed
//!   with the value still outstanding: if it is (the owner's frame is being
//!   left with a handle still queued, which the channel code never does),
//!   the process aborts with a message rather than let a later `fill` write
//!   into a dead frame. A goroutine abandoned at shutdown never drops its
//!   frame: its stack is leaked, not freed (`coro`), so a late `fill` still
//!   writes into live memory nobody reads.
//! - `Landing` is not `Sync`: only its owner holds references to it. The
//!   writer reaches the two fields it may touch (`value`, `done`) through
//!   the raw pointer, never through a `&Landing`.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a waiting channel operation's result lands. Owned by the waiter,
/// pinned on its stack; see the module docs.
pub(crate) struct Landing<T> {
    /// Atomic: Release by `fill` after writing `value`; Acquire by the owner.
    done: AtomicBool,
    /// Written once by the handle's `fill` (before `done`), read by the
    /// owner (after `done`). What `None` and `Some` mean is the channel's
    /// (module docs).
    value: UnsafeCell<Option<T>>,
    /// Owner only: a handle is out (armed, not yet taken back or read).
    armed: Cell<bool>,
    _pinned: PhantomPinned,
}

/// The unique right to fill one [`Landing`]: queued in a channel's wait
/// queue while its owner waits.
pub(crate) struct LandingRef<T> {
    ptr: NonNull<Landing<T>>,
}

// SAFETY: a `LandingRef` moves a `T` (in `fill`) to the landing's owner,
// possibly on another thread; that is sound when `T: Send`. The handle only
// touches the landing's atomic `done` and the `value` cell that the
// protocol gives it exclusively (module docs).
unsafe impl<T: Send> Send for LandingRef<T> {}

impl<T> fmt::Debug for LandingRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LandingRef").field(&self.ptr).finish()
    }
}

impl<T> fmt::Debug for Landing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Landing")
            .field("done", &self.done.load(Ordering::Relaxed))
            .field("armed", &self.armed.get())
            .finish()
    }
}

impl<T> Landing<T> {
    pub(crate) fn new() -> Landing<T> {
        Landing {
            done: AtomicBool::new(false),
            value: UnsafeCell::new(None),
            armed: Cell::new(false),
            _pinned: PhantomPinned,
        }
    }

    /// The one writer handle.
    ///
    /// # Panics
    ///
    /// If a handle is already out or the landing was filled before.
    pub(crate) fn arm(self: Pin<&Self>) -> LandingRef<T> {
        assert!(
            !self.armed.get() && !self.done.load(Ordering::Relaxed),
            "gort: a landing is armed once"
        );
        self.armed.set(true);
        LandingRef {
            ptr: NonNull::from(self.get_ref()),
        }
    }

    /// What the handle filled in, once it has (`Some`); `None` while not
    /// filled yet.
    pub(crate) fn take(&self) -> Option<Option<T>> {
        if !self.done.load(Ordering::Acquire) {
            // Pairs with the Release store in `fill`.
            return None;
        }
        self.armed.set(false);
        // SAFETY: `done` is set, so `fill` has finished writing `value`
        // (its Release store, our Acquire load) and will never touch the
        // landing again; only the owner holds a `&Landing` (it is not
        // `Sync`), and `take` is not reentrant, so this is the only access.
        Some(unsafe { (*self.value.get()).take() })
    }

    /// Takes the handle back unfilled (the owner found it still queued):
    /// nobody can write to the landing any more.
    ///
    /// # Panics
    ///
    /// If `r` is not this landing's handle.
    pub(crate) fn disarm(&self, r: LandingRef<T>) {
        assert!(
            std::ptr::eq(r.ptr.as_ptr().cast_const(), self),
            "gort: disarm with another landing's handle"
        );
        self.armed.set(false);
    }
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        if self.armed.get() && !self.done.load(Ordering::Acquire) {
            // A handle is still out and may write here after this frame is
            // gone. The channel code never leaves a wait this way; if it
            // ever did, stopping is the only sound option.
            eprintln!(
                "fatal error: gort: a channel operation left its wait with its landing still queued\n\
                 (a runtime bug: please report it)"
            );
            std::process::abort();
        }
    }
}

impl<T> LandingRef<T> {
    /// Lands `v` and releases the owner,
    /// who may leave at once: the caller must not rely on the landing
    /// afterwards (it wakes the owner through its own handle on the
    /// waiter).
    pub(crate) fn fill(self, v: Option<T>) {
        let p = self.ptr.as_ptr();
        // SAFETY: the landing is alive: its owner keeps it (pinned) until
        // it has seen `done` or taken this handle back. The place is
        // reached through the raw pointer (no `&Landing` is made).
        let cell = unsafe { &(*p).value }.get();
        // SAFETY: this handle is unique and consumed here, so this is the
        // one write to `value`, and the owner does not read it before our
        // `done` store below (nor write it at all).
        unsafe { *cell = v };
        // SAFETY: as above, the landing is alive until this store is seen;
        // `done` is an atomic, shared with the owner by design.
        let done = unsafe { &(*p).done };
        done.store(true, Ordering::Release); // pairs with Acquire in `take`
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_value_filled_on_another_thread_lands() {
        let landing = std::pin::pin!(Landing::<String>::new());
        let r = landing.as_ref().arm();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let r: LandingRef<String> = rx.recv().unwrap();
            r.fill(Some("hello".to_string()));
        });
        assert!(landing.take().is_none(), "nothing before the fill");
        tx.send(r).unwrap();
        let v = loop {
            if let Some(v) = landing.take() {
                break v;
            }
            std::thread::yield_now();
        };
        t.join().unwrap();
        assert_eq!(v.as_deref(), Some("hello"));
    }

    #[test]
    fn disconnected_lands_as_none() {
        let landing = std::pin::pin!(Landing::<u8>::new());
        landing.as_ref().arm().fill(None);
        assert_eq!(landing.take(), Some(None));
    }

    #[test]
    fn a_disarmed_landing_drops_quietly_and_its_value_is_dropped_once() {
        let landing = std::pin::pin!(Landing::<Vec<u8>>::new());
        let r = landing.as_ref().arm();
        landing.disarm(r);
        let filled = std::pin::pin!(Landing::<Vec<u8>>::new());
        filled.as_ref().arm().fill(Some(vec![1, 2, 3]));
        // Dropped with the value still inside (never taken): Miri checks
        // it is freed once, not leaked.
    }

    #[test]
    #[should_panic(expected = "armed once")]
    fn a_landing_is_armed_once() {
        let landing = std::pin::pin!(Landing::<u8>::new());
        let r = landing.as_ref().arm();
        r.fill(Some(1));
        let _ = landing.as_ref().arm();
    }
}
