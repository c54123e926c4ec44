//! Plain text: one row per line, in a single `value STRING` column.

use std::sync::Arc;

use arrow::array::{ArrayBuilder, ArrayRef, StringBuilder};
use arrow::record_batch::RecordBatch;

use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::SourceError;

pub(super) fn decode(spec: &DecodeSpec, _path: &str, data: &[u8]) -> Result<Decoded, SourceError> {
    let mut batches = Vec::new();
    let mut builder = StringBuilder::with_capacity(BATCH_ROWS, data.len().min(64 << 20));
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if !body.is_empty() {
        for raw in body.split(|b| *b == b'\n') {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            builder.append_value(String::from_utf8_lossy(line));
            if builder.len() == BATCH_ROWS {
                batches.push(finish(spec, &mut builder)?);
            }
        }
    }
    if builder.len() > 0 {
        batches.push(finish(spec, &mut builder)?);
    }
    Ok(Decoded {
        batches,
        malformed: 0,
    })
}

fn finish(spec: &DecodeSpec, builder: &mut StringBuilder) -> Result<RecordBatch, SourceError> {
    let column: ArrayRef = Arc::new(builder.finish());
    RecordBatch::try_new(spec.schema.clone(), vec![column]).map_err(SourceError::Arrow)
}
