//! The glue between [`Connector`](crate::Connector) and one version of the WIT world, for
//! wasm32 only. The crate feature picks the version: `v0_2` or `v0_1`.
//!
//! The versions' generated bindings are distinct types with the same paths, so what the two
//! share is written once, as the macros below, and expanded in each version's module.

#[cfg(all(feature = "v0_1", feature = "v0_2"))]
compile_error!(
    "weir-connector-sdk: enable only one of the features v0_1 and v0_2 (build connectors of different contracts in separate cargo invocations)"
);
#[cfg(not(any(feature = "v0_1", feature = "v0_2")))]
compile_error!(
    "weir-connector-sdk: enable the feature of the contract the connector exports, v0_2 (latest) or v0_1"
);

/// Module-level items every version shares: the host imports, option and page conversions.
/// Expects `bindings`, `wit_http`, `wit_log` and `wit_types` in scope.
macro_rules! glue {
    () => {
        /// The host as the sandbox offers it: the `http` and `log` imports.
        pub struct WitHost;

        impl $crate::Host for WitHost {
            fn send(&self, r: $crate::Request) -> Result<$crate::Response, $crate::HttpError> {
                use $crate::HttpError;
                let request =
                    wit_http::Request { method: r.method, url: r.url, headers: r.headers, body: r.body };
                match wit_http::send(&request) {
                    Ok(resp) => {
                        Ok($crate::Response { status: resp.status, headers: resp.headers, body: resp.body })
                    }
                    Err(e) => Err(match e {
                        wit_http::HttpError::Denied(m) => HttpError::Denied(m),
                        wit_http::HttpError::Timeout(m) => HttpError::Timeout(m),
                        wit_http::HttpError::Connection(m) => HttpError::Connection(m),
                        wit_http::HttpError::BodyTooLarge(n) => HttpError::BodyTooLarge(n),
                        wit_http::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
                    }),
                }
            }

            fn log(&self, level: $crate::Level, message: &str) {
                use $crate::Level;
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

        fn options(list: Vec<(String, String)>) -> $crate::Options {
            list.into_iter().collect()
        }

        fn page(p: $crate::Page) -> wit_types::Page {
            wit_types::Page {
                rows: match p.rows {
                    $crate::Rows::JsonLines(s) => wit_types::Rows::JsonLines(s),
                    $crate::Rows::ArrowIpc(b) => wit_types::Rows::ArrowIpc(b),
                },
                end_offset: p.end_offset,
                checkpointable: p.checkpointable,
                counters: p.counters,
            }
        }

        fn metadata(m: $crate::TableMetadata) -> wit_types::Metadata {
            use $crate::IngestionType;
            wit_types::Metadata {
                primary_keys: m.primary_keys,
                cursor_field: m.cursor_field,
                ingestion_type: match m.ingestion_type {
                    IngestionType::Snapshot => wit_types::IngestionType::Snapshot,
                    IngestionType::Cdc => wit_types::IngestionType::Cdc,
                    IngestionType::CdcWithDeletes => wit_types::IngestionType::CdcWithDeletes,
                    IngestionType::Append => wit_types::IngestionType::Append,
                },
            }
        }

        /// Serves `source` by forwarding to `C`; used by [`export_connector!`](crate::export_connector).
        pub struct Export<C>(core::marker::PhantomData<C>);
    };
}

/// The `source` functions every version has, as items of `impl Guest for Export<C>`.
macro_rules! source_functions {
    () => {
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
            C::table_metadata(&WitHost, &options(o), &table, &options(t)).map(metadata).map_err(error)
        }

        fn read_table(
            o: Vec<(String, String)>,
            table: String,
            t: Vec<(String, String)>,
            start: Option<String>,
        ) -> Result<wit_types::Page, wit_types::ConnectorError> {
            C::read_table(&WitHost, &options(o), &table, &options(t), start.as_deref())
                .map(page)
                .map_err(error)
        }

        fn read_deletes(
            o: Vec<(String, String)>,
            table: String,
            t: Vec<(String, String)>,
            start: Option<String>,
        ) -> Result<wit_types::Page, wit_types::ConnectorError> {
            C::read_deletes(&WitHost, &options(o), &table, &options(t), start.as_deref())
                .map(page)
                .map_err(error)
        }
    };
}

#[cfg(feature = "v0_1")]
mod v0_1;
#[cfg(feature = "v0_1")]
pub use v0_1::*;

#[cfg(feature = "v0_2")]
mod v0_2;
#[cfg(feature = "v0_2")]
pub use v0_2::*;

/// Exports a [`Connector`](crate::Connector) type as the component's `source`.
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        type __WeirExport = $crate::guest::Export<$connector>;
        $crate::guest::bindings::export!(__WeirExport with_types_in $crate::guest::bindings);
    };
}
