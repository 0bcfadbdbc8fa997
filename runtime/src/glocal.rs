//! Goroutine-local storage: [`goroutine_local!`](crate::goroutine_local).
//!
//! Thread-locals follow the OS thread (the M), not the goroutine, and a
//! goroutine may move to another M at every blocking call (see
//! docs/design/soundness.md). Goroutine-locals follow the goroutine:
//!
//! 1. each G owns a `Locals` map from key (the address of the
//!    `GoroutineLocal` static) to a boxed value, created lazily by the first
//!    `with` in that goroutine;
//! 2. `with` looks the box up under the map's lock, releases the lock, and
//!    lends `&T` for the closure — the box's address is stable (values are
//!    never removed or moved while the goroutine runs), so the closure may
//!    block, yield, migrate, or use other goroutine-locals;
//! 3. when the goroutine's body returns, its values are dropped — still on
//!    the goroutine, so their destructors may block like any goroutine code
//!    (the G is then reused with an empty map).
//!
//! On a plain thread (not a goroutine) the same keys fall back to a
//! per-thread map, like `thread_local!`.
//!
//! Values must be `Send` (the goroutine, and so the value, may be used from
//! several OS threads over its life) and `'static`.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

/// One goroutine's (or one plain thread's) values, by key.
///
/// # Fields
/// - `map`: boxes are inserted, never removed until `clear`.
#[derive(Default)]
pub(crate) struct Locals {
    map: parking_lot::Mutex<HashMap<usize, Box<dyn Any + Send>>>,
}

impl std::fmt::Debug for Locals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locals")
            .field("keys", &self.map.lock().len())
            .finish()
    }
}

impl Locals {
    /// Runs `f` with the value for `key`, creating it with `init` first.
    ///
    /// The owner contract: only the goroutine (or thread) this map belongs
    /// to calls `get_or_init`, and `clear` is called only when it is not
    /// inside `get_or_init`'s callback.
    fn get_or_init<T: Any + Send, R>(
        &self,
        key: usize,
        init: fn() -> T,
        f: impl FnOnce(&T) -> R,
    ) -> R {
        let p: *const T = {
            let mut m = self.map.lock();
            let b = m.entry(key).or_insert_with(|| Box::new(init()));
            b.downcast_ref::<T>()
                .expect("goroutine_local: key type mismatch") as *const T
        };
        // SAFETY: `p` points into a `Box` owned by `self.map`. Boxes are
        // never removed or replaced while the owner runs (only `clear`
        // removes them, after the goroutine returned, so never during this
        // call), and inserting other keys moves only the `Box` pointers in
        // the map, not the boxed values. So `*p` stays valid and unaliased
        // by any `&mut` for the whole of `f`.
        f(unsafe { &*p })
    }

    /// Drops every value (the goroutine exited).
    pub(crate) fn clear(&self) {
        let old = std::mem::take(&mut *self.map.lock());
        drop(old); // outside the lock: destructors may use other locals
    }
}

/// Drops the running goroutine's values (end of its body, on the
/// goroutine: destructors may block).
pub(crate) fn clear_current() {
    if let Some(lp) = crate::sched::g::with_current_locals(|l| l as *const Locals) {
        // SAFETY: the running goroutine's own `Locals`, owned by its G,
        // which stays alive while the goroutine runs (see `with`); no
        // `with` borrow is active (the body has returned).
        unsafe { &*lp }.clear();
    }
}

thread_local! {
    /// The fallback map for plain threads.
    static THREAD_LOCALS: RefCell<Option<Box<Locals>>> = const { RefCell::new(None) };
}

/// A goroutine-local key, made by [`goroutine_local!`](crate::goroutine_local).
#[derive(Debug)]
pub struct GoroutineLocal<T: 'static> {
    #[doc(hidden)]
    pub init: fn() -> T,
}

impl<T: Any + Send> GoroutineLocal<T> {
    /// Runs `f` with this goroutine's value, initialising it on first use.
    /// On a plain thread, the thread's own value.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let mine = crate::sched::g::with_current_locals(|l| l as *const Locals);
        let lp = match mine {
            Some(l) => l,
            None => THREAD_LOCALS.with(|t| {
                let mut t = t.borrow_mut();
                &**t.get_or_insert_with(|| Box::new(Locals::default())) as *const Locals
            }),
        };
        // SAFETY: `lp` is either the running goroutine's own `Locals`, owned
        // by its G, which outlives the goroutine's execution (the G is
        // reused only after the goroutine returned, and `clear` runs then);
        // or this thread's `Locals` box, created once and alive until the
        // thread exits, after any `with` on it.
        let l = unsafe { &*lp };
        l.get_or_init(key, self.init, f)
    }
}

/// Declares goroutine-local statics (like `thread_local!`, but per
/// goroutine: the value follows the goroutine across OS threads).
///
/// ```
/// gort_runtime::goroutine_local! {
///     static COUNT: std::cell::Cell<u32> = std::cell::Cell::new(0);
/// }
/// gort_runtime::run(|| {
///     COUNT.with(|c| c.set(c.get() + 1));
///     let other = gort_runtime::go(|| COUNT.with(|c| c.get())).join().unwrap();
///     assert_eq!(other, 0, "each goroutine has its own");
///     assert_eq!(COUNT.with(|c| c.get()), 1);
/// });
/// ```
#[macro_export]
macro_rules! goroutine_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::glocal::GoroutineLocal<$t> =
            $crate::glocal::GoroutineLocal { init: || $init };
        $crate::goroutine_local!($($rest)*);
    };
    () => {};
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    static A: GoroutineLocal<Cell<u32>> = GoroutineLocal {
        init: || Cell::new(1),
    };
    static B: GoroutineLocal<String> = GoroutineLocal {
        init: || String::from("b"),
    };

    #[test]
    fn nested_keys_keep_stable_references() {
        A.with(|a| {
            a.set(a.get() + 1);
            // Inserting another key must not move A's value.
            B.with(|b| assert_eq!(b, "b"));
            a.set(a.get() + 1);
        });
        assert_eq!(A.with(|a| a.get()), 3);
    }

    #[test]
    fn clear_drops_and_resets() {
        let l = Locals::default();
        l.get_or_init(1, || vec![1u8, 2, 3], |v| assert_eq!(v.len(), 3));
        l.get_or_init(2, || 5u64, |v| assert_eq!(*v, 5));
        l.clear();
        l.get_or_init(1, || vec![9u8], |v| assert_eq!(v, &[9]));
    }
}
