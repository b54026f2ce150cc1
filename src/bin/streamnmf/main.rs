//! The `streamnmf` command line: `main → run → subcommand`.

mod demo;
mod fit;
mod input;
mod inspect;
mod progress;
mod transform;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Streaming, online non-negative matrix factorization.
#[derive(Parser, Debug)]
#[command(name = "streamnmf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Learn a model from Parquet / Arrow IPC files or an Arrow IPC stream on stdin.
    Fit(Box<fit::FitArgs>),
    /// Codes of new rows with a saved model fixed, written to Parquet.
    Transform(transform::TransformArgs),
    /// Show a model file: parameters, loss history, top features per component.
    Inspect(inspect::InspectArgs),
    /// Generate planted data as Parquet, fit it through the pipeline, report quality.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(a) => fit::run(*a),
        Command::Transform(a) => transform::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

/// The error and its causes on one line; the library's messages already include their
/// sources, so a cause is added only when the text so far does not contain it.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg.replace('\n', " ")
}

/// Reads a model file and tells its element type: `(bytes, is_f64)`.
fn read_model(path: &std::path::Path) -> anyhow::Result<(Vec<u8>, bool)> {
    let bytes = std::fs::read(path).map_err(|e| streamnmf::Error::Io(e).in_file(path))?;
    let f64 = streamnmf::persist::float_type(&bytes).map_err(|e| e.in_file(path))? == "f64";
    Ok((bytes, f64))
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
