//! The Airtable connector for weir: lists a base's tables, types their columns from
//! Airtable's meta API, and pages through records as Arrow record batches in that schema.
//!
//! It is plain Rust over [`weir_connector_sdk::Host`], so the same code runs inside the
//! wasm sandbox (built for `wasm32-wasip2`, where the host injects the bearer token) and
//! natively, for tests and for benchmarks without the sandbox.
//!
//! ```no_run
//! use weir_airtable::Airtable;
//! use weir_connector_sdk::{Connector, Host, Options};
//!
//! fn tables(host: &dyn Host) -> Result<Vec<String>, weir_connector_sdk::ConnectorError> {
//!     let options: Options = [("base_id".to_string(), "appSaRcgA5UCGoRg5".to_string())].into();
//!     Airtable::list_tables(host, &options)
//! }
//! ```
//!
//! Bases are namespaces (contract 0.2): a connection with `base_id` reads that base, whose
//! tables are at the root; a connection without it reaches every base the token can read, each
//! the namespace `["app…"]`, and a table names its base with the table option `namespace`.
//!
//! What it does, in short:
//! - columns: `id` (primary key), `created_time`, then one per field, in snake_case by
//!   default (table option `column_names = original` keeps Airtable's names); each keeps
//!   its field id and name in the schema's metadata, and its field id as the contract's
//!   `column_id`, so a renamed field keeps its destination column;
//! - a table with a `lastModifiedTime` field that watches every field is `cdc` on it;
//!   any other table is `snapshot` (table option `cursor_field` opts a table into cdc);
//! - a cdc read reaches a checkpointable offset every `checkpoint_records` records
//!   (default [`DEFAULT_CHECKPOINT_RECORDS`]), so the host can commit a large table in
//!   steps; a snapshot is one listing, checkpointable only at its end;
//! - deletes are only visible through Airtable webhooks: table option `deletes = "webhook"`
//!   makes a cdc table `cdc_with_deletes`, read through a webhook of its own (see `deletes`);
//!   any other table's [`Connector::read_deletes`] ends at once.

// The row fixtures are single large `json!` literals.
#![cfg_attr(test, recursion_limit = "512")]

mod api;
mod columns;
mod deletes;
mod options;
mod read;
mod rows;
mod scan;
mod schema;
mod time;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;

use weir_connector_sdk::{Connector, ConnectorError, Host, Options, Page, TableMetadata};

pub use options::{DEFAULT_BASE_URL, DEFAULT_CHECKPOINT_RECORDS, TABLE_OPTIONS};

use api::Client;
use options::{Connection, TableOptions};
use schema::Plan;

/// The Airtable connector.
pub struct Airtable;

/// The last meta response of this instance, by (base URL, base id), and the plans made from it.
struct Kept {
    base: (String, String),
    meta: schema::BaseMeta,
    /// By table and table options: a plan builds each column's lookup and the pages' Arrow schema.
    plans: Vec<(String, Options, Rc<Plan>)>,
}

thread_local! {
    /// A read's later pages reuse the meta and the plan: fetching the meta again for every page
    /// would spend half of Airtable's 5 requests per second on metadata, and planning again cost
    /// 2 % of the read path. Every read's first page, and every schema, metadata or table-list
    /// call, fetches the meta afresh and drops the plans.
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// A client for the base that `namespace` (or the connection's `base_id`) names.
fn client<'h>(
    host: &'h dyn Host,
    options: &Options,
    namespace: &[String],
) -> Result<Client<'h>, ConnectorError> {
    let connection = Connection::parse(options)?;
    let base_id = connection.base(namespace)?;
    Ok(Client { host, base_url: connection.base_url, base_id })
}

/// Validates the options and fetches the table's plan; `reuse_meta` allows the cached meta.
fn plan<'h>(
    host: &'h dyn Host,
    options: &Options,
    table: &str,
    raw_options: &Options,
    reuse_meta: bool,
) -> Result<(Client<'h>, Rc<Plan>, TableOptions), ConnectorError> {
    let client = client(host, options, &weir_connector_sdk::namespace(raw_options)?)?;
    let parsed = TableOptions::parse(raw_options)?;
    let base = (client.base_url.clone(), client.base_id.clone());
    let cached = reuse_meta && KEPT.with(|k| k.borrow().as_ref().is_some_and(|k| k.base == base));
    if !cached {
        let meta = client.meta()?;
        KEPT.with(|k| *k.borrow_mut() = Some(Kept { base, meta, plans: Vec::new() }));
    }
    let plan = KEPT.with(|k| {
        let mut kept = k.borrow_mut();
        let Some(kept) = kept.as_mut() else {
            return Err(ConnectorError::Internal("the base's meta was not kept".into()));
        };
        if let Some((_, _, plan)) = kept.plans.iter().find(|(t, o, _)| t == table && o == raw_options) {
            return Ok(plan.clone());
        }
        let plan = Rc::new(Plan::new(kept.meta.table(table)?, &parsed)?);
        kept.plans.push((table.to_string(), raw_options.clone(), plan.clone()));
        Ok(plan)
    })?;
    Ok((client, plan, parsed))
}

impl Airtable {
    /// [`Connector::read_table`] with a given clock, so cdc reads can be tested exactly.
    pub fn read_table_at(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
        now_ms: impl Fn() -> i64,
    ) -> Result<Page, ConnectorError> {
        let (client, plan, table_options) =
            plan(host, options, table, table_options, start_offset.is_some())?;
        read::Read { client: &client, plan: &plan, options: &table_options, start: start_offset }.page(now_ms)
    }
}

impl Connector for Airtable {
    /// The tables of the connection's base; a connection without `base_id` has no root-level
    /// tables, only bases (namespaces).
    fn list_tables(host: &dyn Host, options: &Options) -> Result<Vec<String>, ConnectorError> {
        if Connection::parse(options)?.base_id.is_none() {
            return Ok(Vec::new());
        }
        Ok(client(host, options, &[])?.meta()?.tables.into_iter().map(|t| t.name).collect())
    }

    /// Without `base_id`, every base the token can read, each a namespace `[base id]`; a
    /// connection scoped to one base has no namespaces (its tables are at the root).
    fn list_namespaces(
        host: &dyn Host,
        options: &Options,
        prefix: &[String],
    ) -> Result<Vec<Vec<String>>, ConnectorError> {
        let connection = Connection::parse(options)?;
        if connection.base_id.is_some() || !prefix.is_empty() {
            return Ok(Vec::new());
        }
        Ok(api::list_bases(host, &connection.base_url)?.into_iter().map(|id| vec![id]).collect())
    }

    fn list_tables_in_namespace(
        host: &dyn Host,
        options: &Options,
        namespace: &[String],
    ) -> Result<Vec<String>, ConnectorError> {
        if namespace.is_empty() {
            return Self::list_tables(host, options);
        }
        Ok(client(host, options, namespace)?.meta()?.tables.into_iter().map(|t| t.name).collect())
    }

    fn table_schema(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
    ) -> Result<String, ConnectorError> {
        Ok(plan(host, options, table, table_options, false)?.1.schema_json())
    }

    fn table_metadata(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        Ok(plan(host, options, table, table_options, false)?.1.metadata())
    }

    fn read_table(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        Self::read_table_at(host, options, table, table_options, start_offset, time::now_ms)
    }

    /// Deletes of a `deletes = "webhook"` table, through its webhook (see the `deletes`
    /// module); any other table's deletes end at once.
    fn read_deletes(
        host: &dyn Host,
        options: &Options,
        table: &str,
        table_options: &Options,
        start_offset: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let release = table_options.get(deletes::RELEASE_OPTION).is_some_and(|v| v == "true");
        let (client, plan, _) = plan(host, options, table, table_options, start_offset.is_some())?;
        deletes::read(&client, &plan, start_offset, release, time::now_ms())
    }
}

#[cfg(target_arch = "wasm32")]
weir_connector_sdk::export_connector!(Airtable);
