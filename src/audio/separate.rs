//! Separation of a mixture by a dictionary whose atoms belong to sources (Smaragdis et al.
//! 2007): the codes of each frame against all atoms split its model `V = W H` into
//! `V_s = W_s H_s`, one per source, and each source gets the soft (Wiener) mask
//! `V_s^q / Σ_r V_r^q` of the mixture (q = 1 by default; q = 2 on magnitudes is the
//! classic power Wiener filter).

use ndarray::{Array2, ArrayView2, Axis};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::model::OnlineNmf;

/// The atoms of each source, from one label per atom (in order of first appearance).
///
/// ```
/// use streamnmf::audio::Sources;
/// let labels: Vec<String> = ["speech", "speech", "noise"].iter().map(|s| s.to_string()).collect();
/// let s = Sources::from_labels(&labels, 3).unwrap();
/// assert_eq!(s.labels, ["speech", "noise"]);
/// assert_eq!(s.atoms, vec![vec![0, 1], vec![2]]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sources {
    /// The source names.
    pub labels: Vec<String>,
    /// The atoms of each source.
    pub atoms: Vec<Vec<usize>>,
}

impl Sources {
    /// Groups atoms by label; `rank` atoms must each have one.
    pub fn from_labels(labels: &[String], rank: usize) -> Result<Self> {
        if labels.len() != rank {
            return Err(Error::Schema(format!(
                "the model has {rank} atoms and {} source labels: build it with `compose` \
                 (or `fit --components ... --label ...`) so every atom has a source",
                labels.len()
            )));
        }
        let mut out = Sources {
            labels: Vec::new(),
            atoms: Vec::new(),
        };
        for (i, l) in labels.iter().enumerate() {
            match out.labels.iter().position(|x| x == l) {
                Some(j) => out.atoms[j].push(i),
                None => {
                    out.labels.push(l.clone());
                    out.atoms.push(vec![i]);
                }
            }
        }
        Ok(out)
    }
}

/// Masks of each source for frames of a mixture.
///
/// ```
/// use ndarray::array;
/// use streamnmf::audio::{Separator, Sources};
/// use streamnmf::{NmfParams, OnlineNmf};
/// let h = array![[1.0f64, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]];
/// let model = OnlineNmf::from_components(NmfParams::new(2).check().unwrap(), h).unwrap();
/// let sources = Sources::from_labels(&["a".into(), "b".into()], 2).unwrap();
/// let sep = Separator::new(&model, sources, 1.0);
/// let masks = sep.masks(array![[2.0, 2.0, 1.0, 1.0]].view()).unwrap();
/// assert!((masks[0][[0, 0]] - 1.0).abs() < 1e-6 && masks[0][[0, 2]] < 1e-6);
/// assert!((masks[1][[0, 3]] - 1.0).abs() < 1e-6);
/// ```
pub struct Separator<'m, F> {
    model: &'m OnlineNmf<F>,
    sources: Sources,
    mask_power: f64,
}

impl<'m, F: Float> Separator<'m, F> {
    /// A separator with `model`'s atoms grouped by `sources`, masks `V_s^q / Σ V^q`.
    pub fn new(model: &'m OnlineNmf<F>, sources: Sources, mask_power: f64) -> Self {
        Self {
            model,
            sources,
            mask_power,
        }
    }

    /// The sources.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// One mask (frames × bins, values in [0, 1], summing to 1 where the model is not
    /// zero) per source, for the mixture frames `x`.
    pub fn masks(&self, x: ArrayView2<F>) -> Result<Vec<Array2<F>>> {
        let w = self.model.transform(x)?;
        let h = self.model.components()?;
        let q = self.mask_power;
        let mut parts: Vec<Array2<F>> = self
            .sources
            .atoms
            .iter()
            .map(|atoms| {
                let ws = w.select(Axis(1), atoms);
                let hs = h.select(Axis(0), atoms);
                let mut v = product(&ws, &hs);
                if q != 1.0 {
                    v.mapv_inplace(|e| F::from_f64(e.as_f64().max(0.0).powf(q)));
                }
                v
            })
            .collect();
        let mut total = Array2::<F>::zeros(parts[0].raw_dim());
        for p in &parts {
            total += p;
        }
        let share = F::from_f64(1.0 / parts.len() as f64);
        for p in parts.iter_mut() {
            ndarray::Zip::from(p).and(&total).for_each(|m, &t| {
                *m = if t > F::zero() { *m / t } else { share };
            });
        }
        Ok(parts)
    }
}
