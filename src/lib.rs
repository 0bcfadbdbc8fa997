//! gort: facade
