//! Preemption, sysmon, blocking hand-off, lock_os_thread and the world
//! (issue 4), with ports of Go's `proc_test.go` tests where Go has one.
//!
//! Every test asserts behaviour (who ran, what was found, that nothing hung);
//! none asserts a duration. Hogs are loops with no gort call at all: only
//! the signal path can take their P.

mod common;

use common::{Rng, rt, seed, tid, watchdog};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A loop with no function call into gort: xorshift until `stop`.
#[inline(never)]
fn spin_until(stop: &AtomicBool, seed: u64) -> u64 {
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// Go's TestPreemption: two goroutines hand a token back and forth at
/// GOMAXPROCS=1, each waiting for its turn in a loop whose only call is
/// `preempt_check` (Go: a function prologue). Without voluntary preemption
/// the first waiter would spin forever.
#[test]
fn preemption_at_safe_points() {
    watchdog("preemption_at_safe_points", 60, || {
        rt(1).run(|| {
            const N: u32 = 5;
            let x = Arc::new(AtomicU32::new(0));
            let hs: Vec<_> = (0..2u32)
                .map(|g| {
                    let x = x.clone();
                    gort::go(move || {
                        for _ in 0..N {
                            while x.load(Ordering::SeqCst) != g {
                                gort::preempt_check();
                            }
                            x.store(1 - g, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
    });
}

/// Go's testprog AsyncPreempt: at GOMAXPROCS=1 two goroutines loop with no
/// calls at all; the main goroutine still gets to run, and a stop-the-world
/// completes.
#[test]
fn async_preempt_lets_others_run_and_the_world_stop() {
    watchdog(
        "async_preempt_lets_others_run_and_the_world_stop",
        60,
        || {
            rt(1).run(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let ready = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..2u64)
                    .map(|i| {
                        let (stop, ready) = (stop.clone(), ready.clone());
                        gort::go(move || {
                            ready.fetch_add(1, Ordering::SeqCst);
                            spin_until(&stop, i + 7)
                        })
                    })
                    .collect();
                while ready.load(Ordering::SeqCst) < 2 {
                    gort::yield_now();
                }
                // Both hogs have started and never yield; we run anyway.
                let w = gort::runtime::stop_the_world();
                let mut running = 0;
                w.for_each_goroutine(|g| {
                    if g.status() == gort::runtime::GoroutineStatus::Running {
                        running += 1;
                    }
                });
                drop(w);
                // At GOMAXPROCS=1 at most one hog held the P; a hog frozen
                // while waiting for a P is also listed as running.
                assert!(running <= 2, "{running} goroutines running");
                stop.store(true, Ordering::SeqCst);
                for h in hs {
                    h.join().unwrap();
                }
            });
        },
    );
}

/// Go's TestPingPongHog: at GOMAXPROCS=1 a pair of hogs passing a token
/// and a pair of light goroutines doing the same get comparable CPU time:
/// the counts are within a factor of 20 (a scheduler that lets one pair
/// keep the time slice through `runnext` would be ~1000× off).
#[test]
fn ping_pong_hog() {
    watchdog("ping_pong_hog", 60, || {
        rt(1).run(|| {
            let (done_tx, done_rx) = gort::chan::bounded::<()>(0);
            let (hog_tx, hog_rx) = gort::chan::bounded::<()>(0);
            let (light_tx, light_rx) = gort::chan::bounded::<()>(0);
            let hog = Arc::new(AtomicU64::new(0));
            let light = Arc::new(AtomicU64::new(0));
            let mut hs = Vec::new();
            for (limit, counter, tx, rx) in [
                (1_000_000u64, hog.clone(), hog_tx.clone(), hog_rx.clone()),
                (1_000_000, hog.clone(), hog_tx.clone(), hog_rx.clone()),
                (1_000, light.clone(), light_tx.clone(), light_rx.clone()),
                (1_000, light.clone(), light_tx.clone(), light_rx.clone()),
            ] {
                let done = done_rx.clone();
                hs.push(gort::go(move || {
                    loop {
                        gort::chan::select! {
                            recv(done) -> _ => return,
                            recv(rx) -> _ => {
                                let mut c = 0u64;
                                for _ in 0..limit {
                                    c = black_box(c + 1);
                                }
                                counter.fetch_add(c, Ordering::Relaxed);
                                gort::chan::select! {
                                    recv(done) -> _ => return,
                                    send(tx, ()) -> _ => {}
                                }
                            }
                        }
                    }
                }));
            }
            hog_tx.send(()).unwrap();
            light_tx.send(()).unwrap();
            // At least 100 ms, and then until ~100 ms of loop work has been
            // done in all (at most 20 s): a fixed 100 ms of wall time can
            // hold only a few ms of CPU on a loaded host, the pairs then get
            // a slice or two each, and which slices the OS cut short decides
            // the ratio. A pair the scheduler starves stays starved however
            // long this runs.
            let t0 = std::time::Instant::now();
            gort::time::sleep(Duration::from_millis(100));
            while hog.load(Ordering::Relaxed) + light.load(Ordering::Relaxed) < 100_000_000
                && t0.elapsed() < Duration::from_secs(20)
            {
                gort::time::sleep(Duration::from_millis(10));
            }
            drop(done_tx); // closes `done`: every goroutine returns
            for h in hs {
                h.join().unwrap();
            }
            let (h, l) = (hog.load(Ordering::Relaxed), light.load(Ordering::Relaxed));
            assert!(
                h / 20 <= l && l / 20 <= h,
                "hog/light counts {h}/{l}: one pair starved the other"
            );
        });
    });
}

/// Go's TestPreemptionAfterSyscall, our shape: goroutines that return from
/// a blocking section (of 10 µs, 100 µs, 1 ms) into a call-free loop are
/// still preempted, so a goroutine that needs the single P gets it.
#[test]
fn preemption_after_blocking_call() {
    watchdog("preemption_after_blocking_call", 60, || {
        for d in [10u64, 100, 1000] {
            rt(1).run(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let hs: Vec<_> = (0..2)
                    .map(|i| {
                        let stop = stop.clone();
                        gort::go(move || {
                            gort::blocking(|| std::thread::sleep(Duration::from_micros(d)));
                            spin_until(&stop, i + 3)
                        })
                    })
                    .collect();
                // The waker needs the P while both spin.
                let waker = gort::go(move || {
                    gort::time::sleep(Duration::from_millis(5));
                    stop.store(true, Ordering::SeqCst);
                });
                waker.join().unwrap();
                for h in hs {
                    h.join().unwrap();
                }
            });
        }
    });
}

/// Blocking hand-off (the test): at GOMAXPROCS=1 one goroutine
/// blocks its thread in `std::thread::sleep` (undeclared) and another keeps
/// counting the whole time; then the same with `gort::blocking`.
#[test]
fn blocking_call_hands_off_the_p() {
    watchdog("blocking_call_hands_off_the_p", 60, || {
        for declared in [false, true] {
            rt(1).run(move || {
                let count = Arc::new(AtomicU64::new(0));
                let stop = Arc::new(AtomicBool::new(false));
                let counter = {
                    let (count, stop) = (count.clone(), stop.clone());
                    gort::go(move || {
                        while !stop.load(Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::Relaxed);
                            gort::yield_now();
                        }
                    })
                };
                // Let the counter start, then block this goroutine's thread.
                while count.load(Ordering::Relaxed) == 0 {
                    gort::yield_now();
                }
                let before = count.load(Ordering::Relaxed);
                // Block until the counter has moved 100 times (at most 20 s):
                // one 300 ms sleep was enough only if the OS ran the counter's
                // new M during it.
                let sleep = || std::thread::sleep(Duration::from_millis(50));
                let t0 = std::time::Instant::now();
                while count.load(Ordering::Relaxed) - before <= 100
                    && t0.elapsed() < Duration::from_secs(20)
                {
                    if declared {
                        gort::blocking(sleep);
                    } else {
                        sleep();
                    }
                }
                let during = count.load(Ordering::Relaxed) - before;
                stop.store(true, Ordering::SeqCst);
                counter.join().unwrap();
                // With the P stuck on the sleeping thread the counter could
                // not have moved at all (between two sleeps this goroutine
                // keeps the P and does not yield).
                assert!(
                    during > 100,
                    "declared={declared}: counter moved only {during} times during the sleep"
                );
            });
        }
    });
}

/// `lock_os_thread`: the goroutine stays on its thread across parks and
/// yields, and no other goroutine runs on that thread meanwhile; after
/// `unlock_os_thread` it may move again. Locks nest.
#[test]
fn lock_os_thread_wires_goroutine_and_thread() {
    watchdog("lock_os_thread_wires_goroutine_and_thread", 60, || {
        for procs in [1usize, 2, 4] {
            rt(procs).run(|| {
                let locked_tid = Arc::new(std::sync::atomic::AtomicI64::new(0));
                let locked_done = Arc::new(AtomicBool::new(false));
                let foreign_on_locked = Arc::new(AtomicUsize::new(0));
                let (tx, rx) = gort::chan::bounded::<u32>(0);
                let locked = {
                    let (locked_tid, locked_done) = (locked_tid.clone(), locked_done.clone());
                    gort::go(move || {
                        gort::runtime::lock_os_thread();
                        gort::runtime::lock_os_thread(); // nested
                        let me = tid();
                        locked_tid.store(me, Ordering::SeqCst);
                        let mut moved = 0;
                        for _ in 0..200 {
                            let _ = rx.recv();
                            gort::yield_now();
                            gort::time::sleep(Duration::from_micros(50));
                            if tid() != me {
                                moved += 1;
                            }
                        }
                        gort::runtime::unlock_os_thread();
                        // Still locked once: still wired.
                        for _ in 0..20 {
                            gort::yield_now();
                            if tid() != me {
                                moved += 1;
                            }
                        }
                        locked_done.store(true, Ordering::SeqCst);
                        gort::runtime::unlock_os_thread();
                        moved
                    })
                };
                let others: Vec<_> = (0..8)
                    .map(|_| {
                        let (locked_tid, locked_done, foreign) = (
                            locked_tid.clone(),
                            locked_done.clone(),
                            foreign_on_locked.clone(),
                        );
                        gort::go(move || {
                            for _ in 0..300 {
                                let t = locked_tid.load(Ordering::SeqCst);
                                if t != 0 && !locked_done.load(Ordering::SeqCst) && tid() == t {
                                    foreign.fetch_add(1, Ordering::SeqCst);
                                }
                                gort::yield_now();
                            }
                        })
                    })
                    .collect();
                for i in 0..200 {
                    tx.send(i).unwrap();
                }
                assert_eq!(locked.join().unwrap(), 0, "locked goroutine changed thread");
                for h in others {
                    h.join().unwrap();
                }
                assert_eq!(
                    foreign_on_locked.load(Ordering::SeqCst),
                    0,
                    "another goroutine ran on the locked thread (procs={procs})"
                );
            });
        }
    });
}

/// A goroutine that exits while locked takes its thread with it (as in Go);
/// the runtime carries on.
#[test]
fn exiting_locked_goroutine_ends_its_thread() {
    watchdog("exiting_locked_goroutine_ends_its_thread", 60, || {
        rt(2).run(|| {
            for _ in 0..20 {
                gort::go(|| {
                    gort::runtime::lock_os_thread();
                    gort::yield_now();
                })
                .join()
                .unwrap();
            }
            let s: u64 = (0..100u64)
                .map(|i| gort::go(move || i))
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(s, 4950);
        });
    });
}

/// Under a stopped world, a value held only by a frozen hog (in a register
/// or on its stack) and one held by a parked goroutine are both found by
/// scanning the listed registers and stacks.
#[test]
fn stopped_world_finds_values_in_frozen_and_parked_goroutines() {
    #[inline(never)]
    fn hog(stop: &AtomicBool, secret: u64) -> u64 {
        let s = black_box(secret);
        let mut x = 1u64;
        while !stop.load(Ordering::Relaxed) {
            x = x.rotate_left(5) ^ s;
        }
        black_box(s) ^ x
    }
    watchdog(
        "stopped_world_finds_values_in_frozen_and_parked_goroutines",
        60,
        || {
            for procs in [1usize, 2] {
                rt(procs).run(|| {
                    let mut r = Rng(seed() ^ procs as u64);
                    let hog_secret = r.next() | 1;
                    let parked_secret = r.next() | 1;
                    let stop = Arc::new(AtomicBool::new(false));
                    let started = Arc::new(AtomicBool::new(false));
                    let h = {
                        let (stop, started) = (stop.clone(), started.clone());
                        gort::go(move || {
                            started.store(true, Ordering::SeqCst);
                            hog(&stop, hog_secret)
                        })
                    };
                    let (tx, rx) = gort::chan::bounded::<u64>(0);
                    let parked = gort::go(move || {
                        let keep = black_box(parked_secret);
                        let v = rx.recv().unwrap();
                        black_box(keep) ^ v
                    });
                    while !started.load(Ordering::SeqCst) {
                        gort::yield_now();
                    }
                    // `parked` must be parked in `recv` (its registers saved
                    // on its stack) when the world stops. At GOMAXPROCS 2 the
                    // hog can start on the other P before this P ever ran
                    // `parked` (this M descheduled after the spawns), and a
                    // goroutine that never ran has no stack to scan: wait for
                    // it, looking under a stopped world.
                    let parked_id = parked.id();
                    let is_parked = || {
                        let w = gort::runtime::stop_the_world();
                        let mut waiting = false;
                        w.for_each_goroutine(|g| {
                            if g.goid() == parked_id {
                                waiting = matches!(
                                    g.status(),
                                    gort::runtime::GoroutineStatus::Waiting(_)
                                );
                            }
                        });
                        waiting
                    };
                    while !is_parked() {
                        gort::yield_now();
                    }
                    let w = gort::runtime::stop_the_world();
                    let (mut in_hog, mut in_parked, mut heap_ptr_seen) = (false, false, 0usize);
                    let mut statuses = Vec::with_capacity(16);
                    w.for_each_goroutine(|g| {
                        if statuses.len() < statuses.capacity() {
                            statuses.push(g.status());
                        }
                        let mut found_hog = g
                            .registers()
                            .is_some_and(|regs| regs.iter().any(|&v| v as u64 == hog_secret));
                        g.scan_words(|_, v| {
                            if v as u64 == hog_secret {
                                found_hog = true;
                            }
                            if v as u64 == parked_secret {
                                in_parked = true;
                            }
                            heap_ptr_seen += 1;
                        });
                        in_hog |= found_hog;
                    });
                    drop(w);
                    stop.store(true, Ordering::SeqCst);
                    tx.send(0).unwrap();
                    black_box(h.join().unwrap());
                    parked.join().unwrap();
                    assert!(heap_ptr_seen > 0, "no stack word scanned");
                    assert!(
                        in_hog,
                        "hog's secret not found (procs={procs}, {statuses:?})"
                    );
                    assert!(
                        in_parked,
                        "parked goroutine's secret not found (procs={procs}, {statuses:?})"
                    );
                });
            }
        },
    );
}

/// Undeclared blocking on a pipe and on a `std::sync::Mutex` at
/// GOMAXPROCS=1: the goroutine that will unblock them needs the only P
/// while their threads are blocked, so without the hand-off these hang.
#[test]
fn undeclared_blocking_read_and_std_mutex_hand_off_the_p() {
    watchdog(
        "undeclared_blocking_read_and_std_mutex_hand_off_the_p",
        60,
        || {
            rt(1).run(|| {
                // A blocking pipe read.
                let (r, w) = nix::unistd::pipe().expect("pipe");
                let reader = gort::go(move || {
                    let mut buf = [0u8; 4];
                    let n = nix::unistd::read(&r, &mut buf).expect("read");
                    buf[..n].to_vec()
                });
                let writer = gort::go(move || {
                    gort::time::sleep(Duration::from_millis(20));
                    nix::unistd::write(&w, b"ping").expect("write");
                });
                writer.join().unwrap();
                assert_eq!(reader.join().unwrap(), b"ping");

                // A std::sync::Mutex held across a gort sleep by one
                // goroutine while another blocks its thread on it.
                let m = Arc::new(std::sync::Mutex::new(0u32));
                let (tx, rx) = gort::chan::bounded::<()>(0);
                let holder = {
                    let m = m.clone();
                    gort::go(move || {
                        let mut g = m.lock().unwrap();
                        tx.send(()).unwrap();
                        gort::time::sleep(Duration::from_millis(20));
                        *g += 1;
                    })
                };
                rx.recv().unwrap();
                let waiter = {
                    let m = m.clone();
                    gort::go(move || *m.lock().unwrap() + 1)
                };
                holder.join().unwrap();
                assert_eq!(waiter.join().unwrap(), 2);
            });
        },
    );
}
