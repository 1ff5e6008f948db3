//! The connector manifest: what a component declares about itself and may use.
//!
//! It rides inside the component as a custom section named [`SECTION`], and the host
//! reads it with a parser before compiling anything, so a component whose manifest is
//! missing or malformed is rejected without running the compiler on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[path = "manifest_section.rs"]
mod section;

/// The name of the custom section holding the manifest (TOML text).
pub use section::SECTION;

/// The contract versions this host serves.
pub const SUPPORTED_CONTRACTS: &[&str] = &["lakeflow:connect@0.1.0"];

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the file is not a WebAssembly component: {0}")]
    NotWasm(String),
    #[error("the component carries no `{SECTION}` custom section; build it with weir's packaging")]
    Missing,
    #[error("the component carries {0} `{SECTION}` sections; exactly one is allowed")]
    Duplicate(usize),
    #[error("the manifest is not valid TOML for weir: {0}")]
    Parse(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

/// A connector's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// The WIT package the component implements, e.g. `lakeflow:connect@0.1.0`.
    pub contract: String,
    #[serde(default)]
    pub description: String,
    /// Connection parameters (upstream `connector_spec.yaml`).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    #[serde(default)]
    pub network: Network,
    /// Credentials the host injects into requests; the guest never sees them.
    #[serde(default)]
    pub auth: Vec<AuthRule>,
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub limits: Limits,
}

/// One connection parameter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    /// Secret parameters stay in the host: removed from the guest's options, injected per `auth`.
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// Where the connector may send requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Allowed origins as templates over the connection's options, e.g. `{base_url}`.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// "For requests to `origin`, set `header: value`", both templates over the options and secrets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthRule {
    pub origin: String,
    pub header: String,
    pub value: String,
}

/// A request budget shared by every request whose rendered `key` is the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// A template such as `base:{base_id}`; secrets in it are hashed, never kept.
    pub key: String,
    pub per_second: f64,
}

/// How the host retries faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff; it doubles per attempt, with full jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long the source refuses requests after a 429 when it sends no Retry-After.
    pub penalty_seconds: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_attempts: 5, initial_backoff_ms: 200, max_backoff_ms: 10_000, penalty_seconds: 30.0 }
    }
}

/// Resource limits per instance and per call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory per instance.
    pub memory_mib: u64,
    /// Guest CPU time per call; time spent waiting on the host (HTTP, pacing) does not count.
    pub call_seconds: f64,
    /// The largest page a call may return.
    pub page_mib: u64,
    /// The largest HTTP response body.
    pub http_body_mib: u64,
    /// Timeout of one HTTP attempt.
    pub http_timeout_seconds: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 128,
            call_seconds: 30.0,
            page_mib: 32,
            http_body_mib: 16,
            http_timeout_seconds: 30.0,
        }
    }
}

impl Manifest {
    /// Reads the manifest from a component's bytes without compiling it.
    pub fn from_component(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut found = Vec::new();
        // Nested modules and components are the guest's own code: only the outer
        // component's sections count, so a guest cannot smuggle in a manifest.
        let mut depth = 0usize;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(|e| ManifestError::NotWasm(e.to_string()))?;
            match payload {
                wasmparser::Payload::Version { encoding, .. }
                    if depth == 0 && encoding != wasmparser::Encoding::Component =>
                {
                    return Err(ManifestError::NotWasm("it is a core module, not a component".into()));
                }
                wasmparser::Payload::CustomSection(c) if depth == 0 && c.name() == SECTION => {
                    found.push(c.data().to_vec())
                }
                wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => {
                    depth += 1
                }
                wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        match found.len() {
            0 => Err(ManifestError::Missing),
            1 => Manifest::parse(&found[0]),
            n => Err(ManifestError::Duplicate(n)),
        }
    }

    /// Parses and validates manifest TOML.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |m: String| Err(ManifestError::Invalid(m));
        if self.name.is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid(format!("name {:?} must be non-empty ASCII letters, digits, - or _", self.name));
        }
        if !SUPPORTED_CONTRACTS.contains(&self.contract.as_str()) {
            return invalid(format!(
                "contract {:?} is not served by this host (it serves {})",
                self.contract,
                SUPPORTED_CONTRACTS.join(", ")
            ));
        }
        let known: BTreeMap<&str, &Parameter> =
            self.parameters.iter().map(|p| (p.name.as_str(), p)).collect();
        if known.len() != self.parameters.len() {
            return invalid("a parameter is declared twice".into());
        }
        let check = |what: &str, template: &str| -> Result<(), ManifestError> {
            for name in crate::template::placeholders(template)
                .map_err(|e| ManifestError::Invalid(format!("{what} {template:?}: {e}")))?
            {
                if !known.contains_key(name.as_str()) {
                    return invalid(format!("{what} {template:?} names {{{name}}}, which is no parameter"));
                }
            }
            Ok(())
        };
        for origin in &self.network.allow {
            check("network origin", origin)?;
            for name in crate::template::placeholders(origin).unwrap_or_default() {
                if known.get(name.as_str()).is_some_and(|p| p.secret) {
                    return invalid(format!("network origin {origin:?} must not be built from a secret"));
                }
            }
        }
        for rule in &self.auth {
            check("auth origin", &rule.origin)?;
            check("auth value", &rule.value)?;
        }
        for limit in &self.rate_limits {
            check("rate limit key", &limit.key)?;
            if limit.per_second.is_nan() || limit.per_second <= 0.0 {
                return invalid(format!("rate limit {:?} needs per_second > 0", limit.key));
            }
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.max_attempts must be at least 1".into());
        }
        if self.limits.memory_mib == 0 || self.limits.call_seconds.is_nan() || self.limits.call_seconds <= 0.0
        {
            return invalid("limits.memory_mib and limits.call_seconds must be positive".into());
        }
        Ok(())
    }

    /// The names of the secret parameters.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.iter().filter(|p| p.secret).map(|p| p.name.as_str())
    }
}

pub use section::embed;

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "x"
version = "0.1.0"
contract = "lakeflow:connect@0.1.0"
[[parameters]]
name = "base_url"
[[parameters]]
name = "token"
secret = true
[network]
allow = ["{base_url}"]
[[auth]]
origin = "{base_url}"
header = "Authorization"
value = "Bearer {token}"
"#;

    #[test]
    fn parses_and_applies_defaults() {
        let m = Manifest::parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(m.secret_names().collect::<Vec<_>>(), ["token"]);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.retry.max_attempts, 5);
    }

    #[test]
    fn rejects_unknown_keys_placeholders_and_contracts() {
        let bad_key = format!("{MINIMAL}\nsurprise = 1\n");
        assert!(matches!(Manifest::parse(bad_key.as_bytes()), Err(ManifestError::Parse(_))));
        let bad_placeholder = MINIMAL.replace("Bearer {token}", "Bearer {nope}");
        let err = Manifest::parse(bad_placeholder.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("{nope}"), "{err}");
        let bad_contract = MINIMAL.replace("@0.1.0", "@9.0.0");
        assert!(Manifest::parse(bad_contract.as_bytes()).unwrap_err().to_string().contains("not served"));
        let secret_origin =
            MINIMAL.replace("allow = [\"{base_url}\"]", "allow = [\"https://{token}.example\"]");
        assert!(Manifest::parse(secret_origin.as_bytes()).unwrap_err().to_string().contains("secret"));
    }

    #[test]
    fn embedded_section_is_read_back_and_core_modules_are_refused() {
        // The smallest valid component: magic, component version/layer.
        let empty_component = b"\0asm\x0d\0\x01\0";
        let bytes = embed(empty_component, MINIMAL);
        assert_eq!(Manifest::from_component(&bytes).unwrap().name, "x");
        assert!(matches!(Manifest::from_component(empty_component), Err(ManifestError::Missing)));
        let twice = embed(&bytes, MINIMAL);
        assert!(matches!(Manifest::from_component(&twice), Err(ManifestError::Duplicate(2))));
        let core = embed(b"\0asm\x01\0\0\0", MINIMAL);
        assert!(matches!(Manifest::from_component(&core), Err(ManifestError::NotWasm(_))));
    }
}
