//! gort-runtime: goroutines on a G/M/P work-stealing scheduler.
//!
//! Use it through the `gort` facade. Module map:
//!
//! - `sched`: G/M/P, run queues, stealing, parking (`sched/{mod,g,m,runq,park}.rs`)
//! - `coro`: coroutines, goroutine stacks, stack pools, overflow handler
//! - `spawn`: `go`, `JoinHandle`, `scope`
//! - `runtime`: `Builder`, `Runtime`, `run`, the `gort::runtime` functions
//! - `cgroup`, `env`: GOMAXPROCS from cgroups, environment knobs
//! - `panic`, `fatal`: the panic hook and the fatal-error vocabulary
//! - `landing`: a waiting channel operation's result slot on its own stack
//!   (`sudog.elem`)
//! - `spinlock`: the channel lock (unlock is a store)
//!
//! See docs/design/scheduler.md and docs/design/stacks.md.
//!
//! # Cargo features
//!
//! None yet.

#[forbid(unsafe_code)]
mod cgroup;
pub mod chan;
pub mod coro;
#[forbid(unsafe_code)]
mod env;
#[doc(hidden)]
pub mod fatal;
#[doc(hidden)]
pub mod glocal;
mod landing;
mod loom;
pub mod net;
pub mod netpoll;
#[forbid(unsafe_code)]
mod panic;
pub mod runtime;
pub(crate) mod sched;
pub mod spawn;
mod spinlock;
pub mod sync;
mod task;
pub mod time;

pub use runtime::{BuildError, Builder, Runtime, run, yield_now};
pub use spawn::{JoinHandle, Scope, ScopedJoinHandle, go, scope};
