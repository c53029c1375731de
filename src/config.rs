//! Settings, layered with the `config` crate: built-in defaults < `config/default.toml` <
//! `config/{CHORUS_ENV}.toml` (or the file given with `--config`) < `CHORUS__SECTION__KEY`
//! environment variables. The env names are part of the contract that scripts and tests use.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A setting that must not show up in logs: its `Debug` says only whether it is set. The
/// value is read with [`Secret::expose`], where it is used.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is unset.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[empty]"
        } else {
            "[redacted]"
        })
    }
}

/// A URL whose password (`scheme://user:password@host`) is hidden by `Debug`.
fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[redacted]@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub uploads: UploadSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub chat: ChatSettings,
    pub cluster: ClusterSettings,
    pub metrics: MetricsSettings,
    pub line: LineSettings,
}

/// The plain TCP line endpoint ([`crate::line`]): off while `addr` is empty. Its connections are
/// held to `chat`'s limits too (rate, queue, heartbeat timeout, sockets per user).
#[derive(Debug, Clone, Deserialize)]
pub struct LineSettings {
    /// Where to listen, `ip:port`; empty = no line endpoint.
    pub addr: String,
    /// Longest command line, in bytes (the newline not counted); a longer one is refused and
    /// the connection closed.
    pub max_line_bytes: usize,
    /// Line connections open at once (logged in or not); past it, accepting waits.
    pub max_connections: usize,
}

/// Who may read `/metrics`: an empty `token` leaves it open; a `token` asks for
/// `Authorization: Bearer <token>`; an `addr` serves it there (e.g. a loopback or management
/// address) and no longer on the public listener.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub addr: String,
    pub token: Secret,
}

/// Where to listen and how long to drain on shutdown.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub addr: SocketAddr,
    pub shutdown_grace_secs: u64,
    /// Client connections open at once (also kept below the open-file limit).
    pub max_connections: usize,
    /// Time for a new connection's request headers to arrive.
    pub header_timeout_secs: u64,
    /// A connection with no progress either way for this long is closed.
    pub idle_timeout_secs: u64,
    /// A write that makes no progress for this long fails and closes the connection.
    pub write_timeout_secs: u64,
}

impl ServerSettings {
    /// How long each step of a graceful stop may take.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Time for a new connection's request headers (at least a second).
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    /// No progress either way for this long closes a connection (at least a second).
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    /// A write without progress for this long fails (at least a second).
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs.max(1))
    }
}

/// The shared database; every node of a cluster points at the same one.
#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    /// How long an SQLite writer waits for another process's lock before failing.
    pub busy_timeout_ms: u64,
    /// Longest wait for one step of the message writer (resolve, store); past it the batch's
    /// senders get `unavailable` and may send again with the same id.
    pub timeout_ms: u64,
}

impl DatabaseSettings {
    /// Whether the URL names an SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// [`Self::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// How long an SQLite writer waits for another process's lock.
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redacted_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Optional Redis; empty means presence lives in memory.
#[derive(Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redacted_url(&self.url))
            .finish()
    }
}

/// Upload folder and cap.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Bytes one user may have uploaded in all (their files are removed with their account).
    pub quota_bytes: u64,
}

/// Session tokens, password hashing and the log-in throttle.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub token_ttl_secs: u64,
    /// Password hashes computed at once; each slot keeps Argon2's 19 MiB of working memory
    /// once used, so this also bounds what log-ins leave behind ...
    pub hash_concurrency: usize,
    /// ... and how many may wait for a turn before log-ins get 503.
    pub hash_queue: usize,
    /// Failed log-ins an account may take in a burst ...
    pub account_failures: u32,
    /// ... an address may make in a burst ...
    pub address_failures: u32,
    /// ... and the seconds after which one more failure is allowed for each.
    pub failure_refill_secs: u64,
}

impl AuthSettings {
    /// How long a kept session lives.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// After how long one more failed log-in is allowed (at least a second).
    pub fn failure_refill(&self) -> Duration {
        Duration::from_secs(self.failure_refill_secs.max(1))
    }
}

/// Admin routes; an empty token turns them off.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    pub token: Secret,
}

/// Websocket limits and timings.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatSettings {
    /// A connection silent this long is closed (and its Redis presence entry lives this long).
    pub heartbeat_timeout_secs: u64,
    /// Outgoing frames a Node may have waiting before it is judged too slow and closed.
    pub queue_len: usize,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    /// Longest message `content`, in bytes.
    pub max_content_bytes: usize,
    /// Frames a connection may send per second on average (0 = no limit) ...
    pub rate_per_sec: u32,
    /// ... and in one burst.
    pub rate_burst: u32,
    /// Websockets one user may have open on one node (0 = no limit); more are closed with 4429.
    pub max_sockets_per_user: usize,
    /// Sends waiting for each writer; when full, a sender waits (at most `database.timeout_ms`).
    pub writer_queue: usize,
    /// Message writers, each owning a share of the conversations (0: one on SQLite, which has
    /// one write lock per file; two on PostgreSQL and MySQL, where they overlap round trips).
    pub writers: usize,
}

impl ChatSettings {
    /// A connection silent this long is closed (at least a second).
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_secs.max(1))
    }
}

/// Which cluster transport carries events between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Redis,
}

/// Cluster membership.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    pub enabled: bool,
    pub transport: Transport,
    pub broadcast: SocketAddr,
    pub port: u16,
    pub secret: Secret,
    pub name: String,
    /// Empty means a random id at start.
    pub node_id: String,
    /// How often a node says it is alive (and how far its packets go).
    pub heartbeat_ms: u64,
    /// A peer silent this long is considered gone.
    pub peer_timeout_ms: u64,
    /// Packets stamped further than this from our clock are stale (replay window).
    pub max_skew_ms: i64,
    /// Events waiting for the cluster sender; one that finds it full becomes a numbered gap
    /// that peers repair from storage (never a silent loss).
    pub outbox: usize,
}

impl ClusterSettings {
    /// How often a node says it is alive (at least every 50 ms).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(50))
    }

    /// A peer silent this long is considered gone.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }
}

/// Built-in defaults: one node, SQLite under `data/`, presence in memory, no cluster.
const DEFAULTS: &str = r#"
[server]
addr = "127.0.0.1:8080"
shutdown_grace_secs = 10
max_connections = 4096
header_timeout_secs = 15
idle_timeout_secs = 90
write_timeout_secs = 30

[database]
url = "sqlite://data/chorus.db?mode=rwc"
max_connections = 16
busy_timeout_ms = 30000
timeout_ms = 10000

[redis]
url = ""

[uploads]
dir = "uploads"
max_bytes = 10485760
quota_bytes = 1073741824

[auth]
token_ttl_secs = 2592000
hash_concurrency = 2
hash_queue = 256
account_failures = 10
address_failures = 30
failure_refill_secs = 6

[admin]
token = ""

[chat]
heartbeat_timeout_secs = 60
queue_len = 1024
max_frame_bytes = 65536
max_message_bytes = 65536
max_content_bytes = 8192
rate_per_sec = 200
rate_burst = 2000
max_sockets_per_user = 32
writer_queue = 4096
writers = 0

[metrics]
addr = ""
token = ""

[line]
addr = ""
max_line_bytes = 16384
max_connections = 1024

[cluster]
enabled = false
transport = "udp"
broadcast = "127.255.255.255:7946"
port = 7946
secret = ""
name = "chorus"
node_id = ""
heartbeat_ms = 1000
peer_timeout_ms = 5000
max_skew_ms = 60000
outbox = 16384
"#;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

impl Settings {
    /// Loads the layers; `file` replaces `config/{CHORUS_ENV}.toml` when given.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env_name = std::env::var("CHORUS_ENV").unwrap_or_else(|_| "development".into());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::with_name("config/default").required(false));
        builder = match file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder
                .add_source(config::File::with_name(&format!("config/{env_name}")).required(false)),
        };
        let settings = builder
            .add_source(
                config::Environment::with_prefix("CHORUS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let secret = Secret::from("q3J5X0m8Zt7bV1kYcW2rN9uD4hL6sPaE0fGiTjOxRyQ=");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Secret::default()), "[empty]");
        let db = DatabaseSettings {
            url: "postgres://chorus:hunter2@db.example:5432/chorus".into(),
            max_connections: 1,
            busy_timeout_ms: 1,
            timeout_ms: 1,
        };
        let shown = format!("{db:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://chorus:[redacted]@db.example:5432/chorus"));
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redacted_url("sqlite://data/chorus.db?mode=rwc"),
            "sqlite://data/chorus.db?mode=rwc"
        );
    }
}
