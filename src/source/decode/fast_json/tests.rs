//! The fast path against arrow-json, and what it must refuse.

use std::sync::Arc;

use super::scan::{eight_digits, string_stop, string_stop_swar};
use super::*;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Fields as ArrowFields, Schema, TimeUnit};
use rand::{Rng, SeedableRng};

#[test]
fn eight_digits_at_once() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    for _ in 0..10_000 {
        let n: u64 = rng.gen_range(0..100_000_000);
        let text = format!("{n:08}");
        let bytes = <[u8; 8]>::try_from(text.as_bytes()).unwrap();
        assert_eq!(eight_digits(bytes), Some(n), "{text}");
    }
    // Any one byte that is not a digit, anywhere, refuses the chunk.
    for at in 0..8 {
        for b in (0..=255u8).filter(|b| !b.is_ascii_digit()) {
            let mut bytes = *b"12345678";
            bytes[at] = b;
            assert_eq!(eight_digits(bytes), None, "{bytes:?}");
        }
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("action", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("small", DataType::Int8, true),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float32, true),
        Field::new("ok", DataType::Boolean, true),
    ]))
}

fn arrow_json(schema: &SchemaRef, data: &[u8]) -> RecordBatch {
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_coerce_primitive(true)
        .build_decoder()
        .expect("decoder");
    let mut batches = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let used = decoder.decode(rest).expect("arrow-json decodes it");
        rest = &rest[used..];
        batches.extend(decoder.flush().expect("flush"));
    }
    batches.extend(decoder.flush().expect("flush"));
    concat_batches(schema, &batches).expect("concat")
}

/// The fast path takes the input and yields what arrow-json yields.
fn assert_same(schema: &SchemaRef, data: &[u8]) {
    let fast = decode(schema, data)
        .unwrap_or_else(|| panic!("fast path refused: {}", String::from_utf8_lossy(data)));
    assert!(fast.iter().all(|b| b.num_rows() <= BATCH_ROWS));
    let fast = concat_batches(schema, &fast).expect("concat");
    assert_eq!(
        fast,
        arrow_json(schema, data),
        "{}",
        String::from_utf8_lossy(data)
    );
}

#[test]
fn decodes_flat_records_like_arrow_json() {
    let s = schema();
    let inputs: &[&str] = &[
        "{\"time\":1469501107,\"action\":\"Open\"}\n{\"time\":1469501109,\"action\":\"Close\"}\n",
        "{\"action\":\"Open\",\"time\":-5,\"n\":-9223372036854775808}\r\n\r\n{}\n",
        "  {\"n\": 9223372036854775807 , \"small\" : -128, \"ok\":true}{\"small\":127,\"ok\":false}",
        "{\"x\":1.5e3,\"y\":-0.25,\"n\":0}\n{\"x\":-0,\"y\":3,\"x2\":1}\n{\"x\":1E-400,\"y\":1e39}\n",
        "{\"action\":\"tab\\there \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r \\u00e9\\u4e2d \\u0000\"}\n",
        "{\"action\":\"caf\u{e9} \u{1F600}\",\"ok\":null,\"x\":null,\"time\":null,\"action2\":null}\n",
        "{\"extra\":{\"a\":[1,2,{\"b\":\"\\n\"}],\"c\":{}},\"more\":[],\"s\":\"\\u00e9\",\"t\":true,\"f\":-1.5e-3,\"action\":\"a\"}\n",
        "{\"action\":\"\"}\n\n\n",
        "{\"nn\":1,\"n\":2,\"actio\":\"no\",\"action\":\"yes\",\"time\":3}\n{\"time\":4,\"actionx\":1}\n",
        "",
        "\n \n",
    ];
    for input in inputs {
        assert_same(&s, input.as_bytes());
    }
}

#[test]
fn batches_are_cut_at_the_batch_size() {
    let s = schema();
    let mut data = String::new();
    for i in 0..(BATCH_ROWS * 2 + 17) {
        data.push_str(&format!("{{\"n\":{i},\"action\":\"a{}\"}}\n", i % 7));
    }
    let batches = decode(&s, data.as_bytes()).expect("fast path");
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        vec![BATCH_ROWS, BATCH_ROWS, 17]
    );
    assert_same(&s, data.as_bytes());
}

#[test]
fn hands_back_what_it_does_not_decode_itself() {
    let s = schema();
    let refused: &[&[u8]] = &[
        b"{\"n\":1,\"n\":2}\n",                   // duplicate key
        b"{\"action\":5}\n",                      // number into a string column
        b"{\"n\":\"5\"}\n",                       // string into an integer column
        b"{\"time\":\"2016-07-26T02:45:07Z\"}\n", // ISO string into epoch seconds
        b"{\"n\":1.5}\n",                         // fraction into an integer column
        b"{\"n\":1e3}\n",                         // exponent into an integer column
        b"{\"n\":01}\n",                          // leading zero
        b"{\"n\":9223372036854775808}\n",         // i64 overflow
        b"{\"small\":128}\n",                     // i8 overflow
        b"{\"x\":.5}\n",                          // not JSON
        b"{\"x\":1.}\n",                          // not JSON
        b"{\"ok\":1}\n",                          // number into a boolean
        b"{\"action\":{\"a\":1}}\n",              // nested value for a schema key
        b"{\"action\":\"\\ud83d\\ude00\"}\n",     // surrogate pair
        b"{\"action\":\"\\x\"}\n",                // bad escape
        b"{\"action\":\"a\tb\"}\n",               // raw control character
        b"{\"act\\u0069on\":\"a\"}\n",            // escaped key
        b"{\"action\" \"a\"}\n",                  // missing colon
        b"{\"action\":\"a\",}\n",                 // trailing comma
        b"{\"action\":\"a\"\n",                   // truncated record
        b"[1,2]\n",                               // not an object
        b"{\"action\":\"\xff\"}\n",               // invalid UTF-8
        b"{\"other\":\"\xc3\"}\n",                // invalid UTF-8 in a skipped value
        b"{\"other\":tru}\n",                     // bad literal in a skipped value
        b"{\"n\":nul}\n",                         // bad literal
    ];
    for input in refused {
        assert!(
            decode(&s, input).is_none(),
            "accepted {}",
            String::from_utf8_lossy(input)
        );
    }
    let dates = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
    assert!(decode(&dates, b"{\"d\":\"2020-01-01\"}\n").is_none());
    let quoted = Arc::new(Schema::new(vec![Field::new("a\"b", DataType::Utf8, true)]));
    assert!(decode(&quoted, b"{\"a\\\"b\":\"x\"}\n").is_none());
}

#[test]
fn random_records_decode_like_arrow_json() {
    let s = schema();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let strings = [
        "",
        "Open",
        "caf\u{e9}",
        "q\\\"uote",
        "\\u00e9\\n",
        "\u{1F600}",
        "a b",
    ];
    for _ in 0..200 {
        let mut data = String::new();
        for _ in 0..rng.gen_range(0..40) {
            let mut fields = Vec::new();
            if rng.gen_bool(0.8) {
                fields.push(format!(
                    "\"time\":{}",
                    rng.gen_range(-2_000_000_000i64..4_000_000_000)
                ));
            }
            if rng.gen_bool(0.8) {
                fields.push(format!(
                    "\"action\":\"{}\"",
                    strings[rng.gen_range(0..strings.len())]
                ));
            }
            if rng.gen_bool(0.5) {
                fields.push(format!("\"n\":{}", rng.gen::<i64>()));
            }
            if rng.gen_bool(0.5) {
                fields.push(format!("\"small\":{}", rng.gen::<i8>()));
            }
            if rng.gen_bool(0.5) {
                fields.push(format!("\"x\":{:e}", rng.gen::<f64>() * 1e6 - 5e5));
            }
            if rng.gen_bool(0.5) {
                fields.push(format!("\"y\":{}", rng.gen::<f32>()));
            }
            if rng.gen_bool(0.3) {
                fields.push(format!("\"ok\":{}", rng.gen::<bool>()));
            }
            if rng.gen_bool(0.2) {
                fields.push("\"ok\":null".to_string());
                fields.retain(|f| !f.starts_with("\"ok\":t") && !f.starts_with("\"ok\":f"));
            }
            if rng.gen_bool(0.2) {
                fields.push("\"skip\":[1,{\"a\":null}]".to_string());
            }
            for i in (1..fields.len()).rev() {
                fields.swap(i, rng.gen_range(0..=i));
            }
            let sep = if rng.gen_bool(0.1) { " , " } else { "," };
            data.push('{');
            data.push_str(&fields.join(sep));
            data.push_str(if rng.gen_bool(0.1) { "}\r\n" } else { "}\n" });
        }
        assert_same(&s, data.as_bytes());
    }
}

#[test]
fn string_stops_at_quotes_backslashes_and_control_characters() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let plain = b"abc xyz 0123 \xc3\xa9 ~!#$%";
    for _ in 0..5_000 {
        let len = rng.gen_range(0..80);
        let mut text: Vec<u8> = (0..len)
            .map(|_| plain[rng.gen_range(0..plain.len())])
            .collect();
        let stop = [b'"', b'\\', 0u8, 0x1f, b'\n'][rng.gen_range(0..5)];
        let at = rng.gen_range(0..=len);
        if rng.gen_bool(0.8) {
            text.insert(at, stop);
        }
        let want = text
            .iter()
            .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20);
        assert_eq!(string_stop(&text), want, "{text:?}");
        assert_eq!(string_stop_swar(&text), want, "{text:?}");
    }
}

fn nested_schema() -> SchemaRef {
    let author = DataType::Struct(ArrowFields::from(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
    ]));
    let commit = DataType::Struct(ArrowFields::from(vec![
        Field::new("sha", DataType::Utf8, true),
        Field::new("distinct", DataType::Boolean, true),
        Field::new("author", author, true),
    ]));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new(
            "actor",
            DataType::Struct(ArrowFields::from(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("login", DataType::Utf8, true),
            ])),
            true,
        ),
        Field::new(
            "payload",
            DataType::Struct(ArrowFields::from(vec![
                Field::new("size", DataType::Int32, true),
                Field::new_list("commits", Field::new_list_field(commit, true), true),
            ])),
            true,
        ),
        Field::new_list(
            "tags",
            Field::new_list_field(
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            ),
            true,
        ),
    ]))
}

/// Structs and arrays, to any depth: GitHub-like events with optional, null and empty
/// nested values decode as arrow-json decodes them.
#[test]
fn decodes_nested_records_like_arrow_json() {
    let s = nested_schema();
    let inputs: &[&str] = &[
        r#"{"id":"1","actor":{"id":7,"login":"a","gravatar_id":""},"payload":{"size":2,"commits":[{"sha":"x","author":{"email":"e","name":"n"},"distinct":true,"url":"u"},{"sha":"y","distinct":false}]},"tags":[[1.5],[],null,[2,null]]}"#,
        r#"{"id":"2","actor":null,"payload":{},"tags":[]}"#,
        r#"{"id":"3","payload":{"commits":[]},"extra":{"deep":[{"a":[1,{"b":null}]}]}}"#,
        r#"{"id":"4","payload":{"commits":null,"size":null},"actor":{}}"#,
        r#"{"id":"5","payload":{"commits":[null,{"author":null},{}]}}"#,
        r#"{ "actor" : { "login" : "spaced" , "id" : -1 } , "tags" : [ [ 1e3 , -0.5 ] ] }"#,
        r#"{}"#,
    ];
    assert_same(&s, inputs.join("\n").as_bytes());
    for input in inputs {
        assert_same(&s, input.as_bytes());
    }
}

#[test]
fn hands_back_nested_values_of_another_shape() {
    let s = nested_schema();
    let refused: &[&str] = &[
        r#"{"actor":"a"}"#,                          // string for a struct
        r#"{"actor":[{"id":1}]}"#,                   // array for a struct
        r#"{"tags":{"a":1}}"#,                       // object for an array
        r#"{"tags":[1]}"#,                           // number for an inner array
        r#"{"actor":{"id":1,"id":2}}"#,              // duplicate key in a struct
        r#"{"payload":{"commits":[{"sha":1}]}}"#,    // number for a nested string
        r#"{"payload":{"size":2147483648}}"#,        // nested i32 overflow
        r#"{"payload":{"commits":[{"sha":"x"},]}}"#, // trailing comma in an array
        r#"{"actor":{"id":1,}}"#,                    // trailing comma in an object
        r#"{"actor":{"id":1}"#,                      // truncated
    ];
    for input in refused {
        assert!(decode(&s, input.as_bytes()).is_none(), "accepted {input}");
    }
    // A map is left to the general decoder.
    let map = Arc::new(Schema::new(vec![Field::new_map(
        "m",
        "entries",
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", DataType::Int64, true),
        false,
        true,
    )]));
    assert!(decode(&map, br#"{"m":{"a":1}}"#).is_none());
}

#[test]
fn random_nested_records_decode_like_arrow_json() {
    let s = nested_schema();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let string = |rng: &mut rand::rngs::StdRng| {
        ["\"\"", "\"a\"", "\"caf\\u00e9\"", "\"q\\\"\"", "null"][rng.gen_range(0..5)]
    };
    for _ in 0..200 {
        let mut data = String::new();
        for _ in 0..rng.gen_range(0..30) {
            let mut fields = Vec::new();
            if rng.gen_bool(0.8) {
                fields.push(format!("\"id\":{}", string(&mut rng)));
            }
            if rng.gen_bool(0.7) {
                fields.push(if rng.gen_bool(0.1) {
                    "\"actor\":null".to_string()
                } else {
                    format!(
                        "\"actor\":{{\"login\":{},\"id\":{}}}",
                        string(&mut rng),
                        rng.gen::<i64>()
                    )
                });
            }
            if rng.gen_bool(0.7) {
                let commits: Vec<String> = (0..rng.gen_range(0..4))
                    .map(|_| {
                        format!(
                            "{{\"sha\":{},\"distinct\":{},\"author\":{{\"name\":{}}}}}",
                            string(&mut rng),
                            rng.gen::<bool>(),
                            string(&mut rng)
                        )
                    })
                    .collect();
                fields.push(format!(
                    "\"payload\":{{\"size\":{},\"commits\":[{}]}}",
                    rng.gen::<i32>(),
                    commits.join(",")
                ));
            }
            if rng.gen_bool(0.5) {
                let lists: Vec<String> = (0..rng.gen_range(0..3))
                    .map(|_| {
                        let items: Vec<String> = (0..rng.gen_range(0..3))
                            .map(|_| format!("{}", rng.gen_range(-1000..1000) as f64 / 8.0))
                            .collect();
                        format!("[{}]", items.join(","))
                    })
                    .collect();
                fields.push(format!("\"tags\":[{}]", lists.join(",")));
            }
            if rng.gen_bool(0.2) {
                fields.push("\"skip\":{\"x\":[1,{\"a\":null}]}".to_string());
            }
            for i in (1..fields.len()).rev() {
                fields.swap(i, rng.gen_range(0..=i));
            }
            data.push('{');
            data.push_str(&fields.join(","));
            data.push_str("}\n");
        }
        assert_same(&s, data.as_bytes());
    }
}
