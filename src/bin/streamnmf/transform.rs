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
    /// Write the input rows with their missing entries filled by W·H instead of the codes
    /// (models fitted with --unobserved missing): same columns as the model's features,
    /// observed values kept as they are.
    #[arg(long)]
    pub impute: bool,
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

fn transform<F: ArrowFloat>(mut a: TransformArgs, bytes: &[u8]) -> Result<()> {
    let plan = Plan::new(&a.input.inputs, &[("--out", Some(&a.out))])?;
    let (model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    a.input.model_spectrogram = meta.spectrogram;
    // Codes do not depend on the batch size; on a live stream a small batch is a short
    // wait between a row arriving and its codes leaving.
    let batch = a.input.batch_size.unwrap_or(if a.input.is_stream() {
        64
    } else {
        model.params().batch_size()
    });
    // Codes come out in input order.
    let mut opts = a.input.options(batch, 0)?.no_shuffle();
    // Dense inputs default to the columns the model was trained on, by name.
    let named = !meta.feature_names.is_empty()
        && !meta.feature_names[0].contains('[')
        && meta.feature_names[0].parse::<usize>().is_err();
    let wav = a.input.inputs.iter().any(|p| crate::input::is_wav(p));
    if opts.columns.is_none() && parse_layout(&a.input.layout)? == Layout::Dense && named && !wav {
        opts.columns = Some(meta.feature_names.clone());
    }
    // Sparse input may be narrower or wider than the model (new items): columns beyond
    // the model's are ignored, and counted.
    let missing = model.params().unobserved() == streamnmf::Unobserved::Missing;
    let opts = a
        .input
        .model_options(opts, &meta.feature_names, false, missing)?;
    let mut source = a.input.open::<F>(opts)?;
    let mut progress = Progress::new(None, a.quiet);
    let popts = pipeline_options(a.threads, 1, None, 2, 1);
    let codes = if a.impute {
        if !missing {
            anyhow::bail!(
                "--impute needs a model fitted with --unobserved missing (this one reads \
                 unstored entries as {:?})",
                model.params().unobserved()
            );
        }
        let h = model.components()?.to_owned();
        let names: Vec<String> = if meta.feature_names.len() == h.ncols() {
            meta.feature_names.clone()
        } else {
            (0..h.ncols()).map(|j| format!("f{j}")).collect()
        };
        write_imputed(&plan, &model, &h, &names, source.as_mut(), &popts, |n| {
            progress.rows(n)
        })
    } else {
        write_codes(&plan, "--out", &model, source.as_mut(), &popts, |n| {
            progress.rows(n)
        })
    };
    progress.finish();
    let (sink, rows, report) = codes?;
    let mut done = Finished::default();
    done.push(sink)?;
    done.commit()?;
    let ignored = report.ignored_entries + source.unknown_entries();
    if ignored > 0 && !a.quiet {
        note!("ignored {ignored} entries of items the model does not know");
    }
    if a.json {
        let s = json!({
            "rows": rows,
            "ignored_entries": ignored,
            "seconds": report.seconds,
            "rows_per_second": rows as f64 / report.seconds.max(1e-9),
            "peak_rss_bytes": peak_rss_bytes(),
            "codes": a.out,
        });
        crate::out(serde_json::to_string_pretty(&s)?)?;
    } else if !a.quiet {
        let what = if a.impute { "imputed" } else { "codes of" };
        note!("wrote {what} {rows} rows to {}", a.out.display());
    }
    Ok(())
}

/// The rows of the input with their unobserved entries predicted: `W H`, with every
/// observed entry (what the model read) put back as it was.
fn write_imputed<F: ArrowFloat>(
    plan: &Plan,
    model: &streamnmf::OnlineNmf<F>,
    h: &ndarray::Array2<F>,
    names: &[String],
    source: &mut dyn streamnmf::source::BatchSource<F>,
    popts: &streamnmf::pipeline::PipelineOptions,
    mut on_rows: impl FnMut(u64),
) -> Result<(
    crate::output::Sink,
    u64,
    streamnmf::pipeline::PipelineReport,
)> {
    use anyhow::Context;
    use streamnmf::io::CodesWriter;
    use streamnmf::MatRef;
    let format = plan.format("--out")?;
    let mut sink = Some(plan.open("--out")?);
    let name = sink
        .as_ref()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let mut writer = None;
    let input = source.name();
    let report = streamnmf::pipeline::transform(model, source, popts, |b, w| {
        on_rows(w.nrows() as u64);
        let mut x = w.dot(h);
        match b.view() {
            MatRef::Csr(c) => {
                for i in 0..c.nrows() {
                    let (cols, vals) = c.row(i);
                    for (&j, &v) in cols.iter().zip(vals) {
                        x[[i, j as usize]] = v;
                    }
                }
            }
            MatRef::Dense(d) => ndarray::Zip::from(&mut x).and(d).for_each(|o, &v| {
                if !v.is_nan() {
                    *o = v;
                }
            }),
        }
        let wr = match writer.as_mut() {
            Some(wr) => wr,
            None => {
                let out = sink.take().expect("opened once");
                let w = CodesWriter::<F, _>::named(out, format, names, b.ids());
                writer.insert(w.map_err(|e| e.in_file(&name))?)
            }
        };
        wr.write(x.view(), b.ids()).map_err(|e| e.in_file(&name))
    })
    .map_err(|e| crate::output::of_input(e, input.as_deref()))?;
    let writer = match writer {
        Some(w) => w,
        None => CodesWriter::<F, _>::named(sink.take().expect("unused"), format, names, None)?,
    };
    let (sink, rows) = writer.finish().with_context(|| name)?;
    Ok((sink, rows, report))
}
