//! Goroutine-aware synchronisation (Go's `sync`). Blocking here parks the
//! goroutine (its M runs others) or blocks a plain thread.
//!
//! So far: [`WaitGroup`]. The channels/sync issue adds the rest.
#![forbid(unsafe_code)]

mod waitgroup;
pub use waitgroup::WaitGroup;
