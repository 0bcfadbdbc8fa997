//! Heap-level unit tests (run under Miri too, except the marked ones).

use crate::class::{ARENA_BYTES, PAGE_SIZE, SizeClass};
use crate::testutil::Rng;
use crate::{FreeError, Heap, HeapConfig};
use std::ptr::NonNull;

fn check(heap: &Heap) {
    heap.stats().check_equations();
    #[cfg(feature = "verify")]
    heap.check();
}

fn addr(p: NonNull<u8>) -> usize {
    p.addr().get()
}

#[test]
fn small_objects_are_zeroed_distinct_and_found() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let mut ps = Vec::new();
    for size in [1, 8, 16, 24, 100, 1024, 1025, 4096, 32768] {
        for _ in 0..3 {
            let p = c.alloc(size, size % 2 == 0);
            // SAFETY: `p` is a fresh object of at least `size` bytes.
            let s = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), size) };
            assert!(s.iter().all(|&b| b == 0), "zeroed");
            s.fill(0xEE);
            let cls = SizeClass::for_size(size);
            let o = heap
                .find_object(addr(p) + size - 1)
                .expect("interior pointer");
            assert_eq!(o.base, p);
            assert_eq!(o.size, cls.size());
            assert_eq!(o.span_class.size_class(), cls);
            assert_eq!(o.span_class.noscan(), size % 2 == 0);
            assert!(o.is_allocated());
            assert_eq!(
                addr(p) % (cls.size() & cls.size().wrapping_neg()).min(PAGE_SIZE),
                0
            );
            ps.push(p);
        }
    }
    let mut sorted: Vec<_> = ps.iter().map(|&p| addr(p)).collect();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ps.len());
    check(&heap);
    for p in ps {
        heap.free(p).unwrap();
    }
    check(&heap);
    drop(c);
    check(&heap);
    heap.release_reserves();
    check(&heap);
    let st = heap.stats();
    assert_eq!(st.heap_objects, 0);
    assert_eq!(st.heap_alloc, 0);
    assert_eq!(st.heap_inuse, 0, "empty spans went back to the page heap");
}

#[test]
fn lookup_rejects_foreign_addresses() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let p = c.alloc(64, false);
    let on_stack = 0u64;
    assert!(heap.span_of(std::ptr::from_ref(&on_stack).addr()).is_none());
    assert!(heap.span_of(0).is_none());
    assert!(heap.span_of(usize::MAX).is_none());
    let s = heap.span_of(addr(p)).unwrap();
    // Same arena, but a page no span covers.
    assert!(heap.span_of(s.limit() + 10 * PAGE_SIZE).is_none());
    assert_eq!(
        heap.free(NonNull::from(&on_stack).cast()),
        Err(FreeError::Foreign(std::ptr::from_ref(&on_stack).addr()))
    );
    let inner = p.with_addr(p.addr().checked_add(8).unwrap());
    assert_eq!(heap.free(inner), Err(FreeError::Interior(addr(inner))));
    heap.free(p).unwrap();
    assert_eq!(
        heap.free(p),
        Err(FreeError::NotAllocated(addr(p))),
        "double free"
    );
    let other = Heap::new();
    assert!(matches!(other.free(p), Err(FreeError::Foreign(_))));
}

#[test]
fn zero_size_and_over_aligned() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let z = c.alloc(0, true);
    assert_eq!(z, c.alloc(0, false), "one zerobase");
    assert!(heap.span_of(addr(z)).is_none());
    heap.free(z).unwrap();
    for align in [16, 64, 256, 4096, 8192, 16384, 1 << 20] {
        for size in [1, 48, 3000, 20000, 40000] {
            if cfg!(miri) && align > 16384 {
                continue;
            }
            let p = c.try_alloc_aligned(size, align, true).unwrap();
            assert_eq!(addr(p) % align, 0, "size {size} align {align}");
            let o = heap.find_object(addr(p)).unwrap();
            assert!(o.size >= size);
            heap.free(p).unwrap();
        }
    }
    assert!(c.try_alloc_aligned(8, 3, true).is_err());
    assert!(c.try_alloc_aligned(8, ARENA_BYTES * 2, true).is_err());
    check(&heap);
}

#[test]
fn large_objects_get_their_own_span() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let p = c.alloc(40000, false);
    let s = heap.span_of(addr(p)).unwrap();
    assert_eq!(s.base(), p);
    assert_eq!(s.npages(), 5);
    assert!(s.span_class().size_class().is_large());
    assert_eq!(heap.find_object(addr(p) + 39999).unwrap().base, p);
    let st = heap.stats();
    assert_eq!(st.by_size[0].mallocs, 1);
    assert_eq!(st.heap_alloc, 5 * PAGE_SIZE as u64);
    // SAFETY: our 40000-byte object.
    unsafe { p.as_ptr().wrapping_add(39999).write(7) };
    heap.free(p).unwrap();
    assert!(heap.span_of(addr(p)).is_none());
    let q = c.alloc(40000, false);
    assert_eq!(q, p, "first fit reuses the run");
    // SAFETY: as above; reused pages are zeroed.
    assert_eq!(unsafe { q.as_ptr().wrapping_add(39999).read() }, 0);
    check(&heap);
}

#[test]
fn large_garbage_is_reclaimed_within_the_cycle() {
    // Go's mheap.reclaim: a large allocation first sweeps unswept large
    // spans, so garbage from the last cycle is reused (newest first) before
    // the heap grows, and the marked objects survive.
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    // 2 × 60 × 5 pages do not fit in one 4 MiB chunk: growth if no reuse.
    let n = 60;
    let first: Vec<_> = (0..n).map(|i| c.alloc(40000, i % 2 == 0)).collect();
    // SAFETY: our 40000-byte objects; dirty them so reuse must zero.
    first.iter().for_each(|p| unsafe { p.as_ptr().write(9) });
    heap.mark(addr(first[0]));
    let live = first[0];
    c.flush();
    heap.begin_sweep_cycle();
    c.prepare_for_sweep();
    let sys = heap.stats().heap_sys;
    let newest_dead = first[n - 1];
    let second: Vec<_> = (0..n - 1).map(|i| c.alloc(40000, i % 2 == 0)).collect();
    assert_eq!(heap.stats().heap_sys, sys, "no growth: garbage reused");
    assert!(second.contains(&newest_dead), "newest garbage reused");
    assert!(!second.contains(&live), "the marked object survives");
    assert!(
        heap.find_object(addr(live))
            .is_some_and(|o| o.is_allocated())
    );
    for p in &second {
        // SAFETY: our fresh 40000-byte objects.
        assert_eq!(unsafe { p.as_ptr().read() }, 0, "reused pages zeroed");
    }
    check(&heap);
    heap.sweep_all();
    check(&heap);
    assert_eq!(heap.stats().heap_objects as usize, n, "n - 1 new + 1 live");
}

#[test]
#[cfg_attr(miri, ignore)]
fn huge_object_spans_several_arenas() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let size = ARENA_BYTES + ARENA_BYTES / 2;
    let p = c.alloc(size, true);
    assert_eq!(heap.find_object(addr(p) + size - 1).unwrap().base, p);
    assert_eq!(heap.find_object(addr(p) + ARENA_BYTES + 5).unwrap().base, p);
    check(&heap);
    heap.free(p).unwrap();
    check(&heap);
    let small = c.alloc(16, true);
    assert!(heap.span_of(addr(small)).is_some());
    check(&heap);
}

#[test]
fn mark_sweep_frees_the_unmarked() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let n = if cfg!(miri) { 300 } else { 5000 };
    let ps: Vec<_> = (0..n)
        .map(|i| c.alloc(16 + (i % 3) * 16, i % 2 == 0))
        .collect();
    let big = c.alloc(100_000, true);
    for (i, p) in ps.iter().enumerate() {
        if i % 4 == 0 {
            assert_eq!(heap.mark(addr(*p) + 3), Some(true));
            assert_eq!(heap.mark(addr(*p)), Some(false));
        }
    }
    assert_eq!(heap.is_marked(addr(ps[0])), Some(true));
    assert_eq!(heap.is_marked(addr(ps[1])), Some(false));
    c.flush();
    check(&heap);
    let before = heap.stats();
    heap.begin_sweep_cycle();
    c.prepare_for_sweep();
    check(&heap);
    let mut swept = 0;
    while let Some(b) = heap.sweep_one() {
        swept += b;
    }
    check(&heap);
    let after = heap.stats();
    assert_eq!(after.heap_objects as usize, n.div_ceil(4));
    assert_eq!(before.heap_alloc - after.heap_alloc, swept as u64);
    assert!(
        heap.span_of(addr(big)).is_none(),
        "unmarked large object freed"
    );
    for (i, p) in ps.iter().enumerate() {
        let o = heap.find_object(addr(*p));
        assert_eq!(o.is_some_and(|o| o.is_allocated()), i % 4 == 0);
        if let Some(o) = o {
            assert!(!o.span.is_marked(o.index), "marks cleared by sweep");
        }
    }
    // Surviving objects stay; new allocations fill the holes, zeroed.
    for _ in 0..n {
        let p = c.alloc(16, true);
        // SAFETY: fresh 16-byte object.
        assert_eq!(unsafe { p.cast::<[u8; 16]>().read() }, [0; 16]);
    }
    check(&heap);
    // A second cycle with nothing marked frees everything.
    c.flush();
    heap.begin_sweep_cycle();
    c.prepare_for_sweep();
    heap.sweep_all();
    heap.release_reserves();
    check(&heap);
    let st = heap.stats();
    assert_eq!((st.heap_objects, st.heap_alloc, st.heap_inuse), (0, 0, 0));
}

#[test]
fn cached_spans_are_swept_when_released() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let a = c.alloc(32, true);
    let b = c.alloc(32, true);
    heap.mark(addr(a));
    // Not flushed before the cycle: the span is swept on release.
    heap.begin_sweep_cycle();
    let s = heap.span_of(addr(a)).unwrap();
    assert_eq!(s.sweepgen(), heap.sweepgen() + 1);
    c.prepare_for_sweep();
    assert!(heap.find_object(addr(a)).unwrap().is_allocated());
    assert!(!heap.find_object(addr(b)).unwrap().is_allocated());
    assert_eq!(heap.stats().heap_objects, 1);
    check(&heap);
}

#[test]
fn iterate_allocated_objects() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let ps: Vec<_> = (0..10).map(|_| c.alloc(48, false)).collect();
    heap.free(ps[3]).unwrap();
    let s = heap.span_of(addr(ps[0])).unwrap();
    let live: Vec<_> = s.iter_allocated().collect();
    let want: Vec<_> = ps
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(live, want);
    c.flush();
    assert_eq!(s.iter_allocated().collect::<Vec<_>>(), want);
    let mut spans = 0;
    heap.for_each_span(|_| spans += 1);
    assert_eq!(spans, 1);
}

#[test]
fn explicit_free_recycles_slots() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let per_span = SizeClass::for_size(256).objects_per_span();
    let ps: Vec<_> = (0..per_span * 3).map(|_| c.alloc(256, true)).collect();
    c.flush();
    let inuse = heap.stats().heap_inuse;
    for p in ps.iter().step_by(2) {
        heap.free(*p).unwrap();
    }
    check(&heap);
    for _ in 0..per_span * 3 / 2 {
        c.alloc(256, true);
    }
    assert_eq!(heap.stats().heap_inuse, inuse, "holes reused, no growth");
    check(&heap);
}

#[test]
fn scavenger_releases_free_pages() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let n = if cfg!(miri) { 8 } else { 64 };
    let ps: Vec<_> = (0..n).map(|_| c.alloc(64 << 10, true)).collect();
    // Touch them so the pages are backed.
    for p in &ps {
        // SAFETY: our 64 KiB objects.
        unsafe { p.as_ptr().write_bytes(1, 64 << 10) };
    }
    let st0 = heap.stats();
    for p in ps {
        heap.free(p).unwrap();
    }
    let st1 = heap.stats();
    assert_eq!(
        st1.heap_released, st0.heap_released,
        "freeing does not release"
    );
    heap.begin_sweep_cycle(); // records chunk density
    let want = n * (64 << 10);
    let got = heap.scavenge(want);
    assert_eq!(got, want);
    let st2 = heap.stats();
    assert_eq!(st2.heap_released - st1.heap_released, want as u64);
    check(&heap);
    // Released pages come back zeroed and unreleased.
    let p = c.alloc(64 << 10, true);
    // SAFETY: our object.
    assert_eq!(unsafe { p.as_ptr().wrapping_add(100).read() }, 0);
    assert!(heap.stats().heap_released < st2.heap_released);
    let st3 = heap.stats();
    assert_eq!(
        heap.scavenge(usize::MAX) as u64,
        st3.heap_idle - st3.heap_released,
        "everything idle"
    );
    assert_eq!(heap.stats().heap_released, st3.heap_idle);
    check(&heap);
}

#[test]
fn scavenger_policy_drives_heap() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let ps: Vec<_> = (0..16).map(|_| c.alloc(64 << 10, true)).collect();
    for p in ps {
        heap.free(p).unwrap();
    }
    let mut pol = crate::ScavengerPolicy::default();
    pol.on_gc(1 << 20, 1 << 20, 0, None);
    let mut steps = 0;
    while pol.step(&heap).is_some() {
        steps += 1;
        assert!(steps < 1000);
    }
    let st = heap.stats();
    assert_eq!(crate::scavenger::retained(&st), st.heap_inuse);
    check(&heap);
}

#[test]
fn disable_thp_config_is_accepted() {
    let heap = Heap::with_config(HeapConfig { disable_thp: true });
    let mut c = heap.new_mcache();
    c.alloc(8, true);
    check(&heap);
}

#[test]
fn oversized_requests_fail_cleanly() {
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let e = c.try_alloc(usize::MAX, true).unwrap_err();
    assert_eq!(e.size, usize::MAX);
    assert!(matches!(e.kind, crate::AllocErrorKind::TooLarge));
    if !cfg!(miri) {
        // 2^47 bytes: more address space than user space has.
        let e = c.try_alloc(1 << 47, true).unwrap_err();
        assert!(
            matches!(e.kind, crate::AllocErrorKind::OutOfMemory(_)),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("out of memory allocating 140737488355328 bytes")
        );
    }
    check(&heap);
}

#[test]
fn random_alloc_free_against_lookup() {
    // Property: for random allocations, every byte of every live object
    // maps back to that object, and freed objects are no longer allocated.
    let heap = Heap::new();
    let mut c = heap.new_mcache();
    let mut rng = Rng(7);
    let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
    let rounds = if cfg!(miri) { 150 } else { 20_000 };
    for _ in 0..rounds {
        if live.is_empty() || rng.below(3) != 0 {
            let size = match rng.below(10) {
                0 => 1 + rng.below(200_000) as usize,
                1..=3 => 1 + rng.below(32768) as usize,
                _ => 1 + rng.below(512) as usize,
            };
            let p = c.alloc(size, rng.below(2) == 0);
            live.push((p, size));
        } else {
            let (p, _) = live.swap_remove(rng.below(live.len() as u64) as usize);
            heap.free(p).unwrap();
            let o = heap.find_object(addr(p));
            assert!(o.is_none_or(|o| !o.is_allocated() || o.base != p));
        }
        if live.is_empty() {
            continue;
        }
        let (p, size) = live[rng.below(live.len() as u64) as usize];
        let off = rng.below(size as u64) as usize;
        let o = heap.find_object(addr(p) + off).expect("live object found");
        assert_eq!(o.base, p);
        assert!(o.size >= size && o.is_allocated());
    }
    check(&heap);
}

#[path = "../gen/sizeclasses.rs"]
mod sizeclass_gen;

#[test]
#[cfg_attr(miri, ignore)] // brute-force magic check: too slow under Miri
fn generated_sizeclass_table_is_current() {
    let fresh = sizeclass_gen::generate();
    if std::env::var_os("GORT_REGEN_SIZECLASSES").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/sizeclass.rs"),
            &fresh,
        )
        .unwrap();
    }
    assert!(
        fresh == include_str!("sizeclass.rs"),
        "sizeclass.rs is stale: GORT_REGEN_SIZECLASSES=1 cargo test -p gort-alloc generated_sizeclass"
    );
}

/// A large allocation never waits for the other large class's MCentral
/// while holding its own: a thread holding the other class's lock must be
/// able to take this class's lock while the allocation waits (the reverse
/// order, its own then the other, let two threads allocating large objects
/// of the two classes deadlock; it hung the stress test in CI).
#[test]
#[cfg_attr(miri, ignore)] // a timed wait on another thread
fn a_large_allocation_never_holds_two_mcentral_locks() {
    use crate::class::SpanClass;
    let heap = Heap::new();
    let noscan = SpanClass::new(SizeClass::LARGE, true).index();
    let scan = SpanClass::new(SizeClass::LARGE, false).index();
    std::thread::scope(|s| {
        let held = heap.central[scan].lists.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let heap = &heap;
        s.spawn(move || {
            // SAFETY: gettid(2) has no preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            tid_tx.send(tid).unwrap();
            let mut c = heap.new_mcache();
            let p = c.alloc(64 << 10, true); // noscan: looks at `scan`'s garbage
            tx.send(()).unwrap();
            heap.free(p).unwrap();
        });
        // Let the allocation reach its look at the scan class: it blocks on
        // `held` there (the only place it can sleep), and its own class's
        // lock must be free meanwhile. A fixed 100 ms could end while the
        // thread, not yet run by a loaded host, was inside its brief hold
        // of its own class's lock (a false failure), or had not got that
        // far at all (a pass that checked nothing).
        let tid = tid_rx.recv().unwrap();
        let stat = format!("/proc/self/task/{tid}/stat");
        let sleeping = || {
            let st = std::fs::read_to_string(&stat).unwrap();
            st[st.rfind(')').unwrap() + 1..]
                .trim_start()
                .starts_with('S')
        };
        let t0 = std::time::Instant::now();
        while !sleeping() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(60),
                "the allocating thread never blocked on the other class's lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let own = heap.central[noscan].lists.try_lock();
        assert!(
            own.is_ok(),
            "the large allocation holds its own MCentral lock while waiting for the other's"
        );
        drop(own);
        drop(held);
        rx.recv().unwrap();
    });
}
