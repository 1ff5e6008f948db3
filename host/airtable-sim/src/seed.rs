//! The *Product Launch* base the simulator serves: six linked tables that together use every field
//! type in AIRTABLE.md, with the awkward values real bases hold (special rollup values, aiText in
//! every state, colliding and emoji field names, records with no fields at all).
//!
//! Schema ids (tbl/fld/viw/sel/usr) are derived from names, so they are the same for every seed;
//! record ids come from the seed.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::formula::Expr;
use crate::store::{
    Base, FieldDef, Record, Table, ViewDef, format_time, format_time_for, parse_time, set_cell,
};

/// The base's display name.
pub(crate) const BASE_NAME: &str = "Product Launch";

/// A small, stable PRNG (SplitMix64) so fixtures are identical on every platform and rand version.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// FNV-1a, to derive stable ids from names.
pub(crate) fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` + 14 alphanumerics, like Airtable's ids.
pub(crate) fn ident(prefix: &str, rng: &mut SplitMix) -> String {
    let mut s = String::with_capacity(17);
    s.push_str(prefix);
    for _ in 0..14 {
        s.push(ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char);
    }
    s
}

fn stable_id(prefix: &str, key: &str) -> String {
    ident(prefix, &mut SplitMix(hash(key)))
}

/// The six tables, in the order the meta API lists them.
pub(crate) const TABLES: [&str; 6] = [
    "SKU Candidates",
    "Launch Milestones",
    "Compliance Records",
    "Packaging Tasks",
    "Marketing Assets",
    "Vendors",
];

fn tid(table: &str) -> String {
    stable_id("tbl", table)
}

fn fid(table: &str, field: &str) -> String {
    stable_id("fld", &format!("{table}/{field}"))
}

/// The base's collaborators: (name, email).
const PEOPLE: [(&str, &str); 5] = [
    ("Dana Li", "dana.li@brightlaunch.example"),
    ("Marco Rossi", "marco.rossi@brightlaunch.example"),
    ("Priya Natarajan", "priya.n@brightlaunch.example"),
    ("Sam O'Connor", "sam.oconnor@brightlaunch.example"),
    ("Launch Bot", "automations@brightlaunch.example"),
];

/// A collaborator cell for person `i`.
pub(crate) fn user(i: usize) -> Value {
    static CELLS: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
        PEOPLE
            .iter()
            .map(|(name, email)| json!({"id": stable_id("usr", email), "email": email, "name": name}))
            .collect()
    });
    CELLS[i % PEOPLE.len()].clone()
}

/// Number of people in the base.
pub(crate) const PEOPLE_COUNT: usize = PEOPLE.len();

fn choices(table: &str, field: &str, names: &[&str]) -> Value {
    const COLORS: [&str; 6] =
        ["blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2", "redLight2"];
    let list: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"id": stable_id("sel", &format!("{table}/{field}/{n}")), "name": n, "color": COLORS[i % 6]}))
        .collect();
    json!({ "choices": list })
}

fn date_opts() -> Value {
    json!({"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}})
}

fn datetime_result() -> Value {
    json!({"type": "dateTime", "options": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}, "timeFormat": {"name": "24hour", "format": "HH:mm"}, "timeZone": "utc"}})
}

fn currency() -> Value {
    json!({"precision": 2, "symbol": "$"})
}

/// Builds one table's schema.
struct Schema {
    name: &'static str,
    fields: Vec<FieldDef>,
}

impl Schema {
    fn new(name: &'static str) -> Self {
        Schema { name, fields: Vec::new() }
    }

    fn f(&mut self, name: &str, ftype: &str, options: Value) -> &mut Self {
        self.fields.push(FieldDef {
            id: fid(self.name, name),
            name: name.to_string(),
            ftype: ftype.to_string(),
            description: None,
            options: (!options.is_null()).then_some(options),
        });
        self
    }

    fn describe(&mut self, text: &str) -> &mut Self {
        if let Some(f) = self.fields.last_mut() {
            f.description = Some(text.to_string());
        }
        self
    }

    fn link(&mut self, name: &str, to: &str, inverse: Option<&str>, single: bool) -> &mut Self {
        let mut o = json!({"linkedTableId": tid(to), "isReversed": false, "prefersSingleRecordLink": single});
        if let Some(inv) = inverse {
            o["inverseLinkFieldId"] = json!(fid(to, inv));
        }
        self.f(name, "multipleRecordLinks", o)
    }

    fn lookup(&mut self, name: &str, link: &str, to: &str, source: &str, result: Value) -> &mut Self {
        let o = json!({"isValid": true, "recordLinkFieldId": fid(self.name, link), "fieldIdInLinkedTable": fid(to, source), "result": result});
        self.f(name, "multipleLookupValues", o)
    }

    fn rollup(
        &mut self,
        name: &str,
        link: &str,
        to: &str,
        source: &str,
        formula: &str,
        result: Value,
    ) -> &mut Self {
        let o = json!({"isValid": true, "recordLinkFieldId": fid(self.name, link), "fieldIdInLinkedTable": fid(to, source), "referencedFieldIds": [], "formula": formula, "result": result});
        self.f(name, "rollup", o)
    }

    fn formula(&mut self, name: &str, text: &str, refs: &[&str], result: Value) -> &mut Self {
        let refs: Vec<String> = refs.iter().map(|r| fid(self.name, r)).collect();
        let valid = !result.is_null();
        let o = json!({"isValid": valid, "formula": text, "referencedFieldIds": refs, "result": result});
        self.f(name, "formula", o)
    }

    fn last_modified(&mut self, name: &str, watched: &[&str]) -> &mut Self {
        let refs: Vec<String> = watched.iter().map(|r| fid(self.name, r)).collect();
        let o = json!({"isValid": true, "referencedFieldIds": refs, "result": datetime_result()});
        self.f(name, "lastModifiedTime", o)
    }
}

fn schemas() -> Vec<(Schema, &'static str)> {
    let mut sku = Schema::new("SKU Candidates");
    sku.f("Name", "singleLineText", Value::Null)
        .describe("Working product name")
        .f("SKU Code", "barcode", Value::Null)
        .f(
            "Status",
            "singleSelect",
            choices("SKU Candidates", "Status", &["Idea", "Evaluating", "Approved", "Launched", "Cancelled"]),
        )
        .f("Price", "currency", currency())
        .f("Unit Cost", "number", json!({"precision": 2}))
        .formula(
            "Margin",
            "IF({Price}, ({Price} - {Unit Cost}) / {Price})",
            &["Price", "Unit Cost"],
            json!({"type": "percent", "options": {"precision": 1}}),
        )
        .f("Discount", "percent", json!({"precision": 1}))
        .f("Launch Date", "date", date_opts())
        .f(
            "Channels",
            "multipleSelects",
            choices("SKU Candidates", "Channels", &["Retail", "Online", "Wholesale", "Subscription"]),
        )
        .link("Vendor", "Vendors", Some("SKUs"), true)
        .lookup("Vendor Email", "Vendor", "Vendors", "Contact Email", json!({"type": "email"}))
        .f("🚀 Launch Ready", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .formula(
            "Premium",
            "{Price} >= 100",
            &["Price"],
            json!({"type": "checkbox", "options": {"icon": "check", "color": "yellowBright"}}),
        )
        .formula(
            "Label",
            "{Name} & ' · ' & {SKU Code}",
            &["Name", "SKU Code"],
            json!({"type": "singleLineText"}),
        )
        .f("Customer Rating", "rating", json!({"icon": "star", "max": 5, "color": "yellowBright"}))
        .f("Description", "richText", Value::Null)
        .f("Product Page", "url", Value::Null)
        .f("Row #", "autoNumber", Value::Null)
        .f("Created", "createdTime", json!({"result": datetime_result()}))
        .last_modified("Last Modified", &[])
        .f("Created By", "createdBy", Value::Null)
        .f("Last Modified By", "lastModifiedBy", Value::Null)
        .f("Shelf Plan", "futureWidget", json!({"layout": "planogram"}))
        .describe("A field type this simulator invents to stand for types Airtable adds later");

    let mut ms = Schema::new("Launch Milestones");
    ms.f("Milestone", "singleLineText", Value::Null)
        .f("Owner", "singleCollaborator", Value::Null)
        .f("owner ", "singleLineText", Value::Null)
        .describe("Legacy free-text owner, kept from the spreadsheet import")
        .f("Reviewers", "multipleCollaborators", Value::Null)
        .f("Due Date", "date", date_opts())
        .f("Due.Date", "dateTime", json!({"timeZone": "utc", "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}, "timeFormat": {"name": "24hour", "format": "HH:mm"}}))
        .f("Phase", "singleSelect", choices("Launch Milestones", "Phase", &["Plan", "Build", "Certify", "Launch"]))
        .link("SKUs", "SKU Candidates", None, false)
        .f("SKU Count", "count", json!({"isValid": true, "recordLinkFieldId": fid("Launch Milestones", "SKUs")}))
        .rollup("Launch Budget", "SKUs", "SKU Candidates", "Price", "SUM(values)", json!({"type": "currency", "options": currency()}))
        .f("Notes", "multilineText", Value::Null)
        .f("Effort", "duration", json!({"durationFormat": "h:mm:ss.S"}))
        .formula("Days Late", "DATETIME_DIFF(NOW(), {Due Date}, 'days'", &[], Value::Null)
        .describe("A broken formula: Airtable reports no result type")
        .f("Summary", "aiText", json!({"prompt": ["Summarise ", {"field": {"fieldId": fid("Launch Milestones", "Notes")}}], "referencedFieldIds": [fid("Launch Milestones", "Notes")]}))
        .f("Done", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .last_modified("Last Modified", &[])
        .f("Milestone #", "autoNumber", Value::Null);

    let mut cr = Schema::new("Compliance Records");
    cr.f("Certificate", "singleLineText", Value::Null)
        .f(
            "Body",
            "singleSelect",
            choices("Compliance Records", "Body", &["UL", "FCC", "CE", "RoHS", "FDA", "Prop 65"]),
        )
        .link("SKU", "SKU Candidates", None, true)
        .lookup("SKU Name", "SKU", "SKU Candidates", "Name", json!({"type": "singleLineText"}))
        .f("Issued", "date", date_opts())
        .f("Expires", "date", date_opts())
        .formula(
            "Expires Soon",
            "IS_BEFORE({Expires}, '2026-01-01')",
            &["Expires"],
            json!({"type": "checkbox", "options": {"icon": "check", "color": "redBright"}}),
        )
        .formula(
            "Days Valid",
            "DATETIME_DIFF({Expires}, {Issued}, 'days')",
            &["Expires", "Issued"],
            json!({"type": "number", "options": {"precision": 0}}),
        )
        .f("Certificate Scan", "multipleAttachments", json!({"isReversed": false}))
        .f("Verified", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .f("Auditor Email", "email", Value::Null)
        .f(
            "Source",
            "externalSyncSource",
            choices("Compliance Records", "Source", &["Regulatory DB", "Vendor portal"]),
        )
        .last_modified("Last Modified", &[]);

    let mut pt = Schema::new("Packaging Tasks");
    pt.f("Task", "singleLineText", Value::Null)
        .f("Assignee", "singleCollaborator", Value::Null)
        .link("SKU", "SKU Candidates", None, true)
        .f(
            "Status",
            "singleSelect",
            choices("Packaging Tasks", "Status", &["Todo", "In progress", "Blocked", "Done"]),
        )
        .f("Progress", "percent", json!({"precision": 0}))
        .f("Priority", "rating", json!({"icon": "flag", "max": 3, "color": "redBright"}))
        .f("Time Spent", "duration", json!({"durationFormat": "h:mm"}))
        .f("Dieline", "multipleAttachments", json!({"isReversed": false}))
        .f("Open Dieline", "button", json!({"label": "Open dieline", "variant": "default"}))
        .formula("Label Text", "UPPER({Task})", &["Task"], json!({"type": "singleLineText"}))
        .f("Done", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .last_modified("Status Changed", &["Status", "Progress"])
        .describe("Watches only Status and Progress")
        .f("Notes", "multilineText", Value::Null);

    let mut ma = Schema::new("Marketing Assets");
    ma.f("Asset", "singleLineText", Value::Null)
        .f("Files", "multipleAttachments", json!({"isReversed": false}))
        .f("Channels", "multipleSelects", choices("Marketing Assets", "Channels", &["Instagram", "TikTok", "Email", "Retail POS", "Web"]))
        .link("SKUs", "SKU Candidates", None, false)
        .f("Copy", "richText", Value::Null)
        .f("Caption", "aiText", json!({"prompt": ["Write a caption for ", {"field": {"fieldId": fid("Marketing Assets", "Asset")}}], "referencedFieldIds": [fid("Marketing Assets", "Asset")]}))
        .f("Budget", "currency", currency())
        .f("Preview", "button", json!({"label": "Preview", "variant": "primary"}))
        .f("Approved", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .f("Sort", "manualSort", Value::Null);

    let mut v = Schema::new("Vendors");
    v.f("Vendor", "singleLineText", Value::Null)
        .f("Contact Email", "email", Value::Null)
        .f("Phone", "phoneNumber", Value::Null)
        .f("Website", "url", Value::Null)
        .f("Country", "singleSelect", choices("Vendors", "Country", &["China", "USA", "Mexico", "Germany", "Japan", "Vietnam"]))
        .f("Account Manager", "singleCollaborator", Value::Null)
        .link("SKUs", "SKU Candidates", Some("Vendor"), false)
        .f("SKU Count", "count", json!({"isValid": true, "recordLinkFieldId": fid("Vendors", "SKUs")}))
        .rollup("Avg SKU Price", "SKUs", "SKU Candidates", "Price", "AVERAGE(values)", json!({"type": "currency", "options": currency()}))
        .f("Reliability", "rating", json!({"icon": "star", "max": 5, "color": "yellowBright"}))
        .f("Lead Time", "duration", json!({"durationFormat": "h:mm"}))
        .f("Notes", "multilineText", Value::Null)
        .f("Preferred", "checkbox", json!({"icon": "check", "color": "greenBright"}))
        .f("Created", "createdTime", json!({"result": {"type": "date", "options": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}}}}))
        .f("Created By", "createdBy", Value::Null)
        .f("Portal Widget", "futureWidget", Value::Null);

    vec![
        (sku, "Candidate products for the autumn launch"),
        (ms, "Dated steps to launch day"),
        (cr, "Certificates each SKU needs before it ships"),
        (pt, "Packaging design and print work"),
        (ma, "Creative for the launch campaign"),
        (v, "Suppliers and their contacts"),
    ]
}

fn views(table: &str, t: &Table) -> Vec<ViewDef> {
    let f = |name: &str| t.field(name).map(|f| f.id.clone()).unwrap_or_default();
    let eq =
        |name: &str, v: &str| Expr::Eq(Box::new(Expr::Field(f(name))), Box::new(Expr::Str(v.to_string())));
    let (name, filter, sort) = match table {
        "SKU Candidates" => (
            "Active only",
            Expr::Or(vec![eq("Status", "Evaluating"), eq("Status", "Approved"), eq("Status", "Launched")]),
            vec![(f("Price"), true)],
        ),
        "Launch Milestones" => {
            ("Open milestones", Expr::Not(Box::new(Expr::Field(f("Done")))), vec![(f("Due Date"), false)])
        }
        "Compliance Records" => {
            ("Verified, expiring first", Expr::Field(f("Verified")), vec![(f("Expires"), false)])
        }
        "Packaging Tasks" => ("Active only", Expr::Not(Box::new(eq("Status", "Done"))), vec![]),
        "Marketing Assets" => ("Approved", Expr::Field(f("Approved")), vec![(f("Budget"), true)]),
        _ => ("Preferred", Expr::Field(f("Preferred")), vec![(f("Vendor"), false)]),
    };
    vec![
        ViewDef {
            id: stable_id("viw", &format!("{table}/Grid view")),
            name: "Grid view".into(),
            filter: None,
            sort: vec![],
        },
        ViewDef {
            id: stable_id("viw", &format!("{table}/{name}")),
            name: name.into(),
            filter: Some(filter),
            sort,
        },
    ]
}

fn attachment(name: &str, mime: &str, size: u64, dims: Option<(u32, u32)>) -> Value {
    let id = stable_id("att", name);
    let url = |kind: &str| format!("https://v5.airtableusercontent.com/v3/u/sim/{id}/{kind}/{name}");
    let mut a = json!({"id": id, "url": url("full"), "filename": name, "size": size, "type": mime});
    if let Some((w, h)) = dims {
        a["width"] = json!(w);
        a["height"] = json!(h);
        let thumb = |kind: &str, tw: u32| json!({"url": url(kind), "width": tw, "height": tw * h / w.max(1)});
        a["thumbnails"] = json!({"small": thumb("small", 36 * w / h.max(1)), "large": thumb("large", 512), "full": thumb("full", w)});
    } else if mime == "application/pdf" {
        // PDFs get thumbnails without the original's dimensions.
        a["thumbnails"] = json!({"small": {"url": url("small"), "width": 26, "height": 36}, "large": {"url": url("large"), "width": 512, "height": 724}});
    }
    a
}

fn mention(person: usize) -> String {
    let (name, email) = PEOPLE[person % PEOPLE.len()];
    format!("<airtable:mention id=\"{}\">@{name}</airtable:mention>", stable_id("men", email))
}

/// Record ids per table, from the seed.
fn record_ids(seed: u64, table: &str, n: usize) -> Vec<String> {
    let mut rng = SplitMix(seed ^ hash(table));
    (0..n).map(|_| ident("rec", &mut rng)).collect()
}

const SKUS: [(&str, f64, f64, &str, &str); 20] = [
    ("Aurora Desk Lamp", 89.0, 31.5, "Approved", "2025-09-15"),
    ("Aurora Desk Lamp Mini", 59.0, 22.1, "Evaluating", "2025-10-01"),
    ("Breeze Tower Fan", 129.99, 48.2, "Launched", "2025-06-02"),
    ("Breeze Clip Fan", 34.5, 11.75, "Launched", "2025-06-02"),
    ("Cirrus Humidifier", 74.0, 29.9, "Approved", "2025-09-22"),
    ("Cirrus Filter 3-pack", 19.99, 4.1, "Approved", "2025-09-22"),
    ("Drift Sleep Speaker", 149.0, 61.0, "Evaluating", "2025-11-10"),
    ("Ember Mug Warmer", 24.0, 8.8, "Idea", ""),
    ("Fjord Water Bottle 750 ml", 32.0, 9.35, "Launched", "2025-05-05"),
    ("Fjord Water Bottle 1 l", 36.0, 10.2, "Launched", "2025-05-05"),
    ("Glow Night Light", 18.5, 5.05, "Cancelled", ""),
    ("Halo Ring Light 10\"", 45.0, 17.4, "Approved", "2025-10-20"),
    ("Iris Air Purifier", 219.0, 97.5, "Evaluating", "2025-12-01"),
    ("Juniper Planter (self-watering)", 42.0, 13.0, "Idea", ""),
    ("Kite USB-C Hub", 54.99, 19.9, "Approved", "2025-09-01"),
    ("Lumen Smart Bulb 2-pack", 29.99, 10.6, "Launched", "2025-04-14"),
    ("Mesa Standing Mat", 79.0, 27.25, "Evaluating", "2025-11-03"),
    ("Nimbus Pillow", 65.0, 18.0, "Cancelled", ""),
    ("Orbit Cable Kit", 14.99, 3.2, "Approved", "2025-09-01"),
    ("Untitled SKU", 0.0, 0.0, "", ""),
];

const VENDORS: [(&str, &str, &str, &str); 10] = [
    ("Shenzhen Brightpack Co.", "sales@brightpack.example", "+86 755 2345 6789", "China"),
    ("Northwind Plastics", "orders@northwind-plastics.example", "+1 (414) 555-0134", "USA"),
    ("Cascade Labels", "hello@cascadelabels.example", "+1 (503) 555-0199", "USA"),
    ("Luma Optics", "b2b@lumaoptics.example", "+49 30 901820", "Germany"),
    ("Greenleaf Fibers", "contact@greenleaf.example", "+84 28 3822 1111", "Vietnam"),
    ("Kōbe Precision Parts", "info@kobe-precision.example", "+81 78-555-0123", "Japan"),
    ("Verde Inks", "ventas@verdeinks.example", "+52 55 5555 0101", "Mexico"),
    ("Orbit Components", "support@orbit-components.example", "+1 (650) 555-0110", "USA"),
    ("Atlas Freight", "", "", ""),
    ("Pacific Print House", "print@pacificprint.example", "", "USA"),
];

fn day(date: &str) -> i64 {
    parse_time(date).unwrap_or(0)
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A fixture record: cells by field name, and times.
struct Row {
    created: i64,
    modified: i64,
    cells: Value,
}

fn sku_rows(ids: &HashMap<&str, Vec<String>>) -> Vec<Row> {
    let vendors = &ids["Vendors"];
    let start = day("2025-01-06") + 9 * HOUR;
    SKUS.iter()
        .enumerate()
        .map(|(i, &(name, price, cost, status, launch))| {
            let created = start + i as i64 * (DAY + 7 * 60_000);
            let modified = created + (i as i64 % 5) * 3 * DAY + 11 * 60_000;
            if name == "Untitled SKU" {
                // Mostly empty: only the computed fields are set.
                return Row { created, modified, cells: json!({}) };
            }
            let code = format!("0{:011}", 84_210_000_000u64 + i as u64 * 1_337);
            let barcode = if i % 3 == 0 { json!({"text": code}) } else { json!({"text": code, "type": "upce"}) };
            let channels: Vec<&str> =
                ["Retail", "Online", "Wholesale", "Subscription"].iter().enumerate().filter(|(k, _)| (i + k) % 3 != 0).map(|(_, c)| *c).collect();
            let vendor = if i % 7 == 6 { json!([]) } else { json!([vendors[i % 8]]) };
            let slug = name.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            json!({
                "Name": name,
                "SKU Code": barcode,
                "Status": status,
                "Price": price,
                "Unit Cost": cost,
                "Margin": if price > 0.0 { json!(((price - cost) / price * 1000.0).round() / 1000.0) } else { Value::Null },
                "Discount": if i % 4 == 0 { json!(0.15) } else if i % 4 == 1 { json!(0.075) } else { Value::Null },
                "Launch Date": launch,
                "Channels": channels,
                "Vendor": vendor,
                "🚀 Launch Ready": status == "Launched" || status == "Approved",
                "Premium": price >= 100.0,
                "Label": format!("{name} · {code}"),
                "Customer Rating": if status == "Launched" { json!(3 + i % 3) } else { Value::Null },
                "Description": format!("**{name}**\n\nPart of the *autumn* range. See [spec sheet](https://brightlaunch.example/specs/{slug}).\n"),
                "Product Page": if status == "Launched" { json!(format!("https://shop.brightlaunch.example/p/{slug}")) } else { Value::Null },
                "Created By": user(i % 3),
                "Last Modified By": user((i + 1) % 4),
                "Shelf Plan": if i % 4 == 2 { json!({"bay": i / 4 + 1, "shelf": "B", "facings": [2, 3], "reviewed": true}) } else { Value::Null },
            })
            .pipe(|cells| Row { created, modified, cells })
        })
        .collect()
}

/// Lets a builder end in a closure without a temporary binding.
trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn milestone_rows(ids: &HashMap<&str, Vec<String>>) -> Vec<Row> {
    let skus = &ids["SKU Candidates"];
    const MS: [(&str, &str, &str); 15] = [
        ("Kick-off", "2025-02-03", "Plan"),
        ("Range review", "2025-02-24", "Plan"),
        ("Supplier shortlist", "2025-03-10", "Plan"),
        ("Samples received", "2025-04-07", "Build"),
        ("Pricing sign-off", "2025-04-21", "Build"),
        ("Packaging artwork final", "2025-05-12", "Build"),
        ("Safety testing booked", "2025-05-26", "Certify"),
        ("FCC filing", "2025-06-16", "Certify"),
        ("UL listing", "2025-07-07", "Certify"),
        ("Retail sell-in", "2025-07-28", "Launch"),
        ("Press embargo lifts", "2025-08-25", "Launch"),
        ("Launch day", "2025-09-15", "Launch"),
        ("Post-launch review", "2025-10-13", "Launch"),
        ("Holiday restock", "2025-11-17", ""),
        ("", "", ""),
    ];
    let start = day("2025-01-13") + 10 * HOUR;
    MS.iter()
        .enumerate()
        .map(|(i, &(name, due, phase))| {
            let created = start + i as i64 * 2 * DAY + 5 * 60_000;
            let modified = created + (i as i64 % 4) * 6 * DAY;
            if name.is_empty() {
                return Row { created, modified, cells: json!({}) };
            }
            let done = day(due) < day("2025-08-01");
            let linked: Vec<&String> = (0..(i % 4)).map(|k| &skus[(i * 3 + k * 5) % 19]).collect();
            let summary = match i % 5 {
                0 => json!({"state": "generated", "isStale": false, "value": format!("{name}: on track, owner confirmed.")}),
                1 => json!({"state": "generated", "isStale": true, "value": format!("{name} slipped a week; see notes.")}),
                2 => json!({"state": "empty", "isStale": false, "value": null}),
                3 => json!({"state": "error", "isStale": false, "value": null, "errorType": "rateLimited"}),
                _ => json!({"state": "loading", "isStale": false, "value": null}),
            };
            let budget = match i {
                4 => json!("#ERROR!"),
                9 => json!({"specialValue": "NaN"}),
                _ => Value::Null,
            };
            json!({
                "Milestone": name,
                "Owner": user(i % 4),
                "owner ": if i % 3 == 0 { json!(PEOPLE[(i + 1) % 4].0.split(' ').next().unwrap_or_default()) } else { Value::Null },
                "Reviewers": if i % 2 == 0 { json!([user(i + 1), user(i + 2)]) } else { json!([]) },
                "Due Date": due,
                "Due.Date": if due.is_empty() { Value::Null } else { json!(format!("{due}T16:30:00.000Z")) },
                "Phase": phase,
                "SKUs": linked,
                "Launch Budget": budget,
                "Notes": if i % 3 == 1 {
                    json!(format!("Blocked on artwork until {} replies.\nEscalate if no answer by Friday.", mention(i + 2)))
                } else if i % 3 == 2 {
                    json!(format!("Agreed in weekly sync.\n{} to confirm dates.", mention(i)))
                } else { Value::Null },
                "Effort": json!(3600.0 * (i as f64 + 1.0) + 0.5 * (i % 2) as f64),
                "Days Late": match i % 4 { 0 => json!(i as i64 - 3), 1 => json!("#ERROR!"), _ => Value::Null },
                "Summary": summary,
                "Done": done,
            })
            .pipe(|cells| Row { created, modified, cells })
        })
        .collect()
}

fn compliance_rows(ids: &HashMap<&str, Vec<String>>) -> Vec<Row> {
    let skus = &ids["SKU Candidates"];
    const CR: [(&str, &str, usize, &str, &str); 12] = [
        ("UL 153 portable lamp", "UL", 0, "2024-11-02", "2026-11-01"),
        ("FCC Part 15B", "FCC", 2, "2025-01-20", "2027-01-19"),
        ("CE LVD", "CE", 2, "2024-06-11", "2025-12-10"),
        ("RoHS declaration", "RoHS", 4, "2025-02-01", "2026-01-31"),
        ("FDA food contact", "FDA", 8, "2024-03-15", "2025-09-30"),
        ("FDA food contact", "FDA", 9, "2024-03-15", "2025-09-30"),
        ("Prop 65 warning review", "Prop 65", 12, "2025-04-02", "2026-04-01"),
        ("UL 507 fan", "UL", 3, "2025-03-03", "2027-03-02"),
        ("FCC Part 15C (Bluetooth)", "FCC", 6, "2025-05-19", "2028-05-18"),
        ("CE EMC", "CE", 14, "2025-02-14", "2025-11-13"),
        ("RoHS declaration", "RoHS", 15, "2024-01-10", "2025-01-09"),
        ("Pending: humidifier UL", "", 4, "", ""),
    ];
    let start = day("2025-02-03") + 14 * HOUR;
    CR.iter()
        .enumerate()
        .map(|(i, &(name, body, sku, issued, expires))| {
            let created = start + i as i64 * 3 * DAY + 42_000;
            let modified = created + (i as i64 % 3) * 10 * DAY;
            let scan = if issued.is_empty() {
                json!([])
            } else {
                json!([attachment(&format!("cert-{}.pdf", i + 1), "application/pdf", 240_000 + i as u64 * 1_021, None)])
            };
            let days = if issued.is_empty() { Value::Null } else { json!((day(expires) - day(issued)) / DAY) };
            json!({
                "Certificate": name,
                "Body": body,
                "SKU": [skus[sku]],
                "Issued": issued,
                "Expires": expires,
                "Expires Soon": !expires.is_empty() && day(expires) < day("2026-01-01"),
                "Days Valid": days,
                "Certificate Scan": scan,
                "Verified": i % 3 != 2,
                "Auditor Email": if i % 2 == 0 { json!("audits@certlab.example") } else { Value::Null },
                "Source": if i % 4 == 0 { json!("Regulatory DB") } else if i % 4 == 1 { json!("Vendor portal") } else { Value::Null },
            })
            .pipe(|cells| Row { created, modified, cells })
        })
        .collect()
}

fn packaging_rows(ids: &HashMap<&str, Vec<String>>) -> Vec<Row> {
    let skus = &ids["SKU Candidates"];
    const PT: [(&str, &str, f64); 15] = [
        ("Dieline v1 for lamp box", "Done", 1.0),
        ("Dieline v2 for lamp box", "Done", 1.0),
        ("Fan carton drop test", "Done", 1.0),
        ("Humidifier insert foam", "In progress", 0.6),
        ("Bottle sleeve artwork", "Done", 1.0),
        ("Speaker gift box", "Blocked", 0.25),
        ("Bulb blister pack", "In progress", 0.4),
        ("Recycled-content claim check", "Todo", 0.0),
        ("Hub retail hang tab", "In progress", 0.8),
        ("Cable kit pouch", "Todo", 0.0),
        ("Purifier shipper box", "Todo", 0.05),
        ("Mat roll sleeve", "Blocked", 0.1),
        ("Barcode placement audit", "In progress", 0.5),
        ("Pallet label template", "Done", 1.0),
        ("", "", 0.0),
    ];
    let start = day("2025-03-03") + 8 * HOUR;
    PT.iter()
        .enumerate()
        .map(|(i, &(task, status, progress))| {
            let created = start + i as i64 * DAY + 13 * 60_000;
            let modified = created + (i as i64 % 6) * 2 * DAY;
            if task.is_empty() {
                return Row { created, modified, cells: json!({}) };
            }
            let pdf = format!("dieline-{}.pdf", i + 1);
            let dieline = if i % 2 == 0 { json!([attachment(&pdf, "application/pdf", 512_000 + i as u64 * 77, None)]) } else { json!([]) };
            let button = if i % 2 == 0 {
                json!({"label": "Open dieline", "url": format!("https://files.brightlaunch.example/dielines/{pdf}")})
            } else {
                json!({"label": "Open dieline", "url": null})
            };
            json!({
                "Task": task,
                "Assignee": if i % 5 == 4 { Value::Null } else { user(i % 4) },
                "SKU": [skus[(i * 2) % 19]],
                "Status": status,
                "Progress": progress,
                "Priority": 1 + i % 3,
                "Time Spent": if progress > 0.0 { json!(1800 * (i + 1)) } else { Value::Null },
                "Dieline": dieline,
                "Open Dieline": button,
                "Label Text": task.to_uppercase(),
                "Done": status == "Done",
                "Notes": if i % 4 == 1 { json!(format!("Check bleed with {} before sending to print.", mention(i))) } else { Value::Null },
            })
            .pipe(|cells| Row { created, modified, cells })
        })
        .collect()
}

fn marketing_rows(ids: &HashMap<&str, Vec<String>>) -> Vec<Row> {
    let skus = &ids["SKU Candidates"];
    const MA: [(&str, &str, u32, u32); 12] = [
        ("Hero banner – lamp", "hero-lamp.jpg", 2400, 1200),
        ("Fan lifestyle shot", "fan-lifestyle.jpg", 3000, 2000),
        ("Bottle unboxing video", "bottle-unboxing.mp4", 0, 0),
        ("Launch email header", "email-header.png", 1200, 400),
        ("POS shelf talker", "shelf-talker.pdf", 0, 0),
        ("", "", 0, 0),
        ("TikTok teaser", "teaser.mp4", 0, 0),
        ("Humidifier spec card", "spec-card.png", 1080, 1350),
        ("Press kit", "", 0, 0),
        ("Instagram carousel 1/3", "carousel-1.jpg", 1080, 1080),
        ("Instagram carousel 2/3", "carousel-2.jpg", 1080, 1080),
        ("Instagram carousel 3/3", "carousel-3.jpg", 1080, 1080),
    ];
    let start = day("2025-04-07") + 11 * HOUR;
    MA.iter()
        .enumerate()
        .map(|(i, &(asset, file, w, h))| {
            let created = start + i as i64 * DAY + 23 * 60_000;
            if asset.is_empty() {
                // A row someone added and never filled in: Airtable returns `"fields": {}`.
                return Row { created, modified: created, cells: json!({}) };
            }
            let files = if file.is_empty() {
                json!([])
            } else {
                let mime = match file.rsplit('.').next() {
                    Some("jpg") => "image/jpeg",
                    Some("png") => "image/png",
                    Some("mp4") => "video/mp4",
                    _ => "application/pdf",
                };
                let dims = (w > 0).then_some((w, h));
                json!([attachment(file, mime, 80_000 + (w as u64 * h as u64) / 7, dims)])
            };
            let caption = match i % 4 {
                0 => json!({"state": "generated", "isStale": false, "value": format!("Meet {asset}. Light up your launch ✨")}),
                1 => json!({"state": "error", "isStale": false, "value": null, "errorType": "contentFiltered"}),
                2 => json!({"state": "empty", "isStale": false, "value": null}),
                _ => json!({"state": "generated", "isStale": true, "value": "Fresh for autumn."}),
            };
            let channels: &[&str] = match i % 3 {
                0 => &["Web", "Email"],
                1 => &["Instagram", "TikTok"],
                _ => &["Retail POS"],
            };
            json!({
                "Asset": asset,
                "Files": files,
                "Channels": channels,
                "SKUs": [skus[i % 19], skus[(i + 5) % 19]],
                "Copy": format!("## {asset}\n\n- Bright\n- *Quiet*\n"),
                "Caption": caption,
                "Budget": if i % 3 == 2 { Value::Null } else { json!(250.0 * (i as f64 + 1.0) + 0.99) },
                "Preview": if file.is_empty() { json!({"label": "Preview", "url": null}) } else { json!({"label": "Preview", "url": format!("https://cdn.brightlaunch.example/{file}")}) },
                "Approved": i % 2 == 0,
                // The grid's drag order, as a fractional-index key; test data fills every column.
                "Sort": format!("a{i:x}"),
            })
            .pipe(|cells| Row { created, modified: created + (i as i64 % 3) * DAY, cells })
        })
        .collect()
}

fn vendor_rows() -> Vec<Row> {
    let start = day("2025-01-02") + 15 * HOUR;
    VENDORS
        .iter()
        .enumerate()
        .map(|(i, &(name, email, phone, country))| {
            let created = start + i as i64 * DAY + 3 * 60_000;
            let slug: String = name.to_lowercase().chars().filter(char::is_ascii_alphanumeric).collect();
            json!({
                "Vendor": name,
                "Contact Email": email,
                "Phone": phone,
                "Website": if email.is_empty() { Value::Null } else { json!(format!("https://{slug}.example")) },
                "Country": country,
                "Account Manager": if i % 3 == 2 { Value::Null } else { user(i % 4) },
                "Avg SKU Price": if i == 3 { json!("#ERROR!") } else { Value::Null },
                "Reliability": if country.is_empty() { Value::Null } else { json!(2 + i % 4) },
                "Lead Time": if country.is_empty() { Value::Null } else { json!(86_400 * (7 + i * 3)) },
                "Notes": if i % 4 == 0 { json!(format!("Quarterly review with {}.\nPrefers email.", mention(i))) } else { Value::Null },
                "Preferred": i % 3 == 0,
                "Created By": user(4),
                "Portal Widget": if i % 5 == 0 { json!({"portal": "supplier-hub", "scorecard": {"onTime": 0.93, "defects": 2}}) } else { Value::Null },
            })
            .pipe(|cells| Row { created, modified: created, cells })
        })
        .collect()
}

/// Fills the cells Airtable computes from the record itself (times, numbering, authors).
pub(crate) fn fill_system_cells(t: &mut Table, r: &mut Record, creator: usize) {
    for f in &t.fields {
        let v = match f.ftype.as_str() {
            "createdTime" => json!(format_time_for(f, r.created)),
            "lastModifiedTime" => json!(format_time_for(f, r.modified)),
            "autoNumber" => {
                let n = t.next_auto_number;
                json!(n)
            }
            "createdBy" if !r.fields.contains_key(&f.id) => user(creator),
            "lastModifiedBy" if !r.fields.contains_key(&f.id) => user(creator),
            _ => continue,
        };
        set_cell(&mut r.fields, &f.id, v);
    }
    t.next_auto_number += 1;
}

fn row_to_record(t: &Table, id: String, row: Row) -> anyhow::Result<Record> {
    let mut fields = Map::new();
    let cells = row.cells.as_object().cloned().unwrap_or_default();
    for (name, v) in cells {
        let f =
            t.field(&name).with_context(|| format!("fixture names unknown field {name:?} in {}", t.name))?;
        set_cell(&mut fields, &f.id, v);
    }
    Ok(Record { id, created: row.created, modified: row.modified, fields })
}

/// Builds the seed's base: schema, fixture records, links and their derived cells.
pub(crate) fn build(seed: u64) -> anyhow::Result<Base> {
    let mut tables: Vec<Table> = schemas()
        .into_iter()
        .map(|(s, description)| {
            Table::new(tid(s.name), s.name.to_string(), Some(description.to_string()), s.fields)
        })
        .collect();
    for t in &mut tables {
        t.views = views(&t.name.clone(), t);
    }
    let counts = [SKUS.len(), 15, 12, 15, 12, VENDORS.len()];
    let ids: HashMap<&str, Vec<String>> =
        TABLES.iter().zip(counts).map(|(name, n)| (*name, record_ids(seed, name, n))).collect();
    let rows = [
        sku_rows(&ids),
        milestone_rows(&ids),
        compliance_rows(&ids),
        packaging_rows(&ids),
        marketing_rows(&ids),
        vendor_rows(),
    ];
    for ((t, rows), name) in tables.iter_mut().zip(rows).zip(TABLES) {
        if rows.len() != ids[name].len() {
            bail!("fixture for {name} has {} rows, expected {}", rows.len(), ids[name].len());
        }
        for (k, (row, id)) in rows.into_iter().zip(ids[name].iter()).enumerate() {
            let mut r = row_to_record(t, id.clone(), row)?;
            if t.name != "Marketing Assets" {
                fill_system_cells(t, &mut r, k % 3);
            }
            t.push(r);
        }
    }
    let mut base = Base { tables };
    mirror_links(&mut base, ("SKU Candidates", "Vendor"), ("Vendors", "SKUs"));
    derive_all(&mut base);
    Ok(base)
}

/// Fills the inverse side of a two-way link from the forward side.
fn mirror_links(base: &mut Base, from: (&str, &str), to: (&str, &str)) {
    let (Some(fi), Some(ti)) = (base.table_index(from.0), base.table_index(to.0)) else { return };
    let (from_field, to_field) = (fid(from.0, from.1), fid(to.0, to.1));
    let mut inverse: HashMap<String, Vec<Value>> = HashMap::new();
    for r in base.tables[fi].live() {
        for target in r.fields.get(&from_field).and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = target.as_str() {
                inverse.entry(t.to_string()).or_default().push(json!(r.id));
            }
        }
    }
    for r in base.tables[ti].records.iter_mut().flatten() {
        let links = inverse.remove(&r.id).unwrap_or_default();
        set_cell(&mut r.fields, &to_field, Value::Array(links));
    }
}

/// Recomputes counts, lookups and rollups for every record.
fn derive_all(base: &mut Base) {
    for ti in 0..base.tables.len() {
        let mut records = std::mem::take(&mut base.tables[ti].records);
        for r in records.iter_mut().flatten() {
            base.derive(ti, r);
        }
        base.tables[ti].records = records;
    }
}

/// Formats a fixture day for other modules' generators.
pub(crate) fn iso_day(ms: i64) -> String {
    format_time(ms)[..10].to_string()
}
