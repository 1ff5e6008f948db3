//! The simulator through real HTTP, as a connector sees it.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use weir_airtable_sim::{DEFAULT_BASE_ID, DEFAULT_TOKEN, Faults, Sim, SimConfig};

mod common;
use common::{Client, error_type, ids, quiet, table_path};

#[tokio::test]
async fn auth_and_addressing_errors_have_airtables_statuses_and_shapes() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let path = table_path("Vendors");

    let resp = c.http.get(c.url(&path, &[])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}})
    );

    let resp = c.http.get(c.url(&path, &[])).bearer_auth("patWrong").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = c.get("/v0/appWrongBase000000/Vendors", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type(&body), "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND");
    let (status, body) = c.list("No Such Table", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong table is 403, not 404");
    assert_eq!(error_type(&body), "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND");
    let (status, body) = c.get("/v0/meta/bases/appWrongBase000000/tables", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, body) = c.get("/v1/nothing/here", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "NOT_FOUND"}));

    let stats = sim.stats();
    assert_eq!(stats.unauthorized, 2);
    assert_eq!(stats.requests, 6);
    let seen: BTreeSet<String> =
        ["Bearer patWrong".to_string(), format!("Bearer {DEFAULT_TOKEN}")].into_iter().collect();
    assert_eq!(stats.authorization_headers, seen);
}

#[tokio::test]
async fn meta_api_describes_six_linked_tables_using_every_field_type() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let (status, bases) = c.get("/v0/meta/bases", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bases["bases"][0]["id"], DEFAULT_BASE_ID);
    assert_eq!(bases["bases"][0]["name"], "Product Launch");

    let (status, meta) = c.get(&format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let tables = meta["tables"].as_array().unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "SKU Candidates",
            "Launch Milestones",
            "Compliance Records",
            "Packaging Tasks",
            "Marketing Assets",
            "Vendors"
        ]
    );
    assert_eq!(sim.table_ids().iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), names);
    let table_ids: HashSet<&str> = tables.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let mut types = HashSet::new();
    for t in tables {
        let id = t["id"].as_str().unwrap();
        assert!(id.starts_with("tbl") && id.len() == 17, "{id}");
        let fields = t["fields"].as_array().unwrap();
        assert!(fields.iter().any(|f| f["id"] == t["primaryFieldId"]));
        assert!(t["views"].as_array().unwrap().len() >= 2);
        assert_eq!(t["views"][0]["name"], "Grid view");
        for f in fields {
            let fid = f["id"].as_str().unwrap();
            assert!(fid.starts_with("fld") && fid.len() == 17, "{fid}");
            types.insert(f["type"].as_str().unwrap().to_string());
            if f["type"] == "multipleRecordLinks" {
                assert!(table_ids.contains(f["options"]["linkedTableId"].as_str().unwrap()));
            }
        }
        let lmt: Vec<&Value> = fields.iter().filter(|f| f["type"] == "lastModifiedTime").collect();
        let covers_all =
            lmt.iter().any(|f| f["options"]["referencedFieldIds"].as_array().is_some_and(Vec::is_empty));
        match t["name"].as_str().unwrap() {
            "SKU Candidates" | "Launch Milestones" | "Compliance Records" => assert!(covers_all),
            "Packaging Tasks" => assert!(!covers_all && !lmt.is_empty()),
            _ => assert!(lmt.is_empty()),
        }
    }
    let documented = [
        "singleLineText",
        "email",
        "url",
        "phoneNumber",
        "multilineText",
        "richText",
        "singleSelect",
        "multipleSelects",
        "externalSyncSource",
        "number",
        "currency",
        "percent",
        "autoNumber",
        "count",
        "rating",
        "duration",
        "checkbox",
        "date",
        "dateTime",
        "createdTime",
        "lastModifiedTime",
        "singleCollaborator",
        "createdBy",
        "lastModifiedBy",
        "multipleCollaborators",
        "multipleRecordLinks",
        "multipleAttachments",
        "barcode",
        "button",
        "aiText",
        "formula",
        "rollup",
        "multipleLookupValues",
        "manualSort",
    ];
    for t in documented {
        assert!(types.contains(t), "no field of type {t}");
    }
    assert!(types.contains("futureWidget"), "a type weir does not know");
    let all = meta.to_string();
    assert!(all.contains("\"result\":null"), "a formula with a null result");
    assert!(all.contains("🚀 Launch Ready") && all.contains("\"owner \"") && all.contains("Due.Date"));
}

#[tokio::test]
async fn paging_with_page_size_7_returns_every_record_exactly_once() {
    let sim = Sim::start(SimConfig { grow: vec![("Vendors".into(), 45)], ..quiet() }).unwrap();
    let c = Client::new(&sim);
    for table in ["SKU Candidates", "Vendors"] {
        let (_, first) = c.list(table, &[("pageSize", "7")]).await;
        assert_eq!(first["records"].as_array().unwrap().len(), 7);
        let offset = first["offset"].as_str().unwrap();
        let (itr, rec) = offset.split_once('/').unwrap();
        assert!(itr.starts_with("itr") && rec.starts_with("rec"), "{offset}");

        let paged = ids(&c.list_all(table, &[("pageSize", "7")]).await);
        let whole = ids(&c.list_all(table, &[]).await);
        assert_eq!(paged, whole, "same order whatever the page size");
        assert_eq!(paged.iter().collect::<HashSet<_>>().len(), paged.len(), "no duplicates");
        assert!(paged.iter().all(|id| id.starts_with("rec") && id.len() == 17));
    }
    assert_eq!(c.list_all("Vendors", &[("pageSize", "7")]).await.len(), 45);
    let (status, body) = c.list("Vendors", &[("pageSize", "101")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_type(&body), "INVALID_REQUEST_UNKNOWN");
    let (status, _) = c.list("Vendors", &[("cellFormat", "string")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(c.list_all("Vendors", &[("maxRecords", "10"), ("pageSize", "4")]).await.len(), 10);
}

#[tokio::test]
async fn table_is_addressed_by_name_or_id_and_fields_by_name_or_id() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let (tbl, _) = sim.table_ids().into_iter().find(|(_, n)| n == "SKU Candidates").unwrap();
    let by_name = c.list_all("SKU Candidates", &[]).await;
    let by_id = c.list_all(&tbl, &[]).await;
    assert_eq!(by_name, by_id);

    let (_, meta) = c.get(&format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"), &[]).await;
    let fields = meta["tables"][0]["fields"].as_array().unwrap();
    let fid =
        |name: &str| fields.iter().find(|f| f["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let price_id = fid("Price");

    let (_, body) = c.list("SKU Candidates", &[("fields[]", "Name"), ("fields[]", &price_id)]).await;
    for r in body["records"].as_array().unwrap() {
        let keys: HashSet<&str> = r["fields"].as_object().unwrap().keys().map(String::as_str).collect();
        assert!(keys.is_subset(&["Name", "Price"].into_iter().collect()), "{keys:?}");
    }
    assert_eq!(body["records"][0]["fields"]["Name"], "Aurora Desk Lamp");

    let (_, body) =
        c.list("SKU Candidates", &[("returnFieldsByFieldId", "true"), ("fields[]", "Name")]).await;
    assert_eq!(body["records"][0]["fields"][fid("Name")], "Aurora Desk Lamp");

    let (status, body) = c.list("SKU Candidates", &[("fields[]", "Nope")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_type(&body), "UNKNOWN_FIELD_NAME");
}

#[tokio::test]
async fn sort_view_and_filter_by_formula() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let prices = |records: &[Value]| -> Vec<f64> {
        records.iter().filter_map(|r| r["fields"]["Price"].as_f64()).collect()
    };

    let sorted = c
        .list_all(
            "SKU Candidates",
            &[("sort[0][field]", "Price"), ("sort[0][direction]", "desc"), ("pageSize", "3")],
        )
        .await;
    let p = prices(&sorted);
    assert!(p.len() >= 19 && p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");

    let view = c.list_all("SKU Candidates", &[("view", "Active only")]).await;
    let statuses: HashSet<&str> = view.iter().map(|r| r["fields"]["Status"].as_str().unwrap()).collect();
    assert!(
        !view.is_empty() && !statuses.contains("Cancelled") && !statuses.contains("Idea"),
        "{statuses:?}"
    );
    assert!(prices(&view).windows(2).all(|w| w[0] >= w[1]), "the view's sort applies");

    let launched = c.list_all("SKU Candidates", &[("filterByFormula", "{Status} = 'Launched'")]).await;
    assert_eq!(launched.len(), 5);
    let formula =
        "AND(IS_AFTER({Launch Date}, '2025-09-01'), NOT({Status} = 'Cancelled'), OR(TRUE(), FALSE()))";
    let late = c.list_all("SKU Candidates", &[("filterByFormula", formula)]).await;
    assert!(!late.is_empty());
    assert!(late.iter().all(|r| r["fields"]["Launch Date"].as_str().unwrap() > "2025-09-01"));
    let all = c.list_all("SKU Candidates", &[]).await;
    let after = c
        .list_all(
            "SKU Candidates",
            &[("filterByFormula", "IS_AFTER(LAST_MODIFIED_TIME(), '2025-01-20T00:00:00.000Z')")],
        )
        .await;
    let before = c
        .list_all(
            "SKU Candidates",
            &[("filterByFormula", "IS_BEFORE(LAST_MODIFIED_TIME(), '2025-01-20T00:00:00.000Z')")],
        )
        .await;
    assert!(!after.is_empty() && !before.is_empty());
    assert_eq!(after.len() + before.len(), all.len());
    let unchecked = c.list_all("SKU Candidates", &[("filterByFormula", "{🚀 Launch Ready} = FALSE()")]).await;
    assert!(unchecked.iter().all(|r| r["fields"].get("🚀 Launch Ready").is_none()));
    let price = c.list_all("SKU Candidates", &[("filterByFormula", "{Price} = 89")]).await;
    assert_eq!(ids(&price).len(), 1);

    for bad in ["LEN({Name}) > 3", "{No Such Field} = 1", "AND({Status} = 'x'"] {
        let (status, body) = c.list("SKU Candidates", &[("filterByFormula", bad)]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(error_type(&body), "INVALID_FILTER_BY_FORMULA");
        assert!(body["error"]["message"].as_str().unwrap().contains(bad), "{body}");
    }
}

#[tokio::test]
async fn post_list_records_equals_get() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let get = c
        .list_all(
            "Launch Milestones",
            &[
                ("pageSize", "4"),
                ("fields[]", "Milestone"),
                ("fields[]", "Due Date"),
                ("sort[0][field]", "Due Date"),
                ("sort[0][direction]", "desc"),
                ("filterByFormula", "IS_AFTER({Due Date}, '2025-03-01')"),
                ("returnFieldsByFieldId", "false"),
                ("cellFormat", "json"),
            ],
        )
        .await;
    let mut post = Vec::new();
    let mut offset: Option<String> = None;
    loop {
        let mut body = json!({
            "pageSize": 4, "fields": ["Milestone", "Due Date"], "sort": [{"field": "Due Date", "direction": "desc"}],
            "filterByFormula": "IS_AFTER({Due Date}, '2025-03-01')", "returnFieldsByFieldId": false, "cellFormat": "json",
        });
        if let Some(o) = &offset {
            body["offset"] = json!(o);
        }
        let url = c.url(&format!("{}/listRecords", table_path("Launch Milestones")), &[]);
        let (status, page) = c.send(c.http.post(url).json(&body)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        post.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["offset"].as_str() {
            Some(o) => offset = Some(o.to_string()),
            None => break,
        }
    }
    assert!(get.len() > 4, "more than one page");
    assert_eq!(get, post);
}

#[tokio::test]
async fn empty_values_are_omitted_like_airtable() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let mut empty_records = 0;
    for (_, table) in sim.table_ids() {
        for r in c.list_all(&table, &[]).await {
            let created = r["createdTime"].as_str().unwrap();
            assert!(created.starts_with("2025-") && created.ends_with(".000Z"), "{created}");
            let fields = r["fields"].as_object().unwrap();
            if fields.is_empty() {
                empty_records += 1;
            }
            for (k, v) in fields {
                let empty = v.is_null() || *v == json!(false) || *v == json!("") || *v == json!([]);
                assert!(!empty, "{table}.{k} holds an empty value {v}");
            }
        }
    }
    assert!(empty_records >= 1, "some record has \"fields\": {{}}");
}

#[tokio::test]
async fn fixture_holds_the_awkward_values_real_bases_have() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let text = |rs: Vec<Value>| Value::Array(rs).to_string();
    let milestones = text(c.list_all("Launch Milestones", &[]).await);
    for needle in [
        "\"specialValue\":\"NaN\"",
        "#ERROR!",
        "<airtable:mention",
        "\"state\":\"error\"",
        "\"errorType\"",
        "\"state\":\"empty\"",
        "\"state\":\"generated\"",
    ] {
        assert!(milestones.contains(needle), "milestones lack {needle}");
    }
    let skus = c.list_all("SKU Candidates", &[]).await;
    let vendor_ids: HashSet<String> = ids(&c.list_all("Vendors", &[]).await).into_iter().collect();
    let links: Vec<&str> = skus
        .iter()
        .filter_map(|r| r["fields"]["Vendor"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !links.is_empty() && links.iter().all(|l| vendor_ids.contains(*l)),
        "links point at existing records"
    );
    let barcodes: Vec<&Value> = skus.iter().filter_map(|r| r["fields"].get("SKU Code")).collect();
    assert!(
        barcodes.iter().any(|b| b.get("type").is_some()) && barcodes.iter().any(|b| b.get("type").is_none())
    );
    let tasks = text(c.list_all("Packaging Tasks", &[]).await);
    assert!(tasks.contains("\"url\":null") && tasks.contains("\"url\":\"https://"));
    let assets = text(c.list_all("Marketing Assets", &[]).await);
    assert!(assets.contains("\"thumbnails\""));
}

#[tokio::test]
async fn writes_are_read_back_and_move_last_modified_time() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let path = table_path("SKU Candidates");
    let before_writes = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let (status, created) = c
        .send(c.http.post(c.url(&path, &[])).json(&json!({"records": [{"fields": {"Name": "Zephyr Kettle", "Price": 49.5, "🚀 Launch Ready": false}}]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let rec = created["records"][0].clone();
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["fields"]["Name"], "Zephyr Kettle");
    assert!(rec["fields"].get("🚀 Launch Ready").is_none(), "false is omitted");
    let first_modified = rec["fields"]["Last Modified"].as_str().unwrap().to_string();

    let all = c.list_all("SKU Candidates", &[]).await;
    assert_eq!(all.last().unwrap()["id"], id.as_str(), "new records come last in creation order");

    let (status, patched) = c
        .send(
            c.http
                .patch(c.url(&path, &[]))
                .json(&json!({"records": [{"id": id, "fields": {"Status": "Approved"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["records"][0]["fields"]["Name"], "Zephyr Kettle", "PATCH merges");
    let second_modified = patched["records"][0]["fields"]["Last Modified"].as_str().unwrap();
    assert!(second_modified > first_modified.as_str(), "{second_modified} > {first_modified}");

    // The seed's records were all modified in 2025; only the written one is newer.
    let cursor = format!("IS_AFTER({{Last Modified}}, '{before_writes}')");
    let changed = c.list_all("SKU Candidates", &[("filterByFormula", &cursor)]).await;
    assert_eq!(ids(&changed), vec![id.clone()]);

    let (status, body) = c
        .send(c.http.patch(c.url(&path, &[])).json(&json!({"records": [{"id": id, "fields": {"Row #": 5}}]})))
        .await;
    assert_eq!((status, error_type(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_VALUE_FOR_COLUMN"));

    let (status, body) = c.send(c.http.delete(c.url(&path, &[("records[]", &id)]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"records": [{"id": id, "deleted": true}]}));
    assert!(!ids(&c.list_all("SKU Candidates", &[]).await).contains(&id));
}

#[tokio::test]
async fn a_last_modified_time_watching_some_fields_ignores_other_edits() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let path = table_path("Packaging Tasks");
    let first = c.list_all("Packaging Tasks", &[("maxRecords", "1")]).await.remove(0);
    let id = first["id"].as_str().unwrap();
    let before = first["fields"]["Status Changed"].clone();
    let edit = |fields: Value| json!({"records": [{"id": id, "fields": fields}]});
    let (_, out) =
        c.send(c.http.patch(c.url(&path, &[])).json(&edit(json!({"Notes": "unwatched edit"})))).await;
    assert_eq!(out["records"][0]["fields"]["Status Changed"], before, "an unwatched field does not move it");
    let (_, out) = c.send(c.http.patch(c.url(&path, &[])).json(&edit(json!({"Status": "Blocked"})))).await;
    assert_ne!(out["records"][0]["fields"]["Status Changed"], before, "a watched field does");
}

#[tokio::test]
async fn rate_limit_answers_429_then_keeps_the_penalty() {
    // Penalty 30 s × 0.05 = 1.5 s: longer than the 1 s window, so the penalty is what is observed.
    let sim = Sim::start(SimConfig { rate_limit: true, clock_scale: 0.05, ..SimConfig::default() }).unwrap();
    let c = Client::new(&sim);
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::OK);
    }
    let (status, body) = c.list("Vendors", &[]).await;
    assert!(start.elapsed() < Duration::from_secs(1), "the test machine is too slow to burst");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_type(&body), "RATE_LIMIT_REACHED");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::TOO_MANY_REQUESTS, "still inside the penalty");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::OK, "the penalty is over");
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.max_requests_in_any_second, 5);
}

#[tokio::test]
async fn iterators_expire_on_restart_and_when_idle() {
    let sim = Sim::start(SimConfig {
        iterator_ttl: Duration::from_millis(200),
        clock_scale: 1.0,
        ..SimConfig::default()
    })
    .unwrap();
    let c = Client::new(&sim);
    let (_, first) = c.list("Vendors", &[("pageSize", "3")]).await;
    let offset = first["offset"].as_str().unwrap().to_string();
    assert_eq!(c.list("Vendors", &[("pageSize", "3"), ("offset", &offset)]).await.0, StatusCode::OK);
    sim.expire_iterators();
    let (status, body) = c.list("Vendors", &[("pageSize", "3"), ("offset", &offset)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_type(&body), "LIST_RECORDS_ITERATOR_NOT_AVAILABLE");

    let (_, first) = c.list("Vendors", &[("pageSize", "3")]).await;
    let offset = first["offset"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = c.list("Vendors", &[("pageSize", "3"), ("offset", &offset)]).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")
    );
    let (status, _) = c.list("Vendors", &[("offset", "itrMadeUp000000/recMadeUp000000")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn each_fault_kind_is_observable() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let url = c.url(&table_path("Vendors"), &[]);
    let (_, first) = c.list("Vendors", &[("pageSize", "2")]).await;
    let offset = first["offset"].as_str().unwrap().to_string();

    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let (status, body) = c.list("Vendors", &[]).await;
    assert!([500, 502, 503].contains(&status.as_u16()), "{status}");
    assert!(body["error"]["type"].is_string() && body["error"]["message"].is_string());
    let (status, _) = c.get("/v0/meta/bases", &[]).await;
    assert!(status.is_server_error(), "meta requests fail too");

    sim.set_faults(Faults { reset_rate: 1.0, ..Faults::default() });
    let err = c.http.get(&url).bearer_auth(DEFAULT_TOKEN).send().await.expect_err("no response");
    assert!(!err.is_status(), "{err}");

    sim.set_faults(Faults { truncate_rate: 1.0, ..Faults::default() });
    let resp = c.http.get(&url).bearer_auth(DEFAULT_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.is_err(), "the body is cut short");

    sim.set_faults(Faults { expire_rate: 1.0, ..Faults::default() });
    assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::OK, "no offset, no expiry");
    let (status, body) = c.list("Vendors", &[("pageSize", "2"), ("offset", &offset)]).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE")
    );

    sim.set_faults(Faults { latency: Duration::from_millis(150), ..Faults::default() });
    let t = Instant::now();
    assert_eq!(c.list("Vendors", &[]).await.0, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));

    assert_eq!(sim.stats().faults_injected, 5);
    // Writes are never faulted: a test changing the source between runs must not flake.
    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let (status, _) =
        c.send(c.http.post(&url).json(&json!({"records": [{"fields": {"Vendor": "Faultless"}}]}))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn faults_are_deterministic_from_the_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let faults = Faults { error_rate: 0.5, ..Faults::default() };
        let sim = Sim::start(SimConfig { seed, faults, ..quiet() }).unwrap();
        let c = Client::new(&sim);
        let mut out = Vec::new();
        for _ in 0..16 {
            out.push(c.list("Vendors", &[("maxRecords", "1")]).await.0.as_u16());
        }
        out
    }
    let a = statuses(7).await;
    assert_eq!(a, statuses(7).await);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");
}

#[tokio::test]
async fn generator_is_deterministic_in_the_seed() {
    async fn dump(seed: u64) -> Vec<Value> {
        let sim =
            Sim::start(SimConfig { seed, grow: vec![("Packaging Tasks".into(), 300)], ..quiet() }).unwrap();
        Client::new(&sim).list_all("Packaging Tasks", &[]).await
    }
    let a = dump(42).await;
    assert_eq!(a.len(), 300);
    assert_eq!(a, dump(42).await);
    let b = dump(43).await;
    assert_ne!(ids(&a), ids(&b), "another seed gives other records");
    let grown = &a[200]["fields"];
    assert!(grown["Task"].is_string() || grown.as_object().unwrap().len() > 3, "{grown}");
}

#[tokio::test]
async fn a_100k_row_table_pages_to_its_end_and_filters() {
    // Costs are figures, not assertions: `cargo bench -p weir-airtable-sim --bench listing`
    // prints them at a million rows. Timing a shared test machine only makes a flaky test.
    let sim = Sim::start(SimConfig { grow: vec![("SKU Candidates".into(), 100_000)], ..quiet() }).unwrap();
    let c = Client::new(&sim);
    let (_, mut page) = c.list("SKU Candidates", &[]).await;
    let mut seen = page["records"].as_array().unwrap().len();
    let mut pages = 1;
    while let Some(o) = page["offset"].as_str().map(str::to_string) {
        if pages == 200 {
            break;
        }
        page = c.list("SKU Candidates", &[("offset", &o)]).await.1;
        seen += page["records"].as_array().unwrap().len();
        pages += 1;
    }
    assert_eq!(seen, 20_000);
    let tail = c.list_all("SKU Candidates", &[("filterByFormula", "{Row #} = 100000")]).await;
    assert_eq!(tail.len(), 1);
}

#[tokio::test]
async fn update_field_renames_a_field_and_records_follow_by_field_id() {
    let sim = Sim::start(quiet()).unwrap();
    let c = Client::new(&sim);
    let (_, meta) = c.get(&format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"), &[]).await;
    let vendors = meta["tables"].as_array().unwrap().iter().find(|t| t["name"] == "Vendors").unwrap();
    let email = vendors["fields"].as_array().unwrap().iter().find(|f| f["name"] == "Contact Email").unwrap();
    let fid = email["id"].as_str().unwrap();
    let before: Vec<Value> = c.list_all("Vendors", &[]).await;
    let field_path = |f: &str| format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables/Vendors/fields/{f}");

    let resp = c.http.patch(c.url(&field_path(fid), &[])).json(&json!({"name": "X"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "auth as elsewhere");
    let (status, body) =
        c.send(c.http.patch(c.url(&field_path(fid), &[])).json(&json!({"type": "email"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_type(&body), "INVALID_REQUEST_UNKNOWN");
    let (status, _) =
        c.send(c.http.patch(c.url(&field_path("fldNoSuchField0000"), &[])).json(&json!({"name": "X"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = c
        .send(
            c.http
                .patch(c.url(&field_path(fid), &[]))
                .json(&json!({"name": "Primary Contact Email", "description": "who to write to"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], fid);
    assert_eq!(body["name"], "Primary Contact Email");
    assert_eq!(body["type"], email["type"]);
    assert_eq!(body["description"], "who to write to");

    let (_, meta) = c.get(&format!("/v0/meta/bases/{DEFAULT_BASE_ID}/tables"), &[]).await;
    let vendors = meta["tables"].as_array().unwrap().iter().find(|t| t["name"] == "Vendors").unwrap();
    let names: Vec<&Value> = vendors["fields"].as_array().unwrap().iter().map(|f| &f["name"]).collect();
    assert!(names.contains(&&json!("Primary Contact Email")) && !names.contains(&&json!("Contact Email")));
    let after = c.list_all("Vendors", &[]).await;
    let emails = |records: &[Value], name: &str| -> Vec<Value> {
        records.iter().map(|r| r["fields"].get(name).cloned().unwrap_or(Value::Null)).collect()
    };
    assert!(emails(&before, "Contact Email").iter().any(|v| !v.is_null()));
    assert_eq!(emails(&after, "Primary Contact Email"), emails(&before, "Contact Email"));
    assert!(emails(&after, "Contact Email").iter().all(Value::is_null));
}

const SECOND_BASE: &str = "appSecondLaunch01";

#[tokio::test]
async fn several_bases_each_serve_their_own_copy_of_the_seed() {
    let config =
        SimConfig { extra_bases: vec![SECOND_BASE.into()], grow: vec![("Vendors".into(), 30)], ..quiet() };
    let sim = Sim::start(config).unwrap();
    let c = Client::new(&sim);
    let (status, bases) = c.get("/v0/meta/bases", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        bases,
        json!({"bases": [
            {"id": DEFAULT_BASE_ID, "name": "Product Launch", "permissionLevel": "create"},
            {"id": SECOND_BASE, "name": "Product Launch 2", "permissionLevel": "create"},
        ]})
    );
    assert_eq!(sim.base_ids(), [DEFAULT_BASE_ID, SECOND_BASE]);

    let (status, meta) = c.get(&format!("/v0/meta/bases/{SECOND_BASE}/tables"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["tables"].as_array().unwrap().len(), 6);
    assert_eq!(sim.table_ids_of(SECOND_BASE).unwrap(), sim.table_ids());
    assert_eq!(sim.table_ids_of("appNoSuchBase0000").unwrap_err().status, 403);

    let first = c.list_all_in(DEFAULT_BASE_ID, "Vendors", &[]).await;
    let second = c.list_all_in(SECOND_BASE, "Vendors", &[]).await;
    assert_eq!((first.len(), second.len()), (30, 30), "grown alike");
    let first_ids: HashSet<String> = ids(&first).into_iter().collect();
    assert!(ids(&second).iter().all(|id| !first_ids.contains(id)), "no record id is shared");
    let names = |rs: &[Value]| rs.iter().map(|r| r["fields"]["Vendor"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&first[..10]), names(&second[..10]), "the same seed content");

    // A write to one base leaves the other alone, through HTTP and through Sim's writes API.
    let path = format!("/v0/{SECOND_BASE}/Vendors");
    let (status, _) = c
        .send(c.http.post(c.url(&path, &[])).json(&json!({"records": [{"fields": {"Vendor": "Only Here"}}]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let made = sim
        .create_records(SECOND_BASE, "Vendors", vec![json!({"fields": {"Vendor": "Also Only Here"}})])
        .unwrap();
    assert_eq!(made[0]["fields"]["Vendor"], "Also Only Here");
    assert_eq!(c.list_all_in(SECOND_BASE, "Vendors", &[]).await.len(), 32);
    assert_eq!(c.list_all_in(DEFAULT_BASE_ID, "Vendors", &[]).await.len(), 30);
    let err = sim.create_records(SECOND_BASE, "Vendors", vec![json!({"fields": {"Nope": 1}})]).unwrap_err();
    assert_eq!((err.status, err.kind.as_str()), (422, "UNKNOWN_FIELD_NAME"));

    let stats = sim.stats();
    assert_eq!(stats.bases[SECOND_BASE].requests, 4, "meta, list, create, list: {stats:?}");
    assert_eq!(stats.bases[DEFAULT_BASE_ID].requests, 2);
}

#[tokio::test]
async fn meta_bases_pages_by_a_thousand() {
    let extra: Vec<String> = (0..1000).map(|i| format!("appExtra{i:09}")).collect();
    let sim = Sim::start(SimConfig { extra_bases: extra.clone(), ..quiet() }).unwrap();
    let c = Client::new(&sim);
    let (_, page) = c.get("/v0/meta/bases", &[]).await;
    assert_eq!(page["bases"].as_array().unwrap().len(), 1000);
    let offset = page["offset"].as_str().expect("a second page").to_string();
    let (status, rest) = c.get("/v0/meta/bases", &[("offset", &offset)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        rest["bases"],
        json!([{"id": "appExtra000000999", "name": "Product Launch 1001", "permissionLevel": "create"}])
    );
    assert!(rest.get("offset").is_none());
    let (status, body) = c.get("/v0/meta/bases", &[("offset", "nonsense")]).await;
    assert_eq!((status, error_type(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_OFFSET_VALUE"));
    let (status, _) = c.list_in("appExtra000000500", "Vendors", &[("maxRecords", "1")]).await;
    assert_eq!(status, StatusCode::OK, "every base answers");
}

#[tokio::test]
async fn the_rate_limit_is_per_base_and_50_per_second_per_token() {
    let bases: Vec<String> = (0..10).map(|i| format!("appRate{i:010}")).collect();
    let config =
        SimConfig { rate_limit: true, clock_scale: 0.05, extra_bases: bases.clone(), ..SimConfig::default() };
    let sim = Sim::start(config).unwrap();
    let c = Client::new(&sim);
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(c.list_in(DEFAULT_BASE_ID, "Vendors", &[("maxRecords", "1")]).await.0, StatusCode::OK);
    }
    assert_eq!(c.list_in(DEFAULT_BASE_ID, "Vendors", &[]).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        c.list_in(&bases[0], "Vendors", &[]).await.0,
        StatusCode::OK,
        "another base has its own budget"
    );
    // 6 accepted so far; 44 more fill the token's 50 across the other bases.
    for i in 0..44 {
        let (status, body) = c.list_in(&bases[1 + i % 9], "Vendors", &[("maxRecords", "1")]).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let (status, body) = c.list_in(&bases[0], "Vendors", &[]).await;
    assert!(start.elapsed() < Duration::from_secs(1), "the test machine is too slow to burst");
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_REACHED"),
        "the 51st in a second"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        c.list_in(&bases[5], "Vendors", &[]).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the token's penalty holds every base"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.list_in(&bases[5], "Vendors", &[]).await.0, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.max_token_requests_in_any_second, 50);
    assert_eq!(stats.max_requests_in_any_second, 5);
    assert_eq!(stats.rate_limited, 3);
    assert_eq!(stats.bases[DEFAULT_BASE_ID].rate_limited, 1);
    assert_eq!(stats.bases[&bases[0]].requests, 2);
}

/// A cdc listing (bounded on Last Modified, sorted by it) against the same listing with a second
/// sort on `Row #` (an autoNumber, so the same order and ties), which takes the general path of
/// filtering and sorting the whole table: page by page equal, while records are edited, deleted
/// and created between pages.
#[tokio::test]
async fn a_cdc_listing_pages_through_writes_exactly_as_a_full_sort_does() {
    for variant in ["bounds", "wrapped", "lower bound only"] {
        let sim = Sim::start(SimConfig { grow: vec![("SKU Candidates".into(), 400)], ..quiet() }).unwrap();
        let c = Client::new(&sim);
        let all = c.list_all("SKU Candidates", &[("sort[0][field]", "Last Modified")]).await;
        let time = |i: usize| all[i]["fields"]["Last Modified"].as_str().unwrap().to_string();
        let bounds = format!(
            "AND(IS_AFTER({{Last Modified}}, '{}'), NOT(IS_AFTER({{Last Modified}}, '{}')))",
            time(40),
            time(300)
        );
        // Without an upper bound, an edited record moves to the end of the range: the listing
        // must still show it once, where it was when the listing started.
        let formula = match variant {
            "bounds" => bounds,
            "wrapped" => format!("AND(NOT({{Status}} = 'Cancelled'), {bounds})"),
            _ => format!("IS_AFTER({{Last Modified}}, '{}')", time(40)),
        };
        let page = |general: bool, offset: Option<String>| {
            let (c, formula) = (&c, &formula);
            async move {
                let mut q = vec![
                    ("filterByFormula", formula.as_str()),
                    ("sort[0][field]", "Last Modified"),
                    ("sort[0][direction]", "asc"),
                    ("pageSize", "17"),
                ];
                if general {
                    q.push(("sort[1][field]", "Row #"));
                }
                if let Some(o) = &offset {
                    q.push(("offset", o));
                }
                let (status, body) = c.list("SKU Candidates", &q).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body
            }
        };
        let (mut fast, mut slow) = (page(false, None).await, page(true, None).await);
        let mut pages = 0;
        loop {
            assert_eq!(ids(fast["records"].as_array().unwrap()), ids(slow["records"].as_array().unwrap()));
            assert_eq!(fast["records"], slow["records"], "the same current content");
            pages += 1;
            let (Some(fo), Some(so)) = (fast["offset"].as_str(), slow["offset"].as_str()) else {
                assert_eq!(fast.get("offset"), slow.get("offset"));
                break;
            };
            let (fo, so) = (fo.to_string(), so.to_string());
            // Edit a record ahead of the listing and one behind it (both move to now), delete one, add one.
            let ahead = &all[101 + pages * 2]["id"];
            let behind = &all[45 + pages]["id"];
            sim.update_records(
                DEFAULT_BASE_ID,
                "SKU Candidates",
                vec![json!({"id": ahead, "fields": {"Status": "Approved"}})],
            )
            .unwrap();
            sim.update_records(
                DEFAULT_BASE_ID,
                "SKU Candidates",
                vec![json!({"id": behind, "fields": {"Name": "Edited"}})],
            )
            .unwrap();
            sim.delete_records(
                DEFAULT_BASE_ID,
                "SKU Candidates",
                &[all[250 - pages * 4]["id"].as_str().unwrap()],
            )
            .unwrap();
            sim.create_records(DEFAULT_BASE_ID, "SKU Candidates", vec![json!({"fields": {"Name": "New"}})])
                .unwrap();
            fast = page(false, Some(fo)).await;
            slow = page(true, Some(so)).await;
        }
        assert!(pages > 5, "{pages} pages");
    }
}
