//! `tables`, `schema`, `metadata`, `preview`, `check` and `inspect`: looking at a source.

use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow_array::RecordBatch;
use serde_json::{Value, json};
use weir_runtime::terminal::escape;
use weir_runtime::{Manifest, Pages, Stream};

use crate::connect::{self, ConnectionArgs};

/// Which table a command is about, and its options, as the user gave them.
#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    #[arg(long, short)]
    pub table: String,
    /// The table's namespace, one segment per flag (e.g. an Airtable base id).
    #[arg(long = "namespace", short = 'n')]
    pub namespace: Vec<String>,
    /// A table option, key=value (repeatable).
    #[arg(long = "option", short = 'o')]
    pub options: Vec<String>,
}

impl TableArgs {
    /// Table options given as `--option key=value`, with `--namespace` as the `namespace` option.
    pub fn table_options(&self) -> Result<Vec<(String, String)>> {
        let mut options = key_values(&self.options)?;
        if !self.namespace.is_empty() {
            options.push((
                weir_runtime::contract::NAMESPACE_OPTION.into(),
                serde_json::to_string(&self.namespace)?,
            ));
        }
        Ok(options)
    }
}

/// Table options given as `key=value`.
pub fn key_values(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("table option {p:?} must look like key=value"),
        })
        .collect()
}

/// Every table the connection reaches: for a connector with namespaces, the tables of every
/// namespace (text: `namespace / table`; JSON: objects with `namespace` and `table`); otherwise
/// the table names (JSON: an array of strings).
pub fn tables(args: &ConnectionArgs, json: bool) -> Result<()> {
    let mut c = connect::connect(args)?;
    let tables = c.session.all_tables()?;
    let flat = tables.iter().all(|t| t.namespace.is_empty());
    if json && flat {
        println!("{}", serde_json::to_string(&tables.iter().map(|t| &t.name).collect::<Vec<_>>())?);
    } else if json {
        let objects: Vec<Value> =
            tables.iter().map(|t| json!({"namespace": t.namespace, "table": t.name})).collect();
        println!("{}", serde_json::to_string(&objects)?);
    } else {
        for t in tables {
            if t.namespace.is_empty() {
                println!("{}", escape(&t.name));
            } else {
                println!("{} / {}", escape(&t.namespace.join(".")), escape(&t.name));
            }
        }
    }
    Ok(())
}

pub fn schema(args: &ConnectionArgs, t: &TableArgs, json: bool) -> Result<()> {
    let mut c = connect::connect(args)?;
    let table = &t.table;
    let spark = c.session.table_schema(table, &t.table_options()?)?;
    // Validate through the converter, so that what we print is what the host will use.
    weir_convert::arrow_schema(&spark)
        .with_context(|| format!("the schema of table {table:?} is unusable"))?;
    if json {
        println!("{spark}");
        return Ok(());
    }
    let value: Value = serde_json::from_str(&spark)?;
    println!("{}", escape(table));
    print_fields(&value, "");
    Ok(())
}

/// Prints a Spark struct's fields as an indented tree.
fn print_fields(schema: &Value, indent: &str) {
    let Some(fields) = schema.get("fields").and_then(Value::as_array) else { return };
    for (i, f) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        let name = f.get("name").and_then(Value::as_str).unwrap_or("?");
        let ty = f.get("type").unwrap_or(&Value::Null);
        let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
        let origin = f
            .get("metadata")
            .and_then(|m| m.get("airtable_field_name"))
            .and_then(Value::as_str)
            .map(|n| format!("  ← {:?}", escape(n)))
            .unwrap_or_default();
        println!(
            "{indent}{} {}: {}{}{origin}",
            if last { "└─" } else { "├─" },
            escape(name),
            escape(&type_name(ty)),
            if nullable { "" } else { " not null" }
        );
        let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
        if let Some(s) = nested_struct(ty) {
            print_fields(s, &child_indent);
        }
    }
}

fn nested_struct(ty: &Value) -> Option<&Value> {
    match ty.get("type").and_then(Value::as_str) {
        Some("struct") => Some(ty),
        Some("array") => ty.get("elementType").and_then(nested_struct),
        Some("map") => ty.get("valueType").and_then(nested_struct),
        _ => None,
    }
}

fn type_name(ty: &Value) -> String {
    match ty {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("array") => format!("array<{}>", o.get("elementType").map(type_name).unwrap_or_default()),
            Some("map") => format!(
                "map<{}, {}>",
                o.get("keyType").map(type_name).unwrap_or_default(),
                o.get("valueType").map(type_name).unwrap_or_default()
            ),
            Some("struct") => "struct".into(),
            other => other.unwrap_or("?").into(),
        },
        _ => "?".into(),
    }
}

pub fn metadata(args: &ConnectionArgs, t: &TableArgs, json: bool) -> Result<()> {
    let mut c = connect::connect(args)?;
    let m = c.session.table_metadata(&t.table, &t.table_options()?)?;
    if json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!("table:          {}", escape(&t.table));
        println!("primary keys:   {}", escape(&m.primary_keys.join(", ")));
        println!("cursor field:   {}", escape(m.cursor_field.as_deref().unwrap_or("(none)")));
        println!("ingestion type: {}", m.ingestion_type);
    }
    Ok(())
}

/// Batches as JSON objects, one per row, values as Arrow typed them.
pub fn batches_to_json_lines(batches: &[RecordBatch]) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut buf);
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        writer.write_batches(&refs)?;
        writer.finish()?;
    }
    Ok(String::from_utf8(buf)?)
}

pub fn preview(args: &ConnectionArgs, t: &TableArgs, limit: usize, json: bool) -> Result<()> {
    let mut c = connect::connect(args)?;
    let options = t.table_options()?;
    let schema = c.session.arrow_schema(&t.table, &options)?;
    let mut pages = Pages::new(&mut c.session, &t.table, &options, Stream::Table, None, schema);
    let mut batches = Vec::new();
    let mut rows = 0;
    while rows < limit {
        let Some(page) = pages.next_page() else { break };
        for b in page?.batches {
            let take = b.num_rows().min(limit - rows);
            rows += take;
            batches.push(b.slice(0, take));
        }
    }
    if json {
        print!("{}", batches_to_json_lines(&batches)?);
    } else {
        println!("{}", arrow_cast::pretty::pretty_format_batches(&batches)?);
        println!("{rows} row(s)");
    }
    Ok(())
}

pub fn check(args: &ConnectionArgs, json: bool) -> Result<()> {
    let mut c = connect::connect(args)?;
    match c.session.list_tables() {
        Ok(tables) => {
            if json {
                println!("{}", json!({"ok": true, "connection": c.connection, "tables": tables.len()}));
            } else {
                println!(
                    "ok: connection {:?} reached the source and authenticated; {} table(s) visible",
                    c.connection,
                    tables.len()
                );
            }
            Ok(())
        }
        Err(e) if e.is_auth() => bail!(
            "{e}\nThe source refused the credentials of connection {:?}: check the secret parameter (it is never shown) and its scopes.",
            c.connection
        ),
        Err(e) => {
            bail!("{e}\nCheck the connection's base URL and network, then run `weir check -v` for details.")
        }
    }
}

/// `weir test`: the conformance suite, one line per check and table.
pub fn test(
    args: &ConnectionArgs,
    connector: Option<&str>,
    options: &weir_conformance::Options,
    json: bool,
) -> Result<()> {
    use weir_conformance::Status;
    let mut c = connect::connect_to(args, connector)?;
    let report = weir_conformance::run(&mut c.session, options);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let width = report
            .checks
            .iter()
            .map(|r| r.table.as_deref().unwrap_or("-").chars().count())
            .max()
            .unwrap_or(1);
        for r in &report.checks {
            let status = match r.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            let table = escape(r.table.as_deref().unwrap_or("-")).into_owned();
            println!("{status}  {:<22}  {table:<width$}  {}", r.check, escape(&r.detail));
        }
        let count = |s: Status| report.checks.iter().filter(|r| r.status == s).count();
        println!(
            "{} check(s): {} passed, {} failed, {} skipped ({} HTTP request(s))",
            report.checks.len(),
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            report.http.requests
        );
    }
    let failed = report.failures().count();
    if failed > 0 {
        bail!("{failed} conformance check(s) failed");
    }
    Ok(())
}

/// How a component's origin reads in `weir inspect`.
fn origin_text(origin: &weir_vet::component::Origin) -> String {
    use weir_vet::component::Origin;
    let signed = |signers: &[weir_vet::lock::Signer], unsigned: bool| {
        if unsigned || signers.is_empty() {
            "not signed by a trusted key".to_string()
        } else {
            format!("signed by {}", signers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))
        }
    };
    match origin {
        Origin::Bundled { name } => format!("bundled with weir ({name})"),
        Origin::Store { name, version, signers, unsigned, .. } => {
            format!("installed {name}@{version}, {}", signed(signers, *unsigned))
        }
        Origin::Path { path, signers, unsigned, .. } => {
            format!("file {}, {}", path.display(), signed(signers, *unsigned))
        }
    }
}

/// Reads a manifest from a bundled or installed name or a path without compiling anything,
/// with who signed it.
pub fn inspect(reference: &str, json: bool) -> Result<()> {
    // Inspecting runs nothing: an unsigned component may be looked at, and says so.
    let component = weir_vet::component::load(&weir_vet::weir_home(), reference, Path::new("."), true)?;
    let bytes = &component.bytes;
    let manifest = Manifest::from_component(bytes)?;
    let sha256 = weir_runtime::http::sha256_hex(bytes);
    let capabilities = weir_vet::Capabilities::of(&manifest);
    let fixed: Vec<String> = capabilities
        .fixed_origin_secrets()
        .map(|a| format!("{} of {} to {}", a.header, a.secrets.join(", "), a.origin))
        .collect();
    if json {
        let mut v = serde_json::to_value(&manifest)?;
        if let Value::Object(o) = &mut v {
            o.insert("sha256".into(), json!(sha256));
            o.insert("size_bytes".into(), json!(bytes.len()));
            o.insert("origin".into(), serde_json::to_value(&component.origin)?);
            o.insert("secrets_to_fixed_origins".into(), json!(fixed));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{} {} — {}", manifest.name, escape(&manifest.version), escape(&manifest.description));
    println!("contract:    {}", manifest.contract);
    if !manifest.capabilities.is_empty() {
        let names: Vec<&str> = manifest.capabilities.iter().map(|c| c.name()).collect();
        println!("implements:  {}", names.join(", "));
    }
    println!("sha256:      {sha256}");
    println!("size:        {} bytes", bytes.len());
    println!("origin:      {}", escape(&origin_text(&component.origin)));
    for f in &fixed {
        println!(
            "!! WARNING:  this connector sends your secret to a server its author chose, not one you set: {}",
            escape(f)
        );
    }
    println!("parameters:");
    for p in &manifest.parameters {
        let mut flags = Vec::new();
        if p.required {
            flags.push("required".to_string());
        }
        if p.secret {
            flags.push("secret: kept by the host".to_string());
        }
        if let Some(d) = &p.default {
            flags.push(format!("default {d:?}"));
        }
        println!(
            "  {:<14} {} {}",
            escape(&p.name),
            escape(&p.description),
            if flags.is_empty() { String::new() } else { format!("({})", flags.join(", ")) }
        );
    }
    println!("capabilities:");
    for origin in &manifest.network.allow {
        println!("  network      {}", escape(origin));
    }
    for a in &manifest.auth {
        println!(
            "  auth         {} on requests to {} (injected by the host)",
            escape(&a.header),
            escape(&a.origin)
        );
    }
    for r in &manifest.rate_limits {
        let paths =
            if r.paths.is_empty() { String::new() } else { format!(" (by path: {})", r.paths.join(", ")) };
        println!("  rate limit   {} req/s per {}{}", r.per_second, escape(&r.key), escape(&paths));
    }
    let l = &manifest.limits;
    println!(
        "  limits       memory {} MiB, CPU {} s/call, wall {} s/call, page {} MiB, HTTP body {} MiB, HTTP timeout {} s",
        l.memory_mib,
        l.call_seconds,
        l.call_wall_seconds,
        l.page_mib,
        l.http_body_mib,
        l.http_timeout_seconds
    );
    println!(
        "  retries      {} attempts, backoff {}–{} ms, {} s pause after a 429",
        manifest.retry.max_attempts,
        manifest.retry.initial_backoff_ms,
        manifest.retry.max_backoff_ms,
        manifest.retry.penalty_seconds
    );
    println!("  filesystem   none; environment none; sockets none");
    Ok(())
}
