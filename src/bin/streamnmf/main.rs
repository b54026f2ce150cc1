//! The `streamnmf` command line: `main → run → subcommand`.
//!
//! Error policy: every failure is one line on stderr, `error: …`, and exit code 1, panics
//! included (a panic is a bug; it is reported, not dumped as a backtrace). SIGINT and
//! SIGTERM stop a run cleanly (a checkpoint when checkpoints are on, no partial outputs)
//! with exit code 130 or 143; a second signal exits at once. A closed standard output
//! (`| head`) ends the program quietly.

/// A line on stderr for the user. `eprintln!` panics when stderr is closed (`2>&1 |
/// head`); a note to nobody is dropped instead.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod audio;
mod compose;
mod demo;
mod distributed;
mod evaluate;
mod fit;
mod fit_args;
mod input;
mod inspect;
mod output;
mod plot;
mod progress;
mod rank;
mod recommend;
mod resume;
mod settle;
mod transform;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};

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
    Fit(Box<fit_args::FitArgs>),
    /// Codes of new rows with a saved model fixed, written to Parquet.
    Transform(transform::TransformArgs),
    /// Top-N items per user from a model and the users' interactions, to a long table.
    Recommend(recommend::RecommendArgs),
    /// Rating (RMSE, MAE) and ranking (P@N, recall@N, NDCG@N, MAP@N) metrics of a model
    /// on held-out entries.
    Evaluate(evaluate::EvaluateArgs),
    /// A WAV file's spectrogram (frames × frequency bins in Hz) as a table.
    Stft(audio::StftArgs),
    /// Split a mixture (WAV or spectrogram) into its sources with a model whose atoms are
    /// labelled by source: Wiener-masked spectrograms and WAVs.
    Separate(audio::SeparateArgs),
    /// Draw a model's atoms (over Hz for spectrograms), its codes over time, or its loss
    /// history, as a PNG.
    Plot(plot::PlotArgs),
    /// Which rank the data supports: candidates fitted side by side with a share of the
    /// entries hidden, scored on them.
    Rank(rank::RankArgs),
    /// Stack several models' atoms into one model, labelled by source.
    Compose(compose::ComposeArgs),
    /// Show a model file: parameters, loss history, top features per component.
    Inspect(inspect::InspectArgs),
    /// Generate planted data as Parquet, fit it through the pipeline, report quality.
    Demo(demo::DemoArgs),
}

/// The signal that asked the run to stop (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The flag the pipelines watch: raised by the first SIGINT or SIGTERM.
pub fn stop_flag() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// The message of the last panic (the hook records it instead of printing it).
static PANIC: Mutex<Option<String>> = Mutex::new(None);

extern "C" {
    // OpenBLAS's own API (the system library that ndarray-linalg links).
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    // Stops and joins OpenBLAS's worker threads (its fork handler's routine).
    fn blas_thread_shutdown_() -> std::os::raw::c_int;
}

/// One thread per OpenBLAS call, unless `OPENBLAS_NUM_THREADS` says otherwise. streamnmf
/// runs its own threads and its LAPACK calls (the init's SVD, k × k solves) are small,
/// while OpenBLAS's workers, started when the library loads, spin on `sched_yield` for
/// about 0.1 s at start and after every call: on two cores that took a core from the
/// Parquet decoder for the first 100 ms of every fit. With one thread the workers have
/// nothing to do, so they are stopped. An application's choice, so the binary makes it,
/// not the library.
fn single_threaded_blas() {
    if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
        // SAFETY: a plain setter that takes any positive count, then the routine OpenBLAS
        // runs before a fork, which joins its idle workers; with one thread per call no
        // call hands them work again. Nothing else has called OpenBLAS yet.
        unsafe {
            openblas_set_num_threads(1);
            blas_thread_shutdown_();
        }
    }
}

/// A usage error in one line (exit code 2): clap's first line, with the arguments it
/// lists below it when that line only announces them (missing required arguments).
fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("invalid arguments");
    let line = line.strip_prefix("error: ").unwrap_or(line).trim_end();
    match (line.strip_suffix(':'), e.get(ContextKind::InvalidArg)) {
        (Some(head), Some(ContextValue::Strings(args))) if !args.is_empty() => {
            format!("{head}: {}", args.join(", "))
        }
        (Some(head), Some(ContextValue::String(arg))) => format!("{head}: {arg}"),
        _ => line.to_string(),
    }
}

/// The command line, with negative numbers taken as values (`--decay -1` is then refused
/// for its value, not as an unknown flag `-1`; no short flag is a digit).
fn parse_args() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command().mut_subcommands(|s| s.allow_negative_numbers(true));
    Cli::from_arg_matches(&command.try_get_matches()?)
}

fn main() -> ExitCode {
    single_threaded_blas();
    init_logging();
    install_panic_hook();
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {} (see --help)", usage_line(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = watch_signals() {
        let _ = writeln!(std::io::stderr(), "error: cannot watch signals: {e}");
        return ExitCode::FAILURE;
    }
    let result = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| {
        let msg = PANIC
            .lock()
            .map(|m| m.clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| "unknown panic".into());
        Err(anyhow::anyhow!(
            "internal error (a bug, please report it): {msg}"
        ))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let (line, code) = match e.downcast_ref::<streamnmf::Error>() {
                Some(streamnmf::Error::Interrupted { checkpoint }) => interrupted(checkpoint),
                _ => (one_line(&e), 1),
            };
            // One write: the ranks of a distributed fit share a terminal.
            let _ = std::io::stderr().write_all(format!("error: {line}\n").as_bytes());
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(a) => fit::run(*a),
        Command::Transform(a) => transform::run(a),
        Command::Recommend(a) => recommend::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Compose(a) => compose::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Rank(a) => rank::run(a),
        Command::Stft(a) => audio::stft(a),
        Command::Separate(a) => audio::separate(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

/// The first SIGINT or SIGTERM raises the stop flag (the run ends cleanly); a second one
/// exits at once.
fn watch_signals() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let stop = stop_flag();
    std::thread::Builder::new()
        .name("streamnmf-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                    let _ = writeln!(std::io::stderr(), "error: interrupted again: stopping now");
                    std::process::exit(128 + sig);
                }
                stop.store(true, Ordering::SeqCst);
            }
        })?;
    Ok(())
}

/// The line and exit code of a run stopped by a signal.
fn interrupted(checkpoint: &Option<std::path::PathBuf>) -> (String, u8) {
    let sig = SIGNAL.load(Ordering::SeqCst);
    let name = match sig {
        SIGTERM => "SIGTERM",
        _ => "SIGINT",
    };
    let rank = distributed::RANK.load(Ordering::SeqCst);
    let line = match checkpoint {
        None if rank > 0 => {
            format!("rank {rank}: interrupted by {name}; rank 0 writes the checkpoint")
        }
        Some(c) => {
            let dir = c
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            format!(
                "interrupted by {name}: checkpoint {} written; run the same command with \
                 --resume {dir} to continue",
                c.display()
            )
        }
        None => format!(
            "interrupted by {name}: nothing written (with --checkpoint-dir, a stopped run \
             can be resumed)"
        ),
    };
    let sig = if sig == 0 { SIGINT } else { sig };
    (line, (128 + sig) as u8)
}

/// Records panic messages instead of printing them (with `STREAMNMF_DEBUG` set, also
/// prints them with a backtrace). Decoder panics become errors naming the file; any other
/// panic becomes one `internal error` line in `main`.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut m) = PANIC.lock() {
            *m = Some(format!("{payload}{at}"));
        }
        if std::env::var_os("STREAMNMF_DEBUG").is_some() {
            let bt = std::backtrace::Backtrace::force_capture();
            let _ = writeln!(std::io::stderr(), "panic: {payload}{at}\n{bt}");
        }
    }));
}

/// Whether the error is standard output's reader going away (`| head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .or_else(|| match c.downcast_ref::<streamnmf::Error>() {
                Some(streamnmf::Error::Io(io)) => Some(io),
                _ => None,
            })
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes a line to standard output, flushed (so a full disk is an error here).
pub fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}")?;
    o.flush()?;
    Ok(())
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
/// Whether `path` starts like a model file (rather than a table).
fn is_model_file(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"SNMFMODL"
}

/// What the commands that only look at a model need from its file, whatever its
/// element type: H as f64, the parameters, the metadata, the loss history.
struct AnyModel {
    h: ndarray::Array2<f64>,
    params: streamnmf::ValidParams,
    meta: streamnmf::persist::Metadata,
    history: Vec<f64>,
    f64s: bool,
}

/// Reads a model file of either element type, once.
fn read_any_model(path: &std::path::Path) -> anyhow::Result<AnyModel> {
    fn parts<F: streamnmf::Float>(
        bytes: &[u8],
        path: &std::path::Path,
    ) -> anyhow::Result<AnyModel> {
        let at = |e: streamnmf::Error| e.in_file(path);
        let (m, meta) = streamnmf::persist::decode::<F>(bytes).map_err(at)?;
        Ok(AnyModel {
            h: m.components().map_err(at)?.mapv(|v| v.as_f64()),
            params: m.params().clone(),
            history: m.loss_history().to_vec(),
            meta,
            f64s: F::NAME == "f64",
        })
    }
    let (bytes, f64s) = read_model(path)?;
    if f64s {
        parts::<f64>(&bytes, path)
    } else {
        parts::<f32>(&bytes, path)
    }
}

fn read_model(path: &std::path::Path) -> anyhow::Result<(Vec<u8>, bool)> {
    let bytes = std::fs::read(path).map_err(|e| streamnmf::Error::Io(e).in_file(path))?;
    let f64 = streamnmf::persist::float_type(&bytes).map_err(|e| e.in_file(path))? == "f64";
    Ok((bytes, f64))
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or a pipe gets plain text.
    // A closed stderr drops log lines: by default the subscriber reports a failed write
    // with `eprintln!`, which panics there (in the middle of a fit).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
