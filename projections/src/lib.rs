//! The pure fold of authtrail: `(prior state, event) -> row changes`.
//!
//! This crate knows the event contract ([`authtrail_events`]) and nothing of SQL, Kafka or clocks:
//! every derived value depends only on the events it is given, so a replay of the same log always
//! yields the same rows. The projection workers (in the main crate) own all I/O.
//!
//! The fold itself arrives with the projections issue; this shell fixes the crate's place in the
//! data flow (events -> projections -> sink).

pub use authtrail_events as events;
