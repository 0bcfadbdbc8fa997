//! The loom shim: `crate::loom::sync::atomic` is loom's under `cfg(loom)`
//! and std's otherwise. Only modules whose protocols are model-checked
//! (`sched::parkword`) use it.
#![forbid(unsafe_code)]

#[cfg(loom)]
pub(crate) use loom::sync;

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::atomic;
}
