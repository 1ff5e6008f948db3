//! `connections.toml` resolved against the bundled Airtable manifest: any text must parse and
//! resolve or fail with a `ConnectionError`; a connection that resolves holds only the manifest's
//! parameters, keeps its secrets out of the guest's options, and has every limit and retry number
//! within the ranges `Limits::validate` and `Retry::validate` document (so each converts to a
//! `Duration` where the host needs one).
//!
//! An input that names a `{ file = … }` source anywhere is skipped before it resolves: resolving it
//! would read whatever file it names. `{ env = … }` sources read the fuzzer's own environment.
use std::path::Path;
use std::time::Duration;

use weir_runtime::{Connection, ConnectionsFile};

/// One execution: panics when the property does not hold.
pub fn run(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    if names_a_file(text) {
        return;
    }
    let file = match ConnectionsFile::parse(text, Path::new("fuzz/connections.toml")) {
        Ok(file) => file,
        Err(error) => {
            _ = error.to_string();
            return;
        }
    };
    let manifest = crate::airtable();
    for spec in file.connections.values() {
        match spec.resolve(manifest) {
            Ok(connection) => check(&connection),
            Err(error) => _ = error.to_string(),
        }
    }
}

/// Whether any table of the document has a `file` key: conservatively, every place a file source
/// could hide.
fn names_a_file(text: &str) -> bool {
    fn walk(table: &toml::Table) -> bool {
        table.iter().any(|(key, value)| match value {
            toml::Value::Table(t) => key == "file" || walk(t),
            toml::Value::Array(items) => {
                key == "file" || items.iter().any(|v| matches!(v, toml::Value::Table(t) if walk(t)))
            }
            _ => key == "file",
        })
    }
    toml::from_str::<toml::Table>(text).is_ok_and(|doc| walk(&doc))
}

fn check(connection: &Connection) {
    let manifest = crate::airtable();
    for name in connection.options.keys() {
        let parameter = manifest.parameters.iter().find(|p| &p.name == name).expect("a manifest parameter");
        assert!(!parameter.secret, "secret {name} reached the guest's options");
    }
    for parameter in &manifest.parameters {
        if parameter.secret {
            assert!(!connection.options.contains_key(&parameter.name));
        } else {
            assert!(connection.secrets.get(&parameter.name).is_none());
        }
    }

    let limits = &connection.limits;
    assert!((1..=16_384).contains(&limits.memory_mib), "{limits:?}");
    for seconds in [limits.call_seconds, limits.call_wall_seconds, limits.http_timeout_seconds] {
        assert!(seconds.is_finite() && (0.001..=86_400.0).contains(&seconds), "{limits:?}");
        assert!(Duration::try_from_secs_f64(seconds).is_ok());
    }
    assert!((1..=4096).contains(&limits.page_mib), "{limits:?}");
    assert!((1..=4096).contains(&limits.http_body_mib), "{limits:?}");
    assert!((1..=1_000_000_000).contains(&limits.read_empty_pages), "{limits:?}");
    assert!((1..=u64::from(u32::MAX)).contains(&limits.read_calls), "{limits:?}");
    assert!((1..=1 << 20).contains(&limits.pending_mib), "{limits:?}");

    let retry = &connection.retry;
    assert!((1..=100).contains(&retry.max_attempts), "{retry:?}");
    assert!(retry.initial_backoff_ms <= 3_600_000 && retry.max_backoff_ms <= 3_600_000, "{retry:?}");
    assert!(
        retry.penalty_seconds.is_finite() && (0.0..=3600.0).contains(&retry.penalty_seconds),
        "{retry:?}"
    );
    assert!(Duration::try_from_secs_f64(retry.penalty_seconds).is_ok());
}
