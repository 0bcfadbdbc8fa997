//! The shape of gort's `benches/sched.rs --case mutex` (Go's cmd/mutex) on
//! tokio and may: `g` tasks each do `lock; counter += 1; unlock`, `ops` in
//! total, 2 worker threads; one warm-up at ops/10, then `reps` timed runs;
//! prints the median ns/op per lock kind.
use std::sync::Arc;
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn tokio_async(rt: &tokio::runtime::Runtime, g: u64, ops: u64) -> f64 {
    rt.block_on(async move {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let per = ops / g;
        let t0 = Instant::now();
        let hs: Vec<_> = (0..g)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        *m.lock().await += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        let el = t0.elapsed().as_nanos() as f64;
        assert_eq!(*m.lock().await, per * g);
        el / (per * g) as f64
    })
}

fn tokio_std(rt: &tokio::runtime::Runtime, g: u64, ops: u64) -> f64 {
    rt.block_on(async move {
        let m = Arc::new(std::sync::Mutex::new(0u64));
        let per = ops / g;
        let t0 = Instant::now();
        let hs: Vec<_> = (0..g)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        *m.lock().unwrap() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        let el = t0.elapsed().as_nanos() as f64;
        assert_eq!(*m.lock().unwrap(), per * g);
        el / (per * g) as f64
    })
}

fn may_mutex(g: u64, ops: u64) -> f64 {
    let m = Arc::new(may::sync::Mutex::new(0u64));
    let per = ops / g;
    let t0 = Instant::now();
    let hs: Vec<_> = (0..g)
        .map(|_| {
            let m = m.clone();
            may::go!(move || {
                for _ in 0..per {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let el = t0.elapsed().as_nanos() as f64;
    assert_eq!(*m.lock().unwrap(), per * g);
    el / (per * g) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("tokio");
    let g: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let ops: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let reps: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let xs: Vec<f64> = match kind {
        "tokio" | "tokio_std" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let f = if kind == "tokio" { tokio_async } else { tokio_std };
            f(&rt, g, ops / 10);
            (0..reps).map(|_| f(&rt, g, ops)).collect()
        }
        "may" => {
            may::config().set_workers(2);
            may_mutex(g, ops / 10);
            (0..reps).map(|_| may_mutex(g, ops)).collect()
        }
        k => panic!("unknown kind {k}"),
    };
    println!("# {kind} g={g} ops={ops} reps (ns/op): {xs:?}");
    println!("RESULT {kind}.mutex_ns_per_op.g{g}.w2 {:.1} ns", median(xs));
}
