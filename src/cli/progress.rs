//! Showing progress on stderr: a live line on a terminal, or one JSON object per batch.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle as BarStyle};

use super::ProgressStyle;
use crate::engine::{Progress, ProgressCallback};

/// A live progress line.
#[derive(Debug, Clone)]
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// Start a spinner line on stderr.
    pub fn new(query: &str) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            BarStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                .unwrap_or_else(|_| BarStyle::default_spinner()),
        );
        bar.set_prefix(format!("sluice {query}"));
        bar.set_message("waiting for the first batch");
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar }
    }

    /// Clear the line.
    pub fn finish(&self, message: String) {
        self.bar.finish_with_message(message);
    }
}

/// The callback for a progress style; `Bar` also returns the bar to finish at the end.
pub fn reporter(style: ProgressStyle, query: &str) -> (ProgressCallback, Option<Bar>) {
    match style {
        ProgressStyle::None => (Box::new(|_: &Progress| {}), None),
        ProgressStyle::Json => (
            Box::new(|p: &Progress| {
                if let Ok(line) = serde_json::to_string(p) {
                    eprintln!("{line}");
                }
            }),
            None,
        ),
        ProgressStyle::Bar => {
            let bar = Bar::new(query);
            let shown = bar.clone();
            let mut total_rows = 0u64;
            let mut retries = 0u64;
            (
                Box::new(move |p: &Progress| {
                    total_rows += p.num_input_rows;
                    retries += p.sink.metrics.storage_retries
                        + p.sources
                            .iter()
                            .map(|s| s.metrics.storage_retries)
                            .sum::<u64>();
                    let retried = match retries {
                        0 => String::new(),
                        n => format!(" · {n} storage requests retried"),
                    };
                    shown.bar.set_message(format!(
                        "batch {} · {} rows ({:.0} rows/s) · {} total · table v{}{retried}",
                        p.batch_id,
                        p.num_input_rows,
                        p.processed_rows_per_second,
                        total_rows,
                        p.sink.table_version
                    ));
                }),
                Some(bar),
            )
        }
    }
}
