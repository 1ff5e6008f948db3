//! Chunked cdc reads run through the host's loop against [`FakeAirtable`]: every record
//! arrives, checkpoints come every `checkpoint_records` records, the read ends, and a
//! restart from any checkpoint still yields every record.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::fake::FakeAirtable;
use super::*;
use crate::Airtable;
use crate::time::{format_ms, parse_ms};

const NOW: &str = "2024-05-01T00:00:00.000Z";
const T0: &str = "2024-04-01T00:00:00.000Z";

/// One call of the host's loop.
#[derive(Debug)]
struct Step {
    end: String,
    checkpointable: bool,
    ids: Vec<String>,
    /// List-records requests the call sent.
    requests: usize,
}

/// Feeds each end offset back as the next start, as the host does, until end == start.
fn host_loop(
    fake: &FakeAirtable,
    options: &[(&str, &str)],
    start: Option<&str>,
    max_calls: usize,
) -> Vec<Step> {
    let (steps, ended) = calls(fake, options, start, max_calls);
    assert!(ended, "the read did not end within {max_calls} calls: {:?}", steps.last());
    steps
}

/// The host's loop for at most `max_calls` calls; and whether the read ended (end == start).
fn calls(
    fake: &FakeAirtable,
    options: &[(&str, &str)],
    start: Option<&str>,
    max_calls: usize,
) -> (Vec<Step>, bool) {
    let now = parse_ms(NOW).unwrap_or_default();
    let options = opts(options);
    let mut start = start.map(str::to_string);
    let mut steps = Vec::new();
    for _ in 0..max_calls {
        let before = fake.list_requests();
        let page = Airtable::read_table_at(
            fake,
            &connection(),
            "Compliance Records",
            &options,
            start.as_deref(),
            || now,
        )
        .expect("read_table");
        let done = start.as_deref() == Some(page.end_offset.as_str());
        steps.push(Step {
            end: page.end_offset.clone(),
            checkpointable: page.checkpointable,
            ids: ids(&rows(&page)),
            requests: fake.list_requests() - before,
        });
        if done {
            return (steps, true);
        }
        start = Some(page.end_offset);
    }
    (steps, false)
}

/// `Updated` of the i-th record: groups of three share a millisecond, so ties straddle
/// pages and neighbouring values are 1 ms apart; `None` leaves the cell empty.
fn updated(i: usize) -> String {
    format_ms(parse_ms(T0).unwrap_or_default() + (i / 3) as i64)
}

/// `n` records `recT0000…`, created in a shuffled order so only the sort puts them in
/// cursor order; `value(i)` is the i-th record's `Updated`.
fn table(n: usize, value: impl Fn(usize) -> Option<String>) -> Vec<Value> {
    assert!(!n.is_multiple_of(7), "7 must not divide n, or the shuffle repeats");
    (0..n)
        .map(|p| (p * 7) % n)
        .map(|i| {
            let mut fields = json!({"fldC1": format!("row {i}")});
            if let Some(v) = value(i) {
                fields["fldC3"] = json!(v);
            }
            record(&format!("recT{i:04}"), fields)
        })
        .collect()
}

fn all_ids(records: &[Value]) -> BTreeSet<String> {
    records.iter().filter_map(|r| r["id"].as_str()).map(str::to_string).collect()
}

fn emitted(steps: &[Step]) -> BTreeSet<String> {
    steps.iter().flat_map(|s| s.ids.iter().cloned()).collect()
}

/// The most rows the host holds uncommitted at once (rows since the last checkpoint).
fn largest_stretch(steps: &[Step]) -> usize {
    let (mut pending, mut largest) = (0, 0);
    for step in steps {
        pending += step.ids.len();
        largest = largest.max(pending);
        if step.checkpointable {
            pending = 0;
        }
    }
    largest
}

fn offset(step: &Step) -> Value {
    serde_json::from_str(&step.end).expect("offsets are JSON")
}

// 600 rows: five without a cursor value, groups of three ties, and 80 rows (more than a
// chunk) on one value.
const N: usize = 600;
const TIE: std::ops::Range<usize> = 300..380;
const CHUNK: usize = 50;
const PAGE: usize = 10;
const OPTIONS: [(&str, &str); 3] =
    [("page_size", "10"), ("checkpoint_records", "50"), ("lookback_seconds", "0")];

fn big_table() -> Vec<Value> {
    table(N, |i| match i {
        0..5 => None,
        i if TIE.contains(&i) => Some(updated(TIE.start)),
        i => Some(updated(i)),
    })
}

#[test]
fn a_first_cdc_read_of_a_large_table_checkpoints_every_chunk_and_ends() {
    let records = big_table();
    let fake = FakeAirtable::compliance(records.clone());
    let steps = host_loop(&fake, &OPTIONS, None, 200);

    assert_eq!(emitted(&steps), all_ids(&records));
    // A chunk returns `checkpoint_records` rows and the rest of its page.
    let checkpoints = steps.iter().filter(|s| s.checkpointable).count();
    assert!(checkpoints >= N / (CHUNK + PAGE), "{checkpoints} checkpoints for {N} rows");
    // A chunk overshoots by at most a page, and by the tied rows where it cannot cut.
    let stretch = largest_stretch(&steps);
    assert!(stretch <= CHUNK + TIE.len() + PAGE, "{stretch} rows between checkpoints");
    // Ties straddle chunk boundaries, and still no row comes twice.
    let total: usize = steps.iter().map(|s| s.ids.len()).sum();
    assert_eq!(total, N, "rows emitted for {N}");

    // It ends in a plain cursor at the newest change; then one probe hands it back.
    let last = &steps[steps.len() - 1];
    assert_eq!(offset(&steps[steps.len() - 2]), json!({"cursor": updated(N - 1)}));
    assert_eq!((last.ids.len(), last.requests), (0, 1));
    // Every checkpoint before that is a chunk boundary under the read's one cap.
    for step in steps.iter().filter(|s| s.checkpointable).take(checkpoints - 2) {
        let o = offset(step);
        assert_eq!((o["continue"].clone(), o["upto"].clone()), (json!(true), json!(NOW)), "{o}");
    }
}

#[test]
fn a_crash_after_any_checkpoint_still_yields_every_record() {
    let records = big_table();
    let fake = FakeAirtable::compliance(records.clone());
    let steps = host_loop(&fake, &OPTIONS, None, 200);
    let mut restarts = 0;
    for (k, step) in steps.iter().enumerate().filter(|(_, s)| s.checkpointable) {
        // The host committed every row up to this checkpoint; the rest died with it.
        let mut seen = emitted(&steps[..=k]);
        let resumed = host_loop(&fake, &OPTIONS, Some(&step.end), 200);
        seen.extend(emitted(&resumed));
        assert_eq!(seen, all_ids(&records), "restarting from {}", step.end);
        let rows = |steps: &[Step]| steps.iter().map(|s| s.ids.len()).sum::<usize>();
        assert_eq!(rows(&steps[..=k]) + rows(&resumed), N, "no row twice, restarting from {}", step.end);
        restarts += 1;
    }
    assert!(restarts >= N / (CHUNK + PAGE));
}

#[test]
fn a_lookback_window_bigger_than_a_chunk_is_walked_through_once() {
    let records = big_table();
    let fake = FakeAirtable::compliance(records.clone());
    // The hour of lookback covers every change, which are all within a second of T0.
    let options = [("page_size", "10"), ("checkpoint_records", "50"), ("lookback_seconds", "3600")];
    let start = json!({"cursor": updated(450)}).to_string();
    let steps = host_loop(&fake, &options, Some(&start), 200);

    // Records without a cursor value are not after anything, so only the first read has them.
    let valued: BTreeSet<String> = (5..N).map(|i| format!("recT{i:04}")).collect();
    assert_eq!(emitted(&steps), valued);
    let checkpoints = steps.iter().filter(|s| s.checkpointable).count();
    assert!(checkpoints >= valued.len() / (CHUNK + PAGE), "{checkpoints} checkpoints");
    let total: usize = steps.iter().map(|s| s.ids.len()).sum();
    assert_eq!(total, valued.len(), "the window is read once, each row once");
    assert_eq!(offset(&steps[steps.len() - 2]), json!({"cursor": updated(N - 1)}));
}

#[test]
fn more_tied_records_than_a_chunk_page_on_until_the_cursor_value_changes() {
    let (a, b) = ("2024-04-01T00:00:00.000Z", "2024-04-01T00:00:00.001Z");
    let records = table(50, |i| Some(if i < 30 { a } else { b }.to_string()));
    let fake = FakeAirtable::compliance(records.clone());
    let options = [("page_size", "4"), ("checkpoint_records", "5")];
    let steps = host_loop(&fake, &options, None, 40);

    assert_eq!(emitted(&steps), all_ids(&records));
    let flags: Vec<bool> = steps.iter().map(|s| s.checkpointable).collect();
    let (f, t) = (false, true);
    // 30 A's over eight pages with no cut, since every page after the first is all A's like the
    // one before; the cut at the first B's, naming them; the other 18 B's; the probe.
    assert_eq!(flags, [f, f, f, f, f, f, f, t, f, f, f, f, t, t]);
    let cuts: Vec<Value> = steps.iter().filter(|s| s.checkpointable).map(offset).collect();
    let first_bs = &steps[7].ids[2..];
    assert_eq!(
        cuts,
        [
            json!({"cursor": b, "continue": true, "upto": NOW, "seen": first_bs}),
            json!({"cursor": b}),
            json!({"cursor": b}),
        ]
    );
    // While the continuation's pages are still at B, they carry what it has to pass over.
    assert_eq!(offset(&steps[8])["seen"], json!(first_bs));
    assert_eq!(steps.iter().map(|s| s.ids.len()).sum::<usize>(), 50, "no row comes twice");
}

#[test]
fn a_continuation_passes_over_the_records_its_boundary_names_and_reads_the_other_ties() {
    // Records 0-2 share 0 ms, 3-5 share 1 ms, …: the boundary is at 1 ms, where the chunk
    // before it returned records 3 and 5 (in whatever order that listing had them).
    let fake = FakeAirtable::compliance(table(10, |i| Some(updated(i))));
    let start =
        json!({"cursor": updated(3), "continue": true, "upto": NOW, "seen": ["recT0005", "recT0003"]});
    let steps = host_loop(&fake, &[("page_size", "2")], Some(&start.to_string()), 10);
    let mut read: Vec<&str> = steps.iter().flat_map(|s| s.ids.iter().map(String::as_str)).collect();
    read.sort();
    assert_eq!(read, ["recT0004", "recT0006", "recT0007", "recT0008", "recT0009"]);
    // A page still at the boundary's value carries the names on; the next one, past it, drops them.
    assert_eq!(offset(&steps[0])["seen"], json!(["recT0005", "recT0003"]));
    assert_eq!(offset(&steps[1]).get("seen"), None);

    // The page iterator expires there: the listing starts over from the boundary, passes over
    // the names and what it had returned at that value, and returns the rest once.
    let mut expired = offset(&steps[0]);
    expired["page"] = json!("itrExpired/recT0000");
    let resumed = host_loop(&fake, &[("page_size", "2")], Some(&expired.to_string()), 10);
    let mut read: Vec<&str> =
        steps[0].ids.iter().chain(resumed.iter().flat_map(|s| &s.ids)).map(String::as_str).collect();
    read.sort();
    assert_eq!(read, ["recT0004", "recT0006", "recT0007", "recT0008", "recT0009"]);
}

#[test]
fn an_expired_iterator_loses_no_record_though_records_read_before_it_changed_or_were_reordered() {
    // Groups of three share a millisecond; pages of 4, no chunk boundary: one listing.
    let records = table(31, |i| Some(updated(i)));
    let fake = FakeAirtable::compliance(records.clone());
    let options = [("page_size", "4"), ("lookback_seconds", "0")];
    let (before, _) = calls(&fake, &options, None, 3);
    let read: Vec<String> = before.iter().flat_map(|s| s.ids.clone()).collect();
    assert_eq!(read.len(), 12);
    {
        let mut stored = fake.records.borrow_mut();
        let at = |stored: &[Value], id: &str| stored.iter().position(|r| r["id"] == id).expect("a record");
        // Two records already read change after the read's cap, leaving the listing, and one is
        // deleted, so every record after them moves up three places in a new listing; and two
        // records tied at the last value read trade places.
        for id in &read[..2] {
            let p = at(&stored, id);
            stored[p]["fields"]["fldC3"] = json!("2024-05-02T00:00:00.000Z");
        }
        let gone = at(&stored, &read[2]);
        stored.remove(gone);
        let (x, y) = (at(&stored, "recT0012"), at(&stored, "recT0013"));
        stored.swap(x, y);
    }
    // The page iterator expires: the fake no longer knows it.
    let mut expired = offset(&before[2]);
    expired["page"] = json!("itr99/0");
    let after = host_loop(&fake, &options, Some(&expired.to_string()), 20);
    let mut all: Vec<String> = read.into_iter().chain(after.iter().flat_map(|s| s.ids.clone())).collect();
    all.sort();
    let mut expected: Vec<String> = all_ids(&records).into_iter().collect();
    expected.sort();
    assert_eq!(all, expected, "each record once, none lost");
}

#[test]
fn a_continuation_lists_from_the_boundary_inclusive_without_lookback_or_probe() {
    let fake = FakeAirtable::compliance(table(10, |i| Some(updated(i * 3))));
    let start = json!({"cursor": updated(12), "continue": true, "upto": NOW}).to_string();
    let steps = host_loop(&fake, &[("lookback_seconds", "3600")], Some(&start), 5);
    // Record i changed i ms after T0: the one at the boundary (4 ms) is read again, none before.
    assert_eq!(steps[0].ids, ["recT0004", "recT0005", "recT0006", "recT0007", "recT0008", "recT0009"]);
    assert_eq!(steps[0].requests, 1);
    assert_eq!(offset(&steps[0]), json!({"cursor": updated(27)}));
    let sent = fake.sent.borrow();
    let listing = sent.iter().find(|s| s.param("sort[0][field]").is_some()).expect("a listing");
    assert_eq!(
        listing.param("filterByFormula"),
        Some(
            "AND(IS_AFTER({Updated}, '2024-04-01T00:00:00.003Z'), NOT(IS_AFTER({Updated}, '2024-05-01T00:00:00.000Z')))"
        )
    );
}
