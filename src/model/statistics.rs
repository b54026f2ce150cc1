//! The sufficient statistics the dictionary is learned from, and what one batch adds to
//! them.
//!
//! **Frobenius** (Mairal, Bach, Ponce & Sapiro 2010): `A = Σ W_bᵀW_b` (k × k) and
//! `B = Σ W_bᵀX_b` (k × p). **Other betas** (Lefèvre, Bach & Févotte 2011; scikit-learn's
//! `MiniBatchNMF`): the numerator `Σ W_bᵀ(V^(β−2) ⊙ X_b) ⊙ H^(1/γ)` and the denominator
//! `Σ W_bᵀV^(β−1)`, with `V = W_b H`.
//!
//! **Scaling the past** (Mairal et al. 2010, §3.4): before a batch of `b` rows is added
//! after `t` rows, the statistics are multiplied by `ρ (t / (t + b))^decay` (ρ the forget
//! factor), so the batch ending at row `s` weighs `(s / t)^decay`.

use ndarray::{s, Array1, Array2, ArrayView2, Axis, CowArray, ShapeBuilder, Zip};

use super::loss::{dense_divergence, Loss};
use super::masked_columns::{kl_statistics, ColumnContribution, ColumnStats};
use super::options::Unobserved;
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::linalg::{all_finite, zeros_written};
use crate::matrix::{MatRef, Valid};
use crate::solve::mu::{beta_ratios_into, kl_ratio_into, relative_clip};

/// What one batch adds to the statistics, computed by a solver next to its codes.
#[derive(Clone, Debug)]
pub(crate) struct Contribution<F> {
    /// Rows in the batch.
    pub(crate) rows: usize,
    /// Features of the batch (the dictionary grows to them).
    pub(crate) width: usize,
    /// Frobenius: `W_bᵀW_b` (k × k). Other betas: `W_bᵀ(V^(β−2) ⊙ X_b)` (k × p).
    pub(crate) first: Array2<F>,
    /// Frobenius: `W_bᵀX_b` (k × p). Other betas: `W_bᵀV^(β−1)` (k × p).
    pub(crate) second: Array2<F>,
    /// `Σ_i w_ij²` per component; under Itakura-Saito each row's codes are first divided
    /// by its largest (see [`code_energy`]).
    pub(crate) energy: Array1<f64>,
    /// Observed-only Frobenius and implicit feedback: what each column touched gets.
    pub(crate) columns: Option<ColumnContribution<F>>,
}

/// Each component's code energy in a batch, what tells a dead atom from a live one:
/// `Σ_i w_ij²`. Itakura-Saito is blind to scale (`d(λx | λv) = d(x | v)`), so an atom that
/// only quiet frames use (codes 10⁻⁶ of a loud frame's on a power spectrogram) fits them
/// as well as a loud one does; with `scaled` each row's codes are divided by the row's
/// largest first, so energy measures how much of each frame an atom explains, not how
/// loud the frame is. (On speech power spectra, k 16, 60 passes, the plain sum re-seeded
/// live atoms 19 times, each a jump in the loss.)
fn code_energy<F: Float>(w: ArrayView2<F>, scaled: bool) -> Array1<f64> {
    let mut energy = Array1::zeros(w.ncols());
    for row in w.rows() {
        let top = if scaled {
            row.iter().fold(0.0f64, |m, v| m.max(v.as_f64()))
        } else {
            1.0
        };
        if top > 0.0 {
            Zip::from(&mut energy)
                .and(row)
                .for_each(|e, &v| *e += (v.as_f64() / top).powi(2));
        }
    }
    energy
}

impl<F: Float> Contribution<F> {
    /// The contribution of a batch `x` with codes `w`, solved against `h`, on one thread.
    #[cfg(test)]
    pub(crate) fn new(
        loss: Loss,
        mode: Unobserved,
        x: Valid<F>,
        w: ArrayView2<F>,
        h: ArrayView2<F>,
    ) -> Self {
        Self::new_on(loss, mode, x, w, h, 1, false).0
    }

    /// Whether [`new_on`](Self::new_on) spreads this batch's contribution over threads
    /// itself (a sparse batch under Frobenius with unstored entries zero: `Xᵀ W` by
    /// column blocks), so the caller should build it once for the whole batch rather
    /// than sum one per chunk: a chunk's k × p block costs as much to zero and add as
    /// the chunk's own entries do to multiply.
    pub(crate) fn spreads(loss: Loss, mode: Unobserved, x: MatRef<F>) -> bool {
        matches!(x, MatRef::Csr(_)) && mode == Unobserved::Zero && loss.beta() == 2.0
    }

    /// Whether [`new_on`](Self::new_on) forms the reconstruction `V = W H` of the batch (every
    /// beta but Frobenius, except KL on a sparse batch and the observed-only modes), from
    /// which it can also take the codes' divergence.
    pub(crate) fn forms_reconstruction(loss: Loss, mode: Unobserved, x: MatRef<F>) -> bool {
        let (beta, sparse) = (loss.beta(), matches!(x, MatRef::Csr(_)));
        beta != 2.0 && !(sparse && (beta == 1.0 || mode != Unobserved::Zero))
    }

    /// The contribution of a batch `x` with codes `w`, solved against `h`, on up to
    /// `threads` threads where it [`spreads`](Self::spreads), with the same bits for
    /// every thread count; and with `score`, where it
    /// [`forms_reconstruction`](Self::forms_reconstruction), the divergence
    /// `D_β(X | W H)` of the codes, taken from the reconstruction the statistics are made
    /// of: the same bits as [`divergence`](super::loss::divergence), without forming
    /// `W H` a second time (a product and a pass over the batch: 7 % of an Itakura-Saito
    /// fit).
    pub(crate) fn new_on(
        loss: Loss,
        mode: Unobserved,
        x: Valid<F>,
        w: ArrayView2<F>,
        h: ArrayView2<F>,
        threads: usize,
        score: bool,
    ) -> (Self, Option<f64>) {
        let x = x.view();
        let (k, p) = h.dim();
        let beta = loss.beta();
        let energy = code_energy(w, beta == 0.0);
        if let (MatRef::Csr(c), true) = (x, mode != Unobserved::Zero) {
            let ht = h.t().as_standard_layout().into_owned();
            let (first, second, columns) = if beta == 1.0 {
                let (num, den) = kl_statistics(c, w, ht.view());
                (num, den, None)
            } else {
                // `Σ_all w wᵀ` (the shared part of implicit feedback, and the code
                // energy's), and the columns' own sums; no `Wᵀ X`.
                let cols = ColumnContribution::new(mode, c, w);
                (product(&w.t(), &w), Array2::zeros((k, 0).f()), Some(cols))
            };
            let c = Self {
                rows: x.nrows(),
                width: p,
                first,
                second,
                energy,
                columns,
            };
            return (c, None);
        }
        let mut scored = None;
        let (first, second) = if beta == 2.0 {
            // Column-major, like the statistics it is folded into (see `Statistics`).
            (product(&w.t(), &w), x.wt_x_on(w, threads))
        } else {
            let wsum = w.sum_axis(Axis(0));
            let ones_den = || Array2::from_shape_fn((k, p), |(j, _)| wsum[j]);
            match x {
                MatRef::Csr(_) if beta == 1.0 => {
                    // Wᵀ(X / V) through the same nnz kernel as the codes: (X/V)ᵀ W = num of
                    // the transposed problem. Build it row by row.
                    let ht = h.t().as_standard_layout().into_owned();
                    let clip = relative_clip(x);
                    let mut acc = zeros_written::<F, _>((p, k));
                    x.for_each_stored(|i, j, v| {
                        let wi = w.row(i);
                        let ratio = v / wi.dot(&ht.row(j)).max(clip);
                        acc.row_mut(j).scaled_add(ratio, &wi);
                    });
                    (acc.t().as_standard_layout().into_owned(), ones_den())
                }
                _ => {
                    let xd = match x {
                        MatRef::Dense(d) => CowArray::from(d),
                        MatRef::Csr(c) => CowArray::from(c.to_dense()),
                    };
                    let mut v = product(&w, &h);
                    if score {
                        scored = Some(dense_divergence(xd.view(), v.view(), beta));
                    }
                    let clip = relative_clip(x);
                    if beta == 1.0 {
                        kl_ratio_into(&mut v, xd.view(), clip);
                        (product(&w.t(), &v), ones_den())
                    } else {
                        // (X / V) ⊙ V^(β−1): V^(β−2) alone overflows f32 for small V.
                        let mut q = Array2::zeros(v.raw_dim());
                        beta_ratios_into(&mut v, &mut q, xd.view(), clip, beta);
                        (product(&w.t(), &v), product(&w.t(), &q))
                    }
                }
            }
        };
        let c = Self {
            rows: x.nrows(),
            width: p,
            first,
            second,
            energy,
            columns: None,
        };
        (c, scored)
    }

    /// Whether every value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        all_finite(&self.first)
            && all_finite(&self.second)
            && all_finite(&self.energy)
            && self.columns.as_ref().is_none_or(|c| c.is_finite())
    }

    /// Adds another batch's (or chunk's) contribution to this one.
    pub(crate) fn add(&mut self, other: &Self) {
        self.rows += other.rows;
        self.first += &other.first;
        self.second += &other.second;
        self.energy += &other.energy;
        if let (Some(a), Some(b)) = (self.columns.as_mut(), other.columns.as_ref()) {
            a.add(b, self.first.nrows());
        }
    }
}

/// Accumulated statistics (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Statistics<F> {
    /// Frobenius: `A = Σ ρ^· WᵀW`. Other betas: the numerator sum.
    pub(crate) a: Array2<F>,
    /// Frobenius: `B = Σ ρ^· WᵀX` (column-major). Other betas: the denominator sum.
    pub(crate) b: Array2<F>,
    /// Forget-weighted `Σ w_j²` per component.
    pub(crate) energy: Array1<f64>,
    /// Forget-weighted number of rows.
    pub(crate) rows: f64,
    /// Rows folded in, unweighted.
    pub(crate) raw_rows: u64,
    /// Observed-only Frobenius and implicit feedback: each column's own statistics.
    pub(crate) columns: Option<ColumnStats<F>>,
}

impl<F: Float> Statistics<F> {
    /// Empty statistics. Frobenius keeps B column-major: sparse batches add `Xᵀ W` into
    /// it without transposing, and the H update reads `Bᵀ` as a standard p × k array.
    /// Observed-only Frobenius and implicit feedback keep only A here (their columns have
    /// statistics of their own): B is k × 0.
    pub(crate) fn zeros(loss: Loss, mode: Unobserved, k: usize, p: usize) -> Self {
        let frobenius = loss.beta() == 2.0;
        let a_cols = if frobenius { k } else { p };
        let per_column = frobenius && mode != Unobserved::Zero;
        let b_cols = if per_column { 0 } else { p };
        Self {
            columns: per_column.then(|| ColumnStats::zeros(k, p)),
            a: Array2::zeros((k, a_cols)),
            b: if frobenius {
                Array2::zeros((k, b_cols).f())
            } else {
                Array2::zeros((k, p))
            },
            energy: Array1::zeros(k),
            rows: 0.0,
            raw_rows: 0,
        }
    }

    pub(crate) fn fold(
        &mut self,
        rho: F,
        first: &Array2<F>,
        second: &Array2<F>,
        c: &Contribution<F>,
    ) {
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
        if let (Some(s), Some(cc)) = (self.columns.as_mut(), c.columns.as_ref()) {
            s.fold(r, cc);
        }
    }

    /// Whether every value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        all_finite(&self.a)
            && all_finite(&self.b)
            && self.rows.is_finite()
            && self.columns.as_ref().is_none_or(|c| c.is_finite())
    }

    /// Grows to `p` features: the new ones have no statistics yet.
    pub(crate) fn grow(&mut self, p: usize, frobenius: bool) {
        let grow = |m: &mut Array2<F>| {
            let (k, old) = m.dim();
            if old > 0 && old < p {
                let mut out = if m.t().is_standard_layout() {
                    Array2::zeros((k, p).f())
                } else {
                    Array2::zeros((k, p))
                };
                out.slice_mut(s![.., ..old]).assign(m);
                *m = out;
            }
        };
        // Frobenius A is k × k; B is k × 0 with per-column statistics (left alone above).
        if !frobenius {
            grow(&mut self.a);
        }
        grow(&mut self.b);
        if let Some(c) = self.columns.as_mut() {
            c.grow(p);
        }
    }

    /// The multiplicative statistics of atom `j` as they would have been, had the atom
    /// always been `c` times larger (and its codes `c` times smaller): the numerator
    /// carries `H^(1/γ)` and the codes, the denominator the codes. The update's fixed
    /// point `(A/B)^γ` scales by exactly `c`.
    pub(crate) fn rescale_atom(&mut self, j: usize, c: f64, gamma: f64) {
        let (ca, cb) = (F::from_f64(c.powf(1.0 / gamma - 1.0)), F::from_f64(1.0 / c));
        self.a.row_mut(j).mapv_inplace(|v| v * ca);
        self.b.row_mut(j).mapv_inplace(|v| v * cb);
        self.energy[j] /= c * c;
    }

    pub(crate) fn forget_atom(&mut self, j: usize, frobenius: bool) {
        self.a.row_mut(j).fill(F::zero());
        if frobenius {
            self.a.column_mut(j).fill(F::zero());
        }
        self.b.row_mut(j).fill(F::zero());
        self.energy[j] = 0.0;
        if let Some(c) = self.columns.as_mut() {
            c.forget_atom(j);
        }
    }
}

/// The factor old statistics are multiplied by before a batch of `rows` is added, after
/// `seen` rows: `forget · (seen / (seen + rows))^decay` (see [`NmfParams::decay`]).
///
/// [`NmfParams::decay`]: crate::NmfParams::decay
pub(crate) fn past_scale(forget: f64, decay: f64, seen: u64, rows: usize) -> f64 {
    if decay == 0.0 {
        return forget;
    }
    let (t, b) = (seen as f64, rows as f64);
    if t + b == 0.0 {
        return forget;
    }
    forget * (t / (t + b)).powf(decay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{CsrMatrix, ValueRule};

    /// Dense and sparse batches contribute the same statistics (to rounding), for the
    /// losses whose sparse form visits only the non-zeros.
    #[test]
    fn sparse_contribution_equals_dense() {
        let x = ndarray::array![[1.0f64, 0.0, 2.0], [0.0, 3.0, 0.0], [0.5, 0.0, 0.0]];
        let csr = CsrMatrix::from_dense(x.view());
        let w = ndarray::array![[1.0, 0.5], [2.0, 0.0], [0.3, 0.3]];
        let h = ndarray::array![[1.0, 0.2, 0.4], [0.3, 1.0, 0.1]];
        let rule = ValueRule::for_beta(2.0);
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let d = Valid::check(MatRef::from(&x), 0, rule, 1).unwrap();
            let s = Valid::check(MatRef::from(&csr), 0, rule, 1).unwrap();
            let a = Contribution::new(loss, Unobserved::Zero, d, w.view(), h.view());
            let b = Contribution::new(loss, Unobserved::Zero, s, w.view(), h.view());
            for (p, q) in [(&a.first, &b.first), (&a.second, &b.second)] {
                assert!(
                    p.iter().zip(q.iter()).all(|(u, v)| (u - v).abs() < 1e-12),
                    "{loss}"
                );
            }
            assert_eq!(a.energy, b.energy);
        }
    }

    #[test]
    fn past_scale_counts_rows() {
        assert_eq!(past_scale(0.5, 0.0, 100, 10), 0.5);
        assert_eq!(past_scale(1.0, 1.0, 0, 10), 0.0);
        assert!((past_scale(1.0, 2.0, 30, 10) - 0.5625).abs() < 1e-15);
    }
}
