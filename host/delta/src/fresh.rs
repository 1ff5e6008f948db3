//! A first load needs no MERGE: while a cdc table holds only rows this sink appended, and the
//! sink knows their keys, a commit whose keys are all new (to the table and within the commit)
//! is appended, which is an order of magnitude cheaper than a MERGE that joins it with the whole
//! table. A row that repeats a key with exactly the content the sink's last commit (or an earlier
//! row of the commit) wrote for it changes nothing under SCD 1, and is dropped instead: a connector
//! may re-read the records tied at a checkpoint's cursor, which the commit before wrote (weir's
//! Airtable and GitHub connectors pass over them; upstream's do not), so without this nearly every
//! commit of such a first load would MERGE for one unchanged row. A commit that repeats a key with
//! other content, or a key of an older commit, MERGEs as usual.
//!
//! Memory is what bounds this. Every key the table holds is kept as a 64-bit hash of its Arrow row
//! encoding, in one sorted list: 8 bytes a row, where a hash map of keys and contents took 25 to
//! 50 (and twice that while it grew). Contents are kept only for the last commit's rows, so they
//! cost what a commit does, not what the table does. A collision can only make a new key look
//! known, which costs a MERGE and never a duplicate. A row's content is kept as a 128-bit hash of
//! its whole row encoding, so a changed row is taken for an unchanged one only with odds of
//! 2^-128. Knowing stops, for good, as soon as anyone else commits to the table (its version is
//! not the one this sink left), or once the table holds more than [`MAX_KEYS`] rows: from then on
//! every commit MERGEs, and memory stays flat however large the table grows.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, RandomState};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};

/// One row's key and content, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed {
    key: u64,
    content: Content,
}

/// A row's content as a 128-bit hash; `UNKNOWN` when the row encoding cannot hold one of the
/// columns' types, or a MERGE decided which row the table kept. (Two words rather than an
/// `Option<u128>`, which is twice the size: a first load holds one per row of a commit.)
type Content = [u64; 2];

const UNKNOWN: Content = [0, 0];

/// How many keys a first load keeps (32 MiB of hashes) before it stops knowing them. Airtable's
/// largest bases hold 500,000 records.
pub(crate) const MAX_KEYS: usize = 1 << 22;

/// The keys of every row of a table that only this sink has written since it was empty, and the
/// contents of its last commit's rows.
#[derive(Debug)]
pub(crate) struct FreshKeys {
    /// The table version this sink's last commit left; any other means another writer.
    pub version: i64,
    /// The hash of every key the table holds, sorted and unique.
    keys: Vec<u64>,
    /// Key hash → content, for the rows of this sink's last commit.
    last: HashMap<u64, Content>,
    /// [`MAX_KEYS`], but for tests.
    max_keys: usize,
    hashers: [RandomState; 3],
}

impl FreshKeys {
    pub fn new(version: i64) -> FreshKeys {
        FreshKeys {
            version,
            keys: Vec::new(),
            last: HashMap::new(),
            max_keys: MAX_KEYS,
            hashers: [(); 3].map(|()| RandomState::new()),
        }
    }

    /// The hashes of the batches' rows, in row order; the batches share one schema.
    pub fn hashes(&self, batches: &[RecordBatch], keys: &[String]) -> Result<Vec<Hashed>, ArrowError> {
        let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        let Some(first) = batches.first() else { return Ok(out) };
        let schema = first.schema();
        let key_fields = keys
            .iter()
            .map(|k| Ok(SortField::new(schema.field_with_name(k)?.data_type().clone())))
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let key_converter = RowConverter::new(key_fields)?;
        let all_fields = schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect();
        let row_converter = RowConverter::new(all_fields).ok();
        let [key_hasher, low, high] = &self.hashers;
        for batch in batches {
            let columns = keys
                .iter()
                .map(|k| {
                    batch
                        .column_by_name(k)
                        .cloned()
                        .ok_or_else(|| ArrowError::SchemaError(format!("no column {k}")))
                })
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let key_rows = key_converter.convert_columns(&columns)?;
            let rows = row_converter.as_ref().map(|c| c.convert_columns(batch.columns())).transpose()?;
            for (i, key) in key_rows.iter().enumerate() {
                let content = rows.as_ref().map_or(UNKNOWN, |rows| {
                    let bytes = rows.row(i);
                    [low.hash_one(bytes.as_ref()), high.hash_one(bytes.as_ref())]
                });
                out.push(Hashed { key: key_hasher.hash_one(key.as_ref()), content });
            }
        }
        Ok(out)
    }

    /// Which rows an append must keep, when the commit can be appended: every row's key is new
    /// to the table and to the commit, or repeats a row of the last commit, or of this one, with
    /// exactly the same content (dropped). None when some key repeats with other or unknown
    /// content, or repeats a row of an older commit: the commit must MERGE.
    pub fn appendable(&self, hashed: &[Hashed]) -> Option<Vec<bool>> {
        let mut in_commit: HashMap<u64, Content> = HashMap::with_capacity(hashed.len());
        let mut keep = Vec::with_capacity(hashed.len());
        for row in hashed {
            match self.last.get(&row.key).or_else(|| in_commit.get(&row.key)) {
                Some(content) if *content != UNKNOWN && row.content == *content => keep.push(false),
                Some(_) => return None,
                None if self.keys.binary_search(&row.key).is_ok() => return None,
                None => {
                    in_commit.insert(row.key, row.content);
                    keep.push(true);
                }
            }
        }
        Some(keep)
    }

    /// Records what a commit put in the table. After a MERGE (`merged`), a key the commit
    /// repeated (of the table, or twice in the commit) holds whichever row won: unknown content.
    pub fn add(&mut self, hashed: &[Hashed], merged: bool) {
        let mut last: HashMap<u64, Content> = HashMap::with_capacity(hashed.len());
        let mut new = Vec::with_capacity(hashed.len());
        for row in hashed {
            let known = self.keys.binary_search(&row.key).is_ok();
            match last.entry(row.key) {
                Entry::Vacant(slot) => {
                    slot.insert(if merged && known { UNKNOWN } else { row.content });
                    if !known {
                        new.push(row.key);
                    }
                }
                Entry::Occupied(mut slot) if merged => {
                    slot.insert(UNKNOWN);
                }
                Entry::Occupied(_) => {}
            }
        }
        self.last = last;
        merge_sorted(&mut self.keys, new);
    }

    /// Whether the table holds more keys than a first load keeps (see [`MAX_KEYS`]).
    pub fn is_full(&self) -> bool {
        self.keys.len() > self.max_keys
    }
}

/// Merges `new` (unique keys, none in `keys`) into the sorted `keys`, in place from the back:
/// the list grows by exactly what it gains.
fn merge_sorted(keys: &mut Vec<u64>, mut new: Vec<u64>) {
    new.sort_unstable();
    let (mut old, mut added) = (keys.len(), new.len());
    keys.reserve_exact(added);
    keys.resize(old + added, 0);
    while added > 0 {
        let at = old + added - 1;
        if old > 0 && keys[old - 1] > new[added - 1] {
            keys[at] = keys[old - 1];
            old -= 1;
        } else {
            keys[at] = new[added - 1];
            added -= 1;
        }
    }
}

/// The batches with only the rows `keep` marks, in order; `keep` spans every batch's rows.
pub(crate) fn keep_rows(batches: Vec<RecordBatch>, keep: &[bool]) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut at = 0;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mask = &keep[at..at + batch.num_rows()];
        at += batch.num_rows();
        if mask.iter().all(|k| *k) {
            out.push(batch);
        } else {
            out.push(filter_record_batch(&batch, &BooleanArray::from(mask.to_vec()))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn new_keys_append_identical_repeats_drop_and_changed_repeats_merge() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = |rows: &[(&str, i64)]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                ],
            )
            .unwrap()
        };
        let keys = ["id".to_string()];
        let mut fresh = FreshKeys::new(0);
        let first = fresh.hashes(&[batch(&[("a", 1), ("b", 2)]), batch(&[("c", 3)])], &keys).unwrap();
        assert_eq!(fresh.appendable(&first), Some(vec![true; 3]));
        fresh.add(&first, false);

        // b again, unchanged (a re-read at a checkpoint's cursor), and twice in one commit.
        let batches = vec![batch(&[("d", 4), ("b", 2)]), batch(&[("e", 5), ("e", 5)])];
        let again = fresh.hashes(&batches, &keys).unwrap();
        let keep = fresh.appendable(&again).expect("unchanged repeats need no MERGE");
        assert_eq!(keep, [true, false, true, false]);
        let kept = keep_rows(batches, &keep).unwrap();
        let ids: Vec<_> = kept
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<StringArray>().unwrap().iter().flatten())
            .map(str::to_string)
            .collect();
        assert_eq!(ids, ["d", "e"]);
        fresh.add(&again, false);

        // b changed: a MERGE, after which b's content is unknown, even unchanged.
        let changed = fresh.hashes(&[batch(&[("f", 6), ("b", 20)])], &keys).unwrap();
        assert_eq!(fresh.appendable(&changed), None);
        let twice = fresh.hashes(&[batch(&[("g", 7), ("g", 8)])], &keys).unwrap();
        assert_eq!(fresh.appendable(&twice), None, "g twice with two contents");
        fresh.add(&changed, true);
        assert_eq!(fresh.appendable(&fresh.hashes(&[batch(&[("b", 20)])], &keys).unwrap()), None);
        assert_eq!(fresh.appendable(&fresh.hashes(&[batch(&[("f", 6)])], &keys).unwrap()), Some(vec![false]));
        assert_eq!(fresh.appendable(&fresh.hashes(&[batch(&[("h", 9)])], &keys).unwrap()), Some(vec![true]));
        assert!(fresh.hashes(&[batch(&[("i", 1)])], &["missing".to_string()]).is_err());
    }

    /// Keys gathered over many commits, some repeated, are found exactly as a set of them finds
    /// them, and the list stays sorted and unique.
    #[test]
    fn every_key_a_commit_added_is_known_and_no_other() {
        let mut fresh = FreshKeys::new(0);
        let mut all = std::collections::BTreeSet::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 5_000
        };
        for commit in 0..40 {
            let rows: Vec<Hashed> =
                (0..1 + commit * 7).map(|_| Hashed { key: next(), content: [1, 1] }).collect();
            fresh.add(&rows, false);
            all.extend(rows.iter().map(|r| r.key));
            assert_eq!(fresh.keys, all.iter().copied().collect::<Vec<_>>(), "after commit {commit}");
        }
        for key in 0..5_000 {
            let row = [Hashed { key, content: [2, 2] }];
            assert_eq!(fresh.appendable(&row).is_some(), !all.contains(&key), "key {key}");
        }
    }

    /// Past its bound a first load stops knowing keys (the sink then MERGEs every commit).
    #[test]
    fn a_first_load_is_full_past_its_bound() {
        let mut fresh = FreshKeys::new(0);
        fresh.max_keys = 4;
        let rows = |keys: &[u64]| keys.iter().map(|&key| Hashed { key, content: [1, 1] }).collect::<Vec<_>>();
        fresh.add(&rows(&[1, 2, 3]), false);
        fresh.add(&rows(&[3, 4]), false);
        assert!(!fresh.is_full(), "four keys are within a bound of four");
        fresh.add(&rows(&[5]), false);
        assert!(fresh.is_full());
    }
}
