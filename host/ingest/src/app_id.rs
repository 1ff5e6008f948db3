//! Application ids of a table's deletes, and of a partitioned table's commits, one per partition.
//!
//! On its own, depending on serde_json, sha2 and hex only, so that the fuzz crate (`fuzz/`)
//! builds this very code without weir-ingest's Delta and DataFusion dependencies.

use std::collections::BTreeMap;

/// The application id of a table's deletes (`cdc_with_deletes`): they keep an offset of their own.
pub fn deletes_app_id(app_id: &str) -> String {
    format!("{app_id}#deletes")
}

/// The application id of one partition's commits: the table's, and a digest of the
/// partition's descriptor in canonical form (keys sorted), so a rerun finds the same one.
pub fn partition_app_id(app_id: &str, partition: &str) -> String {
    use sha2::Digest;
    let canonical = serde_json::from_str::<serde_json::Value>(partition)
        .map(|v| canonical_json(&v))
        .unwrap_or_else(|_| partition.to_string());
    let digest = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    format!("{app_id}#partition:{}", &digest[..16])
}

fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let fields: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_app_ids_are_stable_whatever_the_key_order() {
        let a = partition_app_id("weir/c/t", r#"{"shard":1,"of":4}"#);
        assert_eq!(a, partition_app_id("weir/c/t", r#"{ "of": 4, "shard": 1 }"#));
        assert_ne!(a, partition_app_id("weir/c/t", r#"{"shard":2,"of":4}"#));
        assert!(a.starts_with("weir/c/t#partition:"));
    }
}
