//! Credentials: Argon2id password hashes and opaque session tokens.
//!
//! A token is 32 random bytes shown to the client once, as hex; the database keeps only its
//! SHA-256, so a leaked database does not leak live sessions. Password work runs on the blocking
//! pool: Argon2 is deliberately slow and must not stall the async workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::lock::lock;

/// Argon2's working memory for one hash (19 MiB at the default parameters).
type Memory = Vec<Block>;

/// The most working memory a stored hash may ask for, in blocks of 1 KiB: four times the
/// default. Every hash Chorus writes uses the default; a bigger one in the database was not
/// written by us, and must not make a log-in allocate gigabytes.
const MAX_BLOCKS: usize = 4 * Params::DEFAULT_M_COST as usize;

/// A turn at password hashing: Argon2 holds megabytes per hash, so only a fixed number run at
/// once and a bounded number wait; past that, callers are told to come back (503).
///
/// The gate also keeps each slot's working memory between hashes. Left to Argon2, every hash
/// allocated and freed its 19 MiB, and the allocator kept what was freed in per-thread arenas:
/// a node held 740-870 MiB after 40-140 log-ins. Kept here, a node holds at most `concurrency`
/// of them, however many log-ins it serves.
pub struct HashGate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    memory: Arc<Mutex<Vec<Memory>>>,
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
            memory: Arc::default(),
        }
    }

    /// A hashing slot, after waiting in the queue if there is room in it.
    pub async fn enter(&self) -> Result<Turn, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(self.turn(permit));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _place = Waiting(&self.waiting);
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| Busy)?;
        Ok(self.turn(permit))
    }

    fn turn(&self, permit: OwnedSemaphorePermit) -> Turn {
        Turn {
            memory: lock(&self.memory).pop().unwrap_or_default(),
            pool: self.memory.clone(),
            _permit: permit,
        }
    }
}

/// A hashing slot and its working memory, held by the blocking task until the hash is done
/// (even if the request that asked for it has gone away).
pub struct Turn {
    memory: Memory,
    pool: Arc<Mutex<Vec<Memory>>>,
    // Dropped after `drop` below has put the memory back, so the next turn finds it.
    _permit: OwnedSemaphorePermit,
}

impl Turn {
    /// `count` blocks of working memory, grown the first time this slot needs them.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.memory.len() < count {
            self.memory.resize(count, Block::default());
        }
        &mut self.memory[..count]
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        lock(&self.pool).push(std::mem::take(&mut self.memory));
    }
}

/// A password could not be hashed (only on a broken RNG or parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl From<argon2::password_hash::Error> for HashError {
    fn from(e: argon2::password_hash::Error) -> Self {
        Self(e.to_string())
    }
}

/// Hashes a password into a PHC string (Argon2id, default parameters, random salt). Only a
/// [`Password`] that passed the rules is ever stored.
pub async fn hash_password(mut turn: Turn, password: Password) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_in(&mut turn, password.0.as_bytes()))
        .await
        .map_err(|e| HashError(e.to_string()))?
}

/// What `PasswordHasher::hash_password` does, in the turn's memory.
fn hash_in(turn: &mut Turn, password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hash = Output::init_with(len, |out| {
        let memory = turn.blocks(params.block_count());
        Ok(argon.hash_password_into_with_memory(password, raw_salt, out, memory)?)
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored PHC string. `None` (no such user) still spends the same
/// work on a dummy hash, so the answer time does not tell whether a name exists.
pub async fn verify_password(mut turn: Turn, password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.as_deref().unwrap_or_else(|| dummy_hash());
        match verify_in(&mut turn, password.as_bytes(), phc) {
            Ok(matches) => known && matches,
            Err(err) => {
                tracing::warn!(%err, "a stored password hash cannot be checked");
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// What `PasswordVerifier::verify_password` does, in the turn's memory: the stored string's
/// algorithm, version, parameters and salt, and a constant-time comparison of the outputs.
fn verify_in(turn: &mut Turn, password: &[u8], phc: &str) -> Result<bool, HashError> {
    use argon2::password_hash::Error;
    let parsed = PasswordHash::new(phc)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(Error::PhcStringField.into());
    };
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(argon2::password_hash::Error::from)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed)?;
    if params.block_count() > MAX_BLOCKS {
        return Err(HashError(format!(
            "m={} KiB is past the limit",
            params.m_cost()
        )));
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes)?;
    let computed = Output::init_with(expected.len(), |out| {
        let memory = turn.blocks(params.block_count());
        Ok(argon.hash_password_into_with_memory(password, raw_salt, out, memory)?)
    })?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// A fixed hash to verify against when the user does not exist (Argon2's own allocation, once).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::PasswordHasher;
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
    async fn hashes_agree_with_the_stock_argon2_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let gate = HashGate::new(1, 1);
        let ours = hash_password(gate.enter().await.unwrap(), Password("pass phrase".into()))
            .await
            .unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"pass phrase", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let stock = Argon2::default()
            .hash_password(b"pass phrase", &salt)
            .unwrap()
            .to_string();
        assert!(
            verify_password(
                gate.enter().await.unwrap(),
                "pass phrase".into(),
                Some(stock.clone())
            )
            .await
        );
        assert!(
            !verify_password(
                gate.enter().await.unwrap(),
                "pass phrasf".into(),
                Some(stock)
            )
            .await
        );
    }

    #[tokio::test]
    async fn the_gate_keeps_one_working_memory_per_slot() {
        let gate = Arc::new(HashGate::new(2, 64));
        let checks = (0..12).map(|i| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let turn = gate.enter().await.unwrap();
                verify_password(turn, format!("guess {i}"), None).await
            })
        });
        for check in checks {
            assert!(!check.await.unwrap());
        }
        let kept = lock(&gate.memory);
        assert!(kept.len() <= 2, "{} memories kept for 2 slots", kept.len());
        assert!(kept
            .iter()
            .all(|m| m.len() == Params::DEFAULT_M_COST as usize));
    }

    #[tokio::test]
    async fn a_stored_hash_asking_for_too_much_memory_is_refused() {
        let gate = HashGate::new(1, 1);
        let greedy = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$\
                      AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(
            !verify_password(gate.enter().await.unwrap(), "x".into(), Some(greedy.into())).await
        );
        assert!(lock(&gate.memory).iter().all(|m| m.is_empty()));
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
