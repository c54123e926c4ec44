//! Counting the S3 requests a store makes, so progress can show storage trouble.
//!
//! object_store retries transient failures itself (with backoff) below the `ObjectStore` API,
//! where a wrapper around the store cannot see them. So the count is taken one level lower, on
//! the HTTP client the S3 store is built with:
//!
//! ```text
//!   FileSource / DeltaSink ──► AmazonS3 ──► RetryableRequest ──► Counting ──► reqwest
//!                                            (backoff, retry)     (requests, failed)
//! ```
//!
//! Every attempt passes `Counting`, so a request that failed with a transient error and was
//! retried shows up as one failed request plus the attempt that followed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};

/// Request counters of one store, shared with the HTTP client that serves it.
#[derive(Debug, Default)]
pub struct IoStats {
    requests: AtomicU64,
    failed: AtomicU64,
}

/// A reading of [`IoStats`]; subtract two readings for what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Attempts that failed with a transient error (5xx, 429, 408, connection errors,
    /// timeouts): the client retries these with backoff until its retry budget runs out.
    pub failed: u64,
}

impl IoStats {
    /// The counts so far.
    pub fn read(&self) -> IoCounts {
        IoCounts {
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Sub for IoCounts {
    type Output = IoCounts;
    fn sub(self, earlier: IoCounts) -> IoCounts {
        IoCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
}

/// Builds the store's HTTP client: reqwest's, behind [`Counting`].
#[derive(Debug)]
pub(crate) struct CountingConnector {
    pub(crate) stats: Arc<IoStats>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Counting {
            inner,
            stats: Arc::clone(&self.stats),
        }))
    }
}

/// Counts each attempt and each transient failure, then passes the response on unchanged.
#[derive(Debug)]
struct Counting {
    inner: HttpClient,
    stats: Arc<IoStats>,
}

#[async_trait]
impl HttpService for Counting {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = self.inner.execute(req).await;
        let transient = match &response {
            Ok(r) => is_transient(r.status()),
            Err(_) => true,
        };
        if transient {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        response
    }
}

/// Statuses object_store retries.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_the_retried_ones() {
        assert!(is_transient(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient(StatusCode::FORBIDDEN));
        assert!(!is_transient(StatusCode::PRECONDITION_FAILED));
        assert!(!is_transient(StatusCode::NOT_FOUND));
    }

    #[test]
    fn counts_subtract() {
        let a = IoCounts {
            requests: 10,
            failed: 2,
        };
        let b = IoCounts {
            requests: 4,
            failed: 1,
        };
        assert_eq!(
            a - b,
            IoCounts {
                requests: 6,
                failed: 1
            }
        );
    }
}
