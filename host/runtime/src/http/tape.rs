//! Record and replay: a cassette of every HTTP exchange that passes the gate.
//!
//! Recording runs the connector as usual and appends each attempt's request and response to
//! the cassette as it happens (a run killed half-way keeps what it did). Replaying serves the
//! recorded responses from the gate instead of the network, so that any command runs offline,
//! deterministically, with no token: the gate still checks origins, paces and retries (a
//! recorded 429 is honoured as a live one), but nothing leaves the process.
//!
//! **The file.** A sequence of pretty-printed JSON objects, one per record, so that a cassette
//! diffs line by line and can be written by hand: first a header
//! `{"cassette": "weir", "version": 1, "clock_ms": …}`, then one object per exchange:
//!
//! ```json
//! {
//!   "request": {"method": "GET", "url": "https://api.example.com/items?page=2", "headers": [["accept", "application/json"]]},
//!   "response": {"status": 200, "headers": [["content-type", "application/json"]], "json": {"items": []}}
//! }
//! ```
//!
//! A body is `json` when it is JSON (served back compactly), `text` when it is other UTF-8, and
//! `base64` otherwise; no key means no body.
//!
//! **Secrets.** The gate adds credentials after the guest's headers, and only the guest's are
//! recorded; every recorded string (URL, header names and values, bodies) also passes the
//! connection's redactor, so that no secret parameter's value is written anywhere.
//!
//! **Matching.** A request matches the exchanges recorded with the same method, URL and body
//! (JSON bodies compare as JSON), in the order they were recorded; once they are used up the
//! last one is served again. A request the cassette lacks fails with an error that names it.
//!
//! **The clock.** Connectors put the time in their requests (a cdc read's upper bound), so under
//! a cassette the guest's wall clock stands still at the recording's start (`clock_ms`), both
//! while recording and while replaying.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{HttpError, HttpResponse};
use crate::secrets::Redactor;

/// The cassette format this build reads and writes.
pub const VERSION: u64 = 1;

/// Why a cassette cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    #[error("cannot {what} cassette {path}: {error}")]
    Io { what: &'static str, path: PathBuf, error: std::io::Error },
    #[error("cassette {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Whether a cassette is being written or served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapeMode {
    Record,
    Replay,
}

/// A cassette, shared by every gate of a run.
pub struct Tape {
    path: PathBuf,
    mode: TapeMode,
    clock_ms: u64,
    state: Mutex<State>,
}

enum State {
    Recording(File),
    /// Per request, its recorded exchanges and how many of them have been served.
    Replaying {
        exchanges: HashMap<Key, (Vec<Exchange>, usize)>,
        total: usize,
    },
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape").field("path", &self.path).field("mode", &self.mode).finish()
    }
}

/// A request as the cassette holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: Body,
}

/// A response as the cassette holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: Body,
}

/// One exchange: a request and the response it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    pub request: RecordedRequest,
    pub response: RecordedResponse,
}

/// A body, as readable as its bytes allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

impl Body {
    fn of(bytes: &[u8]) -> Body {
        if bytes.is_empty() {
            return Body::default();
        }
        if let Ok(json) = serde_json::from_slice::<Value>(bytes) {
            return Body { json: Some(json), ..Body::default() };
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Body { text: Some(text.to_string()), ..Body::default() },
            Err(_) => Body {
                base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                ..Body::default()
            },
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.json, &self.text, &self.base64) {
            (None, None, None) => Ok(Vec::new()),
            (Some(json), None, None) => serde_json::to_vec(json).map_err(|e| e.to_string()),
            (None, Some(text), None) => Ok(text.clone().into_bytes()),
            (None, None, Some(b64)) => {
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("base64 body: {e}"))
            }
            _ => Err("a body has more than one of json, text and base64".into()),
        }
    }

    /// What requests are matched by: JSON by value, the rest by bytes.
    fn key(&self) -> String {
        match &self.json {
            Some(json) => json.to_string(),
            None => String::from_utf8_lossy(&self.bytes().unwrap_or_default()).into_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    method: String,
    url: String,
    body: String,
}

impl Key {
    fn of(request: &RecordedRequest) -> Key {
        Key {
            method: request.method.to_ascii_uppercase(),
            url: request.url.clone(),
            body: request.body.key(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    cassette: String,
    version: u64,
    clock_ms: u64,
}

impl Tape {
    /// Starts a cassette at `path` (replacing any file there), with the guest's clock held at now.
    pub fn record(path: &Path) -> Result<Tape, TapeError> {
        let io = |what, error| TapeError::Io { what, path: path.to_path_buf(), error };
        let clock_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut file = File::create(path).map_err(|e| io("create", e))?;
        let header = Header { cassette: "weir".into(), version: VERSION, clock_ms };
        write_record(&mut file, &header).map_err(|e| io("write", e))?;
        Ok(Tape {
            path: path.to_path_buf(),
            mode: TapeMode::Record,
            clock_ms,
            state: Mutex::new(State::Recording(file)),
        })
    }

    /// Opens a cassette to serve.
    pub fn replay(path: &Path) -> Result<Tape, TapeError> {
        let text = std::fs::read_to_string(path).map_err(|error| TapeError::Io {
            what: "read",
            path: path.to_path_buf(),
            error,
        })?;
        Tape::parse(&text, path)
    }

    /// A cassette from its text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Tape, TapeError> {
        let invalid = |message: String| TapeError::Invalid { path: path.to_path_buf(), message };
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let header = match stream.next() {
            Some(Ok(v)) => serde_json::from_value::<Header>(v).map_err(|e| {
                invalid(format!("the first record must be {{\"cassette\": \"weir\", \"version\": {VERSION}, \"clock_ms\": …}}: {e}"))
            })?,
            Some(Err(e)) => return Err(invalid(format!("line {}: {e}", e.line()))),
            None => return Err(invalid("it is empty".into())),
        };
        if header.cassette != "weir" || header.version != VERSION {
            return Err(invalid(format!(
                "it is {:?} version {}; this weir reads \"weir\" version {VERSION}",
                header.cassette, header.version
            )));
        }
        let mut exchanges: HashMap<Key, (Vec<Exchange>, usize)> = HashMap::new();
        let mut total = 0;
        for (i, record) in stream.enumerate() {
            let record = record.map_err(|e| invalid(format!("line {}: {e}", e.line())))?;
            let exchange: Exchange =
                serde_json::from_value(record).map_err(|e| invalid(format!("exchange {}: {e}", i + 1)))?;
            for body in [&exchange.request.body, &exchange.response.body] {
                body.bytes().map_err(|e| invalid(format!("exchange {}: {e}", i + 1)))?;
            }
            exchanges.entry(Key::of(&exchange.request)).or_default().0.push(exchange);
            total += 1;
        }
        Ok(Tape {
            path: path.to_path_buf(),
            mode: TapeMode::Replay,
            clock_ms: header.clock_ms,
            state: Mutex::new(State::Replaying { exchanges, total }),
        })
    }

    pub fn mode(&self) -> TapeMode {
        self.mode
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The instant the guest's wall clock shows under this cassette.
    pub fn clock(&self) -> Duration {
        Duration::from_millis(self.clock_ms)
    }

    /// Appends one exchange, with every string redacted. A cassette that cannot be written
    /// fails the request rather than leave a recording with a hole in it.
    pub fn record_exchange(
        &self,
        redactor: &Redactor,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        response: &HttpResponse,
    ) -> Result<(), HttpError> {
        let pairs = |headers: &[(String, String)]| -> Vec<(String, String)> {
            headers
                .iter()
                .map(|(k, v)| (redactor.redact(k).into_owned(), redactor.redact(v).into_owned()))
                .collect()
        };
        let exchange = Exchange {
            request: RecordedRequest {
                method: method.to_string(),
                url: redactor.redact(url).into_owned(),
                headers: pairs(headers),
                body: Body::of(&redactor.redact_bytes(body.unwrap_or_default().to_vec())),
            },
            response: RecordedResponse {
                status: response.status,
                headers: pairs(&response.headers),
                body: Body::of(&redactor.redact_bytes(response.body.clone())),
            },
        };
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let State::Recording(file) = &mut *state else { return Ok(()) };
        write_record(file, &exchange)
            .map_err(|e| HttpError::Connection(format!("cannot write cassette {}: {e}", self.path.display())))
    }

    /// The recorded response to a request, or an error that names the request.
    pub fn replay_exchange(
        &self,
        redactor: &Redactor,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<HttpResponse, HttpError> {
        let request = RecordedRequest {
            method: method.to_string(),
            url: redactor.redact(url).into_owned(),
            headers: Vec::new(),
            body: Body::of(&redactor.redact_bytes(body.unwrap_or_default().to_vec())),
        };
        let key = Key::of(&request);
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let State::Replaying { exchanges, total } = &mut *state else {
            return Err(HttpError::Connection("the cassette is recording, not replaying".into()));
        };
        let Some((recorded, served)) = exchanges.get_mut(&key) else {
            let body =
                if key.body.is_empty() { String::new() } else { format!(" with body {}", clip(&key.body)) };
            return Err(HttpError::Connection(format!(
                "replay: cassette {} has no exchange for {} {}{body} ({total} exchanges recorded); \
                 record it again with --record",
                self.path.display(),
                key.method,
                key.url,
            )));
        };
        let exchange = &recorded[(*served).min(recorded.len() - 1)];
        *served += 1;
        let body = exchange.response.body.bytes().map_err(HttpError::Connection)?;
        Ok(HttpResponse {
            status: exchange.response.status,
            headers: exchange.response.headers.clone(),
            body,
        })
    }
}

fn write_record(file: &mut File, record: &impl Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    text.push_str("\n\n");
    file.write_all(text.as_bytes())?;
    file.flush()
}

fn clip(text: &str) -> String {
    if text.chars().count() <= 200 {
        text.to_string()
    } else {
        text.chars().take(199).collect::<String>() + "…"
    }
}

/// The guest's wall clock under a cassette: always the recording's start.
pub struct StillClock(pub Duration);

impl wasmtime_wasi::HostWallClock for StillClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(["s3cr3t-token"])
    }

    fn response(status: u16, body: &[u8]) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_recording_replays_in_order_and_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.cassette");
        let r = redactor();
        let tape = Tape::record(&path).unwrap();
        let headers = vec![("accept".to_string(), "application/json".to_string())];
        tape.record_exchange(
            &r,
            "GET",
            "https://x.test/a?k=s3cr3t-token",
            &headers,
            None,
            &response(429, b""),
        )
        .unwrap();
        tape.record_exchange(
            &r,
            "GET",
            "https://x.test/a?k=s3cr3t-token",
            &headers,
            None,
            &response(200, br#"{"echo":"s3cr3t-token","n":1}"#),
        )
        .unwrap();
        tape.record_exchange(
            &r,
            "POST",
            "https://x.test/b",
            &[],
            Some(b"\xff\x00"),
            &response(201, b"plain text"),
        )
        .unwrap();
        drop(tape);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("\"json\": {"), "JSON bodies are stored as JSON: {text}");
        assert!(text.contains("\"text\": \"plain text\""), "{text}");

        let tape = Tape::replay(&path).unwrap();
        // Replay knows no secret: the URL arrives as the guest sent it, redacted the same way.
        let first = tape.replay_exchange(&r, "GET", "https://x.test/a?k=s3cr3t-token", None).unwrap();
        assert_eq!(first.status, 429);
        let second = tape.replay_exchange(&r, "GET", "https://x.test/a?k=s3cr3t-token", None).unwrap();
        assert_eq!(
            (second.status, second.body.as_slice()),
            (200, br#"{"echo":"[REDACTED]","n":1}"#.as_slice())
        );
        let again = tape.replay_exchange(&r, "GET", "https://x.test/a?k=s3cr3t-token", None).unwrap();
        assert_eq!(again.status, 200, "used up: the last is served again");
        let post = tape.replay_exchange(&r, "post", "https://x.test/b", Some(b"\xff\x00")).unwrap();
        assert_eq!((post.status, post.body.as_slice()), (201, b"plain text".as_slice()));
        let missing = tape.replay_exchange(&r, "GET", "https://x.test/c?page=2", None).unwrap_err();
        let message = missing.to_string();
        assert!(message.contains("no exchange for GET https://x.test/c?page=2"), "{message}");
        assert_eq!(tape.clock(), Tape::replay(&path).unwrap().clock());
    }

    #[test]
    fn bad_cassettes_are_refused_naming_the_problem() {
        let path = Path::new("bad.cassette");
        let cases = [
            ("", "empty"),
            ("{\"cassette\": \"vcr\", \"version\": 1, \"clock_ms\": 0}", "version 1"),
            ("{\"cassette\": \"weir\", \"version\": 1, \"clock_ms\": 0}\n{\"request\": {}}", "exchange 1"),
            (
                "{\"cassette\": \"weir\", \"version\": 1, \"clock_ms\": 0}\n{\"request\": {\"method\": \"GET\", \"url\": \"u\"}, \"response\": {\"status\": 200, \"text\": \"a\", \"json\": 1}}",
                "more than one",
            ),
            ("{\"cassette\": \"weir\", \"version\": 1, \"clock_ms\": 0}\n{oops", "line 2"),
        ];
        for (text, named) in cases {
            let err = Tape::parse(text, path).unwrap_err().to_string();
            assert!(err.contains(named), "{text:?}: {err}");
        }
    }
}
