//! Spark's JSON schema format (what `StructType.json()` writes), to and from Arrow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use serde_json::{Map, Value};

use crate::limits::{count_field, exceeded};
use crate::{ConvertError, Limits, join};

/// Arrow name of a list's item field; Spark has none, and this is what Parquet and Delta use.
pub(crate) const LIST_ITEM: &str = "element";
/// Arrow name of a map's entries field; the Parquet and Delta convention.
pub(crate) const MAP_ENTRIES: &str = "key_value";

/// Spark JSON schema string -> Arrow schema, with the default [`Limits`] on its width and depth.
/// Field metadata (string values; non-string JSON values kept as JSON text) becomes Arrow field
/// metadata.
pub fn arrow_schema(spark_json: &str) -> Result<Schema, ConvertError> {
    arrow_schema_with_limits(spark_json, &Limits::default())
}

/// [`arrow_schema()`], refusing a schema with more fields than [`Limits::max_schema_fields`] or
/// nested deeper than [`Limits::max_depth`]. Takes time linear in the schema's size.
pub fn arrow_schema_with_limits(spark_json: &str, limits: &Limits) -> Result<Schema, ConvertError> {
    // serde_json refuses JSON nested deeper than 128 levels, so parsing cannot overflow the stack;
    // the walk below checks `max_depth` before each level it descends.
    let root: Value = serde_json::from_str(spark_json).map_err(|e| invalid("", format!("not JSON: {e}")))?;
    let mut reader = SchemaReader { limits, fields: 0 };
    Ok(Schema::new(reader.struct_fields(&root, "", 0)?))
}

/// Arrow schema -> Spark JSON schema string (round-trips [`arrow_schema()`]), for `weir schema --json`
/// and the Spark data source.
pub fn spark_json(schema: &Schema) -> Result<String, ConvertError> {
    Ok(struct_json(schema.fields(), "")?.to_string())
}

fn invalid(column: &str, message: impl Into<String>) -> ConvertError {
    ConvertError::InvalidSchema { column: column.to_string(), message: message.into() }
}

fn unsupported(column: &str, type_name: impl Into<String>) -> ConvertError {
    ConvertError::UnsupportedType { column: column.to_string(), type_name: type_name.into() }
}

/// Walks a Spark JSON schema, counting its fields against the limits as it goes.
struct SchemaReader<'a> {
    limits: &'a Limits,
    /// Fields seen so far, at every depth.
    fields: usize,
}

impl SchemaReader<'_> {
    /// Counts one more field (a struct field, an array's element, a map's key or value).
    fn count_field(&mut self) -> Result<(), ConvertError> {
        count_field(
            &mut self.fields,
            self.limits,
            "fields in the schema (columns, struct fields, array elements, map keys and values)",
        )
    }

    /// `depth` is the number of arrays, structs and maps enclosing the value about to be read.
    fn nested(&self, depth: usize, path: &str) -> Result<usize, ConvertError> {
        if depth >= self.limits.max_depth {
            return Err(exceeded(
                "max_depth",
                self.limits.max_depth,
                format!("levels of nesting (arrays, structs, maps) in column `{path}`"),
            ));
        }
        Ok(depth + 1)
    }

    fn struct_fields(&mut self, value: &Value, path: &str, depth: usize) -> Result<Fields, ConvertError> {
        let object = value.as_object().ok_or_else(|| invalid(path, "a struct type must be a JSON object"))?;
        if object.get("type").and_then(Value::as_str) != Some("struct") {
            return Err(invalid(path, "expected {\"type\":\"struct\",…}"));
        }
        let fields = object
            .get("fields")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(path, "a struct needs a \"fields\" array"))?;
        let mut out: Vec<Field> = Vec::with_capacity(fields.len());
        // Names seen, so that a wide struct is checked in linear time.
        let mut names: HashSet<&str> = HashSet::with_capacity(fields.len());
        for field in fields {
            let (name, field) = self.spark_field(field, path, depth)?;
            if !names.insert(name) {
                return Err(invalid(&join(path, name), "duplicate field name"));
            }
            out.push(field);
        }
        Ok(Fields::from(out))
    }

    fn spark_field<'v>(
        &mut self,
        value: &'v Value,
        parent: &str,
        depth: usize,
    ) -> Result<(&'v str, Field), ConvertError> {
        self.count_field()?;
        let object = value.as_object().ok_or_else(|| invalid(parent, "a field must be a JSON object"))?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(parent, "a field needs a string \"name\""))?;
        let path = join(parent, name);
        let nullable = optional_bool(object, "nullable", &path)?;
        let data_type = object.get("type").ok_or_else(|| invalid(&path, "a field needs a \"type\""))?;
        let data_type = self.data_type(data_type, &path, depth)?;
        let metadata = match object.get("metadata") {
            None | Some(Value::Null) => HashMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            Some(_) => return Err(invalid(&path, "\"metadata\" must be an object")),
        };
        Ok((name, Field::new(name, data_type, nullable).with_metadata(metadata)))
    }

    fn data_type(&mut self, value: &Value, path: &str, depth: usize) -> Result<DataType, ConvertError> {
        let object = match value {
            Value::String(name) => return atomic_type(name, path),
            Value::Object(object) => object,
            _ => return Err(invalid(path, "a type must be a string or an object")),
        };
        let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "array" => {
                let depth = self.nested(depth, path)?;
                self.count_field()?;
                let element = object
                    .get("elementType")
                    .ok_or_else(|| invalid(path, "an array needs an \"elementType\""))?;
                let element = self.data_type(element, &format!("{path}[]"), depth)?;
                let nullable = optional_bool(object, "containsNull", path)?;
                Ok(DataType::List(Arc::new(Field::new(LIST_ITEM, element, nullable))))
            }
            "struct" => {
                let depth = self.nested(depth, path)?;
                Ok(DataType::Struct(self.struct_fields(value, path, depth)?))
            }
            "map" => {
                let depth = self.nested(depth, path)?;
                self.count_field()?;
                self.count_field()?;
                let key = object.get("keyType").ok_or_else(|| invalid(path, "a map needs a \"keyType\""))?;
                let val =
                    object.get("valueType").ok_or_else(|| invalid(path, "a map needs a \"valueType\""))?;
                let key = self.data_type(key, &format!("{path}.key"), depth)?;
                let val = self.data_type(val, &format!("{path}.value"), depth)?;
                let nullable = optional_bool(object, "valueContainsNull", path)?;
                Ok(map_type(key, val, nullable))
            }
            other => Err(unsupported(path, other)),
        }
    }
}

/// Spark writes every flag, but a hand-written schema may leave one out; Spark's default is true.
fn optional_bool(object: &Map<String, Value>, key: &str, path: &str) -> Result<bool, ConvertError> {
    match object.get(key) {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(path, format!("\"{key}\" must be true or false"))),
    }
}

/// The Arrow map layout that Parquet and Delta expect: non-null entries, non-null keys.
pub(crate) fn map_type(key: DataType, value: DataType, value_nullable: bool) -> DataType {
    let entries =
        Fields::from(vec![Field::new("key", key, false), Field::new("value", value, value_nullable)]);
    DataType::Map(Arc::new(Field::new(MAP_ENTRIES, DataType::Struct(entries), false)), false)
}

fn atomic_type(name: &str, path: &str) -> Result<DataType, ConvertError> {
    Ok(match name {
        "string" => DataType::Utf8,
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "binary" => DataType::Binary,
        "null" | "void" => DataType::Null,
        // Spark's own default for a bare `decimal`.
        "decimal" => DataType::Decimal128(10, 0),
        other => match decimal_args(other) {
            Some((precision, scale)) => {
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(unsupported(path, other));
                }
                DataType::Decimal128(precision, scale as i8)
            }
            None => return Err(unsupported(path, other)),
        },
    })
}

fn decimal_args(name: &str) -> Option<(u8, u8)> {
    let args = name.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (precision, scale) = args.split_once(',')?;
    Some((precision.trim().parse().ok()?, scale.trim().parse().ok()?))
}

fn struct_json(fields: &Fields, path: &str) -> Result<Value, ConvertError> {
    let fields = fields.iter().map(|f| field_json(f, path)).collect::<Result<Vec<_>, _>>()?;
    let mut object = Map::new();
    object.insert("type".into(), "struct".into());
    object.insert("fields".into(), Value::Array(fields));
    Ok(Value::Object(object))
}

fn field_json(field: &FieldRef, parent: &str) -> Result<Value, ConvertError> {
    let path = join(parent, field.name());
    // Sorted, so that the same schema always prints the same text.
    let metadata: BTreeMap<&String, &String> = field.metadata().iter().collect();
    let metadata = metadata.into_iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let mut object = Map::new();
    object.insert("name".into(), field.name().as_str().into());
    object.insert("type".into(), type_json(field.data_type(), &path)?);
    object.insert("nullable".into(), field.is_nullable().into());
    object.insert("metadata".into(), Value::Object(metadata));
    Ok(Value::Object(object))
}

fn type_json(data_type: &DataType, path: &str) -> Result<Value, ConvertError> {
    let atomic = |name: &str| Ok(Value::String(name.to_string()));
    match data_type {
        DataType::Utf8 => atomic("string"),
        DataType::Int64 => atomic("long"),
        DataType::Int32 => atomic("integer"),
        DataType::Int16 => atomic("short"),
        DataType::Int8 => atomic("byte"),
        DataType::Float32 => atomic("float"),
        DataType::Float64 => atomic("double"),
        DataType::Boolean => atomic("boolean"),
        DataType::Date32 => atomic("date"),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => atomic("timestamp"),
        DataType::Timestamp(TimeUnit::Microsecond, None) => atomic("timestamp_ntz"),
        DataType::Binary => atomic("binary"),
        DataType::Null => atomic("void"),
        DataType::Decimal128(precision, scale) if *scale >= 0 => {
            atomic(&format!("decimal({precision},{scale})"))
        }
        DataType::List(item) => {
            let mut object = Map::new();
            object.insert("type".into(), "array".into());
            object.insert("elementType".into(), type_json(item.data_type(), &format!("{path}[]"))?);
            object.insert("containsNull".into(), item.is_nullable().into());
            Ok(Value::Object(object))
        }
        DataType::Struct(fields) => struct_json(fields, path),
        DataType::Map(entries, _) => {
            let (key, value) = map_fields(entries).ok_or_else(|| unsupported(path, data_type.to_string()))?;
            let mut object = Map::new();
            object.insert("type".into(), "map".into());
            object.insert("keyType".into(), type_json(key.data_type(), &format!("{path}.key"))?);
            object.insert("valueType".into(), type_json(value.data_type(), &format!("{path}.value"))?);
            object.insert("valueContainsNull".into(), value.is_nullable().into());
            Ok(Value::Object(object))
        }
        other => Err(unsupported(path, other.to_string())),
    }
}

/// The key and value fields of a map's entries.
pub(crate) fn map_fields(entries: &Field) -> Option<(&FieldRef, &FieldRef)> {
    match entries.data_type() {
        DataType::Struct(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
        _ => None,
    }
}

/// A type as the connector author wrote it in the Spark schema, for error messages.
pub(crate) fn type_name(data_type: &DataType) -> String {
    match type_json(data_type, "") {
        Ok(Value::String(s)) => s,
        _ => match data_type {
            DataType::List(item) => format!("array<{}>", type_name(item.data_type())),
            DataType::Struct(fields) => {
                let inner: Vec<String> =
                    fields.iter().map(|f| format!("{}:{}", f.name(), type_name(f.data_type()))).collect();
                format!("struct<{}>", inner.join(","))
            }
            DataType::Map(entries, _) => match map_fields(entries) {
                Some((k, v)) => format!("map<{},{}>", type_name(k.data_type()), type_name(v.data_type())),
                None => data_type.to_string(),
            },
            other => other.to_string(),
        },
    }
}
