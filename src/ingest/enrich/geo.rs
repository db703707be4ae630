//! GeoIP: address → [`Geo`], from MaxMind-format city databases, with a bounded cache.
//!
//! Two schemas are read: MaxMind's GeoIP2/GeoLite2 City (`country.iso_code`, `country.names.en`,
//! `city.names.en`, `location`), and the flat one of DB-IP Lite as packaged by ip-location-db
//! (`country_code`, `city`, `latitude`, `longitude`; the country name then comes from
//! `super::countries`). The schema is chosen from the database's `database_type`.
//!
//! Only globally routable addresses are looked up: private, loopback, link-local, CGNAT,
//! documentation, multicast, unspecified and reserved ranges get no geo, and neither does an
//! address the database does not know. Coordinates are rounded to 4 decimals (about 11 m);
//! a district suffix in parentheses ("Berlin (Mitte)") is dropped from city names.

use super::countries::country_name;
use authtrail_events::data::Geo;
use chrono::{DateTime, Utc};
use maxminddb::{geoip2, Mmap, Reader};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// One opened database.
struct Database {
    /// The file stem, e.g. `GeoIP2-City-Test` or `dbip-city-ipv4`: recorded in events.
    name: String,
    build: Option<DateTime<Utc>>,
    ip_version: u16,
    schema: Schema,
    reader: Reader<Mmap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    GeoIp2City,
    Flat,
}

/// The flat record of DB-IP Lite (ip-location-db packaging).
#[derive(Deserialize)]
struct FlatCity<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    city: Option<&'a str>,
    /// Stored as 32-bit floats.
    #[serde(default)]
    latitude: Option<f32>,
    #[serde(default)]
    longitude: Option<f32>,
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoHit {
    pub geo: Geo,
    /// Index into the opened databases.
    db: usize,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("GeoIP database {path}: {reason}")]
pub struct GeoError {
    path: PathBuf,
    reason: String,
}

/// The opened databases and the lookup cache.
pub struct GeoIp {
    dbs: Vec<Database>,
    cache: moka::sync::Cache<IpAddr, Option<GeoHit>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field(
                "databases",
                &self.dbs.iter().map(|d| &d.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GeoIp {
    /// Opens the databases that exist (missing files are skipped with a warning); a file that
    /// exists but is not a readable MaxMind DB is an error.
    pub fn open(paths: &[PathBuf], cache_entries: u64) -> Result<Self, GeoError> {
        let mut dbs = Vec::new();
        for path in paths {
            if !path.exists() {
                tracing::warn!(path = %path.display(), "GeoIP database not found; skipping it");
                continue;
            }
            dbs.push(open_one(path)?);
        }
        if dbs.is_empty() {
            // Loud on purpose: a deployment without GeoIP data looks healthy otherwise.
            tracing::warn!(
                configured = ?paths,
                "NO GEOIP DATABASE: events get no country or city, and the new-country rule never \
                 fires; fetch one (data/geoip/fetch-dbip.sh) and set ingest.geoip_databases. \
                 every /readyz check logs it again"
            );
        }
        for d in &dbs {
            tracing::info!(database = %d.name, build = ?d.build, ip_version = d.ip_version, "GeoIP database opened");
        }
        Ok(GeoIp {
            dbs,
            cache: moka::sync::Cache::new(cache_entries),
        })
    }

    /// No databases: every lookup answers `None`.
    pub fn empty() -> Self {
        GeoIp {
            dbs: Vec::new(),
            cache: moka::sync::Cache::new(1),
        }
    }

    /// Names of the opened databases, in lookup order.
    pub fn databases(&self) -> Vec<&str> {
        self.dbs.iter().map(|d| d.name.as_str()).collect()
    }

    /// The location of a public address, if a database knows it.
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoHit> {
        let ip = canonical(ip);
        if self.dbs.is_empty() || !is_public(ip) {
            return None;
        }
        self.cache.get_with(ip, || self.lookup_uncached(ip))
    }

    /// Name and build date of the database behind a hit.
    pub fn source(&self, hit: &GeoHit) -> (&str, Option<DateTime<Utc>>) {
        let d = &self.dbs[hit.db];
        (&d.name, d.build)
    }

    fn lookup_uncached(&self, ip: IpAddr) -> Option<GeoHit> {
        for (i, db) in self.dbs.iter().enumerate() {
            if ip.is_ipv6() && db.ip_version == 4 {
                continue;
            }
            match db.lookup(ip) {
                Ok(Some(geo)) => return Some(GeoHit { geo, db: i }),
                Ok(None) => {}
                Err(e) => {
                    // The address is personal data: never logged.
                    tracing::warn!(database = %db.name, error = %e, "GeoIP lookup failed")
                }
            }
        }
        None
    }
}

fn open_one(path: &Path) -> Result<Database, GeoError> {
    let err = |reason: String| GeoError {
        path: path.to_owned(),
        reason,
    };
    // SAFETY: the database files are read-only inputs that authtrail never writes; operators
    // replace them by writing a new file and renaming it over the old one (which keeps the
    // mapped inode intact), as `data/geoip/fetch-dbip.sh` does.
    let reader = unsafe { Reader::open_mmap(path) }.map_err(|e| err(e.to_string()))?;
    let meta = reader.metadata();
    let schema = if meta.database_type.contains("GeoIP2") || meta.database_type.contains("GeoLite2")
    {
        Schema::GeoIp2City
    } else {
        Schema::Flat
    };
    let build = i64::try_from(meta.build_epoch)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| meta.database_type.clone());
    Ok(Database {
        name,
        build,
        ip_version: meta.ip_version,
        schema,
        reader,
    })
}

impl Database {
    fn lookup(&self, ip: IpAddr) -> Result<Option<Geo>, maxminddb::MaxMindDbError> {
        let result = self.reader.lookup(ip)?;
        let geo = match self.schema {
            Schema::GeoIp2City => result.decode::<geoip2::City>()?.map(|c| {
                let code = c.country.iso_code.map(str::to_owned);
                Geo {
                    country: c
                        .country
                        .names
                        .english
                        .map(str::to_owned)
                        .or_else(|| code.as_deref().and_then(country_name).map(str::to_owned)),
                    country_code: code,
                    city: c.city.names.english.map(clean_city),
                    latitude: c.location.latitude.map(round4),
                    longitude: c.location.longitude.map(round4),
                }
            }),
            Schema::Flat => result.decode::<FlatCity>()?.map(|c| {
                let code = c
                    .country_code
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_ascii_uppercase());
                Geo {
                    country: code.as_deref().and_then(country_name).map(str::to_owned),
                    country_code: code,
                    city: c.city.filter(|s| !s.is_empty()).map(clean_city),
                    latitude: c.latitude.map(|v| round4(f64::from(v))),
                    longitude: c.longitude.map(|v| round4(f64::from(v))),
                }
            }),
        };
        // A record must at least name a valid country to count; coordinates must be in range
        // (the contract refuses anything else).
        Ok(geo.and_then(sanitize))
    }
}

fn sanitize(mut g: Geo) -> Option<Geo> {
    match &g.country_code {
        Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) => {}
        _ => return None,
    }
    if !(g.latitude.is_some_and(|v| (-90.0..=90.0).contains(&v))
        && g.longitude.is_some_and(|v| (-180.0..=180.0).contains(&v)))
    {
        g.latitude = None;
        g.longitude = None;
    }
    Some(g)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// "Berlin (Charlottenburg-Wilmersdorf)" → "Berlin".
fn clean_city(s: &str) -> String {
    let s = s.trim();
    match s.find(" (") {
        Some(i) if s.ends_with(')') && i > 0 => s[..i].to_owned(),
        _ => s.to_owned(),
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether an address is globally routable (worth a GeoIP lookup).
fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard-only
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "81.2.69.142",
            "8.8.8.8",
            "2001:4860::8888",
            "::ffff:81.2.69.142",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn city_suffixes_are_dropped() {
        assert_eq!(clean_city("Berlin (Charlottenburg-Wilmersdorf)"), "Berlin");
        assert_eq!(clean_city("London"), "London");
        assert_eq!(clean_city("(x)"), "(x)");
    }
}
