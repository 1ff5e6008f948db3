//! A run's reports as an aligned table on stdout.

use weir_ingest::TableReport;
use weir_runtime::terminal::escape;

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
                escape(&r.destination).into_owned(),
                r.ingestion_type.clone(),
                r.rows_read.to_string(),
                r.inserted.to_string(),
                r.updated.to_string(),
                r.deleted.to_string(),
                r.commits.to_string(),
                format!("{:.2}s", r.duration.as_secs_f64()),
                escape(&offset).into_owned(),
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
        let nulled: u64 = r.nulled().map(|(_, n)| n).fold(0, u64::saturating_add);
        if nulled > 0 {
            println!(
                "{}: {nulled} source error value(s) became null ({})",
                r.destination,
                escape(&r.nulled().map(|(c, n)| format!("{c}={n}")).collect::<Vec<_>>().join(", "))
            );
        }
        if r.clustered_files > 0 {
            println!("{}: z-ordered by cluster_by into {} file(s)", r.destination, r.clustered_files);
        }
        if r.unknown_fields > 0 {
            println!(
                "{}: {} value(s) of fields not in the schema were dropped (see the log)",
                r.destination, r.unknown_fields
            );
        }
        if let Some(e) = &r.error {
            println!("{} failed: {}", r.destination, escape(e));
        }
    }
}

/// What `weir release` did, one line per table with deletes; fails when any table failed.
pub fn released(released: &[weir_ingest::Released], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(released)?);
    } else if released.is_empty() {
        println!("no table of the spec reads deletes: nothing to release");
    }
    for r in released.iter().filter(|_| !json) {
        let what = escape(&r.destination);
        match (&r.error, &r.offset) {
            (Some(e), _) => println!("{what}: FAILED: {}", escape(e)),
            (None, Some(offset)) => println!("{what}: released what deletes offset {} names", escape(offset)),
            (None, None) => println!("{what}: its deletes never committed an offset: nothing to release"),
        }
    }
    let failed: Vec<&str> =
        released.iter().filter(|r| r.error.is_some()).map(|r| r.destination.as_str()).collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} of {} table(s) failed: {}",
        failed.len(),
        released.len(),
        failed.join(", ")
    );
    Ok(())
}
