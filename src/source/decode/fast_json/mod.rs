//! The fast path for strict JSON lines: records of strings, integers, floating-point numbers,
//! booleans, epoch-second timestamps, and structs and arrays of them to any depth, decoded in
//! one pass straight into Arrow buffers, driven by the schema (no intermediate tape, no
//! per-value dispatch on the JSON type; keys the schema does not have are skipped without
//! being copied).
//!
//! It accepts only input that arrow-json decodes to exactly the same values: strict JSON, one
//! object per record, every key at most once per object, each value of its column's own JSON
//! type (no coercion), nested values only under keys the schema does not have or of a struct
//! or array type. On anything else — including every malformed record — it hands the whole
//! file back (`None`) to the general decoder, which then applies the parse mode. So this path
//! never decides what a bad record means; it only makes good files cheaper.
//!
//! ```text
//!   bytes ──► utf-8 check ──► record loop ──► column builders ──► RecordBatch (64 Ki rows)
//!             (scan.rs)         │ (columns.rs: structs and lists hold child builders)
//!                               │ anything unusual
//!                               └──────────► None: the general decoder reads the file
//! ```

mod columns;
mod scan;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use self::columns::Fields;
use self::scan::Parser;
use super::BATCH_ROWS;

/// The input is outside what the fast path accepts; the general decoder takes the file.
struct Unsupported;

type Step<T> = Result<T, Unsupported>;

/// Bytes of records per batch at most: wide records make smaller batches, whose buffers the
/// allocator reuses instead of mapping fresh pages for each.
const BATCH_BYTES: usize = 8 << 20;

/// Nesting allowed inside a skipped value before the file is handed back.
const MAX_SKIP_DEPTH: usize = 64;

/// Decode a JSON-lines file, or `None` when the general decoder must.
pub(super) fn decode(schema: &SchemaRef, data: &[u8]) -> Option<Vec<RecordBatch>> {
    let mut record = Fields::new(schema.fields(), BATCH_ROWS)?;
    simdutf8::basic::from_utf8(data).ok()?;
    let mut parser = Parser { data, pos: 0 };
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut batch_start = 0;
    loop {
        parser.skip_whitespace();
        if parser.pos == data.len() {
            break;
        }
        record.object(&mut parser).ok()?;
        rows += 1;
        if rows == BATCH_ROWS || parser.pos - batch_start >= BATCH_BYTES {
            batch_start = parser.pos;
            batches.push(finish(&mut record, schema)?);
            rows = 0;
        }
    }
    if rows > 0 {
        batches.push(finish(&mut record, schema)?);
    }
    Some(batches)
}

fn finish(record: &mut Fields, schema: &SchemaRef) -> Option<RecordBatch> {
    let (_, arrays) = record.finish()?;
    RecordBatch::try_new(schema.clone(), arrays).ok()
}

#[cfg(test)]
mod tests;
