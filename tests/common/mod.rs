//! Helpers shared by the integration tests.
#![allow(missing_docs)]
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// This thread's kernel id (`gettid(2)`): which OS thread (M) ran a
/// goroutine.
pub(crate) fn tid() -> i64 {
    // SAFETY: gettid(2) has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

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
            // Straight to fd 2: the test harness captures `eprintln!`, also
            // from threads a test spawns, and would swallow the message.
            let msg = format!("watchdog: test `{name}` did not finish within {secs} s: hung\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
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
    output_within(c, 120)
}

/// `cmd.output()`, but a child still running after `secs` is killed and the
/// test fails, naming the command and showing what it printed so far (a
/// hung subprocess must fail the test, never hang CI).
pub(crate) fn output_within(mut cmd: std::process::Command, secs: u64) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break Some(st);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    match status {
        Some(status) => std::process::Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "subprocess did not finish within {secs} s (hung; killed): {shown}\n\
             --- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}
