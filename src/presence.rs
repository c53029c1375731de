//! Who is online: a user is online while any of their connections is.
//!
//! Without Redis, this server's own connections are the whole truth. With Redis (GinChat's
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

/// Where presence lives.
pub enum Presence {
    Memory(Mutex<HashMap<UserId, HashSet<NodeId>>>),
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
            Self::Memory(map) => {
                if let Ok(mut map) = map.lock() {
                    map.entry(user).or_default().insert(id);
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
            Self::Memory(map) => {
                let Ok(mut map) = map.lock() else {
                    return false;
                };
                let Some(set) = map.get_mut(&user) else {
                    return false;
                };
                set.remove(&id);
                if set.is_empty() {
                    map.remove(&user);
                    false
                } else {
                    true
                }
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
            Self::Memory(map) => {
                let Ok(map) = map.lock() else {
                    return HashSet::new();
                };
                users
                    .iter()
                    .copied()
                    .filter(|u| map.contains_key(u))
                    .collect()
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
}
