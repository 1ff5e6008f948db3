//! The glue for `lakeflow:connect@0.1.0`.

use crate::ConnectorError;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector",
        path: "../../wit/v0.1.0",
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
        // 0.1 has no words for these; the host shows the message.
        e @ (ConnectorError::UnsupportedOffset(_) | ConnectorError::ContinuityLost { .. }) => {
            wit_types::ConnectorError::Internal(e.to_string())
        }
    }
}

impl<C: crate::Connector> wit_source::Guest for Export<C> {
    source_functions!();
}
