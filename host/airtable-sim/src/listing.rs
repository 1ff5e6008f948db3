//! Listing records: the request's parameters, the order a listing walks, and its pages.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::cdc;
use crate::formula::{self, Expr};
use crate::seed::ident;
use crate::server::{ApiError, BaseState, forbidden, invalid, iterator_gone, record_json, typed};
use crate::store::{Iter, Order, Record, Resume, Table, ordered_positions};

/// The list-records parameters, from a query string or a JSON body.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub page_size: Option<usize>,
    pub offset: Option<String>,
    pub view: Option<String>,
    pub fields: Option<Vec<String>>,
    pub sort: Vec<(String, String)>,
    pub filter: Option<String>,
    pub max_records: Option<usize>,
    pub by_field_id: bool,
    pub cell_format: Option<String>,
}

fn parse_count(key: &str, v: &str) -> Result<usize, ApiError> {
    v.trim().parse::<usize>().map_err(|_| invalid(format!("Invalid value for {key}: {v:?}")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(invalid(format!("Invalid value for {key}: {v:?}"))),
    }
}

impl ListParams {
    pub fn from_query(q: &str) -> Result<ListParams, ApiError> {
        let mut p = ListParams::default();
        let mut sort: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "pageSize" => p.page_size = Some(parse_count("pageSize", &v)?),
                "offset" => p.offset = Some(v),
                "view" => p.view = Some(v),
                "fields[]" | "fields" => p.fields.get_or_insert_with(Vec::new).push(v),
                "filterByFormula" => p.filter = Some(v),
                "maxRecords" => p.max_records = Some(parse_count("maxRecords", &v)?),
                "returnFieldsByFieldId" => p.by_field_id = parse_bool("returnFieldsByFieldId", &v)?,
                "cellFormat" => p.cell_format = Some(v),
                "timeZone" | "userLocale" => {}
                other => {
                    let parsed = other
                        .strip_prefix("sort[")
                        .and_then(|r| r.split_once("]["))
                        .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest.strip_suffix(']')?)));
                    match parsed {
                        Some((i, "field")) => sort.entry(i).or_default().0 = Some(v),
                        Some((i, "direction")) => sort.entry(i).or_default().1 = Some(v),
                        _ => return Err(invalid(format!("Unknown parameter: {other}"))),
                    }
                }
            }
        }
        for (i, (field, dir)) in sort {
            let field = field.ok_or_else(|| invalid(format!("sort[{i}] has a direction but no field")))?;
            p.sort.push((field, dir.unwrap_or_else(|| "asc".to_string())));
        }
        Ok(p)
    }

    pub fn from_body(body: &[u8]) -> Result<ListParams, ApiError> {
        let v: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?
        };
        let obj = v.as_object().ok_or_else(|| invalid("The request body must be a JSON object"))?;
        let mut p = ListParams::default();
        let text = |k: &str, v: &Value| {
            v.as_str().map(str::to_string).ok_or_else(|| invalid(format!("{k} must be a string")))
        };
        let count = |k: &str, v: &Value| {
            v.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid(format!("{k} must be a non-negative integer")))
        };
        for (k, v) in obj {
            match k.as_str() {
                "pageSize" => p.page_size = Some(count(k, v)?),
                "maxRecords" => p.max_records = Some(count(k, v)?),
                "offset" => p.offset = Some(text(k, v)?),
                "view" => p.view = Some(text(k, v)?),
                "filterByFormula" => p.filter = Some(text(k, v)?),
                "cellFormat" => p.cell_format = Some(text(k, v)?),
                "timeZone" | "userLocale" => {}
                "returnFieldsByFieldId" => {
                    p.by_field_id =
                        v.as_bool().ok_or_else(|| invalid("returnFieldsByFieldId must be a boolean"))?
                }
                "fields" => {
                    let items = v.as_array().ok_or_else(|| invalid("fields must be an array of strings"))?;
                    p.fields = Some(items.iter().map(|f| text("fields[]", f)).collect::<Result<_, _>>()?);
                }
                "sort" => {
                    let items = v.as_array().ok_or_else(|| invalid("sort must be an array"))?;
                    for s in items {
                        let field = s.get("field").ok_or_else(|| invalid("each sort needs a field"))?;
                        let dir = s.get("direction").map(|d| text("direction", d)).transpose()?;
                        p.sort.push((text("field", field)?, dir.unwrap_or_else(|| "asc".to_string())));
                    }
                }
                other => return Err(invalid(format!("Unknown parameter: {other}"))),
            }
        }
        Ok(p)
    }
}

fn unknown_field(name: &str) -> ApiError {
    typed(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{name}\""))
}

/// Answers one page. O(page) when walking an existing iterator; O(table) to start a filtered or
/// sorted one, except a cdc listing (sorted by a lastModifiedTime field ascending), which starts in
/// O(log table).
pub(crate) fn list_page(
    state: &mut BaseState,
    ttl: Duration,
    table: &str,
    p: ListParams,
) -> Result<Value, ApiError> {
    let BaseState { base, iters, ids, .. } = state;
    let ti = base.table_index(table).ok_or_else(forbidden)?;
    let t = &base.tables[ti];
    let page_size = p.page_size.unwrap_or(100);
    if !(1..=100).contains(&page_size) {
        return Err(invalid(format!("Invalid pageSize {page_size}: it must be between 1 and 100")));
    }
    match p.cell_format.as_deref() {
        None | Some("json") => {}
        Some(other) => return Err(invalid(format!("cellFormat {other:?} is not supported; use \"json\""))),
    }
    if p.max_records == Some(0) {
        return Err(invalid("maxRecords must be at least 1"));
    }
    let out_fields: Vec<&crate::store::FieldDef> = match &p.fields {
        Some(names) => {
            names.iter().map(|n| t.field(n).ok_or_else(|| unknown_field(n))).collect::<Result<_, _>>()?
        }
        None => t.fields.iter().collect(),
    };
    let resolve = |name: &str| t.fields.iter().find(|f| f.name == name).map(|f| f.id.clone());
    let filter = p
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| formula::parse(f, &resolve))
        .transpose()
        .map_err(|e| typed(422, "INVALID_FILTER_BY_FORMULA", e.to_string()))?;
    let mut sort = Vec::new();
    for (field, dir) in &p.sort {
        let f = t.field(field).ok_or_else(|| unknown_field(field))?;
        let desc = match dir.as_str() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(invalid(format!("Invalid sort direction {other:?}: use \"asc\" or \"desc\"")));
            }
        };
        sort.push((f.id.clone(), desc));
    }
    let view = match &p.view {
        Some(v) => Some(
            t.views
                .iter()
                .find(|w| w.id == *v || w.name == *v)
                .ok_or_else(|| typed(422, "VIEW_NAME_NOT_FOUND", format!("Could not find view {v:?}")))?,
        ),
        None => None,
    };

    let (itr, order, start, emitted, max_records) = match &p.offset {
        Some(token) => {
            let (it, at, emitted) = iters.resume(token, ti, ttl).ok_or_else(iterator_gone)?;
            let itr = token.split_once('/').map(|(i, _)| i.to_string()).unwrap_or_default();
            (Some(itr), it.order.clone(), Some(at), emitted, it.max_records)
        }
        None => {
            let filters: Vec<&Expr> =
                view.and_then(|v| v.filter.as_ref()).into_iter().chain(filter.as_ref()).collect();
            let sort = if sort.is_empty() { view.map(|v| v.sort.clone()).unwrap_or_default() } else { sort };
            (None, start_order(t, &filters, &sort, true), None, 0, p.max_records)
        }
    };

    let cap = page_size.min(max_records.map_or(usize::MAX, |m| m.saturating_sub(emitted)));
    let want_next = |n: usize| max_records.is_none_or(|m| emitted + n < m);
    let Page { records: page, next } = walk(t, &order, start, cap, want_next);
    let emitted = emitted + page.len();

    let records: Vec<Value> = page.iter().map(|r| record_json(r, &out_fields, p.by_field_id)).collect();
    let mut out = Map::new();
    out.insert("records".into(), Value::Array(records));
    if let Some((next, at)) = next {
        let itr = match itr {
            Some(itr) => itr,
            None => {
                if iters.live.len() > 1024 {
                    iters.sweep(ttl);
                }
                let itr = ident("itr", ids);
                let it = Iter {
                    table: ti,
                    order,
                    max_records,
                    last_used: Instant::now(),
                    cursors: Default::default(),
                };
                iters.live.insert(itr.clone(), it);
                itr
            }
        };
        if let Some(it) = iters.live.get_mut(&itr) {
            it.cursors.insert(next.clone(), (at, emitted));
        }
        out.insert("offset".into(), json!(format!("{itr}/{next}")));
    }
    Ok(Value::Object(out))
}

/// Builds the order a new listing walks. `fast` allows the cdc fast path; the tests turn it off to
/// compare both paths.
pub(crate) fn start_order(t: &Table, filters: &[&Expr], sort: &[(String, bool)], fast: bool) -> Order {
    if filters.is_empty() && sort.is_empty() {
        return Order::Natural;
    }
    if fast && let Some(w) = cdc::plan(t, filters, sort) {
        return Order::ByModified(Arc::new(w));
    }
    Order::Positions(Arc::new(ordered_positions(t, filters, sort)))
}

/// One page of a listing, and where the next one starts.
pub(crate) struct Page<'t> {
    pub records: Vec<&'t Record>,
    /// The next live record's id and position, while `want_next` allowed one.
    pub next: Option<(String, Resume)>,
}

/// The listing's positions from `from` (the start when `None`), each with where it resumes.
fn members<'t>(
    t: &'t Table,
    order: &'t Order,
    from: Option<Resume>,
) -> Box<dyn Iterator<Item = (Resume, usize)> + 't> {
    let index = match from {
        Some(Resume::Index(i)) => i,
        _ => 0,
    };
    match order {
        Order::Natural => Box::new((index..t.records.len()).map(|i| (Resume::Index(i), i))),
        Order::Positions(v) => Box::new((index..v.len()).map(|i| (Resume::Index(i), v[i] as usize))),
        Order::ByModified(w) => {
            let from = match from {
                Some(Resume::Key(k, p)) => Some((k, p)),
                _ => None,
            };
            Box::new(w.members(t, from).map(|(k, p)| (Resume::Key(k, p), p as usize)))
        }
    }
}

/// Walks up to `cap` live records from `from`, then finds the next live one when
/// `want_next(records on this page)` says the listing goes on. Deleted records are skipped.
pub(crate) fn walk<'t>(
    t: &'t Table,
    order: &'t Order,
    from: Option<Resume>,
    cap: usize,
    want_next: impl Fn(usize) -> bool,
) -> Page<'t> {
    let mut live = members(t, order, from)
        .filter_map(|(at, pos)| t.records.get(pos).and_then(Option::as_ref).map(|r| (at, r)));
    let records: Vec<&Record> = live.by_ref().take(cap).map(|(_, r)| r).collect();
    let next = if want_next(records.len()) { live.next().map(|(at, r)| (r.id.clone(), at)) } else { None };
    Page { records, next }
}
