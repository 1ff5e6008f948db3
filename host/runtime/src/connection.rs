//! Connections: `connections.toml`, resolved against a connector's manifest.
//!
//! ```toml
//! [connections.airtable]
//! connector = "airtable"                      # bundled name, or a path to a .wasm
//! base_id = "appSaRcgA5UCGoRg5"
//! base_url = "https://api.airtable.com"
//! bearer_token = { env = "AIRTABLE_TOKEN" }   # or { file = "path" }, or a literal string
//! # allow_loopback = true                     # only for local simulators and tests
//! # allow_unsigned = true                     # a .wasm path not signed by a trusted key
//! # [connections.airtable.limits]             # overrides of the manifest's limits
//! # memory_mib = 64
//! # [connections.airtable.rate_limits]        # overrides of its rate limits, by key
//! # "base:{base}" = 1000                      # (a simulator with its limit off)
//! ```
//!
//! Parameters that the manifest marks `secret` are split off here: they never reach the
//! guest's options, and [`Secrets`] hides them from `Debug`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::http::tape::{Tape, TapeMode};
use crate::manifest::{Limits, Manifest, RateLimit, Retry};

/// Keys of a connection that configure the host rather than the connector.
pub const RESERVED_KEYS: &[&str] =
    &["connector", "allow_loopback", "allow_unsigned", "limits", "retry", "rate_limits"];

/// Why a connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    // `error`, not `source`: the message already says why, and a source would print it twice
    // in an error chain (`{:#}`).
    #[error(
        "cannot read connections file {path}: {error}. Create it (see examples/connections.toml) or pass --connections FILE"
    )]
    Read { path: PathBuf, error: std::io::Error },
    #[error("connections file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("no connection named {name:?} in {path} (it has: {available})")]
    Unknown { name: String, path: PathBuf, available: String },
    #[error("connection {connection:?}: {message}")]
    Invalid { connection: String, message: String },
}

/// A value as written in the file, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// One `[connections.NAME]` table, unresolved.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub name: String,
    /// A bundled or installed connector name (`name` or `name@version`), or a path to a
    /// `.wasm` component.
    pub connector: String,
    pub allow_loopback: bool,
    /// Lets a component given by path run without a signature by a trusted key.
    pub allow_unsigned: bool,
    values: BTreeMap<String, Source>,
    limits: Option<toml::Table>,
    retry: Option<toml::Table>,
    rate_limits: Option<toml::Table>,
    /// A cassette to record to or replay from; set by the front end, never by the file.
    pub tape: Option<Arc<Tape>>,
}

/// What a secret that is not at hand reads as while a cassette replays.
pub const REPLAY_SECRET: &str = "weir-replay-placeholder";

/// The share of the manifest's rate-limit budgets a connection gets when it is not given one.
pub const FULL_RATE_SHARE: f64 = 1.0;

/// A parsed connections file.
#[derive(Debug, Clone)]
pub struct ConnectionsFile {
    pub path: PathBuf,
    pub connections: BTreeMap<String, ConnectionSpec>,
}

impl ConnectionsFile {
    /// Reads and parses a connections file; relative `{ file = … }` paths are taken from its folder.
    pub fn load(path: &Path) -> Result<ConnectionsFile, ConnectionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConnectionError::Read { path: path.to_path_buf(), error })?;
        Self::parse(&text, path)
    }

    /// Parses connections TOML; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<ConnectionsFile, ConnectionError> {
        let syntax = |message: String| ConnectionError::Syntax { path: path.to_path_buf(), message };
        let doc: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let mut connections = BTreeMap::new();
        for (key, value) in doc {
            if key != "connections" {
                return Err(syntax(format!("unknown top-level key {key:?}; only [connections.NAME] tables")));
            }
            let toml::Value::Table(table) = value else {
                return Err(syntax("`connections` must be a table of [connections.NAME]".into()));
            };
            for (name, value) in table {
                let toml::Value::Table(t) = value else {
                    return Err(syntax(format!("connections.{name} must be a table")));
                };
                let base = path.parent().unwrap_or(Path::new("."));
                connections.insert(name.clone(), ConnectionSpec::parse(&name, t, base)?);
            }
        }
        Ok(ConnectionsFile { path: path.to_path_buf(), connections })
    }

    /// The connection called `name`.
    pub fn get(&self, name: &str) -> Result<&ConnectionSpec, ConnectionError> {
        self.connections.get(name).ok_or_else(|| ConnectionError::Unknown {
            name: name.to_string(),
            path: self.path.clone(),
            available: if self.connections.is_empty() {
                "none".into()
            } else {
                self.connections.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
    }
}

impl ConnectionSpec {
    /// A connection from a flat map of options, as Spark hands a data source its options (Unity
    /// Catalog injects a connection's options into the read this way). Keys are matched to the
    /// manifest's parameter names case-insensitively (Spark lower-cases option keys), and
    /// `allow_loopback` (`true` or `false`) configures the host as in `connections.toml`. Every
    /// value is a literal; unknown keys are left for [`ConnectionSpec::resolve`] to refuse with
    /// the list of parameters.
    pub fn from_options(
        name: &str,
        connector: &str,
        manifest: &Manifest,
        values: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ConnectionSpec, ConnectionError> {
        let invalid = |message: String| ConnectionError::Invalid { connection: name.to_string(), message };
        let mut spec = ConnectionSpec {
            name: name.to_string(),
            connector: connector.to_string(),
            allow_loopback: false,
            allow_unsigned: false,
            values: BTreeMap::new(),
            limits: None,
            retry: None,
            rate_limits: None,
            tape: None,
        };
        for (key, value) in values {
            if key.eq_ignore_ascii_case("allow_loopback") {
                spec.allow_loopback = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "`allow_loopback` must be true or false, not {value:?}"
                        )));
                    }
                };
                continue;
            }
            let canonical = manifest
                .parameters
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(&key))
                .map_or(key, |p| p.name.clone());
            if spec.values.insert(canonical.clone(), Source::Literal(value)).is_some() {
                return Err(invalid(format!("`{canonical}` is given twice (option keys ignore case)")));
            }
        }
        Ok(spec)
    }

    fn parse(name: &str, table: toml::Table, base: &Path) -> Result<ConnectionSpec, ConnectionError> {
        let invalid = |message: String| ConnectionError::Invalid { connection: name.to_string(), message };
        let mut spec = ConnectionSpec {
            name: name.to_string(),
            connector: String::new(),
            allow_loopback: false,
            allow_unsigned: false,
            values: BTreeMap::new(),
            limits: None,
            retry: None,
            rate_limits: None,
            tape: None,
        };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("connector", toml::Value::String(s)) => spec.connector = s,
                ("allow_loopback", toml::Value::Boolean(b)) => spec.allow_loopback = b,
                ("allow_unsigned", toml::Value::Boolean(b)) => spec.allow_unsigned = b,
                ("limits", toml::Value::Table(t)) => spec.limits = Some(t),
                ("retry", toml::Value::Table(t)) => spec.retry = Some(t),
                ("rate_limits", toml::Value::Table(t)) => spec.rate_limits = Some(t),
                (k, v) if RESERVED_KEYS.contains(&k) => {
                    return Err(invalid(format!("`{k}` has the wrong type ({})", v.type_str())));
                }
                (_, toml::Value::String(s)) => {
                    spec.values.insert(key, Source::Literal(s));
                }
                (_, toml::Value::Table(t)) => {
                    let source = match (t.get("env"), t.get("file"), t.len()) {
                        (Some(toml::Value::String(var)), None, 1) => Source::Env(var.clone()),
                        (None, Some(toml::Value::String(file)), 1) => Source::File(base.join(file)),
                        _ => {
                            return Err(invalid(format!(
                                "`{key}` must be a string, {{ env = \"VAR\" }} or {{ file = \"path\" }}"
                            )));
                        }
                    };
                    spec.values.insert(key, source);
                }
                (_, v) => {
                    return Err(invalid(format!("`{key}` must be a string, not a {}", v.type_str())));
                }
            }
        }
        if spec.connector.is_empty() {
            return Err(invalid(
                "missing `connector` (a bundled name such as \"airtable\", or a .wasm path)".into(),
            ));
        }
        Ok(spec)
    }

    /// Checks the connection against the manifest and resolves env and file values.
    pub fn resolve(&self, manifest: &Manifest) -> Result<Connection, ConnectionError> {
        let invalid = |message: String| ConnectionError::Invalid { connection: self.name.clone(), message };
        let mut options = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for key in self.values.keys() {
            if !manifest.parameters.iter().any(|p| &p.name == key) {
                let known: Vec<&str> = manifest.parameters.iter().map(|p| p.name.as_str()).collect();
                return Err(invalid(format!(
                    "unknown key `{key}`; connector {} takes: {}",
                    manifest.name,
                    known.join(", ")
                )));
            }
        }
        // A replay sends nothing, so a secret that is not at hand stands in as a placeholder:
        // cassettes replay with no token.
        let replaying = self.tape.as_ref().is_some_and(|t| t.mode() == TapeMode::Replay);
        for p in &manifest.parameters {
            let value = match self.values.get(&p.name) {
                Some(Source::Env(var)) if p.secret && replaying && std::env::var_os(var).is_none() => {
                    REPLAY_SECRET.to_string()
                }
                Some(Source::File(path)) if p.secret && replaying && !path.is_file() => {
                    REPLAY_SECRET.to_string()
                }
                None if p.secret && replaying && p.default.is_none() => REPLAY_SECRET.to_string(),
                Some(Source::Literal(s)) => s.clone(),
                Some(Source::Env(var)) => std::env::var(var).map_err(|_| {
                    invalid(format!("`{}` comes from environment variable {var}, which is not set", p.name))
                })?,
                Some(Source::File(path)) => std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| invalid(format!("`{}` comes from file {}: {e}", p.name, path.display())))?,
                None => match &p.default {
                    Some(d) => d.clone(),
                    None if p.required => {
                        return Err(invalid(format!(
                            "missing required `{}`{}",
                            p.name,
                            if p.description.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", p.description)
                            }
                        )));
                    }
                    None => continue,
                },
            };
            if p.secret {
                secrets.insert(p.name.clone(), value);
            } else {
                options.insert(p.name.clone(), value);
            }
        }
        let limits: Limits =
            overlay(&manifest.limits, self.limits.as_ref()).map_err(|e| invalid(format!("limits: {e}")))?;
        let retry: Retry =
            overlay(&manifest.retry, self.retry.as_ref()).map_err(|e| invalid(format!("retry: {e}")))?;
        // The overrides meet the same ranges as the manifest's own values.
        limits.validate().map_err(|e| invalid(e.to_string()))?;
        retry.validate().map_err(|e| invalid(e.to_string()))?;
        let mut rate_limits = manifest.rate_limits.clone();
        for (key, value) in self.rate_limits.iter().flatten() {
            let Some(limit) = rate_limits.iter_mut().find(|l| &l.key == key) else {
                let known: Vec<&str> = manifest.rate_limits.iter().map(|l| l.key.as_str()).collect();
                return Err(invalid(format!(
                    "rate_limits: unknown key {key:?} (connector {} has: {})",
                    manifest.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            };
            limit.per_second = match value {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                other => {
                    return Err(invalid(format!(
                        "rate_limits.{key:?} must be a number, not a {}",
                        other.type_str()
                    )));
                }
            };
            limit.validate().map_err(|e| invalid(e.to_string()))?;
        }
        Ok(Connection {
            name: self.name.clone(),
            options,
            secrets: Secrets(secrets),
            allow_loopback: self.allow_loopback,
            limits,
            retry,
            rate_limits,
            rate_share: FULL_RATE_SHARE,
            tape: self.tape.clone(),
        })
    }
}

/// Applies a connection's overrides to a manifest's defaults, rejecting unknown keys.
fn overlay<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    overrides: Option<&toml::Table>,
) -> Result<T, String> {
    let Some(overrides) = overrides else {
        let value = toml::Value::try_from(base).map_err(|e| e.to_string())?;
        return value.try_into().map_err(|e: toml::de::Error| e.to_string());
    };
    let mut merged = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (k, v) in overrides {
        if !merged.contains_key(k) {
            return Err(format!(
                "unknown key `{k}` (known: {})",
                merged.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let v = match (merged.get(k), v) {
            (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(*i as f64),
            _ => v.clone(),
        };
        merged.insert(k.clone(), v);
    }
    toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| e.to_string())
}

/// Secret values, kept in the host. `Debug` never prints them.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys().map(|k| format!("{k}=<redacted>"))).finish()
    }
}

impl Secrets {
    /// The value of a secret parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every secret value, for redaction.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    pub(crate) fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// A connection ready to instantiate: guest-visible options, host-kept secrets, limits.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    /// What the guest sees: every non-secret parameter.
    pub options: BTreeMap<String, String>,
    pub secrets: Secrets,
    /// Lets the http gate reach loopback addresses (simulators and tests only).
    pub allow_loopback: bool,
    pub limits: Limits,
    pub retry: Retry,
    /// The manifest's rate limits, with the connection's overrides applied.
    pub rate_limits: Vec<RateLimit>,
    /// The fraction of each of the manifest's rate-limit budgets this connection's sessions may
    /// use, in (0, 1]: a front end that runs N readers of one connection in N processes (Spark's
    /// partitions) gives each 1/N, so that together they keep to the source's limit. Budgets are
    /// shared within a process by key and rate, so sessions with the same share pace together;
    /// those of the whole rate are also shared with the machine's other processes (see
    /// `ratelimit`).
    pub rate_share: f64,
    /// A cassette every exchange is recorded to or replayed from (`--record`, `--replay`).
    pub tape: Option<Arc<Tape>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            br#"
name = "airtable"
version = "0.1.0"
contract = "lakeflow:connect@0.1.0"
[[parameters]]
name = "bearer_token"
required = true
secret = true
[[parameters]]
name = "base_id"
required = true
[[parameters]]
name = "base_url"
default = "https://api.airtable.com"
"#,
        )
        .unwrap()
    }

    fn parse(text: &str) -> Result<ConnectionsFile, ConnectionError> {
        ConnectionsFile::parse(text, Path::new("/tmp/connections.toml"))
    }

    #[test]
    fn secrets_are_split_from_options_and_defaults_apply() {
        let file = parse(
            "[connections.a]\nconnector = \"airtable\"\nbase_id = \"app1\"\nbearer_token = \"patSECRET\"\n",
        )
        .unwrap();
        let c = file.get("a").unwrap().resolve(&manifest()).unwrap();
        assert_eq!(c.options.get("base_url").unwrap(), "https://api.airtable.com");
        assert!(!c.options.contains_key("bearer_token"));
        assert_eq!(c.secrets.get("bearer_token"), Some("patSECRET"));
        assert!(!format!("{c:?}").contains("patSECRET"));
    }

    #[test]
    fn env_and_file_sources_resolve_and_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "patFROMFILE\n").unwrap();
        let path = dir.path().join("connections.toml");
        let text = "[connections.f]\nconnector = \"airtable\"\nbase_id = \"app1\"\nbearer_token = { file = \"token\" }\n\
                    [connections.e]\nconnector = \"airtable\"\nbase_id = \"app1\"\nbearer_token = { env = \"WEIR_TEST_SURELY_UNSET\" }\n";
        let file = ConnectionsFile::parse(text, &path).unwrap();
        let c = file.get("f").unwrap().resolve(&manifest()).unwrap();
        assert_eq!(c.secrets.get("bearer_token"), Some("patFROMFILE"));
        let err = file.get("e").unwrap().resolve(&manifest()).unwrap_err().to_string();
        assert!(err.contains("WEIR_TEST_SURELY_UNSET") && err.contains("not set"), "{err}");
    }

    #[test]
    fn unknown_missing_and_mistyped_keys_are_errors() {
        let unknown = parse(
            "[connections.a]\nconnector = \"airtable\"\nbase_id = \"a\"\nbearer_token = \"t\"\nbase = \"x\"\n",
        );
        let err = unknown.unwrap().get("a").unwrap().resolve(&manifest()).unwrap_err().to_string();
        assert!(err.contains("unknown key `base`") && err.contains("base_id"), "{err}");
        let missing = parse("[connections.a]\nconnector = \"airtable\"\nbase_id = \"a\"\n").unwrap();
        let err = missing.get("a").unwrap().resolve(&manifest()).unwrap_err().to_string();
        assert!(err.contains("missing required `bearer_token`"), "{err}");
        assert!(parse("[connections.a]\nbase_id = \"a\"\n").unwrap_err().to_string().contains("connector"));
        assert!(parse("[connections.a]\nconnector = \"x\"\nallow_loopback = \"yes\"\n").is_err());
        assert!(parse("[other]\n").unwrap_err().to_string().contains("unknown top-level key"));
        let err = parse("[connections.a]\nconnector = \"x\"\n").unwrap().get("b").unwrap_err().to_string();
        assert!(err.contains("\"b\"") && err.contains("a"), "{err}");
        let err = ConnectionsFile::load(Path::new("/nonexistent/connections.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/connections.toml"), "{err}");
    }

    #[test]
    fn flat_options_match_parameters_ignoring_case() {
        let values = [("BASE_ID", "app1"), ("bearer_token", "patSECRET"), ("Allow_Loopback", "true")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let spec = ConnectionSpec::from_options("spark", "airtable", &manifest(), values).unwrap();
        let c = spec.resolve(&manifest()).unwrap();
        assert_eq!(c.options.get("base_id").map(String::as_str), Some("app1"));
        assert_eq!(c.secrets.get("bearer_token"), Some("patSECRET"));
        assert!(c.allow_loopback);
        assert_eq!(c.rate_share, FULL_RATE_SHARE);
        let twice = [("base_id", "a"), ("Base_Id", "b")].map(|(k, v)| (k.to_string(), v.to_string()));
        let err =
            ConnectionSpec::from_options("spark", "airtable", &manifest(), twice).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let unknown = [("base_id", "a"), ("bearer_token", "t"), ("colour", "red")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let spec = ConnectionSpec::from_options("spark", "airtable", &manifest(), unknown).unwrap();
        let err = spec.resolve(&manifest()).unwrap_err().to_string();
        assert!(err.contains("unknown key `colour`"), "{err}");
        let bad = [("allow_loopback", "yes")].map(|(k, v)| (k.to_string(), v.to_string()));
        assert!(ConnectionSpec::from_options("spark", "airtable", &manifest(), bad).is_err());
    }

    #[test]
    fn limit_overrides_apply_and_reject_unknown_keys() {
        let file = parse(
            "[connections.a]\nconnector = \"x\"\nbase_id = \"a\"\nbearer_token = \"t\"\n[connections.a.limits]\nmemory_mib = 16\ncall_seconds = 2\n",
        )
        .unwrap();
        let c = file.get("a").unwrap().resolve(&manifest()).unwrap();
        assert_eq!((c.limits.memory_mib, c.limits.call_seconds), (16, 2.0));
        let bad = parse(
            "[connections.a]\nconnector = \"x\"\nbase_id = \"a\"\nbearer_token = \"t\"\n[connections.a.limits]\nmem = 1\n",
        );
        let err = bad.unwrap().get("a").unwrap().resolve(&manifest()).unwrap_err().to_string();
        assert!(err.contains("unknown key `mem`"), "{err}");
    }

    #[test]
    fn rate_limits_are_overridden_by_key_within_range() {
        let mut m = manifest();
        m.rate_limits.push(RateLimit { key: "base:{base_id}".into(), per_second: 5.0, paths: vec![] });
        let conn = |extra: &str| {
            parse(&format!(
                "[connections.a]\nconnector = \"x\"\nbase_id = \"a\"\nbearer_token = \"t\"\n[connections.a.rate_limits]\n{extra}\n"
            ))
            .unwrap()
        };
        let c = conn("\"base:{base_id}\" = 1000").get("a").unwrap().resolve(&m).unwrap();
        assert_eq!(c.rate_limits[0].per_second, 1000.0);
        let err = conn("\"base:{nope}\" = 1").get("a").unwrap().resolve(&m).unwrap_err().to_string();
        assert!(err.contains("base:{nope}") && err.contains("base:{base_id}"), "{err}");
        let err = conn("\"base:{base_id}\" = 1e-300").get("a").unwrap().resolve(&m).unwrap_err().to_string();
        assert!(err.contains("per_second"), "{err}");
    }
}
