//! The authtrail event contract.
//!
//! Every authentication fact is one [CloudEvents 1.0](https://cloudevents.io) event in structured
//! JSON mode, one per Kafka message. This crate is the single definition of that contract, used by
//! everything downstream (ingest, projections, replay) and documented for publishers in other
//! languages in `events/README.md`.
//!
//! Layout:
//! - [`kind`]: the event types ([`EventType`]) and the small closed vocabularies (login method, ...).
//! - [`data`]: one struct per event type — the `data` member — and the shared enrichment shapes.
//! - [`event`]: the envelope ([`Event`]) and its canonical serialisation (the bytes we append).
//! - [`parse`]: the validating parser: bytes in, [`Event`] or a [`ContractError`] naming the field.
//! - [`personal`]: the personal members and their encrypted form (`personaldata`).
//! - [`upcast`]: the hook that lifts older `schemaversion`s to the current one before typing.
//! - [`schema`]: JSON Schema generation; `events/schema/` holds the checked-in output.
//!
//! The contract is strict on purpose: an audit log is kept forever, so a typo (`sesion_id`), an
//! unknown type or a leaked secret is rejected at the door with a reason, never stored.

pub mod data;
pub mod event;
pub mod kind;
pub mod parse;
pub mod personal;
pub mod schema;
pub mod upcast;

pub use data::EventData;
pub use event::Event;
pub use kind::EventType;
pub use parse::{parse, parse_value, ContractError, MAX_EVENT_BYTES};
pub use upcast::CURRENT_SCHEMA_VERSION;
