//! Arrow builders the scanner fills directly: one [`Column`] per schema field, a struct's
//! fields as [`Fields`] (also the record's own), a list's items as one child column.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, Int8Array, ListArray, NullBufferBuilder, StringArray, StructArray,
    TimestampSecondArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, FieldRef, Fields as ArrowFields, TimeUnit};

use super::scan::{same_bytes, Parser};
use super::{Step, Unsupported};

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
    /// A JSON object; a null struct has null fields (as arrow-json builds it).
    Struct(Box<Fields>),
    /// A JSON array of one item type.
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
        field: FieldRef,
    },
}

pub(super) struct Column {
    data_type: DataType,
    values: Values,
    nulls: NullBufferBuilder,
}

impl Column {
    /// An empty column with room for `capacity` values, or `None` for a type the fast path
    /// leaves to the general decoder.
    fn new(data_type: &DataType, capacity: usize) -> Option<Self> {
        let int = |min: i64, max: i64| Values::Int {
            min,
            max,
            values: Vec::with_capacity(capacity),
        };
        let values = match data_type {
            DataType::Utf8 => Values::Utf8 {
                offsets: offsets(capacity),
                bytes: Vec::with_capacity(capacity * 8),
            },
            DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 | DataType::Timestamp(TimeUnit::Second, _) => int(i64::MIN, i64::MAX),
            DataType::Float64 => Values::Float64(Vec::with_capacity(capacity)),
            DataType::Float32 => Values::Float32(Vec::with_capacity(capacity)),
            DataType::Boolean => Values::Bool(BooleanBufferBuilder::new(capacity)),
            DataType::Struct(fields) => Values::Struct(Box::new(Fields::new(fields, capacity)?)),
            DataType::List(field) => Values::List {
                offsets: offsets(capacity),
                item: Box::new(Column::new(field.data_type(), capacity)?),
                field: field.clone(),
            },
            _ => return None,
        };
        Some(Self {
            data_type: data_type.clone(),
            values,
            nulls: NullBufferBuilder::new(capacity),
        })
    }

    fn len(&self) -> usize {
        self.nulls.len()
    }

    pub(super) fn push_null(&mut self) {
        self.nulls.append_null();
        match &mut self.values {
            Values::Utf8 { offsets, bytes } => offsets.push(bytes.len() as i32),
            Values::Int { values, .. } => values.push(0),
            Values::Float64(values) => values.push(0.0),
            Values::Float32(values) => values.push(0.0),
            Values::Bool(values) => values.append(false),
            Values::Struct(fields) => fields.push_nulls(),
            Values::List { offsets, item, .. } => offsets.push(item.len() as i32),
        }
    }

    /// Parse one value (the parser stands on its first byte) into this column.
    pub(super) fn push(&mut self, p: &mut Parser<'_>) -> Step<()> {
        if p.null()? {
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
            Values::Struct(fields) => fields.object(p)?,
            Values::List { offsets, item, .. } => {
                p.expect(b'[')?;
                p.items(b']', |p| item.push(p))?;
                offsets.push(i32::try_from(item.len()).map_err(|_| Unsupported)?);
            }
        }
        self.nulls.append_non_null();
        Ok(())
    }

    /// The column's values so far as an array; the column starts empty again.
    fn finish(&mut self) -> Option<ArrayRef> {
        let nulls = self.nulls.finish();
        let array: ArrayRef = match &mut self.values {
            Values::Utf8 { offsets, bytes } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(restart_offsets(offsets)));
                Arc::new(StringArray::try_new(offsets, restart(bytes).into(), nulls).ok()?)
            }
            Values::Int { values, .. } => {
                let values = restart(values);
                match &self.data_type {
                    DataType::Int8 => Arc::new(Int8Array::new(narrow(&values), nulls)),
                    DataType::Int16 => Arc::new(Int16Array::new(narrow(&values), nulls)),
                    DataType::Int32 => Arc::new(Int32Array::new(narrow(&values), nulls)),
                    DataType::Timestamp(_, tz) => Arc::new(
                        TimestampSecondArray::new(values.into(), nulls)
                            .with_timezone_opt(tz.clone()),
                    ),
                    _ => Arc::new(Int64Array::new(values.into(), nulls)),
                }
            }
            Values::Float64(values) => Arc::new(Float64Array::new(restart(values).into(), nulls)),
            Values::Float32(values) => Arc::new(Float32Array::new(restart(values).into(), nulls)),
            Values::Bool(values) => Arc::new(BooleanArray::new(values.finish(), nulls)),
            Values::Struct(fields) => {
                let (arrow_fields, arrays) = fields.finish()?;
                Arc::new(StructArray::try_new(arrow_fields, arrays, nulls).ok()?)
            }
            Values::List {
                offsets,
                item,
                field,
            } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(restart_offsets(offsets)));
                let values = item.finish()?;
                Arc::new(ListArray::try_new(field.clone(), offsets, values, nulls).ok()?)
            }
        };
        Some(array)
    }
}

/// The values so far; the vector starts again, empty, with the same room.
fn restart<T>(values: &mut Vec<T>) -> Vec<T> {
    let capacity = values.capacity();
    std::mem::replace(values, Vec::with_capacity(capacity))
}

/// An offsets vector holding the first offset, 0.
fn offsets(capacity: usize) -> Vec<i32> {
    let mut offsets = Vec::with_capacity(capacity + 1);
    offsets.push(0);
    offsets
}

/// The offsets so far; the vector starts again at 0.
fn restart_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let capacity = offsets.capacity();
    std::mem::replace(offsets, self::offsets(capacity.saturating_sub(1)))
}

/// Integers already range-checked for the narrower type.
fn narrow<T: ArrowNativeType + TryFrom<i64>>(values: &[i64]) -> ScalarBuffer<T> {
    values
        .iter()
        .map(|v| T::try_from(*v).unwrap_or_default())
        .collect()
}

/// The fields of an object (a record or a struct) being filled, and how keys find them.
pub(super) struct Fields {
    arrow: ArrowFields,
    names: Vec<Vec<u8>>,
    columns: Vec<Column>,
    /// Bit `i` set: every object must be checked for field `i` being present.
    all: u64,
    /// The field whose key is expected next (objects usually keep one key order); always a
    /// valid index.
    guess: usize,
}

impl Fields {
    /// Builders for `fields`, or `None` when a field is outside the fast path (more than 64
    /// fields, a name JSON must escape, a type it leaves to the general decoder).
    pub(super) fn new(fields: &ArrowFields, capacity: usize) -> Option<Self> {
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
            .map(|f| Column::new(f.data_type(), capacity))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            arrow: fields.clone(),
            names: fields
                .iter()
                .map(|f| f.name().as_bytes().to_vec())
                .collect(),
            columns,
            all: u64::MAX >> (64 - fields.len()),
            guess: 0,
        })
    }

    /// One object, `{ "key": value, ... }` (the parser stands on `{`): each field at most
    /// once, a missing one null, keys the schema does not have skipped.
    pub(super) fn object(&mut self, p: &mut Parser<'_>) -> Step<()> {
        p.expect(b'{')?;
        p.skip_whitespace();
        let mut seen = 0u64;
        if p.peek() == Some(b'}') {
            p.pos += 1;
        } else {
            loop {
                p.skip_whitespace();
                p.expect(b'"')?;
                let field = match self.expected_key(p) {
                    Some(i) => Some(i),
                    None => {
                        let key = p.plain_string()?;
                        self.find(key)
                    }
                };
                p.skip_whitespace();
                p.expect(b':')?;
                p.skip_whitespace();
                match field {
                    Some(i) => {
                        let bit = 1u64 << i;
                        if seen & bit != 0 {
                            return Err(Unsupported);
                        }
                        seen |= bit;
                        self.columns[i].push(p)?;
                    }
                    None => p.skip_value(0)?,
                }
                p.skip_whitespace();
                match p.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return Err(Unsupported),
                }
            }
        }
        if seen != self.all {
            for (i, column) in self.columns.iter_mut().enumerate() {
                if seen & (1u64 << i) == 0 {
                    column.push_null();
                }
            }
        }
        Ok(())
    }

    /// A null for every field (of a null struct).
    fn push_nulls(&mut self) {
        for column in &mut self.columns {
            column.push_null();
        }
    }

    /// The key, if it is the one objects usually have next (after its opening quote).
    fn expected_key(&mut self, p: &mut Parser<'_>) -> Option<usize> {
        let guess = self.guess;
        let name = &self.names[guess];
        let end = p.pos + name.len();
        if p.data.get(end) == Some(&b'"') && same_bytes(&p.data[p.pos..end], name) {
            p.pos = end + 1;
            self.guess = if guess + 1 == self.names.len() {
                0
            } else {
                guess + 1
            };
            Some(guess)
        } else {
            None
        }
    }

    fn find(&mut self, key: &[u8]) -> Option<usize> {
        let n = self.names.len();
        let found = (self.guess..n)
            .chain(0..self.guess)
            .find(|i| same_bytes(&self.names[*i], key))?;
        self.guess = if found + 1 == n { 0 } else { found + 1 };
        Some(found)
    }

    /// The fields' values so far as arrays; the fields start empty again.
    pub(super) fn finish(&mut self) -> Option<(ArrowFields, Vec<ArrayRef>)> {
        let arrays = self
            .columns
            .iter_mut()
            .map(Column::finish)
            .collect::<Option<Vec<_>>>()?;
        Some((self.arrow.clone(), arrays))
    }
}
