//! Arrow IPC pages: read, checked against the table's schema, and relabelled with it.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, ListArray, MapArray, RecordBatch, RecordBatchOptions, StructArray, new_null_array,
};
use arrow_ipc::reader::StreamReader;
use arrow_schema::{ArrowError, DataType, Field, SchemaRef};

use crate::schema::type_name;
use crate::{ConvertError, UnknownFields};

/// Reads one IPC stream. Columns are matched by name: a missing nullable column becomes nulls, and a
/// column the schema lacks is counted as an unknown field and dropped, as for JSON records.
pub(crate) fn stream(
    schema: &SchemaRef,
    stream: &[u8],
    unknown: &mut UnknownFields,
) -> Result<Vec<RecordBatch>, ConvertError> {
    let reader = StreamReader::try_new(Cursor::new(stream), None).map_err(ipc_error)?;
    let found = reader.schema();
    let mut plan = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let index = found.index_of(field.name()).ok();
        if let Some(index) = index {
            let found_type = found.field(index).data_type();
            if !compatible(field.data_type(), found_type) {
                return Err(ConvertError::IpcMismatch {
                    column: field.name().clone(),
                    expected: type_name(field.data_type()),
                    found: type_name(found_type),
                });
            }
        }
        plan.push(index);
    }
    let extra: Vec<usize> = (0..found.fields().len())
        .filter(|i| schema.fields().find(found.field(*i).name()).is_none())
        .collect();

    let mut batches = Vec::new();
    let mut rows_before = 0;
    for batch in reader {
        let batch = batch.map_err(ipc_error)?;
        let rows = batch.num_rows();
        let mut columns = Vec::with_capacity(plan.len());
        for (field, index) in schema.fields().iter().zip(&plan) {
            let column = match index {
                Some(index) => relabel(batch.column(*index), field.data_type())
                    .map_err(|source| ConvertError::Arrow { column: field.name().clone(), source })?,
                None => new_null_array(field.data_type(), rows),
            };
            if !field.is_nullable() && column.null_count() > 0 {
                let first = (0..rows).find(|i| column.is_null(*i)).unwrap_or(0);
                return Err(ConvertError::NullInNonNullable {
                    column: field.name().clone(),
                    row: rows_before + first,
                    expected: type_name(field.data_type()),
                    found: if index.is_some() { "null" } else { "no such column" }.to_string(),
                });
            }
            columns.push(column);
        }
        for index in &extra {
            unknown.record("", found.field(*index).name(), rows as u64);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(|source| ConvertError::Arrow { column: String::new(), source })?;
        batches.push(batch);
        rows_before += rows;
    }
    Ok(batches)
}

fn ipc_error(error: ArrowError) -> ConvertError {
    ConvertError::Ipc { message: error.to_string() }
}

/// Same types, with struct field names compared but list item and map entry names ignored: pyarrow
/// and arrow-rs call a list's item "item" where this crate says "element". A nested field the schema
/// declares non-nullable must be non-nullable in the stream too.
fn compatible(expected: &DataType, found: &DataType) -> bool {
    let nested = |e: &Field, f: &Field| {
        (e.is_nullable() || !f.is_nullable()) && compatible(e.data_type(), f.data_type())
    };
    match (expected, found) {
        (DataType::List(e), DataType::List(f)) => nested(e, f),
        (DataType::Struct(e), DataType::Struct(f)) => {
            e.len() == f.len() && e.iter().zip(f).all(|(e, f)| e.name() == f.name() && nested(e, f))
        }
        (DataType::Map(e, _), DataType::Map(f, _)) => match (e.data_type(), f.data_type()) {
            (DataType::Struct(e), DataType::Struct(f)) => {
                e.len() == 2 && f.len() == 2 && e.iter().zip(f).all(|(e, f)| nested(e, f))
            }
            _ => false,
        },
        _ => expected == found,
    }
}

/// Rebuilds nested arrays under the schema's field names, so every batch carries exactly the schema.
fn relabel(array: &ArrayRef, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
    let wrong = || ArrowError::SchemaError(format!("expected {data_type}, found {}", array.data_type()));
    Ok(match data_type {
        DataType::List(item) => {
            let (_, offsets, values, nulls) =
                array.as_list_opt::<i32>().ok_or_else(wrong)?.clone().into_parts();
            let values = relabel(&values, item.data_type())?;
            Arc::new(ListArray::try_new(item.clone(), offsets, values, nulls)?)
        }
        DataType::Struct(fields) => {
            let (_, children, nulls) = array.as_struct_opt().ok_or_else(wrong)?.clone().into_parts();
            let children = children
                .iter()
                .zip(fields)
                .map(|(child, field)| relabel(child, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new_with_length(fields.clone(), children, nulls, array.len())?)
        }
        DataType::Map(entries, sorted) => {
            let (_, offsets, entry_array, nulls, _) =
                array.as_map_opt().ok_or_else(wrong)?.clone().into_parts();
            let entry_array: ArrayRef = Arc::new(entry_array);
            let entry_array = relabel(&entry_array, entries.data_type())?;
            let entry_array = entry_array.as_struct_opt().ok_or_else(wrong)?.clone();
            Arc::new(MapArray::try_new(entries.clone(), offsets, entry_array, nulls, *sorted)?)
        }
        _ => array.clone(),
    })
}
