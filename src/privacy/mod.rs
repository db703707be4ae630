//! Erasure by crypto-shredding.
//!
//! Every subject (user id) has a data key: 256 random bits, AES-256-GCM, stored in
//! `subject_keys` wrapped (encrypted) by the master key read from `privacy.master_key_file`.
//! Where events enter, [`Keyring::seal_all`] moves each event's personal members
//! ([`authtrail_events::personal`]) into the `personaldata` attribute, encrypted with its
//! subject's key and bound to the event's id and subject. Readers — the projector, rebuild,
//! replay, as-of — call [`Keyring::open_all`], which puts them back where the key still exists
//! and leaves the event redacted where it does not. [`forget::forget`] destroys a subject's keys
//! and purges the person's rows: every copy of the log, and every rebuild, then holds only
//! ciphertext nobody can read, and the seals still verify because the log did not change.
//!
//! Layout: this file holds the master key, the cipher and the key cache; `forget.rs` the erasure
//! in the database, `topics.rs` in the input topics.

pub mod forget;
pub mod topics;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::Aes256Gcm;
use authtrail_events::personal::{Personal, Sealed};
use authtrail_events::Event;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// What the privacy layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Keys in the database were wrapped by another master key than the configured one.
    #[error("the data key of {subject:?} was wrapped by master key {found}, not by the configured {configured}: privacy.master_key_file is the wrong file")]
    WrongMasterKey {
        subject: String,
        found: String,
        configured: String,
    },
    #[error("the data key of {0:?} does not unwrap: the subject_keys row or the master key file is damaged")]
    Unwrap(String),
    /// A subject's key vanished between being created and being read (a concurrent forget).
    #[error("no data key for a subject of event {0} (forgotten meanwhile?); nothing was sealed")]
    NoKey(uuid::Uuid),
    /// Only authtrail seals, once: an event handed in sealed is refused, not passed through.
    #[error("event {0} already carries personaldata")]
    AlreadySealed(uuid::Uuid),
    /// A sealed event met a reader without a master key.
    #[error("event {0} carries encrypted personal data, but privacy.master_key_file is not set")]
    NoMasterKey(uuid::Uuid),
}

/// The master key: wraps data keys; never leaves this process, never logged.
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// A short fingerprint stored with each wrapped key, so that the wrong key file is named as
    /// such instead of looking like damage.
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Reads `path`: 32 bytes in standard base64 (white space ignored). Refuses a file others
    /// may read.
    pub fn load(path: &Path) -> anyhow::Result<MasterKey> {
        use base64::Engine;
        let text = Zeroizing::new(crate::config::read_private_file(
            path,
            "privacy.master_key_file",
        )?);
        let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
        );
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&*compact)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "privacy.master_key_file {} is not base64 (make one with: head -c 32 /dev/urandom | base64)",
                        path.display()
                    )
                })?,
        );
        MasterKey::from_bytes(&raw)
            .map_err(|e| anyhow::anyhow!("privacy.master_key_file {}: {e}", path.display()))
    }

    pub fn from_bytes(raw: &[u8]) -> Result<MasterKey, String> {
        if raw.len() != 32 {
            return Err(format!("holds {} bytes; a master key is 32", raw.len()));
        }
        let digest = Sha256::new()
            .chain_update(b"authtrail master key id\0")
            .chain_update(raw)
            .finalize();
        Ok(MasterKey {
            cipher: Aes256Gcm::new_from_slice(raw).expect("32 bytes"),
            id: hex::encode(&digest[..8]),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, subject: &str, key: &[u8; 32]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = wrap_aad(subject);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: key,
                        aad: &aad,
                    },
                )
                .expect("AES-GCM encryption of 32 bytes cannot fail"),
        );
        out
    }

    fn unwrap_key(&self, subject: &str, wrapped: &[u8]) -> Option<Aes256Gcm> {
        if wrapped.len() < 12 {
            return None;
        }
        let (nonce, ct) = wrapped.split_at(12);
        let aad = wrap_aad(subject);
        let key = Zeroizing::new(
            self.cipher
                .decrypt(nonce.into(), Payload { msg: ct, aad: &aad })
                .ok()?,
        );
        Aes256Gcm::new_from_slice(&key).ok()
    }
}

fn wrap_aad(subject: &str) -> Vec<u8> {
    [b"authtrail data key\0".as_slice(), subject.as_bytes()].concat()
}

/// Binds a sealed member set to its event: a ciphertext moved to another event (or subject)
/// does not decrypt.
fn event_aad(event: &Event, subject: &str) -> Vec<u8> {
    [event.id.as_bytes().as_slice(), b"\0", subject.as_bytes()].concat()
}

/// One subject's current key, as the intake uses it.
#[derive(Clone)]
struct SealingKey {
    generation: u32,
    cipher: Arc<Aes256Gcm>,
}

/// The data keys: created on first use by the intake, read by the readers, destroyed by forget.
/// Cheap to share (`Arc`); caches keys in memory (sealing keys for `privacy.key_cache_secs`,
/// opening keys while they exist in the database).
pub struct Keyring {
    pool: PgPool,
    master: MasterKey,
    sealing: moka::sync::Cache<String, SealingKey>,
    opening: moka::sync::Cache<(String, u32), Arc<Aes256Gcm>>,
}

/// What [`Keyring::open_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub opened: usize,
    /// Sealed events whose key is gone: they stay redacted.
    pub redacted: usize,
}

impl Keyring {
    pub fn new(pool: PgPool, master: MasterKey, key_cache: Duration) -> Keyring {
        Keyring {
            pool,
            master,
            sealing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(key_cache)
                .build(),
            opening: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The keyring `config` asks for: `None` without `privacy.master_key_file`. It has a small
    /// pool of its own, connected on first use: a projector lane asks for keys while it holds
    /// one of the projector's connections in its transaction, and must never wait for another
    /// lane's.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Option<Arc<Keyring>>> {
        let Some(path) = &config.privacy.master_key_file else {
            return Ok(None);
        };
        let master = MasterKey::load(path)?;
        let pool = crate::db::pool_options(4, Duration::from_secs(5))
            .connect_lazy(&config.database.url)
            .map_err(|e| anyhow::anyhow!("database.url: {e}"))?;
        Ok(Some(Arc::new(Keyring::new(
            pool,
            master,
            Duration::from_secs(config.privacy.key_cache_secs),
        ))))
    }

    /// Refuses a master key other than the one the stored keys were wrapped with (a wrong key
    /// file would otherwise show up as every event failing to open).
    pub async fn check(&self) -> Result<(), PrivacyError> {
        let other: Option<(String, String)> = sqlx::query_as(
            "SELECT subject, master_key FROM subject_keys WHERE master_key <> $1 LIMIT 1",
        )
        .bind(self.master.id())
        .fetch_optional(&self.pool)
        .await?;
        match other {
            Some((subject, found)) => Err(PrivacyError::WrongMasterKey {
                subject,
                found,
                configured: self.master.id().to_owned(),
            }),
            None => Ok(()),
        }
    }

    pub fn master_id(&self) -> &str {
        self.master.id()
    }

    /// Encrypts the personal members of every event about a subject that still has them in
    /// `data` (creating subjects' keys as needed). On error no event was changed.
    pub async fn seal_all(&self, events: &mut [Event]) -> Result<(), PrivacyError> {
        if let Some(e) = events.iter().find(|e| e.personal.is_some()) {
            return Err(PrivacyError::AlreadySealed(e.id));
        }
        let subjects: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.personal.is_none() && e.carries_personal_data())
            .filter_map(|e| e.subject.as_deref())
            .collect();
        if subjects.is_empty() {
            return Ok(());
        }
        let mut keys: HashMap<String, SealingKey> = HashMap::new();
        let mut missing = vec![];
        for s in subjects {
            match self.sealing.get(s) {
                Some(k) => {
                    keys.insert(s.to_owned(), k);
                }
                None => missing.push(s.to_owned()),
            }
        }
        if !missing.is_empty() {
            for (subject, key) in self.current_keys(&missing).await? {
                self.sealing.insert(subject.clone(), key.clone());
                keys.insert(subject, key);
            }
        }
        // Fail closed: every event that needs a key has one before any is changed.
        if let Some(e) = events.iter().find(|e| {
            e.carries_personal_data() && !e.subject.as_deref().is_some_and(|s| keys.contains_key(s))
        }) {
            return Err(PrivacyError::NoKey(e.id));
        }
        let mut sealed = 0u64;
        for e in events.iter_mut() {
            if !e.carries_personal_data() {
                continue;
            }
            let Some(key) = e.subject.as_deref().and_then(|s| keys.get(s)) else {
                continue;
            };
            let personal = e.take_personal();
            if personal.is_empty() {
                continue;
            }
            let plain = Zeroizing::new(serde_json::to_vec(&personal).expect("serialises"));
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            let aad = event_aad(e, e.subject.as_deref().unwrap_or_default());
            let ct = key
                .cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: &plain,
                        aad: &aad,
                    },
                )
                .expect("AES-GCM encryption cannot fail for these sizes");
            e.personal = Some(Sealed::new(key.generation, nonce.into(), ct));
            sealed += 1;
        }
        metrics::counter!("authtrail_privacy_events_sealed_total").increment(sealed);
        Ok(())
    }

    /// The current key of each subject, created where there is none (a subject forgotten
    /// before gets the generation after its last destroyed one).
    async fn current_keys(
        &self,
        subjects: &[String],
    ) -> Result<Vec<(String, SealingKey)>, PrivacyError> {
        let mut conn = self.pool.acquire().await?;
        let mut found = self.fetch_current(&mut conn, subjects).await?;
        let absent: Vec<String> = subjects
            .iter()
            .filter(|s| !found.iter().any(|(f, _)| f == *s))
            .cloned()
            .collect();
        if !absent.is_empty() {
            let wrapped: Vec<Vec<u8>> = absent
                .iter()
                .map(|s| {
                    let key = Zeroizing::new(<[u8; 32]>::from(Aes256Gcm::generate_key(OsRng)));
                    self.master.wrap(s, &key)
                })
                .collect();
            // Concurrent creators race on (subject, generation): one row wins, all use it.
            sqlx::query(
                "INSERT INTO subject_keys (subject, generation, master_key, wrapped)
                 SELECT s.subject,
                        COALESCE((SELECT max(e.generation) FROM erasures e WHERE e.subject = s.subject), 0) + 1,
                        $2, s.wrapped
                 FROM unnest($1::text[], $3::bytea[]) AS s(subject, wrapped)
                 WHERE NOT EXISTS (SELECT 1 FROM subject_keys k WHERE k.subject = s.subject)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&absent)
            .bind(self.master.id())
            .bind(&wrapped)
            .execute(&mut *conn)
            .await?;
            found.extend(self.fetch_current(&mut conn, &absent).await?);
        }
        Ok(found)
    }

    async fn fetch_current(
        &self,
        conn: &mut PgConnection,
        subjects: &[String],
    ) -> Result<Vec<(String, SealingKey)>, PrivacyError> {
        let rows: Vec<(String, i32, String, Vec<u8>)> = sqlx::query_as(
            "SELECT DISTINCT ON (subject) subject, generation, master_key, wrapped
             FROM subject_keys WHERE subject = ANY($1)
             ORDER BY subject, generation DESC",
        )
        .bind(subjects)
        .fetch_all(conn)
        .await?;
        rows.into_iter()
            .map(|(subject, generation, master, wrapped)| {
                let cipher = self.unwrap_row(&subject, &master, &wrapped)?;
                Ok((
                    subject,
                    SealingKey {
                        generation: generation as u32,
                        cipher: Arc::new(cipher),
                    },
                ))
            })
            .collect()
    }

    fn unwrap_row(
        &self,
        subject: &str,
        master: &str,
        wrapped: &[u8],
    ) -> Result<Aes256Gcm, PrivacyError> {
        if master != self.master.id() {
            return Err(PrivacyError::WrongMasterKey {
                subject: subject.to_owned(),
                found: master.to_owned(),
                configured: self.master.id().to_owned(),
            });
        }
        self.master
            .unwrap_key(subject, wrapped)
            .ok_or_else(|| PrivacyError::Unwrap(subject.to_owned()))
    }

    /// Decrypts the personal members of every sealed event whose key exists now and clears
    /// `personaldata` on all of them; those whose key is gone stay redacted. A ciphertext that
    /// does not decrypt under an existing key (damaged, or moved from another event) is
    /// redacted too, and counted.
    ///
    /// Keys are always read from the live schema (this keyring's pool), also for a rebuild into
    /// another schema. A projector batch that opened events with a key that a concurrent
    /// `forget` then destroys writes nothing: `forget` gives the projections a new epoch first,
    /// which fails the batch's epoch guard (see [`forget::forget`]).
    pub async fn open_all(&self, events: &mut [Event]) -> Result<Opened, PrivacyError> {
        let wanted: BTreeSet<(&str, u32)> = events
            .iter()
            .filter_map(|e| Some((e.subject.as_deref()?, e.personal.as_ref()?.generation)))
            .collect();
        let mut out = Opened::default();
        if wanted.is_empty() {
            return Ok(out);
        }
        let subjects: Vec<&str> = wanted
            .iter()
            .map(|(s, _)| *s)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Which keys exist is asked every time (a forget elsewhere destroys them); the
        // unwrapped keys are cached.
        let rows: Vec<(String, i32, String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, generation, master_key, wrapped FROM subject_keys
             WHERE subject = ANY($1)",
        )
        .bind(&subjects)
        .fetch_all(&self.pool)
        .await?;
        let mut ciphers: HashMap<(String, u32), Arc<Aes256Gcm>> = HashMap::new();
        for (subject, generation, master, wrapped) in rows {
            let id = (subject, generation as u32);
            if !wanted.contains(&(id.0.as_str(), id.1)) {
                continue;
            }
            let cipher = match self.opening.get(&id) {
                Some(c) => c,
                None => {
                    let c = Arc::new(self.unwrap_row(&id.0, &master, &wrapped)?);
                    self.opening.insert(id.clone(), c.clone());
                    c
                }
            };
            ciphers.insert(id, cipher);
        }
        // Keys destroyed elsewhere (a forget in another process) leave this cache too.
        for (s, g) in &wanted {
            let id = (s.to_string(), *g);
            if !ciphers.contains_key(&id) {
                self.opening.invalidate(&id);
            }
        }
        for e in events.iter_mut() {
            let Some(sealed) = e.personal.take() else {
                continue;
            };
            let subject = e.subject.clone().unwrap_or_default();
            let personal = ciphers
                .get(&(subject.clone(), sealed.generation))
                .and_then(|c| {
                    let aad = event_aad(e, &subject);
                    let plain = Zeroizing::new(
                        c.decrypt(
                            sealed.nonce().into(),
                            Payload {
                                msg: sealed.ciphertext(),
                                aad: &aad,
                            },
                        )
                        .ok()?,
                    );
                    serde_json::from_slice::<Personal>(&plain).ok()
                });
            match personal {
                Some(p) => {
                    e.restore_personal(p);
                    out.opened += 1;
                }
                None if ciphers.contains_key(&(subject.clone(), sealed.generation)) => {
                    // The key exists but the ciphertext does not open: damaged, or moved from
                    // another event. Folded redacted (nothing is lost: the log keeps it).
                    metrics::counter!("authtrail_privacy_unopenable_total").increment(1);
                    tracing::error!(event_id = %e.id, "encrypted personal data does not open with its subject's key; folded redacted");
                    out.redacted += 1;
                }
                None => out.redacted += 1,
            }
        }
        if out.redacted > 0 {
            metrics::counter!("authtrail_privacy_events_redacted_total")
                .increment(out.redacted as u64);
        }
        Ok(out)
    }

    /// How often `subject` was forgotten (changes whenever a forget happens anywhere).
    pub async fn erasures_of(&self, subject: &str) -> Result<i64, PrivacyError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM erasures WHERE subject = $1")
                .bind(subject)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Forgets cached keys of `subject` (after this process destroyed them).
    pub(crate) fn evict(&self, subject: &str) {
        self.sealing.invalidate(subject);
        let subject = subject.to_owned();
        let _ = self
            .opening
            .invalidate_entries_if(move |(s, _), _| *s == subject);
    }
}

/// Opens `events` with `keys`, or fails when one is sealed and there is no keyring: a reader
/// without the master key must not fold redacted rows as if they were the truth.
pub async fn open_or_refuse(
    keys: Option<&Keyring>,
    events: &mut [Event],
) -> Result<Opened, PrivacyError> {
    match keys {
        Some(k) => k.open_all(events).await,
        None => match events.iter().find(|e| e.personal.is_some()) {
            Some(e) => Err(PrivacyError::NoMasterKey(e.id)),
            None => Ok(Opened::default()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_only_for_its_subject_under_its_master_key() {
        let master = MasterKey::from_bytes(&[1; 32]).unwrap();
        let wrapped = master.wrap("alice", &[5; 32]);
        assert!(master.unwrap_key("alice", &wrapped).is_some());
        assert!(
            master.unwrap_key("bob", &wrapped).is_none(),
            "moved to another subject"
        );
        let other = MasterKey::from_bytes(&[2; 32]).unwrap();
        assert!(other.unwrap_key("alice", &wrapped).is_none());
        assert_ne!(master.id(), other.id());
        assert!(MasterKey::from_bytes(&[1; 31]).is_err());
        assert!(
            !format!("{master:?}").contains("0101"),
            "Debug shows the id only"
        );
    }

    #[test]
    fn a_missing_or_readable_master_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let missing = MasterKey::load(&path).unwrap_err().to_string();
        assert!(missing.contains("privacy.master_key_file"), "{missing}");
        std::fs::write(&path, "q0J3uY7X1mZ3b2Zr4m9xQw2l8sJ0aHc5ZkRzT1VwWmM=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let readable = MasterKey::load(&path).unwrap_err().to_string();
        assert!(readable.contains("readable by others"), "{readable}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load(&path).is_ok());
        std::fs::write(&path, "c2hvcnQ=").unwrap();
        let short = MasterKey::load(&path).unwrap_err().to_string();
        assert!(short.contains("a master key is 32"), "{short}");
    }
}
