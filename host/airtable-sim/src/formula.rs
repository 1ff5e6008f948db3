//! The `filterByFormula` subset the simulator understands: a recursive-descent parser and an evaluator.
//!
//! Anything outside the subset is rejected rather than guessed at, so a connector that relies on
//! a formula the simulator cannot check fails loudly in tests instead of silently reading too much.

use serde_json::Value;

use crate::store::{Record, parse_time};

/// A parsed formula; field references are already resolved to field ids.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Field(String),
    Str(String),
    Num(f64),
    Bool(bool),
    LastModified,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    IsAfter(Box<Expr>, Box<Expr>),
    IsBefore(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
}

/// Why a formula was rejected; the message is shown to the client as is.
#[derive(Debug, thiserror::Error)]
#[error("The formula for filtering records is invalid: {reason}. Formula: {formula}")]
pub(crate) struct FormulaError {
    reason: String,
    formula: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Num(f64),
    Ident(String),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1
            }
            '=' => {
                toks.push(Tok::Eq);
                i += 1
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Ne);
                i += 2
            }
            '{' | '\'' | '"' => {
                let close = if c == '{' { '}' } else { c };
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated {c}")),
                        Some('\\') => {
                            let next = chars.get(i + 1).ok_or("dangling backslash")?;
                            text.push(*next);
                            i += 2;
                        }
                        Some(ch) if *ch == close => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                toks.push(if c == '{' { Tok::Field(text) } else { Tok::Str(text) });
            }
            c if c.is_ascii_digit()
                || c == '.'
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| format!("bad number {text}"))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(toks)
}

struct Parser<'a, F> {
    toks: Vec<Tok>,
    pos: usize,
    resolve: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Parser<'_, F> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!("expected {want:?}, found {t:?}")),
            None => Err(format!("expected {want:?}, found the end")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let left = self.term()?;
        match self.peek() {
            Some(Tok::Eq) => {
                self.pos += 1;
                Ok(Expr::Eq(Box::new(left), Box::new(self.term()?)))
            }
            Some(Tok::Ne) => {
                self.pos += 1;
                Ok(Expr::Ne(Box::new(left), Box::new(self.term()?)))
            }
            _ => Ok(left),
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Field(name)) => match (self.resolve)(&name) {
                Some(id) => Ok(Expr::Field(id)),
                None => Err(format!("Unknown field names: {name}")),
            },
            Some(Tok::LParen) => {
                let e = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Ident(name)) => self.call(&name),
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of formula".to_string()),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, String> {
        self.expect(Tok::LParen)?;
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push(self.expr()?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::RParen)?;
        let upper = name.to_ascii_uppercase();
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{upper}() takes {n} argument(s), got {}", args.len()))
            }
        };
        match upper.as_str() {
            "TRUE" => arity(0).map(|_| Expr::Bool(true)),
            "FALSE" => arity(0).map(|_| Expr::Bool(false)),
            "LAST_MODIFIED_TIME" => arity(0).map(|_| Expr::LastModified),
            "NOT" => {
                arity(1)?;
                Ok(Expr::Not(Box::new(args.remove(0))))
            }
            "AND" | "OR" if args.is_empty() => Err(format!("{upper}() needs at least one argument")),
            "AND" => Ok(Expr::And(args)),
            "OR" => Ok(Expr::Or(args)),
            "IS_AFTER" | "IS_BEFORE" => {
                arity(2)?;
                let b = Box::new(args.remove(1));
                let a = Box::new(args.remove(0));
                Ok(if upper == "IS_AFTER" { Expr::IsAfter(a, b) } else { Expr::IsBefore(a, b) })
            }
            _ => Err(format!("unknown function {name}()")),
        }
    }
}

/// Parses `src`, resolving `{Field}` references through `resolve` (name → field id).
pub(crate) fn parse(src: &str, resolve: &impl Fn(&str) -> Option<String>) -> Result<Expr, FormulaError> {
    let fail = |reason: String| FormulaError { reason, formula: src.to_string() };
    let toks = tokenize(src).map_err(fail)?;
    if toks.is_empty() {
        return Err(fail("the formula is empty".to_string()));
    }
    let mut p = Parser { toks, pos: 0, resolve };
    let e = p.expr().map_err(fail)?;
    if p.pos != p.toks.len() {
        return Err(fail("unexpected text after the end of the formula".to_string()));
    }
    Ok(e)
}

/// A value during evaluation.
#[derive(Debug, Clone)]
enum V {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Time(i64),
}

fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(items.iter().filter_map(cell_text).collect::<Vec<_>>().join(", ")),
        // Objects display as their most human part, as Airtable's formula engine shows them.
        Value::Object(o) => ["name", "text", "value", "label", "filename"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_string)),
    }
}

fn from_cell(v: Option<&Value>) -> V {
    match v {
        None | Some(Value::Null) => V::Null,
        Some(Value::Bool(b)) => V::Bool(*b),
        Some(Value::Number(n)) => n.as_f64().map_or(V::Null, V::Num),
        Some(Value::String(s)) => V::Str(s.clone()),
        Some(other) => cell_text(other).map_or(V::Null, V::Str),
    }
}

fn truthy(v: &V) -> bool {
    match v {
        V::Null => false,
        V::Bool(b) => *b,
        V::Num(n) => *n != 0.0,
        V::Str(s) => !s.is_empty(),
        V::Time(_) => true,
    }
}

fn as_time(v: &V) -> Option<i64> {
    match v {
        V::Time(t) => Some(*t),
        V::Str(s) => parse_time(s),
        _ => None,
    }
}

fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Null, x) | (x, V::Null) => !truthy(x),
        (V::Num(x), V::Num(y)) => x == y,
        (V::Num(n), V::Str(s)) | (V::Str(s), V::Num(n)) => s.trim().parse::<f64>().is_ok_and(|p| p == *n),
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Bool(x), V::Num(n)) | (V::Num(n), V::Bool(x)) => (*x as i64 as f64) == *n,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Time(x), V::Time(y)) => x == y,
        (V::Time(t), V::Str(s)) | (V::Str(s), V::Time(t)) => parse_time(s) == Some(*t),
        _ => false,
    }
}

fn eval(e: &Expr, r: &Record) -> V {
    match e {
        Expr::Field(id) => from_cell(r.fields.get(id)),
        Expr::Str(s) => V::Str(s.clone()),
        Expr::Num(n) => V::Num(*n),
        Expr::Bool(b) => V::Bool(*b),
        Expr::LastModified => V::Time(r.modified),
        Expr::And(xs) => V::Bool(xs.iter().all(|x| truthy(&eval(x, r)))),
        Expr::Or(xs) => V::Bool(xs.iter().any(|x| truthy(&eval(x, r)))),
        Expr::Not(x) => V::Bool(!truthy(&eval(x, r))),
        Expr::IsAfter(a, b) | Expr::IsBefore(a, b) => {
            let (a, b) = (as_time(&eval(a, r)), as_time(&eval(b, r)));
            match (a, b) {
                (Some(a), Some(b)) => V::Bool(if matches!(e, Expr::IsAfter(..)) { a > b } else { a < b }),
                _ => V::Bool(false),
            }
        }
        Expr::Eq(a, b) => V::Bool(equal(&eval(a, r), &eval(b, r))),
        Expr::Ne(a, b) => V::Bool(!equal(&eval(a, r), &eval(b, r))),
    }
}

/// Whether the record passes the filter.
pub(crate) fn matches(e: &Expr, r: &Record) -> bool {
    truthy(&eval(e, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(name: &str) -> Option<String> {
        ["Status", "Done", "Due", "Price"].contains(&name).then(|| format!("fld{name}"))
    }

    fn rec(fields: Value) -> Record {
        let fields = fields.as_object().cloned().unwrap_or_default();
        Record { id: "recX".into(), created: 0, modified: 1_750_000_000_000, fields }
    }

    #[test]
    fn evaluates_the_supported_subset() {
        let r = rec(json!({"fldStatus": "Approved", "fldDue": "2025-06-01", "fldPrice": 12.5}));
        let ok = |src: &str| matches(&parse(src, &resolve).unwrap(), &r);
        assert!(ok("{Status} = 'Approved'"));
        assert!(!ok("{Status} = \"Idea\""));
        assert!(ok("{Price} = 12.5"));
        assert!(ok("IS_AFTER({Due}, '2025-05-31')"));
        assert!(!ok("IS_BEFORE({Due}, '2025-05-31T00:00:00.000Z')"));
        assert!(ok("AND(TRUE(), NOT(FALSE()), OR({Done}, {Status} != 'Idea'))"));
        assert!(ok("{Done} = FALSE()"), "an absent checkbox is false");
        assert!(ok("IS_AFTER(LAST_MODIFIED_TIME(), '2025-01-01T00:00:00Z')"));
        assert!(!ok("is_after(last_modified_time(), '2026-01-01')"));
    }

    #[test]
    fn rejects_everything_else_naming_the_formula() {
        for bad in
            ["{Nope} = 1", "LEN({Status}) > 3", "AND(", "{Status} = 'a' 'b'", "", "SEARCH('a', {Status})"]
        {
            let err = parse(bad, &resolve).expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
