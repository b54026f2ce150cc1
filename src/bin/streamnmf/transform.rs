//! `streamnmf transform`: codes of new rows with a saved model's H fixed, streamed.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use streamnmf::io::{ArrowFloat, Layout};
use streamnmf::persist;

use crate::fit::pipeline_options;
use crate::input::{parse_layout, InputArgs};
use crate::output::{write_codes, Finished, Plan};
use crate::progress::{peak_rss_bytes, Progress};

/// Options of `transform`.
#[derive(Args, Debug)]
pub struct TransformArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Codes file to write (Parquet: `id` if the input has one, then c0..c{k-1}).
    #[arg(long)]
    pub out: PathBuf,
    /// Threads solving each batch (default: all cores). Never changes the codes.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: TransformArgs) -> Result<()> {
    let (bytes, f64) = crate::read_model(&a.model)?;
    if f64 {
        transform::<f64>(a, &bytes)
    } else {
        transform::<f32>(a, &bytes)
    }
}

fn transform<F: ArrowFloat>(a: TransformArgs, bytes: &[u8]) -> Result<()> {
    let plan = Plan::new(&a.input.inputs, &[("--out", Some(&a.out))])?;
    let (model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    let batch = a.input.batch_size.unwrap_or(model.params().batch_size());
    // Codes come out in input order.
    let mut opts = a.input.options(batch, 0)?.no_shuffle();
    // Dense inputs default to the columns the model was trained on, by name.
    let named = !meta.feature_names.is_empty()
        && !meta.feature_names[0].contains('[')
        && meta.feature_names[0].parse::<usize>().is_err();
    if opts.columns.is_none() && parse_layout(&a.input.layout)? == Layout::Dense && named {
        opts.columns = Some(meta.feature_names.clone());
    }
    if opts.width.is_none() {
        opts.width = Some(model.components()?.ncols());
    }
    let mut source = a.input.open::<F>(opts)?;
    let mut progress = Progress::new(None, a.quiet);
    let popts = pipeline_options(a.threads, 1, None, 2, 1);
    let codes = write_codes(&plan, "--out", &model, source.as_mut(), &popts, |n| {
        progress.rows(n)
    });
    progress.finish();
    let (sink, rows, report) = codes?;
    let mut done = Finished::default();
    done.push(sink)?;
    done.commit()?;
    if a.json {
        let s = json!({
            "rows": rows,
            "seconds": report.seconds,
            "rows_per_second": rows as f64 / report.seconds.max(1e-9),
            "peak_rss_bytes": peak_rss_bytes(),
            "codes": a.out,
        });
        crate::out(serde_json::to_string_pretty(&s)?)?;
    } else if !a.quiet {
        eprintln!("wrote codes of {rows} rows to {}", a.out.display());
    }
    Ok(())
}
