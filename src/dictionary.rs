//! The dictionary `H` and the sufficient statistics it is learned from.
//!
//! **Frobenius** (Mairal, Bach, Ponce & Sapiro 2010): after each batch,
//! `A ← ρA + W_bᵀW_b` (k × k) and `B ← ρB + W_bᵀX_b` (k × p), then a few sweeps of block
//! coordinate descent on the rows of H, warm-started:
//! `H_j ← max(0, H_j + (B_j − A_j H − l1 − l2 H_j) / (A_jj + l2))`.
//!
//! **Other betas** (Lefèvre, Bach & Févotte 2011; scikit-learn's `MiniBatchNMF`):
//! `A ← ρA + W_bᵀ(V^(β−2) ⊙ X_b) ⊙ H^(1/γ)`, `B ← ρB + W_bᵀV^(β−1)`, then
//! `H = (A / (B + l1 + l2 H))^γ`.
//!
//! **Scaling the past** (Mairal et al. 2010, §3.4): before a batch of `b` rows is added
//! after `t` rows, the statistics are multiplied by `ρ (t / (t + b))^decay` (ρ the forget
//! factor), so the batch ending at row `s` weighs `(s / t)^decay`. Codes solved against
//! the initial H stop weighing within the first pass, while the window of rows that count
//! keeps growing, so H converges.
//!
//! **Passes** (SPAMS): with `purge_passes`, a new pass moves the statistics aside as "the
//! previous pass" and starts new ones; the previous pass counts with the share of rows the
//! current pass has not reached yet, so each row's latest codes weigh on H and the first
//! pass's codes, solved against a poor H, stop weighing at the end of the second.
//!
//! **Dead atoms**: a component whose accumulated code energy `Σ w_j²` vanishes (for
//! Frobenius, `A_jj ≈ 0`) or whose row of H is all zero is re-seeded from a random row of
//! the current batch (seeded, logged).

use std::borrow::Cow;

use ndarray::{s, Array1, Array2, ArrayView2, Axis, ShapeBuilder, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{reconstruct_into, MatRef};
use crate::codes::hals;
use crate::float::Float;
use crate::loss::{pow, Loss, CLIP};
use crate::params::ValidParams;

/// Code energy below this share of the largest atom's marks an atom as dead.
const DEAD_SHARE: f64 = 1e-10;

/// What one batch adds to the statistics, computed by a solver next to its codes.
#[derive(Clone, Debug)]
pub struct Contribution<F> {
    /// Rows in the batch.
    pub rows: usize,
    /// Frobenius: `W_bᵀW_b` (k × k). Other betas: `W_bᵀ(V^(β−2) ⊙ X_b)` (k × p).
    pub first: Array2<F>,
    /// Frobenius: `W_bᵀX_b` (k × p). Other betas: `W_bᵀV^(β−1)` (k × p).
    pub second: Array2<F>,
    /// `Σ_i w_ij²` per component.
    pub energy: Array1<f64>,
}

impl<F: Float> Contribution<F> {
    /// The contribution of a batch `x` with codes `w`, solved against `h`.
    pub fn new(loss: Loss, x: MatRef<F>, w: ArrayView2<F>, h: ArrayView2<F>) -> Self {
        let (k, p) = h.dim();
        let energy = w
            .axis_iter(Axis(1))
            .map(|c| c.iter().map(|v| v.as_f64() * v.as_f64()).sum())
            .collect();
        let beta = loss.beta();
        let (first, second) = if beta == 2.0 {
            // Column-major, like the statistics it is folded into (see `Statistics`).
            (w.t().dot(&w), x.wt_x(w))
        } else {
            let wsum = w.sum_axis(Axis(0));
            let ones_den = || Array2::from_shape_fn((k, p), |(j, _)| wsum[j]);
            match x {
                MatRef::Csr(_) if beta == 1.0 => {
                    // Wᵀ(X / V) through the same nnz kernel as the codes: (X/V)ᵀ W = num of
                    // the transposed problem. Build it row by row.
                    let ht = h.t().as_standard_layout().into_owned();
                    let clip = F::from_f64(CLIP);
                    let mut acc = Array2::<F>::zeros((p, k));
                    x.for_each_stored(|i, j, v| {
                        let wi = w.row(i);
                        let ratio = v / wi.dot(&ht.row(j)).max(clip);
                        acc.row_mut(j).scaled_add(ratio, &wi);
                    });
                    (acc.t().as_standard_layout().into_owned(), ones_den())
                }
                _ => {
                    let xd = x.to_dense();
                    let mut v = Array2::zeros(xd.raw_dim());
                    reconstruct_into(w, h, &mut v.view_mut());
                    let clip = F::from_f64(CLIP);
                    if beta == 1.0 {
                        crate::batch::kl_ratio_into(&mut v, &xd, clip);
                        (w.t().dot(&v), ones_den())
                    } else {
                        v.mapv_inplace(|e| e.max(clip));
                        let q = v.mapv(|e| pow(e, beta - 1.0));
                        Zip::from(&mut v)
                            .and(&xd)
                            .for_each(|e, &xv| *e = pow(*e, beta - 2.0) * xv);
                        (w.t().dot(&v), w.t().dot(&q))
                    }
                }
            }
        };
        Self {
            rows: x.nrows(),
            first,
            second,
            energy,
        }
    }

    /// Adds another batch's (or chunk's) contribution to this one.
    pub fn add(&mut self, other: &Self) {
        self.rows += other.rows;
        self.first += &other.first;
        self.second += &other.second;
        self.energy += &other.energy;
    }
}

/// Accumulated statistics (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statistics<F> {
    /// Frobenius: `A = Σ ρ^· WᵀW`. Other betas: the numerator sum.
    pub a: Array2<F>,
    /// Frobenius: `B = Σ ρ^· WᵀX`. Other betas: the denominator sum.
    pub b: Array2<F>,
    /// Forget-weighted `Σ w_j²` per component.
    pub energy: Array1<f64>,
    /// Forget-weighted number of rows.
    pub rows: f64,
    /// Rows folded in, unweighted.
    pub raw_rows: u64,
}

impl<F: Float> Statistics<F> {
    /// Empty statistics. Frobenius keeps B column-major: sparse batches add `Xᵀ W` into
    /// it without transposing, and the H update reads `Bᵀ` as a standard p × k array.
    /// (Serialized in logical order, so files do not depend on the layout; a loaded B
    /// is row-major, which every operation here also accepts, with the same results.)
    fn zeros(loss: Loss, k: usize, p: usize) -> Self {
        let frobenius = loss.beta() == 2.0;
        let a_cols = if frobenius { k } else { p };
        Self {
            a: Array2::zeros((k, a_cols)),
            b: if frobenius {
                Array2::zeros((k, p).f())
            } else {
                Array2::zeros((k, p))
            },
            energy: Array1::zeros(k),
            rows: 0.0,
            raw_rows: 0,
        }
    }

    fn fold(&mut self, rho: F, first: &Array2<F>, second: &Array2<F>, c: &Contribution<F>) {
        let r = rho.as_f64();
        Zip::from(&mut self.a)
            .and(first)
            .for_each(|s, &v| *s = rho * *s + v);
        Zip::from(&mut self.b)
            .and(second)
            .for_each(|s, &v| *s = rho * *s + v);
        Zip::from(&mut self.energy)
            .and(&c.energy)
            .for_each(|s, &v| *s = r * *s + v);
        self.rows = r * self.rows + c.rows as f64;
        self.raw_rows += c.rows as u64;
    }

    fn forget_atom(&mut self, j: usize, frobenius: bool) {
        self.a.row_mut(j).fill(F::zero());
        if frobenius {
            self.a.column_mut(j).fill(F::zero());
        }
        self.b.row_mut(j).fill(F::zero());
        self.energy[j] = 0.0;
    }
}

/// What one dictionary update did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Sweeps of the H update (1 for the multiplicative update).
    pub sweeps: usize,
    /// Components re-seeded because they were dead.
    pub reseeded: Vec<usize>,
}

/// The dictionary `H` (k × p) with its statistics. Owned by the model (and, in the
/// pipeline, by the dictionary-updater thread).
///
/// H is kept column-major: `Hᵀ`, which the code solvers and the H update work on, is then
/// a standard p × k array, and no batch transposes H. A deserialized H is brought back to
/// that layout, so a resumed model computes with the same memory layout, and the same
/// bits, as one that never stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "F: Deserialize<'de> + Clone"))]
pub struct Dictionary<F> {
    #[serde(deserialize_with = "column_major")]
    h: Array2<F>,
    loss: Loss,
    current: Statistics<F>,
    previous: Option<Statistics<F>>,
    rows_in_pass: u64,
    version: u64,
    /// Rows folded in over the dictionary's life (the `t` of the past-data scaling).
    /// Checkpoints written before it existed load with 0: the scaling restarts.
    #[serde(default)]
    life_rows: u64,
}

impl<F: Float> Dictionary<F> {
    /// A dictionary starting from `h`, with empty statistics.
    pub fn new(h: Array2<F>, loss: Loss) -> Self {
        let (k, p) = h.dim();
        Self {
            current: Statistics::zeros(loss, k, p),
            h: to_column_major(h),
            loss,
            previous: None,
            rows_in_pass: 0,
            version: 0,
            life_rows: 0,
        }
    }

    /// H (k × p).
    pub fn components(&self) -> ArrayView2<'_, F> {
        self.h.view()
    }

    /// The statistics accumulated in the current pass.
    pub fn statistics(&self) -> &Statistics<F> {
        &self.current
    }

    /// Number of updates applied so far (the dictionary's version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Marks the start of a new pass over the same data (see the module docs).
    pub fn start_pass(&mut self, purge: bool) {
        if purge && self.current.raw_rows > 0 {
            let (k, p) = self.h.dim();
            let fresh = Statistics::zeros(self.loss, k, p);
            self.previous = Some(std::mem::replace(&mut self.current, fresh));
        }
        self.rows_in_pass = 0;
    }

    /// Folds a batch's contribution into the statistics and updates H. `x` is the batch
    /// (used only to re-seed dead atoms) and `rng` the model's seeded generator.
    pub fn apply(
        &mut self,
        c: Contribution<F>,
        x: MatRef<F>,
        params: &ValidParams,
        rng: &mut ChaCha8Rng,
    ) -> UpdateStats {
        self.apply_threads(c, x, params, rng, 1)
    }

    /// [`apply`](Self::apply) with the H update spread over up to `threads` threads, on
    /// fixed blocks of columns: the result does not depend on `threads`.
    pub fn apply_threads(
        &mut self,
        mut c: Contribution<F>,
        x: MatRef<F>,
        params: &ValidParams,
        rng: &mut ChaCha8Rng,
        threads: usize,
    ) -> UpdateStats {
        let rho = F::from_f64(past_scale(
            params.forget_factor(),
            params.decay_exponent(),
            self.life_rows,
            c.rows,
        ));
        self.life_rows += c.rows as u64;
        let frobenius = self.loss.beta() == 2.0;
        if !frobenius {
            let inv_gamma = 1.0 / self.loss.mu_exponent();
            Zip::from(&mut c.first)
                .and(&self.h)
                .for_each(|n, &hv| *n *= pow(hv, inv_gamma));
        }
        self.current.fold(rho, &c.first, &c.second, &c);
        self.rows_in_pass += c.rows as u64;

        // The previous pass weighs with the share of rows this pass has not reached.
        let prev = self.previous.as_ref().and_then(|p| {
            let left = 1.0 - self.rows_in_pass as f64 / p.raw_rows.max(1) as f64;
            (left > 0.0).then_some((p, left))
        });
        // Borrow the statistics in the common case (no previous pass): no per-batch copy.
        let (a, b, energy, rows) = match prev {
            None => (
                Cow::Borrowed(&self.current.a),
                Cow::Borrowed(&self.current.b),
                self.current.energy.clone(),
                self.current.rows,
            ),
            Some((p, left)) => {
                let lf = F::from_f64(left);
                let combine = |cur: &Array2<F>, old: &Array2<F>| {
                    let mut out = cur.clone();
                    Zip::from(&mut out).and(old).for_each(|x, &y| *x += y * lf);
                    Cow::Owned(out)
                };
                (
                    combine(&self.current.a, &p.a),
                    combine(&self.current.b, &p.b),
                    &self.current.energy + &(&p.energy * left),
                    self.current.rows + left * p.rows,
                )
            }
        };
        let (l1, l2) = params.h_penalties(rows);
        let (l1, l2) = (F::from_f64(l1), F::from_f64(l2));
        let sweeps = if frobenius {
            let (max_iter, tol) = params.dict_limits();
            hals_dictionary(
                &mut self.h,
                a.view(),
                b.view(),
                (l1, l2),
                (max_iter, tol),
                threads,
            )
        } else {
            let gamma = self.loss.mu_exponent();
            Zip::from(&mut self.h)
                .and(&*a)
                .and(&*b)
                .for_each(|h, &num, &den| {
                    let den = den + l1 + l2 * *h;
                    if den > F::zero() {
                        let r = num / den;
                        *h = pow(r, gamma);
                    }
                });
            1
        };
        drop((a, b));
        let reseeded = self.reseed_dead(&energy, x, rng, frobenius);
        self.version += 1;
        UpdateStats { sweeps, reseeded }
    }

    fn reseed_dead(
        &mut self,
        energy: &Array1<f64>,
        x: MatRef<F>,
        rng: &mut ChaCha8Rng,
        frobenius: bool,
    ) -> Vec<usize> {
        let max_energy = energy.iter().cloned().fold(0.0, f64::max);
        let norms: Vec<f64> = self
            .h
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_f64() * v.as_f64())
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let dead: Vec<usize> = (0..self.h.nrows())
            .filter(|&j| norms[j] == 0.0 || energy[j] <= DEAD_SHARE * max_energy)
            .collect();
        if dead.is_empty() {
            return dead;
        }
        let live: Vec<f64> = (0..norms.len())
            .filter(|j| !dead.contains(j))
            .map(|j| norms[j])
            .collect();
        let target = if live.is_empty() {
            1.0
        } else {
            live.iter().sum::<f64>() / live.len() as f64
        };
        let mut done = Vec::new();
        for &j in &dead {
            // A few tries to find a non-zero row; a batch of zeros cannot re-seed anything.
            for _ in 0..8 {
                let r = rng.random_range(0..x.nrows());
                let row = x.slice_rows(r..r + 1).to_dense();
                let norm = row.iter().map(|v| v.as_f64().powi(2)).sum::<f64>().sqrt();
                if norm > 0.0 {
                    let s = F::from_f64(target / norm);
                    self.h.row_mut(j).assign(&row.row(0).mapv(|v| v * s));
                    self.current.forget_atom(j, frobenius);
                    if let Some(p) = self.previous.as_mut() {
                        p.forget_atom(j, frobenius);
                    }
                    tracing::info!(component = j, source_row = r, "re-seeded a dead atom");
                    done.push(j);
                    break;
                }
            }
        }
        done
    }
}

/// `a` with the same values, stored column-major.
fn to_column_major<F: Clone>(a: Array2<F>) -> Array2<F> {
    if a.t().is_standard_layout() {
        a
    } else {
        a.t().as_standard_layout().into_owned().reversed_axes()
    }
}

fn column_major<'de, D, F>(d: D) -> std::result::Result<Array2<F>, D::Error>
where
    D: serde::Deserializer<'de>,
    F: Deserialize<'de> + Clone,
{
    Array2::<F>::deserialize(d).map(to_column_major)
}

/// The factor old statistics are multiplied by before a batch of `rows` is added, after
/// `seen` rows: `forget · (seen / (seen + rows))^decay` (see [`NmfParams::decay`]).
///
/// [`NmfParams::decay`]: crate::NmfParams::decay
fn past_scale(forget: f64, decay: f64, seen: u64, rows: usize) -> f64 {
    if decay == 0.0 {
        return forget;
    }
    let (t, b) = (seen as f64, rows as f64);
    if t + b == 0.0 {
        return forget;
    }
    forget * (t / (t + b)).powf(decay)
}

/// Coordinate descent on H from statistics (A, B); returns the most sweeps any block took.
///
/// The columns of H are independent given A and B: column c solves the k-dimensional
/// problem `min ½ hᵀA h − B_cᵀh + penalties`, the same problem as one row's codes with
/// `G = A` and `r = B_c`. So H is updated as `Hᵀ` by the code solver (64 columns per
/// vector block), in fixed blocks of columns shared by the threads. Each block sweeps
/// coordinates j = 0..k in order, exactly as row-wise block coordinate descent would,
/// and stops when its own relative change is below `tol`.
fn hals_dictionary<F: Float>(
    h: &mut Array2<F>,
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    pen: (F, F),
    (max_iter, tol): (usize, f64),
    threads: usize,
) -> usize {
    let p = h.ncols();
    // Bᵀ and Hᵀ are already standard when B and H are column-major (their layouts in a
    // dictionary): no copies.
    let bt = b.t();
    let bt = bt.as_standard_layout();
    let ht = h.t();
    let ht = ht.as_standard_layout();
    let blocks: Vec<_> = crate::parallel::chunks(p).collect();
    let parts = crate::parallel::map_indexed(blocks.len(), threads, |i| {
        let cols = blocks[i].clone();
        let mut hb = ht.slice(s![cols.clone(), ..]).to_owned();
        let stats = hals::solve(bt.slice(s![cols, ..]), a, &mut hb, pen, max_iter, tol);
        (hb, stats.iterations)
    });
    drop((ht, bt));
    let mut sweeps = 0;
    for (cols, (hb, it)) in blocks.into_iter().zip(parts) {
        h.slice_mut(s![.., cols]).assign(&hb.t());
        sweeps = sweeps.max(it);
    }
    sweeps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::NmfParams;
    use ndarray::array;
    use rand::SeedableRng;

    /// With exact statistics of a factorizable X and the true codes, the H update lands on
    /// the true H.
    #[test]
    fn hals_update_recovers_h() {
        let h_true = array![[1.0f64, 0.0, 2.0, 0.5], [0.0, 1.5, 0.5, 1.0]];
        let w = array![[1.0, 0.2], [0.3, 2.0], [1.5, 1.0], [0.0, 0.7]];
        let x = w.dot(&h_true);
        let params = NmfParams::new(2)
            .dict_max_iter(500)
            .dict_tol(0.0)
            .check()
            .unwrap();
        let mut d = Dictionary::new(Array2::from_elem((2, 4), 0.5), Loss::Frobenius);
        let c = Contribution::new(Loss::Frobenius, MatRef::from(&x), w.view(), h_true.view());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = d.apply(c, MatRef::from(&x), &params, &mut rng);
        assert!(u.reseeded.is_empty());
        for (a, b) in d.components().iter().zip(h_true.iter()) {
            assert!((a - b).abs() < 1e-8, "{} vs {h_true}", d.components());
        }
    }

    /// H is column-major when built from a row-major array and after a serde round trip
    /// (which writes logical order), with the same values.
    #[test]
    fn h_stays_column_major() {
        let h = array![[1.0f64, 0.0, 2.0], [0.5, 3.0, 0.0]];
        let d = Dictionary::new(h.clone(), Loss::Frobenius);
        assert!(d.components().t().is_standard_layout());
        assert_eq!(d.components(), h);
        let json = serde_json::to_string(&d).unwrap();
        let back: Dictionary<f64> = serde_json::from_str(&json).unwrap();
        assert!(back.components().t().is_standard_layout());
        assert_eq!(back, d);
    }

    /// A dictionary saved before the past-data scaling existed (no `life_rows`) still
    /// loads, with the scaling restarted.
    #[test]
    fn loads_without_life_rows() {
        let h = array![[1.0f64, 0.5], [0.0, 2.0]];
        let mut d = Dictionary::new(h, Loss::Frobenius);
        d.life_rows = 77;
        let mut v = serde_json::to_value(&d).unwrap();
        v.as_object_mut().unwrap().remove("life_rows").unwrap();
        let back: Dictionary<f64> = serde_json::from_value(v).unwrap();
        assert_eq!(back.life_rows, 0);
        assert_eq!(back.components(), d.components());
    }

    /// A component that no row uses is re-seeded from a batch row.
    #[test]
    fn dead_atom_is_reseeded() {
        let x = array![[1.0f64, 2.0, 0.0], [0.0, 1.0, 3.0]];
        let w = array![[1.0, 0.0], [2.0, 0.0]];
        let h = array![[0.5, 1.0, 1.0], [1.0, 1.0, 1.0]];
        let params = NmfParams::new(2).check().unwrap();
        let mut d = Dictionary::new(h.clone(), Loss::Frobenius);
        let c = Contribution::new(Loss::Frobenius, MatRef::from(&x), w.view(), h.view());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let u = d.apply(c, MatRef::from(&x), &params, &mut rng);
        assert_eq!(u.reseeded, vec![1]);
        let row = d.components().row(1).to_owned();
        let is_row0 = (row[2] == 0.0) && row[0] > 0.0;
        let is_row1 = (row[0] == 0.0) && row[2] > 0.0;
        assert!(is_row0 || is_row1, "{row}");
        assert_eq!(d.statistics().a[[1, 1]], 0.0);
    }
}
