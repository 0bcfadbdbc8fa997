//! The goroutine-aware `sync` primitives through the public façade: Mutex
//! (including starvation mode), RwLock, Condvar, Once/OnceLock, Semaphore,
//! Barrier — from goroutines at several GOMAXPROCS and from plain threads.

mod common;
use common::{Rng, rt, seed, tid, watchdog};
use gort::sync::{Barrier, Condvar, Mutex, Once, OnceLock, RwLock, Semaphore, WaitGroup};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Spawns `n` goroutines running `f(i)` and waits for all of them. A
/// goroutine's panic (a failed assertion) is re-raised here once all are
/// done, so it fails the test instead of leaving `wait` hung on a `done`
/// that never came.
fn fan_out(n: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let wg = Arc::new(WaitGroup::new());
    let panicked = Arc::new(std::sync::Mutex::new(None));
    for i in 0..n {
        wg.add(1);
        let (f, wg, panicked) = (f.clone(), wg.clone(), panicked.clone());
        gort::go(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i)));
            if let Err(p) = r {
                panicked.lock().unwrap().get_or_insert(p);
            }
            wg.done();
        });
    }
    wg.wait();
    if let Some(p) = panicked.lock().unwrap().take() {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn mutex_mutual_exclusion_across_gomaxprocs() {
    watchdog("mutex_mutual_exclusion_across_gomaxprocs", 60, || {
        let s = seed();
        for procs in [1, 2, 4, 16] {
            let n = if procs == 1 { 8 } else { 16 };
            let iters = 2_000u64;
            let m = Arc::new(Mutex::new(0u64));
            let inside = Arc::new(AtomicBool::new(false));
            let m2 = m.clone();
            rt(procs).run(move || {
                fan_out(n, move |i| {
                    let mut rng = Rng(s ^ ((i as u64 + 1) * 0x9e37_79b9));
                    for _ in 0..iters {
                        let mut g = m2.lock();
                        assert!(!inside.swap(true, Ordering::Relaxed), "two owners");
                        let v = *g;
                        if rng.below(16) == 0 {
                            gort::yield_now(); // force contention while held
                        }
                        *g = v + 1;
                        inside.store(false, Ordering::Relaxed);
                    }
                });
            });
            assert_eq!(*m.lock(), n as u64 * iters, "GOMAXPROCS={procs}");
        }
    });
}

#[test]
fn mutex_try_lock_get_mut_into_inner() {
    watchdog("mutex_try_lock_get_mut_into_inner", 30, || {
        let mut m = Mutex::new(vec![1]);
        m.get_mut().push(2);
        {
            let g = m.try_lock().expect("free");
            assert!(m.try_lock().is_none());
            assert_eq!(*g, [1, 2]);
        }
        assert_eq!(m.into_inner(), [1, 2]);
    });
}

#[test]
fn mutex_no_poisoning() {
    watchdog("mutex_no_poisoning", 30, || {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        rt(2).run(move || {
            let h = gort::go(move || {
                let mut g = m2.lock();
                *g = 2;
                panic!("inside the critical section");
            });
            assert!(h.join().is_err());
        });
        assert_eq!(*m.lock(), 2, "unlocked by unwinding, data as left");
    });
}

/// A waiter stuck behind a goroutine that re-locks in a tight loop must get
/// the lock within a bounded number of the hammer's iterations: after it has
/// waited 1 ms the mutex goes into starvation mode and the next unlock hands
/// off to it. (Without starvation mode the hammer re-barges every time.)
#[test]
fn mutex_starvation_mode_engages() {
    watchdog("mutex_starvation_mode_engages", 30, || {
        for procs in [1, 2, 4] {
            let m = Arc::new(Mutex::new(0u64));
            let done = Arc::new(AtomicBool::new(false));
            let seen_starving = Arc::new(AtomicBool::new(false));
            let (m2, d2, s2) = (m.clone(), done.clone(), seen_starving.clone());
            let (before, after) = rt(procs).run(move || {
                let (m3, d3, s3) = (m2.clone(), d2.clone(), s2.clone());
                let hammer = gort::go(move || {
                    while !d3.load(Ordering::Acquire) {
                        let mut g = m3.lock();
                        *g += 1;
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(50) {
                            std::hint::spin_loop();
                        }
                        // Let the waiter run while we hold the lock (this makes
                        // the test independent of how many CPUs there are).
                        gort::yield_now();
                        // The waiter sets STARVING while queued behind us.
                        if m3.is_starving() {
                            s3.store(true, Ordering::Relaxed);
                        }
                    }
                });
                // Rounds until one engaged starvation mode (a round can end
                // at once if the waiter barges in while the hammer is
                // between iterations, or the OS deschedules the hammer).
                let mut worst = 0;
                for _ in 0..50 {
                    let start = *m2.lock();
                    while *m2.lock() < start + 5 {
                        gort::yield_now();
                    }
                    let before = *m2.lock();
                    let after = *m2.lock();
                    worst = worst.max(after - before);
                    if s2.load(Ordering::Relaxed) {
                        break;
                    }
                }
                d2.store(true, Ordering::Release);
                hammer.join().unwrap();
                (0, worst)
            });
            // ~1 ms of 50 µs iterations plus wake-up latency; far below
            // what an unfair lock would allow (unbounded).
            assert!(
                after - before < 2_000,
                "GOMAXPROCS={procs}: waiter let the hammer run {} times",
                after - before
            );
            assert!(
                seen_starving.load(Ordering::Relaxed),
                "GOMAXPROCS={}: starvation mode never engaged (worst wait: {} iterations)",
                procs,
                after - before
            );
            assert!(!m.is_starving(), "left starvation mode with no waiters");
        }
    });
}

#[test]
fn mutex_plain_threads_and_goroutines() {
    watchdog("mutex_plain_threads_and_goroutines", 30, || {
        let m = Arc::new(Mutex::new(0u64));
        let m2 = m.clone();
        rt(4).run(move || {
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let m = m2.clone();
                    std::thread::spawn(move || {
                        for _ in 0..5_000 {
                            *m.lock() += 1;
                        }
                    })
                })
                .collect();
            let m3 = m2.clone();
            fan_out(12, move |_| {
                for _ in 0..2_000 {
                    let mut g = m3.lock();
                    *g += 1;
                    if *g % 64 == 0 {
                        gort::yield_now();
                    }
                }
            });
            for t in threads {
                t.join().unwrap();
            }
        });
        assert_eq!(*m.lock(), 3 * 5_000 + 12 * 2_000);
    });
}

#[test]
fn rwlock_readers_run_concurrently() {
    watchdog("rwlock_readers_run_concurrently", 30, || {
        for procs in [1, 4] {
            let l = Arc::new(RwLock::new(5));
            let b = Arc::new(Barrier::new(4));
            rt(procs).run(move || {
                fan_out(4, move |_| {
                    let g = l.read();
                    // All four must hold a read guard at once to pass.
                    b.wait();
                    assert_eq!(*g, 5);
                });
            });
        }
    });
}

#[test]
fn rwlock_writer_exclusive() {
    watchdog("rwlock_writer_exclusive", 30, || {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let l2 = l.clone();
        rt(4).run(move || {
            fan_out(12, move |i| {
                for k in 0..1_000 {
                    if (i + k) % 3 == 0 {
                        let mut g = l2.write();
                        g.0 += 1;
                        if k % 16 == 0 {
                            gort::yield_now();
                        }
                        g.1 += 1;
                    } else {
                        let g = l2.read();
                        assert_eq!(g.0, g.1, "reader saw a half-done write");
                        assert!(l2.try_write().is_none());
                    }
                }
            });
        });
        let (a, b) = *l.read();
        assert_eq!(a, b);
        assert_eq!(
            a,
            (0..12u64)
                .map(|i| (0..1000).filter(|k| (i + k) % 3 == 0).count() as u64)
                .sum()
        );
    });
}

/// Readers that continuously overlap would starve a writer on a
/// reader-preferring lock; here the queued writer blocks new readers.
#[test]
fn rwlock_writer_not_starved() {
    watchdog("rwlock_writer_not_starved", 30, || {
        let l = Arc::new(RwLock::new(0u32));
        let done = Arc::new(AtomicBool::new(false));
        rt(4).run(move || {
            let mut readers = Vec::new();
            for _ in 0..4 {
                let (l, done) = (l.clone(), done.clone());
                readers.push(gort::go(move || {
                    let mut n = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let g = l.read();
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                        gort::yield_now();
                        drop(g);
                        n += 1;
                    }
                    n
                }));
            }
            std::thread::sleep(Duration::from_millis(5));
            *l.write() = 1;
            done.store(true, Ordering::Release);
            for r in readers {
                r.join().unwrap();
            }
            assert_eq!(*l.read(), 1);
            assert!(l.try_read().is_some());
        });
    });
}

#[test]
fn condvar_producer_consumer() {
    watchdog("condvar_producer_consumer", 30, || {
        for procs in [1, 4] {
            struct Q {
                q: Mutex<(VecDeque<u64>, usize)>,
                not_empty: Condvar,
                not_full: Condvar,
            }
            let q = Arc::new(Q {
                q: Mutex::new((VecDeque::new(), 0)),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
            });
            let total = Arc::new(AtomicUsize::new(0));
            let t2 = total.clone();
            const PRODUCERS: usize = 3;
            const ITEMS: u64 = 2_000;
            rt(procs).run(move || {
                fan_out(PRODUCERS * 2, move |i| {
                    if i < PRODUCERS {
                        for v in 1..=ITEMS {
                            let mut g = q.q.lock();
                            q.not_full.wait_while(&mut g, |s| s.0.len() >= 4);
                            g.0.push_back(v);
                            drop(g);
                            q.not_empty.notify_one();
                        }
                        let mut g = q.q.lock();
                        g.1 += 1;
                        drop(g);
                        q.not_empty.notify_all();
                    } else {
                        loop {
                            let mut g = q.q.lock();
                            q.not_empty
                                .wait_while(&mut g, |s| s.0.is_empty() && s.1 < PRODUCERS);
                            match g.0.pop_front() {
                                Some(v) => {
                                    drop(g);
                                    q.not_full.notify_one();
                                    t2.fetch_add(v as usize, Ordering::Relaxed);
                                }
                                None => break, // empty and all producers done
                            }
                        }
                    }
                });
            });
            let want = PRODUCERS as u64 * ITEMS * (ITEMS + 1) / 2;
            assert_eq!(
                total.load(Ordering::Relaxed) as u64,
                want,
                "GOMAXPROCS={procs}"
            );
        }
    });
}

#[test]
fn condvar_from_plain_thread() {
    watchdog("condvar_from_plain_thread", 30, || {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        rt(2).run(move || {
            let t = std::thread::spawn(move || {
                let mut g = p.0.lock();
                p.1.wait_while(&mut g, |ready| !*ready);
            });
            std::thread::sleep(Duration::from_millis(2));
            *pair.0.lock() = true;
            pair.1.notify_all();
            t.join().unwrap();
        });
    });
}

#[test]
fn once_runs_once_with_100_racers() {
    watchdog("once_runs_once_with_100_racers", 30, || {
        for procs in [1, 4] {
            let once = Arc::new(Once::new());
            let cell = Arc::new(OnceLock::<u64>::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let lock_runs = Arc::new(AtomicUsize::new(0));
            let (r2, l2) = (runs.clone(), lock_runs.clone());
            rt(procs).run(move || {
                fan_out(100, move |i| {
                    once.call_once(|| {
                        for _ in 0..10 {
                            gort::yield_now(); // let the others pile up and park
                        }
                        r2.fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(once.is_completed());
                    let v = cell.get_or_init(|| {
                        gort::yield_now();
                        l2.fetch_add(1, Ordering::Relaxed);
                        i as u64 + 1000
                    });
                    assert!(*v >= 1000);
                    assert_eq!(cell.get(), Some(v));
                });
            });
            assert_eq!(runs.load(Ordering::Relaxed), 1);
            assert_eq!(lock_runs.load(Ordering::Relaxed), 1);
        }
    });
}

#[test]
fn once_lock_panic_then_retry() {
    watchdog("once_lock_panic_then_retry", 30, || {
        let cell = Arc::new(OnceLock::<u32>::new());
        let once = Arc::new(Once::new());
        let c = cell.clone();
        let o = once.clone();
        rt(4).run(move || {
            // Once: a panicking `f` does not complete it; the next call runs.
            let o2 = o.clone();
            assert!(
                gort::go(move || o2.call_once(|| panic!("once failed")))
                    .join()
                    .is_err()
            );
            assert!(!o.is_completed());
            // OnceLock: the others pile up (parked) behind a slow initialiser
            // that then panics; one of them retries and wins.
            let started = Arc::new(AtomicBool::new(false));
            let (c2, st2) = (c.clone(), started.clone());
            let bad = gort::go(move || {
                c2.get_or_init(|| {
                    st2.store(true, Ordering::Release);
                    for _ in 0..20 {
                        gort::yield_now();
                    }
                    panic!("init failed")
                });
            });
            while !started.load(Ordering::Acquire) {
                gort::yield_now();
            }
            let (c3, o3) = (c.clone(), o.clone());
            fan_out(10, move |_| {
                assert_eq!(*c3.get_or_init(|| 42), 42);
                o3.call_once(|| {});
                assert!(o3.is_completed());
            });
            assert!(bad.join().is_err());
            assert_eq!(c.set(7), Err(7));
        });
        assert_eq!(cell.get(), Some(&42));
        assert!(once.is_completed());
    });
}

#[test]
fn semaphore_limits_concurrency() {
    watchdog("semaphore_limits_concurrency", 30, || {
        for procs in [1, 4] {
            let sem = Arc::new(Semaphore::new(3));
            let cur = Arc::new(AtomicUsize::new(0));
            let max = Arc::new(AtomicUsize::new(0));
            let (s2, c2, m2) = (sem.clone(), cur.clone(), max.clone());
            rt(procs).run(move || {
                fan_out(16, move |_| {
                    for _ in 0..50 {
                        let _p = s2.acquire();
                        let now = c2.fetch_add(1, Ordering::SeqCst) + 1;
                        m2.fetch_max(now, Ordering::SeqCst);
                        gort::yield_now();
                        c2.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            });
            let m = max.load(Ordering::SeqCst);
            assert!((1..=3).contains(&m), "max concurrent {m}");
            assert_eq!(sem.available_permits(), 3);
        }
    });
}

#[test]
fn semaphore_fifo_and_manual_release() {
    watchdog("semaphore_fifo_and_manual_release", 30, || {
        let sem = Arc::new(Semaphore::new(1));
        sem.acquire().forget();
        assert!(sem.try_acquire().is_none());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut ts = Vec::new();
        for i in 0..4 {
            let (sem, order) = (sem.clone(), order.clone());
            let (tid_s, tid_r) = std::sync::mpsc::channel();
            ts.push(std::thread::spawn(move || {
                tid_s.send(tid()).unwrap();
                let _p = sem.acquire();
                order.lock().push(i);
            }));
            // Queue in order: thread i must be asleep in `acquire` (it can
            // sleep nowhere else before it) before thread i + 1 starts. A
            // fixed 20 ms let a new thread that the OS had not yet run on a
            // loaded host queue behind the next one.
            let tid = tid_r.recv().unwrap();
            while !thread_sleeping(tid) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        sem.release();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2, 3]);
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 3);
    });
}

/// Is thread `tid` of this process asleep (state `S` in its `stat`)?
fn thread_sleeping(tid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // "tid (comm) S ...": the state follows the last ')'.
    let state = stat[stat.rfind(')').unwrap() + 1..]
        .trim_start()
        .chars()
        .next();
    state == Some('S')
}

#[test]
fn barrier_three_generations() {
    watchdog("barrier_three_generations", 30, || {
        for procs in [1, 4] {
            const N: usize = 8;
            let b = Arc::new(Barrier::new(N));
            let arrived = Arc::new(AtomicUsize::new(0));
            let leaders = Arc::new(AtomicUsize::new(0));
            let (a2, l2) = (arrived.clone(), leaders.clone());
            rt(procs).run(move || {
                fan_out(N, move |_| {
                    for gen_ in 0..3 {
                        a2.fetch_add(1, Ordering::SeqCst);
                        let r = b.wait();
                        assert!(a2.load(Ordering::SeqCst) >= N * (gen_ + 1));
                        if r.is_leader() {
                            l2.fetch_add(1, Ordering::SeqCst);
                        }
                        // Second barrier: nobody races into the next
                        // generation's count before all checked this one.
                        b.wait();
                    }
                });
            });
            assert_eq!(arrived.load(Ordering::SeqCst), 3 * N);
            assert_eq!(leaders.load(Ordering::SeqCst), 3);
        }
    });
}

/// Mutual exclusion through starvation-mode hand-offs: goroutines at
/// GOMAXPROCS 8 on 2 cores and two plain threads hammer one mutex, some
/// critical sections longer than the 1 ms starvation threshold, so the
/// mutex keeps entering and leaving starvation mode while lockers barge.
/// `inside` catches two holders at once; the count catches a lost update.
#[test]
fn mutex_exclusion_across_starvation_hand_offs() {
    watchdog("mutex_exclusion_across_starvation_hand_offs", 60, || {
        let mut rng = Rng(seed());
        let long_every = 50 + rng.below(50);
        let m = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicBool::new(false));
        let starved = Arc::new(AtomicBool::new(false));
        let section = {
            let (m, inside, starved) = (m.clone(), inside.clone(), starved.clone());
            move |i: u64| {
                let mut g = m.lock();
                assert!(!inside.swap(true, Ordering::AcqRel), "two holders");
                *g += 1;
                if i % long_every == 0 {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(1500) {
                        std::hint::spin_loop();
                    }
                }
                if m.is_starving() {
                    starved.store(true, Ordering::Relaxed);
                }
                inside.store(false, Ordering::Release);
            }
        };
        const PER: u64 = 2_000;
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let s = section.clone();
                std::thread::spawn(move || (0..PER).for_each(&s))
            })
            .collect();
        rt(8).run({
            let s = section.clone();
            move || fan_out(8, move |_| (0..PER).for_each(&s))
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 10 * PER);
        eprintln!("starvation mode seen: {}", starved.load(Ordering::Relaxed));
    });
}
