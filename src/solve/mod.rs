//! Non-negative solvers shared by the codes and the dictionary: coordinate descent for
//! least squares ([`cd`]) and multiplicative updates for any beta-divergence ([`mu`]),
//! with the least-squares start both use.

pub(crate) mod cd;
pub(crate) mod kl_cd;
pub(crate) mod mu;

pub(crate) use cd::SolveStats;

use ndarray::{Array2, ArrayView2};

use crate::float::Float;
use crate::linalg::gemm::product;

/// The inverse of a Gram matrix `G = H Hᵀ` (in f64, with a tiny ridge), or `None` when it
/// is singular or LAPACK refuses it.
pub(crate) fn gram_inverse<F: Float>(g: ArrayView2<F>) -> Option<Array2<F>> {
    use ndarray_linalg::Inverse;
    let k = g.nrows();
    let mut g64 = g.mapv(|v| v.as_f64());
    let ridge = 1e-10 * g64.diag().sum() / k.max(1) as f64;
    g64.diag_mut().mapv_inplace(|v| v + ridge);
    match g64.inv() {
        Ok(inv) if inv.iter().all(|v| v.is_finite()) => Some(inv.mapv(F::from_f64)),
        _ => None,
    }
}

/// A starting point for coordinate descent: the unconstrained least-squares codes
/// `R G⁻¹`, clipped at zero. Costs one b × k × k product, about one sweep, and usually
/// saves many: most codes start near their optimum. Zeros when `G` is singular.
pub(crate) fn least_squares_start<F: Float>(
    r: ArrayView2<F>,
    g_inv: Option<&Array2<F>>,
) -> Array2<F> {
    match g_inv {
        Some(inv) => {
            let mut w = product(&r, inv);
            w.mapv_inplace(|v| v.max(F::zero()));
            w
        }
        None => Array2::zeros((r.nrows(), r.ncols())),
    }
}

/// The unconstrained least-squares solution of one problem `(G + l2 I) w = r − l1`,
/// clipped at zero, into `w` (`g` k × k row-major): the start of [`cd::solve_one`] when
/// there is no warm start. Left as it is when the system is singular (LAPACK's Cholesky
/// factorization, in f64).
pub(crate) fn least_squares_start_one<F: Float>(g: &[F], r: &[F], (l1, l2): (F, F), w: &mut [F]) {
    use ndarray_linalg::SolveC;
    let k = w.len();
    let a = Array2::from_shape_fn((k, k), |(i, j)| {
        g[i * k + j].as_f64() + if i == j { l2.as_f64() } else { 0.0 }
    });
    let b = ndarray::Array1::from_shape_fn(k, |i| (r[i] - l1).as_f64());
    if let Ok(x) = a.solvec(&b) {
        if x.iter().all(|v| v.is_finite()) {
            for (d, &v) in w.iter_mut().zip(x.iter()) {
                *d = F::from_f64(v.max(0.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Least squares recovers exact non-negative codes; a singular Gram matrix gives zeros.
    #[test]
    fn least_squares_start_is_exact_when_unconstrained() {
        let h = array![[1.0f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
        let w = array![[2.0, 1.0], [0.5, 3.0]];
        let r = w.dot(&h).dot(&h.t());
        let g = h.dot(&h.t());
        let inv = gram_inverse(g.view());
        let got = least_squares_start(r.view(), inv.as_ref());
        assert!(got.iter().zip(w.iter()).all(|(a, b)| (a - b).abs() < 1e-6));
        let singular = array![[1.0f64, 1.0], [1.0, 1.0]];
        let z = least_squares_start(r.view(), gram_inverse(singular.view()).as_ref());
        assert!(z.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
}
