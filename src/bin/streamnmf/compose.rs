//! `streamnmf compose`: one model whose dictionary stacks several models' atoms, each
//! labelled with its source, for supervised and semi-supervised separation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ndarray::Array2;
use streamnmf::io::{write_components, ArrowFloat, ComponentsLayout};
use streamnmf::persist::{self, Metadata};
use streamnmf::{OnlineNmf, ValidParams};

use crate::output::{Finished, Plan};
use crate::settle::atom_set;

/// Options of `compose`.
#[derive(Args, Debug)]
pub struct ComposeArgs {
    /// Model files whose atoms are stacked, in order (same loss and features).
    #[arg(required = true, num_args = 1..)]
    pub models: Vec<PathBuf>,
    /// A source label per model, comma-separated [default: each model's own labels, or
    /// its file stem].
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Atoms a later `fit --model` keeps fixed: indices, ranges or labels.
    #[arg(long)]
    pub fixed_components: Option<String>,
    /// The composed model file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the stacked H (Parquet, or an Arrow IPC stream for `-`/`.arrows`).
    #[arg(long)]
    pub components_out: Option<PathBuf>,
}

/// One part: H, parameters, metadata, the labels its atoms get.
struct Part {
    h: Array2<f64>,
    params: ValidParams,
    meta: Metadata,
    f64s: bool,
}

pub fn run(a: ComposeArgs) -> Result<()> {
    if let Some(l) = &a.labels {
        if l.len() != a.models.len() {
            bail!(
                "--labels has {} names for {} models",
                l.len(),
                a.models.len()
            );
        }
    }
    let mut parts = Vec::new();
    for path in &a.models {
        let m = crate::read_any_model(path)?;
        parts.push(Part {
            h: m.h,
            params: m.params,
            meta: m.meta,
            f64s: m.f64s,
        });
    }
    let first = &parts[0];
    for (path, p) in a.models.iter().zip(&parts).skip(1) {
        if p.meta.feature_names != first.meta.feature_names {
            bail!(
                "{} has other features than {} ({} vs {})",
                path.display(),
                a.models[0].display(),
                p.h.ncols(),
                first.h.ncols()
            );
        }
        if p.meta.spectrogram != first.meta.spectrogram {
            bail!(
                "{} was made from other spectrogram settings than {} ({:?} vs {:?})",
                path.display(),
                a.models[0].display(),
                p.meta.spectrogram,
                first.meta.spectrogram
            );
        }
    }
    let mut labels = Vec::new();
    for (i, (path, p)) in a.models.iter().zip(&parts).enumerate() {
        match &a.labels {
            Some(l) => labels.extend(std::iter::repeat_n(l[i].clone(), p.h.nrows())),
            None if p.meta.atom_labels.len() == p.h.nrows() => {
                labels.extend(p.meta.atom_labels.iter().cloned())
            }
            None => labels.extend(std::iter::repeat_n(stem(path), p.h.nrows())),
        }
    }
    if first.f64s {
        compose::<f64>(&a, &parts, labels)
    } else {
        compose::<f32>(&a, &parts, labels)
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned())
}

fn compose<F: ArrowFloat>(a: &ComposeArgs, parts: &[Part], labels: Vec<String>) -> Result<()> {
    let models = a
        .models
        .iter()
        .zip(parts)
        .map(|(path, p)| {
            OnlineNmf::<F>::from_components(p.params.clone(), p.h.mapv(F::from_f64))
                .with_context(|| path.display().to_string())
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&OnlineNmf<F>> = models.iter().collect();
    let mut model = OnlineNmf::compose(&refs)?;
    let rank = model.params().rank();
    if let Some(spec) = &a.fixed_components {
        let fixed = atom_set(spec, &labels, rank)?;
        let params = model
            .params()
            .clone()
            .into_builder()
            .fixed_components(fixed);
        model.set_params(params.check()?)?;
    }
    let plan = Plan::new(
        &a.models,
        &[
            ("--out", Some(&a.out)),
            ("--components-out", a.components_out.as_deref()),
        ],
    )?;
    let first = &parts[0].meta;
    let meta = Metadata {
        spectrogram: first.spectrogram,
        ..Metadata::default()
            .with_feature_names(first.feature_names.clone())
            .with_atom_labels(labels.clone())
    };
    let mut done = Finished::default();
    let mut sink = plan.open("--out")?;
    persist::write_model(&mut sink, &model, &meta).with_context(|| sink.name().to_string())?;
    done.push(sink)?;
    if a.components_out.is_some() {
        let sink = plan.open("--components-out")?;
        let name = sink.name().to_string();
        let h = model.components()?;
        let format = plan.format("--components-out")?;
        let layout = ComponentsLayout::auto(h.ncols());
        let sink = write_components(sink, format, layout, h, &first.feature_names)
            .with_context(|| name)?;
        done.push(sink)?;
    }
    done.commit()?;
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for l in &labels {
        match groups.last_mut() {
            Some((g, n)) if *g == l => *n += 1,
            _ => groups.push((l, 1)),
        }
    }
    let summary: Vec<String> = groups.iter().map(|(l, n)| format!("{l} × {n}")).collect();
    note!(
        "composed rank {rank} ({}) into {}",
        summary.join(", "),
        a.out.display()
    );
    Ok(())
}
