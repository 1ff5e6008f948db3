//! The GitHub connector: issues and pull requests of the repositories a connection names.
//!
//! - Each repository is a namespace `[owner, name]` (contract 0.2) holding two tables,
//!   `issues` and `pull_requests`; the connection's `repositories` lists them.
//! - Both tables are `cdc` on `updated_at`, keyed by GitHub's `id`, read from the issue listing
//!   (`GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…`), which holds
//!   pull requests too: `issues` keeps the items without `pull_request`, `pull_requests` the
//!   others, with `draft` and `pull_request.merged_at`. A rerun asks for `since` the newest
//!   `updated_at` it read, so it reads only what changed (see [`listing`] for the paging).
//! - Users, labels and milestones are structs, timestamps UTC. Table option `page_size` (1 to
//!   100, default 100) sets `per_page`.
//! - The token, the rate limits (`X-RateLimit-*`, `Retry-After`, secondary limits) and retries
//!   are the host's: this crate holds no credential and no sleep.
//!
//! It was written with weir's own tools: `weir new connector github`, `weir build`, and
//! `weir test --replay` on the cassettes in `fixtures/`, written by hand from GitHub's
//! documented responses.

mod listing;
mod schema;

use serde_json::Value;
use weir_connector_sdk::{
    Connector, ConnectorError, Host, IngestionType, Options, Page, Rows, TableMetadata, namespace,
};

use schema::Table;

pub struct GithubConnector;

const TABLES: &[&str] = &["issues", "pull_requests"];

/// The table option that sets GitHub's `per_page`.
pub const PAGE_SIZE_OPTION: &str = "page_size";

fn columns(table: &str) -> Result<&'static Table, ConnectorError> {
    match table {
        "issues" => Ok(&schema::ISSUES),
        "pull_requests" => Ok(&schema::PULL_REQUESTS),
        _ => Err(ConnectorError::UnknownTable(table.to_string())),
    }
}

fn base_url(options: &Options) -> Result<&str, ConnectorError> {
    options
        .get("base_url")
        .map(|u| u.trim_end_matches('/'))
        .ok_or_else(|| ConnectorError::InvalidOptions("base_url is missing".into()))
}

/// The connection's repositories, as `[owner, name]`, in the order given.
fn repositories(options: &Options) -> Result<Vec<[String; 2]>, ConnectorError> {
    let text = options.get("repositories").map(String::as_str).unwrap_or_default();
    let valid = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => {
                let repository = [owner.to_string(), name.to_string()];
                if !out.contains(&repository) {
                    out.push(repository);
                }
            }
            _ => {
                return Err(ConnectorError::InvalidOptions(format!(
                    "repositories: {entry:?} is not owner/name (e.g. octocat/Hello-World)"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ConnectorError::InvalidOptions(
            "repositories is empty: name at least one, as owner/name".into(),
        ));
    }
    Ok(out)
}

/// The repository a table's `namespace` option names, as `owner/name`.
fn repository(options: &Options, table_options: &Options) -> Result<String, ConnectorError> {
    let ns = namespace(table_options)?;
    let known = repositories(options)?;
    match <[String; 2]>::try_from(ns.clone()) {
        Ok(pair) if known.contains(&pair) => Ok(pair.join("/")),
        _ => Err(ConnectorError::InvalidOptions(format!(
            "namespace {ns:?} is not one of the connection's repositories ({}); \
             set the table option namespace to [owner, name]",
            known.iter().map(|r| r.join("/")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn page_size(table_options: &Options) -> Result<u32, ConnectorError> {
    match table_options.get(PAGE_SIZE_OPTION) {
        None => Ok(100),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(ConnectorError::InvalidOptions(format!(
                "table option {PAGE_SIZE_OPTION} must be a whole number from 1 to 100 (GitHub's per_page), got {v:?}"
            ))),
        },
    }
}

impl Connector for GithubConnector {
    /// No table lives at the root: every table is in a repository's namespace.
    fn list_tables(_host: &dyn Host, options: &Options) -> Result<Vec<String>, ConnectorError> {
        repositories(options)?;
        Ok(Vec::new())
    }

    fn list_namespaces(
        _host: &dyn Host,
        options: &Options,
        prefix: &[String],
    ) -> Result<Vec<Vec<String>>, ConnectorError> {
        let repositories = repositories(options)?;
        let mut out: Vec<Vec<String>> = match prefix {
            [] => repositories.iter().map(|[owner, _]| vec![owner.clone()]).collect(),
            [owner] => repositories.iter().filter(|[o, _]| o == owner).map(|r| r.to_vec()).collect(),
            _ => Vec::new(),
        };
        out.dedup();
        Ok(out)
    }

    fn list_tables_in_namespace(
        _host: &dyn Host,
        options: &Options,
        namespace: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        let repositories = repositories(options)?;
        Ok(if repositories.iter().any(|r| r.as_slice() == namespace) {
            TABLES.iter().map(|t| t.to_string()).collect()
        } else {
            Vec::new()
        })
    }

    fn table_schema(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
    ) -> Result<String, ConnectorError> {
        Ok(schema::spark_schema(columns(table)?))
    }

    fn table_metadata(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        columns(table)?;
        Ok(TableMetadata {
            primary_keys: vec!["id".into()],
            cursor_field: Some(schema::CURSOR.into()),
            ingestion_type: IngestionType::Cdc,
        })
    }

    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let columns = columns(table)?;
        let repository = repository(options, table_options)?;
        let page_size = page_size(table_options)?;
        let start = listing::Offset::parse(start_offset)?;
        let listed = listing::read(host, base_url(options)?, &repository, page_size, &start)?;
        let Some(end) = listed.end else { return Ok(Page::end(start_offset)) };
        let pulls = table == "pull_requests";
        let mut lines = String::new();
        let mut rows = 0;
        for item in listed.items.iter().filter(|item| item.get("pull_request").is_some() == pulls) {
            let mut row = schema::project(item, columns.columns());
            row.insert(schema::REPOSITORY.into(), Value::String(repository.clone()));
            lines.push_str(&Value::Object(row).to_string());
            lines.push('\n');
            rows += 1;
        }
        let skipped = listed.items.len() as u64 - rows;
        let other = if pulls { "listed_issues_skipped" } else { "listed_pull_requests_skipped" };
        Ok(Page {
            rows: Rows::JsonLines(lines),
            end_offset: end.render(),
            checkpointable: true,
            counters: vec![(other.into(), skipped)],
        })
    }

    /// GitHub's listings show no deletions (a deleted issue simply vanishes): no table is
    /// `cdc_with_deletes`, and the deletes read of a known table ends at once.
    fn read_deletes(
        _host: &dyn Host,
        _options: &Options,
        table: &str,
        _table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        columns(table)?;
        Ok(Page::end(start_offset))
    }
}

// The component's exports; native builds (unit tests) have none.
#[cfg(target_arch = "wasm32")]
weir_connector_sdk::export_connector!(GithubConnector);
