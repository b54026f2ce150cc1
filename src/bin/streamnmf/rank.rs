//! `streamnmf rank`: which rank the data supports, by the error on hidden entries of
//! candidate models fitted side by side over the same input.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use streamnmf::io::ArrowFloat;
use streamnmf::rank::{select_rank, RankOptions, RankReport};
use streamnmf::{Loss, NmfParams, Unobserved};

use crate::fit_args::UnobservedArg;
use crate::input::InputArgs;

/// Options of `rank`.
#[derive(Args, Debug)]
pub struct RankArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Candidate ranks, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub ranks: Vec<usize>,
    /// Share of the entries hidden from the fits and scored.
    #[arg(long, default_value_t = 0.1)]
    pub holdout: f64,
    /// Passes over the input (default 10 for files, 1 for a stream). Too few leave the
    /// true rank short of converged and favour larger ones.
    #[arg(long, value_parser = crate::fit_args::passes)]
    pub epochs: Option<usize>,
    /// What an unstored entry of a sparse layout is: `zero` (every cell is a value, hidden
    /// and scored like the others) or `missing` (ratings: only stored entries are hidden
    /// and scored) [default: zero, as for fit].
    #[arg(long, value_enum)]
    pub unobserved: Option<UnobservedArg>,
    /// Loss: fro or kl [default: fro].
    #[arg(long)]
    pub loss: Option<Loss>,
    /// Seed of the hidden entries and of the fits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads in all (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw held-out and visible-entry loss against rank as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Element type.
    #[arg(long)]
    pub f64: bool,
}

pub fn run(a: RankArgs) -> Result<()> {
    if a.f64 {
        rank::<f64>(a)
    } else {
        rank::<f32>(a)
    }
}

fn rank<F: ArrowFloat>(a: RankArgs) -> Result<()> {
    if a.ranks.contains(&0) {
        bail!("--ranks: a rank must be at least 1");
    }
    let epochs = a.epochs.unwrap_or(if a.input.is_stream() { 1 } else { 10 });
    let batch = a.input.batch_size.unwrap_or(1024);
    let mut template = NmfParams::new(1).seed(a.seed).batch_size(batch);
    if let Some(l) = a.loss {
        template = template.loss(l);
    }
    match a.unobserved {
        None | Some(UnobservedArg::Zero) => {}
        Some(UnobservedArg::Missing) => template = template.unobserved(Unobserved::Missing),
        Some(UnobservedArg::Implicit) => bail!(
            "--unobserved implicit: rank scores hidden values, so unstored entries are zeros or missing"
        ),
    }
    let opts = a.input.options(batch, a.seed)?;
    let opts = a.input.model_options(opts, &[], true, false)?;
    if let Some(p) = &a.plot {
        // Before the fits: a destination that cannot take the PNG fails now.
        streamnmf::persist::replaceable(p)?;
    }
    let mut source = a.input.open::<F>(opts)?;
    // A sparse source of item ids starts with no columns and grows as ids arrive: its
    // width is checked by the fits, once known.
    let width = source.width();
    let known = !source.sparse() || width > 0;
    if let Some(&k) = a.ranks.iter().find(|&&k| known && k > width) {
        bail!("rank {k} exceeds the number of columns p = {width}");
    }
    let ropts = RankOptions {
        ranks: a.ranks.clone(),
        holdout: a.holdout,
        epochs,
        seed: a.seed,
        threads: a.threads.unwrap_or_else(crate::fit::cores),
        stop: Some(crate::stop_flag()),
    };
    let report = select_rank(source.as_mut(), template, &ropts)?;
    if let Some(p) = &a.plot {
        crate::plot::ranks(p, &report)?;
    }
    if a.json {
        crate::out(serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
    }
    Ok(())
}

fn print_table(r: &RankReport) -> Result<()> {
    crate::out(format_args!(
        "{:>6} {:>14} {:>10} {:>12} {:>14} {:>10}",
        "rank", "held-out loss", "± se", "held-out RMSE", "visible loss", "entries"
    ))?;
    for row in &r.rows {
        crate::out(format_args!(
            "{:>6} {:>14.6e} {:>10.2e} {:>12.6} {:>14.6e} {:>10}{}",
            row.rank,
            row.heldout_loss,
            row.heldout_se,
            row.heldout_rmse,
            row.train_loss,
            row.heldout_entries,
            if row.rank == r.picked {
                "  <- picked"
            } else {
                ""
            }
        ))?;
    }
    crate::out(format_args!("picked rank {}: {}", r.picked, r.reason))?;
    Ok(())
}
