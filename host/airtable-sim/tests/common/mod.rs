//! What the simulator's HTTP tests share: a client that speaks to it as a connector does.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::Value;
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Sim, SimConfig};

pub struct Client {
    pub http: reqwest::Client,
    pub root: String,
}

impl Client {
    pub fn new(sim: &Sim) -> Client {
        Client { http: reqwest::Client::new(), root: sim.base_url() }
    }

    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            s.append_pair(k, v);
        }
        let q = s.finish();
        if q.is_empty() { format!("{}{path}", self.root) } else { format!("{}{path}?{q}", self.root) }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.bearer_auth(DEFAULT_TOKEN).send().await.expect("response");
        let status = resp.status();
        let body = resp.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path, query))).await
    }

    pub async fn list(&self, table: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.get(&table_path(table), query).await
    }

    /// One page of a listing of `table` in `base`.
    pub async fn list_in(&self, base: &str, table: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.get(&base_table_path(base, table), query).await
    }

    /// Every record of a listing, following offsets; asserts each page succeeds.
    pub async fn list_all(&self, table: &str, query: &[(&str, &str)]) -> Vec<Value> {
        self.list_all_in(DEFAULT_BASE_ID, table, query).await
    }

    /// Every record of a listing of `table` in `base`, following offsets.
    pub async fn list_all_in(&self, base: &str, table: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(o) = &offset {
                q.push(("offset", o));
            }
            let (status, body) = self.list_in(base, table, &q).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            out.extend(body["records"].as_array().expect("records").iter().cloned());
            match body.get("offset").and_then(Value::as_str) {
                Some(o) => offset = Some(o.to_string()),
                None => return out,
            }
        }
    }
}

pub fn table_path(table: &str) -> String {
    base_table_path(DEFAULT_BASE_ID, table)
}

pub fn base_table_path(base: &str, table: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(table.as_bytes()).collect();
    format!("/v0/{base}/{}", enc.replace('+', "%20"))
}

pub fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

pub fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or("<none>")
}

pub fn quiet() -> SimConfig {
    SimConfig { clock_scale: 0.01, ..SimConfig::default() }
}
