//! Element-wise kernels on the hot path, compiled twice: once for the baseline target and
//! once with AVX2, picked at run time by CPU detection (so one binary runs everywhere and
//! uses 256-bit vectors where the CPU has them).
//!
//! Only element-wise operations and fixed-order lane reductions live here, and nothing
//! uses fused multiply-add, so both builds give bitwise identical results: the choice of
//! build never changes what these kernels compute. (The dispatch macro also serves the
//! coordinate-descent sweep in `solve::cd`, which has a third build with FMA.)

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
    // With a second body for CPUs that also have FMA (its results may differ from
    // `$body`'s in the last bits: see `solve::cd`).
    (fn $name:ident<$F:ident>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty
        => $body:ident, fma => $fused:ident) => {
        pub(crate) fn $name<$F: $crate::float::Float>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn fused<$F: $crate::float::Float>($($arg: $ty),*) -> $ret {
                    $fused($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn wide<$F: $crate::float::Float>($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    if std::arch::is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                        return unsafe { fused($($arg),*) };
                    }
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
    // The least positive value and the count in the values' own type and in u64 lanes,
    // as selects the compiler vectorizes (a comparison in f64 and a conditional update
    // of both made the pass twice as slow; 9 % of a KL fit calls it four times a batch).
    // Converting to f64 keeps order, so the least is the same value.
    let mut least = [F::infinity(); LANES];
    let mut positive = [0u64; LANES];
    let mut chunks = vals.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            sum[l] += c[l].as_f64();
        }
        for l in 0..LANES {
            let v = c[l];
            positive[l] += u64::from(v > F::zero());
            let candidate = if v > F::zero() { v } else { F::infinity() };
            least[l] = if candidate < least[l] {
                candidate
            } else {
                least[l]
            };
        }
    }
    let (mut s, mut m, mut n) = (
        sum.iter().sum::<f64>(),
        least.iter().fold(f64::INFINITY, |a, &b| a.min(b.as_f64())),
        positive.iter().sum::<u64>() as usize,
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
        // Itakura-Saito: the power is a reciprocal (`pow`'s own shortcut), and
        // `x / c²` takes it twice: one division an entry instead of two, 3 % of a fit.
        for ((ve, qe), &xv) in v.iter_mut().zip(q.iter_mut()).zip(x) {
            let c = ve.max(clip);
            let r = c.recip();
            *qe = r;
            *ve = xv * r * r;
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

#[inline(always)]
fn mu_step_body<F: Float>(w: &mut [F], num: &[F], den: &[F]) -> (f64, f64) {
    let (mut delta, mut norm) = ([0.0f64; LANES], [0.0f64; LANES]);
    let step = |wv: &mut F, n: F, d: F| {
        let ratio = if d > F::zero() { n / d } else { F::zero() };
        let new = *wv * ratio;
        let diff = (new - *wv).as_f64();
        *wv = new;
        (diff * diff, new.as_f64() * new.as_f64())
    };
    let mut wc = w.chunks_exact_mut(LANES);
    let (nc, dc) = (num.chunks_exact(LANES), den.chunks_exact(LANES));
    let (nt, dt) = (nc.remainder(), dc.remainder());
    for ((wb, nb), db) in (&mut wc).zip(nc).zip(dc) {
        for l in 0..LANES {
            let (dd, nn) = step(&mut wb[l], nb[l], db[l]);
            delta[l] += dd;
            norm[l] += nn;
        }
    }
    let (mut d, mut n) = (delta.iter().sum::<f64>(), norm.iter().sum::<f64>());
    for ((wv, &nv), &dv) in wc.into_remainder().iter_mut().zip(nt).zip(dt) {
        let (dd, nn) = step(wv, nv, dv);
        d += dd;
        n += nn;
    }
    (d, n)
}

// The multiplicative step of exponent 1, `w ← w ⊙ num / den` (0 where `den` is not
// positive), in one vectorized pass: `(Σ (new − old)², Σ new²)` in fixed-order f64 lanes.
dispatch_avx2!(fn mu_step<F>(w: &mut [F], num: &[F], den: &[F]) -> (f64, f64) => mu_step_body);

/// `ln y` for a positive, normal, finite `y`, without branches or library calls, so that
/// eight of them run side by side in vectors (glibc's scalar `log` was a sixth of a KL
/// fit). The classic reduction (FreeBSD's and musl's `log`, from Sun's fdlibm):
/// `y = 2^k (1 + f)` with `1 + f` in `[√2/2, √2)`, then
/// `ln(1 + f) = f − f²/2 + s (f²/2 + R(s²))`, `s = f / (2 + f)`, `R` a minimax polynomial
/// of degree 14 in `s`; error below one unit in the last place. Other inputs give
/// garbage: callers check and take `f64::ln` for those.
#[inline(always)]
fn ln_normal(y: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const LG: [f64; 7] = [
        6.666_666_666_666_735e-1,
        3.999_999_999_940_942e-1,
        2.857_142_874_366_239e-1,
        2.222_219_843_214_978_4e-1,
        1.818_357_216_161_805e-1,
        1.531_383_769_920_937_3e-1,
        1.479_819_860_511_658_6e-1,
    ];
    // High word of √2/2: moving it to 1.0 puts the mantissas of [√2/2, √2) on one
    // exponent, whose excess over 1023 is then k.
    const SQRT_HALF_HI: u64 = 0x3fe6_a09e;
    let bits = y.to_bits().wrapping_add((0x3ff0_0000 - SQRT_HALF_HI) << 32);
    let exp = bits >> 52;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) + (SQRT_HALF_HI << 32));
    // `exp` as f64 without an integer conversion (AVX2 has none for 64-bit lanes): the
    // bits of 2^52 + exp, minus 2^52.
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let k = (f64::from_bits(TWO52.to_bits() | exp) - TWO52) - 1023.0;
    let f = m - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * (LG[3] + w * LG[5]));
    let t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])));
    s * (hfsq + t1 + t2) + k * LN2_LO - hfsq + f + k * LN2_HI
}

/// Which divergence [`divergence_terms`] sums.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Terms {
    /// `x ln(x / v) − x` over positive `x`: KL less `Σ v`, which callers take from the
    /// codes (`v ≤ 0` is infinite).
    KlStored,
    /// KL, `x ln(x / v) − x + v`, zero entries included, as [`crate::loss::element`].
    Kl,
    /// Itakura-Saito, `x / v − ln(x / v) − 1`, as [`crate::loss::element`].
    ItakuraSaito,
}

impl Terms {
    /// One entry, exactly (the path of chunks that hold anything but normal ratios).
    #[inline(always)]
    fn exact(self, x: f64, v: f64) -> f64 {
        match self {
            Terms::KlStored if v > 0.0 => x * (x / v).ln() - x,
            Terms::KlStored => f64::INFINITY,
            Terms::Kl => crate::loss::element(x, v, 1.0),
            Terms::ItakuraSaito => crate::loss::element(x, v, 0.0),
        }
    }
}

#[inline(always)]
fn divergence_terms_body<F: Float>(x: &[F], v: &[F], terms: Terms) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (xc, vc) = (x.chunks_exact(LANES), v.chunks_exact(LANES));
    let (xt, vt) = (xc.remainder(), vc.remainder());
    for (xb, vb) in xc.zip(vc) {
        let mut r = [0.0f64; LANES];
        let mut ok = true;
        for l in 0..LANES {
            let (xv, vv) = (xb[l].as_f64(), vb[l].as_f64());
            // KL's zero entries cost `v`: a ratio of 1 makes `x ln r − x` vanish.
            r[l] = if terms == Terms::Kl && xv == 0.0 {
                1.0
            } else {
                xv / vv
            };
            // Non-short-circuit `&`, as in `all_valid`: one vector compare for the chunk.
            ok &= (vv > 0.0) & (f64::MIN_POSITIVE..f64::INFINITY).contains(&r[l]);
        }
        for l in 0..LANES {
            let (xv, vv) = (xb[l].as_f64(), vb[l].as_f64());
            acc[l] += if !ok {
                terms.exact(xv, vv)
            } else {
                let ln = ln_normal(r[l]);
                match terms {
                    Terms::KlStored => xv * ln - xv,
                    Terms::Kl => xv * ln - xv + vv,
                    Terms::ItakuraSaito => r[l] - ln - 1.0,
                }
            };
        }
    }
    let mut sum = 0.0;
    for a in acc {
        sum += a;
    }
    for (&xv, &vv) in xt.iter().zip(vt) {
        sum += terms.exact(xv.as_f64(), vv.as_f64());
    }
    sum
}

// `Σ` of one divergence's entry terms ([`Terms`]), in f64 over fixed-order lanes: chunks
// of eight normal ratios take [`ln_normal`], any other chunk the exact formulas.
dispatch_avx2!(fn divergence_terms<F>(x: &[F], v: &[F], terms: Terms) -> f64 => divergence_terms_body);

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary's sum has the bits of eight fixed-order f64 lanes (as the scalar
    /// reference below adds them), its least positive value and count are exact, for
    /// f32 and f64, with zeros, negatives and NaN-free tails of every length.
    #[test]
    fn value_summary_matches_a_scalar_reference() {
        fn reference(v: &[f64]) -> (f64, f64, usize) {
            let whole = v.len() / LANES * LANES;
            let mut lanes = [0.0f64; LANES];
            for (i, &x) in v[..whole].iter().enumerate() {
                lanes[i % LANES] += x;
            }
            let sum = v[whole..]
                .iter()
                .fold(lanes.iter().sum::<f64>(), |s, &x| s + x);
            let positive: Vec<f64> = v.iter().copied().filter(|&x| x > 0.0).collect();
            let least = positive.iter().copied().fold(f64::INFINITY, f64::min);
            (sum, least, positive.len())
        }
        for len in [0, 1, 7, 8, 9, 1000, 1003] {
            let v: Vec<f64> = (0..len)
                .map(|i| match i % 7 {
                    0 | 3 => 0.0,
                    5 => -((i % 11) as f64) * 0.25,
                    _ => ((i * 37) % 101) as f64 * 0.125 + 1e-3 * (i % 5) as f64,
                })
                .collect();
            let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            let back: Vec<f64> = v32.iter().map(|&x| x as f64).collect();
            for (got, want) in [
                (value_summary(&v), reference(&v)),
                (value_summary_body(&v), reference(&v)),
                (value_summary(&v32), reference(&back)),
            ] {
                assert_eq!(got.0.to_bits(), want.0.to_bits(), "sum, {len} values");
                assert_eq!((got.1, got.2), (want.1, want.2), "{len} values");
            }
        }
    }

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
                let want = if e == -1.0 {
                    x[j] * q * q
                } else {
                    x[j] / c * q
                };
                assert_eq!(a[j], want);
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
    /// The branch-free logarithm is within an ulp of the library's over the normal range,
    /// and exact at powers of two and one.
    #[test]
    fn ln_normal_matches_the_library() {
        let mut y = f64::MIN_POSITIVE;
        let mut worst = 0.0f64;
        while y < f64::MAX / 1.37 {
            for t in [
                y,
                y * 1.000_000_1,
                y * std::f64::consts::SQRT_2,
                y * 1.999_999,
            ] {
                let (a, b) = (ln_normal(t), t.ln());
                let ulp = f64::EPSILON * b.abs().max(f64::MIN_POSITIVE);
                worst = worst.max((a - b).abs() / ulp);
            }
            y *= 1.37;
        }
        assert!(worst <= 1.0, "{worst} ulp");
        assert_eq!(ln_normal(1.0), 0.0);
        assert_eq!(ln_normal(0.5), -std::f64::consts::LN_2);
        assert_eq!(ln_normal(1024.0), 10.0 * std::f64::consts::LN_2);
    }

    /// The KL terms agree with the scalar formula (to rounding: the lanes sum in another
    /// order), match the baseline build bit for bit, and are infinite where a
    /// reconstruction is zero, in a vector chunk or the tail.
    #[test]
    fn kl_terms_match_the_scalar_formula() {
        let x: Vec<f32> = (0..1003).map(|i| (i % 7) as f32 + 0.5).collect();
        let v: Vec<f32> = (0..1003).map(|i| (i % 11) as f32 * 0.3 + 1e-30).collect();
        let exact: f64 = x
            .iter()
            .zip(&v)
            .map(|(&a, &b)| Terms::KlStored.exact(f64::from(a), f64::from(b)))
            .sum();
        let fast = divergence_terms(&x, &v, Terms::KlStored);
        assert!(
            (fast - exact).abs() <= 1e-12 * exact.abs(),
            "{fast} {exact}"
        );
        assert_eq!(
            fast.to_bits(),
            divergence_terms_body(&x, &v, Terms::KlStored).to_bits()
        );
        for at in [3, 1001] {
            let mut z = v.clone();
            z[at] = 0.0;
            assert_eq!(divergence_terms(&x, &z, Terms::KlStored), f64::INFINITY);
        }
    }
    /// The vectorized KL and Itakura-Saito divergences agree with the element formula,
    /// zeros and infinities included, and match the baseline build bit for bit.
    #[test]
    fn beta_terms_match_the_element_formula() {
        let x: Vec<f32> = (0..1003).map(|i| [0.0, 0.5, 3.0, 7.25][i % 4]).collect();
        let v: Vec<f32> = (0..1003).map(|i| (i % 11) as f32 * 0.3 + 0.01).collect();
        let of = |beta| {
            if beta == 0.0 {
                Terms::ItakuraSaito
            } else {
                Terms::Kl
            }
        };
        for beta in [0.0, 1.0] {
            let exact: f64 = x
                .iter()
                .zip(&v)
                .map(|(&a, &b)| crate::loss::element(a.into(), b.into(), beta))
                .sum();
            let fast = divergence_terms(&x, &v, of(beta));
            assert_eq!(
                fast.to_bits(),
                divergence_terms_body(&x, &v, of(beta)).to_bits()
            );
            if beta == 0.0 {
                assert_eq!(fast, f64::INFINITY, "IS of a zero entry");
                let pos: Vec<f32> = x.iter().map(|a| a + 0.125).collect();
                let exact: f64 = pos
                    .iter()
                    .zip(&v)
                    .map(|(&a, &b)| crate::loss::element(a.into(), b.into(), 0.0))
                    .sum();
                let fast = divergence_terms(&pos, &v, Terms::ItakuraSaito);
                assert!((fast - exact).abs() <= 1e-12 * exact, "{fast} {exact}");
            } else {
                assert!((fast - exact).abs() <= 1e-12 * exact, "{fast} {exact}");
                let mut z = v.clone();
                z[1] = 0.0; // a positive entry left without reconstruction
                assert_eq!(divergence_terms(&x, &z, Terms::Kl), f64::INFINITY);
            }
        }
    }

    /// The multiplicative step gives the scalar formula's codes bit for bit (zero where
    /// the denominator is not positive), in vector chunks and the tail, and its two sums
    /// to rounding; the baseline build the same bits.
    #[test]
    fn mu_step_matches_the_scalar_step() {
        let n = 1003;
        let w: Vec<f32> = (0..n).map(|i| (i % 9) as f32 * 0.37 + 0.01).collect();
        let num: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 1.3).collect();
        let den: Vec<f32> = (0..n)
            .map(|i| [0.7, 0.0, 2.5, -1.0, 1e-30][i % 5])
            .collect();
        let (mut want, mut delta, mut norm) = (w.clone(), 0.0f64, 0.0f64);
        for ((wv, &nv), &dv) in want.iter_mut().zip(&num).zip(&den) {
            let new = *wv * if dv > 0.0 { nv / dv } else { 0.0 };
            delta += f64::from(new - *wv).powi(2);
            norm += f64::from(new).powi(2);
            *wv = new;
        }
        let (mut fast, mut base) = (w.clone(), w.clone());
        let (d, s) = mu_step(&mut fast, &num, &den);
        let (bd, bs) = mu_step_body(&mut base, &num, &den);
        assert!(fast
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(fast, base);
        assert_eq!((d.to_bits(), s.to_bits()), (bd.to_bits(), bs.to_bits()));
        assert!((d - delta).abs() <= 1e-12 * delta, "{d} {delta}");
        assert!((s - norm).abs() <= 1e-12 * norm, "{s} {norm}");
    }
}
