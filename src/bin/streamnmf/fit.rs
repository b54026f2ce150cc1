//! `streamnmf fit`: learn a model from files or a stream through the threaded pipeline.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use streamnmf::checkpoint::{self, Metadata};
use streamnmf::io::CodesWriter;
use streamnmf::pipeline::{self, PipelineOptions};
use streamnmf::{Float, Init, Loss, NmfParams, OnlineNmf};

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
    /// Rank k: number of components.
    #[arg(long, short = 'k')]
    pub rank: usize,
    /// Loss: fro, kl, is or beta=X.
    #[arg(long, default_value = "fro")]
    pub loss: Loss,
    /// Passes over the input (default 10 for files, 1 for a stream).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Forget factor in (0, 1]: statistics decay by this per batch (1 = exact sums).
    #[arg(long, default_value_t = 1.0)]
    pub forget: f64,
    /// Initialization of H from the first batch.
    #[arg(long, value_enum, default_value = "nndsvda")]
    pub init: InitArg,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Solver threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Staleness s: batch t is solved against dictionary version t - s (default: threads).
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
        InitArg::Random => Init::Random,
        InitArg::Nndsvd => Init::Nndsvd,
        InitArg::Nndsvda => Init::Nndsvda,
        InitArg::Nndsvdar => Init::Nndsvdar,
    }
}

pub fn pipeline_options(
    threads: usize,
    staleness: Option<usize>,
    queue: usize,
    epochs: usize,
) -> PipelineOptions {
    PipelineOptions {
        solver_threads: threads,
        staleness: staleness.unwrap_or(threads),
        queue_depth: queue,
        epochs,
        panic_in_solver_at: None,
    }
}

fn fit<F: Float>(a: FitArgs) -> Result<()> {
    let stream = a.input.inputs.iter().any(|p| p.as_os_str() == "-");
    if stream && a.codes_out.is_some() {
        bail!("--codes-out needs file input: a stream cannot be read twice (use `streamnmf transform`)");
    }
    let epochs = a.epochs.unwrap_or(if stream { 1 } else { 10 });
    let params = NmfParams::new(a.rank)
        .loss(a.loss)
        .batch_size(a.input.batch_size)
        .max_passes(epochs)
        .forget(a.forget)
        .init(init(a.init))
        .seed(a.seed)
        .alpha_w(a.alpha_w)
        .alpha_h(a.alpha_h)
        .l1_ratio(a.l1_ratio)
        .check()?;
    let mut source = a.input.open::<F>(a.input.options(a.loss.beta())?)?;
    if a.rank > source.width() {
        bail!(
            "rank k = {} exceeds the number of columns p = {}",
            a.rank,
            source.width()
        );
    }
    let names = source.feature_names();
    let mut model = OnlineNmf::<F>::new(params);
    let popts = pipeline_options(a.threads, a.staleness, a.queue_depth, epochs);
    let mut progress = Progress::new(None, a.quiet);
    let report = pipeline::fit(&mut model, source.as_mut(), &popts, |r| progress.batch(r))?;
    progress.finish();

    let meta = Metadata {
        feature_names: names.clone(),
        writer: format!("streamnmf {}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    checkpoint::save(&a.out, &model, &meta)?;
    if let Some(path) = &a.components_out {
        streamnmf::io::write_components(path, model.components()?, &names)?;
    }
    let mut codes_rows = None;
    if let Some(path) = &a.codes_out {
        let mut src = a.input.open::<F>(a.input.options(a.loss.beta())?)?;
        let mut writer: Option<CodesWriter<F>> = None;
        pipeline::transform(&model, src.as_mut(), &popts, |b, w| {
            let wr = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(CodesWriter::create(path, a.rank, b.ids.as_ref())?),
            };
            wr.write(w.view(), b.ids.as_ref())
        })?;
        codes_rows = match writer {
            Some(w) => Some(w.finish()?),
            None => Some(CodesWriter::<F>::create(path, a.rank, None)?.finish()?),
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
            a.rank,
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
