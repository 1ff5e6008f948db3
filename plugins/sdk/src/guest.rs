//! The thin glue between [`Connector`](crate::Connector) and the WIT world, for wasm32 only.

use crate::{ConnectorError, Host, HttpError, IngestionType, Level, Options, Page, Request, Response, Rows};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "weir_connector_sdk::guest::bindings",
    });
}

use bindings::exports::lakeflow::connect::source as wit_source;
use bindings::lakeflow::connect::{http as wit_http, log as wit_log, types as wit_types};

/// The host as the sandbox offers it: the `http` and `log` imports.
pub struct WitHost;

impl Host for WitHost {
    fn send(&self, r: Request) -> Result<Response, HttpError> {
        let request = wit_http::Request { method: r.method, url: r.url, headers: r.headers, body: r.body };
        match wit_http::send(&request) {
            Ok(resp) => Ok(Response { status: resp.status, headers: resp.headers, body: resp.body }),
            Err(e) => Err(match e {
                wit_http::HttpError::Denied(m) => HttpError::Denied(m),
                wit_http::HttpError::Timeout(m) => HttpError::Timeout(m),
                wit_http::HttpError::Connection(m) => HttpError::Connection(m),
                wit_http::HttpError::BodyTooLarge(n) => HttpError::BodyTooLarge(n),
                wit_http::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
            }),
        }
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit_log::Level::Trace,
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message);
    }
}

fn options(list: Vec<(String, String)>) -> Options {
    list.into_iter().collect()
}

fn error(e: ConnectorError) -> wit_types::ConnectorError {
    match e {
        ConnectorError::UnknownTable(m) => wit_types::ConnectorError::UnknownTable(m),
        ConnectorError::InvalidOptions(m) => wit_types::ConnectorError::InvalidOptions(m),
        ConnectorError::Auth(m) => wit_types::ConnectorError::Auth(m),
        ConnectorError::RateLimited(m) => wit_types::ConnectorError::RateLimited(m),
        ConnectorError::Source { status, message } => {
            wit_types::ConnectorError::Source(wit_types::SourceError { status, message })
        }
        ConnectorError::Internal(m) => wit_types::ConnectorError::Internal(m),
    }
}

fn page(p: Page) -> wit_types::Page {
    wit_types::Page {
        rows: match p.rows {
            Rows::JsonLines(s) => wit_types::Rows::JsonLines(s),
            Rows::ArrowIpc(b) => wit_types::Rows::ArrowIpc(b),
        },
        end_offset: p.end_offset,
        checkpointable: p.checkpointable,
        counters: p.counters,
    }
}

/// Serves `source` by forwarding to `C`; used by [`export_connector!`](crate::export_connector).
pub struct Export<C>(core::marker::PhantomData<C>);

impl<C: crate::Connector> wit_source::Guest for Export<C> {
    fn list_tables(o: Vec<(String, String)>) -> Result<Vec<String>, wit_types::ConnectorError> {
        C::list_tables(&WitHost, &options(o)).map_err(error)
    }

    fn table_schema(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
    ) -> Result<String, wit_types::ConnectorError> {
        C::table_schema(&WitHost, &options(o), &table, &options(t)).map_err(error)
    }

    fn table_metadata(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
    ) -> Result<wit_types::Metadata, wit_types::ConnectorError> {
        let m = C::table_metadata(&WitHost, &options(o), &table, &options(t)).map_err(error)?;
        Ok(wit_types::Metadata {
            primary_keys: m.primary_keys,
            cursor_field: m.cursor_field,
            ingestion_type: match m.ingestion_type {
                IngestionType::Snapshot => wit_types::IngestionType::Snapshot,
                IngestionType::Cdc => wit_types::IngestionType::Cdc,
                IngestionType::CdcWithDeletes => wit_types::IngestionType::CdcWithDeletes,
                IngestionType::Append => wit_types::IngestionType::Append,
            },
        })
    }

    fn read_table(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
        start: Option<String>,
    ) -> Result<wit_types::Page, wit_types::ConnectorError> {
        C::read_table(&WitHost, &options(o), &table, &options(t), start.as_deref()).map(page).map_err(error)
    }

    fn read_deletes(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
        start: Option<String>,
    ) -> Result<wit_types::Page, wit_types::ConnectorError> {
        C::read_deletes(&WitHost, &options(o), &table, &options(t), start.as_deref()).map(page).map_err(error)
    }
}

/// Exports a [`Connector`](crate::Connector) type as the component's `source`.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        type __WeirExport = $crate::guest::Export<$connector>;
        $crate::guest::bindings::export!(__WeirExport with_types_in $crate::guest::bindings);
    };
}
