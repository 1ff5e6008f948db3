//! A partitioned test connector (contract 0.2): table `events` holds `rows` rows in each of
//! `partitions` shards, generated from their position, so a test knows exactly what a read must
//! return. It reaches no network.
//!
//! | table option | default | meaning |
//! |---|---|---|
//! | `partitions` | 4 | how many shards |
//! | `rows` | 1000 | rows per shard; raise it between runs to append new rows |
//! | `page_rows` | 50 | rows per page |
//!
//! Row `seq` of shard `s` is `{"id": "s<s>-<seq>", "shard": s, "seq": seq, "payload": …}`. The
//! table is `append`, keyed by `id`.
//!
//! - Partitions (`list-partitions`) are `{"shard": s}`; `read-partition` pages through a shard
//!   with offsets `{"next": n}`, so each shard resumes from its own offset.
//! - The partitioned stream's offsets are `{"rows": n}` (rows per shard seen so far);
//!   `stream-partitions` gives one `{"shard": s, "from": a, "to": b}` per shard.
//! - `read-table` reads the shards one after the other, with offsets `{"shard": s, "next": n}`.

use serde_json::{Value, json};
use weir_connector_sdk::{
    Connector, ConnectorError, Host, IngestionType, Options, Page, Rows, TableMetadata,
};

/// The shards connector.
pub struct Shards;

/// The Spark JSON schema of table `events`.
pub const SCHEMA: &str = r#"{"type":"struct","fields":[{"name":"id","type":"string","nullable":false,"metadata":{}},{"name":"shard","type":"long","nullable":false,"metadata":{}},{"name":"seq","type":"long","nullable":false,"metadata":{}},{"name":"payload","type":"string","nullable":true,"metadata":{}}]}"#;

/// The one table.
pub const TABLE: &str = "events";

struct Shape {
    partitions: u64,
    rows: u64,
    page_rows: u64,
}

fn number(table_options: &Options, key: &str, default: u64) -> Result<u64, ConnectorError> {
    match table_options.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n >= 1 || key == "rows").ok_or_else(|| {
            ConnectorError::InvalidOptions(format!("table option {key} must be a whole number, got {v:?}"))
        }),
    }
}

fn shape(table: &str, table_options: &Options) -> Result<Shape, ConnectorError> {
    if table != TABLE {
        return Err(ConnectorError::UnknownTable(table.into()));
    }
    for key in table_options.keys() {
        if !["partitions", "rows", "page_rows"].contains(&key.as_str()) && !key.starts_with("weir.") {
            return Err(ConnectorError::InvalidOptions(format!(
                "unknown table option {key:?}; shards takes partitions, rows, page_rows"
            )));
        }
    }
    Ok(Shape {
        partitions: number(table_options, "partitions", 4)?,
        rows: number(table_options, "rows", 1000)?,
        page_rows: number(table_options, "page_rows", 50)?,
    })
}

fn field(offset: &Value, key: &str) -> Result<u64, ConnectorError> {
    offset
        .get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| ConnectorError::UnsupportedOffset(format!("{offset} has no whole number {key:?}")))
}

fn parse(text: &str) -> Result<Value, ConnectorError> {
    serde_json::from_str(text).map_err(|_| ConnectorError::UnsupportedOffset(format!("{text:?} is not JSON")))
}

/// Rows `from..to` of shard `shard` as JSON Lines.
pub fn rows(label: &str, shard: u64, from: u64, to: u64) -> String {
    let mut out = String::new();
    for seq in from..to {
        let row = json!({
            "id": format!("s{shard}-{seq}"),
            "shard": shard,
            "seq": seq,
            "payload": format!("{label} shard {shard} row {seq}"),
        });
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out
}

fn label(options: &Options) -> &str {
    options.get("label").map_or("shards", String::as_str)
}

/// One page of shard `shard` from `next`, up to `to`. Its offset is `{"next": n}`, with the
/// shard too when `name_shard` (a `read-table` offset walks from shard to shard).
fn page(options: &Options, s: &Shape, shard: u64, next: u64, to: u64, name_shard: bool) -> Page {
    let end = (next + s.page_rows).min(to);
    let offset = if name_shard { json!({"shard": shard, "next": end}) } else { json!({"next": end}) };
    Page {
        rows: Rows::JsonLines(rows(label(options), shard, next, end)),
        end_offset: offset.to_string(),
        checkpointable: true,
        counters: Vec::new(),
    }
}

impl Connector for Shards {
    fn list_tables(_: &dyn Host, _: &Options) -> Result<Vec<String>, ConnectorError> {
        Ok(vec![TABLE.into()])
    }

    fn table_schema(_: &dyn Host, _: &Options, table: &str, t: &Options) -> Result<String, ConnectorError> {
        shape(table, t)?;
        Ok(SCHEMA.into())
    }

    fn table_metadata(
        _: &dyn Host,
        _: &Options,
        table: &str,
        t: &Options,
    ) -> Result<TableMetadata, ConnectorError> {
        shape(table, t)?;
        Ok(TableMetadata {
            primary_keys: vec!["id".into()],
            cursor_field: None,
            ingestion_type: IngestionType::Append,
        })
    }

    fn read_table(
        _: &dyn Host,
        options: &Options,
        table: &str,
        t: &Options,
        start: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let s = shape(table, t)?;
        let (mut shard, mut next) = match start {
            None => (0, 0),
            Some(text) => {
                let offset = parse(text)?;
                (field(&offset, "shard")?, field(&offset, "next")?)
            }
        };
        if next >= s.rows && shard + 1 < s.partitions {
            shard += 1;
            next = 0;
        }
        if shard >= s.partitions || next >= s.rows {
            return Ok(Page::end(start));
        }
        Ok(page(options, &s, shard, next, s.rows, true))
    }

    fn list_partitions(
        _: &dyn Host,
        _: &Options,
        table: &str,
        t: &Options,
    ) -> Result<Vec<String>, ConnectorError> {
        let s = shape(table, t)?;
        Ok((0..s.partitions).map(|shard| json!({"shard": shard}).to_string()).collect())
    }

    fn read_partition(
        _: &dyn Host,
        options: &Options,
        table: &str,
        t: &Options,
        partition: &str,
        start: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let s = shape(table, t)?;
        let descriptor = parse(partition)?;
        let shard = field(&descriptor, "shard")?;
        if shard >= s.partitions {
            return Err(ConnectorError::InvalidOptions(format!(
                "partition {partition} is not one of this table's"
            )));
        }
        // A stream partition covers `from..to`; a batch partition the whole shard.
        let from = descriptor.get("from").and_then(Value::as_u64).unwrap_or(0);
        let to = descriptor.get("to").and_then(Value::as_u64).unwrap_or(s.rows).min(s.rows);
        let next = match start {
            None => from,
            Some(text) => field(&parse(text)?, "next")?,
        };
        if next >= to {
            return Ok(Page::end(start));
        }
        Ok(page(options, &s, shard, next, to, false))
    }

    fn latest_offset(
        _: &dyn Host,
        _: &Options,
        table: &str,
        t: &Options,
        _start: Option<&str>,
    ) -> Result<String, ConnectorError> {
        Ok(json!({"rows": shape(table, t)?.rows}).to_string())
    }

    fn stream_partitions(
        _: &dyn Host,
        _: &Options,
        table: &str,
        t: &Options,
        start: Option<&str>,
        end: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let s = shape(table, t)?;
        let from = match start {
            None => 0,
            Some(text) => field(&parse(text)?, "rows")?,
        };
        let to = field(&parse(end)?, "rows")?;
        if to <= from {
            return Ok(Vec::new());
        }
        Ok((0..s.partitions)
            .map(|shard| json!({"shard": shard, "from": from, "to": to}).to_string())
            .collect())
    }
}

#[cfg(target_arch = "wasm32")]
weir_connector_sdk::export_connector!(Shards);

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHost;

    impl Host for NoHost {
        fn send(
            &self,
            _: weir_connector_sdk::Request,
        ) -> Result<weir_connector_sdk::Response, weir_connector_sdk::HttpError> {
            Err(weir_connector_sdk::HttpError::Denied("no network".into()))
        }
        fn log(&self, _: weir_connector_sdk::Level, _: &str) {}
    }

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ids(page: &Page) -> Vec<String> {
        let Rows::JsonLines(text) = &page.rows else { panic!("json lines") };
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_partition_pages_to_its_end_and_resumes_from_its_offset() {
        let t = opts(&[("rows", "5"), ("page_rows", "2")]);
        let partitions = Shards::list_partitions(&NoHost, &Options::new(), TABLE, &t).unwrap();
        assert_eq!(partitions.len(), 4);
        let mut start: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page =
                Shards::read_partition(&NoHost, &Options::new(), TABLE, &t, &partitions[2], start.as_deref())
                    .unwrap();
            if start.as_deref() == Some(page.end_offset.as_str()) {
                break;
            }
            seen.extend(ids(&page));
            start = Some(page.end_offset);
        }
        assert_eq!(seen, ["s2-0", "s2-1", "s2-2", "s2-3", "s2-4"]);
        // More rows later: the committed offset reads only the new ones.
        let grown = opts(&[("rows", "7"), ("page_rows", "2")]);
        let page =
            Shards::read_partition(&NoHost, &Options::new(), TABLE, &grown, &partitions[2], start.as_deref())
                .unwrap();
        assert_eq!(ids(&page), ["s2-5", "s2-6"]);
    }

    #[test]
    fn the_stream_covers_the_new_rows_of_every_shard_once() {
        let t = opts(&[("partitions", "2"), ("rows", "3")]);
        let o = Options::new();
        let end = Shards::latest_offset(&NoHost, &o, TABLE, &t, None).unwrap();
        let parts = Shards::stream_partitions(&NoHost, &o, TABLE, &t, None, &end).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(Shards::stream_partitions(&NoHost, &o, TABLE, &t, Some(&end), &end).unwrap().is_empty());
        let page = Shards::read_partition(&NoHost, &o, TABLE, &t, &parts[1], None).unwrap();
        assert_eq!(ids(&page), ["s1-0", "s1-1", "s1-2"]);
    }

    #[test]
    fn read_table_walks_every_shard_in_turn() {
        let t = opts(&[("partitions", "2"), ("rows", "2"), ("page_rows", "2")]);
        let o = Options::new();
        let first = Shards::read_table(&NoHost, &o, TABLE, &t, None).unwrap();
        let second = Shards::read_table(&NoHost, &o, TABLE, &t, Some(&first.end_offset)).unwrap();
        let end = Shards::read_table(&NoHost, &o, TABLE, &t, Some(&second.end_offset)).unwrap();
        assert_eq!(
            (ids(&first), ids(&second)),
            (vec!["s0-0".to_string(), "s0-1".into()], vec!["s1-0".to_string(), "s1-1".into()])
        );
        assert_eq!(end.end_offset, second.end_offset);
        assert!(matches!(
            Shards::read_table(&NoHost, &o, TABLE, &t, Some("{}")),
            Err(ConnectorError::UnsupportedOffset(_))
        ));
    }
}
