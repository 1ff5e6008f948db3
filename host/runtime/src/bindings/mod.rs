//! One binding module per published version of the `lakeflow:connect` WIT package, each
//! converting its generated types to weir's own ([`crate::contract`]); and [`Pre`] and
//! [`Instance`], which dispatch a call to whichever version a component speaks.
//!
//! The manifest's `contract` picks the version at load, before anything is compiled. Both
//! versions' imports (`http`, `log`) are linked into one linker: wasmtime treats `0.1.x` and
//! `0.2.x` of a 0.x package as distinct, so they sit side by side.

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::contract::{ConnectorError, ContractVersion, Page, TableMetadata};
use crate::session::State;

/// The conversions every version shares: the imports served from [`State`], and pages,
/// metadata and errors out of the guest. Expanded in each version's module, whose generated
/// types have the same paths but are distinct types.
macro_rules! conversions {
    () => {
        use crate::contract as c;
        use crate::session::State;
        use lakeflow::connect::{http, log, types};

        impl types::Host for State {}

        impl http::Host for State {
            async fn send(
                &mut self,
                r: http::Request,
            ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
                let request =
                    c::HttpRequest { method: r.method, url: r.url, headers: r.headers, body: r.body };
                Ok(match self.http_send(request).await? {
                    Ok(r) => Ok(http::Response { status: r.status, headers: r.headers, body: r.body }),
                    Err(e) => Err(match e {
                        c::HttpError::Denied(m) => http::HttpError::Denied(m),
                        c::HttpError::Timeout(m) => http::HttpError::Timeout(m),
                        c::HttpError::Connection(m) => http::HttpError::Connection(m),
                        c::HttpError::BodyTooLarge(n) => http::HttpError::BodyTooLarge(n),
                        c::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
                    }),
                })
            }
        }

        impl log::Host for State {
            async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
                let level = match level {
                    log::Level::Trace => c::LogLevel::Trace,
                    log::Level::Debug => c::LogLevel::Debug,
                    log::Level::Info => c::LogLevel::Info,
                    log::Level::Warn => c::LogLevel::Warn,
                    log::Level::Error => c::LogLevel::Error,
                };
                self.guest_log(level, message);
                Ok(())
            }
        }

        pub(crate) fn metadata(m: types::Metadata) -> c::TableMetadata {
            c::TableMetadata {
                primary_keys: m.primary_keys,
                cursor_field: m.cursor_field,
                ingestion_type: match m.ingestion_type {
                    types::IngestionType::Snapshot => c::IngestionType::Snapshot,
                    types::IngestionType::Cdc => c::IngestionType::Cdc,
                    types::IngestionType::CdcWithDeletes => c::IngestionType::CdcWithDeletes,
                    types::IngestionType::Append => c::IngestionType::Append,
                },
            }
        }

        pub(crate) fn page(p: types::Page) -> c::Page {
            c::Page {
                rows: match p.rows {
                    types::Rows::JsonLines(s) => c::Rows::JsonLines(s),
                    types::Rows::ArrowIpc(b) => c::Rows::ArrowIpc(b),
                },
                end_offset: p.end_offset,
                checkpointable: p.checkpointable,
                counters: p.counters,
            }
        }
    };
}

pub mod since_v0_1_0;
pub mod since_v0_2_0;

/// What a call into the guest returns: a trap, or the connector's own answer.
pub(crate) type Call<T> = wasmtime::Result<Result<T, ConnectorError>>;

/// Adds every version's imports to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    since_v0_1_0::Connector::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    since_v0_2_0::Connector::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A component ready to instantiate, typed by its contract version.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(since_v0_1_0::ConnectorPre<State>),
    V0_2(since_v0_2_0::ConnectorPre<State>),
}

impl Pre {
    /// Checks that the component exports what `version` requires.
    pub(crate) fn new(version: ContractVersion, pre: InstancePre<State>) -> wasmtime::Result<Pre> {
        Ok(match version {
            ContractVersion::V0_1_0 => Pre::V0_1(since_v0_1_0::ConnectorPre::new(pre)?),
            ContractVersion::V0_2_0 => Pre::V0_2(since_v0_2_0::ConnectorPre::new(pre)?),
        })
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::V0_1(p) => p.engine(),
            Pre::V0_2(p) => p.engine(),
        }
    }

    pub(crate) async fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(p) => Instance::V0_1(p.instantiate_async(store).await?),
            Pre::V0_2(p) => Instance::V0_2(p.instantiate_async(store).await?),
        })
    }
}

/// A live component instance.
pub(crate) enum Instance {
    V0_1(since_v0_1_0::Connector),
    V0_2(since_v0_2_0::Connector),
}

/// Runs `$body` with `$b` bound to the instance's bindings and `$m` to its version's module.
macro_rules! on_any {
    ($instance:expr, $b:ident, $m:ident => $body:expr) => {
        match $instance {
            Instance::V0_1($b) => {
                use since_v0_1_0 as $m;
                $body
            }
            Instance::V0_2($b) => {
                use since_v0_2_0 as $m;
                $body
            }
        }
    };
}

/// Runs `$body` on a 0.2 instance; a 0.1 instance has no such function (the session checks
/// capabilities before it calls, so this is only reached by a bug).
macro_rules! on_v0_2 {
    ($instance:expr, $b:ident => $body:expr) => {
        match $instance {
            Instance::V0_1(_) => {
                Err(wasmtime::format_err!("contract lakeflow:connect@0.1.0 has no such function"))
            }
            Instance::V0_2($b) => $body,
        }
    };
}

type Opts = Vec<(String, String)>;

impl Instance {
    pub(crate) async fn list_tables(&self, s: &mut Store<State>, o: &Opts) -> Call<Vec<String>> {
        on_any!(self, b, m => Ok(b.lakeflow_connect_source().call_list_tables(s, o).await?.map_err(m::error)))
    }

    pub(crate) async fn table_schema(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
    ) -> Call<String> {
        on_any!(self, b, m => Ok(b.lakeflow_connect_source().call_table_schema(s, o, table, t).await?.map_err(m::error)))
    }

    pub(crate) async fn table_metadata(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
    ) -> Call<TableMetadata> {
        on_any!(self, b, m => Ok(b
            .lakeflow_connect_source()
            .call_table_metadata(s, o, table, t).await?
            .map(m::metadata)
            .map_err(m::error)))
    }

    pub(crate) async fn read_table(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
        start: Option<&str>,
    ) -> Call<Page> {
        on_any!(self, b, m => Ok(b
            .lakeflow_connect_source()
            .call_read_table(s, o, table, t, start).await?
            .map(m::page)
            .map_err(m::error)))
    }

    pub(crate) async fn read_deletes(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
        start: Option<&str>,
    ) -> Call<Page> {
        on_any!(self, b, m => Ok(b
            .lakeflow_connect_source()
            .call_read_deletes(s, o, table, t, start).await?
            .map(m::page)
            .map_err(m::error)))
    }

    pub(crate) async fn list_namespaces(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        prefix: &Vec<String>,
    ) -> Call<Vec<Vec<String>>> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_list_namespaces(s, o, prefix).await?
            .map_err(since_v0_2_0::error)))
    }

    pub(crate) async fn list_tables_in_namespace(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        namespace: &Vec<String>,
    ) -> Call<Vec<String>> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_list_tables_in_namespace(s, o, namespace).await?
            .map_err(since_v0_2_0::error)))
    }

    pub(crate) async fn list_partitions(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
    ) -> Call<Vec<String>> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_list_partitions(s, o, table, t).await?
            .map_err(since_v0_2_0::error)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read_partition(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
        partition: &str,
        start: Option<&str>,
    ) -> Call<Page> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_read_partition(s, o, table, t, partition, start).await?
            .map(since_v0_2_0::page)
            .map_err(since_v0_2_0::error)))
    }

    pub(crate) async fn latest_offset(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
        start: Option<&str>,
    ) -> Call<String> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_latest_offset(s, o, table, t, start).await?
            .map_err(since_v0_2_0::error)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn stream_partitions(
        &self,
        s: &mut Store<State>,
        o: &Opts,
        table: &str,
        t: &Opts,
        start: Option<&str>,
        end: &str,
    ) -> Call<Vec<String>> {
        on_v0_2!(self, b => Ok(b
            .lakeflow_connect_source()
            .call_stream_partitions(s, o, table, t, start, end).await?
            .map_err(since_v0_2_0::error)))
    }
}
