//! The byte-level scanner: strict JSON tokens, read in place. Strings are found with a SIMD
//! scan (sixteen bytes per step) for the bytes that end a plain run: `"`, `\` and control
//! characters.

use super::{Step, Unsupported, MAX_SKIP_DEPTH};

/// The value of eight ASCII digits, if all eight bytes are digits (a SWAR parse: the digit
/// test and the conversion work on the eight bytes at once).
pub(super) fn eight_digits(bytes: [u8; 8]) -> Option<u64> {
    let chunk = u64::from_le_bytes(bytes);
    // A byte above '9' gets its high bit from the addition, one below '0' from the
    // subtraction; a carry or borrow starts only at a byte that already set its own bit.
    let above = chunk.wrapping_add(0x4646_4646_4646_4646);
    let digits = chunk.wrapping_sub(0x3030_3030_3030_3030);
    if (above | digits) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // Pairs, then fours, then all eight: the first digit is the lowest byte.
    let pairs = (digits.wrapping_mul(10) + (digits >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((fours.wrapping_mul(10_000) + (fours >> 32)) & 0xFFFF_FFFF)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte of `text` that ends a plain string run: `"`, `\` or a control
/// character (below 0x20). Sixteen bytes per step with SSE2 (part of every x86-64), then eight
/// with SWAR for the tail.
pub(super) fn string_stop(text: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    return string_stop_sse2(text);
    #[cfg(not(target_arch = "x86_64"))]
    string_stop_swar(text)
}

/// [`string_stop`] sixteen bytes per step, the tail with [`string_stop_swar`].
#[cfg(target_arch = "x86_64")]
fn string_stop_sse2(text: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut at = 0;
    while let Some(block) = text.get(at..at + 16) {
        // SAFETY: SSE2 is part of the x86-64 baseline, so its intrinsics are always
        // available; `block` holds the 16 bytes loaded, and the load needs no alignment.
        let mask = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let control = _mm_set1_epi8(0x1f);
            // max(v, 0x1f) == 0x1f exactly where v <= 0x1f (unsigned).
            let hits = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ),
                _mm_cmpeq_epi8(_mm_max_epu8(v, control), control),
            );
            _mm_movemask_epi8(hits)
        };
        if mask != 0 {
            return Some(at + mask.trailing_zeros() as usize);
        }
        at += 16;
    }
    string_stop_swar(&text[at..]).map(|i| at + i)
}

/// [`string_stop`] eight bytes per step.
pub(super) fn string_stop_swar(text: &[u8]) -> Option<usize> {
    let mut words = text.chunks_exact(8);
    let mut at = 0;
    for chunk in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        // A byte's high bit is set where it equals `"` or `\` (x ^ c has a zero byte) or is
        // below 0x20; a borrow only runs upward from a byte that matched, so the lowest set
        // bit is exact.
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let hits = hits & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
        .map(|i| at + i)
}

/// Byte equality for short keys, without a call into `memcmp`.
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

pub(super) struct Parser<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub(super) fn next(&mut self) -> Step<u8> {
        let b = self.peek().ok_or(Unsupported)?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn expect(&mut self, byte: u8) -> Step<()> {
        if self.next()? == byte {
            Ok(())
        } else {
            Err(Unsupported)
        }
    }

    pub(super) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> Step<()> {
        let end = self.pos + word.len();
        if self.data.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Unsupported)
        }
    }

    /// `null`, if the parser stands on it.
    pub(super) fn null(&mut self) -> Step<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// The raw bytes of a string with no escapes (after its opening quote).
    pub(super) fn plain_string(&mut self) -> Step<&'a [u8]> {
        let start = self.pos;
        let run = string_stop(&self.data[start..]).ok_or(Unsupported)?;
        self.pos = start + run + 1;
        match self.data[start + run] {
            b'"' => Ok(&self.data[start..start + run]),
            _ => Err(Unsupported),
        }
    }

    /// A string's value (after its opening quote), escapes resolved, appended to `out`.
    pub(super) fn string_into(&mut self, out: &mut Vec<u8>) -> Step<()> {
        loop {
            let start = self.pos;
            let rest = &self.data[start..];
            let run = string_stop(rest).ok_or(Unsupported)?;
            out.extend_from_slice(&rest[..run]);
            self.pos = start + run + 1;
            match rest[run] {
                b'"' => return Ok(()),
                b'\\' => self.escape(|bytes| out.extend_from_slice(bytes))?,
                _ => return Err(Unsupported),
            }
        }
    }

    /// Past a string (after its opening quote), checked as [`Self::string_into`] checks it.
    fn skip_string(&mut self) -> Step<()> {
        loop {
            let start = self.pos;
            let run = string_stop(&self.data[start..]).ok_or(Unsupported)?;
            self.pos = start + run + 1;
            match self.data[start + run] {
                b'"' => return Ok(()),
                b'\\' => self.escape(|_| {})?,
                _ => return Err(Unsupported),
            }
        }
    }

    /// One escape (after its backslash), its UTF-8 bytes handed to `out`.
    fn escape(&mut self, mut out: impl FnMut(&[u8])) -> Step<()> {
        let byte = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut code = 0u32;
                for _ in 0..4 {
                    let digit = char::from(self.next()?).to_digit(16).ok_or(Unsupported)?;
                    code = code * 16 + digit;
                }
                // Surrogate pairs are left to the general decoder.
                let c = char::from_u32(code).ok_or(Unsupported)?;
                out(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(Unsupported),
        };
        out(&[byte]);
        Ok(())
    }

    /// A JSON integer in canonical form (`0`, `-12`, no leading zeros, no fraction or
    /// exponent) that fits an i64.
    pub(super) fn integer(&mut self) -> Step<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut magnitude = 0u64;
        if let Some(value) = self
            .data
            .get(start..start + 8)
            .and_then(|chunk| <[u8; 8]>::try_from(chunk).ok())
            .and_then(eight_digits)
        {
            magnitude = value;
            self.pos += 8;
        }
        while let Some(digit) = self
            .peek()
            .map(|b| b.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.pos += 1;
        }
        let text = &self.data[start..self.pos];
        if text.is_empty() || (text.len() > 1 && text[0] == b'0') {
            return Err(Unsupported);
        }
        // Up to 19 digits cannot overflow a u64; longer numbers are summed again, checked.
        if text.len() > 19 {
            magnitude = text
                .iter()
                .try_fold(0u64, |m, d| {
                    m.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })
                .ok_or(Unsupported)?;
        }
        if let Some(b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            return Err(Unsupported);
        }
        if negative {
            0i64.checked_sub_unsigned(magnitude).ok_or(Unsupported)
        } else {
            i64::try_from(magnitude).map_err(|_| Unsupported)
        }
    }

    /// The extent of a number in strict JSON grammar.
    fn number_span(&mut self) -> Step<&'a [u8]> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Unsupported),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        if let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            return Err(Unsupported);
        }
        Ok(&self.data[start..self.pos])
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Step<()> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(Unsupported)
        } else {
            Ok(())
        }
    }

    /// A number parsed the way arrow-json parses it (lexical-core).
    pub(super) fn float<T: lexical_core::FromLexical>(&mut self) -> Step<T> {
        let span = self.number_span()?;
        lexical_core::parse::<T>(span).map_err(|_| Unsupported)
    }

    /// Skip one value of a key the schema does not have, checking it is strict JSON.
    pub(super) fn skip_value(&mut self, depth: usize) -> Step<()> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Unsupported);
        }
        match self.peek().ok_or(Unsupported)? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            b'{' => {
                self.pos += 1;
                self.items(b'}', |p| {
                    p.expect(b'"')?;
                    p.skip_string()?;
                    p.skip_whitespace();
                    p.expect(b':')?;
                    p.skip_whitespace();
                    p.skip_value(depth + 1)
                })
            }
            b'[' => {
                self.pos += 1;
                self.items(b']', |p| p.skip_value(depth + 1))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number_span().map(|_| ()),
        }
    }

    /// `item, item, ...` up to `close` (the parser stands after the opening bracket).
    pub(super) fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Step<()>,
    ) -> Step<()> {
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            item(self)?;
            self.skip_whitespace();
            match self.next()? {
                b',' => continue,
                b if b == close => return Ok(()),
                _ => return Err(Unsupported),
            }
        }
    }
}
