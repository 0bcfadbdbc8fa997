//! sysmon: the runtime's monitor thread (Go: `sysmon`, `retake`,
//! `preemptone`, `schedtrace`).
//!
//! One thread, holding no P. It sleeps 20 µs, doubling after 50 idle rounds
//! (1 ms) up to 1 ms while some P is busy and 10 ms when all are idle, and
//! each round:
//!
//! 1. **hogs**: a P whose `schedtick` has not moved for 10 ms
//!    (`FORCE_PREEMPT_NS`) gets its M's voluntary preempt flag set; if the
//!    goroutine still has not reached a safe point by the next round and
//!    other work is waiting, its M gets `REQ_HOG` by signal: the handler
//!    releases the P and freezes the thread; sysmon gives the P to another
//!    M and queues the frozen M for a P (`Sched::add_pwaiter`);
//! 2. **blocking**: an M in a declared blocking section for ≥ 20 µs while
//!    work waits (or for ≥ 10 ms) loses its P (Go's syscall retake); an M
//!    that has run the same goroutine for ≥ 50 µs while its thread used less
//!    than half the wall time in CPU (it is blocked in the kernel: a
//!    `std::thread::sleep`, a `std::sync::Mutex`, a pipe read) gets
//!    `REQ_RELEASE` and loses its P the same way; an M running goroutine
//!    code without a P (back from such a call) and burning CPU gets
//!    `REQ_HOG`, so the number of Ms running goroutine code returns to
//!    GOMAXPROCS within a round;
//! 3. **timers** that are overdue while no idle M sleeps on them are fired
//!    here (the woken goroutines go to the global queue);
//! 4. **GOMAXPROCS** follows the cgroup CPU limit, checked at most once per
//!    second, unless it was set explicitly (Go 1.25);
//! 5. **schedtrace**: `GODEBUG=schedtrace=N[,scheddetail=1]` prints Go's
//!    `SCHED` lines every N ms on stderr.
//!
//! sysmon never waits on anything a frozen thread might hold: it uses the
//! scheduler's std (futex) locks only, and does not allocate in a round
//! except for schedtrace output and its own bookkeeping growth.
#![forbid(unsafe_code)]

use super::preempt::{
    self, FROZEN, M_LOST, M_RELEASED, M_RUN, M_SYSCALL, REQ_HOG, REQ_RELEASE, THAWED,
};
use super::{FORCE_PREEMPT_NS, MShared, P, P_IDLE, P_RUNNING, Sched, coarse_nanos, lock_ok};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shortest sleep (Go: 20 µs).
const MIN_DELAY: Duration = Duration::from_micros(20);
/// Longest sleep while some P runs goroutines (Go lets it grow to 10 ms;
/// 1 ms keeps hog hand-off and blocking detection within ~1 ms of their
/// thresholds at ~1,000 cheap wake-ups per second).
const BUSY_MAX_DELAY: Duration = Duration::from_millis(1);
/// Longest sleep when every P is idle (Go: 10 ms).
const IDLE_MAX_DELAY: Duration = Duration::from_millis(10);
/// A declared blocking section loses its P after this long if work waits
/// (Go: one sysmon tick, at least 20 µs).
const SYSCALL_RETAKE_NS: u64 = 20_000;
/// ... and after this long regardless (Go: 10 ms).
const SYSCALL_FORCE_NS: u64 = 10_000_000;
/// A hog that was signalled but did not freeze is signalled again after this.
const HOG_RESEND_NS: u64 = 200_000;
/// An M that has not switched goroutines for this long is checked for
/// being blocked in the kernel.
const BLOCKED_CHECK_NS: u64 = 50_000;

#[derive(Default)]
struct Ctl {
    stop: bool,
    kick: bool,
}

/// Control block for the sysmon thread.
#[derive(Default)]
pub(crate) struct Handle {
    ctl: Mutex<Ctl>,
    cv: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Sleeping longer than the minimum: `kick` must wake it.
    long_sleep: AtomicBool,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysmon").finish()
    }
}

impl Handle {
    /// Stops and joins the thread (idempotent).
    pub(crate) fn stop(&self) {
        lock_ok(&self.ctl).stop = true;
        self.cv.notify_all();
        if let Some(t) = lock_ok(&self.thread).take() {
            let _ = t.join();
        }
    }

    /// Wakes sysmon from a long sleep (a blocking section began while work
    /// waits: its P should be retaken within ~20 µs, not 1 ms).
    pub(crate) fn kick(&self) {
        if self.long_sleep.load(Ordering::Relaxed) {
            lock_ok(&self.ctl).kick = true;
            self.cv.notify_one();
        }
    }

    /// Sleeps `d` (or until kicked); `true` = stop.
    fn sleep(&self, d: Duration) -> bool {
        self.long_sleep.store(d > MIN_DELAY, Ordering::Relaxed);
        let mut c = lock_ok(&self.ctl);
        let deadline = Instant::now() + d;
        while !c.stop && !c.kick {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            c = self
                .cv
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        c.kick = false;
        self.long_sleep.store(false, Ordering::Relaxed);
        c.stop
    }
}

/// Starts sysmon for `sched` (once, at `run`).
pub(crate) fn start(sched: &Arc<Sched>) {
    let s = sched.clone();
    let h = std::thread::Builder::new()
        .name("gort-sysmon".into())
        .spawn(move || Sysmon::new(s).run())
        .unwrap_or_else(|e| {
            crate::fatal!(
                "runtime: failed to create the sysmon thread ({e})\nfatal error: newosproc"
            )
        });
    *lock_ok(&sched.sysmon.thread) = Some(h);
}

/// What sysmon remembers about one M between rounds.
#[derive(Debug, Clone, Default)]
struct View {
    id: u64,
    pid: usize,
    schedtick: u64,
    tick_at: u64,
    flagged: bool,
    flag_at: u64,
    hog_sent: bool,
    hog_at: u64,
    ticks: u64,
    ticks_at: u64,
    cpu: u64,
    cpu_at: u64,
}

struct Sysmon {
    sched: Arc<Sched>,
    /// The quiet state seen by the last `checkdead` (progress counters),
    /// or `None`.
    dead_seen: Option<(u64, u64)>,
    views: Vec<View>,
    #[allow(clippy::vec_box)] // Ps move between Ms as boxes
    hand: Vec<Box<P>>,
    wait: Vec<Arc<MShared>>,
    trace_start: Option<Instant>,
    next_trace: Instant,
    next_procs: Instant,
    cgroup: Option<crate::cgroup::CgroupCpu>,
}

impl Sysmon {
    fn new(sched: Arc<Sched>) -> Sysmon {
        let follow = !sched.gomaxprocs_explicit.load(Ordering::Relaxed)
            && sched.cfg.godebug.updatemaxprocs
            && sched.cfg.godebug.containermaxprocs;
        let now = Instant::now();
        Sysmon {
            sched,
            dead_seen: None,
            views: Vec::new(),
            hand: Vec::new(),
            wait: Vec::new(),
            trace_start: None,
            next_trace: now,
            next_procs: now + Duration::from_secs(1),
            cgroup: if follow {
                crate::cgroup::CgroupCpu::discover()
            } else {
                None
            },
        }
    }

    fn run(mut self) {
        let mut delay = MIN_DELAY;
        let mut idle = 0u32;
        loop {
            if self.sched.sysmon.sleep(delay) {
                return;
            }
            let acted = if self.sched.stw.load(Ordering::SeqCst) {
                false
            } else {
                self.retake()
            };
            if !acted && self.checkdead() {
                report_deadlock(&self.sched);
            }
            if acted {
                idle = 0;
                delay = MIN_DELAY;
            } else {
                idle += 1;
                if idle > 50 {
                    let busy = self.sched.npidle.load(Ordering::Relaxed)
                        < self.sched.gomaxprocs.load(Ordering::Relaxed);
                    let max = if busy { BUSY_MAX_DELAY } else { IDLE_MAX_DELAY };
                    delay = (delay * 2).min(max);
                }
            }
            let now = Instant::now();
            let trace = self.sched.cfg.godebug.schedtrace;
            if trace > 0 && now >= self.next_trace {
                let t0 = *self.trace_start.get_or_insert(now);
                let line = schedtrace(&self.sched, self.sched.cfg.godebug.scheddetail, now - t0);
                // Straight to fd 2, like Go's runtime `print` (not the
                // `eprint!` machinery, which a test harness captures).
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                self.next_trace = now + Duration::from_millis(trace);
                delay = delay.min(Duration::from_millis(trace));
            }
            if now >= self.next_procs {
                self.next_procs = now + Duration::from_secs(1);
                self.update_gomaxprocs();
            }
        }
    }

    /// Go's `checkdead`: are all goroutines blocked forever? True only when
    /// two consecutive looks (one sysmon round apart) find: every P idle,
    /// no queued goroutine, every M parked, no timer, no I/O waiter, at
    /// least one goroutine, no progress in between, and no thread in the
    /// process that could still wake one — every OS thread is an M, sysmon,
    /// or a thread blocked in gort without a timeout (`/proc/self/status`).
    fn checkdead(&mut self) -> bool {
        let quiet = self.quiet_state();
        match (quiet, self.dead_seen) {
            (Some(q), Some(prev)) if q == prev => true,
            (q, _) => {
                self.dead_seen = q;
                false
            }
        }
    }

    /// Progress counters if the world looks deadlocked right now.
    fn quiet_state(&self) -> Option<(u64, u64)> {
        let s = &self.sched;
        if s.npidle.load(Ordering::SeqCst) != s.gomaxprocs.load(Ordering::SeqCst)
            || !s.injector.is_empty()
            || s.npwait.load(Ordering::SeqCst) != 0
            || s.stw.load(Ordering::SeqCst)
            || s.next_timer().is_some()
            || s.has_netpoll_waiters()
            || s.num_goroutine() == 0
            || s.shutdown.load(Ordering::SeqCst)
        {
            return None;
        }
        let ticks: u64 = {
            let all = lock_ok(&s.allm);
            let busy = all.iter().any(|m| {
                m.state.load(Ordering::SeqCst) != preempt::M_IDLE
                    || !m.parked.load(Ordering::SeqCst)
                    || m.frozen.load(Ordering::SeqCst) != THAWED
            });
            if busy {
                return None;
            }
            all.iter().map(|m| m.ticks.load(Ordering::SeqCst)).sum()
        };
        let threads = process_threads()?;
        let known = s.mcount.load(Ordering::SeqCst)
            + 1
            + super::park::OUTSIDE_PARKED.load(Ordering::SeqCst);
        if threads != known {
            return None;
        }
        Some((ticks, super::park::OUTSIDE_EPOCH.load(Ordering::SeqCst)))
    }

    /// Go 1.25: GOMAXPROCS follows the cgroup limit unless set explicitly.
    fn update_gomaxprocs(&mut self) {
        if self.sched.gomaxprocs_explicit.load(Ordering::Relaxed) {
            return;
        }
        let Some(cg) = self.cgroup.as_mut() else {
            return;
        };
        let limit = cg.read_limit();
        let want = crate::cgroup::gomaxprocs_rule(crate::cgroup::affinity_cpus(), limit)
            .clamp(1, super::MAX_GOMAXPROCS);
        if want != self.sched.gomaxprocs.load(Ordering::SeqCst) {
            self.sched.set_gomaxprocs(want);
        }
    }

    /// One round of `retake`. Returns whether it did anything.
    fn retake(&mut self) -> bool {
        let sched = self.sched.clone();
        let now = coarse_nanos();
        let mut acted = false;
        let async_ok = !sched.cfg.godebug.asyncpreemptoff;
        {
            let all = lock_ok(&sched.allm);
            for m in all.iter() {
                let v = view_for(&mut self.views, m.id);
                let st = m.state.load(Ordering::Acquire);
                let frozen = m.frozen.load(Ordering::Acquire);
                match st {
                    M_RUN if frozen == THAWED => {
                        let pid = m.pid.load(Ordering::Relaxed);
                        let Some(ps) = sched.pshared(pid) else {
                            continue;
                        };
                        let tick = ps.schedtick.load(Ordering::Relaxed);
                        if tick != v.schedtick || pid != v.pid {
                            v.schedtick = tick;
                            v.pid = pid;
                            v.tick_at = now;
                            v.flagged = false;
                            v.hog_sent = false;
                        } else if now.saturating_sub(v.tick_at) >= FORCE_PREEMPT_NS {
                            if !v.flagged {
                                preempt::set_preempt_flag(m);
                                v.flagged = true;
                                v.flag_at = now;
                            } else if async_ok
                                && now.saturating_sub(v.flag_at) >= MIN_DELAY.as_nanos() as u64
                                && (!v.hog_sent || now.saturating_sub(v.hog_at) >= HOG_RESEND_NS)
                                && sched.work_waiting(pid)
                            {
                                // The handler declines to freeze a thread
                                // inside a shared library; ask again later.
                                preempt::signal_m(m, REQ_HOG);
                                v.hog_sent = true;
                                v.hog_at = now;
                                acted = true;
                            }
                        }
                        // Blocked in the kernel without telling us?
                        let ticks = m.ticks.load(Ordering::Relaxed);
                        if ticks != v.ticks {
                            v.ticks = ticks;
                            v.ticks_at = now;
                            v.cpu = cpu_of(m);
                            v.cpu_at = now;
                        } else if now.saturating_sub(v.ticks_at) >= BLOCKED_CHECK_NS {
                            let cpu = cpu_of(m);
                            let wall = now.saturating_sub(v.cpu_at);
                            let used = cpu.saturating_sub(v.cpu);
                            if wall >= MIN_DELAY.as_nanos() as u64
                                && used * 2 < wall
                                && sched.work_waiting(pid)
                                && !thread_runnable(m)
                            {
                                preempt::signal_m(m, REQ_RELEASE);
                                acted = true;
                            }
                            v.cpu = cpu;
                            v.cpu_at = now;
                        }
                    }
                    M_SYSCALL => {
                        let since = m.syscall_since.load(Ordering::Relaxed);
                        let age = now.saturating_sub(since);
                        let pid = m.pid.load(Ordering::Relaxed);
                        if (age >= SYSCALL_RETAKE_NS && sched.work_waiting(pid))
                            || age >= SYSCALL_FORCE_NS
                        {
                            if let Some(p) = m.steal_p() {
                                ps_syscalltick(&sched, &p);
                                self.hand.push(p);
                                acted = true;
                            }
                        }
                    }
                    M_RELEASED => {
                        if let Some(p) = m.steal_p() {
                            self.hand.push(p);
                            acted = true;
                        }
                    }
                    M_LOST => {
                        if frozen == FROZEN {
                            if !m.frozen_for_stop.load(Ordering::Relaxed)
                                && !m.waiting_p.load(Ordering::Relaxed)
                            {
                                self.wait.push(m.clone());
                                acted = true;
                            }
                        } else if frozen == THAWED
                            && async_ok
                            && !m.in_syscall.load(Ordering::Relaxed)
                        {
                            // Goroutine code without a P: if it computes,
                            // freeze it until a P is free.
                            let cpu = cpu_of(m);
                            if v.cpu_at != 0 {
                                let wall = now.saturating_sub(v.cpu_at);
                                let used = cpu.saturating_sub(v.cpu);
                                if wall >= MIN_DELAY.as_nanos() as u64 && used * 2 >= wall {
                                    preempt::signal_m(m, REQ_HOG);
                                    acted = true;
                                }
                            }
                            v.cpu = cpu;
                            v.cpu_at = now;
                        }
                    }
                    _ => {
                        v.cpu_at = 0;
                    }
                }
            }
        }
        for p in self.hand.drain(..) {
            sched.handoffp(p);
        }
        for m in self.wait.drain(..) {
            sched.add_pwaiter(&m);
        }
        // Nobody polled the network for 10 ms (every M busy): poll here.
        if sched.has_netpoll_waiters()
            && crate::netpoll::since_last_poll(now) >= 10_000_000
            && crate::netpoll::poll(Some(Duration::ZERO)) > 0
        {
            acted = true;
        }
        // Overdue timers that no idle M sleeps on (every M is busy): fire
        // them here; their goroutines go to the global queue, where the
        // hog check above finds them.
        if sched.timers_due() && !sched.has_timer_sleeper() {
            sched.run_timers();
            acted = true;
        }
        acted
    }
}

/// Number of OS threads in this process (`Threads:` in /proc/self/status).
fn process_threads() -> Option<usize> {
    let st = std::fs::read_to_string("/proc/self/status").ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Go's deadlock report: the message, then every goroutine with its wait
/// reason; exits with status 2.
fn report_deadlock(sched: &Sched) -> ! {
    let mut out = String::from("fatal error: all goroutines are asleep - deadlock!\n");
    for g in lock_ok(&sched.allgs).iter() {
        let goid = g.goid.load(Ordering::Relaxed);
        if goid == 0 || g.park_state() == super::parkword::IDLE {
            continue;
        }
        let _ = write!(out, "\ngoroutine {goid} [{}]:\n", g.wait_reason().as_str());
    }
    crate::fatal!("{}", out.trim_end())
}

fn ps_syscalltick(_sched: &Sched, p: &P) {
    p.shared.syscalltick.fetch_add(1, Ordering::Relaxed);
}

fn view_for(views: &mut Vec<View>, id: u64) -> &mut View {
    let i = id as usize;
    if views.len() <= i {
        views.resize(i + 1, View::default());
    }
    let v = &mut views[i];
    if v.id != id {
        *v = View {
            id,
            ..View::default()
        };
    }
    v
}

/// Is the M's thread running or waiting for a CPU (state `R` in
/// `/proc/self/task/<tid>/stat`)? A thread that got little CPU time only
/// because the machine is oversubscribed is not blocked. Read only when
/// the CPU-time test already suggests blocking (a few µs).
fn thread_runnable(m: &MShared) -> bool {
    let tid = m.tid.load(Ordering::Relaxed);
    let Ok(stat) = std::fs::read(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // "tid (comm) S ...": the state follows the last ')'.
    stat.iter()
        .rposition(|&c| c == b')')
        .and_then(|i| stat.get(i + 2))
        .is_some_and(|&c| c == b'R')
}

fn cpu_of(m: &MShared) -> u64 {
    preempt::thread_cpu_ns(m.cpu_clock.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Go's `schedtrace` output for one tick (one line, or the detailed block).
pub(crate) fn schedtrace(sched: &Sched, detail: bool, since: Duration) -> String {
    let mut out = String::with_capacity(256);
    let procs = sched.gomaxprocs.load(Ordering::SeqCst);
    let (idlethreads, nmidlelocked) = sched.idle_counts();
    let _ = write!(
        out,
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} needspinning=0 idlethreads={} runqueue={}",
        since.as_millis(),
        procs,
        sched.npidle.load(Ordering::SeqCst),
        sched.mcount.load(Ordering::Relaxed) + 1,
        sched.nmspinning.load(Ordering::SeqCst),
        idlethreads,
        sched.injector.len(),
    );
    if !detail {
        out.push_str(" [");
        for i in 0..procs {
            let n = sched.pshared(i).map_or(0, |p| p.q.len());
            let _ = write!(out, " {n}");
        }
        out.push_str(" ] schedticks=[");
        for i in 0..procs {
            let n = sched
                .pshared(i)
                .map_or(0, |p| p.schedtick.load(Ordering::Relaxed));
            let _ = write!(out, " {n}");
        }
        out.push_str(" ]\n");
        return out;
    }
    let _ = writeln!(
        out,
        " gcwaiting={} nmidlelocked={} stopwait=0 sysmonwait=false",
        sched.stw.load(Ordering::SeqCst),
        nmidlelocked
    );
    for i in 0..procs {
        let Some(p) = sched.pshared(i) else { continue };
        let mid = p.mid.load(Ordering::Relaxed);
        let status = match p.status.load(Ordering::Relaxed) {
            P_IDLE => 0,
            P_RUNNING => 1,
            _ => 4,
        };
        let _ = writeln!(
            out,
            "  P{}: status={} schedtick={} syscalltick={} m={} runqsize={} gfreecnt={} timerslen={}",
            i,
            status,
            p.schedtick.load(Ordering::Relaxed),
            p.syscalltick.load(Ordering::Relaxed),
            opt(mid),
            p.q.len(),
            p.gfreecnt.load(Ordering::Relaxed),
            p.timers.lock().len(),
        );
    }
    let ms: Vec<Arc<MShared>> = lock_ok(&sched.allm).clone();
    for m in &ms {
        let pid = m.pid.load(Ordering::Relaxed);
        let curg = m.curg_id.load(Ordering::Relaxed);
        let lockedg = m.lockedg.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "  M{}: p={} curg={} mallocing=0 throwing=0 preemptoff= locks={} dying=0 spinning={} blocked={} lockedg={}",
            m.id,
            if pid == usize::MAX {
                "nil".to_string()
            } else {
                pid.to_string()
            },
            if curg == 0 {
                "nil".to_string()
            } else {
                curg.to_string()
            },
            u32::from(m.state.load(Ordering::Relaxed) == preempt::M_IDLE),
            m.spinning.load(Ordering::Relaxed),
            m.parked.load(Ordering::Relaxed),
            if lockedg == 0 {
                "nil".to_string()
            } else {
                lockedg.to_string()
            },
        );
    }
    for g in lock_ok(&sched.allgs).iter() {
        let goid = g.goid.load(Ordering::Relaxed);
        let running_on = ms
            .iter()
            .find(|m| m.curg_id.load(Ordering::Relaxed) == goid && goid != 0)
            .map(|m| m.id);
        let st = g.park_state();
        let status = if running_on.is_some() {
            2
        } else {
            match st {
                super::parkword::IDLE => 6,
                super::parkword::PARKED => 4,
                _ => 1,
            }
        };
        let lockedm = g.lockedm.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "  G{}: status={}({}) m={} lockedm={}",
            goid,
            status,
            g.wait_reason().as_str(),
            running_on.map_or("nil".to_string(), |m| m.to_string()),
            if lockedm == 0 {
                "nil".to_string()
            } else {
                (lockedm - 1).to_string()
            },
        );
    }
    out
}

fn opt(v: u64) -> String {
    if v == u64::MAX {
        "nil".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    fn sched(procs: usize, explicit: bool) -> std::sync::Arc<super::super::Sched> {
        super::super::Sched::new(super::super::Config {
            gomaxprocs: procs,
            gomaxprocs_explicit: explicit,
            godebug: crate::env::GoDebug::default(),
            stacks: crate::coro::stack::StackConfig::new(64 * 1024).unwrap(),
            max_threads: 100,
        })
    }

    /// Go 1.25: sysmon moves GOMAXPROCS to the cgroup limit's value when
    /// the limit changes, unless GOMAXPROCS was set explicitly.
    #[test]
    #[cfg_attr(miri, ignore)] // filesystem, threads
    fn gomaxprocs_follows_the_cgroup_limit_unless_explicit() {
        let aff = crate::cgroup::affinity_cpus();
        let want = crate::cgroup::gomaxprocs_rule(aff, Some(2.0));
        let fx = crate::cgroup::tests::v2("200000 100000\n");
        for explicit in [false, true] {
            let s = sched(1, explicit);
            let mut m = super::Sysmon::new(s.clone());
            m.cgroup = fx.discover();
            assert!(m.cgroup.is_some(), "fixture cgroup not found");
            m.update_gomaxprocs();
            let now = s.gomaxprocs.load(Ordering::SeqCst);
            if explicit {
                assert_eq!(now, 1, "explicit GOMAXPROCS changed by sysmon");
            } else {
                assert_eq!(now, want, "GOMAXPROCS did not follow the 2-CPU limit");
            }
            // A new limit is picked up on the next check.
            fx.write(
                &format!("{}/cpu.max", crate::cgroup::tests::V2_DIR),
                "max 100000\n",
            );
            m.update_gomaxprocs();
            let after = s.gomaxprocs.load(Ordering::SeqCst);
            if explicit {
                assert_eq!(after, 1);
            } else {
                assert_eq!(after, crate::cgroup::gomaxprocs_rule(aff, None));
            }
            fx.write(
                &format!("{}/cpu.max", crate::cgroup::tests::V2_DIR),
                "200000 100000\n",
            );
            s.stop();
        }
    }

    /// The seed article's harness regex must match our SCHED line.
    #[test]
    fn sched_line_matches_the_article_regex() {
        let cfg = super::super::Config {
            gomaxprocs: 4,
            gomaxprocs_explicit: true,
            godebug: crate::env::GoDebug::default(),
            stacks: crate::coro::stack::StackConfig::new(64 * 1024).unwrap(),
            max_threads: 100,
        };
        let s = super::super::Sched::new(cfg);
        let line = super::schedtrace(&s, false, std::time::Duration::from_millis(1000));
        assert_eq!(
            line,
            "SCHED 1000ms: gomaxprocs=4 idleprocs=4 threads=1 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=0 [ 0 0 0 0 ] schedticks=[ 0 0 0 0 ]\n"
        );
        let detail = super::schedtrace(&s, true, std::time::Duration::from_millis(0));
        let mut lines = detail.lines();
        assert_eq!(
            lines.next().unwrap(),
            "SCHED 0ms: gomaxprocs=4 idleprocs=4 threads=1 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=0 gcwaiting=false nmidlelocked=0 stopwait=0 sysmonwait=false"
        );
        assert_eq!(
            lines.next().unwrap(),
            "  P0: status=0 schedtick=0 syscalltick=0 m=nil runqsize=0 gfreecnt=0 timerslen=0"
        );
    }
}
