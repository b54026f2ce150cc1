//! Element-wise kernels on the hot path, compiled twice: once for the baseline target and
//! once with AVX2, picked at run time by CPU detection (so one binary runs everywhere and
//! uses 256-bit vectors where the CPU has them).
//!
//! Only element-wise operations and fixed-order lane reductions live here, and nothing
//! uses fused multiply-add, so both builds give bitwise identical results: the choice of
//! build never changes a model.

use crate::batch::CsrView;
use crate::float::Float;

/// Runs `$body` (an `#[inline(always)]` function) through an AVX2-compiled wrapper when
/// the CPU supports AVX2, and through the baseline build otherwise.
macro_rules! dispatch_avx2 {
    (fn $name:ident<$F:ident>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $body:ident) => {
        pub(crate) fn $name<$F: Float>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide<$F: Float>($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch_avx2;

/// Lanes of the fixed-order reductions: eight partial sums, combined in a fixed order.
const LANES: usize = 8;

#[inline(always)]
fn all_valid_body<F: Float>(vals: &[F], strict: bool) -> bool {
    let inf = F::infinity();
    // Non-short-circuit `&` inside a block vectorizes; blocks let a bad value stop the scan.
    vals.chunks(4096).all(|c| {
        if strict {
            c.iter()
                .fold(true, |ok, &v| ok & (v > F::zero()) & (v < inf))
        } else {
            c.iter()
                .fold(true, |ok, &v| ok & (v >= F::zero()) & (v < inf))
        }
    })
}

dispatch_avx2!(fn all_valid<F>(vals: &[F], strict: bool) -> bool => all_valid_body);

#[inline(always)]
fn sum_squares_body<F: Float>(vals: &[F]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let mut chunks = vals.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v.as_f64() * v.as_f64();
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|v| v.as_f64() * v.as_f64())
        .sum();
    lanes.iter().sum::<f64>() + tail
}

dispatch_avx2!(fn sum_squares<F>(vals: &[F]) -> f64 => sum_squares_body);

/// `os += X Hᵀ` row by row (`hs` is Hᵀ, p × k; `os` is b × k): one k-long axpy per
/// stored entry.
#[inline(always)]
fn csr_x_ht_body<F: Float>(x: CsrView<'_, F>, hs: &[F], k: usize, os: &mut [F]) {
    if k == 0 {
        return;
    }
    for (i, orow) in os.chunks_exact_mut(k).enumerate().take(x.nrows()) {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let hrow = &hs[j as usize * k..(j as usize + 1) * k];
            for (o, &h) in orow.iter_mut().zip(hrow) {
                *o += v * h;
            }
        }
    }
}

dispatch_avx2!(fn csr_x_ht<F>(x: CsrView<'_, F>, hs: &[F], k: usize, os: &mut [F]) -> () => csr_x_ht_body);

/// `accs += Xᵀ W` (`ws` is W, b × k; `accs` is p × k): one k-long axpy per stored entry.
#[inline(always)]
fn csr_xt_w_body<F: Float>(x: CsrView<'_, F>, ws: &[F], k: usize, accs: &mut [F]) {
    if k == 0 {
        return;
    }
    for (i, wrow) in ws.chunks_exact(k).enumerate().take(x.nrows()) {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let arow = &mut accs[j as usize * k..(j as usize + 1) * k];
            for (a, &wv) in arow.iter_mut().zip(wrow) {
                *a += v * wv;
            }
        }
    }
}

dispatch_avx2!(fn csr_xt_w<F>(x: CsrView<'_, F>, ws: &[F], k: usize, accs: &mut [F]) -> () => csr_xt_w_body);

#[inline(always)]
fn kl_ratio_body<F: Float>(v: &mut [F], x: &[F], clip: F) {
    for (e, &xv) in v.iter_mut().zip(x) {
        *e = xv / e.max(clip);
    }
}

// `v ← x / max(v, clip)`, element by element: the KL ratio of the data to its clipped
// reconstruction, one pass.
dispatch_avx2!(fn kl_ratio<F>(v: &mut [F], x: &[F], clip: F) -> () => kl_ratio_body);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of bad value is caught, wherever it sits (including past the first
    /// block and in a tail), and zero only counts as bad in strict mode.
    #[test]
    fn all_valid_catches_every_bad_value() {
        let good = vec![1.0f32; 10_001];
        assert!(all_valid(&good, true) && all_valid(&good, false));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1e-30] {
            for at in [0, 4095, 4096, 10_000] {
                let mut v = good.clone();
                v[at] = bad;
                assert!(!all_valid(&v, false), "{bad} at {at}");
                assert!(!all_valid(&v, true), "{bad} at {at}");
            }
        }
        let mut v = good.clone();
        v[77] = 0.0;
        assert!(all_valid(&v, false) && !all_valid(&v, true));
    }

    /// The dispatched sum equals the baseline build's bit for bit, and the exact value on
    /// integers.
    #[test]
    fn sum_squares_matches_baseline() {
        let v: Vec<f32> = (0..1003).map(|i| (i % 17) as f32 * 0.37).collect();
        assert_eq!(sum_squares(&v).to_bits(), sum_squares_body(&v).to_bits());
        let ints: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(sum_squares(&ints), 338_350.0);
    }

    /// The AVX2 builds of the sparse kernels give the baseline build's bits.
    #[test]
    fn dispatched_sparse_kernels_match_baseline() {
        let x = ndarray::Array2::from_shape_fn((37, 29), |(i, j)| {
            if (i * 7 + j * 3) % 5 == 0 {
                ((i * j) % 11) as f32 * 0.37 + 0.1
            } else {
                0.0
            }
        });
        let csr = crate::CsrMatrix::from_dense(x.view());
        let k = 13;
        let ht = ndarray::Array2::from_shape_fn((29, k), |(j, c)| ((j + 2 * c) % 7) as f32 * 0.21);
        let w = ndarray::Array2::from_shape_fn((37, k), |(i, c)| ((3 * i + c) % 5) as f32 * 0.17);
        let (hs, ws) = (ht.as_slice().unwrap(), w.as_slice().unwrap());
        let (mut a, mut b) = (vec![0.0f32; 37 * k], vec![0.0f32; 37 * k]);
        csr_x_ht(csr.view(), hs, k, &mut a);
        csr_x_ht_body(csr.view(), hs, k, &mut b);
        assert_eq!(a, b);
        let (mut a, mut b) = (vec![0.0f32; 29 * k], vec![0.0f32; 29 * k]);
        csr_xt_w(csr.view(), ws, k, &mut a);
        csr_xt_w_body(csr.view(), ws, k, &mut b);
        assert_eq!(a, b);
        assert!(a.iter().any(|&v| v != 0.0));
    }

    /// The KL ratio clips before dividing and matches the baseline build bit for bit.
    #[test]
    fn kl_ratio_clips_and_matches_baseline() {
        let x: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
        let v0: Vec<f32> = (0..37).map(|i| (i % 3) as f32 * 0.5).collect();
        let (mut a, mut b) = (v0.clone(), v0.clone());
        kl_ratio(&mut a, &x, 1e-3);
        kl_ratio_body(&mut b, &x, 1e-3);
        assert_eq!(a, b);
        assert_eq!(a[1], 1.0 / 0.5);
        assert_eq!(a[3], 3.0 / 1e-3, "v = 0 is clipped");
    }
}
