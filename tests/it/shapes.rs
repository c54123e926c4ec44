//! Seeded generators of real landing-zone shapes, each with what a batch computation over it
//! gives (computed here from the generated values, not by Sluice):
//! - CloudTrail-like: one pretty-printed `{"Records": [...]}` document per file;
//! - OTLP-like log records: arrays of `{key, value: {stringValue|intValue|boolValue}}`;
//! - ECS-like logs: a dotted key `log.level` beside a nested `log` object;
//! - lenient producers: single quotes, comments, NaN, bare names, leading zeros.
//!
//! (GitHub-Archive-like events come from `nested::generate`.)

use rand::rngs::StdRng;
use rand::Rng;

/// A CloudTrail-like file: its JSON text (pretty-printed, one document) and its records as
/// `eventName|arn|region|resources` rows.
pub fn cloudtrail_file(rng: &mut StdRng, records: usize, file: usize) -> (String, Vec<String>) {
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for i in 0..records {
        let name = ["GetObject", "PutObject", "RunInstances", "AssumeRole"][rng.gen_range(0..4)];
        let region = ["us-east-1", "eu-west-1"][rng.gen_range(0..2)];
        let arn = format!("arn:aws:iam::{:012}:user/u{}", 100_000 + file, i % 7);
        let resources = rng.gen_range(0..3);
        let params = match name {
            "GetObject" | "PutObject" => format!(
                "{{\n        \"bucketName\": \"b{file}\",\n        \"key\": \"k/{i}.json\"\n      }}"
            ),
            "RunInstances" => "{\n        \"instancesSet\": {\"items\": [{\"imageId\": \"ami-1\"}]}\n      }".into(),
            _ => "null".into(),
        };
        let resource_list: Vec<String> = (0..resources)
            .map(|r| {
                format!("{{\"ARN\": \"arn:aws:s3:::b{file}/{r}\", \"type\": \"AWS::S3::Object\"}}")
            })
            .collect();
        let resources_json = if resources == 0 && rng.gen_bool(0.5) {
            String::new()
        } else {
            format!(",\n      \"resources\": [{}]", resource_list.join(", "))
        };
        let session = if rng.gen_bool(0.3) {
            ",\n        \"sessionContext\": {\"attributes\": {\"mfaAuthenticated\": \"false\"}}"
        } else {
            ""
        };
        docs.push(format!(
            "    {{\n      \"eventVersion\": \"1.08\",\n      \"eventTime\": \"2024-03-01T10:{:02}:{:02}Z\",\n      \"eventSource\": \"s3.amazonaws.com\",\n      \"eventName\": \"{name}\",\n      \"awsRegion\": \"{region}\",\n      \"userIdentity\": {{\n        \"type\": \"IAMUser\",\n        \"arn\": \"{arn}\",\n        \"accountId\": \"{:012}\"{session}\n      }},\n      \"requestParameters\": {params}{resources_json}\n    }}",
            i % 60,
            file % 60,
            100_000 + file
        ));
        let count = if resources_json.is_empty() {
            "NULL".to_string()
        } else {
            resources.to_string()
        };
        rows.push(format!("{name}|{arn}|{region}|{count}"));
    }
    (
        format!("{{\n  \"Records\": [\n{}\n  ]\n}}\n", docs.join(",\n")),
        rows,
    )
}

/// OTLP-like log records, one per line, and their attributes as `severity|key|value` rows.
pub fn otlp_lines(rng: &mut StdRng, n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let severity = ["INFO", "WARN", "ERROR"][rng.gen_range(0..3)];
        let mut attrs = Vec::new();
        let method = ["GET", "POST"][rng.gen_range(0..2)];
        attrs.push((
            "http.method",
            format!("{{\"stringValue\": \"{method}\"}}"),
            method.to_string(),
        ));
        if rng.gen_bool(0.7) {
            let code = [200, 404, 500][rng.gen_range(0..3)];
            attrs.push((
                "http.status_code",
                format!("{{\"intValue\": \"{code}\"}}"),
                code.to_string(),
            ));
        }
        if rng.gen_bool(0.3) {
            let retry = rng.gen_bool(0.5);
            attrs.push((
                "retry",
                format!("{{\"boolValue\": {retry}}}"),
                retry.to_string(),
            ));
        }
        let list: Vec<String> = attrs
            .iter()
            .map(|(k, v, _)| format!("{{\"key\": \"{k}\", \"value\": {v}}}"))
            .collect();
        text.push_str(&format!(
            "{{\"timeUnixNano\": \"{}\", \"severityText\": \"{severity}\", \"body\": {{\"stringValue\": \"request {i}\"}}, \"attributes\": [{}], \"traceId\": \"{:032x}\"}}\n",
            1_709_287_200_000_000_000u64 + i as u64 * 1_000_000,
            list.join(", "),
            i
        ));
        for (k, _, v) in attrs {
            rows.push(format!("{severity}|{k}|{v}"));
        }
    }
    (text, rows)
}

/// ECS-like log lines and their `level|logger|line|status|message` rows.
pub fn ecs_lines(rng: &mut StdRng, n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let level = ["info", "warn", "error"][rng.gen_range(0..3)];
        let logger = ["app.web", "app.db"][rng.gen_range(0..2)];
        let line = rng.gen_range(1..500);
        let status = rng.gen_bool(0.6).then(|| [200, 503][rng.gen_range(0..2)]);
        let http = match status {
            Some(s) => format!(", \"http\": {{\"response\": {{\"status_code\": {s}}}}}"),
            None => String::new(),
        };
        text.push_str(&format!(
            "{{\"@timestamp\": \"2024-03-01T10:00:{:02}.{:03}Z\", \"log.level\": \"{level}\", \"log\": {{\"logger\": \"{logger}\", \"origin\": {{\"file\": {{\"line\": {line}}}}}}}, \"message\": \"m {i}\", \"service.name\": \"web\", \"ecs.version\": \"1.6.0\"{http}}}\n",
            i % 60,
            i % 1000
        ));
        let status = status.map_or("NULL".to_string(), |s| s.to_string());
        rows.push(format!("{level}|{logger}|{line}|{status}|m {i}"));
    }
    (text, rows)
}

/// Lines as lenient producers write them (Spark reads each with the options named), and
/// their `id|name|score` rows.
pub fn lenient_lines(rng: &mut StdRng, n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut rows = Vec::new();
    for id in 0..n {
        let name = format!("n{}", rng.gen_range(0..100));
        let (score_json, score) = match rng.gen_range(0..4) {
            0 => ("NaN".to_string(), "NaN".to_string()),
            1 => ("-Infinity".to_string(), "-inf".to_string()),
            _ => {
                let v = rng.gen_range(0..1000) as f64 / 4.0;
                (format!("{v}"), format!("{v:?}"))
            }
        };
        let line = match id % 4 {
            0 => format!("{{'id': {id}, 'name': 'it''s {name}', 'score': {score_json}}}"),
            1 => format!("{{id: {id}, name: \"{name}\", score: {score_json}}} // from a tool"),
            2 => format!("{{\"id\": 000{id}, /* zero-padded */ \"name\": \"{name}\", \"score\": {score_json}}}"),
            _ => format!("{{\"id\": {id}, \"name\": \"\\q{name}\", \"score\": {score_json}}}"),
        };
        let line = line.replace("it''s ", "");
        text.push_str(&line);
        text.push('\n');
        // `\q` reads as `q` (allowBackslashEscapingAnyCharacter).
        let name = if id % 4 == 3 {
            format!("q{name}")
        } else {
            name
        };
        rows.push(format!("{id}|{name}|{score}"));
    }
    (text, rows)
}
