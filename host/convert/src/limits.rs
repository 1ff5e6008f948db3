//! The bounds on what one schema or one page may make the host spend, and the per-page account
//! that enforces them.
//!
//! Everything here is checked before the work it bounds: a page's rows are counted while its lines
//! are parsed, an array's cells before the array is allocated, a compressed buffer's declared size
//! before it is inflated. A breach is a [`ConvertError::LimitExceeded`] naming the limit.

use crate::ConvertError;

/// Bounds on what a connector's schema and pages may make the converter spend.
///
/// A schema and its pages come from an untrusted guest, and the conversion runs in the host,
/// outside the guest's CPU and memory limits, so each of these is checked before the work it
/// bounds. The defaults suit a host that caps pages at a few tens of MiB (the runtime's default page
/// limit is 32 MiB); [`Limits::for_page`] derives the decompression cap from a page limit.
///
/// ```
/// let mut limits = weir_convert::Limits::default();
/// limits.max_rows = 10_000;
/// assert_eq!(limits.max_depth, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Rows in one page, all the batches of an Arrow IPC page together.
    ///
    /// Default 1,000,000. A schema with few columns lets many rows through [`Limits::max_cells`];
    /// this bounds what a page of empty records (`{}` per line) costs even with no column at all.
    pub max_rows: usize,
    /// Cells in one page: the sum of the lengths of every array the page converts to. A row counts
    /// once for itself and once per column; a struct column counts again for each of its fields, and
    /// a list or map column for each element, key and value it holds (so nested values are counted
    /// at every level they occupy). A missing column, filled with nulls, counts like a present one.
    ///
    /// Default 16,777,216 (2^24): at most a few hundred MiB of Arrow memory even when every cell is a
    /// 16-byte decimal. Without it a 7.5 MB page of `{}` lines against a 300-column schema becomes
    /// 750 million null cells.
    pub max_cells: usize,
    /// Bytes that decompressing the buffers of one Arrow IPC page may produce (LZ4 frame and ZSTD
    /// body compression), checked against each buffer's declared length before it is inflated and
    /// against what it actually inflates to.
    ///
    /// Default 64 MiB, twice the runtime's default page limit: a compressed page may hold a little
    /// more than a plain one, never a zip bomb (33 KiB of zstd inflating to 1 GiB).
    pub max_decompressed_bytes: usize,
    /// Fields in a schema, counted at every depth: each column, each field of a struct, and each
    /// array's element and map's key and value. Applies to the Spark JSON schema and to the schema
    /// an Arrow IPC page carries.
    ///
    /// Default 10,000.
    pub max_schema_fields: usize,
    /// Nesting depth of a column's type: the number of arrays, structs and maps from the column to
    /// its innermost value. A `long` column has depth 0 and `array<struct<a:long>>` depth 2.
    ///
    /// Default 32. Converting, writing Parquet and reading back all recurse once per level; a
    /// 120-level array column overflowed a worker's stack in the Parquet writer.
    pub max_depth: usize,
    /// Distinct field paths [`crate::Converter::unknown_fields`] counts one by one. Past this, a
    /// new path is counted under [`crate::OTHER_UNKNOWN_FIELDS`] instead, so that a connector sending
    /// a new key on every row cannot grow the counts without end.
    ///
    /// Default 1,000.
    pub max_unknown_fields: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rows: 1_000_000,
            max_cells: 1 << 24,
            max_decompressed_bytes: 64 << 20,
            max_schema_fields: 10_000,
            max_depth: 32,
            max_unknown_fields: 1_000,
        }
    }
}

impl Limits {
    /// The default limits, with the decompression cap set to twice `page_bytes`, the host's cap on a
    /// page as it crosses the boundary (compressed).
    pub fn for_page(page_bytes: usize) -> Limits {
        Limits { max_decompressed_bytes: page_bytes.saturating_mul(2), ..Limits::default() }
    }
}

/// A breach of `limit` (a field name of [`Limits`]), described by `what`.
pub(crate) fn exceeded(limit: &'static str, max: usize, what: impl Into<String>) -> ConvertError {
    ConvertError::LimitExceeded { limit, max, what: what.into() }
}

/// Counts one more field of a schema against [`Limits::max_schema_fields`].
pub(crate) fn count_field(count: &mut usize, limits: &Limits, what: &str) -> Result<(), ConvertError> {
    *count = spend(*count, 1, limits.max_schema_fields, "max_schema_fields", what)?;
    Ok(())
}

/// What one page has spent so far, against its limits.
#[derive(Debug)]
pub(crate) struct Budget<'a> {
    pub(crate) limits: &'a Limits,
    rows: usize,
    cells: usize,
    decompressed: usize,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Budget<'a> {
        Budget { limits, rows: 0, cells: 0, decompressed: 0 }
    }

    /// Spends `rows` more rows.
    pub(crate) fn rows(&mut self, rows: usize) -> Result<(), ConvertError> {
        self.rows = spend(self.rows, rows, self.limits.max_rows, "max_rows", "rows in one page")?;
        Ok(())
    }

    /// Spends `cells` more cells, for an array about to be built.
    pub(crate) fn cells(&mut self, cells: usize) -> Result<(), ConvertError> {
        self.cells = spend(
            self.cells,
            cells,
            self.limits.max_cells,
            "max_cells",
            "cells (rows × columns, nested values included) in one page",
        )?;
        Ok(())
    }

    /// Whether `cells` more cells would still fit, without spending them: lets a caller stop
    /// gathering values for an array that could never be built.
    pub(crate) fn check_cells(&self, cells: usize) -> Result<(), ConvertError> {
        spend(
            self.cells,
            cells,
            self.limits.max_cells,
            "max_cells",
            "cells (rows × columns, nested values included) in one page",
        )
        .map(drop)
    }

    /// Spends `bytes` more decompressed bytes, for a buffer about to be inflated.
    pub(crate) fn decompressed(&mut self, bytes: usize) -> Result<(), ConvertError> {
        self.decompressed = spend(
            self.decompressed,
            bytes,
            self.limits.max_decompressed_bytes,
            "max_decompressed_bytes",
            "decompressed bytes in one page",
        )?;
        Ok(())
    }

    /// The decompressed bytes still allowed.
    pub(crate) fn decompressed_left(&self) -> usize {
        self.limits.max_decompressed_bytes.saturating_sub(self.decompressed)
    }
}

fn spend(
    spent: usize,
    more: usize,
    max: usize,
    limit: &'static str,
    what: &str,
) -> Result<usize, ConvertError> {
    match spent.checked_add(more) {
        Some(total) if total <= max => Ok(total),
        _ => Err(exceeded(limit, max, what)),
    }
}
