//! Test harness shared by the integration tests: it runs the real `chorus` binary against a
//! throw-away database and talks to it over HTTP on 127.0.0.1 only.
//!
//! Loaded by each test binary's `main.rs` (`tests/{rest,chat,cluster,client}/`) with
//! `#[macro_use] #[path = "../common/mod.rs"] mod common;`: the websocket client (`ws`), the
//! cluster harness (`cluster`) and network namespaces (`netns`) are its submodules.

pub mod cluster;
pub mod netns;
pub mod ws;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts a server or returns from the test when the backend is skipped (never under `CI`).
#[allow(unused_macros)]
macro_rules! start {
    ($backend:expr) => {
        start!($backend, &[])
    };
    ($backend:expr, $env:expr) => {
        match Server::start_with($backend, $env).await {
            Some(s) => s,
            None => return,
        }
    };
}

/// One `#[tokio::test]` per (backend, test fn).
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($t:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $t() { super::$t(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $t() { super::$t(super::Backend::Postgres).await } )*
        }
        mod mysql {
            $( #[tokio::test] async fn $t() { super::$t(super::Backend::MySql).await } )*
        }
    };
}

/// How long the binary may take to print its `listening on` line (migrations included).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound for any single HTTP exchange, so a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The database a test server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    /// The env var holding an admin URL for server backends (`None` for SQLite).
    fn admin_env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("CHORUS_TEST_POSTGRES_URL"),
            Backend::MySql => Some("CHORUS_TEST_MYSQL_URL"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL",
        }
    }
}

/// A fresh database for one test; dropped (for PostgreSQL/MySQL) when the last user lets go.
///
/// Wrapped in an `Arc` so several servers can share it (the multi-process tests).
pub struct TestDb {
    pub backend: Backend,
    /// The URL handed to the server as `CHORUS__DATABASE__URL`.
    pub url: String,
    /// For SQLite created on its own: keeps the directory holding the file alive.
    _dir: Option<TempDir>,
    /// For PostgreSQL/MySQL: how to drop the database again.
    drop_with: Option<(String, String)>,
    /// For PostgreSQL/MySQL: the database's name on the server.
    pub name: Option<String>,
}

impl TestDb {
    /// A database in a directory of its own, for servers that share it.
    ///
    /// `None` means the backend is not configured here and the test should be skipped
    /// (under `CI` that is a panic instead, so a missing service cannot pass silently).
    pub async fn create(backend: Backend) -> Option<Arc<TestDb>> {
        if backend == Backend::Sqlite {
            let dir = tempfile::Builder::new()
                .prefix("chorus-db-")
                .tempdir()
                .expect("temp dir");
            let mut db = Self::sqlite_in(dir.path());
            db._dir = Some(dir);
            return Some(Arc::new(db));
        }
        Self::create_server_db(backend).await.map(Arc::new)
    }

    /// A SQLite database at `<dir>/data/chorus.db` (the layout of a real install).
    fn sqlite_in(dir: &Path) -> TestDb {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        let file = data.join("chorus.db");
        TestDb {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}?mode=rwc", file.display()),
            _dir: None,
            drop_with: None,
            name: None,
        }
    }

    /// Creates `chorus_t_<uuid>` on the PostgreSQL/MySQL server named by the admin env var.
    async fn create_server_db(backend: Backend) -> Option<TestDb> {
        let var = backend.admin_env().expect("server backend");
        let admin = match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "CI is set but {var} is not: the {} tests must run in CI \
                         (scripts/test.sh exports it when the service is up)",
                        backend.label()
                    );
                }
                eprintln!(
                    "\n######## SKIPPED (no {}): set {var} ########\n",
                    backend.label()
                );
                return None;
            }
        };
        Some(Self::create_server_db_at(backend, var, admin).await)
    }

    /// A fresh PostgreSQL database on the server at `admin` (an admin URL), for tests that
    /// run a PostgreSQL of their own (in a network namespace, say).
    pub async fn postgres_at(admin: &str) -> Arc<TestDb> {
        Arc::new(Self::create_server_db_at(Backend::Postgres, "admin URL", admin.to_string()).await)
    }

    /// Creates `chorus_t_<uuid>` on the server at `admin` (`var` names where it came from).
    async fn create_server_db_at(backend: Backend, var: &str, admin: String) -> TestDb {
        let name = format!("chorus_t_{}", uuid::Uuid::new_v4().simple());
        let (create, drop) = match backend {
            Backend::Postgres => (
                format!("CREATE DATABASE \"{name}\""),
                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ),
            Backend::MySql => (
                format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                ),
                format!("DROP DATABASE IF EXISTS `{name}`"),
            ),
            Backend::Sqlite => unreachable!(),
        };
        admin_exec(&admin, &create)
            .await
            .unwrap_or_else(|e| panic!("{}: {create}: {e}", backend.label()));
        let mut url = Url::parse(&admin).unwrap_or_else(|e| panic!("{var} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        TestDb {
            backend,
            url: url.to_string(),
            _dir: None,
            drop_with: Some((admin, drop)),
            name: Some(name),
        }
    }
}

impl TestDb {
    /// Runs `sql` on the admin connection (PostgreSQL/MySQL only), to break things on purpose.
    pub async fn admin(&self, sql: &str) {
        let (admin, _) = self.drop_with.as_ref().expect("not a server backend");
        admin_exec(admin, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, sql)) = self.drop_with.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a fresh thread with
        // its own runtime can, and joining it means the database is gone when the test ends.
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            if let Err(e) = rt.block_on(admin_exec(&admin, &sql)) {
                eprintln!("warning: {sql}: {e}");
            }
        })
        .join();
        if joined.is_err() {
            eprintln!("warning: dropping the test database panicked");
        }
    }
}

/// Runs one statement on the admin connection.
async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(admin_url).await?;
    let res = db.execute_unprepared(sql).await.map(|_| ());
    let _ = db.close().await;
    res
}

/// A running `chorus` process with its own working directory, uploads dir and stderr log.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`, for raw-socket requests.
    pub addr: String,
    /// The line endpoint's `127.0.0.1:PORT`, when `CHORUS__LINE__ADDR` turned it on (the
    /// `line on` line printed before `listening on`).
    pub line_addr: Option<String>,
    /// The process's cwd; holds `uploads/`, `stderr.log` and (SQLite) `data/chorus.db`.
    pub dir: TempDir,
    pub db: Arc<TestDb>,
    http: reqwest::Client,
}

impl Server {
    /// A server on a fresh database of `backend`; `None` when the backend is skipped.
    pub async fn start(backend: Backend) -> Option<Server> {
        Self::start_with(backend, &[]).await
    }

    /// Like [`Server::start`], with extra `CHORUS__...` variables (e.g. a short token TTL).
    pub async fn start_with(backend: Backend, extra_env: &[(&str, &str)]) -> Option<Server> {
        let dir = server_dir();
        let db = if backend == Backend::Sqlite {
            // In the server's own cwd, so `uploads/../data/chorus.db` names a real file.
            Arc::new(TestDb::sqlite_in(dir.path()))
        } else {
            TestDb::create(backend).await?
        };
        Some(Self::spawn(dir, db, extra_env).await)
    }

    /// A server on an existing database, so several processes can share it.
    pub async fn start_on(db: Arc<TestDb>, extra_env: &[(&str, &str)]) -> Server {
        Self::spawn(server_dir(), db, extra_env).await
    }

    async fn spawn(dir: TempDir, db: Arc<TestDb>, extra_env: &[(&str, &str)]) -> Server {
        let uploads = dir.path().join("uploads");
        std::fs::create_dir_all(&uploads).expect("create uploads dir");
        // A decoy next to uploads/, so path-traversal tests have a real target to miss.
        std::fs::write(dir.path().join("Cargo.toml"), DECOY).expect("write decoy");
        let log_path = dir.path().join("stderr.log");
        let log = std::fs::File::create(&log_path).expect("create stderr log");

        let mut cmd = Command::new(server_bin());
        cmd.current_dir(dir.path())
            .env("CHORUS__SERVER__ADDR", "127.0.0.1:0")
            .env("CHORUS__DATABASE__URL", &db.url)
            .env("CHORUS__UPLOADS__DIR", &uploads)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn chorus");

        // A thread reads stdout for ever (so the child never blocks on a full pipe) and hands
        // over the first `listening on` line, with the `line on` line printed before it.
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = tokio::sync::oneshot::channel::<(String, Option<String>)>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut tx = Some(tx);
            let mut line = String::new();
            let mut line_addr = None;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if let Some(addr) = line.strip_prefix("line on ") {
                            line_addr = Some(addr.trim_end().to_string());
                        }
                        if line.starts_with("listening on ") {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send((line.trim_end().to_string(), line_addr.take()));
                            }
                        }
                    }
                }
            }
        });

        let (line, line_addr) = match tokio::time::timeout(START_DEADLINE, rx).await {
            Ok(Ok(got)) => got,
            Ok(Err(_)) => {
                let status = child.wait().ok();
                panic!(
                    "chorus exited ({status:?}) before printing `listening on`; stderr:\n{}",
                    read_log(&log_path)
                );
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chorus printed no `listening on` line within {START_DEADLINE:?}; stderr:\n{}",
                    read_log(&log_path)
                );
            }
        };
        let addr = line["listening on ".len()..].to_string();
        assert!(
            addr.starts_with("127.0.0.1:") && addr[10..].parse::<u16>().is_ok_and(|p| p != 0),
            "unexpected ready line {line:?}"
        );
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .expect("http client");
        Server {
            child,
            base: format!("http://{addr}"),
            addr,
            line_addr,
            dir,
            db,
            http,
        }
    }

    /// Everything the server logged so far.
    pub fn stderr(&self) -> String {
        read_log(&self.dir.path().join("stderr.log"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await, &method, path).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// A POST without a body (join a community).
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::POST, path, token, None).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }

    /// A request with a raw body and content type (malformed JSON and the like).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Resp::from(req.send().await, &method, path).await
    }

    /// A request with a custom `Authorization` header (garbage schemes).
    pub async fn get_with_auth(&self, path: &str, authorization: &str) -> Resp {
        let req = self
            .http
            .get(self.url(path))
            .header(reqwest::header::AUTHORIZATION, authorization);
        Resp::from(req.send().await, &Method::GET, path).await
    }

    /// Uploads `bytes` as multipart field `file`.
    pub async fn upload(
        &self,
        token: Option<&str>,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Resp {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime)
            .expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut req = self.http.post(self.url("/api/attachments")).multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Resp::from(req.send().await, &Method::POST, "/api/attachments").await
    }

    /// `GET path` written byte for byte on a plain socket: HTTP clients normalise `..` and
    /// `%2e%2e` away, and the traversal tests need them to reach the server untouched.
    pub async fn raw_get(&self, path: &str) -> RawResp {
        let io = async {
            let mut s = tokio::net::TcpStream::connect(&self.addr).await?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr
            );
            s.write_all(req.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(REQUEST_TIMEOUT, io)
            .await
            .unwrap_or_else(|_| panic!("raw GET {path}: timed out"))
            .unwrap_or_else(|e| panic!("raw GET {path}: {e}"));
        RawResp::parse(&format!("raw GET {path}"), buf)
    }

    /// A multipart upload written on a plain socket while the answer is read concurrently.
    ///
    /// A server may answer 413 and close before the body is all sent; HTTP clients then report
    /// the failed write instead of the response, so this reads whatever the server said.
    pub async fn raw_upload(
        &self,
        token: &str,
        file_name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> RawResp {
        let boundary = format!("chorus-test-{}", uuid::Uuid::new_v4().simple());
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{file_name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let head = format!(
            "POST /api/attachments HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        let io = async {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            let (mut rd, mut wr) = stream.into_split();
            // Borrowed, not moved: dropping the write half would half-close the socket, and
            // the server may treat that as the client going away.
            let write = async {
                // A write error is expected when the server stops reading early.
                let _ = wr.write_all(head.as_bytes()).await;
                let _ = wr.write_all(&body).await;
            };
            let mut buf = Vec::new();
            let read = async {
                // A reset after the answer arrived still leaves the answer in `buf`.
                let _ = rd.read_to_end(&mut buf).await;
            };
            tokio::join!(write, read);
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(REQUEST_TIMEOUT, io)
            .await
            .unwrap_or_else(|_| panic!("raw upload: timed out"))
            .unwrap_or_else(|e| panic!("raw upload: {e}"));
        RawResp::parse(
            &format!("raw POST /api/attachments ({} bytes)", bytes.len()),
            buf,
        )
    }

    /// Registers `name` with `password`; asserts 201 and returns the user JSON.
    pub async fn register(&self, name: &str, password: &str) -> Value {
        let r = self
            .post(
                "/api/users",
                None,
                json!({"name": name, "password": password}),
            )
            .await;
        r.expect(201);
        r.json()
    }

    /// Logs in; asserts 201 and returns the token.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let r = self
            .post(
                "/api/sessions",
                None,
                json!({"name": name, "password": password}),
            )
            .await;
        r.expect(201);
        r.json()["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login: no token in {}", r.text()))
            .to_string()
    }

    /// Registers and logs in a user called `name` (password [`PASSWORD`]).
    pub async fn user(&self, name: &str) -> TestUser {
        let user = self.register(name, PASSWORD).await;
        let id = user["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("register: no numeric id in {user}"));
        let token = self.login(name, PASSWORD).await;
        TestUser {
            id,
            name: name.to_string(),
            token,
        }
    }
}

impl Server {
    /// Sends SIGTERM and waits (up to 30 s) for the process to exit; returns its status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to {pid} failed");
        wait_for(
            Duration::from_secs(30),
            "chorus to exit after SIGTERM",
            || {
                let status = self.child.try_wait().expect("try_wait");
                async move { status }
            },
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- chorus stderr ({}) ----\n{}\n---- end of chorus stderr ----",
                self.base,
                self.stderr()
            );
        }
    }
}

/// The `chorus` binary the harness runs: this build's, or `CHORUS_TEST_BIN` (another build,
/// say an older commit's, to show that a test fails there).
pub fn server_bin() -> PathBuf {
    match std::env::var_os("CHORUS_TEST_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_chorus")),
    }
}

/// The password every [`Server::user`] gets.
pub const PASSWORD: &str = "correct horse battery";

/// Contents of the decoy file that path traversal must never reveal.
pub const DECOY: &str = "[package]\nname = \"decoy-secret-7f3a\"\n";

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub name: String,
    pub token: String,
}

impl TestUser {
    pub fn t(&self) -> Option<&str> {
        Some(&self.token)
    }
}

/// A finished HTTP exchange, with what was asked kept for failure messages.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    what: String,
}

impl Resp {
    async fn from(res: reqwest::Result<reqwest::Response>, method: &Method, path: &str) -> Resp {
        let what = format!("{method} {path}");
        let res = res.unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading body failed: {e}"))
            .to_vec();
        Resp {
            status,
            headers,
            bytes,
            what,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).to_string()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: expected {status}, got {} with body {}",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    /// Asserts that the answer is one of several acceptable `(status, code)` errors, for the
    /// few cases where docs/api.md allows more than one reading.
    pub fn expect_error_in(&self, allowed: &[(u16, &str)]) -> &Self {
        let status = self.status.as_u16();
        let body: Value = serde_json::from_slice(&self.bytes).unwrap_or(Value::Null);
        assert!(
            allowed
                .iter()
                .any(|(s, c)| *s == status && body["error"]["code"] == *c),
            "{}: expected one of {allowed:?}, got {} with body {}",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    /// Asserts the status and `{"error":{"code":code,"message":<string>}}`.
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        let body = self.json();
        assert_eq!(
            body["error"]["code"], code,
            "{}: expected error code {code:?} in {body}",
            self.what
        );
        assert!(
            body["error"]["message"].is_string(),
            "{}: error without a message: {body}",
            self.what
        );
        self
    }
}

/// A response read off a raw socket.
pub struct RawResp {
    pub status: u16,
    pub head: String,
    /// The body as sent (still chunk-encoded if it was).
    pub body: Vec<u8>,
    what: String,
}

impl RawResp {
    fn parse(what: &str, buf: Vec<u8>) -> RawResp {
        let head_end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no complete response head in {:?}",
                    String::from_utf8_lossy(&buf)
                )
            });
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: bad status line in {head:?}"));
        RawResp {
            status,
            head,
            body: buf[head_end + 4..].to_vec(),
            what: what.to_string(),
        }
    }

    /// The body with any chunked transfer encoding removed.
    pub fn decoded_body(&self) -> Vec<u8> {
        if !self
            .head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return self.body.clone();
        }
        let (mut out, mut rest) = (Vec::new(), &self.body[..]);
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_field = String::from_utf8_lossy(&rest[..eol]).to_string();
            let size_hex = size_field.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_hex, 16) else {
                break;
            };
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[(eol + 4 + size).min(rest.len())..];
        }
        out
    }

    /// Asserts the status and the error code of a JSON error body.
    pub fn expect_error(&self, status: u16, code: &str) {
        let body = self.decoded_body();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            self.status, status,
            "{}: expected {status}, got:\n{}\n{text}",
            self.what, self.head
        );
        let json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {text}", self.what));
        assert_eq!(json["error"]["code"], code, "{}: {json}", self.what);
    }
}

/// Polls `check` until it yields a value or `deadline` passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {deadline:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that no object anywhere in `v` has a key that smells of a secret.
pub fn assert_no_secrets(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let k = k.to_ascii_lowercase();
                assert!(
                    !["password", "hash", "salt", "token"]
                        .iter()
                        .any(|bad| k.contains(bad)),
                    "secret-looking key {k:?} in {v}"
                );
                assert_no_secrets(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_secrets),
        _ => {}
    }
}

/// A temp dir to be one server's cwd.
fn server_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("chorus-test-")
        .tempdir()
        .expect("temp dir")
}

fn read_log(path: &PathBuf) -> String {
    let mut s = String::new();
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let _ = f.read_to_string(&mut s);
            s
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Current Unix time in milliseconds, to compare with the API's timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
