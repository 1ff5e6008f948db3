//! Converts what a connector returns into Arrow, typed by the table's schema.
//!
//! A connector describes a table with Spark's JSON schema string (what PySpark's
//! `StructType.json()` writes) and returns pages of rows as JSON Lines or as an Arrow IPC stream.
//! [`arrow_schema()`] turns the schema into an Arrow schema, [`spark_json`] turns it back, and a
//! [`Converter`] turns each page into record batches of exactly that schema, counting the fields
//! the schema does not know instead of dropping them silently.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::cast::AsArray;
//! use arrow_array::types::Int64Type;
//!
//! let schema = weir_convert::arrow_schema(
//!     r#"{"type":"struct","fields":[
//!         {"name":"id","type":"string","nullable":false,"metadata":{}},
//!         {"name":"n","type":"long","nullable":true,"metadata":{}}]}"#,
//! )?;
//! let mut converter = weir_convert::Converter::new(Arc::new(schema));
//! let batch = converter.json_lines(b"{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\",\"n\":\"2\",\"extra\":true}\n")?;
//! assert_eq!(batch.num_rows(), 2);
//! assert_eq!(batch.column(1).as_primitive::<Int64Type>().value(1), 2);
//! assert_eq!(converter.unknown_fields().get("extra"), Some(&1));
//! # Ok::<(), weir_convert::ConvertError>(())
//! ```
//!
//! # Types
//!
//! | Spark JSON type | Arrow type |
//! |---|---|
//! | `string` | `Utf8` |
//! | `long`, `integer`, `short`, `byte` | `Int64`, `Int32`, `Int16`, `Int8` |
//! | `double`, `float` | `Float64`, `Float32` |
//! | `boolean` | `Boolean` |
//! | `date` | `Date32` |
//! | `timestamp` | `Timestamp(Microsecond, Some("UTC"))` |
//! | `timestamp_ntz` | `Timestamp(Microsecond, None)` |
//! | `decimal(p,s)` (bare `decimal` is `decimal(10,0)`) | `Decimal128(p, s)` |
//! | `binary` | `Binary` |
//! | `{"type":"array","elementType":T,"containsNull":b}` | `List`, item field `element`, nullable = `b` |
//! | `{"type":"struct","fields":[…]}` | `Struct` |
//! | `{"type":"map","keyType":K,"valueType":V,"valueContainsNull":b}` | `Map`, entries `key_value` with non-null `key` and `value` (nullable = `b`) |
//! | `null`, `void` | `Null` |
//!
//! Any other type (`char(n)`, `interval`, `variant`, a UDT…) is rejected with an error naming the
//! type and the column. Field metadata becomes Arrow field metadata; Arrow metadata only holds
//! strings, so a non-string metadata value is kept as its JSON text and [`spark_json`] writes it back
//! as a string. `spark_json` writes fields as `name`, `type`, `nullable`, `metadata`, like Spark does.
//!
//! # Coercions (JSON Lines)
//!
//! Each line is one record, a JSON object keyed by column name; blank lines are skipped. Errors give
//! the record's 0-based index among the page's non-blank lines, and the column as a path: `owner.name`
//! for a struct field, `tags[]` for a list's elements, `m.key` / `m.value` for a map's keys and values.
//!
//! | column type | accepted | rejected (an error) |
//! |---|---|---|
//! | any | missing key or `null` → null | null in a non-nullable column (unless an enclosing struct is null) |
//! | string | a string as is; a number or boolean as its JSON text; an object or array as its compact JSON text | — |
//! | long, integer, short, byte | an integer in range; a float with zero fraction (`3.0`); a string holding an integer (`"42"`) | a fraction, out of range, a boolean, `"4.0"` |
//! | double, float | a number; a string Rust reads as a float, including `"NaN"`, `"Infinity"`, `"-Infinity"` | other strings, booleans; for float, a finite value beyond f32's range |
//! | decimal(p,s) | a number (from its shortest decimal text) or a numeric string, exactly, scaled to `s` digits rounding half away from zero | more than `p` digits after scaling, non-numeric text |
//! | boolean | `true`/`false`; the strings `"true"`/`"false"` in any case | everything else: `1`, `"yes"`, `""`, objects — never truthiness |
//! | date | `"YYYY-MM-DD"`; an RFC 3339 timestamp, taking its UTC date | numbers, other strings |
//! | timestamp (UTC) | RFC 3339 / ISO 8601 with an offset (`Z`, `±hh:mm`, `±hhmm`), converted to UTC; without an offset (`2024-01-02T03:04:05`, a space separator, or a bare date) it is read **as UTC**; a number is epoch seconds (fraction allowed) in UTC — never local time | other strings, booleans |
//! | timestamp_ntz | the wall-clock date and time as written: an offset, if present, is **dropped, not applied** (`10:00+02:00` stays `10:00`); a number is epoch seconds as a UTC wall clock | other strings, booleans |
//! | binary | base64, standard alphabet, padded | anything else |
//! | array | a JSON array, elements converted by the element type | a non-array |
//! | struct | a JSON object, converted field by field; keys not in the struct are counted under their path (`owner.avatar`) and dropped | a non-object |
//! | map | a JSON object: keys (always strings; converted by the key type's rules), values by the value type, in record order | a non-object |
//! | null/void | null | any value |
//!
//! Top-level keys that are not columns are counted the same way. [`Converter::unknown_fields`] holds
//! the counts, and each new path is logged once, at warn level.
//!
//! # Arrow IPC pages
//!
//! [`Converter::arrow_ipc`] matches columns by name. Types must be equal, except that list item and
//! map entry field names may differ (pyarrow says `item`); batches come back labelled with the table's
//! schema. A missing nullable column becomes nulls; a column not in the schema is counted as an
//! unknown field (once per row) and dropped; a null in a non-nullable column is an error. Batches
//! without rows are dropped.
//!
//! The stream is untrusted, so it is read by this crate's own checked decoder, not arrow-ipc's
//! reader (which panics or aborts on lying lengths): each message's metadata and body length is
//! checked against the page, its flatbuffer verified, every buffer checked to lie inside its body
//! without overlapping another, every node's length and null count checked, and every array
//! validated in full before use. LZ4 frame and ZSTD body compression are supported and inflated
//! within [`Limits::max_decompressed_bytes`]. Only the columns the table has are decoded; the others,
//! and dictionary batches, are skipped unread (a dictionary-encoded column never matches a table
//! column). Anything malformed is a [`ConvertError::Ipc`] that says what and where.
//!
//! # Limits
//!
//! Schemas and pages come from an untrusted guest and are converted in the host, outside the guest's
//! CPU and memory limits, so every cost is bounded before it is spent, and a breach is a
//! [`ConvertError::LimitExceeded`] naming the limit. [`Converter::new`] and [`arrow_schema()`] use the
//! defaults; [`Converter::with_limits`] and [`arrow_schema_with_limits`] take others.
//!
//! | limit | default | bounds |
//! |---|---|---|
//! | [`max_rows`](Limits::max_rows) | 1,000,000 | rows in one page |
//! | [`max_cells`](Limits::max_cells) | 16,777,216 (2^24) | cells in one page: each row, each column of each row, and each value nested in lists, maps and structs |
//! | [`max_decompressed_bytes`](Limits::max_decompressed_bytes) | 64 MiB (twice the runtime's default page limit; see [`Limits::for_page`]) | what an Arrow IPC page's compressed buffers inflate to |
//! | [`max_schema_fields`](Limits::max_schema_fields) | 10,000 | fields of a schema at every depth (columns, struct fields, array elements, map keys and values), Spark JSON or an IPC stream's |
//! | [`max_depth`](Limits::max_depth) | 32 | arrays, structs and maps nested in one column |
//! | [`max_unknown_fields`](Limits::max_unknown_fields) | 1,000 | distinct paths in [`Converter::unknown_fields`]; the rest are counted under [`OTHER_UNKNOWN_FIELDS`] |
//!
//! Beyond these, a JSON line nested deeper than 128 levels is refused by the JSON parser, and schema
//! conversion takes time linear in the schema's size.

mod coerce;
mod ipc;
mod json;
mod limits;
mod schema;

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

pub use limits::Limits;
pub use schema::{arrow_schema, arrow_schema_with_limits, spark_json};

/// The [`Converter::unknown_fields`] path that counts the unknown fields seen after
/// [`Limits::max_unknown_fields`] distinct paths were already counted.
pub const OTHER_UNKNOWN_FIELDS: &str = "(other unknown fields)";

/// Why a schema or a page could not be converted. Every variant names the column it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The schema string is not a Spark JSON schema.
    #[error("invalid Spark schema at `{column}`: {message}")]
    InvalidSchema {
        /// The column path, empty for the schema itself.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A type this crate does not map.
    #[error("column `{column}`: unsupported type `{type_name}`")]
    UnsupportedType {
        /// The column path.
        column: String,
        /// The type as written in the schema.
        type_name: String,
    },
    /// A line of a JSON Lines page that is not a JSON object.
    #[error("row {row}: not a JSON object: {message}")]
    NotARecord {
        /// The record's index in the page.
        row: usize,
        /// The JSON parser's message (a position, never the record).
        message: String,
    },
    /// A value that does not convert to its column's type.
    #[error("row {row}, column `{column}`: expected {expected}, found {found}")]
    Mismatch {
        /// The column path.
        column: String,
        /// The record's index in the page.
        row: usize,
        /// The column's Spark type.
        expected: String,
        /// A short excerpt of the value's JSON text.
        found: String,
    },
    /// A null or missing value in a non-nullable column.
    #[error("row {row}, column `{column}`: expected a non-null {expected}, found {found}")]
    NullInNonNullable {
        /// The column path.
        column: String,
        /// The row's index in the page.
        row: usize,
        /// The column's Spark type.
        expected: String,
        /// `null`, `no value` (a missing key) or `no such column`.
        found: String,
    },
    /// An Arrow IPC stream that cannot be read.
    #[error("unreadable Arrow IPC stream: {message}")]
    Ipc {
        /// The Arrow reader's message.
        message: String,
    },
    /// An Arrow IPC column whose type is not the schema's.
    #[error("Arrow IPC column `{column}`: expected {expected}, found {found}")]
    IpcMismatch {
        /// The column name.
        column: String,
        /// The schema's type.
        expected: String,
        /// The stream's type.
        found: String,
    },
    /// A schema or a page goes past one of the converter's [`Limits`]; nothing of the page was kept.
    #[error("too many {what}: the limit `{limit}` is {max}")]
    LimitExceeded {
        /// The [`Limits`] field that was exceeded, e.g. `max_cells`.
        limit: &'static str,
        /// Its value.
        max: usize,
        /// What was counted, e.g. `rows in one page`.
        what: String,
    },
    /// Arrow refused to assemble the converted arrays.
    #[error("column `{column}`: {source}")]
    Arrow {
        /// The column path, empty for the whole batch.
        column: String,
        /// Arrow's error.
        source: ArrowError,
    },
}

/// Converts pages into batches and keeps per-column counters across pages.
#[derive(Debug)]
pub struct Converter {
    schema: SchemaRef,
    unknown: UnknownFields,
    limits: Limits,
    /// The last Arrow IPC page's schema, read.
    ipc_schema: Option<ipc::KnownSchema>,
}

impl Converter {
    /// A converter for tables of this schema, with the default [`Limits`].
    pub fn new(schema: SchemaRef) -> Converter {
        Converter::with_limits(schema, Limits::default())
    }

    /// A converter for tables of this schema, bounding every page by `limits`.
    ///
    /// The schema itself is trusted here: one that came from a connector should have gone through
    /// [`arrow_schema_with_limits`] with the same limits, which bounds its width and depth.
    pub fn with_limits(schema: SchemaRef, limits: Limits) -> Converter {
        let unknown = UnknownFields { max: limits.max_unknown_fields, ..UnknownFields::default() };
        Converter { schema, unknown, limits, ipc_schema: None }
    }

    /// The schema every batch has.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The limits every page is held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One page of JSON Lines -> one RecordBatch in the schema (empty lines skipped).
    pub fn json_lines(&mut self, page: &[u8]) -> Result<RecordBatch, ConvertError> {
        json::page(&self.schema, page, &mut self.unknown, &self.limits)
    }

    /// One Arrow IPC stream -> batches, checked against the schema (a mismatch is an error naming the
    /// column). Batches without rows are dropped.
    pub fn arrow_ipc(&mut self, stream: &[u8]) -> Result<Vec<RecordBatch>, ConvertError> {
        ipc::stream(&self.schema, stream, &mut self.unknown, &self.limits, &mut self.ipc_schema)
    }

    /// Fields seen in records that are not in the schema: column path -> count. Logged once per column
    /// at warn level the first time it is seen.
    pub fn unknown_fields(&self) -> &BTreeMap<String, u64> {
        &self.unknown.counts
    }
}

/// Counts of fields not in the schema, by path.
#[derive(Debug, Default)]
struct UnknownFields {
    counts: BTreeMap<String, u64>,
    /// Distinct paths counted one by one; later ones go under [`OTHER_UNKNOWN_FIELDS`].
    max: usize,
    /// Reused to build paths, since a connector may send the same unknown field on every row.
    path: String,
}

impl UnknownFields {
    fn record(&mut self, parent: &str, key: &str, count: u64) {
        self.path.clear();
        if !parent.is_empty() {
            self.path.push_str(parent);
            self.path.push('.');
        }
        self.path.push_str(key);
        if let Some(seen) = self.counts.get_mut(self.path.as_str()) {
            *seen = seen.saturating_add(count);
            return;
        }
        if self.counts.len() >= self.max {
            let other = self.counts.entry(OTHER_UNKNOWN_FIELDS.to_string()).or_insert_with(|| {
                tracing::warn!(
                    limit = self.max,
                    "too many distinct fields not in the table schema: counting the rest together"
                );
                0
            });
            *other = other.saturating_add(count);
            return;
        }
        tracing::warn!(column = %self.path, "field not in the table schema: counted and dropped");
        self.counts.insert(self.path.clone(), count);
    }
}

/// A nested column's dotted path.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}
