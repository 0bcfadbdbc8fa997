//! `gort::time::{Timer, Ticker}`: Go 1.23's `time.Timer`/`time.Ticker`
//! semantics (no stale value after `stop`/`reset`, `stop`/`reset` report
//! whether the value was still pending, tickers drop ticks for slow
//! receivers and stay on their period grid), in goroutines at several
//! GOMAXPROCS and on plain threads. Behaviour only: no test asserts how
//! long anything took.

mod common;
use common::{Rng, rt, seed, watchdog};
use gort::chan::{RecvError, RecvTimeoutError, TryRecvError, bounded, never, select, unbounded};
use gort::time::{Ticker, Timer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROCS: [usize; 4] = [1, 2, 4, 9];

/// Waits (parking) until the timer's value sits in its channel unreceived.
fn wait_buffered(r: &gort::chan::Receiver<Instant>) {
    while r.is_empty() {
        gort::time::sleep(Duration::from_micros(200));
    }
}

#[test]
fn timer_fires_once_with_its_due_instant() {
    watchdog("timer_fires_once_with_its_due_instant", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let start = Instant::now();
                let due = start + Duration::from_millis(2);
                let t = Timer::at(due);
                assert_eq!(t.receiver().recv(), Ok(due), "the value is the due instant");
                assert!(Instant::now() >= due, "never delivered early");
                // Fired and received: nothing more, and it is no longer pending.
                assert_eq!(t.receiver().try_recv(), Err(TryRecvError::Empty));
                assert!(!t.stop());
                assert!(!t.reset(Duration::from_millis(1)));
                let v = t.receiver().recv().unwrap();
                assert!(v > due);
                // Timer::new(d): due d after the call.
                let before = Instant::now();
                let t = Timer::new(Duration::from_millis(1));
                assert!(t.receiver().recv().unwrap() >= before + Duration::from_millis(1));
            });
        }
    });
}

#[test]
fn a_due_timer_is_ready_at_once() {
    // Go: NewTimer(0) and a Reset to a past instant make the value
    // available to a non-blocking receive right away.
    watchdog("a_due_timer_is_ready_at_once", 30, || {
        let check = || {
            let t = Timer::new(Duration::ZERO);
            assert!(t.receiver().try_recv().is_ok());
            let past = Instant::now() - Duration::from_millis(5);
            assert!(!t.reset_at(past));
            assert_eq!(t.receiver().try_recv(), Ok(past));
        };
        check();
        rt(2).run(check);
    });
}

#[test]
fn stop_before_the_deadline() {
    watchdog("stop_before_the_deadline", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let t = Timer::new(Duration::from_secs(3600));
                assert!(t.stop(), "an armed timer is pending");
                assert!(!t.stop(), "a stopped timer is not");
                assert_eq!(
                    t.receiver().recv_timeout(Duration::from_millis(5)),
                    Err(RecvTimeoutError::Timeout)
                );
                // A stopped timer can be reset.
                assert!(!t.reset(Duration::from_millis(1)));
                assert!(t.receiver().recv().is_ok());
            });
        }
    });
}

#[test]
fn stop_and_reset_discard_an_unreceived_value() {
    // Go 1.23: the timer channel is unbuffered, so a value the timer sent
    // but nobody received has not "fired": stop/reset discard it and
    // report the timer as pending.
    watchdog("stop_and_reset_discard_an_unreceived_value", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let t = Timer::new(Duration::from_millis(1));
                wait_buffered(t.receiver());
                assert!(t.stop(), "the value was not received: still pending");
                assert_eq!(t.receiver().try_recv(), Err(TryRecvError::Empty));
                assert!(!t.stop());

                let t = Timer::new(Duration::from_millis(1));
                wait_buffered(t.receiver());
                let far = Instant::now() + Duration::from_secs(3600);
                assert!(t.reset_at(far), "the value was not received: still pending");
                assert_eq!(
                    t.receiver().recv_timeout(Duration::from_millis(5)),
                    Err(RecvTimeoutError::Timeout),
                    "the stale value is gone"
                );
                assert!(t.stop());
            });
        }
    });
}

#[test]
fn stop_races_the_firing_timer() {
    // The helper fires while stop runs: whatever the interleaving, a timer
    // whose value was never received is pending (stop returns true) and
    // nothing arrives after stop; a reset after it is not pending and
    // delivers exactly its own deadline.
    watchdog("stop_races_the_firing_timer", 60, || {
        let s = seed();
        for procs in PROCS {
            let bad = rt(procs).run(|| {
                let hs: Vec<_> = (0..8u64)
                    .map(|g| {
                        gort::go(move || {
                            let mut rng = Rng(s ^ (g + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                            let mut bad = 0;
                            for _ in 0..150 {
                                let d = Duration::from_micros(rng.below(300));
                                let t = Timer::new(d);
                                match rng.below(3) {
                                    0 => gort::yield_now(),
                                    1 => gort::time::sleep(Duration::from_micros(rng.below(300))),
                                    _ => {}
                                }
                                if !t.stop() || t.receiver().try_recv().is_ok() {
                                    bad += 1;
                                }
                                let due = Instant::now() + Duration::from_micros(rng.below(200));
                                if t.reset_at(due) || t.receiver().recv() != Ok(due) {
                                    bad += 1;
                                }
                            }
                            bad
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
            });
            assert_eq!(bad, 0, "GOMAXPROCS={procs}");
        }
    });
}

#[test]
fn no_stale_value_reaches_a_concurrent_receiver() {
    // A goroutine blocks on the timer's channel while the owner stops and
    // re-arms it at random moments. Each arm is either stopped (stop
    // returns true) or received (stop returns false), never both: the
    // receiver reports every value, which must be the deadline of the arm
    // that stop said had fired.
    watchdog("no_stale_value_reaches_a_concurrent_receiver", 60, || {
        let s = seed();
        for procs in PROCS {
            rt(procs).run(|| {
                let mut rng = Rng(s ^ procs as u64);
                let t = Timer::at(Instant::now() + Duration::from_secs(3600));
                assert!(t.stop());
                let r = t.receiver().clone();
                let (ack_s, ack_r) = unbounded::<Instant>();
                let (quit_s, quit_r) = bounded::<()>(0);
                let receiver = gort::go(move || {
                    loop {
                        select! {
                            recv(r) -> v => ack_s.send(v.unwrap()).unwrap(),
                            recv(quit_r) -> _ => return,
                        }
                    }
                });
                let (mut stopped, mut fired) = (0, 0);
                for _ in 0..300 {
                    let due = Instant::now() + Duration::from_micros(rng.below(200));
                    assert!(!t.reset_at(due), "the previous arm was settled");
                    if rng.below(2) == 0 {
                        gort::time::sleep(Duration::from_micros(rng.below(250)));
                    } else {
                        gort::yield_now();
                    }
                    if t.stop() {
                        stopped += 1;
                    } else {
                        fired += 1;
                        assert_eq!(ack_r.recv(), Ok(due), "the received value is this arm's");
                    }
                }
                quit_s.send(()).unwrap();
                receiver.join().unwrap();
                assert_eq!(
                    ack_r.try_recv(),
                    Err(TryRecvError::Disconnected),
                    "no extra value"
                );
                assert_eq!(stopped + fired, 300);
            });
        }
    });
}

#[test]
fn waiting_parks_the_goroutine_not_the_m() {
    // GOMAXPROCS=1: while the main goroutine waits on a timer, another
    // goroutine runs on the only P.
    watchdog("waiting_parks_the_goroutine_not_the_m", 30, || {
        rt(1).run(|| {
            let ran = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (ran2, stop2) = (ran.clone(), stop.clone());
            let spinner = gort::go(move || {
                while !stop2.load(Ordering::Acquire) {
                    ran2.fetch_add(1, Ordering::Relaxed);
                    gort::yield_now();
                }
            });
            // A wait proves something only if it parked: if the OS keeps
            // this M off the CPU between creating the timer and `recv` for
            // longer than the period, `recv` finds the value due and returns
            // at once, before the spinner could run. Such waits are repeated;
            // a wait that blocks the M instead of parking the goroutine never
            // lets the spinner run, whatever the number of tries.
            const TRIES: usize = 100;
            let ran_while = |wait: &dyn Fn()| {
                (0..TRIES).any(|_| {
                    let before = ran.load(Ordering::Relaxed);
                    wait();
                    ran.load(Ordering::Relaxed) > before
                })
            };
            assert!(
                ran_while(&|| Timer::new(Duration::from_millis(10))
                    .receiver()
                    .recv()
                    .map(drop)
                    .unwrap()),
                "the spinner never ran while the main goroutine waited on a timer ({TRIES} tries)"
            );
            let k = Ticker::new(Duration::from_millis(2));
            assert!(
                ran_while(&|| k.receiver().recv().map(drop).unwrap()),
                "the spinner never ran while the main goroutine waited on a ticker ({TRIES} tries)"
            );
            stop.store(true, Ordering::Release);
            spinner.join().unwrap();
        });
    });
}

#[test]
fn timers_and_tickers_on_plain_threads() {
    watchdog("timers_and_tickers_on_plain_threads", 30, || {
        // No runtime: the helper is a thread.
        let t = Timer::new(Duration::from_millis(1));
        assert!(t.receiver().recv().is_ok());
        let k = Ticker::new(Duration::from_millis(1));
        let a = k.receiver().recv().unwrap();
        let b = k.receiver().recv().unwrap();
        assert!(b > a);
        k.stop();
        assert_eq!(k.receiver().try_recv(), Err(TryRecvError::Empty));
        // A plain thread while a runtime runs: the helper is a thread too
        // (see `plain_thread_timers_outlive_a_runtime_that_stops`).
        rt(2).run(|| {
            std::thread::scope(|sc| {
                sc.spawn(|| {
                    let t = Timer::new(Duration::from_millis(1));
                    assert!(t.receiver().recv().is_ok());
                    let t = Timer::new(Duration::from_secs(3600));
                    assert!(t.stop());
                    let k = Ticker::new(Duration::from_millis(1));
                    assert!(k.receiver().recv().is_ok());
                });
            });
        });
    });
}

#[test]
fn ticks_are_ordered_and_on_the_period_grid() {
    watchdog("ticks_are_ordered_and_on_the_period_grid", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let period = Duration::from_millis(1);
                let start = Instant::now();
                let k = Ticker::new(period);
                let first = k.receiver().recv().unwrap();
                assert!(first >= start + period);
                let mut prev = first;
                for i in 0..20 {
                    if i % 5 == 0 {
                        // A slow receiver: ticks are dropped, not queued.
                        gort::time::sleep(period * 6);
                        assert!(k.receiver().len() <= 1, "at most one tick waits");
                    }
                    let v = k.receiver().recv().unwrap();
                    assert!(v > prev, "ticks are strictly increasing");
                    assert_eq!(
                        (v - first).as_nanos() % period.as_nanos(),
                        0,
                        "a late tick does not shift the grid"
                    );
                    assert!(v <= Instant::now(), "never delivered early");
                    prev = v;
                }
            });
        }
    });
}

#[test]
fn ticker_stop_and_reset() {
    watchdog("ticker_stop_and_reset", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let k = Ticker::new(Duration::from_millis(1));
                wait_buffered(k.receiver());
                k.stop();
                assert_eq!(
                    k.receiver().try_recv(),
                    Err(TryRecvError::Empty),
                    "tick discarded"
                );
                assert_eq!(
                    k.receiver().recv_timeout(Duration::from_millis(5)),
                    Err(RecvTimeoutError::Timeout),
                    "a stopped ticker is silent"
                );
                // Reset restarts a stopped ticker with the new period.
                let before = Instant::now();
                let period = Duration::from_millis(2);
                k.reset(period);
                let a = k.receiver().recv().unwrap();
                let b = k.receiver().recv().unwrap();
                assert!(a >= before + period);
                assert_eq!((b - a).as_nanos() % period.as_nanos(), 0);
                // Reset of a running ticker discards the unreceived tick.
                wait_buffered(k.receiver());
                k.reset(Duration::from_secs(3600));
                assert_eq!(k.receiver().try_recv(), Err(TryRecvError::Empty));
            });
        }
    });
}

#[test]
#[should_panic(expected = "non-positive interval for Ticker::new")]
fn ticker_with_zero_period_panics() {
    let _ = Ticker::new(Duration::ZERO);
}

#[test]
#[should_panic(expected = "non-positive interval for Ticker::reset")]
fn ticker_reset_to_zero_panics() {
    let k = Ticker::new(Duration::from_secs(1));
    k.reset(Duration::ZERO);
}

#[test]
fn dropping_stops_and_disconnects() {
    watchdog("dropping_stops_and_disconnects", 30, || {
        for procs in [1, 4] {
            rt(procs).run(|| {
                // The value was ready but unreceived: a clone never sees it.
                let t = Timer::new(Duration::ZERO);
                let r = t.receiver().clone();
                drop(t);
                assert_eq!(r.recv(), Err(RecvError));
                // An armed timer: the clone is told once the helper is gone.
                let t = Timer::new(Duration::from_secs(3600));
                let r = t.receiver().clone();
                drop(t);
                assert_eq!(r.recv(), Err(RecvError));
                let k = Ticker::new(Duration::from_millis(1));
                let r = k.receiver().clone();
                drop(k);
                assert_eq!(r.recv(), Err(RecvError));
            });
        }
    });
}

#[test]
fn idle_timeout_reset_per_message() {
    // The usual Go pattern: a consumer resets a timer after every message
    // and acts when it fires. Every message arrives whatever the timer
    // does, and after the producer is gone the timer still fires.
    watchdog("idle_timeout_reset_per_message", 30, || {
        for procs in PROCS {
            rt(procs).run(|| {
                let (s, r) = bounded::<u32>(0);
                let consumer = gort::go(move || {
                    let idle = Timer::new(Duration::from_secs(3600));
                    let mut data = r;
                    let (mut got, mut closed) = (0, false);
                    loop {
                        // Some(true): a message; Some(false): disconnected;
                        // None: the idle timer fired.
                        let ev = select! {
                            recv(data) -> v => Some(v.is_ok()),
                            recv(idle.receiver()) -> v => {
                                assert!(v.is_ok());
                                None
                            }
                        };
                        match ev {
                            Some(true) => {
                                got += 1;
                                idle.reset(Duration::from_millis(2));
                            }
                            Some(false) => {
                                closed = true;
                                data = never();
                            }
                            None if closed => return got,
                            // Idle before the end (a slow producer): wait again.
                            None => {
                                idle.reset(Duration::from_millis(2));
                            }
                        }
                    }
                });
                for i in 0..200 {
                    s.send(i).unwrap();
                }
                drop(s);
                assert_eq!(consumer.join().unwrap(), 200);
            });
        }
    });
}

#[test]
fn many_timers_some_stopped() {
    watchdog("many_timers_some_stopped", 60, || {
        let s = seed();
        for procs in [2, 8] {
            let (fired, stopped) = rt(procs).run(|| {
                let fired = Arc::new(AtomicU64::new(0));
                let stopped = Arc::new(AtomicU64::new(0));
                let hs: Vec<_> = (0..5_000u64)
                    .map(|i| {
                        let (fired, stopped) = (fired.clone(), stopped.clone());
                        gort::go(move || {
                            let mut rng = Rng(s ^ (i + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
                            let t = Timer::new(Duration::from_micros(rng.below(3000)));
                            if i % 2 == 0 {
                                assert!(t.stop(), "never received, so pending");
                                assert_eq!(t.receiver().try_recv(), Err(TryRecvError::Empty));
                                stopped.fetch_add(1, Ordering::Relaxed);
                            } else {
                                t.receiver().recv().unwrap();
                                fired.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                (
                    fired.load(Ordering::Relaxed),
                    stopped.load(Ordering::Relaxed),
                )
            });
            assert_eq!((fired, stopped), (2_500, 2_500));
        }
    });
}

/// A timer, a ticker and an `after` made on a plain thread while a runtime
/// runs keep working after that runtime stops: their helpers are threads,
/// not goroutines of the runtime (which would be abandoned at its stop,
/// leaving the thread waiting forever).
#[test]
fn plain_thread_timers_outlive_a_runtime_that_stops() {
    watchdog(
        "plain_thread_timers_outlive_a_runtime_that_stops",
        30,
        || {
            let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
            let (made_tx, made_rx) = std::sync::mpsc::channel::<()>();
            let user = std::thread::spawn(move || {
                running_rx.recv().unwrap();
                let t = Timer::new(Duration::from_millis(50));
                let k = Ticker::new(Duration::from_millis(20));
                let a = gort::chan::after(Duration::from_millis(50));
                made_tx.send(()).unwrap();
                // The runtime stops about now, long before the deadlines.
                assert!(t.receiver().recv().is_ok());
                assert!(k.receiver().recv().is_ok());
                assert!(a.recv().is_ok());
            });
            rt(2).run(move || {
                running_tx.send(()).unwrap();
                // Blocks this M until the timers exist (sysmon hands the P on).
                made_rx.recv().unwrap();
            });
            user.join().unwrap();
        },
    );
}
