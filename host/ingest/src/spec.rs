//! The pipeline spec, in the upstream format (YAML or JSON).
//!
//! ```yaml
//! connection_name: airtable
//! objects:
//!   - table:
//!       source_table: SKU Candidates
//!       destination_catalog: main          # optional
//!       destination_schema: bronze         # optional
//!       destination_table: sku_candidates  # optional: the source name, normalised
//!       table_configuration:               # optional
//!         scd_type: SCD_TYPE_1             # SCD_TYPE_1 | SCD_TYPE_2 | APPEND_ONLY
//!         primary_keys: ["id"]             # overrides the connector's
//!         sequence_by: last_modified       # overrides the cursor field
//!         cluster_by: ["id"]
//!         namespace: ["appProductLaunch"]  # the table's namespace, for connectors that have them
//!         view: Grid view                  # any other key is a connector table option
//! ```
//!
//! A table inside a namespace (contract 0.2) is addressed as upstream's Spark data source
//! addresses it: by its name, and a `namespace` option holding the namespace path (a list, or a
//! JSON list in a string as upstream writes it). The connector receives it as the table option
//! `namespace`, a JSON list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a spec is unusable; nothing has been written when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read pipeline spec {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("pipeline spec {} is not valid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

type Result<T, E = String> = std::result::Result<T, E>;

macro_rules! bail {
    ($($t:tt)*) => { return Err(format!($($t)*)) };
}

/// A whole spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub connection_name: String,
    pub objects: Vec<Object>,
}

/// One entry of `objects`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Object {
    pub table: TableSpec,
}

/// One table to ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub source_table: String,
    pub destination_catalog: Option<String>,
    pub destination_schema: Option<String>,
    pub destination_table: Option<String>,
    #[serde(default)]
    pub table_configuration: BTreeMap<String, serde_yaml::Value>,
}

/// How history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ScdType {
    #[serde(rename = "SCD_TYPE_1")]
    Type1,
    #[serde(rename = "SCD_TYPE_2")]
    Type2,
    #[serde(rename = "APPEND_ONLY")]
    AppendOnly,
}

/// A table with its configuration split into pipeline settings and connector options.
#[derive(Debug, Clone)]
pub struct Planned {
    pub source_table: String,
    /// Path segments under the warehouse: [catalog, schema,] table.
    pub destination: Vec<String>,
    pub scd_type: ScdType,
    pub primary_keys: Option<Vec<String>>,
    pub sequence_by: Option<String>,
    pub cluster_by: Vec<String>,
    /// The table's namespace path; empty at the root.
    pub namespace: Vec<String>,
    /// The connector's table options (with `namespace` as a JSON list when there is one).
    pub table_options: Vec<(String, String)>,
}

impl Planned {
    /// `catalog.schema.table`, or the table alone.
    pub fn destination_name(&self) -> String {
        self.destination.join(".")
    }
}

impl PipelineSpec {
    /// Reads a YAML or JSON spec file and plans it: every object is checked.
    pub fn load(path: &Path) -> Result<(PipelineSpec, Vec<Planned>), SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| SpecError::Read { path: path.to_path_buf(), error })?;
        Self::from_text(&text, path)
    }

    /// Parses and plans a YAML or JSON spec; `path` names it in errors.
    pub fn from_text(text: &str, path: &Path) -> Result<(PipelineSpec, Vec<Planned>), SpecError> {
        let invalid = |message| SpecError::Invalid { path: path.to_path_buf(), message };
        let spec = Self::parse(text).map_err(invalid)?;
        let plan = spec.plan().map_err(invalid)?;
        Ok((spec, plan))
    }

    /// Parses a YAML or JSON spec (JSON is YAML).
    fn parse(text: &str) -> Result<PipelineSpec> {
        let spec: PipelineSpec = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if spec.objects.is_empty() {
            bail!("`objects` is empty: list at least one table to ingest");
        }
        Ok(spec)
    }

    /// Checks every object and splits its configuration.
    fn plan(&self) -> Result<Vec<Planned>> {
        let mut planned: Vec<Planned> = Vec::new();
        for (i, o) in self.objects.iter().enumerate() {
            let p = o
                .table
                .plan()
                .map_err(|e| format!("objects[{i}] (source_table {:?}): {e}", o.table.source_table))?;
            if let Some(other) = planned.iter().find(|q| q.destination == p.destination) {
                bail!(
                    "objects[{i}]: {:?} and {:?} both write to {}; give one a different destination_table",
                    other.source_table,
                    p.source_table,
                    p.destination_name()
                );
            }
            planned.push(p);
        }
        Ok(planned)
    }
}

impl TableSpec {
    fn plan(&self) -> Result<Planned> {
        if self.source_table.trim().is_empty() {
            bail!("source_table is empty");
        }
        let mut destination = Vec::new();
        for (key, value) in [
            ("destination_catalog", &self.destination_catalog),
            ("destination_schema", &self.destination_schema),
        ] {
            if let Some(v) = value {
                destination.push(identifier(key, v)?);
            }
        }
        if destination.len() == 1 {
            bail!("give both destination_catalog and destination_schema, or neither");
        }
        destination.push(match &self.destination_table {
            Some(t) => identifier("destination_table", t)?,
            None => normalise(&self.source_table),
        });

        let mut scd_type = ScdType::Type1;
        let mut primary_keys = None;
        let mut sequence_by = None;
        let mut cluster_by = Vec::new();
        let mut namespace = Vec::new();
        let mut table_options = Vec::new();
        for (key, value) in &self.table_configuration {
            match key.as_str() {
                "scd_type" => {
                    scd_type = match scalar(key, value)?.as_str() {
                        "SCD_TYPE_1" => ScdType::Type1,
                        "SCD_TYPE_2" => ScdType::Type2,
                        "APPEND_ONLY" => ScdType::AppendOnly,
                        other => {
                            bail!("unknown scd_type {other:?}: use SCD_TYPE_1, SCD_TYPE_2 or APPEND_ONLY")
                        }
                    }
                }
                "primary_keys" => primary_keys = Some(list(key, value)?),
                "sequence_by" => sequence_by = Some(scalar(key, value)?),
                "cluster_by" => cluster_by = list(key, value)?,
                "namespace" => {
                    namespace = list(key, value)?;
                    table_options.push((key.clone(), serde_json::to_string(&namespace).unwrap_or_default()));
                }
                _ => table_options.push((key.clone(), scalar(key, value)?)),
            }
        }
        if primary_keys.as_ref().is_some_and(Vec::is_empty) {
            bail!("primary_keys is empty");
        }
        Ok(Planned {
            source_table: self.source_table.clone(),
            destination,
            scd_type,
            primary_keys,
            sequence_by,
            cluster_by,
            namespace,
            table_options,
        })
    }
}

/// A string setting; numbers and booleans are taken as their text (upstream's values are strings).
fn scalar(key: &str, value: &serde_yaml::Value) -> Result<String> {
    Ok(match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => bail!("table_configuration.{key} must be a string"),
    })
}

/// A list setting: a YAML list, or a JSON array or comma-separated list in a string (upstream writes `'["id"]'`).
fn list(key: &str, value: &serde_yaml::Value) -> Result<Vec<String>> {
    let items: Vec<String> = match value {
        serde_yaml::Value::Sequence(items) => items.iter().map(|v| scalar(key, v)).collect::<Result<_>>()?,
        serde_yaml::Value::String(s) if s.trim_start().starts_with('[') => serde_json::from_str(s)
            .map_err(|_| format!("table_configuration.{key} is not a JSON list of strings"))?,
        serde_yaml::Value::String(s) => {
            s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
        }
        _ => bail!("table_configuration.{key} must be a list of column names"),
    };
    Ok(items)
}

/// A catalog, schema or table name that is safe as one path segment.
fn identifier(key: &str, value: &str) -> Result<String> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        bail!("{key} {value:?} must be letters, digits, _ or - (it becomes a folder under the warehouse)");
    }
    Ok(value.to_string())
}

/// A source table name as a destination table name: lowercase snake_case.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    match out.chars().next() {
        None => "table".into(),
        Some(c) if c.is_ascii_digit() => format!("t_{out}"),
        Some(_) => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_destinations_and_splits_configuration() {
        let spec = PipelineSpec::parse(
            r#"
connection_name: airtable
objects:
  - table:
      source_table: "SKU Candidates 🚀"
  - table:
      source_table: Vendors
      destination_catalog: main
      destination_schema: bronze
      destination_table: vendors_active
      table_configuration:
        scd_type: SCD_TYPE_2
        primary_keys: '["id"]'
        view: Active only
        page_size: 50
"#,
        )
        .unwrap();
        let plan = spec.plan().unwrap();
        assert_eq!(plan[0].destination, ["sku_candidates"]);
        assert_eq!(plan[1].destination, ["main", "bronze", "vendors_active"]);
        assert_eq!(plan[1].scd_type, ScdType::Type2);
        assert_eq!(plan[1].primary_keys.as_deref(), Some(&["id".to_string()][..]));
        assert_eq!(
            plan[1].table_options,
            [("page_size".to_string(), "50".to_string()), ("view".to_string(), "Active only".to_string())]
        );
    }

    #[test]
    fn rejects_bad_specs_with_the_reason() {
        let err = |text: &str| PipelineSpec::parse(text).and_then(|s| s.plan()).unwrap_err();
        assert!(err("connection_name: a\nobjects: []\n").contains("empty"));
        assert!(err("connection_name: a\nobjects: []\nextra: 1\n").contains("unknown field `extra`"));
        let scd = err(
            "connection_name: a\nobjects:\n  - table:\n      source_table: T\n      table_configuration:\n        scd_type: SCD_TYPE_3\n",
        );
        assert!(scd.contains("SCD_TYPE_3"), "{scd}");
        let escape = err(
            "connection_name: a\nobjects:\n  - table:\n      source_table: T\n      destination_table: ../../etc\n",
        );
        assert!(escape.contains("destination_table"), "{escape}");
        let twice = err(
            "connection_name: a\nobjects:\n  - table:\n      source_table: T\n  - table:\n      source_table: t\n",
        );
        assert!(twice.contains("both write to t"), "{twice}");
    }

    #[test]
    fn a_namespace_is_kept_and_passed_on_as_a_json_list() {
        let spec = PipelineSpec::parse(
            "connection_name: a\nobjects:\n  - table:\n      source_table: Vendors\n      table_configuration:\n        namespace: [appA]\n  - table:\n      source_table: Vendors\n      destination_table: vendors_b\n      table_configuration:\n        namespace: '[\"appB\"]'\n",
        )
        .unwrap();
        let plan = spec.plan().unwrap();
        assert_eq!(plan[0].namespace, ["appA"]);
        assert_eq!(plan[1].table_options, [("namespace".to_string(), r#"["appB"]"#.to_string())]);
    }

    #[test]
    fn same_source_twice_into_different_destinations_is_allowed() {
        let spec = PipelineSpec::parse(
            "connection_name: a\nobjects:\n  - table:\n      source_table: T\n  - table:\n      source_table: T\n      destination_table: t_view\n      table_configuration:\n        view: V\n",
        )
        .unwrap();
        assert_eq!(spec.plan().unwrap().len(), 2);
    }
}
