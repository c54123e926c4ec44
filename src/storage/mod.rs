//! Where data lives: local directories and `s3://` URIs, resolved to object stores and table URLs.
//! S3 settings come from the standard AWS environment variables; every S3 store counts its
//! requests (see [`metered`]).

pub mod durable;
mod log_names;
pub mod metered;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

pub use metered::{IoCounts, IoStats};

/// Errors resolving a location.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The URI has a scheme Sluice does not read.
    #[error("unsupported location `{0}`: use a local path or s3://bucket/prefix")]
    Unsupported(String),
    /// The local path cannot be used.
    #[error("cannot use local path {path}: {reason}")]
    Local {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The object store could not be configured.
    #[error("cannot configure storage for {uri}: {reason}; check the AWS_* environment variables")]
    Config {
        /// The location.
        uri: String,
        /// Why.
        reason: String,
    },
}

/// A local directory or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (absolute).
    Local {
        /// The absolute path.
        path: PathBuf,
        /// As the user wrote it.
        display: String,
    },
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing slash).
        prefix: String,
        /// As the user wrote it.
        display: String,
    },
}

impl Location {
    /// Parse a user-supplied location.
    pub fn parse(uri: &str) -> Result<Self, StorageError> {
        let trimmed = uri.trim();
        if trimmed.is_empty() {
            return Err(StorageError::Unsupported(uri.to_string()));
        }
        if let Some(rest) = trimmed
            .strip_prefix("s3://")
            .or_else(|| trimmed.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::Unsupported(uri.to_string()));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                display: trimmed.to_string(),
            });
        }
        let path_text = match trimmed.strip_prefix("file://") {
            Some(p) => p,
            None if trimmed.contains("://") => {
                return Err(StorageError::Unsupported(uri.to_string()))
            }
            None => trimmed,
        };
        let path = PathBuf::from(path_text);
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map_err(|e| StorageError::Local {
                    path: path_text.to_string(),
                    reason: e.to_string(),
                })?
                .join(path)
        };
        Ok(Location::Local {
            path: normalize(&path),
            display: trimmed.to_string(),
        })
    }

    /// As the user wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            Location::Local { display, .. } | Location::S3 { display, .. } => display,
        }
    }

    /// The location itself, whatever way the user wrote it: the absolute path of a local
    /// directory, `s3://bucket/prefix` on S3. Two spellings of one place give the same text.
    pub fn canonical(&self) -> String {
        match self {
            Location::Local { path, .. } => path.display().to_string(),
            Location::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The directory, for local locations.
    pub fn local_path(&self) -> Option<&PathBuf> {
        match self {
            Location::Local { path, .. } => Some(path),
            Location::S3 { .. } => None,
        }
    }

    /// The key prefix inside the store returned by [`object_store`], as the user wrote it (not
    /// percent-encoded: keys hold `[`, `%`, `#` and the like as they are).
    pub fn prefix(&self) -> Path {
        match self {
            Location::Local { .. } => Path::default(),
            Location::S3 { prefix, .. } => {
                Path::parse(prefix).unwrap_or_else(|_| Path::from(prefix.as_str()))
            }
        }
    }

    /// The URL deltalake opens.
    pub fn url(&self) -> Result<Url, StorageError> {
        match self {
            Location::Local { path, .. } => {
                Url::from_directory_path(path).map_err(|_| StorageError::Local {
                    path: path.display().to_string(),
                    reason: "not an absolute path".into(),
                })
            }
            Location::S3 {
                bucket,
                prefix,
                display,
            } => Url::parse(&format!("s3://{bucket}/{prefix}")).map_err(|e| StorageError::Config {
                uri: display.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Remove `.` and `..` components without touching the file system.
fn normalize(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// An object store rooted at the location's store (a local directory, or an S3 bucket whose
/// requests are counted in `stats`).
pub fn object_store(
    location: &Location,
    stats: &Arc<IoStats>,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    match location {
        Location::Local { path, .. } => {
            let store =
                LocalFileSystem::new_with_prefix(path).map_err(|e| StorageError::Local {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            Ok(Arc::new(store))
        }
        Location::S3 {
            bucket, display, ..
        } => {
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_http_connector(metered::CountingConnector {
                    stats: Arc::clone(stats),
                })
                .build()
                .map_err(|e| StorageError::Config {
                    uri: display.clone(),
                    reason: e.to_string(),
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// Storage options for deltalake, read from the standard AWS environment variables.
pub fn delta_storage_options() -> HashMap<String, String> {
    const KEYS: &[&str] = &[
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP",
        "AWS_TIMEOUT",
        "AWS_CONNECT_TIMEOUT",
    ];
    KEYS.iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_and_s3() {
        let s3 = Location::parse("s3://bucket/some/prefix/").unwrap();
        assert_eq!(s3.prefix(), Path::from("some/prefix"));
        assert_eq!(s3.url().unwrap().as_str(), "s3://bucket/some/prefix");
        let local = Location::parse("/tmp/x/../y").unwrap();
        assert_eq!(local.local_path().unwrap(), &PathBuf::from("/tmp/y"));
        assert_eq!(
            Location::parse("s3a://bucket/some/prefix")
                .unwrap()
                .canonical(),
            Location::parse("s3://bucket/some/prefix/")
                .unwrap()
                .canonical()
        );
        assert_eq!(
            Location::parse("/tmp/a/./b/").unwrap().canonical(),
            Location::parse("file:///tmp/a/b").unwrap().canonical()
        );
        assert!(Location::parse("gs://b/p").is_err());
        assert!(Location::parse("s3:///p").is_err());
    }
}
