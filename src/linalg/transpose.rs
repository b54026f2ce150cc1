//! Columns laid side by side as rows: the reader's move of a record batch's column arrays
//! (column-major) into a row-major mini-batch.
//!
//! The move is a pure permutation of values, so every build gives the same bits. On CPUs
//! with AVX, `f32` columns go through 8 × 8 register transposes and `f64` columns through
//! 4 × 4 ones, a group of columns at a time down strips of 256 rows, so that each column
//! is read front to back and its pages are visited once a strip. Elsewhere (and for the
//! few rows and columns left at the edges), 16 × 16 tiles of scalar moves.

use std::any::TypeId;
use std::mem::MaybeUninit;

use crate::float::Float;

/// Writes `cols` (each `rows` values long) side by side into `out` (`rows × cols.len()`,
/// row-major): `out[r * p + j] = cols[j][r]`. Every value of `out` is written.
///
/// # Panics
/// If a column is not `rows` long or `out` is not `rows × cols.len()`: callers build both.
pub(crate) fn columns_to_rows<F: Float>(cols: &[&[F]], rows: usize, out: &mut [MaybeUninit<F>]) {
    let p = cols.len();
    assert_eq!(out.len(), rows * p, "output of rows x columns");
    assert!(
        cols.iter().all(|c| c.len() == rows),
        "columns of `rows` values"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        let id = TypeId::of::<F>();
        if id == TypeId::of::<f32>() || id == TypeId::of::<f64>() {
            // SAFETY: AVX is present (checked above); the lengths were checked above and
            // the kernels write within them.
            unsafe { avx::columns_to_rows(cols, rows, out) };
            return;
        }
    }
    tiles(cols, 0, rows, 0, out);
}

/// The scalar move of rows `r_from..rows` of every column, and of columns `j_from..` of
/// rows `0..r_from`: what the vector kernels leave at the edges (everything when they
/// do not run).
fn tiles<F: Copy>(
    cols: &[&[F]],
    r_from: usize,
    rows: usize,
    j_from: usize,
    out: &mut [MaybeUninit<F>],
) {
    const TILE: usize = 16;
    let p = cols.len();
    // The right edge of the rows the kernels covered.
    for (r, row) in out.chunks_exact_mut(p.max(1)).take(r_from).enumerate() {
        for (o, c) in row[j_from..].iter_mut().zip(&cols[j_from..]) {
            o.write(c[r]);
        }
    }
    // The remaining rows, in tiles whose destination lines stay in L1.
    for r0 in (r_from..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        let dst = &mut out[r0 * p..r1 * p];
        for (t, tile) in cols.chunks(TILE).enumerate() {
            for (jj, col) in tile.iter().enumerate() {
                let j = t * TILE + jj;
                for (row, &v) in dst.chunks_exact_mut(p).zip(&col[r0..r1]) {
                    row[j].write(v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::any::TypeId;
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::tiles;
    use crate::float::Float;

    /// Rows per strip. Within a strip the kernels go down each group of 8 (4) columns
    /// through all the strip's rows before the next group: each column's rows of the
    /// strip are 1 KB (2 KB of f64) in one or two 4 KB pages, read front to back. Strips
    /// of 16 rows (one 64-byte line of each column) touched a page per column for every
    /// 16 rows: on a 5000-column file more pages than the TLB holds, and the move was a
    /// fifth of the reader's time there (`examples/decode_rate --reader-only`, 12
    /// alternating runs: p = 5000 309 → 249 ms, user 228 → 161 ms; base 108 → 96 ms,
    /// 16 runs). 256 rows also keep the output lines a group
    /// leaves half written (its 32 or 16 bytes of each row) in L1 for the next group.
    /// The last strip may be shorter, by whole blocks.
    const STRIP: usize = 256;

    /// # Safety
    /// AVX must be available; `F` is `f32` or `f64`; the lengths are as
    /// [`super::columns_to_rows`] checks.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn columns_to_rows<F: Float>(
        cols: &[&[F]],
        rows: usize,
        out: &mut [MaybeUninit<F>],
    ) {
        let p = cols.len();
        let wide = TypeId::of::<F>() == TypeId::of::<f64>();
        let lanes = if wide { 4 } else { 8 };
        let r_end = rows / lanes * lanes;
        let j_end = p / lanes * lanes;
        let dst = out.as_mut_ptr() as *mut F;
        for r0 in (0..r_end).step_by(STRIP) {
            // A whole number of blocks: STRIP is a multiple of both lane counts.
            let r1 = (r0 + STRIP).min(r_end);
            for j0 in (0..j_end).step_by(lanes) {
                for r in (r0..r1).step_by(lanes) {
                    // SAFETY: columns j0..j0 + lanes exist and hold rows r..r + lanes
                    // (r + lanes ≤ r1 ≤ rows); the block's output rows are within
                    // `out` (row r + lanes − 1 < rows, columns up to j_end ≤ p).
                    unsafe {
                        let src = cols.as_ptr().add(j0);
                        let at = dst.add(r * p + j0);
                        if wide {
                            block4(src as *const &[f64], r, at as *mut f64, p);
                        } else {
                            block8(src as *const &[f32], r, at as *mut f32, p);
                        }
                    }
                }
            }
        }
        tiles(cols, r_end, rows, j_end, out);
    }

    /// Out rows `r..r + 8`, columns `0..8` from `*src.add(j)[r..r + 8]`, `j < 8`.
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn block8(src: *const &[f32], r: usize, at: *mut f32, p: usize) {
        unsafe {
            let ld = |j: usize| _mm256_loadu_ps((*src.add(j)).as_ptr().add(r));
            let (a, b, c, d) = (ld(0), ld(1), ld(2), ld(3));
            let (e, f, g, h) = (ld(4), ld(5), ld(6), ld(7));
            let t0 = _mm256_unpacklo_ps(a, b);
            let t1 = _mm256_unpackhi_ps(a, b);
            let t2 = _mm256_unpacklo_ps(c, d);
            let t3 = _mm256_unpackhi_ps(c, d);
            let t4 = _mm256_unpacklo_ps(e, f);
            let t5 = _mm256_unpackhi_ps(e, f);
            let t6 = _mm256_unpacklo_ps(g, h);
            let t7 = _mm256_unpackhi_ps(g, h);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let st = |i: usize, v: __m256| _mm256_storeu_ps(at.add(i * p), v);
            st(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
            st(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
            st(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
            st(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
            st(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
            st(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
            st(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
            st(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }

    /// Out rows `r..r + 4`, columns `0..4` from `*src.add(j)[r..r + 4]`, `j < 4`.
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn block4(src: *const &[f64], r: usize, at: *mut f64, p: usize) {
        unsafe {
            let ld = |j: usize| _mm256_loadu_pd((*src.add(j)).as_ptr().add(r));
            let (a, b, c, d) = (ld(0), ld(1), ld(2), ld(3));
            let t0 = _mm256_unpacklo_pd(a, b);
            let t1 = _mm256_unpackhi_pd(a, b);
            let t2 = _mm256_unpacklo_pd(c, d);
            let t3 = _mm256_unpackhi_pd(c, d);
            let st = |i: usize, v: __m256d| _mm256_storeu_pd(at.add(i * p), v);
            st(0, _mm256_permute2f128_pd::<0x20>(t0, t2));
            st(1, _mm256_permute2f128_pd::<0x20>(t1, t3));
            st(2, _mm256_permute2f128_pd::<0x31>(t0, t2));
            st(3, _mm256_permute2f128_pd::<0x31>(t1, t3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved<F: Float>(rows: usize, p: usize, value: impl Fn(usize, usize) -> F) -> Vec<F> {
        let cols: Vec<Vec<F>> = (0..p)
            .map(|j| (0..rows).map(|r| value(r, j)).collect())
            .collect();
        let views: Vec<&[F]> = cols.iter().map(|c| c.as_slice()).collect();
        let mut out = Vec::with_capacity(rows * p);
        columns_to_rows(&views, rows, &mut out.spare_capacity_mut()[..rows * p]);
        // SAFETY: columns_to_rows wrote all rows × p values.
        unsafe { out.set_len(rows * p) };
        out
    }

    #[test]
    fn every_value_lands_at_its_row_and_column() {
        // Shapes with and without edges for both kernels (256-row strips, 8 or 4 lanes),
        // several strips and short last strips (520, 300, 120, 28 and 78 rows) included.
        for (rows, p) in [
            (520, 17),
            (300, 8),
            (0, 3),
            (1, 1),
            (16, 8),
            (17, 9),
            (33, 20),
            (5, 1000),
            (120, 37),
            (64, 4),
            (28, 12),
            (78, 1001),
        ] {
            let v32 = moved(rows, p, |r, j| (r * 10_000 + j) as f32);
            let v64 = moved(rows, p, |r, j| (r * 10_000 + j) as f64 + 0.5);
            for r in 0..rows {
                for j in 0..p {
                    assert_eq!(
                        v32[r * p + j],
                        (r * 10_000 + j) as f32,
                        "f32 {rows}x{p} at ({r}, {j})"
                    );
                    assert_eq!(
                        v64[r * p + j],
                        (r * 10_000 + j) as f64 + 0.5,
                        "f64 {rows}x{p} at ({r}, {j})"
                    );
                }
            }
        }
    }

    #[test]
    fn bits_move_unchanged() {
        // NaN payloads, negative zero and subnormals are moved, not computed on.
        let odd = [
            f32::from_bits(0x7fc0_1234),
            -0.0,
            f32::from_bits(1),
            f32::INFINITY,
        ];
        let v = moved(32, 8, |r, j| odd[(r + j) % 4]);
        for r in 0..32 {
            for j in 0..8 {
                assert_eq!(v[r * 8 + j].to_bits(), odd[(r + j) % 4].to_bits());
            }
        }
    }
}
