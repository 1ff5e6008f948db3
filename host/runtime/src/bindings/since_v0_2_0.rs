//! `lakeflow:connect@0.2.0` (`wit/v0.2.0`): its generated bindings and their conversions.

wasmtime::component::bindgen!({
    world: "connector",
    path: "../../wit/v0.2.0",
    // As for 0.1.0: see there.
    imports: { default: async | trappable },
    exports: { default: async },
});

conversions!();

pub(crate) fn error(e: types::ConnectorError) -> c::ConnectorError {
    use types::ConnectorError as E;
    match e {
        E::UnknownTable(m) => c::ConnectorError::UnknownTable(m),
        E::InvalidOptions(m) => c::ConnectorError::InvalidOptions(m),
        E::Auth(m) => c::ConnectorError::Auth(m),
        E::RateLimited(m) => c::ConnectorError::RateLimited(m),
        E::Source(s) => c::ConnectorError::Source { status: s.status, message: s.message },
        E::Internal(m) => c::ConnectorError::Internal(m),
        E::UnsupportedOffset(m) => c::ConnectorError::UnsupportedOffset(m),
        E::ContinuityLost(l) => {
            c::ConnectorError::ContinuityLost { reason: l.reason, resume_offset: l.resume_offset }
        }
    }
}
