//! The sink against real Delta tables in temporary directories, read back with delta-rs's
//! own DataFusion reader.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::compute::cast;
use deltalake::datafusion::prelude::SessionContext;
use weir_delta::{Checkpoint, DeltaSink, SinkError, WriteMode};

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()))
}

fn id_name_seq() -> SchemaRef {
    schema(&[("id", DataType::Int64), ("name", DataType::Utf8), ("seq", DataType::Int64)])
}

fn rows(schema: &SchemaRef, data: &[(i64, &str, i64)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(data.iter().map(|r| r.1))),
        Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}

fn keys_seq(data: &[(i64, i64)]) -> RecordBatch {
    let schema = schema(&[("id", DataType::Int64), ("seq", DataType::Int64)]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.1))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn cp(version: i64) -> Checkpoint {
    Checkpoint {
        app_id: "test/app".into(),
        version,
        offset: format!(r#"{{"cursor":{version}}}"#),
        connector: None,
    }
}

/// The table as sorted lines of `col=value` pairs, read with delta-rs's DataFusion provider.
async fn read(uri: &str, sql_tail: &str) -> Vec<String> {
    let url = deltalake::ensure_table_uri(uri).unwrap();
    let table = deltalake::open_table(url).await.unwrap();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
    let batches = ctx.sql(&format!("SELECT * FROM t {sql_tail}")).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for batch in batches {
        let strings: Vec<_> = batch.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for row in 0..batch.num_rows() {
            let line: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(&strings)
                .map(|(f, c)| {
                    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                    let v = if c.is_null(row) { "null".to_string() } else { c.value(row).to_string() };
                    format!("{}={v}", f.name())
                })
                .collect();
            out.push(line.join(" "));
        }
    }
    out
}

async fn table_version(uri: &str) -> i64 {
    let table = deltalake::open_table(deltalake::ensure_table_uri(uri).unwrap()).await.unwrap();
    table.version().unwrap() as i64
}

fn tmp() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("cat/schema/table").to_str().unwrap().to_string();
    (dir, uri)
}

#[tokio::test]
async fn append_adds_rows_and_creates_directories() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    let a =
        sink.commit(vec![rows(&s, &[(1, "a", 1), (2, "b", 1)])], &WriteMode::Append, &cp(1)).await.unwrap();
    let b = sink.commit(vec![rows(&s, &[(1, "a", 2)])], &WriteMode::Append, &cp(2)).await.unwrap();
    assert_eq!((a.inserted, b.inserted), (2, 1));
    assert_eq!(b.version, a.version + 1);
    assert_eq!(
        read(&uri, "ORDER BY id, seq").await,
        ["id=1 name=a seq=1", "id=1 name=a seq=2", "id=2 name=b seq=1"]
    );
}

#[tokio::test]
async fn replace_swaps_contents_in_one_commit() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Replace).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 1), (2, "b", 1), (3, "c", 1)])], &WriteMode::Replace, &cp(1))
        .await
        .unwrap();
    let before = table_version(&uri).await;
    let stats = sink.commit(vec![rows(&s, &[(4, "d", 2)])], &WriteMode::Replace, &cp(2)).await.unwrap();
    assert_eq!(table_version(&uri).await, before + 1, "replace must be a single commit");
    assert_eq!((stats.inserted, stats.deleted), (1, 3));
    assert_eq!(read(&uri, "").await, ["id=4 name=d seq=2"]);

    // An empty snapshot empties the table.
    sink.commit(vec![], &WriteMode::Replace, &cp(3)).await.unwrap();
    assert!(read(&uri, "").await.is_empty());
}

#[tokio::test]
async fn upsert_never_lets_an_older_row_win() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10), (2, "b", 10)])], &mode, &cp(1)).await.unwrap();
    let batch =
        rows(&s, &[(1, "a-old", 5), (2, "b-new", 20), (2, "b-newest", 30), (2, "b-mid", 25), (3, "c", 1)]);
    let stats = sink.commit(vec![batch], &mode, &cp(2)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated, stats.deleted), (1, 1, 0));
    assert_eq!(
        read(&uri, "ORDER BY id").await,
        ["id=1 name=a seq=10", "id=2 name=b-newest seq=30", "id=3 name=c seq=1"]
    );

    // Only stale rows: no row changes, but the offset still advances.
    let stats = sink.commit(vec![rows(&s, &[(1, "stale", 1)])], &mode, &cp(3)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (0, 0));
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), Some(cp(3)));
    assert_eq!(read(&uri, "WHERE id = 1").await, ["id=1 name=a seq=10"]);
}

#[tokio::test]
async fn upsert_without_sequence_keeps_the_last_row_of_a_batch() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: None };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "first", 9), (1, "second", 1)])], &mode, &cp(1)).await.unwrap();
    assert_eq!(read(&uri, "").await, ["id=1 name=second seq=1"]);
}

#[tokio::test]
async fn tombstones_delete_rows_not_newer_than_themselves() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let upsert = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    let delete = WriteMode::Delete { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    let mut sink = DeltaSink::open(&uri, s.clone(), &upsert).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10), (2, "b", 10), (3, "c", 30)])], &upsert, &cp(1)).await.unwrap();
    let stats = sink.commit(vec![keys_seq(&[(1, 20), (3, 20), (4, 5)])], &delete, &cp(2)).await.unwrap();
    assert_eq!(stats.deleted, 1);
    assert_eq!(read(&uri, "ORDER BY id").await, ["id=2 name=b seq=10", "id=3 name=c seq=30"]);
}

#[tokio::test]
async fn scd2_snapshot_closes_vanished_and_changed_rows() {
    let (_dir, uri) = tmp();
    let s = schema(&[("id", DataType::Int64), ("name", DataType::Utf8)]);
    let mode = WriteMode::Scd2Snapshot { keys: vec!["id".into()] };
    let batch = |data: &[(i64, &str)]| {
        RecordBatch::try_new(
            s.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(data.iter().map(|r| r.0))) as ArrayRef,
                Arc::new(StringArray::from_iter_values(data.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    let first = sink.commit(vec![batch(&[(1, "a"), (2, "b")])], &mode, &cp(1)).await.unwrap();
    assert_eq!(first.inserted, 2);
    let second = sink.commit(vec![batch(&[(1, "a"), (2, "b2"), (3, "c")])], &mode, &cp(2)).await.unwrap();
    assert_eq!((second.inserted, second.updated), (2, 1));
    let open = "SELECT id, name FROM t WHERE \"__END_AT\" IS NULL ORDER BY id";
    let closed = "SELECT id, name FROM t WHERE \"__END_AT\" IS NOT NULL ORDER BY id, name";
    assert_eq!(query(&uri, open).await, ["1|a", "2|b2", "3|c"]);
    assert_eq!(query(&uri, closed).await, ["2|b"]);

    sink.commit(vec![batch(&[(1, "a")])], &mode, &cp(3)).await.unwrap();
    assert_eq!(query(&uri, open).await, ["1|a"]);
    assert_eq!(query(&uri, closed).await, ["2|b", "2|b2", "3|c"]);
    // Every closed version ended no earlier than it started.
    let bad = "SELECT id FROM t WHERE \"__END_AT\" < \"__START_AT\" OR \"__START_AT\" IS NULL";
    assert!(query(&uri, bad).await.is_empty());
}

/// Runs SQL over table `t` and renders rows as `a|b|…`.
async fn query(uri: &str, sql: &str) -> Vec<String> {
    let table = deltalake::open_table(deltalake::ensure_table_uri(uri).unwrap()).await.unwrap();
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap()).unwrap();
    let mut out = Vec::new();
    for batch in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        let strings: Vec<_> = batch.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = strings
                .iter()
                .map(|c| {
                    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                    if c.is_null(row) { "null".into() } else { c.value(row).to_string() }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

#[tokio::test]
async fn scd2_upsert_builds_history_from_the_sequence() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Scd2Upsert { keys: vec!["id".into()], sequence_by: "seq".into() };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10)])], &mode, &cp(1)).await.unwrap();
    // (1, "a", 10) is already in the history: a replay, skipped. (1, "older", 5) predates it.
    let batch = rows(&s, &[(1, "c", 30), (1, "b", 20), (2, "x", 5), (1, "older", 5), (1, "a", 10)]);
    let stats = sink.commit(vec![batch], &mode, &cp(2)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (4, 1));
    let history = "SELECT id, name, \"__START_AT\", \"__END_AT\" FROM t ORDER BY id, \"__START_AT\"";
    assert_eq!(
        query(&uri, history).await,
        ["1|older|5|10", "1|a|10|20", "1|b|20|30", "1|c|30|null", "2|x|5|null"]
    );

    let delete = WriteMode::Scd2Delete { keys: vec!["id".into()], sequence_by: "seq".into() };
    let stats = sink.commit(vec![keys_seq(&[(1, 40), (2, 1)])], &delete, &cp(3)).await.unwrap();
    assert_eq!(stats.updated, 1, "the tombstone older than id 2's version must not close it");
    assert_eq!(
        query(&uri, history).await,
        ["1|older|5|10", "1|a|10|20", "1|b|20|30", "1|c|30|40", "2|x|5|null"]
    );
}

/// A change that arrives after a newer one is spliced into the history where its sequence puts
/// it, in the current version's interval, a closed one's, or a deleted key's last one.
#[tokio::test]
async fn scd2_upsert_splices_late_changes_into_the_history() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Scd2Upsert { keys: vec!["id".into()], sequence_by: "seq".into() };
    let delete = WriteMode::Scd2Delete { keys: vec!["id".into()], sequence_by: "seq".into() };
    let history = "SELECT id, name, \"__START_AT\", \"__END_AT\" FROM t ORDER BY id, \"__START_AT\"";
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10), (1, "c", 30), (2, "p", 10)])], &mode, &cp(1)).await.unwrap();
    sink.commit(vec![keys_seq(&[(2, 50)])], &delete, &cp(2)).await.unwrap();
    assert_eq!(query(&uri, history).await, ["1|a|10|30", "1|c|30|null", "2|p|10|50"]);

    // Late: two changes inside id 1's closed version, one after its current start, and one
    // inside id 2's version that a delete closed (it must end at the delete, not reopen).
    let late = rows(&s, &[(1, "b2", 25), (1, "b1", 20), (1, "d", 40), (2, "q", 20)]);
    let stats = sink.commit(vec![late], &mode, &cp(3)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (4, 3));
    assert_eq!(
        query(&uri, history).await,
        ["1|a|10|20", "1|b1|20|25", "1|b2|25|30", "1|c|30|40", "1|d|40|null", "2|p|10|20", "2|q|20|50"]
    );

    // Replaying the same changes changes nothing; exactly one version per key stays open.
    let again = rows(&s, &[(1, "b2", 25), (1, "b1", 20), (1, "d", 40), (2, "q", 20)]);
    let stats = sink.commit(vec![again], &mode, &cp(4)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (0, 0));
    let open = "SELECT id FROM t WHERE \"__END_AT\" IS NULL ORDER BY id";
    assert_eq!(query(&uri, open).await, ["1"]);
    let bad = "SELECT id FROM t WHERE \"__END_AT\" <= \"__START_AT\"";
    assert!(query(&uri, bad).await.is_empty());
}

#[tokio::test]
async fn cluster_by_z_orders_the_files_and_keeps_rows_and_offsets() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    for v in 1..=3 {
        let batch = rows(&s, &[(v, "x", 100 - v), (v + 10, "y", v)]);
        sink.commit(vec![batch], &WriteMode::Append, &cp(v)).await.unwrap();
    }
    let before = read(&uri, "ORDER BY id").await;
    let files = sink.cluster(&["seq".to_string()]).await.unwrap();
    assert!(files >= 1, "the z-order wrote {files} files");
    assert_eq!(read(&uri, "ORDER BY id").await, before);
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), Some(cp(3)));
    let table = deltalake::open_table(deltalake::ensure_table_uri(&uri).unwrap()).await.unwrap();
    let last = futures_util::TryStreamExt::try_next(&mut table.history(Some(1))).await.unwrap().unwrap();
    assert_eq!(last.operation.as_deref(), Some("OPTIMIZE"));
    assert_eq!(
        last.info.get("weir.cluster_by"),
        Some(&serde_json::json!("seq")),
        "the commit names its columns"
    );
    let err = sink.cluster(&["nope".to_string()]).await.err().unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn schema_evolves_by_adding_keeping_and_widening_columns() {
    let (_dir, uri) = tmp();
    let v1 = schema(&[("id", DataType::Int64), ("score", DataType::Int32)]);
    let mut sink = DeltaSink::open(&uri, v1.clone(), &WriteMode::Append).await.unwrap();
    let batch = RecordBatch::try_new(
        v1.clone(),
        vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef, Arc::new(Int32Array::from(vec![7]))],
    )
    .unwrap();
    sink.commit(vec![batch], &WriteMode::Append, &cp(1)).await.unwrap();

    // Widen score and add note.
    let v2 = schema(&[("id", DataType::Int64), ("score", DataType::Int64), ("note", DataType::Utf8)]);
    let mut sink = DeltaSink::open(&uri, v2.clone(), &WriteMode::Append).await.unwrap();
    let batch = RecordBatch::try_new(
        v2.clone(),
        vec![
            Arc::new(Int64Array::from(vec![2])) as ArrayRef,
            Arc::new(Int64Array::from(vec![5_000_000_000])),
            Arc::new(StringArray::from(vec!["hi"])),
        ],
    )
    .unwrap();
    sink.commit(vec![batch], &WriteMode::Append, &cp(2)).await.unwrap();
    assert_eq!(
        query(&uri, "SELECT id, score, note FROM t ORDER BY id").await,
        ["1|7|null", "2|5000000000|hi"]
    );
    // The checkpoint survives the rewrite that widened the column.
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), Some(cp(2)));

    // Drop score from the schema: the column stays, null from now on.
    let v3 = schema(&[("id", DataType::Int64), ("note", DataType::Utf8)]);
    let mut sink = DeltaSink::open(&uri, v3.clone(), &WriteMode::Append).await.unwrap();
    let batch = RecordBatch::try_new(
        v3.clone(),
        vec![Arc::new(Int64Array::from(vec![3])) as ArrayRef, Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    sink.commit(vec![batch], &WriteMode::Append, &cp(3)).await.unwrap();
    assert_eq!(
        query(&uri, "SELECT id, score, note FROM t ORDER BY id").await,
        ["1|7|null", "2|5000000000|hi", "3|null|x"]
    );

    // A narrower incoming type is cast up, not an error.
    let narrow = schema(&[("id", DataType::Int32)]);
    DeltaSink::open(&uri, narrow, &WriteMode::Append).await.unwrap();

    // A lossy change is refused, naming the column.
    let bad = schema(&[("id", DataType::Utf8)]);
    let err = DeltaSink::open(&uri, bad, &WriteMode::Append).await.err().unwrap();
    assert!(matches!(&err, SinkError::IncompatibleType { column, .. } if column == "id"), "{err}");
    let date = schema(&[("id", DataType::Int64), ("when", DataType::Date32)]);
    DeltaSink::open(&uri, date, &WriteMode::Append).await.unwrap();
    let ts =
        schema(&[("when", DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())))]);
    let err = DeltaSink::open(&uri, ts, &WriteMode::Append).await.err().unwrap();
    assert!(matches!(&err, SinkError::IncompatibleType { column, .. } if column == "when"), "{err}");
}

#[tokio::test]
async fn checkpoints_round_trip_and_replays_write_nothing() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), None);
    for v in 1..=3 {
        sink.commit(vec![rows(&s, &[(v, "r", v)])], &WriteMode::Append, &cp(v)).await.unwrap();
    }
    drop(sink);

    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), Some(cp(3)));
    assert_eq!(sink.last_checkpoint("other/app").await.unwrap(), None);
    let version = table_version(&uri).await;
    let stats = sink.commit(vec![rows(&s, &[(3, "r", 3)])], &WriteMode::Append, &cp(3)).await.unwrap();
    assert_eq!((stats.inserted, stats.version), (0, version));
    assert_eq!(table_version(&uri).await, version);
    assert_eq!(read(&uri, "").await.len(), 3);
    // An older version is a replay too.
    sink.commit(vec![rows(&s, &[(9, "r", 9)])], &WriteMode::Append, &cp(2)).await.unwrap();
    assert_eq!(read(&uri, "").await.len(), 3);
}

#[tokio::test]
async fn unusable_locations_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("table");
    let err =
        DeltaSink::open(under_file.to_str().unwrap(), id_name_seq(), &WriteMode::Append).await.err().unwrap();
    assert!(matches!(err, SinkError::InvalidUri { .. }), "{err}");
    assert!(err.to_string().contains("a-file"), "{err}");

    let err =
        DeltaSink::open("nosuchscheme://bucket/t", id_name_seq(), &WriteMode::Append).await.err().unwrap();
    assert!(matches!(err, SinkError::Location { .. }), "{err}");
    assert!(err.to_string().contains("s3://"), "the error names the schemes weir knows: {err}");
}

#[tokio::test]
async fn a_version_another_writer_committed_is_a_conflict_unless_it_is_this_very_commit() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut first = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    let mut second = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    // Both found no checkpoint, so both mean to commit version 1, from different reads.
    first.commit(vec![rows(&s, &[(1, "a", 1)])], &WriteMode::Append, &cp(1)).await.unwrap();
    let elsewhere = Checkpoint { offset: r#"{"cursor":"elsewhere"}"#.into(), ..cp(1) };
    let err =
        second.commit(vec![rows(&s, &[(2, "b", 2)])], &WriteMode::Append, &elsewhere).await.unwrap_err();
    assert!(matches!(err, SinkError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("another writer"), "{err}");
    // The very commit the table holds, sent again, is a replay: nothing written, no error.
    second.commit(vec![rows(&s, &[(1, "a", 1)])], &WriteMode::Append, &cp(1)).await.unwrap();
    assert_eq!(read(&uri, "").await, ["id=1 name=a seq=1"]);
    assert_eq!(second.last_checkpoint("test/app").await.unwrap(), Some(cp(1)));
}

#[tokio::test]
async fn writers_racing_for_one_version_leave_exactly_one_winner() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    // Opened at once: one creates the table, the other finds it created and uses it.
    let (a, b) = tokio::join!(
        DeltaSink::open(&uri, s.clone(), &WriteMode::Append),
        DeltaSink::open(&uri, s.clone(), &WriteMode::Append)
    );
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    let mine = Checkpoint { offset: r#"{"cursor":"a"}"#.into(), ..cp(1) };
    let theirs = Checkpoint { offset: r#"{"cursor":"b"}"#.into(), ..cp(1) };
    let (ra, rb) = tokio::join!(
        a.commit(vec![rows(&s, &[(1, "a", 1)])], &WriteMode::Append, &mine),
        b.commit(vec![rows(&s, &[(2, "b", 2)])], &WriteMode::Append, &theirs)
    );
    let (winner, loser) = match (&ra, &rb) {
        (Ok(_), Err(e)) => ("id=1 name=a seq=1", e),
        (Err(e), Ok(_)) => ("id=2 name=b seq=2", e),
        _ => panic!("exactly one of two commits of version 1 must win: {ra:?} {rb:?}"),
    };
    assert!(matches!(loser, SinkError::Conflict { .. }), "{loser}");
    assert_eq!(read(&uri, "").await, [winner], "only the winner's rows are visible");
    assert_eq!(table_version(&uri).await, 1, "one create and one commit, nothing else");
}

#[tokio::test]
async fn keyed_modes_need_their_columns() {
    let (_dir, uri) = tmp();
    let mode = WriteMode::Upsert { keys: vec!["missing".into()], sequence_by: None };
    let err = DeltaSink::open(&uri, id_name_seq(), &mode).await.err().unwrap();
    assert!(matches!(&err, SinkError::MissingColumn { column, .. } if column == "missing"), "{err}");
    let mode = WriteMode::Upsert { keys: vec![], sequence_by: None };
    assert!(matches!(DeltaSink::open(&uri, id_name_seq(), &mode).await, Err(SinkError::InvalidMode { .. })));
}

#[tokio::test]
async fn rows_txn_and_offset_share_one_log_entry_and_failures_commit_nothing() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mut sink = DeltaSink::open(&uri, s.clone(), &WriteMode::Append).await.unwrap();
    let stats = sink.commit(vec![rows(&s, &[(1, "a", 1)])], &WriteMode::Append, &cp(1)).await.unwrap();
    let entry = std::fs::read_to_string(format!("{uri}/_delta_log/{:020}.json", stats.version)).unwrap();
    assert!(entry.contains(r#""txn":{"appId":"test/app","version":1"#), "{entry}");
    assert!(entry.contains(r#""weir.offset":"{\"cursor\":1}""#), "{entry}");
    assert!(entry.contains(r#""add":"#), "{entry}");

    // A commit that fails before reaching the log leaves data and checkpoint as they were.
    let stray = schema(&[("id", DataType::Int64), ("surprise", DataType::Utf8)]);
    let batch = RecordBatch::try_new(
        stray,
        vec![Arc::new(Int64Array::from(vec![2])) as ArrayRef, Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let err = sink.commit(vec![batch], &WriteMode::Append, &cp(2)).await.unwrap_err();
    assert!(matches!(&err, SinkError::UnknownColumn { column, .. } if column == "surprise"), "{err}");
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap(), Some(cp(1)));
    assert_eq!(table_version(&uri).await, stats.version);
    assert_eq!(read(&uri, "").await, ["id=1 name=a seq=1"]);
}

/// A column's metadata survives a widening rewrite, and incoming values replace stored ones.
#[tokio::test]
async fn column_metadata_survives_widening_and_follows_the_source() {
    let (_dir, uri) = tmp();
    let tagged = |ty: DataType, name: &str| {
        Field::new("owner", ty, true).with_metadata(
            [
                ("column_id".to_string(), "fldOwner".to_string()),
                ("airtable_field_name".to_string(), name.into()),
            ]
            .into(),
        )
    };
    let meta = |got: &SchemaRef, key: &str| {
        got.field_with_name("owner").unwrap().metadata().get(key).cloned().unwrap_or_default()
    };
    let v1 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        tagged(DataType::Int32, "Owner"),
    ]));
    let mut sink = DeltaSink::open(&uri, v1.clone(), &WriteMode::Append).await.unwrap();
    let batch = RecordBatch::try_new(
        v1.clone(),
        vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef, Arc::new(Int32Array::from(vec![7]))],
    )
    .unwrap();
    sink.commit(vec![batch], &WriteMode::Append, &cp(1)).await.unwrap();

    // Widened (a rewrite) while the source renamed the field.
    let v2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        tagged(DataType::Int64, "Owner #"),
    ]));
    DeltaSink::open(&uri, v2, &WriteMode::Append).await.unwrap();
    let got = weir_delta::table_schema(&uri).await.unwrap().unwrap();
    assert_eq!(got.field_with_name("owner").unwrap().data_type(), &DataType::Int64);
    assert_eq!(meta(&got, "column_id"), "fldOwner");
    assert_eq!(meta(&got, "airtable_field_name"), "Owner #");

    // Renamed again without a type change: a metadata-only commit.
    let v3 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        tagged(DataType::Int64, "Owner"),
    ]));
    let version = table_version(&uri).await;
    DeltaSink::open(&uri, v3.clone(), &WriteMode::Append).await.unwrap();
    let got = weir_delta::table_schema(&uri).await.unwrap().unwrap();
    assert_eq!(
        (meta(&got, "column_id").as_str(), meta(&got, "airtable_field_name").as_str()),
        ("fldOwner", "Owner")
    );
    assert_eq!(table_version(&uri).await, version + 1);
    // Opening with the same metadata commits nothing.
    DeltaSink::open(&uri, v3, &WriteMode::Append).await.unwrap();
    assert_eq!(table_version(&uri).await, version + 1);
    assert_eq!(query(&uri, "SELECT id, owner FROM t").await, ["1|7"]);
}

#[tokio::test]
async fn table_schema_is_none_before_the_table_and_keeps_field_metadata_after() {
    let (_dir, uri) = tmp();
    assert!(weir_delta::table_schema(&uri).await.unwrap().is_none());
    assert!(!std::path::Path::new(&uri).exists(), "looking creates no folders");
    let tagged = Field::new("email", DataType::Utf8, true)
        .with_metadata([("column_id".to_string(), "fldEmail".to_string())].into());
    let with_meta = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), tagged]));
    DeltaSink::open(&uri, with_meta, &WriteMode::Append).await.unwrap();
    let got = weir_delta::table_schema(&uri).await.unwrap().expect("the table exists");
    let names: Vec<&String> = got.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["id", "email"]);
    let email = got.field_with_name("email").unwrap();
    assert_eq!(email.metadata().get("column_id").map(String::as_str), Some("fldEmail"));
}

/// After deletes lost continuity, a resync holds every key the source still has: SCD1 deletes
/// every other row, SCD2 closes every other open version and leaves closed history alone, and
/// both commit the offset with it.
#[tokio::test]
async fn a_resync_removes_or_closes_every_key_the_source_no_longer_has() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10), (2, "b", 10), (3, "c", 10)])], &mode, &cp(1)).await.unwrap();
    let resync =
        WriteMode::Delete { keys: vec!["id".into()], sequence_by: Some("seq".into()) }.resync().unwrap();
    // The whole read: ids 1 and 3 (with whatever columns the read has; only keys matter).
    let stats = sink.commit(vec![rows(&s, &[(3, "c", 11), (1, "a", 10)])], &resync, &cp(2)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated, stats.deleted), (0, 0, 1));
    assert_eq!(query(&uri, "SELECT id, name FROM t ORDER BY id").await, ["1|a", "3|c"]);
    assert_eq!(sink.last_checkpoint("test/app").await.unwrap().map(|c| c.offset), Some(cp(2).offset));
    // An empty source removes everything.
    let stats = sink.commit(vec![], &resync, &cp(3)).await.unwrap();
    assert_eq!(stats.deleted, 2);

    let (_dir, uri) = tmp();
    let mode = WriteMode::Scd2Upsert { keys: vec!["id".into()], sequence_by: "seq".into() };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    let history = rows(&s, &[(1, "a", 10), (1, "a2", 20), (2, "b", 10), (3, "c", 10)]);
    sink.commit(vec![history], &mode, &cp(1)).await.unwrap();
    let resync =
        WriteMode::Scd2Delete { keys: vec!["id".into()], sequence_by: "seq".into() }.resync().unwrap();
    let stats = sink.commit(vec![keys_seq(&[(2, 0)])], &resync, &cp(2)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated, stats.deleted), (0, 2, 0), "ids 1 and 3 closed");
    let open = "SELECT id, name FROM t WHERE \"__END_AT\" IS NULL ORDER BY id";
    assert_eq!(query(&uri, open).await, ["2|b"]);
    // Closed at the resync's time: the numeric sequence gets microseconds since the epoch.
    let closed =
        "SELECT id, name, \"__END_AT\" > 1700000000000000 FROM t WHERE id <> 2 ORDER BY id, \"__START_AT\"";
    assert_eq!(query(&uri, closed).await, ["1|a|false", "1|a2|true", "3|c|true"]);
}

/// The operation of each commit after the create, oldest first.
async fn operations(uri: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    let table = deltalake::open_table(deltalake::ensure_table_uri(uri).unwrap()).await.unwrap();
    let mut infos: Vec<_> = table.history(None).try_collect().await.unwrap();
    infos.sort_by_key(|i| i.timestamp);
    infos.iter().skip(1).map(|i| i.operation.clone().unwrap_or_default()).collect()
}

/// A first load appends while every key is new or repeats an unchanged row of the commit before,
/// and MERGEs a commit that repeats one with other content (a record changed during the read) or
/// repeats an older commit's row, keeping upsert's rules; a sink opened on a table that holds rows
/// MERGEs from its first commit.
#[tokio::test]
async fn a_first_load_appends_new_keys_and_merges_a_changed_repeat() {
    let (_dir, uri) = tmp();
    let s = id_name_seq();
    let mode = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("seq".into()) };
    let mut sink = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "a", 10), (2, "b", 10)])], &mode, &cp(1)).await.unwrap();
    let stats = sink.commit(vec![rows(&s, &[(3, "c", 10)])], &mode, &cp(2)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (1, 0));
    // Ids 1 and 2 are known: a MERGE, where an older version never overwrites a newer one.
    let batch = rows(&s, &[(1, "a2", 20), (4, "d", 5), (2, "older", 5)]);
    let stats = sink.commit(vec![batch], &mode, &cp(3)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (1, 1));
    assert_eq!(
        query(&uri, "SELECT id, name, seq FROM t ORDER BY id").await,
        ["1|a2|20", "2|b|10", "3|c|10", "4|d|5"]
    );
    assert_eq!(operations(&uri).await, ["WRITE", "WRITE", "MERGE"]);
    // An unchanged repeat of a row the commit before wrote (a re-read at a checkpoint's cursor)
    // is dropped and the rest appended; id 1 was MERGEd, so even unchanged it MERGEs again.
    let stats =
        sink.commit(vec![rows(&s, &[(4, "d", 5), (5, "e", 1), (5, "e", 1)])], &mode, &cp(4)).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (1, 0));
    sink.commit(vec![rows(&s, &[(1, "a2", 20), (6, "f", 1)])], &mode, &cp(5)).await.unwrap();
    // Contents are kept for the last commit's rows only: an unchanged row of an older commit
    // MERGEs (and changes nothing).
    sink.commit(vec![rows(&s, &[(3, "c", 10), (7, "g", 1)])], &mode, &cp(6)).await.unwrap();
    assert_eq!(
        query(&uri, "SELECT id, name, seq FROM t ORDER BY id").await,
        ["1|a2|20", "2|b|10", "3|c|10", "4|d|5", "5|e|1", "6|f|1", "7|g|1"]
    );
    assert_eq!(operations(&uri).await, ["WRITE", "WRITE", "MERGE", "WRITE", "MERGE", "MERGE"]);

    // Within one commit a key twice is a MERGE too (the newest wins).
    let (_dir2, uri2) = tmp();
    let mut sink = DeltaSink::open(&uri2, s.clone(), &mode).await.unwrap();
    sink.commit(vec![rows(&s, &[(1, "x", 1), (1, "y", 2)])], &mode, &cp(1)).await.unwrap();
    assert_eq!(query(&uri2, "SELECT id, name FROM t").await, ["1|y"]);
    assert_eq!(operations(&uri2).await, ["MERGE"]);

    // A sink opened on a table that holds rows merges, even for new keys.
    let mut later = DeltaSink::open(&uri, s.clone(), &mode).await.unwrap();
    later.commit(vec![rows(&s, &[(9, "z", 1)])], &mode, &cp(7)).await.unwrap();
    assert_eq!(operations(&uri).await.last().map(String::as_str), Some("MERGE"));
}
