//! The codes `W_b` of a batch with the dictionary `H` fixed: the solver step of the
//! model, the in-memory `transform` and the pipeline's solver threads all go through
//! [`solve_chunked`](super::chunks::solve_chunked), the one loop that cuts a batch into
//! fixed chunks and spreads them over threads, which solves each chunk here.
//!
//! HALS (Frobenius, default) starts from clipped least squares; the multiplicative updates
//! (any beta) start from clipped least squares too for 1 ≤ β ≤ 2 (floored above zero,
//! which they cannot leave), otherwise from the flat start [`mu::initial_codes`]. Both
//! stop at a relative tolerance or an iteration limit, and report what they did; not
//! converging is reported, never an error.

use ndarray::{Array2, ArrayView2};

use super::loss::{divergence, frobenius_from_products};
use super::masked;
use super::options::{Solver, Unobserved};
use super::params::ValidParams;
use super::statistics::Contribution;
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::matrix::{MatRef, Valid};
use crate::solve::{cd, gram_inverse, kl_cd, least_squares_start, mu, SolveStats};

/// The codes of one batch and what solving them took.
#[derive(Clone, Debug)]
pub(crate) struct Codes<F> {
    /// Codes `W_b` (b × k).
    pub(crate) w: Array2<F>,
    /// Iterations and convergence.
    pub(crate) stats: SolveStats,
    /// The divergence `D(X_b | W_b H)` at these codes.
    pub(crate) loss: f64,
}

/// What every chunk of a batch shares: `Hᵀ` (standard layout, so `H = Hᵀᵀ` is
/// column-major whatever layout the caller's H had), and for HALS the Gram matrix
/// `G = H Hᵀ` with its inverse. Computed once per batch.
pub(crate) struct Prepared<F> {
    ht: Array2<F>,
    g: Array2<F>,
    g_inv: Option<Array2<F>>,
    /// For KL coordinate descent ([`kl_by_coordinates`]): H in standard layout and its
    /// row sums.
    kl: Option<(Array2<F>, Vec<F>)>,
    /// Iterations of the code solver, at most (see [`Prepared::learning`]).
    max_iter: usize,
    /// Whether the caller scores the codes of the multiplicative updates from the
    /// reconstruction its statistics form (see [`Prepared::scored_with_statistics`]).
    scored_with_statistics: bool,
}

/// Code iterations, at most, while a dictionary learns under a beta below 1 (see
/// [`Prepared::learning`]).
pub(crate) const LEARNING_CAP_BELOW_KL: usize = 20;

/// Code iterations, at most, of the first batches a dictionary learns from under a beta
/// below 1; through a fit's first pass the cap grows with the dictionary's updates up to
/// [`LEARNING_CAP_BELOW_KL`] (see [`Prepared::learning_after`]).
pub(crate) const LEARNING_START_BELOW_KL: usize = 5;

/// Dictionary updates per extra code iteration in the schedule of
/// [`Prepared::learning_after`].
pub(crate) const UPDATES_PER_ITERATION: u64 = 5;

/// How far a dictionary has learnt when the codes of a batch are solved against it: the
/// updates it has had (its version) and the pass of the fit that batch belongs to (0 for
/// the first, and for batches learnt one by one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Learnt {
    pub(crate) updates: u64,
    pub(crate) pass: u64,
}

/// Coordinate-descent sweeps, at most, of the codes a Frobenius dictionary learns from.
pub(crate) const LEARNING_CAP_HALS: usize = 10;

impl<F: Float> Prepared<F> {
    /// The shared products of `h` (k × p, any layout) for the solver of `params`.
    pub(crate) fn new(params: &ValidParams, h: ArrayView2<F>) -> Self {
        let ht = h.t().as_standard_layout().into_owned();
        let needs_gram = match params.solver() {
            Solver::Hals => true,
            Solver::Multiplicative => mu_starts_from_least_squares(params.loss().beta()),
        };
        let kl = kl_coordinates_possible(params).then(|| {
            let h = h.as_standard_layout().into_owned();
            let sums = h.rows().into_iter().map(|r| r.sum()).collect();
            (h, sums)
        });
        let (g, g_inv) = if needs_gram {
            let g = product(&ht.t(), &ht);
            let g_inv = gram_inverse(g.view());
            (g, g_inv)
        } else {
            (Array2::zeros((0, 0)), None)
        };
        let max_iter = params.code_max_iter();
        Self {
            ht,
            g,
            g_inv,
            kl,
            max_iter,
            scored_with_statistics: false,
        }
    }
    /// The same products for the codes a dictionary learns from. Below β = 1 (Itakura-Saito)
    /// the multiplicative updates (with γ = ½, IS's exponent until 2026-12) ran to the
    /// iteration cap on nearly every batch, and precise codes against a dictionary that
    /// is still moving buy little: on speech magnitudes (1251 frames × 513, k 20, batch
    /// 128) codes capped at
    /// [`LEARNING_CAP_BELOW_KL`] while learning make a pass 0.045 s instead of 0.35 s.
    ///
    /// Frobenius codes by coordinate descent converge in a few sweeps (3 at the median on
    /// rank-16 data at k 16, 28 at most on digits), except when k exceeds the data's rank:
    /// then the problem is degenerate, coordinate descent creeps along nearly flat
    /// directions, and the relative-change test does not fire. At k 32 on rank-16 data
    /// (100 000 × 500, batch 4096) half the rows ran to the earlier cap of 50 and the mean
    /// was about 40 sweeps; the solver was two thirds of the fit's instructions (callgrind).
    /// Capped at [`LEARNING_CAP_HALS`] while learning, two passes there take 0.35 s
    /// instead of 0.63 s in process (one thread), and on the 6.3 GB file of the same kind
    /// k 32 streams at 87 % of k 16's rate instead of 81 % (medians of 3 alternating
    /// runs). The loss moves little: those two passes end lower (377.4 against 378.8),
    /// k 32 on `r16.parquet` 10 passes end 0.26 % higher (still below k 16's), digits
    /// after 40 passes the same to 6 digits, breast cancer after 20 passes 1.5 % higher,
    /// and the benchmark family needs the passes it needed before (digits one more at
    /// fixed epochs; with the defaults k 64 stops after 11 passes instead of 9, in less
    /// time, breast cancer lower).
    /// The first pass's growing cap of Itakura-Saito (below) was tried for HALS too
    /// (2026-12-04: 2 sweeps, one more per update): one pass over sparse-100k ended
    /// closer to the bound (1.0006× against 1.0015×) in 4 % less time and the planted
    /// family needed the passes it needed before, but digits took 21 passes to its
    /// target instead of 6 (its defaults stopped 0.3 % above it), breast cancer 5
    /// instead of 4 and the sample images 59 instead of 48: left out.
    /// Rows that converge stop before the cap, so it binds only the slow ones. A
    /// projected-gradient stop relative to each row's start was tried instead: it fired,
    /// but it also stopped the well-posed rows of digits early (20 passes 0.2601 against
    /// 0.2578 relative error).
    ///
    /// Codes handed out (`transform`, separation) keep the full cap.
    pub(crate) fn learning(mut self, params: &ValidParams) -> Self {
        if params.loss().beta() < 1.0 {
            self.max_iter = self.max_iter.min(LEARNING_CAP_BELOW_KL);
        } else if params.solver() == Solver::Hals {
            self.max_iter = self.max_iter.min(LEARNING_CAP_HALS);
        }
        self
    }

    /// The products for the codes of a batch a dictionary learns from, as far as it has
    /// learnt: [`learning`](Self::learning)'s caps, and below β = 1, through the first
    /// pass of a fit (and for batches learnt one by one), a cap that starts at
    /// [`LEARNING_START_BELOW_KL`] iterations and grows by one every
    /// [`UPDATES_PER_ITERATION`] updates to [`LEARNING_CAP_BELOW_KL`] (after 75). Later
    /// passes have the full learning cap.
    ///
    /// Early dictionaries are far from where they end, and codes polished against them
    /// are not only wasted: they pull the next update towards the atoms that happen to
    /// be there. Rough codes first let the dictionary settle in cheaper updates, and
    /// often in fewer passes. Itakura-Saito, k 20, 256-row batches, in process, passes to
    /// MiniBatchNMF(IS)'s final divergence with the fixed cap of 20 → with the schedule:
    /// the separation example's training speech (1251 frames) 16 → 13, 11.7 s of
    /// espeak-ng speech 24 → 14, espeak speech mixed with pink noise 20 → 18, the
    /// example's training noise 10 → 11; whole processes on the first, at 16 and 13
    /// passes: 1.25× faster. In one pass over 11 955 frames of those four end to end the
    /// divergence is 3 % lower (2.084e6 → 2.015e6) in 0.55 s instead of 0.91 s.
    ///
    /// Not beyond the first pass: a 3 s clip is one batch a pass, and with the cap
    /// growing by updates (1 a pass) or by 2–5 iterations a pass its loss went up from
    /// the second pass (sample divergence 1235, 1255, 1311), where the fixed cap fell
    /// steadily; with rough codes in the first pass only it ends lower than before (50
    /// passes, 80.09 a frame, against 30 at 81.58). Starting at 8 iterations lost the
    /// gain (17 passes on the speech, 25 on espeak); starting at 2 did as well on the
    /// speech and better on espeak (6 passes), but ended the long single pass higher
    /// (2.071e6) and is not measured on more audio yet.
    ///
    /// `learnt` counts the dictionary's version and the batch's pass, so the cap is the
    /// same for any timing, any thread count and after a resume.
    pub(crate) fn learning_after(self, params: &ValidParams, learnt: Learnt) -> Self {
        let mut prep = self.learning(params);
        if params.loss().beta() < 1.0 && learnt.pass == 0 {
            let grown = (learnt.updates / UPDATES_PER_ITERATION)
                .saturating_add(LEARNING_START_BELOW_KL as u64);
            prep.max_iter = prep
                .max_iter
                .min(usize::try_from(grown).unwrap_or(usize::MAX));
        }
        prep
    }
    /// Leaves the divergence of the codes of `x` to the caller where the multiplicative
    /// updates solve them and [`Contribution::new_on`] forms their reconstruction: the
    /// caller takes it from there (the codes' own loss is 0 until it does). Returns
    /// whether it does.
    pub(crate) fn scored_with_statistics(&mut self, params: &ValidParams, x: MatRef<F>) -> bool {
        self.scored_with_statistics = params.solver() == Solver::Multiplicative
            && !kl_by_coordinates(self, x)
            && Contribution::<F>::forms_reconstruction(params.loss(), params.unobserved(), x);
        self.scored_with_statistics
    }
    /// H (k × p), column-major.
    pub(crate) fn h(&self) -> ArrayView2<'_, F> {
        self.ht.t()
    }
    pub(super) fn k(&self) -> usize {
        self.ht.ncols()
    }
}

/// Whether the multiplicative updates start from clipped least squares (β between 1 and
/// 2: KL and the betas between it and Frobenius, whose optima sit close to the
/// least-squares codes) rather than from the flat start. Below 1 (Itakura-Saito), least
/// squares weighs the loud entries far too much to be a good start.
fn mu_starts_from_least_squares(beta: f64) -> bool {
    (1.0..=2.0).contains(&beta)
}

/// Whether the codes of some batches may go to KL coordinate descent: KL with the solver
/// left to its default.
fn kl_coordinates_possible(params: &ValidParams) -> bool {
    params.loss().beta() == 1.0 && !params.solver_is_chosen()
}

/// The largest share of positive entries at which a KL batch's codes go to coordinate
/// descent (see [`kl_by_coordinates`]).
const KL_CD_DENSITY: f64 = 0.9;

/// Whether the codes of batch `x` are solved by KL coordinate descent ([`kl_cd`])
/// instead of the multiplicative updates: KL with the default solver, on batches with at
/// most [`KL_CD_DENSITY`] positive entries, whatever their layout (so a dense and a CSR
/// copy of the same data get the same solver). A sweep visits the positive entries only
/// and converges in a few, and a code can reach zero exactly, where the updates only
/// approach it. One thread, 1024 planted rows × 1000, k = 20, ms to a solve (dense
/// layout / CSR):
///
/// | positive share | coordinate descent | updates |
/// |---|---|---|
/// | 5 % | 25 / 18 | 806 / 108 |
/// | 20 % | 58 / 47 | 122 / 170 |
/// | 35 % | 86 / 77 | 110 / 293 |
/// | 50 % | 109 / 97 | 108 / 369 |
/// | 100 % | 129 / 151 | 73 / 521 |
///
/// What decides is where the optimum lies. Zeros in the data put zeros in the codes, which
/// the updates approach slowly, and the online fit's fixed point follows the codes: on
/// 20000 × 500 Poisson counts (54 % positive, k 10, batch 1024), 20 passes with the
/// updates end at 2.72487e6, 0.14 % above NMF(mu)'s converged 2.7210e6; by coordinate
/// descent 11 passes (2.6 s) are below it and the updates' 20-pass divergence is reached
/// in 4 (0.98 s instead of 3.1 s). A magnitude spectrogram has no zeros: on 1251 frames
/// of speech (513 bins, k 20, batch 128) both end 30 passes at the same divergence
/// (5.764e4 and 5.774e4) and the updates take 0.05 s a pass against 0.12 s.
pub(super) fn kl_by_coordinates<F: Float>(prep: &Prepared<F>, x: MatRef<F>) -> bool {
    if prep.kl.is_none() {
        return false;
    }
    let (_, _, positive) = x.value_summary();
    let cells = (x.nrows() * x.ncols()).max(1) as f64;
    positive as f64 <= KL_CD_DENSITY * cells
}

/// Least-squares codes floored at this share of the flat start: the multiplicative
/// updates cannot move a zero, so every code keeps a little mass it can grow from.
const MU_START_FLOOR: f64 = 1e-3;

/// The multiplicative updates' start: clipped least squares, floored at a small share of
/// [`mu::initial_codes`] (see [`mu_starts_from_least_squares`]), or the flat start.
fn mu_start<F: Float>(params: &ValidParams, prep: &Prepared<F>, x: MatRef<F>) -> Array2<F> {
    let flat = mu::initial_codes(x, prep.h());
    if !mu_starts_from_least_squares(params.loss().beta()) || prep.g_inv.is_none() {
        return flat;
    }
    let r = x.x_ht(prep.ht.view());
    let mut w = least_squares_start(r.view(), prep.g_inv.as_ref());
    let floor = F::from_f64(MU_START_FLOOR);
    ndarray::Zip::from(&mut w)
        .and(&flat)
        .for_each(|v, &f| *v = v.max(f * floor));
    w
}

/// Solves the codes of `x` with the solver, loss and W penalties of `params`, starting
/// from `warm` when given; `prep` holds the products of H shared by every chunk. `kl_cd`:
/// KL codes by coordinate descent (see [`kl_by_coordinates`]).
pub(super) fn solve_prepared<F: Float>(
    params: &ValidParams,
    prep: &Prepared<F>,
    x: Valid<F>,
    warm: Option<Array2<F>>,
    kl_cd: bool,
) -> Codes<F> {
    let x = x.view();
    if let (MatRef::Csr(c), true) = (x, params.unobserved() != Unobserved::Zero) {
        let (w, stats, loss) = if params.loss().beta() == 1.0 {
            masked::codes_kl(params, prep.ht.view(), c, warm.as_ref().map(|w| w.view()))
        } else {
            masked::codes(
                params,
                prep.ht.view(),
                prep.g.view(),
                c,
                warm.as_ref().map(|w| w.view()),
            )
        };
        return Codes { w, stats, loss };
    }
    let (l1, l2) = params.w_penalties(x.ncols());
    let pen = (F::from_f64(l1), F::from_f64(l2));
    let (max_iter, tol) = (prep.max_iter, params.code_tol());
    match params.solver() {
        Solver::Hals => {
            let r = x.x_ht(prep.ht.view());
            let g = prep.g.view();
            let mut w = warm.unwrap_or_else(|| least_squares_start(r.view(), prep.g_inv.as_ref()));
            let stats = cd::solve(r.view(), g, &mut w, pen, max_iter, tol);
            let loss = frobenius_from_products(x.squared_norm(), w.view(), r.view(), g);
            Codes { w, stats, loss }
        }
        Solver::Multiplicative => {
            let beta = params.loss().beta();
            let mut w = warm.unwrap_or_else(|| mu_start(params, prep, x));
            let (stats, scored) = match (&prep.kl, kl_cd) {
                (Some((h, sums)), true) => {
                    let clip = mu::relative_clip(x);
                    let (stats, loss) =
                        kl_cd::solve_scored(x, h.view(), sums, &mut w, pen, max_iter, tol, clip);
                    (stats, Some(loss))
                }
                _ => {
                    let (h, ht) = (prep.h(), prep.ht.view());
                    let stats = mu::solve(x, h, ht, &mut w, beta, pen, max_iter, tol);
                    (stats, None)
                }
            };
            // The solver's own score where it has one; an infinite one (a `v` that
            // rounding left at zero under a positive entry) is measured afresh.
            let loss = match scored {
                Some(l) if l.is_finite() => l,
                None if prep.scored_with_statistics => 0.0,
                _ => divergence(x, w.view(), prep.h(), beta),
            };
            Codes { w, stats, loss }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{CsrMatrix, ValueRule};
    use crate::model::chunks::solve_chunked;
    use crate::model::loss::Loss;
    use crate::model::params::NmfParams;
    use ndarray::array;

    fn valid<F: Float>(x: MatRef<F>) -> Valid<F> {
        Valid::check(x, 0, ValueRule::for_beta(0.5), 1).unwrap()
    }

    /// Poisson-like counts of a planted KL model: the least-squares start reaches the
    /// flat start's divergence (to 1e-4) in fewer multiplicative updates.
    #[test]
    fn least_squares_start_speeds_up_kl_codes() {
        let d = crate::synth::PlantedSpec::new(300, 60, 4)
            .seed(11)
            .generate();
        // Round to counts so the data is not exactly factorizable.
        let x = d.x.mapv(|v| (v * 10.0).round());
        let h = &d.h * 10.0;
        let params = NmfParams::new(4)
            .loss(Loss::KullbackLeibler)
            .code_tol(1e-6)
            .code_max_iter(5000)
            .check()
            .unwrap();
        let prep = Prepared::new(&params, h.view());
        let xr = valid(MatRef::from(&x));
        let from_ls = solve_prepared(&params, &prep, xr, None, false);
        let flat = mu::initial_codes(*xr, h.view());
        let from_flat = solve_prepared(&params, &prep, xr, Some(flat), false);
        assert!(from_ls.stats.converged && from_flat.stats.converged);
        assert!(
            (from_ls.loss - from_flat.loss).abs() <= 1e-4 * from_flat.loss,
            "{} vs {}",
            from_ls.loss,
            from_flat.loss
        );
        assert!(
            from_ls.stats.iterations < from_flat.stats.iterations,
            "{} vs {} iterations",
            from_ls.stats.iterations,
            from_flat.stats.iterations
        );
        // Itakura-Saito keeps the flat start.
        let is = NmfParams::new(4).loss(Loss::ItakuraSaito).check().unwrap();
        let prep_is = Prepared::new(&is, h.view());
        assert_eq!(
            mu_start(&is, &prep_is, *xr),
            mu::initial_codes(*xr, h.view())
        );
    }

    fn problem() -> (Array2<f64>, Array2<f64>) {
        let h = array![[1.0, 0.2, 0.0, 2.0, 0.5], [0.1, 1.0, 1.5, 0.0, 0.3]];
        let w_true = array![[2.0, 0.5], [0.3, 1.5], [1.0, 1.0]];
        (w_true.dot(&h), h)
    }

    /// Each loss decreases monotonically under the multiplicative updates and reaches a
    /// small value on exactly factorizable data.
    #[test]
    fn multiplicative_updates_decrease_every_loss() {
        let (x, h) = problem();
        let ht = h.t().as_standard_layout().into_owned();
        for loss in [
            Loss::Frobenius,
            Loss::KullbackLeibler,
            Loss::ItakuraSaito,
            Loss::Beta(1.5),
        ] {
            let xr = MatRef::from(&x);
            let mut w = mu::initial_codes(xr, h.view());
            let mut last = divergence(xr, w.view(), h.view(), loss.beta());
            let start = last;
            for _ in 0..50 {
                mu::solve(
                    xr,
                    h.view(),
                    ht.view(),
                    &mut w,
                    loss.beta(),
                    (0.0, 0.0),
                    5,
                    0.0,
                );
                let now = divergence(xr, w.view(), h.view(), loss.beta());
                assert!(
                    now <= last * (1.0 + 1e-12) + 1e-12 * start,
                    "{loss}: {now} > {last}"
                );
                last = now;
            }
            assert!(last < 1e-3 * start, "{loss}: {start} -> {last}");
        }
    }

    #[test]
    fn sparse_kl_updates_match_dense() {
        let (mut x, h) = problem();
        x[[0, 2]] = 0.0;
        x[[2, 1]] = 0.0;
        let ht = h.t().as_standard_layout().into_owned();
        let csr = CsrMatrix::from_dense(x.view());
        let mut wd = mu::initial_codes(MatRef::from(&x), h.view());
        let mut ws = mu::initial_codes(MatRef::from(&csr), h.view());
        let pen = (0.0, 0.0);
        mu::solve(
            MatRef::from(&x),
            h.view(),
            ht.view(),
            &mut wd,
            1.0,
            pen,
            30,
            0.0,
        );
        mu::solve(
            MatRef::from(&csr),
            h.view(),
            ht.view(),
            &mut ws,
            1.0,
            pen,
            30,
            0.0,
        );
        for (a, b) in wd.iter().zip(ws.iter()) {
            assert!((a - b).abs() < 1e-10);
        }
    }

    /// KL codes of a mostly-zero batch go to coordinate descent in either layout, reach a
    /// lower divergence than the multiplicative updates given the same iteration limit,
    /// and a batch of positive entries keeps the updates.
    #[test]
    fn sparse_kl_batches_use_coordinate_descent() {
        const ITERS: usize = 40;
        let d = crate::synth::PlantedSpec::new(256, 80, 5)
            .seed(3)
            .generate();
        let mut s = 7u64;
        let x = d.x.mapv(|v| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (s >> 33) % 10 < 8 {
                0.0
            } else {
                v
            }
        });
        let csr = CsrMatrix::from_dense(x.view());
        let auto = NmfParams::new(5)
            .loss(Loss::KullbackLeibler)
            .code_max_iter(ITERS)
            .check()
            .unwrap();
        let mu_only = NmfParams::new(5)
            .loss(Loss::KullbackLeibler)
            .solver(Solver::Multiplicative)
            .code_max_iter(ITERS)
            .check()
            .unwrap();
        // Atoms without zeros, so that every divergence is finite.
        let h = d.h.mapv(|v| v + 0.01);
        let prep = Prepared::new(&auto, h.view());
        assert!(kl_by_coordinates(&prep, MatRef::from(&x)));
        assert!(kl_by_coordinates(&prep, MatRef::from(&csr)));
        let positive = d.x.mapv(|v| v + 0.1);
        assert!(!kl_by_coordinates(&prep, MatRef::from(&positive)));
        let mu_prep = Prepared::new(&mu_only, h.view());
        assert!(!kl_by_coordinates(&mu_prep, MatRef::from(&x)));
        let solve = |p: &ValidParams, x: MatRef<f64>| {
            let prep = Prepared::new(p, h.view());
            solve_chunked(p, &prep, valid(x), 1, None, |_, _| ()).0
        };
        let (cd_dense, cd_csr) = (
            solve(&auto, MatRef::from(&x)),
            solve(&auto, MatRef::from(&csr)),
        );
        let mu = solve(&mu_only, MatRef::from(&csr));
        let diff = (&cd_dense.w - &cd_csr.w)
            .mapv(f64::abs)
            .fold(0.0f64, |a, &b| a.max(b));
        assert!(diff < 1e-9, "layouts differ by {diff}");
        assert!(
            cd_csr.stats.converged && !mu.stats.converged,
            "{:?} {:?}",
            cd_csr.stats,
            mu.stats
        );
        assert!(cd_csr.loss < mu.loss, "{} vs {}", cd_csr.loss, mu.loss);
    }

    /// Codes a dictionary learns from stop at the learning caps (Itakura-Saito and other
    /// betas below 1, through the first pass on a schedule that grows with the updates;
    /// HALS under Frobenius); the codes handed out, and KL's, keep the full one.
    #[test]
    fn learning_caps_codes_below_kl_only() {
        let h = Array2::from_shape_fn((3, 8), |(i, j)| 1.0 + ((i * 8 + j) % 5) as f64);
        for (loss, learning) in [
            (Loss::ItakuraSaito, LEARNING_CAP_BELOW_KL),
            (Loss::Beta(0.5), LEARNING_CAP_BELOW_KL),
            (Loss::KullbackLeibler, 200),
            (Loss::Frobenius, LEARNING_CAP_HALS),
        ] {
            let params = NmfParams::new(3).loss(loss).check().unwrap();
            assert_eq!(Prepared::new(&params, h.view()).max_iter, 200);
            let prep = Prepared::new(&params, h.view()).learning(&params);
            assert_eq!(prep.max_iter, learning, "{loss:?}");
            // Below β = 1 the cap grows with the dictionary's updates: 5 iterations at
            // first, one more every 5 updates, the full learning cap from 75 on.
            let after = |updates, pass| {
                Prepared::new(&params, h.view())
                    .learning_after(&params, Learnt { updates, pass })
                    .max_iter
            };
            let schedule = [0, 4, 5, 12, 74, 75, u64::MAX].map(|u| after(u, 0));
            let passes = [(0, 1), (12, 1), (0, 2), (0, u64::MAX)].map(|(u, p)| after(u, p));
            if loss.beta() < 1.0 {
                assert_eq!(schedule, [5, 5, 6, 7, 19, 20, 20], "{loss:?}");
                assert_eq!(passes, [learning; 4], "{loss:?}");
            } else {
                assert_eq!(schedule, [learning; 7], "{loss:?}");
                assert_eq!(passes, [learning; 4], "{loss:?}");
            }
            // And the solver stops there: the updates of a random batch run to it.
            let x = Array2::from_shape_fn((6, 8), |(i, j)| 0.5 + ((i * 7 + j * 3) % 11) as f64);
            let (codes, _) =
                solve_chunked(&params, &prep, valid(MatRef::from(&x)), 1, None, |_, _| ());
            assert!(codes.stats.iterations <= learning, "{loss:?}");
        }
    }

    /// The codes do not depend on the memory layout of the H they are solved against,
    /// nor on the thread count: a resumed model (whose arrays come back from a file in
    /// another layout) solves exactly as the one that never stopped.
    #[test]
    fn codes_do_not_depend_on_layout_or_threads() {
        let d = crate::synth::PlantedSpec::new(700, 40, 5)
            .seed(3)
            .generate();
        let x = d.x.mapv(|v| v as f32);
        let h = d.h.mapv(|v| v as f32 + 0.01);
        let hc = crate::linalg::to_column_major(h.clone());
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let params = NmfParams::new(5).loss(loss).check().unwrap();
            let xr = valid(MatRef::from(&x));
            let run = |h: ArrayView2<f32>, threads| {
                let prep = Prepared::new(&params, h);
                solve_chunked(&params, &prep, xr, threads, None, |_, _| ()).0
            };
            let a = run(h.view(), 1);
            for (hv, threads) in [(hc.view(), 1), (h.view(), 3), (hc.view(), 2)] {
                let b = run(hv, threads);
                assert_eq!(a.w, b.w, "{loss}");
                assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{loss}");
            }
        }
    }
}
