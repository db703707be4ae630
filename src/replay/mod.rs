//! Reading history again: `authtrail replay` (a slice of the log for analysts), `authtrail
//! rebuild` (every projection rebuilt from offset 0 and swapped in) and time travel
//! (`authtrail as-of`, and the fold behind the admin route answering one user's sessions at an
//! instant, which the query API serves).
//!
//! All of it reads the topic with consumers of its own (assigned partitions, no group, no
//! commits) and builds with the live code: the sink ([`crate::projector::apply_batch`]) into
//! another schema, or the pure fold in memory.

pub(crate) mod asof;
pub mod export;
pub mod log;
pub mod rebuild;
pub mod schema;
