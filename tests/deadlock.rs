//! Deadlock detection (issue 5): when every goroutine is blocked forever and
//! nothing can wake one, the runtime prints Go's
//! `fatal error: all goroutines are asleep - deadlock!` with each
//! goroutine's wait reason and exits with status 2; when something can still
//! wake one (a timer, a thread outside the runtime), it does not.
//!
//! A plain `main` (no libtest harness: its worker threads would count as
//! outsiders that might wake a goroutine). It re-runs itself with
//! `GORT_TESTPROG=<scenario>` for each scenario.

use std::process::Command;
use std::time::Duration;

mod common;

fn scenario(name: &str) {
    match name {
        "chan" => gort::run(|| {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            let _keep = tx;
            let _ = rx.recv();
        }),
        "sync" => gort::Runtime::builder()
            .gomaxprocs(4)
            .build()
            .unwrap()
            .run(|| {
                let m = std::sync::Arc::new(gort::sync::Mutex::new(0));
                let wg = std::sync::Arc::new(gort::sync::WaitGroup::new());
                wg.add(1);
                let g = m.lock();
                let m2 = m.clone();
                let h = gort::go(move || *m2.lock() + 1);
                let wg2 = wg.clone();
                let _w = gort::go(move || wg2.wait());
                let (_tx, rx) = gort::chan::bounded::<()>(1);
                let (_tx2, rx2) = gort::chan::bounded::<()>(0);
                // Two cases: a one-case `select!` is a plain receive, as in
                // Go (whose traceback then says `[chan receive]`).
                gort::go(move || {
                    gort::chan::select! {
                        recv(rx) -> _ => {},
                        recv(rx2) -> _ => {},
                    }
                });
                drop(h.join());
                drop(g);
            }),
        "sleep_then_send" => gort::run(|| {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            gort::go(move || {
                gort::time::sleep(Duration::from_millis(300));
                tx.send(7).unwrap();
            });
            assert_eq!(rx.recv().unwrap(), 7);
            println!("no deadlock");
        }),
        "outside_thread_sends" => {
            let (tx, rx) = gort::chan::bounded::<u32>(0);
            let t = std::thread::spawn(move || {
                // Computes (does not block in gort) for a while, then sends.
                let t0 = std::time::Instant::now();
                let mut x = 1u64;
                while t0.elapsed() < Duration::from_millis(300) {
                    x = std::hint::black_box(x.rotate_left(1));
                }
                tx.send(x as u32 | 1).unwrap();
            });
            gort::run(move || {
                assert!(rx.recv().unwrap() & 1 == 1);
            });
            t.join().unwrap();
            println!("no deadlock");
        }
        "deadlock_after_abandoned_io" => {
            // A first runtime stops while a goroutine waits in `accept`
            // (abandoned, its wait never ends); the next runtime's deadlock
            // must still be reported.
            gort::run(|| {
                let l = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let (tx, rx) = gort::chan::bounded::<()>(0);
                gort::go(move || {
                    tx.send(()).unwrap();
                    let _ = l.accept();
                });
                rx.recv().unwrap();
                gort::time::sleep(Duration::from_millis(20)); // into the wait
            });
            gort::run(|| {
                let (tx, rx) = gort::chan::bounded::<u32>(0);
                let _keep = tx;
                let _ = rx.recv();
            });
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn run(name: &str) -> (i32, String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("GORT_TESTPROG", name);
    let out = common::output_within(cmd, 120);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn main() {
    if let Ok(name) = std::env::var("GORT_TESTPROG") {
        scenario(&name);
        return;
    }
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: &str| {
        println!(
            "test deadlock::{name} ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            println!("{detail}");
            failed += 1;
        }
    };

    let (code, _, err) = run("chan");
    check(
        "chan_receive_forever",
        code == 2
            && err.starts_with("fatal error: all goroutines are asleep - deadlock!")
            && err.contains("goroutine 1 [chan receive]:"),
        &format!("exit {code}, stderr:\n{err}"),
    );

    let (code, _, err) = run("sync");
    check(
        "mutex_waitgroup_select_join",
        code == 2
            && err.contains("all goroutines are asleep - deadlock!")
            && err.contains("[sync.Mutex.Lock]")
            && err.contains("[sync.WaitGroup.Wait]")
            && err.contains("[select]")
            && err.contains("goroutine 1 [goroutine join]:"),
        &format!("exit {code}, stderr:\n{err}"),
    );

    let (code, out, err) = run("sleep_then_send");
    check(
        "a_sleeping_goroutine_is_not_a_deadlock",
        code == 0 && out.contains("no deadlock"),
        &format!("exit {code}, stderr:\n{err}"),
    );

    let (code, out, err) = run("outside_thread_sends");
    check(
        "a_thread_outside_the_runtime_can_still_wake",
        code == 0 && out.contains("no deadlock"),
        &format!("exit {code}, stderr:\n{err}"),
    );

    let (code, _, err) = run("deadlock_after_abandoned_io");
    check(
        "a_goroutine_abandoned_in_a_network_wait_does_not_hide_a_later_deadlock",
        code == 2
            && err.starts_with("fatal error: all goroutines are asleep - deadlock!")
            && err.contains("goroutine 1 [chan receive]:"),
        &format!("exit {code}, stderr:\n{err}"),
    );

    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        5 - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
