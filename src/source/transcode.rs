//! A file's text as the decoders read it: UTF-8, one record per `\n`-ended line.
//!
//! ```text
//!   bytes ──► charset (a BOM at the start, or Spark's `encoding`) ──► UTF-8
//!         ──► `lineSep` (JSON): the separator becomes `\n`, line ends inside a record spaces
//! ```
//!
//! A file in UTF-8 without a BOM and without `lineSep` passes through untouched (no copy).
//! UTF-16 and the other charsets of the Encoding Standard decode with `encoding_rs`; UTF-32
//! (which Java reads and that standard leaves out) here. Pure: fed pieces, gives pieces.

use std::borrow::Cow;

use encoding_rs::{Decoder, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// A charset Spark's `encoding` option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// One of the Encoding Standard's (UTF-8, UTF-16LE/BE, ISO-8859-x, windows-125x, ...).
    Standard(&'static Encoding),
    /// UTF-32, big-endian or not.
    Utf32 {
        /// Big-endian.
        big: bool,
    },
}

impl Charset {
    /// The charset of an `encoding` label as Java names them (`UTF-16` is big-endian unless
    /// a BOM says otherwise).
    pub fn from_label(label: &str) -> Option<Charset> {
        let lower = label.trim().to_ascii_lowercase().replace('_', "-");
        Some(match lower.as_str() {
            "utf-16" | "utf16" => Charset::Standard(UTF_16BE),
            "utf-32" | "utf32" | "utf-32be" => Charset::Utf32 { big: true },
            "utf-32le" => Charset::Utf32 { big: false },
            other => Charset::Standard(Encoding::for_label(other.as_bytes())?),
        })
    }
}

/// Turns a file's bytes into UTF-8 lines (see the module docs).
#[derive(Debug)]
pub struct Transcoder {
    /// The charset given, or `None`: UTF-8 unless a BOM says otherwise.
    given: Option<Charset>,
    /// The bytes of `lineSep` in UTF-8 (JSON only).
    line_sep: Option<Vec<u8>>,
    /// Decided at the first bytes.
    state: State,
    /// Bytes held until the BOM can be seen.
    head: Vec<u8>,
    /// The end of a piece that may begin a `lineSep`, or a UTF-32 character cut in two.
    carry: Vec<u8>,
    utf32_carry: Vec<u8>,
}

#[derive(Debug)]
enum State {
    Undecided,
    Utf8,
    Decoding(Box<Decoder>),
    Utf32 { big: bool },
}

/// The bytes of BOMs, longest first.
const BOMS: [(&[u8], Option<Charset>); 5] = [
    (&[0xFF, 0xFE, 0, 0], Some(Charset::Utf32 { big: false })),
    (&[0, 0, 0xFE, 0xFF], Some(Charset::Utf32 { big: true })),
    (&[0xEF, 0xBB, 0xBF], None),
    (&[0xFF, 0xFE], Some(Charset::Standard(UTF_16LE))),
    (&[0xFE, 0xFF], Some(Charset::Standard(UTF_16BE))),
];

impl Transcoder {
    /// A transcoder for `encoding` (`None`: UTF-8, or what a BOM says) and `lineSep`.
    pub fn new(given: Option<Charset>, line_sep: Option<&str>) -> Self {
        Transcoder {
            given,
            line_sep: line_sep.map(|s| s.as_bytes().to_vec()),
            state: State::Undecided,
            head: Vec::new(),
            carry: Vec::new(),
            utf32_carry: Vec::new(),
        }
    }

    /// Convert the next piece of the file.
    pub fn push<'a>(&mut self, piece: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
        let input: Cow<'a, [u8]> = match self.state {
            // A first piece long enough to show a BOM is decided on without a copy.
            State::Undecided if self.head.is_empty() && piece.len() >= 4 => {
                let start = self.decide(piece);
                Cow::Borrowed(&piece[start..])
            }
            State::Undecided => {
                self.head.extend_from_slice(piece);
                if self.head.len() < 4 {
                    return Ok(Cow::Owned(Vec::new()));
                }
                let head = std::mem::take(&mut self.head);
                let start = self.decide(&head);
                Cow::Owned(head[start..].to_vec())
            }
            _ => Cow::Borrowed(piece),
        };
        let utf8 = self.decode_text(input, false)?;
        Ok(self.split_lines(utf8, false))
    }

    /// The rest, at the file's end.
    pub fn finish(&mut self) -> Result<Vec<u8>, String> {
        let mut input: Cow<'_, [u8]> = Cow::Owned(Vec::new());
        if matches!(self.state, State::Undecided) {
            let head = std::mem::take(&mut self.head);
            let start = self.decide(&head);
            input = Cow::Owned(head[start..].to_vec());
        }
        let utf8 = self.decode_text(input, true)?.into_owned();
        Ok(self.split_lines(Cow::Owned(utf8), true).into_owned())
    }

    /// Decide the charset from the first bytes; how many BOM bytes to skip.
    fn decide(&mut self, head: &[u8]) -> usize {
        let bom = BOMS.iter().find(|(b, _)| head.starts_with(b));
        let (charset, skip) = match (bom, self.given) {
            (Some((bytes, found)), _) => (found.unwrap_or(Charset::Standard(UTF_8)), bytes.len()),
            (None, Some(given)) => (given, 0),
            (None, None) => (Charset::Standard(UTF_8), 0),
        };
        self.state = match charset {
            Charset::Standard(e) if e == UTF_8 => State::Utf8,
            Charset::Standard(e) => State::Decoding(Box::new(e.new_decoder_without_bom_handling())),
            Charset::Utf32 { big } => State::Utf32 { big },
        };
        skip
    }

    fn decode_text<'a>(
        &mut self,
        input: Cow<'a, [u8]>,
        last: bool,
    ) -> Result<Cow<'a, [u8]>, String> {
        match &mut self.state {
            State::Undecided | State::Utf8 => Ok(input),
            State::Decoding(decoder) => {
                let mut out = String::with_capacity(
                    decoder
                        .max_utf8_buffer_length(input.len())
                        .unwrap_or(input.len() * 3),
                );
                let (_, _, _) = decoder.decode_to_string(&input, &mut out, last);
                Ok(Cow::Owned(out.into_bytes()))
            }
            State::Utf32 { big } => {
                let big = *big;
                let mut bytes = std::mem::take(&mut self.utf32_carry);
                bytes.extend_from_slice(&input);
                let whole = bytes.len() / 4 * 4;
                let mut out = String::with_capacity(whole);
                for unit in bytes[..whole].chunks_exact(4) {
                    let arr = [unit[0], unit[1], unit[2], unit[3]];
                    let code = if big {
                        u32::from_be_bytes(arr)
                    } else {
                        u32::from_le_bytes(arr)
                    };
                    out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                self.utf32_carry = bytes[whole..].to_vec();
                if last && !self.utf32_carry.is_empty() {
                    return Err("the file ends inside a UTF-32 character".into());
                }
                Ok(Cow::Owned(out.into_bytes()))
            }
        }
    }

    /// With `lineSep`: the separator becomes `\n`, and line ends inside a record white space.
    fn split_lines<'a>(&mut self, text: Cow<'a, [u8]>, last: bool) -> Cow<'a, [u8]> {
        let Some(sep) = self.line_sep.as_deref() else {
            return text;
        };
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(&text);
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(sep) {
                out.push(b'\n');
                i += sep.len();
                continue;
            }
            // A possible start of a separator cut by the piece's end waits for the next one.
            if !last && sep.starts_with(&bytes[i..]) {
                self.carry = bytes[i..].to_vec();
                break;
            }
            out.push(match bytes[i] {
                b'\n' | b'\r' => b' ',
                b => b,
            });
            i += 1;
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut Transcoder, data: &[u8], piece: usize) -> String {
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            out.extend_from_slice(&t.push(p).unwrap());
        }
        out.extend(t.finish().unwrap());
        String::from_utf8(out).unwrap()
    }

    fn utf16(text: &str, big: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big { [0xFE, 0xFF] } else { [0xFF, 0xFE] });
        }
        for u in text.encode_utf16() {
            out.extend(if big {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    const TEXT: &str = "{\"a\": \"é日本🙂\"}\n{\"a\": 2}\n";

    /// A BOM decides the charset, as Jackson's detection does; the BOM itself is not text.
    #[test]
    fn boms_are_honoured_and_dropped() {
        for piece in [1, 3, 1000] {
            let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
            utf8_bom.extend_from_slice(TEXT.as_bytes());
            assert_eq!(
                run(&mut Transcoder::new(None, None), &utf8_bom, piece),
                TEXT
            );
            for big in [true, false] {
                let data = utf16(TEXT, big, true);
                assert_eq!(run(&mut Transcoder::new(None, None), &data, piece), TEXT);
            }
            let mut utf32 = vec![0xFF, 0xFE, 0, 0];
            for c in TEXT.chars() {
                utf32.extend((c as u32).to_le_bytes());
            }
            assert_eq!(run(&mut Transcoder::new(None, None), &utf32, piece), TEXT);
        }
    }

    /// `encoding` names the charset of files without a BOM (Java's names).
    #[test]
    fn encoding_option_reads_files_without_a_bom() {
        let data = utf16(TEXT, false, false);
        let mut t = Transcoder::new(Charset::from_label("UTF-16LE"), None);
        assert_eq!(run(&mut t, &data, 5), TEXT);
        let data = utf16(TEXT, true, false);
        let mut t = Transcoder::new(Charset::from_label("UTF-16"), None);
        assert_eq!(run(&mut t, &data, 5), TEXT);
        let latin1: Vec<u8> = b"{\"a\": \"caf\xe9\"}\n".to_vec();
        let mut t = Transcoder::new(Charset::from_label("ISO-8859-1"), None);
        assert_eq!(run(&mut t, &latin1, 4), "{\"a\": \"café\"}\n");
        assert!(Charset::from_label("klingon").is_none());
    }

    /// `lineSep`: records end at the separator, cut anywhere between pieces.
    #[test]
    fn line_separators_become_line_ends() {
        let data = b"{\"a\":\n1}\x1e{\"a\": 2}\x1e";
        for piece in [1, 2, 100] {
            let mut t = Transcoder::new(None, Some("\u{1e}"));
            assert_eq!(run(&mut t, data, piece), "{\"a\": 1}\n{\"a\": 2}\n");
            let mut t = Transcoder::new(None, Some("||"));
            assert_eq!(
                run(&mut t, b"{\"a\": 1}||{\"a\": \"x|y\"}|", piece),
                "{\"a\": 1}\n{\"a\": \"x|y\"}|"
            );
        }
    }

    #[test]
    fn plain_utf8_passes_through_without_copies() {
        let mut t = Transcoder::new(None, None);
        let file = b"{\"a\": 1}\n";
        assert!(matches!(t.push(file).unwrap(), Cow::Borrowed(b) if b.len() == file.len()));
        let mut t = Transcoder::new(None, None);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(file);
        assert!(matches!(t.push(&bom).unwrap(), Cow::Borrowed(b) if b == file));
        let mut t = Transcoder::new(None, None);
        let _ = t.push(b"{\"a\"").unwrap();
        let piece = b": 1}\n";
        assert!(matches!(t.push(piece).unwrap(), Cow::Borrowed(_)));
    }
}
