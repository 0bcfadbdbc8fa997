//! Allocation cost by size, twin of the Go anchor `cmd/alloc` (objects die
//! young in a ring of 64) and of the Rust anchor `floor_alloc`.
//!
//! `cargo bench -p gort-alloc --bench alloc [-- n=10m reps=5 only=gc sizes=64,65536 goals=4,128]`
//! (`goals`: the `gc` mode's cycle lengths in MiB; `cycle`: the `gc2` mode's
//! allocation per thread between stops, MiB, default 8)
//!
//! Modes, each printing `RESULT <metric> <value> <unit>`:
//!
//! - `gc` (the Go twin): `ring[i & 63] = alloc(size)`; once the bytes
//!   allocated since the last cycle reach the goal (4 MiB ≈ Go's GOGC=100
//!   minimum heap; 128 MiB ≈ GOGC=3200), run a collection the way the GC
//!   issue will drive this crate: finish sweeping, mark the 64 ring objects,
//!   flush the MCache, `begin_sweep_cycle`; spans are then swept lazily when
//!   the MCache refills (large spans by the next cycle's `sweep_all`). The
//!   figure is total time / allocations, so it includes marking (64
//!   objects: no real tracing) and all sweeping, on one thread; Go's figure
//!   also includes a real concurrent mark and uses the second core.
//! - `free`: `free(ring[i & 63]); ring[i & 63] = alloc(size)` — explicit
//!   free (mcentral lock per free), comparable to `floor_alloc`'s
//!   malloc+free pairs (which do not zero; ours does).
//! - `gc2`: the `gc` mode on two threads with an MCache each on one heap,
//!   stopping both (barrier) for each cycle; reports throughput scaling.
//!
//! Per size: one warm-up repetition, then the median of `reps`.
//! Also reports heap overhead `mean(HeapSys) / mean(HeapAlloc)` over
//! samples taken every 64 Ki allocations in the `gc` mode.

use gort_alloc::{Heap, MCache, SizeClass};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::time::Instant;

const RING: usize = 64;

fn arg(name: &str, default: u64) -> u64 {
    for a in std::env::args() {
        if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            let (num, mul) = match v.chars().last() {
                Some('k') => (&v[..v.len() - 1], 1_000),
                Some('m') => (&v[..v.len() - 1], 1_000_000),
                _ => (v, 1),
            };
            return num.parse::<u64>().expect("number") * mul;
        }
    }
    default
}

fn only(mode: &str) -> bool {
    let sel: Vec<String> = std::env::args()
        .filter_map(|a| a.strip_prefix("only=").map(String::from))
        .collect();
    sel.is_empty() || sel.iter().any(|s| s.split(',').any(|m| m == mode))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn slot_size(size: usize) -> usize {
    let c = SizeClass::for_size(size);
    if c.is_large() {
        size.next_multiple_of(8192)
    } else {
        c.size()
    }
}

struct GcLoop<'h> {
    heap: &'h Heap,
    c: MCache<'h>,
    ring: [Option<NonNull<u8>>; RING],
    since: usize,
    goal: usize,
    cycles: u64,
    /// Sums of sampled HeapSys and HeapAlloc.
    overhead: (f64, u64),
}

impl<'h> GcLoop<'h> {
    fn new(heap: &'h Heap, goal: usize) -> Self {
        GcLoop {
            heap,
            c: heap.new_mcache(),
            ring: [None; RING],
            since: 0,
            goal,
            cycles: 0,
            overhead: (0.0, 0),
        }
    }

    /// Sweep termination + mark the ring (this thread's roots).
    fn mark_roots(&mut self) {
        for p in self.ring.iter().flatten() {
            self.heap.mark(p.addr().get());
        }
    }

    fn gc(&mut self) {
        self.heap.sweep_all();
        self.mark_roots();
        self.c.flush();
        self.heap.begin_sweep_cycle();
        self.c.prepare_for_sweep();
        self.since = 0;
        self.cycles += 1;
    }

    #[inline(always)]
    fn run(&mut self, n: usize, size: usize, noscan: bool, sample: bool) {
        let slot = slot_size(size);
        for i in 0..n {
            let p = self.c.alloc(black_box(size), noscan);
            self.ring[i & (RING - 1)] = Some(p);
            self.since += slot;
            if self.since >= self.goal {
                self.gc();
            }
            if sample && i & 0xffff == 0 {
                let st = self.heap.stats();
                self.overhead.0 += st.heap_sys as f64;
                self.overhead.1 += st.heap_alloc;
            }
        }
        black_box(&self.ring);
    }
}

fn kind(noscan: bool) -> &'static str {
    if noscan { "noscan" } else { "pointers" }
}

fn bench_gc(sizes: &[usize], n_max: u64, budget: u64, reps: usize) {
    let goals: Vec<usize> =
        match std::env::args().find_map(|a| a.strip_prefix("goals=").map(String::from)) {
            Some(v) => v.split(',').map(|x| x.parse().expect("MiB")).collect(),
            None => vec![4, 128],
        };
    for goal_mib in goals {
        // GOGC=100's 4 MiB minimum heap goal, scaled.
        let gogc = goal_mib * 100 / 4;
        for &size in sizes {
            for noscan in [true, false] {
                let heap = Heap::new();
                let mut l = GcLoop::new(&heap, goal_mib << 20);
                let n = (n_max.min(budget / size as u64)) as usize;
                l.run(n / 10, size, noscan, false);
                let c0 = l.cycles;
                let mut xs = Vec::new();
                for _ in 0..reps {
                    let t = Instant::now();
                    l.run(n, size, noscan, false);
                    xs.push(t.elapsed().as_nanos() as f64 / n as f64);
                }
                let cycles = l.cycles - c0;
                // Overhead samples in a separate, untimed pass.
                l.run(n.min(2_000_000), size, noscan, true);
                let ov = l.overhead.0 / l.overhead.1.max(1) as f64; // ratio of means
                let name = format!("size={size},kind={},gogc_equiv={gogc}", kind(noscan));
                println!(
                    "# gc size={size} {} n={n} reps (ns/alloc): {:.2?}; {cycles} cycles",
                    kind(noscan),
                    xs
                );
                println!("RESULT gort.alloc_ns[{name}] {:.3} ns", median(&mut xs));
                println!(
                    "RESULT gort.alloc_cycles_per_1k_allocs[{name}] {:.4} count",
                    cycles as f64 * 1000.0 / (n * reps) as f64
                );
                println!("RESULT gort.heap_sys_over_heap_alloc[{name}] {ov:.3} ratio");
            }
        }
    }
}

fn bench_free(sizes: &[usize], n_max: u64, budget: u64, reps: usize) {
    for &size in sizes {
        let heap = Heap::new();
        let mut c = heap.new_mcache();
        let mut ring: [Option<NonNull<u8>>; RING] = [None; RING];
        let n = (n_max.min(budget / size as u64)) as usize;
        let mut run = |n: usize| {
            for i in 0..n {
                let r = &mut ring[i & (RING - 1)];
                if let Some(old) = r.take() {
                    heap.free(old).unwrap();
                }
                let p = c.alloc(black_box(size), true);
                // Like floor_alloc: write the first and last word.
                let last = p.as_ptr().wrapping_add(size - 8).cast::<u64>();
                // SAFETY: `p` is a fresh object of at least `size` bytes.
                unsafe { p.as_ptr().cast::<u64>().write(i as u64) };
                // SAFETY: as above; `last` is its final word.
                unsafe { last.write_unaligned(i as u64) };
                *r = Some(p);
            }
        };
        run(n / 10);
        let mut xs = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            run(n);
            xs.push(t.elapsed().as_nanos() as f64 / n as f64);
        }
        println!("# free size={size} n={n} reps (ns/alloc+free): {xs:.2?}");
        println!(
            "RESULT gort.alloc_free_ns[size={size},ring=64] {:.3} ns",
            median(&mut xs)
        );
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn bench_gc2(sizes: &[usize], n_max: u64, budget: u64, reps: usize) {
    // Per thread, 8 MiB (`cycle=` MiB) of allocation between stop-the-world cycles, on a
    // warm heap (memory already faulted in), so the figure is the
    // allocator's scaling, not the kernel's page-fault scaling.
    let per_thread = (arg("cycle", 8) as usize) << 20;
    for &size in sizes {
        let n = (n_max.min(budget / size as u64)) as usize / 2;
        let heap = Heap::new();
        let own_heaps = [Heap::new(), Heap::new()];
        let barrier = Barrier::new(2);
        let one = |n: usize| {
            let mut l = GcLoop::new(&heap, per_thread);
            let t = Instant::now();
            let c = thread_cpu();
            l.run(n, size, true, false);
            (t.elapsed().as_secs_f64(), thread_cpu() - c)
        };
        // `own`: each thread gets a heap of its own (same stops, no shared
        // allocator state): the machine's own two-thread floor (shared
        // caches, memory bandwidth, the other load).
        let two = |n: usize, own: bool| {
            let t = Instant::now();
            let cpu: f64 = std::thread::scope(|s| {
                let hs: Vec<_> = (0..2)
                    .map(|i| {
                        let barrier = &barrier;
                        let heap = if own { &own_heaps[i] } else { &heap };
                        s.spawn(move || {
                            let c = thread_cpu();
                            let mut l = GcLoop::new(heap, usize::MAX);
                            let per_cycle = (per_thread / slot_size(size)).max(1);
                            let mut left = n;
                            while left > 0 {
                                let k = left.min(per_cycle);
                                l.run(k, size, true, false);
                                left -= k;
                                // Stop the world: one thread finishes sweeping,
                                // both mark their roots and flush, one starts
                                // the sweep cycle.
                                if barrier.wait().is_leader() || own {
                                    heap.sweep_all();
                                }
                                barrier.wait();
                                l.mark_roots();
                                l.c.flush();
                                if barrier.wait().is_leader() || own {
                                    heap.begin_sweep_cycle();
                                }
                                barrier.wait();
                                l.c.prepare_for_sweep();
                            }
                            drop(l);
                            thread_cpu() - c
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            (t.elapsed().as_secs_f64(), cpu)
        };
        one(n / 4);
        two(n / 4, false);
        two(n / 4, true);
        // Wall-clock scaling needs both cores free; the CPU-time figures
        // (per-allocation CPU cost, 1 vs 2 threads) do not.
        let (mut r, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ca, mut cb, mut cr) = (Vec::new(), Vec::new(), Vec::new());
        let (mut co, mut ro) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let (t1, c1) = one(n);
            let (t2, c2) = two(n, false);
            let (_, c3) = two(n, true);
            co.push(c3 * 1e9 / (2 * n) as f64);
            ro.push(2.0 * c1 / c3);
            a.push(t1 * 1e9 / n as f64);
            b.push(t2 * 1e9 / (2 * n) as f64);
            r.push(2.0 * t1 / t2);
            ca.push(c1 * 1e9 / n as f64);
            cb.push(c2 * 1e9 / (2 * n) as f64);
            cr.push(2.0 * c1 / c2);
        }
        println!(
            "# gc2 size={size}: CPU ns/alloc 1 thread {ca:.2?}, 2 threads {cb:.2?}, 2 threads with a heap each {co:.2?}"
        );
        println!(
            "RESULT gort.alloc_cpu_ns_2threads_own_heaps[size={size}] {:.3} ns",
            median(&mut co)
        );
        println!(
            "RESULT gort.alloc_2thread_cpu_scaling_own_heaps[size={size}] {:.3} ratio",
            median(&mut ro)
        );
        println!(
            "RESULT gort.alloc_cpu_ns_1thread[size={size}] {:.3} ns",
            median(&mut ca)
        );
        println!(
            "RESULT gort.alloc_cpu_ns_2threads[size={size}] {:.3} ns",
            median(&mut cb)
        );
        println!(
            "RESULT gort.alloc_2thread_cpu_scaling[size={size}] {:.3} ratio",
            median(&mut cr)
        );
        println!(
            "# gc2 size={size} n={n}/thread: 1-thread ns/alloc {a:.2?}, 2-thread ns/alloc (aggregate) {b:.2?}"
        );
        println!(
            "RESULT gort.alloc_ns_1thread[size={size},cycle={}MiB/thread] {:.3} ns",
            per_thread >> 20,
            median(&mut a)
        );
        println!(
            "RESULT gort.alloc_ns_2threads_aggregate[size={size},cycle={}MiB/thread] {:.3} ns",
            per_thread >> 20,
            median(&mut b)
        );
        println!(
            "RESULT gort.alloc_2thread_scaling[size={size}] {:.3} ratio",
            median(&mut r)
        );
    }
}

fn main() {
    let n_max = arg("n", 10_000_000);
    let budget = arg("bytes", 1 << 30);
    let reps = arg("reps", 5) as usize;
    let all = [16usize, 64, 256, 4096, 65536];
    let sizes: Vec<usize> =
        match std::env::args().find_map(|a| a.strip_prefix("sizes=").map(String::from)) {
            Some(v) => v.split(',').map(|x| x.parse().expect("size")).collect(),
            None => all.to_vec(),
        };
    println!("# gort-alloc bench: n={n_max} bytes={budget} reps={reps}");
    if only("gc") {
        bench_gc(&sizes, n_max, budget, reps);
    }
    if only("free") {
        bench_free(
            &sizes
                .iter()
                .copied()
                .filter(|&s| s <= 4096)
                .collect::<Vec<_>>(),
            n_max,
            budget,
            reps,
        );
    }
    if only("gc2") {
        bench_gc2(&sizes, n_max, budget, reps);
    }
}
