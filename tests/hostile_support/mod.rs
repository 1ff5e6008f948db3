//! What the hostile-component tests share: one runtime with the hostile connector (contract
//! 0.1) compiled once, sessions running an attack against a loopback server, a capture of
//! every log line at TRACE, and the checks every attack must pass (the error names the
//! connector, the call and the table; the host keeps serving).

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arrow_array::cast::AsArray;
use weir_runtime::{CallError, ConnectionsFile, LoadedConnector, Runtime, RuntimeConfig, Session};
use weir_tests::EchoServer;

/// The token of most tests.
pub const TOKEN: &str = "patTOKEN-0123456789";
/// The token of the leak test, distinctive so that any copy of it is found.
pub const SECRET: &str = "patSECRET-9f8e7d6c5b4a";

/// Everything every tracing event and `log` record wrote, at TRACE, for all targets.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Installs the process-wide log capture once: the http gate logs from the runtime's own
/// worker threads, which a thread-local subscriber would miss.
pub fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let captured = Captured::default();
        // The compiler's own trace output never sees a secret and would only slow the tests.
        let filter = Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_target("cranelift", LevelFilter::OFF)
            .with_target("regalloc2", LevelFilter::OFF)
            .with_target("wasmtime_internal_cranelift", LevelFilter::OFF)
            .with_target("wasmtime_environ", LevelFilter::OFF);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish()
            .with(filter);
        // Also bridges `log` records (reqwest, hyper, rustls) into the capture.
        subscriber.try_init().expect("the only global subscriber of this test binary");
        captured
    })
}

/// One runtime and one compiled hostile connector, shared by the tests: sessions of
/// different tests run side by side in it, as connections do in a real host.
pub fn host() -> &'static (Runtime, LoadedConnector) {
    static HOST: OnceLock<(Runtime, LoadedConnector)> = OnceLock::new();
    HOST.get_or_init(|| {
        logs();
        let runtime = Runtime::new(RuntimeConfig { cache_dir: None }).expect("runtime starts");
        let hostile = runtime.load(weir_artifacts::HOSTILE).expect("hostile component loads");
        (runtime, hostile)
    })
}

/// How a test connection differs from the default.
#[derive(Default)]
pub struct Conn<'a> {
    pub token: Option<&'a str>,
    pub target: &'a str,
    pub deny_loopback: bool,
    /// Lines of `[connections.c.limits]`.
    pub limits: &'a str,
}

/// A session of the hostile connector running `attack` against `base_url`.
pub fn session(base_url: &str, attack: &str, conn: Conn) -> Session {
    let (runtime, hostile) = host();
    session_of(runtime, hostile, base_url, attack, conn)
}

/// A session of `connector` (the hostile component, repackaged or changed) in `runtime`.
pub fn session_of(
    runtime: &Runtime,
    connector: &LoadedConnector,
    base_url: &str,
    attack: &str,
    conn: Conn,
) -> Session {
    let text = format!(
        "[connections.c]\nconnector = \"hostile\"\nbearer_token = \"{}\"\nbase_url = \"{base_url}\"\n\
         attack = \"{attack}\"\ntarget = \"{}\"\nallow_loopback = {}\n[connections.c.limits]\n{}\n",
        conn.token.unwrap_or(TOKEN),
        conn.target,
        !conn.deny_loopback,
        conn.limits
    );
    let file = ConnectionsFile::parse(&text, Path::new("connections.toml")).expect("connection parses");
    let spec = file.get("c").expect("connection c");
    runtime.session(connector, spec).expect("session starts")
}

/// Reads table `t` once and returns its `value` column.
pub fn read(session: &mut Session) -> Result<Vec<String>, CallError> {
    let schema = session.arrow_schema("t", &[])?;
    let mut converter = weir_convert::Converter::new(schema);
    let page = session.read_table("t", &[], None, &mut converter)?;
    let mut values = Vec::new();
    for batch in &page.batches {
        let column = batch.column_by_name("value").expect("a value column").as_string::<i32>();
        values.extend(column.iter().map(|v| v.unwrap_or_default().to_string()));
    }
    Ok(values)
}

/// Every cell of every column of table `t`'s first page, as text.
pub fn cells(session: &mut Session) -> Vec<String> {
    let schema = session.arrow_schema("t", &[]).expect("schema");
    let mut converter = weir_convert::Converter::new(schema);
    let page = session.read_table("t", &[], None, &mut converter).expect("read");
    let mut out = Vec::new();
    for batch in &page.batches {
        for column in batch.columns() {
            out.extend(column.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_string()));
        }
    }
    out
}

/// The call's error, which must exist.
pub fn read_err(session: &mut Session) -> CallError {
    match read(session) {
        Ok(rows) => panic!("expected the call to fail, but it returned {rows:?}"),
        Err(e) => e,
    }
}

pub fn assert_names_connector_and_call(text: &str) {
    assert!(text.contains("connector hostile"), "the error should name the connector: {text}");
    assert!(text.contains("read-table"), "the error should name the call: {text}");
    assert!(text.contains("\"t\""), "the error should name the table: {text}");
}

/// The host still serves: the session that failed answers again with a fresh instance,
/// and another connection in the same runtime reads its row.
pub fn assert_host_keeps_serving(failed: &mut Session, server: &EchoServer) {
    let tables = failed.list_tables().expect("the failed session answers again");
    assert!(tables.iter().any(|t| t == "t"), "{tables:?}");
    let mut other = session(&server.base_url(), "none", Conn::default());
    assert_eq!(read(&mut other).expect("another connection still reads"), ["ok"]);
}
