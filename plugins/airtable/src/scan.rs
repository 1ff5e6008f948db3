//! A list-records page read by one scan of its text, in the form Airtable and the simulator write
//! it: no whitespace but after the page, a record's keys in their usual order (`id`,
//! `createdTime`, `fields`), no escape in a key, an id, a created time or the offset. The scan
//! checks the JSON as serde_json does (strings, escapes, numbers, literals, nesting) and answers
//! `None` for any page it does not read, which serde_json then reads
//! ([`crate::api::ListBody::page`]): a page is either read here as serde_json would read it, or not
//! at all.
//!
//! Parsing the page with serde_json was the largest part of the guest's read path (29 % of its
//! samples): keys and values went through its visitors, and every cell was skipped over to be
//! captured as raw text. The scan reads each key and cell once, with no visitor.

use std::borrow::Cow;

use crate::api::RecordsPage;
use crate::rows::{Cells, Key, Record, string_stop};

/// How deep a cell's lists and objects may nest here (serde_json refuses past 128 in all).
const MAX_DEPTH: usize = 100;

/// The page, or `None` where serde_json must read it.
pub(crate) fn page(text: &str) -> Option<RecordsPage<'_>> {
    let mut scan = Scan { text, bytes: text.as_bytes(), at: 0 };
    scan.literal(r#"{"records":["#)?;
    let mut records = Vec::new();
    if !scan.eat(b']') {
        loop {
            records.push(scan.record()?);
            if !scan.eat(b',') {
                scan.expect(b']')?;
                break;
            }
        }
    }
    let offset = match scan.literal(r#","offset":"#) {
        Some(()) => Some(scan.plain_string()?.to_string()),
        None => None,
    };
    scan.expect(b'}')?;
    // A line's end after the page, say, as serde_json allows.
    let rest = &scan.bytes[scan.at..];
    rest.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).then_some(RecordsPage { records, offset })
}

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn record(&mut self) -> Option<Record<'a>> {
        self.literal(r#"{"id":"#)?;
        let id = self.plain_string()?;
        self.literal(r#","createdTime":"#)?;
        let created_time = self.plain_string()?;
        self.literal(r#","fields":{"#)?;
        let mut cells = Vec::with_capacity(32);
        if !self.eat(b'}') {
            loop {
                let key = self.plain_string()?;
                self.expect(b':')?;
                let start = self.at;
                self.value(0)?;
                cells.push((Key::borrowed(key), &self.text[start..self.at]));
                if !self.eat(b',') {
                    self.expect(b'}')?;
                    break;
                }
            }
        }
        self.expect(b'}')?;
        Some(Record {
            id: Cow::Borrowed(id),
            created_time: Some(Cow::Borrowed(created_time)),
            fields: Cells::new(cells),
        })
    }

    /// Steps over `byte` when it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(next);
        next
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Steps over `text` when it is next.
    fn literal(&mut self, text: &str) -> Option<()> {
        let next = self.bytes.get(self.at..self.at + text.len())? == text.as_bytes();
        self.at += if next { text.len() } else { 0 };
        next.then_some(())
    }

    /// A string without escapes or control characters: its contents. (Any other string sends the
    /// page to serde_json, so it need not be read to its end.)
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        self.at += string_stop(&self.bytes[start..])?;
        self.expect(b'"')?;
        Some(&self.text[start..self.at - 1])
    }

    /// The rest of a string after its opening quote, to after its closing one (see [`string_end`]).
    fn string_rest(&mut self) -> Option<()> {
        self.at = string_end(self.bytes, self.at)?;
        Some(())
    }

    /// One JSON value, without whitespace.
    fn value(&mut self, depth: usize) -> Option<()> {
        match *self.bytes.get(self.at)? {
            b'"' => {
                self.at += 1;
                self.string_rest()
            }
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                if self.eat(b'}') {
                    return Some(());
                }
                loop {
                    self.expect(b'"')?;
                    self.string_rest()?;
                    self.expect(b':')?;
                    self.value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b'}');
                    }
                }
            }
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                if self.eat(b']') {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b']');
                    }
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A number: `-`, then `0` or digits not starting with one, a fraction, an exponent. What
    /// follows it is checked by the list or object around it.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.eat(b'.') {
            self.digits()?;
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.digits()?;
        }
        Some(())
    }

    /// One digit or more.
    fn digits(&mut self) -> Option<()> {
        let count = self.bytes[self.at..].iter().take_while(|b| b.is_ascii_digit()).count();
        self.at += count;
        (count > 0).then_some(())
    }
}

/// Where the string whose text starts at `at` (after its opening quote) ends, after its closing
/// quote; `None` unless every escape is one of JSON's (a `\u` escape four hex digits, whatever they
/// name, as serde_json skips it) and no control character comes before the quote.
pub(crate) fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += string_stop(&bytes[at..])?;
        match bytes[at] {
            b'"' => return Some(at + 1),
            b'\\' => match bytes.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                b'u' if bytes.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => at += 6,
                _ => return None,
            },
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page as Airtable writes it: texts with escapes, numbers of every form, checkboxes, nulls,
    /// lists, collaborators, attachments nested three deep, empty lists and objects.
    fn airtable_page(records: usize) -> String {
        let record = |i: usize| {
            format!(
                r#"{{"id":"rec{i:014}","createdTime":"2025-01-11T09:35:00.000Z","fields":{{"fldName":"Cirrus Filter {i}","fldPrice":19.99,"fldRow":{i},"fldSmall":-0.5e-3,"fldBig":12345678901234567890123,"fldExp":1E+2,"fldZero":0,"fldReady":true,"fldNot":false,"fldNone":null,"fldDesc":"**Cirrus**\n\nSee [spec](https://x.example/a\/b) \u00b7 \ud83d\ude80 \"q\" \\ é","fldTags":["Retail","Wholesale"],"fldBy":{{"id":"usr1","email":"p@x.example","name":"Priya"}},"fldFiles":[{{"id":"att1","thumbnails":{{"small":{{"url":"https://x.example/s","width":36}}}}}}],"fldEmpty":[],"fldObject":{{}}}}}}"#
            )
        };
        let records: Vec<String> = (0..records).map(record).collect();
        format!(r#"{{"records":[{}],"offset":"itr123/rec456"}}"#, records.join(","))
    }

    fn scanned(text: &str) -> Option<String> {
        page(text).map(|p| format!("{p:?}"))
    }

    fn read(text: &str) -> Option<String> {
        serde_json::from_str::<RecordsPage>(text).ok().map(|p| format!("{p:?}"))
    }

    /// Airtable's form is scanned, as serde_json reads it; other forms are left to serde_json.
    #[test]
    fn airtables_pages_are_scanned() {
        let pages = [
            airtable_page(3),
            airtable_page(0),
            airtable_page(1).replace(r#","offset":"itr123/rec456""#, ""),
            airtable_page(1) + "\r\n",
        ];
        for text in pages {
            assert!(scanned(&text).is_some(), "{text}");
            assert_eq!(scanned(&text), read(&text), "{text}");
        }
        for other in [
            airtable_page(1).replace(r#""records":["#, r#""records": ["#),
            airtable_page(1).replace("fldRow", r"fld\u0052ow"),
            airtable_page(1).replace(r#""offset":"itr123/rec456""#, r#""offset":null"#),
            airtable_page(1).replace(r#"{"records""#, r#"{"extra":1,"records""#),
            format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ] {
            assert_eq!(scanned(&other), None, "{other}");
        }
    }

    /// A page changed at random (a byte replaced, added or taken away, up to three times) is either
    /// scanned into what serde_json reads from it or left to serde_json: whatever the scan reads,
    /// serde_json reads the same, and no page that serde_json refuses is scanned.
    #[test]
    fn a_scanned_page_is_what_serde_json_reads() {
        let base = airtable_page(2).into_bytes();
        let marks = b"\"\\,:{}[] \n\t\x01\x1f0123-+.eEubfnrtl9aA\xc3\xa9";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let (mut same, mut refused) = (0, 0);
        for _ in 0..10_000 {
            let mut text = base.clone();
            for _ in 0..1 + next() % 3 {
                let (at, mark) = (next() % text.len(), marks[next() % marks.len()]);
                match next() % 3 {
                    0 => text[at] = mark,
                    1 => text.insert(at, mark),
                    _ => {
                        text.remove(at);
                    }
                }
            }
            let Ok(text) = String::from_utf8(text) else { continue };
            match scanned(&text) {
                Some(page) => {
                    assert_eq!(Some(page), read(&text), "{text}");
                    same += 1;
                }
                None => refused += usize::from(read(&text).is_none()),
            }
        }
        // Both kinds were met: pages changed within what the scan reads, and broken ones.
        assert!(same > 1000 && refused > 1000, "{same} scanned, {refused} refused by both");
    }
}
