//! Schemas of query parameters the server checks beyond their Rust type, so the OpenAPI
//! document states the same constraint the handler enforces (`#[param(schema_with = ...)]`).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn one_of(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    string().enum_values(Some(values)).into()
}

/// An IPv4 or IPv6 address (`ip` filters).
pub(crate) fn ip_address() -> RefOr<Schema> {
    let format = |f| string().format(Some(SchemaFormat::KnownFormat(f)));
    OneOfBuilder::new()
        .item(format(KnownFormat::Ipv4))
        .item(format(KnownFormat::Ipv6))
        .into()
}

/// An ISO 3166-1 alpha-2 country code, either case.
pub(crate) fn country_code() -> RefOr<Schema> {
    string().pattern(Some("^[A-Za-z]{2}$")).into()
}

/// A device class, as the intake derives it.
pub(crate) fn device_type() -> RefOr<Schema> {
    one_of(
        authtrail_events::kind::DeviceType::ALL
            .iter()
            .map(|d| d.as_str()),
    )
}

/// One type of the security-event taxonomy.
pub(crate) fn security_event_type() -> RefOr<Schema> {
    one_of(super::security::EVENT_TYPES.iter().copied())
}

/// An opaque cursor: `next_cursor` of the previous page of the same list (base64url). An empty
/// value is the first page.
pub(crate) fn cursor() -> RefOr<Schema> {
    string().pattern(Some("^[A-Za-z0-9_-]*$")).into()
}

/// A page of a list with no filters: `limit` and `cursor` only.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursor)]
    pub(crate) cursor: Option<String>,
}
