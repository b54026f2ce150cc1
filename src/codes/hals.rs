//! HALS / exact coordinate descent for the codes of a batch under the Frobenius loss.
//!
//! With `R = X Hᵀ` (b × k) and `G = H Hᵀ` (k × k) computed once, each row's codes solve a
//! k-dimensional non-negative least-squares problem, independent of the other rows; the
//! sweep over coordinates `j` is (Cichocki & Phan 2009)
//! `w_j ← max(0, w_j + (r_j − (w G)_j − l1 − l2 w_j) / (G_jj + l2))`, the exact minimizer
//! along coordinate j.
//! Working row by row keeps `w`, `r` and `G` in cache and lets each row stop when its
//! own relative change falls below the tolerance.

use ndarray::{Array2, ArrayView2};

use crate::float::Float;

/// What a solve did: the most iterations any row needed, and whether all rows met the
/// tolerance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SolveStats {
    /// Largest number of iterations over the rows (or of the whole batch for MU).
    pub iterations: usize,
    /// True when every row met the tolerance within the iteration limit.
    pub converged: bool,
}

/// Runs coordinate descent on every row of `w` (b × k, warm start; zeros are fine).
pub(crate) fn solve<F: Float>(
    r: ArrayView2<F>,
    g: ArrayView2<F>,
    w: &mut Array2<F>,
    (l1, l2): (F, F),
    max_iter: usize,
    tol: f64,
) -> SolveStats {
    let k = g.nrows();
    let g = g.as_standard_layout();
    let gs = g.as_slice().expect("standard layout");
    let r = r.as_standard_layout();
    let rs = r.as_slice().expect("standard layout");
    if !w.is_standard_layout() {
        *w = w.as_standard_layout().into_owned();
    }
    let ws = w.as_slice_mut().expect("standard layout");
    let tol2 = F::from_f64(tol * tol);
    let mut stats = SolveStats {
        iterations: 0,
        converged: true,
    };
    let mut grad = vec![F::zero(); k];
    for (wi, ri) in ws.chunks_exact_mut(k).zip(rs.chunks_exact(k)) {
        // grad = r − w G − l1 − l2 w, kept up to date as coordinates move: each move is an
        // axpy (vectorizes) instead of a dot product per coordinate.
        for (j, gj) in grad.iter_mut().enumerate() {
            let row = &gs[j * k..(j + 1) * k];
            let wg = wi.iter().zip(row).fold(F::zero(), |s, (&a, &b)| s + a * b);
            *gj = ri[j] - wg - l1 - l2 * wi[j];
        }
        let mut converged = false;
        let mut it = 0;
        while it < max_iter {
            it += 1;
            let (mut delta, mut norm) = (F::zero(), F::zero());
            for j in 0..k {
                let gj = &gs[j * k..(j + 1) * k];
                let denom = gj[j] + l2;
                let old = wi[j];
                let new = if denom > F::zero() {
                    (old + grad[j] / denom).max(F::zero())
                } else {
                    // A zero atom explains nothing: its code is irrelevant, keep it at 0.
                    F::zero()
                };
                let d = new - old;
                if d != F::zero() {
                    wi[j] = new;
                    for (g, &gjl) in grad.iter_mut().zip(gj) {
                        *g -= d * gjl;
                    }
                    grad[j] -= d * l2;
                    delta += d * d;
                }
                norm += new * new;
            }
            if delta <= tol2 * norm {
                converged = true;
                break;
            }
        }
        stats.iterations = stats.iterations.max(it);
        stats.converged &= converged;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A row whose unconstrained least-squares solution is non-negative is solved exactly.
    #[test]
    fn recovers_exact_codes() {
        let h = array![[1.0f64, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 0.5]];
        let w_true = array![[2.0, 3.0], [0.0, 1.5], [4.0, 0.0]];
        let x = w_true.dot(&h);
        let r = x.dot(&h.t());
        let g = h.dot(&h.t());
        let mut w = Array2::zeros((3, 2));
        let s = solve(r.view(), g.view(), &mut w, (0.0, 0.0), 500, 1e-12);
        assert!(s.converged);
        for (a, b) in w.iter().zip(w_true.iter()) {
            assert!((a - b).abs() < 1e-9, "{w} vs {w_true}");
        }
    }

    /// When least squares wants a negative code, the NNLS answer clips it and re-fits the
    /// rest: x = [1, -1] against atoms e1, e2 gives w = [1, 0].
    #[test]
    fn clips_at_zero() {
        let h = array![[1.0f64, 0.0], [0.0, 1.0]];
        let x = array![[1.0, 0.0]];
        let r = x.dot(&h.t()) - array![[0.0, 1.0]];
        let g = h.dot(&h.t());
        let mut w = Array2::zeros((1, 2));
        solve(r.view(), g.view(), &mut w, (0.0, 0.0), 10, 1e-12);
        assert_eq!(w, array![[1.0, 0.0]]);
    }

    /// L1 shrinks codes by l1 / G_jj; L2 divides by (G_jj + l2).
    #[test]
    fn penalties_shrink() {
        let g = array![[2.0f64]];
        let r = array![[4.0]];
        let mut w = Array2::zeros((1, 1));
        solve(r.view(), g.view(), &mut w, (1.0, 0.0), 10, 0.0);
        assert!((w[[0, 0]] - 1.5).abs() < 1e-12);
        let mut w = Array2::zeros((1, 1));
        solve(r.view(), g.view(), &mut w, (0.0, 2.0), 10, 0.0);
        assert!((w[[0, 0]] - 1.0).abs() < 1e-12);
    }
}
