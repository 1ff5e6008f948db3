//! The tables' columns, declared once: the same tree renders Spark's JSON schema and projects
//! GitHub's JSON objects onto it, so that a row never holds a field its schema lacks.

use serde_json::{Map, Value, json};

/// A column's type.
pub enum Type {
    String,
    Long,
    Boolean,
    /// GitHub's ISO 8601 UTC times (`2011-04-22T13:33:48Z`).
    Timestamp,
    Struct(&'static [Column]),
    Array(&'static Type),
}

/// A column: its name, where GitHub keeps it (`a.b` reaches into an object), its type, and
/// whether it may be null.
pub struct Column {
    pub name: &'static str,
    pub path: &'static str,
    pub ty: Type,
    pub nullable: bool,
}

const fn col(name: &'static str, ty: Type) -> Column {
    Column { name, path: name, ty, nullable: true }
}

const USER: &[Column] = &[
    col("login", Type::String),
    col("id", Type::Long),
    col("node_id", Type::String),
    col("type", Type::String),
    col("site_admin", Type::Boolean),
    col("html_url", Type::String),
];

const LABEL: &[Column] = &[
    col("id", Type::Long),
    col("node_id", Type::String),
    col("name", Type::String),
    col("description", Type::String),
    col("color", Type::String),
    col("default", Type::Boolean),
];

const MILESTONE: &[Column] = &[
    col("id", Type::Long),
    col("number", Type::Long),
    col("title", Type::String),
    col("description", Type::String),
    col("state", Type::String),
    col("open_issues", Type::Long),
    col("closed_issues", Type::Long),
    col("creator", Type::Struct(USER)),
    col("due_on", Type::Timestamp),
    col("created_at", Type::Timestamp),
    col("updated_at", Type::Timestamp),
    col("closed_at", Type::Timestamp),
];

/// The repository, as `owner/name`: not in GitHub's object, filled in by the reader.
pub const REPOSITORY: &str = "repository";

/// Columns of both tables, first.
const COMMON: &[Column] = &[
    Column { name: "id", path: "id", ty: Type::Long, nullable: false },
    col(REPOSITORY, Type::String),
    Column { name: "number", path: "number", ty: Type::Long, nullable: false },
    col("node_id", Type::String),
    col("title", Type::String),
    col("body", Type::String),
    col("state", Type::String),
    col("locked", Type::Boolean),
    col("comments", Type::Long),
    col("author_association", Type::String),
    col("user", Type::Struct(USER)),
    col("assignees", Type::Array(&Type::Struct(USER))),
    col("labels", Type::Array(&Type::Struct(LABEL))),
    col("milestone", Type::Struct(MILESTONE)),
    col("html_url", Type::String),
    col("created_at", Type::Timestamp),
    Column { name: CURSOR, path: CURSOR, ty: Type::Timestamp, nullable: false },
    col("closed_at", Type::Timestamp),
];

/// The cursor: GitHub's last change to the issue or pull request.
pub const CURSOR: &str = "updated_at";

/// A table: the common columns, then its own.
pub struct Table(&'static [Column]);

impl Table {
    pub fn columns(&self) -> impl Iterator<Item = &'static Column> + Clone {
        COMMON.iter().chain(self.0)
    }
}

/// Issues (GitHub's issue listing without its pull requests).
pub const ISSUES: Table = Table(&[col("state_reason", Type::String)]);

/// Pull requests, as the issue listing shows them (with `pull_request.merged_at`).
pub const PULL_REQUESTS: Table = Table(&[
    col("draft", Type::Boolean),
    Column { name: "merged_at", path: "pull_request.merged_at", ty: Type::Timestamp, nullable: true },
]);

fn spark_type(ty: &Type) -> Value {
    match ty {
        Type::String => json!("string"),
        Type::Long => json!("long"),
        Type::Boolean => json!("boolean"),
        Type::Timestamp => json!("timestamp"),
        Type::Struct(columns) => spark_struct(columns.iter()),
        Type::Array(element) => {
            json!({"type": "array", "elementType": spark_type(element), "containsNull": true})
        }
    }
}

fn spark_struct<'c>(columns: impl Iterator<Item = &'c Column>) -> Value {
    let fields: Vec<Value> = columns
        .map(|c| json!({"name": c.name, "type": spark_type(&c.ty), "nullable": c.nullable, "metadata": {}}))
        .collect();
    json!({"type": "struct", "fields": fields})
}

/// Spark's JSON schema of a table.
pub fn spark_schema(table: &Table) -> String {
    spark_struct(table.columns()).to_string()
}

fn lookup<'v>(object: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(object, |v, key| v.get(key).unwrap_or(&Value::Null))
}

fn project_value(value: &Value, ty: &Type) -> Value {
    match (ty, value) {
        (Type::Struct(columns), Value::Object(_)) => Value::Object(project(value, columns.iter())),
        (Type::Array(element), Value::Array(items)) => {
            Value::Array(items.iter().map(|item| project_value(item, element)).collect())
        }
        (Type::Struct(_) | Type::Array(_), _) => Value::Null,
        // Scalars pass as GitHub sends them; the host types and checks them.
        (_, v) => v.clone(),
    }
}

/// The object's values for `columns`, by column name, in their order.
pub fn project<'c>(object: &Value, columns: impl Iterator<Item = &'c Column>) -> Map<String, Value> {
    columns.map(|c| (c.name.to_string(), project_value(lookup(object, c.path), &c.ty))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_exactly_the_schemas_columns() {
        let issue = json!({
            "id": 1, "number": 1347, "title": "Found a bug", "extra": "dropped",
            "user": {"login": "octocat", "id": 1, "gravatar_id": "dropped"},
            "labels": [{"id": 208045946, "name": "bug", "url": "dropped"}],
            "milestone": null,
            "pull_request": {"merged_at": "2011-01-26T19:01:12Z"},
        });
        let row = project(&issue, PULL_REQUESTS.columns());
        assert_eq!(row.len(), PULL_REQUESTS.columns().count());
        assert_eq!(
            row["user"],
            json!({"login": "octocat", "id": 1, "node_id": null, "type": null, "site_admin": null, "html_url": null})
        );
        assert_eq!(row["labels"][0]["name"], "bug");
        assert!(row["labels"][0].get("url").is_none());
        assert_eq!(row["milestone"], Value::Null);
        assert_eq!(row["merged_at"], "2011-01-26T19:01:12Z");
        assert!(!row.contains_key("extra"));
        let schema: Value = serde_json::from_str(&spark_schema(&ISSUES)).unwrap();
        let names: Vec<&str> =
            schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), ISSUES.columns().count());
        assert_eq!(&names[..3], ["id", "repository", "number"]);
        assert!(names.contains(&"state_reason") && !names.contains(&"merged_at"));
    }
}
