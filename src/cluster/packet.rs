//! The cluster's wire format: one datagram (or one Redis message) per event, encrypted and
//! authenticated, so that whoever can bind the UDP port (or read the Redis channel) learns
//! nothing and can forge nothing.
//!
//! `b"CHR2"` (magic and version), a random 24-byte nonce, then the JSON envelope sealed with
//! XChaCha20-Poly1305 (ciphertext and 16-byte tag), with the magic as associated data so a
//! packet cannot be passed off as another version. The key comes from the cluster secret
//! through HKDF-SHA256 salted with the cluster name, so two clusters that share a secret
//! still cannot read each other. Random 192-bit nonces never repeat in practice, whatever the
//! number of nodes and restarts (no counter state to lose).
//!
//! The envelope: cluster name, origin node, origin epoch (its start time, so a restarted
//! node's numbering starts fresh), origin packet number (0 for control packets), control
//! number (1, 2, 3... for control packets, so a replayed one is refused), the node a unicast
//! control packet is for, send time, and the event. Nothing is parsed before the tag checks
//! out.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::event::Event;

/// Magic and protocol version.
pub const MAGIC: &[u8; 4] = b"CHR2";
/// Largest packet Chorus sends: under a typical 1,500-byte MTU with IP and UDP headers.
pub const MAX_PACKET: usize = 1400;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What HKDF expands the key for (changing it changes every key: a new protocol version).
const KDF_INFO: &[u8] = b"chorus cluster packet key v2";

/// Everything a packet says, once opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub cluster: String,
    pub node: String,
    pub epoch: u64,
    /// Origin packet number: 1, 2, 3... per (node, epoch); 0 = control packet.
    pub n: u64,
    /// Control number: 1, 2, 3... per (node, epoch) over all its control packets (heartbeats,
    /// re-send requests, ...); 0 on numbered packets. Receivers keep a replay window of it.
    #[serde(default)]
    pub c: u64,
    /// The only node a unicast control packet is for (`None`: every node), so a request
    /// captured on its way to one node is refused by all the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Origin's clock, epoch ms.
    pub ts: i64,
    pub event: Event,
}

/// Why a packet was dropped (the label of `chorus_cluster_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    /// The tag does not check out: another secret, another cluster name, or tampered bytes.
    BadMac,
    ForeignCluster,
    Own,
    Replayed,
    Stale,
    /// A unicast control packet meant for another node.
    NotForUs,
    /// A control request from an address that is not the one known for its origin.
    WrongAddress,
}

impl DropReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadMac => "bad_mac",
            Self::ForeignCluster => "foreign_cluster",
            Self::Own => "own",
            Self::Replayed => "replayed",
            Self::Stale => "stale",
            Self::NotForUs => "not_for_us",
            Self::WrongAddress => "wrong_address",
        }
    }
}

/// Seals and opens packets with the key derived from the cluster secret and name.
#[derive(Clone)]
pub struct Codec {
    cipher: XChaCha20Poly1305,
}

impl Codec {
    /// Derives the packet key: HKDF-SHA256(salt = "chorus cluster " + name, ikm = secret).
    pub fn new(secret: &str, cluster: &str) -> Self {
        let salt = format!("chorus cluster {cluster}");
        let kdf = Hkdf::<Sha256>::new(Some(salt.as_bytes()), secret.as_bytes());
        let mut key = [0u8; 32];
        kdf.expand(KDF_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The packet bytes for an envelope.
    pub fn seal(&self, envelope: &Envelope) -> Vec<u8> {
        let body = serde_json::to_vec(envelope).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: MAGIC,
                },
            )
            .unwrap_or_default();
        let mut packet = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        packet.extend_from_slice(MAGIC);
        packet.extend_from_slice(&nonce);
        packet.extend_from_slice(&sealed);
        packet
    }

    /// Checks magic and tag (the AEAD compares in constant time), then parses.
    pub fn open(&self, packet: &[u8]) -> Result<Envelope, DropReason> {
        let rest = packet
            .strip_prefix(MAGIC.as_slice())
            .ok_or(DropReason::Malformed)?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(DropReason::Malformed);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let body = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .map_err(|_| DropReason::BadMac)?;
        serde_json::from_slice(&body).map_err(|_| DropReason::Malformed)
    }
}

/// Which control numbers of one origin epoch were seen: the highest, and a 64-wide bitmap
/// below it (as IPsec does), so late or reordered packets still count once and a replayed
/// one never does.
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    top: u64,
    /// Bit `i` set: `top - i` was seen.
    seen: u64,
}

impl ReplayWindow {
    const WIDTH: u64 = 64;

    /// Records `c`; false if it was seen already, is 0, or is too old to tell.
    pub fn accept(&mut self, c: u64) -> bool {
        if c == 0 {
            return false;
        }
        if c > self.top {
            let shift = c - self.top;
            self.seen = if shift >= Self::WIDTH {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = c;
            return true;
        }
        let back = self.top - c;
        if back >= Self::WIDTH {
            return false;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            cluster: "c".into(),
            node: "a".into(),
            epoch: 1,
            n: 7,
            c: 0,
            to: None,
            ts: 0,
            event: Event::Control(crate::cluster::Control::Heartbeat { last: 7 }),
        }
    }

    #[test]
    fn sealed_packets_open_only_with_the_same_secret_and_name() {
        let packet = Codec::new("s3cret", "c").seal(&envelope());
        assert!(packet.len() < MAX_PACKET);
        assert_eq!(Codec::new("s3cret", "c").open(&packet).map(|e| e.n), Ok(7));
        assert_eq!(
            Codec::new("other", "c").open(&packet).err(),
            Some(DropReason::BadMac)
        );
        assert_eq!(
            Codec::new("s3cret", "d").open(&packet).err(),
            Some(DropReason::BadMac)
        );
    }

    #[test]
    fn nothing_of_the_envelope_shows_and_nonces_differ() {
        let codec = Codec::new("s3cret", "c");
        let a = codec.seal(&envelope());
        let b = codec.seal(&envelope());
        assert_ne!(a, b);
        assert!(!a.windows(9).any(|w| w == b"heartbeat"));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let codec = Codec::new("s3cret", "c");
        let packet = codec.seal(&envelope());
        for at in [0, 5, 30, packet.len() - 1] {
            let mut bad = packet.clone();
            bad[at] ^= 1;
            assert!(codec.open(&bad).is_err(), "flipped byte {at}");
        }
        assert_eq!(codec.open(b"CHR2short").err(), Some(DropReason::Malformed));
        assert_eq!(
            codec.open(b"hello, world").err(),
            Some(DropReason::Malformed)
        );
    }

    #[test]
    fn the_replay_window_takes_each_number_once() {
        let mut w = ReplayWindow::default();
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(!w.accept(5));
        assert!(w.accept(3), "late but new");
        assert!(!w.accept(3));
        assert!(w.accept(100));
        assert!(!w.accept(5), "too old to tell");
        assert!(w.accept(99));
        assert!(w.accept(37));
        assert!(!w.accept(36));
        assert!(!w.accept(100));
    }
}
