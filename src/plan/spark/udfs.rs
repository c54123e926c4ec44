//! Spark's functions DataFusion has no spelling of: `div`, `split`, `regexp_extract` and
//! `spark_string` (Spark's text of a value, what `CAST(x AS STRING)` gives).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, TimeUnit};
use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use regex::Regex;

/// The functions of this module.
pub(super) fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(Div::new())),
        Arc::new(ScalarUDF::from(Split::new())),
        Arc::new(ScalarUDF::from(RegexpExtract::new())),
        Arc::new(ScalarUDF::from(SparkString::new())),
    ]
}

fn arrays(args: &ScalarFunctionArgs) -> DfResult<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(&args.args)
}

fn scalar_or_array(array: ArrayRef, args: &ScalarFunctionArgs) -> DfResult<ColumnarValue> {
    let all_scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    if all_scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&array, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

fn regex(pattern: &str) -> DfResult<Regex> {
    Regex::new(pattern).map_err(|e| {
        DataFusionError::Execution(format!("the pattern '{pattern}' is not a regex: {e}"))
    })
}

/// `a DIV b`: the integral part of `a / b` as a BIGINT; NULL when `b` is zero.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Div {
    signature: Signature,
}

impl Div {
    fn new() -> Self {
        Div {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Float64, DataType::Float64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Div {
    fn name(&self) -> &str {
        "div"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [a, b] = arrays(&args)?
            .try_into()
            .map_err(|_| DataFusionError::Plan("div takes two numbers".into()))?;
        let out: Int64Array = match a.data_type() {
            DataType::Float64 => {
                let (a, b) = (
                    a.as_primitive::<Float64Type>(),
                    b.as_primitive::<Float64Type>(),
                );
                a.iter()
                    .zip(b.iter())
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) if b != 0.0 => Some((a / b).trunc() as i64),
                        _ => None,
                    })
                    .collect()
            }
            _ => {
                let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
                a.iter()
                    .zip(b.iter())
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) if b != 0 => Some(a.wrapping_div(b)),
                        _ => None,
                    })
                    .collect()
            }
        };
        scalar_or_array(Arc::new(out), &args)
    }
}

/// `split(s, regex[, limit])`: the parts of `s` between matches of `regex`, as Java's
/// `String.split` gives them (no empty part for a zero-width match at either end); a
/// positive `limit` gives at most that many parts, the last holding the rest.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Split {
    signature: Signature,
}

impl Split {
    fn new() -> Self {
        Split {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

fn split(s: &str, re: &Regex, limit: i64) -> Vec<String> {
    let mut parts = Vec::new();
    let mut last = 0;
    for m in re.find_iter(s) {
        if limit > 0 && parts.len() as i64 == limit - 1 {
            break;
        }
        if m.start() == m.end() && (m.start() == 0 || m.start() == s.len()) {
            continue;
        }
        parts.push(s[last..m.start()].to_string());
        last = m.end();
    }
    parts.push(s[last..].to_string());
    parts
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        "split"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let columns = arrays(&args)?;
        let strings = columns[0].as_string::<i32>();
        let patterns = columns[1].as_string::<i32>();
        let limits = columns.get(2).map(|l| l.as_primitive::<Int64Type>());
        let mut out = ListBuilder::new(StringBuilder::new());
        let mut cached: Option<(String, Regex)> = None;
        for i in 0..strings.len() {
            if strings.is_null(i) || patterns.is_null(i) {
                out.append_null();
                continue;
            }
            let pattern = patterns.value(i);
            if cached.as_ref().is_none_or(|(p, _)| p != pattern) {
                cached = Some((pattern.to_string(), regex(pattern)?));
            }
            let limit = limits.map_or(-1, |l| if l.is_null(i) { -1 } else { l.value(i) });
            if let Some((_, re)) = &cached {
                for part in split(strings.value(i), re, limit) {
                    out.values().append_value(part);
                }
            }
            out.append(true);
        }
        scalar_or_array(Arc::new(out.finish()), &args)
    }
}

/// `regexp_extract(s, regex[, group])`: the text of a group (1 unless given; 0 is the whole
/// match) of the first match, or '' when nothing matches.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    fn new() -> Self {
        RegexpExtract {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let columns = arrays(&args)?;
        let strings = columns[0].as_string::<i32>();
        let patterns = columns[1].as_string::<i32>();
        let groups = columns.get(2).map(|g| g.as_primitive::<Int64Type>());
        let mut cached: Option<(String, Regex)> = None;
        let mut out = StringBuilder::new();
        for i in 0..strings.len() {
            let group = groups.map_or(Some(1), |g| (!g.is_null(i)).then(|| g.value(i)));
            let (false, false, Some(group)) = (strings.is_null(i), patterns.is_null(i), group)
            else {
                out.append_null();
                continue;
            };
            let pattern = patterns.value(i);
            if cached.as_ref().is_none_or(|(p, _)| p != pattern) {
                cached = Some((pattern.to_string(), regex(pattern)?));
            }
            let Some((_, re)) = &cached else { continue };
            let group = usize::try_from(group)
                .ok()
                .filter(|g| *g < re.captures_len())
                .ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "regexp_extract: the pattern '{pattern}' has {} groups; group {group} does not exist",
                        re.captures_len() - 1
                    ))
                })?;
            let text = re
                .captures(strings.value(i))
                .and_then(|c| c.get(group))
                .map_or("", |m| m.as_str());
            out.append_value(text);
        }
        scalar_or_array(Arc::new(out.finish()), &args)
    }
}

/// Spark's text of a value: timestamps as `2024-03-02 14:07:29.807749` (UTC, trailing zeros
/// of the fraction left out), doubles as Java prints them (`1.0E10`, `0.5`); other types as
/// Arrow casts them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SparkString {
    signature: Signature,
}

impl SparkString {
    fn new() -> Self {
        SparkString {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SparkString {
    fn name(&self) -> &str {
        "spark_string"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [values] = arrays(&args)?
            .try_into()
            .map_err(|_| DataFusionError::Plan("CAST(... AS STRING) takes one value".into()))?;
        let out: ArrayRef = match values.data_type() {
            DataType::Timestamp(_, _) => {
                let micros = arrow::compute::cast(
                    &values,
                    &DataType::Timestamp(TimeUnit::Microsecond, None),
                )?;
                let micros = micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                Arc::new(
                    micros
                        .iter()
                        .map(|v| v.and_then(timestamp_text))
                        .collect::<StringArray>(),
                )
            }
            DataType::Float64 => Arc::new(
                values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| java_double(v, &format!("{v:?}"), &format!("{v:e}"))))
                    .collect::<StringArray>(),
            ),
            DataType::Float32 => Arc::new(
                values
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| {
                        v.map(|v| java_double(f64::from(v), &format!("{v:?}"), &format!("{v:e}")))
                    })
                    .collect::<StringArray>(),
            ),
            _ => arrow::compute::cast(&values, &DataType::Utf8)?,
        };
        scalar_or_array(out, &args)
    }
}

/// `2024-03-02 14:07:29.8077`: seconds' fraction without trailing zeros, none when zero.
fn timestamp_text(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let fraction = micros.rem_euclid(1_000_000);
    if fraction == 0 {
        return Some(base);
    }
    let digits = format!("{fraction:06}");
    Some(format!("{base}.{}", digits.trim_end_matches('0')))
}

/// Java's `Double.toString`: plain between 10^-3 and 10^7, else `d.dddE±n`; always a
/// fraction digit. `plain` and `sci` are Rust's shortest `{:?}` and `{:e}` texts.
fn java_double(v: f64, plain: &str, sci: &str) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = v.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        if plain.contains('e') {
            return plain.replace('e', "E");
        }
        return plain.to_string();
    }
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_as_java_splits() {
        let re = Regex::new(" ").unwrap();
        assert_eq!(split("a b  c ", &re, -1), ["a", "b", "", "c", ""]);
        assert_eq!(split("a b c", &re, 2), ["a", "b c"]);
        assert_eq!(split("abc", &Regex::new("").unwrap(), -1), ["a", "b", "c"]);
    }

    #[test]
    fn doubles_as_java_prints_them() {
        let j = |v: f64| java_double(v, &format!("{v:?}"), &format!("{v:e}"));
        assert_eq!(j(1e10), "1.0E10");
        assert_eq!(j(1.5e-5), "1.5E-5");
        assert_eq!(j(0.5), "0.5");
        assert_eq!(j(3.0), "3.0");
        assert_eq!(j(-1234567.25), "-1234567.25");
    }

    #[test]
    fn timestamps_as_spark_prints_them() {
        assert_eq!(
            timestamp_text(1_709_388_449_807_749).unwrap(),
            "2024-03-02 14:07:29.807749"
        );
        assert_eq!(
            timestamp_text(1_709_388_449_800_000).unwrap(),
            "2024-03-02 14:07:29.8"
        );
        assert_eq!(
            timestamp_text(1_709_388_449_000_000).unwrap(),
            "2024-03-02 14:07:29"
        );
    }
}
