//! Stream the `Open` events of fixtures/events into a Delta table with the library API.
//!
//!     cargo run --example opens -- [TABLE]

use sluice::{Session, Trigger};

#[tokio::main]
async fn main() -> sluice::Result<()> {
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tables/opens".to_string());
    let query = Session::new()
        .read_stream()
        .format("json")
        .schema("time TIMESTAMP, action STRING")
        .option("maxFilesPerTrigger", "10")
        .load("fixtures/events")?
        .filter("action = 'Open'")
        .select_expr(&["time", "action", "CAST(time AS DATE) AS day"])
        .write_stream()
        .format("delta")
        .output_mode("append")
        .query_name("opens")
        .trigger(Trigger::AvailableNow)
        .start(&table)
        .await?;
    let ending = query.await_termination().await?;
    match query.last_progress() {
        Some(p) => println!(
            "{ending:?}: last batch {} read {} rows into {table} (version {})",
            p.batch_id, p.num_input_rows, p.sink.table_version
        ),
        None => println!("{ending:?}: nothing new for {table}"),
    }
    Ok(())
}
