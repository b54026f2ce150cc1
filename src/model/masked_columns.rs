//! The dictionary side of the losses of [`super::masked`] (observed-only and implicit
//! feedback).
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

use super::masked::{add_outer, mostly_observed, packed, unobserved, unpack_into, KEPT_MASS};
use super::options::Unobserved;
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::linalg::{simd, zeros_written, CLIP};
use crate::matrix::CsrView;
use crate::solve::cd;

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
        let w = w.as_standard_layout();
        let ws = w.as_slice().expect("standard layout");
        if mode == Unobserved::Missing && mostly_observed(x.nnz(), x.nrows() * x.ncols()) {
            return Self::mostly_observed(x, ws, k);
        }
        Self::summed(mode, x, ws, k)
    }

    /// [`new`](Self::new) by summing over the stored entries, column by column.
    fn summed(mode: Unobserved, x: CsrView<F>, ws: &[F], k: usize) -> Self {
        let kk = packed(k);
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

    /// [`new`](Self::new) of an observed-only chunk that observes most of its cells: every
    /// column, its `Σ w wᵀ` the chunk's `WᵀW` less the rows that do not observe it. A
    /// column observed by half the rows or fewer, or whose sums keep less than
    /// [`KEPT_MASS`] of an atom's `WᵀW`, is summed over its observing rows instead.
    fn mostly_observed(x: CsrView<F>, ws: &[F], k: usize) -> Self {
        let (rows, p, kk) = (x.nrows(), x.ncols(), packed(k));
        let row = |i: usize| &ws[i * k..(i + 1) * k];
        let mut all = vec![F::zero(); kk];
        for i in 0..rows {
            add_outer(&mut all, row(i), F::one());
        }
        let mut observed = vec![rows; p];
        for i in 0..rows {
            for j in unobserved(x.row(i).0, p) {
                observed[j] -= 1;
            }
        }
        // Each column the chunk observes, in order, at its slot.
        const ABSENT: usize = usize::MAX;
        let mut slot = vec![ABSENT; p];
        let mut out = Self::default();
        let mut direct = Vec::new();
        for (j, &o) in observed.iter().enumerate() {
            if o == 0 {
                continue;
            }
            slot[j] = out.cols.len();
            out.cols.push(j as u32);
            out.n.push(F::from_f64(o as f64));
            let d = !mostly_observed(o, rows);
            direct.push(d);
            if d {
                out.a.resize(out.a.len() + kk, F::zero());
            } else {
                out.a.extend_from_slice(&all);
            }
        }
        // `Σ x_ij w_i` of every column at once: Wᵀ X over the dense copy.
        let w = ArrayView2::from_shape((rows, k), ws).expect("rows × k codes");
        let wtx = product(&w.t(), &x.to_dense());
        out.b = Vec::with_capacity(out.cols.len() * k);
        for &j in &out.cols {
            out.b.extend(wtx.column(j as usize).iter());
        }
        for i in 0..rows {
            let cols = x.row(i).0;
            for j in unobserved(cols, p) {
                let t = slot[j];
                if t != ABSENT && !direct[t] {
                    add_outer(&mut out.a[t * kk..(t + 1) * kk], row(i), -F::one());
                }
            }
        }
        // Columns whose subtraction left mostly rounding in a diagonal entry: summed over
        // their observing rows after all. Row `d` of a packed matrix starts with its
        // diagonal entry, at `d·k − d(d−1)/2`.
        let diagonal = |a: &[F], d: usize| a[d * k - d * d.saturating_sub(1) / 2].as_f64();
        for (t, d) in direct.iter_mut().enumerate() {
            let a = &mut out.a[t * kk..(t + 1) * kk];
            if !*d && (0..k).any(|e| diagonal(a, e) < KEPT_MASS * diagonal(&all, e)) {
                *d = true;
                a.fill(F::zero());
            }
        }
        if direct.iter().any(|&d| d) {
            for i in 0..rows {
                for &j in x.row(i).0 {
                    let t = slot[j as usize];
                    if direct[t] {
                        add_outer(&mut out.a[t * kk..(t + 1) * kk], row(i), F::one());
                    }
                }
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
    use crate::model::masked::mostly_observed;
    use crate::model::masked::tests::observed;
    use ndarray::array;

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

    /// A mostly observed chunk's column statistics are its `WᵀW` less the rows that do
    /// not observe the column: the same as the sums over the observing rows, up to
    /// rounding, for every kind of column (observed by all rows, by most, by a third
    /// (summed directly), by none (left out), and one whose observing rows have atom 0
    /// at zero (its diagonal would be only rounding: summed directly)).
    #[test]
    fn mostly_observed_column_statistics_match_direct_sums() {
        let (rows, p) = (6, 8);
        let x = Array2::from_shape_fn((rows, p), |(i, j)| ((i * 7 + j * 3) % 5) as f64 + 0.5);
        let mut w = Array2::from_shape_fn((rows, 3), |(i, a)| ((i + a) % 3) as f64 * 0.4 + 0.2);
        // Atom 0 is non-zero only in rows 0 and 1, which do not observe column 5.
        for i in 2..rows {
            w[[i, 0]] = 0.0;
        }
        let keep = |i: usize, j: usize| match j {
            7 => false,
            6 => i < 2,
            5 => i >= 2,
            _ => !(i + j).is_multiple_of(5),
        };
        let csr = observed(&x, keep);
        assert!(mostly_observed(csr.nnz(), rows * p));
        let ws = w.as_slice().unwrap();
        let fast = ColumnContribution::mostly_observed(csr.view(), ws, 3);
        let slow = ColumnContribution::summed(Unobserved::Missing, csr.view(), ws, 3);
        assert_eq!(fast.cols, (0..7).collect::<Vec<u32>>());
        assert_eq!(fast.n, slow.n);
        for (a, b) in fast.a.iter().zip(&slow.a).chain(fast.b.iter().zip(&slow.b)) {
            assert!((a - b).abs() < 1e-12, "{:?}\n{:?}", fast.a, slow.a);
        }
        // Column 5's atom-0 entries are exactly zero, as summed.
        let kk = packed(3);
        assert_eq!(&fast.a[5 * kk..5 * kk + 3], &[0.0; 3]);
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
