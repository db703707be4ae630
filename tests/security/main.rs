//! Trust boundaries, one module per kind of attacker (issue 17). Every test is named after the
//! attack it stops and runs against the real broker and database where the attack would.
//!
//! - `publisher`: what an intake credential may append (types, sources, time, the stamp).
//! - `tokens`: a person's token checked against the session state authtrail holds.
//! - `jwt`: tokens as an identity provider issues them (iss, aud, JWKS, rotation).
//! - `admin`: powers reserved to super_admin; nobody reviews themselves.
//! - `costs`: per-caller limits on everything a caller can make authtrail do.
//! - `input`: bad input found by machines (fuzzing), format characters, CSV cells.
//! - `browser`: headers and the dashboard's token handling.
//! - `secrets`: what configuration output and start-up checks do with credentials.
//! - `sql`: identifiers written into SQL.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod browser;
mod costs;
mod input;
mod jwt;
mod publisher;
mod secrets;
mod sql;
mod tokens;
