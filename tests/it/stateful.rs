//! Windowed aggregations in every output mode, compared with a batch computation over all input.

use std::path::Path;

use crate::common::*;

const AGGS: &str =
    "count(*) AS n, count(action) AS n_action, min(time) AS first, max(time) AS last, \
    sum(CAST(date_part('second', time) AS BIGINT)) AS secs, \
    round(avg(date_part('second', time)), 6) AS avg_sec";

fn window_sql(window: &str) -> String {
    format!("SELECT action, window(time, {window}) AS window, {AGGS} FROM source GROUP BY action, window(time, {window})")
}

const TABLE_SQL: &str =
    "SELECT action, \"window\"['start'], \"window\"['end'], n, n_action, first, last, secs, avg_sec FROM t";

/// The windowed query of these tests: 1-hour windows sliding every 30 minutes, or tumbling.
fn windowed_query(sliding: bool) -> String {
    window_sql(if sliding {
        "'1 hour', '30 minutes'"
    } else {
        "'1 hour'"
    })
}

/// `--sql`, `--output-mode` and a 10-minute watermark for [`windowed_query`].
fn windowed_args<'a>(sql: &'a str, mode: &'a str) -> Vec<&'a str> {
    vec![
        "--sql",
        sql,
        "--output-mode",
        mode,
        "--watermark",
        "time, 10 minutes",
    ]
}

/// The table of [`windowed_query`] (as [`TABLE_SQL`] reads it), computed in one batch over all
/// of `src`; in append mode, only the windows the watermark has closed.
async fn expected_windows(src: &Path, sliding: bool, mode: &str) -> Vec<String> {
    let select = format!("action, ws, ws + INTERVAL '1 hour', {AGGS}");
    expected_events(src, &windowed_sql(sliding, mode == "append", &select)).await
}

async fn differential(src: &Path, sliding: bool, mode: &str, limit: Option<&str>) {
    let dir = tempdir();
    let table = dir.path().join("t");
    let sql = windowed_query(sliding);
    let mut extra = windowed_args(&sql, mode);
    extra.extend(["--progress", "json"]);
    let limit_opt;
    if let Some(n) = limit {
        limit_opt = format!("maxFilesPerTrigger={n}");
        extra.extend(["--option", &limit_opt]);
    }
    let out = run_events(src, &table, &extra);
    let progress = progress_lines(&out);
    assert!(!progress.is_empty(), "every batch reports its progress");
    let dropped: u64 = progress
        .iter()
        .map(|p| {
            p["stateOperators"][0]["numRowsDroppedByWatermark"]
                .as_u64()
                .expect("a stateful batch reports its late rows")
        })
        .sum();
    assert_eq!(dropped, 0, "no row is late in this input");
    let got = table_rows(&table, TABLE_SQL).await;
    let want = expected_windows(src, sliding, mode).await;
    assert!(!want.is_empty());
    assert_eq!(got, want, "sliding={sliding} mode={mode} limit={limit:?}");
}

#[tokio::test]
async fn tumbling_windows_in_every_mode_and_rate() {
    for mode in ["complete", "update", "append"] {
        for limit in [Some("1"), Some("7"), None] {
            differential(&fixture("events"), false, mode, limit).await;
        }
    }
}

#[tokio::test]
async fn sliding_windows_in_every_mode_and_rate() {
    for mode in ["complete", "update", "append"] {
        for limit in [Some("1"), Some("7"), None] {
            differential(&fixture("events"), true, mode, limit).await;
        }
    }
}

/// Files whose events reach back about 3 minutes into the previous file, while the previous
/// file reaches about 3 minutes ahead: out of order by up to ~6 minutes, within the 10-minute
/// delay, so nothing may be dropped.
#[tokio::test]
async fn out_of_order_within_the_delay_is_never_dropped() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for i in 0..50 {
        let text =
            std::fs::read_to_string(fixture("events").join(format!("file-{i:02}.json"))).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    let mut chunks: Vec<Vec<String>> = lines.chunks(2000).map(|c| c.to_vec()).collect();
    for k in 0..chunks.len() - 1 {
        // Move the first 100 events of file k+1 to the end of file k, and the last 100 of file k
        // to the start of file k+1: each file now reaches back into its predecessor.
        let head: Vec<String> = chunks[k + 1].drain(..100).collect();
        let n = chunks[k].len();
        let tail: Vec<String> = chunks[k].drain(n - 100..).collect();
        chunks[k].extend(head);
        let mut next = tail;
        next.append(&mut chunks[k + 1]);
        chunks[k + 1] = next;
    }
    for (k, chunk) in chunks.iter().enumerate() {
        std::fs::write(
            src.join(format!("file-{k:02}.json")),
            chunk.join("\n") + "\n",
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    differential(&src, false, "append", Some("1")).await;
    differential(&src, true, "update", Some("3")).await;
}

fn write_events(dir: &Path, name: &str, events: &[(&str, &str)]) {
    let body: String = events
        .iter()
        .map(|(t, a)| format!("{{\"time\": \"2016-07-26T{t}Z\", \"action\": \"{a}\"}}\n"))
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
}

#[tokio::test]
async fn late_rows_are_dropped_counted_and_never_change_a_closed_window() {
    for mode in ["append", "update"] {
        let dir = tempdir();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let table = dir.path().join("t");
        let sql = "SELECT window(time, '10 minutes') AS window, count(*) AS n FROM source GROUP BY window(time, '10 minutes')";
        let args = [
            "--sql",
            sql,
            "--output-mode",
            mode,
            "--watermark",
            "time, 10 minutes",
            "--option",
            "maxFilesPerTrigger=1",
            "--progress",
            "json",
        ];
        write_events(
            &src,
            "a.json",
            &[
                ("12:01:00", "Open"),
                ("12:05:00", "Open"),
                ("12:12:00", "Open"),
            ],
        );
        write_events(&src, "b.json", &[("12:40:00", "Open")]);
        run_events(&src, &table, &args);
        // The watermark is now 12:30: [12:00,12:10) is closed. 12:03 is late; 12:35 is not.
        write_events(
            &src,
            "c.json",
            &[("12:03:00", "Close"), ("12:35:00", "Close")],
        );
        let out = run_events(&src, &table, &args);
        let progress: Vec<serde_json::Value> = stderr(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let dropped: u64 = progress
            .iter()
            .filter_map(|p| p["stateOperators"][0]["numRowsDroppedByWatermark"].as_u64())
            .sum();
        assert_eq!(dropped, 1, "{mode}: the 12:03 row is late and counted");
        let got = table_rows(&table, "SELECT \"window\"['start'], n FROM t").await;
        assert!(
            got.contains(&"2016-07-26T12:00:00Z|2".to_string()),
            "{mode}: the closed window keeps its count: {got:?}"
        );
        if mode == "update" {
            assert!(
                got.contains(&"2016-07-26T12:30:00Z|1".to_string()),
                "{got:?}"
            );
        }
    }
}

#[tokio::test]
async fn update_mode_rewrites_only_the_files_holding_changed_keys() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let table = dir.path().join("t");
    let sql = "SELECT action, count(*) AS n FROM source GROUP BY action";
    let args = [
        "--sql",
        sql,
        "--output-mode",
        "update",
        "--option",
        "maxFilesPerTrigger=1",
    ];
    write_events(
        &src,
        "a.json",
        &[("01:00:00", "Open"), ("01:00:01", "Close")],
    );
    write_events(
        &src,
        "b.json",
        &[("02:00:00", "Start"), ("02:00:01", "Stop")],
    );
    run_events(&src, &table, &args);
    // Batch 2 touches only `Stop`, whose row lives in batch 1's file.
    write_events(&src, "c.json", &[("03:00:00", "Stop")]);
    run_events(&src, &table, &args);
    let log = table.join("_delta_log");
    let read = |v: u32| -> Vec<serde_json::Value> {
        std::fs::read_to_string(log.join(format!("{v:020}.json")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let adds_of = |actions: &[serde_json::Value]| -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| a["add"]["path"].as_str().map(str::to_string))
            .collect()
    };
    let batch1_files = adds_of(&read(2));
    let last = read(3);
    let removed: Vec<String> = last
        .iter()
        .filter_map(|a| a["remove"]["path"].as_str().map(str::to_string))
        .collect();
    assert_eq!(removed.len(), 1, "exactly one file holds `Stop`");
    assert!(
        batch1_files.contains(&removed[0]),
        "the removed file is batch 1's"
    );
    assert_eq!(
        adds_of(&last).len(),
        2,
        "the kept `Start` row, and the new `Stop` row"
    );
    assert_eq!(
        table_rows(&table, "SELECT action, n FROM t").await,
        vec!["Close|1", "Open|1", "Start|1", "Stop|2"]
    );
}

#[tokio::test]
async fn complete_mode_with_having_projection_and_order_by() {
    let dir = tempdir();
    let table = dir.path().join("t");
    let sql = "SELECT action, count(*) * 2 AS doubled FROM source GROUP BY action HAVING count(*) > 10 ORDER BY action";
    run_events(
        &fixture("events"),
        &table,
        &[
            "--sql",
            sql,
            "--output-mode",
            "complete",
            "--option",
            "maxFilesPerTrigger=20",
        ],
    );
    let want = expected_events(
        &fixture("events"),
        "SELECT action, count(*) * 2 FROM events GROUP BY action HAVING count(*) > 10",
    )
    .await;
    assert_eq!(
        table_rows(&table, "SELECT action, doubled FROM t").await,
        want
    );
}

#[tokio::test]
async fn restart_with_a_changed_query_says_what_changed() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..3);
    let first = "SELECT action, count(*) AS n FROM source GROUP BY action";
    run_events(&src, &table, &["--sql", first, "--output-mode", "complete"]);
    // Same output columns, different grouping key.
    let changed =
        "SELECT upper(action) AS action, count(*) AS n FROM source GROUP BY upper(action)";
    // Run a query over the same source and table; its one-line error.
    let rejected = |sql: &str, mode: &str| {
        let out = crate::common::run(&events_args(
            src.to_str().unwrap(),
            table.to_str().unwrap(),
            &["--sql", sql, "--output-mode", mode],
        ));
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let err = rejected(changed, "complete");
    assert!(
        err.contains("the query changed since the table's state was built"),
        "{err}"
    );
    assert!(err.contains("grouping keys were [source.action]"), "{err}");
    let err = rejected(first, "update");
    assert!(
        err.contains("output mode was Complete, now Update"),
        "{err}"
    );
}

#[tokio::test]
async fn inspect_shows_watermark_and_state_size() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &[
            "--sql",
            &window_sql("'1 hour'"),
            "--output-mode",
            "append",
            "--watermark",
            "time, 10 minutes",
            "--query-name",
            "hourly",
        ],
    );
    let report = inspect_json(&table, 0);
    let q = &report["queries"][0];
    assert_eq!(q["name"], "hourly");
    // The last event is at 2016-07-28T02:43:50Z; the watermark is 10 minutes behind it.
    assert_eq!(q["watermarkMs"], 1_469_673_830_000i64 - 600_000);
    assert_eq!(q["stateRows"], 2, "the two windows still open at the end");
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Tables whose state an earlier Sluice wrote in format 1 (tests/data/state-format-1) resume:
/// the state is read, the query goes on over the rest of the input, and the result equals a
/// batch computation over all of it.
#[tokio::test]
async fn state_written_in_format_1_resumes() {
    for (name, sliding, mode) in [
        ("update-sliding", true, "update"),
        ("append-tumbling", false, "append"),
    ] {
        let dir = tempdir();
        let table = dir.path().join("t");
        copy_dir(&repo().join("tests/data/state-format-1").join(name), &table);
        let (before, _) = query_commits(&table, "sluice-events").await;
        let before = before.expect("the fixture holds committed batches");
        let sql = windowed_query(sliding);
        // The fixture's records name their source `src`, relative to where it ran: run there.
        let src = dir.path().join("src");
        copy_files(&fixture("events"), &src, 0..50);
        let mut args = events_args("src", table.to_str().unwrap(), &windowed_args(&sql, mode));
        args.extend(["--query-name", "events"]);
        let out = sluice()
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let (after, _) = query_commits(&table, "sluice-events").await;
        assert!(after > Some(before), "{name}: the query went on");
        let got = table_rows(&table, TABLE_SQL).await;
        let want = expected_windows(&src, sliding, mode).await;
        assert_eq!(got, want, "{name}");
    }
}
