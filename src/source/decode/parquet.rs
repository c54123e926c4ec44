//! Parquet files, read whole and projected by column name onto the source schema.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Type as PhysicalType;

use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::ddl;
use crate::source::SourceError;

/// A reader of the file whose INT96 timestamps (Spark's legacy type: Julian day and nanoseconds
/// of the day) are read straight to microseconds. Read as nanoseconds, the default, times before
/// 1677 or after 2262 overflow silently (9999-12-31 came back as a day in 1816).
/// Also the names of the file's top-level INT96 columns.
fn builder(
    path: &str,
    data: Bytes,
) -> Result<(ParquetRecordBatchReaderBuilder<Bytes>, Vec<String>), SourceError> {
    let unreadable =
        |e: parquet::errors::ParquetError| SourceError::Unreadable(format!("{path}: {e}"));
    let plain = ParquetRecordBatchReaderBuilder::try_new(data.clone()).map_err(unreadable)?;
    let int96: HashSet<String> = plain
        .parquet_schema()
        .columns()
        .iter()
        .filter(|c| c.physical_type() == PhysicalType::INT96)
        .map(|c| c.path().string())
        .collect();
    if int96.is_empty() {
        return Ok((plain, Vec::new()));
    }
    let top_level = plain
        .parquet_schema()
        .columns()
        .iter()
        .filter(|c| c.physical_type() == PhysicalType::INT96 && c.path().parts().len() == 1)
        .map(|c| c.path().string())
        .collect();
    let fields: Vec<FieldRef> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| int96_as_micros(f, "", &int96))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        plain.schema().metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(schema);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(data, options).map_err(unreadable)?;
    Ok((builder, top_level))
}

/// The range of times Spark (and so Spark's Delta readers) can hold: 0001-01-01 to
/// 9999-12-31T23:59:59.999999, in microseconds.
const SPARK_TIME_RANGE_US: std::ops::RangeInclusive<i64> =
    -62_135_596_800_000_000..=253_402_300_799_999_999;

/// INT96 times outside what a Delta table's readers hold are refused, not wrapped silently.
fn check_int96_range(path: &str, batch: &RecordBatch, int96: &[String]) -> Result<(), SourceError> {
    for name in int96 {
        let Some(times) = batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        else {
            continue;
        };
        let (lo, hi) = (arrow::compute::min(times), arrow::compute::max(times));
        let outside = [lo, hi]
            .into_iter()
            .flatten()
            .find(|t| !SPARK_TIME_RANGE_US.contains(t));
        if let Some(t) = outside {
            return Err(SourceError::Unreadable(format!(
                "{path}: column `{name}` holds the INT96 time {t} µs after 1970, outside 0001-01-01..9999-12-31 that Delta tables hold; replace the file with a fixed one of the same name and run again"
            )));
        }
    }
    Ok(())
}

/// `field` with its INT96 leaves (by dotted path) typed as microsecond timestamps.
fn int96_as_micros(field: &FieldRef, parent: &str, int96: &HashSet<String>) -> FieldRef {
    let path = if parent.is_empty() {
        field.name().clone()
    } else {
        format!("{parent}.{}", field.name())
    };
    let data_type = match field.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) if int96.contains(&path) => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| int96_as_micros(c, &path, int96))
                .collect(),
        ),
        _ => return field.clone(),
    };
    Arc::new(field.as_ref().clone().with_data_type(data_type))
}

pub(super) fn decode(spec: &DecodeSpec, path: &str, data: Bytes) -> Result<Decoded, SourceError> {
    let (reader, int96) = builder(path, data)?;
    let reader = reader
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?;
        check_int96_range(path, &batch, &int96)?;
        batches.push(project(&batch, &spec.schema)?);
    }
    Ok(Decoded {
        batches,
        malformed: 0,
    })
}

fn project(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, SourceError> {
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()).map_err(SourceError::Arrow),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(SourceError::Arrow)
}

/// The schema of a Parquet file, with types mapped to what Delta stores. A timestamp not
/// adjusted to UTC (`isAdjustedToUTC = false`) is a TIMESTAMP_NTZ, as Spark infers it
/// (`spark.sql.parquet.inferTimestampNTZ.enabled`, on by default); INT96 and UTC-adjusted ones
/// are TIMESTAMPs.
pub fn file_schema(path: &str, data: Bytes) -> Result<SchemaRef, SourceError> {
    let (builder, int96) = builder(path, data)?;
    let fields: Vec<_> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::Timestamp(_, None) if !int96.contains(f.name()) => {
                    return ddl::field(f.name(), ddl::ntz_type());
                }
                DataType::Timestamp(_, _) => ddl::timestamp_type(),
                DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(dt).with_nullable(true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ddl::timestamp_type;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use parquet::data_type::{Int96, Int96Type};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    /// An INT96 value as Spark writes it: nanoseconds of the day, then the Julian day.
    fn int96(julian_day: u32, nanos_of_day: u64) -> Int96 {
        let mut v = Int96::new();
        v.set_data(nanos_of_day as u32, (nanos_of_day >> 32) as u32, julian_day);
        v
    }

    /// A Parquet file of one optional INT96 column `ts`, as Spark writes them.
    fn int96_file(values: &[Int96], levels: &[i16]) -> Bytes {
        let schema =
            Arc::new(parse_message_type("message spark_schema { OPTIONAL INT96 ts; }").unwrap());
        let mut buffer = Vec::new();
        let mut writer =
            SerializedFileWriter::new(&mut buffer, schema, Default::default()).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int96Type>()
            .write_batch(values, Some(levels), None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        Bytes::from(buffer)
    }

    fn spec() -> DecodeSpec {
        DecodeSpec {
            schema: Arc::new(Schema::new(vec![arrow::datatypes::Field::new(
                "ts",
                timestamp_type(),
                true,
            )])),
            format: crate::source::options::Format::Parquet,
            options: Default::default(),
            file_schema: None,
        }
    }

    /// Regression: INT96 times far from 1970 (9999-12-31, 1500-01-01) overflowed through
    /// nanoseconds and came back as other dates, silently.
    #[test]
    fn int96_timestamps_far_from_1970_are_exact() {
        // 9999-12-31T00:00:00, 1970-01-01T00:00:00.000001, 1500-01-01T12:00:00 (Julian days).
        let file = int96_file(
            &[
                int96(5_373_484, 0),
                int96(2_440_588, 1_000),
                int96(2_268_933, 43_200_000_000_000),
            ],
            &[1, 1, 1, 0],
        );
        let decoded = decode(&spec(), "t.parquet", file.clone()).unwrap();
        let ts = decoded.batches[0]
            .column(0)
            .as_primitive::<TimestampMicrosecondType>();
        let day = 86_400_000_000_i64;
        assert_eq!(ts.value(0), 253_402_214_400_000_000);
        assert_eq!(ts.value(1), 1);
        assert_eq!(ts.value(2), (2_268_933 - 2_440_588) * day + day / 2);
        assert!(ts.is_null(3));
        assert_eq!(file_schema("t.parquet", file).unwrap(), spec().schema);
    }

    /// A Julian day past year 9999 is refused with one line, not read as another date.
    #[test]
    fn int96_times_delta_cannot_hold_are_refused() {
        let file = int96_file(&[int96(9_000_000, 0)], &[1]);
        let err = decode(&spec(), "far.parquet", file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside 0001-01-01..9999-12-31"), "{err}");
    }

    /// Parquet timestamps not adjusted to UTC are TIMESTAMP_NTZ, adjusted ones TIMESTAMP, as
    /// Spark 3.4+ infers them (`ParquetSchemaConverter` with `inferTimestampNTZ`).
    #[test]
    fn local_parquet_timestamps_are_timestamp_ntz() {
        use arrow::array::TimestampMicrosecondArray;
        use arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "local",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "utc",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![1])),
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(vec![2]).with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let mut buffer = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let inferred = file_schema("t.parquet", Bytes::from(buffer)).unwrap();
        assert!(ddl::is_ntz(inferred.field(0)));
        assert_eq!(inferred.field(1).data_type(), &timestamp_type());
        assert_eq!(ddl::to_ddl(&inferred), "local TIMESTAMP_NTZ, utc TIMESTAMP");
    }
}
