//! A session: one connection's sandboxed connector instance, and the calls into it.
//!
//! The instance lives in its own [`Store`] with an empty WASI context (no files, no
//! environment, no stdio, no sockets), a memory limit, and two clocks per call: guest CPU and
//! wall time. A trap ends the call with an error naming the connector, the call and the limit;
//! the instance is dropped and the next call gets a fresh one, so the host and other sessions
//! go on.
//!
//! Calls run asynchronously inside the session's own executor (current-thread, on the calling
//! thread), so that a guest blocked in a host call (a WASI sleep or poll, or `http.send` waiting
//! on pacing) is still stopped by the call's wall-clock limit: the session drops the call when
//! the limit passes. From the outside every call blocks; do not call them from inside an async
//! task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{Call, Instance, Pre};
use crate::connection::Connection;
use crate::contract::{
    Capability, ContractVersion, HttpError, HttpRequest, HttpResponse, LogLevel, Page, Rows, TableMetadata,
};
use crate::http::{GateCounts, HttpGate};
use crate::limits::{CallClock, LimitHit, MemoryLimit};
use crate::read::{Stream, ends_read};
use crate::secrets::Redactor;
use crate::{CallError, ErrorKind, LoadedConnector};

/// The longest guest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

/// Guest log lines kept per second and session; the rest are counted and reported.
pub const LOG_LINES_PER_SECOND: u32 = 100;

/// What a store holds for the host's side of the imports.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimit,
    clock: CallClock,
    gate: Arc<HttpGate>,
    redactor: Arc<Redactor>,
    connector: String,
    log: LogBudget,
    /// A bound the host found during a host call, which ends the call.
    host_hit: Option<LimitHit>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl State {
    /// Serves the guest's `http.send`; host time does not count against the guest's CPU. An
    /// error ends the call (a bound the source broke, recorded for the session to report).
    pub(crate) async fn http_send(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, HttpError>> {
        self.clock.enter_host();
        let result = self.gate.send(request).await;
        self.clock.leave_host();
        result.map_err(|hit| {
            let error = wasmtime::format_err!("{hit}");
            self.host_hit = Some(hit);
            error
        })
    }

    /// Serves the guest's `log`: redacted, one line, cut to length, and rate-limited.
    pub(crate) fn guest_log(&mut self, level: LogLevel, message: String) {
        if !self.log.admit() {
            return;
        }
        let mut message = crate::terminal::escape(&self.redactor.redact(&message)).into_owned();
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
            LogLevel::Trace => tracing::trace!(target: "weir::guest", connector = %c, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "weir::guest", connector = %c, "{message}"),
            LogLevel::Info => tracing::info!(target: "weir::guest", connector = %c, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "weir::guest", connector = %c, "{message}"),
            LogLevel::Error => tracing::error!(target: "weir::guest", connector = %c, "{message}"),
        }
    }

    /// Says how many log lines were dropped, if any, and starts counting again.
    fn report_dropped_logs(&mut self) {
        let dropped = std::mem::take(&mut self.log.dropped);
        if dropped > 0 {
            tracing::warn!(
                target: "weir::guest",
                connector = %self.connector,
                "dropped {dropped} log line(s) of the connector: more than {LOG_LINES_PER_SECOND} per second"
            );
        }
    }
}

/// Lines a guest may log: [`LOG_LINES_PER_SECOND`] per one-second window.
#[derive(Debug)]
struct LogBudget {
    window: Instant,
    used: u32,
    dropped: u64,
}

impl LogBudget {
    fn admit(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
        }
        if self.used < LOG_LINES_PER_SECOND {
            self.used += 1;
            true
        } else {
            self.dropped = self.dropped.saturating_add(1);
            false
        }
    }
}

struct Live {
    store: Store<State>,
    instance: Instance,
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
    /// This page ended the read: its end offset equals its start offset.
    pub done: bool,
}

/// A table's address: its namespace path (empty at the root) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct TableAddress {
    pub namespace: Vec<String>,
    pub name: String,
}

/// The largest end offset a page may carry, in bytes: an offset is stored in every commit.
pub const MAX_OFFSET_BYTES: usize = 64 << 10;

/// Counters one page may carry.
pub const MAX_PAGE_COUNTERS: usize = 1000;

/// Whether any buffer of the batch (values, offsets, children) holds a secret or its encoding.
fn holds_secret(redactor: &Redactor, batch: &RecordBatch) -> bool {
    fn data_holds(redactor: &Redactor, data: &arrow_data::ArrayData) -> bool {
        data.buffers().iter().any(|b| redactor.finds_secret(b.as_slice()))
            || data.child_data().iter().any(|c| data_holds(redactor, c))
    }
    batch.columns().iter().any(|c| data_holds(redactor, &c.to_data()))
}

/// Namespaces [`Session::all_tables`] walks at most, and how deep.
pub const MAX_NAMESPACES: usize = 10_000;
/// See [`MAX_NAMESPACES`].
pub const MAX_NAMESPACE_DEPTH: usize = 8;

/// A connector instantiated for one connection.
pub struct Session {
    connector: LoadedConnector,
    connection: Connection,
    gate: Arc<HttpGate>,
    redactor: Arc<Redactor>,
    /// This session's own executor (current-thread): the calls' requests run on the caller's thread.
    tokio: tokio::runtime::Runtime,
    guest_options: Vec<(String, String)>,
    live: Option<Live>,
}

impl Session {
    pub(crate) fn new(
        connector: LoadedConnector,
        connection: Connection,
        gate: Arc<HttpGate>,
        redactor: Arc<Redactor>,
        tokio: tokio::runtime::Runtime,
    ) -> Session {
        let guest_options = connection.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Session { connector, connection, gate, redactor, tokio, guest_options, live: None }
    }

    /// The connector this session runs.
    pub fn connector(&self) -> &LoadedConnector {
        &self.connector
    }

    /// The connection this session serves.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The contract version the component speaks.
    pub fn contract(&self) -> ContractVersion {
        self.connector.manifest.contract
    }

    /// Whether the component declares `capability`.
    pub fn supports(&self, capability: Capability) -> bool {
        self.connector.manifest.has(capability)
    }

    /// What the gate has done so far.
    pub fn http_counts(&self) -> GateCounts {
        self.gate.counts()
    }

    /// The options the guest sees (never a secret).
    pub fn guest_options(&self) -> &[(String, String)] {
        &self.guest_options
    }

    /// A fresh instance: an empty WASI context, the memory limit and the call clocks.
    fn instantiate(&self) -> Result<Live, ErrorKind> {
        // An empty WASI context: no preopened directories, no environment, no args,
        // stdio connected to nothing, and every socket address refused.
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        if let Some(tape) = &self.connection.tape {
            wasi.wall_clock(crate::http::tape::StillClock(tape.clock()));
        }
        let limits = &self.connection.limits;
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryLimit::new(limits.memory_mib << 20),
            clock: CallClock::new(
                Duration::from_secs_f64(limits.call_seconds),
                Duration::from_secs_f64(limits.call_wall_seconds),
            ),
            gate: self.gate.clone(),
            redactor: self.redactor.clone(),
            connector: self.connector.manifest.name.clone(),
            log: LogBudget { window: Instant::now(), used: 0, dropped: 0 },
            host_hit: None,
        };
        let pre: &Pre = &self.connector.pre;
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_callback(|mut ctx| match ctx.data_mut().clock.check() {
            Ok(ticks) => Ok(wasmtime::UpdateDeadline::Continue(ticks)),
            Err(hit) => Err(wasmtime::format_err!("{hit}")),
        });
        store.data_mut().clock.start_call();
        let ticks = store.data().clock.budget_ticks();
        store.set_epoch_deadline(ticks);
        let wall = store.data().clock.wall;
        let instantiated =
            self.tokio.block_on(async { tokio::time::timeout(wall, pre.instantiate(&mut store)).await });
        match instantiated {
            Ok(Ok(instance)) => Ok(Live { store, instance }),
            Ok(Err(e)) => Err(trap(e, store.data(), &self.redactor)),
            Err(_) => Err(ErrorKind::Limit(LimitHit::WallClock { limit: wall })),
        }
    }
}

/// What ended a call that trapped: a limit recorded when it was hit, or the guest's trap.
fn trap(e: wasmtime::Error, state: &State, redactor: &Redactor) -> ErrorKind {
    {
        let hit =
            state.memory.hit.clone().or_else(|| state.clock.hit.clone()).or_else(|| state.host_hit.clone());
        if let Some(hit) = hit {
            return ErrorKind::Limit(hit);
        }
        if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            let what = match trap {
                wasmtime::Trap::StackOverflow => {
                    "the guest exhausted its call stack (runaway recursion)".to_string()
                }
                wasmtime::Trap::UnreachableCodeReached => {
                    "the guest panicked (unreachable code reached)".to_string()
                }
                wasmtime::Trap::MemoryOutOfBounds => "the guest accessed memory out of bounds (in a Rust \
                     guest this is most often a stack overflow: its stack lives in linear memory)"
                    .to_string(),
                other => format!("the guest trapped: {other}"),
            };
            return ErrorKind::Trap(what);
        }
        ErrorKind::Trap(redactor.redact(&format!("{e:#}")).into_owned())
    }
}

impl Session {
    /// Runs one call with fresh CPU and wall-clock budgets; a trap drops the instance.
    fn call<R>(
        &mut self,
        name: &'static str,
        table: Option<&str>,
        f: impl AsyncFnOnce(&Instance, &mut Store<State>, &Vec<(String, String)>) -> Call<R>,
    ) -> Result<R, CallError> {
        let error = |kind| CallError {
            connector: self.connector.manifest.name.clone(),
            call: name,
            table: table.map(str::to_string),
            kind,
        };
        if self.live.is_none() {
            let live = self.instantiate().map_err(error)?;
            self.live = Some(live);
        }
        let Some(live) = self.live.as_mut() else {
            return Err(error(ErrorKind::Trap("instance unavailable".into())));
        };
        let state = live.store.data_mut();
        state.clock.start_call();
        state.host_hit = None;
        let (ticks, wall) = (state.clock.budget_ticks(), state.clock.wall);
        live.store.set_epoch_deadline(ticks);
        let options = &self.guest_options;
        let outcome = self.tokio.block_on(async {
            tokio::time::timeout(wall, f(&live.instance, &mut live.store, options)).await
        });
        live.store.data_mut().report_dropped_logs();
        let kind = match outcome {
            Ok(Ok(Ok(r))) => return Ok(r),
            Ok(Ok(Err(e))) => {
                let redactor = &self.redactor;
                ErrorKind::Connector(e.map_messages(|m| redactor.redact(&m).into_owned()))
            }
            Ok(Err(e)) => {
                let kind = trap(e, live.store.data(), &self.redactor);
                self.live = None;
                kind
            }
            Err(_) => {
                self.live = None;
                ErrorKind::Limit(LimitHit::WallClock { limit: wall })
            }
        };
        Err(error(kind))
    }

    /// Refuses a call that the component's contract or manifest does not offer.
    fn require(
        &self,
        capability: Capability,
        call: &'static str,
        table: Option<&str>,
    ) -> Result<(), CallError> {
        if self.supports(capability) {
            return Ok(());
        }
        Err(CallError {
            connector: self.connector.manifest.name.clone(),
            call,
            table: table.map(str::to_string),
            kind: ErrorKind::Unsupported(format!(
                "the connector does not declare the {:?} capability (contract {})",
                capability.name(),
                self.contract()
            )),
        })
    }

    /// Upstream `list_tables`: the root-level tables.
    pub fn list_tables(&mut self) -> Result<Vec<String>, CallError> {
        self.call("list-tables", None, async |i, s, o| i.list_tables(s, o).await)
    }

    /// Upstream `list_namespaces` (capability `namespaces`).
    pub fn list_namespaces(&mut self, prefix: &[String]) -> Result<Vec<Vec<String>>, CallError> {
        self.require(Capability::Namespaces, "list-namespaces", None)?;
        self.call("list-namespaces", None, async |i, s, o| i.list_namespaces(s, o, &prefix.to_vec()).await)
    }

    /// Upstream `list_tables_in_namespace` (capability `namespaces`).
    pub fn list_tables_in_namespace(&mut self, namespace: &[String]) -> Result<Vec<String>, CallError> {
        self.require(Capability::Namespaces, "list-tables-in-namespace", None)?;
        self.call("list-tables-in-namespace", None, async |i, s, o| {
            i.list_tables_in_namespace(s, o, &namespace.to_vec()).await
        })
    }

    /// Every table the connection can reach: the root's, then, for a connector with namespaces,
    /// those of every namespace, walked breadth first (at most [`MAX_NAMESPACES`] namespaces,
    /// [`MAX_NAMESPACE_DEPTH`] deep).
    pub fn all_tables(&mut self) -> Result<Vec<TableAddress>, CallError> {
        let root = |name| TableAddress { namespace: Vec::new(), name };
        if !self.supports(Capability::Namespaces) {
            return Ok(self.list_tables()?.into_iter().map(root).collect());
        }
        let mut out: Vec<TableAddress> = self.list_tables_in_namespace(&[])?.into_iter().map(root).collect();
        let mut queue = std::collections::VecDeque::from(self.list_namespaces(&[])?);
        let mut seen = 0usize;
        while let Some(namespace) = queue.pop_front() {
            seen += 1;
            if seen > MAX_NAMESPACES || namespace.len() > MAX_NAMESPACE_DEPTH {
                return Err(CallError {
                    connector: self.connector.manifest.name.clone(),
                    call: "list-namespaces",
                    table: None,
                    kind: ErrorKind::Output(format!(
                        "more than {MAX_NAMESPACES} namespaces, or deeper than {MAX_NAMESPACE_DEPTH}: \
                         list the tables of one namespace instead"
                    )),
                });
            }
            for name in self.list_tables_in_namespace(&namespace)? {
                out.push(TableAddress { namespace: namespace.clone(), name });
            }
            queue.extend(self.list_namespaces(&namespace)?);
        }
        Ok(out)
    }

    /// The table's Spark JSON schema string.
    pub fn table_schema(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<String, CallError> {
        self.call("table-schema", Some(table), async |i, s, o| {
            i.table_schema(s, o, table, &table_options.to_vec()).await
        })
    }

    /// The table's schema as Arrow, converted from the Spark JSON schema.
    pub fn arrow_schema(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<SchemaRef, CallError> {
        let json = self.table_schema(table, table_options)?;
        weir_convert::arrow_schema_with_limits(&json, &self.converter_limits())
            .map(Arc::new)
            .map_err(|e| self.convert_error("table-schema", table, e))
    }

    /// The bounds every page and schema of this connection is converted under.
    pub fn converter_limits(&self) -> weir_convert::Limits {
        weir_convert::Limits::for_page((self.connection.limits.page_mib << 20) as usize)
    }

    /// A converter for `schema` under this connection's bounds.
    pub fn converter(&self, schema: SchemaRef) -> weir_convert::Converter {
        weir_convert::Converter::with_limits(schema, self.converter_limits())
    }

    fn convert_error(&self, call: &'static str, table: &str, e: weir_convert::ConvertError) -> CallError {
        self.page_check().convert_error(call, table, e)
    }

    /// Upstream `read_table_metadata`.
    pub fn table_metadata(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<TableMetadata, CallError> {
        self.call("table-metadata", Some(table), async |i, s, o| {
            i.table_metadata(s, o, table, &table_options.to_vec()).await
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
        self.read_checked(&Stream::Table, table, table_options, start_offset, converter)
    }

    /// One page of `read-deletes` (tombstones), converted to Arrow by `converter`.
    pub fn read_deletes(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        self.read_checked(&Stream::Deletes, table, table_options, start_offset, converter)
    }

    /// Upstream `get_partitions` (capability `partitions`): opaque JSON descriptors.
    pub fn list_partitions(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
    ) -> Result<Vec<String>, CallError> {
        self.require(Capability::Partitions, "list-partitions", Some(table))?;
        let partitions = self.call("list-partitions", Some(table), async |i, s, o| {
            i.list_partitions(s, o, table, &table_options.to_vec()).await
        })?;
        self.check_descriptors("list-partitions", table, partitions)
    }

    /// One page of a partition (capability `partitions`), converted by `converter`.
    pub fn read_partition(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        partition: &str,
        start_offset: Option<&str>,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let stream = Stream::Partition(partition.to_string());
        self.read_checked(&stream, table, table_options, start_offset, converter)
    }

    /// One page of `stream`, read in lock step, then converted and checked.
    fn read_checked(
        &mut self,
        stream: &Stream,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let page = self.read_raw(stream, table, table_options, start_offset)?;
        let done = ends_read(start_offset, &page);
        self.page_check().finish(stream, table, done, page, converter)
    }

    /// One page of `stream` as the connector returned it: neither converted nor checked (see
    /// [`PageCheck::finish`]).
    pub(crate) fn read_raw(
        &mut self,
        stream: &Stream,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
    ) -> Result<Page, CallError> {
        let options = table_options.to_vec();
        match stream {
            Stream::Table => self.call(stream.call(), Some(table), async |i, s, o| {
                i.read_table(s, o, table, &options, start_offset).await
            }),
            Stream::Deletes => self.call(stream.call(), Some(table), async |i, s, o| {
                i.read_deletes(s, o, table, &options, start_offset).await
            }),
            Stream::Partition(partition) => {
                self.require(Capability::Partitions, stream.call(), Some(table))?;
                self.call(stream.call(), Some(table), async |i, s, o| {
                    i.read_partition(s, o, table, &options, partition, start_offset).await
                })
            }
        }
    }

    /// What checks this session's pages, wherever they are converted.
    pub(crate) fn page_check(&self) -> PageCheck {
        PageCheck {
            connector: self.connector.manifest.name.clone(),
            redactor: self.redactor.clone(),
            page_cap: self.connection.limits.page_mib << 20,
        }
    }

    /// Upstream `latest_offset` (capability `partitioned-stream`).
    pub fn latest_offset(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
    ) -> Result<String, CallError> {
        self.require(Capability::PartitionedStream, "latest-offset", Some(table))?;
        let offset = self.call("latest-offset", Some(table), async |i, s, o| {
            i.latest_offset(s, o, table, &table_options.to_vec(), start_offset).await
        })?;
        if !crate::read::is_offset(&offset) {
            return Err(self.host_error(
                "latest-offset",
                table,
                format!("offset {offset:?} is not a JSON object"),
            ));
        }
        Ok(offset)
    }

    /// Upstream `get_partitions(start, end)` (capability `partitioned-stream`).
    pub fn stream_partitions(
        &mut self,
        table: &str,
        table_options: &[(String, String)],
        start_offset: Option<&str>,
        end_offset: &str,
    ) -> Result<Vec<String>, CallError> {
        self.require(Capability::PartitionedStream, "stream-partitions", Some(table))?;
        let partitions = self.call("stream-partitions", Some(table), async |i, s, o| {
            i.stream_partitions(s, o, table, &table_options.to_vec(), start_offset, end_offset).await
        })?;
        self.check_descriptors("stream-partitions", table, partitions)
    }

    /// Partition descriptors must be JSON objects: they are keys of offsets and cross to Spark.
    fn check_descriptors(
        &self,
        call: &'static str,
        table: &str,
        partitions: Vec<String>,
    ) -> Result<Vec<String>, CallError> {
        if let Some(bad) = partitions.iter().find(|p| !crate::read::is_offset(p)) {
            return Err(self.host_error(call, table, format!("partition {bad:?} is not a JSON object")));
        }
        let unique: std::collections::BTreeSet<&String> = partitions.iter().collect();
        if unique.len() != partitions.len() {
            return Err(self.host_error(call, table, "the same partition is listed twice".into()));
        }
        Ok(partitions)
    }

    fn host_error(&self, call: &'static str, table: &str, message: String) -> CallError {
        self.page_check().host_error(call, table, message)
    }
}

/// The checks every page passes before a sink sees it, apart from the session that read it: a
/// page read ahead on another thread (see [`crate::Pages::read_ahead`]) is checked where it is
/// converted.
#[derive(Clone)]
pub(crate) struct PageCheck {
    connector: String,
    redactor: Arc<Redactor>,
    /// The largest page in bytes (`limits.page_mib`).
    page_cap: u64,
}

impl PageCheck {
    /// Converts a page and checks it before any sink sees it: its size, its end offset, its
    /// counters, and that it carries no secret. `done`: the page ends its read ([`ends_read`]).
    pub(crate) fn finish(
        &self,
        stream: &Stream,
        table: &str,
        done: bool,
        page: Page,
        converter: &mut weir_convert::Converter,
    ) -> Result<ReadPage, CallError> {
        let call = stream.call();
        let cap = self.page_cap;
        if page.rows.len() as u64 > cap {
            return Err(CallError {
                connector: self.connector.clone(),
                call,
                table: Some(table.to_string()),
                kind: ErrorKind::Limit(LimitHit::PageBytes { size: page.rows.len() as u64, limit: cap }),
            });
        }
        let bytes = page.rows.len();
        let batches = match &page.rows {
            Rows::JsonLines(text) => converter.json_lines(text.as_bytes()).map(|b| vec![b]),
            Rows::ArrowIpc(bytes) => converter.arrow_ipc(bytes),
        };
        let batches = batches.map_err(|e| self.convert_error(call, table, e))?;
        if page.end_offset.len() > MAX_OFFSET_BYTES {
            return Err(self.host_error(
                call,
                table,
                format!(
                    "an end offset of {} bytes is larger than the {MAX_OFFSET_BYTES} bytes an offset may take \
                     (it is stored in every commit)",
                    page.end_offset.len()
                ),
            ));
        }
        if !crate::read::is_offset(&page.end_offset) {
            return Err(self.host_error(
                call,
                table,
                format!("end offset {:?} is not a JSON object", crate::terminal::escape(&page.end_offset)),
            ));
        }
        if page.counters.len() > MAX_PAGE_COUNTERS {
            return Err(self.host_error(
                call,
                table,
                format!(
                    "{} counters in one page; a page may carry at most {MAX_PAGE_COUNTERS}",
                    page.counters.len()
                ),
            ));
        }
        // The guest never holds a secret, but a source can echo one back in some encoding that
        // the guest decodes: a page that carries one is refused before any sink sees it.
        if self.redactor.finds_secret(page.end_offset.as_bytes())
            || page.counters.iter().any(|(name, _)| self.redactor.finds_secret(name.as_bytes()))
            || batches.iter().any(|b| holds_secret(&self.redactor, b))
        {
            return Err(CallError {
                connector: self.connector.clone(),
                call,
                table: Some(table.to_string()),
                kind: ErrorKind::Secret,
            });
        }
        Ok(ReadPage {
            rows: batches.iter().map(RecordBatch::num_rows).sum(),
            batches,
            bytes,
            done,
            end_offset: page.end_offset,
            checkpointable: page.checkpointable,
            counters: page.counters,
        })
    }

    /// A conversion failure as the call's error: a bound hit, or output the host cannot use.
    fn convert_error(&self, call: &'static str, table: &str, e: weir_convert::ConvertError) -> CallError {
        match e {
            weir_convert::ConvertError::LimitExceeded { limit, max, what } => CallError {
                connector: self.connector.clone(),
                call,
                table: Some(table.to_string()),
                kind: ErrorKind::Limit(LimitHit::Convert { limit, max, what }),
            },
            other => self.host_error(call, table, self.redactor.redact(&other.to_string()).into_owned()),
        }
    }

    fn host_error(&self, call: &'static str, table: &str, message: String) -> CallError {
        CallError {
            connector: self.connector.clone(),
            call,
            table: Some(table.to_string()),
            kind: ErrorKind::Output(message),
        }
    }
}
