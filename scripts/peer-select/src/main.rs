//! Go's four `select` benchmarks (`runtime/chan_test.go`) on tokio and may,
//! in the shape of gort's `benches/sched.rs --case select` and of
//! `scripts/go-select`: `W` workers (= worker threads), `ops / W`
//! iterations each, ns per iteration (wall / total). One warm-up at
//! ops/10, then `reps` timed runs; the median is printed as
//! `RESULT select_ns_per_op[shape=..,procs=W] <ns> ns`.
//!
//! What each peer can express, honestly labelled:
//!
//! - tokio: `tokio::select!` (random branch order, as Go). tokio's mpsc is
//!   single-consumer, so the shared channels are async-channel's MPMC
//!   ones; neither has a rendezvous channel (async-channel's `bounded(0)`
//!   panics), so `sync_contended` uses capacity 1 (label `,cap=1`); a
//!   select with `default` is `try_recv`/`try_send` (what a default select
//!   does; tokio's `select!` has no `default`).
//! - may: `may::select!` runs each case in a coroutine of its own and
//!   cancels the losers (its documented design), over may's channels,
//!   which are all unbounded (label `,unbounded`). That expresses
//!   `uncontended` only. `async_contended` loses messages under may: when
//!   two cases are ready, the losing case's coroutine may already have
//!   received its value when it is cancelled (seen here: 1 of 2 values
//!   left after a run; with every value lost the workers would block for
//!   ever), so it is not run. Not `sync_contended` (no rendezvous or
//!   bounded channel; a send case cannot block) nor `nonblock` (an
//!   unbounded send is never "full"; no select `default`). In
//!   `uncontended` only one value is ever in flight per worker, so no
//!   case can lose one. Nothing is printed for the shapes not run.
use std::sync::Arc;
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

// ------------------------------------------------------------------ tokio

async fn tokio_bounce(
    s1: &async_channel::Sender<u64>,
    r1: &async_channel::Receiver<u64>,
    s2: &async_channel::Sender<u64>,
    r2: &async_channel::Receiver<u64>,
    n: u64,
) {
    for _ in 0..n {
        tokio::select! {
            v = r1.recv() => s2.send(v.unwrap()).await.unwrap(),
            v = r2.recv() => s1.send(v.unwrap()).await.unwrap(),
        }
    }
}

fn tokio_run(rt: &tokio::runtime::Runtime, shape: &str, w: u64, ops: u64) -> f64 {
    let per = ops / w;
    rt.block_on(async move {
        let t0 = Instant::now();
        match shape {
            "uncontended" => {
                let hs: Vec<_> = (0..w)
                    .map(|_| {
                        tokio::spawn(async move {
                            let (s1, mut r1) = tokio::sync::mpsc::channel::<u64>(1);
                            let (s2, mut r2) = tokio::sync::mpsc::channel::<u64>(1);
                            s1.send(0).await.unwrap();
                            for _ in 0..per {
                                tokio::select! {
                                    v = r1.recv() => s2.send(v.unwrap()).await.unwrap(),
                                    v = r2.recv() => s1.send(v.unwrap()).await.unwrap(),
                                }
                            }
                            r1.len() + r2.len()
                        })
                    })
                    .collect();
                for h in hs {
                    assert_eq!(h.await.unwrap(), 1, "uncontended: one value");
                }
            }
            "async_contended" => {
                let (s1, r1) = async_channel::bounded::<u64>(w as usize);
                let (s2, r2) = async_channel::bounded::<u64>(w as usize);
                let hs: Vec<_> = (0..w)
                    .map(|_| {
                        let (s1, r1, s2, r2) = (s1.clone(), r1.clone(), s2.clone(), r2.clone());
                        tokio::spawn(async move {
                            s1.send(0).await.unwrap();
                            tokio_bounce(&s1, &r1, &s2, &r2, per).await;
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
                assert_eq!(r1.len() + r2.len(), w as usize, "async_contended: W values");
            }
            "sync_contended" => {
                let cs: Vec<_> = (0..3).map(|_| async_channel::bounded::<u64>(1)).collect();
                let cs = Arc::new(cs);
                let (done_s, done_r) = async_channel::bounded::<()>(1);
                let helpers: Vec<_> = (0..w)
                    .map(|_| {
                        let (cs, done) = (cs.clone(), done_r.clone());
                        tokio::spawn(async move {
                            let mut sent = 0u64;
                            loop {
                                tokio::select! {
                                    r = cs[0].0.send(0) => { r.unwrap(); sent += 1 },
                                    r = cs[1].0.send(0) => { r.unwrap(); sent += 1 },
                                    r = cs[2].0.send(0) => { r.unwrap(); sent += 1 },
                                    _ = done.recv() => return sent,
                                }
                            }
                        })
                    })
                    .collect();
                let ws: Vec<_> = (0..w)
                    .map(|_| {
                        let cs = cs.clone();
                        tokio::spawn(async move {
                            for _ in 0..per {
                                tokio::select! {
                                    v = cs[0].1.recv() => { v.unwrap(); },
                                    v = cs[1].1.recv() => { v.unwrap(); },
                                    v = cs[2].1.recv() => { v.unwrap(); },
                                }
                            }
                        })
                    })
                    .collect();
                for h in ws {
                    h.await.unwrap();
                }
                let el = t0.elapsed().as_nanos() as f64;
                drop(done_s);
                let mut sent = 0;
                for h in helpers {
                    sent += h.await.unwrap();
                }
                let left: usize = cs.iter().map(|c| c.1.len()).sum();
                assert_eq!(
                    sent,
                    per * w + left as u64,
                    "sync_contended: every send counted"
                );
                return el / (per * w) as f64;
            }
            "nonblock" => {
                // Go: c1, c2 unbuffered (nobody on the other side), c3, c4
                // capacity 1 (c4 full). Capacity-1 stand-ins: c2 and c4 full.
                let c1 = async_channel::bounded::<u64>(1);
                let c2 = async_channel::bounded::<u64>(1);
                let c3 = async_channel::bounded::<u64>(1);
                let c4 = async_channel::bounded::<u64>(1);
                c2.0.try_send(0).unwrap();
                c4.0.try_send(0).unwrap();
                let cs = Arc::new((c1, c2, c3, c4));
                let hs: Vec<_> = (0..w)
                    .map(|_| {
                        let cs = cs.clone();
                        tokio::spawn(async move {
                            let mut d = 0u64;
                            for _ in 0..per {
                                d += u64::from(cs.0 .1.try_recv().is_err());
                                d += u64::from(cs.1 .0.try_send(0).is_err());
                                d += u64::from(cs.2 .1.try_recv().is_err());
                                d += u64::from(cs.3 .0.try_send(0).is_err());
                            }
                            d
                        })
                    })
                    .collect();
                let mut d = 0;
                for h in hs {
                    d += h.await.unwrap();
                }
                assert_eq!(d, 4 * per * w, "nonblock: every case took default");
            }
            other => panic!("unknown shape {other}"),
        }
        t0.elapsed().as_nanos() as f64 / (per * w) as f64
    })
}

// -------------------------------------------------------------------- may

fn may_bounce(
    c1: &(may::sync::mpmc::Sender<u64>, may::sync::mpmc::Receiver<u64>),
    c2: &(may::sync::mpmc::Sender<u64>, may::sync::mpmc::Receiver<u64>),
    n: u64,
) {
    for _ in 0..n {
        let got = std::sync::Mutex::new(None);
        let which = may::select!(
            v = c1.1.recv() => *got.lock().unwrap() = Some(v.unwrap()),
            v = c2.1.recv() => *got.lock().unwrap() = Some(v.unwrap())
        );
        let v = got.lock().unwrap().take().expect("the chosen case's value");
        if which == 0 {
            c2.0.send(v).unwrap();
        } else {
            c1.0.send(v).unwrap();
        }
    }
}

fn may_run(shape: &str, w: u64, ops: u64) -> Option<f64> {
    let per = ops / w;
    let t0 = Instant::now();
    match shape {
        "uncontended" => {
            let hs: Vec<_> = (0..w)
                .map(|_| {
                    // SAFETY (may's API): `go!` is unsafe because a
                    // coroutine must not use thread-locals across blocking
                    // calls; this one uses none.
                    unsafe {
                        may::coroutine::spawn(move || {
                            let c1 = may::sync::mpmc::channel::<u64>();
                            let c2 = may::sync::mpmc::channel::<u64>();
                            c1.0.send(0).unwrap();
                            may_bounce(&c1, &c2, per);
                            let mut left = 0;
                            while c1.1.try_recv().is_ok() || c2.1.try_recv().is_ok() {
                                left += 1;
                            }
                            left
                        })
                    }
                })
                .collect();
            for h in hs {
                assert_eq!(h.join().unwrap(), 1, "uncontended: one value");
            }
        }
        _ => return None,
    }
    Some(t0.elapsed().as_nanos() as f64 / (per * w) as f64)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: peer-select <tokio|may> <shape|all> <workers> <ops> <reps>");
        std::process::exit(2);
    }
    let (who, shape) = (a[1].as_str(), a[2].as_str());
    let w: u64 = a[3].parse().expect("workers");
    let ops: u64 = a[4].parse().expect("ops");
    let reps: usize = a[5].parse().expect("reps");
    let shapes: Vec<&str> = if shape == "all" {
        vec![
            "uncontended",
            "sync_contended",
            "async_contended",
            "nonblock",
        ]
    } else {
        vec![shape]
    };
    match who {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w as usize)
                .build()
                .unwrap();
            for s in shapes {
                tokio_run(&rt, s, w, ops / 10);
                let xs: Vec<f64> = (0..reps).map(|_| tokio_run(&rt, s, w, ops)).collect();
                let label = if s == "sync_contended" { ",cap=1" } else { "" };
                println!(
                    "RESULT select_ns_per_op[shape={s},procs={w}{label}] {:.3} ns",
                    median(xs)
                );
            }
        }
        "may" => {
            may::config().set_workers(w as usize);
            for s in shapes {
                if may_run(s, w, ops / 10).is_none() {
                    continue;
                }
                let xs: Vec<f64> = (0..reps).map(|_| may_run(s, w, ops).unwrap()).collect();
                println!(
                    "RESULT select_ns_per_op[shape={s},procs={w},unbounded] {:.3} ns",
                    median(xs)
                );
            }
        }
        other => panic!("unknown runtime {other} (tokio, may)"),
    }
}
