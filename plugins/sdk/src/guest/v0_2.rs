//! The glue for `lakeflow:connect@0.2.0`: 0.1's functions, plus namespaces and partitions.

use crate::ConnectorError;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector",
        path: "../../wit/v0.2.0",
        pub_export_macro: true,
        default_bindings_module: "weir_connector_sdk::guest::bindings",
    });
}

use bindings::exports::lakeflow::connect::source as wit_source;
use bindings::lakeflow::connect::{http as wit_http, log as wit_log, types as wit_types};

glue!();

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
        ConnectorError::UnsupportedOffset(m) => wit_types::ConnectorError::UnsupportedOffset(m),
        ConnectorError::ContinuityLost { reason, resume_offset } => {
            wit_types::ConnectorError::ContinuityLost(wit_types::ContinuityLost { reason, resume_offset })
        }
    }
}

impl<C: crate::Connector> wit_source::Guest for Export<C> {
    source_functions!();

    fn list_namespaces(
        o: Vec<(String, String)>,
        prefix: Vec<String>,
    ) -> Result<Vec<Vec<String>>, wit_types::ConnectorError> {
        C::list_namespaces(&WitHost, &options(o), &prefix).map_err(error)
    }

    fn list_tables_in_namespace(
        o: Vec<(String, String)>,
        namespace: Vec<String>,
    ) -> Result<Vec<String>, wit_types::ConnectorError> {
        C::list_tables_in_namespace(&WitHost, &options(o), &namespace).map_err(error)
    }

    fn list_partitions(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
    ) -> Result<Vec<String>, wit_types::ConnectorError> {
        C::list_partitions(&WitHost, &options(o), &table, &options(t)).map_err(error)
    }

    fn read_partition(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
        partition: String,
        start: Option<String>,
    ) -> Result<wit_types::Page, wit_types::ConnectorError> {
        C::read_partition(&WitHost, &options(o), &table, &options(t), &partition, start.as_deref())
            .map(page)
            .map_err(error)
    }

    fn latest_offset(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
        start: Option<String>,
    ) -> Result<String, wit_types::ConnectorError> {
        C::latest_offset(&WitHost, &options(o), &table, &options(t), start.as_deref()).map_err(error)
    }

    fn stream_partitions(
        o: Vec<(String, String)>,
        table: String,
        t: Vec<(String, String)>,
        start: Option<String>,
        end: String,
    ) -> Result<Vec<String>, wit_types::ConnectorError> {
        C::stream_partitions(&WitHost, &options(o), &table, &options(t), start.as_deref(), &end)
            .map_err(error)
    }
}
