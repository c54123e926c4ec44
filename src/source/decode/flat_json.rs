//! The fast path for the common shape of JSON lines: flat records of strings, integers,
//! floating-point numbers, booleans and epoch-second timestamps, decoded in one pass straight
//! into Arrow buffers (no intermediate tape, no per-value dispatch on the JSON type).
//!
//! It accepts only input that arrow-json decodes to exactly the same values: strict JSON, one
//! object per record, every key at most once, each value of its column's own JSON type (no
//! coercion), nested values only under keys the schema does not have. On anything else —
//! including every malformed record — it hands the whole file back (`None`) to the general
//! decoder, which then applies the parse mode. So this path never decides what a bad record
//! means; it only makes good files cheaper.
//!
//! ```text
//!   bytes ──► utf-8 check ──► record loop ──► column buffers ──► RecordBatch (64 Ki rows)
//!                               │ anything unusual
//!                               └──────────► None: the general decoder reads the file
//! ```

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, NullBufferBuilder, StringArray, TimestampSecondArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::BATCH_ROWS;

/// The input is outside what the fast path accepts; the general decoder takes the file.
struct Unsupported;

type Step<T> = Result<T, Unsupported>;

/// Nesting allowed inside a skipped value before the file is handed back.
const MAX_SKIP_DEPTH: usize = 64;

/// Decode a JSON-lines file of flat records, or `None` when the general decoder must.
pub(super) fn decode(schema: &SchemaRef, data: &[u8]) -> Option<Vec<RecordBatch>> {
    let mut columns = Columns::new(schema)?;
    simdutf8::basic::from_utf8(data).ok()?;
    let mut parser = Parser { data, pos: 0 };
    let mut batches = Vec::new();
    loop {
        parser.skip_whitespace();
        if parser.pos == data.len() {
            break;
        }
        parser.record(&mut columns).ok()?;
        if columns.rows == BATCH_ROWS {
            batches.push(columns.finish(schema)?);
        }
    }
    if columns.rows > 0 {
        batches.push(columns.finish(schema)?);
    }
    Some(batches)
}

/// The values of one column, in the JSON kind it accepts.
enum Values {
    Utf8 {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    /// Integer columns and epoch-second timestamps, range-checked as parsed.
    Int {
        min: i64,
        max: i64,
        values: Vec<i64>,
    },
    Float64(Vec<f64>),
    Float32(Vec<f32>),
    Bool(BooleanBufferBuilder),
}

struct Column {
    data_type: DataType,
    values: Values,
    nulls: NullBufferBuilder,
}

impl Column {
    /// An empty column with room for a batch.
    fn new(data_type: &DataType) -> Option<Self> {
        let capacity = BATCH_ROWS;
        let int = |min: i64, max: i64| Values::Int {
            min,
            max,
            values: Vec::with_capacity(capacity),
        };
        let values = match data_type {
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Values::Utf8 {
                    offsets,
                    bytes: Vec::with_capacity(capacity * 8),
                }
            }
            DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 | DataType::Timestamp(TimeUnit::Second, _) => int(i64::MIN, i64::MAX),
            DataType::Float64 => Values::Float64(Vec::with_capacity(capacity)),
            DataType::Float32 => Values::Float32(Vec::with_capacity(capacity)),
            DataType::Boolean => Values::Bool(BooleanBufferBuilder::new(capacity)),
            _ => return None,
        };
        Some(Self {
            data_type: data_type.clone(),
            values,
            nulls: NullBufferBuilder::new(capacity),
        })
    }

    fn push_null(&mut self) {
        self.nulls.append_null();
        match &mut self.values {
            Values::Utf8 { offsets, bytes } => offsets.push(bytes.len() as i32),
            Values::Int { values, .. } => values.push(0),
            Values::Float64(values) => values.push(0.0),
            Values::Float32(values) => values.push(0.0),
            Values::Bool(values) => values.append(false),
        }
    }

    /// Parse one value (the parser stands on its first byte) into this column.
    fn push(&mut self, p: &mut Parser<'_>) -> Step<()> {
        if p.peek() == Some(b'n') {
            p.literal(b"null")?;
            self.push_null();
            return Ok(());
        }
        match &mut self.values {
            Values::Utf8 { offsets, bytes } => {
                p.expect(b'"')?;
                p.string_into(bytes)?;
                offsets.push(i32::try_from(bytes.len()).map_err(|_| Unsupported)?);
            }
            Values::Int { min, max, values } => {
                let v = p.integer()?;
                if v < *min || v > *max {
                    return Err(Unsupported);
                }
                values.push(v);
            }
            Values::Float64(values) => values.push(p.float::<f64>()?),
            Values::Float32(values) => values.push(p.float::<f32>()?),
            Values::Bool(values) => match p.peek() {
                Some(b't') => {
                    p.literal(b"true")?;
                    values.append(true);
                }
                _ => {
                    p.literal(b"false")?;
                    values.append(false);
                }
            },
        }
        self.nulls.append_non_null();
        Ok(())
    }

    /// The column's values so far as an array; the column starts empty again.
    fn finish(&mut self) -> Option<ArrayRef> {
        let fresh = Column::new(&self.data_type)?;
        let Column {
            data_type,
            values,
            mut nulls,
        } = std::mem::replace(self, fresh);
        let nulls = nulls.finish();
        let array: ArrayRef = match values {
            Values::Utf8 { offsets, bytes } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(StringArray::try_new(offsets, bytes.into(), nulls).ok()?)
            }
            Values::Int { values, .. } => match data_type {
                DataType::Int8 => Arc::new(Int8Array::new(narrow(&values), nulls)),
                DataType::Int16 => Arc::new(Int16Array::new(narrow(&values), nulls)),
                DataType::Int32 => Arc::new(Int32Array::new(narrow(&values), nulls)),
                DataType::Timestamp(_, tz) => {
                    Arc::new(TimestampSecondArray::new(values.into(), nulls).with_timezone_opt(tz))
                }
                _ => Arc::new(Int64Array::new(values.into(), nulls)),
            },
            Values::Float64(values) => Arc::new(Float64Array::new(values.into(), nulls)),
            Values::Float32(values) => Arc::new(Float32Array::new(values.into(), nulls)),
            Values::Bool(mut values) => Arc::new(BooleanArray::new(values.finish(), nulls)),
        };
        Some(array)
    }
}

/// Integers already range-checked for the narrower type.
fn narrow<T: ArrowNativeType + TryFrom<i64>>(values: &[i64]) -> ScalarBuffer<T> {
    values
        .iter()
        .map(|v| T::try_from(*v).unwrap_or_default())
        .collect()
}

/// The columns being filled and how keys find them.
struct Columns {
    names: Vec<Vec<u8>>,
    columns: Vec<Column>,
    /// Bit `i` set: every record must be checked for field `i` being present.
    all: u64,
    /// The field whose key is expected next (records usually keep one key order); always a
    /// valid index.
    guess: usize,
    rows: usize,
}

impl Columns {
    fn new(schema: &SchemaRef) -> Option<Self> {
        let fields = schema.fields();
        if fields.is_empty() || fields.len() > 64 {
            return None;
        }
        // A key is matched on its raw bytes, so names that JSON must escape are left to the
        // general decoder.
        if fields.iter().any(|f| {
            f.name()
                .bytes()
                .any(|b| b == b'"' || b == b'\\' || b < 0x20)
        }) {
            return None;
        }
        let columns = fields
            .iter()
            .map(|f| Column::new(f.data_type()))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            names: fields
                .iter()
                .map(|f| f.name().as_bytes().to_vec())
                .collect(),
            columns,
            all: u64::MAX >> (64 - fields.len()),
            guess: 0,
            rows: 0,
        })
    }

    fn find(&mut self, key: &[u8]) -> Option<usize> {
        let n = self.names.len();
        let found = (self.guess..n)
            .chain(0..self.guess)
            .find(|i| same_bytes(&self.names[*i], key))?;
        self.guess = if found + 1 == n { 0 } else { found + 1 };
        Some(found)
    }

    fn finish(&mut self, schema: &SchemaRef) -> Option<RecordBatch> {
        let arrays = self
            .columns
            .iter_mut()
            .map(Column::finish)
            .collect::<Option<Vec<_>>>()?;
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), arrays).ok()
    }
}

/// The value of eight ASCII digits, if all eight bytes are digits (a SWAR parse: the digit
/// test and the conversion work on the eight bytes at once).
fn eight_digits(bytes: [u8; 8]) -> Option<u64> {
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

/// Byte equality for short keys, without a call into `memcmp`.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn next(&mut self) -> Step<u8> {
        let b = self.peek().ok_or(Unsupported)?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, byte: u8) -> Step<()> {
        if self.next()? == byte {
            Ok(())
        } else {
            Err(Unsupported)
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        let end = self.pos + word.len();
        if self.data.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Unsupported)
        }
    }

    /// One record: `{ "key": value, ... }`, each schema field at most once.
    fn record(&mut self, columns: &mut Columns) -> Step<()> {
        self.expect(b'{')?;
        self.skip_whitespace();
        let mut seen = 0u64;
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                self.expect(b'"')?;
                let field = match self.expected_key(columns) {
                    Some(i) => Some(i),
                    None => {
                        let key = self.plain_string()?;
                        columns.find(key)
                    }
                };
                self.skip_whitespace();
                self.expect(b':')?;
                self.skip_whitespace();
                match field {
                    Some(i) => {
                        let bit = 1u64 << i;
                        if seen & bit != 0 {
                            return Err(Unsupported);
                        }
                        seen |= bit;
                        columns.columns[i].push(self)?;
                    }
                    None => self.skip_value(0)?,
                }
                self.skip_whitespace();
                match self.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return Err(Unsupported),
                }
            }
        }
        if seen != columns.all {
            for (i, column) in columns.columns.iter_mut().enumerate() {
                if seen & (1u64 << i) == 0 {
                    column.push_null();
                }
            }
        }
        columns.rows += 1;
        Ok(())
    }

    /// The key, if it is the one records usually have next (after its opening quote).
    fn expected_key(&mut self, columns: &mut Columns) -> Option<usize> {
        let guess = columns.guess;
        let name = &columns.names[guess];
        let end = self.pos + name.len();
        if self.data.get(end) == Some(&b'"') && same_bytes(&self.data[self.pos..end], name) {
            self.pos = end + 1;
            columns.guess = if guess + 1 == columns.names.len() {
                0
            } else {
                guess + 1
            };
            Some(guess)
        } else {
            None
        }
    }

    /// The raw bytes of a string with no escapes (after its opening quote).
    fn plain_string(&mut self) -> Step<&'a [u8]> {
        let start = self.pos;
        loop {
            match self.next()? {
                b'"' => return Ok(&self.data[start..self.pos - 1]),
                b'\\' => return Err(Unsupported),
                b if b < 0x20 => return Err(Unsupported),
                _ => {}
            }
        }
    }

    /// A string's value (after its opening quote), escapes resolved, appended to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Step<()> {
        loop {
            let start = self.pos;
            let rest = &self.data[start..];
            let run = rest
                .iter()
                .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
                .ok_or(Unsupported)?;
            out.extend_from_slice(&rest[..run]);
            self.pos = start + run + 1;
            match rest[run] {
                b'"' => return Ok(()),
                b'\\' => self.escape(out)?,
                _ => return Err(Unsupported),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Step<()> {
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
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(Unsupported),
        };
        out.push(byte);
        Ok(())
    }

    /// A JSON integer in canonical form (`0`, `-12`, no leading zeros, no fraction or
    /// exponent) that fits an i64.
    fn integer(&mut self) -> Step<i64> {
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
    fn float<T: lexical_core::FromLexical>(&mut self) -> Step<T> {
        let span = self.number_span()?;
        lexical_core::parse::<T>(span).map_err(|_| Unsupported)
    }

    /// Skip one value of a key the schema does not have, checking it is strict JSON.
    fn skip_value(&mut self, depth: usize) -> Step<()> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Unsupported);
        }
        match self.peek().ok_or(Unsupported)? {
            b'"' => {
                self.pos += 1;
                let mut sink = Vec::new();
                self.string_into(&mut sink)
            }
            b'{' => {
                self.pos += 1;
                self.skip_items(b'}', |p| {
                    p.expect(b'"')?;
                    p.string_into(&mut Vec::new())?;
                    p.skip_whitespace();
                    p.expect(b':')?;
                    p.skip_whitespace();
                    p.skip_value(depth + 1)
                })
            }
            b'[' => {
                self.pos += 1;
                self.skip_items(b']', |p| p.skip_value(depth + 1))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number_span().map(|_| ()),
        }
    }

    /// Skip `item, item, ...` up to `close` (the parser stands after the opening bracket).
    fn skip_items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Step<()>) -> Step<()> {
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

#[cfg(test)]
mod tests;
