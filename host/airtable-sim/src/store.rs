//! The base held in memory: schema, records, page iterators, and the rules for listing and writing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::cdc::ModWalk;
use crate::formula::{self, Expr};

/// One field of a table's schema, as the meta API shows it.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    pub id: String,
    pub name: String,
    pub ftype: String,
    pub description: Option<String>,
    pub options: Option<Value>,
}

impl FieldDef {
    /// Fields whose values Airtable computes; writes to them are refused.
    pub fn is_computed(&self) -> bool {
        matches!(
            self.ftype.as_str(),
            "formula"
                | "rollup"
                | "count"
                | "multipleLookupValues"
                | "createdTime"
                | "lastModifiedTime"
                | "autoNumber"
                | "createdBy"
                | "lastModifiedBy"
                | "button"
                | "aiText"
                | "manualSort"
                | "externalSyncSource"
        )
    }

    fn option(&self, key: &str) -> Option<&Value> {
        self.options.as_ref().and_then(|o| o.get(key))
    }

    fn option_str(&self, key: &str) -> Option<&str> {
        self.option(key).and_then(Value::as_str)
    }

    /// The field as the meta API shows it.
    pub fn meta(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.ftype));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(o) = &self.options {
            m.insert("options".into(), o.clone());
        }
        Value::Object(m)
    }
}

/// A view: a saved filter and sort over a table.
#[derive(Debug, Clone)]
pub(crate) struct ViewDef {
    pub id: String,
    pub name: String,
    pub filter: Option<Expr>,
    pub sort: Vec<(String, bool)>,
}

/// One record. Cells are keyed by field id; empty values are never stored.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub created: i64,
    /// Milliseconds since the Unix epoch; what `LAST_MODIFIED_TIME()` sees.
    pub modified: i64,
    pub fields: Map<String, Value>,
}

/// A table with its records in creation order; deleted records leave a hole so positions stay valid.
///
/// Records change only through [`Table::push`], [`Table::replace`] and [`Table::remove`], which keep
/// the id index, the lastModifiedTime orders and the history that cdc listings read in step.
#[derive(Debug)]
pub(crate) struct Table {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub primary_field_id: String,
    pub fields: Vec<FieldDef>,
    pub views: Vec<ViewDef>,
    pub records: Vec<Option<Record>>,
    pub index: HashMap<String, usize>,
    pub next_auto_number: i64,
    /// Record writes so far; a listing's snapshot is the value when it started.
    pub seq: u64,
    /// Per position: the `seq` of the write that gave the record its current content.
    pub written: Vec<u64>,
    /// One per lastModifiedTime field, in schema order.
    pub orders: Vec<ModOrder>,
    /// Contents replaced or deleted since the oldest live cdc listing started, oldest first.
    pub history: Vec<Past>,
    /// Whether writes record [`Past`] entries: only while a cdc listing may still read them.
    keep_history: bool,
}

/// A record's content before write number `seq` replaced or deleted it.
#[derive(Debug)]
pub(crate) struct Past {
    pub seq: u64,
    pub pos: u32,
    pub old: Record,
}

/// Where a record sorts by a lastModifiedTime field: `None` (an empty cell) before every time.
pub(crate) type ModKey = Option<i64>;

/// A table's live records ordered by one lastModifiedTime field, ties in creation order: what a
/// listing sorted by that field ascending walks, so it need not sort the table.
#[derive(Debug)]
pub(crate) struct ModOrder {
    pub field: String,
    pub keys: BTreeSet<(ModKey, u32)>,
    /// Live records whose key differs from their `LAST_MODIFIED_TIME()`.
    pub mismatched: usize,
    /// Live records whose cell is not a time in the field's own format; the order is then unusable.
    pub unreadable: usize,
}

impl ModOrder {
    /// Whether the order sorts exactly as `compare_cells` sorts this field's cells.
    pub fn usable(&self) -> bool {
        self.unreadable == 0
    }

    fn add(&mut self, f: &FieldDef, r: &Record, pos: usize, sign: i8) {
        match mod_key(f, r) {
            Some(key) => {
                if sign > 0 {
                    self.keys.insert((key, pos as u32));
                } else {
                    self.keys.remove(&(key, pos as u32));
                }
                if key != Some(r.modified) {
                    self.mismatched = self.mismatched.saturating_add_signed(sign as isize);
                }
            }
            None => self.unreadable = self.unreadable.saturating_add_signed(sign as isize),
        }
    }
}

/// The sort key of a lastModifiedTime cell, or `None` when the cell is not the field's canonical
/// time text (then string order and time order could differ, and the order is not used).
pub(crate) fn mod_key(f: &FieldDef, r: &Record) -> Option<ModKey> {
    match r.fields.get(&f.id) {
        None => Some(None),
        Some(Value::String(s)) => {
            let t = parse_time(s)?;
            let canonical = (s.len() == 10 || s.len() == 24) && s.as_bytes()[0].is_ascii_digit();
            (canonical && format_time_for(f, t) == *s).then_some(Some(t))
        }
        Some(_) => None,
    }
}

impl Table {
    pub fn new(id: String, name: String, description: Option<String>, fields: Vec<FieldDef>) -> Table {
        let orders = fields
            .iter()
            .filter(|f| f.ftype == "lastModifiedTime")
            .map(|f| ModOrder { field: f.id.clone(), keys: BTreeSet::new(), mismatched: 0, unreadable: 0 })
            .collect();
        Table {
            id,
            name,
            description,
            primary_field_id: fields.first().map(|f| f.id.clone()).unwrap_or_default(),
            fields,
            views: Vec::new(),
            records: Vec::new(),
            index: HashMap::new(),
            next_auto_number: 1,
            seq: 0,
            written: Vec::new(),
            orders,
            history: Vec::new(),
            keep_history: false,
        }
    }

    pub fn field(&self, name_or_id: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.id == name_or_id)
            .or_else(|| self.fields.iter().find(|f| f.name == name_or_id))
    }

    pub fn live(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().flatten()
    }

    /// Moves the record at `pos` into or out of the lastModifiedTime orders.
    fn order(&mut self, pos: usize, sign: i8) {
        let Some(r) = self.records.get(pos).and_then(Option::as_ref) else { return };
        for o in &mut self.orders {
            if let Some(f) = self.fields.iter().find(|f| f.id == o.field) {
                o.add(f, r, pos, sign);
            }
        }
    }

    /// Starts or stops keeping history, dropping what no listing started after `floor` needs.
    /// `None` means no cdc listing is live on this table.
    pub fn keep_history_after(&mut self, floor: Option<u64>) {
        match floor {
            None => {
                self.keep_history = false;
                self.history.clear();
            }
            Some(floor) => {
                self.keep_history = true;
                self.history.retain(|p| p.seq > floor);
            }
        }
    }

    /// Appends a new record.
    pub fn push(&mut self, r: Record) {
        self.seq += 1;
        let pos = self.records.len();
        self.index.insert(r.id.clone(), pos);
        self.records.push(Some(r));
        self.written.push(self.seq);
        self.order(pos, 1);
    }

    /// Replaces the live record at `pos` (same id) with new content.
    pub fn replace(&mut self, pos: usize, r: Record) {
        self.order(pos, -1);
        self.seq += 1;
        if let Some(old) = self.records.get_mut(pos).and_then(|slot| slot.replace(r))
            && self.keep_history
        {
            self.history.push(Past { seq: self.seq, pos: pos as u32, old });
        }
        self.written[pos] = self.seq;
        self.order(pos, 1);
    }

    /// Deletes the record at `pos`, leaving a hole; false when there was none.
    pub fn remove(&mut self, pos: usize) -> bool {
        self.order(pos, -1);
        let Some(old) = self.records.get_mut(pos).and_then(Option::take) else { return false };
        self.seq += 1;
        self.index.remove(&old.id);
        self.written[pos] = self.seq;
        if self.keep_history {
            self.history.push(Past { seq: self.seq, pos: pos as u32, old });
        }
        true
    }

    /// Rebuilds the lastModifiedTime orders, after cells were changed in place while building.
    pub fn reorder(&mut self) {
        for o in &mut self.orders {
            o.keys.clear();
            o.mismatched = 0;
            o.unreadable = 0;
        }
        for pos in 0..self.records.len() {
            self.order(pos, 1);
        }
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.index.get(id).and_then(|&i| self.records.get(i)).and_then(Option::as_ref)
    }

    pub fn meta(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("primaryFieldId".into(), json!(self.primary_field_id));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("fields".into(), Value::Array(self.fields.iter().map(FieldDef::meta).collect()));
        let views = self.views.iter().map(|v| json!({"id": v.id, "name": v.name, "type": "grid"})).collect();
        m.insert("views".into(), Value::Array(views));
        Value::Object(m)
    }

    /// Sets the lastModifiedTime cells after the fields in `touched` changed at `now`.
    pub fn touch(&self, r: &mut Record, touched: &[String], now: i64) {
        r.modified = now;
        for f in self.fields.iter().filter(|f| f.ftype == "lastModifiedTime") {
            let watched =
                f.option("referencedFieldIds").and_then(Value::as_array).cloned().unwrap_or_default();
            // A field that names the fields it watches only moves when one of them changed.
            if watched.is_empty() || watched.iter().any(|w| touched.iter().any(|t| w.as_str() == Some(t))) {
                r.fields.insert(f.id.clone(), json!(format_time_for(f, now)));
            }
        }
    }
}

/// The whole base.
#[derive(Debug)]
pub(crate) struct Base {
    pub tables: Vec<Table>,
}

impl Base {
    pub fn table_index(&self, id_or_name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.id == id_or_name)
            .or_else(|| self.tables.iter().position(|t| t.name == id_or_name))
    }

    /// Recomputes the cells that come from linked records (count, lookup, rollup) for one record.
    /// Rollup cells that already hold an error or special value are kept: they model broken data.
    pub fn derive(&self, table: usize, r: &mut Record) {
        let t = &self.tables[table];
        for f in &t.fields {
            let link_field = f.option_str("recordLinkFieldId");
            let linked: Vec<&str> = link_field
                .and_then(|lf| r.fields.get(lf))
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let linked_table = link_field
                .and_then(|lf| t.field(lf))
                .and_then(|lf| lf.option_str("linkedTableId"))
                .and_then(|id| self.table_index(id))
                .map(|i| &self.tables[i]);
            let source = f.option_str("fieldIdInLinkedTable");
            let values = || -> Vec<Value> {
                let (Some(lt), Some(src)) = (linked_table, source) else { return Vec::new() };
                linked
                    .iter()
                    .filter_map(|id| lt.get(id))
                    .filter_map(|rec| rec.fields.get(src))
                    .cloned()
                    .collect()
            };
            let cell = match f.ftype.as_str() {
                "count" => Some(json!(linked.len())),
                "multipleLookupValues" => {
                    let flat: Vec<Value> = values()
                        .into_iter()
                        .flat_map(|v| match v {
                            Value::Array(a) => a,
                            other => vec![other],
                        })
                        .collect();
                    Some(Value::Array(flat))
                }
                "rollup" => {
                    let current = r.fields.get(&f.id);
                    if current
                        .is_some_and(|c| c.is_object() || c.as_str().is_some_and(|s| s.starts_with('#')))
                    {
                        continue;
                    }
                    let nums: Vec<f64> = values().iter().filter_map(Value::as_f64).collect();
                    let formula = f.option_str("formula").unwrap_or("SUM(values)");
                    if formula.starts_with("AVERAGE") {
                        if nums.is_empty() {
                            Some(json!({"specialValue": "NaN"}))
                        } else {
                            Some(json!(round2(nums.iter().sum::<f64>() / nums.len() as f64)))
                        }
                    } else {
                        Some(json!(round2(nums.iter().sum::<f64>())))
                    }
                }
                _ => None,
            };
            if let Some(cell) = cell {
                set_cell(&mut r.fields, &f.id, cell);
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Whether Airtable would omit this value from `fields`.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Stores a cell, or removes it when empty, so records never hold what Airtable would omit.
pub(crate) fn set_cell(fields: &mut Map<String, Value>, id: &str, v: Value) {
    if is_empty(&v) {
        fields.remove(id);
    } else {
        fields.insert(id.to_string(), v);
    }
}

/// Formats epoch milliseconds as Airtable does: `2025-01-02T03:04:05.000Z`.
pub(crate) fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats for a createdTime/lastModifiedTime field: date-only when its result type is `date`.
pub(crate) fn format_time_for(f: &FieldDef, ms: i64) -> String {
    let date_only =
        f.option("result").and_then(|r| r.get("type")).and_then(Value::as_str).is_some_and(|t| t == "date");
    if date_only { format_time(ms)[..10].to_string() } else { format_time(ms) }
}

/// Parses an ISO-8601 date or date-time (UTC if no offset) to epoch milliseconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// The order a listing walks: the table's own order, a snapshot of positions after filter/sort,
/// or a lazy walk of a lastModifiedTime order (see `cdc`).
#[derive(Debug, Clone)]
pub(crate) enum Order {
    Natural,
    Positions(Arc<Vec<u32>>),
    ByModified(Arc<ModWalk>),
}

/// Where a page starts in its order: an index into the order, or a key of a [`ModOrder`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resume {
    Index(usize),
    Key(ModKey, u32),
}

/// A page iterator: what an offset token points into.
#[derive(Debug)]
pub(crate) struct Iter {
    pub table: usize,
    pub order: Order,
    pub max_records: Option<usize>,
    pub last_used: Instant,
    /// Next-record id issued in a token → (where the page starts, records already returned).
    pub cursors: HashMap<String, (Resume, usize)>,
}

/// Outstanding iterators, keyed by their `itr…` id.
#[derive(Debug, Default)]
pub(crate) struct Iterators {
    pub live: HashMap<String, Iter>,
}

impl Iterators {
    /// Finds the iterator for a token, refusing it once it has idled longer than `ttl`.
    pub fn resume(&mut self, token: &str, table: usize, ttl: Duration) -> Option<(&mut Iter, Resume, usize)> {
        let (itr, rec) = token.split_once('/')?;
        let now = Instant::now();
        let fresh =
            self.live.get(itr).is_some_and(|it| now.duration_since(it.last_used) <= ttl && it.table == table);
        if !fresh {
            self.live.remove(itr);
            return None;
        }
        let it = self.live.get_mut(itr)?;
        let &(at, emitted) = it.cursors.get(rec)?;
        it.last_used = now;
        Some((it, at, emitted))
    }

    /// Drops iterators idle longer than `ttl`, so a long benchmark does not accumulate them.
    pub fn sweep(&mut self, ttl: Duration) {
        let now = Instant::now();
        self.live.retain(|_, it| now.duration_since(it.last_used) <= ttl);
    }

    /// The oldest snapshot a live cdc listing on `table` may still read, for [`Table::keep_history_after`].
    pub fn history_floor(&self, table: usize, ttl: Duration) -> Option<u64> {
        let now = Instant::now();
        self.live
            .values()
            .filter(|it| it.table == table && now.duration_since(it.last_used) <= ttl)
            .filter_map(|it| match &it.order {
                Order::ByModified(w) => Some(w.snapshot),
                _ => None,
            })
            .min()
    }
}

/// Compares two cells for sorting: empty first, numbers numerically, everything else as text.
pub(crate) fn compare_cells(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(x), Some(y)) => sort_text(x).cmp(&sort_text(y)),
    }
}

fn sort_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_lowercase(),
        Value::Array(a) => a.iter().map(sort_text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => ["name", "text", "value", "label", "filename"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_lowercase(),
        other => other.to_string(),
    }
}

/// Builds the positions a filtered and/or sorted listing walks. O(table).
pub(crate) fn ordered_positions(t: &Table, filter: &[&Expr], sort: &[(String, bool)]) -> Vec<u32> {
    let mut pos: Vec<u32> = t
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
        .filter(|(_, r)| filter.iter().all(|e| formula::matches(e, r)))
        .map(|(i, _)| i as u32)
        .collect();
    if !sort.is_empty() {
        let cell = |p: u32, f: &str| t.records[p as usize].as_ref().and_then(|r| r.fields.get(f));
        // Stable, so ties keep creation order.
        pos.sort_by(|&a, &b| {
            for (f, desc) in sort {
                let o = compare_cells(cell(a, f), cell(b, f));
                let o = if *desc { o.reverse() } else { o };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    pos
}
