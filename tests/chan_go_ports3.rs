//! More ports of Go's channel tests to `gort::chan` (see also
//! `chan_go_ports.rs`, `chan_go_ports2.rs`, `chan_select2.rs`): the
//! `test/chan` programs powser1, sieve2, select, select4 and select8,
//! `runtime/chan_test.go`'s TestChan over every capacity and
//! TestSelectStress, and `proc_test.go`'s TestTimerFairness and
//! TestTimerFairness2, at several GOMAXPROCS (on purpose above the
//! machine's core count). Go's nil channel (a case that never fires) is a
//! case left out of a dynamic `Select`; Go's `close` is dropping the last
//! `Sender`. Goroutines that Go leaves blocked forever at exit are
//! abandoned with the runtime here too.

mod common;
use common::{Rng, rt, seed, watchdog};
use gort::chan::{
    Receiver, RecvError, Select, Sender, TryRecvError, TrySendError, after, bounded, select,
};
use gort::sync::WaitGroup;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

// ---- test/chan/powser1.go ----
//
// McIlroy's power series: a series is a demand channel (a request channel
// and a data channel, both unbuffered) on which rational coefficients
// flow, each operation a goroutine. The coefficients are checked exactly.

/// A rational in lowest terms with a positive denominator; `den == 0` is
/// the end-of-series mark.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Rat {
    num: i64,
    den: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while a != 0 {
        (a, b) = (b % a, a);
    }
    b
}

fn rat(num: i64, den: i64) -> Rat {
    assert!(den != 0, "zero denominator");
    let g = gcd(num, den);
    let s = if den < 0 { -1 } else { 1 };
    Rat {
        num: s * num / g,
        den: s * den / g,
    }
}

fn int(n: i64) -> Rat {
    rat(n, 1)
}

const FINIS: Rat = Rat { num: 1, den: 0 };

fn is_end(u: Rat) -> bool {
    u.den == 0
}

fn add(u: Rat, v: Rat) -> Rat {
    rat(u.num * v.den + v.num * u.den, u.den * v.den)
}

fn mul(u: Rat, v: Rat) -> Rat {
    rat(u.num * v.num, u.den * v.den)
}

fn neg(u: Rat) -> Rat {
    rat(-u.num, u.den)
}

/// A power series: Go's `dch`, a demand channel pair.
#[derive(Clone)]
struct Ps {
    req: (Sender<()>, Receiver<()>),
    dat: (Sender<Rat>, Receiver<Rat>),
}

fn mk_ps() -> Ps {
    Ps {
        req: bounded(0),
        dat: bounded(0),
    }
}

/// Asks `inp` for its next coefficient and waits for it.
fn get(inp: &Ps) -> Rat {
    inp.req.0.send(()).unwrap();
    inp.dat.1.recv().unwrap()
}

/// Waits for a request on `out` and answers it with `v`.
fn put(v: Rat, out: &Ps) {
    out.req.1.recv().unwrap();
    out.dat.0.send(v).unwrap();
}

/// One coefficient from each of two series, the four steps (two requests,
/// two answers) in whatever order the channels allow (Go's `getn`, whose
/// select disables a case by setting its channel to nil).
fn get2(a: &Ps, b: &Ps) -> [Rat; 2] {
    let ins = [a, b];
    let mut asked = [false; 2];
    let mut got: [Option<Rat>; 2] = [None; 2];
    for _ in 0..4 {
        let mut sel = Select::new();
        let mut cases = Vec::new();
        for i in 0..2 {
            if !asked[i] {
                cases.push((sel.send(&ins[i].req.0), i, true));
            } else if got[i].is_none() {
                cases.push((sel.recv(&ins[i].dat.1), i, false));
            }
        }
        let op = sel.select();
        let &(_, i, is_req) = cases.iter().find(|c| c.0 == op.index()).expect("a case");
        if is_req {
            op.send(&ins[i].req.0, ()).unwrap();
            asked[i] = true;
        } else {
            got[i] = Some(op.recv(&ins[i].dat.1).unwrap());
        }
    }
    [got[0].unwrap(), got[1].unwrap()]
}

fn copy_ps(inp: &Ps, out: &Ps) {
    loop {
        out.req.1.recv().unwrap();
        out.dat.0.send(get(inp)).unwrap();
    }
}

/// One generation of Go's `dosplit`: serves one coefficient of `inp` to
/// both outputs. The newest generation serves `out[0]`; once the previous
/// generation has served `out[1]` it signals `wait`, and then this one may
/// serve either.
fn dosplit(inp: Ps, mut out: [Ps; 2], wait: Receiver<()>) {
    let both = select! {
        recv(out[0].req.1) -> r => { r.unwrap(); false }
        recv(wait) -> r => { r.unwrap(); true }
    };
    if both {
        let second = select! {
            recv(out[0].req.1) -> r => { r.unwrap(); false }
            recv(out[1].req.1) -> r => { r.unwrap(); true }
        };
        if second {
            out.swap(0, 1);
        }
    }
    inp.req.0.send(()).unwrap();
    let (release_s, release_r) = bounded(0);
    {
        let (inp, out) = (inp.clone(), out.clone());
        gort::go(move || dosplit(inp, out, release_r));
    }
    let v = inp.dat.1.recv().unwrap();
    out[0].dat.0.send(v).unwrap();
    if !both {
        wait.recv().unwrap();
    }
    out[1].req.1.recv().unwrap();
    out[1].dat.0.send(v).unwrap();
    release_s.send(()).unwrap();
}

/// Replicates `inp` onto both of `out`, which may be read at different rates.
fn split_into(inp: Ps, out: [Ps; 2]) {
    let (s, r) = bounded(0);
    gort::go(move || dosplit(inp, out, r));
    s.send(()).unwrap();
}

fn split(u: Ps) -> [Ps; 2] {
    let uu = [mk_ps(), mk_ps()];
    let out = uu.clone();
    gort::go(move || split_into(u, out));
    uu
}

fn spawn_ps(f: impl FnOnce(Ps) + Send + 'static) -> Ps {
    let z = mk_ps();
    let z2 = z.clone();
    gort::go(move || f(z2));
    z
}

fn rep(c: Rat) -> Ps {
    spawn_ps(move |z| {
        loop {
            put(c, &z);
        }
    })
}

fn add_ps(u: Ps, v: Ps) -> Ps {
    spawn_ps(move |z| {
        loop {
            z.req.1.recv().unwrap();
            let [a, b] = get2(&u, &v);
            match (is_end(a), is_end(b)) {
                (false, false) => z.dat.0.send(add(a, b)).unwrap(),
                (true, false) => {
                    z.dat.0.send(b).unwrap();
                    copy_ps(&v, &z);
                }
                (false, true) => {
                    z.dat.0.send(a).unwrap();
                    copy_ps(&u, &z);
                }
                (true, true) => z.dat.0.send(FINIS).unwrap(),
            }
        }
    })
}

fn cmul(c: Rat, u: Ps) -> Ps {
    spawn_ps(move |z| {
        loop {
            z.req.1.recv().unwrap();
            let a = get(&u);
            if is_end(a) {
                break;
            }
            z.dat.0.send(mul(c, a)).unwrap();
        }
        z.dat.0.send(FINIS).unwrap();
    })
}

fn sub_ps(u: Ps, v: Ps) -> Ps {
    add_ps(u, cmul(int(-1), v))
}

/// U*V = u*v + x*(u*VV + v*UU) + x*x*UU*VV.
fn mul_ps(u: Ps, v: Ps) -> Ps {
    spawn_ps(move |z| {
        z.req.1.recv().unwrap();
        let [a, b] = get2(&u, &v);
        if is_end(a) || is_end(b) {
            z.dat.0.send(FINIS).unwrap();
            return;
        }
        z.dat.0.send(mul(a, b)).unwrap();
        let [u0, u1] = split(u);
        let [v0, v1] = split(v);
        let w = add_ps(cmul(a, v0), cmul(b, u0));
        z.req.1.recv().unwrap();
        z.dat.0.send(get(&w)).unwrap();
        copy_ps(&add_ps(w, mul_ps(u1, v1)), &z);
    })
}

fn diff(u: Ps) -> Ps {
    spawn_ps(move |z| {
        z.req.1.recv().unwrap();
        if !is_end(get(&u)) {
            let mut i = 1;
            loop {
                let a = get(&u);
                if is_end(a) {
                    break;
                }
                z.dat.0.send(mul(int(i), a)).unwrap();
                z.req.1.recv().unwrap();
                i += 1;
            }
        }
        z.dat.0.send(FINIS).unwrap();
    })
}

/// The integral, with constant of integration `c`.
fn integ(c: Rat, u: Ps) -> Ps {
    spawn_ps(move |z| {
        put(c, &z);
        let mut i = 1;
        loop {
            z.req.1.recv().unwrap();
            let a = get(&u);
            if is_end(a) {
                break;
            }
            z.dat.0.send(mul(rat(1, i), a)).unwrap();
            i += 1;
        }
        z.dat.0.send(FINIS).unwrap();
    })
}

/// exp(U) for U with constant term 0: Z' = Z*U', integrated, fed back.
fn exp_ps(u: Ps) -> Ps {
    let zz = [mk_ps(), mk_ps()];
    split_into(integ(int(1), mul_ps(zz[0].clone(), diff(u))), zz.clone());
    zz[1].clone()
}

/// U(c*x^n): each coefficient times c^i, followed by n-1 zeros.
fn mon_subst(u: Ps, c0: Rat, n: usize) -> Ps {
    spawn_ps(move |z| {
        let mut c = int(1);
        loop {
            z.req.1.recv().unwrap();
            let a = get(&u);
            if is_end(a) {
                z.dat.0.send(FINIS).unwrap();
                return;
            }
            z.dat.0.send(mul(a, c)).unwrap();
            c = mul(c, c0);
            for _ in 1..n {
                z.req.1.recv().unwrap();
                z.dat.0.send(int(0)).unwrap();
            }
        }
    })
}

fn check_n(u: &Ps, want: &[Rat], what: &str) {
    for (i, &w) in want.iter().enumerate() {
        assert_eq!(get(u), w, "{what}: coefficient {i}");
    }
}

fn check_const(u: &Ps, c: Rat, n: usize, what: &str) {
    check_n(u, &vec![c; n], what);
}

#[test]
fn powser1() {
    watchdog("powser1", 60, || {
        for procs in [1, 2, 4, 12] {
            rt(procs).run(|| {
                const N: i64 = 10;
                let ones = rep(int(1));
                let twos = rep(int(2));
                check_const(&ones, int(1), 5, "Ones");
                check_const(
                    &add_ps(ones.clone(), ones.clone()),
                    int(2),
                    10,
                    "Add Ones Ones",
                );
                check_const(
                    &add_ps(ones.clone(), twos.clone()),
                    int(3),
                    10,
                    "Add Ones Twos",
                );
                let d: Vec<Rat> = (1..=N).map(int).collect();
                check_n(&diff(ones.clone()), &d, "Diff"); // 1 2 3 4 5
                let mut a = vec![int(0)];
                a.extend((1..N).map(|i| rat(1, i)));
                check_n(&integ(int(0), ones.clone()), &a, "Integ"); // 0 1 1/2 1/3
                check_const(&cmul(int(-1), twos.clone()), int(-2), 10, "CMul");
                check_const(&sub_ps(ones.clone(), twos.clone()), int(-1), 10, "Sub");
                check_n(&mul_ps(ones.clone(), ones.clone()), &d, "Mul"); // 1 2 3 4 5
                let e = [
                    int(1),
                    int(1),
                    rat(3, 2),
                    rat(13, 6),
                    rat(73, 24),
                    rat(167, 40),
                    rat(4051, 720),
                    rat(37633, 5040),
                    rat(43817, 4480),
                    rat(4596553, 362880),
                ];
                check_n(&exp_ps(ones.clone()), &e, "Exp");
                // atan(x) = integral of 1/(1+x^2): 0 1 0 -1/3 0 1/5 ...
                let at: Vec<Rat> = (0..N)
                    .map(|i| match i % 4 {
                        1 => rat(1, i),
                        3 => rat(-1, i),
                        _ => int(0),
                    })
                    .collect();
                check_n(
                    &integ(int(0), mon_subst(ones.clone(), neg(int(1)), 2)),
                    &at,
                    "ATan",
                );
            });
        }
    });
}

// ---- test/chan/sieve2.go ----
//
// An Eratosthenes sieve over odd numbers: composites are the merge (a heap
// of peekable channels) of the odd multiples of every prime found so far,
// fed back through a proxy goroutine with an unbounded buffer.

fn odds() -> Receiver<u64> {
    let (s, r) = bounded(50);
    gort::go(move || {
        let mut n = 5;
        while s.send(n).is_ok() {
            n += 2;
        }
    });
    r
}

/// The odd multiples of `p`, from `p*p`.
fn multiples(p: u64) -> Receiver<u64> {
    let (s, r) = bounded(10);
    gort::go(move || {
        let mut n = p * p;
        while s.send(n).is_ok() {
            n += 2 * p;
        }
    });
    r
}

/// A sending proxy for `out` whose sends never block: the goroutine
/// buffers in a growing queue, selecting between taking more and handing
/// the oldest on (the send case is left out while the queue is empty).
fn send_proxy(out: Sender<u64>) -> Sender<u64> {
    let (s, proxy) = bounded::<u64>(10);
    gort::go(move || {
        let mut q = VecDeque::new();
        loop {
            let Some(&front) = q.front() else {
                match proxy.recv() {
                    Ok(v) => q.push_back(v),
                    Err(_) => return,
                }
                continue;
            };
            let took = select! {
                recv(proxy) -> v => match v {
                    Ok(v) => Some(v),
                    Err(_) => return,
                },
                send(out, front) -> r => {
                    if r.is_err() {
                        return;
                    }
                    None
                }
            };
            match took {
                Some(v) => q.push_back(v),
                None => {
                    q.pop_front();
                }
            }
        }
    });
    s
}

fn sieve2() -> Receiver<u64> {
    let (out, primes_out) = bounded(10);
    out.send(2).unwrap();
    out.send(3).unwrap();
    let (composites_s, composites) = bounded::<u64>(50);
    let (primes_s, primes) = bounded::<u64>(10);
    primes_s.send(3).unwrap();

    // Merge the multiples of each prime into `composites`, in order.
    gort::go(move || {
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        let mut chans: Vec<Receiver<u64>> = Vec::new();
        let mut min = 15;
        let Ok(mut p) = primes.recv() else { return };
        loop {
            let m = multiples(p);
            let Ok(head) = m.recv() else { return };
            while min < head {
                if composites_s.send(min).is_err() {
                    return;
                }
                let Reverse((h, i)) = heap.pop().expect("heap");
                min = h;
                heap.push(Reverse((chans[i].recv().unwrap(), i)));
            }
            while min == head {
                let Reverse((h, i)) = heap.pop().expect("heap");
                min = h;
                heap.push(Reverse((chans[i].recv().unwrap(), i)));
            }
            if composites_s.send(head).is_err() {
                return;
            }
            heap.push(Reverse((m.recv().unwrap(), chans.len())));
            chans.push(m);
            match primes.recv() {
                Ok(q) => p = q,
                Err(_) => return,
            }
        }
    });

    // Sieve the composites out of the odd candidates.
    gort::go(move || {
        // The merger needs only primes up to the square root of the
        // newest one, so it falls behind; the proxy's buffer keeps this
        // goroutine from blocking on it (which would deadlock).
        let primes = send_proxy(primes_s);
        let candidates = odds();
        let mut p = candidates.recv().unwrap();
        loop {
            let Ok(c) = composites.recv() else { return };
            while p < c {
                if primes.send(p).is_err() || out.send(p).is_err() {
                    return;
                }
                p = candidates.recv().unwrap();
            }
            if p == c {
                p = candidates.recv().unwrap();
            }
        }
    });
    primes_out
}

fn primes_below(n: u64) -> Vec<u64> {
    (2..n)
        .filter(|&k| (2..k).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .collect()
}

#[test]
fn sieve2_primes() {
    watchdog("sieve2_primes", 60, || {
        let want = primes_below(8000);
        for procs in [1, 2, 4, 12] {
            let got = rt(procs).run(|| {
                let primes = sieve2();
                (0..want.len())
                    .map(|_| primes.recv().unwrap())
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "GOMAXPROCS={procs}");
        }
    });
}

// ---- test/chan/select.go ----
//
// Go evaluates every case's send value when the select starts (counter
// counts them, nil channels included); here the values are computed first
// and the nil channel's case is left out.

struct Values {
    counter: u32,
    shift: u32,
}

impl Values {
    fn get(&mut self) -> u32 {
        self.counter += 1;
        1 << self.shift
    }

    fn send(&mut self, mut a: Option<&Sender<u32>>, mut b: Option<&Sender<u32>>) -> u32 {
        let mut sent = 0;
        loop {
            let (va, vb) = (self.get(), self.get());
            let mut sel = Select::new();
            let ia = a.map(|s| sel.send(s));
            let ib = b.map(|s| sel.send(s));
            let Ok(op) = sel.try_select() else { break };
            if Some(op.index()) == ia {
                op.send(a.take().unwrap(), va).unwrap();
            } else {
                assert_eq!(Some(op.index()), ib);
                op.send(b.take().unwrap(), vb).unwrap();
            }
            sent += 1;
            self.shift += 1;
        }
        sent
    }
}

#[test]
fn select_send_values() {
    watchdog("select_send_values", 30, || {
        for procs in [1, 4] {
            rt(procs).run(|| {
                let (a_s, a_r) = bounded::<u32>(1);
                let (b_s, b_r) = bounded::<u32>(1);
                let mut v = Values {
                    counter: 0,
                    shift: 0,
                };
                assert_eq!(v.send(Some(&a_s), Some(&b_s)), 2);
                let (av, bv) = (a_r.recv().unwrap(), b_r.recv().unwrap());
                assert_eq!(av | bv, 3, "bad values {av} {bv}");
                assert_eq!(v.send(Some(&a_s), None), 1);
                assert_eq!(v.counter, 10);
            });
        }
    });
}

// ---- test/chan/select4.go ----

#[test]
fn select4_unchosen_case_not_evaluated() {
    // Go: the left-hand side of an unchosen receive case (`*f() = <-c1`)
    // is never evaluated. Here: neither the body nor the pattern of an
    // unchosen case runs, and neither does an unchosen send's value.
    watchdog("select4_unchosen_case_not_evaluated", 30, || {
        rt(2).run(|| {
            let (c_s, c) = bounded::<i32>(1);
            let (c1_s, c1) = bounded::<i32>(0);
            c_s.send(42).unwrap();
            let called = AtomicBool::new(false);
            let f = || {
                called.store(true, Ordering::SeqCst);
                0
            };
            let x = select! {
                recv(c1) -> v => v.unwrap() + f(),
                recv(c) -> v => v.unwrap(),
                send(c1_s, f()) -> _ => unreachable!("no receiver waits on c1"),
            };
            assert_eq!(x, 42);
            assert!(!called.load(Ordering::SeqCst), "BUG: called f");
        });
    });
}

// ---- test/chan/select8.go ----
//
// Go: `break` in a select case leaves the select (gccgo once got it
// wrong). Rust's `break` leaves a loop, so the port checks that `break`,
// `continue` and `return` in a `select!` arm reach the user's loop or
// function — the macro must not wrap the arms in a loop or closure of its
// own — for one-, two- and three-case selects, with and without default.

fn select8_return(ch: &Receiver<i32>) -> i32 {
    select! {
        recv(ch) -> v => return v.unwrap() * 2,
        default(Duration::from_secs(60)) => {}
    }
    unreachable!("return in an arm returns from the function")
}

#[test]
// The loops are meant to run once: the test is that `break` leaves them.
#[allow(unreachable_code, clippy::never_loop)]
fn select8_control_flow_in_arms() {
    watchdog("select8_control_flow_in_arms", 30, || {
        for procs in [1, 4] {
            rt(procs).run(|| {
                let (s, ch) = bounded::<i32>(0);
                gort::go(move || while s.send(5).is_ok() {});
                let mut n = 0;
                loop {
                    select! {
                        recv(ch) -> v => { assert_eq!(v, Ok(5)); break; }
                    }
                    panic!("unreachable");
                }
                loop {
                    select! {
                        default => break,
                    }
                    panic!("unreachable");
                }
                loop {
                    select! {
                        recv(ch) -> _ => break,
                        default => break,
                    }
                    panic!("unreachable");
                }
                let (s10, r10) = bounded::<i32>(0);
                'outer: loop {
                    loop {
                        select! {
                            recv(ch) -> _ => break 'outer,
                            send(s10, 10) -> _ => panic!("unreachable"),
                            default => break 'outer,
                        }
                    }
                }
                // `continue` goes to the next iteration of the user's loop.
                for i in 0..10 {
                    select! {
                        recv(ch) -> v => {
                            assert_eq!(v, Ok(5));
                            if i % 2 == 0 {
                                continue;
                            }
                            n += 1;
                        }
                    }
                    n += 1;
                }
                assert_eq!(n, 10);
                assert_eq!(select8_return(&ch), 10);
                drop(r10);
            });
        }
    });
}

// ---- runtime/chan_test.go: TestChan, every capacity ----

#[test]
fn test_chan_every_capacity() {
    watchdog("test_chan_every_capacity", 120, || {
        for (procs, caps) in [(1, 40), (2, 40), (4, 200), (12, 40)] {
            rt(procs).run(move || {
                for cap in 0..caps {
                    chan_case(cap);
                }
            });
        }
    });
}

fn chan_case(cap: usize) {
    let wait = || gort::time::sleep(Duration::from_millis(1));
    {
        // Receive from an empty channel blocks; a non-blocking one fails.
        let (s, r) = bounded::<i32>(cap);
        let got = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let (r, got) = (r.clone(), got.clone());
            gort::go(move || {
                r.recv().unwrap();
                got.fetch_add(1, Ordering::SeqCst);
            });
        }
        wait();
        assert_eq!(
            got.load(Ordering::SeqCst),
            0,
            "cap={cap}: received from empty chan"
        );
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
        let try_sel = select! { recv(r) -> _ => true, default => false };
        assert!(!try_sel, "cap={cap}: select received from empty chan");
        s.send(0).unwrap();
        s.send(0).unwrap();
    }
    {
        // Send to a full channel blocks; a non-blocking one fails.
        let (s, r) = bounded::<i32>(cap);
        for i in 0..cap {
            s.send(i as i32).unwrap();
        }
        let sent = Arc::new(AtomicBool::new(false));
        let (s2, sent2) = (s.clone(), sent.clone());
        gort::go(move || {
            s2.send(0).unwrap();
            sent2.store(true, Ordering::SeqCst);
        });
        wait();
        assert!(!sent.load(Ordering::SeqCst), "cap={cap}: sent to full chan");
        assert!(matches!(s.try_send(0), Err(TrySendError::Full(0))));
        r.recv().unwrap();
    }
    {
        // A closed channel drains, then reports closure, repeatedly.
        let (s, r) = bounded::<usize>(cap);
        for i in 0..cap {
            s.send(i).unwrap();
        }
        drop(s);
        for i in 0..cap {
            assert_eq!(r.recv(), Ok(i));
        }
        assert_eq!(r.recv(), Err(RecvError));
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    }
    {
        // Close unblocks a receiver.
        let (s, r) = bounded::<i32>(cap);
        let (done_s, done_r) = bounded::<bool>(0);
        gort::go(move || done_s.send(r.recv() == Err(RecvError)).unwrap());
        wait();
        drop(s);
        assert!(
            done_r.recv().unwrap(),
            "cap={cap}: close did not unblock recv"
        );
    }
    {
        // 100 values, received uncorrupted in FIFO order, twice.
        let (s, r) = bounded::<usize>(cap);
        for _ in 0..2 {
            let s = s.clone();
            gort::go(move || {
                for i in 0..100 {
                    s.send(i).unwrap();
                }
            });
            for i in 0..100 {
                assert_eq!(r.recv(), Ok(i), "cap={cap}");
            }
        }
    }
    {
        // 4 senders and 4 receivers of 1000 values each: each value P times.
        const P: usize = 4;
        const L: usize = 1000;
        let (s, r) = bounded::<usize>(cap);
        for _ in 0..P {
            let s = s.clone();
            gort::go(move || {
                for i in 0..L {
                    s.send(i).unwrap();
                }
            });
        }
        let (done_s, done_r) = bounded::<HashMap<usize, usize>>(0);
        for _ in 0..P {
            let (r, done_s) = (r.clone(), done_s.clone());
            gort::go(move || {
                let mut m = HashMap::new();
                for _ in 0..L {
                    *m.entry(r.recv().unwrap()).or_insert(0) += 1;
                }
                done_s.send(m).unwrap();
            });
        }
        let mut all: HashMap<usize, usize> = HashMap::new();
        for _ in 0..P {
            for (k, v) in done_r.recv().unwrap() {
                *all.entry(k).or_insert(0) += v;
            }
        }
        assert_eq!(all.len(), L, "cap={cap}");
        assert!(all.values().all(|&v| v == P), "cap={cap}");
    }
    {
        // len / capacity.
        let (s, r) = bounded::<usize>(cap);
        assert_eq!((r.len(), s.capacity()), (0, Some(cap)));
        for i in 0..cap {
            s.send(i).unwrap();
        }
        assert_eq!((r.len(), s.capacity()), (cap, Some(cap)));
    }
}

// ---- runtime/chan_test.go: TestSelectStress ----

#[test]
fn select_stress() {
    // 4 channels (two unbuffered, capacities 2 and 3); per channel a plain
    // sender and a plain receiver of N values; plus one goroutine sending
    // N values on each channel from a single select and one receiving N
    // from each the same way (a channel's case is dropped once its N are
    // done: Go sets it to nil). Nothing may deadlock, and every receive
    // count must come out exact.
    watchdog("select_stress", 120, || {
        const N: usize = 10_000;
        for procs in [1, 2, 4, 10] {
            rt(procs).run(|| {
                let chans: Vec<(Sender<u64>, Receiver<u64>)> =
                    [0, 0, 2, 3].into_iter().map(bounded).collect();
                let received = Arc::new(AtomicU64::new(0));
                let wg = Arc::new(WaitGroup::new());
                wg.add(10);
                for (s, r) in &chans {
                    let (s, wg2) = (s.clone(), wg.clone());
                    gort::go(move || {
                        for _ in 0..N {
                            s.send(0).unwrap();
                        }
                        wg2.done();
                    });
                    let (r, wg2, received) = (r.clone(), wg.clone(), received.clone());
                    gort::go(move || {
                        for _ in 0..N {
                            r.recv().unwrap();
                        }
                        received.fetch_add(N as u64, Ordering::Relaxed);
                        wg2.done();
                    });
                }
                let senders: Vec<Sender<u64>> = chans.iter().map(|c| c.0.clone()).collect();
                let receivers: Vec<Receiver<u64>> = chans.iter().map(|c| c.1.clone()).collect();
                let wg2 = wg.clone();
                gort::go(move || {
                    let mut n = [0usize; 4];
                    for _ in 0..4 * N {
                        let mut sel = Select::new();
                        // Go's case order: 3, 2, 0, 1.
                        let cases: Vec<(usize, usize)> = [3, 2, 0, 1]
                            .into_iter()
                            .filter(|&k| n[k] < N)
                            .map(|k| (sel.send(&senders[k]), k))
                            .collect();
                        let op = sel.select();
                        let k = cases.iter().find(|c| c.0 == op.index()).unwrap().1;
                        op.send(&senders[k], 0).unwrap();
                        n[k] += 1;
                    }
                    wg2.done();
                });
                let (wg2, received2) = (wg.clone(), received.clone());
                gort::go(move || {
                    let mut n = [0usize; 4];
                    for _ in 0..4 * N {
                        let mut sel = Select::new();
                        let cases: Vec<(usize, usize)> = [0, 3, 1, 2]
                            .into_iter()
                            .filter(|&k| n[k] < N)
                            .map(|k| (sel.recv(&receivers[k]), k))
                            .collect();
                        let op = sel.select();
                        let k = cases.iter().find(|c| c.0 == op.index()).unwrap().1;
                        op.recv(&receivers[k]).unwrap();
                        n[k] += 1;
                    }
                    received2.fetch_add(4 * N as u64, Ordering::Relaxed);
                    wg2.done();
                });
                wg.wait();
                assert_eq!(received.load(Ordering::Relaxed), 8 * N as u64);
                for (_, r) in &chans {
                    assert_eq!(r.try_recv(), Err(TryRecvError::Empty), "nothing left over");
                }
            });
        }
    });
}

// ---- runtime/proc_test.go: TestTimerFairness, TestTimerFairness2 ----

#[test]
fn timer_fairness() {
    // Two goroutines keep an unbuffered send always ready; the main
    // goroutine's select must still pick the timer's case once it fires.
    watchdog("timer_fairness", 30, || {
        for procs in [1, 2, 4] {
            let seen = rt(procs).run(|| {
                let (done_s, done_r) = bounded::<()>(0);
                let (c_s, c) = bounded::<bool>(0);
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        let (c_s, done_r) = (c_s.clone(), done_r.clone());
                        gort::go(move || {
                            loop {
                                select! {
                                    send(c_s, true) -> r => r.unwrap(),
                                    recv(done_r) -> _ => return,
                                }
                            }
                        })
                    })
                    .collect();
                let timer = after(Duration::from_millis(20));
                let mut seen = 0u64;
                loop {
                    select! {
                        recv(c) -> v => { assert_eq!(v, Ok(true)); seen += 1; }
                        recv(timer) -> v => { v.unwrap(); break; }
                    }
                }
                drop(done_s); // Go: close(done)
                for h in hs {
                    h.join().unwrap();
                }
                seen
            });
            eprintln!("timer_fairness GOMAXPROCS={procs}: {seen} values before the timer");
        }
    });
}

#[test]
fn timer_fairness2() {
    // Each of two goroutines, between system calls, selects among sending
    // to the other, receiving from it, and its own timer: both timers must
    // win eventually although the other cases are always ready.
    watchdog("timer_fairness2", 30, || {
        for procs in [1, 2, 4] {
            rt(procs).run(|| {
                let (done_s, done_r) = bounded::<()>(0);
                let (c_s, c) = bounded::<bool>(0);
                for _ in 0..2 {
                    let (c_s, c, done_s) = (c_s.clone(), c.clone(), done_s.clone());
                    gort::go(move || {
                        let timer = after(Duration::from_millis(20));
                        loop {
                            // Go: syscall.Read(0, buf[0:0]).
                            gort::blocking(std::thread::yield_now);
                            select! {
                                send(c_s, true) -> r => r.unwrap(),
                                recv(c) -> v => assert_eq!(v, Ok(true)),
                                recv(timer) -> _ => {
                                    done_s.send(()).unwrap();
                                    return;
                                }
                            }
                        }
                    });
                }
                done_r.recv().unwrap();
                done_r.recv().unwrap();
            });
        }
    });
}

// ---- seeded mix: selects over random subsets (Go's nil cases) ----

#[test]
fn select_random_nil_cases() {
    // Like TestSelectStress with random subsets: a sender goroutine per
    // channel set offers each value on a random non-empty subset of the
    // channels (the rest are "nil"), receivers select over every channel;
    // every value arrives exactly once.
    watchdog("select_random_nil_cases", 60, || {
        let s = seed();
        for procs in [1, 3, 8] {
            rt(procs).run(move || {
                const K: usize = 5;
                const M: u64 = 4_000;
                let chans: Vec<(Sender<u64>, Receiver<u64>)> =
                    (0..K).map(|i| bounded(i % 3)).collect();
                let senders: Vec<Sender<u64>> = chans.iter().map(|c| c.0.clone()).collect();
                let receivers: Vec<Receiver<u64>> = chans.iter().map(|c| c.1.clone()).collect();
                drop(chans);
                let producers: Vec<_> = (0..2u64)
                    .map(|p| {
                        let senders = senders.clone();
                        gort::go(move || {
                            let mut rng = Rng(s ^ ((p + 1) * 0x9e37_79b9));
                            for v in (p * M)..((p + 1) * M) {
                                let mask = 1 + rng.below((1 << K) - 1) as usize;
                                let mut sel = Select::new();
                                let cases: Vec<(usize, usize)> = (0..K)
                                    .filter(|k| mask & (1 << k) != 0)
                                    .map(|k| (sel.send(&senders[k]), k))
                                    .collect();
                                let op = sel.select();
                                let k = cases.iter().find(|c| c.0 == op.index()).unwrap().1;
                                op.send(&senders[k], v).unwrap();
                            }
                        })
                    })
                    .collect();
                drop(senders);
                let consumers: Vec<_> = (0..3)
                    .map(|_| {
                        let receivers = receivers.clone();
                        gort::go(move || {
                            let mut got = Vec::new();
                            let mut open: Vec<usize> = (0..K).collect();
                            while !open.is_empty() {
                                let mut sel = Select::new();
                                let idx: Vec<usize> =
                                    open.iter().map(|&k| sel.recv(&receivers[k])).collect();
                                let op = sel.select();
                                let i = idx.iter().position(|&x| x == op.index()).unwrap();
                                match op.recv(&receivers[open[i]]) {
                                    Ok(v) => got.push(v),
                                    Err(_) => {
                                        open.remove(i);
                                    }
                                }
                            }
                            got
                        })
                    })
                    .collect();
                drop(receivers);
                for p in producers {
                    p.join().unwrap();
                }
                let mut all: Vec<u64> = consumers
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect();
                all.sort_unstable();
                assert_eq!(all, (0..2 * M).collect::<Vec<_>>());
            });
        }
    });
}
