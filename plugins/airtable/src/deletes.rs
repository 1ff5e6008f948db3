//! Deletes through Airtable's webhooks: table option `deletes = "webhook"` makes a cdc table
//! `cdc_with_deletes` (the token then needs the `webhook:manage` scope as well).
//!
//! Airtable's record listing cannot show a deleted record; a webhook's change payloads can
//! (`changedTablesById[table].destroyedRecordIds`). The deletes' offset is the webhook and the
//! cursor of its next payload; each read lists payloads from there (following `mightHaveMore`)
//! and turns every destroyed record into a tombstone: its id, with the cursor column set to the
//! payload's timestamp.
//!
//! - **One webhook per table.** Its specification watches only removals in that table. Before
//!   creating one, the connector looks for a webhook with the same specification and takes it
//!   over, so a rerun whose offset was never committed (a crash right after the creation), or a
//!   second destination of the same table, never makes a second one. Payload cursors are
//!   read-only, so destinations sharing a webhook each keep their own.
//! - **Kept alive.** Listing payloads extends a webhook's life, and the connector refreshes it
//!   explicitly when its offset says the last refresh is a day old (webhooks expire after 7 days).
//! - **Continuity.** When the webhook is gone (expired, deleted by someone) or its payloads from
//!   the cursor are past retention, deletes in between cannot be known: the connector takes over
//!   or creates a webhook and answers `continuity-lost` with an offset at its current cursor,
//!   and the host resynchronises the table from a whole read. Deletes that never ran end the
//!   same way, so that a table that already holds rows is checked once.
//! - **Release.** With the host's table option `weir.release = true` (`weir release`), the read
//!   deletes the webhook its offset names, and ends.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_connector_sdk::{ConnectorError, Level, Page, Request, Rows};

use crate::api::{Client, encode, error_for, parse};
use crate::schema::{ID, Plan};

/// How often the connector refreshes its webhook explicitly (Airtable's expire after 7 days).
const REFRESH_EVERY_MS: i64 = 24 * 3_600_000;

/// Payload pages one call lists at most while Airtable says it might have more.
const PAGES_PER_CALL: usize = 10;

/// The host's table option that asks the read to delete its webhook (`weir release`).
pub(crate) const RELEASE_OPTION: &str = "weir.release";

/// Where a table's deletes stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Offset {
    webhook: String,
    /// The cursor of the next payload to read.
    cursor: u64,
    /// When the webhook was last refreshed, in ms.
    refreshed_ms: i64,
}

impl Offset {
    fn parse(text: Option<&str>) -> Result<Option<Offset>, ConnectorError> {
        match text.map(str::trim) {
            None | Some("{}") | Some("") => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                ConnectorError::UnsupportedOffset(format!("{text:?} is not an Airtable deletes offset: {e}"))
            }),
        }
    }

    fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One call of `read_deletes` on a `deletes = "webhook"` table.
pub(crate) fn read(
    client: &Client,
    plan: &Plan,
    start: Option<&str>,
    release: bool,
    now_ms: i64,
) -> Result<Page, ConnectorError> {
    let cursor_column = match &plan.cursor {
        Some(cursor) if plan.deletes => cursor.column.clone(),
        // Not a deletes table: nothing to read (a cdc or snapshot table's deletes end at once).
        _ => return Ok(Page::end(start)),
    };
    let offset = Offset::parse(start)?;
    if release {
        if let Some(o) = &offset {
            delete_webhook(client, &o.webhook)?;
            client
                .host
                .log(Level::Info, &format!("deleted webhook {} of table {:?}", o.webhook, plan.table_name));
        }
        return Ok(Page::end(start));
    }
    let Some(offset) = offset else {
        let (webhook, cursor) = watch(client, plan)?;
        let reason =
            format!("deletes of table {:?} start now, watched by webhook {webhook}", plan.table_name);
        return Err(lost(reason, webhook, cursor, now_ms));
    };
    let mut refreshed_ms = offset.refreshed_ms;
    if !(0..REFRESH_EVERY_MS).contains(&(now_ms - refreshed_ms)) {
        if !refresh(client, &offset.webhook)? {
            return gone(client, plan, &offset.webhook, now_ms);
        }
        refreshed_ms = now_ms;
    }
    let mut cursor = offset.cursor;
    let mut lines = String::new();
    let mut payloads = 0u64;
    for _ in 0..PAGES_PER_CALL {
        let page = match list_payloads(client, &offset.webhook, cursor)? {
            Listed::Page(page) => page,
            Listed::Gone => return gone(client, plan, &offset.webhook, now_ms),
            Listed::PastRetention(message) => {
                let next = current_cursor(client, &offset.webhook)?;
                let reason = format!(
                    "payloads of webhook {} from cursor {cursor} are past Airtable's retention ({message})",
                    offset.webhook
                );
                return Err(lost(reason, offset.webhook, next, now_ms));
            }
        };
        for payload in &page.payloads {
            payloads += 1;
            let destroyed = &payload["changedTablesById"][&plan.table_id]["destroyedRecordIds"];
            for id in destroyed.as_array().into_iter().flatten().filter_map(Value::as_str) {
                lines.push_str(&json!({ID: id, &cursor_column: payload["timestamp"]}).to_string());
                lines.push('\n');
            }
        }
        // A cursor that does not move would list the same payloads for ever.
        let moved = page.cursor > cursor;
        cursor = cursor.max(page.cursor);
        if !(page.might_have_more && moved) {
            break;
        }
    }
    let end = Offset { webhook: offset.webhook.clone(), cursor, refreshed_ms };
    if end == offset {
        return Ok(Page::end(start));
    }
    Ok(Page {
        rows: Rows::JsonLines(lines),
        end_offset: end.render(),
        checkpointable: true,
        counters: vec![("deletes.payloads".into(), payloads)],
    })
}

fn lost(reason: String, webhook: String, cursor: u64, now_ms: i64) -> ConnectorError {
    let resume_offset = Offset { webhook, cursor, refreshed_ms: now_ms }.render();
    ConnectorError::ContinuityLost { reason, resume_offset }
}

/// The webhook is gone: a new one (or one with the same specification) takes over.
fn gone(client: &Client, plan: &Plan, webhook: &str, now_ms: i64) -> Result<Page, ConnectorError> {
    let (next, cursor) = watch(client, plan)?;
    let reason =
        format!("webhook {webhook} expired or was deleted; webhook {next} watches the deletes from now");
    Err(lost(reason, next, cursor, now_ms))
}

/// What the connector's webhook for a table watches: removals of its records.
fn specification(plan: &Plan) -> Value {
    json!({"options": {"filters": {
        "dataTypes": ["tableData"],
        "recordChangeScope": plan.table_id,
        "changeTypes": ["remove"],
    }}})
}

fn webhooks_url(client: &Client) -> String {
    format!("{}/v0/bases/{}/webhooks", client.base_url, encode(&client.base_id))
}

/// Refusals of the webhooks API, with what to do about a missing scope.
fn webhook_error(response: &weir_connector_sdk::Response, what: &str) -> ConnectorError {
    match error_for(response, what) {
        ConnectorError::Auth(m) => ConnectorError::Auth(format!(
            "{m}; deletes = \"webhook\" needs a token with the webhook:manage scope as well as data.records:read"
        )),
        other => other,
    }
}

/// The base's webhooks: (id, cursor of its next payload, specification).
fn list_webhooks(client: &Client) -> Result<Vec<(String, u64, Value)>, ConnectorError> {
    let response = client.host.send(Request::get(webhooks_url(client)))?;
    let what = format!("listing the webhooks of base {}", client.base_id);
    if !(200..300).contains(&response.status) {
        return Err(webhook_error(&response, &what));
    }
    let body: Value = parse(&response.body, &what)?;
    Ok(body["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some((
                w["id"].as_str()?.to_string(),
                w["cursorForNextPayload"].as_u64()?,
                w["specification"].clone(),
            ))
        })
        .collect())
}

/// The table's webhook: one with the same specification if the base has it, else a new one.
fn watch(client: &Client, plan: &Plan) -> Result<(String, u64), ConnectorError> {
    let spec = specification(plan);
    if let Some((id, cursor, _)) = list_webhooks(client)?.into_iter().find(|(_, _, s)| s == &spec) {
        return Ok((id, cursor));
    }
    let response =
        client.host.send(Request::post_json(webhooks_url(client), &json!({"specification": spec})))?;
    let what = format!("creating a webhook for the deletes of table {:?}", plan.table_name);
    if !(200..300).contains(&response.status) {
        return Err(webhook_error(&response, &what));
    }
    let body: Value = parse(&response.body, &what)?;
    let id = body["id"].as_str().ok_or_else(|| ConnectorError::Internal(format!("no webhook id {what}")))?;
    client
        .host
        .log(Level::Info, &format!("created webhook {id} for the deletes of table {:?}", plan.table_name));
    // A new webhook's first payload has cursor 1.
    Ok((id.to_string(), 1))
}

fn current_cursor(client: &Client, webhook: &str) -> Result<u64, ConnectorError> {
    list_webhooks(client)?
        .into_iter()
        .find(|(id, _, _)| id == webhook)
        .map(|(_, cursor, _)| cursor)
        .ok_or_else(|| {
            ConnectorError::Internal(format!("webhook {webhook} vanished while its payloads were read"))
        })
}

/// Refreshes a webhook; false when it is gone.
fn refresh(client: &Client, webhook: &str) -> Result<bool, ConnectorError> {
    let url = format!("{}/{}/refresh", webhooks_url(client), encode(webhook));
    let response = client.host.send(Request::post_json(url, &json!({})))?;
    match response.status {
        200..=299 => Ok(true),
        404 => Ok(false),
        _ => Err(webhook_error(&response, &format!("refreshing webhook {webhook}"))),
    }
}

fn delete_webhook(client: &Client, webhook: &str) -> Result<(), ConnectorError> {
    let url = format!("{}/{}", webhooks_url(client), encode(webhook));
    let response = client.host.send(Request { method: "DELETE".into(), ..Request::get(url) })?;
    match response.status {
        // Gone already: nothing left to remove.
        200..=299 | 404 => Ok(()),
        _ => Err(webhook_error(&response, &format!("deleting webhook {webhook}"))),
    }
}

#[derive(Deserialize)]
struct PayloadPage {
    cursor: u64,
    #[serde(rename = "mightHaveMore", default)]
    might_have_more: bool,
    #[serde(default)]
    payloads: Vec<Value>,
}

enum Listed {
    Page(PayloadPage),
    Gone,
    PastRetention(String),
}

fn list_payloads(client: &Client, webhook: &str, cursor: u64) -> Result<Listed, ConnectorError> {
    let url = format!("{}/{}/payloads?cursor={cursor}", webhooks_url(client), encode(webhook));
    let response = client.host.send(Request::get(url))?;
    let what = format!("listing the payloads of webhook {webhook}");
    match response.status {
        200..=299 => parse(&response.body, &what).map(Listed::Page),
        404 => Ok(Listed::Gone),
        422 => {
            let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            let error = &body["error"];
            if error["type"] == "WEBHOOK_PAYLOADS_NOT_AVAILABLE" || error == "WEBHOOK_PAYLOADS_NOT_AVAILABLE"
            {
                Ok(Listed::PastRetention(error["message"].as_str().unwrap_or("no message").to_string()))
            } else {
                Err(webhook_error(&response, &what))
            }
        }
        _ => Err(webhook_error(&response, &what)),
    }
}
