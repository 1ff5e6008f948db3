//! Connection and table options, validated before any request is sent.

use weir_connector_sdk::{ConnectorError, Options};

/// The Airtable origin used when the connection names none.
pub const DEFAULT_BASE_URL: &str = "https://api.airtable.com";

/// The table options this connector understands.
pub const TABLE_OPTIONS: [&str; 10] = [
    "view",
    "fields",
    "filter_by_formula",
    "page_size",
    "lookback_seconds",
    "checkpoint_records",
    "column_names",
    "cursor_field",
    "namespace",
    "deletes",
];

/// How many records a cdc read returns at most before it reaches a checkpointable offset,
/// unless more records than that share one cursor value.
pub const DEFAULT_CHECKPOINT_RECORDS: u64 = 5000;

/// Pipeline keys the host may pass through with the table configuration; they are not ours.
const HOST_KEYS: [&str; 4] = ["scd_type", "primary_keys", "sequence_by", "cluster_by"];

/// The connection as the guest sees it (the token stays in the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connection {
    /// Without a trailing slash.
    pub base_url: String,
    /// The one base the connection reads, when it names one; without it, every base the token
    /// can read is a namespace.
    pub base_id: Option<String>,
}

impl Connection {
    pub(crate) fn parse(options: &Options) -> Result<Self, ConnectorError> {
        let base_id = options.get("base_id").map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
        let base_url = options.get("base_url").map(|s| s.trim()).filter(|s| !s.is_empty());
        let base_url = base_url.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConnectorError::InvalidOptions(format!(
                "the connection option \"base_url\" must be an http(s) URL, got {base_url:?}"
            )));
        }
        Ok(Connection { base_url: base_url.to_string(), base_id })
    }

    /// The base a call is about: the namespace `[base]` when one is given, else the
    /// connection's `base_id`. A connection scoped to one base refuses another base's namespace.
    pub(crate) fn base(&self, namespace: &[String]) -> Result<String, ConnectorError> {
        match (namespace, &self.base_id) {
            ([], Some(base)) => Ok(base.clone()),
            ([], None) => Err(ConnectorError::InvalidOptions(
                "name the base: set the connection option \"base_id\" (the app… id of an Airtable base), \
                 or give the table's namespace, e.g. table option namespace = [\"app…\"]"
                    .into(),
            )),
            ([base], Some(scoped)) if base != scoped => Err(ConnectorError::InvalidOptions(format!(
                "this connection is scoped to base {scoped:?} by its base_id; namespace [{base:?}] names \
                 another base (drop base_id from the connection to read every base)"
            ))),
            ([base], _) if base.starts_with("app") && base.len() > 3 => Ok(base.clone()),
            _ => Err(ConnectorError::InvalidOptions(format!(
                "namespace {namespace:?} is not an Airtable base: a namespace is one base id, [\"app…\"]"
            ))),
        }
    }
}

/// How columns are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// Lowercase snake_case that Delta accepts without column mapping.
    Snake,
    /// Airtable's field names as they are.
    Original,
}

/// The options of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableOptions {
    pub view: Option<String>,
    /// Field names (or ids) to read; None reads all.
    pub fields: Option<Vec<String>>,
    pub filter_by_formula: Option<String>,
    pub page_size: u32,
    pub lookback_seconds: i64,
    /// A cdc read ends its listing at a checkpointable offset after about this many records.
    pub checkpoint_records: u64,
    pub column_names: Naming,
    /// A column, field name or field id to use as the cdc cursor.
    pub cursor_field: Option<String>,
    /// `deletes = "webhook"`: read deletes through a webhook (`cdc_with_deletes`).
    pub deletes: bool,
}

fn non_empty(options: &Options, key: &str) -> Option<String> {
    options.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_string)
}

impl TableOptions {
    pub(crate) fn parse(options: &Options) -> Result<Self, ConnectorError> {
        for key in options.keys() {
            if !TABLE_OPTIONS.contains(&key.as_str())
                && !key.starts_with("weir.")
                && !HOST_KEYS.contains(&key.as_str())
            {
                return Err(ConnectorError::InvalidOptions(format!(
                    "unknown table option {key:?}; valid options are {}",
                    TABLE_OPTIONS.join(", ")
                )));
            }
        }
        let page_size = match non_empty(options, "page_size") {
            None => 100,
            Some(v) => v.parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                ConnectorError::InvalidOptions(format!(
                    "page_size must be a whole number from 1 to 100, got {v:?}"
                ))
            })?,
        };
        let lookback_seconds = match non_empty(options, "lookback_seconds") {
            None => 300,
            Some(v) => v.parse::<i64>().ok().filter(|n| (0..=366 * 86_400).contains(n)).ok_or_else(|| {
                ConnectorError::InvalidOptions(format!(
                    "lookback_seconds must be a whole number of seconds from 0 to 31622400, got {v:?}"
                ))
            })?,
        };
        let checkpoint_records = match non_empty(options, "checkpoint_records") {
            None => DEFAULT_CHECKPOINT_RECORDS,
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ConnectorError::InvalidOptions(format!(
                    "checkpoint_records must be a whole number of records, at least 1, got {v:?}"
                ))
            })?,
        };
        let column_names = match non_empty(options, "column_names").as_deref() {
            None | Some("snake") => Naming::Snake,
            Some("original") => Naming::Original,
            Some(other) => {
                return Err(ConnectorError::InvalidOptions(format!(
                    "column_names must be \"snake\" or \"original\", got {other:?}"
                )));
            }
        };
        let deletes = match non_empty(options, "deletes").as_deref() {
            None | Some("none") => false,
            Some("webhook") => true,
            Some(other) => {
                return Err(ConnectorError::InvalidOptions(format!(
                    "deletes must be \"webhook\" (read deletes through an Airtable webhook; the token needs \
                     webhook:manage) or \"none\", got {other:?}"
                )));
            }
        };
        // Field names may end in spaces ("owner "), so pieces are kept verbatim here and
        // trimmed only as a fallback when they are matched against the table's fields.
        let fields = options
            .get("fields")
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.split(',').filter(|f| !f.trim().is_empty()).map(str::to_string).collect());
        Ok(TableOptions {
            view: non_empty(options, "view"),
            fields,
            filter_by_formula: non_empty(options, "filter_by_formula"),
            page_size,
            lookback_seconds,
            checkpoint_records,
            column_names,
            cursor_field: non_empty(options, "cursor_field"),
            deletes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn base_url_defaults_and_loses_its_trailing_slash() {
        let c = Connection::parse(&opts(&[("base_id", "appX")])).unwrap();
        assert_eq!(c.base_url, "https://api.airtable.com");
        let c =
            Connection::parse(&opts(&[("base_id", "appX"), ("base_url", "http://127.0.0.1:9/")])).unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn the_base_comes_from_the_namespace_or_the_connection() {
        let scoped = Connection::parse(&opts(&[("base_id", "appX")])).unwrap();
        let open = Connection::parse(&opts(&[])).unwrap();
        let ns = |b: &str| vec![b.to_string()];
        assert_eq!(scoped.base(&[]).unwrap(), "appX");
        assert_eq!(scoped.base(&ns("appX")).unwrap(), "appX");
        assert_eq!(open.base(&ns("appY")).unwrap(), "appY");
        for (c, namespace, named) in [
            (&open, vec![], "base_id"),
            (&scoped, ns("appY"), "scoped"),
            (&open, ns("tblX"), "not an Airtable base"),
            (&open, vec!["appA".to_string(), "x".to_string()], "not an Airtable base"),
        ] {
            let err = c.base(&namespace).unwrap_err();
            assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains(named)), "{err}");
        }
    }

    #[test]
    fn host_keys_are_ignored_and_bad_values_rejected() {
        let t = TableOptions::parse(&opts(&[("scd_type", "SCD_TYPE_2"), ("weir.anything", "1")])).unwrap();
        assert_eq!((t.page_size, t.lookback_seconds, t.column_names), (100, 300, Naming::Snake));
        assert_eq!(t.checkpoint_records, DEFAULT_CHECKPOINT_RECORDS);
        let t = TableOptions::parse(&opts(&[("checkpoint_records", " 1 ")])).unwrap();
        assert_eq!(t.checkpoint_records, 1);
        for (k, v) in [
            ("page_size", "0"),
            ("page_size", "101"),
            ("lookback_seconds", "-1"),
            ("checkpoint_records", "0"),
            ("checkpoint_records", "-5"),
            ("checkpoint_records", "many"),
            ("column_names", "camel"),
            ("deletes", "trigger"),
        ] {
            let err = TableOptions::parse(&opts(&[(k, v)])).unwrap_err();
            assert!(matches!(&err, ConnectorError::InvalidOptions(m) if m.contains(k)), "{err}");
        }
    }

    #[test]
    fn fields_keep_trailing_spaces() {
        let t = TableOptions::parse(&opts(&[("fields", "Name,owner ,, Status")])).unwrap();
        assert_eq!(t.fields.unwrap(), vec!["Name", "owner ", " Status"]);
    }
}
