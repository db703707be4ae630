//! What simulated people are made of: addresses per country, user agents, names.
//!
//! Addresses are public and chosen so that the GeoIP databases place them in the intended
//! country: the `both` pools are inside ranges of MaxMind's `GeoIP2-City-Test.mmdb` (used by the
//! tests) *and* placed in the same country by DB-IP Lite (used by `./dev run`); the others are
//! placed by DB-IP Lite only (the test database has no answer for them: no geo). Checked by the
//! tests in `tests/simulate.rs`.

/// A country the simulator knows addresses for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Country {
    pub code: &'static str,
    /// Addresses (IPv4 text).
    pub ips: &'static [&'static str],
    /// Whether MaxMind's test database also places `ips` in `code`.
    pub in_test_db: bool,
    /// Rough longitude, for picking a far-away country (impossible travel).
    pub(crate) longitude: f64,
}

pub const COUNTRIES: &[Country] = &[
    Country {
        code: "GB",
        ips: &[
            "81.2.69.142",
            "81.2.69.143",
            "81.2.69.150",
            "81.2.69.161",
            "81.2.69.170",
            "81.2.69.185",
            "81.2.69.196",
            "81.2.69.200",
            "2.125.160.216",
            "2.125.160.219",
        ],
        in_test_db: true,
        longitude: -0.1,
    },
    Country {
        code: "US",
        ips: &[
            "216.160.83.56",
            "216.160.83.57",
            "216.160.83.58",
            "216.160.83.60",
            "216.160.83.62",
            "149.101.100.3",
            "149.101.100.9",
        ],
        in_test_db: true,
        longitude: -100.0,
    },
    Country {
        code: "SE",
        ips: &[
            "89.160.20.112",
            "89.160.20.113",
            "89.160.20.120",
            "89.160.20.130",
            "89.160.20.171",
            "89.160.20.200",
        ],
        in_test_db: true,
        longitude: 16.0,
    },
    Country {
        code: "CN",
        ips: &[
            "175.16.199.10",
            "175.16.199.37",
            "175.16.199.99",
            "175.16.199.200",
        ],
        in_test_db: true,
        longitude: 125.0,
    },
    Country {
        code: "DE",
        ips: &["85.214.132.117", "46.114.1.10"],
        in_test_db: false,
        longitude: 13.0,
    },
    Country {
        code: "FR",
        ips: &["82.64.1.1", "90.1.2.3"],
        in_test_db: false,
        longitude: 2.3,
    },
    Country {
        code: "JP",
        ips: &["126.1.2.3", "133.1.2.3"],
        in_test_db: false,
        longitude: 139.7,
    },
    Country {
        code: "AU",
        ips: &["1.120.1.1", "101.160.1.1"],
        in_test_db: false,
        longitude: 145.0,
    },
    Country {
        code: "BR",
        ips: &["189.6.1.1", "177.10.1.1"],
        in_test_db: false,
        longitude: -47.9,
    },
    Country {
        code: "IN",
        ips: &["117.200.1.1", "49.36.1.1"],
        in_test_db: false,
        longitude: 77.6,
    },
    Country {
        code: "CA",
        ips: &["24.114.1.1", "70.48.1.1"],
        in_test_db: false,
        longitude: -79.4,
    },
    Country {
        code: "RU",
        ips: &["95.24.1.1", "178.64.1.1"],
        in_test_db: false,
        longitude: 37.6,
    },
    Country {
        code: "NG",
        ips: &["197.210.1.1", "105.112.1.1"],
        in_test_db: false,
        longitude: 3.4,
    },
];

/// Home countries of simulated users, with weights.
pub(crate) const HOME_WEIGHTS: &[(&str, u32)] = &[
    ("GB", 30),
    ("US", 30),
    ("SE", 15),
    ("DE", 6),
    ("FR", 6),
    ("CA", 5),
    ("AU", 4),
    ("JP", 4),
];

/// Where attackers come from.
pub(crate) const ATTACKER_COUNTRIES: &[&str] = &["CN", "RU", "NG", "BR", "IN"];

pub(crate) fn country(code: &str) -> &'static Country {
    COUNTRIES
        .iter()
        .find(|c| c.code == code)
        .unwrap_or(&COUNTRIES[0])
}

/// A kind of device a person owns, with a real user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceModel {
    pub(crate) user_agent: &'static str,
    /// A name a user would give it ("iPhone", "Work laptop").
    pub(crate) label: &'static str,
    pub(crate) mobile: bool,
}

pub(crate) const DEVICES: &[DeviceModel] = &[
    DeviceModel {
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        label: "Windows PC",
        mobile: false,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
        label: "Work laptop",
        mobile: false,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        label: "MacBook",
        mobile: false,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        label: "MacBook Pro",
        mobile: false,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        label: "Linux workstation",
        mobile: false,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        label: "iPhone",
        mobile: true,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        label: "iPad",
        mobile: true,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        label: "Pixel 8",
        mobile: true,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        label: "Galaxy S24",
        mobile: true,
    },
    DeviceModel {
        user_agent: "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36",
        label: "Galaxy Tab",
        mobile: true,
    },
];

/// User agents of attack tooling.
pub const ATTACK_USER_AGENTS: &[&str] = &[
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin", "zoe",
    "amir", "bea", "chen", "dmitri", "eko", "fatima", "goran", "hana", "ines", "jonas", "kenji",
    "lena", "mateo", "nora", "oscar", "priya", "quinn", "rosa", "sven",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "smith",
    "jones",
    "taylor",
    "brown",
    "williams",
    "wilson",
    "johnson",
    "davies",
    "miller",
    "andersson",
    "johansson",
    "muller",
    "schmidt",
    "martin",
    "bernard",
    "tanaka",
    "suzuki",
    "silva",
    "santos",
    "kumar",
    "singh",
    "nguyen",
    "kim",
    "lee",
    "garcia",
    "lopez",
    "novak",
    "horvat",
    "ivanova",
    "okafor",
];
