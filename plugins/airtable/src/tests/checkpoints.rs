//! Long reads run through the host's loop against [`FakeAirtable`]: in a chunked cdc read every
//! record arrives, checkpoints come every `checkpoint_records` records, the read ends, and a
//! restart from any checkpoint still yields every record; a listing whose page iterator expired,
//! cdc or snapshot, loses no record and returns none twice.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::fake::FakeAirtable;
use super::*;
use crate::Airtable;
use crate::time::{format_ms, parse_ms};
use weir_connector_sdk::ConnectorError;

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
        let page =
            Airtable::read_table_at(fake, &connection(), fake.name, &options, start.as_deref(), || now)
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
    let resumed = host_loop(&fake, &[("page_size", "2")], Some(&expired(&steps[0])), 10);
    let mut read: Vec<&str> =
        steps[0].ids.iter().chain(resumed.iter().flat_map(|s| &s.ids)).map(String::as_str).collect();
    read.sort();
    assert_eq!(read, ["recT0004", "recT0006", "recT0007", "recT0008", "recT0009"]);
}

/// Where `id` is in the fake's table.
fn place(stored: &[Value], id: &str) -> usize {
    stored.iter().position(|r| r["id"] == id).expect("a record")
}

/// Sets a record's `Updated` after [`NOW`], the cap of any read here: it leaves the listing.
fn change_after_the_cap(stored: &mut [Value], id: &str) {
    let p = place(stored, id);
    stored[p]["fields"]["fldC3"] = json!("2024-05-02T00:00:00.000Z");
}

/// The offset after `step`, with a page token the fake no longer knows: its iterator expired.
fn expired(step: &Step) -> String {
    let mut expired = offset(step);
    expired["page"] = json!("itr99/0");
    expired.to_string()
}

fn ids_of(steps: &[Step]) -> Vec<String> {
    steps.iter().flat_map(|s| s.ids.clone()).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn an_expired_iterator_loses_no_record_though_records_read_before_it_changed_or_were_reordered() {
    // Groups of three share a millisecond; pages of 4, no chunk boundary: one listing.
    let records = table(31, |i| Some(updated(i)));
    let fake = FakeAirtable::compliance(records.clone());
    let options = [("page_size", "4"), ("lookback_seconds", "0")];
    let (before, _) = calls(&fake, &options, None, 2);
    let read = ids_of(&before);
    // Eight records: three at each of 0 and 1 ms, and two of the three at 2 ms.
    let last = before[1].ids.last().expect("a record").clone();
    let unread = ["recT0006", "recT0007", "recT0008"].into_iter().find(|id| !read.iter().any(|r| r == id));
    let unread = unread.expect("a record at 2 ms not read yet");
    {
        let mut stored = fake.records.borrow_mut();
        // Two records already read change after the read's cap, leaving the listing, and one is
        // deleted, so every record after them moves up three places in a new listing; and the
        // record at 2 ms not read yet trades places with one read, so it now lists first.
        change_after_the_cap(&mut stored, &read[0]);
        change_after_the_cap(&mut stored, &read[1]);
        let gone = place(&stored, &read[2]);
        stored.remove(gone);
        let (x, y) = (place(&stored, &last), place(&stored, unread));
        stored.swap(x, y);
    }
    let after = host_loop(&fake, &options, Some(&expired(&before[1])), 20);
    let all = sorted(read.into_iter().chain(ids_of(&after)).collect());
    assert_eq!(all, all_ids(&records).into_iter().collect::<Vec<_>>(), "each record once, none lost");
}

#[test]
fn a_second_expiry_in_the_same_run_of_ties_names_each_record_once() {
    // 24 records share one value, then each has its own: pages of 4 expire twice inside the run.
    let a = "2024-04-01T00:00:00.000Z";
    let records = table(37, |i| Some(if i < 24 { a.to_string() } else { updated(i * 3) }));
    let fake = FakeAirtable::compliance(records.clone());
    let options = [("page_size", "4"), ("lookback_seconds", "0")];
    let (first, _) = calls(&fake, &options, None, 2);
    // The restarted listing passes over the eight on its first two pages, then returns four.
    let (second, _) = calls(&fake, &options, Some(&expired(&first[1])), 3);
    assert_eq!(second.iter().map(|s| s.ids.len()).collect::<Vec<_>>(), [0, 0, 4]);
    // It names the eight records read at the value before it and the four it returned, once each.
    let names = offset(&second[2])["at_max"].as_array().expect("names").len();
    assert_eq!(names, 12, "{}", second[2].end);
    let rest = host_loop(&fake, &options, Some(&expired(&second[2])), 20);
    // Started over again at the same value, it names the same twelve, each once.
    let names: Vec<String> = serde_json::from_value(offset(&rest[0])["at_max"].clone()).expect("names");
    assert_eq!(names.len(), 12, "{}", rest[0].end);
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 12, "{}", rest[0].end);
    let read: Vec<String> = [first, second, rest].iter().flat_map(|steps| ids_of(steps)).collect();
    assert_eq!(read.len(), 37, "no record twice");
    assert_eq!(sorted(read), all_ids(&records).into_iter().collect::<Vec<_>>());
}

#[test]
fn an_expiry_among_records_without_a_cursor_value_passes_over_them_by_name() {
    // Ten records without a value list first; one read changes (leaving them), two unread trade
    // places.
    let records = table(20, |i| (i >= 10).then(|| updated(i)));
    let fake = FakeAirtable::compliance(records.clone());
    let options = [("page_size", "4"), ("lookback_seconds", "0")];
    let (before, _) = calls(&fake, &options, None, 1);
    let read = ids_of(&before);
    assert_eq!(offset(&before[0])["at_max"].as_array().map(Vec::len), Some(4), "{}", before[0].end);
    {
        let mut stored = fake.records.borrow_mut();
        change_after_the_cap(&mut stored, &read[0]);
        let unread: Vec<String> =
            (0..10).map(|i| format!("recT{i:04}")).filter(|id| !read.contains(id)).collect();
        let (x, y) = (place(&stored, &unread[0]), place(&stored, &unread[5]));
        stored.swap(x, y);
    }
    let after = host_loop(&fake, &options, Some(&expired(&before[0])), 20);
    let all: Vec<String> = read.into_iter().chain(ids_of(&after)).collect();
    assert_eq!(all.len(), 20, "no record twice");
    assert_eq!(sorted(all), all_ids(&records).into_iter().collect::<Vec<_>>(), "none lost");
}

#[test]
fn an_expiry_inside_a_lookback_window_never_ends_the_read_below_its_cursor() {
    // The committed cursor is at 100 ms; one record changed after it (at 200 ms), the others
    // before it, all inside the hour of lookback.
    let t = |ms: i64| format_ms(parse_ms(T0).unwrap_or_default() + ms);
    let records = table(25, |i| Some(if i == 24 { t(200) } else { updated(i) }));
    let fake = FakeAirtable::compliance(records);
    let options = [("page_size", "4"), ("lookback_seconds", "3600")];
    let start = json!({"cursor": t(100)}).to_string();
    let (before, _) = calls(&fake, &options, Some(&start), 2);
    // The record after the cursor changes again, past the read's cap, and the iterator expires:
    // the listing starts over from the last value read, well below the cursor.
    change_after_the_cap(&mut fake.records.borrow_mut(), "recT0024");
    let after = host_loop(&fake, &options, Some(&expired(&before[1])), 20);
    assert_eq!(offset(&after[0])["floor"], json!(t(100)), "{}", after[0].end);
    let last = &after[after.len() - 1];
    assert_eq!(offset(last), json!({"cursor": t(100)}), "the cursor moved back");
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

/// `n` vendors `recV0000…`, in creation order.
fn vendors(n: usize) -> Vec<Value> {
    (0..n).map(|i| record(&format!("recV{i:04}"), json!({"fldV1": format!("Vendor {i}")}))).collect()
}

fn delete(fake: &FakeAirtable, id: &str) {
    let mut stored = fake.records.borrow_mut();
    let gone = place(&stored, id);
    stored.remove(gone);
}

#[test]
fn an_expired_snapshot_listing_passes_over_what_it_returned_by_name_though_records_went() {
    // 45 vendors in pages of 4: seven pages (28 records, more than the offset names) are read
    // before the iterator expires.
    let records = vendors(45);
    let fake = FakeAirtable::vendors(records.clone());
    let options = [("page_size", "4")];
    let (before, _) = calls(&fake, &options, None, 7);
    let read = ids_of(&before);
    assert_eq!(read.len(), 28);
    // Two records read early and the two read last are deleted: a new listing puts every later
    // record four places up, so passing over its first 28 places would pass over four never read.
    for id in [&read[0], &read[3], &read[26], &read[27]] {
        delete(&fake, id);
    }
    // One call into the restarted listing passes over its first page, then it expires again.
    let (restarted, _) = calls(&fake, &options, Some(&expired(&before[6])), 1);
    assert!(restarted[0].ids.is_empty(), "{:?}", restarted[0]);
    assert!(offset(&restarted[0])["before"].as_u64() > Some(0), "{}", restarted[0].end);
    let after = host_loop(&fake, &options, Some(&expired(&restarted[0])), 30);
    let all: Vec<String> = read.into_iter().chain(ids_of(&after)).collect();
    assert_eq!(all.len(), 45, "each record once");
    assert_eq!(sorted(all), all_ids(&records).into_iter().collect::<Vec<_>>(), "none lost");
}

/// Reads on from `start` until the read fails: the calls that returned, and the error. Every page
/// before the error must return no row.
fn until_error(fake: &FakeAirtable, options: &[(&str, &str)], start: String) -> (usize, ConnectorError) {
    let now = parse_ms(NOW).unwrap_or_default();
    let mut start = Some(start);
    for call in 0..100 {
        let read =
            Airtable::read_table_at(fake, &connection(), fake.name, &opts(options), start.as_deref(), || now);
        match read {
            Ok(page) => {
                assert!(rows(&page).is_empty(), "a page returned rows: {}", page.end_offset);
                start = Some(page.end_offset);
            }
            Err(e) => return (call, e),
        }
    }
    panic!("the read did not fail within 100 calls");
}

/// The ids an offset names as the last records it returned.
fn last_named(step: &Step) -> Vec<String> {
    serde_json::from_value(offset(step)["last"].clone()).expect("ids")
}

#[test]
fn an_expired_snapshot_listing_that_meets_none_of_its_last_records_fails_having_returned_nothing() {
    let fake = FakeAirtable::vendors(vendors(45));
    let options = [("page_size", "4")];
    let (before, _) = calls(&fake, &options, None, 7);
    let named = last_named(&before[6]);
    assert_eq!(named.len(), 20, "{}", before[6].end);
    for id in &named {
        delete(&fake, id);
    }
    // The listing ends (25 records) without meeting any of them.
    let (_, error) = until_error(&fake, &options, expired(&before[6]));
    let message = error.to_string();
    assert!(message.contains("source answered 422"), "{message}");
    assert!(message.contains("none of the last 20 records"), "{message}");
    assert!(message.contains("run again"), "{message}");

    // Forty records a sorted view puts first: it gives up once it has passed over 20 more than the
    // 28 it had returned (13 pages of 4), not at the end of the listing's 17 pages.
    let fake = FakeAirtable::vendors(vendors(45));
    let (before, _) = calls(&fake, &options, None, 7);
    for id in &last_named(&before[6]) {
        delete(&fake, id);
    }
    let first: Vec<Value> =
        (0..40).map(|i| record(&format!("recN{i:04}"), json!({"fldV1": format!("New {i}")}))).collect();
    fake.records.borrow_mut().splice(0..0, first);
    let (calls_before, error) = until_error(&fake, &options, expired(&before[6]));
    assert_eq!(calls_before, 12, "{error}");
    assert!(error.to_string().contains("none of the last 20 records"), "{error}");
}

#[test]
fn an_expired_snapshot_listing_that_named_every_record_it_returned_passes_over_them_by_name() {
    // Two pages of 4 read, all eight deleted since: nothing is unknown, so nothing fails.
    let records = vendors(45);
    let fake = FakeAirtable::vendors(records.clone());
    let options = [("page_size", "4")];
    let (before, _) = calls(&fake, &options, None, 2);
    let read = ids_of(&before);
    assert_eq!(last_named(&before[1]), read);
    for id in &read {
        delete(&fake, id);
    }
    let after = host_loop(&fake, &options, Some(&expired(&before[1])), 30);
    let all: Vec<String> = read.into_iter().chain(ids_of(&after)).collect();
    assert_eq!(all.len(), 45, "each record once");
    assert_eq!(sorted(all), all_ids(&records).into_iter().collect::<Vec<_>>(), "none lost");
}
