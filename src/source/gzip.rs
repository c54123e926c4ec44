//! gzip decompression with ISA-L's inflate (`isal-sys`, built from the vendored source), a
//! streaming reader over any [`Read`]: it holds one input buffer and the decoder's own window,
//! never the file. Several members in one file are read one after another, as `gzip -d` and
//! Hadoop's `GzipCodec` read them; each member's CRC-32 and length are checked.
//!
//! ```text
//!   read(out) ─► input buffer empty? refill from the file (EOF noted)
//!            ─► isal_inflate(input → out)     header, deflate blocks, trailer check
//!            ─► bytes out?  return them
//!            ─► member finished?  more input → reset the decoder, next member
//!                                 no more    → Ok(0), the end
//!            ─► nothing out, no input left, member open → error: the file is cut short
//! ```
//!
//! ISA-L decodes deflate roughly twice as fast as zlib on the same core, and gzip is where most of
//! the time of reading a compressed landing zone goes.

use std::io::{Error, ErrorKind, Read};

use isal_sys::igzip_lib as isal;

/// Input read from the file per refill.
const INPUT_BYTES: usize = 256 * 1024;

/// The decoder's state: large (its window and Huffman tables), so boxed.
struct State(Box<isal::inflate_state>);

// SAFETY: the state's only pointers, `next_in` and `next_out`, are set just before each
// `isal_inflate` call and nulled right after it, so between calls the state owns plain data and
// may move to another thread with its reader.
unsafe impl Send for State {}

impl std::ops::Deref for State {
    type Target = isal::inflate_state;
    fn deref(&self) -> &isal::inflate_state {
        &self.0
    }
}

impl std::ops::DerefMut for State {
    fn deref_mut(&mut self) -> &mut isal::inflate_state {
        &mut self.0
    }
}

/// Reads the decompressed content of a (multi-member) gzip stream.
pub struct GzipReader<R> {
    inner: R,
    state: State,
    input: Vec<u8>,
    /// Input not yet given to the decoder: `input[at..end]`.
    at: usize,
    end: usize,
    /// The file has no more bytes.
    eof: bool,
    /// No member has begun yet (an empty file is an empty stream).
    started: bool,
}

impl<R: Read> GzipReader<R> {
    /// A reader of the gzip stream `inner`.
    pub fn new(inner: R) -> Self {
        // SAFETY: `inflate_state` is a plain C struct of integers, arrays and raw pointers, for
        // which all-zero bytes is a valid value; `isal_inflate_init` then sets it up.
        let mut state = State(Box::new(unsafe { std::mem::zeroed() }));
        // SAFETY: `state` points to a live, writable `inflate_state`.
        unsafe { isal::isal_inflate_init(&mut *state) };
        state.crc_flag = isal::ISAL_GZIP;
        GzipReader {
            inner,
            state,
            input: vec![0; INPUT_BYTES],
            at: 0,
            end: 0,
            eof: false,
            started: false,
        }
    }

    /// Fills the input buffer when it is empty; notes the end of the file.
    fn refill(&mut self) -> std::io::Result<()> {
        while self.at == self.end && !self.eof {
            match self.inner.read(&mut self.input) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.at = 0;
                    self.end = n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn finished_member(&self) -> bool {
        self.state.block_state == isal::isal_block_state_ISAL_BLOCK_FINISH
    }
}

/// ISA-L's error codes, as what is wrong with the file.
fn damaged(code: i32) -> Error {
    let what = match code {
        isal::ISAL_INVALID_BLOCK => "an invalid deflate block",
        isal::ISAL_INVALID_SYMBOL => "an invalid deflate symbol",
        isal::ISAL_INVALID_LOOKBACK => "a back-reference before the start of the data",
        isal::ISAL_INVALID_WRAPPER => "a header that is not gzip's",
        isal::ISAL_UNSUPPORTED_METHOD => "a compression method other than deflate",
        isal::ISAL_INCORRECT_CHECKSUM => "a wrong checksum (the content is damaged)",
        _ => "data the decoder rejects",
    };
    Error::new(
        ErrorKind::InvalidData,
        format!("not a valid gzip file: {what} (code {code})"),
    )
}

impl<R: Read> Read for GzipReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            self.refill()?;
            if self.finished_member() || !self.started {
                if self.at == self.end {
                    // The end of the file between members (or of an empty file).
                    return Ok(0);
                }
                if self.started {
                    // SAFETY: `state` is a live, initialised `inflate_state`.
                    unsafe { isal::isal_inflate_reset(&mut *self.state) };
                }
                self.started = true;
            }
            let avail_in = self.end - self.at;
            let avail_out = out.len().min(u32::MAX as usize);
            self.state.next_in = self.input[self.at..].as_mut_ptr();
            self.state.avail_in = avail_in as u32;
            self.state.next_out = out.as_mut_ptr();
            self.state.avail_out = avail_out as u32;
            // SAFETY: `next_in`/`avail_in` describe initialised bytes of `self.input` and
            // `next_out`/`avail_out` writable bytes of `out`, both live for this call; the decoder
            // keeps no pointer into them past it (they are reset before every call).
            let code = unsafe { isal::isal_inflate(&mut *self.state) };
            let consumed = avail_in - self.state.avail_in as usize;
            let produced = avail_out - self.state.avail_out as usize;
            self.state.next_in = std::ptr::null_mut();
            self.state.next_out = std::ptr::null_mut();
            self.at += consumed;
            if code < 0 {
                return Err(damaged(code));
            }
            if produced > 0 {
                return Ok(produced);
            }
            if self.finished_member() {
                continue;
            }
            if consumed == 0 && (self.eof || self.at < self.end) {
                // Nothing taken, nothing given, the member open: at the end of the file this is
                // a file cut short; with input left it would be a decoder that cannot go on.
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "not a valid gzip file: it ends inside a member (cut short?)",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Reads `r` to the end in reads of `step` bytes.
    fn read_all(mut r: impl Read, step: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0; step];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// A reader handing out its bytes `step` at a time, as a socket might.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"i\":{i},\"s\":\"{}\"}}\n", "x".repeat(i % 50)))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn reads_what_flate2_wrote_at_every_level_and_read_size() {
        let data = sample(40_000);
        for level in [0, 1, 6, 9] {
            let packed = gzip(&data, level);
            for step in [1, 7, 4096, 1 << 20] {
                let got = read_all(GzipReader::new(Trickle(&packed, 3000)), step).unwrap();
                assert_eq!(got, data, "level {level}, read size {step}");
            }
        }
    }

    #[test]
    fn reads_every_member_of_a_multi_member_file_even_split_byte_by_byte() {
        let parts = [sample(10), Vec::new(), sample(30_000), sample(1)];
        let packed: Vec<u8> = parts.iter().flat_map(|p| gzip(p, 6)).collect();
        let whole: Vec<u8> = parts.concat();
        assert_eq!(read_all(GzipReader::new(&packed[..]), 8192).unwrap(), whole);
        assert_eq!(
            read_all(GzipReader::new(Trickle(&packed, 1)), 8192).unwrap(),
            whole
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_stream() {
        assert!(read_all(GzipReader::new(&[][..]), 64).unwrap().is_empty());
    }

    #[test]
    fn a_file_cut_short_anywhere_is_an_error_never_a_hang() {
        let packed = gzip(&sample(5_000), 6);
        for cut in (1..packed.len()).step_by(97).chain([packed.len() - 1]) {
            let err = read_all(GzipReader::new(&packed[..cut]), 4096).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::InvalidData
                ),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn damaged_content_and_trailing_garbage_are_errors() {
        let data = sample(5_000);
        let mut packed = gzip(&data, 6);
        let crc_at = packed.len() - 8;
        packed[crc_at] ^= 0xff;
        let err = read_all(GzipReader::new(&packed[..]), 4096).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");

        let mut trailing = gzip(&data, 6);
        trailing.extend_from_slice(b"not gzip at all");
        let err = read_all(GzipReader::new(&trailing[..]), 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");

        let err = read_all(GzipReader::new(&b"plain text, not gzip"[..]), 4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    }
}
