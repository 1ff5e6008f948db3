//! What keeps one writer per table version on S3, shown against moto on loopback. delta-rs
//! looks at the log, then creates the next version's log file with a conditional write
//! (`If-None-Match: *`). A proxy holds one writer's log write between the two steps while
//! another writer commits that version, so the race happens every time: the store refuses the
//! late write and the late writer moves on (or, for the same application, fails). With the
//! condition removed by the proxy, the late writer silently replaces the other's commit: that is
//! the store `DeltaSink::open` refuses (see the cli's object-store tests).
//!
//! delta-rs is driven directly here, with the endpoint and credentials as storage options.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use weir_tests::stores::{S3Proxy, S3Server, s3_env};

fn s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(S3Server::start)
}

fn batch(id: i64, writer: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("writer", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> =
        vec![Arc::new(Int64Array::from(vec![id])), Arc::new(StringArray::from(vec![writer]))];
    RecordBatch::try_new(schema, columns).expect("batch")
}

/// A handle on the table at `uri`, loaded at its current version.
async fn open(uri: &str, endpoint: &str) -> DeltaTable {
    let options: HashMap<String, String> = s3_env(endpoint).into_iter().collect();
    let url = deltalake::ensure_table_uri(uri).expect("an s3 URL");
    DeltaTable::try_from_url_with_storage_options(url, options).await.expect("open the table")
}

/// Appends one row in a commit that carries `app`'s txn `version`.
async fn append(
    table: DeltaTable,
    id: i64,
    app: &str,
    version: i64,
) -> Result<DeltaTable, deltalake::DeltaTableError> {
    let props = CommitProperties::default().with_application_transaction(Transaction::new(app, version));
    table.write(vec![batch(id, app)]).with_commit_properties(props).await
}

/// The log file of `version`, as text.
fn log_entry(bucket: &str, table: &str, version: u64) -> Option<String> {
    let key = format!("{table}/_delta_log/{version:020}.json");
    s3().get(bucket, &key).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn txn_of(entry: &str) -> (String, i64) {
    let line = entry.lines().find(|l| l.contains(r#""txn""#)).unwrap_or_else(|| panic!("no txn in {entry}"));
    let action: serde_json::Value = serde_json::from_str(line).expect("a JSON action");
    let txn = &action["txn"];
    (txn["appId"].as_str().expect("appId").to_string(), txn["version"].as_i64().expect("version"))
}

/// Starts `append(b, …)` through `proxy`, holding its write of log `version` until another
/// writer has committed that version directly; returns the held writer's outcome.
async fn race_for_version(
    proxy: Arc<S3Proxy>,
    b: DeltaTable,
    version: u64,
    b_app: &str,
    b_txn: i64,
    other: impl std::future::Future<Output = DeltaTable>,
) -> (DeltaTable, Result<DeltaTable, deltalake::DeltaTableError>) {
    proxy.hold_put(&format!("/_delta_log/{version:020}.json"));
    let b_app = b_app.to_string();
    let b = tokio::spawn(async move { append(b, 99, &b_app, b_txn).await });
    let waiting = proxy.clone();
    tokio::task::spawn_blocking(move || waiting.wait_until_held())
        .await
        .expect("the proxy holds B's log write");
    // B has looked at the log and is writing version `version`; the other writer commits it first.
    let other = other.await;
    proxy.release();
    (other, b.await.expect("B's task"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_get_one_version_each_and_the_same_app_cannot_commit_twice() {
    let (bucket, table) = ("racing-writers", "t");
    s3().create_bucket(bucket);
    let uri = format!("s3://{bucket}/{table}");
    let direct = s3().endpoint();
    let proxy = Arc::new(S3Proxy::start(s3().port(), false));
    let a = append(open(&uri, &direct).await, 0, "setup", 1).await.expect("create the table");

    // B wants version 1; A takes it while B's write is in flight. The store refuses B's
    // conditional write, delta-rs finds A's commit compatible (another app, an append) and
    // commits B as version 2.
    let b = open(&uri, &proxy.endpoint()).await;
    let (a, b) = race_for_version(proxy.clone(), b, 1, "writer-b", 1, async {
        append(a, 1, "writer-a", 1).await.expect("A commits version 1")
    })
    .await;
    assert_eq!(a.version(), Some(1));
    assert_eq!(b.expect("B commits after A").version(), Some(2), "B could not take version 1");
    assert_eq!(txn_of(&log_entry(bucket, table, 1).expect("version 1")), ("writer-a".into(), 1));
    assert_eq!(txn_of(&log_entry(bucket, table, 2).expect("version 2")), ("writer-b".into(), 1));

    // The same application racing for its own next offset version: the loser is refused
    // outright, since committing it later would apply that offset twice.
    let stale = open(&uri, &proxy.endpoint()).await;
    let (a, lost) = race_for_version(proxy.clone(), stale, 3, "writer-a", 2, async {
        append(a, 3, "writer-a", 2).await.expect("A commits version 3")
    })
    .await;
    assert_eq!(a.version(), Some(3));
    let err = lost.expect_err("a second commit of writer-a's version 2");
    assert!(err.to_string().to_lowercase().contains("concurrent"), "a conflict: {err}");
    assert_eq!(txn_of(&log_entry(bucket, table, 3).expect("version 3")), ("writer-a".into(), 2));
    assert!(log_entry(bucket, table, 4).is_none(), "the refused commit left no log entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_conditional_writes_the_loser_replaces_the_winners_commit() {
    let (bucket, table) = ("no-conditions", "t");
    s3().create_bucket(bucket);
    let uri = format!("s3://{bucket}/{table}");
    let proxy = Arc::new(S3Proxy::start(s3().port(), true));
    let a = append(open(&uri, &s3().endpoint()).await, 0, "setup", 1).await.expect("create the table");
    let b = open(&uri, &proxy.endpoint()).await;
    let (a, b) = race_for_version(proxy.clone(), b, 1, "writer-b", 1, async {
        append(a, 1, "writer-a", 1).await.expect("A commits version 1")
    })
    .await;
    // Both believe they committed version 1, and B's log file replaced A's: A's row is gone.
    assert_eq!(a.version(), Some(1));
    assert_eq!(b.expect("B 'commits' too").version(), Some(1));
    assert_eq!(txn_of(&log_entry(bucket, table, 1).expect("version 1")), ("writer-b".into(), 1));
    assert!(log_entry(bucket, table, 2).is_none());
}
