//! crossbeam-channel's biased selection: `select_biased!` and
//! `Select::new_biased` take the first ready case in case order, on every
//! path (`select!`'s typed receive-only pass, the general `Select`, with
//! `default` and `default(timeout)`, and the `ready` family), and still
//! block and wake like `select!` when no case is ready; and the rest of
//! crossbeam's trait surface (unwind-safe handles, `Select: Clone`).

mod common;
use common::{rt, watchdog};
use gort::chan::{Select, bounded, select_biased};
use std::time::Duration;

const TRIES: usize = 200;

/// Two buffered channels, both holding `TRIES` values.
fn two_full() -> [(gort::chan::Sender<u32>, gort::chan::Receiver<u32>); 2] {
    let cs = [bounded(TRIES), bounded(TRIES)];
    for (i, c) in cs.iter().enumerate() {
        for _ in 0..TRIES {
            c.0.send(i as u32).unwrap();
        }
    }
    cs
}

#[test]
fn receive_only_select_biased_takes_the_first_ready_case() {
    watchdog("receive_only_select_biased", 30, || {
        let [a, b] = two_full();
        for _ in 0..TRIES {
            // The typed receive-only pass.
            let got = select_biased! {
                recv(a.1) -> v => v.unwrap(),
                recv(b.1) -> v => v.unwrap(),
            };
            assert_eq!(got, 0, "the first case was ready");
        }
        // `a` is empty now: the second case.
        let got = select_biased! {
            recv(a.1) -> v => v.unwrap(),
            recv(b.1) -> v => v.unwrap(),
            default => 9,
        };
        assert_eq!(got, 1);
    });
}

#[test]
fn mixed_select_biased_takes_the_first_ready_case() {
    watchdog("mixed_select_biased", 30, || {
        let [a, b] = two_full();
        let (room_s, _room_r) = bounded::<u32>(TRIES);
        for i in 0..TRIES {
            // A send case makes it the general path; all three are ready.
            let got = select_biased! {
                recv(b.1) -> v => v.unwrap(),
                send(room_s, 7) -> r => { r.unwrap(); 7 },
                recv(a.1) -> v => v.unwrap(),
                default(Duration::from_secs(5)) => 9,
            };
            assert_eq!(got, 1, "round {i}: the first case was ready");
        }
        // `b` is drained: the send case comes next, until `room` is full.
        for _ in 0..TRIES {
            let got = select_biased! {
                recv(b.1) -> v => v.unwrap(),
                send(room_s, 7) -> r => { r.unwrap(); 7 },
                recv(a.1) -> v => v.unwrap(),
                default => 9,
            };
            assert_eq!(got, 7);
        }
        let got = select_biased! {
            recv(b.1) -> v => v.unwrap(),
            send(room_s, 7) -> r => { r.unwrap(); 7 },
            recv(a.1) -> v => v.unwrap(),
        };
        assert_eq!(got, 0);
    });
}

#[test]
fn new_biased_prefers_the_lowest_index_everywhere() {
    watchdog("new_biased_prefers_the_lowest_index", 30, || {
        let [a, b] = two_full();
        let (_never_s, never_r) = bounded::<u32>(0);
        for _ in 0..TRIES / 4 {
            let mut sel = Select::new_biased();
            let n = sel.recv(&never_r);
            let i = sel.recv(&b.1);
            let j = sel.recv(&a.1);
            assert_eq!(sel.try_ready(), Ok(i));
            assert_eq!(sel.ready(), i);
            assert_eq!(sel.ready_timeout(Duration::from_secs(5)), Ok(i));
            let op = sel.try_select().unwrap();
            assert_eq!(op.index(), i);
            assert_eq!(op.recv(&b.1), Ok(1));
            let op = sel.select_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(op.index(), i);
            assert_eq!(op.recv(&b.1), Ok(1));
            // Without case `i`, the next ready one.
            sel.remove(i);
            assert_eq!(sel.try_ready(), Ok(j));
            let op = sel.select();
            assert_eq!(op.index(), j);
            assert_eq!(op.recv(&a.1), Ok(0));
            let _ = n;
        }
    });
}

/// Nothing ready: a biased select parks and is woken by whichever case
/// becomes ready, like `select!` (from goroutines at GOMAXPROCS 1 and 4,
/// and from a plain thread).
#[test]
fn a_blocked_select_biased_wakes_on_any_case() {
    watchdog("a_blocked_select_biased_wakes_on_any_case", 60, || {
        for procs in [1, 4] {
            rt(procs).run(|| {
                for k in 0..3u32 {
                    let (s0, r0) = bounded::<u32>(0);
                    let (s1, r1) = bounded::<u32>(0);
                    let (s2, r2) = bounded::<u32>(1);
                    let h = gort::go(move || {
                        select_biased! {
                            recv(r0) -> v => (0, v.unwrap()),
                            recv(r1) -> v => (1, v.unwrap()),
                            recv(r2) -> v => (2, v.unwrap()),
                        }
                    });
                    gort::time::sleep(Duration::from_millis(2));
                    match k {
                        0 => s0.send(10).unwrap(),
                        1 => s1.send(11).unwrap(),
                        _ => s2.send(12).unwrap(),
                    }
                    assert_eq!(h.join().unwrap(), (k as usize, 10 + k));
                }
            });
        }
        let (s, r) = bounded::<u32>(0);
        let (_s2, r2) = bounded::<u32>(0);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            s.send(5).unwrap();
        });
        let got = select_biased! {
            recv(r2) -> v => v.unwrap(),
            recv(r) -> v => v.unwrap() + 100,
        };
        assert_eq!(got, 105);
        t.join().unwrap();
    });
}

/// The rest of crossbeam-channel's trait surface that code relies on:
/// `Sender`/`Receiver` are unwind-safe (usable inside `catch_unwind`
/// without `AssertUnwindSafe`) and a `Select` can be cloned, the clone
/// keeping its cases and its bias.
#[test]
fn crossbeam_trait_surface() {
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &T) {}
    let (s, r) = bounded::<String>(1);
    unwind_safe(&s);
    unwind_safe(&r);
    let sent = std::panic::catch_unwind(|| s.send("x".to_string()).is_ok());
    assert_eq!(sent.ok(), Some(true));
    let [a, b] = two_full();
    let mut sel = Select::new_biased();
    let _i = sel.recv(&b.1);
    let j = sel.recv(&a.1);
    let mut copy = sel.clone();
    for _ in 0..10 {
        assert_eq!(copy.try_ready(), Ok(0), "the clone is biased too");
    }
    copy.remove(0);
    assert_eq!(copy.try_ready(), Ok(j));
    assert_eq!(sel.try_ready(), Ok(0), "the original keeps its cases");
    assert_eq!(r.recv().as_deref(), Ok("x"));
}
