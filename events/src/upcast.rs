//! Upcasting: reading events written at an older `schemaversion`.
//!
//! The log is kept forever, so a reader must understand every version ever written. When the
//! shape of a type's `data` changes, bump [`CURRENT_SCHEMA_VERSION`] and append one step to
//! [`STEPS`] that lifts `data` from the previous version; [`upcast`] chains the steps. The typed
//! structs only ever describe the current version. Writers always write the current version.

use crate::kind::EventType;
use crate::parse::ContractError;
use serde_json::Value;

/// The version every [`crate::Event`] is at, and the one the publisher writes.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// Lifts `data` of the given type by one version.
pub type Step = fn(EventType, Value) -> Result<Value, ContractError>;

/// `STEPS[i]` lifts version `i + 1` to `i + 2`. Version 1 is the first: nothing to lift yet.
pub const STEPS: &[Step] = &[];

/// Lifts `data` written at `version` to [`CURRENT_SCHEMA_VERSION`].
pub fn upcast(event_type: EventType, version: u64, data: Value) -> Result<Value, ContractError> {
    if version == 0 || version > u64::from(CURRENT_SCHEMA_VERSION) {
        return Err(ContractError::new(
            "schemaversion",
            format!(
                "unknown schemaversion {version}; this build reads 1 to {CURRENT_SCHEMA_VERSION}"
            ),
        ));
    }
    STEPS[(version - 1) as usize..]
        .iter()
        .try_fold(data, |data, step| step(event_type, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_per_version() {
        assert_eq!(STEPS.len() as u32, CURRENT_SCHEMA_VERSION - 1);
    }

    #[test]
    fn current_version_passes_through_and_others_are_refused() {
        let data = serde_json::json!({"session_id": "s1"});
        let up = upcast(
            EventType::SessionLoggedOut,
            CURRENT_SCHEMA_VERSION.into(),
            data.clone(),
        );
        assert_eq!(up.unwrap(), data);
        for bad in [0, u64::from(CURRENT_SCHEMA_VERSION) + 1, u64::MAX] {
            let err = upcast(EventType::SessionLoggedOut, bad, data.clone()).unwrap_err();
            assert_eq!(err.field, "schemaversion");
        }
    }
}
