//! A first load needs no MERGE: while a cdc table holds only rows this sink appended, and the
//! sink knows their keys, a commit whose keys are all new (to the table and within the commit)
//! is appended, which is an order of magnitude cheaper than a MERGE that joins it with the whole
//! table. A commit that repeats a key (a record changed during the read) MERGEs as usual.
//!
//! The keys are kept as 64-bit hashes of their Arrow row encoding: a collision can only make a
//! new key look known, which costs a MERGE and never a duplicate. Knowing stops, for good, as
//! soon as anyone else commits to the table (its version is not the one this sink left).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use arrow_array::RecordBatch;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};

/// The keys of every row of a table that only this sink has written since it was empty.
#[derive(Debug)]
pub(crate) struct FreshKeys {
    /// The table version this sink's last commit left; any other means another writer.
    pub version: i64,
    keys: HashSet<u64>,
    hasher: RandomState,
}

impl FreshKeys {
    pub fn new(version: i64) -> FreshKeys {
        FreshKeys { version, keys: HashSet::new(), hasher: RandomState::new() }
    }

    /// The hashes of the batches' keys, in row order; the batches share one schema.
    pub fn hashes(&self, batches: &[RecordBatch], keys: &[String]) -> Result<Vec<u64>, ArrowError> {
        let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        let Some(first) = batches.first() else { return Ok(out) };
        let fields = keys
            .iter()
            .map(|k| Ok(SortField::new(first.schema().field_with_name(k)?.data_type().clone())))
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let converter = RowConverter::new(fields)?;
        for batch in batches {
            let columns = keys
                .iter()
                .map(|k| {
                    batch
                        .column_by_name(k)
                        .cloned()
                        .ok_or_else(|| ArrowError::SchemaError(format!("no column {k}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rows = converter.convert_columns(&columns)?;
            out.extend(rows.iter().map(|row| self.hasher.hash_one(row.as_ref())));
        }
        Ok(out)
    }

    /// Whether every hash is new to the table and appears once.
    pub fn all_new(&self, hashes: &[u64]) -> bool {
        let mut seen = HashSet::with_capacity(hashes.len());
        hashes.iter().all(|h| !self.keys.contains(h) && seen.insert(*h))
    }

    /// Records keys that are now in the table.
    pub fn add(&mut self, hashes: Vec<u64>) {
        self.keys.extend(hashes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn keys_are_new_once_and_repeats_are_caught() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = |ids: &[&str]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids.to_vec())),
                    Arc::new(Int64Array::from_iter_values(0..ids.len() as i64)),
                ],
            )
            .unwrap()
        };
        let keys = ["id".to_string()];
        let mut fresh = FreshKeys::new(0);
        let first = fresh.hashes(&[batch(&["a", "b"]), batch(&["c"])], &keys).unwrap();
        assert!(fresh.all_new(&first));
        fresh.add(first);
        let again = fresh.hashes(&[batch(&["d", "b"])], &keys).unwrap();
        assert!(!fresh.all_new(&again), "b is in the table");
        let twice = fresh.hashes(&[batch(&["e", "e"])], &keys).unwrap();
        assert!(!fresh.all_new(&twice), "e twice in one commit");
        assert!(fresh.all_new(&fresh.hashes(&[batch(&["f"])], &keys).unwrap()));
        assert!(fresh.hashes(&[batch(&["g"])], &["missing".to_string()]).is_err());
    }
}
