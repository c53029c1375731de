//! Brakes on password guessing: failed log-ins are counted per account and per address in
//! token buckets (a burst, then one more every `auth.failure_refill_secs`), and past the burst
//! a log-in is refused with 429 and `Retry-After` before any hashing. A real user is never
//! locked out for long: one refill interval after the last failure they may try again.
//!
//! Both maps are bounded: full buckets (no recent failures) are forgotten first, and past
//! [`MAX_KEYS`] the oldest state is dropped rather than grown.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::AuthSettings;

/// Most accounts (and addresses) tracked at once.
const MAX_KEYS: usize = 100_000;

/// Failures a key may still have before it is refused.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One family of buckets (accounts or addresses).
struct Buckets<K> {
    burst: f64,
    refill: Duration,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
            map: Mutex::default(),
        }
    }

    fn level(&self, bucket: Bucket, now: Instant) -> f64 {
        let gained = now.duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64();
        (bucket.tokens + gained).min(self.burst)
    }

    /// `None` when `key` may try; else the seconds until it may.
    fn wait(&self, key: &K) -> Option<u64> {
        let now = Instant::now();
        let map = crate::lock::lock(&self.map);
        let level = self.level(*map.get(key)?, now);
        if level >= 1.0 {
            return None;
        }
        Some(((1.0 - level) * self.refill.as_secs_f64()).ceil().max(1.0) as u64)
    }

    /// Counts one failure against `key`.
    fn fail(&self, key: K) {
        let now = Instant::now();
        let mut map = crate::lock::lock(&self.map);
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            let burst = self.burst;
            map.retain(|_, b| {
                let gained = now.duration_since(b.at).as_secs_f64() / self.refill.as_secs_f64();
                b.tokens + gained < burst
            });
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let level = map
            .get(&key)
            .map(|b| self.level(*b, now))
            .unwrap_or(self.burst);
        map.insert(
            key,
            Bucket {
                tokens: (level - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

/// The log-in throttle of one node.
pub struct LoginThrottle {
    accounts: Buckets<String>,
    addresses: Buckets<IpAddr>,
}

impl LoginThrottle {
    /// A throttle with the configured bursts and refill.
    pub fn new(auth: &AuthSettings) -> Self {
        let refill = auth.failure_refill();
        Self {
            accounts: Buckets::new(auth.account_failures, refill),
            addresses: Buckets::new(auth.address_failures, refill),
        }
    }

    /// `None` when this log-in may go ahead; else the seconds to wait (`Retry-After`).
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Option<u64> {
        let by_account = self.accounts.wait(&crate::names::skeleton(account));
        let by_address = address.and_then(|a| self.addresses.wait(&a));
        by_account.into_iter().chain(by_address).max()
    }

    /// Records a failed log-in.
    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        // By skeleton, like log-in itself: look-alike spellings of a name are one account.
        self.accounts.fail(crate::names::skeleton(account));
        if let Some(a) = address {
            self.addresses.fail(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_with_a_wait() {
        let b = Buckets::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(b.wait(&"a"), None);
            b.fail("a");
        }
        let wait = b.wait(&"a").expect("refused after the burst");
        assert!((1..=10).contains(&wait), "{wait}");
        assert_eq!(b.wait(&"b"), None, "other keys are not affected");
    }
}
