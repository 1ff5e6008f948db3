//! What a run reports per table; front ends print it as a table or as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use weir_runtime::http::GateCounts;

use crate::spec::Planned;

/// Distinct counter names a table's report keeps; the rest are added up under
/// [`OTHER_COUNTERS`], so a connector inventing names cannot grow the summary without end.
pub const MAX_COUNTERS: usize = 1000;

/// The counter that collects counts past [`MAX_COUNTERS`] names.
pub const OTHER_COUNTERS: &str = "other";

/// One table's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub source_table: String,
    /// The source table's namespace path; empty at the root.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespace: Vec<String>,
    pub destination: String,
    pub uri: String,
    pub ingestion_type: String,
    pub rows_read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub commits: u64,
    pub pages: u64,
    /// Partitions read concurrently (0: the table is not partitioned).
    pub partitions: u64,
    /// Data files written by z-ordering the table on its `cluster_by` columns after the run's
    /// commits (0: no `cluster_by`, or the run changed no row).
    pub clustered_files: u64,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// The offset the last commit reached (JSON text), empty when nothing was committed.
    pub offset: String,
    /// Counts the connector reported, e.g. `nulled.<column>` for source error values.
    pub counters: BTreeMap<String, u64>,
    /// Fields in records that the schema does not have (logged once per column).
    pub unknown_fields: u64,
    pub http: GateCounts,
    pub error: Option<String>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl TableReport {
    /// An empty report for a planned table.
    pub fn new(plan: &Planned, ingestion_type: &str, uri: &str) -> TableReport {
        TableReport {
            source_table: plan.source_table.clone(),
            namespace: plan.namespace.clone(),
            destination: plan.destination_name(),
            uri: uri.to_string(),
            ingestion_type: ingestion_type.to_string(),
            rows_read: 0,
            inserted: 0,
            updated: 0,
            deleted: 0,
            commits: 0,
            pages: 0,
            partitions: 0,
            clustered_files: 0,
            duration: Duration::ZERO,
            offset: String::new(),
            counters: BTreeMap::new(),
            unknown_fields: 0,
            http: GateCounts::default(),
            error: None,
        }
    }

    /// Adds a page's counters under at most [`MAX_COUNTERS`] names (the rest add up under
    /// [`OTHER_COUNTERS`]); a total that would overflow is an error naming the counter.
    pub fn count(&mut self, counters: impl IntoIterator<Item = (String, u64)>) -> Result<(), String> {
        for (name, n) in counters {
            let name = if self.counters.len() < MAX_COUNTERS || self.counters.contains_key(&name) {
                name
            } else {
                OTHER_COUNTERS.to_string()
            };
            let total = self.counters.entry(name.clone()).or_default();
            *total = total.checked_add(n).ok_or_else(|| {
                format!(
                    "counter {:?} passed {} (a u64); the connector's counts are not believable",
                    name,
                    u64::MAX
                )
            })?;
        }
        Ok(())
    }

    /// The counters that count source error values turned to null, by column.
    pub fn nulled(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().filter_map(|(k, v)| k.strip_prefix("nulled.").map(|c| (c, *v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_never_wrap_and_their_names_are_bounded() {
        let plan = crate::spec::PipelineSpec::from_text(
            "connection_name: a\nobjects:\n  - table:\n      source_table: T\n",
            std::path::Path::new("p.yaml"),
        )
        .unwrap()
        .1
        .remove(0);
        let mut report = TableReport::new(&plan, "cdc", "/w/t");
        report.count([("nulled.a".to_string(), u64::MAX)]).unwrap();
        let err = report.count([("nulled.a".to_string(), 5)]).unwrap_err();
        assert!(err.contains("nulled.a"), "{err}");
        report.count((0..5000).map(|i| (format!("c{i}"), 1))).unwrap();
        assert_eq!(report.counters.len(), MAX_COUNTERS + 1);
        assert_eq!(report.counters[OTHER_COUNTERS], 5000 - (MAX_COUNTERS as u64 - 1));
        assert_eq!(report.nulled().collect::<Vec<_>>(), [("a", u64::MAX)]);
    }
}
