//! Storage behind a small API, so handlers never build SQL. sea-orm over SQLite (embedded
//! default; WAL and a busy timeout so several `chorus` processes can share one file),
//! PostgreSQL or MySQL/MariaDB, chosen by the URL.

pub mod entity;

mod attachments;
mod communities;
mod contacts;
mod messages;
mod sessions;
mod users;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr, SqlErr};

use crate::config::DatabaseSettings;
use crate::ids::{CommunityId, UserId};

pub use attachments::NewAttachment;
pub use communities::NewCommunity;
pub use entity::attachment::Model as Attachment;
pub use entity::community::Model as Community;
pub use entity::user::Model as User;
pub use messages::{Appended, NewMessage, StoredMessage};
pub use users::{NewUser, UserChanges};

/// What a store call can fail with; everything but `Db` is the caller's to show the user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("name taken")]
    NameTaken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("already a contact")]
    AlreadyContact(UserId),
    #[error("not a contact")]
    NotAContact(UserId),
    #[error("already a member")]
    AlreadyMember(CommunityId),
    #[error("not a member")]
    NotAMember(CommunityId),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

impl StoreError {
    /// True when the database refused a row for breaking a unique index.
    fn is_unique_violation(err: &DbErr) -> bool {
        matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
    }

    /// True when the database gave up on a transaction to break a deadlock or a serialization
    /// conflict (SQLSTATE 40001, PostgreSQL's 40P01): running it again is the remedy.
    fn is_retryable(err: &DbErr) -> bool {
        let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
        else {
            return false;
        };
        e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "40001" || code == "40P01")
    }
}

/// The handle every layer shares; cheap to clone (a connection pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

/// Unix epoch milliseconds, the one time format in storage and on the wire.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Store {
    /// Opens the pool (creating the SQLite file's folder when needed) and runs the migrations.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.as_str();
        if let Some(path) = sqlite_path(url) {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let busy = settings.busy_timeout();
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(settings.max_connections)
            .min_connections(1)
            .acquire_timeout(busy + Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(busy)
                    .foreign_keys(true)
            });
        let db = connect(options).await?;
        migrate(&db).await?;
        let store = Self { db };
        store.rekey_names().await?;
        Ok(store)
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Closes the pool so an SQLite file is checkpointed and released.
    pub async fn close(self) {
        if let Err(err) = self.db.close().await {
            tracing::warn!(%err, "closing the database pool");
        }
    }

    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// Opens the pool. Nodes starting together on a fresh SQLite file race to switch it to WAL,
/// which needs a moment of exclusive access; the loser sees SQLITE_BUSY and tries again.
async fn connect(options: ConnectOptions) -> Result<DatabaseConnection, StoreError> {
    const ATTEMPTS: u32 = 10;
    let mut attempt = 1;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(err) if attempt < ATTEMPTS && sqlite_busy(&err) => {
                tracing::info!(%err, attempt, "database busy at start-up; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Whether SQLite answered "database is locked" (SQLITE_BUSY, code 5).
fn sqlite_busy(err: &DbErr) -> bool {
    use sea_orm::{sqlx, RuntimeErr};
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Database(e)))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Database(e)))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::Database(e))) => {
            e.code().as_deref() == Some("5")
        }
        _ => false,
    }
}

/// Runs pending migrations. Nodes of a cluster may start together on a fresh database and
/// race to apply the same step; every step is idempotent (`IF NOT EXISTS`), so the loser's
/// error (its bookkeeping row already written by the winner) is retried after a pause, when it
/// finds the step applied.
async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 10;
    let mut attempt = 1;
    loop {
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < ATTEMPTS => {
                tracing::info!(%err, attempt, "migration raced another node; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The file path of an SQLite URL, if it is one (`sqlite://data/x.db?mode=rwc` → `data/x.db`).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// A `LIKE` pattern for "contains `needle`", with the wildcards in `needle` taken literally.
/// `!` is the escape character: it needs no quoting in any of the three SQL dialects.
fn contains_pattern(needle: &str) -> sea_orm::sea_query::LikeExpr {
    let mut escaped = String::with_capacity(needle.len() + 2);
    escaped.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '!') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped.push('%');
    sea_orm::sea_query::LikeExpr::new(escaped).escape('!')
}

/// Fresh stores for the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A new SQLite store in `dir` with one user per name, in order.
    pub async fn sqlite_with_users(dir: &Path, names: &[&str]) -> (Store, Vec<UserId>) {
        let store = Store::open(&DatabaseSettings {
            url: format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            max_connections: 2,
            busy_timeout_ms: 1000,
            timeout_ms: 1000,
        })
        .await
        .expect("open a fresh SQLite store");
        let mut users = Vec::new();
        for name in names {
            let user = store
                .create_user(NewUser {
                    name: (*name).into(),
                    password_hash: "x".into(),
                    email: None,
                    phone: None,
                })
                .await
                .expect("create a user");
            users.push(UserId(user.id));
        }
        (store, users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh file held under an exclusive lock by someone else (another node switching it
    /// to WAL) delays the start; it does not fail it.
    #[tokio::test]
    async fn open_waits_out_a_locked_sqlite_file() {
        use sea_orm::sqlx::{ConnectOptions as _, Connection as _, Executor as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut holder = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        holder.execute("BEGIN EXCLUSIVE").await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            holder.execute("COMMIT").await.unwrap();
            holder.close().await.unwrap();
        });
        let settings = DatabaseSettings {
            url,
            max_connections: 2,
            busy_timeout_ms: 50,
            timeout_ms: 1000,
        };
        let store = Store::open(&settings)
            .await
            .expect("open after the lock is released");
        assert!(store.ping().await);
        release.await.unwrap();
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/chorus.db?mode=rwc"),
            Some("data/chorus.db")
        );
        assert_eq!(sqlite_path("sqlite:///tmp/a.db"), Some("/tmp/a.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
