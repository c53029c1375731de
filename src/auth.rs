//! Credentials: Argon2id password hashes and opaque session tokens.
//!
//! A token is 32 random bytes shown to the client once, as hex; the database keeps only its
//! SHA-256, so a leaked database does not leak live sessions. Password work runs on the blocking
//! pool: Argon2 is deliberately slow and must not stall the async workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A turn at password hashing: Argon2 holds megabytes per hash, so only a fixed number run at
/// once and a bounded number wait; past that, callers are told to come back (503).
pub struct HashGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// Every hashing slot is taken and the queue is full.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is busy")]
pub struct Busy;

/// Holds a place in the [`HashGate`] queue; gives it back however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    /// `concurrency` hashes at once, `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A hashing slot, after waiting in the queue if there is room in it.
    pub async fn enter(&self) -> Result<Turn, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Turn(permit));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _place = Waiting(&self.waiting);
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map(Turn)
            .map_err(|_| Busy)
    }
}

/// A hashing slot, held by the blocking task until the hash is done (even if the request that
/// asked for it has gone away).
pub struct Turn(#[allow(dead_code)] OwnedSemaphorePermit);

/// A password could not be hashed (only on a broken RNG or parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password into a PHC string (Argon2id, default parameters, random salt). Only a
/// [`Password`] that passed the rules is ever stored.
pub async fn hash_password(turn: Turn, password: Password) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Checks a password against a stored PHC string. `None` (no such user) still spends the same
/// work on a dummy hash, so the answer time does not tell whether a name exists.
pub async fn verify_password(turn: Turn, password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .unwrap_or(false)
}

/// A fixed hash to verify against when the user does not exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no such user", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Why a password is refused before it is hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("password must have something besides spaces and control characters")]
    Blank,
    #[error("password is one of the most common passwords; choose another")]
    Common,
}

/// Password length bounds, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {}-{} characters", PASSWORD_CHARS.start(), PASSWORD_CHARS.end())]
    Length,
    #[error(transparent)]
    Weak(#[from] WeakPassword),
}

/// A new password that passed the rules (length, not blank, not common), ready to hash. Its
/// `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The password, or why it is refused.
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        if !PASSWORD_CHARS.contains(&raw.chars().count()) {
            return Err(PasswordError::Length);
        }
        check_password_strength(&raw)?;
        Ok(Self(raw))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// The most common passwords, shipped in the binary.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Refuses a password that is only whitespace and control characters (eight spaces, eight
/// NULs) or one of the most common passwords. Length is checked by the caller.
pub fn check_password_strength(password: &str) -> Result<(), WeakPassword> {
    if password
        .chars()
        .all(|c| c.is_whitespace() || c.is_control())
    {
        return Err(WeakPassword::Blank);
    }
    let lower = password.to_lowercase();
    let common = COMMON_PASSWORDS
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == lower);
    if common {
        return Err(WeakPassword::Common);
    }
    Ok(())
}

/// A fresh session token: what the client gets, and the hash the database keeps.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_round_trip_and_hashes_are_salted() {
        let gate = HashGate::new(1, 1);
        let a = hash_password(
            gate.enter().await.unwrap(),
            Password("correct horse".into()),
        )
        .await
        .unwrap();
        let b = hash_password(
            gate.enter().await.unwrap(),
            Password("correct horse".into()),
        )
        .await
        .unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "same password, same hash: no salt");
        let turn = || async { gate.enter().await.unwrap() };
        assert!(verify_password(turn().await, "correct horse".into(), Some(a.clone())).await);
        assert!(!verify_password(turn().await, "wrong horse".into(), Some(a)).await);
        assert!(!verify_password(turn().await, "correct horse".into(), None).await);
    }

    #[tokio::test]
    async fn the_gate_refuses_past_its_queue() {
        let gate = HashGate::new(1, 0);
        let held = gate.enter().await.unwrap();
        assert!(gate.enter().await.is_err(), "no slot and no queue: busy");
        drop(held);
        assert!(gate.enter().await.is_ok());
    }

    #[test]
    fn blank_and_common_passwords_are_weak() {
        assert_eq!(
            check_password_strength("        "),
            Err(WeakPassword::Blank)
        );
        assert_eq!(
            check_password_strength("\0\0\0\0\0\0\0\0"),
            Err(WeakPassword::Blank)
        );
        assert_eq!(
            check_password_strength("Password1"),
            Err(WeakPassword::Common)
        );
        assert_eq!(check_password_strength("correct horse battery"), Ok(()));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_eq!(t1.len(), 64);
        assert_ne!(t1, t2);
        assert_ne!(t1, h1);
        assert_eq!(token_hash(&t1), h1);
    }
}
