//! Stack pools: a cache per P and a process-wide pool behind it (Go's
//! `stackcache` per P and `stackpool`).
//!
//! `StackCache::get` takes from the P's cache; when empty it refills a batch
//! of [`BATCH`] from the global pool, which maps a new slab when it runs dry.
//! `StackCache::put` returns a stack to the P's cache; above [`CACHE_MAX`] half
//! of the cache goes back to the global pool. The global pool keeps at most
//! [`POOL_COMMITTED_MAX`](super::stack::POOL_COMMITTED_MAX) stacks committed
//! and releases the pages of the rest (`MADV_DONTNEED`).
//!
//! The global pool is process-wide (stacks outlive a `Runtime::run`), keyed by
//! stack geometry so runtimes with different stack sizes share nothing.
#![forbid(unsafe_code)]

use super::stack::{GoroutineStack, POOL_COMMITTED_MAX, StackConfig};
use gort_alloc::sys::GuardKind;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A pooled stack unused this long may have its pages released.
const IDLE_BEFORE_RELEASE: Duration = Duration::from_secs(1);
/// The pool checks for stacks to release at most this often.
const TRIM_EVERY: Duration = Duration::from_millis(100);

/// Stacks moved between a P's cache and the global pool at a time.
const BATCH: usize = 16;
/// Most stacks a P's cache holds.
const CACHE_MAX: usize = 64;

/// One pool per stack geometry.
///
/// # Fields
/// - `hot`: stacks whose touched pages are still committed.
/// - `cold`: stacks whose pages were released.
struct Pool {
    cfg: StackConfig,
    /// Oldest at the front, most recently returned at the back.
    hot: VecDeque<(Instant, GoroutineStack)>,
    cold: Vec<GoroutineStack>,
    guard: GuardKind,
    last_trim: Option<Instant>,
}

/// Protected by: its own mutex. Lock order: leaf (nothing is taken inside).
static POOLS: Mutex<Vec<Pool>> = parking_lot::Mutex::new(Vec::new());

fn with_pool<R>(cfg: StackConfig, f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut pools = POOLS.lock();
    let i = match pools.iter().position(|p| p.cfg == cfg) {
        Some(i) => i,
        None => {
            pools.push(Pool {
                cfg,
                hot: VecDeque::new(),
                cold: Vec::new(),
                guard: GuardKind::None,
                last_trim: None,
            });
            pools.len() - 1
        }
    };
    f(&mut pools[i])
}

/// Takes up to `n` stacks from the global pool, mapping a slab if it is empty.
fn global_take(cfg: StackConfig, n: usize, out: &mut Vec<GoroutineStack>) {
    let got = with_pool(cfg, |p| {
        let mut got = 0;
        while got < n {
            match p.hot.pop_back().map(|(_, s)| s).or_else(|| p.cold.pop()) {
                Some(s) => {
                    out.push(s);
                    got += 1;
                }
                None => break,
            }
        }
        got
    });
    if got > 0 {
        return;
    }
    match cfg.new_slab() {
        Ok((stacks, kind)) => {
            let mut stacks = stacks;
            let keep = stacks.split_off(stacks.len().saturating_sub(n));
            out.extend(keep);
            with_pool(cfg, |p| {
                p.guard = kind;
                p.cold.extend(stacks);
            });
        }
        Err(e) => crate::fatal!(
            "runtime: cannot allocate a goroutine stack of {} bytes: {e}",
            cfg.size
        ),
    }
}

/// Returns stacks to the global pool; now and then releases the pages of
/// stacks that have been idle for a while beyond the committed budget.
fn global_put(cfg: StackConfig, stacks: Vec<GoroutineStack>) {
    let now = Instant::now();
    let mut release = with_pool(cfg, |p| {
        p.hot.extend(stacks.into_iter().map(|s| (now, s)));
        if p.hot.len() <= POOL_COMMITTED_MAX || p.last_trim.is_some_and(|t| now - t < TRIM_EVERY) {
            return Vec::new();
        }
        p.last_trim = Some(now);
        let mut out = Vec::new();
        while p.hot.len() > POOL_COMMITTED_MAX
            && p.hot
                .front()
                .is_some_and(|(t, _)| now - *t >= IDLE_BEFORE_RELEASE)
        {
            out.extend(p.hot.pop_front().map(|(_, s)| s));
        }
        out
    });
    if release.is_empty() {
        return;
    }
    for s in &mut release {
        // Releasing pages is advisory: on failure the stack stays usable.
        let _ = s.decommit();
    }
    with_pool(cfg, |p| p.cold.extend(release));
}

/// Returns one stack to the global pool (an M without a P has no cache).
pub(crate) fn release_one(cfg: StackConfig, s: GoroutineStack) {
    global_put(cfg, vec![s]);
}

/// How the global pool's guards were installed (for diagnostics and tests).
pub(crate) fn guard_kind(cfg: StackConfig) -> GuardKind {
    with_pool(cfg, |p| p.guard)
}

/// A P's stack cache.
#[derive(Debug)]
pub(crate) struct StackCache {
    cfg: StackConfig,
    stacks: Vec<GoroutineStack>,
}

impl StackCache {
    pub(crate) fn new(cfg: StackConfig) -> StackCache {
        StackCache {
            cfg,
            stacks: Vec::new(),
        }
    }

    /// A free stack (may be dirty: pages keep the contents of an earlier
    /// goroutine, as Go's do).
    pub(crate) fn get(&mut self) -> GoroutineStack {
        if let Some(s) = self.stacks.pop() {
            return s;
        }
        global_take(self.cfg, BATCH, &mut self.stacks);
        self.stacks
            .pop()
            .expect("global_take yields at least one stack")
    }

    /// Returns a stack no goroutine runs on.
    pub(crate) fn put(&mut self, s: GoroutineStack) {
        self.stacks.push(s);
        if self.stacks.len() > CACHE_MAX {
            let half = self.stacks.split_off(CACHE_MAX / 2);
            global_put(self.cfg, half);
        }
    }

    /// Empties the cache into the global pool (P destroyed or runtime stopped).
    pub(crate) fn flush(&mut self) {
        let all = std::mem::take(&mut self.stacks);
        if !all.is_empty() {
            global_put(self.cfg, all);
        }
    }
}

impl Drop for StackCache {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // mmap and madvise
    fn cache_round_trip_reuses_stacks() {
        let cfg = StackConfig::new(32 * 1024).unwrap();
        let mut c = StackCache::new(cfg);
        let a = c.get();
        let top = a.top();
        c.put(a);
        let b = c.get();
        assert_eq!(b.top(), top, "LIFO reuse of the hot stack");
        let many: Vec<_> = (0..200).map(|_| c.get()).collect();
        let mut tops: Vec<_> = many.iter().map(|s| s.top()).collect();
        tops.sort();
        tops.dedup();
        assert_eq!(tops.len(), 200, "no stack handed out twice");
        for s in many {
            c.put(s);
        }
        assert!(c.stacks.len() <= CACHE_MAX + 1);
        c.put(b);
        c.flush();
        assert!(c.stacks.is_empty());
    }
}
