//! Who is online: a user is online while any of their connections is.
//!
//! Without Redis, presence is this server's own connections plus what peers of the cluster
//! announce (each peer's set of connected users, forgotten when the peer goes silent). With Redis (GinChat's
//! online cache), each connection is a member of the sorted set `chorus:online:{user}`, scored
//! by the time it expires; heartbeats push the score forward, a clean disconnect removes it, and
//! a crashed node's entries simply age out. Keying by connection (not by user) makes connect
//! and disconnect on different nodes commute, so no ordering race can flip a user offline.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use redis::aio::ConnectionManager;

use crate::hub::NodeId;
use crate::ids::UserId;
use crate::store::now_ms;

/// In-memory presence: local connections by user, and the users each peer reported.
#[derive(Default)]
pub struct Local {
    here: HashMap<UserId, HashSet<NodeId>>,
    peers: HashMap<String, HashSet<UserId>>,
}

impl Local {
    fn online(&self, user: &UserId) -> bool {
        self.here.contains_key(user) || self.peers.values().any(|s| s.contains(user))
    }
}

/// Where presence lives.
pub enum Presence {
    Memory(Mutex<Local>),
    Redis {
        conn: ConnectionManager,
        /// Distinguishes this server's connections from other nodes' in the shared sets.
        node: String,
        ttl_ms: i64,
    },
}

fn key(user: UserId) -> String {
    format!("chorus:online:{user}")
}

impl Presence {
    /// In-memory presence (single node, or a cluster that gossips presence).
    pub fn memory() -> Self {
        Self::Memory(Mutex::default())
    }

    /// Presence in Redis at `url`; an entry lives `ttl_ms` past its last refresh.
    pub async fn redis(url: &str, node: String, ttl_ms: i64) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Self::Redis { conn, node, ttl_ms })
    }

    fn member(node_name: &str, id: NodeId) -> String {
        format!("{node_name}:{}", id.0)
    }

    /// A connection of `user` opened (or sent a heartbeat).
    pub async fn up(&self, user: UserId, id: NodeId) {
        match self {
            Self::Memory(state) => {
                if let Ok(mut state) = state.lock() {
                    state.here.entry(user).or_default().insert(id);
                }
            }
            Self::Redis { conn, node, ttl_ms } => {
                let mut conn = conn.clone();
                let result: redis::RedisResult<()> = redis::pipe()
                    .zadd(key(user), Self::member(node, id), now_ms() + ttl_ms)
                    .ignore()
                    .pexpire(key(user), *ttl_ms)
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = result {
                    tracing::warn!(%err, "presence: redis update failed");
                }
            }
        }
    }

    /// A connection of `user` closed; returns whether the user is still online anywhere.
    pub async fn down(&self, user: UserId, id: NodeId) -> bool {
        match self {
            Self::Memory(state) => {
                let Ok(mut state) = state.lock() else {
                    return false;
                };
                if let Some(set) = state.here.get_mut(&user) {
                    set.remove(&id);
                    if set.is_empty() {
                        state.here.remove(&user);
                    }
                }
                state.online(&user)
            }
            Self::Redis { conn, node, .. } => {
                let mut conn = conn.clone();
                let removed: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg(key(user))
                    .arg(Self::member(node, id))
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = removed {
                    tracing::warn!(%err, "presence: redis remove failed");
                }
                self.is_online(user).await
            }
        }
    }

    /// Whether `user` has a live connection on any node.
    pub async fn is_online(&self, user: UserId) -> bool {
        self.online_among(&[user]).await.contains(&user)
    }

    /// Which of `users` are online.
    pub async fn online_among(&self, users: &[UserId]) -> HashSet<UserId> {
        match self {
            Self::Memory(state) => {
                let Ok(state) = state.lock() else {
                    return HashSet::new();
                };
                users.iter().copied().filter(|u| state.online(u)).collect()
            }
            Self::Redis { conn, .. } => {
                if users.is_empty() {
                    return HashSet::new();
                }
                let mut conn = conn.clone();
                let now = now_ms();
                let mut pipe = redis::pipe();
                for user in users {
                    pipe.zcount(key(*user), now, "+inf");
                }
                match pipe.query_async::<Vec<u64>>(&mut conn).await {
                    Ok(counts) => users
                        .iter()
                        .zip(counts)
                        .filter(|(_, n)| *n > 0)
                        .map(|(u, _)| *u)
                        .collect(),
                    Err(err) => {
                        tracing::warn!(%err, "presence: redis read failed");
                        HashSet::new()
                    }
                }
            }
        }
    }

    /// A peer reported that `user` has (or no longer has) a connection there. Redis presence
    /// already holds every node's connections, so there this changes nothing.
    pub fn remote(&self, node: &str, user: UserId, here: bool) {
        if let Self::Memory(state) = self {
            if let Ok(mut state) = state.lock() {
                let set = state.peers.entry(node.to_owned()).or_default();
                if here {
                    set.insert(user);
                } else {
                    set.remove(&user);
                }
            }
        }
    }

    /// A peer went silent: forget whom it reported, and return them.
    pub fn forget_node(&self, node: &str) -> Vec<UserId> {
        match self {
            Self::Memory(state) => state
                .lock()
                .ok()
                .and_then(|mut s| s.peers.remove(node))
                .map(|set| set.into_iter().collect())
                .unwrap_or_default(),
            Self::Redis { .. } => Vec::new(),
        }
    }
}
