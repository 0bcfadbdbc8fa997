//! Task blocks: one allocation per goroutine holding its closure, its
//! result slot and its joiner, reference-counted, carved from per-thread
//! free lists instead of `malloc` (Go: the `mcache` fast path).
//!
//! # Why not `Arc` + the global allocator
//!
//! A goroutine's task is allocated where it is spawned and freed where it
//! finishes — usually another thread. With glibc's malloc every such free
//! takes the allocating arena's lock; measured on the steal benchmark that
//! was 520k futex calls per run and half the second P's time (see
//! docs/performance.md). Here a freed block goes onto the *freeing* thread's
//! free list for its size class; lists spill to and refill from a global
//! pool in batches of [`BATCH`], so the common case touches no lock.
//!
//! # Layout and references
//!
//! ```text
//! #[repr(C)] Block<F, T> = [ Header | state: Mutex<TaskState<T>> | f: Mutex<Option<F>> ]
//! Header = { strong, weak, vtable: &'static VTable }
//! ```
//!
//! `state` sits at the same offset in every `Block<_, T>` (the `Prefix<T>`
//! view), so a joiner that knows only `T` reaches the result, and the
//! runtime that knows neither reaches everything through the vtable.
//! Counting follows `std::sync::Arc`: `strong` owners keep the contents
//! alive; all strong owners together hold one `weak` count; the block is
//! freed when `weak` reaches zero.
//!
//! Handles: [`RunRef`] (runtime, strong), [`WeakRun`] (runtime, weak: for
//! abandonment), [`JoinRef<T>`] (the joiner, strong), [`ProbeRef`] (a scope,
//! strong, type-erased: "did it panic unjoined?").

use crate::sched::g::After;
use crate::sched::park::{self, Waiter};
use parking_lot::Mutex;
use std::alloc::Layout;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

/// The payload `join` returns for a goroutine the runtime abandoned.
pub const ABANDONED: &str = "gort: goroutine abandoned: the runtime stopped before it finished";

// ------------------------------------------------------------- block cache

/// Size-class granularity and the largest block the cache handles.
const GRAIN: usize = 16;
const MAX_CACHED: usize = 512;
const NCLASS: usize = MAX_CACHED / GRAIN;
/// Blocks moved between a thread's cache and the global pool at a time.
const BATCH: usize = 64;
/// Most blocks a thread keeps per class.
const LOCAL_MAX: usize = 2 * BATCH;
/// Most blocks the global pool keeps per class (beyond: back to malloc).
const GLOBAL_MAX: usize = 64 * 1024;

fn class_of(l: Layout) -> Option<usize> {
    (l.align() <= GRAIN && l.size() <= MAX_CACHED).then(|| l.size().div_ceil(GRAIN).max(1) - 1)
}

fn class_layout(c: usize) -> Layout {
    Layout::from_size_align((c + 1) * GRAIN, GRAIN).expect("class layout")
}

/// A free block (every block of a class has the class layout).
struct Blk(NonNull<u8>);

// SAFETY: a free block is plain memory with no contents; whoever holds the
// `Blk` owns it exclusively, on any thread.
unsafe impl Send for Blk {}

/// Free blocks by class.
struct Lists([Vec<Blk>; NCLASS]);

impl Lists {
    const fn new() -> Lists {
        Lists([const { Vec::new() }; NCLASS])
    }
}

/// Protected by: its own mutex (a leaf lock).
static GLOBAL: Mutex<Lists> = Mutex::new(Lists::new());

/// A thread's cache; flushed to the global pool when the thread exits.
struct Local(Lists);

impl Drop for Local {
    fn drop(&mut self) {
        let mut g = GLOBAL.lock();
        for (c, v) in self.0.0.iter_mut().enumerate() {
            g.0[c].append(v);
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local(Lists::new())) };
}

/// Allocates a block for `l` (never zero-sized: a block has a header).
/// Not inlined (nor is `free_block`): they use the thread-local cache, and
/// their callers may switch goroutines (docs/design/soundness.md).
#[inline(never)]
fn alloc_block(l: Layout) -> NonNull<u8> {
    if let Some(c) = class_of(l) {
        let hit = LOCAL
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                let list = &mut cache.0.0[c];
                if list.is_empty() {
                    let mut g = GLOBAL.lock();
                    let from = &mut g.0[c];
                    let at = from.len().saturating_sub(BATCH);
                    list.extend(from.drain(at..));
                }
                list.pop()
            })
            .ok()
            .flatten();
        if let Some(b) = hit {
            return b.0;
        }
        return raw_alloc(class_layout(c));
    }
    raw_alloc(l)
}

fn raw_alloc(l: Layout) -> NonNull<u8> {
    // SAFETY: `l` has non-zero size (every block starts with a header).
    let p = unsafe { std::alloc::alloc(l) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(l))
}

/// Returns a block allocated by `alloc_block(l)`.
///
/// # Safety
///
/// `p` must come from `alloc_block(l)` with the same `l`, and be freed once.
#[inline(never)] // a thread-local accessor (see `alloc_block`)
unsafe fn free_block(p: NonNull<u8>, l: Layout) {
    let Some(c) = class_of(l) else {
        // SAFETY: blocks outside the classes come from `raw_alloc(l)`.
        unsafe { std::alloc::dealloc(p.as_ptr(), l) };
        return;
    };
    let spill = LOCAL
        .try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return Some(vec![Blk(p)]);
            };
            let list = &mut cache.0.0[c];
            list.push(Blk(p));
            (list.len() > LOCAL_MAX).then(|| list.split_off(list.len() - BATCH))
        })
        // The thread is exiting (TLS destroyed): hand the block to the pool.
        .unwrap_or_else(|_| Some(vec![Blk(p)]));
    if let Some(mut blocks) = spill {
        let mut g = GLOBAL.lock();
        let room = GLOBAL_MAX.saturating_sub(g.0[c].len());
        let over = blocks.split_off(blocks.len().min(room));
        g.0[c].append(&mut blocks);
        drop(g);
        for b in over {
            // SAFETY: every cached block of class `c` was allocated with
            // `class_layout(c)` by `raw_alloc`.
            unsafe { std::alloc::dealloc(b.0.as_ptr(), class_layout(c)) };
        }
    }
}

// ------------------------------------------------------------ the blocks

struct TaskState<T> {
    result: Option<std::thread::Result<T>>,
    done: bool,
    abandoned: bool,
    waiter: Option<Waiter>,
    after: Option<Arc<dyn After>>,
}

/// Per-(F, T) operations, reached from the type-erased header.
struct VTable {
    layout: Layout,
    run: unsafe fn(NonNull<Header>),
    abandon: unsafe fn(NonNull<Header>),
    unjoined_panic: unsafe fn(NonNull<Header>) -> bool,
    take_after: unsafe fn(NonNull<Header>) -> Option<Arc<dyn After>>,
    drop_contents: unsafe fn(NonNull<Header>),
}

#[repr(C)]
struct Header {
    strong: AtomicUsize,
    weak: AtomicUsize,
    vtable: &'static VTable,
}

/// The part of a block a joiner (knowing only `T`) may see.
#[repr(C)]
struct Prefix<T> {
    header: Header,
    state: Mutex<TaskState<T>>,
}

#[repr(C)]
struct Block<F, T> {
    prefix: Prefix<T>,
    f: Mutex<Option<F>>,
}

impl<F, T> Block<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    const VTABLE: VTable = VTable {
        layout: Layout::new::<Block<F, T>>(),
        run: Self::run,
        abandon: Self::abandon,
        unjoined_panic: Self::unjoined_panic,
        take_after: Self::take_after,
        drop_contents: Self::drop_contents,
    };

    /// # Safety
    ///
    /// `h` must point at a live `Block<F, T>` (strong count ≥ 1).
    unsafe fn get<'a>(h: NonNull<Header>) -> &'a Block<F, T> {
        // SAFETY: the caller guarantees the block is a live `Block<F, T>`;
        // `Header` is its first field (repr(C)).
        unsafe { h.cast::<Block<F, T>>().as_ref() }
    }

    unsafe fn run(h: NonNull<Header>) {
        // SAFETY: called through a strong `RunRef`.
        let b = unsafe { Self::get(h) };
        let f = b.f.lock().take().expect("gort: goroutine body run twice");
        let r = catch_unwind(AssertUnwindSafe(f));
        let w = {
            let mut s = b.prefix.state.lock();
            s.result = Some(r);
            s.done = true;
            s.waiter.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    unsafe fn abandon(h: NonNull<Header>) {
        // SAFETY: called through a strong `RunRef`.
        let b = unsafe { Self::get(h) };
        drop(b.f.lock().take());
        let w = {
            let mut s = b.prefix.state.lock();
            if s.done {
                return;
            }
            s.abandoned = true;
            s.waiter.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    unsafe fn unjoined_panic(h: NonNull<Header>) -> bool {
        // SAFETY: called through a strong `ProbeRef`.
        let b = unsafe { Self::get(h) };
        matches!(b.prefix.state.lock().result, Some(Err(_)))
    }

    unsafe fn take_after(h: NonNull<Header>) -> Option<Arc<dyn After>> {
        // SAFETY: called through a strong `RunRef`.
        let b = unsafe { Self::get(h) };
        b.prefix.state.lock().after.take()
    }

    unsafe fn drop_contents(h: NonNull<Header>) {
        let p = h.cast::<Block<F, T>>().as_ptr();
        // SAFETY: `p` points at a live `Block<F, T>` (the caller's
        // obligation), so the field projection is in bounds.
        let state = unsafe { &raw mut (*p).prefix.state };
        // SAFETY: as above.
        let f = unsafe { &raw mut (*p).f };
        // SAFETY: the strong count just reached zero, so nothing else uses
        // the contents; each field is dropped exactly once, in place; the
        // header (plain data) stays for the weak holders.
        unsafe { std::ptr::drop_in_place(state) };
        // SAFETY: as above, for the closure slot.
        unsafe { std::ptr::drop_in_place(f) };
    }
}

/// Allocates a task for `f`; returns the first strong reference.
fn new_block<F, T>(f: F, after: Option<Arc<dyn After>>) -> NonNull<Header>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let vt: &'static VTable = &Block::<F, T>::VTABLE;
    let mem = alloc_block(vt.layout).cast::<Block<F, T>>();
    let block = Block {
        prefix: Prefix {
            header: Header {
                strong: AtomicUsize::new(1),
                weak: AtomicUsize::new(1),
                vtable: vt,
            },
            state: Mutex::new(TaskState {
                result: None,
                done: false,
                abandoned: false,
                waiter: None,
                after,
            }),
        },
        f: Mutex::new(Some(f)),
    };
    // SAFETY: `mem` is a fresh allocation of `Layout::new::<Block<F, T>>()`
    // (or a class block at least that large and 16-aligned, which covers
    // the block's alignment: `class_of` refuses larger alignments).
    unsafe { mem.as_ptr().write(block) };
    mem.cast()
}

fn header<'a>(h: NonNull<Header>) -> &'a Header {
    // SAFETY: every handle keeps at least a weak count, so the header
    // (never dropped before the memory is freed) is valid while it lives.
    unsafe { h.as_ref() }
}

fn inc_strong(h: NonNull<Header>) {
    // Relaxed: as `Arc::clone` — the caller already holds a reference.
    header(h).strong.fetch_add(1, Ordering::Relaxed);
}

/// Drops one strong reference; the last drops the contents, then the
/// strong owners' collective weak count.
///
/// # Safety
///
/// The caller owns one strong count of `h`.
unsafe fn dec_strong(h: NonNull<Header>) {
    // Release/Acquire as `Arc::drop`: every use of the contents happens
    // before they are dropped.
    if header(h).strong.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    fence(Ordering::Acquire);
    let vt = header(h).vtable;
    // SAFETY: the strong count reached zero: we are the last strong owner.
    unsafe { (vt.drop_contents)(h) };
    // SAFETY: the strong owners' collective weak count.
    unsafe { dec_weak(h) };
}

/// # Safety
///
/// The caller owns one weak count of `h`.
unsafe fn dec_weak(h: NonNull<Header>) {
    if header(h).weak.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    fence(Ordering::Acquire);
    let layout = header(h).vtable.layout;
    // SAFETY: the last reference of any kind: the contents were dropped
    // (strong reached zero first) and nobody can reach the block any more.
    unsafe { free_block(h.cast(), layout) };
}

/// The runtime's strong reference: runs, abandons, fires the hook.
pub(crate) struct RunRef(NonNull<Header>);

// SAFETY: a task's contents are `Send` (F, T: Send) and all shared access
// goes through its mutexes and atomics, so references may be sent and shared.
unsafe impl Send for RunRef {}
// SAFETY: as above.
unsafe impl Sync for RunRef {}

impl RunRef {
    /// Runs the closure and publishes the result (at most once).
    pub(crate) fn run(&self) {
        // SAFETY: we hold a strong reference.
        unsafe { (header(self.0).vtable.run)(self.0) }
    }

    /// Gives up on the goroutine: drops the closure if unrun, wakes the joiner.
    pub(crate) fn abandon(&self) {
        // SAFETY: we hold a strong reference.
        unsafe { (header(self.0).vtable.abandon)(self.0) }
    }

    /// The scope hook, to fire after every strong runtime reference is gone.
    pub(crate) fn take_after(&self) -> Option<Arc<dyn After>> {
        // SAFETY: we hold a strong reference.
        unsafe { (header(self.0).vtable.take_after)(self.0) }
    }

    /// A weak reference (for abandonment of a started goroutine).
    pub(crate) fn downgrade(&self) -> WeakRun {
        header(self.0).weak.fetch_add(1, Ordering::Relaxed);
        WeakRun(self.0)
    }
}

impl Drop for RunRef {
    fn drop(&mut self) {
        // SAFETY: we own one strong count.
        unsafe { dec_strong(self.0) }
    }
}

/// The runtime's weak reference.
pub(crate) struct WeakRun(NonNull<Header>);

// SAFETY: as for `RunRef`.
unsafe impl Send for WeakRun {}
// SAFETY: as for `RunRef`.
unsafe impl Sync for WeakRun {}

impl WeakRun {
    /// A strong reference if the contents are still alive.
    pub(crate) fn upgrade(&self) -> Option<RunRef> {
        let s = &header(self.0).strong;
        let mut n = s.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return None;
            }
            // Acquire on success: as `Weak::upgrade`.
            match s.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(RunRef(self.0)),
                Err(x) => n = x,
            }
        }
    }
}

impl Drop for WeakRun {
    fn drop(&mut self) {
        // SAFETY: we own one weak count.
        unsafe { dec_weak(self.0) }
    }
}

/// The joiner's strong reference.
pub(crate) struct JoinRef<T>(NonNull<Header>, PhantomData<T>);

// SAFETY: as for `RunRef` (T: Send is required to create one).
unsafe impl<T: Send> Send for JoinRef<T> {}
// SAFETY: as for `RunRef`.
unsafe impl<T: Send> Sync for JoinRef<T> {}

impl<T> JoinRef<T> {
    fn prefix(&self) -> &Prefix<T> {
        // SAFETY: a `JoinRef<T>` is only made for a `Block<_, T>`, whose
        // repr(C) prefix is `Prefix<T>`; we hold a strong reference.
        unsafe { self.0.cast::<Prefix<T>>().as_ref() }
    }

    /// Waits for the result (parking a goroutine, blocking a thread).
    pub(crate) fn wait(&self) -> std::thread::Result<T> {
        loop {
            {
                let mut s = self.prefix().state.lock();
                if s.done {
                    return s.result.take().expect("gort: goroutine result taken twice");
                }
                if s.abandoned {
                    return Err(Box::new(ABANDONED));
                }
                s.waiter = Some(Waiter::current());
            }
            park::park_current(park::WaitReason::Join);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        let s = self.prefix().state.lock();
        s.done || s.abandoned
    }

    /// A type-erased strong reference for a scope's panic check.
    pub(crate) fn probe(&self) -> ProbeRef {
        inc_strong(self.0);
        ProbeRef(self.0)
    }
}

impl<T> Drop for JoinRef<T> {
    fn drop(&mut self) {
        // SAFETY: we own one strong count.
        unsafe { dec_strong(self.0) }
    }
}

/// A scope's type-erased strong reference.
pub(crate) struct ProbeRef(NonNull<Header>);

// SAFETY: as for `RunRef`.
unsafe impl Send for ProbeRef {}
// SAFETY: as for `RunRef`.
unsafe impl Sync for ProbeRef {}

impl ProbeRef {
    /// Did the goroutine panic with nobody taking the result?
    pub(crate) fn unjoined_panic(&self) -> bool {
        // SAFETY: we hold a strong reference.
        unsafe { (header(self.0).vtable.unjoined_panic)(self.0) }
    }
}

impl Drop for ProbeRef {
    fn drop(&mut self) {
        // SAFETY: we own one strong count.
        unsafe { dec_strong(self.0) }
    }
}

/// Makes a task: the runtime's reference and the joiner's.
///
/// # Safety
///
/// If `F` or `T` borrow data (are not `'static`), the caller must keep that
/// data alive until every `RunRef`, `ProbeRef` and `JoinRef` of this task is
/// dropped, or until the contents were dropped (strong count zero) — the
/// handles erase those lifetimes. For `'static` `F` and `T` there is no
/// obligation (see [`new_task_static`]).
pub(crate) unsafe fn new_task<F, T>(f: F, after: Option<Arc<dyn After>>) -> (RunRef, JoinRef<T>)
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let h = new_block(f, after);
    inc_strong(h);
    (RunRef(h), JoinRef(h, PhantomData))
}

/// [`new_task`] for `'static` closures: no obligations.
pub(crate) fn new_task_static<F, T>(f: F) -> (RunRef, JoinRef<T>)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: nothing is borrowed.
    unsafe { new_task(f, None) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn run_then_join() {
        let (run, join) = new_task_static(|| 6 * 7);
        run.run();
        drop(run);
        assert!(join.is_finished());
        assert_eq!(join.wait().unwrap(), 42);
    }

    #[test]
    fn join_waits_for_another_thread() {
        let (run, join) = new_task_static(|| String::from("done"));
        let t = std::thread::spawn(move || {
            std::thread::yield_now();
            run.run();
        });
        assert_eq!(join.wait().unwrap(), "done");
        t.join().unwrap();
    }

    #[test]
    fn panics_are_results() {
        let (run, join) = new_task_static(|| -> u8 { panic!("inside") });
        run.run();
        let probe = join.probe();
        assert!(probe.unjoined_panic());
        assert!(join.wait().is_err());
        assert!(!probe.unjoined_panic(), "joined now");
    }

    #[test]
    fn abandoned_unrun_closure_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        let (run, join) = new_task_static(move || drop(c));
        let weak = run.downgrade();
        run.abandon();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "closure dropped by abandon"
        );
        drop(run);
        assert!(weak.upgrade().is_some(), "the joiner still holds it");
        let e = join.wait().unwrap_err();
        assert_eq!(e.downcast_ref::<&str>(), Some(&ABANDONED));
        drop(join);
        assert!(
            weak.upgrade().is_none(),
            "contents gone with the last strong ref"
        );
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn unjoined_result_is_dropped_with_the_last_reference() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (run, join) = new_task_static(move || Counted(d));
        run.run();
        drop(join);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(run);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn abandon_after_completion_changes_nothing() {
        let (run, join) = new_task_static(|| 1u32);
        run.run();
        run.abandon();
        assert_eq!(join.wait().unwrap(), 1);
    }

    #[test]
    fn blocks_are_recycled_across_threads() {
        // Allocate on this thread, free on another, allocate again: the
        // block cache must hand out each block to one owner at a time.
        let n = if cfg!(miri) { 50 } else { 5000 };
        let mut handles = Vec::new();
        for i in 0..n {
            let (run, join) = new_task_static(move || [i as u64; 4]);
            handles.push((run, join));
        }
        let t = std::thread::spawn(move || {
            for (run, join) in handles {
                run.run();
                drop(run);
                let v = join.wait().unwrap();
                assert_eq!(v[3], v[0]);
            }
        });
        t.join().unwrap();
        let vals: Vec<_> = (0..n).map(|i| new_task_static(move || i)).collect();
        for (i, (run, join)) in vals.into_iter().enumerate() {
            run.run();
            assert_eq!(join.wait().unwrap(), i);
        }
    }

    #[test]
    fn big_and_overaligned_blocks_bypass_the_cache() {
        #[repr(align(64))]
        struct A([u8; 64]);
        let (run, join) = new_task_static(|| A([7; 64]));
        run.run();
        assert_eq!(join.wait().ok().unwrap().0[63], 7);
        let big = [1u8; 4096];
        let (run, join) = new_task_static(move || big.iter().map(|&b| b as u32).sum::<u32>());
        run.run();
        assert_eq!(join.wait().unwrap(), 4096);
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(Layout::from_size_align(1, 1).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(16, 8).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(17, 8).unwrap()), Some(1));
        assert_eq!(
            class_of(Layout::from_size_align(512, 16).unwrap()),
            Some(NCLASS - 1)
        );
        assert_eq!(class_of(Layout::from_size_align(513, 16).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 64).unwrap()), None);
    }
}
