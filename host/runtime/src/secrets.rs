//! Secrets: redaction of secret values, and injection of credentials into requests.
//!
//! The guest never holds a secret, so it cannot leak one; redaction is the second wall,
//! for anything that passes through the host on its way to a log, an error or the guest
//! (a server that echoes request headers back, say).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, packed};

use crate::connection::Connection;
use crate::http::allowlist::Origin;
use crate::manifest::Manifest;
use crate::template;

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are redacted as they are written (case-sensitively), but not in
/// their encodings, and a page that holds one is not refused: a very short value matches too
/// much unrelated text. Real credentials are far longer.
pub const MIN_ENCODED_SECRET: usize = 8;

/// Replaces every secret value, and its common encodings, in text and bytes.
///
/// A guest that can make the source echo the token back (a header-echoing endpoint, an
/// error message) could decode an encoded copy and write it into rows, so the redactor matches
/// each secret as it is and as a source or a guest would encode it: percent-encoded, hex,
/// base64 (standard and URL-safe, at every alignment inside a larger encoded value), and
/// reversed. Plain, percent and hex forms match regardless of case; base64 matches exactly
/// (its alphabet is case-sensitive).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// The one pass that every response body and every page makes, which for text holding no
    /// secret (all of it, in practice) is the only one. The automata below run only after it
    /// matches.
    any: Option<AnyForm>,
    folded: Option<AhoCorasick>,
    exact: Option<AhoCorasick>,
    /// Secrets shorter than [`MIN_ENCODED_SECRET`], as written.
    short: Option<AhoCorasick>,
}

/// The forms of one secret of at least [`MIN_ENCODED_SECRET`] bytes: (case-insensitive,
/// case-sensitive).
fn forms(secret: &str) -> (Vec<String>, Vec<String>) {
    let mut folded = vec![secret.to_string()];
    let mut exact = Vec::new();
    let bytes = secret.as_bytes();
    folded.push(url::form_urlencoded::byte_serialize(bytes).collect());
    folded.push(
        bytes
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                    (*b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    );
    // A source may escape more than it must: every byte but letters and digits, or every byte.
    folded.push(
        bytes
            .iter()
            .map(|b| if b.is_ascii_alphanumeric() { (*b as char).to_string() } else { format!("%{b:02X}") })
            .collect(),
    );
    folded.push(bytes.iter().map(|b| format!("%{b:02X}")).collect());
    folded.push(hex::encode(bytes));
    folded.push(secret.chars().rev().collect());
    for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
        for k in 0..3usize {
            // Inside a larger value, the secret can start at any of three byte offsets of a
            // base64 group; the characters that depend on the secret alone are the same
            // whatever surrounds it.
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(bytes);
            let encoded = base64::Engine::encode(engine, &padded);
            let first = (8 * k).div_ceil(6);
            let last = (8 * (k + bytes.len())) / 6;
            if let Some(core) = encoded.get(first..last)
                && core.len() >= MIN_ENCODED_SECRET
            {
                exact.push(core.to_string());
            }
        }
    }
    folded.sort();
    folded.dedup();
    exact.sort();
    exact.dedup();
    (folded, exact)
}

fn automaton(needles: &[String], case_insensitive: bool) -> Option<AhoCorasick> {
    if needles.is_empty() {
        return None;
    }
    AhoCorasick::builder()
        .ascii_case_insensitive(case_insensitive)
        .match_kind(MatchKind::LeftmostLongest)
        .build(needles)
        .ok()
}

impl Redactor {
    /// A redactor for the connection's secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let (mut folded, mut exact, mut short) = (Vec::new(), Vec::new(), Vec::new());
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_ENCODED_SECRET {
                short.push(secret.to_string());
                continue;
            }
            let (f, e) = forms(secret);
            folded.extend(f);
            exact.extend(e);
        }
        let any = AnyForm::new(folded.iter().chain(&exact).chain(&short));
        Redactor {
            any,
            folded: automaton(&folded, true),
            exact: automaton(&exact, false),
            short: automaton(&short, false),
        }
    }

    /// What redaction replaces: every form of the long secrets, and the short ones as written.
    fn automata(&self) -> impl Iterator<Item = &AhoCorasick> {
        self.folded.iter().chain(self.exact.iter()).chain(self.short.iter())
    }

    /// The text with secrets replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if !self.may_hold(text.as_bytes()) {
            return out;
        }
        for ac in self.automata() {
            if ac.is_match(out.as_ref()) {
                out = Cow::Owned(ac.replace_all(out.as_ref(), &vec![REDACTED; ac.patterns_len()]));
            }
        }
        out
    }

    /// The bytes with secrets replaced, for bodies handed to the guest.
    pub fn redact_bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = bytes;
        if !self.may_hold(&out) {
            return out;
        }
        for ac in self.automata() {
            if ac.is_match(&out) {
                out = ac.replace_all_bytes(&out, &vec![REDACTED.as_bytes(); ac.patterns_len()]);
            }
        }
        out
    }

    /// Whether the bytes hold a secret (of at least [`MIN_ENCODED_SECRET`] bytes) or one of its
    /// encodings.
    pub fn finds_secret(&self, bytes: &[u8]) -> bool {
        self.may_hold(bytes) && self.folded.iter().chain(self.exact.iter()).any(|ac| ac.is_match(bytes))
    }

    /// False only when the bytes hold no form of any secret (one pass).
    fn may_hold(&self, bytes: &[u8]) -> bool {
        match &self.any {
            Some(any) => any.may_hold(bytes),
            // Too many forms for either pass: the precise automata decide.
            None => self.automata().next().is_some(),
        }
    }
}

/// Every form of every secret, matched regardless of case: the one pass that decides whether the
/// precise automata need to run.
#[derive(Debug, Clone)]
enum AnyForm {
    /// The forms in lower case, found in a lower-cased copy of the text by SIMD (Teddy), a chunk
    /// at a time. A form in the text, in any case, is its lower-cased self in the lower-cased
    /// text; the base64 forms, matched exactly, are then checked exactly. A DFA, one table
    /// lookup a byte, cost 3 µs a row of Airtable JSON (on every body and again on every page);
    /// this costs about a tenth of that (perf on the read-path bench: 5.2 % of the samples → 0.4).
    Lowered { searcher: packed::Searcher, longest: usize },
    /// Too many forms for Teddy: one DFA without a prefilter. (Three passes with a rare-bytes
    /// prefilter, which JSON text keeps tripping, were a fifth of `weir run`'s CPU.)
    Dfa(AhoCorasick),
}

/// The lower-cased copy is made this many bytes at a time (or the longest form twice over).
const LOWERED_CHUNK: usize = 64 * 1024;

impl AnyForm {
    fn new<'a>(forms: impl Iterator<Item = &'a String> + Clone) -> Option<AnyForm> {
        let lowered: Vec<String> = forms.clone().map(|f| f.to_ascii_lowercase()).collect();
        let longest = lowered.iter().map(String::len).max().unwrap_or(0);
        let mut builder = packed::Config::new().match_kind(packed::MatchKind::LeftmostFirst).builder();
        if !lowered.is_empty()
            && let Some(searcher) = builder.extend(&lowered).build()
        {
            return Some(AnyForm::Lowered { searcher, longest });
        }
        // With no secrets the DFA has no patterns and never matches.
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .prefilter(false)
            .build(forms)
            .ok()
            .map(AnyForm::Dfa)
    }

    fn may_hold(&self, bytes: &[u8]) -> bool {
        let (searcher, longest) = match self {
            AnyForm::Dfa(dfa) => return dfa.is_match(bytes),
            AnyForm::Lowered { searcher, longest } => (searcher, *longest),
        };
        let chunk = LOWERED_CHUNK.max(2 * longest);
        let mut lower = Vec::with_capacity(chunk.min(bytes.len()));
        let mut start = 0;
        loop {
            let end = (start + chunk).min(bytes.len());
            lower.clear();
            lower.extend(bytes[start..end].iter().map(u8::to_ascii_lowercase));
            if searcher.find(&lower).is_some() {
                return true;
            }
            if end == bytes.len() {
                return false;
            }
            // The next chunk repeats the end of this one, so a form across the seam is whole in it.
            start = end - (longest - 1);
        }
    }
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
        let r = Redactor::new(["pat/abc+1xyz", ""]);
        assert_eq!(r.redact("token pat/abc+1xyz and pat%2Fabc%2B1xyz"), "token [REDACTED] and [REDACTED]");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(
            r.redact_bytes(b"{\"h\":\"Bearer pat/abc+1xyz\"}".to_vec()),
            b"{\"h\":\"Bearer [REDACTED]\"}"
        );
    }

    #[test]
    fn every_common_encoding_of_a_secret_is_found_whatever_surrounds_it() {
        use base64::Engine;
        let secret = "patWeirSim.0123456789abcdef";
        let r = Redactor::new([secret]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for carrier in [
            secret.to_uppercase(),
            secret.to_lowercase(),
            hex::encode(secret),
            hex::encode(secret).to_uppercase(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            secret.bytes().map(|b| format!("%{b:02x}")).collect(),
            secret.replace('.', "%2E"),
            secret.chars().rev().collect(),
            b64(secret),
            b64(&format!("Bearer {secret}")),
            b64(&format!("x:{secret}")),
            b64(&format!("ab{secret}cd")),
            b64url(&format!("user:{secret}")),
        ] {
            let text = format!("echo: {carrier}!");
            assert!(r.finds_secret(text.as_bytes()), "{carrier}");
            assert!(!r.redact(&text).contains(&carrier), "{carrier} survived redaction");
        }
        assert!(!r.finds_secret(b"an ordinary page with patWeirSim but no token"));
        // A one-letter secret is redacted as written, and pages are not refused for it.
        let short = Redactor::new(["t"]);
        assert_eq!(short.redact("a t T"), "a [REDACTED] T");
        assert!(!short.finds_secret(b"text"));
    }

    #[test]
    fn a_secret_across_the_seam_of_two_chunks_is_found_in_any_case() {
        let secret = "patSeam.0123456789abcdef";
        let r = Redactor::new([secret]);
        assert!(matches!(r.any, Some(AnyForm::Lowered { .. })), "one secret's forms fit the SIMD pass");
        for at in [0, LOWERED_CHUNK - secret.len(), LOWERED_CHUNK - 5, LOWERED_CHUNK, 3 * LOWERED_CHUNK - 1] {
            let mut body = vec![b'x'; at];
            body.extend(secret.to_uppercase().bytes());
            body.extend(vec![b'y'; 100]);
            assert!(r.finds_secret(&body), "a secret at byte {at} of {}", body.len());
            let redacted = r.redact_bytes(body);
            assert!(!String::from_utf8_lossy(&redacted).to_lowercase().contains(&secret.to_lowercase()));
        }
        assert!(!r.finds_secret(&vec![b'p'; 5 * LOWERED_CHUNK]));
    }

    #[test]
    fn many_secrets_are_found_by_the_dfa_pass() {
        let secrets: Vec<String> = (0..20).map(|i| format!("secret-number-{i:02}-abcdef")).collect();
        let r = Redactor::new(secrets.iter().map(String::as_str));
        assert!(matches!(r.any, Some(AnyForm::Dfa(_))), "20 secrets' forms are too many for the SIMD pass");
        for secret in &secrets {
            assert!(r.finds_secret(format!("echo {}!", secret.to_uppercase()).as_bytes()), "{secret}");
        }
        assert!(!r.finds_secret(b"secret-number-20-abcdef"));
    }
}
