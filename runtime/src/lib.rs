//! gort-runtime
