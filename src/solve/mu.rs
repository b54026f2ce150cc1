//! Multiplicative updates for the codes of a batch under any beta-divergence
//! (Lee & Seung 2001; Févotte & Idier 2011):
//! `W ← W ⊙ [((V^(β−2) ⊙ X) Hᵀ) / (V^(β−1) Hᵀ + l1 + l2 W)]^γ` with `V = W H`.
//! Frobenius uses `X Hᵀ / (W H Hᵀ)`; KL's denominator is the row sums of H, and for a
//! sparse X its numerator visits only the non-zeros (cost nnz · k per iteration). Other
//! betas form V densely.

use ndarray::{Array1, Array2, ArrayView2, CowArray, Zip};

use super::cd::SolveStats;
use crate::float::Float;
use crate::linalg::gemm::{mat_mul, product};
use crate::linalg::simd;
use crate::linalg::{pow, CLIP};
use crate::matrix::MatRef;

/// The exponent γ(β) of the multiplicative updates: [`descent_exponent`], except for
/// Itakura-Saito (β = 0), which takes 1.
///
/// 1 is the update of Févotte, Bertin & Durrieu (2009) for IS, not proved monotone but
/// observed to be, and twice as long a step in the log domain as the proved ½. On
/// speech magnitudes (1251 × 513, k 20, `benches/peers/is_speech.sh`) 256-row batches
/// pass MiniBatchNMF(IS)'s final divergence after 16 passes with it and not within 80
/// with ½; it also ended lower on digits, scikit-learn's sample images, wine and
/// Poisson counts (each plus 10⁻⁶ of its mean), and 2–8 % higher on TF-IDF, a poor fit
/// for IS. For β = ½ it was worse on two of three of those sets, so other betas keep
/// the proved exponent.
pub(crate) fn mu_exponent(beta: f64) -> f64 {
    if beta == 0.0 {
        1.0
    } else {
        descent_exponent(beta)
    }
}

/// Févotte & Idier's (2011) exponent, which makes every multiplicative update a descent
/// step: `1/(2 − β)` below β = 1, `1/(β − 1)` above 2, 1 between (and what model files
/// that do not record their exponent were summed with).
pub(crate) fn descent_exponent(beta: f64) -> f64 {
    if beta < 1.0 {
        1.0 / (2.0 - beta)
    } else if beta > 2.0 {
        1.0 / (beta - 1.0)
    } else {
        1.0
    }
}

/// `v ← x / max(v, clip)` (the KL ratio), vectorized when both are contiguous.
/// Either layout, as long as `v` and `x` share it.
pub(crate) fn kl_ratio_into<F: Float>(v: &mut Array2<F>, x: ArrayView2<F>, clip: F) {
    let same = v.strides() == x.strides();
    match (v.as_slice_memory_order_mut(), x.as_slice_memory_order()) {
        (Some(vs), Some(xs)) if same && vs.len() == xs.len() => simd::kl_ratio(vs, xs, clip),
        _ => Zip::from(v).and(x).for_each(|e, &xv| *e = xv / e.max(clip)),
    }
}

/// With `c = max(v, clip)`: `q ← c^(β−1)` and `v ← (x / c) ⊙ q`, the two weighted ratios
/// of the β-divergence's updates, in one vectorized pass when all three are contiguous
/// in one layout (either).
pub(crate) fn beta_ratios_into<F: Float>(
    v: &mut Array2<F>,
    q: &mut Array2<F>,
    x: ArrayView2<F>,
    clip: F,
    beta: f64,
) {
    let e = beta - 1.0;
    let same = v.strides() == x.strides() && q.strides() == x.strides();
    match (
        v.as_slice_memory_order_mut(),
        q.as_slice_memory_order_mut(),
        x.as_slice_memory_order(),
    ) {
        (Some(vs), Some(qs), Some(xs)) if same && vs.len() == xs.len() && qs.len() == xs.len() => {
            simd::beta_ratios(vs, qs, xs, clip, e)
        }
        _ => Zip::from(v).and(q).and(x).for_each(|ve, qe, &xv| {
            let c = ve.max(clip);
            *qe = pow(c, e);
            *ve = xv / c * *qe;
        }),
    }
}

/// Starting codes for the multiplicative updates: every code of row i equals
/// `sum(x_i) / sum(H)`, so `W H` has the data's row sums (the KL fixed point for a
/// constant row). Zero rows start (and stay) at zero, which is their optimum.
pub(crate) fn initial_codes<F: Float>(x: MatRef<F>, h: ArrayView2<F>) -> Array2<F> {
    let total = h.sum().as_f64().max(CLIP);
    let mut w = Array2::zeros((x.nrows(), h.nrows()));
    let mut sums = vec![0.0f64; x.nrows()];
    x.for_each_stored(|i, _, v| sums[i] += v.as_f64());
    for (mut row, s) in w.rows_mut().into_iter().zip(sums) {
        row.fill(F::from_f64(s / total));
    }
    w
}

/// The floor of `W H` where an update divides by it or raises it to a negative power:
/// [`CLIP`] times the batch's mean, and at most a thousandth of its smallest positive
/// value. So it is the same share of the data at any scale (KL and Itakura-Saito are
/// scale-equivariant and get the same updates for `X` and `λX`), and it sits below
/// every value: a clip above quiet entries (a power spectrogram spans ten orders of
/// magnitude) made the updates see `W H` larger than the data there, push their codes
/// to zero, and the divergence grow without bound. An all-zero batch keeps [`CLIP`].
pub(crate) fn relative_clip<F: Float>(x: MatRef<F>) -> F {
    let cells = x.nrows() as f64 * x.ncols() as f64;
    let (sum, least, _) = x.value_summary();
    let mean = sum / cells.max(1.0);
    let scale = if mean > 0.0 && mean.is_finite() {
        mean
    } else {
        1.0
    };
    let clip = (CLIP * scale).min(1e-3 * least);
    F::from_f64(clip.max(f64::from(f32::MIN_POSITIVE)))
}

/// `(X / max(W H, clip)) Hᵀ`, visiting only the stored entries of a sparse X.
pub(crate) fn kl_numerator_sparse<F: Float>(
    x: MatRef<F>,
    w: ArrayView2<F>,
    ht: ArrayView2<F>,
    clip: F,
) -> Array2<F> {
    let mut num = Array2::zeros(w.raw_dim());
    x.for_each_stored(|i, j, v| {
        let hj = ht.row(j);
        let ratio = v / w.row(i).dot(&hj).max(clip);
        num.row_mut(i).scaled_add(ratio, &hj);
    });
    num
}

/// Runs the updates on `w` (b × k, a warm start from [`initial_codes`] or a previous
/// solve). `ht` is `Hᵀ` in standard layout.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve<F: Float>(
    x: MatRef<F>,
    h: ArrayView2<F>,
    ht: ArrayView2<F>,
    w: &mut Array2<F>,
    beta: f64,
    (l1, l2): (F, F),
    max_iter: usize,
    tol: f64,
) -> SolveStats {
    let gamma = F::from_f64(mu_exponent(beta));
    let clip = relative_clip(x);
    let hsum: Array1<F> = h.sum_axis(ndarray::Axis(1));
    // Precomputed pieces, by case.
    let r = (beta == 2.0).then(|| x.x_ht(ht));
    let g = (beta == 2.0).then(|| product(&h, &h.t()));
    let sparse_kl = beta == 1.0 && matches!(x, MatRef::Csr(_));
    // The dense path's X in standard layout (borrowed when it is one), and V and Q alike,
    // so that the ratios run in one vectorized pass. The products take any layout: the
    // same bits, and under `gemm` the same speed (column-major X, V and Q, which
    // matrixmultiply's packing preferred, measured equal on an Itakura-Saito fit).
    let dense_x = (r.is_none() && !sparse_kl).then(|| match x {
        MatRef::Dense(xd) if xd.is_standard_layout() => CowArray::from(xd),
        MatRef::Dense(xd) => CowArray::from(xd.as_standard_layout().into_owned()),
        MatRef::Csr(_) => CowArray::from(x.to_dense()),
    });
    let mut v = dense_x.as_ref().map(|d| Array2::<F>::zeros(d.raw_dim()));
    let mut q: Option<Array2<F>> = None;

    let mut stats = SolveStats::default();
    for it in 1..=max_iter {
        stats.iterations = it;
        let (num, mut den) = if let (Some(r), Some(g)) = (&r, &g) {
            (r.clone(), product(&*w, g))
        } else if sparse_kl {
            let den = Array2::from_shape_fn(w.raw_dim(), |(_, j)| hsum[j]);
            (kl_numerator_sparse(x, w.view(), ht, clip), den)
        } else {
            let xd = dense_x.as_ref().expect("dense copy");
            let v = v.as_mut().expect("buffer");
            mat_mul(F::one(), &*w, &h, F::zero(), v);
            if beta == 1.0 {
                kl_ratio_into(v, xd.view(), clip);
                let den = Array2::from_shape_fn(w.raw_dim(), |(_, j)| hsum[j]);
                (product(&*v, &ht), den)
            } else {
                // q = V^(β−1); v ← V^(β−2) ⊙ X, as (X / V) ⊙ q: V^(β−2) alone
                // overflows f32 where V is small (1e-20^-2) though the product does not.
                let qb = q.get_or_insert_with(|| Array2::zeros(v.raw_dim()));
                beta_ratios_into(v, qb, xd.view(), clip, beta);
                (product(&*v, &ht), product(&*qb, &ht))
            }
        };
        // Without penalties `den + 0 + 0 · w` is `den` (up to the sign of a zero, which
        // the step's `d > 0` does not see).
        if l1 != F::zero() || l2 != F::zero() {
            Zip::from(&mut den)
                .and(&*w)
                .for_each(|d, &wv| *d += l1 + l2 * wv);
        }
        let fast = gamma == F::one()
            && w.is_standard_layout()
            && num.is_standard_layout()
            && den.is_standard_layout();
        let (delta, norm) = if fast {
            simd::mu_step(
                w.as_slice_mut().expect("standard layout"),
                num.as_slice().expect("standard layout"),
                den.as_slice().expect("standard layout"),
            )
        } else {
            let (mut delta, mut norm) = (0.0f64, 0.0f64);
            Zip::from(&mut *w)
                .and(&num)
                .and(&den)
                .for_each(|wv, &n, &d| {
                    let ratio = if d > F::zero() { n / d } else { F::zero() };
                    let ratio = pow(ratio, gamma.as_f64());
                    let new = *wv * ratio;
                    let diff = (new - *wv).as_f64();
                    delta += diff * diff;
                    norm += new.as_f64() * new.as_f64();
                    *wv = new;
                });
            (delta, norm)
        };
        if delta <= tol * tol * norm {
            stats.converged = true;
            break;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below KL the updates' result does not depend on how X and H are laid out: row- or
    /// column-major dense X, CSR X, standard or transposed H give the same bits (the
    /// products' bits do not depend on layouts, and the ratios run on a standard-layout
    /// X), and the updates lower the divergence.
    #[test]
    fn codes_below_kl_do_not_depend_on_layouts() {
        use crate::matrix::CsrMatrix;
        use ndarray::ShapeBuilder;
        let (b, p, k) = (37, 29, 4);
        let h = Array2::from_shape_fn((k, p), |(r, j)| ((r * 7 + j * 3) % 11) as f32 * 0.1 + 0.05);
        // Planted: X = W₀ H plus a little, so the updates have somewhere to go.
        let w0 = Array2::from_shape_fn((b, k), |(i, r)| ((i * 3 + r * 5) % 7) as f32 * 0.3);
        let x = w0.dot(&h) + 0.01;
        let mut xf = Array2::zeros((b, p).f());
        xf.assign(&x);
        let csr = CsrMatrix::from_dense(x.view());
        let h_cols = {
            let mut a = Array2::zeros((k, p).f());
            a.assign(&h);
            a
        };
        let ht = h.t().as_standard_layout().into_owned();
        for beta in [0.0, 0.5] {
            let start = initial_codes(MatRef::from(&x), h.view());
            let run = |x: MatRef<f32>, h: ArrayView2<f32>| {
                let mut w = start.clone();
                solve(x, h, ht.view(), &mut w, beta, (0.0, 0.0), 15, 0.0);
                w
            };
            let first = run(MatRef::from(&x), h.view());
            for (case, other) in [
                run(MatRef::from(&xf), h.view()),
                run(MatRef::from(&csr), h.view()),
                run(MatRef::from(&x), h_cols.view()),
            ]
            .iter()
            .enumerate()
            {
                let differ = first
                    .iter()
                    .zip(other)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(differ, 0, "β {beta}, case {case}: {first} {other}");
            }
            let d = |w: &Array2<f32>| {
                crate::loss::divergence(MatRef::from(&x), w.view(), h.view(), beta)
            };
            assert!(
                d(&first) < 0.5 * d(&start),
                "β {beta}: {} -> {}",
                d(&start),
                d(&first)
            );
        }
    }

    #[test]
    fn exponents() {
        assert_eq!(mu_exponent(0.0), 1.0);
        assert_eq!(mu_exponent(-1.0), 1.0 / 3.0);
        assert_eq!(mu_exponent(0.5), 1.0 / 1.5);
        assert_eq!(descent_exponent(0.0), 0.5);
        assert_eq!(mu_exponent(1.0), 1.0);
        assert_eq!(mu_exponent(3.0), 0.5);
    }
}
