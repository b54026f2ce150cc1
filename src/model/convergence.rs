//! When more passes stop paying: the convergence test of multi-pass fits.
//!
//! While a pass reads the input, a fixed sample of its rows is copied aside: every
//! `stride`-th row, by the row's place in its source file (so shuffled passes sample the
//! same rows) or, for sources that do not say, by its place in the pass. When the pass
//! ends, the sample's loss is measured against the dictionary as it stands, with fresh
//! codes (solved as the codes a dictionary learns from are), and the fit stops once a pass
//! improves on the best loss before it by less than
//! [`pass_tol`](crate::NmfParams::pass_tol), relatively, after
//! a pass that gained less than [`SETTLED`] times that on the best before it: gains have
//! become small, or two passes in a row ended above the best, not one pass stalled.
//!
//! Why one pass is not enough: an online fit's loss is not monotone. Ten seconds of speech
//! in noise (626 frames, three 256-row batches a pass): under KL the sample's loss went
//! 17702, 13639, 13916, and a rule that stopped on one worse pass stopped there at 66.0
//! a frame, where passes 4 to 30 come down to 51.2; under Itakura-Saito it went 4652,
//! 4143, 4142 (a stall), then 3948 and on down to 3600 after 40 passes, and the one-pass
//! rule stopped at 105.9 a frame instead of about 90
//! (`tests/audio.rs::short_clips_learn_until_converged`).
//!
//! Why a sample and not the loss each batch reports as it is learned from: that loss is
//! measured against the dictionary *before* each batch, with the codes the dictionary
//! learns from (which stop early), so it is noisy on small inputs. On breast cancer
//! (569 × 30, k = 6) it moved by ±3 % from pass to pass while the error fell by 0.5 % a
//! pass. The sample's loss is a deterministic function of the dictionary.
//!
//! The sampled rows are learned from like every other row. Under the Frobenius loss at
//! its default decay the sample's losses also set the window schedule ([`pass_decay`]),
//! so there a fit with the test learns another model than one without it (`--epochs`,
//! a pass tolerance of 0); otherwise a fit that runs all its passes learns the same model
//! with or without the test.

use crate::float::Float;
use crate::matrix::{Batch, BatchBuffer, CsrMatrix, MatRef, Matrix, Origin};

/// Rows the sample aims at: enough that its loss moves like the whole input's, few enough
/// that scoring it costs a small share of a pass. Small inputs sample a quarter of their
/// rows, at least 256 (all of an input of up to 256 rows).
pub(crate) const SAMPLE_ROWS: u64 = 2048;

/// Stored values the sample may hold (64 MB of f32): wide rows make a smaller sample.
const SAMPLE_VALUES: usize = 1 << 24;

/// The stride of an input of unknown length: the sample fills up within its first
/// 2048 × 16 rows.
const UNKNOWN_STRIDE: u64 = 16;

/// Every how many rows one is sampled, for an input of `rows` rows (when known).
pub(crate) fn sample_stride(rows: Option<u64>) -> u64 {
    match rows {
        Some(n) => {
            let aim = (n / 4).max(n.min(256)).clamp(1, SAMPLE_ROWS);
            n.div_ceil(aim).max(1)
        }
        None => UNKNOWN_STRIDE,
    }
}

/// The rows of one pass that the convergence test scores, collected as the pass reads them.
pub(crate) struct RowSample<F> {
    stride: u64,
    rows: BatchBuffer<F>,
    values: usize,
    /// Whether the rows are kept sparse: as the first sampled row was (a source that mixes
    /// dense and sparse batches has its rows converted).
    sparse: Option<bool>,
}

impl<F: Float> RowSample<F> {
    /// An empty sample taking every `stride`-th row.
    pub(crate) fn new(stride: u64) -> Self {
        Self {
            stride: stride.max(1),
            rows: BatchBuffer::new(),
            values: 0,
            sparse: None,
        }
    }

    /// Copies the sampled rows of `x`, whose first row is row `first` of the pass and
    /// whose rows come from `origin` (empty when the source does not say).
    pub(crate) fn offer(&mut self, x: MatRef<F>, origin: &Origin, first: u64) {
        let full = |s: &Self| s.rows.rows() as u64 >= SAMPLE_ROWS || s.values >= SAMPLE_VALUES;
        for r in 0..x.nrows() {
            if full(self) {
                return;
            }
            let key = origin.locate(r).map_or(first + r as u64, |(_, row)| row);
            if key.is_multiple_of(self.stride) {
                let row = x.slice_rows(r..r + 1);
                let sparse = *self.sparse.get_or_insert(matches!(row, MatRef::Csr(_)));
                let row = match (row, sparse) {
                    (MatRef::Dense(d), true) => Matrix::Csr(CsrMatrix::from_dense(d)),
                    (MatRef::Csr(c), false) => Matrix::Dense(c.to_dense()),
                    (row, _) => row.to_owned(),
                };
                self.values += row.view().nnz();
                self.rows.push(Batch::new(row));
            }
        }
    }

    /// Rows sampled so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.rows()
    }

    /// The sampled rows as one matrix; `None` when no row was sampled.
    pub(crate) fn finish(mut self) -> Option<Matrix<F>> {
        let n = self.rows.rows();
        (n > 0).then(|| self.rows.take(n, 0).into_data())
    }
}

/// The relative improvement of the last sample loss in `history` over the one before it:
/// `None` before the second pass or when either loss is not finite.
pub(crate) fn improvement(history: &[f64]) -> Option<f64> {
    let [.., prev, last] = history else {
        return None;
    };
    gain(*prev, *last)
}

/// The relative gain from loss `from` to loss `to`: `None` when either is not finite.
fn gain(from: f64, to: f64) -> Option<f64> {
    (from.is_finite() && to.is_finite()).then(|| (from - to) / from.abs().max(f64::MIN_POSITIVE))
}

/// The least of `losses` (infinite when empty).
fn least(losses: &[f64]) -> f64 {
    losses.iter().copied().fold(f64::INFINITY, f64::min)
}

/// How small, in units of the tolerance, the gain of the pass before a small gain must be
/// for the fit to stop: a fit whose gains shrink steadily stops where it would on the last
/// gain alone (gains shrinking by less than 4× a pass), and one pass that stalls after a
/// large gain does not stop it.
pub(crate) const SETTLED: f64 = 4.0;

/// The relative gain of the last loss in `history` over the best before it: `None` before
/// the second pass or when either is not finite (0 for a perfect fit that stays perfect).
fn gain_on_best(history: &[f64]) -> Option<f64> {
    let (last, earlier) = history.split_last()?;
    gain(least(earlier), *last)
}

/// The window schedule's stages: the past data a multi-pass Frobenius fit weighs, in
/// passes' worth of rows, is about 1 / 16 of a pass, then 1 / 4, then the default decay's
/// own window (which grows with the passes towards every row).
///
/// With exact replay (`model::replay`) a pass over the same batches is about one outer
/// alternating step: codes against the dictionary of their moment, then a dictionary that
/// fits them all. Where the problem is ill-conditioned (uniform factors, whose atoms share
/// a large common part) each step gains little: on 20000 × 500 uniform-factor data at k
/// 10, 20 passes at the default decay ended at 1.43× the SVD bound and the 50-pass cap at
/// 1.22×. A short window makes each of a pass's dictionary updates an almost exact step on
/// the latest batches (at pass 20, decay 512, about the last 800 rows: 1.003×), at a cost
/// in variance of about k / (window rows) of the squared error, which the later stages
/// remove.
pub(crate) const WINDOW_STAGES: [f64; 2] = [16.0, 4.0];

/// The shortest window, in rows per atom: a window of `W` rows costs about `k / W` of
/// the squared error, so 64 rows an atom keep it within 1.6 %. On small inputs this is
/// most of a pass and the schedule changes little: the 854 rows of scikit-learn's sample
/// images at k 20 with windows of 1/16 of a pass (53 rows) stopped 0.7 % above the error
/// the default decay reaches.
pub(crate) const WINDOW_ROWS_PER_ATOM: f64 = 64.0;

/// A pass that gains less than this on the best sample loss before it ends its window
/// stage: the short window has done what it can.
pub(crate) const WINDOW_TOL: f64 = 1e-2;

/// The stage of the window schedule (an index into [`WINDOW_STAGES`], or its length once
/// settled on the default decay) for the pass after those whose sample losses are
/// `history`. The first pass (pass 0) keeps the default decay; pass 1 starts the first
/// stage, and every later pass that gained less than [`WINDOW_TOL`] (or whose loss is not
/// finite) moves the next pass on one stage.
pub(crate) fn window_stage(history: &[f64]) -> usize {
    let mut stage = 0;
    for n in 2..=history.len() {
        let stalled = gain_on_best(&history[..n]).is_none_or(|g| g < WINDOW_TOL);
        if stage < WINDOW_STAGES.len() && stalled {
            stage += 1;
        }
    }
    stage
}

/// The past-data decay of pass `pass` (0-based) under the window schedule, with `base`
/// the loss's default decay, `history` the sample losses of the passes before it and
/// `rows_per_atom` the rows of a pass over the rank: a decay of `m (pass + 1) − 1` weighs
/// about the last `1 / m` of a pass (after `t` rows the window is `t / (decay + 1)`
/// rows), `m` at most the stage's and at most `rows_per_atom` /
/// [`WINDOW_ROWS_PER_ATOM`], the decay never less than `base`.
///
/// The decay is a function of the model's state (its passes and sample losses), so a
/// resumed fit finds the same one.
pub(crate) fn pass_decay(base: f64, pass: u64, history: &[f64], rows_per_atom: f64) -> f64 {
    if pass == 0 {
        return base;
    }
    match WINDOW_STAGES.get(window_stage(history)) {
        Some(&m) => {
            let m = m.min(rows_per_atom / WINDOW_ROWS_PER_ATOM);
            base.max(m * (pass as f64 + 1.0) - 1.0)
        }
        None => base,
    }
}

/// Passes over which a history that went up is judged on its trend (see [`converged`]).
pub(crate) const TREND_PASSES: usize = 3;

/// Whether a fit whose sample losses are `history` has converged under `tol` (0 never
/// stops a fit): the last pass gained less than `tol` on the best loss before it, and the
/// pass before it less than [`SETTLED`] × `tol` on the best before that. So gains that
/// have become small stop a fit, as do two passes in a row above the best loss before
/// them; one pass that stalls or goes up after a large gain does not. On the second pass
/// (no pass before to judge) a gain in `[0, tol)` stops the fit and a worse loss does not.
///
/// A history that went up in any of its last [`TREND_PASSES`] passes is noisy, and one
/// pass's gain says little there: it stops only when its best of those passes improves on
/// the best before them by less than `TREND_PASSES × tol`, on average `tol` a pass. On a
/// 3 s clip (188 frames, one batch a pass) the sample's KL moves by ±1–2 % around a trend
/// that falls by about 1.5 % a pass; judged pass by pass the fit stopped after 9 passes at
/// 46.26 a frame, judged on its trend it runs to 41.86.
pub(crate) fn converged(history: &[f64], tol: f64) -> bool {
    if tol <= 0.0 {
        return false;
    }
    let Some(last) = gain_on_best(history) else {
        return false;
    };
    if last >= tol {
        return false;
    }
    let settled = match gain_on_best(&history[..history.len() - 1]) {
        Some(before) => before < SETTLED * tol,
        None => last >= 0.0,
    };
    // A history that went up within its last passes is noisy: judge its trend instead.
    let n = history.len();
    if settled && n > TREND_PASSES + 1 {
        let rose = history[n - TREND_PASSES - 1..]
            .windows(2)
            .any(|w| w[1] > w[0]);
        if rose {
            let (before, recent) = history.split_at(n - TREND_PASSES);
            return gain(least(before), least(recent))
                .is_some_and(|trend| trend < TREND_PASSES as f64 * tol);
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use std::sync::Arc;

    #[test]
    fn strides_aim_at_the_sample_size() {
        assert_eq!(sample_stride(Some(20_000)), 10);
        // Small inputs: a quarter of the rows, at least 256.
        assert_eq!(sample_stride(Some(1251)), 5);
        assert_eq!(sample_stride(Some(569)), 3);
        assert_eq!(sample_stride(Some(200)), 1);
        assert_eq!(sample_stride(Some(0)), 1);
        assert_eq!(sample_stride(Some(2_800_000)), 1368);
        assert_eq!(sample_stride(None), UNKNOWN_STRIDE);
    }

    #[test]
    fn rows_are_sampled_by_their_place_in_the_source() {
        let x = Array2::from_shape_fn((10, 3), |(i, j)| (10 * i + j) as f32);
        // No origin: the place in the pass. Batches of 4, 4 and 2 rows.
        let mut s = RowSample::new(3);
        for (start, end) in [(0, 4), (4, 8), (8, 10)] {
            let part = MatRef::Dense(x.slice(ndarray::s![start..end, ..]));
            s.offer(part, &Origin::default(), start as u64);
        }
        let m = s.finish().unwrap();
        let firsts: Vec<f32> = m.view().to_dense().column(0).to_vec();
        assert_eq!(firsts, [0.0, 30.0, 60.0, 90.0]);

        // With an origin, the source's row: a batch of rows 5.. of a file samples 6 and 9.
        let name: Arc<str> = "part.parquet".into();
        let mut s = RowSample::new(3);
        s.offer(
            MatRef::Dense(x.slice(ndarray::s![0..5, ..])),
            &Origin::source(name, 5),
            0,
        );
        let m = s.finish().unwrap();
        assert_eq!(m.view().to_dense().column(0).to_vec(), [10.0, 40.0]);
    }

    #[test]
    fn sparse_rows_keep_their_entries_and_the_sample_is_bounded() {
        let x = Array2::from_shape_fn((6, 4), |(i, j)| {
            if (i + j) % 3 == 0 {
                1.0 + i as f64
            } else {
                0.0
            }
        });
        let c = CsrMatrix::from_dense(x.view());
        let mut s = RowSample::new(2);
        s.offer(MatRef::Csr(c.view()), &Origin::default(), 0);
        assert_eq!(s.len(), 3);
        let m = s.finish().unwrap();
        assert!(matches!(m, Matrix::Csr(_)));
        let d = m.view().to_dense();
        for (k, i) in [0, 2, 4].into_iter().enumerate() {
            assert_eq!(d.row(k), x.row(i));
        }

        // A source that mixes dense and sparse batches: rows follow the first one's kind.
        let mut s = RowSample::new(1);
        s.offer(MatRef::Csr(c.view()), &Origin::default(), 0);
        s.offer(MatRef::Dense(x.view()), &Origin::default(), 6);
        assert_eq!(
            s.finish()
                .unwrap()
                .view()
                .to_dense()
                .slice(ndarray::s![6.., ..]),
            x
        );
        let mut s = RowSample::new(1);
        s.offer(MatRef::Dense(x.view()), &Origin::default(), 0);
        s.offer(MatRef::Csr(c.view()), &Origin::default(), 6);
        assert!(matches!(s.finish().unwrap(), Matrix::Dense(_)));

        let big = Array2::<f32>::ones((3000, 2));
        let mut s = RowSample::new(1);
        s.offer(MatRef::Dense(big.view()), &Origin::default(), 0);
        assert_eq!(s.len() as u64, SAMPLE_ROWS);
        assert!(RowSample::<f32>::new(1).finish().is_none());
    }

    #[test]
    fn the_test_stops_on_small_gains_and_on_losses() {
        assert!(!converged(&[], 1e-3));
        assert!(!converged(&[10.0], 1e-3));
        assert!(!converged(&[10.0, 9.0], 1e-3));
        // A small gain after gains that had become small.
        assert!(converged(&[10.0, 9.0, 8.97, 8.965], 1e-3));
        assert!(converged(&[10.0, 9.995], 1e-3));
        // A stall after a large gain is not.
        assert!(!converged(&[10.0, 9.0, 8.995], 1e-3));
        assert!(!converged(&[4652.0, 4143.0, 4142.0], 1e-3));
        // One worse pass is not either: an online fit's loss is not monotone.
        assert!(!converged(&[10.0, 10.5], 1e-3));
        assert!(!converged(&[10.0, 9.0, 9.5], 1e-3));
        // Two passes in a row above the best before them: more passes would not help.
        assert!(converged(&[10.0, 9.0, 9.5, 9.2], 1e-3));
        assert!(converged(&[10.0, 10.5, 10.6], 1e-3));
        // Nor would a loss that swings around a level it no longer improves on.
        assert!(converged(&[10.0, 9.0, 9.5, 8.999], 1e-3));
        // ... unless the trend over the last three passes still falls by more than
        // three times the tolerance: noise on a falling loss (a 3 s clip under KL).
        let clip = [
            738.6, 667.0, 634.9, 590.2, 563.8, 552.2, 530.4, 529.8, 534.5,
        ];
        assert!(!converged(&clip, 1e-3));
        assert!(converged(&clip[..8], 1e-2));
        assert!(converged(&[10.0, 9.0, 8.99, 8.995, 8.991, 8.998], 1e-3));
        assert!(converged(&[10.0, 9.0, 9.5, 9.6], 1e-3));
        assert!(converged(&[10.0, 9.0, 9.2, 9.5], 1e-3));
        assert!(!converged(&[10.0, 9.0, 9.5, 8.9, 9.1], 1e-3));
        assert!(converged(&[10.0, 9.0, 9.5, 9.499], 1e-3));
        // A tolerance of 0 runs every pass.
        assert!(!converged(&[10.0, 10.0], 0.0));
        // Not finite: no verdict.
        assert!(!converged(&[f64::INFINITY, f64::INFINITY], 1e-3));
        assert!(!converged(&[1.0, f64::NAN], 1e-3));
        // A perfect fit stays perfect.
        assert!(converged(&[0.0, 0.0], 1e-3));
        assert_eq!(improvement(&[4.0, 3.0]), Some(0.25));
    }

    /// The window schedule: pass 0 at the default decay, pass 1 at a window of 1/16 of a
    /// pass, a stage on after every pass that gained less than 1 %, then the default.
    #[test]
    fn the_window_grows_when_a_stage_stops_paying() {
        assert_eq!(pass_decay(8.0, 0, &[], 1e9), 8.0);
        assert_eq!(pass_decay(8.0, 1, &[10.0], 1e9), 31.0);
        // Pass 1 gained 20 %: pass 2 stays on the first stage.
        assert_eq!(window_stage(&[10.0, 8.0]), 0);
        assert_eq!(pass_decay(8.0, 2, &[10.0, 8.0], 1e9), 47.0);
        // Pass 2 gained 0.5 %: the second stage (a quarter of a pass), then the default.
        let h = [10.0, 8.0, 7.96];
        assert_eq!(window_stage(&h), 1);
        assert_eq!(pass_decay(8.0, 3, &h, 1e9), 15.0);
        assert_eq!(window_stage(&[10.0, 8.0, 7.96, 8.1]), 2);
        assert_eq!(pass_decay(8.0, 4, &[10.0, 8.0, 7.96, 8.1], 1e9), 8.0);
        // Never below the default decay, and a non-finite loss ends a stage.
        assert_eq!(pass_decay(40.0, 1, &[1.0], 1e9), 40.0);
        // Small inputs: at least 64 rows an atom (here 8 of a pass's 256 at pass 1).
        assert_eq!(pass_decay(8.0, 1, &[10.0], 2048.0 / 8.0), 8.0);
        let falling: Vec<f64> = (0..7).map(|i| 10.0 * 0.8f64.powi(i)).collect();
        assert_eq!(pass_decay(8.0, 7, &falling, 2048.0 / 8.0), 31.0);
        assert_eq!(window_stage(&[1.0, f64::NAN]), 1);
        assert_eq!(window_stage(&[9.0, 5.0, 1.0, 0.999, 0.998, 0.5]), 2);
    }
}
