//! Losses that do not read an unstored entry as a zero: observed-only (missing data,
//! explicit ratings) and confidence-weighted implicit feedback (Hu, Koren & Volinsky
//! 2008), both with non-negative factors. Data arrive as CSR: the stored entries are the
//! observed ones (or the interactions).
//!
//! **Codes.** Row i observes Ω_i. Observed-only Frobenius: `G_i = Σ_{j∈Ω_i} h_j h_jᵀ`,
//! `r_i = Σ x_ij h_j`; implicit: `G_i = H Hᵀ + Σ_{j∈Ω_i} (c_ij − 1) h_j h_jᵀ`,
//! `r_i = Σ c_ij h_j` (H Hᵀ shared by the batch). Each row is then one non-negative least
//! squares problem, `O(|Ω_i| k² + sweeps · k²)`, never `O(p k)`. Observed-only KL: the
//! multiplicative update restricted to Ω_i.
//!
//! **Mostly observed rows** (a dense table with a held-out share, as `rank` makes): the
//! Gram is taken the other way round, `G_i = H Hᵀ − Σ_{j∉Ω_i} h_j h_jᵀ`, and a column's
//! `A_j` as the chunk's `WᵀW` less the rows that do not observe it, so the k² work is
//! over the unobserved entries instead of the observed ones (see [`MOSTLY_OBSERVED`]).
//!
//! The dictionary's side, per-column statistics, is in [`super::masked_columns`].

use ndarray::{Array2, ArrayView2};

use super::options::Unobserved;
use super::params::ValidParams;
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::linalg::CLIP;
use crate::matrix::CsrView;
use crate::solve::{cd, least_squares_start_one, SolveStats};

/// How much of an atom's mass a mostly observed row, or column of a chunk, must keep for
/// its Gram to be taken by subtraction (see the module doc): a diagonal entry of
/// `H Hᵀ − Σ_{j∉Ω} h_j h_jᵀ` below this share of `H Hᵀ`'s is mostly rounding, and the
/// coordinate descent would divide by it; such rows and columns are summed directly.
pub(super) const KEPT_MASS: f64 = 1e-3;

/// Whether a row or chunk that observes `observed` of `cells` cells has its Gram taken by
/// subtraction (and a chunk its products with H and W as GEMMs over a dense copy): more
/// than half observed. `streamnmf rank` (10 % held out) on a 5000 × 1000 table, ranks 10
/// and 20, two passes: 2.8 s summing the observed entries' `h hᵀ` and `w wᵀ` (88 % of it
/// in those sums and the sort of the entries by column), 0.7 s this way; on 20000 × 1000,
/// ranks 4, 6, 8, 12 and 16, ten passes: 97 s, 13.6 s.
pub(crate) const MOSTLY_OBSERVED: f64 = 0.5;

pub(super) fn mostly_observed(observed: usize, cells: usize) -> bool {
    observed as f64 > MOSTLY_OBSERVED * cells as f64
}

/// The columns of `0..p` that are not in `cols` (strictly increasing), in order.
pub(super) fn unobserved(cols: &[u32], p: usize) -> impl Iterator<Item = usize> + '_ {
    let mut next = cols.iter().peekable();
    (0..p).filter(move |&j| {
        if next.peek().is_some_and(|&&c| c as usize == j) {
            next.next();
            false
        } else {
            true
        }
    })
}

/// Whether every diagonal entry of `g` (k × k, row-major) keeps at least [`KEPT_MASS`]
/// of `full`'s.
fn keeps_mass<F: Float>(g: &[F], full: &[F], k: usize) -> bool {
    (0..k).all(|a| g[a * k + a].as_f64() >= KEPT_MASS * full[a * k + a].as_f64())
}

/// Values of a packed symmetric k × k matrix (upper triangle, row by row).
pub(crate) fn packed(k: usize) -> usize {
    k * (k + 1) / 2
}

/// `out += coef · w wᵀ`, packed.
#[inline]
pub(super) fn add_outer<F: Float>(out: &mut [F], w: &[F], coef: F) {
    let k = w.len();
    let mut t = 0;
    for a in 0..k {
        let wa = coef * w[a];
        for &wb in &w[a..k] {
            out[t] += wa * wb;
            t += 1;
        }
    }
}

/// The full k × k matrix of a packed one, scaled, plus `extra` (k × k, row-major) if any.
pub(super) fn unpack_into<F: Float>(
    packed: &[F],
    k: usize,
    scale: F,
    extra: Option<&[F]>,
    out: &mut [F],
) {
    let mut t = 0;
    for a in 0..k {
        for b in a..k {
            let v = packed[t] * scale;
            out[a * k + b] = v;
            out[b * k + a] = v;
            t += 1;
        }
    }
    if let Some(e) = extra {
        for (o, &v) in out.iter_mut().zip(e) {
            *o += v;
        }
    }
}

/// The codes of a CSR chunk under an observed-only or implicit Frobenius loss, with the
/// chunk's loss. `ht` is Hᵀ (p × k, standard layout); `hht` is H Hᵀ (implicit).
pub(crate) fn codes<F: Float>(
    params: &ValidParams,
    ht: ArrayView2<F>,
    hht: ArrayView2<F>,
    x: CsrView<F>,
    warm: Option<ArrayView2<F>>,
) -> (Array2<F>, SolveStats, f64) {
    codes_by(params, ht, hht, x, warm, true)
}

/// [`codes`], with the Gram of mostly observed rows taken by subtraction only if
/// `subtract` (the tests compare both ways).
fn codes_by<F: Float>(
    params: &ValidParams,
    ht: ArrayView2<F>,
    hht: ArrayView2<F>,
    x: CsrView<F>,
    warm: Option<ArrayView2<F>>,
    subtract: bool,
) -> (Array2<F>, SolveStats, f64) {
    let k = ht.ncols();
    let mode = params.unobserved();
    let implicit = matches!(mode, Unobserved::Implicit { .. });
    let penalties = |observed: usize| {
        // Implicit feedback reads every entry; observed-only data, the row's own.
        let (l1, l2) = params.w_penalties(if implicit { x.ncols() } else { observed });
        (F::from_f64(l1), F::from_f64(l2))
    };
    let ht = ht.as_standard_layout();
    let hs = ht.as_slice().expect("standard layout");
    let hht = hht.as_standard_layout();
    let gs0 = hht.as_slice().expect("standard layout");
    let mut w = Array2::zeros((x.nrows(), k));
    let mut stats = SolveStats {
        iterations: 0,
        converged: true,
    };
    let mut loss = 0.0;
    let mut g = vec![F::zero(); k * k];
    let mut r = vec![F::zero(); k];
    let p = x.ncols();
    // The upper triangle of `g += coef · h_j h_jᵀ`; mirrored once the row is done.
    let add_upper = |g: &mut [F], j: usize, coef: F| {
        let hj = &hs[j * k..(j + 1) * k];
        for a in 0..k {
            let ca = coef * hj[a];
            for b in a..k {
                g[a * k + b] += ca * hj[b];
            }
        }
    };
    // A chunk that observes most of its cells: `X Hᵀ`, and the fit `W H` the loss needs,
    // as products of its dense copy (unobserved cells at zero) instead of k products an
    // observed entry, each.
    let dense = subtract && !implicit && mostly_observed(x.nnz(), x.nrows() * p);
    let xht = dense.then(|| product(&x.to_dense(), &ht));
    for (i, mut wi) in w.rows_mut().into_iter().enumerate() {
        let (cols, vals) = x.row(i);
        // Observed-only rows that observe most columns: H Hᵀ less the others.
        let mut by_subtraction = subtract && !implicit && mostly_observed(cols.len(), p);
        if by_subtraction {
            // Whole rows of the square (they vectorize, where the triangle's do not).
            g.copy_from_slice(gs0);
            for j in unobserved(cols, p) {
                let hj = &hs[j * k..(j + 1) * k];
                for (ga, &ha) in g.chunks_exact_mut(k).zip(hj) {
                    for (gab, &hb) in ga.iter_mut().zip(hj) {
                        *gab -= ha * hb;
                    }
                }
            }
            by_subtraction = keeps_mass(&g, gs0, k);
        }
        if !by_subtraction {
            if implicit {
                g.copy_from_slice(gs0);
            } else {
                g.fill(F::zero());
            }
        }
        r.fill(F::zero());
        if xht.is_none() || !by_subtraction {
            for (&j, &v) in cols.iter().zip(vals) {
                let hj = &hs[j as usize * k..(j as usize + 1) * k];
                let (coef, target) = if implicit {
                    let c = F::from_f64(mode.confidence(v.as_f64()));
                    (c - F::one(), c)
                } else {
                    (F::one(), v)
                };
                if !by_subtraction {
                    add_upper(&mut g, j as usize, coef);
                }
                if xht.is_none() {
                    for a in 0..k {
                        r[a] += target * hj[a];
                    }
                }
            }
        }
        if let Some(xht) = &xht {
            for (d, &s) in r.iter_mut().zip(xht.row(i)) {
                *d = s;
            }
        }
        for a in 0..k {
            for b in a + 1..k {
                g[b * k + a] = g[a * k + b];
            }
        }
        let wi = wi.as_slice_mut().expect("a row of a standard array");
        if let Some(w0) = warm {
            for (d, &s) in wi.iter_mut().zip(w0.row(i)) {
                *d = s;
            }
        }
        let pen = penalties(cols.len());
        if warm.is_none() && !cols.is_empty() {
            least_squares_start_one(&g, &r, pen, wi);
        }
        let (it, ok) = cd::solve_one(&g, &r, wi, pen, params.code_max_iter(), params.code_tol());
        stats.iterations = stats.iterations.max(it);
        stats.converged &= ok;
        if xht.is_none() {
            loss += row_loss(mode, wi, cols, vals, hs, gs0);
        }
    }
    if xht.is_some() {
        let fit = product(&w, &ht.t());
        for (i, fi) in fit.rows().into_iter().enumerate() {
            let (cols, vals) = x.row(i);
            let sq: f64 = (cols.iter().zip(vals))
                .map(|(&j, &v)| (v.as_f64() - fi[j as usize].as_f64()).powi(2))
                .sum();
            loss += 0.5 * sq;
        }
    }
    (w, stats, loss)
}

/// `a · b` in f64 through four interleaved partial sums, combined in a fixed order: one
/// chain of f64 additions, a term after the other, was a third of the time of the codes
/// of mostly observed rows.
#[inline]
fn dot4<F: Float>(a: &[F], b: &[F]) -> f64 {
    let mut s = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = (ca.remainder().iter().zip(cb.remainder()))
        .map(|(x, y)| x.as_f64() * y.as_f64())
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            s[l] += x[l].as_f64() * y[l].as_f64();
        }
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// ½ Σ_Ω (x − w·h)² (observed-only), or ½ [wᵀ HHᵀ w + Σ_Ω (c (1 − w·h)² − (w·h)²)]
/// (implicit: the confidence-weighted loss over every entry, without visiting them).
fn row_loss<F: Float>(
    mode: Unobserved,
    w: &[F],
    cols: &[u32],
    vals: &[F],
    hs: &[F],
    g: &[F],
) -> f64 {
    let k = w.len();
    let dot = |j: u32| -> f64 { dot4(w, &hs[j as usize * k..(j as usize + 1) * k]) };
    match mode {
        Unobserved::Implicit { .. } => {
            let mut all = 0.0;
            for a in 0..k {
                for b in 0..k {
                    all += w[a].as_f64() * g[a * k + b].as_f64() * w[b].as_f64();
                }
            }
            let stored: f64 = cols
                .iter()
                .zip(vals)
                .map(|(&j, &v)| {
                    let (p, c) = (dot(j), mode.confidence(v.as_f64()));
                    c * (1.0 - p) * (1.0 - p) - p * p
                })
                .sum();
            0.5 * (all + stored)
        }
        _ => {
            0.5 * cols
                .iter()
                .zip(vals)
                .map(|(&j, &v)| (v.as_f64() - dot(j)).powi(2))
                .sum::<f64>()
        }
    }
}

/// The codes of a CSR chunk under the KL divergence over observed entries only:
/// multiplicative updates `w ← w ⊙ (Σ_Ω (x / v) h) / (Σ_Ω h)`, from the flat start
/// `Σ_Ω x / Σ_Ω Σ h`; and the chunk's divergence over Ω.
pub(crate) fn codes_kl<F: Float>(
    params: &ValidParams,
    ht: ArrayView2<F>,
    x: CsrView<F>,
    warm: Option<ArrayView2<F>>,
) -> (Array2<F>, SolveStats, f64) {
    let k = ht.ncols();
    let ht = ht.as_standard_layout();
    let hs = ht.as_slice().expect("standard layout");
    let tol2 = params.code_tol() * params.code_tol();
    let mut w = Array2::zeros((x.nrows(), k));
    let mut stats = SolveStats {
        iterations: 0,
        converged: true,
    };
    let mut loss = 0.0;
    let (mut num, mut den) = (vec![0.0f64; k], vec![0.0f64; k]);
    for (i, mut wi) in w.rows_mut().into_iter().enumerate() {
        let (cols, vals) = x.row(i);
        let h = |j: u32| &hs[j as usize * k..(j as usize + 1) * k];
        den.fill(0.0);
        for &j in cols {
            for (d, &hv) in den.iter_mut().zip(h(j)) {
                *d += hv.as_f64();
            }
        }
        match warm {
            Some(w0) => wi.assign(&w0.row(i)),
            None => {
                let (sx, sh) = (
                    vals.iter().map(|v| v.as_f64()).sum::<f64>(),
                    den.iter().sum::<f64>().max(CLIP),
                );
                wi.fill(F::from_f64(sx / sh));
            }
        }
        let (l1, l2) = params.w_penalties(cols.len());
        let mut it = 0;
        let mut ok = false;
        while it < params.code_max_iter() && !cols.is_empty() {
            it += 1;
            num.fill(0.0);
            for (&j, &xv) in cols.iter().zip(vals) {
                let vj: f64 = wi
                    .iter()
                    .zip(h(j))
                    .map(|(a, b)| a.as_f64() * b.as_f64())
                    .sum();
                let ratio = xv.as_f64() / vj.max(CLIP);
                for (n, &hv) in num.iter_mut().zip(h(j)) {
                    *n += ratio * hv.as_f64();
                }
            }
            let (mut delta, mut norm) = (0.0, 0.0);
            for (a, wa) in wi.iter_mut().enumerate() {
                let d = den[a] + l1 + l2 * wa.as_f64();
                let new = if d > 0.0 {
                    wa.as_f64() * num[a] / d
                } else {
                    0.0
                };
                delta += (new - wa.as_f64()).powi(2);
                norm += new * new;
                *wa = F::from_f64(new);
            }
            if delta <= tol2 * norm {
                ok = true;
                break;
            }
        }
        stats.iterations = stats.iterations.max(it);
        stats.converged &= ok || cols.is_empty();
        for (&j, &xv) in cols.iter().zip(vals) {
            let vj: f64 = wi
                .iter()
                .zip(h(j))
                .map(|(a, b)| a.as_f64() * b.as_f64())
                .sum();
            let (xv, vj) = (xv.as_f64(), vj.max(CLIP));
            loss += if xv > 0.0 {
                xv * (xv / vj).ln() - xv + vj
            } else {
                vj
            };
        }
    }
    (w, stats, loss)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::matrix::CsrMatrix;
    use crate::model::NmfParams;
    use ndarray::array;

    /// On a fully observed row, observed-only codes are the plain NNLS codes.
    #[test]
    fn fully_observed_codes_are_plain_nnls() {
        let h = array![[1.0f64, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 0.5]];
        let w_true = array![[2.0, 3.0], [0.5, 1.5]];
        let x = w_true.dot(&h);
        // Explicit zeros would be dropped by from_dense: this x has none.
        let csr = CsrMatrix::from_dense(x.view());
        let p = NmfParams::new(2)
            .unobserved(Unobserved::Missing)
            .alpha_w(0.0)
            .code_tol(1e-12)
            .code_max_iter(1000)
            .check()
            .unwrap();
        let ht = h.t().as_standard_layout().into_owned();
        let g = h.dot(&h.t());
        let (w, stats, loss) = codes(&p, ht.view(), g.view(), csr.view(), None);
        assert!(stats.converged);
        assert!(
            w.iter()
                .zip(w_true.iter())
                .all(|(a, b)| (a - b).abs() < 1e-8),
            "{w}"
        );
        assert!(loss < 1e-12);
    }

    /// A CSR matrix of `x`'s entries where `keep(i, j)`, explicit zeros included.
    pub(crate) fn observed(x: &Array2<f64>, keep: impl Fn(usize, usize) -> bool) -> CsrMatrix<f64> {
        let mut b = crate::matrix::CsrBuilder::new(x.ncols());
        for (i, row) in x.rows().into_iter().enumerate() {
            let cols: Vec<u32> = (0..x.ncols())
                .filter(|&j| keep(i, j))
                .map(|j| j as u32)
                .collect();
            let vals: Vec<f64> = cols.iter().map(|&j| row[j as usize]).collect();
            b.push_row(&cols, &vals);
        }
        b.finish()
    }

    /// Rows that observe most columns take their Gram by subtraction: the same codes and
    /// loss as the sums over their observed entries, up to rounding. Among them: a row
    /// that hides every column of atom 0 (left to the direct sums, where a subtraction
    /// would leave only rounding on the diagonal), one that observes a quarter (summed
    /// directly anyway), and one that observes nothing.
    #[test]
    fn mostly_observed_codes_match_direct_sums() {
        let (k, p) = (3, 12);
        // Atom 0 lives on columns 0 and 1 only.
        let h = Array2::from_shape_fn((k, p), |(a, j)| match a {
            // 0.3² + 0.7² − 0.3² − 0.7² is 5.6e-17, not zero.
            0 => [0.3, 0.7].get(j).copied().unwrap_or(0.0),
            _ => ((a * 5 + j * 3) % 7) as f64 * 0.3 + 0.1,
        });
        let w_true = Array2::from_shape_fn((5, k), |(i, a)| ((i + 2 * a) % 4) as f64 * 0.7);
        let x = w_true.dot(&h) + 0.01;
        let csr = observed(&x, |i, j| match i {
            0 => j != 4 && j != 9,
            1 => j >= 2,
            2 => j.is_multiple_of(4),
            3 => false,
            _ => j != 0,
        });
        let params = NmfParams::new(k)
            .unobserved(Unobserved::Missing)
            .alpha_w(0.0)
            .code_tol(1e-13)
            .code_max_iter(5000)
            .check()
            .unwrap();
        let ht = h.t().as_standard_layout().into_owned();
        // H Hᵀ summed column by column in order (a GEMM may fuse and round otherwise).
        let g = Array2::from_shape_fn((k, k), |(a, b)| {
            (0..p).fold(0.0, |s, j| s + h[[a, j]] * h[[b, j]])
        });
        let (w, _, loss) = codes_by(&params, ht.view(), g.view(), csr.view(), None, true);
        let (w0, _, loss0) = codes_by(&params, ht.view(), g.view(), csr.view(), None, false);
        for (a, b) in w.iter().zip(&w0) {
            assert!((a - b).abs() < 1e-8, "{w}\n{w0}");
        }
        assert!(
            (loss - loss0).abs() < 1e-10 * loss0.max(1.0),
            "{loss} vs {loss0}"
        );
        // Row 1 hides atom 0's columns: its Gram's diagonal keeps 5.6e-17 of 0.58 by
        // subtraction, so the row is summed directly, and its atom-0 code is the same.
        let mut g1 = g.as_slice().unwrap().to_vec();
        for j in 0..2 {
            for a in 0..k {
                for b in 0..k {
                    g1[a * k + b] -= h[[a, j]] * h[[b, j]];
                }
            }
        }
        assert!(
            g1[0] > 0.0 && !keeps_mass(&g1, g.as_slice().unwrap(), k),
            "{g1:?}"
        );
        assert_eq!(w[[1, 0]], w0[[1, 0]]);
        assert!(w.row(3).iter().all(|&v| v == 0.0));
    }
}
