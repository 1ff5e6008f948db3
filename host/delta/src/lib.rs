//! The Delta sink: writes Arrow batches to a Delta table with the write mode that the
//! table's ingestion type and SCD type call for, and commits the source offset that the
//! batches reach in the *same* Delta commit as the rows.
//!
//! Exactly once rests on that single commit. Each [`DeltaSink::commit`] is one Delta
//! transaction carrying the rows, an application transaction (`txn`, with the pipeline's
//! `app_id` and a version that grows by one per commit) and the offset in the commit's
//! metadata (`weir.app_id`, `weir.version`, `weir.offset`). Delta commits are atomic, so a
//! crash leaves either all of it or none of it, and [`DeltaSink::last_checkpoint`] always
//! describes exactly the rows in the table. Replaying a commit whose version the table
//! already holds writes nothing.
//!
//! ```no_run
//! # async fn demo(schema: arrow_schema::SchemaRef, batch: arrow_array::RecordBatch) -> Result<(), weir_delta::SinkError> {
//! use weir_delta::{Checkpoint, DeltaSink, WriteMode};
//!
//! let mode = WriteMode::Upsert { keys: vec!["id".into()], sequence_by: Some("modified".into()) };
//! let mut sink = DeltaSink::open("/tmp/warehouse/main/bronze/tasks", schema, &mode).await?;
//! let next = sink.last_checkpoint("airtable/tasks").await?.map_or(1, |c| c.version + 1);
//! let checkpoint = Checkpoint {
//!     app_id: "airtable/tasks".into(),
//!     version: next,
//!     offset: r#"{"cursor":"2024-05-01"}"#.into(),
//!     connector: None,
//! };
//! let stats = sink.commit(vec![batch], &mode, &checkpoint).await?;
//! println!("table version {}: {} inserted, {} updated", stats.version, stats.inserted, stats.updated);
//! # Ok(()) }
//! ```
//!
//! # Object stores
//!
//! A `uri` is a local path (its directories are created) or an object-store URL. S3 and Azure
//! are features of this crate (`s3`, `azure`) that the `weir` binary turns on by default; GCS
//! (`gcs`) is opt-in. Credentials come from where each ecosystem keeps them, as delta-rs and
//! object_store read them; a URL that carries credentials (userinfo, a SAS token or signature
//! in the query) is refused by [`check_location`], and errors never show a secret ([`redact`]).
//!
//! | URL | feature | credentials, in the order they are looked for |
//! |---|---|---|
//! | `s3://bucket/path` | `s3` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); `AWS_PROFILE` in `~/.aws/credentials` / `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`); web identity (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`); the container or instance role. Also `AWS_REGION`, and for S3-compatible stores `AWS_ENDPOINT_URL` (with `AWS_ALLOW_HTTP=true` for plain HTTP) |
//! | `abfss://container@account.dfs.core.windows.net/path` | `azure` | `AZURE_STORAGE_ACCOUNT_KEY`; `AZURE_STORAGE_SAS_KEY`; a service principal (`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`); workload identity; the managed identity. `AZURE_STORAGE_USE_EMULATOR=true` (+ `AZURITE_BLOB_STORAGE_URL`) for Azurite |
//! | `gs://bucket/path` | `gcs` | `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT` (a service-account JSON file), `GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON itself), or the metadata server |
//!
//! A store failure is a [`SinkError::Store`] that says what went wrong and names the variable
//! or profile that supplied the credentials.
//!
//! **Safe commits.** delta-rs commits version N by creating `_delta_log/N.json` only if it does
//! not exist yet: on S3 a conditional write (`If-None-Match: *`), on Azure and GCS their
//! preconditions, on a local disk an atomic create. So when two writers race for version N, one
//! wins and the other sees that N exists; delta-rs then checks the winner's commit, and a commit
//! of the same application id (`txn`) fails as a conflict ([`SinkError::Conflict`]) rather than
//! being retried. The log file is one object written in one request, and the data files it names
//! are written before it and are invisible until it exists, so a crash between the two leaves
//! nothing half-visible. Two checks keep this true on object stores: [`check_location`] refuses
//! settings that turn conditional writes off (`AWS_CONDITIONAL_PUT=disabled`) or ask for the
//! DynamoDB lock this delta-rs no longer has (`AWS_S3_LOCKING_PROVIDER`), and
//! [`DeltaSink::open`] writes a probe object twice under `<table>/_weir_probe/` and refuses a
//! store that accepts the second write ([`SinkError::UnsafeCommits`]).
//!
//! # Costs
//!
//! Append and Replace stream the batches into new files. Upsert and Delete are one Delta
//! MERGE each: the batches are deduplicated per key in memory, and the target files
//! that may hold those keys are rewritten. Scd2Upsert reads the keys and `__START_AT`/`__END_AT`
//! of every history row, to splice each change into its key's history at its sequence position
//! (a change older than the current version becomes the version it was, as DLT's
//! `apply_changes` does) and to skip changes already in the history; Scd2Snapshot joins the
//! whole snapshot against the open rows to find changed rows; both scan the table once per
//! commit, then run one MERGE. Widening a column's type rewrites the whole table once, in
//! `open`. [`DeltaSink::cluster`] (a `cluster_by`) rewrites every data file.
//!
//! The offset lives in the commitInfo of its commit. If that commit's JSON file is removed
//! by log cleanup (by default after 30 days, and only after a checkpoint), the `txn`
//! survives but the offset cannot be read: [`DeltaSink::last_checkpoint`] then fails with
//! [`SinkError::OffsetLost`] rather than restart from the beginning. The sink's own commits
//! never clean up logs.

mod fresh;
mod modes;
mod schema;
mod store;

pub use store::{Store, check_location, redact};

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::OptimizeType;
use deltalake::{DeltaTable, DeltaTableError, ensure_table_uri};
use futures_util::TryStreamExt;

/// The column of an SCD2 history row that holds when this version became current.
pub const START_AT: &str = "__START_AT";
/// The column of an SCD2 history row that holds when this version stopped being current (null while current).
pub const END_AT: &str = "__END_AT";

const META_APP_ID: &str = "weir.app_id";
const META_VERSION: &str = "weir.version";
const META_OFFSET: &str = "weir.offset";
const META_CONNECTOR: &str = "weir.connector";

/// How a commit's batches change the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Append the rows (append ingestion, and `APPEND_ONLY`).
    Append,
    /// Snapshot SCD1: the table's contents become exactly the batches, in one overwrite commit.
    Replace,
    /// CDC SCD1: MERGE on `keys`; a row older than the stored one (by `sequence_by`) is ignored.
    Upsert {
        /// The primary key columns.
        keys: Vec<String>,
        /// The column that orders versions of a row; without it the last row wins.
        sequence_by: Option<String>,
    },
    /// CDC tombstones: delete the rows with these keys that are not newer than the tombstone.
    Delete {
        /// The primary key columns.
        keys: Vec<String>,
        /// The column that orders versions of a row; without it every match is deleted.
        sequence_by: Option<String>,
    },
    /// Snapshot SCD2: close the open rows that vanished or changed, open new versions.
    Scd2Snapshot {
        /// The primary key columns.
        keys: Vec<String>,
    },
    /// CDC SCD2: each change becomes a history row with `__START_AT`/`__END_AT` from `sequence_by`.
    Scd2Upsert {
        /// The primary key columns.
        keys: Vec<String>,
        /// The column that orders versions of a row.
        sequence_by: String,
    },
    /// CDC SCD2 tombstones: close the open version of each key.
    Scd2Delete {
        /// The primary key columns.
        keys: Vec<String>,
        /// The column that orders versions of a row.
        sequence_by: String,
    },
    /// Resynchronisation (SCD1), when a source's deletes lost continuity: the batches hold every
    /// key the source has now (other columns are ignored), and every row whose key is not among
    /// them is deleted (a MERGE with delete when not matched by source).
    Resync {
        /// The primary key columns.
        keys: Vec<String>,
    },
    /// Resynchronisation (SCD2): the open version of every key not among the batches' keys is
    /// closed, with `__END_AT` the time of the commit.
    Scd2Resync {
        /// The primary key columns.
        keys: Vec<String>,
    },
}

impl WriteMode {
    /// The primary key columns (none for append and replace).
    pub fn key_columns(&self) -> &[String] {
        match self {
            WriteMode::Append | WriteMode::Replace => &[],
            WriteMode::Upsert { keys, .. }
            | WriteMode::Delete { keys, .. }
            | WriteMode::Scd2Snapshot { keys }
            | WriteMode::Scd2Upsert { keys, .. }
            | WriteMode::Scd2Delete { keys, .. }
            | WriteMode::Resync { keys }
            | WriteMode::Scd2Resync { keys } => keys,
        }
    }

    /// The resynchronisation that goes with a tombstone mode: what removes every key a whole
    /// read of the source no longer holds.
    pub fn resync(&self) -> Option<WriteMode> {
        match self {
            WriteMode::Delete { keys, .. } => Some(WriteMode::Resync { keys: keys.clone() }),
            WriteMode::Scd2Delete { keys, .. } => Some(WriteMode::Scd2Resync { keys: keys.clone() }),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Replace => "replace",
            WriteMode::Upsert { .. } => "upsert",
            WriteMode::Delete { .. } => "delete",
            WriteMode::Scd2Snapshot { .. } => "scd2 snapshot",
            WriteMode::Scd2Upsert { .. } => "scd2 upsert",
            WriteMode::Scd2Delete { .. } => "scd2 delete",
            WriteMode::Resync { .. } => "resync",
            WriteMode::Scd2Resync { .. } => "scd2 resync",
        }
    }
}

/// The offset a pipeline reached, committed with the rows it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Who writes: one id per pipeline and destination table, e.g. `airtable/tasks`.
    pub app_id: String,
    /// Grows by one per commit of `app_id`; a version the table already holds is a replay.
    pub version: i64,
    /// The source offset the batches reach, as JSON text.
    pub offset: String,
    /// Which connector version read the rows, as JSON text (`{"name","version","sha256"}`),
    /// kept in the commit's metadata as `weir.connector` so every row can be traced to the code
    /// that read it.
    pub connector: Option<String>,
}

/// What one commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// The Delta table version after the commit (unchanged for a replay).
    pub version: i64,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated (for SCD2, history rows closed).
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
}

/// Why the sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The location cannot hold a table: a malformed URL, or a path that cannot be created.
    #[error("cannot use `{uri}` as a Delta table location: {source}")]
    InvalidUri {
        /// The location given.
        uri: String,
        /// What delta-rs said.
        source: Box<DeltaTableError>,
    },
    /// The location is not one weir will write: an unknown scheme, a store this build lacks, or
    /// a URL carrying credentials.
    #[error("cannot use `{uri}` as a Delta table location: {problem}")]
    Location {
        /// The location, with any credentials in it removed.
        uri: String,
        /// What is wrong and what to do instead.
        problem: String,
    },
    /// The store, or a setting, cannot guarantee that only one writer commits each table version.
    #[error("refusing to write Delta tables at `{uri}`: {problem}")]
    UnsafeCommits {
        /// The table or warehouse.
        uri: String,
        /// Why, and which setting makes it safe.
        problem: String,
    },
    /// The object store failed: credentials, permissions, a missing bucket, an unreachable endpoint.
    #[error("Delta table `{uri}`: could not {op}: {problem}")]
    Store {
        /// The table.
        uri: String,
        /// What the sink was doing.
        op: &'static str,
        /// What went wrong, what to check, and the store's words, with secrets removed.
        problem: String,
    },
    /// Another writer committed to the table first; nothing of this commit is visible.
    #[error(
        "Delta table `{uri}`: another writer committed first ({detail}); this commit was not made and none \
         of its rows are visible. Run again to resume from the offset the table holds"
    )]
    Conflict {
        /// The table.
        uri: String,
        /// Which version or application the writers raced for.
        detail: String,
    },
    /// A Delta operation failed.
    #[error("Delta table `{uri}`: could not {op}: {source}")]
    Delta {
        /// The table.
        uri: String,
        /// What the sink was doing.
        op: &'static str,
        /// What delta-rs said.
        source: Box<DeltaTableError>,
    },
    /// Reading or planning with DataFusion failed.
    #[error("Delta table `{uri}`: query failed: {source}")]
    Query {
        /// The table.
        uri: String,
        /// What DataFusion said.
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },
    /// An Arrow conversion or cast failed.
    #[error("Delta table `{uri}`: {source}")]
    Arrow {
        /// The table.
        uri: String,
        /// What Arrow said.
        source: arrow_schema::ArrowError,
    },
    /// The schema changes a column's type in a way that could lose values.
    #[error(
        "Delta table `{uri}`: column `{column}` is {table_type} in the table but {new_type} in the new \
         schema; only widening (int8/16/32 to a larger int, float to double, decimal to a larger precision \
         with the same scale) is applied automatically. Write to a new table or cast the column in the source"
    )]
    IncompatibleType {
        /// The table.
        uri: String,
        /// The column.
        column: String,
        /// Its type in the table.
        table_type: String,
        /// Its type in the new schema.
        new_type: String,
    },
    /// A key or sequence column named by the write mode is not in the schema.
    #[error("Delta table `{uri}`: the write mode names column `{column}`, which is not in the schema")]
    MissingColumn {
        /// The table.
        uri: String,
        /// The column.
        column: String,
    },
    /// A batch has a column that the table does not have.
    #[error(
        "Delta table `{uri}`: a batch has column `{column}`, which is not in the table; reopen the sink with a schema that has it"
    )]
    UnknownColumn {
        /// The table.
        uri: String,
        /// The column.
        column: String,
    },
    /// The write mode is unusable, e.g. it has no key columns.
    #[error("Delta table `{uri}`: write mode {mode}: {reason}")]
    InvalidMode {
        /// The table.
        uri: String,
        /// The mode.
        mode: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The table holds a `txn` for the app, but the commit that carried its offset is gone.
    #[error(
        "Delta table `{uri}`: app `{app_id}` committed version {version}, but the log file with its offset \
         was removed (log retention); restore the offset or start the app under a new id"
    )]
    OffsetLost {
        /// The table.
        uri: String,
        /// The app.
        app_id: String,
        /// The txn version the table holds.
        version: i64,
    },
}

impl SinkError {
    /// A delta-rs failure: a lost race becomes [`SinkError::Conflict`], and a failure in an object
    /// store becomes [`SinkError::Store`], explained and without the original error, whose text
    /// (a request URL, say) could carry a secret.
    fn delta(uri: &str, op: &'static str, source: DeltaTableError) -> Self {
        use deltalake::kernel::transaction::TransactionError;
        let conflict = match &source {
            DeltaTableError::VersionAlreadyExists(v) => Some(format!("table version {v} already exists")),
            DeltaTableError::Transaction { source: TransactionError::VersionAlreadyExists(v) } => {
                Some(format!("table version {v} already exists"))
            }
            DeltaTableError::Transaction { source: e @ TransactionError::CommitConflict(_) } => {
                Some(e.to_string())
            }
            _ => None,
        };
        if let Some(detail) = conflict {
            return SinkError::Conflict { uri: uri.to_string(), detail };
        }
        if store::is_remote(uri) {
            return store::store_error(uri, op, &source);
        }
        SinkError::Delta { uri: uri.to_string(), op, source: Box::new(source) }
    }

    fn query(uri: &str, source: deltalake::datafusion::error::DataFusionError) -> Self {
        if store::is_remote(uri) {
            return store::store_error(uri, "query the table", &source);
        }
        SinkError::Query { uri: uri.to_string(), source: Box::new(source) }
    }
}

/// One destination Delta table.
pub struct DeltaSink {
    uri: String,
    table: DeltaTable,
    /// The columns the caller declared at open, which SCD2 snapshot compares to detect change.
    source_columns: Vec<String>,
    /// A cdc table's keys while it holds only rows this sink appended (see `fresh`).
    fresh: Option<fresh::FreshKeys>,
}

impl DeltaSink {
    /// Opens the table at `uri`, creating it with `schema` if absent, and evolves its schema
    /// (see the crate docs): new columns are added as nullable, vanished columns stay,
    /// widening types are rewritten, other type changes fail. SCD2 modes add the nullable
    /// `__START_AT`/`__END_AT` columns.
    pub async fn open(uri: &str, schema: SchemaRef, mode: &WriteMode) -> Result<DeltaSink, SinkError> {
        let keyed = !matches!(mode, WriteMode::Append | WriteMode::Replace);
        if keyed && mode.key_columns().is_empty() {
            return Err(SinkError::InvalidMode {
                uri: uri.to_string(),
                mode: mode.name(),
                reason: "it needs at least one primary key column".into(),
            });
        }
        let target = schema::target_schema(uri, &schema, mode)?;
        let table = locate(uri).await?;
        store::probe_conditional_writes(uri, &table).await?;
        let table = match table.version() {
            Some(_) => schema::evolve(uri, table, &target).await?,
            None => match create(uri, &table, &target).await {
                Ok(table) => table,
                Err(e) => {
                    // Another writer may have created it first: then use theirs, as if it had
                    // been there all along.
                    let theirs = locate(uri).await?;
                    if theirs.version().is_none() {
                        return Err(e);
                    }
                    schema::evolve(uri, theirs, &target).await?
                }
            },
        };
        let fresh = match mode {
            WriteMode::Upsert { .. } if modes::row_count(uri, &table)? == 0 => {
                Some(fresh::FreshKeys::new(version_of(&table)))
            }
            _ => None,
        };
        Ok(DeltaSink {
            uri: uri.to_string(),
            table,
            source_columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            fresh,
        })
    }

    /// The location this sink writes.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The last checkpoint committed by `app_id`: the table's `txn` version for it, and the
    /// offset stored in the commit that wrote that version.
    pub async fn last_checkpoint(&self, app_id: &str) -> Result<Option<Checkpoint>, SinkError> {
        let mut table = self.fresh_table();
        table.update_state().await.map_err(|source| SinkError::delta(&self.uri, "load the table", source))?;
        let Some(version) = txn_version(&self.uri, &table, app_id).await? else {
            return Ok(None);
        };
        match committed_checkpoint(&self.uri, &table, app_id, version).await? {
            Some(checkpoint) => Ok(Some(checkpoint)),
            None => Err(SinkError::OffsetLost { uri: self.uri.clone(), app_id: app_id.to_string(), version }),
        }
    }

    /// Writes `batches` with `mode` in one Delta commit that also carries the checkpoint's
    /// `txn` and offset. A checkpoint the table already holds, with the same offset, is a
    /// replay: nothing is written and the stats are zero. If the table holds that version of
    /// the app with a different offset, another writer got there first: [`SinkError::Conflict`].
    pub async fn commit(
        &mut self,
        batches: Vec<RecordBatch>,
        mode: &WriteMode,
        checkpoint: &Checkpoint,
    ) -> Result<CommitStats, SinkError> {
        self.table
            .update_state()
            .await
            .map_err(|source| SinkError::delta(&self.uri, "load the table", source))?;
        let current = version_of(&self.table);
        if let Some(done) = txn_version(&self.uri, &self.table, &checkpoint.app_id).await?
            && done >= checkpoint.version
        {
            let theirs =
                committed_checkpoint(&self.uri, &self.table, &checkpoint.app_id, checkpoint.version).await?;
            if theirs.as_ref().map(|c| c.offset.as_str()) != Some(checkpoint.offset.as_str()) {
                return Err(SinkError::Conflict {
                    uri: self.uri.clone(),
                    detail: format!(
                        "app `{}` is at offset version {done} in the table, and its version {} holds a \
                         different offset than this commit's",
                        checkpoint.app_id, checkpoint.version
                    ),
                });
            }
            tracing::info!(uri = %self.uri, app_id = %checkpoint.app_id, version = checkpoint.version, "replayed commit skipped");
            return Ok(CommitStats { version: current, ..CommitStats::default() });
        }
        let mut metadata = vec![
            (META_APP_ID.to_string(), checkpoint.app_id.clone().into()),
            (META_VERSION.to_string(), checkpoint.version.into()),
            (META_OFFSET.to_string(), checkpoint.offset.clone().into()),
        ];
        if let Some(connector) = &checkpoint.connector {
            metadata.push((META_CONNECTOR.to_string(), connector.clone().into()));
        }
        let props = no_log_cleanup(
            CommitProperties::default()
                .with_application_transaction(Transaction::new(&checkpoint.app_id, checkpoint.version))
                .with_metadata(metadata),
        );
        // A first load appends the commits whose keys are all new (see `fresh`).
        if self.fresh.as_ref().is_some_and(|f| f.version != current) {
            self.fresh = None;
        }
        let mut hashed = None;
        let (batches, mode) = match (mode, &self.fresh) {
            (WriteMode::Upsert { keys, .. }, Some(fresh)) => {
                let schema = schema::table_schema(&self.uri, &self.table)?;
                let arrow = |source| SinkError::Arrow { uri: self.uri.clone(), source };
                let batches = schema::conform(&self.uri, batches, &schema)?;
                let rows = fresh.hashes(&batches, keys).map_err(arrow)?;
                let plan = fresh.appendable(&rows);
                hashed = Some(rows);
                match plan {
                    Some(keep) => (fresh::keep_rows(batches, &keep).map_err(arrow)?, &WriteMode::Append),
                    None => (batches, mode),
                }
            }
            _ => (batches, mode),
        };
        let ctx = modes::Ctx { uri: &self.uri, source_columns: &self.source_columns };
        let (table, mut stats) = modes::apply(&ctx, self.fresh_table(), batches, mode, props.clone()).await?;
        let table = if version_of(&table) == current {
            // MERGE commits nothing when no row changes, but the offset still has to advance.
            modes::commit_offset_only(&ctx, table, props).await?
        } else {
            table
        };
        stats.version = version_of(&table);
        if let Some(fresh) = &mut self.fresh {
            fresh.version = stats.version;
            fresh.add(&hashed.unwrap_or_default(), *mode != WriteMode::Append);
            if fresh.is_full() {
                tracing::info!(
                    uri = %self.uri,
                    "the first load passed {} rows: later commits MERGE, so that memory stays bounded",
                    fresh::MAX_KEYS
                );
                self.fresh = None;
            }
        }
        self.table = table;
        Ok(stats)
    }

    /// Rows in the table now, from the file statistics of its log.
    pub async fn row_count(&self) -> Result<u64, SinkError> {
        let mut table = self.fresh_table();
        table.update_state().await.map_err(|source| SinkError::delta(&self.uri, "load the table", source))?;
        modes::row_count(&self.uri, &table)
    }

    /// Z-orders the table's data files on `columns` (delta-rs's `OPTIMIZE … ZORDER BY`), so that
    /// readers filtering on them skip files: one commit that rewrites every data file and
    /// changes no row, offset or `txn`. Returns the number of files it wrote.
    pub async fn cluster(&mut self, columns: &[String]) -> Result<u64, SinkError> {
        let mut table = self.fresh_table();
        table.update_state().await.map_err(|source| SinkError::delta(&self.uri, "load the table", source))?;
        let props = no_log_cleanup(
            CommitProperties::default()
                .with_metadata([("weir.cluster_by".to_string(), columns.join(",").into())]),
        );
        let (table, metrics) = table
            .optimize()
            .with_type(OptimizeType::ZOrder(columns.to_vec()))
            .with_commit_properties(props)
            .await
            .map_err(|source| SinkError::delta(&self.uri, "z-order by cluster_by", source))?;
        self.table = table;
        Ok(metrics.num_files_added)
    }

    /// A handle on the same table state; the builders consume their table.
    fn fresh_table(&self) -> DeltaTable {
        self.table.clone()
    }
}

/// Every row of the table at `uri`, for previews and checks.
pub async fn read_table(uri: &str) -> Result<Vec<RecordBatch>, SinkError> {
    let mut table = locate(uri).await?;
    table.load().await.map_err(|source| SinkError::delta(uri, "load the table", source))?;
    schema::read_all(uri, &table).await
}

/// Checks a warehouse (or table) location before a run reads or writes anything: what
/// [`check_location`] checks and, for an object store, that the store refuses a second
/// create-if-absent write (the probe [`DeltaSink::open`] makes for each table, here once at the
/// warehouse's root), so that a store that cannot commit safely fails the run with one error.
pub async fn check_store(uri: &str) -> Result<Store, SinkError> {
    let store = check_location(uri)?;
    if store::is_remote(uri) {
        let root = locate(uri).await?;
        store::probe_conditional_writes(uri, &root).await?;
    }
    Ok(store)
}

/// The current schema of the table at `uri` (with its field metadata), or `None` when no
/// table exists there yet.
pub async fn table_schema(uri: &str) -> Result<Option<SchemaRef>, SinkError> {
    match existing(uri).await? {
        Some(table) => schema::table_schema(uri, &table).map(Some),
        None => Ok(None),
    }
}

/// The last checkpoint `app_id` committed to the table at `uri`, without opening it for writes;
/// `None` when there is no table or the app never committed to it.
pub async fn last_checkpoint(uri: &str, app_id: &str) -> Result<Option<Checkpoint>, SinkError> {
    let Some(table) = existing(uri).await? else { return Ok(None) };
    DeltaSink { uri: uri.to_string(), table, source_columns: Vec::new(), fresh: None }
        .last_checkpoint(app_id)
        .await
}

/// The table at `uri` when one exists there, for a look that writes nothing.
async fn existing(uri: &str) -> Result<Option<DeltaTable>, SinkError> {
    // Locating a local path creates its folders; a look must not leave empty ones behind.
    if !uri.contains("://") && !std::path::Path::new(uri).exists() {
        return Ok(None);
    }
    let table = locate(uri).await?;
    Ok(table.version().is_some().then_some(table))
}

/// The table at `uri`, loaded when it exists; an empty location gives a table with no version.
async fn locate(uri: &str) -> Result<DeltaTable, SinkError> {
    check_location(uri)?;
    let invalid = |source| SinkError::InvalidUri { uri: uri.to_string(), source: Box::new(source) };
    let url = ensure_table_uri(uri).map_err(invalid)?;
    DeltaTable::try_from_url_with_storage_options(url, store::options(uri)).await.map_err(|source| {
        if store::is_remote(uri) {
            store::store_error(uri, "open the table", &source)
        } else {
            invalid(source)
        }
    })
}

/// Creates the table at an empty location with the target schema.
async fn create(uri: &str, table: &DeltaTable, target: &SchemaRef) -> Result<DeltaTable, SinkError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let kernel: deltalake::kernel::StructType = target
        .as_ref()
        .try_into_kernel()
        .map_err(|source| SinkError::Arrow { uri: uri.to_string(), source })?;
    table
        .create()
        .with_columns(kernel.fields().cloned())
        // A create that lost the race for version 0 must fail (the caller then uses the winner's
        // table), not be retried as version 1: that would put a second create into the log.
        .with_commit_properties(no_log_cleanup(CommitProperties::default().with_max_retries(0)))
        .await
        .map_err(|source| match source {
            // Create is the first write to the location, so a local path that cannot hold a table surfaces here.
            DeltaTableError::ObjectStore { .. } | DeltaTableError::InvalidTableLocation(_)
                if !store::is_remote(uri) =>
            {
                SinkError::InvalidUri { uri: uri.to_string(), source: Box::new(source) }
            }
            other => SinkError::delta(uri, "create the table", other),
        })
}

/// The offset stored with version `version` of `app_id`, newest commits first (the usual case,
/// our own last commit, reads one file); `None` when no commit in the log carries it.
async fn committed_checkpoint(
    uri: &str,
    table: &DeltaTable,
    app_id: &str,
    version: i64,
) -> Result<Option<Checkpoint>, SinkError> {
    let mut history = table.history(None);
    while let Some(info) =
        history.try_next().await.map_err(|source| SinkError::delta(uri, "read the history", source))?
    {
        let matches = info.info.get(META_APP_ID).and_then(|v| v.as_str()) == Some(app_id)
            && info.info.get(META_VERSION).and_then(|v| v.as_i64()) == Some(version);
        if matches && let Some(offset) = info.info.get(META_OFFSET).and_then(|v| v.as_str()) {
            return Ok(Some(Checkpoint {
                app_id: app_id.to_string(),
                version,
                offset: offset.to_string(),
                connector: info.info.get(META_CONNECTOR).and_then(|v| v.as_str()).map(str::to_string),
            }));
        }
    }
    Ok(None)
}

fn version_of(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

async fn txn_version(uri: &str, table: &DeltaTable, app_id: &str) -> Result<Option<i64>, SinkError> {
    let state = table.snapshot().map_err(|source| SinkError::delta(uri, "load the table", source))?;
    state
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|source| SinkError::delta(uri, "read the app transaction", source))
}

/// Log cleanup would delete the commit files that hold offsets, so the sink never triggers it.
fn no_log_cleanup(props: CommitProperties) -> CommitProperties {
    props.with_cleanup_expired_logs(Some(false))
}

/// Shared by the modes: a batch list that always has a schema, even when empty.
fn non_empty(batches: Vec<RecordBatch>, schema: &SchemaRef) -> Vec<RecordBatch> {
    if batches.is_empty() { vec![RecordBatch::new_empty(Arc::clone(schema))] } else { batches }
}
