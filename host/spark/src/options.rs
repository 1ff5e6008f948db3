//! The data source's options, as Spark hands them over: lower-cased keys, string values.
//!
//! Keys are split three ways. The data source's own keys ([`RESERVED`], and every `weir.*` key)
//! configure the read; the connector manifest's parameters (matched ignoring case) make the
//! connection; everything else is a table option for the connector. Unity Catalog injects a
//! connection's options (`sourceName`, `bearer_token`, `base_id`, `base_url` for the seed's
//! Airtable connection) into this same map, so the injected options and the read's own options
//! arrive together.

use std::collections::BTreeMap;

use weir_runtime::Manifest;

/// The upstream data source's option names and weir's own, as written in docs; matched ignoring case.
pub const TABLE_NAME: &str = "tableName";
pub const TABLE_NAME_LIST: &str = "tableNameList";
pub const TABLE_CONFIGS: &str = "tableConfigs";
pub const IS_DELETE_FLOW: &str = "isDeleteFlow";
pub const NAMESPACE_PREFIX: &str = "namespacePrefix";
pub const SOURCE_NAME: &str = "sourceName";
pub const CONNECTOR: &str = "connector";
pub const DATABRICKS_CONNECTION: &str = "databricks.connection";
pub const CONNECTIONS_FILE: &str = "weir.connections";
pub const CONNECTION_NAME: &str = "weir.connection";
pub const MAX_PAGES: &str = "weir.maxPagesPerTrigger";
pub const MAX_ROWS: &str = "weir.maxRowsPerTrigger";
pub const RATE_SHARE: &str = "weir.rateShare";
/// Run a `.wasm` given by path even when no trusted key signed it, as `allow_unsigned = true`
/// does in `connections.toml`.
pub const ALLOW_UNSIGNED: &str = "allow_unsigned";

/// Keys the data source consumes itself; they never reach the connector.
pub const RESERVED: &[&str] = &[
    TABLE_NAME,
    TABLE_NAME_LIST,
    TABLE_CONFIGS,
    IS_DELETE_FLOW,
    NAMESPACE_PREFIX,
    SOURCE_NAME,
    CONNECTOR,
    DATABRICKS_CONNECTION,
    CONNECTIONS_FILE,
    CONNECTION_NAME,
    MAX_PAGES,
    MAX_ROWS,
    RATE_SHARE,
    ALLOW_UNSIGNED,
];

/// The host's own connection key, as in `connections.toml`.
pub const ALLOW_LOOPBACK: &str = "allow_loopback";

/// Pages one micro-batch of a non-partitioned stream reads at most, by default.
pub const DEFAULT_MAX_PAGES: u64 = 100;

/// A bad option, in the user's terms.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(pub String);

/// The options, split by who consumes them.
#[derive(Debug, Clone, Default)]
pub struct SplitOptions {
    /// The data source's own keys, by their canonical spelling (see [`RESERVED`]).
    pub reserved: BTreeMap<&'static str, String>,
    /// Connection parameters by the manifest's spelling, and `allow_loopback`.
    pub connection: BTreeMap<String, String>,
    /// What is left: the connector's table options.
    pub table: BTreeMap<String, String>,
}

impl SplitOptions {
    /// The data source's own keys of `options`; the rest waits for [`SplitOptions::assign`].
    pub fn reserved(
        options: &BTreeMap<String, String>,
    ) -> Result<(SplitOptions, Vec<(String, String)>), OptionsError> {
        let mut split = SplitOptions::default();
        let mut rest = Vec::new();
        for (key, value) in options {
            if let Some(name) = RESERVED.iter().find(|r| r.eq_ignore_ascii_case(key)) {
                if split.reserved.insert(name, value.clone()).is_some() {
                    return Err(OptionsError(format!(
                        "option {name} is given twice (option keys ignore case)"
                    )));
                }
            } else if key.to_ascii_lowercase().starts_with("weir.") {
                return Err(OptionsError(format!(
                    "unknown option {key:?}; weir's options are {}",
                    RESERVED
                        .iter()
                        .filter(|r| r.starts_with("weir."))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            } else {
                rest.push((key.clone(), value.clone()));
            }
        }
        Ok((split, rest))
    }

    /// Splits the remaining keys into connection parameters of `manifest` and table options.
    pub fn assign(&mut self, manifest: &Manifest, rest: Vec<(String, String)>) {
        for (key, value) in rest {
            let parameter = manifest.parameters.iter().any(|p| p.name.eq_ignore_ascii_case(&key));
            if parameter || key.eq_ignore_ascii_case(ALLOW_LOOPBACK) {
                self.connection.insert(key, value);
            } else {
                self.table.insert(key, value);
            }
        }
    }

    /// A reserved option's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.reserved.get(name).map(String::as_str)
    }

    /// A reserved flag: `true` or `false` in any case; absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, OptionsError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(OptionsError(format!("option {name} must be true or false, not {v:?}"))),
        }
    }

    /// A reserved whole number of at least 1, if given.
    pub fn count(&self, name: &str) -> Result<Option<u64>, OptionsError> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    OptionsError(format!("option {name} must be a whole number of at least 1, not {v:?}"))
                })
            })
            .transpose()
    }

    /// The share of the rate budgets a read may take beyond its partition count (option
    /// [`RATE_SHARE`]), in (0, 1].
    pub fn rate_share(&self) -> Result<f64, OptionsError> {
        match self.get(RATE_SHARE) {
            None => Ok(1.0),
            Some(v) => v.trim().parse::<f64>().ok().filter(|s| *s > 0.0 && *s <= 1.0).ok_or_else(|| {
                OptionsError(format!("option {RATE_SHARE} must be a number in (0, 1], not {v:?}"))
            }),
        }
    }
}

/// A JSON list of strings, as upstream writes `tableNameList`, `namespacePrefix` and `namespace`.
pub fn string_list(name: &str, value: &str) -> Result<Vec<String>, OptionsError> {
    serde_json::from_str::<Vec<String>>(value).map_err(|_| {
        OptionsError(format!("option {name} must be a JSON list of strings, such as [\"a\"], not {value:?}"))
    })
}

/// `tableConfigs`: a JSON object from table name to that table's options. Values that are not
/// strings (a namespace list) are passed on as their JSON text.
pub fn table_configs(value: &str) -> Result<BTreeMap<String, Vec<(String, String)>>, OptionsError> {
    let bad = || {
        OptionsError(format!(
            "option {TABLE_CONFIGS} must be a JSON object of table name to an object of options"
        ))
    };
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(value).map_err(|_| bad())?;
    let mut out = BTreeMap::new();
    for (table, options) in parsed {
        let serde_json::Value::Object(options) = options else { return Err(bad()) };
        let options = options
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
        out.insert(table, options);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            b"name = \"airtable\"\nversion = \"0.1.0\"\ncontract = \"lakeflow:connect@0.2.0\"\n\
              [[parameters]]\nname = \"bearer_token\"\nsecret = true\n[[parameters]]\nname = \"base_id\"\n",
        )
        .expect("manifest")
    }

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn spark_lower_cased_keys_split_into_reserved_connection_and_table_options() {
        let given = options(&[
            ("tablename", "Vendors"),
            ("isdeleteflow", "TRUE"),
            ("sourcename", "airtable"),
            ("bearer_token", "pat"),
            ("base_id", "app1"),
            ("allow_loopback", "true"),
            ("view", "Grid view"),
        ]);
        let (mut split, rest) = SplitOptions::reserved(&given).unwrap();
        split.assign(&manifest(), rest);
        assert_eq!(split.get(TABLE_NAME), Some("Vendors"));
        assert!(split.flag(IS_DELETE_FLOW).unwrap());
        assert_eq!(split.get(SOURCE_NAME), Some("airtable"));
        assert_eq!(
            split.connection.keys().collect::<Vec<_>>(),
            ["allow_loopback", "base_id", "bearer_token"]
        );
        assert_eq!(split.table, options(&[("view", "Grid view")]));
    }

    #[test]
    fn bad_values_and_unknown_weir_keys_are_refused() {
        let (split, _) = SplitOptions::reserved(&options(&[("isDeleteFlow", "yes")])).unwrap();
        assert!(split.flag(IS_DELETE_FLOW).unwrap_err().0.contains("true or false"));
        let err = SplitOptions::reserved(&options(&[("weir.maxpages", "3")])).unwrap_err().0;
        assert!(err.contains("weir.maxPagesPerTrigger"), "{err}");
        let (split, _) = SplitOptions::reserved(&options(&[("weir.maxrowspertrigger", "0")])).unwrap();
        assert!(split.count(MAX_ROWS).is_err());
        let (split, _) = SplitOptions::reserved(&options(&[("weir.rateshare", "1.5")])).unwrap();
        assert!(split.rate_share().is_err());
        assert!(string_list(TABLE_NAME_LIST, "Vendors").is_err());
        assert_eq!(string_list(TABLE_NAME_LIST, "[\"a\",\"b\"]").unwrap(), ["a", "b"]);
        let configs = table_configs(r#"{"a": {"view": "v", "namespace": ["app1"]}}"#).unwrap();
        assert_eq!(
            configs["a"],
            [("view".to_string(), "v".to_string()), ("namespace".into(), "[\"app1\"]".into())]
        );
        assert!(table_configs("[1]").is_err());
    }
}
