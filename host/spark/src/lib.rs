//! The Spark data source `lakeflow_connect`, as the Python package `weir-spark` (module
//! `pyspark_lakeflow_connect`): the same sandboxed connector components and the same runtime as
//! the `weir` command, inside Spark's Python workers, handing Spark Arrow batches.
//!
//! The Python layer (`python/pyspark_lakeflow_connect`) is the data source classes and option
//! plumbing; this crate does the work:
//!
//! - [`options`] splits Spark's options (lower-cased keys) into the data source's own, the
//!   connection's parameters (per the connector's manifest) and the table's options;
//! - [`plan`] resolves them once on the driver into a [`plan::Plan`], whose wire form (configuration
//!   only) is what Spark pickles to the workers; each worker builds one runtime, lazily;
//! - [`read`] runs the page loop and gives every batch exactly the Arrow schema Spark checks;
//! - `python` (feature `python`, which maturin turns on) is the PyO3 module
//!   `pyspark_lakeflow_connect._native`.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! let options: BTreeMap<String, String> = [
//!     ("sourcename", "airtable"), ("bearer_token", "pat…"), ("base_id", "appX"), ("tablename", "Vendors"),
//! ].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
//! let plan = weir_spark::plan::Plan::new(&options)?;
//! assert_eq!(plan.connector_name(), "airtable");
//! # Ok::<(), weir_spark::plan::PlanError>(())
//! ```

pub mod options;
pub mod plan;
pub mod read;

#[cfg(feature = "python")]
mod python;
