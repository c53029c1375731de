//! The cluster's wire format: one datagram (or one Redis message) per event.
//!
//! `b"CHR1"` (magic and version), then a 32-byte HMAC-SHA256 of the rest under the cluster
//! secret, then the JSON envelope: cluster name, origin node, origin epoch (its start time, so a
//! restarted node's numbering starts fresh), origin packet number (0 for unsequenced control
//! packets), send time, and the event. Nothing is parsed before the MAC checks out.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::event::Event;

/// Magic and protocol version.
pub const MAGIC: &[u8; 4] = b"CHR1";
/// Largest packet Chorus sends: under a typical 1,500-byte MTU with IP and UDP headers.
pub const MAX_PACKET: usize = 1400;
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Everything a packet says, after the MAC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub cluster: String,
    pub node: String,
    pub epoch: u64,
    /// Origin packet number: 1, 2, 3... per (node, epoch); 0 = unsequenced control packet.
    pub n: u64,
    /// Origin's clock, epoch ms.
    pub ts: i64,
    pub event: Event,
}

/// Why a packet was dropped (the label of `chorus_cluster_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Malformed,
    BadMac,
    ForeignCluster,
    Own,
    Replayed,
    Stale,
}

impl Drop {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadMac => "bad_mac",
            Self::ForeignCluster => "foreign_cluster",
            Self::Own => "own",
            Self::Replayed => "replayed",
            Self::Stale => "stale",
        }
    }
}

/// Seals and opens packets with the cluster secret.
#[derive(Clone)]
pub struct Codec {
    key: Vec<u8>,
}

impl Codec {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// The packet bytes for an envelope.
    pub fn seal(&self, envelope: &Envelope) -> Vec<u8> {
        let body = serde_json::to_vec(envelope).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&body);
        let tag = mac.finalize().into_bytes();
        let mut packet = Vec::with_capacity(MAGIC.len() + MAC_LEN + body.len());
        packet.extend_from_slice(MAGIC);
        packet.extend_from_slice(&tag);
        packet.extend_from_slice(&body);
        packet
    }

    /// Checks magic and MAC (in constant time), then parses.
    pub fn open(&self, packet: &[u8]) -> Result<Envelope, Drop> {
        let rest = packet
            .strip_prefix(MAGIC.as_slice())
            .ok_or(Drop::Malformed)?;
        if rest.len() < MAC_LEN {
            return Err(Drop::Malformed);
        }
        let (tag, body) = rest.split_at(MAC_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| Drop::BadMac)?;
        serde_json::from_slice(body).map_err(|_| Drop::Malformed)
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
            ts: 0,
            event: Event::Heartbeat { last: 7 },
        }
    }

    #[test]
    fn sealed_packets_open_only_with_the_same_secret() {
        let packet = Codec::new("s3cret").seal(&envelope());
        assert!(packet.len() < MAX_PACKET);
        assert_eq!(Codec::new("s3cret").open(&packet).map(|e| e.n), Ok(7));
        assert_eq!(Codec::new("other").open(&packet).err(), Some(Drop::BadMac));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let codec = Codec::new("s3cret");
        let mut packet = codec.seal(&envelope());
        let last = packet.len() - 2;
        packet[last] ^= 1;
        assert_eq!(codec.open(&packet).err(), Some(Drop::BadMac));
        assert_eq!(codec.open(b"CHR1short").err(), Some(Drop::Malformed));
        assert_eq!(codec.open(b"hello, world").err(), Some(Drop::Malformed));
    }
}
