//! Who is online. Without Redis this is a count of live connections per user in memory.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::ids::UserId;

/// Online state of users, as this node knows it.
#[derive(Default)]
pub struct Presence {
    local: Mutex<HashMap<UserId, usize>>,
}

impl Presence {
    /// Whether `user` has at least one live connection.
    pub async fn is_online(&self, user: UserId) -> bool {
        self.local
            .lock()
            .map(|m| m.get(&user).is_some_and(|n| *n > 0))
            .unwrap_or(false)
    }

    /// Which of `users` are online.
    pub async fn online_among(&self, users: &[UserId]) -> HashSet<UserId> {
        let Ok(map) = self.local.lock() else {
            return HashSet::new();
        };
        users
            .iter()
            .copied()
            .filter(|u| map.get(u).is_some_and(|n| *n > 0))
            .collect()
    }
}
