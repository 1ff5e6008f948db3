//! From Airtable's meta API to columns: types, names, the Spark schema, and the cursor.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weir_connector_sdk::{ConnectorError, IngestionType, TableMetadata};

use crate::options::{Naming, TableOptions};
use crate::rows::Layout;

/// `GET /v0/meta/bases/{baseId}/tables`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BaseMeta {
    pub tables: Vec<TableMeta>,
}

/// One table of the meta response.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TableMeta {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub fields: Vec<FieldMeta>,
}

/// One field of a table; `options` stays loose JSON so a new option shape never fails a read.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FieldMeta {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: Option<Value>,
}

impl BaseMeta {
    /// The table addressed by id or by name.
    pub(crate) fn table(&self, table: &str) -> Result<&TableMeta, ConnectorError> {
        self.tables
            .iter()
            .find(|t| t.id == table)
            .or_else(|| self.tables.iter().find(|t| t.name == table))
            .ok_or_else(|| ConnectorError::UnknownTable(table.to_string()))
    }
}

/// A nested struct member: its column name, the key in Airtable's object, its type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub name: &'static str,
    pub key: &'static str,
    pub kind: Kind,
}

/// A column's type, which decides both its Spark type and how cells are shaped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    String,
    Long,
    Double,
    /// decimal(38, scale)
    Decimal(u32),
    Boolean,
    Date,
    Timestamp,
    /// A string column holding the JSON text of a value of a type we don't know.
    Json,
    Array(Box<Kind>),
    Struct(Vec<Member>),
}

fn member(name: &'static str, key: &'static str, kind: Kind) -> Member {
    Member { name, key, kind }
}

fn collaborator() -> Kind {
    Kind::Struct(vec![
        member("id", "id", Kind::String),
        member("email", "email", Kind::String),
        member("name", "name", Kind::String),
    ])
}

fn thumbnail() -> Kind {
    Kind::Struct(vec![
        member("url", "url", Kind::String),
        member("width", "width", Kind::Long),
        member("height", "height", Kind::Long),
    ])
}

fn attachment() -> Kind {
    Kind::Struct(vec![
        member("id", "id", Kind::String),
        member("url", "url", Kind::String),
        member("filename", "filename", Kind::String),
        member("size", "size", Kind::Long),
        member("type", "type", Kind::String),
        member("width", "width", Kind::Long),
        member("height", "height", Kind::Long),
        member(
            "thumbnails",
            "thumbnails",
            Kind::Struct(vec![
                member("small", "small", thumbnail()),
                member("large", "large", thumbnail()),
                member("full", "full", thumbnail()),
            ]),
        ),
    ])
}

fn number(options: Option<&Value>) -> Kind {
    match options.and_then(|o| o.get("precision")).and_then(Value::as_u64) {
        Some(p) if p <= 38 => Kind::Decimal(p as u32),
        _ => Kind::Double,
    }
}

/// The type of a computed field's value, from its `options.result` (`{type, options}`).
fn result_kind(options: Option<&Value>) -> Option<Kind> {
    let result = options?.get("result")?;
    let kind = result.get("type")?.as_str()?;
    Some(kind_of(kind, result.get("options")))
}

/// Airtable field type → column type, as the table in AIRTABLE.md says.
pub(crate) fn kind_of(kind: &str, options: Option<&Value>) -> Kind {
    match kind {
        "singleLineText" | "email" | "url" | "phoneNumber" | "multilineText" | "richText"
        | "singleSelect" | "externalSyncSource" => Kind::String,
        "multipleSelects" | "multipleRecordLinks" => Kind::Array(Box::new(Kind::String)),
        "number" | "currency" => number(options),
        "percent" | "duration" => Kind::Double,
        "autoNumber" | "count" | "rating" => Kind::Long,
        "checkbox" => Kind::Boolean,
        "date" => Kind::Date,
        "dateTime" => Kind::Timestamp,
        "createdTime" | "lastModifiedTime" => match result_kind(options) {
            Some(Kind::Date) => Kind::Date,
            _ => Kind::Timestamp,
        },
        "singleCollaborator" | "createdBy" | "lastModifiedBy" => collaborator(),
        "multipleCollaborators" => Kind::Array(Box::new(collaborator())),
        "multipleAttachments" => Kind::Array(Box::new(attachment())),
        "barcode" => {
            Kind::Struct(vec![member("text", "text", Kind::String), member("type", "type", Kind::String)])
        }
        "button" => {
            Kind::Struct(vec![member("label", "label", Kind::String), member("url", "url", Kind::String)])
        }
        "aiText" => Kind::Struct(vec![
            member("state", "state", Kind::String),
            member("is_stale", "isStale", Kind::Boolean),
            member("value", "value", Kind::String),
            member("error_type", "errorType", Kind::String),
        ]),
        "formula" | "rollup" => result_kind(options).unwrap_or(Kind::Json),
        // Airtable flattens looked-up arrays (links, selects, attachments) into one array.
        "multipleLookupValues" => match result_kind(options) {
            None | Some(Kind::Json) => Kind::Json,
            Some(Kind::Array(inner)) => Kind::Array(inner),
            Some(inner) => Kind::Array(Box::new(inner)),
        },
        _ => Kind::Json,
    }
}

/// The Spark JSON type of a kind (`StructType.json()` format).
pub(crate) fn spark_type(kind: &Kind) -> Value {
    match kind {
        Kind::String | Kind::Json => json!("string"),
        Kind::Long => json!("long"),
        Kind::Double => json!("double"),
        Kind::Decimal(scale) => json!(format!("decimal(38,{scale})")),
        Kind::Boolean => json!("boolean"),
        Kind::Date => json!("date"),
        Kind::Timestamp => json!("timestamp"),
        Kind::Array(inner) => {
            json!({"type": "array", "elementType": spark_type(inner), "containsNull": true})
        }
        Kind::Struct(members) => json!({
            "type": "struct",
            "fields": members
                .iter()
                .map(|m| json!({"name": m.name, "type": spark_type(&m.kind), "nullable": true, "metadata": {}}))
                .collect::<Vec<_>>(),
        }),
    }
}

/// A field's column name in snake_case: lowercase ASCII letters, digits and `_`.
///
/// Word boundaries are punctuation, spaces, emoji and camelCase humps; apostrophes vanish
/// so "Owner's" reads "owners".
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().filter(|c| !matches!(c, '\'' | '’')).collect();
    let mut out = String::with_capacity(name.len());
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            out.push('_');
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            // "SKUs", "IDs": a lone plural s after an acronym belongs to it.
            let plural =
                chars.get(i + 1) == Some(&'s') && !chars.get(i + 2).is_some_and(char::is_ascii_lowercase);
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase) && !plural;
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if !(c == '_' && (collapsed.is_empty() || collapsed.ends_with('_'))) {
            collapsed.push(c);
        }
    }
    let trimmed = collapsed.trim_end_matches('_');
    if trimmed.is_empty() {
        "field".to_string()
    } else if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{trimmed}")
    } else {
        trimmed.to_string()
    }
}

/// The system columns every table starts with.
pub(crate) const ID: &str = "id";
pub(crate) const CREATED_TIME: &str = "created_time";

/// Column names for `fields`, in order, unique even case-insensitively (Spark's rule).
pub(crate) fn column_names(fields: &[FieldMeta], naming: Naming) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> = [ID.to_string(), CREATED_TIME.to_string()].into();
    fields
        .iter()
        .map(|f| {
            let base = match naming {
                Naming::Snake => snake_case(&f.name),
                Naming::Original => f.name.clone(),
            };
            let mut name = base.clone();
            let mut n = 2;
            while !taken.insert(name.to_lowercase()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// One field's column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub field_id: String,
    pub field_name: String,
    pub airtable_type: String,
    pub kind: Kind,
    /// Formula, rollup and lookup cells can hold error values (`#ERROR!`) that become null.
    pub computed: bool,
    /// Airtable omits `false`, so an absent cell of a boolean field means false.
    pub absent_is_false: bool,
}

/// The cdc cursor: its column, and the field name formulas refer to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub column: String,
    pub field_id: String,
    pub field_name: String,
}

/// Everything a call needs to know about one table under its options.
#[derive(Debug)]
pub(crate) struct Plan {
    pub table_id: String,
    pub table_name: String,
    /// The columns read, in Airtable's field order (the system columns come first, implicitly).
    pub columns: Vec<Column>,
    /// Some for cdc tables.
    pub cursor: Option<Cursor>,
    /// Field ids for `fields[]`, when the options restrict the fields.
    pub requested_fields: Option<Vec<String>>,
    /// Deletes are read through a webhook (`cdc_with_deletes`).
    pub deletes: bool,
    /// How the columns' pages are built.
    pub layout: Layout,
}

impl Plan {
    pub(crate) fn new(table: &TableMeta, options: &TableOptions) -> Result<Plan, ConnectorError> {
        let names = column_names(&table.fields, options.column_names);
        let all: Vec<Column> = table
            .fields
            .iter()
            .zip(names)
            .map(|(f, name)| {
                let kind = kind_of(&f.kind, f.options.as_ref());
                Column {
                    name,
                    field_id: f.id.clone(),
                    field_name: f.name.clone(),
                    airtable_type: f.kind.clone(),
                    computed: matches!(f.kind.as_str(), "formula" | "rollup" | "multipleLookupValues"),
                    absent_is_false: kind == Kind::Boolean,
                    kind,
                }
            })
            .collect();

        let cursor = match &options.cursor_field {
            Some(wanted) => {
                let column = find_column(&all, wanted).ok_or_else(|| {
                    ConnectorError::InvalidOptions(format!(
                        "cursor_field {wanted:?} is not a column, field name or field id of table {:?}",
                        table.name
                    ))
                })?;
                if !matches!(column.kind, Kind::Timestamp | Kind::Date) {
                    return Err(ConnectorError::InvalidOptions(format!(
                        "cursor_field {wanted:?} must be a date or time field; {:?} is {}",
                        column.field_name, column.airtable_type
                    )));
                }
                Some(column)
            }
            None => {
                all.iter().find(|c| c.airtable_type == "lastModifiedTime" && watches_all_fields(table, c))
            }
        }
        .map(|c| Cursor {
            column: c.name.clone(),
            field_id: c.field_id.clone(),
            field_name: c.field_name.clone(),
        });

        let (columns, requested_fields) = match &options.fields {
            None => (all, None),
            Some(wanted) => {
                let mut ids = Vec::new();
                for w in wanted {
                    let c = all
                        .iter()
                        .find(|c| c.field_name == *w || c.field_id == *w)
                        .or_else(|| all.iter().find(|c| c.field_name.trim() == w.trim()))
                        .ok_or_else(|| {
                            ConnectorError::InvalidOptions(format!(
                                "fields names {w:?}, which is not a field of table {:?}",
                                table.name
                            ))
                        })?;
                    ids.push(c.field_id.clone());
                }
                // The cursor's values are what moves the offset, so a cdc read always needs them.
                if let Some(cursor) = &cursor {
                    ids.push(cursor.field_id.clone());
                }
                let columns: Vec<Column> = all.into_iter().filter(|c| ids.contains(&c.field_id)).collect();
                let ids = columns.iter().map(|c| c.field_id.clone()).collect();
                (columns, Some(ids))
            }
        };
        if options.deletes && cursor.is_none() {
            return Err(ConnectorError::InvalidOptions(format!(
                "deletes = \"webhook\" needs a cdc table, and table {:?} has no lastModifiedTime field that \
                 watches every field; set cursor_field, or drop deletes (a snapshot table loses deleted rows \
                 on every read anyway)",
                table.name
            )));
        }
        Ok(Plan {
            table_id: table.id.clone(),
            table_name: table.name.clone(),
            layout: Layout::new(&columns),
            columns,
            cursor,
            requested_fields,
            deletes: options.deletes,
        })
    }

    /// The Spark JSON schema (`StructType.json()`).
    pub(crate) fn schema_json(&self) -> String {
        let mut fields = vec![
            json!({"name": ID, "type": "string", "nullable": false, "metadata": {}}),
            json!({"name": CREATED_TIME, "type": "timestamp", "nullable": true, "metadata": {}}),
        ];
        for c in &self.columns {
            let mut metadata = Map::new();
            // The contract's stable column identifier: the host keeps the column across renames.
            metadata.insert("column_id".into(), json!(c.field_id));
            metadata.insert("airtable_field_id".into(), json!(c.field_id));
            metadata.insert("airtable_field_name".into(), json!(c.field_name));
            metadata.insert("airtable_type".into(), json!(c.airtable_type));
            fields.push(
                json!({"name": c.name, "type": spark_type(&c.kind), "nullable": true, "metadata": metadata}),
            );
        }
        json!({"type": "struct", "fields": fields}).to_string()
    }

    /// Upstream `read_table_metadata`: cdc on the cursor when there is one.
    pub(crate) fn metadata(&self) -> TableMetadata {
        TableMetadata {
            primary_keys: vec![ID.to_string()],
            cursor_field: self.cursor.as_ref().map(|c| c.column.clone()),
            ingestion_type: match (&self.cursor, self.deletes) {
                (Some(_), true) => IngestionType::CdcWithDeletes,
                (Some(_), false) => IngestionType::Cdc,
                (None, _) => IngestionType::Snapshot,
            },
        }
    }
}

fn find_column<'a>(columns: &'a [Column], wanted: &str) -> Option<&'a Column> {
    columns
        .iter()
        .find(|c| c.name == wanted)
        .or_else(|| columns.iter().find(|c| c.field_name == wanted))
        .or_else(|| columns.iter().find(|c| c.field_id == wanted))
}

/// A lastModifiedTime field watches every field only when `referencedFieldIds` is empty or absent.
fn watches_all_fields(table: &TableMeta, column: &Column) -> bool {
    let field = table.fields.iter().find(|f| f.id == column.field_id);
    let referenced = field.and_then(|f| f.options.as_ref()).and_then(|o| o.get("referencedFieldIds"));
    match referenced {
        None | Some(Value::Null) => true,
        Some(Value::Array(ids)) => ids.is_empty(),
        Some(_) => false,
    }
}
