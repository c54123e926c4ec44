//! Large or compressed line-based files (JSON lines, CSV, text) are read and decoded in parts of
//! about [`CHUNK_BYTES`], cut at line ends, so memory follows the part, not the file: a multi-GB
//! file streams through like many small ones.
//!
//! ```text
//!   file bytes (local reads, or the S3 body as it arrives) ──► decompress (by extension)
//!     ──► Rechunker: hold bytes until CHUNK_BYTES came, cut after the first line end past it
//!         (for CSV, the first one outside a quoted field), keep the rest for the next part
//!     ──► part k = (bytes, first line number) ──► decode on a blocking thread
//! ```
//!
//! Text in another charset, with a BOM or with `lineSep` becomes UTF-8 lines before it is cut
//! (see [`super::transcode`]).
//!
//! A file's parts are read in order on a blocking thread of its own, which also decompresses it
//! (by extension); their decoding runs in parallel with other parts and files. A single line
//! longer than a part is kept whole (it cannot be cut), up to what one value can hold.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::compression::Codec;
use super::transcode::Transcoder;
use super::SourceError;

/// About how many bytes one part of a file holds. Parts of this size keep their buffers in the
/// allocator's heap (larger ones were mapped and unmapped per part: page faults cost a third
/// of the nested benchmark's system time).
pub const CHUNK_BYTES: usize = 16 << 20;

/// The part size in force: [`CHUNK_BYTES`], or for tests `SLUICE_TEST_CHUNK_BYTES`, so that
/// small files exercise the parts.
pub fn chunk_bytes() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("SLUICE_TEST_CHUNK_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(CHUNK_BYTES)
    })
}

/// Does an uncompressed file of `size` bytes fit in one part (so it is read whole)?
pub fn fits_one_part(size: u64) -> bool {
    size <= chunk_bytes() as u64
}

/// One part of a file: its bytes, ending at a line end (or the file's end).
#[derive(Debug, Clone)]
pub struct Part {
    /// The part's bytes.
    pub data: Bytes,
    /// The file's line number (1-based) of the part's first line.
    pub first_line: usize,
    /// Is this the file's first part (where a CSV header is)?
    pub first: bool,
}

impl Part {
    /// A whole file as its one part.
    pub fn whole(data: Bytes) -> Self {
        Part {
            data,
            first_line: 1,
            first: true,
        }
    }
}

/// Cuts a byte stream into parts of at least `min` bytes at line ends. Pure: fed pieces, asked
/// for parts.
#[derive(Debug)]
pub struct Rechunker {
    buf: BytesMut,
    min: usize,
    /// Cut only outside double-quoted fields (CSV).
    quoted: bool,
    next_line: usize,
    emitted: bool,
}

impl Rechunker {
    /// A rechunker cutting parts of at least `min` bytes; CSV-aware when `quoted`.
    pub fn new(min: usize, quoted: bool) -> Self {
        let mut rechunker = Rechunker {
            buf: BytesMut::new(),
            min,
            quoted,
            next_line: 1,
            emitted: false,
        };
        rechunker.buf.reserve(rechunker.room());
        rechunker
    }

    /// More bytes of the file.
    pub fn push(&mut self, piece: &[u8]) {
        self.buf.extend_from_slice(piece);
    }

    /// Bytes held and not cut yet.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// The next part, if enough bytes came and a line end allows a cut.
    pub fn cut(&mut self) -> Option<Part> {
        if self.buf.len() < self.min {
            return None;
        }
        let end = self.cut_point()?;
        // The rest starts the next part in a buffer with room for a whole part, so filling it
        // never copies it again as it grows.
        let mut rest = BytesMut::with_capacity(self.room());
        rest.extend_from_slice(&self.buf[end..]);
        self.buf.truncate(end);
        let data = std::mem::replace(&mut self.buf, rest).freeze();
        Some(self.part(data))
    }

    /// What a part's buffer is allocated with: a part and one more read (when parts have a
    /// size at all).
    fn room(&self) -> usize {
        if self.min <= MAX_ROOM {
            self.min + READ_BYTES
        } else {
            0
        }
    }

    /// The rest, once the file ended.
    pub fn finish(&mut self) -> Option<Part> {
        let data = std::mem::take(&mut self.buf).freeze();
        (!data.is_empty()).then(|| self.part(data))
    }

    fn part(&mut self, data: Bytes) -> Part {
        let part = Part {
            first_line: self.next_line,
            first: !self.emitted,
            data,
        };
        self.next_line += memchr::memchr_iter(b'\n', &part.data).count();
        self.emitted = true;
        part
    }

    /// Just past the first line end that makes a part of at least `min` bytes (outside quotes,
    /// for CSV).
    fn cut_point(&self) -> Option<usize> {
        let from = self.min.saturating_sub(1);
        if !self.quoted {
            return memchr::memchr(b'\n', self.buf.get(from..)?).map(|i| from + i + 1);
        }
        // A `"` toggles quoting (an escaped `""` toggles twice), so a line end outside quotes
        // is one after an even number of quotes.
        let mut inside = false;
        for (i, b) in self.buf.iter().enumerate() {
            match b {
                b'"' => inside = !inside,
                b'\n' if !inside && i >= from => return Some(i + 1),
                _ => {}
            }
        }
        None
    }
}

/// Where a file's bytes come from.
pub enum ByteSource {
    /// A local file.
    Local(PathBuf),
    /// An object's body, as it arrives.
    Store(BoxStream<'static, object_store::Result<Bytes>>),
}

/// An object's body read as `std::io::Read` on a blocking thread: each chunk is awaited on the
/// runtime (the thread is not one of its workers).
struct BlockingBody {
    runtime: tokio::runtime::Handle,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
}

impl Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.body.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// How much is read (after decompression) at a time.
const READ_BYTES: usize = 8 << 20;

/// Parts larger than this (a multi-line file is one part) grow their buffer as they are read.
const MAX_ROOM: usize = 1 << 30;

/// Parts waiting for a decoder, per file.
const PARTS_AHEAD: usize = 1;

/// Where a file's parts may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// At line ends (JSON lines, text).
    Lines,
    /// At line ends outside double-quoted fields (CSV).
    CsvLines,
    /// Nowhere: the file is one part (multi-line JSON, where a record spans the file).
    Never,
}

/// Read a file part by part on a blocking thread — decompressing it by its extension (see
/// [`super::compression`]) — and send the parts, in order, ending with the first error. The
/// thread stops when the receiver is dropped.
pub fn spawn_parts(
    source: ByteSource,
    codec: Codec,
    path: &str,
    cut: Cut,
    mut transcoder: Transcoder,
) -> mpsc::Receiver<Result<Part, SourceError>> {
    let (tx, rx) = mpsc::channel(PARTS_AHEAD);
    let path: Arc<str> = Arc::from(path);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let unreadable = |e: std::io::Error| {
            SourceError::Unreadable(format!(
                "{path}: {e}; replace it with a readable file of the same name and run again"
            ))
        };
        let raw: Box<dyn Read + Send> = match source {
            ByteSource::Local(file) => match std::fs::File::open(&file) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    let error = match e.kind() {
                        std::io::ErrorKind::NotFound => super::listing::gone(&path),
                        _ => unreadable(e),
                    };
                    let _ = tx.blocking_send(Err(error));
                    return;
                }
            },
            ByteSource::Store(body) => Box::new(BlockingBody {
                runtime,
                body,
                current: Bytes::new(),
            }),
        };
        let mut reader = match codec.reader(raw) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(unreadable(e)));
                return;
            }
        };
        let min = match cut {
            Cut::Never => usize::MAX,
            _ => chunk_bytes(),
        };
        let mut rechunker = Rechunker::new(min, cut == Cut::CsvLines);
        let mut buf = vec![0u8; READ_BYTES];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(unreadable(e)));
                    return;
                }
            };
            if n == 0 {
                match transcoder.finish() {
                    Ok(rest) => rechunker.push(&rest),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(unreadable(std::io::Error::other(e))));
                        return;
                    }
                }
                if let Some(part) = rechunker.finish() {
                    let _ = tx.blocking_send(Ok(part));
                }
                return;
            }
            match transcoder.push(&buf[..n]) {
                Ok(text) => rechunker.push(&text),
                Err(e) => {
                    let _ = tx.blocking_send(Err(unreadable(std::io::Error::other(e))));
                    return;
                }
            }
            while let Some(part) = rechunker.cut() {
                if tx.blocking_send(Ok(part)).is_err() {
                    return;
                }
            }
            if rechunker.held() >= i32::MAX as usize {
                let _ = tx.blocking_send(Err(SourceError::Unreadable(format!(
                    "{path}: a record of over 2 GiB is larger than a value can hold; split the record"
                ))));
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(data: &[u8], min: usize, quoted: bool, piece: usize) -> Vec<Part> {
        let mut r = Rechunker::new(min, quoted);
        let mut out = Vec::new();
        for p in data.chunks(piece) {
            r.push(p);
            while let Some(part) = r.cut() {
                out.push(part);
            }
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn parts_end_at_line_ends_and_number_their_lines() {
        let data: Vec<u8> = (0..1000)
            .flat_map(|i| format!("{{\"v\":{i}}}\n").into_bytes())
            .collect();
        for (min, piece) in [(100, 7), (1, 1), (5000, 333), (1 << 20, 4096)] {
            let got = parts(&data, min, false, piece);
            let joined: Vec<u8> = got.iter().flat_map(|p| p.data.to_vec()).collect();
            assert_eq!(joined, data, "min {min} piece {piece}");
            let mut line = 1;
            for (i, p) in got.iter().enumerate() {
                assert_eq!(p.first, i == 0);
                assert_eq!(p.first_line, line);
                if i + 1 < got.len() {
                    assert!(p.data.ends_with(b"\n") && p.data.len() >= min);
                }
                line += p.data.iter().filter(|b| **b == b'\n').count();
            }
        }
        // A file without a final line end keeps its last line.
        let got = parts(b"a\nb\nc", 2, false, 1);
        assert_eq!(got.last().unwrap().data, Bytes::from_static(b"c"));
        assert!(parts(b"", 2, false, 1).is_empty());
    }

    #[test]
    fn csv_parts_never_cut_inside_a_quoted_field() {
        let data = b"a,\"x\ny\",1\nb,\"\"\"q\n\",2\nc,z,3\n".repeat(50);
        let got = parts(&data, 10, true, 3);
        assert!(got.len() > 1);
        for p in &got {
            let quotes = p.data.iter().filter(|b| **b == b'"').count();
            assert_eq!(quotes % 2, 0, "{:?}", String::from_utf8_lossy(&p.data));
        }
        let joined: Vec<u8> = got.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn a_file_over_one_part_is_read_in_parts() {
        let size = chunk_bytes() as u64;
        assert!(fits_one_part(0) && fits_one_part(size));
        assert!(!fits_one_part(size + 1));
    }
}
