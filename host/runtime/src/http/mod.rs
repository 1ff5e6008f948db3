//! The http gate: the guest's only way out.
//!
//! Three stages, as a Spin factor: [`HttpGate::configure`] reads the manifest and the
//! connection once (allowed origins, credentials, budgets, retry policy, caps);
//! a [`crate::Session`] holds one gate per instance; [`HttpGate::send`] serves the guest's
//! `http.send`. Every request is checked before a socket opens, and again on every
//! redirect hop and every resolved address.

pub mod allowlist;
mod pushback;
pub mod tape;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;

use crate::connection::Connection;
use crate::contract::{HttpError, HttpRequest as Request, HttpResponse as Response};
use crate::limits::LimitHit;
use crate::manifest::{Manifest, Retry};
use crate::ratelimit::{RateLimiters, Rule};
use crate::secrets::{Injection, Redactor};
use crate::template;
use allowlist::{Origin, ip_allowed};
use pushback::Wait;

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// The longest `Retry-After` the gate honours. A source asking for more (`1e10` seconds is
/// 317 years) ends the call with [`LimitHit::RetryAfter`] instead of pausing the run for it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why the gate cannot be configured for a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

/// Headers a guest may not set: credentials are the host's to add, and routing is the gate's.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
];

/// Counters of what the gate did, for summaries and benchmarks.
#[derive(Debug, Default)]
pub struct GateStats {
    pub requests: AtomicU64,
    pub denied: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// A snapshot of [`GateStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GateCounts {
    pub requests: u64,
    pub denied: u64,
    pub retries: u64,
    pub rate_limited: u64,
}

/// The outbound HTTP capability of one connection.
pub struct HttpGate {
    client: reqwest::Client,
    allowed: Vec<Origin>,
    injections: Vec<Injection>,
    rules: Vec<Rule>,
    limiters: Arc<RateLimiters>,
    retry: Retry,
    body_cap: u64,
    allow_loopback: bool,
    redactor: Arc<Redactor>,
    /// Record or replay every exchange (see [`tape`]).
    tape: Option<Arc<tape::Tape>>,
    pub stats: Arc<GateStats>,
}

/// A failure worth another attempt, or not.
enum Failure {
    Retry(HttpError),
    Final(HttpError),
}

impl HttpGate {
    /// Configures the gate from the manifest and the connection.
    pub fn configure(
        manifest: &Manifest,
        connection: &Connection,
        limiters: &Arc<RateLimiters>,
        redactor: Arc<Redactor>,
    ) -> Result<HttpGate, GateError> {
        let fail = |what: String| GateError(what);
        let mut allowed = Vec::new();
        for t in &manifest.network.allow {
            let rendered = template::render(t, &connection.options)
                .map_err(|e| fail(format!("network origin {t:?}: {e}")))?;
            allowed.push(Origin::parse(&rendered).map_err(|e| fail(format!("network origin {t:?}: {e}")))?);
        }
        let mut values = connection.options.clone();
        for (k, v) in connection.secrets.map() {
            // Secrets only ever appear in budget keys as a digest.
            values.insert(k.clone(), sha256_hex(v.as_bytes())[..16].to_string());
        }
        if !(connection.rate_share > 0.0 && connection.rate_share <= 1.0) {
            return Err(fail(format!("rate share {} is not in (0, 1]", connection.rate_share)));
        }
        let rules = connection
            .rate_limits
            .iter()
            .map(|limit| Rule::new(&manifest.name, limit, connection.rate_share, &values).map_err(fail))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = Duration::from_secs_f64(connection.limits.http_timeout_seconds);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .dns_resolver(Arc::new(Resolver { allow_loopback: connection.allow_loopback }))
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpGate {
            client,
            allowed,
            injections: crate::secrets::injections(manifest, connection).map_err(fail)?,
            rules,
            limiters: limiters.clone(),
            retry: connection.retry.clone(),
            body_cap: connection.limits.http_body_mib * 1024 * 1024,
            allow_loopback: connection.allow_loopback,
            redactor,
            tape: connection.tape.clone(),
            stats: Arc::default(),
        })
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> GateCounts {
        GateCounts {
            requests: self.stats.requests.load(Ordering::Relaxed),
            denied: self.stats.denied.load(Ordering::Relaxed),
            retries: self.stats.retries.load(Ordering::Relaxed),
            rate_limited: self.stats.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// Checks a URL against the allowed origins and address rules.
    fn check(&self, url: &url::Url) -> Result<Origin, HttpError> {
        let origin = Origin::of(url).map_err(HttpError::Denied)?;
        if !self.allowed.contains(&origin) {
            return Err(HttpError::Denied(format!(
                "{origin} is not an allowed origin (allowed: {})",
                self.allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(ip) = origin.ip()
            && !ip_allowed(ip, self.allow_loopback)
        {
            return Err(HttpError::Denied(format!(
                "{ip} is a private, loopback or link-local address{}",
                if ip.is_loopback() {
                    " (set allow_loopback = true on the connection for local simulators)"
                } else {
                    ""
                }
            )));
        }
        Ok(origin)
    }

    /// Serves the guest's `http.send`: gate, pace, authenticate, send, retry, cap, redact.
    ///
    /// The outer error is a bound the source broke (a `Retry-After` past [`MAX_RETRY_AFTER`]):
    /// the session ends the call with it rather than hand the guest an answer.
    pub async fn send(&self, request: Request) -> Result<Result<Response, HttpError>, LimitHit> {
        let result = self.send_checked(request).await;
        if let Ok(Err(HttpError::Denied(reason))) = &result {
            self.stats.denied.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "weir::http", "denied: {}", self.redactor.redact(reason));
        }
        result
    }

    async fn send_checked(&self, request: Request) -> Result<Result<Response, HttpError>, LimitHit> {
        Ok(match self.prepare(request) {
            Ok((method, url, headers, body)) => self.follow(method, url, headers, body).await?,
            Err(e) => Err(e),
        })
    }

    /// The request as the gate will send it, or why it is refused before anything is sent.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        request: Request,
    ) -> Result<(reqwest::Method, url::Url, reqwest::header::HeaderMap, Option<Vec<u8>>), HttpError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad method {:?}", request.method)))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("bad header name {name:?}")))?;
            if FORBIDDEN_HEADERS.contains(&name.as_str()) || self.injections.iter().any(|i| i.header == name)
            {
                return Err(HttpError::Denied(format!("the guest may not set the {name} header")));
            }
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| HttpError::InvalidRequest(format!("bad value for header {name}")))?;
            headers.append(name, value);
        }
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("{:?} is not a URL: {e}", request.url)))?;
        Ok((method, url, headers, request.body))
    }

    /// Sends, following redirects that stay within the allowed origins.
    async fn follow(
        &self,
        mut method: reqwest::Method,
        mut url: url::Url,
        headers: reqwest::header::HeaderMap,
        mut body: Option<Vec<u8>>,
    ) -> Result<Result<Response, HttpError>, LimitHit> {
        for _ in 0..=MAX_REDIRECTS {
            let origin = match self.check(&url) {
                Ok(origin) => origin,
                Err(e) => return Ok(Err(e)),
            };
            let response =
                match self.send_with_retries(&method, &url, &origin, &headers, body.as_deref()).await? {
                    Ok(response) => response,
                    Err(e) => return Ok(Err(e)),
                };
            let location = match response.status {
                301 | 302 | 303 | 307 | 308 => response.headers.iter().find(|(k, _)| k == "location"),
                _ => None,
            };
            let Some((_, location)) = location else { return Ok(Ok(response)) };
            let next = match url.join(location) {
                Ok(next) => next,
                Err(e) => {
                    return Ok(Err(HttpError::Denied(format!("redirect to an unparseable location: {e}"))));
                }
            };
            if let Err(HttpError::Denied(reason)) = self.check(&next) {
                return Ok(Err(HttpError::Denied(format!("redirect leaves the allowed origins: {reason}"))));
            }
            if response.status == 303
                || ((response.status == 301 || response.status == 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
        }
        Ok(Err(HttpError::Denied(format!("more than {MAX_REDIRECTS} redirects"))))
    }

    async fn send_with_retries(
        &self,
        method: &reqwest::Method,
        url: &url::Url,
        origin: &Origin,
        headers: &reqwest::header::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Result<Response, HttpError>, LimitHit> {
        let at = origin.to_string();
        let budgets: Vec<_> =
            self.rules.iter().filter_map(|r| r.budget(&self.limiters, &at, url.path())).collect();
        let mut attempt = 1;
        loop {
            // Held until the attempt has finished: the budgets count finished requests too.
            let mut grants = Vec::with_capacity(budgets.len());
            for b in &budgets {
                grants.push(b.acquire().await);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = self.attempt(method, url, origin, headers, body).await;
            drop(grants);
            let last = attempt >= self.retry.max_attempts;
            let pushback =
                outcome.as_ref().ok().map(|r| pushback::read(r.status, &r.headers, SystemTime::now()));
            if let Some(quota) = pushback.and_then(|p| p.quota).filter(|q| q.scarce()) {
                for b in &budgets {
                    b.ration(quota.remaining, quota.reset_in.min(MAX_RETRY_AFTER));
                }
            }
            match outcome {
                Ok(response) if pushback.is_some_and(|p| p.refused) => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let penalty = match pushback.map_or(Wait::Unsaid, |p| p.wait) {
                        Wait::Unsaid => Duration::from_secs_f64(self.retry.penalty_seconds),
                        Wait::For(d) => d,
                        Wait::TooLong(requested) => {
                            return Err(LimitHit::RetryAfter { requested, limit: MAX_RETRY_AFTER });
                        }
                    };
                    tracing::warn!(
                        target: "weir::http",
                        "{} from {origin}: rate limited; pausing requests for {penalty:?} (budgets: {})",
                        response.status,
                        if budgets.is_empty() {
                            "none".to_string()
                        } else {
                            budgets.iter().map(|b| b.describe()).collect::<Vec<_>>().join("; ")
                        }
                    );
                    for b in &budgets {
                        b.pause(penalty);
                    }
                    if last {
                        return Ok(Ok(response));
                    }
                    if budgets.is_empty() {
                        tokio::time::sleep(penalty).await;
                    }
                }
                Ok(response) if matches!(response.status, 500 | 502 | 503 | 504) && !last => {
                    tracing::debug!(target: "weir::http", "{} from {origin}, attempt {attempt}; retrying", response.status);
                    self.backoff(attempt).await;
                }
                Ok(response) => {
                    tracing::debug!(
                        target: "weir::http",
                        "{method} {} -> {} ({} bytes, {:?})",
                        self.redactor.redact(url.path()),
                        response.status,
                        response.body.len(),
                        started.elapsed()
                    );
                    return Ok(Ok(response));
                }
                Err(Failure::Retry(e)) if !last => {
                    tracing::debug!(target: "weir::http", "attempt {attempt} to {origin} failed: {e:?}; retrying");
                    self.backoff(attempt).await;
                }
                Err(Failure::Retry(e) | Failure::Final(e)) => return Ok(Err(e)),
            }
            attempt += 1;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Full-jitter exponential backoff.
    async fn backoff(&self, attempt: u32) {
        let cap =
            self.retry.max_backoff_ms.min(self.retry.initial_backoff_ms.saturating_mul(1 << attempt.min(16)));
        let ms = rand::rng().random_range(0..=cap.max(1));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn attempt(
        &self,
        method: &reqwest::Method,
        url: &url::Url,
        origin: &Origin,
        headers: &reqwest::header::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, Failure> {
        let Some(tape) = &self.tape else { return self.exchange(method, url, origin, headers, body).await };
        if tape.mode() == tape::TapeMode::Replay {
            let response = tape.replay_exchange(&self.redactor, method.as_str(), url.as_str(), body);
            return match response {
                Ok(r) if r.body.len() as u64 > self.body_cap => {
                    Err(Failure::Final(HttpError::BodyTooLarge(self.body_cap)))
                }
                Ok(r) => Ok(r),
                Err(e) => Err(Failure::Final(e)),
            };
        }
        let response = self.exchange(method, url, origin, headers, body).await?;
        let guest_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        tape.record_exchange(&self.redactor, method.as_str(), url.as_str(), &guest_headers, body, &response)
            .map_err(Failure::Final)?;
        Ok(response)
    }

    /// One request on the network, with the credentials injected.
    async fn exchange(
        &self,
        method: &reqwest::Method,
        url: &url::Url,
        origin: &Origin,
        headers: &reqwest::header::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Response, Failure> {
        let mut builder = self.client.request(method.clone(), url.clone()).headers(headers.clone());
        for i in self.injections.iter().filter(|i| &i.origin == origin) {
            builder = builder.header(i.header.clone(), i.value.clone());
        }
        if let Some(body) = body {
            builder = builder.body(body.to_vec());
        }
        let mut response = builder.send().await.map_err(|e| self.transport(e))?;
        if response.content_length().is_some_and(|n| n > self.body_cap) {
            return Err(Failure::Final(HttpError::BodyTooLarge(self.body_cap)));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str() != "set-cookie")
            .map(|(k, v)| {
                // Names too: a source can put an echoed secret into a header's name.
                (
                    self.redactor.redact(k.as_str()).into_owned(),
                    self.redactor.redact(&String::from_utf8_lossy(v.as_bytes())).into_owned(),
                )
            })
            .collect();
        // Sized once from the declared length (already held to the cap), rather than grown and
        // copied as the chunks arrive.
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() as u64 + chunk.len() as u64 > self.body_cap {
                return Err(Failure::Final(HttpError::BodyTooLarge(self.body_cap)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body: self.redactor.redact_bytes(body) })
    }

    fn transport(&self, e: reqwest::Error) -> Failure {
        // reqwest's messages name the URL, never headers; redact anyway.
        let message = self.redactor.redact(&error_chain(&e)).into_owned();
        if e.is_timeout() {
            Failure::Retry(HttpError::Timeout(message))
        } else if e.is_builder() {
            Failure::Final(HttpError::InvalidRequest(message))
        } else if caused_by::<PrivateAddress>(&e) {
            Failure::Final(HttpError::Denied(message))
        } else {
            Failure::Retry(HttpError::Connection(message))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether `T` is anywhere in the error's source chain.
fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A name that resolves only to addresses the gate refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to private, loopback or link-local addresses")]
struct PrivateAddress {
    host: String,
}

/// Resolves names, then drops every address the gate would refuse, so that a name
/// pointing at a private address (DNS rebinding, `localhost`) is refused like the literal.
struct Resolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| ip_allowed(a.ip(), allow_loopback)).collect();
            if allowed.is_empty() {
                return Err(Box::new(PrivateAddress { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::path::Path;

    use super::*;
    use crate::connection::ConnectionsFile;

    /// A keep-alive server on loopback that answers every request with an empty page and closes a
    /// connection once it has been idle for `idle`, as servers do; and how many it accepted.
    fn closing_server(idle: Duration) -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                counted.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(idle)).expect("a read timeout");
                    let (mut buf, mut head) = ([0; 4096], Vec::new());
                    // Ends, closing the connection, once a read times out or the client leaves.
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        head.extend_from_slice(&buf[..n]);
                        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.drain(..end + 4);
                            let body = r#"{"records":[]}"#;
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(response.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (format!("http://{address}"), accepted)
    }

    /// A session's runtime is not driven between calls, so a pooled connection does not see the
    /// server close it while idle; the next request must still not fail on it, nor cost a retry.
    #[test]
    fn a_pooled_connection_the_server_closed_while_idle_costs_no_retry() {
        let (base_url, accepted) = closing_server(Duration::from_millis(100));
        let manifest = Manifest::from_component(weir_artifacts::AIRTABLE).expect("the Airtable manifest");
        // No pacing to speak of, so that requests in quick succession come within the server's idle.
        let text = format!(
            "[connections.t]\nconnector = \"airtable\"\nbase_id = \"appT\"\nbase_url = \"{base_url}\"\n\
             bearer_token = \"secret\"\nallow_loopback = true\n[connections.t.rate_limits]\n{}",
            weir_airtable_sim::UNPACED
        );
        let file = ConnectionsFile::parse(&text, Path::new("t.toml")).expect("valid connections");
        let connection = file.get("t").expect("the connection").resolve(&manifest).expect("it resolves");
        let redactor = Arc::new(Redactor::new(connection.secrets.values()));
        let limiters = Arc::new(RateLimiters::default());
        let gate = HttpGate::configure(&manifest, &connection, &limiters, redactor).expect("the gate");
        // As a session drives it: a runtime on the calling thread, idle between calls.
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let send = || {
            let get = Request {
                method: "GET".into(),
                url: format!("{base_url}/v0/appT/tblT"),
                headers: vec![],
                body: None,
            };
            tokio.block_on(gate.send(get)).expect("no bound").expect("a response").status
        };
        for _ in 0..3 {
            assert_eq!(send(), 200);
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "requests in quick succession share a connection");
        for _ in 0..3 {
            // Long enough for the server to close the connection the last request went on.
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(send(), 200);
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 4, "each request after a pause on a new connection");
        let counts = gate.counts();
        assert_eq!((counts.requests, counts.retries), (6, 0), "{counts:?}");
    }
}
