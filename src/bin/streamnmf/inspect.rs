//! `streamnmf inspect`: what a model file holds.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use streamnmf::persist;
use streamnmf::Float;

/// Options of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The model file.
    pub model: PathBuf,
    /// Features listed per component.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let (bytes, f64) = crate::read_model(&a.model)?;
    if f64 {
        inspect::<f64>(a, &bytes)
    } else {
        inspect::<f32>(a, &bytes)
    }
}

fn inspect<F: Float>(a: InspectArgs, bytes: &[u8]) -> Result<()> {
    let (model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    let h = model.components()?;
    let top: Vec<Vec<(String, f64)>> = h
        .rows()
        .into_iter()
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&i, &j| row[j].as_f64().total_cmp(&row[i].as_f64()));
            idx.into_iter()
                .take(a.top)
                .map(|j| {
                    let name = meta
                        .feature_names
                        .get(j)
                        .cloned()
                        .unwrap_or_else(|| j.to_string());
                    (name, row[j].as_f64())
                })
                .collect()
        })
        .collect();
    if a.json {
        let s = json!({
            "float": F::NAME,
            "params": model.params(),
            "width": h.ncols(),
            "batches_seen": model.batches_seen(),
            "rows_seen": model.rows_seen(),
            "loss_history": model.loss_history(),
            "sample_losses": model.sample_losses(),
            "unobserved": model.params().unobserved(),
            "top_features": top,
            "writer": meta.writer,
            "atom_labels": meta.atom_labels,
            "fixed_components": model.params().fixed_components(),
            "epsilon": model.params().epsilon(),
            "spectrogram": meta.spectrogram,
        });
        crate::out(serde_json::to_string_pretty(&s)?)?;
        return Ok(());
    }
    let p = model.params();
    crate::out(format_args!(
        "model {} ({}; written by {})",
        a.model.display(),
        F::NAME,
        meta.writer
    ))?;
    crate::out(format_args!(
        "rank {}, width {}, loss {}, solver {:?}, batch {}, forget {}, decay {}",
        p.rank(),
        h.ncols(),
        p.loss(),
        p.solver(),
        p.batch_size(),
        p.forget(),
        p.decay()
    ))?;
    let unstored = match p.unobserved() {
        streamnmf::Unobserved::Zero => "zero".to_string(),
        streamnmf::Unobserved::Missing => "missing (observed-only loss)".to_string(),
        streamnmf::Unobserved::Implicit { alpha, log } => format!(
            "implicit feedback, confidence 1 + {alpha}·{}",
            if log { "ln(1 + x)" } else { "x" }
        ),
    };
    crate::out(format_args!(
        "unstored entries: {unstored}; alpha_w {}, alpha_h {}, l1_ratio {}",
        p.alpha_w(),
        p.alpha_h(),
        p.l1_ratio()
    ))?;
    if let Some(s) = &meta.spectrogram {
        crate::out(format_args!(
            "spectrogram frames: {} Hz, FFT {}, hop {} ({:.1} ms), |STFT|^{}",
            s.sample_rate,
            s.fft_size,
            s.hop,
            1000.0 * s.hop as f64 / s.sample_rate as f64,
            s.power
        ))?;
    }
    if !meta.atom_labels.is_empty() {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, l) in meta.atom_labels.iter().enumerate() {
            match groups.iter_mut().find(|g| &g.0 == l) {
                Some(g) => g.1.push(i),
                None => groups.push((l.clone(), vec![i])),
            }
        }
        let list: Vec<String> = groups
            .iter()
            .map(|(l, atoms)| format!("{l} {}..={}", atoms[0], atoms[atoms.len() - 1]))
            .collect();
        crate::out(format_args!("sources: {}", list.join(", ")))?;
    }
    if !p.fixed_components().is_empty() {
        crate::out(format_args!("fixed atoms: {:?}", p.fixed_components()))?;
    }
    if p.epsilon() > 0.0 {
        crate::out(format_args!("data floor (epsilon): {}", p.epsilon()))?;
    }
    crate::out(format_args!(
        "seen {} batches, {} rows",
        model.batches_seen(),
        model.rows_seen()
    ))?;
    let hist: Vec<String> = model
        .loss_history()
        .iter()
        .map(|v| format!("{v:.4e}"))
        .collect();
    crate::out(format_args!("loss per row by pass: [{}]", hist.join(", ")))?;
    if !model.sample_losses().is_empty() {
        let sample: Vec<String> = model
            .sample_losses()
            .iter()
            .map(|v| format!("{v:.6e}"))
            .collect();
        crate::out(format_args!(
            "convergence sample's loss by pass: [{}]",
            sample.join(", ")
        ))?;
    }
    for (j, feats) in top.iter().enumerate() {
        let list: Vec<String> = feats.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
        crate::out(format_args!("component {j}: {}", list.join(", ")))?;
    }
    Ok(())
}
