//! Channels with Go's semantics and crossbeam-channel 0.5's API shape
//! (Go: `runtime/chan.go`, `runtime/select.go`). Full notes:
//! `docs/design/chan.md`.
//!
//! # Concepts
//!
//! - A channel (`Chan`, Go `hchan`) is one `SpinMutex<State>` (`spinlock.rs`)
//!   (never held across a park): a `VecDeque` buffer, FIFO queues of
//!   waiting senders and receivers (`Entry`, Go `sudog`), the sender and
//!   receiver counts, `pending`: select results, keyed by their op id,
//!   each with the completed entry's op reference, and `spare`: the ops
//!   of completed plain waits, kept for their owners' next wait.
//! - An `Op` is one blocking operation (a plain send/recv, or a whole
//!   select): a `selected` word (`NONE` → the index of the case that fired,
//!   or `ABORT` on timeout), a `done` flag and the `Waiter` to wake.
//!
//! # Algorithm
//!
//! 1. Send: under the lock, if a live receiver waits, claim it (CAS its
//!    `selected`) and hand the value over directly (rendezvous, also for
//!    capacity 0); else push to the buffer if there is room; else enqueue an
//!    entry holding the value and park until `done`.
//! 2. Receive: pop the buffer (and refill it from the oldest waiting sender,
//!    as Go does), else take the value of the oldest waiting sender, else
//!    report disconnection, else enqueue and park.
//! 3. Disconnect: the last `Sender` dropped completes every waiting receiver
//!    with "disconnected" (they drain the buffer first); the last
//!    `Receiver` dropped fails every waiting sender, returning its value.
//! 4. Select (Go `selectgo`): poll the cases in a uniformly random order and
//!    take the first ready one (so the choice is uniform among the ready);
//!    else register an entry on every channel (all sharing one `Op`), park,
//!    and deregister. The first channel to CAS the op's `selected` wins.
//!    While registering, a case that turns ready first claims its own op;
//!    if the counterpart vanished meanwhile the select restarts.
//! 5. crossbeam's API supplies a selected send's value after selection, so a
//!    select send entry holds no value. A receiver that claims one hands it
//!    a `SendTo(receiver entry)`; the sender's `SelectedOperation::send`
//!    completes the receiver. A buffered one gets a reserved slot instead.
//!    Except in `select!`, when the value is a literal, `()` or a variable
//!    of a `Copy` type (`__SendCase`): evaluating it up front is then
//!    invisible, so its entries carry a copy and it sends as a plain
//!    sender does (Go's `sudog.elem`); the taker marks the op
//!    `delivered` instead of leaving a result in `pending`.
//!
//! # Race protocol
//!
//! Entries are claimed (CAS on `selected`; a plain entry has no other
//! claimant) and completed under the lock of the channel holding the
//! entry: a select's result and the entry's op reference are pushed to
//! `pending` and its `done` released; a plain waiter's result is stored in
//! its landing (`crate::landing`, Go's `sudog.elem`: a slot on its own
//! stack) and the landing's `done` released; then the waiter is woken.
//!
//! A plain send or receive gives its op to its entry (no reference-count
//! traffic) and, after every wake-up, reads its landing without the lock;
//! the completer leaves the op in `spare`, where its next wait here takes
//! it back. A wake-up that comes before it parks is recorded by the park
//! word, and spurious ones just loop. It times out by removing its entry
//! under the lock (and taking its landing's handle back): if the entry is
//! gone, it was claimed, and the result is in the landing or (a receiver
//! paired with a select sender that has not supplied its value) will be,
//! so it waits on. A select's op is shared by its entries; its owner waits
//! on `done` (Acquire) before reading a result, and times out by CASing
//! `ABORT`. Either way a value is never lost.
#![forbid(unsafe_code)]

#[allow(clippy::module_inception)]
mod chan;
mod select;
mod timer;

pub use chan::{IntoIter, Iter, Receiver, Sender, TryIter, bounded, never, unbounded};
pub use select::{
    __Perm, __SendCase, __SendEager, __SendLazy, __SendProbe, __UpFront, __send_probe, Select,
    SelectedOperation,
};
pub use timer::{after, at, tick};

use std::fmt;

/// The channel is disconnected: the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Why a `try_send` failed.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or no receiver waits on a zero-capacity channel).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why a `send_timeout` failed.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The deadline passed.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// The channel is empty and disconnected.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Why a `try_recv` failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Empty and every sender is gone.
    Disconnected,
}

/// Why a `recv_timeout` failed.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The deadline passed.
    Timeout,
    /// Empty and every sender is gone.
    Disconnected,
}

/// No case was ready for `try_select`.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// No case became ready before the deadline.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

/// No case was ready for `try_ready`.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TryReadyError;

/// No case became ready before the deadline.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct ReadyTimeoutError;

impl<T> SendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }
    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// Whether the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    /// Whether the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl TryRecvError {
    /// Whether nothing was available.
    pub fn is_empty(&self) -> bool {
        *self == TryRecvError::Empty
    }
    /// Whether the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        *self == TryRecvError::Disconnected
    }
}

impl RecvTimeoutError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        *self == RecvTimeoutError::Timeout
    }
    /// Whether the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        *self == RecvTimeoutError::Disconnected
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SendError { .. }")
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.pad("Full(..)"),
            TrySendError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.pad("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.pad("Disconnected(..)"),
        }
    }
}

macro_rules! display {
    ($($t:ty => $s:expr),* $(,)?) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad($s)
            }
        }
        impl std::error::Error for $t {}
    )*};
}

display! {
    RecvError => "receiving on an empty and disconnected channel",
    TrySelectError => "all operations in select would block",
    SelectTimeoutError => "timed out waiting on select",
    TryReadyError => "all operations in select would block",
    ReadyTimeoutError => "timed out waiting on ready",
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            TryRecvError::Empty => "receiving on an empty channel",
            TryRecvError::Disconnected => "receiving on an empty and disconnected channel",
        })
    }
}
impl std::error::Error for TryRecvError {}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            RecvTimeoutError::Timeout => "timed out waiting on receive operation",
            RecvTimeoutError::Disconnected => "channel is empty and disconnected",
        })
    }
}
impl std::error::Error for RecvTimeoutError {}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("sending on a disconnected channel")
    }
}
impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            TrySendError::Full(_) => "sending on a full channel",
            TrySendError::Disconnected(_) => "sending on a disconnected channel",
        })
    }
}
impl<T> std::error::Error for TrySendError<T> {}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            SendTimeoutError::Timeout(_) => "timed out waiting on send operation",
            SendTimeoutError::Disconnected(_) => "sending on a disconnected channel",
        })
    }
}
impl<T> std::error::Error for SendTimeoutError<T> {}

/// Go's `select` statement, in crossbeam-channel's syntax: `recv(r) -> msg
/// => body`, `send(s, v) -> res => body`, and at most one `default =>
/// body` (never blocks) or `default(timeout) => body`. Among the ready
/// cases one is chosen uniformly at random. Up to 32 cases.
///
/// A send's value `v` is evaluated only if its case is chosen
/// (crossbeam's rule, so it may be moved in one arm and used in another),
/// except that a literal, `()` or a variable of a `Copy` type is copied
/// up front, where that cannot be told apart: a receiver then takes the
/// value from a parked select without waiting for its goroutine to run
/// (Go evaluates every send value on entry).
///
/// ```
/// use gort_runtime::chan::{bounded, select};
/// let (s, r) = bounded::<i32>(1);
/// let got = select! {
///     recv(r) -> msg => msg.ok(),
///     default => None,
/// };
/// assert_eq!(got, None);
/// select! {
///     send(s, 5) -> res => res.unwrap(),
/// }
/// assert_eq!(r.recv(), Ok(5));
/// ```
#[macro_export]
macro_rules! select {
    ($($t:tt)*) => {
        $crate::__gort_select!(@start fair $($t)*)
    };
}

/// [`select!`] with a biased choice (crossbeam-channel's `select_biased!`):
/// when several cases are ready, the first in source order is chosen,
/// also on a `default` or `default(timeout)` select. Go has no such form;
/// use it where one case must win ties (a shutdown signal over work).
/// The syntax is `select!`'s.
///
/// ```
/// use gort_runtime::chan::{bounded, select_biased};
/// let (s1, r1) = bounded::<i32>(1);
/// let (s2, r2) = bounded::<i32>(1);
/// s1.send(1).unwrap();
/// s2.send(2).unwrap();
/// // Both are ready: the first case wins, every time.
/// let got = select_biased! {
///     recv(r1) -> v => v.unwrap(),
///     recv(r2) -> v => v.unwrap(),
/// };
/// assert_eq!(got, 1);
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($t:tt)*) => {
        $crate::__gort_select!(@start biased $($t)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gort_select {
    // ---- parsing: mode (cases) (default) (free identifiers) tokens ----
    // The mode is `fair` (`select!`: a random order) or `biased`
    // (`select_biased!`: source order); the 32 identifiers name the cases.
    (@start $m:tt $($t:tt)*) => {
        $crate::__gort_select!(@parse $m () () (
            __c0 __c1 __c2 __c3 __c4 __c5 __c6 __c7 __c8 __c9 __c10 __c11 __c12 __c13
            __c14 __c15 __c16 __c17 __c18 __c19 __c20 __c21 __c22 __c23 __c24 __c25
            __c26 __c27 __c28 __c29 __c30 __c31
        ) $($t)*)
    };
    // A comma after a block arm (optional, as in crossbeam) is skipped here,
    // not in the block rules: `$b:block $(,)? $($rest:tt)*` was ambiguous.
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) , $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)*) ($($d)*) ($($ids)*) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) recv($r:expr) -> $($rest:tt)*) => {
        $crate::__gort_select!(@case $m ($($c)*) ($($d)*) ($($ids)*) recv ($r) $($rest)*)
    };
    // A send whose value is a literal, `()` or a variable is `sendv`: its
    // value may be taken up front (if `Copy`: see `__SendCase`); any
    // other expression is evaluated only if its case is chosen.
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) send($s:expr, $v:literal) -> $($rest:tt)*) => {
        $crate::__gort_select!(@case $m ($($c)*) ($($d)*) ($($ids)*) sendv ($s, $v) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) send($s:expr, $v:ident) -> $($rest:tt)*) => {
        $crate::__gort_select!(@case $m ($($c)*) ($($d)*) ($($ids)*) sendv ($s, $v) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) send($s:expr, ()) -> $($rest:tt)*) => {
        $crate::__gort_select!(@case $m ($($c)*) ($($d)*) ($($ids)*) sendv ($s, ()) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*) send($s:expr, $v:expr) -> $($rest:tt)*) => {
        $crate::__gort_select!(@case $m ($($c)*) ($($d)*) ($($ids)*) send ($s, $v) $($rest)*)
    };
    // A case's pattern and body: a block (comma optional), or an
    // expression followed by a comma or the end.
    (@case $m:tt ($($c:tt)*) ($($d:tt)*) ($id:ident $($ids:ident)*) $kind:ident ($($a:tt)*)
        $p:pat => $b:block $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)* [$kind $id ($($a)*) $p, $b]) ($($d)*) ($($ids)*) $($rest)*)
    };
    (@case $m:tt ($($c:tt)*) ($($d:tt)*) ($id:ident $($ids:ident)*) $kind:ident ($($a:tt)*)
        $p:pat => $b:expr, $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)* [$kind $id ($($a)*) $p, ($b)]) ($($d)*) ($($ids)*) $($rest)*)
    };
    (@case $m:tt ($($c:tt)*) ($($d:tt)*) ($id:ident $($ids:ident)*) $kind:ident ($($a:tt)*)
        $p:pat => $b:expr) => {
        $crate::__gort_select!(@parse $m ($($c)* [$kind $id ($($a)*) $p, ($b)]) ($($d)*) ($($ids)*))
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default => $b:block $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)*) (now $b) ($($ids)*) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default => $b:expr, $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)*) (now ($b)) ($($ids)*) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default => $b:expr) => {
        $crate::__gort_select!(@parse $m ($($c)*) (now ($b)) ($($ids)*))
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default($t:expr) => $b:block $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)*) (timeout ($t) $b) ($($ids)*) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default($t:expr) => $b:expr, $($rest:tt)*) => {
        $crate::__gort_select!(@parse $m ($($c)*) (timeout ($t) ($b)) ($($ids)*) $($rest)*)
    };
    (@parse $m:tt ($($c:tt)*) () ($($ids:ident)*) default($t:expr) => $b:expr) => {
        $crate::__gort_select!(@parse $m ($($c)*) (timeout ($t) ($b)) ($($ids)*))
    };
    (@parse $m:tt ($($c:tt)*) ($($d:tt)*) ($($ids:ident)*)) => {
        $crate::__gort_select!(@emit $m ($($c)*) ($($d)*))
    };
    // ---- emitting ----
    // One receive case with `default`: a non-blocking receive, as Go
    // compiles it (`selectnbrecv`); alone, a plain receive.
    (@emit $m:tt ([recv $id:ident ($r:expr) $p:pat, $b:tt]) (now $d:tt)) => {{
        match $crate::chan::__try_recv_case(&$r) {
            ::core::option::Option::Some(__res) => match __res {
                $p => $b,
            },
            ::core::option::Option::None => $d,
        }
    }};
    (@emit $m:tt ([recv $id:ident ($r:expr) $p:pat, $b:tt]) ()) => {{
        match $crate::chan::Receiver::recv(&$r) {
            $p => $b,
        }
    }};
    // One send case with `default`: if the channel's hint says a send
    // would block, `default` at once (lock-free, as Go's `selectnbsend`);
    // else the general path (the value is still evaluated only if the
    // case is chosen).
    (@emit $m:tt ([$kind:ident $id:ident ($s:expr, $v:expr) $p:pat, $b:tt]) (now $d:tt)) => {{
        let $id: &$crate::chan::Sender<_> = &$s;
        if $crate::chan::__send_would_block($id) {
            $d
        } else {
            $crate::__gort_select!(@general $m ([$kind $id (*$id, $v) $p, $b]) (now $d))
        }
    }};
    // Only receive cases: a typed first pass, each case tried once with
    // `try_recv` in a random order (one lock per ready case, no op); if
    // none is ready, `default`, or the general `Select` (which polls
    // again, then registers and parks). Results go to per-case slots and
    // the bodies run outside the loop, so a `break` in a body still means
    // the caller's loop.
    (@emit $m:tt ($([recv $id:ident ($r:expr) $p:pat, $b:tt])+) ($($d:tt)*)) => {{
        let mut __n = 0usize;
        $(
            let $id: &$crate::chan::Receiver<_> = &$r;
            let mut $id = ($id, __n, ::core::option::Option::None);
            __n += 1;
        )+
        for &__i in $crate::__gort_select!(@perm $m __n).order() {
            let __i = usize::from(__i);
            $(
                if __i == $id.1 {
                    $id.2 = $crate::chan::__try_recv_case($id.0);
                    if $id.2.is_some() {
                        break;
                    }
                    continue;
                }
            )+
        }
        $(
            if let ::core::option::Option::Some(__res) = $id.2.take() {
                match __res {
                    $p => $b,
                }
            } else
        )+
        {
            $crate::__gort_select!(@recvs_block $m ($([$id $p, $b])+) ($($d)*))
        }
    }};
    (@recvs_block $m:tt ($([$id:ident $p:pat, $b:tt])+) (now $d:tt)) => { $d };
    (@recvs_block $m:tt ($([$id:ident $p:pat, $b:tt])+) ($($d:tt)*)) => {
        $crate::__gort_select!(@general $m ($([recv $id ($id.0) $p, $b])+) ($($d)*))
    };
    (@emit $m:tt $($t:tt)*) => {
        $crate::__gort_select!(@general $m $($t)*)
    };
    (@general $m:tt ($([$kind:ident $id:ident ($($args:tt)*) $p:pat, $b:tt])*) ($($d:tt)*)) => {{
        // Every channel (and up-front value) in source order, as Go
        // evaluates them, before the `Select` that borrows them.
        $( $crate::__gort_select!(@bind $kind $id ($($args)*)); )*
        let mut __sel = $crate::__gort_select!(@select $m);
        $( $crate::__gort_select!(@add __sel $kind $id); )*
        let __oper = $crate::__gort_select!(@run __sel $($d)*);
        match __oper {
            ::core::option::Option::None => $crate::__gort_select!(@default $($d)*),
            ::core::option::Option::Some(__oper) => {
                let __i = __oper.index();
                $( if __i == $id.1 {
                    $crate::__gort_select!(@complete __oper $kind $id ($($args)*) $p, $b)
                } else )* {
                    ::core::unreachable!()
                }
            }
        }
    }};
    // `select!` (fair: a random order) or `select_biased!` (case order).
    (@perm fair $n:ident) => { $crate::chan::__Perm::new($n) };
    (@perm biased $n:ident) => { $crate::chan::__Perm::identity($n) };
    (@select fair) => { $crate::chan::Select::new() };
    (@select biased) => { $crate::chan::Select::new_biased() };
    (@bind recv $id:ident ($r:expr)) => {
        let $id: &$crate::chan::Receiver<_> = &$r;
    };
    (@bind send $id:ident ($s:expr, $v:expr)) => {
        let $id: &$crate::chan::Sender<_> = &$s;
        let $id = $crate::chan::__SendCase::new($id, ::core::option::Option::None);
    };
    (@bind sendv $id:ident ($s:expr, $v:expr)) => {
        let $id: &$crate::chan::Sender<_> = &$s;
        let $id = $crate::chan::__SendCase::new($id, {
            #[allow(unused_imports)]
            use $crate::chan::{__SendEager as _, __SendLazy as _};
            (&$crate::chan::__send_probe($id, &$v)).__value()
        });
    };
    (@add $sel:ident recv $id:ident) => {
        let $id = ($id, $sel.recv($id));
    };
    (@add $sel:ident $send:ident $id:ident) => {
        let $id = ($id.sender(), $sel.__send_case(&$id));
    };
    (@run $sel:ident) => { ::core::option::Option::Some($sel.select()) };
    (@run $sel:ident now $b:tt) => { $sel.try_select().ok() };
    (@run $sel:ident timeout ($t:expr) $b:tt) => { $sel.select_timeout($t).ok() };
    (@default) => { ::core::unreachable!() };
    (@default now $b:tt) => { $b };
    (@default timeout ($t:expr) $b:tt) => { $b };
    (@complete $oper:ident recv $id:ident ($r:expr) $p:pat, $b:tt) => {
        match $oper.recv($id.0) {
            $p => $b,
        }
    };
    (@complete $oper:ident $send:ident $id:ident ($s:expr, $v:expr) $p:pat, $b:tt) => {
        match $oper.send($id.0, $v) {
            $p => $b,
        }
    };
}

pub use crate::{select, select_biased};

/// `select!`'s one send case with `default`: whether the send would block
/// now (lock-free; `false` means only "maybe not").
#[doc(hidden)]
#[inline]
pub fn __send_would_block<T>(s: &Sender<T>) -> bool {
    s.chan.send_would_block()
}

/// `select!`'s receive case, tried once: `Some` with the case's result
/// when it is ready (a value, or `Err` once disconnected), `None` when it
/// would block (decided lock-free when the channel's hint says so, as
/// Go's `selectnbrecv`).
#[doc(hidden)]
#[inline]
pub fn __try_recv_case<T>(r: &Receiver<T>) -> Option<Result<T, RecvError>> {
    match r.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvError)),
        Err(TryRecvError::Empty) => None,
    }
}
