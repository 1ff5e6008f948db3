//! Tests of the mapping logic over realistic Airtable JSON, through an in-memory [`Host`].
//!
//! End-to-end tests against the simulator, through the sandbox, live in the top-level
//! `tests/` crate; these pin down exactly what the connector asks and what it emits.

mod checkpoints;
mod deletes;
mod errors;
mod fake;
mod read;
mod rows;
mod schema;

use std::cell::RefCell;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, DecimalType, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_schema::DataType;
use serde_json::Value;
use weir_connector_sdk::{HttpError, Level, Options, Page, Request, Response, Rows};

pub(crate) const BASE: &str = "https://api.airtable.com";
pub(crate) const META_URL: &str = "https://api.airtable.com/v0/meta/bases/appLaunch0000001/tables";

/// The connection options of the fixture base.
pub(crate) fn connection() -> Options {
    opts(&[("base_id", "appLaunch0000001")])
}

/// Options from pairs.
pub(crate) fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Decodes `%XX` escapes (the connector never writes `+` for a space).
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("the connector encodes UTF-8")
}

/// A request as the tests look at it: method, path, and decoded parameters (query or body).
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub url_len: usize,
}

impl Sent {
    fn from(r: &Request) -> Sent {
        let (path, query) = r.url.split_once('?').unwrap_or((&r.url, ""));
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let body: Option<Value> = r.body.as_ref().map(|b| serde_json::from_slice(b).expect("JSON body"));
        if let Some(Value::Object(map)) = &body {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.push((k.clone(), text));
            }
        }
        Sent {
            method: r.method.clone(),
            path: path.to_string(),
            params,
            headers: r.headers.clone(),
            body,
            url_len: r.url.len(),
        }
    }

    /// The value of a parameter, if sent once or more (the first).
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`fields[]`).
    pub(crate) fn params(&self, key: &str) -> Vec<&str> {
        self.params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

type Answer = Result<Response, HttpError>;

struct Route {
    path: String,
    /// Parameters that must have this value (Some) or be absent (None).
    when: Vec<(String, Option<String>)>,
    answer: Answer,
    /// How many more times the route answers; None for always.
    times: Option<usize>,
}

/// An in-memory Airtable: routes from path and parameters to canned responses.
#[derive(Default)]
pub(crate) struct MockHost {
    routes: RefCell<Vec<Route>>,
    pub sent: RefCell<Vec<Sent>>,
    pub logs: RefCell<Vec<(Level, String)>>,
}

/// A JSON response with a status.
pub(crate) fn json(status: u16, body: &str) -> Answer {
    Ok(Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    })
}

impl MockHost {
    /// A host that serves the fixture base's meta response.
    pub(crate) fn with_meta() -> MockHost {
        let host = MockHost::default();
        host.route(META_URL, &[], json(200, META));
        host
    }

    /// Answers requests to `path` whose parameters match `when` (value None: absent).
    pub(crate) fn route(&self, path: &str, when: &[(&str, Option<&str>)], answer: Answer) {
        self.push(path, when, answer, None);
    }

    /// Like [`MockHost::route`], but answers only once; earlier routes win.
    pub(crate) fn route_once(&self, path: &str, when: &[(&str, Option<&str>)], answer: Answer) {
        self.push(path, when, answer, Some(1));
    }

    fn push(&self, path: &str, when: &[(&str, Option<&str>)], answer: Answer, times: Option<usize>) {
        let when = when.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect();
        self.routes.borrow_mut().push(Route { path: path.to_string(), when, answer, times });
    }

    /// The requests sent to a path other than the meta listing.
    pub(crate) fn record_requests(&self) -> Vec<Sent> {
        self.sent.borrow().iter().filter(|s| s.path != META_URL).cloned().collect()
    }
}

impl weir_connector_sdk::Host for MockHost {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let sent = Sent::from(&request);
        self.sent.borrow_mut().push(sent.clone());
        let mut routes = self.routes.borrow_mut();
        let found = routes.iter_mut().find(|r| {
            r.path == sent.path
                && r.times != Some(0)
                && r.when.iter().all(|(k, v)| sent.param(k) == v.as_deref())
        });
        match found {
            Some(route) => {
                if let Some(n) = route.times.as_mut() {
                    *n -= 1;
                }
                route.answer.clone()
            }
            None => panic!("no route for {} {} {:?}", sent.method, sent.path, sent.params),
        }
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

/// The rows of a page, read back from its Arrow IPC stream into JSON objects: nulls left out,
/// times as the connector's millisecond text, dates as `YYYY-MM-DD`, decimals as their shortest
/// decimal text, so that a row reads as its cells' values would be written in JSON.
pub(crate) fn rows(page: &Page) -> Vec<Value> {
    let stream = match &page.rows {
        Rows::ArrowIpc(stream) => stream,
        // Tombstones and the empty page that ends a read.
        Rows::JsonLines(text) => {
            return text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        }
    };
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None).expect("an IPC stream");
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.expect("a record batch");
        for row in 0..batch.num_rows() {
            let object = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .filter_map(|(field, column)| Some((field.name().clone(), value_of(column, row)?)))
                .collect();
            out.push(Value::Object(object));
        }
    }
    out
}

/// One Arrow value as JSON, or `None` for a null.
pub(crate) fn value_of(array: &dyn Array, i: usize) -> Option<Value> {
    if array.is_null(i) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::from(array.as_boolean().value(i)),
        DataType::Decimal128(precision, scale) => {
            let text = Decimal128Type::format_decimal(
                array.as_primitive::<Decimal128Type>().value(i),
                *precision,
                *scale,
            );
            let text =
                if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
            serde_json::from_str(text).expect("decimal text is a JSON number")
        }
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(i));
            Value::from(&crate::time::format_ms(days * 86_400_000)[..10])
        }
        DataType::Timestamp(..) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(i);
            Value::from(crate::time::format_ms(micros.div_euclid(1000)))
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            Value::Array((0..items.len()).map(|j| value_of(&items, j).unwrap_or(Value::Null)).collect())
        }
        DataType::Struct(fields) => {
            let members = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(members.columns())
                    .filter_map(|(field, column)| Some((field.name().clone(), value_of(column, i)?)))
                    .collect(),
            )
        }
        other => panic!("the connector writes no {other} column"),
    })
}

/// The `id`s of rows.
pub(crate) fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// A records response.
pub(crate) fn records(records: &[Value], offset: Option<&str>) -> Answer {
    let mut body = serde_json::json!({ "records": records });
    if let Some(offset) = offset {
        body["offset"] = Value::String(offset.to_string());
    }
    json(200, &body.to_string())
}

/// A record with only an id, a created time and the given fields.
pub(crate) fn record(id: &str, fields: Value) -> Value {
    serde_json::json!({"id": id, "createdTime": "2024-01-02T03:04:05.000Z", "fields": fields})
}

pub(crate) const SKU: &str = "tblSku0000000001";
pub(crate) const MILESTONES: &str = "tblMil0000000002";
pub(crate) const VENDORS: &str = "tblVen0000000003";
pub(crate) const COMPLIANCE: &str = "tblCmp0000000004";

/// The records URL of a table.
pub(crate) fn records_url(table_id: &str) -> String {
    format!("{BASE}/v0/appLaunch0000001/{table_id}")
}

/// A meta response in Airtable's shape, with every field type across four tables.
pub(crate) const META: &str = r#"{"tables":[
 {"id":"tblSku0000000001","name":"SKU Candidates","primaryFieldId":"fldName","fields":[
  {"id":"fldName","name":"Name","type":"singleLineText"},
  {"id":"fldEmail","name":"Contact Email","type":"email"},
  {"id":"fldNotes","name":"Notes","type":"multilineText"},
  {"id":"fldStatus","name":"Status","type":"singleSelect","options":{"choices":[{"id":"selA","name":"Shortlisted","color":"blueLight2"}]}},
  {"id":"fldTags","name":"Tags","type":"multipleSelects","options":{"choices":[]}},
  {"id":"fldPrice","name":"Unit Price","type":"currency","options":{"precision":2,"symbol":"$"}},
  {"id":"fldWeight","name":"Weight (kg)","type":"number","options":{"precision":3}},
  {"id":"fldScore","name":"Score","type":"number"},
  {"id":"fldMargin","name":"Margin","type":"percent","options":{"precision":1}},
  {"id":"fldLead","name":"Lead Time","type":"duration","options":{"durationFormat":"h:mm"}},
  {"id":"fldAuto","name":"SKU #","type":"autoNumber"},
  {"id":"fldCount","name":"Vendor Count","type":"count","options":{"isValid":true,"recordLinkFieldId":"fldVendors"}},
  {"id":"fldRating","name":"Rating","type":"rating","options":{"max":5,"icon":"star","color":"yellowBright"}},
  {"id":"fldApproved","name":"Approved","type":"checkbox","options":{"icon":"check","color":"greenBright"}},
  {"id":"fldLaunch","name":"Launch Date","type":"date","options":{"dateFormat":{"name":"iso","format":"YYYY-MM-DD"}}},
  {"id":"fldReview","name":"Review At","type":"dateTime","options":{"timeZone":"utc","dateFormat":{"name":"iso"},"timeFormat":{"name":"24hour"}}},
  {"id":"fldCreated","name":"Created","type":"createdTime","options":{"result":{"type":"dateTime","options":{"timeZone":"utc"}}}},
  {"id":"fldCreatedDay","name":"Created Day","type":"createdTime","options":{"result":{"type":"date","options":{}}}},
  {"id":"fldOwner","name":"Owner","type":"singleCollaborator"},
  {"id":"fldReviewers","name":"Reviewers","type":"multipleCollaborators"},
  {"id":"fldCreatedBy","name":"Created By","type":"createdBy"},
  {"id":"fldVendors","name":"Vendors","type":"multipleRecordLinks","options":{"linkedTableId":"tblVen0000000003","isReversed":false,"prefersSingleRecordLink":false}},
  {"id":"fldPhotos","name":"Photos","type":"multipleAttachments","options":{"isReversed":false}},
  {"id":"fldBarcode","name":"Barcode","type":"barcode"},
  {"id":"fldButton","name":"Open","type":"button"},
  {"id":"fldAi","name":"AI Summary","type":"aiText","options":{"prompt":[],"referencedFieldIds":[]}},
  {"id":"fldTotal","name":"Total","type":"formula","options":{"isValid":true,"formula":"{fldPrice}*2","referencedFieldIds":["fldPrice"],"result":{"type":"number","options":{"precision":2}}}},
  {"id":"fldLabel","name":"Label","type":"formula","options":{"isValid":true,"referencedFieldIds":[],"result":{"type":"singleLineText"}}},
  {"id":"fldFlag","name":"Is Ready","type":"formula","options":{"isValid":true,"referencedFieldIds":[],"result":{"type":"checkbox"}}},
  {"id":"fldDue","name":"Due","type":"formula","options":{"isValid":true,"referencedFieldIds":[],"result":{"type":"dateTime","options":{"timeZone":"utc"}}}},
  {"id":"fldOdd","name":"Odd Formula","type":"formula","options":{"isValid":false,"referencedFieldIds":[],"result":null}},
  {"id":"fldSum","name":"Vendor Spend","type":"rollup","options":{"isValid":true,"recordLinkFieldId":"fldVendors","fieldIdInLinkedTable":"fldSpend","referencedFieldIds":[],"result":{"type":"currency","options":{"precision":2,"symbol":"$"}}}},
  {"id":"fldVendorNames","name":"Vendor Names","type":"multipleLookupValues","options":{"isValid":true,"recordLinkFieldId":"fldVendors","fieldIdInLinkedTable":"fldVName","result":{"type":"singleLineText"}}},
  {"id":"fldVendorTags","name":"Vendor Tags","type":"multipleLookupValues","options":{"isValid":true,"recordLinkFieldId":"fldVendors","fieldIdInLinkedTable":"fldVTags","result":{"type":"multipleSelects","options":{"choices":[]}}}},
  {"id":"fldLookupNull","name":"Mystery Lookup","type":"multipleLookupValues","options":{"isValid":false,"result":null}},
  {"id":"fldSort","name":"Manual Sort","type":"manualSort"},
  {"id":"fldSync","name":"Source","type":"externalSyncSource","options":{"choices":[]}},
  {"id":"fldRich","name":"Brief","type":"richText"},
  {"id":"fldPhone","name":"Phone","type":"phoneNumber"},
  {"id":"fldUrl","name":"Website","type":"url"},
  {"id":"fldNew","name":"Future Thing","type":"holographicField","options":{"depth":3}},
  {"id":"fldModBy","name":"Modified By","type":"lastModifiedBy"},
  {"id":"fldMod","name":"Last Modified","type":"lastModifiedTime","options":{"isValid":true,"referencedFieldIds":[],"result":{"type":"dateTime","options":{"timeZone":"utc"}}}}
 ],"views":[{"id":"viwGrid","name":"Grid view","type":"grid"}]},
 {"id":"tblMil0000000002","name":"🚀 Launch Milestones","primaryFieldId":"fldM1","fields":[
  {"id":"fldM1","name":"🚀 Milestone","type":"singleLineText"},
  {"id":"fldM2","name":"Owner","type":"singleCollaborator"},
  {"id":"fldM3","name":"owner ","type":"singleLineText"},
  {"id":"fldM4","name":"ID","type":"autoNumber"},
  {"id":"fldM5","name":"Created Time","type":"createdTime","options":{"result":{"type":"dateTime"}}},
  {"id":"fldM6","name":"2024 Budget","type":"currency","options":{"precision":0,"symbol":"€"}},
  {"id":"fldM7","name":"📅","type":"date"},
  {"id":"fldM8","name":"🎯","type":"date"},
  {"id":"fldM9","name":"Owner_2","type":"singleLineText"},
  {"id":"fldMA","name":"PhaseName","type":"singleLineText"},
  {"id":"fldMB","name":"Q3 Target.Value [USD]","type":"number","options":{"precision":2}},
  {"id":"fldMC","name":"Owner's HTTPServer","type":"url"},
  {"id":"fldMD","name":"Last Touched","type":"lastModifiedTime","options":{"isValid":true,"referencedFieldIds":["fldM1"],"result":{"type":"dateTime"}}}
 ],"views":[{"id":"viwM","name":"Timeline","type":"timeline"}]},
 {"id":"tblVen0000000003","name":"Vendors","primaryFieldId":"fldV1","fields":[
  {"id":"fldV1","name":"Vendor Name","type":"singleLineText"},
  {"id":"fldV2","name":"Contact","type":"email"}
 ],"views":[{"id":"viwV","name":"Grid view","type":"grid"}]},
 {"id":"tblCmp0000000004","name":"Compliance Records","primaryFieldId":"fldC1","fields":[
  {"id":"fldC1","name":"Record","type":"singleLineText"},
  {"id":"fldC2","name":"Audited At","type":"dateTime"},
  {"id":"fldC3","name":"Updated","type":"lastModifiedTime","options":{"isValid":true,"result":{"type":"dateTime"}}}
 ],"views":[{"id":"viwC","name":"Grid view","type":"grid"}]}
]}"#;
