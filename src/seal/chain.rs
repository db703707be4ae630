//! The hash chain and its signed checkpoints (pure: no I/O).
//!
//! Per partition, each record the log holds (as a read-committed consumer sees it) gets a
//! digest `d = SHA-256("authtrail-record-v1" ‖ offset ‖ timestamp ‖ len(key) ‖ key ‖
//! len(value) ‖ value)` (integers big-endian, an absent key or value has length -1), and the
//! chain folds them: `h_0 = SHA-256("authtrail-seal-v1" ‖ topic ‖ partition)`,
//! `h_i = SHA-256(h_{i-1} ‖ d_i)`. A [`Checkpoint`] covers a run of records: their offsets and
//! digests, the head before and after, signed with Ed25519 over [`Checkpoint::signed_bytes`].
//! The digests let a verifier name the first record that differs; they are authenticated by
//! the chain (recomputing the head from them must give the signed head).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// One record as the chain sees it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub offset: i64,
    /// Broker timestamp (ms), -1 when absent.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The digest of one record.
pub fn digest(r: &Record<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"authtrail-record-v1");
    h.update(r.offset.to_be_bytes());
    h.update(r.timestamp.to_be_bytes());
    for part in [r.key, r.value] {
        match part {
            Some(b) => {
                h.update((b.len() as i64).to_be_bytes());
                h.update(b);
            }
            None => h.update((-1i64).to_be_bytes()),
        }
    }
    h.finalize().into()
}

/// The head of an empty chain for one partition of `topic`.
pub fn genesis(topic: &str, partition: i32) -> Hash {
    let mut h = Sha256::new();
    h.update(b"authtrail-seal-v1");
    h.update((topic.len() as u64).to_be_bytes());
    h.update(topic.as_bytes());
    h.update(partition.to_be_bytes());
    h.finalize().into()
}

/// The head after `d`.
pub fn link(head: &Hash, d: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(head);
    h.update(d);
    h.finalize().into()
}

/// A signed statement: in `topic`/`partition`, the records at `offsets` (ascending) have
/// `digests`, and the chain goes from `prev_head` to `head` over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub offsets: Vec<i64>,
    #[serde(with = "hex_vec")]
    pub digests: Vec<Hash>,
    #[serde(with = "hex_hash")]
    pub prev_head: Hash,
    #[serde(with = "hex_hash")]
    pub head: Hash,
    /// Who signed: the key id of [`Signer`]s and verifiers.
    pub key_id: String,
    /// Ed25519 over [`Checkpoint::signed_bytes`]; empty = unsigned.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    /// When it was made (ms since the epoch).
    pub sealed_at_ms: i64,
}

impl Checkpoint {
    /// What the signature covers: everything but the per-record lists, which the chain
    /// authenticates.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(160 + self.topic.len() + self.key_id.len());
        b.extend_from_slice(b"authtrail-checkpoint-v1");
        for s in [&self.topic, &self.key_id] {
            b.extend_from_slice(&(s.len() as u64).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(&self.partition.to_be_bytes());
        b.extend_from_slice(&self.first_offset.to_be_bytes());
        b.extend_from_slice(&self.last_offset.to_be_bytes());
        b.extend_from_slice(&(self.offsets.len() as u64).to_be_bytes());
        b.extend_from_slice(&self.prev_head);
        b.extend_from_slice(&self.head);
        b.extend_from_slice(&self.sealed_at_ms.to_be_bytes());
        b
    }

    /// The head the digests lead to from `prev_head`.
    pub fn recomputed_head(&self) -> Hash {
        self.digests
            .iter()
            .fold(self.prev_head, |head, d| link(&head, d))
    }
}

/// A key that signs checkpoints.
pub struct SealKey {
    pub id: String,
    key: SigningKey,
}

impl SealKey {
    pub fn new(id: impl Into<String>, key: SigningKey) -> SealKey {
        SealKey { id: id.into(), key }
    }

    /// From a PKCS#8 PEM file's text (`openssl genpkey -algorithm ed25519`).
    pub fn from_pkcs8_pem(id: impl Into<String>, pem: &str) -> anyhow::Result<SealKey> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 private key: {e}"))?;
        Ok(SealKey::new(id, key))
    }

    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, c: &mut Checkpoint) {
        c.key_id = self.id.clone();
        c.signature = self.key.sign(&c.signed_bytes()).to_bytes().to_vec();
    }
}

/// Parses a public key: PEM (SPKI) text.
pub fn public_key_from_pem(pem: &str) -> anyhow::Result<VerifyingKey> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| anyhow::anyhow!("not an Ed25519 public key (SPKI PEM): {e}"))
}

/// What is wrong with a checkpoint by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Unsigned,
    UnknownKey(String),
    BadSignature,
    /// The digests do not lead to the signed head, or offsets and digests disagree.
    Inconsistent,
}

/// Checks a checkpoint's signature with the key its `key_id` names, and that its lists agree
/// with its signed fields.
pub fn check(c: &Checkpoint, key: impl Fn(&str) -> Option<VerifyingKey>) -> Result<(), Fault> {
    if c.signature.is_empty() {
        return Err(Fault::Unsigned);
    }
    let Some(public) = key(&c.key_id) else {
        return Err(Fault::UnknownKey(c.key_id.clone()));
    };
    let Ok(sig) = Signature::from_slice(&c.signature) else {
        return Err(Fault::BadSignature);
    };
    if public.verify(&c.signed_bytes(), &sig).is_err() {
        return Err(Fault::BadSignature);
    }
    let ordered = c.offsets.windows(2).all(|w| w[0] < w[1]);
    if c.offsets.len() != c.digests.len()
        || c.offsets.is_empty()
        || !ordered
        || c.offsets.first() != Some(&c.first_offset)
        || c.offsets.last() != Some(&c.last_offset)
        || c.recomputed_head() != c.head
    {
        return Err(Fault::Inconsistent);
    }
    Ok(())
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        let mut joined = String::with_capacity(v.len() * 64);
        for h in v {
            joined.push_str(&hex::encode(h));
        }
        s.serialize_str(&joined)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let raw = hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        if raw.len() % 32 != 0 {
            return Err(serde::de::Error::custom("digests are 32 bytes each"));
        }
        Ok(raw
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, seed: u8) -> SealKey {
        SealKey::new(id, SigningKey::from_bytes(&[seed; 32]))
    }

    fn checkpoint(records: &[(i64, &[u8])]) -> Checkpoint {
        let prev = genesis("t", 0);
        let digests: Vec<Hash> = records
            .iter()
            .map(|(o, v)| {
                digest(&Record {
                    offset: *o,
                    timestamp: 1,
                    key: Some(b"k"),
                    value: Some(v),
                })
            })
            .collect();
        let mut c = Checkpoint {
            topic: "t".into(),
            partition: 0,
            first_offset: records[0].0,
            last_offset: records[records.len() - 1].0,
            offsets: records.iter().map(|r| r.0).collect(),
            head: digests.iter().fold(prev, |h, d| link(&h, d)),
            digests,
            prev_head: prev,
            key_id: String::new(),
            signature: vec![],
            sealed_at_ms: 5,
        };
        key("a", 1).sign(&mut c);
        c
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_nothing_else() {
        let c = checkpoint(&[(0, b"x"), (1, b"y")]);
        let a = key("a", 1).public();
        let b = key("b", 2).public();
        assert_eq!(check(&c, |id| (id == "a").then_some(a)), Ok(()));
        assert_eq!(
            check(&c, |id| (id == "a").then_some(b)),
            Err(Fault::BadSignature)
        );
        assert_eq!(check(&c, |_| None), Err(Fault::UnknownKey("a".into())));
        let mut unsigned = c.clone();
        unsigned.signature.clear();
        assert_eq!(check(&unsigned, |_| Some(a)), Err(Fault::Unsigned));
        let mut forged = c.clone();
        forged.head[0] ^= 1;
        assert_eq!(check(&forged, |_| Some(a)), Err(Fault::BadSignature));
        let mut swapped = c.clone();
        swapped.digests.swap(0, 1);
        assert_eq!(check(&swapped, |_| Some(a)), Err(Fault::Inconsistent));
        // Round trip through JSON (the seals topic's format).
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), c);
    }

    #[test]
    fn every_part_of_a_record_changes_its_digest() {
        let base = Record {
            offset: 7,
            timestamp: 9,
            key: Some(b"k"),
            value: Some(b"v"),
        };
        let d = digest(&base);
        for other in [
            Record { offset: 8, ..base },
            Record {
                timestamp: 10,
                ..base
            },
            Record { key: None, ..base },
            Record {
                key: Some(b""),
                ..base
            },
            Record {
                value: Some(b"w"),
                ..base
            },
            // Moving a byte from key to value is another record.
            Record {
                key: Some(b"kv"),
                value: Some(b""),
                ..base
            },
        ] {
            assert_ne!(digest(&other), d, "{other:?}");
        }
    }
}
