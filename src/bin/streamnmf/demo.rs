//! `streamnmf demo`: a planted data set, fitted, with the yardsticks printed.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use streamnmf::synth::{match_components, svd_relative_error_bound, PlantedSpec};
use streamnmf::{NmfParams, OnlineNmf};

/// Options of the demo (all have defaults).
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows of the planted data.
    #[arg(long, default_value_t = 200_000)]
    rows: usize,
    /// Columns.
    #[arg(long, default_value_t = 500)]
    cols: usize,
    /// Rank of the planted factors (and of the fit).
    #[arg(long, default_value_t = 16)]
    rank: usize,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 2048)]
    batch_size: usize,
    /// Passes over the data.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of the data and the fit.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(a: DemoArgs) -> Result<()> {
    println!(
        "planted data: {} x {}, rank {}, 30% dense factors, 1% noise",
        a.rows, a.cols, a.rank
    );
    let t = Instant::now();
    let data = PlantedSpec::new(a.rows, a.cols, a.rank)
        .seed(a.seed)
        .generate();
    let x = data.x.mapv(|v| v as f32);
    println!("generated in {:.1} s", t.elapsed().as_secs_f64());

    let params = NmfParams::new(a.rank)
        .batch_size(a.batch_size)
        .max_passes(a.epochs)
        .seed(a.seed)
        .check()?;
    let mut model = OnlineNmf::<f32>::new(params);
    let t = Instant::now();
    let report = model.fit(&x)?;
    let secs = t.elapsed().as_secs_f64();
    let rows = report.passes as f64 * a.rows as f64;

    let h = model.components()?.mapv(|v| v as f64);
    let cos = match_components(data.h.view(), h.view());
    let rel = model.loss(&x)?.relative_error.unwrap_or(f64::NAN);
    let bound = svd_relative_error_bound(data.x.view(), a.rank)?;
    println!(
        "fit: {} passes, {} batches in {secs:.2} s ({:.0} rows/s)",
        report.passes,
        report.batches,
        rows / secs
    );
    println!(
        "recovery: per-atom cosine to the truth min {:.5}, mean {:.5}",
        cos.iter().cloned().fold(1.0, f64::min),
        cos.iter().sum::<f64>() / cos.len() as f64
    );
    println!(
        "relative error {rel:.5} vs truncated-SVD bound {bound:.5}: ratio {:.4}",
        rel / bound
    );
    Ok(())
}
