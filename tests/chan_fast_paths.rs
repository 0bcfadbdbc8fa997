//! The channel fast paths: the lock-free "would block" hint behind
//! `try_recv`/`try_send` and non-blocking `select!`, and `select!`'s
//! specialised expansions (one receive case; only receive cases, tried in
//! a typed first pass). Each must behave exactly as the general path.

mod common;
use common::{rt, tid, watchdog};
use gort::chan::{
    Receiver, RecvError, Select, Sender, TryRecvError, TrySendError, bounded, never, select,
    unbounded,
};
use std::time::Duration;

#[test]
fn try_ops_see_every_state_change() {
    watchdog("try_ops_see_every_state_change", 30, || {
        // Buffered: empty -> value -> full -> drained.
        let (s, r) = bounded::<u32>(2);
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        s.try_send(1).unwrap();
        assert_eq!(r.try_recv(), Ok(1));
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        s.try_send(2).unwrap();
        s.try_send(3).unwrap();
        assert_eq!(s.try_send(4), Err(TrySendError::Full(4)));
        assert_eq!(r.try_recv(), Ok(2));
        s.try_send(5).unwrap();
        assert_eq!(s.try_send(6), Err(TrySendError::Full(6)));
        // Senders gone: the buffer drains, then Disconnected (not Empty).
        drop(s);
        assert_eq!(r.try_recv(), Ok(3));
        assert_eq!(r.try_recv(), Ok(5));
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
        // Receivers gone: a full channel's try_send says Disconnected.
        let (s, r) = bounded::<u32>(1);
        s.try_send(1).unwrap();
        assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
        drop(r);
        assert_eq!(s.try_send(3), Err(TrySendError::Disconnected(3)));
        // Zero capacity, nobody waiting: both sides would block.
        let (s, r) = bounded::<u32>(0);
        assert_eq!(s.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        // never(): empty forever, never disconnected.
        let n = never::<u32>();
        assert_eq!(n.try_recv(), Err(TryRecvError::Empty));
        // A clone keeps the channel open; the last drop closes it.
        let (s, r) = unbounded::<u32>();
        let s2 = s.clone();
        drop(s);
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        drop(s2);
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    });
}

/// A goroutine parked in `recv` (or in a two-case `select!`) on a
/// rendezvous channel makes `try_send` and a `send`-with-`default`
/// `select!` succeed: the hint must not hide a waiting receiver.
#[test]
fn non_blocking_sends_find_parked_receivers() {
    watchdog("non_blocking_sends_find_parked_receivers", 60, || {
        for procs in [1, 2, 8] {
            rt(procs).run(|| {
                for round in 0..200u32 {
                    let (s, r) = bounded::<u32>(0);
                    let (_s2, r2) = bounded::<u32>(0);
                    let h = gort::go(move || {
                        if round % 2 == 0 {
                            r.recv().unwrap()
                        } else {
                            select! {
                                recv(r) -> v => v.unwrap(),
                                recv(r2) -> v => v.unwrap() + 1000,
                            }
                        }
                    });
                    let mut spins = 0u64;
                    loop {
                        let sent = if round % 4 < 2 {
                            s.try_send(round).is_ok()
                        } else {
                            select! {
                                send(s, round) -> res => { res.unwrap(); true },
                                default => false,
                            }
                        };
                        if sent {
                            break;
                        }
                        spins += 1;
                        assert!(spins < 10_000_000, "round {round}: receiver never seen");
                        gort::yield_now();
                    }
                    assert_eq!(h.join().unwrap(), round);
                }
            });
        }
    });
}

/// Causality through another channel: a value sent before a signal is
/// visible to a `try_recv` made after receiving the signal.
#[test]
fn a_value_sent_before_a_signal_is_seen_after_it() {
    watchdog("a_value_sent_before_a_signal_is_seen_after_it", 60, || {
        for procs in [2, 4, 16] {
            rt(procs).run(|| {
                let (data_s, data_r) = bounded::<u64>(1);
                let (sig_s, sig_r) = bounded::<()>(0);
                let (ack_s, ack_r) = bounded::<()>(0);
                let n = 5_000u64;
                let prod = gort::go(move || {
                    for i in 0..n {
                        data_s.send(i).unwrap();
                        sig_s.send(()).unwrap();
                        ack_r.recv().unwrap();
                    }
                });
                for i in 0..n {
                    sig_r.recv().unwrap();
                    assert_eq!(data_r.try_recv(), Ok(i), "round {i} at procs={procs}");
                    let got = select! {
                        recv(data_r) -> v => Some(v),
                        default => None,
                    };
                    assert_eq!(got, None, "round {i}: drained channel looked ready");
                    ack_s.send(()).unwrap();
                }
                prod.join().unwrap();
            });
        }
    });
}

#[test]
fn one_receive_case() {
    watchdog("one_receive_case", 30, || {
        rt(2).run(|| {
            let (s, r) = bounded::<u32>(1);
            let got = select! { recv(r) -> v => Some(v), default => None };
            assert_eq!(got, None);
            s.send(7).unwrap();
            let got = select! { recv(r) -> v => Some(v), default => None };
            assert_eq!(got, Some(Ok(7)));
            s.send(8).unwrap();
            let got = select! { recv(r) -> v => v };
            assert_eq!(got, Ok(8));
            gort::go(move || s.send(9).unwrap());
            let got = select! { recv(r) -> v => v };
            assert_eq!(got, Ok(9));
            // The sender is gone: the case is ready, with Err.
            let got = select! { recv(r) -> v => Some(v), default => None };
            assert_eq!(got, Some(Err(RecvError)));
            let got = select! { recv(r) -> v => v };
            assert_eq!(got, Err(RecvError));
            let n = never::<u32>();
            let got = select! { recv(n) -> v => Some(v), default => None };
            assert_eq!(got, None);
            let got = select! {
                recv(n) -> v => Some(v),
                default(Duration::from_millis(5)) => None,
            };
            assert_eq!(got, None);
        });
    });
}

/// A `break`/`continue` in a case body belongs to the caller's loop, in
/// every expansion (one case, receives only, mixed).
#[test]
fn break_and_continue_in_a_body_mean_the_callers_loop() {
    watchdog(
        "break_and_continue_in_a_body_mean_the_callers_loop",
        30,
        || {
            rt(2).run(|| {
                let (s1, r1) = bounded::<u32>(8);
                let (s2, r2) = bounded::<u32>(8);
                for i in 0..4 {
                    s1.send(i).unwrap();
                }
                drop(s1);
                let mut seen = Vec::new();
                loop {
                    select! { recv(r1) -> v => match v {
                        Ok(v) => seen.push(v),
                        Err(_) => break,
                    }}
                }
                assert_eq!(seen, [0, 1, 2, 3]);

                for i in 0..6 {
                    s2.send(i).unwrap();
                }
                drop(s2);
                let (mut odd, mut rounds) = (0, 0);
                loop {
                    rounds += 1;
                    assert!(rounds < 100, "break did not leave the loop");
                    select! {
                        recv(r1) -> v => { assert!(v.is_err()); continue },
                        recv(r2) -> v => match v {
                            Ok(v) if v % 2 == 0 => continue,
                            Ok(_) => odd += 1,
                            Err(_) => break,
                        },
                    }
                }
                assert_eq!(odd, 3);

                let (s3, r3) = bounded::<u32>(0);
                let (ds, dr) = bounded::<()>(0);
                let h = gort::go(move || {
                    for i in 0..3 {
                        ds.send(()).unwrap();
                        s3.send(i).unwrap();
                    }
                });
                let mut got = Vec::new();
                'outer: loop {
                    select! {
                        recv(dr) -> d => if d.is_err() { break 'outer },
                        recv(r3) -> v => match v {
                            Ok(v) => got.push(v),
                            Err(_) => break,
                        },
                        send(ds_never(), ()) -> _ => unreachable!(),
                    }
                }
                h.join().unwrap();
                assert_eq!(got, [0, 1, 2]);
            });
        },
    );
}

/// A send case that never becomes ready: a rendezvous channel whose
/// receiver is alive (in this static) but never receives.
fn ds_never() -> &'static Sender<()> {
    use std::sync::OnceLock;
    static C: OnceLock<(Sender<()>, Receiver<()>)> = OnceLock::new();
    &C.get_or_init(|| bounded(0)).0
}

/// Every expansion chooses uniformly among the ready cases.
#[test]
fn every_expansion_chooses_uniformly() {
    watchdog("every_expansion_chooses_uniformly", 60, || {
        rt(2).run(|| {
            const TRIALS: usize = 6_000;
            let chans: Vec<_> = (0..3).map(|_| bounded::<usize>(TRIALS + 1)).collect();
            let fill = || {
                for (i, (s, _)) in chans.iter().enumerate() {
                    while s.try_send(i).is_ok() {}
                }
            };
            let (rs, ss) = (
                [&chans[0].1, &chans[1].1, &chans[2].1],
                [&chans[0].0, &chans[1].0, &chans[2].0],
            );
            let check = |form: &str, hits: [usize; 3]| {
                for h in hits {
                    let f = h as f64 / TRIALS as f64;
                    assert!((0.28..=0.39).contains(&f), "{form}: unfair: {hits:?}");
                }
            };
            type Pick<'a> = &'a dyn Fn(&[&Receiver<usize>; 3], &[&Sender<usize>; 3]) -> usize;
            let forms: [(&str, Pick); 4] = [
                ("receives only, blocking", &|r, _| {
                    select! {
                        recv(r[0]) -> v => v.unwrap(),
                        recv(r[1]) -> v => v.unwrap(),
                        recv(r[2]) -> v => v.unwrap(),
                    }
                }),
                ("receives only, default", &|r, _| {
                    select! {
                        recv(r[0]) -> v => v.unwrap(),
                        recv(r[1]) -> v => v.unwrap(),
                        recv(r[2]) -> v => v.unwrap(),
                        default => unreachable!(),
                    }
                }),
                ("mixed", &|r, _| {
                    select! {
                        recv(r[0]) -> v => v.unwrap(),
                        recv(r[1]) -> v => v.unwrap(),
                        recv(r[2]) -> v => v.unwrap(),
                        send(ds_never(), ()) -> _ => unreachable!(),
                    }
                }),
                ("dynamic", &|r, _| {
                    let mut sel = Select::new();
                    for x in r {
                        sel.recv(x);
                    }
                    let op = sel.select();
                    let i = op.index();
                    op.recv(r[i]).unwrap()
                }),
            ];
            for (form, pick) in forms {
                fill();
                let mut hits = [0usize; 3];
                for _ in 0..TRIALS {
                    let i = pick(&rs, &ss);
                    hits[i] += 1;
                    ss[i].send(i).unwrap(); // keep all three ready
                }
                check(form, hits);
            }
            // Send cases: all three have room; drain what we sent.
            for (_, r) in &chans {
                while r.try_recv().is_ok() {}
            }
            let mut hits = [0usize; 3];
            for _ in 0..TRIALS {
                let i = select! {
                    send(ss[0], 0) -> res => { res.unwrap(); 0 },
                    send(ss[1], 1) -> res => { res.unwrap(); 1 },
                    send(ss[2], 2) -> res => { res.unwrap(); 2 },
                };
                hits[i] += 1;
                assert_eq!(rs[i].try_recv(), Ok(i));
            }
            check("sends", hits);
        });
    });
}

/// One send case with `default`: decided lock-free when the channel is
/// full, and the value is evaluated only when the case is chosen.
#[test]
fn one_send_case_with_default() {
    watchdog("one_send_case_with_default", 30, || {
        let evaluated = std::cell::Cell::new(0);
        let value = |v: u32| {
            evaluated.set(evaluated.get() + 1);
            v
        };
        let (s, r) = bounded::<u32>(1);
        let sent = select! { send(s, value(1)) -> res => Some(res), default => None };
        assert_eq!(sent, Some(Ok(())));
        let sent = select! { send(s, value(2)) -> res => Some(res), default => None };
        assert_eq!(sent, None, "full: default");
        assert_eq!(
            evaluated.get(),
            1,
            "the value of a case not chosen is not evaluated"
        );
        assert_eq!(r.try_recv(), Ok(1));
        let (z, _zr) = bounded::<u32>(0);
        let sent = select! { send(z, value(3)) -> res => Some(res), default => None };
        assert_eq!(sent, None, "rendezvous without a receiver: default");
        drop(r);
        let sent = select! { send(s, value(4)) -> res => Some(res), default => None };
        assert_eq!(
            sent.map(|r| r.map_err(|e| e.0)),
            Some(Err(4)),
            "disconnected: ready, with Err"
        );
        assert_eq!(evaluated.get(), 2);
    });
}

/// Yields until `r` has a ready counterpart (a parked sender's entry).
/// Bounded by time, not by a number of yields: at GOMAXPROCS 4 another M may have taken the sender and been
/// descheduled before it parked, and 10,000 yields (a few ms) could end
/// first on a loaded host.
fn until_ready<T>(r: &Receiver<T>) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        let mut sel = Select::new();
        sel.recv(r);
        if sel.try_ready().is_ok() {
            return;
        }
        gort::yield_now();
    }
    panic!("the sender never parked");
}

/// A send case whose value is a literal, `()` or a variable of a `Copy`
/// type carries that value in its queue entries (Go's `sudog.elem`): a
/// receiver takes it straight from the parked select, before the
/// select's goroutine runs again. At GOMAXPROCS=1 that shows: the
/// select's body has not run yet when `try_recv` returns. (A value
/// evaluated only once the case is chosen makes the receiver wait for the
/// sender to supply it, and the sender runs its body first.)
#[test]
fn a_parked_select_hands_over_its_up_front_value() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    watchdog("a_parked_select_hands_over_its_up_front_value", 30, || {
        rt(1).run(|| {
            for form in ["literal", "variable", "unit"] {
                let (s, r) = bounded::<u32>(0);
                let (u, ur) = bounded::<()>(0);
                let (other, _keep) = bounded::<u32>(0);
                let bodies = Arc::new(AtomicUsize::new(0));
                let b = bodies.clone();
                let x = 7u32;
                // The thread the select's body ran on: at GOMAXPROCS=1 it is
                // ours unless sysmon handed the P to another M (this M
                // descheduled by the OS for 10 ms after our `try_recv`),
                // which lets the body run before our check below.
                let body_tid = Arc::new(std::sync::atomic::AtomicI64::new(0));
                let bt = body_tid.clone();
                let h = gort::go(move || {
                    let body = || {
                        bt.store(tid(), Ordering::SeqCst);
                        b.fetch_add(1, Ordering::SeqCst);
                    };
                    match form {
                        "literal" => select! {
                            send(s, 7) -> res => { res.unwrap(); body(); }
                            send(other, 8) -> _ => unreachable!("nobody receives on other"),
                        },
                        "variable" => select! {
                            send(s, x) -> res => { res.unwrap(); body(); }
                            send(other, 8) -> _ => unreachable!("nobody receives on other"),
                        },
                        _ => select! {
                            send(u, ()) -> res => { res.unwrap(); body(); }
                            send(other, 8) -> _ => unreachable!("nobody receives on other"),
                        },
                    }
                });
                if form == "unit" {
                    until_ready(&ur);
                    assert_eq!(ur.try_recv(), Ok(()));
                } else {
                    until_ready(&r);
                    assert_eq!(r.try_recv(), Ok(7), "{form}");
                }
                let bodies_then = bodies.load(Ordering::SeqCst);
                let me = tid();
                h.join().unwrap();
                assert_eq!(bodies.load(Ordering::SeqCst), 1, "{form}: the Ok body ran");
                if bodies_then != 0 && body_tid.load(Ordering::SeqCst) != me {
                    // Ran on another M after a hand-off: says nothing.
                    continue;
                }
                assert_eq!(
                    bodies_then, 0,
                    "{form}: the value came before the select ran again"
                );
            }
        });
    });
}

/// A variable that is not `Copy` is not taken up front: it can still be
/// moved in another arm (crossbeam's rule), and a generic value works.
#[test]
fn a_non_copy_send_value_is_evaluated_only_when_chosen() {
    fn send_any<T>(s: &Sender<T>, v: T) -> Result<(), T> {
        select! { send(s, v) -> res => res.map_err(|e| e.0) }
    }
    watchdog(
        "a_non_copy_send_value_is_evaluated_only_when_chosen",
        30,
        || {
            let (s, r) = bounded::<String>(0);
            let msg = String::from("kept");
            let out: Result<(), String> = select! {
                send(s, msg) -> res => res.map_err(|e| e.0),
                default => Err(msg),
            };
            assert_eq!(
                out,
                Err("kept".to_string()),
                "no receiver: default, msg unmoved"
            );
            let (b, br) = bounded::<String>(1);
            assert_eq!(send_any(&b, "generic".to_string()), Ok(()));
            assert_eq!(br.try_recv().as_deref(), Ok("generic"));
            drop(r);
            assert_eq!(send_any(&s, "gone".to_string()), Err("gone".to_string()));
        },
    );
}

/// An up-front value in a parked select: it refills a buffer a receiver
/// just drained, and comes back as the error when every receiver leaves.
#[test]
fn a_parked_up_front_send_refills_the_buffer_or_fails() {
    watchdog(
        "a_parked_up_front_send_refills_the_buffer_or_fails",
        30,
        || {
            for procs in [1, 4] {
                rt(procs).run(|| {
                    let (s, r) = bounded::<u32>(1);
                    let (other, _keep) = bounded::<u32>(0);
                    s.send(1).unwrap();
                    let h = gort::go(move || {
                        select! {
                            send(s, 2) -> res => res.map_err(|e| e.0),
                            send(other, 9) -> _ => unreachable!("nobody receives on other"),
                        }
                    });
                    until_ready(&r);
                    assert_eq!(r.recv(), Ok(1));
                    assert_eq!(r.recv(), Ok(2), "refilled from the parked select");
                    assert_eq!(h.join().unwrap(), Ok(()));

                    let (s, r) = bounded::<u32>(0);
                    let (other, _keep) = bounded::<u32>(0);
                    let h = gort::go(move || {
                        select! {
                            send(s, 5) -> res => res.map_err(|e| e.0),
                            send(other, 9) -> _ => unreachable!("nobody receives on other"),
                        }
                    });
                    until_ready(&r);
                    drop(r);
                    assert_eq!(h.join().unwrap(), Err(5), "receivers gone: the value back");
                });
            }
        },
    );
}

/// A literal or variable that needs a coercion to the channel's type
/// (unsizing, deref, fn item to pointer, a shorter lifetime) compiles and
/// sends as with crossbeam: such a value is simply not taken up front.
#[test]
fn send_values_that_need_a_coercion_still_compile() {
    fn shorter<'a>(s: &Sender<&'a str>, r: &Receiver<&'a str>) -> Vec<&'a str> {
        let fixed: &'static str = "static";
        let (_o, _keep) = bounded::<u8>(0);
        let mut got = Vec::new();
        select! { send(s, "literal") -> res => res.unwrap(), send(_o, 1) -> _ => unreachable!() }
        got.push(r.try_recv().unwrap());
        select! { send(s, fixed) -> res => res.unwrap(), send(_o, 1) -> _ => unreachable!() }
        got.push(r.try_recv().unwrap());
        got
    }
    fn seven() -> i32 {
        7
    }
    watchdog("send_values_that_need_a_coercion_still_compile", 30, || {
        let (o, _keep) = bounded::<u8>(0);
        let (s, r) = bounded::<&dyn std::fmt::Display>(1);
        let n = &5i32;
        select! { send(s, n) -> res => res.unwrap(), send(o, 1) -> _ => unreachable!() }
        assert_eq!(r.try_recv().unwrap().to_string(), "5");
        let (b, br) = bounded::<&[u8]>(1);
        select! { send(b, b"ab") -> res => res.unwrap(), send(o, 1) -> _ => unreachable!() }
        assert_eq!(br.try_recv(), Ok(&b"ab"[..]));
        let owned = String::from("deref");
        let (s, r) = bounded::<&str>(1);
        let by_ref = &owned;
        select! { send(s, by_ref) -> res => res.unwrap(), send(o, 1) -> _ => unreachable!() }
        assert_eq!(r.try_recv(), Ok("deref"));
        let (s, r) = bounded::<fn() -> i32>(1);
        select! { send(s, seven) -> res => res.unwrap(), send(o, 1) -> _ => unreachable!() }
        assert_eq!(r.try_recv().unwrap()(), 7);
        let (s, r) = bounded::<&str>(1);
        assert_eq!(shorter(&s, &r), ["literal", "static"]);
    });
}
