//! Paged reads: snapshot and cdc offsets, and the restart after an expired page iterator.
//!
//! Offsets are JSON objects:
//!
//! | offset | meaning | checkpointable |
//! |---|---|---|
//! | `{"page", "emitted", "last", "pass"?, "before"?}` | inside a snapshot listing | no |
//! | `{"snapshot": "complete"}` | the snapshot was read to its end | yes |
//! | `{"cursor", "continue"?, "upto", "page", "max", "at_max"?, "emitted", "seen"?, "passed"?, "floor"?}` | inside a cdc listing | no |
//! | `{"cursor", "continue": true, "upto", "seen"?, "floor"?}` | a cdc read's chunk boundary: every change before the cursor (up to `upto`) was read, and at the cursor those of `seen` | yes |
//! | `{"cursor": "<ISO UTC>" \| null}` | every change up to the cursor was read | yes |
//!
//! `emitted` counts the records the current listing has returned (a snapshot's, across its
//! restarts). A snapshot listing names the last of them (`last`, at most [`ANCHORS`]); after a
//! restart, `pass` names those it has still to pass over, and `before` counts the records it
//! passed over while it had met none of `last`.
//! `seen` lists the ids of the records at the cursor value that the read has returned already,
//! and `passed` counts those of them this listing has passed over. `max` is the largest cursor
//! value the listing has returned, and `at_max` the ids of the records it returned at it (`null`
//! when more than [`NAMED_AT_MAX`]).
//! `floor` is the cursor the read went on from, when a continuation lies below it (inside the
//! lookback window): every change up to it was read before, so the read never ends below it.
//!
//! # An expired page iterator
//!
//! Airtable lets a listing's page token expire; the listing must start over. Neither kind trusts
//! places in the new listing: a record returned before may have gone since, so passing over as
//! many records as were returned would pass over one never returned.
//!
//! A snapshot listing has no order but the source's own, so it starts over from its beginning
//! and finds where it was by name: it passes over every record until it meets one of the last
//! records it returned (`last`), and passes over those wherever it meets them; every record after
//! the first it meets is returned. Records returned before `last` come before all of them in the
//! source's order, and those of `last` that are gone cannot be met. (When `last` names every
//! record returned, it passes over those by name alone.) Should none of `last` be met within as
//! many records as the listing had returned (plus [`ANCHORS`], for records a sorted view puts
//! before them), they are all gone, or left the listing (edited out of the view's or the
//! formula's filter, or moved in a sorted view): the read fails with a 422 that says so, having
//! committed nothing of the snapshot, and the next run reads it anew. A record moved in a sorted
//! view may come twice, or be missed as it would be by a listing that never expired.
//!
//! A cdc listing knows its order: a record it returned may have changed since (and left the
//! listing, whose cap `upto` it is now past) or gone, and records tied at one value may come in
//! another order. It starts over as a continuation from `max`, inclusive,
//! and passes over the records of `at_max`, as after a chunk boundary: every record below `max`
//! was returned already, since the listing is sorted. Should more records than an offset can
//! name share `max`, those come again rather than any being lost (the upsert folds them by key).
//! A cdc listing that has returned only records without a cursor value (Airtable sorts those
//! first) has no value to start from: it starts over as the same listing and passes over those
//! records by name (`at_max` names them while `max` is null). A restart below the cursor the
//! read went on from (inside its lookback window) carries that cursor as `floor`.
//!
//! # Checkpoints inside a cdc read
//!
//! The host commits rows only at checkpointable offsets, and a page token is not one. A
//! cdc read of a large table as one listing would therefore be held in host memory and
//! land in one commit. So a cdc listing (sorted by the cursor field, ascending) ends early
//! once it has returned `checkpoint_records` records and the last record of the current
//! page has a cursor value `v` strictly above the listing's lower bound: that page ends at
//! `{"cursor": v, "continue": true, "upto": …, "seen": […]}`, which is checkpointable.
//!
//! The next call continues with a listing of cursor values `≥ v`, written
//! `IS_AFTER({field}, v − 1 ms)` because Airtable's times have millisecond precision
//! (`NOT(IS_BEFORE(…))` would also match records with no value). The bound is inclusive
//! because records tied at `v` may sit on the next page. The boundary names the ids of the
//! page's records at `v` (`seen`), and the continuation passes over those, wherever the new
//! listing puts them among its ties, until its pages have gone past `v`: no record is returned
//! twice, which an append-only table or a Spark DataFrame would keep as a duplicate row. Every
//! record below `v` was on a page already returned, since the listing is sorted. So that `seen`
//! holds at most one page, a page whose records all share `v` with the page before it is no
//! boundary; the listing pages on.
//!
//! The flag tells a continuation from a resume:
//! - a plain `{"cursor": c}` is a finished read. The next read probes for anything newer
//!   than `c` (none: end == start, which ends the host's loop) and then lists from
//!   `c − lookback_seconds`, exclusive, to re-read changes that became visible late;
//! - `{"cursor": v, "continue": true, "upto": u}` is a read in progress. It lists from `v`
//!   inclusive, with no probe and no lookback, and keeps the read's cap `u`, so a window
//!   holding more than a chunk of records is walked through in chunks, not re-read from
//!   its start on every call. Resuming from it in a new run is just as correct.
//!
//! A chunk boundary must be strictly above the lower bound, so each one moves the read
//! forward and a read has at most one chunk per distinct cursor value. (Inside a lookback
//! window a boundary can lie below the committed cursor; it is a continuation, so that only
//! says where to go on from.) When more
//! than `checkpoint_records` records share one value, the listing keeps paging with its
//! token (not checkpointable) until the value changes: nothing is skipped and nothing is
//! read for ever. The cut happens only at a record that has a cursor value: Airtable sorts
//! empty cells first, so by then every record without one has been returned (and the
//! continuation's `IS_AFTER` does not match them again).

use serde_json::{Map, Value, json};
use weir_connector_sdk::{ConnectorError, Level, Page, Rows};

use crate::api::{Client, ListBody, ListQuery, Listing};
use crate::options::TableOptions;
use crate::rows::{Counters, Record, Shaper};
use crate::schema::{Cursor, Plan};
use crate::time;

/// Where a listing is: the page token, and the records passed so far.
#[derive(Debug, Default)]
struct Progress {
    token: Option<String>,
    emitted: u64,
    /// Of `emitted`, those a continuation passed over, as the chunk before returned them.
    passed: u64,
}

impl Progress {
    fn from(offset: &Map<String, Value>) -> Progress {
        Progress {
            token: offset.get("page").and_then(Value::as_str).map(str::to_string),
            emitted: offset.get("emitted").and_then(Value::as_u64).unwrap_or(0),
            passed: offset.get("passed").and_then(Value::as_u64).unwrap_or(0),
        }
    }

    fn write(&self, offset: &mut Map<String, Value>) {
        offset.insert("page".into(), json!(self.token));
        offset.insert("emitted".into(), json!(self.emitted));
        if self.passed > 0 {
            offset.insert("passed".into(), json!(self.passed));
        }
    }
}

/// How many of the records a snapshot listing returned last its offset names (`last`): a restart
/// finds its place by any one of them.
const ANCHORS: usize = 20;

/// What a snapshot listing knows of the records it returned, to find its place again after a
/// restart (see the module docs).
#[derive(Debug, Default)]
struct Returned {
    /// The ids of the last records returned, the latest last.
    last: Vec<String>,
    /// The records a restarted listing passes over wherever it meets them.
    pass: Vec<String>,
    /// While a restarted listing has met none of `last`: the records it passed over so far.
    before: Option<u64>,
}

impl Returned {
    fn from(offset: &Map<String, Value>) -> Result<Returned, ConnectorError> {
        Ok(Returned {
            last: listed_ids(offset, "last")?.unwrap_or_default(),
            pass: listed_ids(offset, "pass")?.unwrap_or_default(),
            before: match offset.get("before") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ConnectorError::InvalidOptions(format!("offset before {v} is not a count of records"))
                })?),
            },
        })
    }

    fn write(&self, offset: &mut Map<String, Value>) {
        offset.insert("last".into(), json!(self.last));
        if !self.pass.is_empty() {
            offset.insert("pass".into(), json!(self.pass));
        }
        if let Some(before) = self.before {
            offset.insert("before".into(), json!(before));
        }
    }

    /// The listing, having returned `emitted` records, starts over: it passes over everything until
    /// it meets a record of `last`, and those by name (with an earlier restart's still unmet, at
    /// most as many again). When `last` names every record returned, by name alone.
    fn restart(&mut self, emitted: u64) {
        let mut pass = self.last.clone();
        pass.extend(self.pass.drain(..).filter(|id| !self.last.contains(id)));
        pass.truncate(2 * ANCHORS);
        self.before = (emitted > self.last.len() as u64).then_some(0);
        self.pass = pass;
    }

    /// Drops the page's records a restarted listing passes over, and notes the ones it returns.
    fn pass_over(&mut self, records: &mut Vec<Record>) {
        records.retain(|r| {
            if let Some(i) = self.pass.iter().position(|id| *id == r.id) {
                // An earlier restart's are older: meeting one of them says less.
                if self.last.contains(&self.pass.remove(i)) {
                    self.before = None;
                }
                return false;
            }
            match &mut self.before {
                Some(passed) => {
                    *passed = passed.saturating_add(1);
                    false
                }
                None => true,
            }
        });
        self.last.extend(records.iter().map(|r| r.id.to_string()));
        let extra = self.last.len().saturating_sub(ANCHORS);
        self.last.drain(..extra);
    }
}

/// One read call: the table, its options and the start offset.
pub(crate) struct Read<'a> {
    pub client: &'a Client<'a>,
    pub plan: &'a Plan,
    pub options: &'a TableOptions,
    pub start: Option<&'a str>,
}

fn parse_offset(start: Option<&str>) -> Result<Map<String, Value>, ConnectorError> {
    match start.map(str::trim) {
        None | Some("") => Ok(Map::new()),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ConnectorError::InvalidOptions(format!(
                "start offset {text:?} is not a JSON object written by the Airtable connector"
            ))),
        },
    }
}

fn instant(offset: &Map<String, Value>, key: &str) -> Result<Option<i64>, ConnectorError> {
    match offset.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => time::parse_ms(s).map(Some).ok_or_else(|| {
            ConnectorError::InvalidOptions(format!("offset {key} {s:?} is not an ISO-8601 time"))
        }),
        Some(other) => {
            Err(ConnectorError::InvalidOptions(format!("offset {key} {other} is not an ISO-8601 time")))
        }
    }
}

/// The record ids an offset lists under `key` (`seen`, `at_max`, `last`, `pass`; see the module's
/// docs), or `None` where it lists none (the key is absent or null).
fn listed_ids(offset: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    let invalid =
        |v: &Value| ConnectorError::InvalidOptions(format!("offset {key} {v} is not a list of record ids"));
    match offset.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(ids)) => {
            let ids = ids.iter().map(|id| id.as_str().map(str::to_string).ok_or_else(|| invalid(id)));
            ids.collect::<Result<_, _>>().map(Some)
        }
        Some(other) => Err(invalid(other)),
    }
}

/// The most ids an in-listing offset names at its `max` (`at_max`): 20 KB of the 64 KiB the host
/// lets an offset take (and `seen` at most as much again, after a restart). A longer run of ties
/// is named as unknown (`null`).
const NAMED_AT_MAX: usize = 1_000;

/// Names the read's `floor` in an offset whose cursor, `at`, lies below it.
fn note_floor(end: &mut Value, floor: Option<i64>, at: Option<i64>) {
    if floor > at
        && let Some(end) = end.as_object_mut()
    {
        end.insert("floor".into(), json!(floor.map(time::format_ms)));
    }
}

fn formula_time(ms: i64) -> String {
    format!("'{}'", time::format_ms(ms))
}

/// Where a cdc listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Anywhere: the table's first read.
    Open,
    /// Strictly after this instant: a committed cursor less the lookback.
    After(i64),
    /// At this instant or later: a continuation after a chunk boundary.
    From(i64),
}

impl Bound {
    /// Whether a chunk boundary at `value` moves the read past where this listing began.
    fn passed_by(self, value: i64) -> bool {
        match self {
            Bound::Open => true,
            Bound::After(t) | Bound::From(t) => value > t,
        }
    }
}

/// `AND(user, IS_AFTER({f}, lower), NOT(IS_AFTER({f}, upto)))`, leaving out what is absent.
fn cdc_filter(cursor: &Cursor, bound: Bound, upto: i64, user: Option<&str>) -> String {
    let field = format!("{{{}}}", cursor.field_name);
    let mut parts: Vec<String> = user.map(str::to_string).into_iter().collect();
    let after = match bound {
        Bound::Open => None,
        Bound::After(t) => Some(t),
        Bound::From(t) => Some(t - 1),
    };
    if let Some(after) = after {
        parts.push(format!("IS_AFTER({field}, {})", formula_time(after)));
    }
    parts.push(format!("NOT(IS_AFTER({field}, {}))", formula_time(upto)));
    if parts.len() == 1 { parts.remove(0) } else { format!("AND({})", parts.join(", ")) }
}

impl Read<'_> {
    /// One page of the table, as a snapshot or from the cdc cursor.
    pub(crate) fn page(&self, now_ms: impl Fn() -> i64) -> Result<Page, ConnectorError> {
        let offset = parse_offset(self.start)?;
        match &self.plan.cursor {
            None => self.snapshot(&offset),
            Some(cursor) => self.cdc(cursor, &offset, now_ms),
        }
    }

    fn query(&self, filter: Option<String>, sort: Option<&Cursor>) -> ListQuery {
        ListQuery {
            page_size: self.options.page_size,
            offset: None,
            view: self.options.view.clone(),
            fields: self.plan.requested_fields.clone(),
            filter,
            sort: sort.map(|c| c.field_name.clone()),
            max_records: None,
        }
    }

    /// The listing's next page: its first without a page token, else the one the token names.
    fn fetch(&self, query: &ListQuery, progress: &Progress) -> Result<Listing, ConnectorError> {
        let query = ListQuery { offset: progress.token.clone(), ..query.clone() };
        self.client.list(&self.plan.table_id, &self.plan.table_name, &query)
    }

    /// The first page of a listing started over after its page iterator expired.
    fn relist(&self, query: &ListQuery) -> Result<ListBody, ConnectorError> {
        match self.client.list(&self.plan.table_id, &self.plan.table_name, query)? {
            Listing::Page(listed) => Ok(listed),
            // Only a request with a page token can see its iterator expire.
            Listing::IteratorExpired => {
                Err(ConnectorError::Internal("page iterator expired without a page token".into()))
            }
        }
    }

    /// Starts a snapshot listing over from its beginning, to pass over the records it returned by
    /// name.
    fn relist_snapshot(
        &self,
        query: &ListQuery,
        progress: &mut Progress,
        returned: &mut Returned,
    ) -> Result<ListBody, ConnectorError> {
        returned.restart(progress.emitted);
        let passing = match returned.before {
            Some(_) => format!(
                "records until it meets one of the last {} of the {} it returned, and those by id",
                returned.last.len(),
                progress.emitted
            ),
            None => format!("the {} records it returned, by id", progress.emitted),
        };
        self.warn_restarting(&format!(", passing over {passing}"));
        progress.token = None;
        self.relist(query)
    }

    /// The fetched page's records, its page token noted.
    fn records<'b>(
        &self,
        listed: &'b ListBody,
        progress: &mut Progress,
    ) -> Result<Vec<Record<'b>>, ConnectorError> {
        let page = listed.page()?;
        progress.token = page.offset;
        Ok(page.records)
    }

    fn rows(&self, records: &[Record]) -> Result<(Rows, Counters), ConnectorError> {
        let mut shaper = Shaper::new(&self.plan.columns, &self.plan.layout);
        for record in records {
            shaper.push(record);
        }
        let (ipc, counters) = shaper.finish()?;
        Ok((Rows::ArrowIpc(ipc), counters))
    }

    fn snapshot(&self, offset: &Map<String, Value>) -> Result<Page, ConnectorError> {
        if offset.get("snapshot").and_then(Value::as_str) == Some("complete") {
            return Ok(Page::end(self.start));
        }
        // Anything else that is not a page token (say a cdc cursor from before the table
        // lost its lastModifiedTime field) starts the snapshot over.
        let (mut progress, mut returned) = if offset.contains_key("page") && !offset.contains_key("upto") {
            (Progress::from(offset), Returned::from(offset)?)
        } else {
            Default::default()
        };
        let query = self.query(self.options.filter_by_formula.clone(), None);
        let listed = match self.fetch(&query, &progress)? {
            Listing::Page(listed) => listed,
            Listing::IteratorExpired => self.relist_snapshot(&query, &mut progress, &mut returned)?,
        };
        let mut records = self.records(&listed, &mut progress)?;
        returned.pass_over(&mut records);
        progress.emitted = progress.emitted.saturating_add(records.len() as u64);
        if let Some(passed) = returned.before
            && (passed > progress.emitted.saturating_add(ANCHORS as u64) || progress.token.is_none())
        {
            return Err(ConnectorError::Source {
                status: 422,
                message: format!(
                    "LIST_RECORDS_ITERATOR_NOT_AVAILABLE: the page iterator of table {:?} expired, and \
                     none of the last {} records the snapshot returned is in the listing any more \
                     (deleted, edited out of the view's or the formula's filter, or moved in a sorted \
                     view), so there is no telling which records it returned. Nothing of this \
                     snapshot was committed: run again to read it anew.",
                    self.plan.table_name,
                    returned.last.len()
                ),
            });
        }
        let (rows, counters) = self.rows(&records)?;
        let (end, checkpointable) = if progress.token.is_some() {
            let mut end = Map::new();
            progress.write(&mut end);
            returned.write(&mut end);
            (Value::Object(end), false)
        } else {
            (json!({"snapshot": "complete"}), true)
        };
        Ok(Page { rows, end_offset: end.to_string(), checkpointable, counters })
    }

    /// Says where a cdc listing whose page iterator expired starts over (at `value`, or at its
    /// start when it has returned no record with a value), and what it passes over there: `named`
    /// records, or (`None`) none, as the offset could not name them.
    fn log_restart(&self, cursor: &Cursor, value: Option<i64>, named: Option<usize>) {
        let field = &cursor.field_name;
        let (at, records) = match value {
            Some(v) => (format!(" at {field} = {}", time::format_ms(v)), "at that value".to_string()),
            None => (String::new(), format!("without a {field} value")),
        };
        let passing = match named {
            Some(n) => format!(", passing over the {n} records {records} already read"),
            None => format!(
                "; the offset names none of the records {records} already read (it names at most \
                 {NAMED_AT_MAX}), so they come again"
            ),
        };
        self.warn_restarting(&format!("{at}{passing}"));
    }

    /// Warns that the listing's page iterator expired and the listing starts over, and `how`.
    fn warn_restarting(&self, how: &str) {
        let table = &self.plan.table_name;
        let message = format!("the page iterator of table {table:?} expired; restarting the listing{how}");
        self.client.host.log(Level::Warn, &message);
    }

    fn cdc(
        &self,
        cursor: &Cursor,
        offset: &Map<String, Value>,
        now_ms: impl Fn() -> i64,
    ) -> Result<Page, ConnectorError> {
        let mut from = instant(offset, "cursor")?;
        let mut continues = from.is_some() && offset.get("continue").and_then(Value::as_bool) == Some(true);
        let user = self.options.filter_by_formula.as_deref();
        let offset_upto = instant(offset, "upto")?;
        let (upto, mut max, mut progress) = match offset_upto {
            Some(upto) if offset.contains_key("page") => {
                (upto, instant(offset, "max")?, Progress::from(offset))
            }
            // A chunk boundary: the read goes on under the cap it started with, and needs no
            // probe, since the tied records at the boundary are still to be read.
            _ if continues => (offset_upto.unwrap_or_else(&now_ms), None, Progress::default()),
            _ => {
                let upto = now_ms();
                if let Some(from) = from {
                    // Without anything newer than the cursor the read would only re-read its
                    // lookback window; answering end == start here is what ends the read,
                    // however many pages that window holds.
                    let probe = ListQuery {
                        page_size: 1,
                        max_records: Some(1),
                        fields: Some(vec![cursor.field_id.clone()]),
                        ..self.query(Some(cdc_filter(cursor, Bound::After(from), upto, user)), None)
                    };
                    let (id, name) = (&self.plan.table_id, &self.plan.table_name);
                    match self.client.list(id, name, &probe)? {
                        Listing::Page(listed) if listed.page()?.records.is_empty() => {
                            return Ok(Page::end(self.start));
                        }
                        _ => {}
                    }
                }
                (upto, None, Progress::default())
            }
        };
        let mut bound = match from {
            None => Bound::Open,
            Some(from) if continues => Bound::From(from),
            Some(from) => Bound::After(from - self.options.lookback_seconds * 1000),
        };
        // The records at a continuation's boundary that the chunk before it returned.
        let mut seen = listed_ids(offset, "seen")?.unwrap_or_default();
        // Unknown (`None`) when the offset says so (`null`: too many), or has a `max` but no names
        // for it (written before offsets named them).
        let mut at_max = match listed_ids(offset, "at_max")? {
            None if offset.contains_key("at_max") || max.is_some() => None,
            ids => Some(ids.unwrap_or_default()),
        };
        // The cursor a read went on from, which it never ends below: a continuation below it
        // (inside its lookback window) carries it.
        let floor = match instant(offset, "floor")? {
            None if !continues => from,
            floor => floor,
        };
        let listing = |bound| self.query(Some(cdc_filter(cursor, bound, upto, user)), Some(cursor));
        let mut query = listing(bound);
        let listed = match self.fetch(&query, &progress)? {
            Listing::Page(listed) => listed,
            // Start over as a continuation from the last value returned (or, with none returned
            // yet, as the same listing), naming the records returned at it: records returned
            // before may have changed or gone since, and ties may come in another order, so
            // places in the new listing mean nothing.
            Listing::IteratorExpired => {
                let restart = max.or(from.filter(|_| continues));
                let mut names = if max == restart { at_max.take() } else { Some(Vec::new()) };
                // The boundary's names, unless an earlier restart put them in `at_max` already.
                if continues
                    && from == restart
                    && let Some(names) = &mut names
                {
                    seen.retain(|id| !names.contains(id));
                    names.append(&mut seen);
                }
                self.log_restart(cursor, restart, names.as_ref().map(Vec::len));
                seen = names.unwrap_or_default();
                at_max = Some(seen.clone());
                if let Some(v) = restart {
                    (from, continues, bound) = (Some(v), true, Bound::From(v));
                    query = listing(bound);
                }
                let returned = progress.emitted.saturating_sub(progress.passed);
                progress = Progress { emitted: returned, ..Progress::default() };
                self.relist(&query)?
            }
        };
        let mut records = self.records(&listed, &mut progress)?;
        progress.emitted = progress.emitted.saturating_add(records.len() as u64);
        let value = |record: &Record| {
            let value = record.text(&cursor.field_id).as_deref().and_then(time::parse_ms);
            value.map(|v| v.min(upto))
        };
        // `seen` names records to pass over at one value: a continuation's boundary, or no value
        // at all for a listing started over among the records without one.
        if !seen.is_empty() {
            let at = if continues { from } else { None };
            let listed = records.len();
            records.retain(|r| !seen.iter().any(|id| *id == r.id) || value(r) != at);
            progress.passed += (listed - records.len()) as u64;
            // Past that value, no record left can be one of them.
            if records.last().is_some_and(|r| value(r) > at) {
                seen.clear();
            }
        }
        let max_before = max;
        // The ids at the page's largest value, should that be the listing's.
        let mut at_page_max: Vec<&str> = Vec::new();
        for record in &records {
            let v = value(record);
            if v > max {
                max = v;
                at_max = Some(Vec::new());
                at_page_max.clear();
            }
            // While none has a value, those without one: a restart passes over them by name.
            if v == max {
                at_page_max.push(&record.id);
            }
        }
        if let Some(ids) = &mut at_max {
            ids.extend(at_page_max.iter().map(|id| id.to_string()));
            if ids.len() > NAMED_AT_MAX {
                at_max = None;
            }
        }
        let (rows, counters) = self.rows(&records)?;
        let iso = |ms: Option<i64>| ms.map(time::format_ms);

        if progress.token.is_some() {
            let boundary = records.last().and_then(value).filter(|v| bound.passed_by(*v));
            if let Some(boundary) = boundary
                && progress.emitted.saturating_sub(progress.passed) >= self.options.checkpoint_records
            {
                let run = records.iter().rev().take_while(|r| value(r) == Some(boundary)).count();
                let tied: Vec<&str> = records[records.len() - run..].iter().map(|r| &*r.id).collect();
                // Ties that began on an earlier page would all have to be named: page on instead.
                if run < records.len() || max_before != Some(boundary) {
                    let mut end = json!({
                        "cursor": time::format_ms(boundary),
                        "continue": true,
                        "upto": time::format_ms(upto),
                        "seen": tied,
                    });
                    note_floor(&mut end, floor, Some(boundary));
                    return Ok(Page { rows, end_offset: end.to_string(), checkpointable: true, counters });
                }
            }
            let mut end = Map::new();
            end.insert("cursor".into(), json!(iso(from)));
            if continues {
                end.insert("continue".into(), json!(true));
            }
            end.insert("upto".into(), json!(time::format_ms(upto)));
            end.insert("max".into(), json!(iso(max)));
            if !seen.is_empty() {
                end.insert("seen".into(), json!(seen));
            }
            if at_max.as_ref().is_none_or(|ids| !ids.is_empty()) {
                end.insert("at_max".into(), json!(at_max));
            }
            progress.write(&mut end);
            let mut end = Value::Object(end);
            note_floor(&mut end, floor, from);
            return Ok(Page { rows, end_offset: end.to_string(), checkpointable: false, counters });
        }
        let mut reached = from.max(max).max(floor);
        if reached.is_none() && progress.emitted > 0 {
            // Records exist but none has a cursor value: without moving on, a read of many
            // pages would start over for ever. They have all been read up to the read's start.
            self.client.host.log(
                Level::Warn,
                &format!(
                    "no record of table {:?} has a value in its cursor field {:?}; the cursor moves to {}",
                    self.plan.table_name,
                    cursor.field_name,
                    time::format_ms(upto)
                ),
            );
            reached = Some(upto);
        }
        // Handing the start back unchanged when the cursor did not move ends the read even if
        // the host re-serialised the offset. A continuation always ends in a plain cursor, so
        // the next call probes before the read is declared finished.
        let end_offset = match self.start {
            Some(start)
                if reached == from
                    && !continues
                    && !offset.contains_key("upto")
                    && offset.contains_key("cursor") =>
            {
                start.to_string()
            }
            _ => json!({"cursor": iso(reached)}).to_string(),
        };
        Ok(Page { rows, end_offset, checkpointable: true, counters })
    }
}
