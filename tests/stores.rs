//! Object-store servers on loopback for the tests, started by the harness itself so that
//! `cargo test --workspace` needs nothing run first:
//!
//! - [`S3Server`]: moto in server mode (`tests/py/moto_server.py`), from a virtual environment
//!   the harness creates under the target folder (`target/weir-python/s3`, from
//!   `tests/py/requirements-s3.txt`), as it does for the Delta reader. moto 5.2 honours S3's
//!   conditional writes (`If-None-Match: *` on PutObject answers 412 when the object exists).
//!   It accepts any signature, so it cannot test refused credentials.
//! - [`Azurite`]: the Azure Blob Storage emulator, installed with npm under the target folder
//!   (`target/weir-node/azurite`, from `tests/js/package.json`). It checks Shared Key
//!   signatures and honours `If-None-Match: *`.
//! - [`S3Proxy`]: a proxy in front of moto that can remove `If-None-Match` from every request
//!   (what an S3-compatible store without conditional writes amounts to) and hold a PUT until
//!   the test lets it through.
//!
//! Each server ends when its handle is dropped, and with the test process even when that is
//! killed: the server watches a pipe whose other end only the test process holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::delta_reader::{install_aside, python_with, run, target_dir, workspace};

/// The access key id the tests give moto (moto accepts any).
pub const S3_KEY_ID: &str = "weirtestkeyid";
/// The secret the tests give moto: long enough to be redacted, and searched for in outputs.
pub const S3_SECRET: &str = "weir-test-secret-Zq8vN3xL0pR7";
/// Azurite's account and its well-known key (public, the same in every copy of Azurite).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The well-known key of [`AZURITE_ACCOUNT`].
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Variables of the parent environment that would change how a store authenticates or where
/// it points; the tests remove them so that a developer's own cloud settings never leak in.
pub fn clear_store_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        if ["AWS_", "AZURE_", "AZURITE_", "GOOGLE_", "OBJECT_STORE_"].iter().any(|p| upper.starts_with(p)) {
            cmd.env_remove(&name);
        }
    }
}

/// A child process that ends when dropped: its standard input is the pipe it watches.
struct Watched {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    /// Starts `cmd` with piped stdin and stdout, and reads stdout until a line for which `ready`
    /// gives a port; the rest of stdout is drained in the background.
    fn start(mut cmd: Command, what: &str, ready: impl Fn(&str) -> Option<u16>) -> (Watched, u16) {
        let log = target_dir().join("weir-stores").join(format!("{what}-{}.log", std::process::id()));
        let _ = std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")));
        let stderr = std::fs::File::create(&log).map(Stdio::from).unwrap_or_else(|_| Stdio::null());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("{what}: no stdout"));
        let mut lines = BufReader::new(stdout);
        let mut seen = String::new();
        let port = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let errors = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{what} exited before it was ready:\n{seen}\n{errors}");
            }
            if let Some(port) = ready(line.trim()) {
                break port;
            }
            seen.push_str(&line);
        };
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        (Watched { child, stdin }, port)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 exchange with a loopback server: (status, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to :{port}: {e}"));
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let status_line = String::from_utf8_lossy(&response[..split]).to_string();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, response[split + 4..].to_vec())
}

/// moto's S3 on loopback.
pub struct S3Server {
    _process: Watched,
    port: u16,
}

impl S3Server {
    /// Starts moto (setting up its virtual environment on first use).
    pub fn start() -> S3Server {
        let python = python_with("s3", "tests/py/requirements-s3.txt")
            .unwrap_or_else(|e| panic!("the S3 test server (moto) cannot be set up: {e}"));
        let mut cmd = Command::new(python);
        cmd.arg(workspace().join("tests/py/moto_server.py"));
        let (process, port) =
            Watched::start(cmd, "moto", |line| line.strip_prefix("port ").and_then(|p| p.parse().ok()));
        S3Server { _process: process, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a bucket (moto needs no signature for it).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = http(self.port, "PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(status, 200, "create bucket {bucket}: {}", String::from_utf8_lossy(&body));
    }

    /// The environment under which weir (and the reader) use this server with valid credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(&self.endpoint())
    }

    /// Every key under `prefix` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let path = format!("/{bucket}?list-type=2&max-keys=100000&prefix={prefix}");
        let (status, body) = http(self.port, "GET", &path, &[moto_auth()], b"");
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 200, "list {bucket}/{prefix}: {body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split_once("</Key>").map(|(k, _)| k.replace("&amp;", "&")))
            .collect();
        keys.sort();
        keys
    }

    /// An object's bytes, or `None` when there is none.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}/{key}"), &[moto_auth()], b"");
        (status == 200).then_some(body)
    }
}

/// moto refuses anonymous reads of objects but checks no signature: any SigV4-shaped header will do.
fn moto_auth() -> (&'static str, String) {
    let credential = format!("{S3_KEY_ID}/20260101/us-east-1/s3/aws4_request");
    ("Authorization", format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=00"))
}

/// The variables that point weir at an S3 endpoint with the test credentials.
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", S3_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
        // Never ask a cloud instance's metadata service from a test.
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A proxy in front of an S3 server that can drop `If-None-Match` from every request (an
/// S3-compatible store without conditional writes) and hold one PUT until the test releases it
/// (to place another writer's commit between a writer's look at the log and its write). It
/// stops serving new connections when dropped.
pub struct S3Proxy {
    port: u16,
    hold: Arc<(Mutex<Hold>, Condvar)>,
}

/// Where the held PUT stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Hold {
    #[default]
    Off,
    /// The next PUT whose path ends with this is held.
    Armed(String),
    Holding,
    Released,
}

impl S3Proxy {
    /// Listens on a free loopback port and forwards to `upstream`; with `strip_conditions`,
    /// without the requests' `If-None-Match`.
    pub fn start(upstream: u16, strip_conditions: bool) -> S3Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let hold = Arc::new((Mutex::new(Hold::Off), Condvar::new()));
        let shared = hold.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let hold = shared.clone();
                std::thread::spawn(move || forward(client, upstream, strip_conditions, &hold));
            }
        });
        S3Proxy { port, hold }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Holds the next PUT whose path ends with `suffix` until [`S3Proxy::release`].
    pub fn hold_put(&self, suffix: &str) {
        *lock(&self.hold.0) = Hold::Armed(suffix.to_string());
    }

    /// Waits until the armed PUT has arrived and is being held.
    pub fn wait_until_held(&self) {
        let (state, changed) = &*self.hold;
        let guard = lock(state);
        let (guard, timeout) = changed
            .wait_timeout_while(guard, Duration::from_secs(120), |h| *h != Hold::Holding)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(!timeout.timed_out(), "no PUT arrived to hold ({:?})", *guard);
    }

    /// Lets the held PUT through.
    pub fn release(&self) {
        let (state, changed) = &*self.hold;
        *lock(state) = Hold::Released;
        changed.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forwards requests one at a time, each on a fresh upstream connection (`Connection: close`).
fn forward(client: TcpStream, upstream: u16, strip_conditions: bool, hold: &(Mutex<Hold>, Condvar)) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut back) = client.try_clone() else { return };
    let mut reader = BufReader::new(client);
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            match name.as_str() {
                "if-none-match" if strip_conditions => continue,
                "connection" => continue,
                "content-length" => {
                    length = line.split(':').nth(1).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
                }
                _ => {}
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut words = head.split_whitespace();
        if let (Some("PUT"), Some(path)) = (words.next(), words.next()) {
            wait_if_held(path, hold);
        }
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
        if up.write_all(head.as_bytes()).and_then(|()| up.write_all(&body)).is_err() {
            return;
        }
        let mut response = Vec::new();
        if up.read_to_end(&mut response).is_err() || back.write_all(&response).is_err() {
            return;
        }
    }
}

fn wait_if_held(path: &str, hold: &(Mutex<Hold>, Condvar)) {
    let (state, changed) = hold;
    let mut guard = lock(state);
    if !matches!(&*guard, Hold::Armed(suffix) if path.split('?').next().unwrap_or("").ends_with(suffix.as_str()))
    {
        return;
    }
    *guard = Hold::Holding;
    changed.notify_all();
    let _released = changed
        .wait_timeout_while(guard, Duration::from_secs(120), |h| *h == Hold::Holding)
        .unwrap_or_else(PoisonError::into_inner);
}

/// Azurite's Blob service on loopback.
pub struct Azurite {
    _process: Watched,
    port: u16,
}

impl Azurite {
    /// Starts Azurite's Blob service in memory (installing it with npm on first use).
    pub fn start() -> Azurite {
        let bin = azurite_bin().unwrap_or_else(|e| panic!("Azurite cannot be set up: {e}"));
        let mut cmd = Command::new("sh");
        // Background jobs get /dev/null as stdin, so the pipe is passed to `cat` as fd 3: when the
        // test process closes it (or dies), `cat` ends and stops the server.
        cmd.arg("-c")
            // Ends with the server (so a server that fails at start closes stdout at once), and
            // ends the server when the test process closes the pipe.
            .arg("exec 3<&0; \"$@\" & server=$!; (cat <&3 >/dev/null; kill $server) >/dev/null 2>&1 & wait $server")
            .arg("sh")
            .arg(bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent",
            ]);
        let (process, port) = Watched::start(cmd, "azurite", |line| {
            line.contains("listens on")
                .then(|| line.rsplit(':').next().and_then(|p| p.trim().parse().ok()))?
        });
        Azurite { _process: process, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a container, signed with the account's key as Azure requires.
    pub fn create_container(&self, container: &str) {
        let date = http_date();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
        );
        let auth = format!("SharedKey {AZURITE_ACCOUNT}:{}", shared_key_signature(&to_sign));
        let (status, body) = http(
            self.port,
            "PUT",
            &format!("/{AZURITE_ACCOUNT}/{container}?restype=container"),
            &[("x-ms-date", date), ("x-ms-version", version.to_string()), ("Authorization", auth)],
            b"",
        );
        assert_eq!(status, 201, "create container {container}: {}", String::from_utf8_lossy(&body));
    }

    /// The environment under which weir (and the reader) use this server with the account's key.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint()),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `abfss://CONTAINER@devstoreaccount1.dfs.core.windows.net/PATH`.
    pub fn url(container: &str, path: &str) -> String {
        format!("abfss://{container}@{AZURITE_ACCOUNT}.dfs.core.windows.net/{path}")
    }
}

/// HMAC-SHA256 of `to_sign` under the (base64) account key, base64-encoded.
fn shared_key_signature(to_sign: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(AZURITE_KEY).expect("the well-known key is base64");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    engine.encode(mac.finalize().into_bytes())
}

/// Now, as an HTTP date (`Tue, 01 Dec 2026 10:00:00 GMT`).
fn http_date() -> String {
    chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The `azurite-blob` launcher, installed with npm into the target folder on first use.
fn azurite_bin() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| npm_install("azurite").map(|dir| dir.join("node_modules/.bin/azurite-blob"))).clone()
}

/// Installs `tests/js/package.json` into `target/weir-node/NAME` (once; again when the file
/// changes).
fn npm_install(name: &str) -> Result<PathBuf, String> {
    let dir = target_dir().join("weir-node").join(name);
    let manifest = workspace().join("tests/js/package.json");
    let wanted =
        std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let ready = || {
        std::fs::read_to_string(dir.join("package.json")).is_ok_and(|have| have == wanted)
            && dir.join("node_modules").is_dir()
    };
    install_aside(&dir, ready, |building| {
        std::fs::create_dir_all(building)
            .map_err(|e| format!("cannot create {}: {e}", building.display()))?;
        std::fs::write(building.join("package.json"), &wanted).map_err(|e| e.to_string())?;
        eprintln!("installing {name} with npm into {} (once)", dir.display());
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
                .arg(building)
                .current_dir(building),
            "npm install (is Node.js installed?)",
        )
    })?;
    Ok(dir)
}
