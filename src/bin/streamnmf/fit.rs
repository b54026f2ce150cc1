//! `streamnmf fit`: learn a model from files or a stream through the threaded pipeline.
//!
//! Order of work, so a mistake costs nothing: plan the outputs (none may be an input or
//! another output), take the checkpoint directories' locks, settle the parameters (a
//! saved model's or a checkpoint's, with any flag that contradicts them refused), open
//! the input, and only then read and learn. Outputs are written to temporary files and
//! moved into place together at the end.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use streamnmf::io::{write_components, ArrowFloat, CodesWriter, ComponentsLayout};
use streamnmf::persist::{self, CheckpointDir, Metadata, RunState};
use streamnmf::pipeline::{self, PipelineOptions};
use streamnmf::{OnlineNmf, Unobserved};

use crate::distributed::Ranks;
use crate::fit_args::{ComponentsFormat, FitArgs, FloatType};
use crate::output::{write_codes, Finished, Plan, Sink};
use crate::progress::{peak_rss_bytes, Progress};
use crate::resume::{
    checkpoint_dir, checkpoint_float, checkpointing, fingerprint, first_difference,
    inherit_run_length,
};
use crate::settle::{settle_params, Given};

pub fn run(a: FitArgs) -> Result<()> {
    let ranks = Ranks::new(a.distributed)?;
    let started = std::cell::Cell::new(false);
    let result = run_on(a, &ranks, &started);
    if let Err(e) = &result {
        if !started.get() {
            ranks.fail_alone(e);
        }
    }
    result
}

/// [`run`] on `ranks`; `started` is set once the ranks talk to each other (from then on
/// every error reaches every rank).
fn run_on(a: FitArgs, ranks: &Ranks, started: &std::cell::Cell<bool>) -> Result<()> {
    let float = match (&a.model, &a.resume) {
        (Some(m), _) => Some(crate::read_model(m)?.1),
        (None, Some(dir)) => checkpoint_float(dir)?,
        (None, None) => None,
    };
    let f64s = match (float, a.float) {
        (Some(saved), Some(asked)) if saved != (asked == FloatType::F64) => bail!(
            "--float {} differs from the {} the saved model holds",
            if saved { "f32" } else { "f64" },
            if saved { "f64" } else { "f32" }
        ),
        (Some(saved), _) => saved,
        (None, asked) => asked == Some(FloatType::F64),
    };
    if f64s {
        fit::<f64>(a, ranks, started)
    } else {
        fit::<f32>(a, ranks, started)
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
        .with_stop(crate::stop_flag())
}

/// Where a run starts: a new model, a saved model to keep learning from, or a
/// checkpoint's model and run state (whose directory this run then holds).
struct Start<F> {
    model: OnlineNmf<F>,
    /// The saved model's or checkpoint's feature names (its item catalogue).
    names: Vec<String>,
    /// The source label of each atom, or none.
    labels: Vec<String>,
    /// The feature names of `--components`' atoms.
    given_names: Vec<String>,
    /// The spectrogram settings the model was fitted with.
    spectrogram: Option<persist::Spectrogram>,
    resume: Option<(Metadata, RunState<F>)>,
    resume_dir: Option<CheckpointDir>,
}

fn start<F: ArrowFloat>(a: &FitArgs, hold: bool) -> Result<Start<F>> {
    Ok(match (&a.model, &a.resume) {
        (Some(path), _) => {
            let (model, meta) = persist::load::<F>(path)?;
            Start {
                model,
                names: meta.feature_names,
                labels: meta.atom_labels,
                given_names: Vec::new(),
                spectrogram: meta.spectrogram,
                resume: None,
                resume_dir: None,
            }
        }
        (None, Some(dir)) => {
            // The other ranks of a distributed fit read what rank 0 holds.
            let (ck, (m, meta, run)) = if hold {
                let ck = CheckpointDir::open(dir, a.keep_checkpoints)?;
                let latest = ck.latest::<F>()?;
                (Some(ck), latest)
            } else {
                (None, CheckpointDir::peek::<F>(dir)?)
            };
            Start {
                model: m,
                names: meta.feature_names.clone(),
                labels: meta.atom_labels.clone(),
                given_names: Vec::new(),
                spectrogram: meta.spectrogram,
                resume: Some((meta, run)),
                resume_dir: ck,
            }
        }
        (None, None) => {
            let given = a.components.as_deref().map(Given::read).transpose()?;
            let k = a.rank.or(given.as_ref().map(|g| g.h.nrows())).unwrap_or(0);
            let learned = || a.label.clone().unwrap_or_else(|| "learned".into());
            let labels = match &given {
                Some(g) => {
                    let mut l = g.labels.clone();
                    l.resize(k.max(l.len()), learned());
                    l
                }
                None if a.label.is_some() => vec![learned(); k],
                None => Vec::new(),
            };
            let params = settle_params(a, None, 1, given.as_ref(), &labels)?;
            Start {
                model: OnlineNmf::new(params),
                names: Vec::new(),
                spectrogram: given.as_ref().and_then(|g| g.spectrogram),
                given_names: given.map(|g| g.names).unwrap_or_default(),
                labels,
                resume: None,
                resume_dir: None,
            }
        }
    })
}

fn fit<F: ArrowFloat>(
    mut a: FitArgs,
    ranks: &Ranks,
    started: &std::cell::Cell<bool>,
) -> Result<()> {
    let stream = a.input.is_stream();
    let rank0 = ranks.rank() == 0;
    if ranks.distributed() {
        if stream {
            bail!("--distributed reads files (each rank its share), not a stream");
        }
        if a.codes_out.is_some() {
            bail!(
                "--codes-out is not written by a distributed fit: write the codes with \
                 `streamnmf transform` and the fitted model"
            );
        }
        if a.staleness.is_some_and(|s| s > 0) || a.solvers != 1 {
            bail!("--solvers and --staleness do not apply to a distributed fit (every round is solved against the current H)");
        }
    }
    let plan = Plan::new(
        &a.input.inputs,
        &[
            ("--out", Some(&a.out)),
            ("--components-out", a.components_out.as_deref()),
            ("--codes-out", a.codes_out.as_deref()),
        ],
    )?;
    let Start {
        mut model,
        names: model_names,
        labels,
        given_names,
        spectrogram,
        resume,
        resume_dir,
    } = start::<F>(&a, rank0)?;
    a.input.model_spectrogram = spectrogram;
    if let Some((meta, _)) = &resume {
        inherit_run_length(&mut a, meta.fingerprint.as_deref());
    }
    // Files: passes until converged. A distributed fit runs every pass it is given (its
    // ranks would have to agree on a sample's loss), so it gets fewer.
    let epochs = a.epochs.unwrap_or(if stream {
        1
    } else if ranks.distributed() {
        10
    } else {
        streamnmf::NmfParams::DEFAULT_MAX_PASSES
    });
    let spectrogram = a.input.spectrogram(spectrogram.as_ref())?.or(spectrogram);
    // Hold the checkpoint directory before reading anything.
    let checkpoint_dir = if rank0 {
        checkpoint_dir(&a, resume_dir)?
    } else {
        None
    };
    let params =
        settle_params(&a, Some(model.params()), epochs, None, &labels).with_context(|| {
            match (&a.resume, &a.model) {
                (Some(dir), _) => format!("cannot resume from {}", dir.display()),
                (_, Some(m)) => format!("cannot keep learning with {}", m.display()),
                _ => "parameters".into(),
            }
        })?;
    if a.model.is_some() {
        // Keep learning with the settings this run may change (batch size, passes,
        // solver limits); the model's own settings were checked to be the same.
        model.set_params(params.clone())?;
    }
    let rank = params.rank();
    let missing = params.unobserved() == Unobserved::Missing;
    // Under a loss undefined at zero, a triplet's stored zero is named at its own line.
    let zero_beta = (params.loss().beta() <= 0.0
        && params.unobserved() == Unobserved::Zero
        && params.epsilon() <= 0.0)
        .then(|| params.loss().beta());
    let opts = a.input.options(params.batch_size(), params.seed())?;
    let opts = a
        .input
        .model_options(opts, &model_names, true, missing)?
        .zeros_refused(zero_beta);
    let mut source = a.input.open::<F>(opts)?;
    // A sparse source's width grows as it is read; a dense one is known now.
    if !source.sparse() && rank > source.width() {
        bail!(
            "rank k = {rank} exceeds the number of columns p = {}",
            source.width()
        );
    }
    let names = source.feature_names();
    // A spectrogram table written by `stft` says how it was made.
    let spectrogram = spectrogram.or_else(|| {
        source
            .metadata()
            .get(crate::audio::SPECTROGRAM_KEY)
            .and_then(|s| serde_json::from_str(s).ok())
    });
    if !given_names.is_empty() && !source.sparse() && given_names != names {
        let at = (0..given_names.len().max(names.len()))
            .find(|&i| given_names.get(i) != names.get(i))
            .unwrap_or(0);
        bail!(
            "--components {} has {} features and the input {}; they differ first at feature {at} ({:?} vs {:?})",
            a.components.as_deref().unwrap_or(Path::new("")).display(),
            given_names.len(),
            names.len(),
            given_names.get(at),
            names.get(at)
        );
    }
    // The run a checkpoint belongs to (Null for files of versions that wrote none).
    let old: Value = match &resume {
        Some((meta, _)) => meta
            .fingerprint
            .as_deref()
            .map(serde_json::from_str)
            .transpose()?
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    // A resumed run keeps the checkpoint's staleness unless told otherwise (the model's
    // bits depend on it), as it keeps its passes and tolerance.
    let staleness = a
        .staleness
        .or_else(|| old["staleness"].as_u64().map(|s| s as usize));
    let popts = pipeline_options(a.threads, a.solvers, staleness, a.queue_depth, epochs);

    // What this run is; a resumed run must be the same run.
    let mut this_run = fingerprint(&a, &params, popts.staleness(), F::NAME);
    if ranks.distributed() {
        // A distributed fit's checkpoint resumes with as many ranks (MPI or threads).
        this_run["staleness"] = json!(0);
        this_run["ranks"] = json!(ranks.size());
    }
    let resume = match resume {
        Some((_, run)) => {
            if let Some(diff) = first_difference(&old, &this_run, "") {
                bail!(
                    "cannot resume from {}: a different run ({diff})",
                    a.resume.as_deref().unwrap_or(Path::new("")).display()
                );
            }
            if !a.quiet && rank0 {
                note!(
                    "resuming at epoch {}, batch {} of that epoch ({} batches done)",
                    run.position().epoch,
                    run.position().batches_in_epoch,
                    run.next_seq()
                );
            }
            // The same run, with the convergence test's tolerance of this one: a
            // checkpoint of a version without the test resumes to every pass, as it
            // would have run.
            let tol = params.pass_tol();
            model.set_params(
                model
                    .params()
                    .clone()
                    .into_builder()
                    .pass_tol(tol)
                    .check()?,
            )?;
            Some(run)
        }
        None => None,
    };
    let checkpointing = checkpoint_dir.map(|dir| checkpointing(&a, dir, &names, &this_run));
    let mut progress = Progress::new(None, a.quiet || !rank0);
    // Live codes of a stream: written as each batch is learned from.
    let live = stream && a.codes_out.is_some();
    let codes_format = plan.format("--codes-out").ok();
    let mut codes_sink = if live {
        Some(plan.open("--codes-out")?)
    } else {
        None
    };
    let mut live_writer = None;
    let mut live_rows = 0u64;
    started.set(ranks.distributed());
    let mut dist_report = None;
    let report = if ranks.distributed() {
        let open = || {
            let opts = a.input.options(params.batch_size(), params.seed())?;
            let opts = a
                .input
                .model_options(opts, &model_names, true, missing)?
                .zeros_refused(zero_beta);
            a.input.open::<F>(opts)
        };
        ranks
            .fit(
                &mut model,
                source.as_mut(),
                open,
                &popts,
                resume,
                checkpointing.as_ref(),
                |r| progress.batch(r),
            )
            .map(|r| {
                let p = r.pipeline.clone();
                dist_report = Some(r);
                p
            })
    } else {
        pipeline::fit_with_codes(
            &mut model,
            source.as_mut(),
            &popts,
            resume,
            checkpointing.as_ref(),
            |r| progress.batch(r),
            |w, ids| {
                let Some(format) = codes_format.filter(|_| live) else {
                    return Ok(());
                };
                let wr = match live_writer.as_mut() {
                    Some(wr) => wr,
                    None => {
                        let out = codes_sink.take().expect("opened once");
                        live_writer.insert(CodesWriter::<F, _>::new(out, format, rank, ids)?)
                    }
                };
                live_rows += w.nrows() as u64;
                wr.write(w, ids)
            },
        )
        .map_err(anyhow::Error::from)
    };
    progress.finish();
    let report = report?;
    if !rank0 {
        // Rank 0 writes the outputs.
        return Ok(());
    }

    // An item catalogue grew as the input was read.
    let names = source.feature_names();
    let mut done = Finished::default();
    let sink = plan.open("--out")?;
    let meta = Metadata {
        spectrogram,
        ..Metadata::default()
            .with_feature_names(names.clone())
            .with_atom_labels(labels)
    };
    let components = match a.components_out {
        Some(_) => Some((
            plan.open("--components-out")?,
            plan.format("--components-out")?,
        )),
        None => None,
    };
    // The model and H are encoded at once, H on a thread of its own (the fit's threads
    // are done): a sparse fit's long H (20 × 20 000) takes 18 ms, its model 4 ms.
    let (sink, components) = std::thread::scope(|scope| {
        let h_job = components.map(|(sink, format)| {
            let (model, names) = (&model, &names);
            scope.spawn(move || -> Result<Sink> {
                let name = sink.name().to_string();
                let h = model.components()?;
                let layout = match a.components_format {
                    ComponentsFormat::Auto => ComponentsLayout::auto(h.ncols()),
                    ComponentsFormat::Wide => ComponentsLayout::Wide,
                    ComponentsFormat::Long => ComponentsLayout::Long,
                };
                write_components(sink, format, layout, h, names).with_context(|| name)
            })
        });
        let mut sink = sink;
        let model_done = persist::write_model(&mut sink, &model, &meta)
            .with_context(|| sink.name().to_string())
            .map(|()| sink);
        let h_done = h_job.map(|job| job.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (model_done, h_done)
    });
    done.push(sink?)?;
    if let Some(h_sink) = components {
        done.push(h_sink?)?;
    }
    let codes_rows = match &a.codes_out {
        Some(_) if live => {
            let writer = match live_writer {
                Some(w) => w,
                None => CodesWriter::<F, _>::new(
                    codes_sink.take().expect("unused"),
                    codes_format.expect("planned"),
                    rank,
                    None,
                )?,
            };
            let (sink, rows) = writer.finish()?;
            done.push(sink)?;
            Some(rows.max(live_rows))
        }
        Some(_) => {
            // Codes in input order, against the final dictionary.
            let opts = a.input.options(params.batch_size(), 0)?.no_shuffle();
            let opts = a.input.model_options(opts, &names, false, missing)?;
            let mut src = a.input.open::<F>(opts)?;
            match write_codes(&plan, "--codes-out", &model, src.as_mut(), &popts, |_| {}) {
                Ok((sink, rows, _)) => {
                    done.push(sink)?;
                    Some(rows)
                }
                // `--codes-out - | head`: the reader of the codes went away, which ends the
                // program quietly; the model and components are whole, so they are kept.
                Err(e) if crate::broken_pipe(&e) => {
                    done.commit()?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    done.commit()?;

    let loss_per_row = model.loss_history().last().copied();
    let rps = report.rows as f64 / report.seconds.max(1e-9);
    if a.json {
        let summary = json!({
            "rows": report.rows,
            "passes": report.epochs,
            "batches": report.batches,
            "loss_per_row": loss_per_row,
            "loss_history": model.loss_history(),
            "sample_losses": model.sample_losses(),
            "converged": report.converged,
            "seconds": report.seconds,
            "rows_per_second": rps,
            "peak_rss_bytes": peak_rss_bytes(),
            "model": a.out,
            "codes_rows": codes_rows,
        });
        let mut summary = summary;
        if let Some(d) = &dist_report {
            summary["distributed"] = serde_json::to_value(d)?;
        }
        crate::out(serde_json::to_string_pretty(&summary)?)?;
    }
    // The sample's gain in the last pass, as a percentage of the pass before.
    let last_gain = match model.sample_losses() {
        [.., a, b] if *a > 0.0 => Some(100.0 * (a - b) / a),
        _ => None,
    };
    if params.pass_tol() > 0.0 && !report.converged && report.epochs >= epochs && epochs > 1 {
        // The convergence test was on but never fired: the fit ran out of passes, not out
        // of progress (a noise-free low-rank table can gain 2 % a pass at 50 passes).
        let gain = last_gain.map_or(String::new(), |g| {
            format!(" (the sample's loss fell {g:.2} % in the last pass)")
        });
        let limit = if a.epochs.is_some() {
            "--epochs"
        } else {
            "the default limit of"
        };
        tracing::warn!(
            "stopped at {limit} {epochs} passes before converging{gain}; \
             more passes (--epochs N, up to N) would still lower the loss"
        );
    }
    if model
        .components()
        .is_ok_and(|h| h.iter().all(|v| v.is_zero()))
    {
        // All-zero data (or a filter that left only zeros): a model that codes everything
        // as zero, which would otherwise pass without a word.
        tracing::warn!(
            "every atom of the model is zero: the data holds no signal (all zeros?), so \
             every code will be zero too"
        );
    }
    if !a.json && !a.quiet {
        let passes = if report.converged && report.epochs < epochs {
            let gain = last_gain.map_or(String::new(), |g| format!(", the last gaining {g:.2} %"));
            format!("converged after {} passes{gain};", report.epochs)
        } else {
            format!("{} passes,", report.epochs)
        };
        note!(
            "fitted rank {} ({passes} {} batches, {} rows read) in {:.2} s, {:.0} rows/s; loss/row {:.5e}; model written to {}",
            rank,
            report.batches,
            report.rows,
            report.seconds,
            rps,
            loss_per_row.unwrap_or(f64::NAN),
            a.out.display()
        );
    }
    Ok(())
}
