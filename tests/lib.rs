//! Shared helpers for the cross-crate tests: the independent Delta reader ([`delta_reader`],
//! Python's `deltalake` in a virtual environment the harness sets up itself), object-store
//! servers on loopback ([`stores`]: moto for S3, Azurite for Azure), and a tiny real
//! HTTP/1.1 server on loopback that records every request it receives, so that a test can
//! assert what the sandbox sent (and what it did not send).
//!
//! ```
//! let server = weir_tests::EchoServer::start().unwrap();
//! let url = server.url("/ok");
//! assert!(url.starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! ```
//!
//! Routes:
//!
//! | path | answer |
//! |---|---|
//! | `/echo` | 200; the body is every request header line, verbatim, and `x-echo-auth` repeats the `Authorization` value |
//! | `/redirect?to=URL` | 302 to `URL` |
//! | `/big` | 200 with a 2 MiB body and its `Content-Length` |
//! | `/big-stream` | 200 with a 2 MiB body and no length (ends when the connection closes) |
//! | `/ok` | 200 `ok` |
//! | `/retry-after?v=V` | 429 with `Retry-After: V` |
//! | `/echo-encoded` | 200; the `Authorization` token back in many disguises: upper case, hex, base64 (plain and inside `Basic` credentials), percent-encoded, reversed, as a header's name, and cut in two halves that only a guest could put together |
//! | anything else | 404 |

pub mod delta_reader;
pub mod stores;

/// A bundled component (as `weir-artifacts` packages it) with its manifest rewritten: `manifest`
/// is the repository path of the manifest it was packaged with, and `edit` turns that text into
/// the new manifest. Tests use it to make versions, limits and capabilities a connector does not
/// ship with.
pub fn repackage(component: &[u8], manifest: &str, edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    let path = delta_reader::workspace().join(manifest);
    let original = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    weir_runtime::manifest::package(component, &edit(&original)).unwrap_or_else(|e| panic!("{manifest}: {e}"))
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Size of the `/big` and `/big-stream` bodies.
pub const BIG_BODY: usize = 2 << 20;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Header lines exactly as received, e.g. `authorization: Bearer x`.
    pub header_lines: Vec<String>,
}

impl Recorded {
    /// The value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_lines.iter().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A loopback HTTP server that records requests; it stops when dropped.
pub struct EchoServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    /// Binds 127.0.0.1 on a free port and serves on a background thread.
    pub fn start() -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, flag) = (requests.clone(), stop.clone());
        std::thread::Builder::new().name("echo-server".into()).spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        })?;
        Ok(EchoServer { addr, requests, stop })
    }

    /// `http://127.0.0.1:PORT`, with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `base_url() + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Recorded>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(write_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        // The stop signal, or a client that gave up: nothing to record.
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut header_lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        header_lines.push(line.to_string());
    }
    let recorded = Recorded { method, path, header_lines };
    let length: u64 = recorded.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let _ = std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink());
    log.lock().unwrap_or_else(PoisonError::into_inner).push(recorded.clone());
    let _ = respond(write_half, &recorded);
}

fn respond(mut out: TcpStream, request: &Recorded) -> std::io::Result<()> {
    let (route, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let mut head = String::new();
    let body: Vec<u8> = match route {
        "/echo" => {
            head.push_str("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n");
            if let Some(auth) = request.header("authorization") {
                head.push_str(&format!("x-echo-auth: {auth}\r\n"));
            }
            request.header_lines.join("\n").into_bytes()
        }
        "/redirect" => {
            let to = query.split('&').find_map(|p| p.strip_prefix("to=")).unwrap_or("/ok");
            head.push_str(&format!("HTTP/1.1 302 Found\r\nlocation: {}\r\n", percent_decode(to)));
            Vec::new()
        }
        "/big" => {
            head.push_str("HTTP/1.1 200 OK\r\n");
            vec![b'x'; BIG_BODY]
        }
        "/big-stream" => {
            // No length: the body runs until the connection closes, so only a streaming
            // cap can stop it.
            out.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")?;
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..BIG_BODY / chunk.len() {
                out.write_all(&chunk)?;
            }
            return out.flush();
        }
        "/ok" => {
            head.push_str("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n");
            b"ok".to_vec()
        }
        "/retry-after" => {
            let v = query.split('&').find_map(|p| p.strip_prefix("v=")).unwrap_or("1");
            head.push_str(&format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: {}\r\n",
                percent_decode(v)
            ));
            b"slow down".to_vec()
        }
        "/echo-encoded" => {
            let token = request.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
            head.push_str(&format!("HTTP/1.1 200 OK\r\nx-{}: 1\r\n", hex(token.as_bytes())));
            let half = token.len() / 2;
            let disguises = [
                token.to_uppercase(),
                hex(token.as_bytes()),
                base64(token.as_bytes()),
                base64(format!("user:{token}").as_bytes()),
                percent_encode(token),
                token.chars().rev().collect(),
                format!("halves: {} {}", &token[..half], &token[half..]),
            ];
            disguises.join(" ").into_bytes()
        }
        _ => {
            head.push_str("HTTP/1.1 404 Not Found\r\n");
            b"not found".to_vec()
        }
    };
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    out.write_all(head.as_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(server: &EchoServer, path: &str, extra: &str) -> String {
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n{extra}\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn routes_answer_and_requests_are_recorded() {
        let server = EchoServer::start().unwrap();
        let echo = get(&server, "/echo", "Authorization: Bearer abc\r\n");
        assert!(echo.contains("x-echo-auth: Bearer abc\r\n"), "{echo}");
        assert!(echo.ends_with("host: x\nAuthorization: Bearer abc"), "{echo}");
        let redirect = get(&server, "/redirect?to=http%3A%2F%2Fexample.com%2F", "");
        assert!(
            redirect.starts_with("HTTP/1.1 302") && redirect.contains("location: http://example.com/\r\n")
        );
        assert!(get(&server, "/ok", "").ends_with("\r\n\r\nok"));
        assert!(get(&server, "/big", "").len() > BIG_BODY);
        assert!(get(&server, "/big-stream", "").len() > BIG_BODY);
        assert!(get(&server, "/nope", "").starts_with("HTTP/1.1 404"));
        let slow = get(&server, "/retry-after?v=1e20", "");
        assert!(slow.starts_with("HTTP/1.1 429") && slow.contains("retry-after: 1e20\r\n"), "{slow}");
        let echo = get(&server, "/echo-encoded", "Authorization: Bearer tok.en\r\n");
        for form in [
            "TOK.EN",
            "746f6b2e656e",
            "dG9rLmVu",
            "dXNlcjp0b2suZW4=",
            "tok%2Een",
            "ne.kot",
            "x-746f6b2e656e: 1",
            "tok .en",
        ] {
            assert!(echo.contains(form), "{form} missing from {echo}");
        }
        let seen = server.requests();
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[0].header("AUTHORIZATION"), Some("Bearer abc"));
        assert_eq!((seen[2].method.as_str(), seen[2].path.as_str()), ("GET", "/ok"));
    }
}
