//! Capability review: what a connector may reach and spend, read from its manifest, and what
//! changes between two versions, as `+`/`-` lines.
//!
//! An upgrade that asks for more waits for the user's approval, as a browser disables an
//! extension whose update asks for new permissions. "More" means: a new network origin, a
//! new auth rule, a new secret parameter, a larger resource limit, more retries or shorter
//! waits, a higher request rate, or a rate limit removed (the host would no longer pace the
//! connector). Removals of capabilities pass. A contract version change is shown, not judged.
//!
//! One rule is flagged on its own: an auth rule whose origin is fixed (built from no
//! connection parameter) while its value carries a secret. The host would send the user's
//! secret to a server that the connector's author chose, not one the user configured, so
//! such a rule is shown prominently and needs explicit approval at install (issue 9, item 10).
//!
//! The comparison reads only long-standing manifest fields (network.allow, auth, parameters
//! marked secret, rate_limits, limits, retry, contract) and keeps limits and retry as named
//! numbers, so new manifest fields add a line to [`Capabilities::of`] and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use weir_runtime::manifest::Manifest;

/// What one connector version may reach and spend, as recorded in the lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    /// The WIT package the component implements, e.g. `lakeflow:connect@0.1.0`.
    pub contract: String,
    /// Allowed origins, as templates over the connection's parameters.
    #[serde(default)]
    pub network: Vec<String>,
    /// Headers the host adds to requests, with the secrets they carry.
    #[serde(default)]
    pub auth: Vec<AuthGrant>,
    /// The parameters marked secret.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Request budgets, by their key template, in requests per second.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, f64>,
    /// Resource limits and retry settings, by their manifest name (`limits.memory_mib`).
    #[serde(default)]
    pub bounds: BTreeMap<String, f64>,
}

/// One auth rule: for requests to `origin`, the host sets `header: value`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuthGrant {
    pub origin: String,
    pub header: String,
    pub value: String,
    /// The secret parameters that `value` carries.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// True when `origin` is built from no parameter: its author chose the server.
    #[serde(default)]
    pub fixed_origin: bool,
}

impl AuthGrant {
    /// Whether this rule sends a user's secret to a server the connector's author chose.
    pub fn sends_secret_to_fixed_origin(&self) -> bool {
        self.fixed_origin && !self.secrets.is_empty()
    }

    fn describe(&self) -> String {
        let mut text = format!("{}: {}: {}", self.origin, self.header, self.value);
        if self.sends_secret_to_fixed_origin() {
            text.push_str(&format!(
                "  !! sends your secret {} to {}, a server chosen by the connector's author, not by you",
                self.secrets.join(", "),
                self.origin
            ));
        }
        text
    }
}

/// Which way of changing a bound asks for more.
#[derive(Clone, Copy)]
enum Wider {
    Larger,
    Smaller,
}

/// Each limit and retry setting, and which direction widens it. A name missing here (a field
/// added later) is shown but not judged.
const BOUNDS: &[(&str, Wider)] = &[
    ("limits.memory_mib", Wider::Larger),
    ("limits.call_seconds", Wider::Larger),
    ("limits.page_mib", Wider::Larger),
    ("limits.http_body_mib", Wider::Larger),
    ("limits.http_timeout_seconds", Wider::Larger),
    ("retry.max_attempts", Wider::Larger),
    ("retry.initial_backoff_ms", Wider::Smaller),
    ("retry.max_backoff_ms", Wider::Smaller),
    ("retry.penalty_seconds", Wider::Smaller),
];

impl Capabilities {
    /// Reads the capabilities from a parsed manifest.
    pub fn of(manifest: &Manifest) -> Capabilities {
        let secrets: BTreeSet<String> = manifest.secret_names().map(str::to_string).collect();
        let placeholders = |template: &str| weir_runtime::template::placeholders(template);
        let auth = manifest
            .auth
            .iter()
            .map(|rule| AuthGrant {
                origin: rule.origin.clone(),
                header: rule.header.clone(),
                value: rule.value.clone(),
                secrets: placeholders(&rule.value)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|name| secrets.contains(name))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                // A template that does not parse names no parameter either: treat it as fixed.
                fixed_origin: placeholders(&rule.origin).map(|names| names.is_empty()).unwrap_or(true),
            })
            .collect();
        let limits = &manifest.limits;
        let retry = &manifest.retry;
        let bounds = [
            ("limits.memory_mib", limits.memory_mib as f64),
            ("limits.call_seconds", limits.call_seconds),
            ("limits.page_mib", limits.page_mib as f64),
            ("limits.http_body_mib", limits.http_body_mib as f64),
            ("limits.http_timeout_seconds", limits.http_timeout_seconds),
            ("retry.max_attempts", f64::from(retry.max_attempts)),
            ("retry.initial_backoff_ms", retry.initial_backoff_ms as f64),
            ("retry.max_backoff_ms", retry.max_backoff_ms as f64),
            ("retry.penalty_seconds", retry.penalty_seconds),
        ];
        Capabilities {
            contract: manifest.contract.to_string(),
            network: manifest.network.allow.clone(),
            auth,
            secrets: secrets.into_iter().collect(),
            rate_limits: manifest.rate_limits.iter().map(|r| (r.key.clone(), r.per_second)).collect(),
            bounds: bounds.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// The auth rules that send a secret to a server the connector's author chose.
    pub fn fixed_origin_secrets(&self) -> impl Iterator<Item = &AuthGrant> {
        self.auth.iter().filter(|a| a.sends_secret_to_fixed_origin())
    }

    /// Every capability as a line, as `weir connector info` shows them.
    pub fn lines(&self) -> Vec<String> {
        diff(&Capabilities::default(), self).changes.into_iter().map(|c| escape(&c.text)).collect()
    }
}

/// One line of a capability diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `+` for what the new version has and the old had not, `-` for the reverse.
    pub sign: char,
    /// What kind of capability: `network origin`, `auth`, `secret parameter`, `rate limit`,
    /// a bound's name such as `limits.memory_mib`, or `contract`.
    pub kind: String,
    /// The full line after the sign, e.g. `network origin https://x.example`.
    pub text: String,
    /// Whether this change asks for more, and so needs approval.
    pub widens: bool,
}

/// The capability change from one version to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapabilityDiff {
    pub from: String,
    pub to: String,
    pub changes: Vec<Change>,
    /// True when any change asks for more.
    pub needs_approval: bool,
}

impl CapabilityDiff {
    /// The changes that ask for more.
    pub fn widening(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.widens)
    }

    /// The widening changes as lines, for refusal messages.
    pub fn widening_lines(&self) -> Vec<String> {
        self.widening().map(|c| format!("{} {}", c.sign, escape(&c.text))).collect()
    }

    fn labelled(mut self, from: &str, to: &str) -> CapabilityDiff {
        self.from = from.to_string();
        self.to = to.to_string();
        self
    }
}

/// Compares two manifests; see [`diff`].
pub fn diff_manifests(old: &Manifest, new: &Manifest) -> CapabilityDiff {
    diff(&Capabilities::of(old), &Capabilities::of(new))
        .labelled(&format!("{} {}", old.name, old.version), &format!("{} {}", new.name, new.version))
}

/// Lists what changed from `old` to `new`, removals first within each kind.
pub fn diff(old: &Capabilities, new: &Capabilities) -> CapabilityDiff {
    let mut changes = Vec::new();
    let mut line = |sign: char, kind: &str, text: String, widens: bool| {
        changes.push(Change { sign, kind: kind.to_string(), text, widens })
    };

    if old.contract != new.contract {
        if !old.contract.is_empty() {
            line('-', "contract", format!("contract {}", old.contract), false);
        }
        line('+', "contract", format!("contract {}", new.contract), false);
    }
    let (removed, added) = set_diff(&old.network, &new.network);
    for origin in removed {
        line('-', "network origin", format!("network origin {origin}"), false);
    }
    for origin in added {
        line('+', "network origin", format!("network origin {origin}"), true);
    }
    let (removed, added) = set_diff(&old.auth, &new.auth);
    for rule in removed {
        line('-', "auth", format!("auth {}", rule.describe()), false);
    }
    for rule in added {
        line('+', "auth", format!("auth {}", rule.describe()), true);
    }
    let (removed, added) = set_diff(&old.secrets, &new.secrets);
    for name in removed {
        line('-', "secret parameter", format!("secret parameter {name}"), false);
    }
    for name in added {
        line('+', "secret parameter", format!("secret parameter {name}"), true);
    }
    let keys: BTreeSet<&String> = old.rate_limits.keys().chain(new.rate_limits.keys()).collect();
    for key in keys {
        let text = |rate: f64| format!("rate limit {key}: {rate}/s");
        match (old.rate_limits.get(key), new.rate_limits.get(key)) {
            (Some(&a), Some(&b)) if a != b => {
                line('-', "rate limit", text(a), false);
                line('+', "rate limit", text(b), b > a);
            }
            // Without its budget the host no longer paces these requests: that asks for more.
            (Some(&a), None) => line('-', "rate limit", format!("{}  (no longer paced)", text(a)), true),
            (None, Some(&b)) => line('+', "rate limit", text(b), false),
            _ => {}
        }
    }
    let names: BTreeSet<&String> = old.bounds.keys().chain(new.bounds.keys()).collect();
    for name in names {
        let direction = BOUNDS.iter().find(|(n, _)| n == name).map(|(_, w)| *w);
        match (old.bounds.get(name), new.bounds.get(name)) {
            (Some(&a), Some(&b)) if a != b => {
                let widens = match direction {
                    Some(Wider::Larger) => b > a,
                    Some(Wider::Smaller) => b < a,
                    None => false,
                };
                line('-', name, format!("{name} {a}"), false);
                line('+', name, format!("{name} {b}"), widens);
            }
            (Some(&a), None) => line('-', name, format!("{name} {a}"), false),
            (None, Some(&b)) => line('+', name, format!("{name} {b}"), false),
            _ => {}
        }
    }
    let needs_approval = changes.iter().any(|c| c.widens);
    CapabilityDiff { from: String::new(), to: String::new(), changes, needs_approval }
}

/// What is only in `old`, and what is only in `new`, each in order.
fn set_diff<'a, T: Ord>(old: &'a [T], new: &'a [T]) -> (Vec<&'a T>, Vec<&'a T>) {
    let (a, b): (BTreeSet<&T>, BTreeSet<&T>) = (old.iter().collect(), new.iter().collect());
    (a.difference(&b).copied().collect(), b.difference(&a).copied().collect())
}

impl fmt::Display for CapabilityDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "capabilities from {} to {}:", escape(&self.from), escape(&self.to))?;
        if self.changes.is_empty() {
            return writeln!(f, "  (no change)");
        }
        for change in &self.changes {
            let note = if change.widens { "   [needs approval]" } else { "" };
            writeln!(f, "{} {}{note}", change.sign, escape(&change.text))?;
        }
        Ok(())
    }
}

/// Manifest text is the connector author's: control characters (terminal escapes, line
/// breaks that forge lines) and bidirectional overrides are shown escaped, never raw.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const BASE: &str = r#"
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
[[rate_limits]]
key = "base"
per_second = 5
"#;

    fn caps(toml: &str) -> Capabilities {
        Capabilities::of(&Manifest::parse(toml.as_bytes()).unwrap())
    }

    #[test]
    fn the_same_manifest_has_no_change() {
        let d = diff(&caps(BASE), &caps(BASE));
        assert!(d.changes.is_empty() && !d.needs_approval);
    }

    #[test]
    fn a_new_origin_is_a_plus_line_that_needs_approval_and_its_removal_passes() {
        let wider =
            BASE.replace(r#"allow = ["{base_url}"]"#, r#"allow = ["{base_url}", "https://x.example"]"#);
        let d = diff(&caps(BASE), &caps(&wider));
        assert_eq!(d.changes.len(), 1);
        assert_eq!(
            (d.changes[0].sign, d.changes[0].text.as_str()),
            ('+', "network origin https://x.example")
        );
        assert!(d.needs_approval);
        assert!(d.to_string().contains("+ network origin https://x.example   [needs approval]"), "{d}");
        let back = diff(&caps(&wider), &caps(BASE));
        assert_eq!(back.changes[0].sign, '-');
        assert!(!back.needs_approval);
    }

    #[test]
    fn larger_limits_higher_rates_and_new_secrets_need_approval_smaller_ones_pass() {
        let more = format!(
            "{}\n[limits]\nmemory_mib = 512\n",
            BASE.replace("per_second = 5", "per_second = 50").replace(
                "name = \"base_url\"",
                "name = \"base_url\"\n[[parameters]]\nname = \"key2\"\nsecret = true"
            )
        );
        let d = diff(&caps(BASE), &caps(&more));
        let widening: Vec<_> = d.widening_lines();
        assert_eq!(
            widening,
            ["+ secret parameter key2", "+ rate limit base: 50/s", "+ limits.memory_mib 512"],
            "{d}"
        );
        let less = format!("{BASE}\n[limits]\nmemory_mib = 64\n");
        let d = diff(&caps(BASE), &caps(&less));
        assert!(!d.needs_approval, "{d}");
        assert_eq!(d.changes.len(), 2, "{d}");
    }

    #[test]
    fn dropping_a_rate_limit_needs_approval() {
        let unpaced = BASE.replace("[[rate_limits]]\nkey = \"base\"\nper_second = 5\n", "");
        let d = diff(&caps(BASE), &caps(&unpaced));
        assert!(d.needs_approval, "{d}");
        assert!(d.changes[0].text.contains("no longer paced"));
    }

    #[test]
    fn a_secret_sent_to_a_fixed_origin_is_flagged() {
        let c = caps(BASE);
        assert_eq!(c.fixed_origin_secrets().count(), 0);
        let leaky = BASE.replace("origin = \"{base_url}\"", "origin = \"https://collect.example\"");
        let c = caps(&leaky);
        let flagged: Vec<_> = c.fixed_origin_secrets().collect();
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].secrets, ["token"]);
        let d = diff(&caps(BASE), &c);
        assert!(d.to_string().contains("!! sends your secret token to https://collect.example"), "{d}");
    }

    #[test]
    fn manifest_text_cannot_drive_the_terminal() {
        let mut c = caps(BASE);
        c.network.push("https://a.example\u{1b}]0;pwned\u{7}\nforged".into());
        let shown = diff(&Capabilities::default(), &c).to_string();
        assert!(!shown.contains('\u{1b}') && !shown.contains("\nforged"), "{shown}");
    }
}
