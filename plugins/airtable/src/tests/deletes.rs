//! Deletes through webhooks (`deletes = "webhook"`): what the connector asks Airtable's webhooks
//! API, the tombstones it emits, and when it says continuity was lost.

use serde_json::{Value, json};
use weir_connector_sdk::{Connector, ConnectorError, IngestionType};

use super::{COMPLIANCE, MockHost, connection, json as answer, opts, rows};
use crate::Airtable;

const HOOKS: &str = "https://api.airtable.com/v0/bases/appLaunch0000001/webhooks";
const DAY_MS: i64 = 86_400_000;

fn deletes() -> weir_connector_sdk::Options {
    opts(&[("deletes", "webhook")])
}

fn offset(webhook: &str, cursor: u64, refreshed_ms: i64) -> String {
    json!({"webhook": webhook, "cursor": cursor, "refreshed_ms": refreshed_ms}).to_string()
}

fn read(host: &MockHost, start: Option<&str>) -> Result<weir_connector_sdk::Page, ConnectorError> {
    Airtable::read_deletes(host, &connection(), "Compliance Records", &deletes(), start)
}

/// The resume offset of a continuity-lost error.
fn resumed(err: ConnectorError) -> (String, Value) {
    match err {
        ConnectorError::ContinuityLost { reason, resume_offset } => {
            (reason, serde_json::from_str(&resume_offset).expect("a JSON offset"))
        }
        other => panic!("expected continuity-lost, got {other}"),
    }
}

fn spec() -> Value {
    json!({"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": COMPLIANCE, "changeTypes": ["remove"]}}})
}

#[test]
fn the_option_makes_a_cdc_table_cdc_with_deletes_and_is_refused_elsewhere() {
    let host = MockHost::with_meta();
    let m = Airtable::table_metadata(&host, &connection(), "Compliance Records", &deletes()).unwrap();
    assert_eq!(m.ingestion_type, IngestionType::CdcWithDeletes);
    let err = Airtable::table_metadata(&host, &connection(), "Vendors", &deletes()).unwrap_err();
    assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains("needs a cdc table")), "{err}");
    // Without the option, deletes end at once and ask nothing.
    let page = Airtable::read_deletes(&host, &connection(), "Compliance Records", &opts(&[]), None).unwrap();
    assert_eq!(page.end_offset, "{}");
    assert!(host.record_requests().is_empty());
}

#[test]
fn the_first_read_creates_a_webhook_or_takes_over_one_with_its_specification() {
    let host = MockHost::with_meta();
    host.route_once(HOOKS, &[], answer(200, r#"{"webhooks": []}"#));
    host.route(
        HOOKS,
        &[],
        answer(200, r#"{"id": "achNew", "macSecretBase64": "x", "expirationTime": null}"#),
    );
    let (reason, resume) = resumed(read(&host, None).unwrap_err());
    assert!(reason.contains("achNew"), "{reason}");
    assert_eq!((resume["webhook"].as_str(), resume["cursor"].as_u64()), (Some("achNew"), Some(1)));
    let created = host.record_requests().into_iter().find(|s| s.method == "POST").expect("a create");
    assert_eq!(created.body, Some(json!({"specification": spec()})));

    // A webhook with the same specification (a crash before the offset was committed) is taken
    // over at its cursor; one watching something else is not.
    let host = MockHost::with_meta();
    let listed = json!({"webhooks": [
        {"id": "achOther", "cursorForNextPayload": 4, "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}},
        {"id": "achMine", "cursorForNextPayload": 7, "specification": spec()},
    ]});
    host.route(HOOKS, &[], answer(200, &listed.to_string()));
    let (_, resume) = resumed(read(&host, None).unwrap_err());
    assert_eq!((resume["webhook"].as_str(), resume["cursor"].as_u64()), (Some("achMine"), Some(7)));
    assert!(host.record_requests().iter().all(|s| s.method == "GET"), "no second webhook");
}

#[test]
fn payloads_become_tombstones_stamped_with_their_time() {
    let host = MockHost::with_meta();
    let now = crate::time::now_ms();
    let payloads = json!({"cursor": 6, "mightHaveMore": false, "payloads": [
        {"timestamp": "2026-01-02T03:04:05.000Z", "baseTransactionNumber": 9,
         "changedTablesById": {COMPLIANCE: {"destroyedRecordIds": ["recA", "recB"]}}},
        {"timestamp": "2026-01-02T03:05:00.000Z", "baseTransactionNumber": 10,
         "changedTablesById": {"tblOther": {"destroyedRecordIds": ["recX"]}}},
        {"timestamp": "2026-01-02T03:06:00.000Z", "baseTransactionNumber": 11,
         "changedTablesById": {COMPLIANCE: {"changedRecordsById": {"recC": {}}}}},
    ]});
    host.route(
        &format!("{HOOKS}/achA/payloads"),
        &[("cursor", Some("3"))],
        answer(200, &payloads.to_string()),
    );
    let start = offset("achA", 3, now);
    let page = read(&host, Some(&start)).unwrap();
    assert_eq!(
        rows(&page),
        [
            json!({"id": "recA", "updated": "2026-01-02T03:04:05.000Z"}),
            json!({"id": "recB", "updated": "2026-01-02T03:04:05.000Z"})
        ]
    );
    assert_eq!(page.end_offset, offset("achA", 6, now));
    // Nothing new from the next cursor: the read ends where it started.
    host.route(
        &format!("{HOOKS}/achA/payloads"),
        &[("cursor", Some("6"))],
        answer(200, r#"{"cursor": 6, "mightHaveMore": false, "payloads": []}"#),
    );
    let last = read(&host, Some(&page.end_offset)).unwrap();
    assert_eq!(last.end_offset, page.end_offset);
    assert!(
        host.record_requests().iter().all(|s| !s.path.ends_with("/refresh")),
        "refreshed less than a day ago"
    );
}

#[test]
fn a_day_old_refresh_refreshes_and_a_gone_webhook_loses_continuity() {
    let host = MockHost::with_meta();
    let now = crate::time::now_ms();
    host.route(
        &format!("{HOOKS}/achA/refresh"),
        &[],
        answer(200, r#"{"expirationTime": "2026-01-09T00:00:00.000Z"}"#),
    );
    host.route(
        &format!("{HOOKS}/achA/payloads"),
        &[("cursor", Some("2"))],
        answer(200, r#"{"cursor": 2, "mightHaveMore": false, "payloads": []}"#),
    );
    let page = read(&host, Some(&offset("achA", 2, now - 2 * DAY_MS))).unwrap();
    let end: Value = serde_json::from_str(&page.end_offset).unwrap();
    assert!(end["refreshed_ms"].as_i64().unwrap() >= now, "{end}");

    let host = MockHost::with_meta();
    let gone = r#"{"error": {"type": "NOT_FOUND", "message": "Could not find webhook achA"}}"#;
    host.route(&format!("{HOOKS}/achA/refresh"), &[], answer(404, gone));
    host.route_once(HOOKS, &[], answer(200, r#"{"webhooks": []}"#));
    host.route(HOOKS, &[], answer(200, r#"{"id": "achB"}"#));
    let (reason, resume) = resumed(read(&host, Some(&offset("achA", 2, now - 8 * DAY_MS))).unwrap_err());
    assert!(reason.contains("achA expired or was deleted"), "{reason}");
    assert_eq!((resume["webhook"].as_str(), resume["cursor"].as_u64()), (Some("achB"), Some(1)));
}

#[test]
fn payloads_past_retention_lose_continuity_at_the_webhooks_current_cursor() {
    let host = MockHost::with_meta();
    let now = crate::time::now_ms();
    let past = r#"{"error": {"type": "WEBHOOK_PAYLOADS_NOT_AVAILABLE", "message": "kept 7 days"}}"#;
    host.route(&format!("{HOOKS}/achA/payloads"), &[("cursor", Some("2"))], answer(422, past));
    let listed = json!({"webhooks": [{"id": "achA", "cursorForNextPayload": 40, "specification": spec()}]});
    host.route(HOOKS, &[], answer(200, &listed.to_string()));
    let (reason, resume) = resumed(read(&host, Some(&offset("achA", 2, now))).unwrap_err());
    assert!(reason.contains("past Airtable's retention"), "{reason}");
    assert_eq!((resume["webhook"].as_str(), resume["cursor"].as_u64()), (Some("achA"), Some(40)));
}

#[test]
fn release_deletes_the_webhook_its_offset_names() {
    let host = MockHost::with_meta();
    host.route(&format!("{HOOKS}/achA"), &[], answer(200, "{}"));
    let start = offset("achA", 5, 0);
    let mut options = deletes();
    options.insert("weir.release".into(), "true".into());
    let page =
        Airtable::read_deletes(&host, &connection(), "Compliance Records", &options, Some(&start)).unwrap();
    assert_eq!(page.end_offset, start);
    let sent = host.record_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("DELETE", &format!("{HOOKS}/achA") as &str)
    );
    // A webhook already gone is released too.
    let host = MockHost::with_meta();
    host.route(&format!("{HOOKS}/achA"), &[], answer(404, r#"{"error": "NOT_FOUND"}"#));
    assert!(
        Airtable::read_deletes(&host, &connection(), "Compliance Records", &options, Some(&start)).is_ok()
    );
}
