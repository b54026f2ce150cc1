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
//! **Dictionary.** Column j keeps its own statistics (the online analogue of ALS):
//! `A_j = Σ_{i∈Ω_j} w_i w_iᵀ` (implicit: `(c_ij − 1) w_i w_iᵀ`, plus the shared
//! `Σ_all w wᵀ`) and `b_j = Σ x_ij w_i` (implicit: `c_ij w_i`), packed: `p · k(k+3)/2`
//! values. The forget factor and the scaling of the past multiply every column alike, so
//! they are one global multiplier, folded in lazily; a batch costs
//! `O(nnz · k² + touched columns · k² · sweeps)`. For KL the numerator and denominator
//! statistics keep their shape; the denominator sums the codes over the observed rows of
//! each column only.

use ndarray::{Array2, ArrayView2};

use super::options::Unobserved;
use super::params::ValidParams;
use crate::float::Float;
use crate::linalg::{simd, zeros_written, CLIP};
use crate::matrix::CsrView;
use crate::solve::{cd, least_squares_start_one, SolveStats};

/// Values of a packed symmetric k × k matrix (upper triangle, row by row).
pub(crate) fn packed(k: usize) -> usize {
    k * (k + 1) / 2
}

/// `out += coef · w wᵀ`, packed.
#[inline]
fn add_outer<F: Float>(out: &mut [F], w: &[F], coef: F) {
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
fn unpack_into<F: Float>(packed: &[F], k: usize, scale: F, extra: Option<&[F]>, out: &mut [F]) {
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
    for (i, mut wi) in w.rows_mut().into_iter().enumerate() {
        let (cols, vals) = x.row(i);
        if implicit {
            g.copy_from_slice(gs0);
        } else {
            g.fill(F::zero());
        }
        r.fill(F::zero());
        for (&j, &v) in cols.iter().zip(vals) {
            let hj = &hs[j as usize * k..(j as usize + 1) * k];
            let (coef, target) = if implicit {
                let c = F::from_f64(mode.confidence(v.as_f64()));
                (c - F::one(), c)
            } else {
                (F::one(), v)
            };
            // The upper triangle only; mirrored below.
            for a in 0..k {
                let ca = coef * hj[a];
                for b in a..k {
                    g[a * k + b] += ca * hj[b];
                }
                r[a] += target * hj[a];
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
        loss += row_loss(mode, wi, cols, vals, hs, gs0);
    }
    (w, stats, loss)
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
    let dot = |j: u32| -> f64 {
        let hj = &hs[j as usize * k..(j as usize + 1) * k];
        w.iter().zip(hj).map(|(a, b)| a.as_f64() * b.as_f64()).sum()
    };
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

/// What a chunk adds to the per-column statistics: for each column it touches (sorted),
/// the packed `Σ coef · w wᵀ` and the `Σ target · w`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ColumnContribution<F> {
    pub(crate) cols: Vec<u32>,
    pub(crate) a: Vec<F>,
    pub(crate) b: Vec<F>,
    /// Entries per column.
    pub(crate) n: Vec<F>,
}

impl<F: Float> ColumnContribution<F> {
    /// The contribution of chunk `x` with codes `w` (observed-only or implicit).
    pub(crate) fn new(mode: Unobserved, x: CsrView<F>, w: ArrayView2<F>) -> Self {
        let k = w.ncols();
        let kk = packed(k);
        let w = w.as_standard_layout();
        let ws = w.as_slice().expect("standard layout");
        // Entries by column (then row: the order the sums are made in).
        let mut entries: Vec<(u64, F)> = Vec::with_capacity(x.nnz());
        for i in 0..x.nrows() {
            let (cols, vals) = x.row(i);
            entries.extend(
                cols.iter()
                    .zip(vals)
                    .map(|(&j, &v)| ((u64::from(j) << 32) | i as u64, v)),
            );
        }
        // Distinct keys: an unstable sort is deterministic.
        entries.sort_unstable_by_key(|e| e.0);
        let mut out = Self::default();
        for (key, v) in entries {
            let (j, i) = ((key >> 32) as u32, (key & 0xffff_ffff) as usize);
            if out.cols.last() != Some(&j) {
                out.cols.push(j);
                out.a.resize(out.a.len() + kk, F::zero());
                out.b.resize(out.b.len() + k, F::zero());
                out.n.push(F::zero());
            }
            let c = out.cols.len() - 1;
            out.n[c] += F::one();
            let wi = &ws[i * k..(i + 1) * k];
            let (coef, target) = match mode {
                Unobserved::Implicit { .. } => {
                    let conf = F::from_f64(mode.confidence(v.as_f64()));
                    (conf - F::one(), conf)
                }
                _ => (F::one(), v),
            };
            add_outer(&mut out.a[c * kk..(c + 1) * kk], wi, coef);
            for (b, &wv) in out.b[c * k..(c + 1) * k].iter_mut().zip(wi) {
                *b += target * wv;
            }
        }
        out
    }

    /// Adds another chunk's contribution (merging the column lists).
    pub(crate) fn add(&mut self, other: &Self, k: usize) {
        let kk = packed(k);
        let mut merged = Self {
            cols: Vec::with_capacity(self.cols.len() + other.cols.len()),
            a: Vec::with_capacity(self.a.len() + other.a.len()),
            b: Vec::with_capacity(self.b.len() + other.b.len()),
            n: Vec::with_capacity(self.n.len() + other.n.len()),
        };
        let (mut s, mut o) = (0, 0);
        while s < self.cols.len() || o < other.cols.len() {
            let mine =
                s < self.cols.len() && (o >= other.cols.len() || self.cols[s] <= other.cols[o]);
            let theirs =
                o < other.cols.len() && (s >= self.cols.len() || other.cols[o] <= self.cols[s]);
            let (src, t) = if mine { (&*self, s) } else { (other, o) };
            merged.cols.push(src.cols[t]);
            merged.a.extend_from_slice(&src.a[t * kk..(t + 1) * kk]);
            merged.b.extend_from_slice(&src.b[t * k..(t + 1) * k]);
            merged.n.push(src.n[t]);
            if mine && theirs {
                // The column is in both: add the other's sums.
                let c = merged.cols.len() - 1;
                let add = |d: &mut [F], v: &[F]| d.iter_mut().zip(v).for_each(|(x, &y)| *x += y);
                add(
                    &mut merged.a[c * kk..(c + 1) * kk],
                    &other.a[o * kk..(o + 1) * kk],
                );
                add(
                    &mut merged.b[c * k..(c + 1) * k],
                    &other.b[o * k..(o + 1) * k],
                );
                merged.n[c] += other.n[o];
            }
            s += usize::from(mine);
            o += usize::from(theirs);
        }
        *self = merged;
    }

    /// Whether every value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        simd::all_finite(&self.a) && simd::all_finite(&self.b) && simd::all_finite(&self.n)
    }
}

/// Per-column statistics, stored divided by one global multiplier `scale` (the product
/// of every past scaling), so scaling all columns costs nothing: the true `A_j` is
/// `scale · a_j`. When the multiplier gets small, it is folded back into the values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnStats<F> {
    pub(crate) k: usize,
    pub(crate) scale: f64,
    /// Packed `A_j`, one block of `k(k+1)/2` per column.
    pub(crate) a: Vec<F>,
    /// `b_j`, one block of `k` per column.
    pub(crate) b: Vec<F>,
    /// The weighted number of observations of each column.
    pub(crate) n: Vec<F>,
}

impl<F: Float> ColumnStats<F> {
    pub(crate) fn zeros(k: usize, p: usize) -> Self {
        Self {
            k,
            scale: 1.0,
            a: vec![F::zero(); p * packed(k)],
            b: vec![F::zero(); p * k],
            n: vec![F::zero(); p],
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.b.len() / self.k.max(1)
    }

    /// Grows to `p` columns; new columns have no statistics yet.
    pub(crate) fn grow(&mut self, p: usize) {
        if p > self.width() {
            self.a.resize(p * packed(self.k), F::zero());
            self.b.resize(p * self.k, F::zero());
            self.n.resize(p, F::zero());
        }
    }

    /// Multiplies every column by `rho`, then adds `c`.
    pub(crate) fn fold(&mut self, rho: f64, c: &ColumnContribution<F>) {
        self.scale *= rho;
        if self.scale.is_nan() || self.scale <= 1e-8 {
            // Fold the multiplier in before the stored values outgrow the element type.
            let s = F::from_f64(self.scale);
            self.a
                .iter_mut()
                .chain(self.b.iter_mut())
                .chain(self.n.iter_mut())
                .for_each(|v| *v *= s);
            self.scale = 1.0;
        }
        let (k, kk) = (self.k, packed(self.k));
        let inv = F::from_f64(1.0 / self.scale);
        for (t, &j) in c.cols.iter().enumerate() {
            let j = j as usize;
            for (d, &v) in self.a[j * kk..(j + 1) * kk]
                .iter_mut()
                .zip(&c.a[t * kk..(t + 1) * kk])
            {
                *d += v * inv;
            }
            for (d, &v) in self.b[j * k..(j + 1) * k]
                .iter_mut()
                .zip(&c.b[t * k..(t + 1) * k])
            {
                *d += v * inv;
            }
            self.n[j] += c.n[t] * inv;
        }
    }

    /// Forgets atom `j` (a re-seeded dead atom) in every column.
    pub(crate) fn forget_atom(&mut self, j: usize) {
        let (k, kk) = (self.k, packed(self.k));
        for col in 0..self.width() {
            let a = &mut self.a[col * kk..(col + 1) * kk];
            let mut t = 0;
            for r in 0..k {
                for c in r..k {
                    if r == j || c == j {
                        a[t] = F::zero();
                    }
                    t += 1;
                }
            }
            self.b[col * k + j] = F::zero();
        }
    }

    /// Whether every value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        self.scale.is_finite()
            && simd::all_finite(&self.a)
            && simd::all_finite(&self.b)
            && simd::all_finite(&self.n)
    }
}

/// Solves the columns `cols` of H (k × p, any layout) from the statistics: the current
/// pass's, plus `left` times the previous pass's when there is one, plus the shared
/// `Σ_all w wᵀ` (`shared`, k × k, implicit feedback), each column's NNLS problem warm
/// started from its current values, with the `(l1, l2)` penalties `penalties(count)`
/// gives for the column's weighted count of observations. Returns the most sweeps a
/// column took.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_columns<F: Float>(
    h: &mut Array2<F>,
    cols: &[u32],
    current: &ColumnStats<F>,
    previous: Option<(&ColumnStats<F>, f64)>,
    shared: Option<ArrayView2<F>>,
    penalties: &(dyn Fn(f64) -> (f64, f64) + Sync),
    (max_iter, tol): (usize, f64),
    threads: usize,
) -> usize {
    let k = h.nrows();
    let kk = packed(k);
    let shared = shared.map(|s| s.as_standard_layout().into_owned());
    let blocks: Vec<&[u32]> = cols.chunks(256).collect();
    let hv = h.view();
    let parts = crate::linalg::parallel::map_indexed(blocks.len(), threads, |bi| {
        let mut g = vec![F::zero(); k * k];
        let mut gp = vec![F::zero(); k * k];
        let mut r = vec![F::zero(); k];
        let mut out = Vec::with_capacity(blocks[bi].len() * k);
        let mut sweeps = 0;
        for &j in blocks[bi] {
            let j = j as usize;
            let sc = F::from_f64(current.scale);
            unpack_into(
                &current.a[j * kk..(j + 1) * kk],
                k,
                sc,
                shared.as_ref().and_then(|s| s.as_slice()),
                &mut g,
            );
            for (d, &v) in r.iter_mut().zip(&current.b[j * k..(j + 1) * k]) {
                *d = v * sc;
            }
            let mut count = current.n[j].as_f64() * current.scale;
            if let Some((prev, left)) = previous {
                if j < prev.width() {
                    let sp = F::from_f64(prev.scale * left);
                    unpack_into(&prev.a[j * kk..(j + 1) * kk], k, sp, None, &mut gp);
                    g.iter_mut().zip(&gp).for_each(|(a, &b)| *a += b);
                    for (d, &v) in r.iter_mut().zip(&prev.b[j * k..(j + 1) * k]) {
                        *d += v * sp;
                    }
                    count += prev.n[j].as_f64() * prev.scale * left;
                }
            }
            let (l1, l2) = penalties(count);
            let pen = (F::from_f64(l1), F::from_f64(l2));
            let mut hj: Vec<F> = hv.column(j).to_vec();
            let (it, _) = cd::solve_one(&g, &r, &mut hj, pen, max_iter, tol);
            sweeps = sweeps.max(it);
            out.extend(hj);
        }
        (out, sweeps)
    });
    let mut sweeps = 0;
    for (block, (vals, it)) in blocks.iter().zip(parts) {
        for (t, &j) in block.iter().enumerate() {
            for a in 0..k {
                h[[a, j as usize]] = vals[t * k + a];
            }
        }
        sweeps = sweeps.max(it);
    }
    sweeps
}

/// The KL statistics of a chunk over its observed entries only: the numerator
/// `Σ_Ω w_i (x_ij / v_ij)` and the denominator `Σ_{i∈Ω_j} w_i`, both k × p.
pub(crate) fn kl_statistics<F: Float>(
    x: CsrView<F>,
    w: ArrayView2<F>,
    ht: ArrayView2<F>,
) -> (Array2<F>, Array2<F>) {
    let (k, p) = (w.ncols(), x.ncols());
    let ht = ht.as_standard_layout();
    let hs = ht.as_slice().expect("standard layout");
    // Accumulated transposed (p × k, contiguous per column), returned k × p.
    let (mut num, mut den): (Array2<F>, Array2<F>) = (zeros_written((p, k)), zeros_written((p, k)));
    let clip = F::from_f64(CLIP);
    for i in 0..x.nrows() {
        let (cols, vals) = x.row(i);
        let wi = w.row(i);
        for (&j, &xv) in cols.iter().zip(vals) {
            let hj = &hs[j as usize * k..(j as usize + 1) * k];
            let v = wi.iter().zip(hj).fold(F::zero(), |s, (&a, &b)| s + a * b);
            let ratio = xv / v.max(clip);
            let (mut n, mut d) = (num.row_mut(j as usize), den.row_mut(j as usize));
            for a in 0..k {
                n[a] += ratio * wi[a];
                d[a] += wi[a];
            }
        }
    }
    (num.reversed_axes(), den.reversed_axes())
}

#[cfg(test)]
mod tests {
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

    /// Statistics are sums over the observed entries of each column, merged across chunks.
    #[test]
    fn column_contributions_merge() {
        let x = array![[1.0f64, 0.0, 2.0], [0.0, 3.0, 4.0]];
        let csr = CsrMatrix::from_dense(x.view());
        let w = array![[1.0, 2.0], [0.5, 0.0]];
        let all = ColumnContribution::new(Unobserved::Missing, csr.view(), w.view());
        assert_eq!(all.cols, vec![0, 1, 2]);
        // Column 2: rows 0 and 1; A = w0 w0ᵀ + w1 w1ᵀ = [[1.25, 2], [2, 4]] packed.
        assert_eq!(&all.a[6..9], &[1.25, 2.0, 4.0]);
        assert_eq!(&all.b[4..6], &[2.0 * 1.0 + 4.0 * 0.5, 4.0]);
        let mut a = ColumnContribution::new(
            Unobserved::Missing,
            csr.view().slice_rows(0..1),
            w.slice(ndarray::s![0..1, ..]),
        );
        let b = ColumnContribution::new(
            Unobserved::Missing,
            csr.view().slice_rows(1..2),
            w.slice(ndarray::s![1..2, ..]),
        );
        a.add(&b, 2);
        assert_eq!(a, all);
    }

    /// The lazy multiplier: statistics folded with scaling equal the explicit sums.
    #[test]
    fn lazy_scale_equals_explicit_scaling() {
        let x = array![[1.0f64, 2.0], [3.0, 0.5]];
        let csr = CsrMatrix::from_dense(x.view());
        let w = array![[1.0, 0.5], [0.25, 2.0]];
        let c = ColumnContribution::new(Unobserved::Missing, csr.view(), w.view());
        let mut s = ColumnStats::zeros(2, 2);
        for _ in 0..40 {
            s.fold(0.5, &c);
        }
        // Σ_{t<40} 0.5^t = 2 (1 − 0.5^40).
        let want = 2.0 * (1.0 - 0.5f64.powi(40));
        let got = s.b[0] * s.scale;
        assert!(
            (got - c.b[0] * want).abs() < 1e-12,
            "{got} vs {}",
            c.b[0] * want
        );
        assert!(s.scale > 1e-8);
    }
}
