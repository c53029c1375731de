//! sea-orm entities, one file per table. They mirror `migrations/`; only the store uses them.

pub mod attachment;
pub mod community;
pub mod community_member;
pub mod contact;
pub mod conversation;
pub mod message;
pub mod read_cursor;
pub mod session;
pub mod user;
