//! Who is online: a user is online while any of their connections is.
//!
//! Without Redis, presence is this server's own connections plus what peers of the cluster
//! announce (each peer's set of connected users, forgotten when the peer goes silent, leaves or
//! restarts). With Redis (GinChat's online cache), each connection is a member of the sorted set
//! `chorus:online:{user}`, scored by the time it expires; heartbeats push the score forward, a
//! clean disconnect removes it, and a crashed node's entries simply age out. Keying by
//! connection (not by user) makes connect and disconnect on different nodes commute, so no
//! ordering race can flip a user offline.
//!
//! Redis must never stop the server: every call has a short timeout, and after a failure Redis
//! is left alone for a while ([`REDIS_BACKOFF`]). Meanwhile presence answers from what this node
//! knows itself: its own connections and what its peers announced (kept in both modes).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use crate::hub::ConnId;
use crate::ids::UserId;
use crate::lock::lock;
use crate::store::now_ms;

/// Longest wait for one Redis round trip.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long Redis is not asked again after it failed or did not answer.
pub const REDIS_BACKOFF: Duration = Duration::from_secs(2);

/// In-memory presence: local connections by user, and the users each peer reported.
#[derive(Default)]
pub struct Local {
    here: HashMap<UserId, HashSet<ConnId>>,
    peers: HashMap<String, HashSet<UserId>>,
}

impl Local {
    fn online(&self, user: &UserId) -> bool {
        self.here.contains_key(user) || self.peers.values().any(|s| s.contains(user))
    }

    fn up(&mut self, user: UserId, id: ConnId) {
        self.here.entry(user).or_default().insert(id);
    }

    fn down(&mut self, user: UserId, id: ConnId) {
        if let Some(set) = self.here.get_mut(&user) {
            set.remove(&id);
            if set.is_empty() {
                self.here.remove(&user);
            }
        }
    }
}

/// Redis, with the node's own view as the fallback while it does not answer.
pub struct RedisPresence {
    conn: ConnectionManager,
    /// Distinguishes this server's connections from other nodes' in the shared sets.
    node: String,
    ttl_ms: i64,
    /// Until when Redis is skipped after a failure.
    resting_until: Mutex<Option<Instant>>,
}

impl RedisPresence {
    /// Runs one Redis call within [`REDIS_TIMEOUT`]; `None` (and a rest) when it fails or
    /// hangs, and at once while resting.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let resting = lock(&self.resting_until).is_some_and(|until| Instant::now() < until);
        if resting {
            return None;
        }
        let failure = match tokio::time::timeout(REDIS_TIMEOUT, fut).await {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {REDIS_TIMEOUT:?}"),
        };
        tracing::warn!(%failure, what, "presence: redis failed; answering from this node's view for {REDIS_BACKOFF:?}");
        *lock(&self.resting_until) = Some(Instant::now() + REDIS_BACKOFF);
        None
    }
}

/// Where presence lives.
pub struct Presence {
    local: Mutex<Local>,
    redis: Option<RedisPresence>,
}

fn key(user: UserId) -> String {
    format!("chorus:online:{user}")
}

impl Presence {
    /// In-memory presence (single node, or a cluster that gossips presence).
    pub fn memory() -> Self {
        Self {
            local: Mutex::default(),
            redis: None,
        }
    }

    /// Presence in Redis at `url`; an entry lives `ttl_ms` past its last refresh.
    pub async fn redis(url: &str, node: String, ttl_ms: i64) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT * 4))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            local: Mutex::default(),
            redis: Some(RedisPresence {
                conn,
                node,
                ttl_ms,
                resting_until: Mutex::new(None),
            }),
        })
    }

    fn member(node_name: &str, id: ConnId) -> String {
        format!("{node_name}:{}", id.0)
    }

    /// A connection of `user` opened (or sent a heartbeat).
    pub async fn up(&self, user: UserId, id: ConnId) {
        lock(&self.local).up(user, id);
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let mut pipe = redis::pipe();
            pipe.zadd(key(user), Self::member(&r.node, id), now_ms() + r.ttl_ms)
                .ignore()
                .pexpire(key(user), r.ttl_ms)
                .ignore();
            r.call("refresh", pipe.query_async::<()>(&mut conn)).await;
        }
    }

    /// A connection of `user` closed; returns whether the user is still online anywhere.
    pub async fn down(&self, user: UserId, id: ConnId) -> bool {
        lock(&self.local).down(user, id);
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(key(user)).arg(Self::member(&r.node, id));
            r.call("remove", cmd.query_async::<()>(&mut conn)).await;
        }
        self.is_online(user).await
    }

    /// Whether `user` has a live connection on any node.
    pub async fn is_online(&self, user: UserId) -> bool {
        self.online_among(&[user]).await.contains(&user)
    }

    /// Which of `users` are online.
    pub async fn online_among(&self, users: &[UserId]) -> HashSet<UserId> {
        if users.is_empty() {
            return HashSet::new();
        }
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let now = now_ms();
            let mut pipe = redis::pipe();
            for user in users {
                pipe.zcount(key(*user), now, "+inf");
            }
            if let Some(counts) = r
                .call("read", pipe.query_async::<Vec<u64>>(&mut conn))
                .await
            {
                return users
                    .iter()
                    .zip(counts)
                    .filter(|(_, n)| *n > 0)
                    .map(|(u, _)| *u)
                    .collect();
            }
        }
        let local = lock(&self.local);
        users.iter().copied().filter(|u| local.online(u)).collect()
    }

    /// A peer reported that `user` has (or no longer has) a connection there. With Redis this
    /// is the fallback view only: Redis already holds every node's connections.
    pub fn remote(&self, node: &str, user: UserId, here: bool) {
        let mut state = lock(&self.local);
        let set = state.peers.entry(node.to_owned()).or_default();
        if here {
            set.insert(user);
        } else {
            set.remove(&user);
        }
    }

    /// A peer went silent, left or restarted: forget whom it reported, and return them.
    pub fn forget_node(&self, node: &str) -> Vec<UserId> {
        lock(&self.local)
            .peers
            .remove(node)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default()
    }
}
