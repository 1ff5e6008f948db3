//! One Delta operation per write mode, each committing the rows and the checkpoint together.
//!
//! Append and Replace are `write`s. The keyed modes are one `merge` each, whose source is a
//! DataFusion query over the batches (and, for SCD2, the table's open rows): the query does
//! what MERGE cannot (deduplicate per key, order a key's changes, spot changed rows), and the
//! MERGE applies the result in a single commit.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::logical_expr::{Cast, Expr, Operator, binary_expr};
use deltalake::datafusion::prelude::{DataFrame, SessionContext, lit};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::operations::merge::{MergeBuilder, MergeMetrics};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures_util::TryStreamExt;

use crate::schema::{conform, table_schema};
use crate::{CommitStats, END_AT, START_AT, SinkError, WriteMode, non_empty};

const ORD: &str = "__weir_ord";
const FLAG: &str = "__weir_flag";
/// The start of the history row an SCD2 source row is meant to match.
const MATCH: &str = "__weir_match";
const SOURCE: &str = "source";
const TARGET: &str = "target";

/// What every mode needs to know besides its own parameters.
pub(crate) struct Ctx<'a> {
    pub uri: &'a str,
    pub source_columns: &'a [String],
}

pub(crate) async fn apply(
    ctx: &Ctx<'_>,
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    mode: &WriteMode,
    props: CommitProperties,
) -> Result<(DeltaTable, CommitStats), SinkError> {
    let uri = ctx.uri;
    let schema = table_schema(uri, &table)?;
    match mode {
        WriteMode::Append | WriteMode::Replace => {
            let replace = *mode == WriteMode::Replace;
            let deleted = if replace { row_count(uri, &table)? } else { 0 };
            let batches = non_empty(conform(uri, batches, &schema)?, &schema);
            let table = table
                .write(batches)
                .with_save_mode(if replace { SaveMode::Overwrite } else { SaveMode::Append })
                .with_schema_mode(SchemaMode::Merge)
                .with_commit_properties(props)
                .await
                .map_err(|source| SinkError::delta(uri, "write", source))?;
            let inserted = added_rows(uri, &table).await?;
            Ok((table, CommitStats { inserted, deleted, ..CommitStats::default() }))
        }
        WriteMode::Upsert { keys, sequence_by } => {
            let batches = conform(uri, batches, &schema)?;
            let session = session_with_source(uri, batches, &schema)?;
            let columns = names(&schema);
            let source = newest_per_key(uri, &session, &columns, keys, sequence_by.as_deref()).await?;
            let mut merge = merge_on_keys(table, source, keys, &session)
                .when_matched_update(|update| {
                    let update = match sequence_by {
                        Some(seq) => {
                            update.predicate(target(seq).is_null().or(source_col(seq).gt_eq(target(seq))))
                        }
                        None => update,
                    };
                    columns
                        .iter()
                        .filter(|c| !keys.contains(c))
                        .fold(update, |u, c| u.update(unqualified(c), source_col(c)))
                })
                .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
            merge = insert_all(uri, merge, &columns, None)?;
            run_merge(uri, merge, props).await
        }
        WriteMode::Delete { keys, sequence_by } => {
            let source = tombstones(ctx, batches, &schema, keys, sequence_by.as_deref()).await?;
            let (session, source) = source;
            let merge = merge_on_keys(table, source, keys, &session)
                .when_matched_delete(|delete| match sequence_by {
                    Some(seq) => {
                        delete.predicate(target(seq).is_null().or(target(seq).lt_eq(source_col(seq))))
                    }
                    None => delete,
                })
                .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
            run_merge(uri, merge, props).await
        }
        WriteMode::Scd2Delete { keys, sequence_by } => {
            let (session, source) = tombstones(ctx, batches, &schema, keys, Some(sequence_by)).await?;
            let merge = merge_on_keys_open(table, source, keys, &session, None)
                .when_matched_update(|update| {
                    update
                        .predicate(
                            target(START_AT).is_null().or(target(START_AT).lt_eq(source_col(sequence_by))),
                        )
                        .update(unqualified(END_AT), source_col(sequence_by))
                })
                .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
            run_merge(uri, merge, props).await
        }
        WriteMode::Resync { keys } => {
            let (session, source) = tombstones(ctx, batches, &schema, keys, None).await?;
            let merge = merge_on_keys(table, source, keys, &session)
                .when_not_matched_by_source_delete(|delete| delete)
                .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
            run_merge(uri, merge, props).await
        }
        WriteMode::Scd2Resync { keys } => {
            let (session, source) = tombstones(ctx, batches, &schema, keys, None).await?;
            // Closed at the time of the resync, in the history's own type (a timestamp sequence
            // gets the time itself; a numeric one, its microseconds since the epoch).
            let end_type = schema
                .field_with_name(END_AT)
                .map_err(|_| SinkError::MissingColumn { uri: uri.to_string(), column: END_AT.into() })?
                .data_type()
                .clone();
            let closed = Expr::Cast(Cast::new(Box::new(now_utc()), end_type));
            let merge = merge_on_keys_open(table, source, keys, &session, None)
                .when_not_matched_by_source_update(|update| {
                    update.predicate(target(END_AT).is_null()).update(unqualified(END_AT), closed)
                })
                .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
            run_merge(uri, merge, props).await
        }
        WriteMode::Scd2Upsert { keys, sequence_by } => {
            scd2_upsert(ctx, table, batches, &schema, keys, sequence_by, props).await
        }
        WriteMode::Scd2Snapshot { keys } => scd2_snapshot(ctx, table, batches, &schema, keys, props).await,
    }
}

/// Commits only the checkpoint (a `txn` action and the commitInfo), for a MERGE that
/// changed no row: the source still advanced, and a rerun must not read it again.
pub(crate) async fn commit_offset_only(
    ctx: &Ctx<'_>,
    mut table: DeltaTable,
    props: CommitProperties,
) -> Result<DeltaTable, SinkError> {
    let uri = ctx.uri;
    let state = table.snapshot().map_err(|source| SinkError::delta(uri, "load the table", source))?;
    CommitBuilder::from(props)
        .build(
            Some(state),
            table.log_store(),
            DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
        )
        .await
        .map_err(|source| SinkError::delta(uri, "commit the offset", source))?;
    table.update_state().await.map_err(|source| SinkError::delta(uri, "load the table", source))?;
    Ok(table)
}

/// SCD2 from CDC: each change of a key becomes a history row, spliced into the key's history at
/// its sequence position, as DLT's `apply_changes` does: a change older than the current version
/// is not dropped but becomes the version it was, and the version it falls into ends where it
/// starts. A change whose sequence is already in the history is a replay and is skipped.
///
/// A new version ends at the next boundary of its key: the nearest later start (old or new) or
/// the end of the old version it falls into (a delete's close). An old version whose interval
/// holds new starts ends at the first of them. The MERGE source holds every new version
/// (unflagged, inserted) and, for each old version that must end earlier, a flagged copy of the
/// new version that ends it, carrying the old version's start to match exactly that row.
async fn scd2_upsert(
    ctx: &Ctx<'_>,
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    keys: &[String],
    seq: &str,
    props: CommitProperties,
) -> Result<(DeltaTable, CommitStats), SinkError> {
    let uri = ctx.uri;
    let data = data_schema(schema);
    let batches = conform(uri, batches, &data)?;
    let session = session_with_source(uri, batches, &data)?;
    register_target(uri, &session, &table).await?;
    let columns = names(&data);
    let key_cols = quoted(keys, "");
    let q_seq = ident(seq);
    let (start, end) = (ident(START_AT), ident(END_AT));
    let sql = format!(
        "WITH w_hist AS (SELECT {key_cols}, {start} AS __weir_a, {end} AS __weir_e FROM tgt),
         w_known AS (SELECT DISTINCT {key_cols}, TRUE AS __weir_known FROM w_hist),
         w_dup AS (SELECT DISTINCT {key_cols}, __weir_a, TRUE AS __weir_dup FROM w_hist WHERE __weir_a IS NOT NULL),
         w_uniq AS (SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {key_cols}, {q_seq} ORDER BY {ORD} DESC) AS __weir_rn
                    FROM src) WHERE __weir_rn = 1),
         w_new AS (SELECT u.* FROM w_uniq u
                   LEFT JOIN w_dup d ON {join_ud} AND d.__weir_a = u.{q_seq}
                   LEFT JOIN w_known k ON {join_uk}
                   WHERE d.__weir_dup IS NULL AND (u.{q_seq} IS NOT NULL OR k.__weir_known IS NULL)),
         w_bounds AS (SELECT {key_cols}, {q_seq} AS __weir_b FROM w_new WHERE {q_seq} IS NOT NULL
                      UNION ALL SELECT {key_cols}, __weir_a FROM w_hist WHERE __weir_a IS NOT NULL
                      UNION ALL SELECT {key_cols}, __weir_e FROM w_hist WHERE __weir_e IS NOT NULL),
         w_ends AS (SELECT {n_keys}, n.{q_seq} AS __weir_s, MIN(b.__weir_b) AS __weir_end
                    FROM (SELECT {key_cols}, {q_seq} FROM w_new) n
                    LEFT JOIN w_bounds b ON {join_nb} AND b.__weir_b > n.{q_seq}
                    GROUP BY {n_keys}, n.{q_seq}),
         w_ins AS (SELECT {w_cols}, w.{q_seq} AS {start}, e.__weir_end AS {end}
                   FROM w_new w JOIN w_ends e ON {join_we} AND w.{q_seq} IS NOT DISTINCT FROM e.__weir_s),
         w_close AS (SELECT {h_keys}, h.__weir_a AS __weir_match, MIN(n.{q_seq}) AS __weir_by
                     FROM w_hist h JOIN w_new n ON {join_hn} AND n.{q_seq} IS NOT NULL
                       AND (h.__weir_a IS NULL OR n.{q_seq} > h.__weir_a)
                       AND (h.__weir_e IS NULL OR n.{q_seq} < h.__weir_e)
                     GROUP BY {h_keys}, h.__weir_a)
         SELECT {cols}, {start}, {end}, FALSE AS {FLAG}, {start} AS {MATCH} FROM w_ins
         UNION ALL
         SELECT {i_cols}, i.{start}, i.{end}, TRUE AS {FLAG}, c.__weir_match AS {MATCH}
         FROM w_close c JOIN w_ins i ON {join_ci} AND i.{start} = c.__weir_by",
        cols = quoted(&columns, ""),
        w_cols = quoted(&columns, "w."),
        i_cols = quoted(&columns, "i."),
        n_keys = quoted(keys, "n."),
        h_keys = quoted(keys, "h."),
        join_ud = join_on(keys, "u", "d"),
        join_uk = join_on(keys, "u", "k"),
        join_nb = join_on(keys, "n", "b"),
        join_we = join_on(keys, "w", "e"),
        join_hn = join_on(keys, "h", "n"),
        join_ci = join_on(keys, "c", "i"),
    );
    let source = query(uri, &session, &sql).await?;
    // Each flagged row matches the one version whose start it carries, open or closed.
    let predicate = keys_match(keys)
        .and(binary_expr(target(START_AT), Operator::IsNotDistinctFrom, source_col(MATCH)))
        .and(flag());
    let merge = table
        .merge(source, predicate)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_session_state(Arc::new(session.state()))
        .when_matched_update(|update| update.update(unqualified(END_AT), source_col(START_AT)))
        .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
    let mut all = columns.clone();
    all.extend([START_AT.to_string(), END_AT.to_string()]);
    let merge = insert_all(uri, merge, &all, Some(Expr::Not(Box::new(flag()))))?;
    run_merge(uri, merge, props).await
}

/// SCD2 from snapshots: the source is the snapshot (flagged to match the open rows) plus a
/// copy of each changed row (unflagged, so it never matches and is inserted as the new
/// version). Matched changed rows close, unmatched snapshot rows open, and open rows the
/// snapshot lacks close.
async fn scd2_snapshot(
    ctx: &Ctx<'_>,
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    keys: &[String],
    props: CommitProperties,
) -> Result<(DeltaTable, CommitStats), SinkError> {
    let uri = ctx.uri;
    let data = data_schema(schema);
    let batches = conform(uri, batches, &data)?;
    let session = session_with_source(uri, batches, &data)?;
    register_target(uri, &session, &table).await?;
    let columns = names(&data);
    let compared: Vec<String> =
        columns.iter().filter(|c| !keys.contains(c) && ctx.source_columns.contains(c)).cloned().collect();
    let key_cols = quoted(keys, "");
    let changed_sql = if compared.is_empty() {
        "FALSE".to_string()
    } else {
        compared
            .iter()
            // Parenthesised: sqlparser reads the right side of IS DISTINCT FROM as a whole
            // expression, so unbracketed terms would nest into `a IS DISTINCT FROM (b OR …)`.
            .map(|c| format!("(s.{q} IS DISTINCT FROM t.{q})", q = ident(c)))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let sql = format!(
        "WITH w_snap AS (SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {key_cols} ORDER BY {ORD} DESC) AS __weir_rn
                    FROM src) WHERE __weir_rn = 1),
         w_open AS (SELECT * FROM tgt WHERE {end} IS NULL)
         SELECT {cols}, TRUE AS {FLAG} FROM w_snap
         UNION ALL
         SELECT {s_cols}, FALSE AS {FLAG} FROM w_snap s JOIN w_open t ON {join} WHERE {changed_sql}",
        cols = quoted(&columns, ""),
        s_cols = quoted(&columns, "s."),
        end = ident(END_AT),
        join = join_on(keys, "s", "t"),
    );
    let source = query(uri, &session, &sql).await?;
    let now = now_utc();
    let changed = compared
        .iter()
        .map(|c| binary_expr(target(c), Operator::IsDistinctFrom, source_col(c)))
        .reduce(Expr::or)
        .unwrap_or(lit(false));
    let merge = merge_on_keys_open(table, source, keys, &session, Some(flag()))
        .when_matched_update(|update| update.predicate(changed).update(unqualified(END_AT), now.clone()))
        .and_then(|m| {
            m.when_not_matched_by_source_update(|update| {
                update.predicate(target(END_AT).is_null()).update(unqualified(END_AT), now.clone())
            })
        })
        .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
    let merge = merge
        .when_not_matched_insert(|insert| {
            columns
                .iter()
                .fold(insert, |i, c| i.set(unqualified(c), source_col(c)))
                .set(unqualified(START_AT), now.clone())
        })
        .map_err(|source| SinkError::delta(uri, "plan the merge", source))?;
    run_merge(uri, merge, props).await
}

/// The newest tombstone per key, with only the key and sequence columns.
async fn tombstones(
    ctx: &Ctx<'_>,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    keys: &[String],
    seq: Option<&str>,
) -> Result<(SessionContext, DataFrame), SinkError> {
    let uri = ctx.uri;
    let mut wanted: Vec<String> = keys.to_vec();
    if let Some(seq) = seq {
        wanted.push(seq.to_string());
    }
    let fields = wanted
        .iter()
        .map(|c| {
            schema
                .field_with_name(c)
                .map(|f| f.clone().with_nullable(true))
                .map_err(|_| SinkError::MissingColumn { uri: uri.to_string(), column: c.clone() })
        })
        .collect::<Result<Vec<Field>, _>>()?;
    let narrow: SchemaRef = Arc::new(Schema::new(fields));
    // Tombstones often carry more than the keys; only the keys and sequence matter here.
    let projected = batches
        .into_iter()
        .map(|b| {
            let indices = wanted
                .iter()
                .map(|c| {
                    b.schema()
                        .index_of(c)
                        .map_err(|_| SinkError::MissingColumn { uri: uri.to_string(), column: c.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            b.project(&indices).map_err(|source| SinkError::Arrow { uri: uri.to_string(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let batches = conform(uri, projected, &narrow)?;
    let session = session_with_source(uri, batches, &narrow)?;
    let source = newest_per_key(uri, &session, &wanted, keys, seq).await?;
    Ok((session, source))
}

/// The batches as table `src`, with `__weir_ord` numbering rows in arrival order so that,
/// among equal sequence values, the later row wins.
fn session_with_source(
    uri: &str,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
) -> Result<SessionContext, SinkError> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ORD, DataType::UInt64, false));
    let with_ord: SchemaRef = Arc::new(Schema::new(fields));
    let mut next = 0u64;
    let batches = batches
        .into_iter()
        .map(|b| {
            let rows = b.num_rows() as u64;
            let ord: ArrayRef = Arc::new(UInt64Array::from_iter_values(next..next + rows));
            next += rows;
            let mut columns = b.columns().to_vec();
            columns.push(ord);
            RecordBatch::try_new(with_ord.clone(), columns)
                .map_err(|source| SinkError::Arrow { uri: uri.to_string(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let session = SessionContext::new();
    let mem = MemTable::try_new(with_ord, vec![batches]).map_err(|source| SinkError::query(uri, source))?;
    session.register_table("src", Arc::new(mem)).map_err(|source| SinkError::query(uri, source))?;
    Ok(session)
}

async fn register_target(uri: &str, session: &SessionContext, table: &DeltaTable) -> Result<(), SinkError> {
    table
        .update_datafusion_session(&session.state())
        .map_err(|source| SinkError::delta(uri, "read", source))?;
    let provider = table.table_provider().await.map_err(|source| SinkError::query(uri, source))?;
    session.register_table("tgt", provider).map_err(|source| SinkError::query(uri, source))?;
    Ok(())
}

/// One row per key: the highest `seq`, and among equals the last to arrive. MERGE fails
/// when two source rows match one target row, so this is required, not an optimisation.
async fn newest_per_key(
    uri: &str,
    session: &SessionContext,
    columns: &[String],
    keys: &[String],
    seq: Option<&str>,
) -> Result<DataFrame, SinkError> {
    let order = match seq {
        Some(seq) => format!("{} DESC NULLS LAST, {ORD} DESC", ident(seq)),
        None => format!("{ORD} DESC"),
    };
    let sql = format!(
        "SELECT {cols} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {order}) AS __weir_rn FROM src)
         WHERE __weir_rn = 1",
        cols = quoted(columns, ""),
        keys = quoted(keys, ""),
    );
    query(uri, session, &sql).await
}

async fn query(uri: &str, session: &SessionContext, sql: &str) -> Result<DataFrame, SinkError> {
    session.sql(sql).await.map_err(|source| SinkError::query(uri, source))
}

fn merge_on_keys(
    table: DeltaTable,
    source: DataFrame,
    keys: &[String],
    session: &SessionContext,
) -> MergeBuilder {
    let predicate = keys_match(keys);
    table
        .merge(source, predicate)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_session_state(Arc::new(session.state()))
}

/// Matches only the open (current) version of each key, and only flagged source rows.
fn merge_on_keys_open(
    table: DeltaTable,
    source: DataFrame,
    keys: &[String],
    session: &SessionContext,
    only: Option<Expr>,
) -> MergeBuilder {
    let mut predicate = keys_match(keys).and(target(END_AT).is_null());
    if let Some(only) = only {
        predicate = predicate.and(only);
    }
    table
        .merge(source, predicate)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_session_state(Arc::new(session.state()))
}

fn insert_all(
    uri: &str,
    merge: MergeBuilder,
    columns: &[String],
    predicate: Option<Expr>,
) -> Result<MergeBuilder, SinkError> {
    merge
        .when_not_matched_insert(|insert| {
            let insert = match predicate {
                Some(p) => insert.predicate(p),
                None => insert,
            };
            columns.iter().fold(insert, |i, c| i.set(unqualified(c), source_col(c)))
        })
        .map_err(|source| SinkError::delta(uri, "plan the merge", source))
}

async fn run_merge(
    uri: &str,
    merge: MergeBuilder,
    props: CommitProperties,
) -> Result<(DeltaTable, CommitStats), SinkError> {
    let (table, metrics): (DeltaTable, MergeMetrics) =
        merge.with_commit_properties(props).await.map_err(|source| SinkError::delta(uri, "merge", source))?;
    let stats = CommitStats {
        version: 0,
        inserted: metrics.num_target_rows_inserted as u64,
        updated: metrics.num_target_rows_updated as u64,
        deleted: metrics.num_target_rows_deleted as u64,
    };
    Ok((table, stats))
}

/// Rows the last write added, from the `operationMetrics` that delta-rs stores in its commitInfo.
async fn added_rows(uri: &str, table: &DeltaTable) -> Result<u64, SinkError> {
    let mut history = table.history(Some(1));
    let info =
        history.try_next().await.map_err(|source| SinkError::delta(uri, "read the history", source))?;
    Ok(info
        .and_then(|i| {
            i.info.get("operationMetrics").and_then(|m| m.get("num_added_rows")).and_then(|n| n.as_u64())
        })
        .unwrap_or(0))
}

/// Rows in the table, from the file statistics the log keeps.
pub(crate) fn row_count(uri: &str, table: &DeltaTable) -> Result<u64, SinkError> {
    let Ok(state) = table.snapshot() else {
        return Err(SinkError::delta(uri, "load the table", deltalake::DeltaTableError::NotInitialized));
    };
    Ok(state.log_data().iter().map(|f| f.num_records().unwrap_or(0) as u64).sum())
}

fn data_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != START_AT && f.name() != END_AT)
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn now_utc() -> Expr {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
}

/// A SQL identifier, quoted so that any column name (spaces, dots, quotes, capitals) is taken literally.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quoted(names: &[String], prefix: &str) -> String {
    names.iter().map(|n| format!("{prefix}{}", ident(n))).collect::<Vec<_>>().join(", ")
}

fn join_on(keys: &[String], left: &str, right: &str) -> String {
    keys.iter().map(|k| format!("{left}.{q} = {right}.{q}", q = ident(k))).collect::<Vec<_>>().join(" AND ")
}

// Columns are built, not parsed, so that names with dots or spaces stay one column.
fn target(name: &str) -> Expr {
    Expr::Column(Column::new(Some(TARGET), name))
}

fn source_col(name: &str) -> Expr {
    Expr::Column(Column::new(Some(SOURCE), name))
}

fn unqualified(name: &str) -> Column {
    Column::new_unqualified(name)
}

fn flag() -> Expr {
    source_col(FLAG)
}

fn keys_match(keys: &[String]) -> Expr {
    keys.iter().map(|k| target(k).eq(source_col(k))).reduce(Expr::and).unwrap_or(lit(false))
}
