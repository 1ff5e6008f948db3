//! Errors: unknown tables and options, Airtable's error bodies, transport failures.

use weir_connector_sdk::{Connector, ConnectorError, HttpError};

use super::*;
use crate::Airtable;

#[test]
fn list_tables_returns_names_in_base_order() {
    let host = MockHost::with_meta();
    let tables = Airtable::list_tables(&host, &connection()).unwrap();
    assert_eq!(tables, ["SKU Candidates", "🚀 Launch Milestones", "Vendors", "Compliance Records"]);
}

#[test]
fn a_trailing_slash_on_base_url_is_tolerated() {
    let host = MockHost::default();
    host.route("http://127.0.0.1:8080/v0/meta/bases/appLaunch0000001/tables", &[], json(200, META));
    let options = opts(&[("base_id", "appLaunch0000001"), ("base_url", "http://127.0.0.1:8080/")]);
    assert_eq!(Airtable::list_tables(&host, &options).unwrap().len(), 4);
}

#[test]
fn without_base_id_a_table_needs_its_base_named_before_anything_is_sent() {
    let host = MockHost::default();
    assert_eq!(Airtable::list_tables(&host, &opts(&[])).unwrap(), Vec::<String>::new());
    let err = Airtable::table_schema(&host, &opts(&[]), "Vendors", &opts(&[])).unwrap_err();
    assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains("base_id")), "{err}");
    assert!(host.sent.borrow().is_empty());
}

#[test]
fn bases_are_namespaces_when_the_connection_names_none() {
    let host = MockHost::default();
    host.route(
        "https://api.airtable.com/v0/meta/bases",
        &[("offset", None)],
        json(
            200,
            r#"{"bases":[{"id":"appLaunch0000001","name":"Launch","permissionLevel":"read"}],"offset":"p2"}"#,
        ),
    );
    host.route(
        "https://api.airtable.com/v0/meta/bases",
        &[("offset", Some("p2"))],
        json(200, r#"{"bases":[{"id":"appOther","name":"Other","permissionLevel":"create"}]}"#),
    );
    host.route(META_URL, &[], json(200, META));
    let open = opts(&[]);
    let bases = Airtable::list_namespaces(&host, &open, &[]).unwrap();
    assert_eq!(bases, [vec!["appLaunch0000001".to_string()], vec!["appOther".to_string()]]);
    assert!(Airtable::list_namespaces(&host, &open, &bases[0]).unwrap().is_empty());
    assert_eq!(Airtable::list_tables_in_namespace(&host, &open, &bases[0]).unwrap().len(), 4);
    let in_base = opts(&[("namespace", r#"["appLaunch0000001"]"#)]);
    assert!(Airtable::table_schema(&host, &open, "Vendors", &in_base).is_ok());
    // A connection scoped to one base shows its tables at the root and no namespaces.
    assert!(Airtable::list_namespaces(&host, &connection(), &[]).unwrap().is_empty());
}

#[test]
fn every_call_names_an_unknown_table_without_listing_records() {
    let host = MockHost::with_meta();
    let (c, t, none) = (connection(), opts(&[]), ConnectorError::UnknownTable("Nope".into()));
    assert_eq!(Airtable::table_schema(&host, &c, "Nope", &t).unwrap_err(), none);
    assert_eq!(Airtable::table_metadata(&host, &c, "Nope", &t).unwrap_err(), none);
    assert_eq!(Airtable::read_table(&host, &c, "Nope", &t, None).unwrap_err(), none);
    assert!(host.record_requests().is_empty());
}

#[test]
fn an_unknown_option_is_named_with_the_valid_ones() {
    let host = MockHost::with_meta();
    let err =
        Airtable::table_schema(&host, &connection(), "Vendors", &opts(&[("veiw", "Grid")])).unwrap_err();
    let ConnectorError::InvalidOptions(message) = &err else { panic!("{err}") };
    assert!(message.contains("\"veiw\""), "{message}");
    for valid in crate::TABLE_OPTIONS {
        assert!(message.contains(valid), "{message} lacks {valid}");
    }
    assert!(host.sent.borrow().is_empty());
}

#[test]
fn host_reserved_keys_pass_through() {
    let host = MockHost::with_meta();
    let options = opts(&[("scd_type", "SCD_TYPE_1"), ("primary_keys", "id"), ("weir.batch_rows", "10")]);
    assert!(Airtable::table_schema(&host, &connection(), "Vendors", &options).is_ok());
}

fn meta_error(status: u16, body: &str) -> ConnectorError {
    let host = MockHost::default();
    host.route(META_URL, &[], json(status, body));
    Airtable::list_tables(&host, &connection()).unwrap_err()
}

#[test]
fn auth_failures_carry_airtables_error_type() {
    let err = meta_error(
        401,
        r#"{"error":{"type":"AUTHENTICATION_REQUIRED","message":"Authentication required"}}"#,
    );
    assert!(
        matches!(&err, ConnectorError::Auth(m) if m.starts_with("AUTHENTICATION_REQUIRED: Authentication required")),
        "{err}"
    );
    let body =
        r#"{"error":{"type":"INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND","message":"Invalid permissions"}}"#;
    let err = meta_error(403, body);
    assert!(
        matches!(&err, ConnectorError::Auth(m) if m.contains("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")),
        "{err}"
    );
    assert!(!err.to_string().to_lowercase().contains("bearer"));
}

#[test]
fn rate_limits_source_errors_and_bare_string_errors_are_told_apart() {
    let err = meta_error(429, r#"{"error":{"type":"RATE_LIMIT_REACHED","message":"Rate limit exceeded"}}"#);
    assert!(matches!(&err, ConnectorError::RateLimited(m) if m.contains("RATE_LIMIT_REACHED")), "{err}");
    let err = meta_error(404, r#"{"error":"NOT_FOUND"}"#);
    assert!(
        matches!(&err, ConnectorError::Source { status: 404, message } if message.starts_with("NOT_FOUND")),
        "{err}"
    );
    let err = meta_error(503, "Service Unavailable");
    assert!(
        matches!(&err, ConnectorError::Source { status: 503, message } if message.contains("Service Unavailable"))
    );
}

#[test]
fn a_bad_formula_is_a_422_source_error_with_its_type() {
    let host = MockHost::with_meta();
    let body = r#"{"error":{"type":"INVALID_FILTER_BY_FORMULA","message":"The formula for filtering records is invalid"}}"#;
    host.route(&records_url(VENDORS), &[], json(422, body));
    let options = opts(&[("filter_by_formula", "{Nope")]);
    let err = Airtable::read_table(&host, &connection(), "Vendors", &options, None).unwrap_err();
    assert!(
        matches!(&err, ConnectorError::Source { status: 422, message } if message.contains("INVALID_FILTER_BY_FORMULA")),
        "{err}"
    );
}

#[test]
fn a_table_deleted_between_meta_and_records_is_unknown() {
    let host = MockHost::with_meta();
    host.route(
        &records_url(VENDORS),
        &[],
        json(404, r#"{"error":{"type":"TABLE_NOT_FOUND","message":"gone"}}"#),
    );
    let err = Airtable::read_table(&host, &connection(), "Vendors", &opts(&[]), None).unwrap_err();
    assert_eq!(err, ConnectorError::UnknownTable("Vendors".into()));
}

#[test]
fn transport_failures_are_internal_errors_with_the_hosts_reason() {
    let host = MockHost::default();
    host.route(META_URL, &[], Err(HttpError::Timeout("no answer within 30s".into())));
    let err = Airtable::list_tables(&host, &connection()).unwrap_err();
    assert!(matches!(&err, ConnectorError::Internal(m) if m.contains("no answer within 30s")), "{err}");
    let host = MockHost::default();
    host.route(META_URL, &[], Err(HttpError::Denied("origin not allowed".into())));
    let err = Airtable::list_tables(&host, &connection()).unwrap_err();
    assert!(matches!(&err, ConnectorError::Internal(m) if m.contains("origin not allowed")), "{err}");
}

#[test]
fn an_unparseable_body_is_an_internal_error_with_an_excerpt() {
    let host = MockHost::default();
    host.route(META_URL, &[], json(200, &format!("<html>{}</html>", "x".repeat(5000))));
    let err = Airtable::list_tables(&host, &connection()).unwrap_err();
    let ConnectorError::Internal(message) = &err else { panic!("{err}") };
    assert!(message.contains("<html>xxx"), "{message}");
    assert!(message.len() < 600, "the excerpt is short: {} bytes", message.len());
}

#[test]
fn a_start_offset_that_is_not_json_is_refused() {
    let host = MockHost::with_meta();
    let err = Airtable::read_table(&host, &connection(), "Vendors", &opts(&[]), Some("page 3")).unwrap_err();
    assert!(matches!(err, ConnectorError::InvalidOptions(_)));
}
