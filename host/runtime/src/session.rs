//! A session: one connection's sandboxed connector instance, and the calls into it.
//!
//! The instance lives in its own [`Store`] with an empty WASI context (no files, no
//! environment, no stdio, no sockets), a memory limit, and a CPU clock. A trap ends the
//! call with an error naming the connector, the call and the limit; the instance is
//! dropped and the next call gets a fresh one, so the host and other sessions go on.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::lakeflow::connect::{http, log, types};
use crate::bindings::{Connector as Bindings, ConnectorPre};
use crate::connection::Connection;
use crate::http::{GateCounts, HttpGate};
use crate::limits::{CpuClock, LimitHit, MemoryLimit};
use crate::secrets::Redactor;
use crate::{CallError, ErrorKind, LoadedConnector};

pub use crate::bindings::lakeflow::connect::types::{
    ConnectorError, IngestionType, Metadata as TableMetadata,
};

/// The longest guest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

/// What a store holds for the host's side of the imports.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimit,
    cpu: CpuClock,
    gate: Arc<HttpGate>,
    redactor: Arc<Redactor>,
    connector: String,
    tokio: tokio::runtime::Handle,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for State {}

impl http::Host for State {
    fn send(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        self.cpu.enter_host();
        let result = self.tokio.block_on(self.gate.send(request));
        self.cpu.leave_host();
        result
    }
}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) {
        let mut message = one_line(&self.redactor.redact(&message));
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let c = &self.connector;
        match level {
            log::Level::Trace => tracing::trace!(target: "weir::guest", connector = %c, "{message}"),
            log::Level::Debug => tracing::debug!(target: "weir::guest", connector = %c, "{message}"),
            log::Level::Info => tracing::info!(target: "weir::guest", connector = %c, "{message}"),
            log::Level::Warn => tracing::warn!(target: "weir::guest", connector = %c, "{message}"),
            log::Level::Error => tracing::error!(target: "weir::guest", connector = %c, "{message}"),
        }
    }
}

/// A guest's log message as one line: line breaks and other control characters (terminal
/// escapes included) are escaped, so a guest cannot forge lines that look like the host's.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

struct Live {
    store: Store<State>,
    bindings: Bindings,
}

/// One page of a read, converted to Arrow.
#[derive(Debug)]
pub struct ReadPage {
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// Bytes that crossed the boundary for the rows.
    pub bytes: usize,
    pub end_offset: String,
    pub checkpointable: bool,
    pub counters: Vec<(String, u64)>,
}

/// A connector instantiated for one connection.
pub struct Session {
    connector: LoadedConnector,
    connection: Connection,
    pre: ConnectorPre<State>,
    gate: Arc<HttpGate>,
    redactor: Arc<Redactor>,
    tokio: tokio::runtime::Handle,
    guest_options: Vec<(String, String)>,
    live: Option<Live>,
}

impl Session {
    pub(crate) fn new(
        connector: LoadedConnector,
        connection: Connection,
        pre: ConnectorPre<State>,
        gate: Arc<HttpGate>,
        redactor: Arc<Redactor>,
        tokio: tokio::runtime::Handle,
    ) -> Session {
        let guest_options = connection.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Session { connector, connection, pre, gate, redactor, tokio, guest_options, live: None }
    }

    /// The connector this session runs.
    pub fn connector(&self) -> &LoadedConnector {
        &self.connector
    }

    /// What the gate has done so far.
    pub fn http_counts(&self) -> GateCounts {
        self.gate.counts()
    }

    /// The options the guest sees (never a secret).
    pub fn guest_options(&self) -> &[(String, String)] {
        &self.guest_options
    }

    fn instantiate(&mut self) -> Result<&mut Live, ErrorKind> {
        if self.live.is_none() {
            // An empty WASI context: no preopened directories, no environment, no args,
            // stdio connected to nothing, and every socket address refused.
            let mut wasi = WasiCtx::builder();
            wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
            let limits = &self.connection.limits;
            let state = State {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                memory: MemoryLimit { limit_bytes: limits.memory_mib << 20, hit: None },
                cpu: CpuClock::new(Duration::from_secs_f64(limits.call_seconds)),
                gate: self.gate.clone(),
                redactor: self.redactor.clone(),
                connector: self.connector.manifest.name.clone(),
                tokio: self.tokio.clone(),
            };
            let mut store = Store::new(self.pre.engine(), state);
            store.limiter(|s| &mut s.memory);
            store.epoch_deadline_callback(|ctx| match ctx.data().cpu.ticks_left() {
                Some(ticks) => Ok(wasmtime::UpdateDeadline::Continue(ticks)),
                None => Err(wasmtime::format_err!("{}", LimitHit::Cpu { limit: ctx.data().cpu.budget })),
            });
            let ticks = store.data().cpu.budget_ticks();
            store.set_epoch_deadline(ticks);
            let bindings = self.pre.instantiate(&mut store).map_err(|e| self.trap(e, &store))?;
            self.live = Some(Live { store, bindings });
        }
        self.live.as_mut().ok_or_else(|| ErrorKind::Trap("instance unavailable".into()))
    }

    fn trap(&self, e: wasmtime::Error, store: &Store<State>) -> ErrorKind {
        if let Some(hit) = &store.data().memory.hit {
            return ErrorKind::Limit(hit.to_string());
        }
        let text = format!("{e:?}");
        if text.contains("CPU limit of") {
            return ErrorKind::Limit(LimitHit::Cpu { limit: store.data().cpu.budget }.to_string());
        }
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            let what = match trap {
                wasmtime::Trap::StackOverflow => {
                    "the guest exhausted its call stack (runaway recursion)".to_string()
                }
                wasmtime::Trap::UnreachableCodeReached => {
                    "the guest panicked (unreachable code reached)".to_string()
                }
                other => format!("the guest trapped: {other}"),
            };
            return ErrorKind::Trap(what);
        }
        ErrorKind::Trap(self.redactor.redact(&format!("{e:#}")).into_owned())
    }

    /// Runs one call with a fresh CPU budget; a trap drops the instance.
    fn call<R>(
        &mut self,
        name: &'static str,
        table: Option<&str>,
        f: impl FnOnce(
            &Bindings,
            &mut Store<State>,
            &Vec<(String, String)>,
        ) -> wasmtime::Result<Result<R, ConnectorError>>,
    ) -> Result<R, CallError> {
        let connector = self.connector.manifest.name.clone();
        let error = |kind| CallError { connector, call: name, table: table.map(str::to_string), kind };
        let options = std::mem::take(&mut self.guest_options);
        let outcome = match self.instantiate() {
            Err(kind) => Err(kind),
            Ok(live) => {
                live.store.data_mut().cpu.start_call();
                let ticks = live.store.data().cpu.budget_ticks();
                live.store.set_epoch_deadline(ticks);
                match f(&live.bindings, &mut live.store, &options) {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(ErrorKind::Connector(self.redact_connector_error(e))),
                    Err(e) => {
                        let store = &self.live.as_ref().map(|l| &l.store);
                        let kind = match store {
                            Some(s) => self.trap(e, s),
                            None => ErrorKind::Trap(e.to_string()),
                        };
                        self.live = None;
                        Err(kind)
                    }
                }
            }
        };
        self.guest_options = options;
        outcome.map_err(error)
    }

    fn redact_connector_error(&self, e: ConnectorError) -> ConnectorError {
        let r = |m: String| self.redactor.redact(&m).into_owned();
        match e {
            ConnectorError::UnknownTable(m) => ConnectorError::UnknownTable(r(m)),
            ConnectorError::InvalidOptions(m) => ConnectorError::InvalidOptions(r(m)),
            ConnectorError::Auth(m) => ConnectorError::Auth(r(m)),
            ConnectorError::RateLimited(m) => ConnectorError::RateLimited(r(m)),
            ConnectorError::Source(s) => {
                ConnectorError::Source(types::SourceError { status: s.status, message: r(s.message) })
            }
            ConnectorError::Internal(m) => ConnectorError::Internal(r(m)),
        }
    }

    /// Upstream `list_tables`.
    pub fn list_tables(&mut self) -> Result<Vec<String>, CallError> {
        self.call("list-tables", None, |b, s, o| b.lakeflow_connect_source().call_list_tables(s, o))
    }

    /// The table's Spark JSON schema string.
    pub fn table_schema(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<String, CallError> {
        self.call("table-schema", Some(table), |b, s, o| {
            b.lakeflow_connect_source().call_table_schema(s, o, table, &table_options.to_vec())
        })
    }

    /// The table's schema as Arrow, converted from the Spark JSON schema.
    pub fn arrow_schema(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<SchemaRef, CallError> {
        let json = self.table_schema(table, table_options)?;
        weir_convert::arrow_schema(&json)
            .map(Arc::new)
            .map_err(|e| self.host_error("table-schema", table, e.to_string()))
    }

    /// Upstream `read_table_metadata`.
    pub fn table_metadata(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<TableMetadata, CallError> {
        self.call("table-metadata", Some(table), |b, s, o| {
            b.lakeflow_connect_source().call_table_metadata(s, o, table, &table_options.to_vec())
        })
    }

    /// One page of `read-table`, converted to Arrow by `converter`.
    pub fn read_table(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let page = self.call("read-table", Some(table), |b, s, o| {
            b.lakeflow_connect_source().call_read_table(s, o, table, &table_options.to_vec(), start_offset)
        })?;
        self.convert("read-table", table, page, converter)
    }

    /// One page of `read-deletes` (tombstones), converted to Arrow by `converter`.
    pub fn read_deletes(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let page = self.call("read-deletes", Some(table), |b, s, o| {
            b.lakeflow_connect_source().call_read_deletes(s, o, table, &table_options.to_vec(), start_offset)
        })?;
        self.convert("read-deletes", table, page, converter)
    }

    fn convert(
        &self,
        call: &'static str,
        table: &str,
        page: types::Page,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let cap = (self.connection.limits.page_mib as usize) << 20;
        let (batches, bytes) = match &page.rows {
            types::Rows::JsonLines(text) if text.len() > cap => {
                return Err(self.limit_error(call, table, text.len(), cap));
            }
            types::Rows::ArrowIpc(bytes) if bytes.len() > cap => {
                return Err(self.limit_error(call, table, bytes.len(), cap));
            }
            types::Rows::JsonLines(text) => {
                (converter.json_lines(text.as_bytes()).map(|b| vec![b]), text.len())
            }
            types::Rows::ArrowIpc(bytes) => (converter.arrow_ipc(bytes), bytes.len()),
        };
        let batches = batches
            .map_err(|e| self.host_error(call, table, self.redactor.redact(&e.to_string()).into_owned()))?;
        if serde_json::from_str::<serde_json::Value>(&page.end_offset).map_or(true, |v| !v.is_object()) {
            return Err(self.host_error(
                call,
                table,
                format!("end offset {:?} is not a JSON object", page.end_offset),
            ));
        }
        Ok(ReadPage {
            rows: batches.iter().map(RecordBatch::num_rows).sum(),
            batches,
            bytes,
            end_offset: page.end_offset,
            checkpointable: page.checkpointable,
            counters: page.counters,
        })
    }

    fn limit_error(&self, call: &'static str, table: &str, size: usize, cap: usize) -> CallError {
        CallError {
            connector: self.connector.manifest.name.clone(),
            call,
            table: Some(table.to_string()),
            kind: ErrorKind::Limit(format!(
                "page of {} MiB exceeds the page limit of {} MiB; lower the page size or raise limits.page_mib",
                size >> 20,
                cap >> 20
            )),
        }
    }

    fn host_error(&self, call: &'static str, table: &str, message: String) -> CallError {
        CallError {
            connector: self.connector.manifest.name.clone(),
            call,
            table: Some(table.to_string()),
            kind: ErrorKind::Output(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn guest_log_lines_cannot_break_or_escape_the_line() {
        assert_eq!(
            one_line("a\nINFO weir::http: fake\r\x1b[2J\tb"),
            "a\\nINFO weir::http: fake\\r\\u{1b}[2J\tb"
        );
        assert_eq!(one_line("plain ünïcode"), "plain ünïcode");
    }
}
