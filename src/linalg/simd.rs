//! Element-wise kernels on the hot path, compiled twice: once for the baseline target and
//! once with AVX2, picked at run time by CPU detection (so one binary runs everywhere and
//! uses 256-bit vectors where the CPU has them).
//!
//! Only element-wise operations and fixed-order lane reductions live here, and nothing
//! uses fused multiply-add, so both builds give bitwise identical results: the choice of
//! build never changes a model.

use crate::float::Float;

/// Runs `$body` (an `#[inline(always)]` function) through an AVX2-compiled wrapper when
/// the CPU supports AVX2, and through the baseline build otherwise.
macro_rules! dispatch_avx2 {
    (fn $name:ident<$F:ident>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $body:ident) => {
        pub(crate) fn $name<$F: $crate::float::Float>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide<$F: $crate::float::Float>($($arg: $ty),*) -> $ret {
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
fn all_finite_body<F: Float>(vals: &[F]) -> bool {
    let (lo, hi) = (F::neg_infinity(), F::infinity());
    // As in `all_valid_body`: a branch-free fold per block vectorizes, NaN fails both tests.
    vals.chunks(4096)
        .all(|c| c.iter().fold(true, |ok, &v| ok & (v > lo) & (v < hi)))
}

// Whether every value is finite (no NaN, no infinity), in one vectorized pass.
dispatch_avx2!(fn all_finite<F>(vals: &[F]) -> bool => all_finite_body);

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

#[inline(always)]
fn value_summary_body<F: Float>(vals: &[F]) -> (f64, f64, usize) {
    let mut sum = [0.0f64; LANES];
    let mut least = [f64::INFINITY; LANES];
    let mut positive = [0usize; LANES];
    let mut chunks = vals.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let v = c[l].as_f64();
            sum[l] += v;
            let pos = v > 0.0;
            positive[l] += usize::from(pos);
            least[l] = if pos && v < least[l] { v } else { least[l] };
        }
    }
    let (mut s, mut m, mut n) = (
        sum.iter().sum::<f64>(),
        least.iter().fold(f64::INFINITY, |a, &b| a.min(b)),
        positive.iter().sum::<usize>(),
    );
    for &v in chunks.remainder() {
        let v = v.as_f64();
        s += v;
        if v > 0.0 {
            n += 1;
            m = m.min(v);
        }
    }
    (s, m, n)
}

// `(Σ v, smallest positive v, count of positive v)`, the sum in fixed-order lanes of f64.
dispatch_avx2!(fn value_summary<F>(vals: &[F]) -> (f64, f64, usize) => value_summary_body);

#[inline(always)]
fn kl_ratio_body<F: Float>(v: &mut [F], x: &[F], clip: F) {
    for (e, &xv) in v.iter_mut().zip(x) {
        *e = xv / e.max(clip);
    }
}

// `v ← x / max(v, clip)`, element by element: the KL ratio of the data to its clipped
// reconstruction, one pass.
dispatch_avx2!(fn kl_ratio<F>(v: &mut [F], x: &[F], clip: F) -> () => kl_ratio_body);

#[inline(always)]
fn beta_ratios_body<F: Float>(v: &mut [F], q: &mut [F], x: &[F], clip: F, e: f64) {
    if e == -1.0 {
        // Itakura-Saito: the power is a reciprocal (`pow`'s own shortcut, same bits).
        for ((ve, qe), &xv) in v.iter_mut().zip(q.iter_mut()).zip(x) {
            let c = ve.max(clip);
            let r = c.recip();
            *qe = r;
            *ve = xv / c * r;
        }
    } else {
        for ((ve, qe), &xv) in v.iter_mut().zip(q.iter_mut()).zip(x) {
            let c = ve.max(clip);
            let r = crate::linalg::pow(c, e);
            *qe = r;
            *ve = xv / c * r;
        }
    }
}

// With `c = max(v, clip)`: `q ← c^e` and `v ← (x / c) ⊙ q`, one pass: the β-divergence's
// two weighted ratios (`e = β − 1`; V^(β−2) alone overflows f32 where V is small).
dispatch_avx2!(fn beta_ratios<F>(v: &mut [F], q: &mut [F], x: &[F], clip: F, e: f64) -> () => beta_ratios_body);

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

    /// NaN and both infinities are caught anywhere (a block's start, end, the tail);
    /// negative, zero and extreme finite values pass.
    #[test]
    fn all_finite_catches_nan_and_infinities() {
        let good: Vec<f64> = (0..10_001)
            .map(|i| [-1.0, 0.0, f64::MAX, f64::MIN, f64::MIN_POSITIVE][i % 5])
            .collect();
        assert!(all_finite(&good) && all_finite_body(&good));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 4095, 4096, 10_000] {
                let mut v = good.clone();
                v[at] = bad;
                assert!(!all_finite(&v), "{bad} at {at}");
                let mut v32 = vec![f32::MAX; 10_001];
                v32[at] = bad as f32;
                assert!(!all_finite(&v32), "{bad} at {at} (f32)");
            }
        }
        assert!(all_finite(&[f32::MAX, f32::MIN, -0.0]) && all_finite::<f32>(&[]));
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

    /// The β ratios clip, match the unfused element-wise formulas and the baseline build
    /// bit for bit, for Itakura-Saito's shortcut and a general exponent.
    #[test]
    fn beta_ratios_match_the_unfused_formulas_and_baseline() {
        let x: Vec<f32> = (0..37).map(|i| (i % 5) as f32 + 0.25).collect();
        let v0: Vec<f32> = (0..37).map(|i| (i % 3) as f32 * 0.5).collect();
        for e in [-1.0, -0.5, -1.5] {
            let (mut a, mut qa) = (v0.clone(), vec![0.0f32; 37]);
            let (mut b, mut qb) = (v0.clone(), vec![0.0f32; 37]);
            beta_ratios(&mut a, &mut qa, &x, 1e-3, e);
            beta_ratios_body(&mut b, &mut qb, &x, 1e-3, e);
            assert_eq!((&a, &qa), (&b, &qb));
            for j in 0..37 {
                let c = v0[j].max(1e-3);
                let q = crate::linalg::pow(c, e);
                assert_eq!(qa[j], q);
                assert_eq!(a[j], x[j] / c * q);
            }
            assert_eq!(qa[0], crate::linalg::pow(1e-3f32, e), "v = 0 is clipped");
        }
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
