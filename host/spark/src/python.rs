//! The Python module `pyspark_lakeflow_connect._native`: the plan and its reads as Python
//! objects, batches as `pyarrow.RecordBatch` through the Arrow C stream interface (no copy), and
//! errors as the package's exception classes. Every call into a connector releases the GIL.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_pyarrow::{PyArrowType, ToPyArrow};
use arrow_schema::Schema;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use weir_runtime::contract::{ConnectorError, IngestionType};
use weir_runtime::{Capability, ErrorKind, Stream};

use crate::options;
use crate::plan::{Component, Plan, PlanError, Wire};
use crate::read::{Batches, Target, micro_batch};

pyo3::create_exception!(
    pyspark_lakeflow_connect,
    LakeflowConnectError,
    PyException,
    "A read through lakeflow_connect failed; the message names the connector, the call and the table."
);
pyo3::create_exception!(
    pyspark_lakeflow_connect,
    OptionsError,
    LakeflowConnectError,
    "A bad option, connection or connector reference."
);
pyo3::create_exception!(
    pyspark_lakeflow_connect,
    UnknownTableError,
    LakeflowConnectError,
    "The source has no such table."
);
pyo3::create_exception!(
    pyspark_lakeflow_connect,
    AuthenticationError,
    LakeflowConnectError,
    "The source refused the connection's credentials."
);
pyo3::create_exception!(
    pyspark_lakeflow_connect,
    LimitError,
    LakeflowConnectError,
    "A rate limit or a sandbox limit stopped the call."
);
pyo3::create_exception!(
    pyspark_lakeflow_connect,
    SourceError,
    LakeflowConnectError,
    "The source or the connector failed the call."
);

/// The exception class for an error, and its message (already redacted by the runtime).
fn to_py(error: PlanError) -> PyErr {
    let message = error.to_string();
    match &error {
        PlanError::Options(_) => OptionsError::new_err(message),
        PlanError::Runtime(_) => LakeflowConnectError::new_err(message),
        PlanError::Call(call) => match &call.kind {
            ErrorKind::Connector(ConnectorError::Auth(_)) => AuthenticationError::new_err(message),
            ErrorKind::Connector(ConnectorError::UnknownTable(_)) => UnknownTableError::new_err(message),
            ErrorKind::Connector(ConnectorError::InvalidOptions(_)) => OptionsError::new_err(message),
            ErrorKind::Connector(ConnectorError::RateLimited(_))
            | ErrorKind::Limit(_)
            | ErrorKind::Read(_) => LimitError::new_err(message),
            _ => SourceError::new_err(message),
        },
    }
}

/// A resolved read: configuration only, picklable.
#[pyclass(name = "Plan", module = "pyspark_lakeflow_connect._native", frozen)]
pub struct PyPlan {
    plan: Arc<Plan>,
}

impl PyPlan {
    fn target(spark_json: &str, schema: PyArrowType<Schema>) -> PyResult<Target> {
        Target::new(spark_json, schema.0).map_err(to_py)
    }

    fn stream(&self, partition: Option<String>) -> Stream {
        match partition {
            Some(descriptor) => Stream::Partition(descriptor),
            None if self.plan.wire.delete_flow => Stream::Deletes,
            None => Stream::Table,
        }
    }

    /// Runs `f` on the plan with the GIL released.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Plan) -> Result<T, PlanError> + Send,
    ) -> PyResult<T> {
        let plan = self.plan.clone();
        py.detach(move || f(&plan)).map_err(to_py)
    }
}

#[pymethods]
impl PyPlan {
    /// Resolves a read's options (as Spark passes them) on the driver.
    #[new]
    fn new(py: Python<'_>, options: BTreeMap<String, String>) -> PyResult<PyPlan> {
        let plan = py.detach(move || Plan::new(&options)).map_err(to_py)?;
        Ok(PyPlan { plan: Arc::new(plan) })
    }

    /// Rebuilds a pickled plan in a worker.
    #[staticmethod]
    fn _restore(py: Python<'_>, wire: &str, component: Option<Vec<u8>>) -> PyResult<PyPlan> {
        let mut wire: Wire =
            serde_json::from_str(wire).map_err(|e| OptionsError::new_err(format!("a damaged plan: {e}")))?;
        if let (Component::Bytes { bytes, .. }, Some(component)) = (&mut wire.component, component) {
            *bytes = component;
        }
        let plan = py.detach(move || Plan::from_wire(wire)).map_err(to_py)?;
        Ok(PyPlan { plan: Arc::new(plan) })
    }

    /// Pickles the configuration: the wire form, with a path's component bytes apart.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let mut wire = slf.get().plan.wire.clone();
        let component = match &mut wire.component {
            Component::Bytes { bytes, .. } => Some(PyBytes::new(py, &std::mem::take(bytes))),
            Component::Bundled(_) => None,
        };
        let text = serde_json::to_string(&wire).map_err(|e| LakeflowConnectError::new_err(e.to_string()))?;
        let restore = slf.get_type().getattr("_restore")?;
        (restore, (text, component)).into_pyobject(py)
    }

    fn __repr__(&self) -> String {
        self.plan.describe()
    }

    /// The connector's name.
    #[getter]
    fn connector(&self) -> String {
        self.plan.connector_name().to_string()
    }

    /// The names of the connector's secret parameters, which the data source masks in its options.
    #[getter]
    fn secret_parameters(&self) -> Vec<String> {
        self.plan.connector.manifest.parameters.iter().filter(|p| p.secret).map(|p| p.name.clone()).collect()
    }

    /// The table the read names, if any.
    #[getter]
    fn table(&self) -> Option<String> {
        self.plan.wire.table.clone()
    }

    /// Whether the table is one of the upstream virtual tables.
    #[getter]
    fn is_virtual(&self) -> bool {
        self.plan.is_virtual()
    }

    /// Whether the read follows the table's deletes (`isDeleteFlow`).
    #[getter]
    fn delete_flow(&self) -> bool {
        self.plan.wire.delete_flow
    }

    /// Whether a batch read has one Spark partition per connector partition.
    #[getter]
    fn partitioned(&self) -> bool {
        self.plan.supports(Capability::Partitions) && !self.plan.wire.delete_flow && !self.plan.is_virtual()
    }

    /// Whether a stream uses the connector's partitioned stream (never for deletes, which
    /// follow `read-deletes` in order).
    #[getter]
    fn partitioned_stream(&self) -> bool {
        self.plan.supports(Capability::PartitionedStream)
            && !self.plan.wire.delete_flow
            && !self.plan.is_virtual()
    }

    /// The table's schema, as Spark's JSON.
    fn schema_json(&self, py: Python<'_>) -> PyResult<String> {
        self.call(py, |plan| {
            let table = plan.table()?;
            let mut session = plan.session(1.0)?;
            let json = session.table_schema(table, &plan.wire.table_options)?;
            weir_convert::arrow_schema(&json).map_err(|e| {
                PlanError::Options(format!(
                    "connector {}: table {table:?} has an unusable schema: {e}",
                    plan.connector_name()
                ))
            })?;
            Ok(json)
        })
    }

    /// The connector's partitions of the table (batch reads).
    fn partitions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.call(py, |plan| {
            Ok(plan.session(1.0)?.list_partitions(plan.table()?, &plan.wire.table_options)?)
        })
    }

    /// Reads the whole table, or one partition, as `pyarrow.RecordBatch`es in `schema`, with
    /// `share` of the connector's rate budgets.
    fn read(
        &self,
        py: Python<'_>,
        partition: Option<String>,
        spark_json: &str,
        schema: PyArrowType<Schema>,
        share: f64,
    ) -> PyResult<PyBatches> {
        let target = Self::target(spark_json, schema)?;
        let stream = self.stream(partition);
        let plan = self.plan.clone();
        let batches = py.detach(move || Batches::start(plan, stream, target, share)).map_err(to_py)?;
        Ok(PyBatches { batches: std::sync::Mutex::new(batches) })
    }

    /// One micro-batch from `start` (None: the beginning): its batches, its end offset and
    /// whether the read caught up. With `until`, a replay that stops at that offset.
    fn read_micro_batch<'py>(
        &self,
        py: Python<'py>,
        start: Option<String>,
        spark_json: &str,
        schema: PyArrowType<Schema>,
        until: Option<String>,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, Option<String>, bool)> {
        let target = Self::target(spark_json, schema)?;
        let stream = self.stream(None);
        let read = self.call(py, move |plan| {
            micro_batch(plan, stream, &target, start, plan.micro_batch_bounds(), until.as_deref())
        })?;
        let batches = read.batches.iter().map(|b| b.to_pyarrow(py)).collect::<PyResult<Vec<_>>>()?;
        Ok((batches, read.end, read.done))
    }

    /// The connector's latest offset of a partitioned stream.
    fn latest_offset(&self, py: Python<'_>, start: Option<String>) -> PyResult<String> {
        self.call(py, move |plan| {
            Ok(plan.session(1.0)?.latest_offset(plan.table()?, &plan.wire.table_options, start.as_deref())?)
        })
    }

    /// The partitions of a partitioned stream between two offsets.
    fn stream_partitions(&self, py: Python<'_>, start: Option<String>, end: String) -> PyResult<Vec<String>> {
        self.call(py, move |plan| {
            Ok(plan.session(1.0)?.stream_partitions(
                plan.table()?,
                &plan.wire.table_options,
                start.as_deref(),
                &end,
            )?)
        })
    }

    /// `_community_table_metadata`: (tableName, primary_keys, cursor_field, ingestion_type) for
    /// each table of `tableNameList`, with its options from `tableConfigs`, in the list's order.
    #[allow(clippy::type_complexity)]
    fn metadata_rows(&self, py: Python<'_>) -> PyResult<Vec<(String, Vec<String>, Option<String>, String)>> {
        self.call(py, |plan| {
            let tables = match plan.option(options::TABLE_NAME_LIST) {
                Some(list) => options::string_list(options::TABLE_NAME_LIST, list)?,
                None => Vec::new(),
            };
            let configs = match plan.option(options::TABLE_CONFIGS) {
                Some(configs) => options::table_configs(configs)?,
                None => BTreeMap::new(),
            };
            let mut session = plan.session(1.0)?;
            let mut rows = Vec::new();
            for table in tables {
                let table_options = configs.get(&table).cloned().unwrap_or_default();
                let m = session.table_metadata(&table, &table_options)?;
                let kind: IngestionType = m.ingestion_type;
                rows.push((table, m.primary_keys, m.cursor_field, kind.name().to_string()));
            }
            Ok(rows)
        })
    }

    /// `_community_namespaces`: the namespaces one level below `namespacePrefix`, sorted; none
    /// for a connector without namespaces.
    fn namespace_rows(&self, py: Python<'_>) -> PyResult<Vec<Vec<String>>> {
        self.call(py, |plan| {
            if !plan.supports(Capability::Namespaces) {
                return Ok(Vec::new());
            }
            let prefix = match plan.option(options::NAMESPACE_PREFIX) {
                Some(p) => options::string_list(options::NAMESPACE_PREFIX, p)?,
                None => Vec::new(),
            };
            let mut namespaces = plan.session(1.0)?.list_namespaces(&prefix)?;
            namespaces.sort();
            Ok(namespaces)
        })
    }

    /// `_community_tables`: (namespace, tableName) of the tables in option `namespace`, sorted.
    /// The option is required for a connector with namespaces and refused for a flat one.
    fn table_rows(&self, py: Python<'_>) -> PyResult<Vec<(Vec<String>, String)>> {
        self.call(py, |plan| {
            let namespace = plan
                .wire
                .table_options
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(weir_runtime::contract::NAMESPACE_OPTION))
                .map(|(_, v)| v.clone());
            let mut session = plan.session(1.0)?;
            let (namespace, mut tables) = match (plan.supports(Capability::Namespaces), namespace) {
                (true, Some(ns)) => {
                    let ns = options::string_list("namespace", &ns)?;
                    let tables = session.list_tables_in_namespace(&ns)?;
                    (ns, tables)
                }
                (true, None) => {
                    return Err(PlanError::Options(format!(
                        "connector {} has namespaces: option namespace is required for {} (a JSON list; [] for the \
                         root; {} lists the namespaces)",
                        plan.connector_name(),
                        crate::plan::TABLES_TABLE,
                        crate::plan::NAMESPACES_TABLE
                    )));
                }
                (false, Some(_)) => {
                    return Err(PlanError::Options(format!(
                        "connector {} has no namespaces: drop option namespace",
                        plan.connector_name()
                    )));
                }
                (false, None) => (Vec::new(), session.list_tables()?),
            };
            tables.sort();
            Ok(tables.into_iter().map(|t| (namespace.clone(), t)).collect())
        })
    }

    /// The pages and rows one micro-batch reads at most.
    #[getter]
    fn micro_batch_bounds(&self) -> (u64, Option<u64>) {
        self.plan.micro_batch_bounds()
    }
}

/// The batches of one read, as `pyarrow.RecordBatch`es.
#[pyclass(name = "Batches", module = "pyspark_lakeflow_connect._native")]
pub struct PyBatches {
    batches: std::sync::Mutex<Batches>,
}

#[pymethods]
impl PyBatches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let batches = &self.batches;
        match py.detach(|| batches.lock().unwrap_or_else(|p| p.into_inner()).next_batch()) {
            None => Ok(None),
            Some(Ok(batch)) => batch.to_pyarrow(py).map(Some),
            Some(Err(e)) => Err(to_py(e)),
        }
    }
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyPlan>()?;
    m.add_class::<PyBatches>()?;
    m.add("LakeflowConnectError", py.get_type::<LakeflowConnectError>())?;
    m.add("OptionsError", py.get_type::<OptionsError>())?;
    m.add("UnknownTableError", py.get_type::<UnknownTableError>())?;
    m.add("AuthenticationError", py.get_type::<AuthenticationError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("SourceError", py.get_type::<SourceError>())?;
    m.add("BUNDLED", weir_artifacts::BUNDLED.iter().map(|(n, _)| *n).collect::<Vec<_>>())?;
    m.add("VIRTUAL_TABLES", crate::plan::VIRTUAL_TABLES.to_vec())?;
    Ok(())
}
