//! The two products of a CSR matrix that every sparse batch needs, on the raw CSR parts
//! (so this layer does not depend on the matrix types above it): `X Hᵀ` for the codes and
//! `Xᵀ W` for the statistics. One k-long axpy per stored entry, dispatched to AVX2 like
//! the element-wise kernels, with the same bits either way.
//!
//! For k up to 32 each kernel is compiled for that exact k, so a row of `X Hᵀ`
//! (or the codes row of `Xᵀ W`) stays in registers across the row's entries instead of
//! going through memory per entry. The arithmetic, and its order, is the same as the
//! generic loop's, so the bits are too.

use super::simd::dispatch_avx2;
use crate::float::Float;

/// A CSR matrix's parts: row `i` holds `indices[indptr[i]..indptr[i + 1]]` and the same
/// range of `data`. `indptr` may start above 0 (a row range of a larger matrix).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CsrParts<'a, F> {
    pub(crate) indptr: &'a [usize],
    pub(crate) indices: &'a [u32],
    pub(crate) data: &'a [F],
}

impl<'a, F> CsrParts<'a, F> {
    fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Row `i`'s column indices and values.
    #[inline(always)]
    fn row(&self, i: usize) -> (&'a [u32], &'a [F]) {
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[s..e], &self.data[s..e])
    }
}

/// Calls `$fixed::<F, K>` with K = `$k` for each k from 1 to 32, else `$any` (the generic
/// loop, for larger ranks).
macro_rules! by_rank {
    ($k:expr, $fixed:ident, $any:ident, $args:tt) => {
        by_rank!(@ $k, $fixed, $any, $args,
            [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32])
    };
    (@ $k:expr, $fixed:ident, $any:ident, $args:tt, [$($n:literal)*]) => {
        match $k {
            0 => {}
            $($n => $fixed::<F, $n> $args,)*
            _ => $any $args,
        }
    };
}

/// `os += X Hᵀ` row by row (`hs` is Hᵀ, p × k row-major; `os` is b × k row-major).
#[inline(always)]
fn csr_x_ht_body<F: Float>(x: CsrParts<'_, F>, hs: &[F], k: usize, os: &mut [F]) {
    by_rank!(k, x_ht_fixed, x_ht_any, (x, hs, k, os));
}

#[inline(always)]
fn x_ht_fixed<F: Float, const K: usize>(x: CsrParts<'_, F>, hs: &[F], _k: usize, os: &mut [F]) {
    for (i, orow) in os.chunks_exact_mut(K).enumerate().take(x.rows()) {
        let orow: &mut [F; K] = orow.try_into().expect("chunks of K");
        let mut acc = *orow;
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let j = j as usize * K;
            let hrow: &[F; K] = hs[j..j + K].try_into().expect("K entries");
            for (a, &h) in acc.iter_mut().zip(hrow) {
                *a += v * h;
            }
        }
        *orow = acc;
    }
}

#[inline(always)]
fn x_ht_any<F: Float>(x: CsrParts<'_, F>, hs: &[F], k: usize, os: &mut [F]) {
    for (i, orow) in os.chunks_exact_mut(k).enumerate().take(x.rows()) {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let hrow = &hs[j as usize * k..(j as usize + 1) * k];
            for (o, &h) in orow.iter_mut().zip(hrow) {
                *o += v * h;
            }
        }
    }
}

dispatch_avx2!(fn csr_x_ht<F>(x: CsrParts<'_, F>, hs: &[F], k: usize, os: &mut [F]) -> () => csr_x_ht_body);

/// `accs += Xᵀ W` over the columns `first..first + accs.len() / k` of X (`ws` is W,
/// b × k row-major; `accs` is that block of `Xᵀ W`'s rows, row-major). Entries outside
/// the block are skipped, so disjoint blocks can be filled side by side; each row of the
/// product sums the batch's rows in order, whatever the blocks, so the bits are those of
/// one block over all p columns.
#[inline(always)]
fn csr_xt_w_body<F: Float>(x: CsrParts<'_, F>, ws: &[F], k: usize, accs: &mut [F], first: usize) {
    by_rank!(k, xt_w_fixed, xt_w_any, (x, ws, k, accs, first));
}

#[inline(always)]
fn xt_w_fixed<F: Float, const K: usize>(
    x: CsrParts<'_, F>,
    ws: &[F],
    _k: usize,
    accs: &mut [F],
    first: usize,
) {
    let width = accs.len() / K;
    for (i, wrow) in ws.chunks_exact(K).enumerate().take(x.rows()) {
        let wrow: [F; K] = wrow.try_into().expect("chunks of K");
        let (cols, vals) = within(x.row(i), first, width);
        for (&j, &v) in cols.iter().zip(vals) {
            let j = j as usize - first;
            let arow: &mut [F; K] = (&mut accs[j * K..(j + 1) * K])
                .try_into()
                .expect("K entries");
            for (a, &w) in arow.iter_mut().zip(&wrow) {
                *a += v * w;
            }
        }
    }
}

#[inline(always)]
fn xt_w_any<F: Float>(x: CsrParts<'_, F>, ws: &[F], k: usize, accs: &mut [F], first: usize) {
    let width = accs.len() / k;
    for (i, wrow) in ws.chunks_exact(k).enumerate().take(x.rows()) {
        let (cols, vals) = within(x.row(i), first, width);
        for (&j, &v) in cols.iter().zip(vals) {
            let j = j as usize - first;
            let arow = &mut accs[j * k..(j + 1) * k];
            for (a, &w) in arow.iter_mut().zip(wrow) {
                *a += v * w;
            }
        }
    }
}

/// The entries of a row (strictly increasing columns) in the columns
/// `first..first + width`: a binary search at each end, no test per entry.
#[inline(always)]
fn within<'a, F>(row: (&'a [u32], &'a [F]), first: usize, width: usize) -> (&'a [u32], &'a [F]) {
    let (cols, vals) = row;
    let lo = if first == 0 {
        0
    } else {
        cols.partition_point(|&c| (c as usize) < first)
    };
    let end = first + width;
    let hi = match cols.last() {
        Some(&c) if (c as usize) < end => cols.len(),
        _ => cols.partition_point(|&c| (c as usize) < end),
    };
    let lo = lo.min(hi);
    (&cols[lo..hi], &vals[lo..hi])
}

dispatch_avx2!(fn csr_xt_w<F>(x: CsrParts<'_, F>, ws: &[F], k: usize, accs: &mut [F], first: usize) -> () => csr_xt_w_body);

/// Boundaries `0 = c₀ < c₁ < … = p` of up to `blocks` column blocks of X holding about
/// equal numbers of stored entries, counted on every eighth row (the rows decide, never
/// the threads that later fill the blocks). Empty blocks are dropped.
pub(crate) fn column_blocks<F>(x: CsrParts<'_, F>, p: usize, blocks: usize) -> Vec<usize> {
    if blocks <= 1 {
        // One block: nothing to count.
        let mut cuts = vec![0, p];
        cuts.dedup();
        return cuts;
    }
    let mut counts = vec![0usize; p];
    let mut total = 0;
    for i in (0..x.rows()).step_by(8) {
        for &j in x.row(i).0 {
            if let Some(c) = counts.get_mut(j as usize) {
                *c += 1;
                total += 1;
            }
        }
    }
    let mut cuts = vec![0];
    let mut seen = 0;
    for (j, &c) in counts.iter().enumerate() {
        seen += c;
        // Cut after column j once this block holds its share of the sampled entries.
        let want = cuts.len() * total / blocks.max(1);
        if seen >= want.max(1) && cuts.len() < blocks && j + 1 < p {
            cuts.push(j + 1);
        }
    }
    cuts.push(p);
    cuts.dedup();
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For ranks with a kernel of their own (1, 8, 13, 32) and without (33, 40): the AVX2
    /// builds give the baseline build's bits and the generic loop's, and the products
    /// are right. The accumulators start non-zero (the kernels add).
    #[test]
    fn dispatched_kernels_match_baseline_generic_and_dense() {
        // A 37 x 29 matrix with about one entry in five stored.
        let (n, p) = (37, 29);
        let dense = |i: usize, j: usize| -> f32 {
            if (i * 7 + j * 3).is_multiple_of(5) {
                ((i * j) % 11) as f32 * 0.37 + 0.1
            } else {
                0.0
            }
        };
        let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
        for i in 0..n {
            for j in 0..p {
                if dense(i, j) != 0.0 {
                    indices.push(j as u32);
                    data.push(dense(i, j));
                }
            }
            indptr.push(data.len());
        }
        let x = CsrParts {
            indptr: &indptr,
            indices: &indices,
            data: &data,
        };
        for k in [1, 8, 13, 32, 33, 40] {
            let hs: Vec<f32> = (0..p * k)
                .map(|t| ((t / k + 2 * (t % k)) % 7) as f32 * 0.21)
                .collect();
            let ws: Vec<f32> = (0..n * k)
                .map(|t| ((3 * (t / k) + t % k) % 5) as f32 * 0.17)
                .collect();
            let start = |len: usize| -> Vec<f32> { (0..len).map(|t| (t % 3) as f32).collect() };
            let (mut a, mut b, mut c) = (start(n * k), start(n * k), start(n * k));
            csr_x_ht(x, &hs, k, &mut a);
            csr_x_ht_body(x, &hs, k, &mut b);
            x_ht_any(x, &hs, k, &mut c);
            assert_eq!(a, b, "k {k}");
            assert_eq!(a, c, "k {k}");
            let col = k / 2;
            let want: f32 = (0..p).map(|j| dense(3, j) * hs[j * k + col]).sum();
            assert!((a[3 * k + col] - start(n * k)[3 * k + col] - want).abs() < 1e-4);
            let (mut a, mut b, mut c) = (start(p * k), start(p * k), start(p * k));
            csr_xt_w(x, &ws, k, &mut a, 0);
            csr_xt_w_body(x, &ws, k, &mut b, 0);
            xt_w_any(x, &ws, k, &mut c, 0);
            assert_eq!(a, b, "k {k}");
            assert_eq!(a, c, "k {k}");
            let want: f32 = (0..n).map(|i| dense(i, 4) * ws[i * k + col]).sum();
            assert!((a[4 * k + col] - start(p * k)[4 * k + col] - want).abs() < 1e-4);
            // Column blocks filled one by one give the bits of the whole product.
            for blocks in [1, 2, 3, 7, 40] {
                let cuts = column_blocks(x, p, blocks);
                assert_eq!((cuts[0], *cuts.last().unwrap()), (0, p), "{cuts:?}");
                assert!(cuts.windows(2).all(|c| c[0] < c[1]), "{cuts:?}");
                assert!(cuts.len() - 1 <= blocks.max(1), "{cuts:?}");
                let mut d = start(p * k);
                for c in cuts.windows(2) {
                    csr_xt_w(x, &ws, k, &mut d[c[0] * k..c[1] * k], c[0]);
                }
                assert_eq!(a, d, "k {k}, {blocks} blocks");
            }
        }
    }

    /// Blocks hold about equal stored entries, wherever the entries sit.
    #[test]
    fn column_blocks_balance_entries() {
        // Every row stores columns 0..10 and one of 10..100: the first tenth of the
        // columns holds 10 of every 11 entries.
        let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
        for i in 0..800u32 {
            indices.extend(0..10);
            indices.push(10 + i % 90);
            data.extend([1.0f32; 11]);
            indptr.push(indices.len());
        }
        let x = CsrParts {
            indptr: &indptr,
            indices: &indices,
            data: &data,
        };
        assert_eq!(column_blocks(x, 100, 2), vec![0, 6, 100]);
        assert_eq!(column_blocks(x, 100, 1), vec![0, 100]);
        // No entries at all: one block.
        let empty = CsrParts::<f32> {
            indptr: &[0, 0],
            indices: &[],
            data: &[],
        };
        assert_eq!(column_blocks(empty, 5, 3), vec![0, 5]);
    }
}
