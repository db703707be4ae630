//! Tamper evidence for the log: a SHA-256 chain per partition of the events topic, and signed
//! checkpoints of it (docs/sealing.md).
//!
//! - [`chain`]: record digests, the chain, checkpoints and their Ed25519 signatures (pure).
//! - [`worker`]: the seal worker (inside `serve` with `seal.enabled`): follows the log, stores
//!   a checkpoint every `seal.every_records` records or `seal.every_secs` seconds in
//!   PostgreSQL (`seal_checkpoints`) and on the seals topic.
//! - [`verify`]: `authtrail verify` — the log re-read against the checkpoints.

pub mod chain;
pub mod verify;
pub mod worker;
