//! Schema evolution at open time, and fitting each commit's batches to the table's schema.
//!
//! Evolution happens once, in [`crate::DeltaSink::open`], as its own commit. It changes no
//! rows (adding a column, or rewriting the same rows in a wider type), so a crash before or
//! after it leaves `last_checkpoint` describing the data exactly as before.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::DeltaTable;
use deltalake::arrow::compute::cast;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{MetadataValue, StructType};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;

use crate::{END_AT, START_AT, SinkError, WriteMode};

/// The table schema a sink needs: the caller's columns, plus the SCD2 history columns.
pub(crate) fn target_schema(uri: &str, schema: &Schema, mode: &WriteMode) -> Result<SchemaRef, SinkError> {
    for key in mode.key_columns() {
        column_type(uri, schema, key)?;
    }
    let history_type = match mode {
        WriteMode::Scd2Snapshot { .. } => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        }
        WriteMode::Scd2Upsert { sequence_by, .. } | WriteMode::Scd2Delete { sequence_by, .. } => {
            Some(column_type(uri, schema, sequence_by)?)
        }
        WriteMode::Upsert { sequence_by: Some(sequence_by), .. }
        | WriteMode::Delete { sequence_by: Some(sequence_by), .. } => {
            column_type(uri, schema, sequence_by)?;
            None
        }
        _ => None,
    };
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != START_AT && f.name() != END_AT)
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(ty) = history_type {
        fields.push(Field::new(START_AT, ty.clone(), true));
        fields.push(Field::new(END_AT, ty, true));
    }
    normalize(uri, &Schema::new(fields))
}

fn column_type(uri: &str, schema: &Schema, name: &str) -> Result<DataType, SinkError> {
    schema
        .field_with_name(name)
        .map(|f| f.data_type().clone())
        .map_err(|_| SinkError::MissingColumn { uri: uri.to_string(), column: name.to_string() })
}

/// Round-trips a schema through Delta's types, so that two schemas compare by what Delta
/// stores (a string is a string whether it arrived as Utf8 or LargeUtf8).
fn normalize(uri: &str, schema: &Schema) -> Result<SchemaRef, SinkError> {
    let kernel: StructType = schema.try_into_kernel().map_err(|source| arrow_err(uri, source))?;
    kernel_to_arrow(uri, &kernel)
}

pub(crate) fn kernel_to_arrow(uri: &str, kernel: &StructType) -> Result<SchemaRef, SinkError> {
    let arrow: Schema = kernel.try_into_arrow().map_err(|source| arrow_err(uri, source))?;
    Ok(Arc::new(arrow))
}

fn arrow_err(uri: &str, source: arrow_schema::ArrowError) -> SinkError {
    SinkError::Arrow { uri: uri.to_string(), source }
}

/// The current schema of a loaded table, in Arrow.
pub(crate) fn table_schema(uri: &str, table: &DeltaTable) -> Result<SchemaRef, SinkError> {
    let state = table.snapshot().map_err(|source| SinkError::delta(uri, "read the schema", source))?;
    kernel_to_arrow(uri, state.schema().as_ref())
}

/// Whether a column stored as `from` can be rewritten as `to` without losing a value.
pub(crate) fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (Int8, Int16 | Int32 | Int64) | (Int16, Int32 | Int64) | (Int32, Int64) => true,
        (Float32, Float64) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => s1 == s2 && p2 > p1,
        _ => false,
    }
}

/// Brings an existing table up to `target`: adds new columns, widens types, drops NOT NULL
/// where `target` allows nulls, and takes `target`'s column metadata over the stored one (a
/// column keeps keys `target` lacks). Columns missing from `target` stay in the table.
///
/// Widening is a full rewrite (every row is read and written again, in one overwrite commit),
/// because Delta readers without the typeWidening feature cannot read a changed type in place.
pub(crate) async fn evolve(uri: &str, table: DeltaTable, target: &Schema) -> Result<DeltaTable, SinkError> {
    let current = table_schema(uri, &table)?;
    let mut widened: Vec<Field> = Vec::with_capacity(current.fields().len());
    let mut needs_rewrite = false;
    let mut not_null_to_drop = Vec::new();
    let mut metadata_changed = Vec::new();
    for field in current.fields() {
        let Ok(wanted) = target.field_with_name(field.name()) else {
            widened.push(field.as_ref().clone());
            continue;
        };
        let (have, want) = (field.data_type(), wanted.data_type());
        let ty = if have == want || widens(want, have) {
            // A narrower incoming type is cast up on every commit.
            have.clone()
        } else if widens(have, want) {
            needs_rewrite = true;
            want.clone()
        } else {
            return Err(SinkError::IncompatibleType {
                uri: uri.to_string(),
                column: field.name().clone(),
                table_type: have.to_string(),
                new_type: want.to_string(),
            });
        };
        if wanted.is_nullable() && !field.is_nullable() {
            not_null_to_drop.push(field.name().clone());
        }
        // The column keeps its metadata (`column_id` matches renames by it), with the incoming
        // values over the stored ones: a renamed source field's name follows the rename.
        let mut metadata = field.metadata().clone();
        metadata.extend(
            wanted
                .metadata()
                .iter()
                .filter(|(k, _)| !k.starts_with("delta."))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if &metadata != field.metadata() {
            metadata_changed.push(field.name().clone());
        }
        widened.push(field.as_ref().clone().with_data_type(ty).with_metadata(metadata));
    }
    let added: Vec<Field> = target
        .fields()
        .iter()
        .filter(|f| current.field_with_name(f.name()).is_err())
        // A column that older rows lack must accept null.
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();

    let mut table = table;
    if needs_rewrite {
        let mut fields = widened;
        fields.extend(added);
        return rewrite(uri, table, Arc::new(Schema::new(fields))).await;
    }
    if !added.is_empty() {
        let kernel: StructType =
            (&Schema::new(added)).try_into_kernel().map_err(|source| arrow_err(uri, source))?;
        table = table
            .add_columns()
            .with_fields(kernel.fields().cloned().collect::<Vec<_>>())
            .with_commit_properties(schema_commit("add columns"))
            .await
            .map_err(|source| SinkError::delta(uri, "add columns", source))?;
    }
    if !metadata_changed.is_empty() {
        let kernel: StructType = target.try_into_kernel().map_err(|source| arrow_err(uri, source))?;
        for column in metadata_changed {
            let Some(field) = kernel.field(&column) else { continue };
            let metadata: HashMap<String, MetadataValue> = field
                .metadata()
                .iter()
                .filter(|(k, _)| !k.starts_with("delta."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            table = table
                .update_field_metadata()
                .with_field_name(&column)
                .with_metadata(metadata)
                .with_commit_properties(schema_commit("column metadata"))
                .await
                .map_err(|source| SinkError::delta(uri, "update column metadata", source))?;
        }
    }
    for column in not_null_to_drop {
        table = table
            .drop_column_not_null()
            .with_column(column)
            .with_commit_properties(schema_commit("drop not null"))
            .await
            .map_err(|source| SinkError::delta(uri, "drop NOT NULL", source))?;
    }
    Ok(table)
}

fn schema_commit(what: &str) -> CommitProperties {
    CommitProperties::default().with_metadata([("weir.schema".to_string(), what.into())])
}

async fn rewrite(uri: &str, table: DeltaTable, schema: SchemaRef) -> Result<DeltaTable, SinkError> {
    let batches = read_all(uri, &table).await?;
    let batches = conform(uri, batches, &schema)?;
    let batches = if batches.is_empty() { vec![RecordBatch::new_empty(schema)] } else { batches };
    table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Overwrite)
        .with_commit_properties(schema_commit("widen types"))
        .await
        .map_err(|source| SinkError::delta(uri, "rewrite with widened types", source))
}

/// Every row of the table's current version.
pub(crate) async fn read_all(uri: &str, table: &DeltaTable) -> Result<Vec<RecordBatch>, SinkError> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(|source| SinkError::delta(uri, "read", source))?;
    let provider = table.table_provider().await.map_err(|source| SinkError::query(uri, source))?;
    ctx.read_table(provider)
        .map_err(|source| SinkError::query(uri, source))?
        .collect()
        .await
        .map_err(|source| SinkError::query(uri, source))
}

/// Fits batches to `schema`: columns are matched by name and cast (only ever up, since
/// [`evolve`] ran), columns the batch lacks become null. A batch column the schema lacks is
/// an error, since silently dropping it would lose data.
pub(crate) fn conform(
    uri: &str,
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, SinkError> {
    batches
        .into_iter()
        .map(|batch| {
            for field in batch.schema().fields() {
                if schema.field_with_name(field.name()).is_err() {
                    return Err(SinkError::UnknownColumn {
                        uri: uri.to_string(),
                        column: field.name().clone(),
                    });
                }
            }
            let columns = schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                    Some(column) => cast(column, field.data_type()).map_err(|source| arrow_err(uri, source)),
                    None => Ok(new_null_array(field.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns).map_err(|source| arrow_err(uri, source))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_lossless_only() {
        assert!(widens(&DataType::Int32, &DataType::Int64));
        assert!(widens(&DataType::Float32, &DataType::Float64));
        assert!(widens(&DataType::Decimal128(10, 2), &DataType::Decimal128(12, 2)));
        assert!(!widens(&DataType::Decimal128(10, 2), &DataType::Decimal128(12, 3)));
        assert!(!widens(&DataType::Int64, &DataType::Int32));
        assert!(!widens(&DataType::Date32, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))));
        assert!(!widens(&DataType::Utf8, &DataType::Int64));
    }
}
