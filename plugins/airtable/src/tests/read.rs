//! Paging: snapshot and cdc offsets, termination, iterator expiry, the POST switch.

use serde_json::{Value, json};
use weir_connector_sdk::Connector;

use super::*;
use crate::Airtable;
use crate::time::parse_ms;

/// What the host loop saw: every page in order.
struct Drained {
    pages: Vec<Page>,
    starts: Vec<Option<String>>,
    rows: Vec<Value>,
}

/// Calls read_table the way the host does, until a page's end offset equals its start.
fn drain(
    host: &MockHost,
    table: &str,
    table_options: &[(&str, &str)],
    start: Option<&str>,
    now: &str,
) -> Drained {
    let now = parse_ms(now).expect("a time");
    let options = opts(table_options);
    let mut start = start.map(str::to_string);
    let mut out = Drained { pages: vec![], starts: vec![], rows: vec![] };
    for _ in 0..20 {
        let page = Airtable::read_table_at(host, &connection(), table, &options, start.as_deref(), || now)
            .expect("read_table");
        out.rows.extend(rows(&page));
        out.starts.push(start.clone());
        let done = start.as_deref() == Some(page.end_offset.as_str());
        start = Some(page.end_offset.clone());
        out.pages.push(page);
        if done {
            return out;
        }
    }
    panic!("the read did not terminate within 20 calls");
}

fn offset(page: &Page) -> Value {
    serde_json::from_str(&page.end_offset).expect("offsets are JSON")
}

fn vendor(n: u32) -> Value {
    record(&format!("recV{n}"), json!({"fldV1": format!("Vendor {n}")}))
}

#[test]
fn a_snapshot_pages_through_tokens_then_completes_and_stops() {
    let host = MockHost::with_meta();
    let url = records_url(VENDORS);
    host.route(&url, &[("offset", None)], records(&[vendor(1), vendor(2)], Some("itr1/recV2")));
    host.route(&url, &[("offset", Some("itr1/recV2"))], records(&[vendor(3), vendor(4)], Some("itr1/recV4")));
    host.route(&url, &[("offset", Some("itr1/recV4"))], records(&[vendor(5)], None));

    let d = drain(&host, "Vendors", &[("page_size", "2")], None, "2024-05-01T00:00:00Z");
    assert_eq!(ids(&d.rows), ["recV1", "recV2", "recV3", "recV4", "recV5"]);
    let offsets: Vec<Value> = d.pages.iter().map(offset).collect();
    assert_eq!(
        offsets,
        [
            json!({"page": "itr1/recV2", "emitted": 2, "last": ["recV1", "recV2"]}),
            json!({"page": "itr1/recV4", "emitted": 4, "last": ["recV1", "recV2", "recV3", "recV4"]}),
            json!({"snapshot": "complete"}),
            json!({"snapshot": "complete"}),
        ]
    );
    let checkpointable: Vec<bool> = d.pages.iter().map(|p| p.checkpointable).collect();
    assert_eq!(checkpointable, [false, false, true, true]);
    // The completed snapshot ends without asking Airtable for records again.
    let sent = host.record_requests();
    assert_eq!(sent.len(), 3);
    for s in &sent {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("GET", url.as_str()));
        assert_eq!(s.param("pageSize"), Some("2"));
        assert_eq!(s.param("cellFormat"), Some("json"));
        assert_eq!(s.param("returnFieldsByFieldId"), Some("true"));
        assert!(s.headers.iter().all(|(k, _)| !k.eq_ignore_ascii_case("authorization")));
    }
    // Only the read's first page asks for the meta: later pages must not halve the
    // request budget (5/s per base) by fetching it again.
    let meta = host.sent.borrow().iter().filter(|s| s.path.contains("/v0/meta/")).count();
    assert_eq!(meta, 1, "{:?}", host.sent.borrow().iter().map(|s| &s.path).collect::<Vec<_>>());
}

#[test]
fn an_empty_table_completes_at_once() {
    let host = MockHost::with_meta();
    host.route(&records_url(VENDORS), &[], records(&[], None));
    let d = drain(&host, "Vendors", &[], None, "2024-05-01T00:00:00Z");
    assert_eq!(d.pages.len(), 2);
    assert!(d.rows.is_empty());
}

#[test]
fn an_expired_iterator_restarts_the_listing_without_duplicates_or_gaps() {
    let host = MockHost::with_meta();
    let url = records_url(VENDORS);
    host.route_once(&url, &[("offset", None)], records(&[vendor(1), vendor(2)], Some("itr1/recV2")));
    host.route(&url, &[("offset", Some("itr1/recV2"))], records(&[vendor(3), vendor(4)], Some("itr1/recV4")));
    let expired =
        r#"{"error":{"type":"LIST_RECORDS_ITERATOR_NOT_AVAILABLE","message":"Iterator not available"}}"#;
    host.route(&url, &[("offset", Some("itr1/recV4"))], json(422, expired));
    // The fresh listing hands out new tokens; its first two pages were already read.
    host.route(&url, &[("offset", None)], records(&[vendor(1), vendor(2)], Some("itr2/recV2")));
    host.route(&url, &[("offset", Some("itr2/recV2"))], records(&[vendor(3), vendor(4)], Some("itr2/recV4")));
    host.route(&url, &[("offset", Some("itr2/recV4"))], records(&[vendor(5)], None));

    let d = drain(&host, "Vendors", &[("page_size", "2")], None, "2024-05-01T00:00:00Z");
    assert_eq!(ids(&d.rows), ["recV1", "recV2", "recV3", "recV4", "recV5"]);
    // It passes over the records it returned by name: the first it meets ends the passing over
    // of others.
    let last = json!(["recV1", "recV2", "recV3", "recV4"]);
    assert_eq!(
        offset(&d.pages[2]),
        json!({"page": "itr2/recV2", "emitted": 4, "last": last, "pass": ["recV3", "recV4"]})
    );
    assert_eq!(offset(&d.pages[3]), json!({"page": "itr2/recV4", "emitted": 4, "last": last}));
    let warned = host.logs.borrow().iter().any(|(l, m)| *l == Level::Warn && m.contains("expired"));
    assert!(warned, "{:?}", host.logs.borrow());
}

#[test]
fn a_page_token_offset_from_the_host_continues_the_listing() {
    let host = MockHost::with_meta();
    host.route(&records_url(VENDORS), &[("offset", Some("itr9/recV4"))], records(&[vendor(5)], None));
    let start = json!({"page": "itr9/recV4", "emitted": 4}).to_string();
    let page = Airtable::read_table(&host, &connection(), "Vendors", &opts(&[]), Some(&start)).unwrap();
    assert_eq!(ids(&rows(&page)), ["recV5"]);
    assert_eq!(offset(&page), json!({"snapshot": "complete"}));
}

#[test]
fn view_fields_and_user_filter_are_passed_through() {
    let host = MockHost::with_meta();
    host.route(&records_url(VENDORS), &[], records(&[], None));
    let options = [("view", "Grid view"), ("fields", "Contact"), ("filter_by_formula", "{Contact} != ''")];
    drain(&host, "Vendors", &options, None, "2024-05-01T00:00:00Z");
    let sent = &host.record_requests()[0];
    assert_eq!(sent.param("view"), Some("Grid view"));
    assert_eq!(sent.params("fields[]"), ["fldV2"]);
    assert_eq!(sent.param("filterByFormula"), Some("{Contact} != ''"));
}

fn compliance(id: &str, updated: &str) -> Value {
    record(id, json!({"fldC1": id, "fldC3": updated}))
}

const CAP: &str = "NOT(IS_AFTER({Updated}, '2024-05-01T00:00:00.000Z'))";

#[test]
fn a_first_cdc_read_caps_at_its_start_time_sorts_by_the_cursor_and_ends_at_the_newest_change() {
    let host = MockHost::with_meta();
    let url = records_url(COMPLIANCE);
    let first =
        [compliance("recC1", "2024-04-01T00:00:00.000Z"), compliance("recC2", "2024-04-02T00:00:00.000Z")];
    host.route(&url, &[("filterByFormula", Some(CAP)), ("offset", None)], records(&first, Some("itrC/2")));
    let last = [compliance("recC3", "2024-04-03T12:00:00.000Z")];
    host.route(&url, &[("filterByFormula", Some(CAP)), ("offset", Some("itrC/2"))], records(&last, None));
    let cursor = "2024-04-03T12:00:00.000Z";
    let probe = format!("AND(IS_AFTER({{Updated}}, '{cursor}'), {CAP})");
    host.route(&url, &[("filterByFormula", Some(&probe)), ("maxRecords", Some("1"))], records(&[], None));

    let d = drain(&host, "Compliance Records", &[], None, "2024-05-01T00:00:00Z");
    assert_eq!(ids(&d.rows), ["recC1", "recC2", "recC3"]);
    assert_eq!(
        offset(&d.pages[0]),
        json!({"cursor": null, "upto": "2024-05-01T00:00:00.000Z", "max": "2024-04-02T00:00:00.000Z",
               "at_max": ["recC2"], "page": "itrC/2", "emitted": 2})
    );
    assert!(!d.pages[0].checkpointable);
    assert_eq!(offset(&d.pages[1]), json!({"cursor": cursor}));
    assert!(d.pages[1].checkpointable);
    // The third call only probes for anything newer, finds nothing and hands back its start.
    assert_eq!(d.pages.len(), 3);
    assert_eq!(d.pages[2].end_offset, d.pages[1].end_offset);
    let sent = host.record_requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].param("sort[0][field]"), Some("Updated"));
    assert_eq!(sent[0].param("sort[0][direction]"), Some("asc"));
    assert_eq!(sent[2].params("fields[]"), ["fldC3"]);
}

#[test]
fn a_cdc_read_from_a_cursor_rereads_the_lookback_window_and_never_moves_back_or_past_its_start() {
    let host = MockHost::with_meta();
    let url = records_url(COMPLIANCE);
    let probe = format!("AND(IS_AFTER({{Updated}}, '2024-04-03T12:00:00.000Z'), {CAP})");
    host.route(
        &url,
        &[("filterByFormula", Some(&probe))],
        records(&[compliance("recC4", "2024-04-20T00:00:00.000Z")], None),
    );
    // 60 seconds of lookback before the cursor.
    let window = format!("AND(IS_AFTER({{Updated}}, '2024-04-03T11:59:00.000Z'), {CAP})");
    let found = [
        compliance("recC3", "2024-04-03T12:00:00.000Z"),
        compliance("recC4", "2024-04-20T00:00:00.000Z"),
        // Airtable's clock ran ahead of ours: the cursor still stops at the read's start.
        compliance("recC5", "2024-05-01T00:00:09.000Z"),
    ];
    host.route(&url, &[("filterByFormula", Some(&window))], records(&found, None));

    let start = json!({"cursor": "2024-04-03T12:00:00.000Z"}).to_string();
    let options = opts(&[("lookback_seconds", "60")]);
    let now = || parse_ms("2024-05-01T00:00:00Z").unwrap_or_default();
    let page =
        Airtable::read_table_at(&host, &connection(), "Compliance Records", &options, Some(&start), now)
            .unwrap();
    assert_eq!(ids(&rows(&page)), ["recC3", "recC4", "recC5"]);
    assert_eq!(offset(&page), json!({"cursor": "2024-05-01T00:00:00.000Z"}));
    assert!(page.checkpointable);
}

#[test]
fn an_unchanged_table_ends_the_cdc_read_with_one_probe_even_with_a_big_lookback_window() {
    let host = MockHost::with_meta();
    host.route(&records_url(COMPLIANCE), &[("maxRecords", Some("1"))], records(&[], None));
    let start = r#"{ "cursor": "2024-04-03T12:00:00.000Z" }"#;
    let now = || parse_ms("2024-05-01T00:00:00Z").unwrap_or_default();
    let page =
        Airtable::read_table_at(&host, &connection(), "Compliance Records", &opts(&[]), Some(start), now)
            .unwrap();
    // Handed back byte for byte, whatever spacing the host stored it with.
    assert_eq!(page.end_offset, start);
    assert!(rows(&page).is_empty());
    assert_eq!(host.record_requests().len(), 1);
}

#[test]
fn the_user_filter_is_combined_with_the_cdc_window() {
    let host = MockHost::with_meta();
    let url = records_url(COMPLIANCE);
    let filter = format!("AND({{Record}} != 'draft', {CAP})");
    host.route(&url, &[("filterByFormula", Some(&filter))], records(&[], None));
    let options = [("filter_by_formula", "{Record} != 'draft'")];
    let d = drain(&host, "Compliance Records", &options, None, "2024-05-01T00:00:00Z");
    assert_eq!(offset(&d.pages[0]), json!({"cursor": null}));
    assert_eq!(d.pages.len(), 2);
}

#[test]
fn a_cdc_iterator_expiry_resumes_from_the_last_value_read_under_the_same_cap() {
    let host = MockHost::with_meta();
    let url = records_url(COMPLIANCE);
    let (t1, t2) = ("2024-04-01T00:00:00.000Z", "2024-04-02T00:00:00.000Z");
    let (a, a2, b) = (compliance("recC1", t1), compliance("recC4", t1), compliance("recC2", t2));
    let expired = r#"{"error":{"type":"LIST_RECORDS_ITERATOR_NOT_AVAILABLE","message":"gone"}}"#;
    host.route(&url, &[("offset", Some("itrA"))], json(422, expired));
    // The listing starts over at the largest value read (inclusive), under the offset's cap.
    let from_t1 = format!("AND(IS_AFTER({{Updated}}, '2024-03-31T23:59:59.999Z'), {CAP})");
    host.route(&url, &[("filterByFormula", Some(&from_t1)), ("offset", None)], records(&[a2, a, b], None));
    // A later clock proves the cap comes from the offset, not from now.
    let now = || parse_ms("2024-06-01T00:00:00Z").unwrap_or_default();
    let read = |start: Value| {
        let start = start.to_string();
        Airtable::read_table_at(&host, &connection(), "Compliance Records", &opts(&[]), Some(&start), now)
            .unwrap()
    };
    let start = json!({"cursor": null, "upto": "2024-05-01T00:00:00.000Z", "max": t1, "at_max": ["recC1"],
                       "page": "itrA", "emitted": 1});
    let page = read(start.clone());
    // recC1 was read at t1 before the iterator expired; recC4, also at t1, was not.
    assert_eq!(ids(&rows(&page)), ["recC4", "recC2"]);
    assert_eq!(offset(&page), json!({"cursor": t2}));
    let warned = host.logs.borrow().iter().any(|(l, m)| {
        *l == Level::Warn
            && m.contains(&format!("restarting the listing at Updated = {t1}, passing over the 1"))
    });
    assert!(warned, "{:?}", host.logs.borrow());

    // Without names for the records read at `max` (more than an offset holds), they come again
    // rather than one being lost.
    let mut unknown = start;
    unknown["at_max"] = Value::Null;
    assert_eq!(ids(&rows(&read(unknown))), ["recC4", "recC1", "recC2"]);
    let warned = host.logs.borrow().iter().any(|(l, m)| *l == Level::Warn && m.contains("come again"));
    assert!(warned, "{:?}", host.logs.borrow());
}

#[test]
fn records_without_cursor_values_still_let_a_many_page_cdc_read_end() {
    let host = MockHost::with_meta();
    let url = records_url(COMPLIANCE);
    let blank = |id: &str| record(id, json!({"fldC1": id}));
    let options = [("cursor_field", "Audited At")];
    let cap = "NOT(IS_AFTER({Audited At}, '2024-05-01T00:00:00.000Z'))";
    host.route(
        &url,
        &[("filterByFormula", Some(cap)), ("offset", None)],
        records(&[blank("recA")], Some("t1")),
    );
    host.route(&url, &[("offset", Some("t1"))], records(&[blank("recB")], None));
    host.route(&url, &[("maxRecords", Some("1"))], records(&[], None));
    let d = drain(&host, "Compliance Records", &options, None, "2024-05-01T00:00:00Z");
    assert_eq!(ids(&d.rows), ["recA", "recB"]);
    assert_eq!(offset(&d.pages[1]), json!({"cursor": "2024-05-01T00:00:00.000Z"}));
    assert!(host.logs.borrow().iter().any(|(l, _)| *l == Level::Warn));
}

#[test]
fn a_long_formula_moves_the_listing_into_a_post_body() {
    let host = MockHost::with_meta();
    let url = records_url(VENDORS);
    let long = format!("OR({})", vec!["{Vendor Name} = 'Acme Industrial Supplies'"; 500].join(", "));
    host.route(&format!("{url}/listRecords"), &[("offset", None)], records(&[vendor(1)], Some("itrP")));
    host.route(&format!("{url}/listRecords"), &[("offset", Some("itrP"))], records(&[vendor(2)], None));
    let d = drain(&host, "Vendors", &[("filter_by_formula", long.as_str())], None, "2024-05-01T00:00:00Z");
    assert_eq!(ids(&d.rows), ["recV1", "recV2"]);
    let sent = host.record_requests();
    assert_eq!(sent[0].method, "POST");
    assert!(!sent[0].path.contains('?'));
    let body = sent[1].body.as_ref().expect("a body");
    assert_eq!(body["filterByFormula"], json!(long));
    assert_eq!(body["offset"], "itrP");
    assert_eq!(body["returnFieldsByFieldId"], true);
    assert_eq!(body["cellFormat"], "json");
    assert_eq!(body["pageSize"], 100);
}

#[test]
fn a_short_formula_stays_a_get() {
    let host = MockHost::with_meta();
    let formula = "{Vendor Name} = 'Ünïcode & co/🚀'";
    host.route(&records_url(VENDORS), &[("filterByFormula", Some(formula))], records(&[], None));
    drain(&host, "Vendors", &[("filter_by_formula", formula)], None, "2024-05-01T00:00:00Z");
    let sent = &host.record_requests()[0];
    assert_eq!(sent.method, "GET");
    assert!(sent.url_len <= crate::api::MAX_URL_LEN);
}

#[test]
fn emoji_table_names_never_reach_the_url() {
    let host = MockHost::with_meta();
    host.route(&records_url(MILESTONES), &[], records(&[], None));
    drain(&host, "🚀 Launch Milestones", &[], None, "2024-05-01T00:00:00Z");
    assert!(host.sent.borrow().iter().all(|s| s.path.is_ascii()));
}

#[test]
fn read_deletes_ends_at_once_but_still_checks_the_table() {
    let host = MockHost::with_meta();
    let start = r#"{"cursor":"2024-01-01T00:00:00.000Z"}"#;
    let page =
        Airtable::read_deletes(&host, &connection(), "Compliance Records", &opts(&[]), Some(start)).unwrap();
    assert_eq!((page.end_offset.as_str(), rows(&page).len()), (start, 0));
    assert!(host.record_requests().is_empty());
    let err = Airtable::read_deletes(&host, &connection(), "Nope", &opts(&[]), None).unwrap_err();
    assert_eq!(err, weir_connector_sdk::ConnectorError::UnknownTable("Nope".into()));
}
