//! The preemption storm (issue 4): goroutines doing ordinary Rust things —
//! `Box`/`Vec`/`String` allocation, `print!` (std's re-entrant stdout
//! lock), a `std::sync::Mutex`, thread-locals — among hogs that never call
//! gort, while another goroutine stops the world every few milliseconds,
//! at GOMAXPROCS 1–4. Nothing may deadlock, no goroutine may be lost, and
//! every checksum must come out right.
//!
//! `GORT_STORM_SECS` sets the seconds per GOMAXPROCS value (default 5: about
//! 20 s in all); `GORT_STORM_PROCS=n` runs only GOMAXPROCS=n.

mod common;

use common::{Rng, seed, watchdog};
use std::cell::Cell;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

thread_local! {
    static TL: Cell<u64> = const { Cell::new(0) };
}

fn secs() -> u64 {
    std::env::var("GORT_STORM_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// One worker round: allocate, format, lock, touch a thread-local; returns
/// what it added to the shared sum.
fn work(r: &mut Rng, shared: &Mutex<u64>) -> u64 {
    let n = 1 + r.below(64) as usize;
    let v: Vec<u64> = (0..n as u64).collect();
    let b = Box::new(v.iter().sum::<u64>());
    let s = format!("{}-{}", *b, n);
    assert_eq!(s, format!("{}-{}", n as u64 * (n as u64 - 1) / 2, n));
    // std's stdout lock is re-entrant by thread: a frozen holder must not
    // let another goroutine on the same thread in.
    print!("");
    let _ = std::io::stdout().flush();
    // A thread-local read-modify-write: never split by a switch.
    TL.with(|t| {
        let x = t.get();
        t.set(black_box(x) + 1);
    });
    let add = *b % 1000;
    *shared.lock().unwrap() += add;
    add
}

#[inline(never)]
fn hog(stop: &AtomicBool, budget: u64) -> u64 {
    let mut x = budget | 1;
    let mut i = 0;
    while i < budget && !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i += 1;
    }
    black_box(x)
}

#[test]
fn preemption_storm() {
    let s0 = seed();
    let per = secs();
    watchdog("preemption_storm", 60 + 8 * per, || {
        let only: Option<usize> = std::env::var("GORT_STORM_PROCS")
            .ok()
            .and_then(|v| v.parse().ok());
        for procs in (1..=4usize).filter(|p| only.is_none_or(|o| o == *p)) {
            let rt = gort::Runtime::builder().gomaxprocs(procs).build().unwrap();
            let (stw_rounds, expected, got, finished) = rt.run(move || {
                let deadline = Instant::now() + Duration::from_secs(per);
                let stop = Arc::new(AtomicBool::new(false));
                let shared = Arc::new(Mutex::new(0u64));
                let expected = Arc::new(AtomicU64::new(0));
                let finished = Arc::new(AtomicU64::new(0));
                // Hogs: one more than there are Ps.
                let hogs: Vec<_> = (0..procs + 1)
                    .map(|_| {
                        let stop = stop.clone();
                        gort::go(move || {
                            let mut n = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                n = n.wrapping_add(hog(&stop, 50_000_000));
                            }
                            n
                        })
                    })
                    .collect();
                // Workers.
                let workers: Vec<_> = (0..16u64)
                    .map(|w| {
                        let (stop, shared, expected, finished) = (
                            stop.clone(),
                            shared.clone(),
                            expected.clone(),
                            finished.clone(),
                        );
                        gort::go(move || {
                            let mut r = Rng(s0 ^ (w + 1).wrapping_mul(0x9e37_79b9) ^ procs as u64);
                            while !stop.load(Ordering::Relaxed) {
                                let add = work(&mut r, &shared);
                                expected.fetch_add(add, Ordering::Relaxed);
                                if r.below(8) == 0 {
                                    gort::yield_now();
                                }
                                if r.below(64) == 0 {
                                    gort::time::sleep(Duration::from_micros(r.below(200)));
                                }
                            }
                            finished.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                // Forced stop-the-worlds.
                let stopper = {
                    let stop = stop.clone();
                    gort::go(move || {
                        let mut rounds = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let w = gort::runtime::stop_the_world();
                            let mut n = 0;
                            w.for_each_goroutine(|g| {
                                n += 1;
                                let mut words = 0usize;
                                g.scan_words(|_, _| words += 1);
                                black_box(words);
                            });
                            drop(w);
                            assert!(n > 0);
                            rounds += 1;
                            gort::time::sleep(Duration::from_millis(2));
                        }
                        rounds
                    })
                };
                while Instant::now() < deadline {
                    gort::time::sleep(Duration::from_millis(20));
                }
                stop.store(true, Ordering::SeqCst);
                let rounds = stopper.join().unwrap();
                for h in workers {
                    h.join().unwrap();
                }
                for h in hogs {
                    h.join().unwrap();
                }
                let got = *shared.lock().unwrap();
                (
                    rounds,
                    expected.load(Ordering::SeqCst),
                    got,
                    finished.load(Ordering::SeqCst),
                )
            });
            assert_eq!(finished, 16, "procs={procs}: a worker was lost");
            assert_eq!(got, expected, "procs={procs}: shared sum corrupted");
            assert!(stw_rounds > 0, "procs={procs}: no stop-the-world completed");
            eprintln!("storm procs={procs}: {stw_rounds} stop-the-worlds, sum {got}");
        }
    });
}
