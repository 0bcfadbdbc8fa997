//! Helpers shared by the integration tests.
#![allow(missing_docs)]
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Runs `f`; if it has not returned after `secs`, prints which test hung
/// and exits the whole test process with status 3 (a hang is a failure,
/// never a stuck CI job).
pub(crate) fn watchdog<T>(name: &str, secs: u64, f: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let name = name.to_string();
    std::thread::spawn(move || {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < Duration::from_secs(secs) {
            if d.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        if !d.load(Ordering::Acquire) {
            eprintln!("watchdog: test `{name}` did not finish within {secs} s: hung");
            std::process::exit(3);
        }
    });
    let r = f();
    done.store(true, Ordering::Release);
    r
}

/// A seeded xorshift generator (reproducible stress runs).
#[derive(Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The stress seed: `GORT_SEED` or a fixed default, printed so a failure
/// can be replayed.
pub(crate) fn seed() -> u64 {
    let s = std::env::var("GORT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01);
    eprintln!("GORT_SEED={s}");
    s
}

pub(crate) fn rt(procs: usize) -> gort::Runtime {
    gort::Runtime::builder()
        .gomaxprocs(procs)
        .build()
        .expect("runtime")
}

/// Re-runs this test binary as a subprocess running `testprog_entry` with
/// `GORT_TESTPROG=<scenario>` (Go's `testdata/testprog`), plus `env`.
pub(crate) fn testprog(scenario: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut c = std::process::Command::new(exe);
    c.args([
        "--exact",
        "testprog_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GORT_TESTPROG", scenario)
    .env_remove("GOMAXPROCS")
    .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run testprog")
}
