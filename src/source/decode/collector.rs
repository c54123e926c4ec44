//! Rows decoded record by record (the per-record paths of JSON and CSV, for files with
//! malformed records), with their corrupt-record text, put into batches of the source schema of
//! at most [`BATCH_ROWS`] rows — never a batch per record.

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::timestamps;
use super::{DecodeSpec, BATCH_ROWS};
use crate::source::SourceError;

/// Corrupt-record text held before rows are put into a batch.
const COLLECT_TEXT_BYTES: usize = 256 << 20;

/// Rows of the per-record path, with their corrupt-record text, put into batches of at most
/// [`BATCH_ROWS`] rows (and [`COLLECT_TEXT_BYTES`] of corrupt text).
pub(super) struct Collector<'a> {
    spec: &'a DecodeSpec,
    parse_schema: &'a SchemaRef,
    parsed: &'a SchemaRef,
    pieces: Vec<RecordBatch>,
    /// One per row of `pieces` and of rows noted but not pushed yet, in order.
    corrupt: Vec<Option<String>>,
    text_bytes: usize,
    batches: Vec<RecordBatch>,
}

impl<'a> Collector<'a> {
    pub(super) fn new(
        spec: &'a DecodeSpec,
        parse_schema: &'a SchemaRef,
        parsed: &'a SchemaRef,
    ) -> Self {
        Collector {
            spec,
            parse_schema,
            parsed,
            pieces: Vec::new(),
            corrupt: Vec::new(),
            text_bytes: 0,
            batches: Vec::new(),
        }
    }

    /// A good row went into the accumulating decoder (its rows come with [`Self::push_rows`]).
    pub(super) fn note_good(&mut self) {
        self.corrupt.push(None);
    }

    fn rows(&self) -> usize {
        self.pieces.iter().map(RecordBatch::num_rows).sum()
    }

    /// Rows of good records noted before (with [`Self::note_good`]), in order.
    pub(super) fn push_rows(&mut self, rows: Option<RecordBatch>) -> Result<(), SourceError> {
        if let Some(rows) = rows.filter(|r| r.num_rows() > 0) {
            self.make_room(rows.num_rows(), 0)?;
            self.pieces.push(rows);
        }
        Ok(())
    }

    /// A malformed record's row (what could be kept of it) and its text; every good row noted
    /// before it was pushed first.
    pub(super) fn push_corrupt(
        &mut self,
        row: RecordBatch,
        line: &[u8],
    ) -> Result<(), SourceError> {
        self.make_room(row.num_rows(), line.len())?;
        self.pieces.push(row);
        // The accumulating decoder was flushed first: this row comes after every row noted.
        self.corrupt
            .push(Some(String::from_utf8_lossy(line).into_owned()));
        self.text_bytes += line.len();
        Ok(())
    }

    /// Emit what is held if `rows` more rows (and `text` more bytes) would not fit a batch.
    fn make_room(&mut self, rows: usize, text: usize) -> Result<(), SourceError> {
        if self.rows() + rows > BATCH_ROWS || self.text_bytes + text > COLLECT_TEXT_BYTES {
            self.emit()?;
        }
        Ok(())
    }

    /// Put the rows pushed so far into one batch.
    fn emit(&mut self) -> Result<(), SourceError> {
        let rows = self.rows();
        if rows == 0 {
            return Ok(());
        }
        let format = self.spec.formats();
        let all = concat_batches(self.parse_schema, &self.pieces)?;
        let all = timestamps::to_target(all, self.parsed, format)?;
        // The corrupt texts of these rows: the first `rows` of the list (later notes belong to
        // rows still in the accumulating decoder).
        let rest = self.corrupt.split_off(rows.min(self.corrupt.len()));
        let texts = std::mem::replace(&mut self.corrupt, rest);
        let corrupt = self.spec.corrupt_index().map(|_| texts);
        self.batches
            .push(self.spec.with_corrupt_column(all, corrupt)?);
        self.pieces.clear();
        self.text_bytes = 0;
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Vec<RecordBatch>, SourceError> {
        self.emit()?;
        Ok(self.batches)
    }
}
