//! Planted data sets and the yardsticks to judge a fit on them: used by the demo, the
//! tests and the benchmarks.
//!
//! `X = W* H* + noise` with sparse non-negative `W*` (n × k) and `H*` (k × p); or Poisson
//! counts drawn with mean `W* H*`. A fit is judged by the cosine similarity of each true
//! atom to its matched learned atom, and by its error relative to the rank-k truncated
//! SVD error, a lower bound for any rank-k factorization.

use ndarray::{Array2, ArrayView2};
use ndarray_linalg::{JobSvd, SVDDC};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

use crate::error::{Error, Result};

mod audio;
mod ratings;
pub use audio::{match_energy, noise_like, sdr, speech_like};
pub use ratings::{Feedback, Ratings, RatingsSpec};

/// A planted data set.
#[derive(Clone, Debug)]
pub struct Planted {
    /// The data (n × p).
    pub x: Array2<f64>,
    /// True codes (n × k).
    pub w: Array2<f64>,
    /// True dictionary (k × p).
    pub h: Array2<f64>,
}

/// Recipe for a planted data set.
///
/// ```
/// use streamnmf::synth::PlantedSpec;
/// let d = PlantedSpec::new(100, 20, 3).seed(1).generate();
/// assert_eq!(d.x.dim(), (100, 20));
/// assert!(d.x.iter().all(|&v| v >= 0.0));
/// ```
#[derive(Clone, Debug)]
pub struct PlantedSpec {
    n: usize,
    p: usize,
    k: usize,
    density: f64,
    noise: f64,
    poisson_scale: Option<f64>,
    seed: u64,
}

impl PlantedSpec {
    /// `n × p` data of rank `k`; defaults: 30 % dense factors, noise 1 % of the mean.
    pub fn new(n: usize, p: usize, k: usize) -> Self {
        Self {
            n,
            p,
            k,
            density: 0.3,
            noise: 0.01,
            poisson_scale: None,
            seed: 0,
        }
    }
    /// Share of non-zero entries in W* and H*.
    pub fn density(mut self, d: f64) -> Self {
        self.density = d;
        self
    }
    /// Gaussian noise, as a fraction of the mean of `W* H*` (clipped at zero).
    pub fn noise(mut self, sigma: f64) -> Self {
        self.noise = sigma;
        self
    }
    /// Draw Poisson counts with mean `W* H*` scaled so its mean is `scale` (replaces the
    /// Gaussian noise).
    pub fn poisson(mut self, scale: f64) -> Self {
        self.poisson_scale = Some(scale);
        self
    }
    /// The seed of the data (and of the factors).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Draws the true factors only (W* is generated row by row from the seed, so callers
    /// that stream rows can use [`PlantedSpec::rows`] instead).
    pub fn dictionary(&self) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut h = Array2::from_shape_simple_fn((self.k, self.p), || {
            if rng.random::<f64>() < self.density {
                0.1 + rng.random::<f64>()
            } else {
                0.0
            }
        });
        // Each atom owns a few features no other atom uses, so the factorization is
        // identifiable (separable): p / (4k) anchor columns per atom.
        let anchors = (self.p / (4 * self.k)).max(1);
        for j in 0..self.k {
            for a in 0..anchors {
                let c = (j * anchors + a) % self.p;
                h.column_mut(c).fill(0.0);
                h[[j, c]] = 1.0 + rng.random::<f64>();
            }
        }
        h
    }

    /// Rows `start..start + count` of X and W*, generated deterministically from the
    /// seed and the row index (so a stream of chunks equals the whole).
    pub fn rows(
        &self,
        h: ArrayView2<f64>,
        start: usize,
        count: usize,
    ) -> (Array2<f64>, Array2<f64>) {
        let mut w = Array2::zeros((count, self.k));
        let mut x = Array2::zeros((count, self.p));
        let mean_h = h.mean().unwrap_or(1.0);
        let mean_wh = self.density * 0.6 * self.k as f64 * mean_h;
        let normal = Normal::new(0.0, (self.noise * mean_wh).max(0.0)).expect("finite sigma");
        for r in 0..count {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ ((start + r) as u64 + 1) << 20);
            let mut wr = w.row_mut(r);
            for v in wr.iter_mut() {
                if rng.random::<f64>() < self.density {
                    *v = 0.1 + rng.random::<f64>();
                }
            }
            if wr.iter().all(|&v| v == 0.0) {
                wr[rng.random_range(0..self.k)] = 0.5 + rng.random::<f64>();
            }
            let mut xr = x.row_mut(r);
            xr.assign(&wr.dot(&h));
            match self.poisson_scale {
                Some(scale) => {
                    let s = scale / mean_wh;
                    for v in xr.iter_mut() {
                        let lambda = *v * s;
                        *v = if lambda > 0.0 {
                            Poisson::new(lambda)
                                .expect("positive mean")
                                .sample(&mut rng)
                        } else {
                            0.0
                        };
                    }
                    wr.mapv_inplace(|v| v * s);
                }
                None => {
                    for v in xr.iter_mut() {
                        *v = (*v + normal.sample(&mut rng)).max(0.0);
                    }
                }
            }
        }
        (x, w)
    }

    /// The whole data set in memory.
    pub fn generate(&self) -> Planted {
        let h = self.dictionary();
        let (x, w) = self.rows(h.view(), 0, self.n);
        Planted { x, w, h }
    }
}

/// Cosine similarity of each true atom (row of `truth`) with its matched learned atom,
/// matching greedily by the highest remaining similarity (a permutation).
///
/// ```
/// use ndarray::array;
/// use streamnmf::synth::match_components;
/// let truth = array![[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
/// let learned = array![[0.0, 5.0, 0.0], [2.0, 0.0, 2.0]];
/// let cos = match_components(truth.view(), learned.view());
/// assert!(cos.iter().all(|&c| (c - 1.0).abs() < 1e-12));
/// ```
pub fn match_components(truth: ArrayView2<f64>, learned: ArrayView2<f64>) -> Vec<f64> {
    let unit = |m: ArrayView2<f64>| {
        let mut m = m.to_owned();
        for mut r in m.rows_mut() {
            let n = r.dot(&r).sqrt();
            if n > 0.0 {
                r /= n;
            }
        }
        m
    };
    let (t, l) = (unit(truth), unit(learned));
    let sim = t.dot(&l.t());
    let k = t.nrows();
    let mut best = vec![0.0; k];
    let (mut used_t, mut used_l) = (vec![false; k], vec![false; l.nrows()]);
    for _ in 0..k.min(l.nrows()) {
        let mut top = (0, 0, f64::NEG_INFINITY);
        for i in (0..k).filter(|&i| !used_t[i]) {
            for j in (0..l.nrows()).filter(|&j| !used_l[j]) {
                if sim[[i, j]] > top.2 {
                    top = (i, j, sim[[i, j]]);
                }
            }
        }
        used_t[top.0] = true;
        used_l[top.1] = true;
        best[top.0] = top.2;
    }
    best
}

/// `‖X − X_k‖_F / ‖X‖_F` for the rank-k truncated SVD `X_k`: no rank-k factorization,
/// non-negative or not, does better.
pub fn svd_relative_error_bound(x: ArrayView2<f64>, k: usize) -> Result<f64> {
    let total: f64 = x.iter().map(|v| v * v).sum();
    if x.nrows() > x.ncols() {
        return gram_error_bound(x.t().dot(&x).view(), total, k);
    }
    let (_, s, _) = x
        .svddc(JobSvd::None)
        .map_err(|e| Error::Linalg(format!("SVD failed: {e}")))?;
    let kept: f64 = s.iter().take(k).map(|v| v * v).sum();
    Ok(((total - kept).max(0.0) / total).sqrt())
}

/// The same bound from the Gram matrix `XᵀX` (p × p) and `‖X‖²_F`, which can be
/// accumulated chunk by chunk over data that never sits in memory at once: the squared
/// singular values of X are the eigenvalues of `XᵀX`.
///
/// ```
/// use ndarray::array;
/// use streamnmf::synth::{gram_error_bound, svd_relative_error_bound};
/// let x = array![[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]];
/// let g = x.t().dot(&x);
/// let b = gram_error_bound(g.view(), 25.0, 1).unwrap();
/// assert!((b - 0.6).abs() < 1e-12);
/// assert!((svd_relative_error_bound(x.view(), 1).unwrap() - 0.6).abs() < 1e-12);
/// ```
pub fn gram_error_bound(gram: ArrayView2<f64>, total: f64, k: usize) -> Result<f64> {
    let (_, s, _) = gram
        .svddc(JobSvd::None)
        .map_err(|e| Error::Linalg(format!("SVD failed: {e}")))?;
    let kept: f64 = s.iter().take(k).sum();
    Ok(((total - kept).max(0.0) / total).sqrt())
}
