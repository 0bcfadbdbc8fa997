//! The network poller (Go: `netpoll.go`, `netpoll_epoll.go`): epoll,
//! edge-triggered, integrated into the scheduler.
//!
//! A file descriptor is registered once ([`register`]) with
//! `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`; its [`PollDesc`] remembers,
//! per direction, whether the fd became ready since the last wait and who
//! waits. I/O code tries the non-blocking operation first and only on
//! `EAGAIN` calls [`PollDesc::wait_read`] / [`PollDesc::wait_write`], which
//! park the goroutine (never the M) until the poller sees readiness, the
//! deadline passes, or the descriptor is closed.
//!
//! The scheduler polls in three places, as Go does:
//! 1. an M about to go idle polls without blocking (`find_runnable`);
//! 2. the last idle M blocks in `epoll_wait` with the next timer as its
//!    timeout (`stopm`), and is interrupted through an eventfd
//!    (`wake_poller`) when a timer moves earlier or the runtime stops;
//! 3. sysmon polls if nobody has for 10 ms.
//!
//! Readiness is recorded even when nobody waits, so an edge that fires
//! between a failed `read` and the wait is not lost.
//!
//! This module owns the `unsafe` of the poller (epoll, eventfd syscalls).

use crate::sched::park::{self, WaitReason, Waiter};
use parking_lot::Mutex;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The process-wide poller.
struct Poller {
    epfd: RawFd,
    evfd: RawFd,
    /// Registered descriptors by slot; the epoll token is `gen << 32 | slot`.
    slots: Mutex<Slots>,
    /// Some M is blocked in `epoll_wait` (a wake-up must write the eventfd).
    blocked: AtomicBool,
    /// Coarse ns of the last poll (sysmon polls after 10 ms without one).
    last_poll: AtomicU64,
}

#[derive(Default)]
struct Slots {
    descs: Vec<Option<Arc<PollDesc>>>,
    free: Vec<usize>,
    generation: u32,
}

static POLLER: OnceLock<Poller> = OnceLock::new();

fn poller() -> io::Result<&'static Poller> {
    if let Some(p) = POLLER.get() {
        return Ok(p);
    }
    // SAFETY: epoll_create1 has no memory preconditions.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd has no memory preconditions.
    let evfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if evfd < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: we own `epfd`.
        unsafe { libc::close(epfd) };
        return Err(e);
    }
    // Level-triggered (as Go's `netpollBreakRd`): a wake-up stays pending
    // until a *blocking* poll reads it. Edge-triggered, a non-blocking poll
    // by another M could take the one edge meant for the blocked poller,
    // which then slept on (the runtime's `stop` waited for it forever).
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: u64::MAX,
    };
    // SAFETY: valid fds and a valid event struct.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, evfd, &mut ev) } < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: we own both fds.
        unsafe { libc::close(epfd) };
        // SAFETY: as above.
        unsafe { libc::close(evfd) };
        return Err(e);
    }
    let p = Poller {
        epfd,
        evfd,
        slots: Mutex::new(Slots::default()),
        blocked: AtomicBool::new(false),
        last_poll: AtomicU64::new(0),
    };
    if let Err(p) = POLLER.set(p) {
        // Another thread won the race: drop ours.
        // SAFETY: we own these fds; nothing else saw them.
        unsafe { libc::close(p.epfd) };
        // SAFETY: as above.
        unsafe { libc::close(p.evfd) };
    }
    Ok(POLLER.get().expect("set above"))
}

/// One direction (read or write) of a descriptor. Several goroutines may
/// wait on one direction (goroutines accepting on one listener); an event
/// wakes them all and each retries its operation (Go serialises them with
/// the fd's mutex instead; waking all is simpler and, with edge-triggered
/// events, never strands a second pending connection).
#[derive(Debug, Default)]
struct Dir {
    ready: bool,
    waiters: Vec<(u64, Waiter)>,
}

impl Dir {
    fn take_all(&mut self) -> Vec<(u64, Waiter)> {
        std::mem::take(&mut self.waiters)
    }
}

static NEXT_WAIT: AtomicU64 = AtomicU64::new(1);

/// A registered descriptor (Go: `pollDesc`).
#[derive(Debug)]
pub struct PollDesc {
    fd: RawFd,
    token: u64,
    state: Mutex<DescState>,
}

#[derive(Debug, Default)]
struct DescState {
    read: Dir,
    write: Dir,
    closing: bool,
}

impl DescState {
    fn dir(&mut self, dir: Interest) -> &mut Dir {
        match dir {
            Interest::Read => &mut self.read,
            Interest::Write => &mut self.write,
        }
    }
}

/// Which way a goroutine waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or closed by the peer, or in error).
    Read,
    /// Writable (or in error).
    Write,
}

/// Registers `fd` (already non-blocking) with the poller.
pub fn register(fd: RawFd) -> io::Result<Arc<PollDesc>> {
    // The poller's locks are taken by scheduler code (the poller M): never
    // freeze a goroutine while it holds one.
    let _np = crate::sched::preempt::NoPreempt::new();
    let p = poller()?;
    let (slot, token, pd) = {
        let mut s = p.slots.lock();
        s.generation = s.generation.wrapping_add(1);
        let generation = s.generation;
        let slot = match s.free.pop() {
            Some(i) => i,
            None => {
                s.descs.push(None);
                s.descs.len() - 1
            }
        };
        let token = (u64::from(generation) << 32) | slot as u64;
        let pd = Arc::new(PollDesc {
            fd,
            token,
            state: Mutex::new(DescState::default()),
        });
        s.descs[slot] = Some(pd.clone());
        (slot, token, pd)
    };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    // SAFETY: `p.epfd` is our epoll fd; `fd` is the caller's open fd; `ev`
    // is a valid event struct.
    if unsafe { libc::epoll_ctl(p.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        let e = io::Error::last_os_error();
        let mut s = p.slots.lock();
        s.descs[slot] = None;
        s.free.push(slot);
        return Err(e);
    }
    Ok(pd)
}

impl PollDesc {
    /// The descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Removes the descriptor from the poller and wakes its waiters (they
    /// see `closed`). Call before closing the fd.
    pub fn deregister(&self) {
        let _np = crate::sched::preempt::NoPreempt::new();
        let ws = {
            let mut st = self.state.lock();
            st.closing = true;
            let mut ws = st.read.take_all();
            ws.append(&mut st.write.take_all());
            ws
        };
        for (_, w) in ws {
            w.wake();
        }
        let Some(p) = POLLER.get() else { return };
        // SAFETY: our epoll fd; removing an fd needs no event struct (Linux
        // ≥ 2.6.9 accepts null).
        unsafe { libc::epoll_ctl(p.epfd, libc::EPOLL_CTL_DEL, self.fd, std::ptr::null_mut()) };
        let slot = (self.token & 0xffff_ffff) as usize;
        let mut s = p.slots.lock();
        if s.descs
            .get(slot)
            .and_then(|d| d.as_ref())
            .is_some_and(|d| d.token == self.token)
        {
            s.descs[slot] = None;
            s.free.push(slot);
        }
    }

    /// Waits until the descriptor may be readable: `Ok` (try the operation
    /// again), `TimedOut` after `deadline`, or an error if it was closed.
    pub fn wait_read(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.wait(Interest::Read, deadline)
    }

    /// Waits until the descriptor may be writable (see [`wait_read`]).
    ///
    /// [`wait_read`]: PollDesc::wait_read
    pub fn wait_write(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.wait(Interest::Write, deadline)
    }

    /// Wakes a waiter of `dir` as if the descriptor became ready (used when
    /// a deadline is moved: the waiter re-reads it).
    pub fn interrupt(&self, dir: Interest) {
        let _np = crate::sched::preempt::NoPreempt::new();
        let ws = {
            let mut st = self.state.lock();
            st.dir(dir).take_all()
        };
        for (_, w) in ws {
            w.wake();
        }
    }

    fn wait(&self, dir: Interest, deadline: Option<Instant>) -> io::Result<()> {
        poller()?;
        let me = NEXT_WAIT.fetch_add(1, Ordering::Relaxed);
        {
            let _np = crate::sched::preempt::NoPreempt::new();
            let mut st = self.state.lock();
            if st.closing {
                return Err(closed_error());
            }
            let d = st.dir(dir);
            if d.ready {
                // An edge arrived since the caller's last try: retry now.
                d.ready = false;
                return Ok(());
            }
            if deadline.is_some_and(|t| Instant::now() >= t) {
                return Err(timed_out());
            }
            d.waiters.push((me, Waiter::current()));
        }
        // Counted in this runtime's scheduler (see `Sched::netpoll_waiters`);
        // a thread outside any runtime is woken by whoever polls.
        let sched = crate::runtime::current_sched();
        if let Some(s) = &sched {
            s.netpoll_waiters.fetch_add(1, Ordering::SeqCst);
        }
        // A blocked poller must learn there is someone to poll for.
        wake_poller();
        match deadline {
            Some(t) => {
                park::park_current_until(t, WaitReason::IoWait);
            }
            None => park::park_current(WaitReason::IoWait),
        }
        if let Some(s) = &sched {
            s.netpoll_waiters.fetch_sub(1, Ordering::SeqCst);
        }
        // Woken by an event, a close, an interrupt, the deadline, or
        // spuriously: leave the list and let the caller retry its operation
        // (it comes back here on EAGAIN).
        let _np = crate::sched::preempt::NoPreempt::new();
        let mut st = self.state.lock();
        let d = st.dir(dir);
        d.waiters.retain(|(id, _)| *id != me);
        if st.closing {
            return Err(closed_error());
        }
        if deadline.is_some_and(|t| Instant::now() >= t) {
            return Err(timed_out());
        }
        Ok(())
    }
}

/// The error of an operation on a closed descriptor (Go's text).
pub(crate) fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "use of closed network connection",
    )
}

/// The error of an operation whose deadline passed (Go's text).
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

/// Coarse ns since the last poll, or 0 if there is no poller.
pub(crate) fn since_last_poll(now: u64) -> u64 {
    POLLER.get().map_or(0, |p| {
        now.saturating_sub(p.last_poll.load(Ordering::Relaxed))
    })
}

/// Interrupts an M blocked in [`poll`] (Go: `netpollBreak`).
pub(crate) fn wake_poller() {
    let Some(p) = POLLER.get() else { return };
    if !p.blocked.load(Ordering::SeqCst) {
        return;
    }
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
    unsafe { libc::write(p.evfd, (&one as *const u64).cast(), 8) };
}

/// Polls once (Go: `netpoll(delay)`): `None` blocks until an event or a
/// [`wake_poller`]; `Some(d)` waits at most `d` (zero: does not block).
/// Wakes every waiter whose descriptor became ready; returns how many.
/// Must not be called inside `with_m`.
pub(crate) fn poll(timeout: Option<Duration>) -> usize {
    poll_inner(|| timeout)
}

/// The blocking poll of the idle M: publishes "a poller is blocked" first,
/// *then* asks `deadline` for the next timer (or for "now", when the
/// runtime is stopping: `Sched::poll_network`), then waits. A timer added
/// concurrently either is seen by `deadline` or sees the flag and writes
/// the eventfd (`wake_poller`): SeqCst on both sides (the flag here, the
/// timer heap's published deadline there), so no wake-up is lost (a test
/// hung on exactly that: a 20 ms sleep added just as the poller blocked
/// with no timeout).
pub(crate) fn poll_until(deadline: impl FnOnce() -> Option<Instant>) -> usize {
    let Some(p) = POLLER.get() else { return 0 };
    p.blocked.store(true, Ordering::SeqCst);
    let n = poll_inner(|| deadline().map(|d| d.saturating_duration_since(Instant::now())));
    // A zero timeout skips `poll_inner`'s own reset: clear the flag here so
    // wakers do not write the eventfd for a poller that is not blocked.
    p.blocked.store(false, Ordering::SeqCst);
    n
}

fn poll_inner(timeout: impl FnOnce() -> Option<Duration>) -> usize {
    let Some(p) = POLLER.get() else { return 0 };
    let timeout = timeout();
    let ms: libc::c_int = match timeout {
        None => -1,
        Some(d) if d.is_zero() => 0,
        // Round up so a short wait does not spin at 0 ms.
        Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    const N: usize = 128;
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; N];
    if ms != 0 {
        p.blocked.store(true, Ordering::SeqCst);
    }
    // SAFETY: `evs` has room for N events.
    let n = unsafe { libc::epoll_wait(p.epfd, evs.as_mut_ptr(), N as libc::c_int, ms) };
    if ms != 0 {
        p.blocked.store(false, Ordering::SeqCst);
    }
    p.last_poll
        .store(crate::sched::coarse_nanos(), Ordering::Relaxed);
    if n <= 0 {
        return 0;
    }
    let mut woken = 0;
    for ev in &evs[..n as usize] {
        let token = ev.u64;
        if token == u64::MAX {
            // A `wake_poller`. Only a blocking poll consumes it (Go's
            // `netpoll`: "only read the byte if blocking"); a non-blocking
            // one leaves it for the poller it was meant for.
            if ms != 0 {
                let mut buf = 0u64;
                // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
                unsafe { libc::read(p.evfd, (&mut buf as *mut u64).cast(), 8) };
            }
            continue;
        }
        let slot = (token & 0xffff_ffff) as usize;
        let pd = {
            let s = p.slots.lock();
            s.descs
                .get(slot)
                .and_then(|d| d.clone())
                .filter(|d| d.token == token)
        };
        let Some(pd) = pd else { continue };
        let bits = ev.events as libc::c_int;
        let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
        let r = err || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0;
        let w = err || bits & libc::EPOLLOUT != 0;
        let ws = {
            let mut st = pd.state.lock();
            let mut ws = Vec::new();
            if r {
                st.read.ready = true;
                ws.append(&mut st.read.take_all());
            }
            if w {
                st.write.ready = true;
                ws.append(&mut st.write.take_all());
            }
            ws
        };
        for (_, w) in ws {
            w.wake();
            woken += 1;
        }
    }
    woken
}
