//! The machine's ceiling for an append ingest: decode every JSON-lines file of a directory with
//! arrow-json and encode it to Parquet (snappy, as Delta data files are written), on every
//! core, with nothing else — no SQL, no Delta log, no exactly-once bookkeeping. The benchmark
//! (`scripts/bench`) reports Sluice's append job against this.
//!
//!     cargo run --release --example ceiling -- INPUT_DIR OUTPUT_DIR

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn convert(input: &Path, output: &Path, schema: &Arc<Schema>) -> Result<usize> {
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(64 * 1024)
        .build(BufReader::with_capacity(1 << 20, File::open(input)?))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(File::create(output)?, schema.clone(), Some(props))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(rows)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: ceiling INPUT_DIR OUTPUT_DIR".into());
    };
    std::fs::create_dir_all(&output)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&input)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("action", DataType::Utf8, true),
    ]));
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rows: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<usize> {
                    let mut rows = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else {
                            return Ok(rows);
                        };
                        let out = Path::new(&output).join(format!("part-{i:05}.parquet"));
                        rows += convert(file, &out, &schema)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .sum::<Result<usize>>()
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{rows} rows from {} files in {secs:.3} s: {:.2} M rows/s",
        files.len(),
        rows as f64 / secs / 1e6
    );
    Ok(())
}
