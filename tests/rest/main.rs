//! The REST and HTTP suites in one test binary: the API on every backend, the OpenAPI document,
//! the page's API, hostile clients and two processes on one SQLite file.
//!
//! One binary per area (not one per file) so the shared harness (`tests/common`) is compiled
//! and linked once per area.

// Each binary uses part of the shared harness (every item is used by at least one of them).
#[allow(dead_code)]
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod hostile;
mod openapi;
mod page_api;
mod rest;
mod shared_sqlite;
