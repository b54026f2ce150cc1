//! The dictionary `H` and its update from the sufficient statistics ([`super::statistics`]).
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
//! **Exact passes** ([`super::replay`]): in a multi-pass Frobenius fit over a source that
//! repeats its batches, each batch's latest contribution replaces its own earlier one
//! instead, so the statistics become exact sums over the data's latest codes.
//!
//! **Dead atoms**: a component whose accumulated code energy `Σ w_j²` vanishes (for
//! Frobenius, `A_jj ≈ 0`; under Itakura-Saito, of each row's codes over its largest) or
//! whose row of H is all zero is re-seeded from a random row of the current batch
//! (seeded, logged).

use std::borrow::Cow;

use ndarray::{s, Array2, ArrayView2, Axis, ShapeBuilder, Zip};
use rand_chacha::ChaCha8Rng;

use super::dead_atoms::RowPool;
use super::loss::Loss;
use super::masked_columns;
use super::options::Unobserved;
use super::params::ValidParams;
use super::replay::{add_scaled, Replay};
use super::statistics::{past_scale, Contribution, Statistics};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::linalg::parallel::{chunks_of, map_indexed, CHUNK_ROWS};
use crate::linalg::{all_finite, pow, to_column_major};
use crate::solve::cd;

/// The floor of a multiplicative-update dictionary entry, as a share of its atom's mean
/// (see `Dictionary::apply`).
const MU_FLOOR: f64 = 1e-9;

/// What one dictionary update did.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct UpdateStats {
    /// Sweeps of the H update (1 for the multiplicative update).
    pub(crate) sweeps: usize,
    /// Components re-seeded because they were dead.
    pub(crate) reseeded: Vec<usize>,
}

/// The dictionary `H` (k × p) with its statistics. Owned by the model (and, in the
/// pipeline, by the dictionary-updater thread).
///
/// H is kept column-major: `Hᵀ`, which the code solvers and the H update work on, is then
/// a standard p × k array, and no batch transposes H. A model file stores arrays in
/// logical order; loading brings them back to these layouts (see `crate::persist`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dictionary<F> {
    pub(crate) h: Array2<F>,
    pub(crate) loss: Loss,
    pub(crate) mode: Unobserved,
    pub(crate) current: Statistics<F>,
    pub(crate) previous: Option<Statistics<F>>,
    pub(crate) rows_in_pass: u64,
    pub(crate) version: u64,
    /// Rows folded in over the dictionary's life (the `t` of the past-data scaling).
    pub(crate) life_rows: u64,
    /// The kept contributions of an exact multi-pass fit, while it lasts.
    pub(crate) replay: Option<Replay<F>>,
}

/// Checks that a dictionary of rank `k` over `p` features, with its statistics (current
/// and previous pass), fits in this machine's memory, before anything that large is
/// allocated: a sparse input whose largest column index is 2^40 must be an error, not an
/// allocation failure that aborts the process.
pub(crate) fn check_size<F: Float>(k: usize, p: usize, loss: Loss, mode: Unobserved) -> Result<()> {
    // H, and B (Frobenius) or numerator and denominator (other betas), twice; per-column
    // statistics hold a packed k × k matrix and a vector per column, twice.
    let arrays = match (loss.beta() == 2.0, mode) {
        (true, Unobserved::Zero) => 3.0,
        (true, _) => 1.0 + 2.0 * (k as f64 + 3.0) / 2.0,
        (false, _) => 5.0,
    };
    let bytes = arrays * k as f64 * p as f64 * std::mem::size_of::<F>() as f64;
    let total = physical_memory().unwrap_or(u64::MAX as f64);
    if bytes > total || (k as u128 * p as u128) > isize::MAX as u128 / 8 {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        return Err(Error::ModelTooLarge {
            rank: k,
            width: p,
            gib: gib(bytes),
            total_gib: gib(total),
        });
    }
    Ok(())
}

/// The value a new feature's column of H starts at, per atom: 0 where coordinate descent
/// updates H (it moves off zero as soon as rows use the feature, and a zero column leaves
/// the codes as they were), the atom's mean under multiplicative updates (which cannot
/// move a zero).
fn new_column_value<F: Float>(atom: ndarray::ArrayView1<F>, loss: Loss) -> F {
    if loss.beta() == 2.0 || atom.is_empty() {
        return F::zero();
    }
    F::from_f64(atom.iter().map(|v| v.as_f64()).sum::<f64>() / atom.len() as f64)
}

/// `h` (k × p₀, any layout) widened to `p` columns (column-major), the new ones at
/// [`new_column_value`]: what the codes of a batch wider than the dictionary are solved
/// against, and what the dictionary becomes when it grows.
pub(crate) fn padded<F: Float>(h: ArrayView2<F>, p: usize, loss: Loss) -> Array2<F> {
    let (k, old) = h.dim();
    let mut out = Array2::zeros((k, p.max(old)).f());
    out.slice_mut(s![.., ..old]).assign(&h);
    for (j, row) in h.rows().into_iter().enumerate() {
        let v = new_column_value(row, loss);
        out.slice_mut(s![j, old..]).fill(v);
    }
    out
}

/// This machine's memory in bytes (Linux `MemTotal`), when known.
fn physical_memory() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Each atom's floor under the multiplicative updates: [`MU_FLOOR`] of its mean.
fn atom_floors<F: Float>(h: ArrayView2<F>) -> Vec<F> {
    let p = h.ncols().max(1) as f64;
    h.rows()
        .into_iter()
        .map(|r| F::from_f64(MU_FLOOR * r.iter().map(|v| v.as_f64()).sum::<f64>() / p))
        .collect()
}

/// Raises the entries of a starting dictionary for a loss other than Frobenius to their
/// atom's floor (atoms in `keep`, given by the user as fixed, stay as they are). An exact
/// zero in H is one the multiplicative updates never move, and a column of zeros under
/// positive data is an infinite divergence whatever the codes (NNDSVD's zeros on a batch
/// where a feature appears in one row).
pub(crate) fn floor_start<F: Float>(h: &mut Array2<F>, keep: &[usize]) {
    let floors = atom_floors(h.view());
    for (r, (mut row, &floor)) in h.rows_mut().into_iter().zip(&floors).enumerate() {
        if keep.binary_search(&r).is_err() {
            row.mapv_inplace(|v| v.max(floor));
        }
    }
}

impl<F: Float> Dictionary<F> {
    /// A dictionary starting from `h`, with empty statistics.
    pub(crate) fn new(h: Array2<F>, loss: Loss, mode: Unobserved) -> Self {
        let (k, p) = h.dim();
        Self {
            current: Statistics::zeros(loss, mode, k, p),
            h: to_column_major(h),
            loss,
            mode,
            previous: None,
            rows_in_pass: 0,
            version: 0,
            life_rows: 0,
            replay: None,
        }
    }

    /// Grows to `p` features (new items of a growing catalogue): H gets columns of
    /// [`new_column_value`] per atom and the statistics empty columns, which the next
    /// updates fill from the rows that touch them.
    pub(crate) fn grow(&mut self, p: usize) {
        let old = self.h.ncols();
        if p <= old {
            return;
        }
        self.h = padded(self.h.view(), p, self.loss);
        let frobenius = self.loss.beta() == 2.0;
        self.current.grow(p, frobenius);
        if let Some(prev) = self.previous.as_mut() {
            prev.grow(p, frobenius);
        }
        if let Some(r) = self.replay.as_mut() {
            r.grow(p);
        }
        tracing::info!(from = old, to = p, "dictionary grew new features");
    }

    /// H (k × p).
    pub(crate) fn components(&self) -> ArrayView2<'_, F> {
        self.h.view()
    }

    /// Whether H and the statistics are all finite.
    pub(crate) fn is_finite(&self) -> bool {
        all_finite(&self.h)
            && self.current.is_finite()
            && self.previous.as_ref().is_none_or(|p| p.is_finite())
    }

    /// Keeps every batch's contribution from now on, for exact statistics over passes
    /// (see [`super::replay`]); the caller checks the conditions.
    pub(crate) fn keep_contributions(&mut self) {
        self.replay = Some(Replay::new());
    }

    /// Drops the kept contributions (a fit is over: a model file does not carry them).
    pub(crate) fn drop_contributions(&mut self) {
        self.replay = None;
    }

    /// Marks the start of a new pass over the same data (see the module docs).
    pub(crate) fn start_pass(&mut self, purge: bool, decay: f64) {
        if let Some(r) = self.replay.as_mut() {
            if r.begin_pass() {
                r.sum(&mut self.current, self.life_rows, decay);
                self.previous = None;
                self.rows_in_pass = 0;
                return;
            }
            tracing::info!("a pass differs from the first: passes blend their statistics");
            self.replay = None;
        }
        if purge && self.current.raw_rows > 0 {
            let (k, p) = self.h.dim();
            let fresh = Statistics::zeros(self.loss, self.mode, k, p);
            self.previous = Some(std::mem::replace(&mut self.current, fresh));
        }
        self.rows_in_pass = 0;
    }

    /// Folds a batch's contribution into the statistics and updates H. `x` is the batch
    /// (used only to re-seed dead atoms), `decay` the past-data decay of the current pass
    /// (`OnlineNmf::pass_decay`) and `rng` the model's seeded generator. The H
    /// update is spread over up to `threads` threads, on fixed blocks of columns: the
    /// result does not depend on `threads`.
    pub(crate) fn apply(
        &mut self,
        mut c: Contribution<F>,
        pool: &mut dyn RowPool<F>,
        params: &ValidParams,
        decay: f64,
        rng: &mut ChaCha8Rng,
        threads: usize,
    ) -> Result<UpdateStats> {
        self.grow(c.width);
        // A later pass of a replay: the batch's own kept contribution leaves first.
        match self.replay.as_ref().map(|r| r.slot(c.rows)) {
            Some(Ok(Some(kept))) => {
                let w = kept.weight(self.life_rows, decay);
                add_scaled(&mut self.current, &kept.stats, -w);
            }
            Some(Err(())) => {
                tracing::info!("a pass differs from the first: passes blend their statistics");
                self.replay = None;
            }
            _ => {}
        }
        let rho = F::from_f64(past_scale(params.forget(), decay, self.life_rows, c.rows));
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
        if let Some(r) = self.replay.as_mut() {
            if !r.keep(&mut c, self.life_rows) {
                tracing::info!(
                    budget = super::replay::REPLAY_BUDGET,
                    "batch statistics past the budget: passes blend their statistics"
                );
                self.replay = None;
            }
        }

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
        let per_column = self.current.columns.is_some();
        let sweeps = if per_column {
            let cur = self
                .current
                .columns
                .as_ref()
                .expect("per-column statistics");
            let prev = prev.and_then(|(p, left)| p.columns.as_ref().map(|c| (c, left)));
            let implicit = matches!(self.mode, Unobserved::Implicit { .. });
            let touched = c.columns.as_ref().map(|c| c.cols.as_slice()).unwrap_or(&[]);
            // Implicit feedback: the shared `Σ w wᵀ` moves every column's problem.
            let all: Vec<u32>;
            let cols = if implicit {
                all = (0..self.h.ncols() as u32).collect();
                &all
            } else {
                touched
            };
            // Implicit feedback reads every row for every item; observed-only data, the
            // rows that observe the item.
            let penalties = |count: f64| params.h_penalties(if implicit { rows } else { count });
            masked_columns::update_columns(
                &mut self.h,
                cols,
                cur,
                prev,
                implicit.then(|| a.view()),
                &penalties,
                (params.dict_max_iter(), params.dict_tol()),
                threads,
            )
        } else if frobenius {
            let (max_iter, tol) = (params.dict_max_iter(), params.dict_tol());
            hals_free_atoms(
                &mut self.h,
                a.view(),
                b.view(),
                params.fixed_components(),
                (l1, l2),
                (max_iter, tol),
                threads,
            )
        } else {
            let gamma = self.loss.mu_exponent();
            // A multiplicative update never moves a zero: an entry that reaches 0 (a
            // feature absent from the recent batches, whose statistics decayed) would stay
            // 0 for good, and every later row that has the feature would be explained by
            // nothing (on word counts with 16-row batches, half of H's columns died so).
            // Each atom keeps this share of its mean as a floor instead.
            let floors = atom_floors(self.h.view());
            let fixed = params.fixed_components();
            for (j, (((mut hr, ar), br), &floor)) in self
                .h
                .rows_mut()
                .into_iter()
                .zip(a.rows())
                .zip(b.rows())
                .zip(&floors)
                .enumerate()
            {
                if fixed.binary_search(&j).is_ok() {
                    continue;
                }
                Zip::from(&mut hr)
                    .and(ar)
                    .and(br)
                    .for_each(|h, &num, &den| {
                        let den = den + l1 + l2 * *h;
                        if den > F::zero() {
                            *h = pow(num / den, gamma).max(floor);
                        }
                    });
            }
            1
        };
        drop((a, b));
        if !frobenius && params.alpha_w() == 0.0 && params.alpha_h() == 0.0 {
            self.normalize_atoms(params.fixed_components());
        }
        let reseeded =
            self.reseed_dead(&energy, pool, rng, frobenius, params.fixed_components())?;
        self.version += 1;
        Ok(UpdateStats { sweeps, reseeded })
    }

    /// Brings statistics summed with the multiplicative exponent `written` (a model file
    /// from an earlier version) to this build's: the numerators hold `Σ num ⊙ H^(1/γ)`,
    /// and `H = (A / B)^γ` must stay the same dictionary. Multiplying A by
    /// `H^(1/γ_now − 1/γ_written)` keeps `(A / B)^γ_now = H` wherever H is positive, and
    /// weighs the past by the same rule as new batches from here on. Nothing changes when
    /// the exponents agree (every file this build writes). Returns whether the
    /// statistics are still finite (an exponent far from this build's can overflow them).
    pub(crate) fn adopt_mu_exponent(&mut self, written: f64) -> bool {
        let now = self.loss.mu_exponent();
        if self.loss.beta() == 2.0 || written == now {
            return true;
        }
        let e = 1.0 / now - 1.0 / written;
        tracing::info!(
            written,
            now,
            "statistics re-weighted to this build's exponent"
        );
        let h = &self.h;
        for stats in std::iter::once(&mut self.current).chain(self.previous.as_mut()) {
            Zip::from(&mut stats.a).and(h).for_each(|a, &hv| {
                if hv > F::zero() {
                    *a *= pow(hv, e);
                }
            });
        }
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .all(|s| s.a.iter().all(|v| v.is_finite()))
    }

    /// Rescales each atom of a multiplicative-update dictionary to mean 1, with its
    /// statistics to match (see [`Statistics::rescale_atom`]), so its codes take the scale.
    ///
    /// W H is invariant to moving a factor between an atom and its codes, and nothing in
    /// the online multiplicative updates pins that factor: on some data the atoms drift
    /// toward 0 while the codes grow, batch after batch, until f32 overflows (an 18 × 9
    /// matrix with β = 0.5 and one-row batches took H to 1e-20 and then to NaN). In exact
    /// arithmetic the rescaling changes nothing (the updates are equivariant to it); in
    /// floating point it keeps every factor near the data's scale. Without regularization
    /// only: penalties pin the scale themselves, and rescaling would change their meaning.
    /// Fixed atoms keep the scale they were given.
    fn normalize_atoms(&mut self, fixed: &[usize]) {
        let gamma = self.loss.mu_exponent();
        let p = self.h.ncols() as f64;
        for j in 0..self.h.nrows() {
            if fixed.binary_search(&j).is_ok() {
                continue;
            }
            let mean = self.h.row(j).iter().map(|v| v.as_f64()).sum::<f64>() / p;
            if !(mean > 0.0 && mean.is_finite()) || mean == 1.0 {
                continue;
            }
            let c = 1.0 / mean;
            let cf = F::from_f64(c);
            self.h.row_mut(j).mapv_inplace(|v| v * cf);
            self.current.rescale_atom(j, c, gamma);
            if let Some(prev) = self.previous.as_mut() {
                prev.rescale_atom(j, c, gamma);
            }
        }
    }
}

/// [`hals_dictionary`] on the free atoms only. With the fixed rows `F` of H held, the
/// free rows `f` solve the same problem with `A_ff` and `B_f − A_fF H_F`: the fixed
/// atoms take part in every column's fit but are never written.
fn hals_free_atoms<F: Float>(
    h: &mut Array2<F>,
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    fixed: &[usize],
    pen: (F, F),
    limits: (usize, f64),
    threads: usize,
) -> usize {
    if fixed.is_empty() {
        return hals_dictionary(h, a, b, pen, limits, threads);
    }
    let free: Vec<usize> = (0..h.nrows())
        .filter(|j| fixed.binary_search(j).is_err())
        .collect();
    if free.is_empty() {
        return 0;
    }
    let a_f = a.select(Axis(0), &free);
    let a_ff = a_f.select(Axis(1), &free);
    let b_f = &b.select(Axis(0), &free)
        - &product(&a_f.select(Axis(1), fixed), &h.select(Axis(0), fixed));
    let mut h_f = h.select(Axis(0), &free);
    let sweeps = hals_dictionary(&mut h_f, a_ff.view(), b_f.view(), pen, limits, threads);
    for (i, &j) in free.iter().enumerate() {
        h.row_mut(j).assign(&h_f.row(i));
    }
    sweeps
}

/// Coordinate descent on H from statistics (A, B); returns the most sweeps any column
/// took.
///
/// The columns of H are independent given A and B: column c solves the k-dimensional
/// problem `min ½ hᵀA h − B_cᵀh + penalties`, the same problem as one row's codes with
/// `G = A` and `r = B_c`. So H is updated as `Hᵀ` by the code solver (64 columns in
/// vector lanes), in fixed blocks of columns shared by the threads. Each column sweeps
/// coordinates j = 0..k in order and stops when its own relative change is below `tol`.
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
    let blocks: Vec<_> = chunks_of(p, CHUNK_ROWS).collect();
    let parts = map_indexed(blocks.len(), threads, |i| {
        let cols = blocks[i].clone();
        let mut hb = ht.slice(s![cols.clone(), ..]).to_owned();
        let stats = cd::solve(bt.slice(s![cols, ..]), a, &mut hb, pen, max_iter, tol);
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
    use crate::matrix::{MatRef, Valid, ValueRule};
    use crate::model::params::NmfParams;
    use ndarray::array;
    use rand::SeedableRng;

    fn valid(x: &Array2<f64>) -> Valid<'_, f64> {
        Valid::check(MatRef::from(x), 0, ValueRule::for_beta(2.0), 1).unwrap()
    }

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
        let mut d = Dictionary::new(
            Array2::from_elem((2, 4), 0.5),
            Loss::Frobenius,
            Unobserved::Zero,
        );
        let c = Contribution::new(
            Loss::Frobenius,
            Unobserved::Zero,
            valid(&x),
            w.view(),
            h_true.view(),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let u = d
            .apply(c, &mut valid(&x), &params, params.decay(), &mut rng, 1)
            .unwrap();
        assert!(u.reseeded.is_empty());
        for (a, b) in d.components().iter().zip(h_true.iter()) {
            assert!((a - b).abs() < 1e-8, "{} vs {h_true}", d.components());
        }
    }

    /// H is column-major when built from a row-major array, with the same values.
    #[test]
    fn h_is_column_major() {
        let h = array![[1.0f64, 0.0, 2.0], [0.5, 3.0, 0.0]];
        let d = Dictionary::new(h.clone(), Loss::Frobenius, Unobserved::Zero);
        assert!(d.components().t().is_standard_layout());
        assert_eq!(d.components(), h);
    }

    /// A component that no row uses is re-seeded from a batch row.
    #[test]
    fn dead_atom_is_reseeded() {
        let x = array![[1.0f64, 2.0, 0.0], [0.0, 1.0, 3.0]];
        let w = array![[1.0, 0.0], [2.0, 0.0]];
        let h = array![[0.5, 1.0, 1.0], [1.0, 1.0, 1.0]];
        let params = NmfParams::new(2).check().unwrap();
        let mut d = Dictionary::new(h.clone(), Loss::Frobenius, Unobserved::Zero);
        let c = Contribution::new(
            Loss::Frobenius,
            Unobserved::Zero,
            valid(&x),
            w.view(),
            h.view(),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let u = d
            .apply(c, &mut valid(&x), &params, params.decay(), &mut rng, 1)
            .unwrap();
        assert_eq!(u.reseeded, vec![1]);
        let row = d.components().row(1).to_owned();
        let is_row0 = (row[2] == 0.0) && row[0] > 0.0;
        let is_row1 = (row[0] == 0.0) && row[2] > 0.0;
        assert!(is_row0 || is_row1, "{row}");
        assert_eq!(d.current.a[[1, 1]], 0.0);
    }
}
