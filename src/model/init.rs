//! Initial dictionaries from the first batch: seeded random, NNDSVD / NNDSVDa / NNDSVDar
//! (Boutsidis & Gallopoulos 2008, with ndarray-linalg's SVD), or user-given.
//!
//! The SVD runs in f64 on a sample of the batch's first rows, capped at about 4 M stored
//! entries (250 000 sparse): dense rows are copied densely; sparse rows stay sparse, so
//! the randomized range finder costs O(nnz · k) per product and a wide sparse batch never
//! densifies; its orthonormalization and small SVD are l × l eigenproblems (l = k + 10).

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use ndarray_linalg::{Eigh, JobSvd, QR, SVDDC, UPLO};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::options::{Init, Unobserved};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::matrix::{CsrBuilder, CsrMatrix, MatRef, Valid};

/// Power iterations of the randomized range finder. One is enough for an init: with two,
/// the first pass of dense-20k and sparse-100k ended at the same loss to 6 digits, and the
/// init of the sparse first batch took about 0.14 s instead of 0.09 s (one run each).
const POWER_ITERATIONS: usize = 1;

/// Entries of the dense sample the SVD sees, at most (but never fewer than k rows).
const SVD_SAMPLE_ENTRIES: usize = 4_000_000;

/// Stored entries of a sparse sample, at most (never fewer than k rows): its products
/// gather one entry at a time in f64, so an entry costs several times a dense one. On
/// 100 000 × 20 000 ratings-like data (k 20, about 100 entries a row) the init of a
/// 16384-row first batch (1.6 M entries) took 0.19 s of a 0.26 s first pass; capped at
/// 500 000 entries (5000 rows) it takes the same time as a 4096-row batch's and the pass
/// ends at the same error to four digits. Since the range finder's QR and SVD became
/// Gram eigenproblems the products are most of the init: 250 000 entries (2500 rows)
/// take 31 ms instead of 42 (median of 8), and one or two passes end at the same error
/// (1.0005× and 1.0003× the SVD bound).
const SPARSE_SVD_SAMPLE_ENTRIES: usize = 250_000;

/// Builds H (k × p) for data whose first batch is `x`.
pub(crate) fn initial_dictionary<F: Float>(
    init: &Init,
    x: Valid<F>,
    k: usize,
    mode: Unobserved,
    rng: &mut ChaCha8Rng,
) -> Result<Array2<F>> {
    let valid = x;
    let x = x.view();
    let p = x.ncols();
    check_shape(init, k, p)?;
    let cells = x.nrows() as f64 * p as f64;
    // The mean of what W H should reproduce: every entry, the observed ones, or the
    // preferences (1 for each interaction, 0 elsewhere).
    let mean = match mode {
        Unobserved::Zero => x.sum() / cells,
        Unobserved::Missing => x.sum() / x.nnz().max(1) as f64,
        Unobserved::Implicit { .. } => x.nnz() as f64 / cells,
    };
    let h64 = match init {
        Init::Custom(h) => {
            if h.nrows() == k {
                h.clone()
            } else {
                // The free atoms: NNDSVDa of the batch (no zeros, so multiplicative
                // updates can move every entry), stacked under the given ones.
                let free: Array2<F> =
                    initial_dictionary(&Init::Nndsvda, valid, k - h.nrows(), mode, rng)?;
                let free = free.mapv(|v| v.as_f64());
                ndarray::concatenate(ndarray::Axis(0), &[h.view(), free.view()])
                    .expect("same width")
            }
        }
        Init::Random => random(k, p, mean, rng),
        // `Auto` arrives resolved (`ValidParams::effective_init`); alone it means NNDSVD.
        Init::Auto | Init::Nndsvd | Init::Nndsvda | Init::Nndsvdar => {
            let sample = Sample::first_rows(x, k);
            if sample.nrows() < k {
                // Too few rows for k singular vectors: random is the honest fallback.
                tracing::warn!(
                    rows = sample.nrows(),
                    k,
                    "first batch has fewer rows than k: random init"
                );
                random(k, p, mean, rng)
            } else {
                let mut h = match nndsvd(&sample, k, rng) {
                    Ok(h) => h,
                    Err(e) => {
                        // LAPACK can refuse degenerate inputs (e.g. 1 x 1): a random start
                        // still converges, so this is not worth failing the fit for.
                        tracing::warn!(error = %e, "NNDSVD failed: random init instead");
                        random(k, p, mean, rng)
                    }
                };
                // Zeros are filled at the scale of H's entries, `sqrt(mean / k)` (where
                // `W H` has the data's mean when W is of the same scale), not at the
                // data's mean as scikit-learn does: H scales with the square root of the
                // data, so a fill at the mean made the start, and every fit after it,
                // depend on the data's units (a spectrogram in other units learned
                // another dictionary).
                let fill = (mean.max(0.0) / k as f64).sqrt();
                let fill = if fill > 0.0 { fill } else { 1.0 };
                match init {
                    Init::Nndsvda => h.mapv_inplace(|v| if v == 0.0 { fill } else { v }),
                    Init::Nndsvdar => h.mapv_inplace(|v| {
                        if v == 0.0 {
                            fill / 100.0 * rng.random::<f64>()
                        } else {
                            v
                        }
                    }),
                    _ => {}
                }
                h
            }
        }
    };
    Ok(h64.mapv(F::from_f64))
}

/// Whether a dictionary of rank `k` can start by `init` on data of width `p`: k at most
/// p, and given atoms (at most k of them) as wide as the data.
pub(crate) fn check_shape(init: &Init, k: usize, p: usize) -> Result<()> {
    if k > p {
        return Err(Error::RankTooLarge { rank: k, width: p });
    }
    match init {
        Init::Custom(h) if h.ncols() != p || h.nrows() > k || h.nrows() == 0 => {
            Err(Error::InitShape {
                rank: k,
                width: p,
                found_rows: h.nrows(),
                found_cols: h.ncols(),
            })
        }
        _ => Ok(()),
    }
}

/// `sqrt(mean / k) · U(0, 2)`: the scale at which `W H` has the data's mean when W is of
/// the same scale (scikit-learn's convention, with a uniform instead of a half-normal).
/// A batch of zeros says nothing about scale: then the scale is 1.
fn random(k: usize, p: usize, mean: f64, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let mean = if mean > 0.0 { mean } else { 1.0 };
    let scale = (mean / k as f64).sqrt();
    Array2::from_shape_simple_fn((k, p), || scale * 2.0 * rng.random::<f64>())
}

/// The rows the SVD sees, in f64: dense rows copied densely, sparse rows kept sparse.
enum Sample {
    Dense(Array2<f64>),
    Sparse(CsrMatrix<f64>),
}

impl Sample {
    /// The batch's first rows, up to [`SVD_SAMPLE_ENTRIES`] stored entries
    /// ([`SPARSE_SVD_SAMPLE_ENTRIES`] for a sparse batch; at least k rows when the batch
    /// has them).
    fn first_rows<F: Float>(x: MatRef<F>, k: usize) -> Self {
        match x {
            MatRef::Dense(d) => {
                let p = d.ncols().max(1);
                let rows = d.nrows().min((SVD_SAMPLE_ENTRIES / p).max(k));
                Sample::Dense(d.slice(s![..rows, ..]).mapv(|v| v.as_f64()))
            }
            MatRef::Csr(c) => {
                let mut sample = CsrBuilder::new(c.ncols());
                let mut vals64 = Vec::new();
                for i in 0..c.nrows() {
                    let (cols, vals) = c.row(i);
                    if i >= k && sample.nnz() + vals.len() > SPARSE_SVD_SAMPLE_ENTRIES {
                        break;
                    }
                    vals64.clear();
                    vals64.extend(vals.iter().map(|v| v.as_f64()));
                    sample.push_row(cols, &vals64);
                }
                Sample::Sparse(sample.finish())
            }
        }
    }

    fn nrows(&self) -> usize {
        self.view().nrows()
    }

    fn view(&self) -> MatRef<'_, f64> {
        match self {
            Sample::Dense(d) => MatRef::from(d),
            Sample::Sparse(c) => MatRef::from(c),
        }
    }

    /// `X M` (rows × l) for M (p × l).
    fn mul(&self, m: &Array2<f64>) -> Array2<f64> {
        self.view().x_ht(m.view())
    }

    /// `Xᵀ Q` (p × l) for Q (rows × l), into `out` (p × l, standard layout; replaced by
    /// a narrower one when Q lost directions the sample lacks).
    fn tmul_into(&self, q: &Array2<f64>, out: &mut Array2<f64>) {
        if out.ncols() != q.ncols() {
            *out = Array2::zeros((out.nrows(), q.ncols()));
        }
        out.fill(0.0);
        self.view().xt_w_add(q.view(), out.view_mut(), 1);
    }
}

/// The norm of the positive part of `sign · v`, which is left in `part`.
fn part_norm(v: ArrayView1<f64>, sign: f64, part: &mut ndarray::Array1<f64>) -> f64 {
    part.zip_mut_with(&v, |o, &e| *o = (sign * e).max(0.0));
    part.dot(part).sqrt()
}

fn lapack(e: ndarray_linalg::error::LinalgError) -> Error {
    Error::Linalg(format!("SVD for NNDSVD init failed: {e}"))
}

/// The top-k singular triplets `(U, s, Vᵀ)` of `x`. When k is small against the matrix, a
/// randomized range finder (Halko, Martinsson & Tropp 2011: k + 10 seeded Gaussian
/// directions, one power iteration, orthonormalized by [`orthonormal`]) reduces the SVD
/// to an (k + 10) × p one ([`wide_svd`]): a few GEMMs instead of a full SVD (the first
/// pass of a 20000 × 1000, k = 20 fit: 0.63 s -> 0.21 s). Fewer than k triplets come
/// back when the sample's rank is lower.
///
/// Random signs (Rademacher) instead of Gaussian directions were tried (2026-12-04): 64
/// from one draw of the generator against a ziggurat sample each, about 14 ms less CPU
/// for a sparse-100k process (medians of 21, within the noise). But a new init changes
/// every fit's trajectory, and on a 3 s KL clip the defaults then ran 50 passes without
/// their convergence test firing (loss still falling by 0.3 % every third pass), where
/// the Gaussian start converges: left out.
fn top_singular(
    x: &Sample,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Array2<f64>, ndarray::Array1<f64>, Array2<f64>)> {
    use rand_distr::{Distribution, StandardNormal};
    let (m, p) = (x.nrows(), x.view().ncols());
    let l = k + 10;
    if 2 * l >= m.min(p) {
        let dense = match x {
            Sample::Dense(d) => std::borrow::Cow::Borrowed(d),
            Sample::Sparse(c) => std::borrow::Cow::Owned(c.to_dense()),
        };
        let (u, s, vt) = dense.svddc(JobSvd::Some).map_err(lapack)?;
        return Ok((u.expect("requested U"), s, vt.expect("requested Vᵀ")));
    }
    // One p × l array for the directions and then every `Xᵀ Q`: at p = 20 000 a fresh one
    // is 4.8 MB of pages to fault in, and there were four (Ω, two products, a copy).
    let mut pl = Array2::from_shape_simple_fn((p, l), || StandardNormal.sample(rng));
    let mut q = orthonormal(x.mul(&pl))?;
    for _ in 0..POWER_ITERATIONS {
        // `Xᵀ Q` is not orthonormalized (scikit-learn's rule for at most two power
        // iterations): only the span of `X Xᵀ Q` matters.
        x.tmul_into(&q, &mut pl);
        q = orthonormal(x.mul(&pl))?;
    }
    // B = Qᵀ X (l × p), the SVD of which gives X's top singular triplets.
    x.tmul_into(&q, &mut pl);
    let (ub, s, vt) = wide_svd(pl.t(), k)?;
    Ok((product(&q, &ub), s, vt))
}

/// Eigenvalues below this share of the largest count as zero: singular values below
/// 10⁻⁶ of the largest, where the Gram matrices below lose their digits.
const GRAM_FLOOR: f64 = 1e-12;

/// The eigen-decomposition of a symmetric Gram matrix, largest eigenvalue first, keeping
/// those above [`GRAM_FLOOR`] of the largest: `(λ, V)` with V's columns in that order.
fn gram_eigen(g: Array2<f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let (lambda, v) = g.eigh(UPLO::Upper).map_err(lapack)?;
    let top = lambda.iter().cloned().fold(0.0, f64::max);
    let keep: Vec<usize> = (0..lambda.len())
        .rev()
        .filter(|&i| top > 0.0 && lambda[i] > GRAM_FLOOR * top)
        .collect();
    let v = Array2::from_shape_fn((v.nrows(), keep.len()), |(r, c)| v[[r, keep[c]]]);
    Ok((keep.iter().map(|&i| lambda[i]).collect(), v))
}

/// An orthonormal basis of the range of `y` (m × l, m ≥ l): `Y ← Y V Λ^{-1/2}` from
/// `Yᵀ Y = V Λ Vᵀ`, twice (the second pass restores the orthogonality the first loses
/// on an ill-conditioned Y, as CholeskyQR2 does), dropping directions Y lacks. An
/// l × l eigenproblem and two GEMMs in place of LAPACK's Householder QR, which is
/// unblocked at l = 30: 12 ms for a 5000 × 30 sample, twice per init. A Y without
/// range (all zero) falls back to that QR.
fn orthonormal(y: Array2<f64>) -> Result<Array2<f64>> {
    let mut q = y;
    for _ in 0..2 {
        let (lambda, v) = gram_eigen(product(&q.t(), &q))?;
        if lambda.is_empty() {
            return Ok(q.qr().map_err(lapack)?.0);
        }
        let scale = ndarray::Array1::from_iter(lambda.iter().map(|l| 1.0 / l.sqrt()));
        q = product(&q, &(v * &scale));
    }
    Ok(q)
}

/// The SVD `U S Vᵀ` of a wide matrix `b` (l × p, l ≪ p) from the eigen-decomposition of
/// `B Bᵀ` (l × l): `U = V`, `S = Λ^{1/2}`, `Vᵀ = S⁻¹ Uᵀ B`. Singular values below
/// 10⁻⁶ of the largest are dropped: an init has no use for them. LAPACK's divide and
/// conquer took 32 ms on the 30 × 20 000 B of a sparse init, this takes about one. Only
/// the top `keep` triplets are returned (the range finder's extra directions only serve
/// its accuracy; their rows of Vᵀ were a third of the product).
fn wide_svd(
    b: ArrayView2<f64>,
    keep: usize,
) -> Result<(Array2<f64>, ndarray::Array1<f64>, Array2<f64>)> {
    let (mut lambda, u) = gram_eigen(product(&b, &b.t()))?;
    lambda.truncate(keep);
    let u = u.slice_move(s![.., ..lambda.len()]);
    let s = ndarray::Array1::from_iter(lambda.iter().map(|l| l.sqrt()));
    let mut vt = product(&u.t(), &b);
    for (mut row, &sv) in vt.rows_mut().into_iter().zip(&s) {
        row /= sv;
    }
    Ok((u, s, vt))
}

/// The H half of NNDSVD: atom 1 from |v₁|, then for each further singular pair the
/// positive or negative parts, whichever carries more of the pair's energy.
fn nndsvd(x: &Sample, k: usize, rng: &mut ChaCha8Rng) -> Result<Array2<f64>> {
    let (u, sv, vt) = top_singular(x, k, rng)?;
    let p = x.view().ncols();
    let mut h = Array2::<f64>::zeros((k, p));
    if sv.is_empty() {
        // A sample without range (all zero): nothing to start from but the fill.
        return Ok(h);
    }
    h.row_mut(0)
        .assign(&(vt.row(0).mapv(f64::abs) * sv[0].sqrt()));
    // Two scratch vectors (one per factor length), refilled for each part of each pair:
    // the positive and negative parts of u and v were six fresh vectors per atom, 19 MB
    // of pages to fault in for k = 20 over 20 000 columns. Same arithmetic, same bits.
    let mut su = ndarray::Array1::<f64>::zeros(u.nrows());
    let mut svec = ndarray::Array1::<f64>::zeros(p);
    for j in 1..k.min(sv.len()) {
        let (uj, vj) = (u.column(j), vt.row(j));
        let (mp, mn) = (
            part_norm(uj, 1.0, &mut su) * part_norm(vj, 1.0, &mut svec),
            part_norm(uj, -1.0, &mut su) * part_norm(vj, -1.0, &mut svec),
        );
        let (sign, sigma) = if mp > mn { (1.0, mp) } else { (-1.0, mn) };
        let nv = part_norm(vj, sign, &mut svec);
        if nv > 0.0 {
            let scale = (sv[j] * sigma).sqrt() / nv;
            h.row_mut(j).zip_mut_with(&svec, |o, &e| *o = e * scale);
        }
    }
    // Tiny values are rounding noise: make them exact zeros (filled by the a/ar variants).
    let tiny = 1e-12 * h.iter().cloned().fold(0.0, f64::max);
    h.slice_mut(s![.., ..])
        .mapv_inplace(|v| if v < tiny { 0.0 } else { v });
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;

    /// On a rank-one non-negative matrix, NNDSVD's first atom is the exact factor (up to
    /// scale) and the other atoms are (near) zero.
    #[test]
    fn nndsvd_rank_one() {
        let w = array![[1.0], [2.0], [0.5]];
        let h = array![[3.0, 0.0, 1.0, 2.0]];
        let x = w.dot(&h);
        let got = nndsvd(&Sample::Dense(x), 2, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let r = got.row(0);
        let scale = r[0] / 3.0;
        for (a, b) in r.iter().zip(h.row(0).iter()) {
            assert!((a - b * scale).abs() < 1e-9);
        }
    }

    /// The randomized range finder recovers the leading singular values of a matrix of
    /// low rank plus noise.
    #[test]
    fn randomized_svd_matches_full() {
        let d = crate::synth::PlantedSpec::new(400, 300, 5)
            .seed(2)
            .generate();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (_, s_fast, _) = top_singular(&Sample::Dense(d.x.clone()), 5, &mut rng).unwrap();
        let (_, s_full, _) = d.x.svddc(JobSvd::None).unwrap();
        for j in 0..5 {
            assert!(
                (s_fast[j] - s_full[j]).abs() < 1e-6 * s_full[0],
                "{j}: {s_fast} vs {s_full}"
            );
        }
    }

    /// The Gram-based basis is orthonormal and spans Y, also when Y lacks rank; the
    /// wide SVD reproduces B from its kept triplets and matches LAPACK's values.
    #[test]
    fn gram_basis_and_wide_svd_are_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = crate::synth::PlantedSpec::new(300, 40, 4)
            .seed(1)
            .generate();
        // Rank 4 plus noise, widened to 12 columns of which 4 repeat (rank deficient).
        let mut y = d.x.slice(s![.., ..12]).to_owned();
        for j in 8..12 {
            let c = y.column(j - 8).to_owned();
            y.column_mut(j).assign(&c);
        }
        let q = orthonormal(y.clone()).unwrap();
        assert!(q.ncols() <= 8, "{}", q.ncols());
        let eye = q.t().dot(&q);
        for ((i, j), v) in eye.indexed_iter() {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-12, "QᵀQ[{i},{j}] = {v}");
        }
        let back = q.dot(&q.t().dot(&y));
        assert!((&back - &y)
            .iter()
            .all(|e| e.abs() < 1e-9 * y[[0, 0]].abs().max(1.0)));
        let b = Array2::from_shape_simple_fn((6, 500), || {
            use rand_distr::{Distribution, StandardNormal};
            let v: f64 = StandardNormal.sample(&mut rng);
            v
        });
        let (u, sv, vt) = wide_svd(b.view(), 6).unwrap();
        let (_, full, _) = b.svddc(JobSvd::None).unwrap();
        for j in 0..6 {
            assert!((sv[j] - full[j]).abs() < 1e-10 * full[0], "{sv} vs {full}");
        }
        let rebuilt = (u * &sv).dot(&vt);
        assert!((&rebuilt - &b).iter().all(|e| e.abs() < 1e-10));
        // Keeping the top 2: the same leading triplets, bit for bit.
        let (u2, sv2, vt2) = wide_svd(b.view(), 2).unwrap();
        assert_eq!((u2.ncols(), sv2.len(), vt2.nrows()), (2, 2, 2));
        assert_eq!(sv2, sv.slice(s![..2]));
        assert_eq!(vt2, vt.slice(s![..2, ..]));
        // No range at all: an empty decomposition, and NNDSVD of zeros is zero.
        let (_, sv, vt) = wide_svd(Array2::zeros((3, 10)).view(), 3).unwrap();
        assert_eq!((sv.len(), vt.nrows()), (0, 0));
        let zero = Sample::Dense(Array2::zeros((200, 120)));
        let h = nndsvd(&zero, 5, &mut rng).unwrap();
        assert!(h.iter().all(|&v| v == 0.0));
    }

    /// A sparse sample stops at its entry cap, on a row boundary, but never below k rows.
    #[test]
    fn sparse_sample_is_capped_in_entries() {
        let width = 1000;
        let mut b = CsrBuilder::<f32>::new(width);
        let cols: Vec<u32> = (0..100).map(|j| j * 10).collect();
        for _ in 0..10_000 {
            b.push_row(&cols, &[1.0f32; 100]);
        }
        let x = b.finish();
        let sample = Sample::first_rows(MatRef::from(&x), 8);
        assert_eq!(sample.nrows(), SPARSE_SVD_SAMPLE_ENTRIES / 100);
        let sample = Sample::first_rows(MatRef::from(&x), 6000);
        assert_eq!(sample.nrows(), 6000, "k rows at least");
    }

    /// A sparse batch keeps its sample sparse and gets the dense batch's dictionary (up to
    /// rounding), with the same seed.
    #[test]
    fn sparse_sample_gives_the_dense_dictionary() {
        let d = crate::synth::PlantedSpec::new(300, 400, 4)
            .seed(5)
            .generate();
        let x = d.x.mapv(|v| if v < 0.3 { 0.0 } else { v });
        let csr = CsrMatrix::from_dense(x.view());
        assert!(csr.nnz() < x.len() / 2, "the test needs a sparse matrix");
        let sample = Sample::first_rows(MatRef::from(&csr), 4);
        fn v(x: MatRef<'_, f64>) -> Valid<'_, f64> {
            Valid::check(x, 0, crate::matrix::ValueRule::for_beta(2.0), 1).unwrap()
        }
        assert!(matches!(sample, Sample::Sparse(_)));
        assert_eq!(sample.nrows(), 300);
        let h_dense = initial_dictionary(
            &Init::Nndsvd,
            v(MatRef::from(&x)),
            4,
            Unobserved::Zero,
            &mut ChaCha8Rng::seed_from_u64(7),
        )
        .unwrap();
        let h_sparse = initial_dictionary(
            &Init::Nndsvd,
            v(MatRef::from(&csr)),
            4,
            Unobserved::Zero,
            &mut ChaCha8Rng::seed_from_u64(7),
        )
        .unwrap();
        let scale = h_dense.iter().cloned().fold(0.0, f64::max);
        for (a, b) in h_dense.iter().zip(h_sparse.iter()) {
            assert!((a - b).abs() <= 1e-9 * scale, "{a} vs {b}");
        }
        assert!(scale > 0.0);
    }

    #[test]
    fn variants_fill_zeros() {
        let x = array![
            [1.0f64, 0.0, 0.0, 2.0],
            [0.0, 3.0, 0.0, 0.0],
            [1.0, 0.0, 1.0, 0.0]
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let xv = Valid::check(
            MatRef::from(&x),
            0,
            crate::matrix::ValueRule::for_beta(2.0),
            1,
        )
        .unwrap();
        let plain = initial_dictionary(&Init::Nndsvd, xv, 3, Unobserved::Zero, &mut rng).unwrap();
        assert!(plain.iter().any(|&v| v == 0.0));
        let a = initial_dictionary(&Init::Nndsvda, xv, 3, Unobserved::Zero, &mut rng).unwrap();
        assert!(a.iter().all(|&v| v > 0.0));
        let ar = initial_dictionary(&Init::Nndsvdar, xv, 3, Unobserved::Zero, &mut rng).unwrap();
        assert!(ar.iter().all(|&v| v >= 0.0));
        let e = initial_dictionary(&Init::Random, xv, 5, Unobserved::Zero, &mut rng);
        assert!(matches!(e, Err(Error::RankTooLarge { rank: 5, width: 4 })));
    }
}
