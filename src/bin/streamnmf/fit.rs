//! `streamnmf fit`: learn a model from files or a stream through the threaded pipeline.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use streamnmf::io::{ArrowFloat, CodesWriter};
use streamnmf::persist::{self, CheckpointDir, Metadata};
use streamnmf::pipeline::{self, Checkpointing, PipelineOptions};
use streamnmf::{Init, Loss, NmfParams, OnlineNmf, ValidParams};

use crate::input::InputArgs;
use crate::progress::{peak_rss_bytes, Progress};

/// Element type of the model.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FloatType {
    /// Single precision (half the memory, faster).
    F32,
    /// Double precision.
    F64,
}

/// Initialization, as spelled on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InitArg {
    /// NNDSVD for HALS (Frobenius), NNDSVDa for multiplicative updates.
    Auto,
    Random,
    Nndsvd,
    Nndsvda,
    Nndsvdar,
}

/// Options of `fit`.
#[derive(Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rank k: number of components (taken from the model with --model).
    #[arg(long, short = 'k', required_unless_present_any = ["model", "resume"])]
    pub rank: Option<usize>,
    /// Loss: fro, kl, is or beta=X.
    #[arg(long, default_value = "fro")]
    pub loss: Loss,
    /// Passes over the input (default 10 for files, 1 for a stream).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Forget factor in (0, 1]: statistics decay by this per batch (1 = exact sums).
    #[arg(long, default_value_t = 1.0)]
    pub forget: f64,
    /// Down-weight past batches: after t rows, the batch ending at row s weighs
    /// (s/t)^DECAY (default 8 for fro, 32 for other losses; 0 weighs all alike).
    #[arg(long)]
    pub decay: Option<f64>,
    /// Initialization of H from the first batch.
    #[arg(long, value_enum, default_value = "auto")]
    pub init: InitArg,
    /// Inner iterations of the code solver per batch, at most (default 200). Lower values
    /// trade code accuracy for speed, e.g. when k exceeds the data's rank.
    #[arg(long)]
    pub code_max_iter: Option<usize>,
    /// Relative change of the codes at which the code solver stops (default 1e-4).
    #[arg(long)]
    pub code_tol: Option<f64>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads solving each batch, on fixed row chunks (default: all cores, shared by the
    /// solvers). Never changes the result.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Batches solved at once. Above 1, batch t is solved against an older dictionary
    /// (see --staleness), which changes the result.
    #[arg(long, default_value_t = 1)]
    pub solvers: usize,
    /// Staleness s: batch t is solved against dictionary version t - s (default: solvers).
    #[arg(long)]
    pub staleness: Option<usize>,
    /// Batches buffered between threads (per queue).
    #[arg(long, default_value_t = 2)]
    pub queue_depth: usize,
    /// Regularization of W (scikit-learn's convention).
    #[arg(long, default_value_t = 0.0)]
    pub alpha_w: f64,
    /// Regularization of H.
    #[arg(long, default_value_t = 0.0)]
    pub alpha_h: f64,
    /// Share of L1 in the regularization.
    #[arg(long, default_value_t = 0.0)]
    pub l1_ratio: f64,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub float: FloatType,
    /// Model file to write.
    #[arg(long, default_value = "model.snmf")]
    pub out: PathBuf,
    /// Also write H as Parquet (one row per component, one column per feature).
    #[arg(long)]
    pub components_out: Option<PathBuf>,
    /// Also write the codes W of every input row as Parquet (one more pass; files only).
    #[arg(long)]
    pub codes_out: Option<PathBuf>,
    /// Keep learning from a saved model (its parameters, statistics and forget factor).
    #[arg(long, conflicts_with = "resume")]
    pub model: Option<PathBuf>,
    /// Write checkpoints into this directory.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint every N batches.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoint every T seconds.
    #[arg(long)]
    pub checkpoint_seconds: Option<f64>,
    /// Checkpoints kept (the newest).
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Continue a run from the newest valid checkpoint in this directory (same input and
    /// settings); checkpoints continue there unless --checkpoint-dir says otherwise.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: FitArgs) -> Result<()> {
    match a.float {
        FloatType::F32 => fit::<f32>(a),
        FloatType::F64 => fit::<f64>(a),
    }
}

fn init(i: InitArg) -> Init {
    match i {
        InitArg::Auto => Init::Auto,
        InitArg::Random => Init::Random,
        InitArg::Nndsvd => Init::Nndsvd,
        InitArg::Nndsvda => Init::Nndsvda,
        InitArg::Nndsvdar => Init::Nndsvdar,
    }
}

/// The cores of this machine (1 when unknown): the default `--threads`.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn pipeline_options(
    threads: Option<usize>,
    solvers: usize,
    staleness: Option<usize>,
    queue: usize,
    epochs: usize,
) -> PipelineOptions {
    PipelineOptions::new()
        .with_solvers(solvers)
        // By default the solvers share the cores.
        .with_batch_threads(threads.unwrap_or_else(|| (cores() / solvers.max(1)).max(1)))
        .with_staleness(staleness.unwrap_or(solvers))
        .with_queue_depth(queue)
        .with_epochs(epochs)
}

/// What a run is, for telling whether a checkpoint belongs to it: the inputs (paths and
/// sizes), reading settings, parameters and staleness. Thread counts may differ.
fn fingerprint(
    a: &FitArgs,
    params: &serde_json::Value,
    staleness: usize,
    float: &str,
) -> serde_json::Value {
    let inputs: Vec<serde_json::Value> = a
        .input
        .inputs
        .iter()
        .map(|p| json!([p, std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)]))
        .collect();
    json!({
        "inputs": inputs,
        "layout": a.input.layout,
        "columns": a.input.columns,
        "id_column": a.input.id_column,
        "width": a.input.width,
        "batch_size": a.input.batch_size,
        "shuffle_rows": a.input.shuffle_rows,
        "params": params,
        "staleness": staleness,
        "float": float,
    })
}

/// The first setting that differs between two fingerprints, as `key: a vs b`.
fn first_difference(
    old: &serde_json::Value,
    new: &serde_json::Value,
    path: &str,
) -> Option<String> {
    match (old, new) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let (x, y) = (
                    a.get(k).unwrap_or(&serde_json::Value::Null),
                    b.get(k).unwrap_or(&serde_json::Value::Null),
                );
                first_difference(
                    x,
                    y,
                    &if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    },
                )
            })
        }
        (a, b) if a != b => Some(format!("{path}: checkpoint has {a}, this run has {b}")),
        _ => None,
    }
}

/// The parameters this command line asks for.
fn asked_params(a: &FitArgs, epochs: usize) -> Result<ValidParams> {
    let mut params = NmfParams::new(a.rank.unwrap_or(0));
    if let Some(d) = a.decay {
        params = params.decay(d);
    }
    if let Some(it) = a.code_max_iter {
        params = params.code_max_iter(it);
    }
    if let Some(tol) = a.code_tol {
        params = params.code_tol(tol);
    }
    Ok(params
        .loss(a.loss)
        .batch_size(a.input.batch_size)
        .max_passes(epochs)
        .forget(a.forget)
        .init(init(a.init))
        .seed(a.seed)
        .alpha_w(a.alpha_w)
        .alpha_h(a.alpha_h)
        .l1_ratio(a.l1_ratio)
        .check()?)
}

fn fit<F: ArrowFloat>(a: FitArgs) -> Result<()> {
    let stream = a.input.inputs.iter().any(|p| p.as_os_str() == "-");
    if stream && a.codes_out.is_some() {
        bail!("--codes-out needs file input: a stream cannot be read twice (use `streamnmf transform`)");
    }
    let epochs = a.epochs.unwrap_or(if stream { 1 } else { 10 });
    let (mut model, resume_from) = match (&a.model, &a.resume) {
        (Some(path), _) => {
            let (m, _) = persist::load::<F>(path)?;
            if a.rank.is_some_and(|k| k != m.params().rank()) {
                bail!(
                    "--rank {} differs from the model's rank {}",
                    a.rank.unwrap_or(0),
                    m.params().rank()
                );
            }
            (m, None)
        }
        (None, Some(dir)) => {
            let (m, meta, run) = CheckpointDir::new(dir, a.keep_checkpoints)?.latest::<F>()?;
            (m, Some((meta, run)))
        }
        (None, None) => (OnlineNmf::<F>::new(asked_params(&a, epochs)?), None),
    };
    let rank = model.params().rank();
    let mut source = a.input.open::<F>(a.input.options(a.seed)?)?;
    if rank > source.width() {
        bail!(
            "rank k = {rank} exceeds the number of columns p = {}",
            source.width()
        );
    }
    let names = source.feature_names();
    let popts = pipeline_options(a.threads, a.solvers, a.staleness, a.queue_depth, epochs);

    // What this run is; a resumed run must be the same run.
    let this_run = if resume_from.is_some() {
        // Compare with the parameters this command line asks for.
        let mut p = serde_json::to_value(asked_params(&a, epochs)?)?;
        p["max_passes"] = json!(null);
        fingerprint(&a, &p, popts.staleness(), F::NAME)
    } else {
        let mut p = serde_json::to_value(model.params())?;
        p["max_passes"] = json!(null);
        fingerprint(&a, &p, popts.staleness(), F::NAME)
    };
    let resume = match resume_from {
        Some((meta, run)) => {
            let old: serde_json::Value = meta
                .fingerprint
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?
                .unwrap_or(serde_json::Value::Null);
            if let Some(diff) = first_difference(&old, &this_run, "") {
                bail!(
                    "cannot resume from {}: a different run ({diff})",
                    a.resume
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
            if !a.quiet {
                eprintln!(
                    "resuming at epoch {}, batch {} of that epoch ({} batches done)",
                    run.position().epoch,
                    run.position().batches_in_epoch,
                    run.next_seq()
                );
            }
            Some(run)
        }
        None => None,
    };
    let checkpoint_dir = a.checkpoint_dir.clone().or_else(|| a.resume.clone());
    let checkpointing = match &checkpoint_dir {
        Some(dir) => {
            let meta = Metadata {
                fingerprint: Some(this_run.to_string()),
                ..Metadata::default().with_feature_names(names.clone())
            };
            let mut c = Checkpointing::new(CheckpointDir::new(dir, a.keep_checkpoints)?, meta);
            if let Some(n) = a.checkpoint_every {
                c = c.every_batches(n);
            }
            if let Some(s) = a.checkpoint_seconds {
                c = c.every(std::time::Duration::from_secs_f64(s));
            }
            Some(c)
        }
        None => None,
    };
    let mut progress = Progress::new(None, a.quiet);
    let report = pipeline::fit_with(
        &mut model,
        source.as_mut(),
        &popts,
        resume,
        checkpointing.as_ref(),
        |r| progress.batch(r),
    )?;
    progress.finish();

    let meta = Metadata::default().with_feature_names(names.clone());
    persist::save(&a.out, &model, &meta)?;
    if let Some(path) = &a.components_out {
        streamnmf::io::write_components(path, model.components()?, &names)?;
    }
    let mut codes_rows = None;
    if let Some(path) = &a.codes_out {
        let mut opts = a.input.options(a.seed)?;
        opts.shuffle = None; // codes in input order
        let mut src = a.input.open::<F>(opts)?;
        let mut writer: Option<CodesWriter<F>> = None;
        pipeline::transform(&model, src.as_mut(), &popts, |b, w| {
            let wr = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(CodesWriter::create(path, rank, b.ids())?),
            };
            wr.write(w.view(), b.ids())
        })?;
        codes_rows = match writer {
            Some(w) => Some(w.finish()?),
            None => Some(CodesWriter::<F>::create(path, rank, None)?.finish()?),
        };
    }

    let loss_per_row = model.loss_history().last().copied();
    let rps = report.rows as f64 / report.seconds.max(1e-9);
    if a.json {
        let summary = json!({
            "rows": report.rows,
            "passes": report.epochs,
            "batches": report.batches,
            "loss_per_row": loss_per_row,
            "loss_history": model.loss_history(),
            "seconds": report.seconds,
            "rows_per_second": rps,
            "peak_rss_bytes": peak_rss_bytes(),
            "model": a.out,
            "codes_rows": codes_rows,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).context("summary")?
        );
    } else if !a.quiet {
        eprintln!(
            "fitted rank {} on {} rows ({} passes, {} batches) in {:.2} s, {:.0} rows/s; loss/row {:.5e}; model written to {}",
            rank,
            report.rows,
            report.epochs,
            report.batches,
            report.seconds,
            rps,
            loss_per_row.unwrap_or(f64::NAN),
            a.out.display()
        );
    }
    Ok(())
}
