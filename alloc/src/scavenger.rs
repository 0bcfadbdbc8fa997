//! The scavenger's policy: how much free memory to give back to the OS and
//! how fast (Go's `mgcscavenge.go`), as pure functions the runtime calls.
//!
//! The mechanism is [`Heap::scavenge`](crate::Heap::scavenge) (release free
//! pages with `MADV_DONTNEED`, highest addresses first, dense chunks last).
//! This module decides *when*:
//!
//! 1. **Goal.** After each GC, `retained_goal = (1 + 10 %) × (heapGoal /
//!    lastHeapGoal) × lastHeapInUse` (Go's `retainExtraPercent = 10`): keep
//!    10 % headroom over what the heap used, scaled by how the goal moved.
//!    With a memory limit, also `retained ≤ (1 − 5 %) × limit`
//!    (`reduceExtraPercent = 5`). `retained = HeapSys − HeapReleased`.
//! 2. **Pace.** The background scavenger works in 64 KiB units and then
//!    sleeps so that it uses about 1 % of one CPU (`scavengePercent = 1`):
//!    after a unit that took `t`, sleep `t × (1 − f) / f` with `f = 0.01`.
//!    Go smooths the cost estimate; we use an EWMA of ns per unit.
//! 3. **Huge pages.** The heap never calls `MADV_HUGEPAGE` (Go stopped in
//!    1.21.1: it split VMAs and let khugepaged re-back freed memory); the
//!    scavenger skips chunks that were ≥ 96.875 % in use during the last
//!    cycle, so it does not break huge pages the program still uses. See
//!    `docs/design/alloc.md` for the system settings.

#![forbid(unsafe_code)]

use crate::stats::MemStats;
use std::time::Duration;

/// Fraction of one CPU the background scavenger may use.
pub const SCAVENGE_PERCENT: f64 = 1.0;
/// Headroom kept over the heap in use, in percent.
pub const RETAIN_EXTRA_PERCENT: u64 = 10;
/// Margin below a memory limit, in percent.
pub const REDUCE_EXTRA_PERCENT: u64 = 5;
/// Bytes released per unit of background work.
pub const SCAVENGE_UNIT: usize = 64 << 10;

/// Go's GC-driven retained-memory goal (bytes).
pub fn retained_goal(heap_goal: u64, last_heap_goal: u64, last_heap_inuse: u64) -> u64 {
    if last_heap_goal == 0 {
        return u64::MAX;
    }
    let scaled = last_heap_inuse as f64 * (heap_goal as f64 / last_heap_goal as f64);
    (scaled * (1.0 + RETAIN_EXTRA_PERCENT as f64 / 100.0)) as u64
}

/// Go's memory-limit-driven goal for mapped, unreleased memory (bytes).
pub fn memory_limit_goal(limit: u64) -> u64 {
    limit / 100 * (100 - REDUCE_EXTRA_PERCENT)
}

/// Bytes the heap retains from the OS (`HeapSys − HeapReleased`).
pub fn retained(stats: &MemStats) -> u64 {
    stats.heap_sys - stats.heap_released
}

/// The background scavenger's state: goals plus a CPU pacer. Pure: the
/// runtime feeds it statistics and time, and it answers how much to release
/// and how long to sleep.
#[derive(Debug, Clone)]
pub struct ScavengerPolicy {
    /// Retained-bytes goal from the last GC (`u64::MAX` = none).
    pub gc_goal: u64,
    /// Goal from the memory limit (`u64::MAX` = no limit).
    pub limit_goal: u64,
    /// EWMA of ns per unit of work.
    ns_per_unit: f64,
}

impl Default for ScavengerPolicy {
    fn default() -> Self {
        ScavengerPolicy {
            gc_goal: u64::MAX,
            limit_goal: u64::MAX,
            ns_per_unit: 0.0,
        }
    }
}

impl ScavengerPolicy {
    /// Recomputes the goals at the end of a GC cycle.
    pub fn on_gc(
        &mut self,
        heap_goal: u64,
        last_heap_goal: u64,
        last_heap_inuse: u64,
        memory_limit: Option<u64>,
    ) {
        self.gc_goal = retained_goal(heap_goal, last_heap_goal, last_heap_inuse);
        self.limit_goal = memory_limit.map_or(u64::MAX, memory_limit_goal);
    }

    /// Bytes to release now to meet the tighter goal (0: asleep).
    pub fn work(&self, stats: &MemStats) -> u64 {
        let goal = self.gc_goal.min(self.limit_goal);
        retained(stats)
            .saturating_sub(goal)
            .min(stats.heap_idle - stats.heap_released)
    }

    /// Records a unit of work that took `spent` and returns how long to
    /// sleep to stay at [`SCAVENGE_PERCENT`] of one CPU.
    pub fn after_work(&mut self, spent: Duration) -> Duration {
        let ns = spent.as_nanos() as f64;
        self.ns_per_unit = if self.ns_per_unit == 0.0 {
            ns
        } else {
            0.75 * self.ns_per_unit + 0.25 * ns
        };
        let f = SCAVENGE_PERCENT / 100.0;
        Duration::from_nanos((self.ns_per_unit * (1.0 - f) / f) as u64)
    }

    /// One background step against `heap`: release a unit if the goal asks
    /// for it, and return the sleep before the next step (`None`: goal met,
    /// park until the next GC).
    pub fn step(&mut self, heap: &crate::Heap) -> Option<Duration> {
        let need = self.work(&heap.stats());
        if need == 0 {
            return None;
        }
        let t0 = std::time::Instant::now();
        let released = heap.scavenge((need as usize).min(SCAVENGE_UNIT));
        if released == 0 {
            return None;
        }
        Some(self.after_work(t0.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_follow_go() {
        assert_eq!(retained_goal(200, 100, 1000), 2200);
        assert_eq!(retained_goal(100, 100, 1000), 1100);
        assert_eq!(memory_limit_goal(1000), 950);
    }

    #[test]
    fn pacing_is_one_percent() {
        let mut p = ScavengerPolicy::default();
        let sleep = p.after_work(Duration::from_micros(10));
        assert_eq!(sleep, Duration::from_micros(990));
    }

    #[test]
    fn work_is_bounded_by_idle_unreleased_memory() {
        let mut p = ScavengerPolicy::default();
        p.on_gc(100 << 20, 100 << 20, 10 << 20, None);
        let st = MemStats {
            heap_sys: 64 << 20,
            heap_idle: 50 << 20,
            heap_released: 30 << 20,
            ..MemStats::default()
        };
        // retained 34 MiB, goal 11 MiB → 23 MiB wanted, 20 MiB available.
        assert_eq!(p.work(&st), 20 << 20);
        p.on_gc(100 << 20, 100 << 20, 10 << 20, Some(1 << 40));
        assert_eq!(p.work(&st), 20 << 20);
    }
}
