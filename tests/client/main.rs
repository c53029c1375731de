//! The Rust client library (`chorus-client`) and its terminal UI against the real server.
//!
//! One binary per area (not one per file) so the shared harness (`tests/common`) is compiled
//! and linked once per area.

// Each binary uses part of the shared harness (every item is used by at least one of them).
#[allow(dead_code)]
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod client;
mod tui;
