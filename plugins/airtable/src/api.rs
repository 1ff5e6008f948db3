//! The Airtable Web API calls the connector makes, and how its errors map to ours.

use serde::Deserialize;
use serde_json::{Value, json};
use weir_connector_sdk::{ConnectorError, Host, Level, Request, Response};

use crate::rows::Record;
use crate::schema::BaseMeta;

/// Airtable refuses longer URLs; past this the listing moves into a POST body.
pub(crate) const MAX_URL_LEN: usize = 16_000;

/// The error type Airtable uses for an expired page iterator.
const ITERATOR_EXPIRED: &str = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE";

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parameters of one list-records request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ListQuery {
    pub page_size: u32,
    pub offset: Option<String>,
    pub view: Option<String>,
    /// Field ids.
    pub fields: Option<Vec<String>>,
    pub filter: Option<String>,
    /// Sorts ascending by this field name.
    pub sort: Option<String>,
    pub max_records: Option<u32>,
}

/// One page of records, borrowed from the response body.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordsPage<'a> {
    #[serde(default, borrow)]
    pub records: Vec<Record<'a>>,
    #[serde(default)]
    pub offset: Option<String>,
}

/// A list-records response body, read by [`ListBody::page`].
#[derive(Debug)]
pub(crate) struct ListBody {
    body: Vec<u8>,
    what: String,
}

impl ListBody {
    /// The page's records, borrowed from the body. The body is checked to be UTF-8 once, so
    /// the strings borrowed from it need no check of their own.
    pub(crate) fn page(&self) -> Result<RecordsPage<'_>, ConnectorError> {
        let text = std::str::from_utf8(&self.body).map_err(|e| unexpected(&self.what, e, &self.body))?;
        match crate::scan::page(text) {
            Some(page) => Ok(page),
            None => serde_json::from_str(text).map_err(|e| unexpected(&self.what, e, &self.body)),
        }
    }
}

/// What a list-records request came back with.
#[derive(Debug)]
pub(crate) enum Listing {
    Page(ListBody),
    /// The page token expired; the listing must start over.
    IteratorExpired,
}

/// Airtable's error body, in either of its two shapes.
struct ApiError {
    kind: String,
    message: String,
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

fn api_error(body: &[u8]) -> ApiError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(Value::String(kind)) => ApiError { kind: kind.clone(), message: String::new() },
        Some(Value::Object(e)) => ApiError {
            kind: e.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
            message: e.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
        },
        _ => ApiError { kind: String::new(), message: excerpt(body) },
    }
}

/// Maps a non-2xx response to an error; `what` says which call it was.
pub(crate) fn error_for(response: &Response, what: &str) -> ConnectorError {
    let e = api_error(&response.body);
    let text = match (e.kind.is_empty(), e.message.is_empty()) {
        (false, false) => format!("{}: {}", e.kind, e.message),
        (false, true) => e.kind,
        (true, _) => e.message,
    };
    match response.status {
        401 | 403 => ConnectorError::Auth(format!("{text} ({what})")),
        429 => ConnectorError::RateLimited(format!("{text} ({what})")),
        status => ConnectorError::Source { status, message: format!("{text} ({what})") },
    }
}

fn unexpected(what: &str, e: impl std::fmt::Display, body: &[u8]) -> ConnectorError {
    ConnectorError::Internal(format!("unexpected response to {what} ({e}): {}", excerpt(body)))
}

pub(crate) fn parse<'de, T: Deserialize<'de>>(body: &'de [u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|e| unexpected(what, e, body))
}

fn send(host: &dyn Host, request: Request) -> Result<Response, ConnectorError> {
    host.send(request).map_err(|e| ConnectorError::Internal(e.to_string()))
}

/// The ids of every base the token can read (`GET /v0/meta/bases`, 1,000 per page), in the
/// API's order.
pub(crate) fn list_bases(host: &dyn Host, base_url: &str) -> Result<Vec<String>, ConnectorError> {
    #[derive(Deserialize)]
    struct Base {
        id: String,
    }
    #[derive(Deserialize)]
    struct Bases {
        #[serde(default)]
        bases: Vec<Base>,
        #[serde(default)]
        offset: Option<String>,
    }
    let mut ids = Vec::new();
    let mut offset: Option<String> = None;
    // A bound on pages, so a source that hands back offsets for ever cannot hold the call.
    for _ in 0..1000 {
        let url = match &offset {
            None => format!("{base_url}/v0/meta/bases"),
            Some(o) => format!("{base_url}/v0/meta/bases?offset={}", encode(o)),
        };
        let response = send(host, Request::get(url))?;
        let what = "listing the bases the token can read";
        if !(200..300).contains(&response.status) {
            return Err(error_for(&response, what));
        }
        let page: Bases = parse(&response.body, what)?;
        ids.extend(page.bases.into_iter().map(|b| b.id));
        match page.offset {
            Some(next) if Some(&next) != offset.as_ref() => offset = Some(next),
            _ => return Ok(ids),
        }
    }
    Err(ConnectorError::Internal("the base listing did not end after 1,000 pages".into()))
}

/// The Airtable API of one base, through the host.
pub(crate) struct Client<'a> {
    pub host: &'a dyn Host,
    /// Without a trailing slash.
    pub base_url: String,
    pub base_id: String,
}

impl Client<'_> {
    fn send(&self, request: Request) -> Result<Response, ConnectorError> {
        send(self.host, request)
    }

    /// The base's tables with their fields, in base order.
    pub(crate) fn meta(&self) -> Result<BaseMeta, ConnectorError> {
        let url = format!("{}/v0/meta/bases/{}/tables", self.base_url, encode(&self.base_id));
        let response = self.send(Request::get(url))?;
        let what = format!("reading the tables of base {}", self.base_id);
        if !(200..300).contains(&response.status) {
            return Err(error_for(&response, &what));
        }
        parse(&response.body, &what)
    }

    /// One page of records of `table_id` (a `tbl…` id, so emoji names never reach a URL).
    pub(crate) fn list(
        &self,
        table_id: &str,
        table_name: &str,
        q: &ListQuery,
    ) -> Result<Listing, ConnectorError> {
        let path = format!("{}/v0/{}/{}", self.base_url, encode(&self.base_id), encode(table_id));
        let mut params: Vec<(&str, String)> = vec![("pageSize", q.page_size.to_string())];
        if let Some(offset) = &q.offset {
            params.push(("offset", offset.clone()));
        }
        if let Some(view) = &q.view {
            params.push(("view", view.clone()));
        }
        for field in q.fields.iter().flatten() {
            params.push(("fields[]", field.clone()));
        }
        if let Some(filter) = &q.filter {
            params.push(("filterByFormula", filter.clone()));
        }
        if let Some(sort) = &q.sort {
            params.push(("sort[0][field]", sort.clone()));
            params.push(("sort[0][direction]", "asc".into()));
        }
        if let Some(max) = q.max_records {
            params.push(("maxRecords", max.to_string()));
        }
        params.push(("cellFormat", "json".into()));
        params.push(("returnFieldsByFieldId", "true".into()));
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let url = format!("{path}?{}", query.join("&"));
        let request = if url.len() <= MAX_URL_LEN {
            Request::get(url)
        } else {
            self.host.log(
                Level::Debug,
                &format!("listing {table_name:?} by POST: the GET URL would be {} characters", url.len()),
            );
            let mut body =
                json!({"pageSize": q.page_size, "cellFormat": "json", "returnFieldsByFieldId": true});
            let fields = [
                ("offset", q.offset.as_ref().map(|v| json!(v))),
                ("view", q.view.as_ref().map(|v| json!(v))),
                ("fields", q.fields.as_ref().map(|v| json!(v))),
                ("filterByFormula", q.filter.as_ref().map(|v| json!(v))),
                ("sort", q.sort.as_ref().map(|f| json!([{"field": f, "direction": "asc"}]))),
                ("maxRecords", q.max_records.map(|v| json!(v))),
            ];
            for (key, value) in fields {
                if let (Some(value), Some(map)) = (value, body.as_object_mut()) {
                    map.insert(key.into(), value);
                }
            }
            Request::post_json(format!("{path}/listRecords"), &body)
        };
        let response = self.send(request)?;
        let what = format!("listing records of table {table_name:?}");
        match response.status {
            200..=299 => Ok(Listing::Page(ListBody { body: response.body, what })),
            422 if q.offset.is_some() && api_error(&response.body).kind == ITERATOR_EXPIRED => {
                Ok(Listing::IteratorExpired)
            }
            // The table was resolved against the meta listing, so a miss here means it just vanished.
            404 if api_error(&response.body).kind.contains("NOT_FOUND") => {
                Err(ConnectorError::UnknownTable(table_name.to_string()))
            }
            _ => Err(error_for(&response, &what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii_bytes() {
        assert_eq!(encode("fields[]"), "fields%5B%5D");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("AND({Last Modified}, '2024')"), "AND%28%7BLast%20Modified%7D%2C%20%272024%27%29");
        assert_eq!(encode("itr1/rec2"), "itr1%2Frec2");
        assert_eq!(encode("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn parses_both_error_shapes() {
        let r = |status, body: &str| Response { status, headers: vec![], body: body.as_bytes().to_vec() };
        let e = error_for(&r(404, r#"{"error":"NOT_FOUND"}"#), "x");
        assert_eq!(e, ConnectorError::Source { status: 404, message: "NOT_FOUND (x)".into() });
        let e = error_for(&r(422, r#"{"error":{"type":"INVALID_FILTER_BY_FORMULA","message":"bad"}}"#), "x");
        assert_eq!(
            e,
            ConnectorError::Source { status: 422, message: "INVALID_FILTER_BY_FORMULA: bad (x)".into() }
        );
        let e = error_for(&r(502, "<html>Bad gateway</html>"), "x");
        assert_eq!(e, ConnectorError::Source { status: 502, message: "<html>Bad gateway</html> (x)".into() });
        let e = error_for(&r(429, r#"{"error":{"type":"RATE_LIMIT_REACHED","message":"slow"}}"#), "x");
        assert!(matches!(e, ConnectorError::RateLimited(m) if m.starts_with("RATE_LIMIT_REACHED")));
    }
}
