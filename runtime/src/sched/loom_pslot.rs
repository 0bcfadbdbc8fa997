//! Loom model of the P ownership protocol (`preempt.rs`, `MLocal::split`,
//! `MShared::steal_p`, `settle_state` in `m.rs`): while an M's state is
//! `M_RELEASED` (or `M_SYSCALL`), the M reclaiming its P and sysmon taking
//! it race on one CAS of the state word; exactly one of them may then use
//! the P. The P slot is modelled as an `AtomicUsize` (the pointer), the use
//! of the P as a non-atomic `UnsafeCell` write, so loom reports a data race
//! if both sides could ever touch it.
#![cfg(all(test, loom))]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const M_RUN: u32 = 1;
const M_RELEASED: u32 = 3;
const M_LOST: u32 = 4;

struct Model {
    state: AtomicU32,
    slot: AtomicUsize,
    /// The P's contents: touched only by its owner.
    p: UnsafeCell<u64>,
}

// SAFETY (model only): `p` is accessed by whoever wins the state CAS; loom
// checks that claim.
unsafe impl Sync for Model {}

fn use_p(m: &Model) {
    m.p.with_mut(|p| {
        // SAFETY: the caller owns the P under the protocol (checked by loom).
        unsafe { *p += 1 }
    });
}

#[test]
fn loom_reclaim_and_steal_never_share_a_p() {
    loom::model(|| {
        let m = Arc::new(Model {
            state: AtomicU32::new(M_RUN),
            slot: AtomicUsize::new(1),
            p: UnsafeCell::new(0),
        });
        // The handler (on the M's own thread) releases the P.
        m.state
            .compare_exchange(M_RUN, M_RELEASED, Ordering::AcqRel, Ordering::Acquire)
            .unwrap();
        let sysmon = {
            let m = m.clone();
            loom::thread::spawn(move || {
                // MShared::steal_p
                if m.state
                    .compare_exchange(M_RELEASED, M_LOST, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let p = m.slot.swap(0, Ordering::AcqRel);
                    assert_eq!(p, 1);
                    use_p(&m); // handoffp: another M runs with it
                    true
                } else {
                    false
                }
            })
        };
        // MLocal::split on the M: reclaim.
        let mine = m
            .state
            .compare_exchange(M_RELEASED, M_RUN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if mine {
            assert_eq!(m.slot.load(Ordering::Acquire), 1);
            use_p(&m);
        } else {
            assert_eq!(m.state.load(Ordering::Acquire), M_LOST);
        }
        let stolen = sysmon.join().unwrap();
        assert!(mine ^ stolen, "exactly one owner");
    });
}
