//! The fast path for cdc listings: sorted by a lastModifiedTime field ascending and bounded by
//! `IS_AFTER`/`IS_BEFORE` on it, answered from the table's [`ModOrder`] instead of filtering and
//! sorting the whole table.
//!
//! The general path snapshots the listing when its first page is asked for: which records it
//! holds, in which order. Later pages show those records' current content and skip the deleted
//! ones. The fast path walks the same snapshot lazily. The order's entries whose record was not
//! written since the snapshot are where they were then; the records written since are taken from
//! the table's history with their content (so their key and the residual filter) as it was at the
//! snapshot, and merged in. Starting costs O(log n), a page O(page + writes since the snapshot).

use std::collections::HashSet;

use crate::formula::{self, Expr};
use crate::store::{ModKey, ModOrder, Record, Table, mod_key, parse_time};

/// A listing walked in the order of a lastModifiedTime field, as it was when the listing started.
#[derive(Debug)]
pub(crate) struct ModWalk {
    /// Index into `Table::orders`.
    order: usize,
    /// Whether empty cells (`None` keys, which sort first) pass the bounds.
    empty: bool,
    /// Inclusive bounds on the time keys; `lo > hi` admits no time at all.
    lo: i64,
    hi: i64,
    /// The filter's conjuncts that are not bounds, evaluated on the content at the snapshot.
    residual: Vec<Expr>,
    /// `Table::seq` and the number of positions when the listing started.
    pub snapshot: u64,
    len: usize,
}

/// One bound: the key compared with a time.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// `key > t`; an empty cell fails.
    After(i64),
    /// `key < t`; an empty cell fails.
    Before(i64),
    /// `NOT(key > t)`: `key ≤ t`, and an empty cell passes.
    NotAfter(i64),
    /// `NOT(key < t)`: `key ≥ t`, and an empty cell passes.
    NotBefore(i64),
}

/// Splits nested `AND`s into their conjuncts.
fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::And(xs) => xs.iter().for_each(|x| conjuncts(x, out)),
        other => out.push(other),
    }
}

/// Reads `e` as a bound on the order's key, or `None` when it is anything else.
fn bound(e: &Expr, order: &ModOrder) -> Option<Bound> {
    let is_key = |x: &Expr| match x {
        Expr::Field(id) => *id == order.field,
        // LAST_MODIFIED_TIME() is the same key only while every record's cell equals it.
        Expr::LastModified => order.mismatched == 0,
        _ => false,
    };
    let time = |x: &Expr| match x {
        Expr::Str(s) => parse_time(s),
        _ => None,
    };
    match e {
        Expr::Not(inner) => match bound(inner, order)? {
            Bound::After(t) => Some(Bound::NotAfter(t)),
            Bound::Before(t) => Some(Bound::NotBefore(t)),
            Bound::NotAfter(_) | Bound::NotBefore(_) => None,
        },
        Expr::IsAfter(a, b) | Expr::IsBefore(a, b) => {
            let after = matches!(e, Expr::IsAfter(..));
            if is_key(a) {
                let t = time(b)?;
                Some(if after { Bound::After(t) } else { Bound::Before(t) })
            } else if is_key(b) {
                // IS_AFTER('t', key) is key < t.
                let t = time(a)?;
                Some(if after { Bound::Before(t) } else { Bound::After(t) })
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Plans a fast walk, or `None` when the listing is not sorted by a usable lastModifiedTime
/// field ascending (the general path then answers).
pub(crate) fn plan(t: &Table, filters: &[&Expr], sort: &[(String, bool)]) -> Option<ModWalk> {
    let [(field, false)] = sort else { return None };
    let order = t.orders.iter().position(|o| o.field == *field && o.usable())?;
    let mut walk = ModWalk {
        order,
        empty: true,
        lo: i64::MIN,
        hi: i64::MAX,
        residual: Vec::new(),
        snapshot: t.seq,
        len: t.records.len(),
    };
    let mut parts = Vec::new();
    filters.iter().for_each(|f| conjuncts(f, &mut parts));
    for part in parts {
        match bound(part, &t.orders[order]) {
            Some(Bound::After(x)) => {
                walk.empty = false;
                walk.lo = walk.lo.max(x.saturating_add(1));
            }
            Some(Bound::Before(x)) => {
                walk.empty = false;
                walk.hi = walk.hi.min(x.saturating_sub(1));
            }
            Some(Bound::NotAfter(x)) => walk.hi = walk.hi.min(x),
            Some(Bound::NotBefore(x)) => walk.lo = walk.lo.max(x),
            None => walk.residual.push(part.clone()),
        }
    }
    // Saturation at the ends of i64 must not admit a time that no bound admits.
    if walk.lo == i64::MAX || walk.hi == i64::MIN {
        walk.lo = i64::MAX;
        walk.hi = i64::MIN;
    }
    Some(walk)
}

impl ModWalk {
    fn admits(&self, key: ModKey) -> bool {
        match key {
            None => self.empty,
            Some(k) => self.lo <= k && k <= self.hi,
        }
    }

    fn passes(&self, r: &Record) -> bool {
        self.residual.iter().all(|e| formula::matches(e, r))
    }

    /// The listing's members from `from` (inclusive) on, in order: `(key, position)`.
    pub fn members<'t>(
        &'t self,
        t: &'t Table,
        from: Option<(ModKey, u32)>,
    ) -> impl Iterator<Item = (ModKey, u32)> + 't {
        let order = &t.orders[self.order];
        let start = from.unwrap_or((None, 0));
        // Two ranges of one ordered set: the empty cells (which sort first), then the times.
        let range = |lo: (ModKey, u32), hi: (ModKey, u32)| {
            let lo = lo.max(start);
            (lo <= hi).then(|| order.keys.range(lo..=hi)).into_iter().flatten()
        };
        let empties = self.empty.then(|| range((None, 0), (None, u32::MAX))).into_iter().flatten();
        let times = (self.lo <= self.hi)
            .then(|| range((Some(self.lo), 0), (Some(self.hi), u32::MAX)))
            .into_iter()
            .flatten();
        // Entries whose record is as it was at the snapshot; the others come from the history.
        let unchanged = empties.chain(times).copied().filter(move |&(_, p)| {
            let p = p as usize;
            p < self.len
                && t.written[p] <= self.snapshot
                && t.records[p].as_ref().is_some_and(|r| self.passes(r))
        });
        let moved = self.moved(t, start).into_iter();
        Merge { a: unchanged.peekable(), b: moved.peekable() }
    }

    /// The records written since the snapshot that were members then, from `from` on, in order.
    fn moved(&self, t: &Table, from: (ModKey, u32)) -> Vec<(ModKey, u32)> {
        let Some(f) = t.fields.iter().find(|f| f.id == t.orders[self.order].field) else { return Vec::new() };
        let first = t.history.partition_point(|p| p.seq <= self.snapshot);
        let mut seen = HashSet::new();
        let mut out: Vec<(ModKey, u32)> = t.history[first..]
            .iter()
            .filter(|p| (p.pos as usize) < self.len && seen.insert(p.pos))
            .filter_map(|p| {
                // The first change after the snapshot holds the content the snapshot saw.
                let key = mod_key(f, &p.old).unwrap_or(None);
                (self.admits(key) && (key, p.pos) >= from && self.passes(&p.old)).then_some((key, p.pos))
            })
            .collect();
        out.sort_unstable();
        out
    }
}

/// Merges two ascending streams of distinct items.
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<T: Ord, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Merge<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fast path against the general path, on random tables, bounds and writes.

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::listing::{start_order, walk};
    use crate::seed::SplitMix;
    use crate::store::{FieldDef, Order, Resume, format_time, format_time_for};

    const T0: i64 = 1_750_000_000_000;
    const DAY: i64 = 86_400_000;

    fn field(id: &str, name: &str, ftype: &str, options: Value) -> FieldDef {
        FieldDef {
            id: id.into(),
            name: name.into(),
            ftype: ftype.into(),
            description: None,
            options: (!options.is_null()).then_some(options),
        }
    }

    fn table() -> Table {
        Table::new(
            "tblT".into(),
            "T".into(),
            None,
            vec![
                field("fldText", "Text", "singleLineText", Value::Null),
                field(
                    "fldLM",
                    "Last Modified",
                    "lastModifiedTime",
                    json!({"referencedFieldIds": [], "result": {"type": "dateTime"}}),
                ),
                field(
                    "fldDay",
                    "Changed On",
                    "lastModifiedTime",
                    json!({"referencedFieldIds": ["fldText"], "result": {"type": "date"}}),
                ),
            ],
        )
    }

    /// A record modified at one of few times (many ties), sometimes with empty cells.
    fn record(t: &Table, rng: &mut SplitMix, id: String, empties: bool) -> Record {
        let modified = T0 + rng.below(12) as i64 * 1000 + rng.below(3) as i64 * DAY;
        let mut fields = Map::new();
        if let Some(text) = ["a", "b", ""].get(rng.below(3) as usize).filter(|s| !s.is_empty()) {
            fields.insert("fldText".into(), json!(text));
        }
        if !(empties && rng.chance(0.15)) {
            fields.insert("fldLM".into(), json!(format_time(modified)));
        }
        if !(empties && rng.chance(0.15)) {
            let day = T0 + rng.below(4) as i64 * DAY;
            fields.insert("fldDay".into(), json!(format_time_for(&t.fields[2], day)));
        }
        Record { id, created: T0, modified, fields }
    }

    /// A random formula of bounds on a lastModifiedTime key, mixed with other conjuncts.
    fn formula(rng: &mut SplitMix) -> String {
        let time = |rng: &mut SplitMix| -> String {
            let t = T0 + rng.below(12) as i64 * 1000 + rng.below(3) as i64 * DAY + rng.below(3) as i64 - 1;
            match rng.below(6) {
                0 => format_time(t)[..10].to_string(),
                1 => "soon".to_string(),
                _ => format_time(t),
            }
        };
        let mut terms = Vec::new();
        for _ in 0..rng.below(4) {
            let x =
                *rng.pick(&["{Last Modified}", "{Last Modified}", "LAST_MODIFIED_TIME()", "{Changed On}"]);
            let t = time(rng);
            let atom = match rng.below(4) {
                0 => format!("IS_AFTER({x}, '{t}')"),
                1 => format!("IS_BEFORE({x}, '{t}')"),
                2 => format!("IS_AFTER('{t}', {x})"),
                _ => format!("IS_BEFORE('{t}', {x})"),
            };
            terms.push(if rng.chance(0.4) { format!("NOT({atom})") } else { atom });
        }
        match rng.below(4) {
            0 => terms.push("{Text} = 'a'".into()),
            1 => terms.push("{Text} != 'b'".into()),
            _ => {}
        }
        if terms.len() > 2 && rng.chance(0.5) {
            // A user's formula wrapped around the reader's bounds.
            let inner = terms.split_off(1).join(", ");
            terms.push(format!("AND({inner})"));
        }
        match terms.len() {
            0 => String::new(),
            _ => format!("AND({})", terms.join(", ")),
        }
    }

    /// Writes between pages: updates that move records both ways, deletes, and creates.
    fn write(t: &mut Table, rng: &mut SplitMix, empties: bool, n: &mut usize) {
        let pos = rng.below(t.records.len() as u64) as usize;
        match rng.below(4) {
            0 => {
                *n += 1;
                let r = record(t, rng, format!("recNew{n}"), empties);
                t.push(r);
            }
            1 => {
                t.remove(pos);
            }
            _ => {
                if let Some(id) = t.records[pos].as_ref().map(|r| r.id.clone()) {
                    let r = record(t, rng, id, empties);
                    t.replace(pos, r);
                }
            }
        }
    }

    fn ids(records: &[&Record]) -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn the_fast_path_answers_exactly_what_the_general_path_answers() {
        let mut rng = SplitMix(12);
        let mut fast_used = 0;
        for case in 0..600 {
            let empties = case % 3 == 0;
            let mut t = table();
            for i in 0..rng.below(60) {
                let r = record(&t, &mut rng, format!("rec{i}"), empties);
                t.push(r);
            }
            t.reorder();
            let src = formula(&mut rng);
            let resolve = |name: &str| t.fields.iter().find(|f| f.name == name).map(|f| f.id.clone());
            let filter = (!src.is_empty()).then(|| crate::formula::parse(&src, &resolve).expect("formula"));
            let filters: Vec<&Expr> = filter.iter().collect();
            let sort = vec![(if rng.chance(0.8) { "fldLM" } else { "fldDay" }.to_string(), false)];
            let general = start_order(&t, &filters, &sort, false);
            let fast = start_order(&t, &filters, &sort, true);
            assert!(matches!(fast, Order::ByModified(_)), "{src}");
            fast_used += 1;
            let snapshot = t.seq;
            let (mut from_g, mut from_f): (Option<Resume>, Option<Resume>) = (None, None);
            let mut created = 0;
            for page in 0.. {
                let cap = 1 + rng.below(7) as usize;
                let (g, f) =
                    (walk(&t, &general, from_g, cap, |_| true), walk(&t, &fast, from_f, cap, |_| true));
                let context = format!("case {case}, page {page}, formula {src:?}, sort {sort:?}");
                assert_eq!(ids(&g.records), ids(&f.records), "{context}");
                assert_eq!(g.next.as_ref().map(|n| &n.0), f.next.as_ref().map(|n| &n.0), "{context}");
                let (Some(ng), Some(nf)) = (g.next, f.next) else { break };
                (from_g, from_f) = (Some(ng.1), Some(nf.1));
                for _ in 0..rng.below(4) {
                    t.keep_history_after(Some(snapshot));
                    write(&mut t, &mut rng, empties, &mut created);
                }
            }
        }
        assert_eq!(fast_used, 600);
    }

    #[test]
    fn only_an_ascending_sort_on_a_readable_last_modified_field_takes_the_fast_path() {
        let mut t = table();
        let mut rng = SplitMix(3);
        for i in 0..5 {
            let r = record(&t, &mut rng, format!("rec{i}"), false);
            t.push(r);
        }
        let asc = |f: &str| vec![(f.to_string(), false)];
        assert!(plan(&t, &[], &asc("fldLM")).is_some());
        assert!(plan(&t, &[], &[("fldLM".to_string(), true)]).is_none(), "descending");
        assert!(plan(&t, &[], &asc("fldText")).is_none(), "not a lastModifiedTime field");
        assert!(plan(&t, &[], &[("fldLM".to_string(), false), ("fldText".to_string(), false)]).is_none());
        // A cell that is not the field's own time format could sort differently as text.
        let mut odd = t.records[0].clone().expect("record");
        odd.fields.insert("fldLM".into(), json!("2025-06-15 10:00"));
        t.replace(0, odd);
        assert!(plan(&t, &[], &asc("fldLM")).is_none());
    }

    #[test]
    fn bounds_narrow_the_walk_and_the_rest_stays_a_filter() {
        let mut t = table();
        let mut rng = SplitMix(5);
        for i in 0..20 {
            let r = record(&t, &mut rng, format!("rec{i}"), false);
            t.push(r);
        }
        let resolve = |name: &str| t.fields.iter().find(|f| f.name == name).map(|f| f.id.clone());
        let src = "AND(IS_AFTER({Last Modified}, '2025-06-15T15:06:40.000Z'), NOT(IS_AFTER(LAST_MODIFIED_TIME(), '2025-06-16')), {Text} = 'a')";
        let e = crate::formula::parse(src, &resolve).expect("formula");
        let w = plan(&t, &[&e], &[("fldLM".to_string(), false)]).expect("fast path");
        assert_eq!((w.empty, w.lo, w.hi), (false, T0 + 1, parse_time("2025-06-16").expect("date")));
        assert_eq!(w.residual.len(), 1, "{:?}", w.residual);
    }
}
