//! The `sluice` binary.

use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{progress, Cli, Command};
use sluice::engine::{Ending, Engine};
use tokio::sync::watch;

fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::from(2);
                }
                _ => {}
            }
            // clap's first paragraph, folded onto one line.
            let text = e.to_string();
            let summary: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let summary = summary.join(" ");
            let summary = summary.strip_prefix("error: ").unwrap_or(&summary);
            eprintln!("error: {summary} (run `sluice --help` for usage)");
            return ExitCode::from(2);
        }
    };
    // Only Sluice's own warnings by default: the libraries' internal warnings (a retried commit,
    // a missing log segment) are expected events here, not news for the user.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sluice=warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A panic inside a library task (a storage client after a failed upload, say) reaches the
    // query as an error; keep its multi-line report off stderr so that the user sees one line.
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string().replace('\n', " ");
        tracing::debug!("panic: {text}");
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(text);
        }
    }));
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(cli))));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let text = e.to_string().replace('\n', " ");
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
        Err(_) => {
            let last = LAST_PANIC
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            eprintln!("error: internal failure ({last}); what was committed stays committed, run again to resume");
            ExitCode::FAILURE
        }
    }
}

static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let cfg = args.to_config()?;
            let style = args.progress_style();
            let query = cfg.query_name.clone();
            let sink = cfg.sink.clone();
            let engine = Engine::start(cfg).await?;
            let (stop_tx, stop_rx) = watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = stop_tx.send(true);
            });
            let (callback, bar) = progress::reporter(style, &query);
            let ending = engine.run(stop_rx, callback).await;
            if let Some(bar) = &bar {
                bar.finish(match &ending {
                    Ok(Ending::Finished) => format!("done; table {sink}"),
                    Ok(Ending::Stopped) => "stopped".to_string(),
                    Err(_) => "failed".to_string(),
                });
            }
            ending?;
            Ok(())
        }
        Command::Optimize(args) => {
            let report = sluice::maintenance::optimize(&args.table, args.target_size).await?;
            println!(
                "optimized {}: {} small files compacted into {} (version {})",
                args.table, report.files_removed, report.files_added, report.version
            );
            Ok(())
        }
        Command::Vacuum(args) => {
            let report =
                sluice::maintenance::vacuum(&args.table, args.retention_hours, args.dry_run)
                    .await?;
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            println!(
                "vacuumed {}: {verb} {} files",
                args.table, report.files_deleted
            );
            Ok(())
        }
        Command::Inspect(args) => {
            let report = sluice::inspect::inspect(&args.table, args.limit).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", sluice::inspect::render(&report));
            }
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// glibc gives threads that allocate at the same time their own heap arenas (up to 8 per core)
/// and keeps freed memory in each, so resident memory crept up with the amount of data a run
/// had seen. Four arenas keep it flat (`scripts/bench`: 10 M vs 30 M rows) at no measurable
/// cost in speed. A MALLOC_ARENA_MAX in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}
