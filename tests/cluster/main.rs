//! The multi-node suites in one test binary: UDP and Redis clusters, their faults, packet loss in
//! a network namespace and the chaos test. `cluster_netns` and `chaos` re-run this binary inside
//! a namespace by test name (`common::netns`).
//!
//! One binary per area (not one per file) so the shared harness (`tests/common`) is compiled
//! and linked once per area.

// Each binary uses part of the shared harness (every item is used by at least one of them).
#[allow(dead_code)]
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod chaos;
mod cluster_faults;
mod cluster_netns;
mod cluster_redis;
mod cluster_redis_restart;
mod cluster_udp;
