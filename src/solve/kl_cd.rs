//! Codes under the KL divergence by cyclic coordinate (Newton) descent (Hsieh & Dhillon
//! 2011, "Fast coordinate descent methods with variable selection for NMF").
//!
//! For one row `x` with reconstruction `v = w H`, the problem along code `w_r` is
//! `f(s) = Σ_j [s h_rj − x_j log(v_j + s h_rj)]` (plus the penalties), convex in `s`. One
//! projected Newton step per coordinate and sweep:
//! `g = Σ_j h_rj − Σ_j h_rj x_j / v_j + l1 + l2 w_r`, `q = Σ_j h_rj² x_j / v_j² + l2`,
//! `s = max(−w_r, −g / q)`, then `v += s h_r`. Only the entries with `x_j > 0` enter the
//! sums beyond the constant `Σ_j h_rj`, so a row costs O(nnz · k) per sweep, dense or
//! sparse. `v_j ≥ w_r h_rj` keeps every `v_j + s h_rj ≥ 0` under the projection.
//!
//! Unlike the multiplicative updates, a code can leave zero and reach it exactly, and each
//! row stops on its own tolerance: rows are independent, so nothing waits for the
//! slowest.

use ndarray::{Array2, ArrayView2};

use super::cd::SolveStats;
use crate::float::Float;
use crate::linalg::simd::{dispatch_avx2, divergence_terms, kl_ratio, Terms};
use crate::matrix::MatRef;

/// Sweeps between checks of the idle codes while the active ones still move (see
/// `solve`).
const RECHECK_SWEEPS: usize = 4;

/// Lanes of the reductions: fixed-order partial sums, as in `linalg::simd`.
const LANES: usize = 8;

/// `(Σ h x / v, Σ h² x / v²)` over one row's stored entries, `v` clipped below at `clip`;
/// `t` and `s` (as long as `v`) are scratch.
///
/// Element-wise loops first, which LLVM's loop vectorizer runs eight entries at a time
/// (the division included), then two fixed-lane sums. Written as one loop over lanes
/// holding the division and both sums, the SLP vectorizer paired each lane's two sums
/// instead and divided one entry at a time: 43 % of a KL fit's samples. Same bits.
#[inline(always)]
fn newton_sums_body<F: Float>(
    h: &[F],
    x: &[F],
    v: &[F],
    clip: F,
    t: &mut [F],
    s: &mut [F],
) -> (F, F) {
    for (((te, se), (&hv, &xv)), &vv) in t.iter_mut().zip(s.iter_mut()).zip(h.iter().zip(x)).zip(v)
    {
        let inv = F::one() / vv.max(clip);
        *te = hv * xv * inv;
        *se = *te * hv * inv;
    }
    (lane_sum(t), lane_sum(s))
}

/// `Σ a` in [`LANES`] fixed partial sums, combined in order, then the tail.
#[inline(always)]
fn lane_sum<F: Float>(a: &[F]) -> F {
    let mut acc = [F::zero(); LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    let mut sum = F::zero();
    for v in acc {
        sum += v;
    }
    for &v in tail {
        sum += v;
    }
    sum
}

dispatch_avx2!(fn newton_sums<F>(h: &[F], x: &[F], v: &[F], clip: F, t: &mut [F], s: &mut [F]) -> (F, F) => newton_sums_body);

/// `Σ h x / v` alone: the gradient's data term, for the check of the codes left at zero.
#[inline(always)]
fn ratio_dot_body<F: Float>(h: &[F], u: &[F]) -> F {
    let mut g = [F::zero(); LANES];
    let (hc, uc) = (h.chunks_exact(LANES), u.chunks_exact(LANES));
    let (ht, ut) = (hc.remainder(), uc.remainder());
    for (hb, ub) in hc.zip(uc) {
        for l in 0..LANES {
            g[l] += hb[l] * ub[l];
        }
    }
    let mut gs = F::zero();
    for v in g {
        gs += v;
    }
    for (&hv, &uv) in ht.iter().zip(ut) {
        gs += hv * uv;
    }
    gs
}

dispatch_avx2!(fn ratio_dot<F>(h: &[F], u: &[F]) -> F => ratio_dot_body);

/// The positive entries of a dense row: their columns into `cols`, their values into
/// `vals` (both cleared first). Branch-free: on rows about half positive (counts), a
/// branch per entry mispredicted about every other time.
fn positive_entries<F: Float>(row: &[F], cols: &mut Vec<u32>, vals: &mut Vec<F>) {
    cols.clear();
    vals.clear();
    cols.resize(row.len(), 0);
    vals.resize(row.len(), F::zero());
    let mut m = 0;
    for (j, &xv) in row.iter().enumerate() {
        cols[m] = j as u32;
        vals[m] = xv;
        m += usize::from(xv > F::zero());
    }
    cols.truncate(m);
    vals.truncate(m);
}

/// `out[t] = src[idx[t]]`. The indices are checked once, by their largest (a vectorized
/// pass), instead of one bounds check a load: the gathers were 16 % of a KL fit on
/// counts, and the per-load check made them 1.6 times slower.
///
/// # Panics
/// If an index is past `src` (the callers' indices are the columns of a row of `src`'s
/// width: a bug, never an input).
#[inline(always)]
fn gather_body<F: Float>(src: &[F], idx: &[u32], out: &mut [F]) {
    let top = idx.iter().fold(0u32, |m, &j| m.max(j));
    assert!(
        idx.is_empty() || (top as usize) < src.len(),
        "gather index past its source"
    );
    for (o, &j) in out.iter_mut().zip(idx) {
        // SAFETY: every index is below `src.len()`, checked just above.
        *o = unsafe { *src.get_unchecked(j as usize) };
    }
}

dispatch_avx2!(fn gather<F>(src: &[F], idx: &[u32], out: &mut [F]) -> () => gather_body);

#[inline(always)]
fn axpy_body<F: Float>(v: &mut [F], s: F, h: &[F]) {
    for (e, &hv) in v.iter_mut().zip(h) {
        *e += s * hv;
    }
}

dispatch_avx2!(fn axpy<F>(v: &mut [F], s: F, h: &[F]) -> () => axpy_body);

/// One row's data in the solver's layout: the stored values and, per component, the
/// matching entries of H (`k × nnz`, row-major), gathered once per row unless the row is
/// fully dense (then H itself is used).
struct RowWork<F> {
    vals: Vec<F>,
    hg: Vec<F>,
    v: Vec<F>,
    /// `x / v` at the stored entries, for [`zeros_stay`].
    u: Vec<F>,
    /// Scratch of [`newton_sums`], one entry per stored value each.
    terms: (Vec<F>, Vec<F>),
    /// Codes at zero whose gradient was non-negative when last looked at: the sweeps
    /// skip them until the active codes converge (see `solve`).
    idle: Vec<bool>,
}

/// Runs coordinate descent on every row of `w` (b × k, warm start, non-negative) for the
/// data `x` (b × p) and `h` (k × p). `hsum` holds the row sums of H, `clip` floors `v`
/// where it divides (see [`super::mu::relative_clip`]).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve<F: Float>(
    x: MatRef<F>,
    h: ArrayView2<F>,
    hsum: &[F],
    w: &mut Array2<F>,
    pen: (F, F),
    max_iter: usize,
    tol: f64,
    clip: F,
) -> SolveStats {
    solve_scored(x, h, hsum, w, pen, max_iter, tol, clip).0
}

/// `solve`, also returning the divergence `D(x | w H)` of the rows at their codes,
/// `Σ_{x>0} (x log(x / v) − x) + Σ_r w_r Σ_j h_rj`, from the solver's own `v` (no
/// product `W H` over every entry, which with its pass over `b × p` values was a sixth of
/// a KL pass on 20000 × 500 counts). Infinite where a positive entry has `v ≤ 0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve_scored<F: Float>(
    x: MatRef<F>,
    h: ArrayView2<F>,
    hsum: &[F],
    w: &mut Array2<F>,
    (l1, l2): (F, F),
    max_iter: usize,
    tol: f64,
    clip: F,
) -> (SolveStats, f64) {
    let mut loss = 0.0f64;
    let (k, p) = h.dim();
    let h = h.as_standard_layout();
    let hs = h.as_slice().expect("standard layout");
    let tol2 = tol * tol;
    let mut stats = SolveStats {
        iterations: 0,
        converged: true,
    };
    let dense = match x {
        MatRef::Dense(d) => Some(d),
        MatRef::Csr(_) => None,
    };
    let csr = match x {
        MatRef::Csr(c) => Some(c),
        MatRef::Dense(_) => None,
    };
    let mut work = RowWork {
        vals: Vec::with_capacity(p),
        hg: Vec::new(),
        v: Vec::with_capacity(p),
        u: Vec::with_capacity(p),
        terms: (Vec::with_capacity(p), Vec::with_capacity(p)),
        idle: vec![false; k],
    };
    let mut cols: Vec<u32> = Vec::with_capacity(p);
    for (i, mut wi) in w.rows_mut().into_iter().enumerate() {
        work.vals.clear();
        cols.clear();
        if let Some(d) = dense {
            let row = d.row(i);
            match row.as_slice() {
                Some(r) => positive_entries(r, &mut cols, &mut work.vals),
                None => positive_entries(&row.to_vec(), &mut cols, &mut work.vals),
            }
        } else if let Some(c) = csr {
            let (cj, cv) = c.row(i);
            for (&j, &xv) in cj.iter().zip(cv) {
                if xv > F::zero() {
                    cols.push(j);
                    work.vals.push(xv);
                }
            }
        }
        let nnz = cols.len();
        if nnz == 0 {
            // Every gradient is Σ h_r + l1 ≥ 0: the optimum is zero (and so is the loss).
            wi.fill(F::zero());
            continue;
        }
        let full = nnz == p;
        if !full {
            work.hg.clear();
            work.hg.resize(k * nnz, F::zero());
            for (r, out) in work.hg.chunks_exact_mut(nnz).enumerate() {
                gather(&hs[r * p..(r + 1) * p], &cols, out);
            }
        }
        let hsrc: &[F] = if full { hs } else { &work.hg };
        // v = w H at the stored entries.
        work.v.clear();
        work.v.resize(nnz, F::zero());
        for r in 0..k {
            let wr = wi[r];
            if wr > F::zero() {
                axpy(&mut work.v, wr, &hsrc[r * nnz..(r + 1) * nnz]);
            }
        }
        for buf in [&mut work.terms.0, &mut work.terms.1] {
            buf.clear();
            buf.resize(nnz, F::zero());
        }
        let mut it = 0;
        let mut ok = false;
        work.idle.fill(false);
        while it < max_iter {
            it += 1;
            let (mut delta, mut norm) = (0.0f64, 0.0f64);
            for r in 0..k {
                if work.idle[r] {
                    continue;
                }
                let hr = &hsrc[r * nnz..(r + 1) * nnz];
                let (gx, q) = newton_sums(
                    hr,
                    &work.vals,
                    &work.v,
                    clip,
                    &mut work.terms.0,
                    &mut work.terms.1,
                );
                let wr = wi[r];
                let g = hsum[r] - gx + l1 + l2 * wr;
                if wr == F::zero() && g >= F::zero() {
                    // At its bound with a gradient pushing into it: it stays at zero.
                    work.idle[r] = true;
                    continue;
                }
                let q = q + l2;
                let step = if q > F::zero() {
                    (-g / q).max(-wr)
                } else if g > F::zero() {
                    -wr
                } else {
                    F::zero()
                };
                if step != F::zero() && step.is_finite() {
                    let new = (wr + step).max(F::zero());
                    let step = new - wr;
                    wi[r] = new;
                    axpy(&mut work.v, step, hr);
                    delta += step.as_f64() * step.as_f64();
                }
                norm += wi[r].as_f64() * wi[r].as_f64();
            }
            // When the active codes converge, and every few sweeps before (a code idled
            // early may want back in long before the others settle): done if every idle
            // code still belongs at zero, else those that do not rejoin the sweeps.
            let settled = delta <= tol2 * norm;
            if settled || it % RECHECK_SWEEPS == 0 {
                let row = (&work.vals[..], &work.v[..]);
                let stay = zeros_stay(
                    &mut work.idle,
                    &mut work.u,
                    row,
                    hsrc,
                    hsum,
                    (l1, clip, tol),
                );
                if settled && stay {
                    ok = true;
                    break;
                }
            }
        }
        repair_support(&mut wi, &work.vals, &mut work.v, hsrc, hsum);
        stats.iterations = stats.iterations.max(it);
        stats.converged &= ok;
        loss += divergence_terms(&work.vals, &work.v, Terms::KlStored);
        loss += wi
            .iter()
            .zip(hsum)
            .map(|(a, b)| a.as_f64() * b.as_f64())
            .sum::<f64>();
    }
    (stats, loss)
}

/// Whether every idle code (see [`RowWork::idle`]) still has a non-negative gradient at
/// the current `v`, the optimality condition of a code at zero. Those that do not are made
/// active again. One division per stored entry, then a product per idle code, where a
/// sweep over them would take a division per entry and code: with 69 % of the codes at
/// zero (KL on 20000 × 500 Poisson counts, k 10), skipping them between checks takes the
/// sweeps to a third of their work.
fn zeros_stay<F: Float>(
    idle: &mut [bool],
    u: &mut Vec<F>,
    (vals, v): (&[F], &[F]),
    hsrc: &[F],
    hsum: &[F],
    (l1, clip, tol): (F, F, f64),
) -> bool {
    if !idle.contains(&true) {
        return true;
    }
    let nnz = vals.len();
    u.clear();
    u.extend_from_slice(v);
    kl_ratio(u, vals, clip);
    let mut all = true;
    for (r, idle) in idle.iter_mut().enumerate() {
        if *idle {
            let g = hsum[r] - ratio_dot(&hsrc[r * nnz..(r + 1) * nnz], u) + l1;
            // Relative to the gradient's scale `Σ_j h_rj`, at the solver's tolerance: a
            // rounding-size negative gradient would wake a code for a step of nothing
            // and cost the row another round of sweeps.
            if g.as_f64() < -tol * hsum[r].as_f64() {
                *idle = false;
                all = false;
            }
        }
    }
    all
}

/// Gives every positive entry of the row some reconstruction when an atom can: the
/// solver sees `v` floored at the clip, so where an atom is tiny against its own sum it
/// may leave `v_j = 0` under `x_j > 0`, which the divergence prices at infinity (a row
/// with a 9e4 count and a 4e-7 one, near-zero NNDSVD atoms). For each such entry the
/// atom with the largest `h_rj / Σ_j h_r` gets the exact minimizer of
/// `s Σ_j h_r − x_j log(s h_rj)`, `s = x_j / Σ_j h_r`: mass `x_j` for a finite term.
fn repair_support<F: Float>(
    w: &mut ndarray::ArrayViewMut1<F>,
    vals: &[F],
    v: &mut [F],
    hsrc: &[F],
    hsum: &[F],
) {
    let (k, nnz) = (w.len(), vals.len());
    for t in 0..nnz {
        if v[t] > F::zero() {
            continue;
        }
        let best = (0..k)
            .filter(|&r| hsrc[r * nnz + t] > F::zero() && hsum[r] > F::zero())
            .max_by(|&a, &b| {
                let ra = hsrc[a * nnz + t] / hsum[a];
                let rb = hsrc[b * nnz + t] / hsum[b];
                ra.partial_cmp(&rb).unwrap_or(std::cmp::Ordering::Equal)
            });
        let Some(r) = best else {
            continue; // no atom reaches this column: no code can help
        };
        let s = vals[t] / hsum[r];
        if s.is_finite() && s > F::zero() {
            w[r] += s;
            axpy(v, s, &hsrc[r * nnz..(r + 1) * nnz]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::CsrMatrix;
    use crate::solve::mu;
    use ndarray::Array2;

    /// A dense row's positive entries, in order, whatever came before in the buffers;
    /// and their columns of H, gathered.
    #[test]
    fn positive_entries_and_their_columns() {
        let (mut cols, mut vals) = (vec![9u32; 3], vec![7.0f32; 40]);
        let row = [0.0f32, 2.0, 0.0, 3.5, 1e-30, 0.0, -0.0];
        positive_entries(&row, &mut cols, &mut vals);
        assert_eq!(
            (cols.as_slice(), vals.as_slice()),
            (&[1, 3, 4][..], &[2.0, 3.5, 1e-30][..])
        );
        positive_entries(&[0.0f32; 5], &mut cols, &mut vals);
        assert!(cols.is_empty() && vals.is_empty());
        let h: Vec<f32> = (0..7).map(|j| j as f32 * 0.5).collect();
        let mut out = vec![0.0f32; 3];
        gather(&h, &[1, 3, 4], &mut out);
        assert_eq!(out, [0.5, 1.5, 2.0]);
        gather(&h, &[6, 0, 6], &mut out);
        assert_eq!(out, [3.0, 0.0, 3.0]);
        gather(&h, &[], &mut out[..0]);
    }

    /// An index past the source is a panic, not a read out of bounds.
    #[test]
    #[should_panic(expected = "gather index past its source")]
    fn gather_refuses_an_index_past_its_source() {
        let mut out = [0.0f64; 2];
        gather(&[1.0, 2.0, 3.0], &[0, 3], &mut out);
    }

    /// The Newton sums equal the single-loop form they replaced (eight lane sums of
    /// `t = h x / v` and `t h / v`, combined in order, then the tail) bit for bit, in the
    /// AVX2 build and the baseline build, with `v` clipped.
    #[test]
    fn newton_sums_keep_the_lane_order() {
        // Irregular values, so that another order of the additions rounds differently.
        let n = 203;
        let h: Vec<f32> = (0..n)
            .map(|i| (i * 7919 % 1000) as f32 / 997.0 + 1e-3)
            .collect();
        let x: Vec<f32> = (0..n)
            .map(|i| (i * 104_729 % 113) as f32 * 0.013 + 0.1)
            .collect();
        let v: Vec<f32> = (0..n).map(|i| (i * 31 % 17) as f32 * 0.37).collect();
        let clip = 1e-3f32;
        let (mut g, mut q) = ([0.0f32; LANES], [0.0f32; LANES]);
        let whole = n / LANES * LANES;
        for j in 0..whole {
            let inv = 1.0 / v[j].max(clip);
            let t = h[j] * x[j] * inv;
            g[j % LANES] += t;
            q[j % LANES] += t * h[j] * inv;
        }
        let (mut gs, mut qs) = (0.0f32, 0.0f32);
        for l in 0..LANES {
            gs += g[l];
            qs += q[l];
        }
        for j in whole..n {
            let inv = 1.0 / v[j].max(clip);
            let t = h[j] * x[j] * inv;
            gs += t;
            qs += t * h[j] * inv;
        }
        let (mut t, mut s) = (vec![0.0f32; n], vec![0.0f32; n]);
        let got = newton_sums(&h, &x, &v, clip, &mut t, &mut s);
        assert_eq!(
            (got.0.to_bits(), got.1.to_bits()),
            (gs.to_bits(), qs.to_bits())
        );
        let base = newton_sums_body(&h, &x, &v, clip, &mut t, &mut s);
        assert_eq!(got, base);
    }

    fn kl(x: &Array2<f64>, w: &Array2<f64>, h: &Array2<f64>) -> f64 {
        let v = w.dot(h);
        x.iter()
            .zip(v.iter())
            .map(|(&a, &b)| if a > 0.0 { a * (a / b).ln() - a + b } else { b })
            .sum()
    }

    /// A planted KL problem: counts-like data from non-negative codes and atoms.
    fn problem(zero_share: f64) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
        let (n, k, p) = (40, 5, 60);
        let mut s = 12345u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let h = Array2::from_shape_fn((k, p), |_| next() * 2.0);
        let w0 = Array2::from_shape_fn((n, k), |_| if next() < 0.3 { 0.0 } else { next() });
        let mut x = w0.dot(&h);
        x.mapv_inplace(|v| v * (0.8 + 0.4 * next()));
        for v in x.iter_mut() {
            if next() < zero_share {
                *v = 0.0;
            }
        }
        (x, h, w0)
    }

    /// An entry covered only by an atom that is tiny against its own mass: the clipped
    /// gradient keeps that code at zero, which would leave `W H = 0` under a positive
    /// value (an infinite divergence); the repair gives it the entry's own optimum.
    #[test]
    fn positive_entries_keep_some_reconstruction() {
        let h = ndarray::array![[0.0, 1000.0, 1e-9], [1.0, 0.0, 0.0]];
        let x = ndarray::array![[5.0, 0.0, 1e-6]];
        let hsum: Vec<f64> = h.rows().into_iter().map(|r| r.sum()).collect();
        let xr = MatRef::from(&x);
        let clip = mu::relative_clip(xr);
        let mut w = Array2::zeros((1, 2));
        solve(xr, h.view(), &hsum, &mut w, (0.0, 0.0), 100, 1e-8, clip);
        assert!((w[[0, 1]] - 5.0).abs() < 1e-9, "{w}");
        assert!(w[[0, 0]] > 0.0, "{w}");
        let d = kl(&x, &w, &h);
        assert!(d.is_finite() && d < 1e-4, "{d}");
    }

    /// Coordinate descent reaches (to 1e-6 relative) the divergence that thousands of
    /// multiplicative updates reach, in far fewer sweeps, dense and sparse alike, and the
    /// two layouts give the same codes.
    #[test]
    fn reaches_the_multiplicative_optimum_in_few_sweeps() {
        for zero_share in [0.0, 0.4] {
            let (x, h, _) = problem(zero_share);
            let hsum: Vec<f64> = h.rows().into_iter().map(|r| r.sum()).collect();
            let xr = MatRef::from(&x);
            let ht = h.t().as_standard_layout().into_owned();
            let mut wm = mu::initial_codes(xr, h.view());
            mu::solve(xr, h.view(), ht.view(), &mut wm, 1.0, (0.0, 0.0), 5000, 0.0);
            let best = kl(&x, &wm, &h);

            let mut wc = mu::initial_codes(xr, h.view());
            let stats = solve(xr, h.view(), &hsum, &mut wc, (0.0, 0.0), 200, 1e-9, 1e-12);
            let got = kl(&x, &wc, &h);
            assert!(stats.converged && stats.iterations < 100, "{stats:?}");
            assert!(got <= best * (1.0 + 1e-6), "cd {got} vs mu {best}");
            assert!(wc.iter().any(|&v| v == 0.0), "cd reaches exact zeros");

            let csr = CsrMatrix::from_dense(x.view());
            let mut ws = mu::initial_codes(xr, h.view());
            solve(
                MatRef::from(&csr),
                h.view(),
                &hsum,
                &mut ws,
                (0.0, 0.0),
                200,
                1e-9,
                1e-12,
            );
            let diff = (&ws - &wc)
                .mapv(f64::abs)
                .iter()
                .cloned()
                .fold(0.0, f64::max);
            assert!(diff < 1e-9, "sparse and dense differ by {diff}");
        }
    }

    /// Each sweep never increases the divergence (a Newton step on a convex function of
    /// one variable, from a positive start, with the projection).
    /// The solver's own score is the divergence at the codes it returns, dense and sparse.
    #[test]
    fn scored_loss_is_the_divergence() {
        for zero_share in [0.0, 0.4] {
            let (x, h, _) = problem(zero_share);
            let hsum: Vec<f64> = h.rows().into_iter().map(|r| r.sum()).collect();
            let csr = CsrMatrix::from_dense(x.view());
            for xr in [MatRef::from(&x), MatRef::from(&csr)] {
                let mut w = mu::initial_codes(xr, h.view());
                let (_, loss) =
                    solve_scored(xr, h.view(), &hsum, &mut w, (0.0, 0.0), 50, 1e-6, 1e-12);
                let want = kl(&x, &w, &h);
                assert!((loss - want).abs() <= 1e-9 * want, "{loss} vs {want}");
            }
        }
    }

    #[test]
    fn divergence_falls_sweep_by_sweep() {
        let (x, h, _) = problem(0.2);
        let hsum: Vec<f64> = h.rows().into_iter().map(|r| r.sum()).collect();
        let xr = MatRef::from(&x);
        let mut w = mu::initial_codes(xr, h.view());
        let mut last = kl(&x, &w, &h);
        for _ in 0..20 {
            solve(xr, h.view(), &hsum, &mut w, (0.0, 0.0), 1, 0.0, 1e-12);
            let now = kl(&x, &w, &h);
            assert!(now <= last * (1.0 + 1e-12), "{now} > {last}");
            last = now;
        }
    }

    /// An all-zero row gets zero codes; a row that only some atoms cover gets zeros on
    /// the others.
    #[test]
    fn zero_rows_and_uncovered_atoms() {
        let h = ndarray::array![[1.0f64, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let x = ndarray::array![[0.0f64, 0.0, 0.0], [2.0, 2.0, 0.0]];
        let mut w = Array2::from_elem((2, 2), 0.5);
        let stats = solve(
            MatRef::from(&x),
            h.view(),
            &[2.0, 1.0],
            &mut w,
            (0.0, 0.0),
            50,
            1e-10,
            1e-12,
        );
        assert!(stats.converged);
        assert_eq!(w.row(0).to_vec(), vec![0.0, 0.0]);
        assert!((w[[1, 0]] - 2.0).abs() < 1e-9 && w[[1, 1]] == 0.0, "{w}");
    }
}
