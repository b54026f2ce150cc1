//! `streamnmf recommend`: the top N items per user from a model and the users'
//! interactions (their codes folded in with H fixed), streamed to a long table.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use streamnmf::io::{ArrowFloat, RecommendationsWriter};
use streamnmf::recommend::top_n;
use streamnmf::{persist, CsrMatrix, MatRef, Unobserved};

use crate::fit::pipeline_options;
use crate::input::InputArgs;
use crate::output::{Finished, Plan};
use crate::progress::{peak_rss_bytes, Progress};

/// Options of `recommend`.
#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Recommendations to write (Parquet, or an Arrow IPC stream for `-` and `.arrows`):
    /// `user`, `rank`, `item`, `score`.
    #[arg(long)]
    pub out: PathBuf,
    /// Items per user.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub top: usize,
    /// Also recommend items the user already has (excluded by default).
    #[arg(long)]
    pub include_seen: bool,
    /// Threads (default: all cores). Never changes the output.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: RecommendArgs) -> Result<()> {
    let (bytes, f64) = crate::read_model(&a.model)?;
    if f64 {
        recommend::<f64>(a, &bytes)
    } else {
        recommend::<f32>(a, &bytes)
    }
}

/// The stored entries of a batch, as the items a user has seen: CSR as it is, dense rows'
/// non-zero (and non-NaN) entries.
fn seen<F: streamnmf::Float>(x: MatRef<F>) -> Option<CsrMatrix<F>> {
    match x {
        MatRef::Csr(_) => None,
        MatRef::Dense(d) => {
            let keep = d.mapv(|v| if v.is_nan() { F::zero() } else { v });
            Some(CsrMatrix::from_dense(keep.view()))
        }
    }
}

fn recommend<F: ArrowFloat>(a: RecommendArgs, bytes: &[u8]) -> Result<()> {
    if a.top == 0 {
        anyhow::bail!("--top must be at least 1");
    }
    let plan = Plan::new(&a.input.inputs, &[("--out", Some(&a.out))])?;
    let (model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    let h = model.components()?.to_owned();
    let batch = a.input.batch_size.unwrap_or(model.params().batch_size());
    let opts = a.input.options(batch, 0)?.no_shuffle();
    let missing = model.params().unobserved() == Unobserved::Missing;
    let opts = a
        .input
        .model_options(opts, &meta.feature_names, false, missing)?;
    let mut source = a.input.open::<F>(opts)?;
    let popts = pipeline_options(a.threads, 1, None, 2, 1);
    let threads = popts.batch_threads();
    let names: Vec<String> = if meta.feature_names.len() == h.ncols() {
        meta.feature_names.clone()
    } else {
        Vec::new()
    };
    let format = plan.format("--out")?;
    let mut sink = Some(plan.open("--out")?);
    let name = sink
        .as_ref()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let mut writer = None;
    let mut progress = Progress::new(None, a.quiet);
    let report = streamnmf::pipeline::transform(&model, source.as_mut(), &popts, |b, w| {
        progress.rows(w.nrows() as u64);
        let dense_seen = if a.include_seen { None } else { seen(b.view()) };
        let seen_view = match (&dense_seen, b.view(), a.include_seen) {
            (_, _, true) => None,
            (Some(c), _, _) => Some(c.view()),
            (None, MatRef::Csr(c), _) => Some(c),
            (None, MatRef::Dense(_), _) => None,
        };
        let recs = top_n(w.view(), h.view(), seen_view, a.top, threads);
        let wr = match writer.as_mut() {
            Some(wr) => wr,
            None => {
                let out = sink.take().expect("opened once");
                writer.insert(RecommendationsWriter::<F, _>::new(
                    out,
                    format,
                    b.ids(),
                    &names,
                )?)
            }
        };
        wr.write(&recs, b.ids())
    });
    progress.finish();
    let report = report.with_context(|| name.clone())?;
    let writer = match writer {
        Some(w) => w,
        None => {
            RecommendationsWriter::<F, _>::new(sink.take().expect("unused"), format, None, &names)?
        }
    };
    let (sink, rows) = writer.finish().with_context(|| name)?;
    let mut done = Finished::default();
    done.push(sink)?;
    done.commit()?;
    let ignored = report.ignored_entries + source.unknown_entries();
    if a.json {
        let s = json!({
            "users": report.rows,
            "recommendations": rows,
            "ignored_entries": ignored,
            "seconds": report.seconds,
            "users_per_second": report.rows as f64 / report.seconds.max(1e-9),
            "peak_rss_bytes": peak_rss_bytes(),
            "out": a.out,
        });
        crate::out(serde_json::to_string_pretty(&s)?)?;
    } else if !a.quiet {
        if ignored > 0 {
            note!("ignored {ignored} entries of items the model does not know");
        }
        note!(
            "wrote {rows} recommendations for {} users to {} in {:.2} s",
            report.rows,
            a.out.display(),
            report.seconds
        );
    }
    Ok(())
}
