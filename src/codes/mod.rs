//! Per-batch code solvers: the codes `W_b` of a batch with the dictionary `H` fixed.
//!
//! [`hals`] (Frobenius, default) and [`mu`] (any beta). Both start from a given warm
//! start or their own: clipped least squares for HALS, and for the multiplicative updates
//! with 1 ≤ β ≤ 2 too (floored above zero, which they cannot leave); otherwise the flat
//! start [`mu::initial_codes`]. They stop at a relative tolerance or an iteration limit,
//! and report what they did in [`SolveStats`]; not converging is reported, never an error.

pub mod hals;
pub mod mu;

pub use hals::SolveStats;

use ndarray::{Array2, ArrayView2};

use crate::batch::MatRef;
use crate::float::Float;
use crate::loss::{divergence, frobenius_from_products};
use crate::params::{Solver, ValidParams};

/// The codes of one batch and what solving them took.
#[derive(Clone, Debug)]
pub struct Codes<F> {
    /// Codes `W_b` (b × k).
    pub w: Array2<F>,
    /// Iterations and convergence.
    pub stats: SolveStats,
    /// The divergence `D(X_b | W_b H)` at these codes.
    pub loss: f64,
}

/// What every chunk of a batch shares: `Hᵀ`, and for HALS the Gram matrix `G = H Hᵀ`
/// with its inverse. Computed once per batch.
pub(crate) struct Prepared<F> {
    ht: Array2<F>,
    g: Array2<F>,
    g_inv: Option<Array2<F>>,
}

impl<F: Float> Prepared<F> {
    /// The shared products of `h` for the solver of `params`.
    pub(crate) fn new(params: &ValidParams, h: ArrayView2<F>) -> Self {
        let ht = h.t().as_standard_layout().into_owned();
        let needs_gram = match params.solver() {
            Solver::Hals => true,
            Solver::Multiplicative => mu_starts_from_least_squares(params.loss_kind().beta()),
        };
        if needs_gram {
            let g = h.dot(&h.t());
            let g_inv = gram_inverse(g.view());
            Self { ht, g, g_inv }
        } else {
            Self {
                ht,
                g: Array2::zeros((0, 0)),
                g_inv: None,
            }
        }
    }
}

/// Whether the multiplicative updates start from clipped least squares (β between 1 and
/// 2: KL and the betas between it and Frobenius, whose optima sit close to the
/// least-squares codes) rather than from the flat start. Below 1 (Itakura-Saito), least
/// squares weighs the loud entries far too much to be a good start.
fn mu_starts_from_least_squares(beta: f64) -> bool {
    (1.0..=2.0).contains(&beta)
}

/// Least-squares codes floored at this share of the flat start: the multiplicative
/// updates cannot move a zero, so every code keeps a little mass it can grow from.
const MU_START_FLOOR: f64 = 1e-3;

/// The multiplicative updates' start: clipped least squares, floored at a small share of
/// [`mu::initial_codes`] (see [`mu_starts_from_least_squares`]), or the flat start.
fn mu_start<F: Float>(
    params: &ValidParams,
    prep: &Prepared<F>,
    h: ArrayView2<F>,
    x: MatRef<F>,
) -> Array2<F> {
    let flat = mu::initial_codes(x, h);
    if !mu_starts_from_least_squares(params.loss_kind().beta()) || prep.g_inv.is_none() {
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

fn gram_inverse<F: Float>(g: ArrayView2<F>) -> Option<Array2<F>> {
    use ndarray_linalg::Inverse;
    let k = g.nrows();
    let mut g64 = g.mapv(|v| v.as_f64());
    let ridge = 1e-10 * g64.diag().sum() / k as f64;
    g64.diag_mut().mapv_inplace(|v| v + ridge);
    match g64.inv() {
        Ok(inv) if inv.iter().all(|v| v.is_finite()) => Some(inv.mapv(F::from_f64)),
        _ => None,
    }
}

/// A starting point for coordinate descent: the unconstrained least-squares codes
/// `R G⁻¹`, clipped at zero. Costs one b × k × k product, about one sweep, and usually
/// saves many: most codes start near their optimum. Zeros when `G` is singular.
fn least_squares_start<F: Float>(r: ArrayView2<F>, g_inv: Option<&Array2<F>>) -> Array2<F> {
    match g_inv {
        Some(inv) => {
            let mut w = r.dot(inv);
            w.mapv_inplace(|v| v.max(F::zero()));
            w
        }
        None => Array2::zeros((r.nrows(), r.ncols())),
    }
}

/// Solves the codes of `x` against `h` (k × p) with the solver, loss and W penalties of
/// `params`, starting from `warm` when given; `prep` holds the products of `h` shared by
/// every chunk of a batch.
pub(crate) fn solve_prepared<F: Float>(
    params: &ValidParams,
    prep: &Prepared<F>,
    h: ArrayView2<F>,
    x: MatRef<F>,
    warm: Option<Array2<F>>,
) -> Codes<F> {
    let (l1, l2) = params.w_penalties(x.ncols());
    let pen = (F::from_f64(l1), F::from_f64(l2));
    let (max_iter, tol) = params.code_limits();
    match params.solver() {
        Solver::Hals => {
            let r = x.x_ht(prep.ht.view());
            let g = prep.g.view();
            let mut w = warm.unwrap_or_else(|| least_squares_start(r.view(), prep.g_inv.as_ref()));
            let stats = hals::solve(r.view(), g, &mut w, pen, max_iter, tol);
            let loss = frobenius_from_products(x.squared_norm(), w.view(), r.view(), g);
            Codes { w, stats, loss }
        }
        Solver::Multiplicative => {
            let loss = params.loss_kind();
            let mut w = warm.unwrap_or_else(|| mu_start(params, prep, h, x));
            let stats = mu::solve(x, h, prep.ht.view(), &mut w, loss, pen, max_iter, tol);
            let value = divergence(x, w.view(), h, loss.beta());
            Codes {
                w,
                stats,
                loss: value,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Loss;
    use crate::params::NmfParams;

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
        let xr = MatRef::from(&x);
        let from_ls = solve_prepared(&params, &prep, h.view(), xr, None);
        let flat = mu::initial_codes(xr, h.view());
        let from_flat = solve_prepared(&params, &prep, h.view(), xr, Some(flat));
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
            mu_start(&is, &prep_is, h.view(), xr),
            mu::initial_codes(xr, h.view())
        );
    }
}
