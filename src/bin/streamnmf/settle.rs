//! `fit`'s parameters from its flags: a new model's, or a saved model's or checkpoint's
//! with the flags that may change applied and the ones that contradict it refused; the
//! atoms given with `--components` and the ones `--fixed-components` names.

use std::path::Path;

use anyhow::{bail, Result};
use streamnmf::io::Layout;
use streamnmf::persist;
use streamnmf::{Init, Loss, NmfParams, Unobserved, ValidParams};

use crate::fit_args::{ConfidenceArg, FitArgs, InitArg, UnobservedArg};
use crate::input::parse_layout;

fn init(i: InitArg) -> Init {
    match i {
        InitArg::Auto => Init::Auto,
        InitArg::Random => Init::Random,
        InitArg::Nndsvd => Init::Nndsvd,
        InitArg::Nndsvda => Init::Nndsvda,
        InitArg::Nndsvdar => Init::Nndsvdar,
    }
}

/// The parameters of this run: `base`'s (a saved model's or a checkpoint's) or the
/// defaults, with the flags given applied. With a base, a flag that sets a model property
/// to another value is an error naming it; the batch size, passes and solver limits may
/// change.
pub fn settle_params(
    a: &FitArgs,
    base: Option<&ValidParams>,
    epochs: usize,
    given: Option<&Given>,
    labels: &[String],
) -> Result<ValidParams> {
    let mut p = match (base, given) {
        (Some(b), _) => b.clone().into_builder(),
        (None, Some(g)) => {
            NmfParams::new(a.rank.unwrap_or(g.h.nrows())).init(Init::Custom(g.h.clone()))
        }
        (None, None) => NmfParams::new(a.rank.unwrap_or(0)),
    };
    if let Some(b) = base {
        let mut conflicts = Vec::new();
        let mut differs = |flag: &str, given: Option<String>, saved: String| {
            if let Some(g) = given.filter(|g| *g != saved) {
                conflicts.push(format!("{flag} {g} (the model has {saved})"));
            }
        };
        differs(
            "--rank",
            a.rank.map(|v| v.to_string()),
            b.rank().to_string(),
        );
        differs(
            "--loss",
            a.loss.map(|v| v.to_string()),
            b.loss().to_string(),
        );
        differs(
            "--forget",
            a.forget.map(|v| v.to_string()),
            b.forget().to_string(),
        );
        differs(
            "--decay",
            a.decay.map(|v| v.to_string()),
            b.decay().to_string(),
        );
        differs(
            "--alpha-w",
            a.alpha_w.map(|v| v.to_string()),
            b.alpha_w().to_string(),
        );
        differs(
            "--alpha-h",
            a.alpha_h.map(|v| v.to_string()),
            b.alpha_h().to_string(),
        );
        differs(
            "--l1-ratio",
            a.l1_ratio.map(|v| v.to_string()),
            b.l1_ratio().to_string(),
        );
        differs(
            "--seed",
            a.seed.map(|v| v.to_string()),
            b.seed().to_string(),
        );
        if a.unobserved.is_some() || a.confidence_alpha.is_some() || a.confidence.is_some() {
            differs(
                "--unobserved",
                Some(format!("{:?}", unobserved(a, b.unobserved())?)),
                format!("{:?}", b.unobserved()),
            );
        }
        differs(
            "--init",
            a.init.map(|i| format!("{:?}", init(i))),
            format!("{:?}", b.init()),
        );
        if !conflicts.is_empty() {
            bail!(
                "{} contradicts the model's own settings, which it keeps (drop the flag, \
                 or start a new model without --model/--resume)",
                conflicts.join(", ")
            );
        }
    } else {
        if let Some(l) = a.loss {
            p = p.loss(l);
        }
        if let Some(f) = a.forget {
            p = p.forget(f);
        }
        if let Some(d) = a.decay {
            p = p.decay(d);
        }
        if let Some(i) = a.init {
            p = p.init(init(i));
        }
        if let Some(s) = a.seed {
            p = p.seed(s);
        }
        if let Some(v) = a.alpha_w {
            p = p.alpha_w(v);
        }
        if let Some(v) = a.alpha_h {
            p = p.alpha_h(v);
        }
        if let Some(v) = a.l1_ratio {
            p = p.l1_ratio(v);
        }
        p = p.unobserved(unobserved(a, Unobserved::Zero)?);
    }
    if let Some(it) = a.code_max_iter {
        p = p.code_max_iter(it);
    }
    if let Some(tol) = a.code_tol {
        p = p.code_tol(tol);
    }
    // Passes asked for by number are made, all of them; a saved model's own setting
    // does not carry over (like the number of passes).
    p = p.pass_tol(a.pass_tol.unwrap_or(if a.epochs.is_some() {
        0.0
    } else {
        NmfParams::DEFAULT_PASS_TOL
    }));
    if let Some(b) = a.input.batch_size {
        p = p.batch_size(b);
    } else if base.is_none() && a.input.is_stream() {
        // A live stream wants frequent dictionary updates: 64 rows, not 1024.
        p = p.batch_size(64);
    } else if base.is_none() {
        let loss = a.loss.unwrap_or(Loss::Frobenius);
        let mode = unobserved(a, Unobserved::Zero)?;
        let layout = parse_layout(&a.input.layout)?;
        let dense = layout == Layout::Dense;
        let k = a.rank.or(given.map(|g| g.h.nrows())).unwrap_or(0);
        let shape =
            || streamnmf::io::parquet_shape(&a.input.inputs, &layout).given_width(a.input.width);
        if let Some(b) = streamnmf::model::default_batch_rows(loss, mode, dense, k, shape) {
            p = p.batch_size(b);
        }
    }
    if let Some(e) = a.epsilon {
        p = p.epsilon(e);
    }
    if let Some(spec) = &a.fixed_components {
        let rank = base.map_or(a.rank.or(given.map(|g| g.h.nrows())).unwrap_or(0), |b| {
            b.rank()
        });
        p = p.fixed_components(atom_set(spec, labels, rank)?);
    }
    Ok(p.max_passes(epochs).check()?)
}

/// Atoms given on the command line (`--components`): H, its feature names, and a source
/// label per atom.
pub struct Given {
    pub h: ndarray::Array2<f64>,
    pub names: Vec<String>,
    pub labels: Vec<String>,
    pub spectrogram: Option<persist::Spectrogram>,
}

impl Given {
    /// Reads a model file or a components table; atoms without labels are labelled by
    /// the file's stem (`speech.snmf` → `speech`).
    pub fn read(path: &Path) -> Result<Given> {
        let stem = path
            .file_stem()
            .map_or("given".into(), |s| s.to_string_lossy().into_owned());
        let (h, names, labels, spectrogram) = if crate::is_model_file(path) {
            let m = crate::read_any_model(path)?;
            (
                m.h,
                m.meta.feature_names,
                m.meta.atom_labels,
                m.meta.spectrogram,
            )
        } else {
            let (h, names) = streamnmf::io::read_components(path)?;
            (h, names, Vec::new(), None)
        };
        let labels = if labels.len() == h.nrows() {
            labels
        } else {
            vec![stem; h.nrows()]
        };
        Ok(Given {
            h,
            names,
            labels,
            spectrogram,
        })
    }
}

/// The atoms a `--fixed-components` value names: comma-separated indices, ranges `a..b`
/// (b excluded) or `a..=b`, and source labels.
pub fn atom_set(spec: &str, labels: &[String], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let index = |s: &str| -> Result<usize> {
            s.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--fixed-components: '{s}' is not an atom index"))
        };
        if let Some((lo, hi)) = part.split_once("..") {
            let (hi, inclusive) = match hi.strip_prefix('=') {
                Some(h) => (h, true),
                None => (hi, false),
            };
            let (lo, hi) = (index(lo)?, index(hi)? + inclusive as usize);
            out.extend(lo..hi);
        } else if part.chars().all(|c| c.is_ascii_digit()) {
            out.push(index(part)?);
        } else {
            let n = out.len();
            out.extend(
                labels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| *l == part)
                    .map(|(i, _)| i),
            );
            if out.len() == n {
                let mut known: Vec<&String> = labels.iter().collect();
                known.dedup();
                bail!("--fixed-components: no atom is labelled '{part}' (labels: {known:?})");
            }
        }
    }
    if let Some(&a) = out.iter().find(|&&a| a >= rank) {
        bail!("--fixed-components: atom {a} does not exist (rank {rank})");
    }
    Ok(out)
}

/// The meaning of unstored entries the flags ask for, `base` filling in what they leave
/// out (a saved model's mode, or the default).
fn unobserved(a: &FitArgs, base: Unobserved) -> Result<Unobserved> {
    let (base_alpha, base_log) = match base {
        Unobserved::Implicit { alpha, log } => (alpha, log),
        _ => (1.0, false),
    };
    let mode = a.unobserved.unwrap_or(match base {
        Unobserved::Zero => UnobservedArg::Zero,
        Unobserved::Missing => UnobservedArg::Missing,
        Unobserved::Implicit { .. } => UnobservedArg::Implicit,
    });
    if mode != UnobservedArg::Implicit && (a.confidence_alpha.is_some() || a.confidence.is_some()) {
        bail!("--confidence-alpha and --confidence need --unobserved implicit");
    }
    Ok(match mode {
        UnobservedArg::Zero => Unobserved::Zero,
        UnobservedArg::Missing => Unobserved::Missing,
        UnobservedArg::Implicit => Unobserved::Implicit {
            alpha: a.confidence_alpha.unwrap_or(base_alpha),
            log: a.confidence.map_or(base_log, |c| c == ConfidenceArg::Log),
        },
    })
}
