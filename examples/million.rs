//! The demo: start a million goroutines and say what it cost.
//!
//! ```text
//! cargo run --release --example million            # 1,000,000 goroutines
//! cargo run --release --example million -- 200000  # another count
//! GOMAXPROCS=1 cargo run --release --example million
//! ```
//!
//! Phase 1 spawns N goroutines that finish at once (spawn + run + exit).
//! Phase 2 spawns N goroutines that all park at the same time, and reports
//! the memory each parked goroutine costs (RSS and page tables).

use std::sync::Arc;
use std::time::Instant;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    gort::run(|| {
        println!(
            "gort: GOMAXPROCS={} (NumCPU={}), stack reservation {} KiB, guards: {}",
            gort::runtime::gomaxprocs(),
            gort::runtime::num_cpu(),
            gort::runtime::DEFAULT_STACK_SIZE / 1024,
            {
                gort::go(|| ()).join().unwrap();
                gort::runtime::stack_guard_mode()
            }
        );

        // Phase 1: spawn and finish.
        let wg = Arc::new(gort::sync::WaitGroup::new());
        wg.add(n as i64);
        let t = Instant::now();
        for _ in 0..n {
            let wg = wg.clone();
            drop(gort::go(move || wg.done()));
        }
        wg.wait();
        let el = t.elapsed();
        println!(
            "spawned and finished {n} goroutines in {:.1} ms: {:.0} ns per goroutine",
            el.as_secs_f64() * 1e3,
            el.as_nanos() as f64 / n as f64
        );

        // Phase 2: all parked at once.
        let (rss0, pte0) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let release = Arc::new(gort::sync::WaitGroup::new());
        let started = Arc::new(gort::sync::WaitGroup::new());
        release.add(1);
        started.add(n as i64);
        let t = Instant::now();
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (release, started) = (release.clone(), started.clone());
                gort::go(move || {
                    started.done();
                    release.wait();
                    i as u64
                })
            })
            .collect();
        started.wait();
        let el = t.elapsed();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (rss1, pte1) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        println!(
            "{} goroutines parked at once ({:.1} ms to start them): {:.0} bytes RSS + {:.0} bytes page tables each",
            gort::runtime::num_goroutine() - 1,
            el.as_secs_f64() * 1e3,
            (rss1.saturating_sub(rss0) * 1024) as f64 / n as f64,
            (pte1.saturating_sub(pte0) * 1024) as f64 / n as f64,
        );
        release.done();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (n as u64) * (n as u64 - 1) / 2);
        println!("all {n} woke up and were joined; sum checked");
    });
}
