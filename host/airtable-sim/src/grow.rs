//! The seeded generator that grows a table to N rows for benchmarks.
//!
//! Each field gets a plausible value for its type (with a share of empties), links point at
//! records that already exist, and counts/lookups/rollups are derived from those links. The
//! inverse side of a two-way link is not updated: a vendor linked from a million SKUs would carry
//! a million-element cell, which no benchmark wants.

use serde_json::{Map, Value, json};

use crate::seed::{PEOPLE_COUNT, SplitMix, fill_system_cells, hash, ident, iso_day, user};
use crate::store::{Base, FieldDef, Record, format_time, set_cell};

const WORDS: [&str; 16] = [
    "Aurora", "Breeze", "Cirrus", "Drift", "Ember", "Fjord", "Glow", "Halo", "Iris", "Juniper", "Kite",
    "Lumen", "Mesa", "Nimbus", "Orbit", "Pulse",
];
const NOUNS: [&str; 8] = ["Lamp", "Fan", "Bottle", "Speaker", "Hub", "Mat", "Planter", "Kit"];

/// How far apart grown records are created, unless that would reach past [`SPAN_MS`].
const STEP_MS: i64 = 37_000;
/// How long after the table's last record the grown ones are all created: 500 days from the seed's
/// early 2025, so that, with their modification up to 30 days later, they lie in the past. (A cdc
/// read lists the changes up to the moment it starts: a record stamped later is not read.)
const SPAN_MS: i64 = 500 * 86_400_000;

/// The gap between two grown records' creation, for `count` of them.
fn step_ms(count: usize) -> i64 {
    STEP_MS.min(SPAN_MS / count.max(1) as i64).max(1)
}

/// Grows table `ti` to `n` live rows. Deterministic in (seed, table name, n).
pub(crate) fn grow(base: &mut Base, ti: usize, n: usize, seed: u64) {
    let mut rng = SplitMix(seed ^ hash(&base.tables[ti].name).rotate_left(17) ^ 0x6772_6f77);
    // Link targets: records that exist before growing, so every link resolves.
    let targets: Vec<(String, Vec<String>)> = base.tables[ti]
        .fields
        .iter()
        .filter(|f| f.ftype == "multipleRecordLinks")
        .map(|f| {
            let linked = f
                .options
                .as_ref()
                .and_then(|o| o.get("linkedTableId"))
                .and_then(Value::as_str)
                .and_then(|id| base.table_index(id))
                .map(|li| base.tables[li].live().take(10_000).map(|r| r.id.clone()).collect())
                .unwrap_or_default();
            (f.id.clone(), linked)
        })
        .collect();
    let derives = base.tables[ti]
        .fields
        .iter()
        .any(|f| matches!(f.ftype.as_str(), "count" | "multipleLookupValues" | "rollup"));
    let live = base.tables[ti].live().count();
    let last_created = base.tables[ti].live().map(|r| r.created).max().unwrap_or(1_735_689_600_000);
    base.tables[ti].records.reserve(n.saturating_sub(live));
    let step = step_ms(n.saturating_sub(live));
    for k in 0..n.saturating_sub(live) {
        let created = last_created + (k as i64 + 1) * step;
        let modified = created + rng.below(30 * 86_400) as i64 * 1000;
        let mut fields = Map::with_capacity(base.tables[ti].fields.len());
        for f in &base.tables[ti].fields {
            let links = targets.iter().find(|(id, _)| *id == f.id).map(|(_, l)| l.as_slice()).unwrap_or(&[]);
            if let Some(v) = value_for(f, k, created, links, &mut rng) {
                set_cell(&mut fields, &f.id, v);
            }
        }
        let mut id = ident("rec", &mut rng);
        while base.tables[ti].index.contains_key(&id) {
            id = ident("rec", &mut rng);
        }
        let mut r = Record { id, created, modified, fields };
        let creator = rng.below(PEOPLE_COUNT as u64) as usize;
        fill_system_cells(&mut base.tables[ti], &mut r, creator);
        if derives {
            base.derive(ti, &mut r);
        }
        base.tables[ti].push(r);
    }
}

fn choice(f: &FieldDef, rng: &mut SplitMix) -> Option<Value> {
    let choices = f.options.as_ref()?.get("choices")?.as_array()?;
    if choices.is_empty() {
        return None;
    }
    choices[rng.below(choices.len() as u64) as usize].get("name").cloned()
}

fn money(rng: &mut SplitMix, lo: f64, hi: f64) -> f64 {
    ((lo + rng.unit() * (hi - lo)) * 100.0).round() / 100.0
}

fn value_for(f: &FieldDef, k: usize, created: i64, links: &[String], rng: &mut SplitMix) -> Option<Value> {
    // Roughly one cell in ten is left empty, as in real, half-maintained bases.
    if rng.chance(0.1) && f.ftype != "multipleRecordLinks" {
        return None;
    }
    let word = *rng.pick(&WORDS);
    let noun = *rng.pick(&NOUNS);
    let result_type = f
        .options
        .as_ref()
        .and_then(|o| o.get("result"))
        .and_then(|r| r.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let v = match f.ftype.as_str() {
        "singleLineText" => json!(format!("{word} {noun} #{}", k + 1)),
        "email" => json!(format!("{}.{}@vendor{}.example", word.to_lowercase(), noun.to_lowercase(), k % 97)),
        "url" => json!(format!("https://shop.brightlaunch.example/p/{}-{}", word.to_lowercase(), k)),
        "phoneNumber" => json!(format!("+1 (555) {:03}-{:04}", rng.below(1000), rng.below(10_000))),
        "multilineText" => json!(format!("{word} {noun}: follow up.\nBatch {}.", k / 100)),
        "richText" => json!(format!("**{word} {noun}**\n\n- batch {}\n", k / 100)),
        "singleSelect" | "externalSyncSource" => choice(f, rng)?,
        "multipleSelects" => {
            let a = choice(f, rng)?;
            let b = choice(f, rng)?;
            if a == b { json!([a]) } else { json!([a, b]) }
        }
        "number" => json!(money(rng, 1.0, 500.0)),
        "currency" => json!(money(rng, 5.0, 300.0)),
        "percent" => json!((rng.unit() * 100.0).round() / 100.0),
        "rating" => {
            let max = f.options.as_ref().and_then(|o| o.get("max")).and_then(Value::as_u64).unwrap_or(5);
            json!(1 + rng.below(max))
        }
        "duration" => json!((rng.below(36_000_000) as f64) / 10.0),
        "checkbox" => json!(rng.chance(0.5)),
        "date" => json!(iso_day(created + rng.below(400) as i64 * 86_400_000)),
        "dateTime" => json!(format_time(created + rng.below(400 * 86_400) as i64 * 1000)),
        "singleCollaborator" => user(rng.below(PEOPLE_COUNT as u64) as usize),
        "multipleCollaborators" => json!([user(k), user(k + 1)]),
        "multipleRecordLinks" if links.is_empty() || rng.chance(0.1) => return None,
        "multipleRecordLinks" => json!([links[rng.below(links.len() as u64) as usize]]),
        "multipleAttachments" if rng.chance(0.7) => return None,
        "multipleAttachments" => {
            let id = ident("att", rng);
            let url =
                |kind: &str| format!("https://v5.airtableusercontent.com/v3/u/sim/{id}/{kind}/photo-{k}.jpg");
            json!([{"id": id, "url": url("full"), "filename": format!("photo-{k}.jpg"), "size": 50_000 + rng.below(400_000), "type": "image/jpeg", "width": 1200, "height": 800,
                "thumbnails": {"small": {"url": url("small"), "width": 54, "height": 36}, "large": {"url": url("large"), "width": 512, "height": 341}, "full": {"url": url("full"), "width": 1200, "height": 800}}}])
        }
        "barcode" if rng.chance(0.5) => json!({"text": format!("{:012}", rng.below(1_000_000_000_000))}),
        "barcode" => json!({"text": format!("{:012}", rng.below(1_000_000_000_000)), "type": "upce"}),
        "button" => {
            let label = f.options.as_ref().and_then(|o| o.get("label")).cloned().unwrap_or(json!("Open"));
            let url = rng.chance(0.7).then(|| format!("https://files.brightlaunch.example/{k}"));
            json!({"label": label, "url": url})
        }
        "aiText" => match rng.below(4) {
            0 => json!({"state": "empty", "isStale": false, "value": null}),
            1 => json!({"state": "error", "isStale": false, "value": null, "errorType": "rateLimited"}),
            _ => {
                json!({"state": "generated", "isStale": rng.chance(0.2), "value": format!("{word} {noun}, ready to ship.")})
            }
        },
        "formula" => match result_type {
            "number" | "percent" | "currency" => json!(money(rng, 0.0, 1.0)),
            "checkbox" => json!(rng.chance(0.5)),
            "" => json!(rng.below(30)),
            _ => json!(format!("{} {}", word.to_uppercase(), k)),
        },
        // Computed from the record or its links elsewhere, or not returned by the API at all.
        "createdTime"
        | "lastModifiedTime"
        | "autoNumber"
        | "createdBy"
        | "lastModifiedBy"
        | "count"
        | "multipleLookupValues"
        | "rollup"
        | "manualSort" => return None,
        _ => json!({"kind": "generated", "n": k}),
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many records a table grows by, they are created within 500 days (so they lie before
    /// today), and up to a million keep the 37 s apart the benchmarks were measured with.
    #[test]
    fn a_grown_table_lies_in_the_past() {
        assert_eq!(step_ms(1_000_000), STEP_MS);
        for count in [1_usize, 1_000, 1_200_000, 2_000_000, 10_000_000] {
            let span = step_ms(count) * count as i64;
            assert!(span <= SPAN_MS, "{count} records span {span} ms");
        }
    }
}
