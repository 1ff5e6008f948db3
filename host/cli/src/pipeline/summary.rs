//! What a run reports per table, as a table on stdout or as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use weir_runtime::http::GateCounts;

use super::spec::Planned;

/// One table's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub source_table: String,
    pub destination: String,
    pub uri: String,
    pub ingestion_type: String,
    pub rows_read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub commits: u64,
    pub pages: u64,
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
    pub fn new(plan: &Planned, ingestion_type: &str, uri: &str) -> TableReport {
        TableReport {
            source_table: plan.source_table.clone(),
            destination: plan.destination_name(),
            uri: uri.to_string(),
            ingestion_type: ingestion_type.to_string(),
            rows_read: 0,
            inserted: 0,
            updated: 0,
            deleted: 0,
            commits: 0,
            pages: 0,
            duration: Duration::ZERO,
            offset: String::new(),
            counters: BTreeMap::new(),
            unknown_fields: 0,
            http: GateCounts::default(),
            error: None,
        }
    }
}

/// Prints the summary as an aligned table.
pub fn print_summary(reports: &[TableReport]) {
    let header =
        ["table", "ingestion", "read", "inserted", "updated", "deleted", "commits", "duration", "offset"];
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            let mut offset = if r.error.is_some() { "FAILED".to_string() } else { r.offset.clone() };
            if offset.chars().count() > 40 {
                offset = offset.chars().take(39).collect::<String>() + "…";
            }
            [
                r.destination.clone(),
                r.ingestion_type.clone(),
                r.rows_read.to_string(),
                r.inserted.to_string(),
                r.updated.to_string(),
                r.deleted.to_string(),
                r.commits.to_string(),
                format!("{:.2}s", r.duration.as_secs_f64()),
                offset,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    for r in reports {
        let nulled: u64 = r.counters.iter().filter(|(k, _)| k.starts_with("nulled.")).map(|(_, v)| v).sum();
        if nulled > 0 {
            println!(
                "{}: {nulled} source error value(s) became null ({})",
                r.destination,
                r.counters
                    .iter()
                    .filter(|(k, _)| k.starts_with("nulled."))
                    .map(|(k, v)| format!("{}={v}", &k[7..]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if r.unknown_fields > 0 {
            println!(
                "{}: {} value(s) of fields not in the schema were dropped (see the log)",
                r.destination, r.unknown_fields
            );
        }
        if let Some(e) = &r.error {
            println!("{} failed: {e}", r.destination);
        }
    }
}
