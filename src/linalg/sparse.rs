//! The two products of a CSR matrix that every sparse batch needs, on the raw CSR parts
//! (so this layer does not depend on the matrix types above it): `X Hᵀ` for the codes and
//! `Xᵀ W` for the statistics. One k-long axpy per stored entry, dispatched to AVX2 like
//! the element-wise kernels, with the same bits either way.

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

impl<F> CsrParts<'_, F> {
    fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }
}

/// `os += X Hᵀ` row by row (`hs` is Hᵀ, p × k row-major; `os` is b × k row-major).
#[inline(always)]
fn csr_x_ht_body<F: Float>(x: CsrParts<'_, F>, hs: &[F], k: usize, os: &mut [F]) {
    if k == 0 {
        return;
    }
    for (i, orow) in os.chunks_exact_mut(k).enumerate().take(x.rows()) {
        let (s, e) = (x.indptr[i], x.indptr[i + 1]);
        for (&j, &v) in x.indices[s..e].iter().zip(&x.data[s..e]) {
            let hrow = &hs[j as usize * k..(j as usize + 1) * k];
            for (o, &h) in orow.iter_mut().zip(hrow) {
                *o += v * h;
            }
        }
    }
}

dispatch_avx2!(fn csr_x_ht<F>(x: CsrParts<'_, F>, hs: &[F], k: usize, os: &mut [F]) -> () => csr_x_ht_body);

/// `accs += Xᵀ W` (`ws` is W, b × k row-major; `accs` is p × k row-major).
#[inline(always)]
fn csr_xt_w_body<F: Float>(x: CsrParts<'_, F>, ws: &[F], k: usize, accs: &mut [F]) {
    if k == 0 {
        return;
    }
    for (i, wrow) in ws.chunks_exact(k).enumerate().take(x.rows()) {
        let (s, e) = (x.indptr[i], x.indptr[i + 1]);
        for (&j, &v) in x.indices[s..e].iter().zip(&x.data[s..e]) {
            let arow = &mut accs[j as usize * k..(j as usize + 1) * k];
            for (a, &wv) in arow.iter_mut().zip(wrow) {
                *a += v * wv;
            }
        }
    }
}

dispatch_avx2!(fn csr_xt_w<F>(x: CsrParts<'_, F>, ws: &[F], k: usize, accs: &mut [F]) -> () => csr_xt_w_body);

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 builds give the baseline build's bits, and the products are right.
    #[test]
    fn dispatched_kernels_match_baseline_and_dense() {
        // A 37 x 29 matrix with about one entry in five stored.
        let (n, p, k) = (37, 29, 13);
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
        let hs: Vec<f32> = (0..p * k)
            .map(|t| ((t / k + 2 * (t % k)) % 7) as f32 * 0.21)
            .collect();
        let ws: Vec<f32> = (0..n * k)
            .map(|t| ((3 * (t / k) + t % k) % 5) as f32 * 0.17)
            .collect();
        let (mut a, mut b) = (vec![0.0f32; n * k], vec![0.0f32; n * k]);
        csr_x_ht(x, &hs, k, &mut a);
        csr_x_ht_body(x, &hs, k, &mut b);
        assert_eq!(a, b);
        let want: f32 = (0..p).map(|j| dense(3, j) * hs[j * k + 5]).sum();
        assert!((a[3 * k + 5] - want).abs() < 1e-4);
        let (mut a, mut b) = (vec![0.0f32; p * k], vec![0.0f32; p * k]);
        csr_xt_w(x, &ws, k, &mut a);
        csr_xt_w_body(x, &ws, k, &mut b);
        assert_eq!(a, b);
        let want: f32 = (0..n).map(|i| dense(i, 4) * ws[i * k + 2]).sum();
        assert!((a[4 * k + 2] - want).abs() < 1e-4);
    }
}
