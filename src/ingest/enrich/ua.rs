//! User agent → [`Device`], with `ua-parser` and uap-core's `regexes.yaml`, plus the inputs of
//! the derived device fingerprint.
//!
//! Device type, first rule that applies:
//! 1. `bot`: uap-core's device family `Spider` (crawlers), a family or string naming a bot,
//!    crawler or spider, or a scripted HTTP client (curl, Wget, python-requests, Go-http-client,
//!    Apache-HttpClient, libwww-perl, HTTPie, PostmanRuntime, ...);
//! 2. `tablet`: iPad, Android without the `Mobile` token, a `Tablet` token, Kindle/Silk;
//! 3. `mobile`: iPhone/iPod, Android with `Mobile`, Windows Phone, other mobile OSes, or a
//!    `Mobile` token;
//! 4. `desktop`: Windows, macOS, Linux distributions, ChromeOS, BSDs;
//! 5. `unknown`.
//!
//! iPadOS 13+ Safari sends a desktop macOS user agent by default, so such iPads are `desktop`:
//! nothing in the string tells them apart.
//!
//! Browser and OS names are uap-core's families verbatim ("Chrome", "Mobile Safari", "Edge",
//! "Mac OS X", "iOS"); versions join the parsed parts with dots. `name` is
//! "`<browser>` on `<os>`" (e.g. "Chrome on Windows"), or whichever of the two is known.

use authtrail_events::data::Device;
use authtrail_events::kind::DeviceType;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// uap-core's `regexes.yaml` as shipped in `data/uap/` (built into the binary).
const BUILTIN_REGEXES: &str = include_str!("../../../data/uap/regexes.yaml");
/// The version of [`BUILTIN_REGEXES`], recorded in `data.enrichment.user_agent_parser`.
const BUILTIN_VERSION: &str = "uap-core 0.18.0";

/// What one user agent says. Cheap to clone behind an `Arc` (it is cached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUa {
    pub device: Device,
    /// Normalised (lower-case, trimmed) inputs of the device fingerprint: browser family,
    /// OS family, device family, device brand, device model. No versions: they change with
    /// every update of the same device.
    pub(crate) fingerprint_parts: [String; 5],
}

/// Why the regexes could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("user-agent regexes {source_name}: {reason}")]
pub struct UaError {
    source_name: String,
    reason: String,
}

/// A compiled uap-core rule set.
pub struct UaParser {
    extractor: ua_parser::Extractor<'static>,
    version: String,
}

impl std::fmt::Debug for UaParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaParser")
            .field("version", &self.version)
            .finish()
    }
}

impl UaParser {
    /// The built-in rules, compiled once per process (compiling takes a while).
    pub fn builtin() -> Result<Arc<UaParser>, UaError> {
        static BUILTIN: OnceLock<Arc<UaParser>> = OnceLock::new();
        if let Some(p) = BUILTIN.get() {
            return Ok(p.clone());
        }
        let parser = Arc::new(Self::compile(
            BUILTIN_REGEXES,
            BUILTIN_VERSION.to_owned(),
            "built-in",
        )?);
        Ok(BUILTIN.get_or_init(|| parser).clone())
    }

    /// Rules from a `regexes.yaml` file; the recorded version is `uap-core (<file name>)`.
    pub(crate) fn from_file(path: &Path) -> Result<UaParser, UaError> {
        let name = path.display().to_string();
        let yaml = std::fs::read_to_string(path).map_err(|e| UaError {
            source_name: name.clone(),
            reason: e.to_string(),
        })?;
        let version = format!(
            "uap-core ({})",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        Self::compile(&yaml, version, &name)
    }

    fn compile(yaml: &str, version: String, name: &str) -> Result<UaParser, UaError> {
        let err = |reason: String| UaError {
            source_name: name.to_owned(),
            reason,
        };
        let regexes: ua_parser::Regexes<'static> =
            serde_yaml::from_str(yaml).map_err(|e| err(e.to_string()))?;
        let extractor = ua_parser::Extractor::try_from(regexes).map_err(|e| err(e.to_string()))?;
        Ok(UaParser { extractor, version })
    }

    /// e.g. "uap-core 0.18.0".
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Parses one user agent. Never fails: an unrecognised string gives type `unknown`.
    pub fn parse(&self, ua: &str) -> ParsedUa {
        let (browser, os, dev) = self.extractor.extract(ua);
        let browser_family = browser
            .as_ref()
            .map(|b| b.family.to_string())
            .filter(|f| f != "Other");
        let browser_version = browser
            .as_ref()
            .and_then(|b| join_version([b.major, b.minor, b.patch]));
        let os_family = os
            .as_ref()
            .map(|o| o.os.to_string())
            .filter(|f| f != "Other");
        let os_version = os.as_ref().and_then(|o| {
            join_version([o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()])
        });
        let device_family = dev
            .as_ref()
            .map(|d| d.device.to_string())
            .filter(|f| f != "Other");
        let brand = dev
            .as_ref()
            .and_then(|d| d.brand.as_deref().map(str::to_owned));
        let model = dev
            .as_ref()
            .and_then(|d| d.model.as_deref().map(str::to_owned));

        let device_type = classify(
            ua,
            browser_family.as_deref(),
            os_family.as_deref(),
            device_family.as_deref(),
        );
        let name = match (&browser_family, &os_family) {
            (Some(b), Some(o)) => Some(format!("{b} on {o}")),
            (Some(b), None) => Some(b.clone()),
            (None, Some(o)) => Some(o.clone()),
            (None, None) => None,
        };
        let norm = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_lowercase();
        ParsedUa {
            fingerprint_parts: [
                norm(&browser_family),
                norm(&os_family),
                norm(&device_family),
                norm(&brand),
                norm(&model),
            ],
            device: Device {
                device_type,
                browser: browser_family,
                browser_version,
                os: os_family,
                os_version,
                name,
            },
        }
    }
}

fn join_version(parts: [Option<&str>; 3]) -> Option<String> {
    let parts: Vec<&str> = parts
        .into_iter()
        .map_while(|p| p.filter(|s| !s.is_empty()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

/// Scripted HTTP clients: not people, so `bot` for an audit of who logged in.
const SCRIPTED_CLIENTS: &[&str] = &[
    "curl",
    "wget",
    "python-requests",
    "python requests",
    "python-urllib",
    "go-http-client",
    "apache-httpclient",
    "libwww-perl",
    "httpie",
    "postmanruntime",
    "java",
    "aiohttp",
    "node-fetch",
    "axios",
    "headlesschrome",
];

const DESKTOP_OSES: &[&str] = &[
    "windows",
    "mac os x",
    "macos",
    "linux",
    "ubuntu",
    "debian",
    "fedora",
    "red hat",
    "suse",
    "opensuse",
    "arch linux",
    "mint",
    "gentoo",
    "chrome os",
    "chromeos",
    "freebsd",
    "openbsd",
    "netbsd",
    "solaris",
];

const MOBILE_OSES: &[&str] = &[
    "ios",
    "android",
    "windows phone",
    "blackberry os",
    "blackberry tablet os",
    "kaios",
    "firefox os",
    "tizen",
    "sailfish",
    "symbian os",
    "harmonyos",
];

fn classify(ua: &str, browser: Option<&str>, os: Option<&str>, device: Option<&str>) -> DeviceType {
    let lower = ua.to_ascii_lowercase();
    let browser_l = browser.unwrap_or("").to_ascii_lowercase();
    let os_l = os.unwrap_or("").to_ascii_lowercase();
    let device_l = device.unwrap_or("").to_ascii_lowercase();

    let botlike = |s: &str| s.contains("bot") || s.contains("crawler") || s.contains("spider");
    if device_l == "spider"
        || botlike(&browser_l)
        || (botlike(&lower) && !lower.contains("cubot")) // Cubot is a phone brand
        || SCRIPTED_CLIENTS
            .iter()
            .any(|c| browser_l == *c || lower.starts_with(c) || lower.contains(&format!(" {c}/")))
    {
        return DeviceType::Bot;
    }
    let android = os_l == "android" || lower.contains("android");
    if device_l == "ipad"
        || lower.contains("ipad")
        || lower.contains("tablet")
        || lower.contains("kindle")
        || lower.contains("silk/")
        || (android && !lower.contains("mobile"))
    {
        return DeviceType::Tablet;
    }
    if device_l == "iphone"
        || device_l == "ipod"
        || lower.contains("iphone")
        || lower.contains("ipod")
        || android
        || MOBILE_OSES.contains(&os_l.as_str())
        || lower.contains("mobile")
    {
        return DeviceType::Mobile;
    }
    if DESKTOP_OSES.contains(&os_l.as_str())
        || os_l.starts_with("windows")
        || lower.contains("windows nt")
        || lower.contains("macintosh")
        || lower.contains("x11")
    {
        return DeviceType::Desktop;
    }
    DeviceType::Unknown
}
