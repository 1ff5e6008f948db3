//! A little Airtable that answers list-records requests from records it holds, instead of
//! canned routes: it evaluates `filterByFormula`, sorts, pages with `pageSize` and offset
//! tokens and honours `maxRecords` and `fields[]`, so a multi-call read can be checked
//! for what it returns rather than for the exact requests it sends.
//!
//! The formula subset is the simulator's (`IS_AFTER`, `IS_BEFORE`, `{Field} = 'text'`,
//! `AND`, `OR`, `NOT`, `TRUE()`, `FALSE()`), minus `LAST_MODIFIED_TIME()`, which the
//! connector does not use. Anything else is refused with Airtable's 422, so a connector
//! that strays from the subset fails here before it fails against the simulator.

use std::cell::RefCell;
use std::cmp::Ordering;

use serde_json::{Value, json};
use weir_connector_sdk::{HttpError, Level, Request, Response};

use super::{META, META_URL, Sent, records_url};
use crate::time::parse_ms;

/// A parsed formula, with field names resolved to field ids.
#[derive(Debug)]
enum Expr {
    Field(String),
    Text(String),
    Bool(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    IsAfter(Box<Expr>, Box<Expr>),
    IsBefore(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Field(String),
    Text(String),
    Name(String),
    Open,
    Close,
    Comma,
    Eq,
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => toks.push(Tok::Open),
            ')' => toks.push(Tok::Close),
            ',' => toks.push(Tok::Comma),
            '=' => toks.push(Tok::Eq),
            '{' | '\'' | '"' => {
                let close = if c == '{' { '}' } else { c };
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {c}")),
                        Some(ch) if ch == close => break,
                        Some(ch) => text.push(ch),
                    }
                }
                toks.push(if c == '{' { Tok::Field(text) } else { Tok::Text(text) });
            }
            c if c.is_ascii_alphabetic() => {
                let mut name = c.to_string();
                while let Some(&n) = chars.peek().filter(|n| n.is_ascii_alphanumeric() || **n == '_') {
                    name.push(n);
                    chars.next();
                }
                toks.push(Tok::Name(name.to_ascii_uppercase()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    fields: &'a [(&'a str, &'a str)],
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Tok> {
        self.at += 1;
        self.toks.get(self.at - 1)
    }

    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if *t == tok => Ok(()),
            other => Err(format!("expected {tok:?}, found {other:?}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let left = self.primary()?;
        if self.toks.get(self.at) == Some(&Tok::Eq) {
            self.at += 1;
            return Ok(Expr::Eq(Box::new(left), Box::new(self.primary()?)));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Field(name)) => {
                let name = name.clone();
                let id = self.fields.iter().find(|(n, _)| *n == name).map(|(_, id)| id.to_string());
                id.map(Expr::Field).ok_or_else(|| format!("unknown field {name:?}"))
            }
            Some(Tok::Text(text)) => Ok(Expr::Text(text.clone())),
            Some(Tok::Name(name)) => {
                let name = name.clone();
                self.expect(Tok::Open)?;
                let mut args = Vec::new();
                if self.toks.get(self.at) == Some(&Tok::Close) {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.expr()?);
                        match self.next() {
                            Some(Tok::Comma) => {}
                            Some(Tok::Close) => break,
                            other => return Err(format!("expected , or ), found {other:?}")),
                        }
                    }
                }
                let two = |args: Vec<Expr>| -> Result<(Box<Expr>, Box<Expr>), String> {
                    let [a, b]: [Expr; 2] =
                        args.try_into().map_err(|_| format!("{name} takes 2 arguments"))?;
                    Ok((Box::new(a), Box::new(b)))
                };
                match (name.as_str(), args.len()) {
                    ("AND", 1..) => Ok(Expr::And(args)),
                    ("OR", 1..) => Ok(Expr::Or(args)),
                    ("NOT", 1) => Ok(Expr::Not(Box::new(args.remove(0)))),
                    ("TRUE", 0) => Ok(Expr::Bool(true)),
                    ("FALSE", 0) => Ok(Expr::Bool(false)),
                    ("IS_AFTER", _) => two(args).map(|(a, b)| Expr::IsAfter(a, b)),
                    ("IS_BEFORE", _) => two(args).map(|(a, b)| Expr::IsBefore(a, b)),
                    _ => Err(format!("{name} with {} arguments is outside the supported subset", args.len())),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn parse(formula: &str, fields: &[(&str, &str)]) -> Result<Expr, String> {
    let mut parser = Parser { toks: tokenize(formula)?, at: 0, fields };
    let expr = parser.expr()?;
    match parser.toks.get(parser.at) {
        None => Ok(expr),
        Some(extra) => Err(format!("unexpected {extra:?} after the formula")),
    }
}

/// A formula value: what a cell or a literal evaluates to.
enum V {
    Blank,
    Bool(bool),
    Text(String),
}

fn truthy(v: &V) -> bool {
    match v {
        V::Blank => false,
        V::Bool(b) => *b,
        V::Text(t) => !t.is_empty(),
    }
}

fn time(v: &V) -> Option<i64> {
    match v {
        V::Text(t) => parse_ms(t),
        _ => None,
    }
}

fn eval(e: &Expr, fields: &Value) -> V {
    let b = |x: bool| V::Bool(x);
    match e {
        Expr::Field(id) => match fields.get(id) {
            None | Some(Value::Null) => V::Blank,
            Some(Value::String(s)) => V::Text(s.clone()),
            Some(Value::Bool(x)) => V::Bool(*x),
            Some(other) => V::Text(other.to_string()),
        },
        Expr::Text(t) => V::Text(t.clone()),
        Expr::Bool(x) => b(*x),
        Expr::And(xs) => b(xs.iter().all(|x| truthy(&eval(x, fields)))),
        Expr::Or(xs) => b(xs.iter().any(|x| truthy(&eval(x, fields)))),
        Expr::Not(x) => b(!truthy(&eval(x, fields))),
        // A blank or unparsable side is never before or after anything, as in Airtable.
        Expr::IsAfter(x, y) => {
            b(matches!((time(&eval(x, fields)), time(&eval(y, fields))), (Some(x), Some(y)) if x > y))
        }
        Expr::IsBefore(x, y) => {
            b(matches!((time(&eval(x, fields)), time(&eval(y, fields))), (Some(x), Some(y)) if x < y))
        }
        Expr::Eq(x, y) => match (eval(x, fields), eval(y, fields)) {
            (V::Text(x), V::Text(y)) => b(x == y),
            (V::Blank, other) | (other, V::Blank) => b(!truthy(&other)),
            (x, y) => b(truthy(&x) == truthy(&y)),
        },
    }
}

/// Empty first, then times in time order, anything else as text: Airtable's ascending order.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match (text(a), text(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (parse_ms(&x), parse_ms(&y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.cmp(&y),
        },
    }
}

/// One table's records behind Airtable's list endpoint, plus the fixture base's meta.
pub(crate) struct FakeAirtable {
    pub name: &'static str,
    table_id: &'static str,
    /// Field name → field id, for formulas and sorts.
    fields: Vec<(&'static str, &'static str)>,
    /// `{"id", "createdTime", "fields"}` in creation order.
    pub records: RefCell<Vec<Value>>,
    /// Each listing's record positions, fixed when its first page was served.
    iterators: RefCell<Vec<Vec<usize>>>,
    pub sent: RefCell<Vec<Sent>>,
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"type": kind, "message": message}});
    Response { status, headers: vec![], body: body.to_string().into_bytes() }
}

fn ok(body: &Value) -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

impl FakeAirtable {
    /// The fixture's "Compliance Records" table (cursor field `Updated`), holding `records`.
    pub(crate) fn compliance(records: Vec<Value>) -> FakeAirtable {
        FakeAirtable {
            name: "Compliance Records",
            table_id: super::COMPLIANCE,
            fields: vec![("Record", "fldC1"), ("Audited At", "fldC2"), ("Updated", "fldC3")],
            records: RefCell::new(records),
            iterators: RefCell::new(Vec::new()),
            sent: RefCell::new(Vec::new()),
        }
    }

    /// The fixture's "Vendors" table, which has no lastModifiedTime field: a snapshot.
    pub(crate) fn vendors(records: Vec<Value>) -> FakeAirtable {
        FakeAirtable {
            name: "Vendors",
            table_id: super::VENDORS,
            fields: vec![("Vendor Name", "fldV1"), ("Contact", "fldV2")],
            ..FakeAirtable::compliance(records)
        }
    }

    /// How many list-records requests were sent so far.
    pub(crate) fn list_requests(&self) -> usize {
        self.sent.borrow().iter().filter(|s| s.path != META_URL).count()
    }

    fn list(&self, sent: &Sent) -> Response {
        let page_size = match sent.param("pageSize").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) if (1..=100).contains(&n) => n,
            Some(_) => return error(422, "INVALID_REQUEST_UNKNOWN", "pageSize must be 1 to 100"),
        };
        let (listing, start) = match sent.param("offset") {
            Some(token) => {
                let parsed = token.strip_prefix("itr").and_then(|t| t.split_once('/'));
                let parsed =
                    parsed.and_then(|(i, p)| Some((i.parse::<usize>().ok()?, p.parse::<usize>().ok()?)));
                match parsed.filter(|(i, _)| *i < self.iterators.borrow().len()) {
                    Some(at) => at,
                    None => return error(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "unknown iterator"),
                }
            }
            None => match self.open(sent) {
                Ok(listing) => (listing, 0),
                Err(response) => return response,
            },
        };
        let iterators = self.iterators.borrow();
        let positions = &iterators[listing];
        let end = (start + page_size).min(positions.len());
        let records = self.records.borrow();
        let wanted = sent.params("fields[]");
        let page: Vec<Value> = positions[start.min(end)..end]
            .iter()
            .map(|&p| {
                let mut record = records[p].clone();
                if !wanted.is_empty()
                    && let Some(Value::Object(fields)) = record.get_mut("fields")
                {
                    fields.retain(|id, _| wanted.contains(&id.as_str()));
                }
                record
            })
            .collect();
        let mut body = json!({ "records": page });
        if end < positions.len() {
            body["offset"] = json!(format!("itr{listing}/{end}"));
        }
        ok(&body)
    }

    /// Filters and sorts the table for a new listing and keeps its positions.
    fn open(&self, sent: &Sent) -> Result<usize, Response> {
        let formula = match sent.param("filterByFormula") {
            None => None,
            Some(f) => Some(parse(f, &self.fields).map_err(|reason| {
                error(422, "INVALID_FILTER_BY_FORMULA", &format!("The formula is invalid: {reason}"))
            })?),
        };
        let field_id = |name: &str| self.fields.iter().find(|(n, _)| *n == name).map(|(_, id)| *id);
        let sort = match sent.param("sort[0][field]") {
            None => None,
            Some(name) => match (field_id(name), sent.param("sort[0][direction]")) {
                (Some(id), Some("asc") | None) => Some((id, false)),
                (Some(id), Some("desc")) => Some((id, true)),
                _ => return Err(error(422, "INVALID_SORT", &format!("cannot sort by {name:?}"))),
            },
        };
        let records = self.records.borrow();
        let mut positions: Vec<usize> = (0..records.len())
            .filter(|&p| formula.as_ref().is_none_or(|f| truthy(&eval(f, &records[p]["fields"]))))
            .collect();
        if let Some((id, desc)) = sort {
            // Stable, so ties keep creation order, as Airtable's do.
            positions.sort_by(|&a, &b| {
                let o = compare(records[a]["fields"].get(id), records[b]["fields"].get(id));
                if desc { o.reverse() } else { o }
            });
        }
        if let Some(max) = sent.param("maxRecords").and_then(|m| m.parse::<usize>().ok()) {
            positions.truncate(max);
        }
        let mut iterators = self.iterators.borrow_mut();
        iterators.push(positions);
        Ok(iterators.len() - 1)
    }
}

impl weir_connector_sdk::Host for FakeAirtable {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let sent = Sent::from(&request);
        self.sent.borrow_mut().push(sent.clone());
        let url = records_url(self.table_id);
        let answer = if sent.path == META_URL {
            ok(&serde_json::from_str::<Value>(META).map_err(|e| HttpError::InvalidRequest(e.to_string()))?)
        } else if sent.path == url || sent.path == format!("{url}/listRecords") {
            self.list(&sent)
        } else {
            error(404, "NOT_FOUND", "no such table")
        };
        Ok(answer)
    }

    fn log(&self, _level: Level, _message: &str) {}
}

#[test]
fn the_fake_evaluates_the_subset_and_refuses_the_rest() {
    let fields = [("Updated", "fldC3"), ("Record", "fldC1")];
    let cells = json!({"fldC3": "2024-04-01T00:00:00.000Z", "fldC1": "a"});
    let holds = |f: &str| truthy(&eval(&parse(f, &fields).unwrap(), &cells));
    assert!(holds("IS_AFTER({Updated}, '2024-03-31T23:59:59.999Z')"));
    assert!(!holds("IS_AFTER({Updated}, '2024-04-01T00:00:00.000Z')"));
    assert!(holds("AND(NOT(IS_BEFORE({Updated}, '2024-04-01')), {Record} = 'a', TRUE())"));
    assert!(holds("OR(FALSE(), is_before({Updated}, '2024-04-02'))"));
    // A blank cell is neither before nor after: NOT(IS_BEFORE(…)) lets it through.
    let blank = json!({});
    assert!(truthy(&eval(&parse("NOT(IS_BEFORE({Updated}, '2024-01-01'))", &fields).unwrap(), &blank)));
    assert!(!truthy(&eval(&parse("IS_AFTER({Updated}, '2024-01-01')", &fields).unwrap(), &blank)));
    for bad in ["LEN({Record})", "{Nope} = 'x'", "AND(", "IS_AFTER({Updated})", "DATEADD({Updated}, 1)"] {
        assert!(parse(bad, &fields).is_err(), "{bad}");
    }
}
