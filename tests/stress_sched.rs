//! Seeded, bounded stress of the scheduler: oversubscribed GOMAXPROCS (up
//! to 16 Ps on 2 cores), nested spawns, a million goroutines, joins from
//! goroutines and from plain threads, panics, scopes. `GORT_SEED=n` replays
//! a run; every test has a watchdog.

mod common;
use common::{Rng, rt, seed, watchdog};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the random tree rooted at a node with this seed.
fn tree_serial(seed: u64, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let mut r = Rng(seed | 1);
    let k = r.below(4);
    1 + (0..k)
        .map(|_| tree_serial(r.next(), depth - 1))
        .sum::<u64>()
}

fn tree_parallel(seed: u64, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let mut r = Rng(seed | 1);
    let k = r.below(4);
    let hs: Vec<_> = (0..k)
        .map(|_| {
            let s = r.next();
            gort::go(move || {
                if s % 3 == 0 {
                    gort::yield_now();
                }
                tree_parallel(s, depth - 1)
            })
        })
        .collect();
    1 + hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
}

#[test]
fn nested_spawn_trees_at_every_gomaxprocs() {
    let s0 = seed();
    watchdog("nested_spawn_trees_at_every_gomaxprocs", 120, || {
        for procs in [1usize, 2, 3, 4, 8, 16] {
            let mut r = Rng(s0 ^ procs as u64);
            for _ in 0..4 {
                let s = r.next();
                let want = tree_serial(s, 9);
                let got = rt(procs).run(move || tree_parallel(s, 9));
                assert_eq!(got, want, "procs={procs} seed={s}");
            }
        }
    });
}

#[test]
fn a_million_goroutines() {
    watchdog("a_million_goroutines", 120, || {
        for procs in [2usize, 8] {
            let n = 1_000_000u64;
            let sum = Arc::new(AtomicU64::new(0));
            let s = sum.clone();
            rt(procs).run(move || {
                let wg = Arc::new(gort::sync::WaitGroup::new());
                wg.add(n as i64);
                for i in 0..n {
                    let (wg, s) = (wg.clone(), s.clone());
                    drop(gort::go(move || {
                        s.fetch_add(i, Ordering::Relaxed);
                        wg.done();
                    }));
                }
                wg.wait();
            });
            assert_eq!(
                sum.load(Ordering::Relaxed),
                n * (n - 1) / 2,
                "procs={procs}"
            );
        }
    });
}

#[test]
fn a_hundred_thousand_parked_at_once() {
    watchdog("a_hundred_thousand_parked_at_once", 120, || {
        let n = 100_000;
        rt(4).run(move || {
            let release = Arc::new(gort::sync::WaitGroup::new());
            let started = Arc::new(gort::sync::WaitGroup::new());
            release.add(1);
            started.add(n);
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let (release, started) = (release.clone(), started.clone());
                    gort::go(move || {
                        started.done();
                        release.wait();
                        i
                    })
                })
                .collect();
            started.wait();
            assert!(gort::runtime::num_goroutine() >= n as usize);
            release.done();
            let s: i64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(s, n * (n - 1) / 2);
        });
    });
}

#[test]
fn joins_from_goroutines_and_threads_with_panics() {
    let s0 = seed();
    watchdog("joins_from_goroutines_and_threads_with_panics", 120, || {
        for procs in [1usize, 2, 4, 16] {
            let mut r = Rng(s0.wrapping_add(procs as u64));
            let plan: Vec<(u64, bool, bool)> = (0..2000)
                .map(|_| (r.next(), r.below(10) == 0, r.below(2) == 0))
                .collect();
            let plan = Arc::new(plan);
            let p2 = plan.clone();
            let (ok, bad) = rt(procs).run(move || {
                let mut by_thread = Vec::new();
                let mut by_goroutine = Vec::new();
                for &(v, panics, from_thread) in p2.iter() {
                    let h = gort::go(move || {
                        if v % 7 == 0 {
                            gort::yield_now();
                        }
                        if panics {
                            panic!("planned panic {v}");
                        }
                        v
                    });
                    if from_thread {
                        by_thread.push(h)
                    } else {
                        by_goroutine.push(h)
                    }
                }
                // Plain threads join half of them (blocking the thread).
                let t = std::thread::spawn(move || {
                    by_thread.into_iter().map(|h| h.join()).collect::<Vec<_>>()
                });
                // A goroutine joins the other half (parking).
                let g = gort::go(move || {
                    by_goroutine
                        .into_iter()
                        .map(|h| h.join())
                        .collect::<Vec<_>>()
                });
                let mut all = g.join().unwrap();
                // Wait for the thread without blocking our M forever.
                while !t.is_finished() {
                    gort::yield_now();
                }
                all.extend(t.join().unwrap());
                let ok = all.iter().filter(|r| r.is_ok()).count();
                (ok, all.len() - ok)
            });
            let want_bad = plan.iter().filter(|p| p.1).count();
            assert_eq!(bad, want_bad, "procs={procs}");
            assert_eq!(ok + bad, plan.len());
        }
    });
}

#[test]
fn nested_scopes_under_oversubscription() {
    watchdog("nested_scopes_under_oversubscription", 120, || {
        let mut grid = vec![vec![0u64; 64]; 64];
        rt(16).run(|| {
            gort::scope(|s| {
                for (i, row) in grid.iter_mut().enumerate() {
                    s.go(move || {
                        gort::scope(|s2| {
                            for (j, cell) in row.iter_mut().enumerate() {
                                s2.go(move || {
                                    if (i + j) % 5 == 0 {
                                        gort::yield_now();
                                    }
                                    *cell = (i * 64 + j) as u64;
                                });
                            }
                        });
                    });
                }
            });
        });
        let total: u64 = grid.iter().flatten().sum();
        assert_eq!(total, (0..4096u64).sum());
    });
}

#[test]
fn gomaxprocs_changes_under_load() {
    watchdog("gomaxprocs_changes_under_load", 120, || {
        rt(4).run(|| {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let changer = gort::go(move || {
                let mut r = Rng(99);
                while !s.load(Ordering::Acquire) {
                    gort::runtime::set_gomaxprocs(1 + r.below(16) as usize);
                    gort::yield_now();
                }
            });
            for round in 0..20u64 {
                let got = tree_parallel(round + 1, 7);
                assert_eq!(got, tree_serial(round + 1, 7));
            }
            stop.store(true, Ordering::Release);
            changer.join().unwrap();
        });
    });
}

/// Regression (issue 2): shrinking GOMAXPROCS while an M was about to retire
/// its P, then growing it again, could lose the P in the retired list and
/// leave the runtime on one P (found by the steal benchmark: 2 Ps used one
/// CPU). The race window is narrow, so this test does not reliably hit it;
/// it checks the invariant that matters: after any toggling, `gomaxprocs`
/// goroutines again run at the same time (the spin hand-off below hangs —
/// and the watchdog fails the test — if they cannot).
#[test]
fn issue2_gomaxprocs_regrow_keeps_parallelism() {
    watchdog("issue2_gomaxprocs_regrow_keeps_parallelism", 120, || {
        rt(2).run(|| {
            let mut r = Rng(7);
            for _ in 0..2_000 {
                // Keep the second M busy spinning/retiring while we toggle.
                let hs: Vec<_> = (0..4).map(|_| gort::go(gort::yield_now)).collect();
                gort::runtime::set_gomaxprocs(1);
                if r.below(2) == 0 {
                    gort::yield_now();
                }
                gort::runtime::set_gomaxprocs(2);
                for h in hs {
                    h.join().unwrap();
                }
            }
            let x = Arc::new(AtomicU64::new(0));
            let hs: Vec<_> = (0..2u64)
                .map(|p| {
                    let x = x.clone();
                    gort::go(move || {
                        for i in 0..100u64 {
                            let want = 2 * i + p;
                            while x.load(Ordering::SeqCst) != want {
                                std::hint::spin_loop();
                            }
                            x.store(want + 1, Ordering::SeqCst);
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
