//! Secrets: redaction of secret values, and injection of credentials into requests.
//!
//! The guest never holds a secret, so it cannot leak one; redaction is the second wall,
//! for anything that passes through the host on its way to a log, an error or the guest
//! (a server that echoes request headers back, say).

use std::borrow::Cow;

use crate::connection::Connection;
use crate::http::allowlist::Origin;
use crate::manifest::Manifest;
use crate::template;

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every secret value (and its percent-encoded form) in text.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for the connection's secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles: Vec<String> = Vec::new();
        for s in secrets.into_iter().filter(|s| !s.is_empty()) {
            needles.push(s.to_string());
            let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if encoded != s {
                needles.push(encoded);
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactor { needles }
    }

    /// The text with secrets replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = Cow::Owned(out.replace(n.as_str(), REDACTED));
            }
        }
        out
    }

    /// The bytes with secrets replaced, for bodies handed to the guest.
    pub fn redact_bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        if !self.needles.iter().any(|n| contains(&bytes, n.as_bytes())) {
            return bytes;
        }
        let mut out = bytes;
        for n in &self.needles {
            let n = n.as_bytes();
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(n) {
                    next.extend_from_slice(REDACTED.as_bytes());
                    i += n.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// One rendered auth rule: a header the host sets on requests to an origin.
#[derive(Clone)]
pub struct Injection {
    pub origin: Origin,
    pub header: reqwest::header::HeaderName,
    pub value: reqwest::header::HeaderValue,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} for {}: <redacted>", self.header, self.origin)
    }
}

/// Renders the manifest's auth rules over the connection's options and secrets.
pub fn injections(manifest: &Manifest, connection: &Connection) -> Result<Vec<Injection>, String> {
    let mut values = connection.options.clone();
    values.extend(connection.secrets.map().iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut out = Vec::new();
    for rule in &manifest.auth {
        let origin = template::render(&rule.origin, &connection.options)
            .map_err(|e| format!("auth origin {:?}: {e}", rule.origin))?;
        let origin = Origin::parse(&origin).map_err(|e| format!("auth origin {:?}: {e}", rule.origin))?;
        // An auth rule whose secret is absent (an optional credential) injects nothing.
        let Ok(value) = template::render(&rule.value, &values) else { continue };
        let header = reqwest::header::HeaderName::from_bytes(rule.header.as_bytes())
            .map_err(|_| format!("auth header {:?} is not a valid header name", rule.header))?;
        let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            format!("the value for auth header {} holds characters a header can't carry", rule.header)
        })?;
        value.set_sensitive(true);
        out.push(Injection { origin, header, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_plain_and_encoded_forms_in_text_and_bytes() {
        let r = Redactor::new(["pat/abc+1", ""]);
        assert_eq!(r.redact("token pat/abc+1 and pat%2Fabc%2B1"), "token [REDACTED] and [REDACTED]");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(
            r.redact_bytes(b"{\"h\":\"Bearer pat/abc+1\"}".to_vec()),
            b"{\"h\":\"Bearer [REDACTED]\"}"
        );
    }
}
