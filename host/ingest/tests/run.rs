//! A whole run driven through the library, as any front end drives it: a spec file, a
//! connections file and a warehouse in, reports and progress events out, the table read back
//! by the independent reader.

use std::path::Path;
use std::sync::Mutex;

use weir_ingest::progress::{Activity, Progress};
use weir_ingest::{IngestError, RunOptions, TableReport};

/// Progress events, as a front end would see them.
#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl Progress for Recorded {
    fn started(&self, report: &TableReport) {
        self.0.lock().unwrap().push(format!("started {}", report.destination));
    }

    fn update(&self, report: &TableReport, activity: Activity) {
        if let Activity::Committing { rows } = activity {
            self.0.lock().unwrap().push(format!("commit {} {rows}", report.destination));
        }
    }

    fn finished(&self, report: &TableReport) {
        self.0.lock().unwrap().push(format!("finished {} {}", report.destination, report.rows_read));
    }
}

fn setup(dir: &Path, spec: &str) {
    std::fs::write(dir.join("shards.wasm"), weir_artifacts::SHARDS).unwrap();
    std::fs::write(
        dir.join("connections.toml"),
        "[connections.s]\nconnector = \"shards.wasm\"\nallow_unsigned = true\n",
    )
    .unwrap();
    std::fs::write(dir.join("pipeline.yaml"), spec).unwrap();
}

fn options(dir: &Path) -> RunOptions {
    let warehouse = dir.join("warehouse");
    RunOptions {
        warehouse: weir_ingest::warehouse_uri(&warehouse.to_string_lossy()).unwrap(),
        parallel: 2,
        commit_rows: 200,
        only: None,
        allow_unsigned: false,
        tape: None,
    }
}

#[test]
fn a_run_driven_through_the_library_writes_what_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    setup(
        dir.path(),
        "connection_name: s\nobjects:\n  - table:\n      source_table: events\n      destination_table: all_shards\n      \
         table_configuration:\n        partitions: 2\n        rows: 250\n",
    );
    let progress = Recorded::default();
    let reports = weir_ingest::run_spec(
        &dir.path().join("pipeline.yaml"),
        &dir.path().join("connections.toml"),
        None,
        &options(dir.path()),
        &progress,
    )
    .unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!((r.rows_read, r.inserted, r.partitions, r.commits), (500, 500, 2, 4));

    let events = progress.0.into_inner().unwrap();
    assert_eq!(events.first().map(String::as_str), Some("started all_shards"));
    assert_eq!(events.last().map(String::as_str), Some("finished all_shards 500"));
    assert_eq!(events.iter().filter(|e| e.starts_with("commit all_shards")).count(), 4, "{events:?}");

    let table = weir_tests::delta_reader::read_delta(&dir.path().join("warehouse/all_shards"));
    assert_eq!(table["rows"], 500);
}

#[test]
fn a_spec_the_connector_cannot_serve_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    setup(
        dir.path(),
        "connection_name: s\nobjects:\n  - table:\n      source_table: events\n  - table:\n      source_table: nope\n",
    );
    let err = weir_ingest::run_spec(
        &dir.path().join("pipeline.yaml"),
        &dir.path().join("connections.toml"),
        None,
        &options(dir.path()),
        &Recorded::default(),
    )
    .unwrap_err();
    assert!(matches!(err, IngestError::Call { .. }), "{err}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert!(!dir.path().join("warehouse/events").exists(), "a table was written before planning ended");

    let namespaced = "connection_name: s\nobjects:\n  - table:\n      source_table: events\n      \
                      table_configuration:\n        namespace: [a]\n";
    std::fs::write(dir.path().join("pipeline.yaml"), namespaced).unwrap();
    let err = weir_ingest::run_spec(
        &dir.path().join("pipeline.yaml"),
        &dir.path().join("connections.toml"),
        None,
        &options(dir.path()),
        &Recorded::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no namespaces"), "{err}");
}
