//! Schemas, column names and table metadata.

use serde_json::{Value, json};
use weir_connector_sdk::{Connector, ConnectorError, IngestionType};

use super::*;
use crate::Airtable;

fn schema(table: &str, table_options: &[(&str, &str)]) -> Value {
    let host = MockHost::with_meta();
    let text = Airtable::table_schema(&host, &connection(), table, &opts(table_options)).expect("schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn names(schema: &Value) -> Vec<String> {
    schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn field<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["fields"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {schema}"))
}

fn array(element: Value) -> Value {
    json!({"type": "array", "elementType": element, "containsNull": true})
}

fn strukt(members: &[(&str, Value)]) -> Value {
    let fields: Vec<Value> = members
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t, "nullable": true, "metadata": {}}))
        .collect();
    json!({"type": "struct", "fields": fields})
}

fn collaborator() -> Value {
    strukt(&[("id", json!("string")), ("email", json!("string")), ("name", json!("string"))])
}

fn thumb() -> Value {
    strukt(&[("url", json!("string")), ("width", json!("long")), ("height", json!("long"))])
}

#[test]
fn every_field_type_maps_to_its_spark_type() {
    let s = schema("SKU Candidates", &[]);
    let attachment = strukt(&[
        ("id", json!("string")),
        ("url", json!("string")),
        ("filename", json!("string")),
        ("size", json!("long")),
        ("type", json!("string")),
        ("width", json!("long")),
        ("height", json!("long")),
        ("thumbnails", strukt(&[("small", thumb()), ("large", thumb()), ("full", thumb())])),
    ]);
    let expected: Vec<(&str, Value)> = vec![
        ("id", json!("string")),
        ("created_time", json!("timestamp")),
        ("name", json!("string")),
        ("contact_email", json!("string")),
        ("notes", json!("string")),
        ("status", json!("string")),
        ("tags", array(json!("string"))),
        ("unit_price", json!("decimal(38,2)")),
        ("weight_kg", json!("decimal(38,3)")),
        ("score", json!("double")),
        ("margin", json!("double")),
        ("lead_time", json!("double")),
        ("sku", json!("long")),
        ("vendor_count", json!("long")),
        ("rating", json!("long")),
        ("approved", json!("boolean")),
        ("launch_date", json!("date")),
        ("review_at", json!("timestamp")),
        ("created", json!("timestamp")),
        ("created_day", json!("date")),
        ("owner", collaborator()),
        ("reviewers", array(collaborator())),
        ("created_by", collaborator()),
        ("vendors", array(json!("string"))),
        ("photos", array(attachment)),
        ("barcode", strukt(&[("text", json!("string")), ("type", json!("string"))])),
        ("open", strukt(&[("label", json!("string")), ("url", json!("string"))])),
        (
            "ai_summary",
            strukt(&[
                ("state", json!("string")),
                ("is_stale", json!("boolean")),
                ("value", json!("string")),
                ("error_type", json!("string")),
            ]),
        ),
        ("total", json!("decimal(38,2)")),
        ("label", json!("string")),
        ("is_ready", json!("boolean")),
        ("due", json!("timestamp")),
        ("odd_formula", json!("string")),
        ("vendor_spend", json!("decimal(38,2)")),
        ("vendor_names", array(json!("string"))),
        ("vendor_tags", array(json!("string"))),
        ("mystery_lookup", json!("string")),
        ("manual_sort", json!("string")),
        ("source", json!("string")),
        ("brief", json!("string")),
        ("phone", json!("string")),
        ("website", json!("string")),
        ("future_thing", json!("string")),
        ("modified_by", collaborator()),
        ("last_modified", json!("timestamp")),
    ];
    assert_eq!(s["type"], "struct");
    assert_eq!(names(&s), expected.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>());
    for (name, ty) in &expected {
        assert_eq!(&field(&s, name)["type"], ty, "column {name}");
    }
}

#[test]
fn id_is_the_only_non_nullable_column_and_fields_carry_their_airtable_identity() {
    let s = schema("SKU Candidates", &[]);
    let non_null: Vec<&Value> =
        s["fields"].as_array().unwrap().iter().filter(|f| f["nullable"] == false).collect();
    assert_eq!(non_null.len(), 1);
    assert_eq!(non_null[0]["name"], "id");
    assert_eq!(
        field(&s, "sku")["metadata"],
        json!({
            "column_id": "fldAuto",
            "airtable_field_id": "fldAuto",
            "airtable_field_name": "SKU #",
            "airtable_type": "autoNumber"
        })
    );
    assert_eq!(field(&s, "future_thing")["metadata"]["airtable_type"], "holographicField");
}

#[test]
fn names_drop_emoji_and_punctuation_and_collisions_get_suffixes_in_field_order() {
    let s = schema("🚀 Launch Milestones", &[]);
    assert_eq!(
        names(&s),
        [
            "id",
            "created_time",
            "milestone",
            "owner",
            "owner_2",
            "id_2",
            "created_time_2",
            "_2024_budget",
            "field",
            "field_2",
            "owner_2_2",
            "phase_name",
            "q3_target_value_usd",
            "owners_http_server",
            "last_touched",
        ]
    );
    assert_eq!(field(&s, "_2024_budget")["type"], "decimal(38,0)");
    assert_eq!(field(&s, "field")["metadata"]["airtable_field_name"], "📅");
    assert_eq!(field(&s, "owner_2")["metadata"]["airtable_field_name"], "owner ");
}

#[test]
fn snake_names_are_stable_and_delta_safe() {
    use crate::schema::snake_case;
    for (input, expected) in [
        ("Weight (kg)", "weight_kg"),
        ("  __Hello__World__ ", "hello_world"),
        ("createdAt", "created_at"),
        ("HTTPServer", "http_server"),
        ("SKUs", "skus"),
        ("Linked IDs (old)", "linked_ids_old"),
        ("URLsTable", "urls_table"),
        ("Phase2Start", "phase2_start"),
        ("9 Lives", "_9_lives"),
        ("🔥🔥", "field"),
        ("Café Menu", "caf_menu"),
        ("a.b[c]{d}=e;f,g", "a_b_c_d_e_f_g"),
    ] {
        let name = snake_case(input);
        assert_eq!(name, expected, "{input:?}");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    }
}

#[test]
fn original_names_are_kept_but_never_shadow_the_system_columns() {
    let s = schema("🚀 Launch Milestones", &[("column_names", "original")]);
    let n = names(&s);
    assert_eq!(&n[..6], ["id", "created_time", "🚀 Milestone", "Owner", "owner ", "ID_2"]);
    assert!(n.contains(&"Q3 Target.Value [USD]".to_string()));
}

#[test]
fn the_fields_option_narrows_the_schema_and_cdc_keeps_its_cursor() {
    let s = schema("SKU Candidates", &[("fields", "Name,Unit Price")]);
    assert_eq!(names(&s), ["id", "created_time", "name", "unit_price", "last_modified"]);
    let s = schema("Vendors", &[("fields", "Contact")]);
    assert_eq!(names(&s), ["id", "created_time", "contact"]);
    let host = MockHost::with_meta();
    let err =
        Airtable::table_schema(&host, &connection(), "Vendors", &opts(&[("fields", "Nope")])).unwrap_err();
    assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains("Nope")), "{err}");
}

#[test]
fn tables_are_addressed_by_name_or_id_and_schemas_are_deterministic() {
    assert_eq!(schema("Vendors", &[]), schema(VENDORS, &[]));
    let host = MockHost::with_meta();
    let a = Airtable::table_schema(&host, &connection(), "SKU Candidates", &opts(&[])).unwrap();
    let b = Airtable::table_schema(&host, &connection(), "SKU Candidates", &opts(&[])).unwrap();
    assert_eq!(a, b);
}

fn metadata(
    table: &str,
    table_options: &[(&str, &str)],
) -> Result<weir_connector_sdk::TableMetadata, ConnectorError> {
    let host = MockHost::with_meta();
    Airtable::table_metadata(&host, &connection(), table, &opts(table_options))
}

#[test]
fn a_last_modified_time_watching_all_fields_makes_the_table_cdc() {
    let m = metadata("SKU Candidates", &[]).unwrap();
    assert_eq!(m.primary_keys, ["id"]);
    assert_eq!((m.ingestion_type, m.cursor_field.as_deref()), (IngestionType::Cdc, Some("last_modified")));
    // No referencedFieldIds at all also means "every field".
    let m = metadata("Compliance Records", &[]).unwrap();
    assert_eq!((m.ingestion_type, m.cursor_field.as_deref()), (IngestionType::Cdc, Some("updated")));
}

#[test]
fn a_partial_last_modified_time_or_none_leaves_the_table_snapshot() {
    let m = metadata("🚀 Launch Milestones", &[]).unwrap();
    assert_eq!((m.ingestion_type, m.cursor_field), (IngestionType::Snapshot, None));
    let m = metadata("Vendors", &[]).unwrap();
    assert_eq!((m.ingestion_type, m.primary_keys), (IngestionType::Snapshot, vec!["id".to_string()]));
}

#[test]
fn cursor_field_opts_in_by_column_field_name_or_id_and_must_be_a_time() {
    for wanted in ["last_touched", "Last Touched", "fldMD"] {
        let m = metadata("🚀 Launch Milestones", &[("cursor_field", wanted)]).unwrap();
        assert_eq!((m.ingestion_type, m.cursor_field.as_deref()), (IngestionType::Cdc, Some("last_touched")));
    }
    let m = metadata("Compliance Records", &[("cursor_field", "audited_at")]).unwrap();
    assert_eq!(m.cursor_field.as_deref(), Some("audited_at"));
    let err = metadata("Vendors", &[("cursor_field", "Vendor Name")]).unwrap_err();
    assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains("date or time")), "{err}");
    let err = metadata("Vendors", &[("cursor_field", "nope")]).unwrap_err();
    assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains("nope")), "{err}");
}

#[test]
fn no_table_is_cdc_with_deletes() {
    for table in ["SKU Candidates", "🚀 Launch Milestones", "Vendors", "Compliance Records"] {
        assert_ne!(metadata(table, &[]).unwrap().ingestion_type, IngestionType::CdcWithDeletes);
    }
}
