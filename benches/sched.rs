//! Scheduler benchmarks with the shapes and sizes of the Go anchor
//! (`shared/anchors/go/cmd/{spawn,pingpong,forkjoin,steal,parkmem,chan,mutex,timers}`).
//!
//! ```text
//! cargo bench --bench sched                 # every case, full sizes
//! cargo bench --bench sched -- --smoke      # tiny sizes
//! cargo bench --bench sched -- --only spawn # cases whose name contains "spawn"
//! ```
//!
//! Cases: spawn, pingpong (Gosched), forkjoin, steal, parkmem (issue 2);
//! chan pingpong, chan throughput, mutex, timers (issue 5); preempt
//! (lateness of a 1 ms sleeper beside call-free spinners), preempt_check,
//! stw (stop-the-world latency with hogs) (issue 4).
//!
//! Every figure is printed as `RESULT <metric> <value> <unit>` with the Go
//! anchor's metric names, so the two summaries can be joined. Each case runs
//! in a fresh subprocess of this binary (like the anchor's one process per
//! command), so "cold" and RSS figures are not polluted by earlier cases.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_xs(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn result(metric: &str, value: f64, unit: &str) {
    println!("RESULT {metric} {} {unit}", num(value));
}

/// 6 significant digits, no exponent (the anchor's `bench.Num`).
fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = 6 - 1 - v.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.max(0) as usize, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("CHECK FAILED: {what}");
        std::process::exit(2);
    }
}

fn rt(procs: usize) -> gort::Runtime {
    check_flags();
    gort::Runtime::builder()
        .gomaxprocs(procs)
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------- spawn

/// Go's closure captures `&wg`; a static is the nearest Rust equivalent
/// (no reference count traffic).
static SPAWN_WG: gort::sync::WaitGroup = gort::sync::WaitGroup::new();

fn spawn_once(n: usize) -> f64 {
    let wg = &SPAWN_WG;
    wg.add(n as i64);
    let t0 = Instant::now();
    for _ in 0..n {
        drop(gort::go(move || wg.done()));
    }
    wg.wait();
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn case_spawn(procs: usize, n: usize, reps: usize) {
    rt(procs).run(|| {
        let cold = spawn_once(n);
        let warm: Vec<f64> = (0..reps).map(|_| spawn_once(n)).collect();
        println!(
            "# n={n} cold={cold:.1} ns/goroutine warm reps (ns/goroutine): {}",
            fmt_xs(&warm)
        );
        result(
            &format!("spawn_ns_per_goroutine_cold[n={n},procs={procs}]"),
            cold,
            "ns",
        );
        result(
            &format!("spawn_ns_per_goroutine[n={n},procs={procs}]"),
            median(&warm),
            "ns",
        );
        result(
            &format!("spawn_goroutines_per_s[n={n},procs={procs}]"),
            1e9 / median(&warm),
            "per_s",
        );
    });
}

// ------------------------------------------------------------- pingpong

fn gosched_switches(n: usize) -> (f64, f64) {
    let last = Arc::new(AtomicU64::new(0));
    let alternations = Arc::new(AtomicU64::new(0));
    let start = Arc::new(gort::sync::WaitGroup::new());
    start.add(1);
    let hs: Vec<_> = (1..=2u64)
        .map(|id| {
            let (last, alternations, start) = (last.clone(), alternations.clone(), start.clone());
            gort::go(move || {
                start.wait();
                let mut alt = 0;
                for _ in 0..n {
                    last.store(id, Ordering::Relaxed);
                    gort::yield_now();
                    if last.load(Ordering::Relaxed) != id {
                        alt += 1;
                    }
                }
                alternations.fetch_add(alt, Ordering::Relaxed);
            })
        })
        .collect();
    let t0 = Instant::now();
    start.done();
    for h in hs {
        h.join().unwrap();
    }
    let el = t0.elapsed().as_nanos() as f64;
    (
        el / (2 * n) as f64,
        alternations.load(Ordering::Relaxed) as f64 / (2 * n) as f64,
    )
}

fn case_pingpong(n: usize, reps: usize) {
    rt(1).run(|| {
        gosched_switches(n / 10);
        let (mut xs, mut alts) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let (ns, alt) = gosched_switches(n);
            xs.push(ns);
            alts.push(alt);
        }
        println!(
            "# gosched n={n} reps (ns/switch): {} alternation: {}",
            fmt_xs(&xs),
            fmt_xs(&alts)
        );
        result("pingpong_gosched_ns_per_switch[procs=1]", median(&xs), "ns");
        result(
            "pingpong_gosched_alternation[procs=1]",
            median(&alts),
            "ratio",
        );
    });
}

// ------------------------------------------------------------- forkjoin

fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

fn pfib(n: u64, cutoff: u64) -> u64 {
    if n < cutoff {
        return fib(n);
    }
    let a = gort::go(move || pfib(n - 1, cutoff));
    let b = gort::go(move || pfib(n - 2, cutoff));
    a.join().unwrap() + b.join().unwrap()
}

fn spawned(n: u64, cutoff: u64) -> u64 {
    let (mut a, mut b) = (0u64, 0u64);
    for k in 0..=n {
        let c = if k >= cutoff { 2 + a + b } else { 0 };
        (a, b) = (b, c);
    }
    b
}

fn case_forkjoin(n: u64, cutoff: u64, reps: usize) {
    rt(2).run(|| {
        let want = fib(n);
        let gs = spawned(n, cutoff);
        let serial: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                check(
                    std::hint::black_box(fib(std::hint::black_box(n))) == want,
                    "fib",
                );
                t0.elapsed().as_secs_f64()
            })
            .collect();
        result(
            &format!("forkjoin_serial_fib[n={n},procs=2]"),
            median(&serial) * 1e3,
            "ms",
        );
        let mut times = [0.0f64; 3];
        for p in [1usize, 2] {
            gort::runtime::set_gomaxprocs(p);
            check(pfib(n, cutoff) == want, "pfib warm-up");
            let xs: Vec<f64> = (0..reps)
                .map(|_| {
                    let t0 = Instant::now();
                    let got = pfib(n, cutoff);
                    let el = t0.elapsed().as_secs_f64();
                    check(got == want, "pfib");
                    el
                })
                .collect();
            times[p] = median(&xs);
            println!(
                "# procs={p} n={n} cutoff={cutoff} goroutines/run={gs} reps (s): {}",
                fmt_xs(&xs)
            );
            result(
                &format!("forkjoin_time[n={n},cutoff={cutoff},procs={p}]"),
                times[p] * 1e3,
                "ms",
            );
            result(
                &format!("forkjoin_goroutines_per_s[n={n},cutoff={cutoff},procs={p}]"),
                gs as f64 / times[p],
                "per_s",
            );
        }
        result(
            &format!("forkjoin_speedup[n={n},cutoff={cutoff},procs=2/1]"),
            times[1] / times[2],
            "ratio",
        );
    });
}

// ---------------------------------------------------------------- steal

fn work(seed: u64, iters: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn serial_task_ns(iters: u64, count: u64) -> f64 {
    let t0 = Instant::now();
    let mut acc = 0u64;
    for i in 0..count {
        acc = acc.wrapping_add(work(
            std::hint::black_box(i + 1),
            std::hint::black_box(iters),
        ));
    }
    std::hint::black_box(acc);
    t0.elapsed().as_nanos() as f64 / count as f64
}

/// Go's tasks capture the results slice and `&wg` by reference (no
/// reference counts); a leaked slice and a static wait group are the Rust
/// equivalent, so no shared counter is bumped per task.
static STEAL_WG: gort::sync::WaitGroup = gort::sync::WaitGroup::new();

fn steal_run(results: &'static [AtomicU64], iters: u64) -> f64 {
    let n = results.len();
    let wg = &STEAL_WG;
    wg.add(n as i64);
    let t0 = Instant::now();
    drop(gort::go(move || {
        for (i, slot) in results.iter().enumerate() {
            drop(gort::go(move || {
                slot.store(work(i as u64 + 1, iters), Ordering::Relaxed);
                wg.done();
            }));
        }
    }));
    wg.wait();
    let el = t0.elapsed().as_secs_f64();
    let mut r = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..1000 {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        let i = (r % n as u64) as usize;
        check(
            results[i].load(Ordering::Relaxed) == work(i as u64 + 1, iters),
            "steal task result",
        );
    }
    for x in results.iter() {
        x.store(0, Ordering::Relaxed);
    }
    el
}

fn case_steal(tasks: usize, task_ns: f64, iters_flag: u64, reps: usize) {
    rt(2).run(|| {
        let iters = if iters_flag > 0 {
            iters_flag
        } else {
            let per = (0..5)
                .map(|_| serial_task_ns(100_000, 200) / 100_000.0)
                .fold(f64::MAX, f64::min);
            ((task_ns / per) as u64).max(1)
        };
        let ser: Vec<f64> = (0..5).map(|_| serial_task_ns(iters, 100_000)).collect();
        let task_cost = median(&ser);
        println!("# iters/task={iters} serial ns/task reps: {}", fmt_xs(&ser));
        result(
            &format!("steal_task_serial_ns[tasks={tasks},procs=2]"),
            task_cost,
            "ns",
        );
        result(
            &format!("steal_task_iters[tasks={tasks},procs=2]"),
            iters as f64,
            "count",
        );
        let results: &'static [AtomicU64] =
            Box::leak((0..tasks).map(|_| AtomicU64::new(0)).collect());
        let mut times = [0.0f64; 3];
        for p in [1usize, 2] {
            gort::runtime::set_gomaxprocs(p);
            steal_run(results, iters);
            let xs: Vec<f64> = (0..reps).map(|_| steal_run(results, iters)).collect();
            times[p] = median(&xs);
            println!("# procs={p} tasks={tasks} reps (s): {}", fmt_xs(&xs));
            result(
                &format!("steal_time[tasks={tasks},procs={p}]"),
                times[p] * 1e3,
                "ms",
            );
            result(
                &format!("steal_overhead_ns_per_task[tasks={tasks},procs={p}]"),
                times[p] * 1e9 * p as f64 / tasks as f64 - task_cost,
                "ns",
            );
        }
        result(
            &format!("steal_scaling[tasks={tasks},procs=2/1]"),
            times[1] / times[2],
            "ratio",
        );
    });
}

// -------------------------------------------------------------- parkmem

fn proc_status() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"), field("VmPTE:"))
}

fn case_parkmem(n: usize) {
    rt(2).run(|| {
        let (rss0, _, pte0) = proc_status();
        let release = Arc::new(gort::sync::WaitGroup::new());
        release.add(1);
        let started = Arc::new(gort::sync::WaitGroup::new());
        let done = Arc::new(gort::sync::WaitGroup::new());
        started.add(n as i64);
        done.add(n as i64);
        let parked = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        for _ in 0..n {
            let (release, started, done) = (release.clone(), started.clone(), done.clone());
            drop(gort::go(move || {
                started.done();
                release.wait();
                done.done();
            }));
        }
        started.wait();
        let spawn = t0.elapsed();
        // Let every goroutine reach its park (the last `started.done()` may
        // precede a few parks); the wait group's waiter list tells us.
        let deadline = Instant::now() + Duration::from_secs(5);
        while gort::runtime::num_goroutine() < n + 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        parked.store(n, Ordering::Relaxed);
        let (rss1, hwm, pte1) = proc_status();
        release.done();
        done.wait();
        let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
        println!(
            "# n={n} rss {rss0} -> {rss1} bytes (VmHWM {hwm}), VmPTE {pte0} -> {pte1}, stack reserve {} bytes",
            gort::runtime::DEFAULT_STACK_SIZE
        );
        result(&format!("parkmem_rss_bytes_per_goroutine[n={n},procs=2]"), per(rss0, rss1), "bytes");
        result(&format!("parkmem_pagetable_bytes_per_goroutine[n={n},procs=2]"), per(pte0, pte1), "bytes");
        result(
            &format!("parkmem_spawn_ns_per_goroutine[n={n},procs=2]"),
            spawn.as_nanos() as f64 / n as f64,
            "ns",
        );
    });
}

// ---------------------------------------------------- channels (issue 5)

/// Go's `cmd/pingpong -mode chan`: two goroutines bounce an int over two
/// unbuffered channels; ns per round trip. `cap` other than 0 (`--cap N`,
/// or `--cap unbounded`) is for like-for-like runs against peers whose
/// channels are buffered (tokio's `mpsc(1)`, may's unbounded mpsc).
fn chan_round_trips(n: u64, cap: Option<usize>) -> f64 {
    let pair = || match cap {
        Some(c) => gort::chan::bounded::<u64>(c),
        None => gort::chan::unbounded::<u64>(),
    };
    let (ping_tx, ping_rx) = pair();
    let (pong_tx, pong_rx) = pair();
    let echo = gort::go(move || {
        for v in ping_rx {
            if pong_tx.send(v + 1).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut v = 0;
    for _ in 0..n {
        ping_tx.send(v).unwrap();
        v = pong_rx.recv().unwrap();
    }
    let el = t0.elapsed().as_nanos() as f64;
    drop(ping_tx);
    echo.join().unwrap();
    check(v == n, "pingpong value");
    el / n as f64
}

/// The shape of the tokio anchor's `pingpong_oneshot`: every message
/// carries the sender of a fresh capacity-1 channel for the reply (a
/// oneshot's send never waits; neither does this one), so each round trip
/// makes two channels and uses each once.
fn chan_round_trips_reply(n: u64) -> f64 {
    struct Msg(u64, gort::chan::Sender<Msg>);
    let (first_tx, first_rx) = gort::chan::bounded::<Msg>(1);
    let echo = gort::go(move || {
        let mut rx = first_rx;
        while let Ok(Msg(v, reply)) = rx.recv() {
            let (tx, next_rx) = gort::chan::bounded(1);
            if reply.send(Msg(v + 1, tx)).is_err() {
                break;
            }
            rx = next_rx;
        }
    });
    let t0 = Instant::now();
    let mut to_echo = first_tx;
    let mut v = 0;
    for _ in 0..n {
        let (tx, rx) = gort::chan::bounded(1);
        to_echo.send(Msg(v, tx)).expect("partner gone");
        let Msg(nv, next) = rx.recv().unwrap();
        v = nv;
        to_echo = next;
    }
    let el = t0.elapsed().as_nanos() as f64;
    drop(to_echo);
    echo.join().unwrap();
    check(v == n, "pingpong value");
    el / n as f64
}

fn case_chan_pingpong(procs: usize, n: u64, reps: usize, cap: Option<usize>, reply: bool) {
    let label = match cap {
        _ if reply => ",shape=reply".to_string(),
        Some(0) => String::new(),
        Some(c) => format!(",cap={c}"),
        None => ",cap=unbounded".to_string(),
    };
    let once = |n| {
        if reply {
            chan_round_trips_reply(n)
        } else {
            chan_round_trips(n, cap)
        }
    };
    rt(procs).run(|| {
        once(n / 10);
        let xs: Vec<f64> = (0..reps).map(|_| once(n)).collect();
        println!(
            "# chan pingpong procs={procs}{label} n={n} reps (ns/roundtrip): {}",
            fmt_xs(&xs)
        );
        result(
            &format!("pingpong_chan_ns_per_roundtrip[procs={procs}{label}]"),
            median(&xs),
            "ns",
        );
    });
}

/// Go's `cmd/chan`: `prod` producers send `msgs` ints over one channel of
/// capacity `cap` to `cons` consumers; messages per second.
fn chan_throughput(msgs: u64, prod: u64, cons: u64, cap: usize) -> f64 {
    let (tx, rx) = gort::chan::bounded::<u64>(cap);
    let t0 = Instant::now();
    let cs: Vec<_> = (0..cons)
        .map(|_| {
            let rx = rx.clone();
            gort::go(move || rx.iter().sum::<u64>())
        })
        .collect();
    drop(rx);
    let ps: Vec<_> = (0..prod)
        .map(|p| {
            let tx = tx.clone();
            gort::go(move || {
                let mut i = p;
                while i < msgs {
                    tx.send(i).unwrap();
                    i += prod;
                }
            })
        })
        .collect();
    drop(tx);
    for h in ps {
        h.join().unwrap();
    }
    let total: u64 = cs.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t0.elapsed().as_secs_f64();
    check(total == msgs * (msgs - 1) / 2, "chan sum");
    msgs as f64 / el
}

fn case_chan(procs: usize, msgs: u64, reps: usize, caps: &str, pcs: &str) {
    let caps: Vec<usize> = caps
        .split(',')
        .map(|c| c.parse().expect("--caps: comma-separated capacities"))
        .collect();
    let pcs: Vec<(u64, u64)> = pcs
        .split(',')
        .map(|pc| {
            let (p, c) = pc.split_once('x').expect("--pc: e.g. 1x1,4x4");
            (p.parse().expect("producers"), c.parse().expect("consumers"))
        })
        .collect();
    rt(procs).run(|| {
        for &cap in &caps {
            for &(p, c) in &pcs {
                chan_throughput(msgs / 10, p, c, cap);
                let xs: Vec<f64> = (0..reps)
                    .map(|_| chan_throughput(msgs, p, c, cap))
                    .collect();
                println!(
                    "# chan cap={cap} {p}x{c} procs={procs} reps (msgs/s): {}",
                    fmt_xs(&xs)
                );
                result(
                    &format!("chan_msgs_per_s[cap={cap},prod={p},cons={c},procs={procs}]"),
                    median(&xs),
                    "per_s",
                );
            }
        }
    });
}

/// Go's four `select` benchmarks from `runtime/chan_test.go`, in the
/// shape of `b.RunParallel`: `procs` workers (one per P), `ops / procs`
/// iterations each; ns per iteration (wall time / total iterations).
///
/// - `uncontended` (`BenchmarkSelectUncontended`): each worker owns two
///   capacity-1 channels and bounces one value between them by `select`;
/// - `sync_contended` (`BenchmarkSelectSyncContended`): three shared
///   rendezvous channels; each worker has a helper goroutine that selects
///   on sending to any of them (or a `done` receive), and selects on
///   receiving from any of them;
///   `sync_contended_cap1` is the same on capacity-1 channels (the shape
///   of the tokio stand-in in `scripts/peer-select`);
/// - `async_contended` (`BenchmarkSelectAsyncContended`): two shared
///   channels of capacity `procs`, bounced between as in `uncontended`;
/// - `nonblock` (`BenchmarkSelectNonblock`): four `select`s with a
///   `default` each, on empty/full shared channels.
fn select_run(shape: &str, procs: u64, ops: u64) -> f64 {
    use gort::chan::{Receiver, Sender, bounded, select};
    let per = ops / procs;
    // One value bounced between c1 and c2 by select; `n` rounds.
    fn bounce(c1: &(Sender<u64>, Receiver<u64>), c2: &(Sender<u64>, Receiver<u64>), n: u64) {
        for _ in 0..n {
            select! {
                recv(c1.1) -> v => c2.0.send(v.unwrap()).unwrap(),
                recv(c2.1) -> v => c1.0.send(v.unwrap()).unwrap(),
            }
        }
    }
    let t0;
    match shape {
        "uncontended" => {
            t0 = Instant::now();
            let hs: Vec<_> = (0..procs)
                .map(|_| {
                    gort::go(move || {
                        let (c1, c2) = (bounded::<u64>(1), bounded::<u64>(1));
                        c1.0.send(0).unwrap();
                        bounce(&c1, &c2, per);
                        c1.1.len() + c2.1.len()
                    })
                })
                .collect();
            for h in hs {
                check(h.join().unwrap() == 1, "select uncontended: one value");
            }
        }
        "async_contended" => {
            let c1 = Arc::new(bounded::<u64>(procs as usize));
            let c2 = Arc::new(bounded::<u64>(procs as usize));
            t0 = Instant::now();
            let hs: Vec<_> = (0..procs)
                .map(|_| {
                    let (c1, c2) = (c1.clone(), c2.clone());
                    gort::go(move || {
                        c1.0.send(0).unwrap();
                        bounce(&c1, &c2, per);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            check(
                c1.1.len() + c2.1.len() == procs as usize,
                "select async_contended: procs values",
            );
        }
        "sync_contended" | "sync_contended_cap1" => {
            // `_cap1`: the same program on capacity-1 channels, the shape
            // of the tokio stand-in in scripts/peer-select (tokio's
            // channels have no rendezvous); values may be left buffered.
            let cap = usize::from(shape == "sync_contended_cap1");
            let cs: Arc<[(Sender<u64>, Receiver<u64>); 3]> =
                Arc::new([bounded(cap), bounded(cap), bounded(cap)]);
            let (done_tx, done_rx) = bounded::<()>(0);
            t0 = Instant::now();
            let helpers: Vec<_> = (0..procs)
                .map(|_| {
                    let (cs, done) = (cs.clone(), done_rx.clone());
                    gort::go(move || {
                        let mut sent = 0u64;
                        loop {
                            select! {
                                send(cs[0].0, 0) -> r => { r.unwrap(); sent += 1 },
                                send(cs[1].0, 0) -> r => { r.unwrap(); sent += 1 },
                                send(cs[2].0, 0) -> r => { r.unwrap(); sent += 1 },
                                recv(done) -> _ => return sent,
                            }
                        }
                    })
                })
                .collect();
            let ws: Vec<_> = (0..procs)
                .map(|_| {
                    let cs = cs.clone();
                    gort::go(move || {
                        for _ in 0..per {
                            select! {
                                recv(cs[0].1) -> v => { v.unwrap(); },
                                recv(cs[1].1) -> v => { v.unwrap(); },
                                recv(cs[2].1) -> v => { v.unwrap(); },
                            }
                        }
                    })
                })
                .collect();
            for h in ws {
                h.join().unwrap();
            }
            let el = t0.elapsed().as_nanos() as f64;
            drop(done_tx);
            let sent: u64 = helpers.into_iter().map(|h| h.join().unwrap()).sum();
            let left: usize = cs.iter().map(|c| c.1.len()).sum();
            check(
                sent == per * procs + left as u64,
                "select sync_contended: every send received or still buffered",
            );
            return el / (per * procs) as f64;
        }
        "nonblock" => {
            let c1 = Arc::new(bounded::<u64>(0));
            let c2 = Arc::new(bounded::<u64>(0));
            let c3 = Arc::new(bounded::<u64>(1));
            let c4 = Arc::new(bounded::<u64>(1));
            c4.0.send(0).unwrap();
            t0 = Instant::now();
            let hs: Vec<_> = (0..procs)
                .map(|_| {
                    let (c1, c2, c3, c4) = (c1.clone(), c2.clone(), c3.clone(), c4.clone());
                    gort::go(move || {
                        let mut defaults = 0u64;
                        for _ in 0..per {
                            select! { recv(c1.1) -> _ => {}, default => defaults += 1 }
                            select! { send(c2.0, 0) -> _ => {}, default => defaults += 1 }
                            select! { recv(c3.1) -> _ => {}, default => defaults += 1 }
                            select! { send(c4.0, 0) -> _ => {}, default => defaults += 1 }
                        }
                        defaults
                    })
                })
                .collect();
            let defaults: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            check(
                defaults == 4 * per * procs,
                "select nonblock: every case took default",
            );
        }
        other => panic!(
            "unknown select shape {other} (uncontended, sync_contended, sync_contended_cap1, async_contended, nonblock)"
        ),
    }
    t0.elapsed().as_nanos() as f64 / (per * procs) as f64
}

fn case_select(procs: usize, shapes: &str, ops: u64, reps: usize) {
    rt(procs).run(|| {
        let shapes: Vec<&str> = if shapes == "all" {
            vec![
                "uncontended",
                "sync_contended",
                "async_contended",
                "nonblock",
            ]
        } else {
            shapes.split(',').collect()
        };
        for shape in shapes {
            select_run(shape, procs as u64, ops / 10);
            let xs: Vec<f64> = (0..reps)
                .map(|_| select_run(shape, procs as u64, ops))
                .collect();
            println!(
                "# select {shape} procs={procs} reps (ns/op): {}",
                fmt_xs(&xs)
            );
            result(
                &format!("select_ns_per_op[shape={shape},procs={procs}]"),
                median(&xs),
                "ns",
            );
        }
    });
}

/// Go's `cmd/mutex`: `g` goroutines each do `lock; counter += 1; unlock`,
/// `ops` in total; ns per operation.
fn mutex_run(g: u64, ops: u64) -> f64 {
    let m = Arc::new(gort::sync::Mutex::new(0u64));
    let per = ops / g;
    let t0 = Instant::now();
    let hs: Vec<_> = (0..g)
        .map(|_| {
            let m = m.clone();
            gort::go(move || {
                for _ in 0..per {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let el = t0.elapsed().as_nanos() as f64;
    check(*m.lock() == per * g, "mutex counter");
    el / (per * g) as f64
}

fn case_mutex(g: u64, ops: u64, reps: usize) {
    rt(2).run(|| {
        mutex_run(g, ops / 10);
        let xs: Vec<f64> = (0..reps).map(|_| mutex_run(g, ops)).collect();
        println!("# mutex g={g} ops={ops} reps (ns/op): {}", fmt_xs(&xs));
        result(
            &format!("mutex_ns_per_op[g={g},procs=2]"),
            median(&xs),
            "ns",
        );
    });
}

// --------------------------------------------------------------- timers

/// Go's `cmd/timers`: `g` goroutines loop `sleep(period)` for `dur`; every
/// wake-up's lateness (actual − requested) is kept (exact quantiles).
/// `net_waiter`: one more goroutine blocks in a TCP `accept` throughout, so
/// the first idle M polls the network (the metric names then carry
/// `,net=1`; docs/design/timers.md: the timer sleeper is still the next
/// idle M, on its futex).
fn case_timers(g: usize, dur_ms: u64, period_us: u64, net_waiter: bool, procs: usize) {
    rt(procs).run(move || {
        if net_waiter {
            let l = gort::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            gort::go(move || {
                let _ = l.accept();
            });
            gort::time::sleep(Duration::from_millis(10)); // let it park in accept
        }
        let period = Duration::from_micros(period_us);
        let dur = Duration::from_millis(dur_ms);
        let start = Arc::new(gort::sync::WaitGroup::new());
        start.add(1);
        let t0 = Arc::new(std::sync::OnceLock::<Instant>::new());
        let hs: Vec<_> = (0..g)
            .map(|_| {
                let (start, t0) = (start.clone(), t0.clone());
                gort::go(move || {
                    start.wait();
                    let end = *t0.get().expect("t0") + dur;
                    let mut lat = Vec::new();
                    loop {
                        let ts = Instant::now();
                        if ts >= end {
                            break;
                        }
                        gort::time::sleep(period);
                        lat.push(ts.elapsed().saturating_sub(period).as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        gort::time::sleep(Duration::from_millis(100));
        t0.set(Instant::now()).unwrap();
        start.done();
        let mut all: Vec<u64> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let wall = t0.get().unwrap().elapsed().as_secs_f64();
        all.sort_unstable();
        let q = |f: f64| all[((all.len() as f64 * f) as usize).min(all.len() - 1)] as f64 / 1e3;
        // The shape of the distribution (under overload it is bimodal:
        // on time, or kicked to a queue; docs/design/timers.md).
        let mean = all.iter().sum::<u64>() as f64 / all.len() as f64 / 1e3;
        let qs = [0.1, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999];
        let qs: Vec<String> = qs
            .iter()
            .map(|f| format!("p{}={:.0}", f * 100.0, q(*f)))
            .collect();
        println!("# lateness (us): mean={mean:.0} {}", qs.join(" "));
        println!(
            "# {g} goroutines x sleep({period:?}) for {dur:?}: {} wake-ups in {wall:.3}s",
            all.len()
        );
        // Go's `time.Duration` formatting, so metric names match the anchor.
        let period_s = if period_us % 1000 == 0 {
            format!("{}ms", period_us / 1000)
        } else {
            format!("{period_us}µs")
        };
        let net = if net_waiter { ",net=1" } else { "" };
        let name = |m: &str| format!("{m}[g={g},period={period_s},procs={procs}{net}]");
        result(
            &name("timers_wakeups_per_s"),
            all.len() as f64 / wall,
            "per_s",
        );
        result(&name("timers_lateness_p50"), q(0.5), "us");
        result(&name("timers_lateness_p99"), q(0.99), "us");
        result(
            &name("timers_lateness_max"),
            *all.last().unwrap() as f64 / 1e3,
            "us",
        );
    });
}

// -------------------------------------------------------------- preempt

/// The anchor's call-free spin loop (xorshift until `stop` or `budget`).
#[inline(never)]
fn spin(stop: &std::sync::atomic::AtomicBool, budget: u64) -> (u64, u64) {
    let mut x = 88172645463325252u64;
    let mut i = 0;
    while i < budget {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        i += 1;
    }
    (x, i)
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64 + 0.999999) as usize).max(1) - 1;
    sorted[i.min(sorted.len() - 1)]
}

fn asyncpreempt() -> &'static str {
    if std::env::var("GODEBUG").is_ok_and(|v| v.contains("asyncpreemptoff=1")) {
        "off"
    } else {
        "on"
    }
}

/// Go's `cmd/preempt`: how late a goroutine sleeping `period` in a loop
/// wakes while `spinners` goroutines spin with no calls (GOMAXPROCS=2).
fn case_preempt(dur_ms: u64, period_us: u64, spinners: usize) {
    rt(2).run(move || {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Calibrate iterations per second (best of 3).
        let mut rate = 0f64;
        for _ in 0..3 {
            let t0 = Instant::now();
            let (x, _) = spin(&std::sync::atomic::AtomicBool::new(false), 50_000_000);
            std::hint::black_box(x);
            rate = rate.max(50_000_000.0 / t0.elapsed().as_secs_f64());
        }
        let dur = Duration::from_millis(dur_ms);
        let period = Duration::from_micros(period_us);
        let budget = (rate * (dur.as_secs_f64() + 0.5)) as u64;
        let (ready_tx, ready_rx) = gort::chan::bounded::<()>(0);
        let sleeper = {
            let stop = stop.clone();
            gort::go(move || {
                let start = Instant::now();
                drop(ready_tx);
                let mut samples = Vec::new();
                while start.elapsed() < dur {
                    let t0 = Instant::now();
                    gort::time::sleep(period);
                    samples.push(t0.elapsed().saturating_sub(period).as_nanos() as f64 / 1e3);
                }
                stop.store(true, Ordering::Relaxed);
                samples
            })
        };
        let _ = ready_rx.recv();
        let t0 = Instant::now();
        let hs: Vec<_> = (0..spinners)
            .map(|_| {
                let stop = stop.clone();
                gort::go(move || spin(&stop, budget))
            })
            .collect();
        let mut samples = sleeper.join().unwrap();
        let mut spun = 0f64;
        for h in hs {
            let (x, n) = h.join().unwrap();
            std::hint::black_box(x);
            spun += n as f64 / rate;
        }
        let wall = t0.elapsed().as_secs_f64();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let a = asyncpreempt();
        println!(
            "# async preemption {a}, {spinners} spinners, budget {budget} iters, wall {wall:.3}s, spinner CPU-s {spun:.3}, {} samples (ideal {})",
            samples.len(),
            dur.as_micros() / period.as_micros()
        );
        let period_s = if period_us % 1000 == 0 {
            format!("{}ms", period_us / 1000)
        } else {
            format!("{period_us}µs")
        };
        let name = |m: &str| format!("{m}[spinners={spinners},asyncpreempt={a},period={period_s},procs=2]");
        result(&name("preempt_lateness_p50"), quantile(&samples, 0.5), "us");
        result(&name("preempt_lateness_p99"), quantile(&samples, 0.99), "us");
        result(
            &name("preempt_lateness_max"),
            samples.last().copied().unwrap_or(0.0),
            "us",
        );
        result(&name("preempt_samples"), samples.len() as f64, "count");
    });
}

/// Cost of `gort::preempt_check()` on its fast path (nobody asked to
/// yield): a loop of n calls minus the same loop without them.
fn case_preempt_check(n: u64, reps: usize) {
    rt(1).run(move || {
        let mut with = Vec::new();
        let mut without = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            let mut x = 0u64;
            for i in 0..n {
                x = std::hint::black_box(x.wrapping_add(i));
                gort::preempt_check();
            }
            with.push(t0.elapsed().as_nanos() as f64 / n as f64);
            let t0 = Instant::now();
            for i in 0..n {
                x = std::hint::black_box(x.wrapping_add(i));
            }
            without.push(t0.elapsed().as_nanos() as f64 / n as f64);
            std::hint::black_box(x);
        }
        println!("# with {}  without {}", fmt_xs(&with), fmt_xs(&without));
        result(
            "preempt_check_ns[procs=1]",
            median(&with) - median(&without),
            "ns",
        );
        result("preempt_check_loop_ns[procs=1]", median(&with), "ns");
    });
}

/// Stop-the-world latency (call to return) with `hogs` goroutines spinning
/// with no calls at GOMAXPROCS=`procs`: every stop must signal and freeze
/// them.
fn case_stw(procs: usize, hogs: usize, n: usize) {
    rt(procs).run(move || {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hs: Vec<_> = (0..hogs)
            .map(|_| {
                let stop = stop.clone();
                gort::go(move || spin(&stop, u64::MAX))
            })
            .collect();
        gort::time::sleep(Duration::from_millis(50));
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            let w = gort::runtime::stop_the_world();
            let us = t0.elapsed().as_nanos() as f64 / 1e3;
            drop(w);
            lat.push(us);
            gort::time::sleep(Duration::from_micros(500));
        }
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            std::hint::black_box(h.join().unwrap());
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let a = asyncpreempt();
        let name = |m: &str| format!("{m}[hogs={hogs},asyncpreempt={a},procs={procs}]");
        result(&name("stw_latency_p50"), quantile(&lat, 0.5), "us");
        result(&name("stw_latency_p99"), quantile(&lat, 0.99), "us");
        result(&name("stw_latency_max"), *lat.last().unwrap(), "us");
    });
}

// --------------------------------------------------------------- driver

/// The flags a `--case` run read (`arg`), checked against the command
/// line once the case's arguments are all read (`check_flags`, from `rt`,
/// which every case calls first): a misspelt or foreign flag (`--n` for a
/// case that takes `--ops`) is an error, not a silent default.
static FLAGS_READ: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static CASE_ARGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The value of flag `k`, or `d` when absent; exits with a message when
/// the value is missing or does not parse.
fn arg<T: std::str::FromStr>(args: &[String], k: &str, d: T) -> T {
    FLAGS_READ.lock().unwrap().push(k.to_string());
    let Some(i) = args.iter().position(|a| a == k) else {
        return d;
    };
    match args.get(i + 1).map(|v| (v, v.parse())) {
        Some((_, Ok(v))) => v,
        Some((v, Err(_))) => bad_args(&format!(
            "{k} {v:?}: not a valid {}",
            std::any::type_name::<T>()
        )),
        None => bad_args(&format!("{k} needs a value")),
    }
}

fn bad_args(msg: &str) -> ! {
    eprintln!("sched: {msg}");
    std::process::exit(2);
}

/// In `--case` mode, every `--flag` on the command line must be one the
/// case read.
fn check_flags() {
    let Some(args) = CASE_ARGS.get() else {
        return;
    };
    let read = FLAGS_READ.lock().unwrap();
    for a in args.iter().filter(|a| a.starts_with("--")) {
        if a != "--case" && a != "--bench" && !read.contains(a) {
            bad_args(&format!(
                "unknown flag {a} for this case (it takes: {})",
                read.join(" ")
            ));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(case) = args
        .iter()
        .position(|a| a == "--case")
        .map(|i| args[i + 1].clone())
    {
        CASE_ARGS.set(args.clone()).expect("set once");
        match case.as_str() {
            "spawn" => case_spawn(
                arg(&args, "--procs", 1),
                arg(&args, "--n", 1_000_000),
                arg(&args, "--reps", 5),
            ),
            "pingpong" => case_pingpong(arg(&args, "--n", 1_000_000), arg(&args, "--reps", 5)),
            "forkjoin" => case_forkjoin(
                arg(&args, "--n", 36),
                arg(&args, "--cutoff", 10),
                arg(&args, "--reps", 3),
            ),
            "steal" => case_steal(
                arg(&args, "--tasks", 1_000_000),
                arg(&args, "--task-ns", 1000.0),
                arg(&args, "--iters", 0),
                arg(&args, "--reps", 3),
            ),
            "parkmem" => case_parkmem(arg(&args, "--n", 1_000_000)),
            "chan_pingpong" => case_chan_pingpong(
                arg(&args, "--procs", 1),
                arg(&args, "--n", 1_000_000),
                arg(&args, "--reps", 5),
                match arg(&args, "--cap", "0".to_string()).as_str() {
                    "unbounded" => None,
                    c => Some(c.parse().expect("--cap N or --cap unbounded")),
                },
                match arg(&args, "--shape", "plain".to_string()).as_str() {
                    "plain" => false,
                    "reply" => true,
                    s => panic!("unknown chan_pingpong shape {s} (plain, reply)"),
                },
            ),
            "chan" => case_chan(
                arg(&args, "--procs", 2),
                arg(&args, "--msgs", 2_000_000),
                arg(&args, "--reps", 5),
                &arg(&args, "--caps", "1024,0".to_string()),
                &arg(&args, "--pc", "1x1,4x4".to_string()),
            ),
            "select" => case_select(
                arg(&args, "--procs", 2),
                &arg(&args, "--shape", "all".to_string()),
                arg(&args, "--ops", 2_000_000),
                arg(&args, "--reps", 5),
            ),
            "mutex" => case_mutex(
                arg(&args, "--g", 8),
                arg(&args, "--ops", 10_000_000),
                arg(&args, "--reps", 5),
            ),
            "timers" => case_timers(
                arg(&args, "--g", 10_000),
                arg(&args, "--dur-ms", 2000),
                arg(&args, "--period-us", 1000),
                arg(&args, "--net-waiter", 0) != 0,
                arg(&args, "--procs", 2),
            ),
            "preempt" => case_preempt(
                arg(&args, "--dur-ms", 2000),
                arg(&args, "--period-us", 1000),
                arg(&args, "--spinners", 2),
            ),
            "preempt_check" => {
                case_preempt_check(arg(&args, "--n", 100_000_000), arg(&args, "--reps", 5))
            }
            "stw" => case_stw(
                arg(&args, "--procs", 2),
                arg(&args, "--hogs", 2),
                arg(&args, "--n", 1000),
            ),
            other => panic!("unknown case {other}"),
        }
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let only: Option<String> = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args[i + 1].clone());
    let big = |full: &str, small: &str| {
        if smoke {
            small.to_string()
        } else {
            full.to_string()
        }
    };
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    for n in [big("100000", "1000"), big("1000000", "10000")] {
        for p in ["1", "2"] {
            cases.push((
                format!("spawn n={n} procs={p}"),
                vec![
                    "spawn".into(),
                    "--procs".into(),
                    p.into(),
                    "--n".into(),
                    n.clone(),
                ],
            ));
        }
    }
    cases.push((
        "pingpong gosched".into(),
        vec!["pingpong".into(), "--n".into(), big("1000000", "10000")],
    ));
    cases.push((
        "forkjoin".into(),
        vec!["forkjoin".into(), "--n".into(), big("36", "20")],
    ));
    cases.push((
        "steal".into(),
        vec!["steal".into(), "--tasks".into(), big("1000000", "10000")],
    ));
    for n in [big("100000", "1000"), big("1000000", "10000")] {
        cases.push((
            format!("parkmem n={n}"),
            vec!["parkmem".into(), "--n".into(), n],
        ));
    }
    for p in ["1", "2"] {
        cases.push((
            format!("chan pingpong procs={p}"),
            vec![
                "chan_pingpong".into(),
                "--procs".into(),
                p.into(),
                "--n".into(),
                big("1000000", "10000"),
            ],
        ));
        cases.push((
            format!("chan throughput procs={p}"),
            vec![
                "chan".into(),
                "--procs".into(),
                p.into(),
                "--msgs".into(),
                big("2000000", "20000"),
            ],
        ));
    }
    for p in ["1", "2"] {
        cases.push((
            format!("select procs={p}"),
            vec![
                "select".into(),
                "--procs".into(),
                p.into(),
                "--ops".into(),
                big("2000000", "20000"),
            ],
        ));
    }
    for g in ["8", "1"] {
        cases.push((
            format!("mutex g={g}"),
            vec![
                "mutex".into(),
                "--g".into(),
                g.into(),
                "--ops".into(),
                big("10000000", "100000"),
            ],
        ));
    }
    cases.push((
        "timers g=10000".into(),
        vec![
            "timers".into(),
            "--g".into(),
            big("10000", "100"),
            "--dur-ms".into(),
            big("2000", "200"),
        ],
    ));
    cases.push((
        "timers g=1".into(),
        vec![
            "timers".into(),
            "--g".into(),
            "1".into(),
            "--dur-ms".into(),
            big("2000", "200"),
        ],
    ));
    for sp in ["0", "2"] {
        cases.push((
            format!("preempt spinners={sp}"),
            vec![
                "preempt".into(),
                "--spinners".into(),
                sp.into(),
                "--dur-ms".into(),
                big("2000", "200"),
            ],
        ));
    }
    cases.push((
        "preempt_check".into(),
        vec![
            "preempt_check".into(),
            "--n".into(),
            big("100000000", "1000000"),
        ],
    ));
    for (p, h) in [("2", "2"), ("4", "4"), ("2", "0")] {
        cases.push((
            format!("stw procs={p} hogs={h}"),
            vec![
                "stw".into(),
                "--procs".into(),
                p.into(),
                "--hogs".into(),
                h.into(),
                "--n".into(),
                big("1000", "50"),
            ],
        ));
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut failed = false;
    for (name, a) in cases {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        println!("### {name}");
        let out = Command::new(&exe)
            .arg("--case")
            .args(&a)
            .output()
            .expect("spawn case");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            println!(
                "RESULT {}.FAILED {} exit_status",
                name.replace(' ', "_"),
                out.status.code().unwrap_or(-1)
            );
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
