//! The terminal UI (`chorus-tui`): a pure [`model`] (events in, effects out), its drawing
//! ([`view`]), the [`runtime`] that performs effects against the server, and the remembered
//! session ([`config`]).

pub mod config;
pub mod model;
pub mod runtime;
pub mod view;

pub use config::SessionStore;
pub use model::{Effect, Event, Model};
pub use runtime::Runtime;

/// The ratatui this UI draws with (tests drive it with its `TestBackend`).
pub use ratatui;
