//! More ports of Go's channel tests: test/chan/select6.go and
//! runtime/chan_test.go's TestNonblockRecvRace.

mod common;
use common::{rt, watchdog};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// select6 (Go issue 2075): a select that loses on one channel must not
/// corrupt that channel's wait queue for the other waiters.
#[test]
fn select6_failed_case_does_not_corrupt_wait_queue() {
    watchdog(
        "select6_failed_case_does_not_corrupt_wait_queue",
        30,
        || {
            for procs in [1usize, 2, 4] {
                rt(procs).run(|| {
                    let (c1_tx, c1_rx) = gort::chan::bounded::<bool>(0);
                    let (c2_tx, c2_rx) = gort::chan::bounded::<bool>(0);
                    let (c3_tx, c3_rx) = gort::chan::bounded::<bool>(0);
                    let r1 = c1_rx.clone();
                    let a = gort::go(move || {
                        r1.recv().unwrap();
                    });
                    let r1b = c1_rx.clone();
                    let b = gort::go(move || {
                        gort::chan::select! {
                            recv(r1b) -> _ => panic!("dummy"),
                            recv(c2_rx) -> _ => c3_tx.send(true).unwrap(),
                        }
                        r1b.recv().unwrap();
                    });
                    let c = gort::go(move || c2_tx.send(true).unwrap());
                    c3_rx.recv().unwrap();
                    c1_tx.send(true).unwrap();
                    c1_tx.send(true).unwrap();
                    a.join().unwrap();
                    b.join().unwrap();
                    c.join().unwrap();
                });
            }
        },
    );
}

/// TestNonblockRecvRace: a non-blocking receive on a channel that is
/// closed or holds a value always succeeds; it never takes `default`.
#[test]
fn nonblock_recv_race() {
    watchdog("nonblock_recv_race", 60, || {
        let not_ready = Arc::new(AtomicUsize::new(0));
        let nr = not_ready.clone();
        rt(2).run(move || {
            for _ in 0..10_000 {
                let (tx, rx) = gort::chan::bounded::<u32>(1);
                tx.send(1).unwrap();
                let r2 = rx.clone();
                let nr = nr.clone();
                let h = gort::go(move || {
                    gort::chan::select! {
                        recv(r2) -> _ => {}
                        default => { nr.fetch_add(1, Ordering::Relaxed); }
                    }
                });
                drop(tx); // Go: close(c)
                let _ = rx.recv(); // the value, or disconnected
                h.join().unwrap();
            }
        });
        assert_eq!(
            not_ready.load(Ordering::Relaxed),
            0,
            "select took default on a ready channel"
        );
    });
}
