//! Refusing weak cluster secrets at start: every packet key comes from `cluster.secret`, and a
//! short or guessable one can be brute-forced offline from a single captured packet.

use std::collections::HashMap;

/// Fewest characters a cluster secret may have.
pub const MIN_LEN: usize = 32;
/// Fewest bits the (deliberately pessimistic) estimate must give.
pub const MIN_BITS: f64 = 128.0;

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeakSecret {
    #[error(
        "cluster.secret is empty: a cluster refuses to start without one \
         (make one with `openssl rand -base64 32`)"
    )]
    Empty,
    #[error(
        "cluster.secret is too short ({0} characters, at least {MIN_LEN} needed): \
         make one with `openssl rand -base64 32`"
    )]
    Short(usize),
    #[error(
        "cluster.secret is too guessable (about {0:.0} bits of entropy estimated, at least \
         {MIN_BITS:.0} needed): make one with `openssl rand -base64 32`"
    )]
    Guessable(f64),
}

/// Refuses an empty, short or low-entropy secret.
pub fn check(secret: &str) -> Result<(), WeakSecret> {
    let len = secret.chars().count();
    if len == 0 {
        return Err(WeakSecret::Empty);
    }
    if len < MIN_LEN {
        return Err(WeakSecret::Short(len));
    }
    let bits = estimate_bits(secret);
    if bits < MIN_BITS {
        return Err(WeakSecret::Guessable(bits));
    }
    Ok(())
}

/// A rough entropy estimate: the Shannon entropy of the secret's own character frequencies,
/// counted only for characters that do not simply repeat or step from the one before ("aaaa",
/// "abcd", "4321"). Random base64 or hex of 32 bytes scores about 200 bits; a word repeated to
/// length, a keyboard run or a short alphabet scores far below 128.
pub fn estimate_bits(secret: &str) -> f64 {
    let chars: Vec<char> = secret.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let total = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / total;
            -p * p.log2()
        })
        .sum();
    let predictable = chars
        .windows(2)
        .filter(|w| (w[1] as i64 - w[0] as i64).abs() <= 1)
        .count();
    per_char * (chars.len() - predictable) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused() {
        assert_eq!(check(""), Err(WeakSecret::Empty));
        assert_eq!(check("s"), Err(WeakSecret::Short(1)));
        for weak in [
            "a".repeat(40),
            "passwordpasswordpasswordpassword".into(),
            "abcdefghijklmnopqrstuvwxyz0123456789".into(),
            "Password1Password1Password1Password1".into(),
        ] {
            assert!(
                matches!(check(&weak), Err(WeakSecret::Guessable(_))),
                "{weak}: {:?}",
                check(&weak)
            );
        }
    }

    #[test]
    fn random_secrets_pass() {
        // `openssl rand -base64 32` and `openssl rand -hex 32` outputs.
        for strong in [
            "q3J5X0m8Zt7bV1kYcW2rN9uD4hL6sPaE0fGiTjOxRyQ=",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ] {
            assert_eq!(check(strong), Ok(()), "{strong}: {}", estimate_bits(strong));
        }
        // Many random ones: the estimate never refuses a real 32-byte key.
        use rand::RngCore;
        for _ in 0..2000 {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            let hex = hex::encode(key);
            assert_eq!(check(&hex), Ok(()), "{hex}: {}", estimate_bits(&hex));
        }
    }
}
