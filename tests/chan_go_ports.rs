//! Ports of Go's `test/chan/*.go` programs and of `runtime/chan_test.go`
//! to `gort::chan`, through the public façade, at several GOMAXPROCS.

mod common;
use common::{Rng, rt, seed, watchdog};
use gort::chan::{
    Receiver, RecvError, RecvTimeoutError, Select, SendTimeoutError, Sender, TryRecvError,
    TrySendError, after, bounded, never, select, tick, unbounded,
};
use gort::sync::WaitGroup;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- test/chan/sieve1.go ----

fn generate(ch: Sender<u64>) {
    let mut i = 2;
    while ch.send(i).is_ok() {
        i += 1;
    }
}

fn filter(inp: Receiver<u64>, out: Sender<u64>, prime: u64) {
    for i in inp.iter() {
        if i % prime != 0 && out.send(i).is_err() {
            return;
        }
    }
}

fn sieve(n: usize) -> Vec<u64> {
    let (s, mut r) = bounded(0);
    gort::go(move || generate(s));
    let mut primes = Vec::new();
    for _ in 0..n {
        let prime = r.recv().unwrap();
        primes.push(prime);
        let (s1, r1) = bounded(0);
        let inp = std::mem::replace(&mut r, r1);
        gort::go(move || filter(inp, s1, prime));
    }
    // Dropping `r` unwinds the chain: each stage's send fails in turn.
    primes
}

#[test]
fn sieve1() {
    watchdog("sieve1", 30, || {
        for procs in [1, 4] {
            let p = rt(procs).run(|| sieve(100));
            assert_eq!(&p[..10], &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
            assert_eq!(p[99], 541);
        }
    });
}

// ---- test/chan/fifo.go ----

#[test]
fn fifo() {
    watchdog("fifo", 30, || {
        for procs in [1, 2, 16] {
            rt(procs).run(|| {
                const N: usize = 10;
                // AsynchFifo
                let (s, r) = bounded(N);
                for i in 0..N {
                    s.send(i).unwrap();
                }
                for i in 0..N {
                    assert_eq!(r.recv(), Ok(i));
                }
                // SynchFifo: a chain of goroutines that each wait for their
                // turn, then send their number.
                let (ch_s, ch_r) = bounded::<usize>(0);
                let (start_s, mut inp) = bounded::<i32>(0);
                for i in 0..N {
                    let (out_s, out_r) = bounded::<i32>(0);
                    let ch_s = ch_s.clone();
                    let my_in = std::mem::replace(&mut inp, out_r);
                    gort::go(move || {
                        my_in.recv().unwrap();
                        ch_s.send(i).unwrap();
                        out_s.send(1).unwrap();
                    });
                }
                start_s.send(0).unwrap();
                for i in 0..N {
                    assert_eq!(ch_r.recv(), Ok(i));
                }
                assert_eq!(inp.recv(), Ok(1));
            });
        }
    });
}

// ---- test/chan/goroutines.go ----

#[test]
fn goroutines_chain_10000() {
    watchdog("goroutines_chain_10000", 30, || {
        for procs in [1, 2, 16] {
            let n = 10_000;
            let got = rt(procs).run(move || {
                let (leftmost_s, leftmost_r) = bounded::<u64>(0);
                let mut left = leftmost_s;
                for _ in 0..n {
                    let (rs, rr) = bounded::<u64>(0);
                    let l = std::mem::replace(&mut left, rs);
                    gort::go(move || {
                        let v = rr.recv().unwrap();
                        l.send(v + 1).unwrap();
                    });
                }
                gort::go(move || left.send(0).unwrap());
                leftmost_r.recv().unwrap()
            });
            assert_eq!(got, n);
        }
    });
}

// ---- test/chan/nonblock.go ----

#[test]
fn nonblock() {
    watchdog("nonblock", 30, || {
        rt(2).run(|| {
            for cap in [0usize, 1, 8] {
                let (s, r) = bounded::<i32>(cap);
                // Nothing to receive: default.
                let got = select! { recv(r) -> v => Some(v), default => None };
                assert_eq!(got, None);
                assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
                // Sends succeed up to the capacity, then default.
                for i in 0..cap {
                    let ok = select! { send(s, i as i32) -> res => res.is_ok(), default => false };
                    assert!(ok);
                }
                let blocked = select! { send(s, 99) -> _ => false, default => true };
                assert!(blocked);
                assert!(matches!(s.try_send(99), Err(TrySendError::Full(99))));
                for i in 0..cap {
                    assert_eq!(r.try_recv(), Ok(i as i32));
                }
                // A blocked receiver makes a non-blocking send succeed.
                let (ds, dr) = bounded::<i32>(0);
                let r2 = r.clone();
                gort::go(move || ds.send(r2.recv().unwrap()).unwrap());
                // Until the receiver has parked: bounded by time, not by a
                // number of yields (the other M may have taken it and been
                // descheduled before it parked, on a loaded host).
                let mut sent = false;
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(10) {
                    if s.try_send(7).is_ok() {
                        sent = true;
                        break;
                    }
                    gort::yield_now();
                }
                assert!(sent, "the receiver never parked");
                assert_eq!(dr.recv(), Ok(7));
            }
        });
    });
}

// ---- test/chan/select3.go (the semantics that apply) ----

#[test]
fn select3_semantics() {
    watchdog("select3_semantics", 30, || {
        rt(2).run(|| {
            // A disconnected channel's receive is ready and yields Err.
            let (s, r) = bounded::<i32>(0);
            drop(s);
            assert_eq!(r.recv(), Err(RecvError));
            let got = select! { recv(r) -> v => v, default => Ok(1) };
            assert_eq!(got, Err(RecvError));
            // Buffered values drain before the disconnection shows.
            let (s, r) = bounded::<i32>(3);
            s.send(1).unwrap();
            s.send(2).unwrap();
            drop(s);
            assert_eq!(r.iter().collect::<Vec<_>>(), vec![1, 2]);
            assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
            // Send on a channel whose receivers are gone fails (with the value).
            let (s, r) = bounded::<i32>(0);
            assert!(!s.is_disconnected() && !r.is_disconnected());
            drop(r);
            assert!(s.is_disconnected());
            assert_eq!(s.send(5).unwrap_err().0, 5);
            let res = select! { send(s, 6) -> res => res.map_err(|e| e.0), default => Ok(()) };
            assert_eq!(res, Err(6));
            // never() blocks: default is chosen, and default never blocks.
            let n = never::<i32>();
            let t = Instant::now();
            for _ in 0..1000 {
                let got = select! { recv(n) -> _ => false, default => true };
                assert!(got);
            }
            assert!(t.elapsed() < Duration::from_secs(2));
            // A blocked receiver is released by the disconnection.
            let (s, r) = bounded::<i32>(0);
            let h = gort::go(move || r.recv());
            gort::time::sleep(Duration::from_millis(2));
            drop(s);
            assert_eq!(h.join().unwrap(), Err(RecvError));
            // A blocked sender is released when the receivers go.
            let (s, r) = bounded::<i32>(0);
            let h = gort::go(move || s.send(3).map_err(|e| e.0));
            gort::time::sleep(Duration::from_millis(2));
            drop(r);
            assert_eq!(h.join().unwrap(), Err(3));
        });
    });
}

// ---- test/chan/select7.go (value-discarding receives) ----

#[test]
fn select7_discarding_recv() {
    watchdog("select7_discarding_recv", 30, || {
        rt(2).run(|| {
            let (s, r) = bounded::<i32>(0);
            for _ in 0..3 {
                let s = s.clone();
                gort::go(move || s.send(1).unwrap());
                select! { recv(r) -> _ => {} }
            }
            let s2 = s.clone();
            gort::go(move || s2.send(1).unwrap());
            let n = never::<i32>();
            select! {
                recv(n) -> _ => panic!("never fired"),
                recv(&r) -> _ => {}
            }
            gort::go(move || s.send(1).unwrap());
            let _ = r.recv();
        });
    });
}

// ---- test/chan/doubleselect.go ----

#[test]
fn doubleselect() {
    watchdog("doubleselect", 30, || {
        for procs in [1, 2, 16] {
            let n = 10_000usize;
            rt(procs).run(move || {
                let chans: Vec<_> = (0..4).map(|_| bounded::<usize>(0)).collect();
                let seen = Arc::new(Mutex::new(vec![false; n]));
                let count = Arc::new(AtomicUsize::new(0));
                let wg = Arc::new(WaitGroup::new());
                for (_, r) in &chans {
                    let (r, seen, count, wg) = (r.clone(), seen.clone(), count.clone(), wg.clone());
                    wg.add(1);
                    gort::go(move || {
                        for v in r.iter() {
                            let mut s = seen.lock().unwrap();
                            assert!(!s[v], "value {v} received twice");
                            s[v] = true;
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        wg.done();
                    });
                }
                let senders: Vec<Sender<usize>> = chans.iter().map(|(s, _)| s.clone()).collect();
                drop(chans);
                gort::go(move || {
                    let [c1, c2, c3, c4] = &senders[..] else {
                        unreachable!()
                    };
                    for i in 0..n {
                        select! {
                            send(c1, i) -> r => r.unwrap(),
                            send(c2, i) -> r => r.unwrap(),
                            send(c3, i) -> r => r.unwrap(),
                            send(c4, i) -> r => r.unwrap(),
                        }
                    }
                });
                wg.wait();
                assert_eq!(count.load(Ordering::Relaxed), n);
                assert!(seen.lock().unwrap().iter().all(|&b| b));
            });
        }
    });
}

// ---- test/chan/zerosize.go ----

#[test]
fn zerosize() {
    watchdog("zerosize", 30, || {
        rt(2).run(|| {
            for cap in [0usize, 1, 10] {
                let (s, r) = bounded::<()>(cap);
                let h = gort::go(move || {
                    for _ in 0..100 {
                        s.send(()).unwrap();
                    }
                });
                assert_eq!(r.iter().count(), 100);
                h.join().unwrap();
                let (s, r) = bounded::<[u8; 0]>(cap);
                gort::go(move || s.send([]).unwrap());
                assert_eq!(r.recv(), Ok([]));
            }
            let (s, r) = unbounded::<()>();
            for _ in 0..1000 {
                s.send(()).unwrap();
            }
            assert_eq!(r.len(), 1000);
            drop(s);
            assert_eq!(r.into_iter().count(), 1000);
        });
    });
}

// ---- runtime/chan_test.go: TestChan ----

#[test]
fn test_chan() {
    watchdog("test_chan", 60, || {
        for procs in [1, 4] {
            rt(procs).run(|| {
                for cap in [0usize, 1, 10, 100] {
                    // Receive from an empty channel blocks.
                    let (s, r) = bounded::<i32>(cap);
                    let got = Arc::new(AtomicUsize::new(0));
                    let g2 = got.clone();
                    let r2 = r.clone();
                    gort::go(move || {
                        r2.recv().unwrap();
                        g2.store(1, Ordering::SeqCst);
                    });
                    gort::time::sleep(Duration::from_millis(1));
                    assert_eq!(got.load(Ordering::SeqCst), 0, "recv from empty chan");
                    // Non-blocking receive from an empty channel fails.
                    // (Before the send, as Go's TestChan does: after it,
                    // a receiver not yet parked — a loaded host — leaves
                    // the value in the buffer, and `try_recv` may take it.)
                    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
                    s.send(0).unwrap();
                    // Send to a full channel blocks.
                    for i in 0..cap {
                        s.send(i as i32).unwrap();
                    }
                    let sent = Arc::new(AtomicUsize::new(0));
                    let s2 = sent.clone();
                    let sc = s.clone();
                    gort::go(move || {
                        sc.send(0).unwrap();
                        s2.store(1, Ordering::SeqCst);
                    });
                    gort::time::sleep(Duration::from_millis(1));
                    assert_eq!(sent.load(Ordering::SeqCst), 0, "send to full chan");
                    while got.load(Ordering::SeqCst) == 0 {
                        gort::yield_now();
                    }
                    for _ in 0..=cap {
                        r.recv().unwrap();
                    }
                    // Close: values drain, then the zero value (Err).
                    let (s, r) = bounded::<i32>(cap);
                    for i in 0..cap {
                        s.send(i as i32).unwrap();
                    }
                    drop(s);
                    for i in 0..cap {
                        assert_eq!(r.recv(), Ok(i as i32));
                    }
                    assert_eq!(r.recv(), Err(RecvError));
                    assert_eq!(r.recv(), Err(RecvError));
                    // FIFO under a single sender and receiver.
                    let (s, r) = bounded::<usize>(cap);
                    gort::go(move || {
                        for i in 0..100 {
                            s.send(i).unwrap();
                        }
                    });
                    for i in 0..100 {
                        assert_eq!(r.recv(), Ok(i));
                    }
                    assert_eq!(r.recv(), Err(RecvError));
                    // Multiple senders and receivers: every value once.
                    let (s, r) = bounded::<usize>(cap);
                    let (ds, dr) = unbounded::<Vec<usize>>();
                    const P: usize = 4;
                    const L: usize = 1000;
                    for p in 0..P {
                        let s = s.clone();
                        gort::go(move || {
                            for i in 0..L {
                                s.send(p * L + i).unwrap();
                            }
                        });
                    }
                    drop(s);
                    for _ in 0..P {
                        let (r, ds) = (r.clone(), ds.clone());
                        gort::go(move || ds.send(r.iter().collect()).unwrap());
                    }
                    drop(ds);
                    let mut all: Vec<usize> = dr.iter().flatten().collect();
                    all.sort_unstable();
                    assert_eq!(all, (0..P * L).collect::<Vec<_>>());
                    // len / cap.
                    let (s, r) = bounded::<i32>(cap);
                    assert_eq!(s.capacity(), Some(cap));
                    for i in 0..cap {
                        assert_eq!(r.len(), i);
                        s.send(i as i32).unwrap();
                    }
                    assert!(s.is_full());
                    assert_eq!(r.len(), cap);
                }
            });
        }
    });
}

// ---- runtime/chan_test.go: TestSelectFairness ----

#[test]
fn select_fairness() {
    watchdog("select_fairness", 30, || {
        rt(2).run(|| {
            const TRIALS: usize = 10_000;
            let (s1, r1) = bounded::<u8>(TRIALS + 1);
            let (s2, r2) = bounded::<u8>(TRIALS + 1);
            for _ in 0..=TRIALS {
                s1.send(1).unwrap();
                s2.send(2).unwrap();
            }
            let (_s3, r3) = bounded::<u8>(0);
            let (_s4, r4) = bounded::<u8>(0);
            let (mut c1, mut c2) = (0, 0);
            for _ in 0..TRIALS {
                let b = select! {
                    recv(r3) -> b => b.unwrap(),
                    recv(r4) -> b => b.unwrap(),
                    recv(r1) -> b => b.unwrap(),
                    recv(r2) -> b => b.unwrap(),
                };
                match b {
                    1 => c1 += 1,
                    2 => c2 += 1,
                    _ => unreachable!(),
                }
            }
            let frac = c1 as f64 / (c1 + c2) as f64;
            assert!((0.4..=0.6).contains(&frac), "unfair select: {c1} vs {c2}");
            // The dynamic API agrees.
            let mut hits = [0usize; 2];
            for _ in 0..TRIALS {
                let mut sel = Select::new();
                let a = sel.recv(&r1);
                let b = sel.recv(&r2);
                let i = sel.try_ready().unwrap();
                assert!(i == a || i == b);
                hits[i] += 1;
            }
            let frac = hits[0] as f64 / TRIALS as f64;
            assert!((0.4..=0.6).contains(&frac), "unfair ready: {hits:?}");
            // A removed case is never chosen.
            let mut sel = Select::new();
            let a = sel.recv(&r1);
            let b = sel.recv(&r2);
            sel.remove(a);
            for _ in 0..100 {
                assert_eq!(sel.try_ready(), Ok(b));
            }
            let op = sel.select();
            assert_eq!(op.index(), b);
            assert_eq!(op.recv(&r2), Ok(2));
        });
    });
}

// ---- runtime/chan_test.go: TestMultiConsumer ----

#[test]
fn multi_consumer() {
    watchdog("multi_consumer", 60, || {
        for procs in [1, 2, 16] {
            let (n, s) = rt(procs).run(|| {
                const NWORK: usize = 23;
                const NITER: u64 = 271_828;
                let (qs, qr) = bounded::<u64>(NWORK * 3);
                let (rs, rr) = bounded::<u64>(NWORK * 3);
                let wg = Arc::new(WaitGroup::new());
                for _ in 0..NWORK {
                    wg.add(1);
                    let (qr, rs, wg) = (qr.clone(), rs.clone(), wg.clone());
                    gort::go(move || {
                        for v in qr.iter() {
                            rs.send(v).unwrap();
                        }
                        wg.done();
                    });
                }
                drop((qr, rs));
                let expect: u64 = (0..NITER).sum();
                gort::go(move || {
                    for i in 0..NITER {
                        qs.send(i).unwrap();
                    }
                });
                let collector = gort::go(move || {
                    let mut n = 0u64;
                    let mut s = 0u64;
                    for v in rr.iter() {
                        n += 1;
                        s += v;
                    }
                    (n, s)
                });
                wg.wait();
                let (n, s) = collector.join().unwrap();
                assert_eq!(s, expect);
                (n, s)
            });
            assert_eq!(n, 271_828);
            assert!(s > 0);
        }
    });
}

// ---- runtime/chan_test.go: TestSelfSelect ----

#[test]
fn self_select() {
    watchdog("self_select", 30, || {
        for procs in [1, 2, 16] {
            rt(procs).run(|| {
                for cap in [0usize, 10] {
                    let (s, r) = bounded::<usize>(cap);
                    let wg = Arc::new(WaitGroup::new());
                    for p in 0..2usize {
                        wg.add(1);
                        let (s, r, wg) = (s.clone(), r.clone(), wg.clone());
                        gort::go(move || {
                            for i in 0..1000 {
                                if p == 0 || i % 2 == 0 {
                                    select! {
                                        send(s, p) -> res => res.unwrap(),
                                        recv(r) -> v => {
                                            assert!(!(cap == 0 && v.unwrap() == p), "self receive");
                                        }
                                    }
                                } else {
                                    select! {
                                        recv(r) -> v => {
                                            assert!(!(cap == 0 && v.unwrap() == p), "self receive");
                                        }
                                        send(s, p) -> res => res.unwrap(),
                                    }
                                }
                            }
                            wg.done();
                        });
                    }
                    wg.wait();
                }
            });
        }
    });
}

// ---- runtime/chan_test.go: TestSelectDuplicateChannel ----

#[test]
fn select_duplicate_channel() {
    watchdog("select_duplicate_channel", 30, || {
        rt(4).run(|| {
            let (cs, cr) = bounded::<i32>(0);
            let (ds, dr) = bounded::<i32>(0);
            let (es, er) = bounded::<i32>(0);
            let (cr1, cr2) = (cr.clone(), cr.clone());
            gort::go(move || {
                select! {
                    recv(cr1) -> _ => {}
                    recv(cr1) -> _ => {}
                    recv(dr) -> _ => {}
                }
                es.send(9).unwrap();
            });
            gort::time::sleep(Duration::from_millis(1));
            gort::go(move || {
                let _ = cr2.recv();
            });
            gort::time::sleep(Duration::from_millis(1));
            ds.send(7).unwrap();
            assert_eq!(er.recv(), Ok(9));
            cs.send(8).unwrap();
        });
    });
}

// ---- timeouts (Go: time.After in a select) ----

#[test]
fn timeouts() {
    watchdog("timeouts", 30, || {
        let check = || {
            let (s, r) = bounded::<i32>(0);
            let t = Instant::now();
            assert_eq!(
                r.recv_timeout(Duration::from_millis(10)),
                Err(RecvTimeoutError::Timeout)
            );
            assert!(t.elapsed() >= Duration::from_millis(10));
            assert!(matches!(
                s.send_timeout(4, Duration::from_millis(5)),
                Err(SendTimeoutError::Timeout(4))
            ));
            let t = Instant::now();
            let got = select! {
                recv(r) -> _ => false,
                default(Duration::from_millis(10)) => true,
            };
            assert!(got && t.elapsed() >= Duration::from_millis(10));
            let mut sel = Select::new();
            sel.recv(&r);
            assert!(sel.ready_timeout(Duration::from_millis(5)).is_err());
            // A timed-out op leaves the channel usable.
            let (s2, r2) = (s.clone(), r.clone());
            let h = std::thread::spawn(move || s2.send(1));
            assert_eq!(r2.recv_timeout(Duration::from_secs(5)), Ok(1));
            h.join().unwrap().unwrap();
        };
        check(); // plain threads
        rt(2).run(check); // goroutines
    });
}

// ---- timer channels (Go: time.After, time.Tick) and blocking ready ----

#[test]
fn timers_and_ready() {
    watchdog("timers_and_ready", 30, || {
        let check = || {
            let t = Instant::now();
            let a = after(Duration::from_millis(10));
            let (_s, r) = bounded::<i32>(0);
            let fired = select! {
                recv(r) -> _ => false,
                recv(a) -> at => at.is_ok(),
            };
            assert!(fired && t.elapsed() >= Duration::from_millis(10));
            // A fired timer channel never reports disconnection.
            assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
            let tk = tick(Duration::from_millis(2));
            for _ in 0..3 {
                tk.recv().unwrap();
            }
            drop(tk);
            // Blocking ready: woken by a send from elsewhere.
            let (s, r) = bounded::<i32>(0);
            let (s2, r2) = bounded::<i32>(1);
            let h = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                s2.send(1).unwrap();
            });
            let mut sel = Select::new();
            let _a = sel.recv(&r);
            let b = sel.recv(&r2);
            assert_eq!(sel.ready(), b);
            assert_eq!(r2.recv(), Ok(1));
            h.join().unwrap();
            drop(s);
        };
        check();
        rt(2).run(check);
        rt(1).run(check);
    });
}

// ---- timeouts racing completions: no value lost or duplicated ----

#[test]
fn stress_timeouts() {
    watchdog("stress_timeouts", 60, || {
        let seed = seed();
        for procs in [1, 2, 16] {
            rt(procs).run(move || {
                let (s, r) = bounded::<u64>(0);
                let sent = Arc::new(Mutex::new(Vec::new()));
                let got = Arc::new(Mutex::new(Vec::new()));
                let wg = Arc::new(WaitGroup::new());
                for g in 0..8u64 {
                    let (s, r) = (s.clone(), r.clone());
                    let (sent, got, wg) = (sent.clone(), got.clone(), wg.clone());
                    let mut rng = Rng(seed ^ ((g + 1) * 0x9e37_79b9));
                    wg.add(1);
                    gort::go(move || {
                        for i in 0..300 {
                            let t = Duration::from_micros(rng.below(200));
                            if g % 2 == 0 {
                                let v = g * 1000 + i;
                                match s.send_timeout(v, t) {
                                    Ok(()) => sent.lock().unwrap().push(v),
                                    Err(e) => assert_eq!(e.into_inner(), v),
                                }
                            } else if rng.below(2) == 0 {
                                if let Ok(v) = r.recv_timeout(t) {
                                    got.lock().unwrap().push(v);
                                }
                            } else {
                                select! {
                                    recv(r) -> v => got.lock().unwrap().push(v.unwrap()),
                                    default(t) => {}
                                }
                            }
                        }
                        wg.done();
                    });
                }
                wg.wait();
                let mut a = sent.lock().unwrap().clone();
                let mut b = got.lock().unwrap().clone();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b);
            });
        }
    });
}

// ---- plain threads, no runtime ----

#[test]
fn plain_threads() {
    watchdog("plain_threads", 30, || {
        let (s, r) = bounded::<u64>(0);
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        s.send(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(s);
        let sum: u64 = r.iter().sum();
        assert_eq!(sum, (0..4000).sum());
        for h in hs {
            h.join().unwrap();
        }
    });
}

// ---- seeded stress: mixed selects at GOMAXPROCS 1, 2, 16 ----

#[test]
fn stress_select_mix() {
    watchdog("stress_select_mix", 60, || {
        let seed = seed();
        for procs in [1, 2, 16] {
            rt(procs).run(move || {
                let mut rng = Rng(seed ^ procs as u64);
                const NCH: usize = 4;
                const PER: u64 = 2_000;
                const PRODUCERS: u64 = 4;
                let chans: Vec<_> = (0..NCH)
                    .map(|_| bounded::<u64>(rng.below(3) as usize))
                    .collect();
                let total = Arc::new(AtomicUsize::new(0));
                let sum = Arc::new(AtomicUsize::new(0));
                let wg = Arc::new(WaitGroup::new());
                for p in 0..PRODUCERS {
                    let ss: Vec<Sender<u64>> = chans.iter().map(|c| c.0.clone()).collect();
                    let mut rng = Rng(rng.next() | 1);
                    gort::go(move || {
                        for i in 0..PER {
                            let v = p * PER + i;
                            if rng.below(2) == 0 {
                                ss[rng.below(NCH as u64) as usize].send(v).unwrap();
                            } else {
                                let mut sel = Select::new();
                                for s in &ss {
                                    sel.send(s);
                                }
                                let op = sel.select();
                                let i = op.index();
                                op.send(&ss[i], v).unwrap();
                            }
                        }
                    });
                }
                for _ in 0..3 {
                    let rs: Vec<Receiver<u64>> = chans.iter().map(|c| c.1.clone()).collect();
                    let (total, sum, wg) = (total.clone(), sum.clone(), wg.clone());
                    wg.add(1);
                    gort::go(move || {
                        let mut open = rs.len();
                        let mut closed = vec![false; rs.len()];
                        while open > 0 {
                            let mut sel = Select::new();
                            let mut idx = Vec::new();
                            for (k, r) in rs.iter().enumerate() {
                                if !closed[k] {
                                    sel.recv(r);
                                    idx.push(k);
                                }
                            }
                            let op = sel.select();
                            let k = idx[op.index()];
                            match op.recv(&rs[k]) {
                                Ok(v) => {
                                    total.fetch_add(1, Ordering::Relaxed);
                                    sum.fetch_add(v as usize, Ordering::Relaxed);
                                }
                                Err(RecvError) => {
                                    closed[k] = true;
                                    open -= 1;
                                }
                            }
                        }
                        wg.done();
                    });
                }
                drop(chans);
                wg.wait();
                let n = (PRODUCERS * PER) as usize;
                assert_eq!(total.load(Ordering::Relaxed), n);
                assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
            });
        }
    });
}
