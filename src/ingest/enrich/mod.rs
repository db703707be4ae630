//! Enrichment at ingest: facts about the address and the device, frozen into the event so that
//! history does not change when a database is updated.
//!
//! For `login.succeeded`, `login.failed`, `token.refreshed` and `session.activity`:
//! - `data.geo` from `data.ip` ([`geo`]), when the publisher sent none;
//! - `data.device` from `data.user_agent` ([`ua`]), when the publisher sent none;
//! - `data.device_id` (login events only), when the publisher sent none and there is a user
//!   agent: the derived fingerprint [`device_fingerprint`];
//! - `data.enrichment`: which GeoIP database (file stem and build date) and which uap-core
//!   version produced what was added, and `device_id_derived: true` when the id was derived.
//!   Members the publisher set are kept.
//!
//! Publisher-supplied values are never overwritten, so enriching an enriched event changes
//! nothing (re-publishing gives the same bytes). Enrichment never fails an event: an unknown
//! address or user agent just adds less.

mod countries;
pub mod geo;
pub mod ua;

use crate::config::IngestConfig;
use authtrail_events::data::{Enrichment, OpaqueId};
use authtrail_events::Event;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

pub use geo::GeoIp;
pub use ua::{ParsedUa, UaParser};

/// Why enrichment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(transparent)]
    Geo(#[from] geo::GeoError),
    #[error(transparent)]
    Ua(#[from] ua::UaError),
}

/// The enrichment step. Build once, share as `Arc<Enricher>`; all methods take `&self`.
pub struct Enricher {
    geo: GeoIp,
    ua: Arc<UaParser>,
    ua_cache: moka::sync::Cache<String, Arc<ParsedUa>>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("geo", &self.geo)
            .field("ua", &self.ua)
            .finish()
    }
}

/// The derived `device_id`: `fp1-` and the first 32 hex digits (128 bits) of
/// SHA-256(`authtrail-device-v1` ␀ account ␀ browser family ␀ OS family ␀ device family ␀ brand
/// ␀ model), every part lower-cased and trimmed (see `ParsedUa::fingerprint_parts`).
///
/// `account` is the event's partition key (the subject, or the lower-cased identifier of an
/// unknown user), so the same browser on the same OS is one device per account and ids cannot
/// be correlated across accounts. It is stable across browser and OS updates (no versions) and
/// is not a secret: anyone with the user agent and the user id can compute it. It tells devices
/// apart only as far as their user agents differ: two identical laptops are one device.
pub fn device_fingerprint(account: &str, parsed: &ParsedUa) -> OpaqueId {
    let mut h = Sha256::new();
    h.update(b"authtrail-device-v1");
    for part in std::iter::once(account.trim().to_lowercase().as_str())
        .chain(parsed.fingerprint_parts.iter().map(String::as_str))
    {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    let id = format!("fp1-{}", &hex::encode(h.finalize())[..32]);
    OpaqueId::try_from(id).expect("hex with a prefix is a valid opaque id")
}

impl Enricher {
    /// GeoIP databases and user-agent rules from configuration.
    pub fn from_config(cfg: &IngestConfig) -> Result<Self, EnrichError> {
        let ua = match &cfg.user_agent_regexes {
            Some(path) => Arc::new(UaParser::from_file(path)?),
            None => UaParser::builtin()?,
        };
        Ok(Enricher {
            geo: GeoIp::open(&cfg.geoip_databases, cfg.geoip_cache_entries)?,
            ua,
            ua_cache: moka::sync::Cache::new(cfg.user_agent_cache_entries),
        })
    }

    /// From parts (tests, benches).
    pub fn new(geo: GeoIp, ua: Arc<UaParser>, ua_cache_entries: u64) -> Self {
        Enricher {
            geo,
            ua,
            ua_cache: moka::sync::Cache::new(ua_cache_entries),
        }
    }

    pub(crate) fn geoip(&self) -> &GeoIp {
        &self.geo
    }

    /// Parses a user agent through the cache.
    pub fn parse_user_agent(&self, ua: &str) -> Arc<ParsedUa> {
        if let Some(hit) = self.ua_cache.get(ua) {
            return hit;
        }
        let parsed = Arc::new(self.ua.parse(ua));
        self.ua_cache.insert(ua.to_owned(), parsed.clone());
        parsed
    }

    /// Enriches one event in place (see the module docs for what is added).
    pub fn enrich(&self, event: &mut Event) {
        let account = event.partition_key();
        let Some(s) = event.data.client_mut() else {
            return;
        };
        let mut added = Enrichment {
            geoip_database: None,
            geoip_build: None,
            user_agent_parser: None,
            device_id_derived: None,
        };
        let mut changed = false;
        if s.geo.is_none() {
            if let Some(hit) = s.ip.and_then(|ip| self.geo.lookup(ip)) {
                let (name, build) = self.geo.source(&hit);
                added.geoip_database = Some(name.to_owned());
                added.geoip_build = build;
                *s.geo = Some(hit.geo);
                changed = true;
            }
        }
        let wants_device = s.device.is_none();
        let wants_id = s.device_id.as_ref().is_some_and(|id| id.is_none());
        if let Some(ua) = s.user_agent.filter(|u| !u.trim().is_empty()) {
            if wants_device || wants_id {
                let parsed = self.parse_user_agent(ua);
                if wants_device {
                    *s.device = Some(parsed.device.clone());
                    added.user_agent_parser = Some(self.ua.version().to_owned());
                    changed = true;
                }
                if let Some(slot) = s.device_id.filter(|id| id.is_none()) {
                    *slot = Some(device_fingerprint(&account, &parsed));
                    added.device_id_derived = Some(true);
                    changed = true;
                }
            }
        }
        if changed {
            let e = s.enrichment.get_or_insert(Enrichment {
                geoip_database: None,
                geoip_build: None,
                user_agent_parser: None,
                device_id_derived: None,
            });
            if e.geoip_database.is_none() && e.geoip_build.is_none() {
                e.geoip_database = added.geoip_database;
                e.geoip_build = added.geoip_build;
            }
            if e.user_agent_parser.is_none() {
                e.user_agent_parser = added.user_agent_parser;
            }
            if e.device_id_derived.is_none() {
                e.device_id_derived = added.device_id_derived;
            }
        }
    }

    /// Enriches every event; records `authtrail_enrich_seconds`.
    pub fn enrich_all(&self, events: &mut [Event]) {
        let started = Instant::now();
        for e in events.iter_mut() {
            self.enrich(e);
        }
        metrics::histogram!("authtrail_enrich_seconds").record(started.elapsed().as_secs_f64());
    }
}
