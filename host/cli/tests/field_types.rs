//! Every Airtable field type of the simulator's seed base, through `weir schema --json` and
//! `weir preview --json`: the column's Spark type is what AIRTABLE.md's mapping says, and
//! every record's value is the mapping's transformation of the cell the API returned.
//!
//! The expected types and values are worked out here from AIRTABLE.md, independently of the
//! connector's code, from the simulator's own meta and records responses.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

/// One table: the simulator's view of it and weir's.
struct TableData {
    name: String,
    /// The meta API's `fields`.
    fields: Vec<Value>,
    /// Every record, cells keyed by field id.
    records: Vec<Value>,
    /// `weir schema --json`.
    schema: Value,
    /// `weir preview --json`, by record id: the parsed row and the line as printed.
    rows: HashMap<String, (Value, String)>,
    /// Record ids of `weir preview --json -o page_size=3`, in order.
    short_page_ids: Vec<String>,
}

/// The whole base, read once per test binary: a simulator, then weir, then both are gone.
fn base() -> &'static [TableData] {
    static BASE: OnceLock<Vec<TableData>> = OnceLock::new();
    BASE.get_or_init(|| {
        let sim = Sim::start(SimConfig { rate_limit: false, ..SimConfig::default() }).expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let conns = dir.path().join("connections.toml");
        std::fs::write(&conns, format!(
            "[connections.sim]\nconnector = \"airtable\"\nbase_id = \"{DEFAULT_BASE_ID}\"\nbase_url = \"{}\"\n\
             bearer_token = \"{DEFAULT_TOKEN}\"\nallow_loopback = true\n",
            sim.base_url()
        ))
        .expect("write connections.toml");
        let weir = |args: &[&str]| -> String {
            let out = common::weir_command()
                .args(args)
                .arg("--connections")
                .arg(&conns)
                .output()
                .expect("weir runs");
            assert!(out.status.success(), "weir {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).expect("utf-8 output")
        };
        let addr = sim.base_url().trim_start_matches("http://").to_string();
        let meta = get(&addr, &format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"));
        let tables = meta["tables"].as_array().expect("tables").clone();
        // One thread per table: each weir process paces itself to Airtable's 5 requests/s,
        // and the simulator's own limit is off.
        std::thread::scope(|scope| {
            let handles: Vec<_> = tables.iter().map(|t| scope.spawn(|| {
                let name = t["name"].as_str().expect("table name").to_string();
                let id = t["id"].as_str().expect("table id");
                let mut records = Vec::new();
                let mut offset: Option<String> = None;
                loop {
                    let mut path =
                        format!("/v0/{DEFAULT_BASE_ID}/{id}?pageSize=100&returnFieldsByFieldId=true");
                    if let Some(o) = &offset {
                        path.push_str(&format!("&offset={o}"));
                    }
                    let page = get(&addr, &path);
                    records.extend(page["records"].as_array().expect("records").iter().cloned());
                    match page["offset"].as_str() {
                        Some(o) => offset = Some(o.to_string()),
                        None => break,
                    }
                }
                let schema: Value = serde_json::from_str(&weir(&["schema", "-t", &name, "--json"]))
                    .expect("schema --json is JSON");
                let rows = weir(&["preview", "-t", &name, "--json", "--limit", "100000"])
                    .lines()
                    .map(|line| {
                        let row: Value = serde_json::from_str(line).expect("a preview line is JSON");
                        (row["id"].as_str().expect("id").to_string(), (row, line.to_string()))
                    })
                    .collect();
                let short_page_ids = weir(&["preview", "-t", &name, "--json", "--limit", "100000", "-o", "page_size=3"])
                    .lines()
                    .map(|line| {
                        let row: Value = serde_json::from_str(line).expect("a preview line is JSON");
                        row["id"].as_str().expect("id").to_string()
                    })
                    .collect();
                TableData {
                    name,
                    fields: t["fields"].as_array().expect("fields").clone(),
                    records,
                    schema,
                    rows,
                    short_page_ids,
                }
            })).collect();
            handles.into_iter().map(|h| h.join().expect("reading a table")).collect()
        })
    })
}

/// GET with the simulator's token over plain HTTP/1.0, which ends the body by closing.
fn get(addr: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).expect("connect to the simulator");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {DEFAULT_TOKEN}\r\n\r\n")
        .expect("send request");
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A column type as AIRTABLE.md's mapping states it.
#[derive(Debug, Clone)]
enum Kind {
    Str,
    Long,
    Double,
    Decimal(u64),
    Bool,
    Date,
    Timestamp,
    /// A string holding the value's JSON text.
    Json,
    Array(Box<Kind>),
    /// (column name, key in Airtable's object, type)
    Struct(Vec<(&'static str, &'static str, Kind)>),
}

fn collaborator() -> Kind {
    Kind::Struct(vec![("id", "id", Kind::Str), ("email", "email", Kind::Str), ("name", "name", Kind::Str)])
}

fn attachment() -> Kind {
    let thumb = || {
        Kind::Struct(vec![
            ("url", "url", Kind::Str),
            ("width", "width", Kind::Long),
            ("height", "height", Kind::Long),
        ])
    };
    Kind::Struct(vec![
        ("id", "id", Kind::Str),
        ("url", "url", Kind::Str),
        ("filename", "filename", Kind::Str),
        ("size", "size", Kind::Long),
        ("type", "type", Kind::Str),
        ("width", "width", Kind::Long),
        ("height", "height", Kind::Long),
        (
            "thumbnails",
            "thumbnails",
            Kind::Struct(vec![
                ("small", "small", thumb()),
                ("large", "large", thumb()),
                ("full", "full", thumb()),
            ]),
        ),
    ])
}

/// AIRTABLE.md's "column type in weir" for a field type and its options.
fn kind(ftype: &str, options: Option<&Value>) -> Kind {
    let result = || {
        let r = options?.get("result")?;
        Some(kind(r.get("type")?.as_str()?, r.get("options")))
    };
    match ftype {
        "singleLineText" | "email" | "url" | "phoneNumber" | "multilineText" | "richText"
        | "singleSelect" | "externalSyncSource" => Kind::Str,
        "multipleSelects" | "multipleRecordLinks" => Kind::Array(Box::new(Kind::Str)),
        "number" | "currency" => match options.and_then(|o| o.get("precision")).and_then(Value::as_u64) {
            Some(p) => Kind::Decimal(p),
            None => Kind::Double,
        },
        "percent" | "duration" => Kind::Double,
        "autoNumber" | "count" | "rating" => Kind::Long,
        "checkbox" => Kind::Bool,
        "date" => Kind::Date,
        "dateTime" => Kind::Timestamp,
        "createdTime" | "lastModifiedTime" => match result() {
            Some(Kind::Date) => Kind::Date,
            _ => Kind::Timestamp,
        },
        "singleCollaborator" | "createdBy" | "lastModifiedBy" => collaborator(),
        "multipleCollaborators" => Kind::Array(Box::new(collaborator())),
        "multipleAttachments" => Kind::Array(Box::new(attachment())),
        "barcode" => Kind::Struct(vec![("text", "text", Kind::Str), ("type", "type", Kind::Str)]),
        "button" => Kind::Struct(vec![("label", "label", Kind::Str), ("url", "url", Kind::Str)]),
        "aiText" => Kind::Struct(vec![
            ("state", "state", Kind::Str),
            ("is_stale", "isStale", Kind::Bool),
            ("value", "value", Kind::Str),
            ("error_type", "errorType", Kind::Str),
        ]),
        "formula" | "rollup" => result().unwrap_or(Kind::Json),
        "multipleLookupValues" => match result() {
            None | Some(Kind::Json) => Kind::Json,
            Some(Kind::Array(inner)) => Kind::Array(inner),
            Some(inner) => Kind::Array(Box::new(inner)),
        },
        _ => Kind::Json,
    }
}

/// `array<struct<id:string,…>>`-style text of a kind.
fn kind_text(k: &Kind) -> String {
    match k {
        Kind::Str | Kind::Json => "string".into(),
        Kind::Long => "long".into(),
        Kind::Double => "double".into(),
        Kind::Decimal(p) => format!("decimal(38,{p})"),
        Kind::Bool => "boolean".into(),
        Kind::Date => "date".into(),
        Kind::Timestamp => "timestamp".into(),
        Kind::Array(inner) => format!("array<{}>", kind_text(inner)),
        Kind::Struct(members) => format!(
            "struct<{}>",
            members.iter().map(|(n, _, k)| format!("{n}:{}", kind_text(k))).collect::<Vec<_>>().join(",")
        ),
    }
}

/// The same text from a Spark JSON type.
fn spark_text(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("array") => format!("array<{}>", spark_text(&o["elementType"])),
            Some("struct") => format!(
                "struct<{}>",
                o["fields"]
                    .as_array()
                    .map(|fs| fs
                        .iter()
                        .map(|f| format!("{}:{}", f["name"].as_str().unwrap_or("?"), spark_text(&f["type"])))
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            ),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

const ERROR_VALUES: [&str; 8] =
    ["#ERROR!", "#ERROR", "#N/A", "#NUM!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?"];

/// A computed cell that holds no result: `{"specialValue": …}`, `{"error": …}` or `#ERROR!`.
fn is_special(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("specialValue") || o.contains_key("error"),
        Value::String(s) => ERROR_VALUES.contains(&s.trim()),
        _ => false,
    }
}

/// A timestamp as Arrow's JSON writer prints one in UTC.
fn arrow_timestamp(s: &str) -> Value {
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).into();
    json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// What preview shows for a non-null cell of `k` holding `raw` (computed cells may hold errors).
fn expected(k: &Kind, raw: &Value, computed: bool) -> Value {
    if raw.is_null() || (computed && is_special(raw)) {
        return Value::Null;
    }
    match (k, raw) {
        (Kind::Json, v) => json!(v.to_string()),
        (Kind::Str, Value::String(_)) => raw.clone(),
        (Kind::Str, v) => json!(v.to_string()),
        (Kind::Long, v) => {
            v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).map(Value::from).unwrap_or(Value::Null)
        }
        (Kind::Double, Value::Number(_)) => raw.clone(),
        (Kind::Decimal(p), Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            json!(format!("{f:.0$}", *p as usize).parse::<f64>().unwrap_or(f64::NAN))
        }
        (Kind::Bool, Value::Bool(_)) => raw.clone(),
        (Kind::Date, Value::String(s)) if s.len() == 10 => raw.clone(),
        (Kind::Date, Value::String(s)) => {
            let ts = arrow_timestamp(s);
            json!(ts.as_str().map(|t| &t[..10]))
        }
        (Kind::Timestamp, Value::String(s)) => arrow_timestamp(s),
        (Kind::Array(inner), Value::Array(items)) => {
            // Lookups of array fields come back as nested arrays; Airtable shows them flat.
            fn flat<'a>(items: &'a [Value], out: &mut Vec<&'a Value>) {
                for i in items {
                    match i {
                        Value::Array(nested) => flat(nested, out),
                        v => out.push(v),
                    }
                }
            }
            let mut all = Vec::new();
            flat(items, &mut all);
            Value::Array(all.into_iter().map(|v| expected(inner, v, computed)).collect())
        }
        (Kind::Array(inner), v) => Value::Array(vec![expected(inner, v, computed)]),
        (Kind::Struct(members), Value::Object(o)) => {
            let mut out = Map::new();
            for (name, key, kind) in members {
                if let Some(v) = o.get(*key) {
                    let v = expected(kind, v, false);
                    if !v.is_null() {
                        out.insert(name.to_string(), v);
                    }
                }
            }
            Value::Object(out)
        }
        _ => panic!("the seed holds {raw} where AIRTABLE.md expects {}", kind_text(k)),
    }
}

/// JSON equality with numbers compared as numbers (Arrow prints `3600.0` for a double 3600).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// What the checks of one field type saw, for the type-specific assertions.
#[derive(Debug, Default)]
struct Seen {
    /// Records holding a value for a field of the type.
    held: usize,
    /// Records without a value (absent from `fields`).
    absent: usize,
    /// Computed cells holding an error or special value.
    special: usize,
}

/// Checks every field of type `ftype` in the base, over every record, and fails listing
/// every column or value that is not what AIRTABLE.md's mapping gives.
fn check_type(ftype: &str) -> Seen {
    let mut failures = Vec::new();
    let mut seen = Seen::default();
    let mut fields_of_type = 0;
    for table in base() {
        for field in table.fields.iter().filter(|f| f["type"] == ftype) {
            fields_of_type += 1;
            let (fid, fname) = (field["id"].as_str().unwrap_or("?"), field["name"].as_str().unwrap_or("?"));
            let here = format!("{ftype}: {}.{fname:?}", table.name);
            let Some(column) = table.schema["fields"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["metadata"]["airtable_field_id"] == fid))
            else {
                failures.push(format!("{here}: no column has metadata airtable_field_id {fid}"));
                continue;
            };
            let k = kind(ftype, field.get("options"));
            let (want, got) = (kind_text(&k), spark_text(&column["type"]));
            if want != got {
                failures.push(format!("{here}: column type is {got}, AIRTABLE.md says {want}"));
                continue;
            }
            let name = column["name"].as_str().unwrap_or("?");
            let computed = matches!(ftype, "formula" | "rollup" | "multipleLookupValues");
            for record in &table.records {
                let id = record["id"].as_str().unwrap_or("?");
                let raw = record["fields"].get(fid);
                let want = match raw {
                    None if matches!(k, Kind::Bool) => json!(false),
                    None => Value::Null,
                    Some(v) => expected(&k, v, computed),
                };
                match raw {
                    None => seen.absent += 1,
                    Some(v) if computed && is_special(v) => seen.special += 1,
                    Some(_) => seen.held += 1,
                }
                let Some((row, line)) = table.rows.get(id) else {
                    failures.push(format!("{here}: record {id} is missing from preview"));
                    continue;
                };
                let got = row.get(name).cloned().unwrap_or(Value::Null);
                if !same(&want, &got) {
                    failures.push(format!(
                        "{here} → column {name}, record {id}: the API holds {}, so preview should show {want}, but shows {got}",
                        raw.map(Value::to_string).unwrap_or_else(|| "nothing".into())
                    ));
                }
                // A decimal keeps its scale on output: `89.00`, not `89.0`.
                if let (Kind::Decimal(p), Some(f)) = (&k, want.as_f64()) {
                    let text = format!("\"{name}\":{:.*}", *p as usize, if f == 0.0 { 0.0 } else { f });
                    if !line.contains(&text) {
                        failures.push(format!("{here}: record {id} should print {text}: {line}"));
                    }
                }
            }
        }
    }
    assert!(fields_of_type > 0, "the seed base has no field of type {ftype}");
    assert!(failures.is_empty(), "{} mismatch(es):\n  {}", failures.len(), failures.join("\n  "));
    assert!(seen.held > 0, "no record of the seed base holds a {ftype} value: {seen:?}");
    seen
}

macro_rules! field_type_tests {
    ($($test:ident => $ftype:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_type($ftype);
            }
        )*
    };
}

field_type_tests! {
    single_line_text => "singleLineText",
    email => "email",
    url => "url",
    phone_number => "phoneNumber",
    multiline_text => "multilineText",
    rich_text => "richText",
    single_select => "singleSelect",
    multiple_selects => "multipleSelects",
    external_sync_source => "externalSyncSource",
    number_with_precision_is_decimal => "number",
    currency_is_decimal => "currency",
    percent => "percent",
    auto_number => "autoNumber",
    count => "count",
    rating => "rating",
    duration => "duration",
    date => "date",
    date_time_is_a_utc_timestamp => "dateTime",
    created_time => "createdTime",
    last_modified_time => "lastModifiedTime",
    single_collaborator => "singleCollaborator",
    created_by => "createdBy",
    last_modified_by => "lastModifiedBy",
    multiple_collaborators => "multipleCollaborators",
    multiple_record_links => "multipleRecordLinks",
    multiple_attachments => "multipleAttachments",
    barcode => "barcode",
    button => "button",
    multiple_lookup_values => "multipleLookupValues",
    manual_sort => "manualSort",
}

#[test]
fn checkbox_absent_is_false() {
    let seen = check_type("checkbox");
    assert!(seen.absent > 0, "no unchecked box in the seed, so absent → false went untested: {seen:?}");
}

#[test]
fn ai_text_keys_are_snake_case() {
    check_type("aiText");
    let stale_or_error = base()
        .iter()
        .flat_map(|t| t.rows.values())
        .filter(|(_, line)| line.contains("\"is_stale\":true") || line.contains("\"error_type\":"))
        .count();
    assert!(stale_or_error > 0, "no aiText cell printed is_stale: true or an error_type");
}

#[test]
fn rollup_special_values_become_null() {
    let seen = check_type("rollup");
    assert!(seen.special > 0, "no rollup holds a special or error value in the seed: {seen:?}");
}

#[test]
fn formula_is_typed_from_its_result_or_kept_as_json() {
    let seen = check_type("formula");
    assert!(seen.special > 0, "no formula holds #ERROR! in the seed: {seen:?}");
    let results: BTreeSet<String> = base()
        .iter()
        .flat_map(|t| &t.fields)
        .filter(|f| f["type"] == "formula")
        .map(|f| f["options"]["result"]["type"].as_str().unwrap_or("(none)").to_string())
        .collect();
    assert!(results.contains("(none)") && results.len() >= 3, "formula results covered: {results:?}");
}

#[test]
fn an_unknown_type_becomes_json_text() {
    let known: BTreeSet<&str> = [
        "singleLineText",
        "email",
        "url",
        "phoneNumber",
        "multilineText",
        "richText",
        "singleSelect",
        "multipleSelects",
        "externalSyncSource",
        "number",
        "currency",
        "percent",
        "autoNumber",
        "count",
        "rating",
        "duration",
        "checkbox",
        "date",
        "dateTime",
        "createdTime",
        "lastModifiedTime",
        "singleCollaborator",
        "createdBy",
        "lastModifiedBy",
        "multipleCollaborators",
        "multipleRecordLinks",
        "multipleAttachments",
        "barcode",
        "button",
        "aiText",
        "formula",
        "rollup",
        "multipleLookupValues",
        "manualSort",
    ]
    .into();
    let unknown: BTreeSet<&str> = base()
        .iter()
        .flat_map(|t| &t.fields)
        .filter_map(|f| f["type"].as_str())
        .filter(|t| !known.contains(t))
        .collect();
    assert!(!unknown.is_empty(), "the seed has no field of a type AIRTABLE.md does not list");
    for t in unknown {
        check_type(t);
    }
}

#[test]
fn every_table_reads_completely_through_short_pages() {
    let mut empty_records = 0;
    for table in base() {
        let ids: Vec<&str> = table.records.iter().filter_map(|r| r["id"].as_str()).collect();
        let got: Vec<&str> = table.short_page_ids.iter().map(String::as_str).collect();
        assert_eq!(
            got.len(),
            ids.len(),
            "{}: rows read through pages of 3 vs records in the simulator",
            table.name
        );
        let unique: BTreeSet<&str> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "{}: a record came twice", table.name);
        assert_eq!(unique, ids.iter().copied().collect(), "{}: different records", table.name);
        for r in table.records.iter().filter(|r| r["fields"].as_object().is_some_and(Map::is_empty)) {
            empty_records += 1;
            let id = r["id"].as_str().unwrap_or("?");
            let row = &table
                .rows
                .get(id)
                .unwrap_or_else(|| panic!("{}: empty record {id} was dropped", table.name))
                .0;
            let keys: BTreeMap<&String, &Value> =
                row.as_object().map(|o| o.iter().collect()).unwrap_or_default();
            assert_eq!(row["id"], id, "{}: {keys:?}", table.name);
        }
    }
    assert!(empty_records > 0, "the seed has no record with empty fields");
}
