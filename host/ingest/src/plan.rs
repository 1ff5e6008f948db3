//! Planning: what the connector says about each table of a spec, checked against the
//! destination, before anything is written. A bad spec, an unknown table or column, or a key
//! that is missing fails the whole run here, with no table touched.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_schema::{Field, FieldRef, Schema, SchemaRef};
use weir_delta::WriteMode;
use weir_runtime::{Capability, IngestionType, Session, TableMetadata};

use crate::IngestError;
use crate::spec::{Planned, ScdType};

/// The contract's field-metadata key for a stable source-column identifier.
pub const COLUMN_ID: &str = "column_id";

/// Primary key columns a table may have: each is a term of every MERGE's join predicate.
pub const MAX_KEYS: usize = 32;

/// A table ready to run: the plan plus what the connector said about it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Planned,
    /// The connector's schema, which its rows are keyed by.
    pub schema: SchemaRef,
    /// The same columns as the destination names them: renamed source fields keep their column.
    pub sink_schema: SchemaRef,
    /// The metadata, with the ingestion type as the table is written (APPEND_ONLY: append).
    pub metadata: TableMetadata,
    /// What the connector reads, before APPEND_ONLY overrides how it is written.
    pub source_ingestion: IngestionType,
    pub mode: WriteMode,
    pub delete_mode: Option<WriteMode>,
    pub uri: String,
    /// The Delta application id of the table's commits: `weir/<connection>/<destination>`.
    pub app_id: String,
    /// The table's partitions (contract 0.2), read concurrently; empty when it has none.
    pub partitions: Vec<String>,
    /// The destination columns a run that changed rows z-orders the table by (`cluster_by`).
    pub cluster_by: Vec<String>,
}

impl Prepared {
    /// How the user names this table in errors: source and destination.
    pub fn describe(&self) -> String {
        describe(&self.plan)
    }
}

pub(crate) fn describe(plan: &Planned) -> String {
    let namespace =
        if plan.namespace.is_empty() { String::new() } else { format!(" in {:?}", plan.namespace) };
    format!("table {:?}{namespace} (destination {})", plan.source_table, plan.destination_name())
}

/// Asks the connector about every table, and the destination about its current schema.
pub fn prepare(
    session: &mut Session,
    connection: &str,
    tables: Vec<Planned>,
    warehouse: &str,
    tokio: &tokio::runtime::Handle,
) -> Result<Vec<Prepared>, IngestError> {
    let mut out = Vec::new();
    for plan in tables {
        let what = describe(&plan);
        let fail = |message: String| IngestError::Plan { table: what.clone(), message };
        let call = |source| IngestError::Call { table: what.clone(), error: Box::new(source) };
        if !plan.namespace.is_empty() && !session.supports(Capability::Namespaces) {
            return Err(fail(format!(
                "connector {} has no namespaces; remove table_configuration.namespace",
                session.connector().manifest.name
            )));
        }
        let schema = session.arrow_schema(&plan.source_table, &plan.table_options).map_err(call)?;
        let metadata = session.table_metadata(&plan.source_table, &plan.table_options).map_err(call)?;
        let uri = format!("{warehouse}/{}", plan.destination.join("/"));
        let existing = tokio
            .block_on(weir_delta::table_schema(&uri))
            .map_err(|source| IngestError::Sink { table: what.clone(), error: source })?;
        let sink_schema = match existing {
            Some(existing) => keep_renamed_columns(&schema, &existing),
            None => schema.clone(),
        };
        // Keys may name a source field by its new name; the destination knows it by its old one.
        let dest = |name: &String| match schema.index_of(name) {
            Ok(i) => sink_schema.field(i).name().clone(),
            Err(_) => name.clone(),
        };
        let mut keys: Vec<String> = Vec::new();
        for key in plan.primary_keys.as_ref().unwrap_or(&metadata.primary_keys).iter().map(dest) {
            // A key named twice is one key; a repeated name must not become repeated terms.
            if !keys.contains(&key) {
                keys.push(key);
            }
            if keys.len() > MAX_KEYS {
                return Err(fail(format!(
                    "more than {MAX_KEYS} primary key columns; weir merges on at most {MAX_KEYS}"
                )));
            }
        }
        let sequence_by = plan.sequence_by.as_ref().or(metadata.cursor_field.as_ref()).map(dest);
        let cluster_by: Vec<String> = plan.cluster_by.iter().map(dest).collect();
        for column in keys.iter().chain(sequence_by.iter()).chain(cluster_by.iter()) {
            if sink_schema.field_with_name(column).is_err() {
                return Err(fail(format!(
                    "column {column:?} (a primary key, sequence_by or cluster_by) is not in the schema"
                )));
            }
        }
        for column in &cluster_by {
            let nested =
                sink_schema.field_with_name(column).map(|f| f.data_type().is_nested()).unwrap_or(false);
            if nested || column.contains('.') {
                return Err(fail(format!(
                    "cluster_by column {column:?} is {}; weir z-orders tables on top-level scalar \
                     columns only: name others in cluster_by",
                    if nested { "a struct, list or map" } else { "a name with a dot" }
                )));
            }
        }
        let ingestion = if plan.scd_type == ScdType::AppendOnly {
            IngestionType::Append
        } else {
            metadata.ingestion_type
        };
        if ingestion != IngestionType::Append && keys.is_empty() {
            return Err(fail("no primary keys; set table_configuration.primary_keys".into()));
        }
        let scd2 = plan.scd_type == ScdType::Type2;
        let scd2_sequence =
            || sequence_by.clone().ok_or_else(|| fail("SCD_TYPE_2 on a cdc table needs sequence_by".into()));
        let (mode, delete_mode) = match (ingestion, scd2) {
            (IngestionType::Append, _) => (WriteMode::Append, None),
            (IngestionType::Snapshot, false) => (WriteMode::Replace, None),
            (IngestionType::Snapshot, true) => (WriteMode::Scd2Snapshot { keys }, None),
            (IngestionType::Cdc, false) => (WriteMode::Upsert { keys, sequence_by }, None),
            (IngestionType::Cdc, true) => {
                (WriteMode::Scd2Upsert { keys, sequence_by: scd2_sequence()? }, None)
            }
            (IngestionType::CdcWithDeletes, false) => (
                WriteMode::Upsert { keys: keys.clone(), sequence_by: sequence_by.clone() },
                Some(WriteMode::Delete { keys, sequence_by }),
            ),
            (IngestionType::CdcWithDeletes, true) => {
                let seq = scd2_sequence()?;
                (
                    WriteMode::Scd2Upsert { keys: keys.clone(), sequence_by: seq.clone() },
                    Some(WriteMode::Scd2Delete { keys, sequence_by: seq }),
                )
            }
        };
        let partitions = if session.supports(Capability::Partitions) {
            session.list_partitions(&plan.source_table, &plan.table_options).map_err(call)?
        } else {
            Vec::new()
        };
        let app_id = format!("weir/{connection}/{}", plan.destination_name());
        out.push(Prepared {
            source_ingestion: metadata.ingestion_type,
            metadata: TableMetadata { ingestion_type: ingestion, ..metadata },
            plan,
            schema,
            sink_schema,
            mode,
            delete_mode,
            uri,
            app_id,
            partitions,
            cluster_by,
        });
    }
    Ok(out)
}

/// The incoming schema with each renamed source field under its existing destination name: a
/// field whose `column_id` matches an existing column's under another name takes that name,
/// unless an incoming field already carries it (then the source really has a column by that name).
pub fn keep_renamed_columns(incoming: &SchemaRef, existing: &Schema) -> SchemaRef {
    let column_id = |f: &Field| f.metadata().get(COLUMN_ID).cloned();
    let mut taken: HashSet<String> = incoming.fields().iter().map(|f| f.name().clone()).collect();
    let fields: Vec<FieldRef> = incoming
        .fields()
        .iter()
        .map(|f| {
            let old = column_id(f).and_then(|id| {
                existing.fields().iter().find(|e| column_id(e).as_ref() == Some(&id)).map(|e| e.name())
            });
            match old {
                Some(old) if old != f.name() && taken.insert(old.clone()) => {
                    Arc::new(f.as_ref().clone().with_name(old))
                }
                _ => f.clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, incoming.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    fn field(name: &str, id: Option<&str>) -> Field {
        let f = Field::new(name, DataType::Utf8, true);
        match id {
            Some(id) => f.with_metadata([(COLUMN_ID.to_string(), id.to_string())].into()),
            None => f,
        }
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn a_renamed_field_keeps_its_existing_column_by_column_id() {
        let existing = Schema::new(vec![
            field("id", None),
            field("contact_email", Some("fldA")),
            field("notes", Some("fldB")),
        ]);
        let incoming = Arc::new(Schema::new(vec![
            field("id", None),
            field("primary_contact_email", Some("fldA")),
            field("notes", Some("fldB")),
            field("new_field", Some("fldC")),
        ]));
        let out = keep_renamed_columns(&incoming, &existing);
        assert_eq!(names(&out), ["id", "contact_email", "notes", "new_field"]);
        assert_eq!(out.field(1).metadata().get(COLUMN_ID).map(String::as_str), Some("fldA"));
    }

    #[test]
    fn no_rename_onto_a_name_the_source_still_sends_or_without_a_matching_id() {
        let existing =
            Schema::new(vec![field("a", Some("fld1")), field("b", None), field("c", Some("fld3"))]);
        // fld1 is now "x" but the source also sends a new field called "a"; "y" has no id;
        // two incoming fields claim fld3, and only the first may take "c".
        let incoming = Arc::new(Schema::new(vec![
            field("x", Some("fld1")),
            field("a", Some("fld9")),
            field("y", None),
            field("z", Some("fld3")),
            field("w", Some("fld3")),
        ]));
        let out = keep_renamed_columns(&incoming, &existing);
        assert_eq!(names(&out), ["x", "a", "y", "c", "w"]);
    }
}
