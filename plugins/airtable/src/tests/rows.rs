//! Row shaping: every type, special values and their counters, empty records.

use serde_json::{Value, json};
use weir_connector_sdk::Connector;

use super::*;
use crate::Airtable;

/// A record holding a value in every field of *SKU Candidates*.
fn full_record() -> Value {
    json!({"id": "recA", "createdTime": "2024-01-02T03:04:05.000Z", "fields": {
        "fldName": "Aurora Lamp",
        "fldEmail": "al@example.com",
        "fldNotes": "Line 1\nping <airtable:mention id=\"menX\">@Al</airtable:mention>",
        "fldStatus": "Shortlisted",
        "fldTags": ["eco", "new"],
        "fldPrice": 19.99,
        "fldWeight": 1.25,
        "fldScore": 7.5,
        "fldMargin": 0.123,
        "fldLead": 5400.5,
        "fldAuto": 17,
        "fldCount": 2,
        "fldRating": 4,
        "fldApproved": true,
        "fldLaunch": "2024-09-05",
        "fldReview": "2024-03-01T10:00:00.000Z",
        "fldCreated": "2024-01-02T03:04:05.000Z",
        "fldCreatedDay": "2024-01-02",
        "fldOwner": {"id": "usrA", "email": "al@example.com", "name": "Al"},
        "fldReviewers": [{"id": "usrB", "email": "bo@example.com", "name": "Bo"}, {"id": "usrC"}],
        "fldCreatedBy": {"id": "usrA", "email": "al@example.com", "name": "Al"},
        "fldVendors": ["recV1", "recV2"],
        "fldPhotos": [{"id": "attA", "url": "https://dl.airtable.com/a.png", "filename": "a.png", "size": 2048,
            "type": "image/png", "width": 640, "height": 480, "thumbnails": {
                "small": {"url": "https://dl.airtable.com/s", "width": 36, "height": 36},
                "large": {"url": "https://dl.airtable.com/l", "width": 512, "height": 512},
                "full": {"url": "https://dl.airtable.com/f", "width": 640, "height": 480}}}],
        "fldBarcode": {"text": "012345"},
        "fldButton": {"label": "Open", "url": null},
        "fldAi": {"state": "error", "isStale": true, "value": null, "errorType": "timeout"},
        "fldTotal": 39.98,
        "fldLabel": "Aurora Lamp (17)",
        "fldFlag": true,
        "fldDue": "2024-03-08T12:00:00.000+02:00",
        "fldOdd": {"a": [1, 2]},
        "fldSum": 120.5,
        "fldVendorNames": ["Acme", "Globex"],
        "fldVendorTags": [["eu"], ["us", "ca"]],
        "fldLookupNull": [1, "x"],
        "fldSort": "a0",
        "fldSync": "Salesforce",
        "fldRich": "**bold**",
        "fldPhone": "+1 555 0100",
        "fldUrl": "https://aurora.example",
        "fldNew": {"k": "v"},
        "fldModBy": {"id": "usrA"},
        "fldMod": "2024-03-02T00:00:00.000Z"
    }})
}

fn read_sku(recs: &[Value]) -> Page {
    let host = MockHost::with_meta();
    host.route(&records_url(SKU), &[], records(recs, None));
    // The table is cdc; its filter is tested in `read`, this route answers any listing.
    let page = Airtable::read_table_at(&host, &connection(), "SKU Candidates", &opts(&[]), None, || 0);
    page.expect("page")
}

#[test]
fn every_type_is_shaped_for_its_column() {
    let page = read_sku(&[full_record()]);
    let rows = rows(&page);
    assert_eq!(rows.len(), 1);
    let expected = json!({
        "id": "recA",
        "created_time": "2024-01-02T03:04:05.000Z",
        "name": "Aurora Lamp",
        "contact_email": "al@example.com",
        "notes": "Line 1\nping <airtable:mention id=\"menX\">@Al</airtable:mention>",
        "status": "Shortlisted",
        "tags": ["eco", "new"],
        "unit_price": 19.99,
        "weight_kg": 1.25,
        "score": 7.5,
        "margin": 0.123,
        "lead_time": 5400.5,
        "sku": 17,
        "vendor_count": 2,
        "rating": 4,
        "approved": true,
        "launch_date": "2024-09-05",
        "review_at": "2024-03-01T10:00:00.000Z",
        "created": "2024-01-02T03:04:05.000Z",
        "created_day": "2024-01-02",
        "owner": {"id": "usrA", "email": "al@example.com", "name": "Al"},
        "reviewers": [{"id": "usrB", "email": "bo@example.com", "name": "Bo"}, {"id": "usrC"}],
        "created_by": {"id": "usrA", "email": "al@example.com", "name": "Al"},
        "vendors": ["recV1", "recV2"],
        "photos": [{"id": "attA", "url": "https://dl.airtable.com/a.png", "filename": "a.png", "size": 2048,
            "type": "image/png", "width": 640, "height": 480, "thumbnails": {
                "small": {"url": "https://dl.airtable.com/s", "width": 36, "height": 36},
                "large": {"url": "https://dl.airtable.com/l", "width": 512, "height": 512},
                "full": {"url": "https://dl.airtable.com/f", "width": 640, "height": 480}}}],
        "barcode": {"text": "012345"},
        "open": {"label": "Open"},
        "ai_summary": {"state": "error", "is_stale": true, "error_type": "timeout"},
        "total": 39.98,
        "label": "Aurora Lamp (17)",
        "is_ready": true,
        "due": "2024-03-08T10:00:00.000Z",
        "odd_formula": "{\"a\":[1,2]}",
        "vendor_spend": 120.5,
        "vendor_names": ["Acme", "Globex"],
        "vendor_tags": ["eu", "us", "ca"],
        "mystery_lookup": "[1,\"x\"]",
        "manual_sort": "\"a0\"",
        "source": "Salesforce",
        "brief": "**bold**",
        "phone": "+1 555 0100",
        "website": "https://aurora.example",
        "future_thing": "{\"k\":\"v\"}",
        "modified_by": {"id": "usrA"},
        "last_modified": "2024-03-02T00:00:00.000Z"
    });
    assert_eq!(rows[0], expected);
    assert!(page.counters.is_empty(), "{:?}", page.counters);
}

/// A page is an Arrow IPC stream in the table's schema as the host reads its Spark schema: the
/// same columns in the same order, of the same types and nullability; and the host's converter
/// reads it.
#[test]
fn pages_are_arrow_in_the_tables_schema() {
    let page = read_sku(&[full_record()]);
    let Rows::ArrowIpc(stream) = &page.rows else { panic!("Arrow IPC") };
    let host = MockHost::with_meta();
    let schema = Airtable::table_schema(&host, &connection(), "SKU Candidates", &opts(&[])).unwrap();
    let expected = weir_convert::arrow_schema(&schema).unwrap();
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
    let found = reader.schema();
    let shape = |f: &arrow_schema::Field| (f.name().clone(), f.data_type().clone(), f.is_nullable());
    assert_eq!(
        found.fields().iter().map(|f| shape(f)).collect::<Vec<_>>(),
        expected.fields().iter().map(|f| shape(f)).collect::<Vec<_>>()
    );
    let batches = weir_convert::Converter::new(std::sync::Arc::new(expected))
        .arrow_ipc(stream)
        .expect("the host reads it");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

#[test]
fn special_and_error_values_become_null_and_are_counted() {
    let rec = record(
        "recB",
        json!({
            "fldName": "#ERROR!",
            "fldTotal": {"specialValue": "NaN"},
            "fldSum": "#ERROR!",
            "fldLabel": "#N/A",
            "fldDue": {"error": "#ERROR!"},
            "fldVendorNames": ["Acme", "#ERROR!"],
            "fldScore": "Infinity",
            "fldMargin": {"specialValue": "Infinity"},
            "fldRating": 2.5,
            "fldLaunch": "not a date"
        }),
    );
    let again = record("recC", json!({"fldTotal": {"specialValue": "Infinity"}}));
    let page = read_sku(&[rec, again]);
    let rows = rows(&page);
    let row = &rows[0];
    // Plain text that happens to look like an error is the user's data.
    assert_eq!(row["name"], "#ERROR!");
    for nulled in ["total", "vendor_spend", "label", "due", "score", "margin", "rating", "launch_date"] {
        assert!(row.get(nulled).is_none(), "{nulled} should be null in {row}");
    }
    assert_eq!(row["vendor_names"], json!(["Acme", null]));
    let expected: Vec<(String, u64)> = [
        ("due", 1),
        ("label", 1),
        ("launch_date", 1),
        ("margin", 1),
        ("rating", 1),
        ("score", 1),
        ("total", 2),
        ("vendor_names", 1),
        ("vendor_spend", 1),
    ]
    .iter()
    .map(|(c, n)| (format!("nulled.{c}"), *n))
    .collect();
    assert_eq!(page.counters, expected);
}

#[test]
fn records_with_empty_fields_are_kept_and_absent_checkboxes_read_false() {
    let page = read_sku(&[json!({"id": "recE", "createdTime": "2024-02-02T00:00:00.000Z", "fields": {}})]);
    assert_eq!(
        rows(&page),
        [
            json!({"id": "recE", "created_time": "2024-02-02T00:00:00.000Z", "approved": false, "is_ready": false})
        ]
    );
}

#[test]
fn numbers_written_as_text_or_whole_floats_are_accepted() {
    let page = read_sku(&[record(
        "recN",
        json!({"fldAuto": 3.0, "fldCount": "12", "fldScore": "2.5", "fldLabel": 42}),
    )]);
    let row = &rows(&page)[0];
    assert_eq!((row["sku"].clone(), row["vendor_count"].clone()), (json!(3), json!(12)));
    assert_eq!((row["score"].clone(), row["label"].clone()), (json!(2.5), json!("42")));
    assert!(page.counters.is_empty());
}

#[test]
fn original_names_key_the_rows_too() {
    let host = MockHost::with_meta();
    host.route(
        &records_url(MILESTONES),
        &[],
        records(&[record("recM", json!({"fldM1": "Go", "fldM4": 7}))], None),
    );
    let options = opts(&[("column_names", "original")]);
    let page = Airtable::read_table(&host, &connection(), "🚀 Launch Milestones", &options, None).unwrap();
    assert_eq!(
        rows(&page),
        [json!({"id": "recM", "created_time": "2024-01-02T03:04:05.000Z", "🚀 Milestone": "Go", "ID_2": 7})]
    );
}

/// A record's created time keeps every digit to the microsecond, as the host kept it from
/// Airtable's text; one that is not a time (a day that does not exist) is a counted null.
#[test]
fn created_times_keep_microseconds_and_a_bad_one_is_a_counted_null() {
    let page = read_sku(&[
        json!({"id": "recT", "createdTime": "2024-01-02T03:04:05.123456Z", "fields": {}}),
        json!({"id": "recU", "createdTime": "2024-02-30T00:00:00.000Z", "fields": {}}),
    ]);
    let Rows::ArrowIpc(stream) = &page.rows else { panic!("Arrow IPC") };
    let mut reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
    let batch = reader.next().expect("a batch").unwrap();
    let created = batch.column_by_name("created_time").unwrap();
    let created = created.as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().unwrap();
    let expected = crate::time::parse_ms("2024-01-02T03:04:05.123Z").unwrap() * 1000 + 456;
    assert_eq!((created.value(0), created.is_null(1)), (expected, true));
    assert_eq!(page.counters, [("nulled.created_time".to_string(), 1)]);
}
