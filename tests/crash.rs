//! Crash and must-abort behaviour, each scenario in a subprocess (Go's
//! `testdata/testprog`): the test binary re-runs itself with
//! `GORT_TESTPROG=<scenario>` and only `testprog_entry` does anything.

mod common;

use common::testprog;
use std::process::Output;

/// When `GORT_TESTPROG` is set, run that scenario and exit; otherwise this
/// test passes trivially (it is the subprocess entry point).
#[test]
fn testprog_entry() {
    let Ok(which) = std::env::var("GORT_TESTPROG") else {
        return;
    };
    match which.as_str() {
        "overflow" => {
            #[allow(unconditional_recursion)] // on purpose: overflow the stack
            fn recurse(n: u64) -> u64 {
                let buf = std::hint::black_box([n; 32]);
                recurse(n + 1) + buf[3]
            }
            gort::run(|| gort::go(|| recurse(0)).join().map(drop).ok());
        }
        "print_gomaxprocs" => {
            let n = gort::run(gort::runtime::gomaxprocs);
            println!("gomaxprocs={n}");
        }
        "go_without_runtime" => {
            let _ = gort::go(|| 1);
        }
        "goroutine_panic_message" => {
            gort::run(|| {
                let _ = gort::go(|| panic!("kaboom")).join();
            });
        }
        "mprotect_guard_limit" => {
            let rt = gort::Runtime::builder()
                .force_mprotect_guards(true)
                .gomaxprocs(2)
                .build()
                .unwrap();
            rt.run(|| {
                let wg = std::sync::Arc::new(gort::sync::WaitGroup::new());
                wg.add(1);
                // Two mappings per guarded stack: 40k parked goroutines
                // exceed the default vm.max_map_count (65530).
                for _ in 0..40_000 {
                    let w = wg.clone();
                    drop(gort::go(move || w.wait()));
                }
                for _ in 0..100 {
                    gort::yield_now();
                }
                println!("survived: vm.max_map_count is higher than expected");
            });
        }
        "thread_cap" => {
            let rt = gort::Runtime::builder()
                .gomaxprocs(2)
                .max_threads(1)
                .build()
                .unwrap();
            rt.run(|| {
                let hs: Vec<_> = (0..100).map(|i| gort::go(move || i)).collect();
                for h in hs {
                    h.join().unwrap();
                }
            });
        }
        "set_max_threads_blocking" => {
            // Blocking calls make sysmon hand Ps to new threads; the limit
            // set at run time is enforced like Go's debug.SetMaxThreads.
            let rt = gort::Runtime::builder().gomaxprocs(2).build().unwrap();
            rt.run(|| {
                gort::runtime::set_max_threads(3);
                let hs: Vec<_> = (0..8)
                    .map(|_| {
                        gort::go(|| {
                            gort::blocking(|| {
                                std::thread::sleep(std::time::Duration::from_millis(300))
                            })
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                println!("survived: no new thread was needed");
            });
        }
        "app_sigurg_handler" => {
            // The application's own SIGURG handler, installed before the
            // runtime starts, still sees SIGURGs that are not gort's, and
            // gort's preemption still works.
            static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            extern "C" fn on_urg(_: libc::c_int) {
                SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            // SAFETY: installs a handler that only touches an atomic.
            unsafe { libc::signal(libc::SIGURG, on_urg as *const () as libc::sighandler_t) };
            let rt = gort::Runtime::builder().gomaxprocs(1).build().unwrap();
            rt.run(|| {
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let s2 = stop.clone();
                // A call-free hog: only gort's SIGURG can take the P.
                let hog = gort::go(move || {
                    let mut x = 1u64;
                    while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.rotate_left(7) ^ 3);
                    }
                    x
                });
                gort::yield_now();
                for _ in 0..3 {
                    // SAFETY: raise(3) sends SIGURG to this thread.
                    unsafe { libc::raise(libc::SIGURG) };
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                hog.join().unwrap();
            });
            println!(
                "app_handler_calls={}",
                SEEN.load(std::sync::atomic::Ordering::SeqCst)
            );
        }
        "foreign_segv" => {
            gort::run(|| {
                let p = std::hint::black_box(16usize) as *const u64;
                // SAFETY: none — this deliberately faults on an unmapped
                // address that is not a goroutine guard page, to check the
                // fault is passed on (the process must die of SIGSEGV).
                let v = unsafe { std::ptr::read_volatile(p) };
                println!("read {v}");
            });
        }
        other => panic!("unknown scenario {other}"),
    }
    std::process::exit(0);
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[cfg(unix)]
fn signal(o: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal()
}

#[test]
fn stack_overflow_is_reported_and_aborts() {
    let o = testprog("overflow", &[]);
    let e = stderr(&o);
    assert!(
        e.contains(": stack overflow (limit 262144 bytes)") && e.contains("goroutine 2"),
        "stderr: {e}"
    );
    assert!(e.contains("fatal error: stack overflow"), "stderr: {e}");
    assert_eq!(signal(&o), Some(libc::SIGABRT), "status: {:?}", o.status);
}

#[test]
fn stack_overflow_limit_follows_the_configured_size() {
    let o = testprog("overflow", &[("GORT_STACKSIZE", "64k")]);
    let e = stderr(&o);
    assert!(
        e.contains("stack overflow (limit 65536 bytes)"),
        "stderr: {e}"
    );
}

#[test]
fn foreign_segfaults_are_not_ours() {
    let o = testprog("foreign_segv", &[]);
    let e = stderr(&o);
    assert!(!e.contains("stack overflow"), "stderr: {e}");
    assert_eq!(
        signal(&o),
        Some(libc::SIGSEGV),
        "status: {:?} stderr: {e}",
        o.status
    );
}

#[test]
fn gomaxprocs_env_is_honoured() {
    let o = testprog("print_gomaxprocs", &[("GOMAXPROCS", "3")]);
    assert!(stdout(&o).contains("gomaxprocs=3"), "{o:?}");
    assert!(!stderr(&o).contains("invalid"), "{o:?}");
}

#[test]
fn bad_gomaxprocs_env_warns_and_uses_the_default() {
    let default = {
        let o = testprog("print_gomaxprocs", &[]);
        stdout(&o)
    };
    for bad in ["abc", "0", "-3"] {
        let o = testprog("print_gomaxprocs", &[("GOMAXPROCS", bad)]);
        assert!(o.status.success(), "{o:?}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("invalid GOMAXPROCS=\"{bad}\"")),
            "stderr: {e}"
        );
        assert!(
            e.lines().filter(|l| l.contains("GOMAXPROCS")).count() == 1,
            "one line: {e}"
        );
        assert_eq!(stdout(&o), default, "falls back to the default");
    }
}

#[test]
fn go_without_a_runtime_panics_clearly() {
    let o = testprog("go_without_runtime", &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no runtime is running"),
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn goroutine_panics_name_the_goroutine() {
    let o = testprog("goroutine_panic_message", &[]);
    assert!(o.status.success(), "{o:?}");
    let e = stderr(&o);
    assert!(
        e.contains("goroutine 2 panicked at tests/crash.rs:"),
        "stderr: {e}"
    );
    assert!(e.contains("kaboom"), "stderr: {e}");
}

#[test]
fn mprotect_guards_hit_max_map_count_with_a_clear_error() {
    let limit: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65530);
    if limit > 70_000 {
        eprintln!("skipping: vm.max_map_count={limit} is above what 40k stacks need");
        return;
    }
    let o = testprog("mprotect_guard_limit", &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "fatal exit status; stderr: {e}");
    assert!(e.contains("vm.max_map_count"), "stderr: {e}");
    assert!(
        e.contains("cannot allocate a goroutine stack"),
        "stderr: {e}"
    );
}

#[test]
fn exceeding_max_threads_is_fatal() {
    let o = testprog("thread_cap", &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(
        e.contains("runtime: program exceeds 1-thread limit"),
        "stderr: {e}"
    );
    assert!(e.contains("fatal error: thread exhaustion"), "stderr: {e}");
}

#[test]
fn set_max_threads_is_enforced_when_blocking_calls_need_threads() {
    let o = testprog("set_max_threads_blocking", &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(
        e.contains("runtime: program exceeds 3-thread limit"),
        "stderr: {e}"
    );
    assert!(e.contains("fatal error: thread exhaustion"), "stderr: {e}");
}

#[test]
fn application_sigurg_handler_is_chained() {
    let o = testprog("app_sigurg_handler", &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let n: usize = out
        .lines()
        .find_map(|l| l.split_once("app_handler_calls=").map(|x| x.1))
        .and_then(|v| v.trim().parse().ok())
        .expect("count");
    assert_eq!(
        n, 3,
        "the application's SIGURG handler saw {n} of our 3 raises"
    );
}
