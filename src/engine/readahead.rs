//! Read-ahead across micro-batches: once batch N has read its last file, the files batch N+1
//! will read are fetched and decoded while N finishes (encoding its last rows, committing), so
//! the cores that decode do not sit idle at every batch boundary.
//!
//! ```text
//!  batch N:    decode ████████████ encode ███████████████ commit ██
//!  batch N+1:                  (read-ahead) decode ███████████ ──► taken by batch N+1
//! ```
//!
//! Reading is free of side effects, so read-ahead changes nothing in the exactly-once protocol:
//! batch N+1 is still planned (its record written) only after N commits, and it uses what was
//! read ahead only when its files are exactly the ones read ahead; anything else is dropped.
//! At most a few decoded files are held (a bounded channel).

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::source::decode::Decoded;
use crate::source::discovery::FileEntry;
use crate::source::{FileSource, SourceError};

/// Decoded files waiting in the channel, beyond those being decoded.
const AHEAD_FILES: usize = 2;

type DecodedStream = BoxStream<'static, Result<Decoded, SourceError>>;

/// Files being read ahead for the next batch.
struct Prefetch {
    files: Vec<FileEntry>,
    rx: mpsc::Receiver<Result<Decoded, SourceError>>,
    task: JoinHandle<()>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The read-ahead slot of a query (at most one batch ahead).
#[derive(Clone, Default)]
pub(super) struct ReadAhead {
    slot: Arc<Mutex<Option<Prefetch>>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead").finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// The decoded stream of `files`: what was read ahead when it is exactly these files, else
    /// a fresh read. Anything else read ahead is dropped.
    pub(super) fn read(
        &self,
        source: &FileSource,
        files: &[FileEntry],
        schema: &SchemaRef,
    ) -> DecodedStream {
        let taken = self.slot.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(p) if p.files == files => {
                tracing::debug!(files = files.len(), "using files read ahead");
                stream::unfold(p, |mut p| async move {
                    let item = p.rx.recv().await?;
                    Some((item, p))
                })
                .boxed()
            }
            _ => source.read(files.to_vec(), schema.clone()),
        }
    }

    /// `input`, followed (once it has ended) by starting to read `next` ahead.
    pub(super) fn then_read_ahead(
        &self,
        input: DecodedStream,
        source: &FileSource,
        next: Vec<FileEntry>,
        schema: &SchemaRef,
    ) -> DecodedStream {
        if next.is_empty() {
            return input;
        }
        let (this, source, schema) = (self.clone(), source.clone(), schema.clone());
        let start = stream::once(async move { this.start(&source, next, &schema) })
            .filter_map(|()| async { None });
        input.chain(start).boxed()
    }

    /// Start reading `files` ahead now (replacing anything read ahead before).
    pub(super) fn start(&self, source: &FileSource, files: Vec<FileEntry>, schema: &SchemaRef) {
        if files.is_empty() {
            return;
        }
        let (tx, rx) = mpsc::channel(AHEAD_FILES);
        let mut reading = source.read(files.clone(), schema.clone());
        let task = tokio::spawn(async move {
            while let Some(item) = reading.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        if let Ok(mut s) = self.slot.lock() {
            *s = Some(Prefetch { files, rx, task });
        }
    }
}
