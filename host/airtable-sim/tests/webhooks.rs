//! The webhooks API through real HTTP, as a connector reading deletes sees it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, Faults, Sim, SimConfig};

mod common;
use common::{Client, error_type, quiet, table_path};

const HOOKS: &str = "/v0/bases/appProductLaunch/webhooks";

fn spec(filters: Value) -> Value {
    json!({"specification": {"options": {"filters": filters, "includes": {"includePreviousCellValues": true}}}})
}

fn table_data() -> Value {
    spec(json!({"dataTypes": ["tableData"]}))
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path, &[])).json(&body)).await
    }

    async fn create_hook(&self, body: Value) -> String {
        let (status, out) = self.post(HOOKS, body).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        out["id"].as_str().unwrap().to_string()
    }

    async fn payloads(&self, id: &str, cursor: u64, limit: u64) -> (StatusCode, Value) {
        let (cursor, limit) = (cursor.to_string(), limit.to_string());
        self.get(&format!("{HOOKS}/{id}/payloads"), &[("cursor", &cursor), ("limit", &limit)]).await
    }
}

#[tokio::test]
async fn a_webhook_is_created_listed_refreshed_and_deleted() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let body = json!({"notificationUrl": "https://example.com/hook", "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}});
    let (status, created) = c.post(HOOKS, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("ach") && id.len() == 17, "{id}");
    let secret = created["macSecretBase64"].as_str().unwrap();
    assert!(secret.len() == 44 && secret.ends_with('='), "32 bytes in base64: {secret}");
    let expires = chrono::DateTime::parse_from_rfc3339(created["expirationTime"].as_str().unwrap()).unwrap();
    let in_days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds() as f64 / 86_400.0;
    // clock_scale 0.01: 7 days become 1.68 hours, and expirationTime says when it really expires.
    assert!((0.06..0.08).contains(&in_days), "{in_days} days");

    let (status, list) = c.get(HOOKS, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let hook = &list["webhooks"][0];
    assert_eq!(hook["id"], id);
    assert_eq!(hook["cursorForNextPayload"], 1);
    assert_eq!(
        (hook["isHookEnabled"].clone(), hook["areNotificationsEnabled"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(hook["specification"], body["specification"]);
    assert_eq!(hook["notificationUrl"], "https://example.com/hook");

    let (status, refreshed) = c.post(&format!("{HOOKS}/{id}/refresh"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(refreshed["expirationTime"].as_str().unwrap() >= created["expirationTime"].as_str().unwrap());

    let (status, _) = c.send(c.http.delete(c.url(&format!("{HOOKS}/{id}"), &[]))).await;
    assert_eq!(status, StatusCode::OK);
    for (status, body) in
        [c.post(&format!("{HOOKS}/{id}/refresh"), json!({})).await, c.payloads(id, 1, 50).await]
    {
        assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    assert_eq!(c.get(HOOKS, &[]).await.1, json!({"webhooks": []}));

    for bad in [
        json!({"specification": {"options": {"filters": {"dataTypes": []}}}}),
        json!({"specification": {"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblNoSuchTable000"}}}}),
        json!({"specification": {"options": {"filters": {"dataTypes": ["tableData"], "fromSources": ["client"]}}}}),
        json!({"notificationUrl": "not a url", "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}}),
    ] {
        let (status, out) = c.post(HOOKS, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {out}");
    }
    let (status, _) = c.post("/v0/bases/appNoSuchBase0000/webhooks", table_data()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_base_holds_at_most_ten_webhooks() {
    let sim = Sim::start(SimConfig { extra_bases: vec!["appOtherBase00000".into()], ..quiet() }).unwrap();
    let c = Client::new(&sim);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(c.create_hook(table_data()).await);
    }
    let (status, body) = c.post(HOOKS, table_data()).await;
    assert_eq!((status, error_type(&body)), (StatusCode::FORBIDDEN, "TOO_MANY_WEBHOOKS"));
    let (status, _) = c.post("/v0/bases/appOtherBase00000/webhooks", table_data()).await;
    assert_eq!(status, StatusCode::OK, "the limit is per base");
    sim.expire_webhook(DEFAULT_BASE_ID, &ids[3]).unwrap();
    assert_eq!(sim.webhook_ids(DEFAULT_BASE_ID).unwrap().len(), 9, "an expired webhook no longer counts");
    c.create_hook(table_data()).await;
}

#[tokio::test]
async fn every_write_appends_one_payload_to_each_webhook_it_concerns() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let tables = sim.table_ids();
    let sku = tables.iter().find(|(_, n)| n == "SKU Candidates").unwrap().0.clone();
    let vendors = tables.iter().find(|(_, n)| n == "Vendors").unwrap().0.clone();
    let all = c.create_hook(spec(json!({"dataTypes": ["tableData", "tableFields"]}))).await;
    let vendors_only =
        c.create_hook(spec(json!({"dataTypes": ["tableData"], "recordChangeScope": vendors}))).await;
    let data_only = c.create_hook(table_data()).await;

    let path = table_path("SKU Candidates");
    let (_, made) = c.post(&path, json!({"records": [{"fields": {"Name": "Zephyr Kettle", "Price": 49.5}}, {"fields": {"Name": "Zephyr Cup"}}]})).await;
    let (a, b) = (made["records"][0]["id"].as_str().unwrap(), made["records"][1]["id"].as_str().unwrap());
    let (status, _) = c
        .send(c.http.patch(c.url(&path, &[])).json(&json!({"records": [{"id": a, "fields": {"Price": 52}}]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.send(c.http.delete(c.url(&path, &[("records[]", b)]))).await;
    assert_eq!(status, StatusCode::OK);
    sim.rename_field(DEFAULT_BASE_ID, "SKU Candidates", "Price", "List Price").unwrap();

    let (status, page) = c.payloads(&all, 1, 2).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!((page["cursor"].clone(), page["mightHaveMore"].clone()), (json!(3), json!(true)));
    let (_, rest) = c.payloads(&all, 3, 50).await;
    assert_eq!((rest["cursor"].clone(), rest["mightHaveMore"].clone()), (json!(5), json!(false)));
    let payloads: Vec<Value> = page["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["payloads"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(payloads.len(), 4, "create, update, delete, rename");
    let txns: Vec<u64> = payloads.iter().map(|p| p["baseTransactionNumber"].as_u64().unwrap()).collect();
    assert!(txns.windows(2).all(|w| w[0] < w[1]), "{txns:?}");
    assert!(payloads.iter().all(|p| p["payloadFormat"] == "v0" && p["timestamp"].is_string()));
    assert_eq!(payloads[0]["actionMetadata"]["source"], "publicApi");
    assert_eq!(payloads[3]["actionMetadata"]["source"], "client");

    let (_, meta) = c.get(&format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"), &[]).await;
    let fields = meta["tables"][0]["fields"].as_array().unwrap();
    let fid =
        |name: &str| fields.iter().find(|f| f["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let price = fid("List Price");

    let created = &payloads[0]["changedTablesById"][&sku]["createdRecordsById"];
    assert_eq!(created.as_object().unwrap().len(), 2, "one payload for a two-record create");
    assert_eq!(created[a]["cellValuesByFieldId"][&price], 49.5);
    assert!(created[a]["createdTime"].is_string());
    let changed = &payloads[1]["changedTablesById"][&sku]["changedRecordsById"][a];
    assert_eq!(changed["current"]["cellValuesByFieldId"][&price], 52);
    assert_eq!(changed["previous"]["cellValuesByFieldId"][&price], 49.5);
    assert!(
        changed["current"]["cellValuesByFieldId"][fid("Last Modified")].is_string(),
        "computed cells that moved"
    );
    assert_eq!(payloads[2]["changedTablesById"][&sku]["destroyedRecordIds"], json!([b]));
    assert_eq!(
        payloads[3]["changedTablesById"][&sku]["changedFieldsById"][&price]["current"],
        json!({"name": "List Price"})
    );

    let (_, data) = c.payloads(&data_only, 1, 50).await;
    assert_eq!(data["payloads"].as_array().unwrap().len(), 3, "a field rename is tableFields, not tableData");
    assert_eq!(data["payloads"][2]["changedTablesById"][&sku]["destroyedRecordIds"], json!([b]));
    let (_, scoped) = c.payloads(&vendors_only, 1, 50).await;
    assert_eq!(scoped, json!({"cursor": 1, "mightHaveMore": false, "payloads": []}));
    sim.delete_records(
        DEFAULT_BASE_ID,
        "Vendors",
        &[c.list_all("Vendors", &[]).await[0]["id"].as_str().unwrap()],
    )
    .unwrap();
    let (_, scoped) = c.payloads(&vendors_only, 1, 50).await;
    assert_eq!(scoped["payloads"].as_array().unwrap().len(), 1);
    assert_eq!(scoped["cursor"], 2);

    let (status, body) = c.payloads(&all, 1, 51).await;
    assert_eq!((status, error_type(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST_UNKNOWN"));
    let (status, _) = c.payloads(&all, 9, 50).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a cursor past the next payload's");
}

#[tokio::test]
async fn lost_payloads_and_expired_webhooks_are_errors_a_connector_can_recognise() {
    let config = SimConfig {
        clock_scale: 1.0,
        webhook_ttl: Duration::from_millis(600),
        payload_retention: Duration::from_millis(400),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).unwrap();
    let c = Client::new(&sim);
    let id = c.create_hook(table_data()).await;
    let vendor = |name: &str| vec![json!({"fields": {"Vendor": name}})];
    sim.create_records(DEFAULT_BASE_ID, "Vendors", vendor("One")).unwrap();
    assert_eq!(c.payloads(&id, 1, 50).await.1["cursor"], 2);
    // Payloads older than the retention are gone; reading from before them is an error.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.create_records(DEFAULT_BASE_ID, "Vendors", vendor("Two")).unwrap();
    let (status, body) = c.payloads(&id, 1, 50).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "WEBHOOK_PAYLOADS_NOT_AVAILABLE"),
        "{body}"
    );
    let (status, body) = c.payloads(&id, 2, 50).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payloads"].as_array().unwrap().len(), 1);

    // Listing payloads kept it alive past its first 600 ms; idle, it expires.
    sim.create_records(DEFAULT_BASE_ID, "Vendors", vendor("Three")).unwrap();
    assert_eq!(sim.drop_webhook_payloads(DEFAULT_BASE_ID, &id).unwrap(), 2);
    let (status, body) = c.payloads(&id, 3, 50).await;
    assert_eq!(error_type(&body), "WEBHOOK_PAYLOADS_NOT_AVAILABLE", "{status} {body}");
    assert_eq!(c.payloads(&id, 4, 50).await.0, StatusCode::OK, "the next cursor still reads");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = c.payloads(&id, 4, 50).await;
    assert_eq!((status, error_type(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert!(sim.webhook_ids(DEFAULT_BASE_ID).unwrap().is_empty());

    let id = c.create_hook(table_data()).await;
    sim.expire_webhook(DEFAULT_BASE_ID, &id).unwrap();
    assert_eq!(c.post(&format!("{HOOKS}/{id}/refresh"), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(sim.expire_webhook(DEFAULT_BASE_ID, &id).unwrap_err().status, 404);
}

#[tokio::test]
async fn webhook_requests_take_faults_and_count_against_the_base_rate_limit() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let url = c.url(HOOKS, &[]);
    sim.set_webhook_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let (status, _) = c.get(HOOKS, &[]).await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::OK, "list requests keep their own faults");
    sim.set_webhook_faults(Faults { reset_rate: 1.0, ..Faults::default() });
    let err =
        c.http.get(&url).bearer_auth(weir_airtable_sim::DEFAULT_TOKEN).send().await.expect_err("no response");
    assert!(!err.is_status(), "{err}");
    // A truncated answer to a create still created the webhook, as a lost response would.
    sim.set_webhook_faults(Faults { truncate_rate: 1.0, ..Faults::default() });
    let resp = c
        .http
        .post(&url)
        .bearer_auth(weir_airtable_sim::DEFAULT_TOKEN)
        .json(&table_data())
        .send()
        .await
        .unwrap();
    assert!(resp.bytes().await.is_err());
    assert_eq!(sim.webhook_ids(DEFAULT_BASE_ID).unwrap().len(), 1);
    assert_eq!(sim.stats().faults_injected, 3);

    sim.set_webhook_faults(Faults::default());
    let limited =
        Sim::start(SimConfig { rate_limit: true, clock_scale: 0.01, ..SimConfig::default() }).unwrap();
    let c = Client::new(&limited);
    let statuses = six_requests(&c).await;
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429], "{statuses:?}");
}

/// Three webhook listings, a create, a record listing and a listing again: six requests to one base.
async fn six_requests(c: &Client) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(c.get(HOOKS, &[]).await.0.as_u16());
    }
    out.push(c.post(HOOKS, table_data()).await.0.as_u16());
    out.push(c.list("Vendors", &[("maxRecords", "1")]).await.0.as_u16());
    out.push(c.get(HOOKS, &[]).await.0.as_u16());
    out
}
