//! Giving back what a connector holds at the source for a pipeline's tables (`weir release`):
//! the Airtable connector's webhooks, which its `cdc_with_deletes` tables read deletes through.
//!
//! The contract has no call for it, and needs none: the host calls `read-deletes` with the
//! deletes' committed offset and the host's table option `weir.release = true`, and the connector
//! removes what that offset names, then ends the read. Nothing is committed: the table keeps its
//! offset, and a later run finds the webhook gone and resynchronises (see the README).

use weir_convert::Converter;
use weir_runtime::{ConnectionSpec, Runtime};

use crate::app_id::deletes_app_id;
use crate::run::RunOptions;
use crate::spec::Planned;
use crate::swap::Current;
use crate::{IngestError, plan, select};

/// The table option that asks a connector's deletes read to release what it holds.
pub const RELEASE_OPTION: &str = "weir.release";

/// What `release` did for one table with deletes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Released {
    pub source_table: String,
    pub namespace: Vec<String>,
    pub destination: String,
    /// The deletes offset the connector was given (what it released); None when the table's
    /// deletes never committed one, so there was nothing to release.
    pub offset: Option<String>,
    pub error: Option<String>,
}

/// For every table of `tables` that reads deletes, asks the connector to release what its
/// committed deletes offset names. Tables without deletes are left out.
pub fn release(
    runtime: &Runtime,
    current: &Current,
    connection: &ConnectionSpec,
    tables: Vec<Planned>,
    options: &RunOptions,
    tokio: &tokio::runtime::Handle,
) -> Result<Vec<Released>, IngestError> {
    let tables = select(tables, options.only.as_deref())?;
    let mut session = runtime.session(&current.get().connector, connection)?;
    let prepared = plan::prepare(&mut session, &connection.name, tables, &options.warehouse, tokio)?;
    let mut out = Vec::new();
    for table in prepared.iter().filter(|t| t.delete_mode.is_some()) {
        let mut released = Released {
            source_table: table.plan.source_table.clone(),
            namespace: table.plan.namespace.clone(),
            destination: table.plan.destination_name(),
            offset: None,
            error: None,
        };
        let checkpoint =
            tokio.block_on(weir_delta::last_checkpoint(&table.uri, &deletes_app_id(&table.app_id)));
        match checkpoint {
            Err(e) => released.error = Some(e.to_string()),
            Ok(None) => {}
            Ok(Some(checkpoint)) => {
                let mut table_options = table.plan.table_options.clone();
                table_options.push((RELEASE_OPTION.to_string(), "true".to_string()));
                let mut converter = Converter::new(table.schema.clone());
                let source = &table.plan.source_table;
                let result =
                    session.read_deletes(source, &table_options, Some(&checkpoint.offset), &mut converter);
                if let Err(e) = result {
                    released.error = Some(e.to_string());
                }
                released.offset = Some(checkpoint.offset);
            }
        }
        out.push(released);
    }
    Ok(out)
}
