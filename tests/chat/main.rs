//! The chat suites in one test binary: delivery, faults, presence, the protocol, shutdown and
//! hung dependencies over the websocket, and the plain TCP line endpoint.
//!
//! One binary per area (not one per file) so the shared harness (`tests/common`) is compiled
//! and linked once per area.

// Each binary uses part of the shared harness (every item is used by at least one of them).
#[allow(dead_code)]
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod chat_delivery;
mod chat_faults;
mod chat_presence;
mod chat_protocol;
mod chat_shutdown;
mod hangs;
mod line;
