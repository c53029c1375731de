//! The remembered session: one token per server in `<config dir>/chorus/session.json`, readable
//! by the user alone (directory 0700, file 0600), so a restart of the client skips the log-in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the session file lives.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

/// One remembered log-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub token: String,
    pub name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    servers: BTreeMap<String, Saved>,
}

impl SessionStore {
    /// A store in `dir` (created on first save).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The user's config dir: `$XDG_CONFIG_HOME/chorus`, else `~/.config/chorus`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
        Some(base.join("chorus"))
    }

    /// The session file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    fn read(&self) -> File {
        std::fs::read(self.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, f: &File) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
            let tmp = self.dir.join("session.json.tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // An older file may have been created with wider bits: narrow them either way.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(&serde_json::to_vec_pretty(f).unwrap_or_default())?;
            file.sync_all()?;
            std::fs::rename(tmp, self.path())
        }
        #[cfg(not(unix))]
        {
            std::fs::create_dir_all(&self.dir)?;
            let mut file = std::fs::File::create(self.path())?;
            file.write_all(&serde_json::to_vec_pretty(f).unwrap_or_default())
        }
    }

    /// The remembered session for `server`, if any.
    pub fn load(&self, server: &str) -> Option<Saved> {
        self.read().servers.get(server).cloned()
    }

    /// Remembers a session for `server`.
    pub fn save(&self, server: &str, saved: Saved) -> std::io::Result<()> {
        let mut f = self.read();
        f.servers.insert(server.to_owned(), saved);
        self.write(&f)
    }

    /// Forgets the session for `server`.
    pub fn forget(&self, server: &str) -> std::io::Result<()> {
        let mut f = self.read();
        if f.servers.remove(server).is_some() {
            self.write(&f)?;
        }
        Ok(())
    }
}
