//! Non-negative least squares by exact coordinate descent (HALS), for many independent
//! problems that share one Gram matrix: the codes of a batch (`G = H Hᵀ`, `R = X Hᵀ`) and,
//! transposed, the columns of the dictionary (`G = A`, `R = Bᵀ`).
//!
//! Each row of `W` solves `min ½ wᵀG w − rᵀw + l1·Σw + ½ l2‖w‖²` over `w ≥ 0`; the sweep
//! over coordinates `j` is (Cichocki & Phan 2009)
//! `w_j ← max(0, w_j + (r_j − (w G)_j − l1 − l2 w_j) / (G_jj + l2))`, the exact minimizer
//! along coordinate j.
//! Rows are solved 64 at a time, one lane per row: the same arithmetic as a row-by-row
//! sweep, with each coordinate step applied to 64 rows by a few vector instructions.
//! Where the CPU has fused multiply-adds, each step's gradient update is one (rounded
//! once, so the codes differ in the last bits from a CPU without them), and two steps
//! share a pass over the gradients: the loop was bound by the stores of that update.

use ndarray::{Array2, ArrayView2};

use crate::float::Float;
use crate::linalg::gemm::mat_mul;

/// What a solve did: the most iterations any row needed, and whether all rows met the
/// tolerance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SolveStats {
    /// Largest number of iterations over the rows (or of the whole batch for MU).
    pub(crate) iterations: usize,
    /// True when every row met the tolerance within the iteration limit.
    pub(crate) converged: bool,
}

/// Rows solved together: each coordinate step updates this many rows at once, so the
/// step is a vector operation across rows instead of a chain of scalar ones. 64 keeps the
/// lane loops long enough that the compiler vectorizes them along the rows (with 8 it
/// vectorized across coordinates instead, with shuffles, at half the speed).
pub(crate) const ROWS: usize = 64;

/// Runs coordinate descent on every row of `w` (b × k, warm start; zeros are fine), with
/// `r` (b × k) and `g` (k × k) in any layout.
pub(crate) fn solve<F: Float>(
    r: ArrayView2<F>,
    g: ArrayView2<F>,
    w: &mut Array2<F>,
    (l1, l2): (F, F),
    max_iter: usize,
    tol: f64,
) -> SolveStats {
    if !w.is_standard_layout() {
        *w = w.as_standard_layout().into_owned();
    }
    let k = g.nrows();
    if k == 0 || w.nrows() == 0 {
        return SolveStats {
            iterations: 0,
            converged: true,
        };
    }
    // With G' = G + l2 I the L2 term folds into the Gram matrix: the gradient is
    // r − l1 − w G' and each coordinate's step divides by G'_jj. Every row's starting
    // gradient comes from one product.
    let mut gp = g.as_standard_layout().into_owned();
    gp.diag_mut().mapv_inplace(|v| v + l2);
    let mut start = r.as_standard_layout().into_owned();
    mat_mul(-F::one(), &*w, &gp, F::one(), &mut start);
    start.mapv_inplace(|v| v - l1);
    let gs = gp.as_slice().expect("standard layout");
    let starts = start.as_slice().expect("standard layout");
    let ws = w.as_slice_mut().expect("standard layout");
    solve_rows(gs, starts, ws, max_iter, F::from_f64(tol * tol))
}

// The sweep with fused multiply-adds where the CPU has them (AVX2 and FMA), else with
// separate products and differences.
crate::linalg::simd::dispatch_avx2!(fn solve_rows<F>(
    gs: &[F], starts: &[F], ws: &mut [F], max_iter: usize, tol2: F,
) -> SolveStats => solve_rows_plain, fma => solve_rows_fused);

#[inline(always)]
fn solve_rows_plain<F: Float>(gs: &[F], st: &[F], ws: &mut [F], it: usize, t: F) -> SolveStats {
    solve_rows_body::<F, false>(gs, st, ws, it, t)
}

#[inline(always)]
fn solve_rows_fused<F: Float>(gs: &[F], st: &[F], ws: &mut [F], it: usize, t: F) -> SolveStats {
    solve_rows_body::<F, true>(gs, st, ws, it, t)
}

/// The solver over row-major slices: `gs` (G', k × k), `starts` (each row's starting
/// gradient) and `ws` (b × k).
///
/// The rows share [`ROWS`] lanes, kept transposed so that lane `l` of every vector holds
/// one row's coordinates. Each sweep steps every coordinate of every lane; a row leaves
/// its lane as soon as it meets the tolerance or the iteration cap, and the next row of
/// the batch takes the lane. So no row waits for a slower neighbour (when k exceeds the
/// data's rank a few rows need many sweeps and most need few), and each row's codes are
/// the same bits whatever rows share its lanes: a row's arithmetic never reads another
/// lane. Empty lanes hold zeros, which stay zero.
#[inline(always)]
fn solve_rows_body<F: Float, const FMA: bool>(
    gs: &[F],
    starts: &[F],
    ws: &mut [F],
    max_iter: usize,
    tol2: F,
) -> SolveStats {
    let k = (gs.len() as f64).sqrt() as usize;
    let zero = F::zero();
    let mut stats = SolveStats {
        iterations: 0,
        converged: max_iter > 0,
    };
    if k == 0 || ws.is_empty() || max_iter == 0 {
        return stats;
    }
    let denom: Vec<F> = (0..k).map(|j| gs[j * k + j]).collect();
    // wt[j][l] = w_(row in lane l)j; grad[j][l] = r − l1 − w G', kept up to date as
    // coordinates move.
    let mut wt = vec![[zero; ROWS]; k];
    let mut grad = vec![[zero; ROWS]; k];
    let mut lane_row = [usize::MAX; ROWS];
    let mut lane_it = [0usize; ROWS];
    let mut next = 0;
    for (l, row) in lane_row.iter_mut().enumerate() {
        *row = load_lane(l, &mut next, (&mut wt, &mut grad), (ws, starts));
    }
    let mut active = lane_row.iter().filter(|&&r| r != usize::MAX).count();
    while active > 0 {
        let mut delta = [zero; ROWS];
        let mut norm = [zero; ROWS];
        if FMA {
            sweep_fused(gs, &denom, &mut wt, &mut grad, (&mut delta, &mut norm));
        } else {
            for (j, gj) in gs.chunks_exact(k).enumerate() {
                let (d, moved) = step(j, &denom, &mut wt, &grad, (&mut delta, &mut norm));
                if moved {
                    for (gm, &gjm) in grad.iter_mut().zip(gj) {
                        for (g, &dl) in gm.iter_mut().zip(&d) {
                            *g -= dl * gjm;
                        }
                    }
                }
            }
        }
        for l in 0..ROWS {
            let i = lane_row[l];
            if i == usize::MAX {
                continue;
            }
            lane_it[l] += 1;
            let converged = delta[l] <= tol2 * norm[l];
            if !converged && lane_it[l] < max_iter {
                continue;
            }
            for (j, v) in ws[i * k..(i + 1) * k].iter_mut().enumerate() {
                *v = wt[j][l];
            }
            stats.iterations = stats.iterations.max(lane_it[l]);
            stats.converged &= converged;
            lane_it[l] = 0;
            lane_row[l] = load_lane(l, &mut next, (&mut wt, &mut grad), (ws, starts));
            if lane_row[l] == usize::MAX {
                active -= 1;
            }
        }
    }
    stats
}

/// Coordinate `j`'s step in every lane: its new codes into `wt`, their squared step and
/// squared value added to `delta` and `norm`; returns the steps and whether any lane
/// moved.
#[inline(always)]
fn step<F: Float>(
    j: usize,
    denom: &[F],
    wt: &mut [[F; ROWS]],
    grad: &[[F; ROWS]],
    (delta, norm): (&mut [F; ROWS], &mut [F; ROWS]),
) -> ([F; ROWS], bool) {
    let zero = F::zero();
    let old = wt[j];
    let mut new = [zero; ROWS];
    // A zero atom explains nothing: its code is irrelevant, keep it at 0.
    if denom[j] > zero {
        let (gr, den) = (&grad[j], denom[j]);
        for l in 0..ROWS {
            let t = old[l] + gr[l] / den;
            new[l] = if t > zero { t } else { zero };
        }
    }
    let mut d = [zero; ROWS];
    let mut moved = false;
    for l in 0..ROWS {
        d[l] = new[l] - old[l];
        moved |= d[l] != zero;
        delta[l] += d[l] * d[l];
        norm[l] += new[l] * new[l];
    }
    wt[j] = new;
    (d, moved)
}

/// A sweep whose gradient updates are fused multiply-adds, two coordinates a pass over
/// the gradients: coordinate `j + 1`'s own gradient takes step `j` first, then one load
/// and one store of every other gradient apply both steps, in the order a sweep one
/// coordinate at a time applies them (the same bits; half the memory traffic, which
/// bounded the loop).
#[inline(always)]
fn sweep_fused<F: Float>(
    gs: &[F],
    denom: &[F],
    wt: &mut [[F; ROWS]],
    grad: &mut [[F; ROWS]],
    (delta, norm): (&mut [F; ROWS], &mut [F; ROWS]),
) {
    let k = denom.len();
    let mut j = 0;
    while j < k {
        let (d0, moved0) = step(j, denom, wt, grad, (&mut *delta, &mut *norm));
        let g0 = &gs[j * k..(j + 1) * k];
        if j + 1 == k {
            if moved0 {
                for (gm, &gjm) in grad.iter_mut().zip(g0) {
                    for (g, &dl) in gm.iter_mut().zip(&d0) {
                        *g = (-dl).mul_add(gjm, *g);
                    }
                }
            }
            break;
        }
        if moved0 {
            let gjm = g0[j + 1];
            for (g, &dl) in grad[j + 1].iter_mut().zip(&d0) {
                *g = (-dl).mul_add(gjm, *g);
            }
        }
        let (d1, moved1) = step(j + 1, denom, wt, grad, (&mut *delta, &mut *norm));
        let g1 = &gs[(j + 1) * k..(j + 2) * k];
        for (m, gm) in grad.iter_mut().enumerate() {
            match (moved0 && m != j + 1, moved1) {
                (true, true) => {
                    let (a, b) = (g0[m], g1[m]);
                    for ((g, &x), &y) in gm.iter_mut().zip(&d0).zip(&d1) {
                        *g = (-y).mul_add(b, (-x).mul_add(a, *g));
                    }
                }
                (true, false) => {
                    for (g, &x) in gm.iter_mut().zip(&d0) {
                        *g = (-x).mul_add(g0[m], *g);
                    }
                }
                (false, true) => {
                    for (g, &y) in gm.iter_mut().zip(&d1) {
                        *g = (-y).mul_add(g1[m], *g);
                    }
                }
                (false, false) => {}
            }
        }
        j += 2;
    }
}

/// Puts row `*next` of `ws` (if any row is left) in lane `l`, with its starting gradient
/// from `starts`, and returns the row now in the lane ([`usize::MAX`] for none: the lane
/// is zeroed).
#[inline(always)]
fn load_lane<F: Float>(
    l: usize,
    next: &mut usize,
    (wt, grad): (&mut [[F; ROWS]], &mut [[F; ROWS]]),
    (ws, starts): (&[F], &[F]),
) -> usize {
    let k = wt.len();
    if *next * k == ws.len() {
        for (w, g) in wt.iter_mut().zip(grad.iter_mut()) {
            w[l] = F::zero();
            g[l] = F::zero();
        }
        return usize::MAX;
    }
    let i = *next;
    *next += 1;
    let rows = i * k..(i + 1) * k;
    for ((wj, gj), (&w, &s)) in wt
        .iter_mut()
        .zip(grad.iter_mut())
        .zip(ws[rows.clone()].iter().zip(&starts[rows]))
    {
        wj[l] = w;
        gj[l] = s;
    }
    i
}

/// Coordinate descent on one problem with its own Gram matrix: `w ≥ 0` minimizing
/// `½ wᵀG w − rᵀw + l1·Σw + ½ l2‖w‖²`, for `g` (k × k, row-major, symmetric), `r` and `w`
/// (k, `w` the warm start). The per-row codes of the observed-only and implicit losses and
/// the per-column dictionary of those losses solve such problems, each with its own G.
/// Returns the sweeps made and whether the relative change fell below `tol`.
pub(crate) fn solve_one<F: Float>(
    g: &[F],
    r: &[F],
    w: &mut [F],
    (l1, l2): (F, F),
    max_iter: usize,
    tol: f64,
) -> (usize, bool) {
    let k = w.len();
    let zero = F::zero();
    // grad = r − l1 − (G + l2 I) w, kept up to date as coordinates move.
    let mut grad: Vec<F> = (0..k)
        .map(|j| {
            let gw: F = (0..k).map(|m| g[j * k + m] * w[m]).fold(zero, |a, b| a + b);
            r[j] - l1 - gw - l2 * w[j]
        })
        .collect();
    let tol2 = F::from_f64(tol * tol);
    for it in 1..=max_iter {
        let (mut delta, mut norm) = (zero, zero);
        for j in 0..k {
            let den = g[j * k + j] + l2;
            if den <= zero {
                continue;
            }
            let new = (w[j] + grad[j] / den).max(zero);
            let d = new - w[j];
            if d != zero {
                w[j] = new;
                for (m, gm) in grad.iter_mut().enumerate() {
                    *gm -= d * g[m * k + j];
                }
                grad[j] -= d * l2;
            }
            delta += d * d;
            norm += new * new;
        }
        if delta <= tol2 * norm {
            return (it, true);
        }
    }
    (max_iter, false)
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

    /// One problem with its own Gram matrix lands where the block solver does.
    #[test]
    fn one_problem_matches_the_block_solver() {
        let h = Array2::from_shape_fn((4, 9), |(j, c)| ((j * 5 + c * 3) % 7) as f64 * 0.4);
        let x = Array2::from_shape_fn((1, 9), |(_, c)| ((c * 5) % 4) as f64);
        let (r, g) = (x.dot(&h.t()), h.dot(&h.t()));
        let mut block = Array2::zeros((1, 4));
        solve(r.view(), g.view(), &mut block, (0.1, 0.3), 500, 1e-12);
        let mut one = vec![0.0; 4];
        let gs = g.as_slice().unwrap();
        let (it, ok) = solve_one(gs, r.as_slice().unwrap(), &mut one, (0.1, 0.3), 500, 1e-12);
        assert!(ok && it < 500);
        for (a, b) in one.iter().zip(block.iter()) {
            assert!((a - b).abs() < 1e-9, "{one:?} vs {block}");
        }
    }

    /// With a tolerance, rows stop after different numbers of sweeps, each at its own:
    /// a row's codes are the same bits alone, in a batch, and in the batch reversed (so
    /// with other lane neighbours and another lane), and the batch reports the most
    /// sweeps any row took.
    #[test]
    fn each_row_stops_on_its_own() {
        // Nearly collinear atoms: some rows need many sweeps, others few.
        let h = Array2::from_shape_fn((6, 12), |(j, c)| {
            1.0 + ((j * 7 + c * 3) % 5) as f64 * 0.3
                + if j % 2 == 0 { 0.0 } else { 0.05 * c as f64 }
        });
        let x = Array2::from_shape_fn((150, 12), |(i, c)| ((i * 13 + c * 5) % 9) as f64);
        let (r, g) = (x.dot(&h.t()), h.dot(&h.t()));
        let mut all = Array2::zeros((150, 6));
        let stats = solve(r.view(), g.view(), &mut all, (0.0, 0.0), 2000, 1e-4);
        let mut rev_r = r.clone();
        rev_r.invert_axis(ndarray::Axis(0));
        let mut rev = Array2::zeros((150, 6));
        solve(rev_r.view(), g.view(), &mut rev, (0.0, 0.0), 2000, 1e-4);
        let mut sweeps = Vec::new();
        for i in 0..150 {
            let mut one = Array2::zeros((1, 6));
            let ri = r.slice(ndarray::s![i..i + 1, ..]);
            sweeps.push(solve(ri, g.view(), &mut one, (0.0, 0.0), 2000, 1e-4).iterations);
            assert_eq!(one.row(0), all.row(i), "row {i} alone");
            assert_eq!(rev.row(149 - i), all.row(i), "row {i} reversed");
        }
        let (lo, hi) = (*sweeps.iter().min().unwrap(), *sweeps.iter().max().unwrap());
        assert!(hi > 2 * lo, "sweeps {lo}..{hi}: rows should differ");
        assert_eq!(stats.iterations, hi, "sweeps {lo}..{hi}");
        assert!(stats.converged, "sweeps {lo}..{hi}");
    }

    /// The fused sweep, two coordinates a pass over the gradients, gives the bits of fused
    /// steps one coordinate at a time (k odd and even, lanes with and without moves), and
    /// both sweeps, fused or not, solve a batch to the same codes.
    #[test]
    fn fused_pairs_equal_fused_steps_one_at_a_time() {
        for k in [1, 4, 7] {
            let h =
                Array2::from_shape_fn((k, 11), |(j, c)| 0.2 + ((j * 7 + c * 3) % 5) as f64 * 0.3);
            let x = Array2::from_shape_fn((ROWS, 11), |(i, c)| ((i * 13 + c * 5) % 9) as f64);
            let (r, g) = (x.dot(&h.t()), h.dot(&h.t()));
            let (gs, denom) = (g.as_slice().unwrap(), g.diag().to_vec());
            let mut grad = vec![[0.0; ROWS]; k];
            for (l, row) in r.rows().into_iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    // Every other lane starts at its optimum's side of zero: no move.
                    grad[j][l] = if l % 2 == 0 { v } else { -v };
                }
            }
            let (mut wt_a, mut grad_a) = (vec![[0.0; ROWS]; k], grad.clone());
            let (mut wt_b, mut grad_b) = (vec![[0.0; ROWS]; k], grad);
            for _ in 0..3 {
                let (mut da, mut na) = ([0.0; ROWS], [0.0; ROWS]);
                sweep_fused(gs, &denom, &mut wt_a, &mut grad_a, (&mut da, &mut na));
                let (mut db, mut nb) = ([0.0; ROWS], [0.0; ROWS]);
                for (j, gj) in gs.chunks_exact(k).enumerate() {
                    let (d, moved) = step(j, &denom, &mut wt_b, &grad_b, (&mut db, &mut nb));
                    if moved {
                        for (gm, &gjm) in grad_b.iter_mut().zip(gj) {
                            for (gv, &dl) in gm.iter_mut().zip(&d) {
                                *gv = (-dl).mul_add(gjm, *gv);
                            }
                        }
                    }
                }
                assert_eq!(
                    (wt_a.clone(), grad_a.clone()),
                    (wt_b.clone(), grad_b.clone()),
                    "k {k}"
                );
                assert_eq!((da, na), (db, nb), "k {k}");
            }
            let mut fused = Array2::zeros((ROWS, k));
            let mut plain = Array2::zeros((ROWS, k));
            let starts = r.as_slice().unwrap();
            solve_rows_body::<f64, true>(gs, starts, fused.as_slice_mut().unwrap(), 500, 1e-24);
            solve_rows_body::<f64, false>(gs, starts, plain.as_slice_mut().unwrap(), 500, 1e-24);
            for (a, b) in fused.iter().zip(plain.iter()) {
                assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "k {k}: {a} vs {b}");
            }
        }
    }

    /// Rows solved in one block give bitwise the same codes as each row solved alone:
    /// lanes never mix, and the short last block's padding stays out of the answer.
    #[test]
    fn blocks_equal_single_rows() {
        let h = Array2::from_shape_fn((5, 9), |(j, c)| ((j * 7 + c * 3) % 5) as f64 * 0.3);
        let x = Array2::from_shape_fn((100, 9), |(i, c)| ((i * 11 + c * 5) % 7) as f64);
        let (r, g) = (x.dot(&h.t()), h.dot(&h.t()));
        let mut all = Array2::zeros((100, 5));
        solve(r.view(), g.view(), &mut all, (0.1, 0.2), 25, 0.0);
        for i in 0..100 {
            let mut one = Array2::zeros((1, 5));
            let ri = r.slice(ndarray::s![i..i + 1, ..]);
            solve(ri, g.view(), &mut one, (0.1, 0.2), 25, 0.0);
            assert_eq!(one.row(0), all.row(i), "row {i}");
        }
    }
}
