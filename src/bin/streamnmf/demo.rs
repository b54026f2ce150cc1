//! `streamnmf demo`: writes a planted data set to Parquet in a temporary directory, fits it
//! through the full threaded pipeline, and reports recovery quality, error against the
//! truncated-SVD bound, throughput and peak memory.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use clap::Args;
use ndarray::Array2;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use streamnmf::io::{FileSource, InputOptions};
use streamnmf::pipeline;
use streamnmf::synth::{gram_error_bound, match_components, PlantedSpec};
use streamnmf::{MatRef, NmfParams, OnlineNmf};

use crate::fit::pipeline_options;
use crate::progress::{peak_rss_bytes, Progress};

/// Options of the demo (all have defaults).
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows of the planted data.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Columns of the planted data.
    #[arg(long, default_value_t = 200)]
    cols: usize,
    /// Rank of the planted factors (and of the fit).
    #[arg(long, default_value_t = 10)]
    rank: usize,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    /// Passes over the data, at most: the fit stops once a pass improves the loss of its
    /// convergence sample by less than 0.1 %.
    #[arg(long, default_value_t = 4, value_parser = crate::fit_args::passes)]
    epochs: usize,
    /// Threads solving each batch (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the data and the fit.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the Parquet file in this directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
}

const CHUNK: usize = 65_536;

/// Planted values the demo writes at most (8 GB of f32 before compression): its data
/// goes to a temporary file, and 10¹² rows would fill the disk first.
const MAX_VALUES: u128 = 2_000_000_000;

pub fn run(a: DemoArgs) -> Result<()> {
    let values = a.rows as u128 * a.cols as u128;
    if values > MAX_VALUES {
        anyhow::bail!(
            "--rows {} x --cols {} is {values} values, more than the demo writes ({MAX_VALUES}); \
             fit a file of your own instead (`examples/gen_planted` writes planted data of \
             any size)",
            a.rows,
            a.cols
        );
    }
    let stop = crate::stop_flag();
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let dir = a.keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let path = streamnmf::persist::replaceable(&dir.join("planted.parquet"))?;
    crate::out(format_args!(
        "planted data: {} x {}, rank {}, 30% dense factors, 1% noise -> {}",
        a.rows,
        a.cols,
        a.rank,
        path.display()
    ))?;

    // 1. Write the data chunk by chunk, accumulating XᵀX for the SVD bound on the way.
    let t = Instant::now();
    let spec = PlantedSpec::new(a.rows, a.cols, a.rank).seed(a.seed);
    let h_true = spec.dictionary();
    let names: Vec<String> = (0..a.cols).map(|j| format!("f{j}")).collect();
    let mut gram = Array2::<f64>::zeros((a.cols, a.cols));
    let mut total = 0.0;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(CHUNK))
        .build();
    // Written under a temporary name next to its place and renamed there once closed:
    // a stopped demo leaves no half-written file in a --keep directory.
    let partial = tempfile::Builder::new()
        .prefix(".planted")
        .suffix(".parquet")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .with_context(|| format!("a temporary file in {}", dir.display()))?;
    let mut writer: Option<ArrowWriter<File>> = None;
    for start in (0..a.rows).step_by(CHUNK) {
        // SIGINT / SIGTERM: stop writing (the temporary directory goes with the error).
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(streamnmf::Error::Interrupted { checkpoint: None }.into());
        }
        let n = CHUNK.min(a.rows - start);
        let (x, _) = spec.rows(h_true.view(), start, n);
        let x32 = x.mapv(|v| v as f32 as f64);
        ndarray::linalg::general_mat_mul(1.0, &x32.t(), &x32, 1.0, &mut gram);
        total += x32.iter().map(|v| v * v).sum::<f64>();
        let cols: Vec<(String, ArrayRef)> = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let c: Float32Array = x.column(j).iter().map(|&v| v as f32).collect();
                (name.clone(), Arc::new(c) as ArrayRef)
            })
            .collect();
        let rb = RecordBatch::try_from_iter(cols)?;
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(ArrowWriter::try_new(
                partial.reopen()?,
                rb.schema(),
                Some(props.clone()),
            )?),
        };
        w.write(&rb)?;
    }
    writer.context("no rows")?.close()?;
    partial
        .persist(&path)
        .with_context(|| format!("{}", path.display()))?;
    let bytes = std::fs::metadata(&path)?.len();
    crate::out(format_args!(
        "wrote {:.0} MB of Parquet in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ))?;
    let bound = gram_error_bound(gram.view(), total, a.rank)?;

    // 2. Fit through reader -> solvers -> updater.
    let params = NmfParams::new(a.rank)
        .batch_size(a.batch_size)
        .max_passes(a.epochs)
        .seed(a.seed)
        .check()?;
    let mut model = OnlineNmf::<f32>::new(params);
    let mut source =
        FileSource::<f32>::open(std::slice::from_ref(&path), InputOptions::new(a.batch_size))?;
    let popts = pipeline_options(a.threads, 1, None, 2, a.epochs);
    let mut progress = Progress::new(Some((a.rows * a.epochs) as u64), false);
    let report = pipeline::fit(&mut model, &mut source, &popts, |r| progress.batch(r))?;
    progress.finish();
    crate::out(format_args!(
        "fit: {} passes, {} batches, {} rows in {:.2} s: {:.0} rows/s through the pipeline",
        report.epochs,
        report.batches,
        report.rows,
        report.seconds,
        report.rows as f64 / report.seconds
    ))?;

    // 3. Judge it: streamed relative error, and per-atom cosine to the truth.
    let h = model.components()?.to_owned();
    let mut sq_err = 0.0;
    let mut src =
        FileSource::<f32>::open(std::slice::from_ref(&path), InputOptions::new(a.batch_size))?;
    pipeline::transform(&model, &mut src, &popts, |b, w| {
        sq_err += 2.0 * streamnmf::loss::divergence(MatRef::from(b), w.view(), h.view(), 2.0);
        Ok(())
    })?;
    let rel = (sq_err / total).sqrt();
    let cos = match_components(h_true.view(), h.mapv(|v| v as f64).view());
    crate::out(format_args!(
        "recovery: per-atom cosine to the true dictionary: min {:.5}, mean {:.5}",
        cos.iter().cloned().fold(1.0, f64::min),
        cos.iter().sum::<f64>() / cos.len() as f64
    ))?;
    crate::out(format_args!(
        "relative error {rel:.5} vs truncated-SVD bound {bound:.5}: ratio {:.4}",
        rel / bound
    ))?;
    if let Some(rss) = peak_rss_bytes() {
        crate::out(format_args!(
            "peak memory (RSS): {:.0} MB",
            rss as f64 / 1e6
        ))?;
    }
    Ok(())
}
