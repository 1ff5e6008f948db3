//! The connector manifest: what a component declares about itself and may use.
//!
//! It rides inside the component as a custom section named [`SECTION`], and the host
//! reads it with a parser before compiling anything, so a component whose manifest is
//! missing or malformed is rejected without running the compiler on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::{Capability, ContractVersion};

#[path = "manifest_section.rs"]
mod section;

/// The name of the custom section holding the manifest (TOML text).
pub use section::SECTION;

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
    /// The WIT package the component implements, e.g. `lakeflow:connect@0.2.0`; it picks the
    /// bindings the host loads the component with.
    pub contract: ContractVersion,
    #[serde(default)]
    pub description: String,
    /// The optional parts of the contract the component implements (contract 0.2 and later).
    #[serde(default)]
    pub capabilities: Vec<Capability>,
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
///
/// Without `paths`, the key is rendered once from the connection's parameters and the budget
/// covers every request of the connection. With `paths`, each request's URL path is matched
/// against the patterns in order; the first that matches binds its `{name}` segments, the key is
/// rendered from those and the parameters, and a request that matches none is not counted
/// against this limit. A pattern is `/`-separated segments: a literal, `{name}` (any one
/// segment), or a final `*` (any number of segments, none included). Airtable's per-base limit
/// is `key = "base:{base}"` with `paths = ["/v0/meta/bases/{base}/*", "/v0/bases/{base}/*",
/// "/v0/{base}/*"]`, so that one connection reading several bases paces each base on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// A template such as `base:{base_id}`; secrets in it are hashed, never kept.
    pub key: String,
    pub per_second: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
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
    /// Wall-clock time per call, host time included: it bounds a guest that sleeps, polls, or
    /// loops on `http.send`.
    pub call_wall_seconds: f64,
    /// The largest page a call may return.
    pub page_mib: u64,
    /// The largest HTTP response body.
    pub http_body_mib: u64,
    /// Timeout of one HTTP attempt.
    pub http_timeout_seconds: f64,
    /// Pages in a row without a row, while the offset moves, before a read fails.
    pub read_empty_pages: u64,
    /// Calls in one read before it fails.
    pub read_calls: u64,
    /// Rows the host holds before the connector reaches a checkpointable offset, in MiB of
    /// Arrow memory; a snapshot is held whole until its end.
    pub pending_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 128,
            call_seconds: 30.0,
            call_wall_seconds: 300.0,
            page_mib: 32,
            http_body_mib: 16,
            http_timeout_seconds: 30.0,
            read_empty_pages: 1000,
            read_calls: 10_000_000,
            pending_mib: 1024,
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
            || self.name.len() > 64
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid(format!("name {:?} must be 1 to 64 ASCII letters, digits, - or _", self.name));
        }
        for capability in &self.capabilities {
            if self.contract < capability.since() {
                return invalid(format!(
                    "capability {:?} needs contract {} or later, but the manifest says {}",
                    capability.name(),
                    capability.since(),
                    self.contract
                ));
            }
        }
        let known: BTreeMap<&str, &Parameter> =
            self.parameters.iter().map(|p| (p.name.as_str(), p)).collect();
        if known.len() != self.parameters.len() {
            return invalid("a parameter is declared twice".into());
        }
        let check = |what: &str, template: &str, extra: &[String]| -> Result<(), ManifestError> {
            for name in crate::template::placeholders(template)
                .map_err(|e| ManifestError::Invalid(format!("{what} {template:?}: {e}")))?
            {
                if !known.contains_key(name.as_str()) && !extra.contains(&name) {
                    return invalid(format!("{what} {template:?} names {{{name}}}, which is no parameter"));
                }
            }
            Ok(())
        };
        for origin in &self.network.allow {
            check("network origin", origin, &[])?;
            for name in crate::template::placeholders(origin).unwrap_or_default() {
                if known.get(name.as_str()).is_some_and(|p| p.secret) {
                    return invalid(format!("network origin {origin:?} must not be built from a secret"));
                }
            }
        }
        for rule in &self.auth {
            check("auth origin", &rule.origin, &[])?;
            check("auth value", &rule.value, &[])?;
        }
        for limit in &self.rate_limits {
            let mut bound = Vec::new();
            for pattern in &limit.paths {
                let captures = crate::ratelimit::PathPattern::parse(pattern)
                    .map_err(|e| ManifestError::Invalid(format!("rate limit {:?}: {e}", limit.key)))?
                    .captures();
                bound.extend(captures);
            }
            check("rate limit key", &limit.key, &bound)?;
            limit.validate()?;
        }
        self.retry.validate()?;
        self.limits.validate()?;
        Ok(())
    }

    /// Whether the component implements `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The names of the secret parameters.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.iter().filter(|p| p.secret).map(|p| p.name.as_str())
    }
}

pub use section::{SIGNATURE_SECTION, embed, leb128, package};

/// A finite number within `min..=max`, or an error naming the setting and the range.
fn in_range(what: &str, value: f64, min: f64, max: f64) -> Result<(), ManifestError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!("{what} is {value}; it must be a number from {min} to {max}")))
    }
}

/// A whole number within `min..=max`, or an error naming the setting and the range.
fn whole_in_range(what: &str, value: u64, min: u64, max: u64) -> Result<(), ManifestError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ManifestError::Invalid(format!(
            "{what} is {value}; it must be a whole number from {min} to {max}"
        )))
    }
}

impl Limits {
    /// Checks every limit against a sane range, so that no value read from a manifest or a
    /// connection can make the host panic or wait for ever later.
    pub fn validate(&self) -> Result<(), ManifestError> {
        whole_in_range("limits.memory_mib", self.memory_mib, 1, 16_384)?;
        in_range("limits.call_seconds", self.call_seconds, 0.001, 86_400.0)?;
        in_range("limits.call_wall_seconds", self.call_wall_seconds, 0.001, 86_400.0)?;
        whole_in_range("limits.page_mib", self.page_mib, 1, 4096)?;
        whole_in_range("limits.http_body_mib", self.http_body_mib, 1, 4096)?;
        in_range("limits.http_timeout_seconds", self.http_timeout_seconds, 0.001, 86_400.0)?;
        whole_in_range("limits.read_empty_pages", self.read_empty_pages, 1, 1_000_000_000)?;
        whole_in_range("limits.read_calls", self.read_calls, 1, u64::from(u32::MAX))?;
        whole_in_range("limits.pending_mib", self.pending_mib, 1, 1 << 20)
    }

    /// The bounds of every read, from these limits.
    pub fn read_bounds(&self) -> crate::read::ReadBounds {
        crate::read::ReadBounds { empty_pages: self.read_empty_pages, calls: self.read_calls, duration: None }
    }
}

impl RateLimit {
    /// Checks the rate against a sane range.
    pub fn validate(&self) -> Result<(), ManifestError> {
        in_range(&format!("rate limit {:?} per_second", self.key), self.per_second, 0.001, 100_000.0)
    }
}

impl Retry {
    /// Checks every retry setting against a sane range.
    pub fn validate(&self) -> Result<(), ManifestError> {
        whole_in_range("retry.max_attempts", u64::from(self.max_attempts), 1, 100)?;
        whole_in_range("retry.initial_backoff_ms", self.initial_backoff_ms, 0, 3_600_000)?;
        whole_in_range("retry.max_backoff_ms", self.max_backoff_ms, 0, 3_600_000)?;
        in_range("retry.penalty_seconds", self.penalty_seconds, 0.0, 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: magic, component version and layer.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn packaging_again_replaces_the_manifest_and_keeps_other_sections() {
        let mut with_name = EMPTY_COMPONENT.to_vec();
        with_name.extend_from_slice(b"\0\x06\x04nameX"); // a custom section "name" holding "X"
        let once = package(&with_name, MINIMAL).unwrap();
        assert_eq!(Manifest::from_component(&once).unwrap().name, "x");
        let other = MINIMAL.replace("name = \"x\"", "name = \"y\"");
        let twice = package(&once, &other).unwrap();
        assert_eq!(Manifest::from_component(&twice).unwrap().name, "y", "one manifest section, the new one");
        assert_eq!(twice, package(&with_name, &other).unwrap());
        assert!(twice.windows(5).any(|w| w == b"nameX"), "other sections stay");
    }

    #[test]
    fn signed_components_core_modules_and_garbage_are_not_packaged() {
        let mut signed = EMPTY_COMPONENT.to_vec();
        signed.extend_from_slice(b"\0\x0a\x09signature");
        assert!(package(&signed, MINIMAL).unwrap_err().contains("weir sign"));
        assert!(package(b"\0asm\x01\0\0\0", MINIMAL).unwrap_err().contains("core module"));
        assert!(package(b"PK\x03\x04", MINIMAL).unwrap_err().contains("not WebAssembly"));
        let mut cut = EMPTY_COMPONENT.to_vec();
        cut.extend_from_slice(b"\0\x7f\x04name");
        assert!(package(&cut, MINIMAL).unwrap_err().contains("past the end"));
    }

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
        let err = Manifest::parse(bad_contract.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("not served") && err.contains("lakeflow:connect@0.1.0, lakeflow:connect@0.2.0"),
            "{err}"
        );
        let early =
            MINIMAL.replace("version = \"0.1.0\"", "version = \"0.1.0\"\ncapabilities = [\"partitions\"]");
        let err = Manifest::parse(early.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("partitions") && err.contains("0.2.0"), "{err}");
        let secret_origin =
            MINIMAL.replace("allow = [\"{base_url}\"]", "allow = [\"https://{token}.example\"]");
        assert!(Manifest::parse(secret_origin.as_bytes()).unwrap_err().to_string().contains("secret"));
    }

    #[test]
    fn numbers_out_of_range_are_refused_when_the_manifest_is_read() {
        for (extra, named) in [
            ("[limits]\ncall_seconds = inf", "limits.call_seconds"),
            ("[limits]\ncall_seconds = nan", "limits.call_seconds"),
            ("[limits]\nhttp_timeout_seconds = -1.0", "limits.http_timeout_seconds"),
            ("[limits]\nmemory_mib = 0", "limits.memory_mib"),
            ("[retry]\npenalty_seconds = 1e300", "retry.penalty_seconds"),
            ("[retry]\nmax_attempts = 0", "retry.max_attempts"),
            ("[[rate_limits]]\nkey = \"k\"\nper_second = 1e-300", "per_second"),
            ("[[rate_limits]]\nkey = \"k\"\nper_second = inf", "per_second"),
        ] {
            let text = format!("{MINIMAL}\n{extra}\n");
            let err = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains("from"), "{extra}: {err}");
        }
    }

    #[test]
    fn rate_limit_keys_may_be_bound_by_path_patterns() {
        let text = format!(
            "{MINIMAL}\n[[rate_limits]]\nkey = \"base:{{base}}\"\nper_second = 5\npaths = [\"/v0/{{base}}/*\"]\n"
        );
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap().rate_limits[0].paths, ["/v0/{base}/*"]);
        let unbound = text.replace("/v0/{base}/*", "/v0/{other}/*");
        assert!(Manifest::parse(unbound.as_bytes()).unwrap_err().to_string().contains("{base}"));
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
