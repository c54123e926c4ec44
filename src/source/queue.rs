//! New files of an S3 source from the bucket's event notifications, delivered to an SQS queue
//! the user set up (Auto Loader's file notification mode with `queueUrl`):
//!
//! ```text
//!   producer ── PUT s3://bucket/src/f.json ──► S3 ── s3:ObjectCreated:* ──► SQS queue
//!                                                                              │
//!   each trigger: ReceiveMessage (until empty, at most MAX_MESSAGES) ◄─────────┘
//!                 ──► Records[].s3.object {key, size} below the source ──► candidates
//!                 ──► DeleteMessageBatch
//! ```
//!
//! A message is deleted once read. Its file is then only a pending candidate in memory, so a
//! crash can lose it — which the full listing at every start (and every `backfillInterval`)
//! makes up for: as with every discovery, events only propose files, and the seen-file set
//! decides what is new (see [`super::candidates`]).

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde::Deserialize;

use super::discovery::FileEntry;
use super::SourceError;

/// Messages read in one trigger at most; the rest wait for the next trigger.
const MAX_MESSAGES: usize = 10_000;

/// A queue of S3 event notifications.
#[derive(Debug, Clone)]
pub struct S3Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

fn failed(url: &str, e: impl std::error::Error) -> SourceError {
    SourceError::Location(format!(
        "cannot read the SQS queue {url}: {}; check the queueUrl option and the AWS_* settings",
        aws_sdk_sqs::error::DisplayErrorContext(e)
    ))
}

impl S3Queue {
    /// The queue at `url`, with the standard AWS settings (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// credentials).
    pub async fn connect(url: &str) -> S3Queue {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        S3Queue {
            client: aws_sdk_sqs::Client::new(&config),
            url: url.to_string(),
        }
    }

    /// The files below `prefix` of `bucket` that the queue's waiting messages announce; the
    /// messages are deleted.
    pub async fn drain(&self, bucket: &str, prefix: &str) -> Result<Vec<FileEntry>, SourceError> {
        let mut files = Vec::new();
        let mut read = 0;
        while read < MAX_MESSAGES {
            let got = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| failed(&self.url, e))?;
            let messages = got.messages();
            if messages.is_empty() {
                break;
            }
            read += messages.len();
            let mut done = Vec::new();
            for (i, message) in messages.iter().enumerate() {
                files.extend(files_in_event(message.body().unwrap_or(""), bucket, prefix));
                if let Some(handle) = message.receipt_handle() {
                    let entry = DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .map_err(|e| failed(&self.url, e))?;
                    done.push(entry);
                }
            }
            if !done.is_empty() {
                self.client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(done))
                    .send()
                    .await
                    .map_err(|e| failed(&self.url, e))?;
            }
        }
        Ok(files)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    event_time: String,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    #[serde(default)]
    size: u64,
}

/// An event's key as S3 spells it: URL-encoded, a space as `+`.
fn decode_key(key: &str) -> Option<String> {
    let plus_as_space = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// The created files below `prefix` of `bucket` that one message body announces, named
/// relative to the prefix (what listing would skip is skipped here too). Anything else — test
/// events, other buckets, removals, bodies that are not S3 events — announces nothing.
pub fn files_in_event(body: &str, bucket: &str, prefix: &str) -> Vec<FileEntry> {
    let Ok(event) = serde_json::from_str::<Event>(body) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for record in event.records {
        let Some(s3) = record.s3 else { continue };
        if s3.bucket.name != bucket
            || !record.event_name.starts_with("ObjectCreated")
            || s3.object.size == 0
        {
            continue;
        }
        let Some(key) = decode_key(&s3.object.key) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            key.as_str()
        } else {
            match key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                Some(rel) => rel,
                None => continue,
            }
        };
        if rel.is_empty() || rel.split('/').any(super::listing::hidden) {
            continue;
        }
        let mtime_ms = chrono::DateTime::parse_from_rfc3339(&record.event_time)
            .map(|t| t.timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(&record.event_time, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|t| t.and_utc().timestamp_millis())
            })
            .unwrap_or(0);
        files.push(FileEntry {
            path: rel.to_string(),
            size: s3.object.size,
            mtime_ms,
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bucket: &str, name: &str, key: &str, size: u64) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "eventTime": "2026-12-02T10:00:00.123Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}
        }]})
        .to_string()
    }

    #[test]
    fn created_keys_below_the_source_are_files_named_relative_to_it() {
        let files = files_in_event(
            &event("b", "ObjectCreated:Put", "in/day%3D1/x%5B1%5D+a.json", 10),
            "b",
            "in",
        );
        assert_eq!(
            files,
            vec![FileEntry {
                path: "day=1/x[1] a.json".into(),
                size: 10,
                mtime_ms: 1_796_205_600_123,
            }]
        );
    }

    #[test]
    fn other_buckets_prefixes_removals_hidden_and_empty_objects_announce_nothing() {
        for body in [
            event("other", "ObjectCreated:Put", "in/a.json", 1),
            event("b", "ObjectRemoved:Delete", "in/a.json", 1),
            event("b", "ObjectCreated:Put", "inside/a.json", 1),
            event("b", "ObjectCreated:Put", "in/_tmp/a.json", 1),
            event("b", "ObjectCreated:Put", "in/sub/", 0),
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#.to_string(),
            "not json".to_string(),
        ] {
            assert!(files_in_event(&body, "b", "in").is_empty(), "{body}");
        }
    }
}
