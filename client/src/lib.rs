//! A typed async client for [Chorus](../README.md): the REST API ([`Api`]), one websocket
//! ([`Socket`]) and a chat session that survives restarts ([`Chat`]), plus (feature `tui`) the
//! terminal UI behind the `chorus-tui` binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chorus_client::ClientError> {
//! use chorus_client::{Api, Chat, ChatEvent, ChatOptions, Media};
//! let mut api = Api::new("http://127.0.0.1:8080")?;
//! let me = api.login("alice", "correct horse").await?;
//! let mut chat = Chat::start(api.clone(), Default::default(), ChatOptions::default());
//! let id = chat.send_private(42, Media::Text, "hi");
//! while let Some(ev) = chat.next_event().await {
//!     if matches!(&ev, ChatEvent::Acked { id: acked, .. } if *acked == id) { break; }
//! }
//! # Ok(()) }
//! ```

pub mod chat;
pub mod error;
pub mod rest;
pub mod socket;
#[cfg(feature = "tui")]
pub mod tui;
pub mod types;

pub use chat::{new_send_id, Chat, ChatEvent, ChatOptions};
pub use error::{ClientError, Result};
pub use rest::Api;
pub use socket::Socket;
pub use types::*;
