//! Dense products: `C ← α A B + β C`, through the `gemm` crate where its blocked kernel
//! applies, through ndarray's own (`matrixmultiply`) elsewhere.
//!
//! Why two: the products of a fit are skinny (a 120 × 1000 batch times a 1000 × 20 `Hᵀ`,
//! a 20 × 120 `Wᵀ` times the batch, `W H` of 256 × 20 by 20 × 513), where matrixmultiply
//! packs more than it multiplies. On those shapes, a pass over 20 000 rows on one thread
//! of this machine, the `gemm` crate took `X Hᵀ` from 30 to 12.8 ms, `Wᵀ X` from 24 to
//! 11.6 ms and `W H` from 12.5 to 6.0 ms with its AVX-512 kernels (18.5, 19.3 and 10.6 ms
//! with its FMA ones, which CPUs without AVX-512 get).
//!
//! What must not change is that a product's bits depend only on its values, never on the
//! memory layout of its operands (a column-major input gives the model a row-major one
//! gives) nor on any thread count. `gemm`'s blocked kernel keeps that: each entry is one
//! fused multiply-add chain over the inner dimension in blocks whose size depends on the
//! inner dimension and the CPU's caches only, whichever operand it packs and whichever way
//! it turns the problem. Its shortcuts do not: products of at most 16 × 16 entries use a
//! horizontal (dot product) kernel when the operands' inner strides are 1, vectors a
//! layout-specific `gemv`, and inner dimensions of 1 or 2 a kernel of their own. Those
//! shapes (and every shape the tests could not show invariant) go to matrixmultiply, which
//! is layout-free everywhere. The test below checks both sides over every layout.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayBase, Data, DataMut, Ix2};

use crate::float::Float;

/// Entries of the result below which (or equal) the product stays with matrixmultiply
/// (`gemm` switches to its horizontal kernel there).
const SMALL: usize = 16 * 16;

/// `c ← alpha · a · b + beta · c`, as `ndarray::linalg::general_mat_mul` (`c` is not read
/// when `beta` is zero), with bits that depend on the values only.
///
/// # Panics
/// When the shapes do not chain (`a` m × k, `b` k × n, `c` m × n): a bug, not an input.
pub(crate) fn mat_mul<F, S1, S2, S3>(
    alpha: F,
    a: &ArrayBase<S1, Ix2>,
    b: &ArrayBase<S2, Ix2>,
    beta: F,
    c: &mut ArrayBase<S3, Ix2>,
) where
    F: Float,
    S1: Data<Elem = F>,
    S2: Data<Elem = F>,
    S3: DataMut<Elem = F>,
{
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "mat_mul: {m}×{k} by {k2}×{n} into {:?}",
        c.dim()
    );
    if m * n <= SMALL || m < 2 || n < 2 || k < 3 {
        general_mat_mul(alpha, a, b, beta, c);
        return;
    }
    let (cs, rs) = (c.strides()[1], c.strides()[0]);
    let dst = c.as_mut_ptr();
    // SAFETY: the three views are valid for their shapes and strides (ndarray's
    // invariant), `c` is borrowed mutably so it overlaps neither input, and `gemm` reads and
    // writes only the entries those shapes and strides address. `F` is f32 or f64, which
    // `gemm` dispatches on.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            cs,
            rs,
            beta != F::zero(),
            a.as_ptr(),
            a.strides()[1],
            a.strides()[0],
            b.as_ptr(),
            b.strides()[1],
            b.strides()[0],
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `a · b` into a new standard (row-major) array.
pub(crate) fn product<F, S1, S2>(
    a: &ArrayBase<S1, Ix2>,
    b: &ArrayBase<S2, Ix2>,
) -> ndarray::Array2<F>
where
    F: Float,
    S1: Data<Elem = F>,
    S2: Data<Elem = F>,
{
    let mut out = super::zeros_written((a.nrows(), b.ncols()));
    mat_mul(F::one(), a, b, F::zero(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, ShapeBuilder};
    use rand::{Rng, SeedableRng};

    fn random(shape: (usize, usize), rng: &mut impl Rng) -> Array2<f32> {
        let vals: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.random::<f32>() - 0.3)
            .collect();
        Array2::from_shape_vec(shape, vals).unwrap()
    }

    /// The same values stored column-major.
    fn column_major(a: &Array2<f32>) -> Array2<f32> {
        let mut f = Array2::zeros(a.dim().f());
        f.assign(a);
        f
    }

    /// Every layout of the operands and the result gives the same bits, on shapes that take
    /// `gemm`'s kernel and on those left to matrixmultiply; and the values agree with
    /// matrixmultiply's to rounding.
    #[test]
    fn bits_depend_on_values_only() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let shapes = [
            (120, 1000, 20),
            (20, 120, 1000),
            (256, 20, 513),
            (513, 256, 20),
            (64, 2000, 64),
            (300, 5000, 3),
            (2, 3000, 200),
            (20, 37, 1001),
            (16, 8, 16),
            (3, 5000, 3),
            (1, 300, 40),
            (40, 300, 1),
            (5, 2, 9),
            (33, 1, 17),
            (7, 0, 9),
        ];
        for (m, k, n) in shapes {
            let (a0, b0) = (random((m, k), &mut rng), random((k, n), &mut rng));
            let mut first: Option<Array2<f32>> = None;
            for layout in 0..8 {
                let a = if layout & 1 == 0 {
                    a0.clone()
                } else {
                    column_major(&a0)
                };
                let b = if layout & 2 == 0 {
                    b0.clone()
                } else {
                    column_major(&b0)
                };
                let mut c = if layout & 4 == 0 {
                    Array2::zeros((m, n))
                } else {
                    Array2::zeros((m, n).f())
                };
                c.fill(f32::NAN); // not read when beta is zero
                mat_mul(1.0, &a, &b, 0.0, &mut c);
                match &first {
                    None => first = Some(c),
                    Some(f) => assert!(
                        f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}×{k}×{n}, layout {layout}"
                    ),
                }
            }
            let reference = a0.dot(&b0);
            let got = first.unwrap();
            for (x, y) in got.iter().zip(&reference) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()) * (k as f32).sqrt(),
                    "{m}×{k}×{n}"
                );
            }
        }
    }

    /// `alpha` and `beta` as general_mat_mul, on strided views (rows of a larger array,
    /// a transposed operand, every other column of the result).
    #[test]
    fn scales_and_strides_as_ndarray() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let big = random((300, 70), &mut rng);
        let a = big.slice(s![13..133, ..]);
        let b = column_major(&random((40, 70), &mut rng));
        let mut c = random((120, 80), &mut rng);
        let mut expected = c.slice(s![.., ..;2]).to_owned();
        general_mat_mul(-0.5, &a, &b.t(), 2.0, &mut expected);
        mat_mul(-0.5, &a, &b.t(), 2.0, &mut c.slice_mut(s![.., ..;2]));
        for (x, y) in c.slice(s![.., ..;2]).iter().zip(&expected) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()));
        }
        let p = product(&a, &b.t());
        assert_eq!(p.dim(), (120, 40));
        assert!(p.is_standard_layout());
    }

    #[test]
    #[should_panic(expected = "mat_mul")]
    fn shapes_that_do_not_chain_panic() {
        let a = Array2::<f64>::zeros((3, 4));
        let mut c = Array2::<f64>::zeros((3, 3));
        mat_mul(1.0, &a, &a, 0.0, &mut c);
    }
}
