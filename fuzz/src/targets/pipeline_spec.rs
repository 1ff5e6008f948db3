//! Pipeline specs, YAML or JSON (`PipelineSpec::from_text`): any text must plan or fail with
//! `SpecError::Invalid`; a plan has one table per object, each destination is one or three path
//! segments of ASCII letters, digits, `_` and `-` (nothing that could leave the warehouse folder),
//! no two tables share a destination, and a namespace reaches the connector as the JSON list it
//! was planned as.
use std::collections::BTreeSet;
use std::path::Path;

use crate::spec::{PipelineSpec, SpecError};

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let (spec, plan) = match PipelineSpec::from_text(text, Path::new("pipeline.yaml")) {
        Ok(planned) => planned,
        Err(error @ SpecError::Invalid { .. }) => {
            _ = error.to_string();
            return;
        }
        Err(error) => panic!("from_text reads no file, yet: {error}"),
    };
    assert_eq!(plan.len(), spec.objects.len());
    let mut destinations = BTreeSet::new();
    for (object, table) in spec.objects.iter().zip(&plan) {
        assert_eq!(table.source_table, object.table.source_table);
        assert!(matches!(table.destination.len(), 1 | 3), "{:?}", table.destination);
        for segment in &table.destination {
            assert!(
                !segment.is_empty()
                    && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "unsafe destination segment {segment:?}"
            );
        }
        assert!(
            destinations.insert(table.destination.clone()),
            "two tables write to {:?}",
            table.destination
        );
        assert!(table.primary_keys.as_ref().is_none_or(|keys| !keys.is_empty()));
        for (key, value) in &table.table_options {
            if key == "namespace" {
                let namespace: Vec<String> = serde_json::from_str(value).expect("a JSON list of strings");
                assert_eq!(namespace, table.namespace);
            }
        }
    }
}
