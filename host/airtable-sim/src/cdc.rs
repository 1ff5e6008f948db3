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
        let empties = self
            .empty
            .then(|| order.keys.range(start.max((None, 0))..=(None, u32::MAX)))
            .into_iter()
            .flatten();
        let times = (self.lo <= self.hi)
            .then(|| {
                let lo = start.max((Some(self.lo), 0));
                let hi = (Some(self.hi), u32::MAX);
                (lo <= hi).then(|| order.keys.range(lo..=hi))
            })
            .flatten()
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
