//! The bottom layer: kernels on slices and ndarray views, with no knowledge of batches or
//! models. Element-wise kernels dispatched to AVX2 ([`simd`]), the two sparse products
//! ([`sparse`]), deterministic data parallelism over fixed chunks ([`parallel`]), and
//! small numeric helpers.
//!
//! Dense products ([`gemm`]) go through the `gemm` crate's blocked kernel, and through
//! ndarray's own (the `matrixmultiply` crate) for the shapes where `gemm` takes layout-
//! specific shortcuts, rather than a system BLAS: their results depend neither on the
//! memory layout of the operands (OpenBLAS's `H Hᵀ` differs in the last bit between a
//! row-major and a column-major H on AVX-512 machines) nor on any thread count, and they
//! keep no process-wide state, so a model is the same whatever the host program does with
//! its BLAS.

pub(crate) mod gemm;
pub(crate) mod parallel;
pub(crate) mod simd;
pub(crate) mod sparse;
#[cfg(feature = "arrow")]
pub(crate) mod transpose;

use crate::float::Float;

/// Reconstructions `WH` are clipped below at this value wherever a loss or an update
/// divides by them or takes their logarithm (scikit-learn's convention: float32 epsilon,
/// for both element types).
pub const CLIP: f64 = f32::EPSILON as f64;

/// `v^e`, without `powf` for the exponents the usual betas produce (−2, −1, −½, 0, ½, 1,
/// 2): `powf` dominates the multiplicative updates otherwise.
#[inline]
pub(crate) fn pow<F: Float>(v: F, e: f64) -> F {
    if e == -2.0 {
        (v * v).recip()
    } else if e == -1.0 {
        v.recip()
    } else if e == 0.0 {
        F::one()
    } else if e == 1.0 {
        v
    } else if e == 2.0 {
        v * v
    } else if e == 0.5 {
        v.sqrt()
    } else if e == -0.5 {
        v.sqrt().recip()
    } else {
        v.powf(F::from_f64(e))
    }
}

/// Whether every value of `a` is finite: one vectorized pass over its memory when it is
/// contiguous (in any order), element by element otherwise. The statistics and the
/// dictionary are checked so after every batch; iterating a column-major array in logical
/// order took 15 % of a sparse pass.
pub(crate) fn all_finite<F, S, D>(a: &ndarray::ArrayBase<S, D>) -> bool
where
    F: Float,
    S: ndarray::Data<Elem = F>,
    D: ndarray::Dimension,
{
    match a.as_slice_memory_order() {
        Some(s) => simd::all_finite(s),
        None => a.iter().all(|v| v.is_finite()),
    }
}

/// A zero array whose memory is written, for kernels that add into it entry by entry.
///
/// Why: `Array2::zeros` is `calloc`, whose large blocks are fresh pages the kernel maps to
/// its shared zero page on the first read. A kernel that reads an entry before writing it
/// (`+=`) then faults every page twice, the second time with a TLB shootdown sent to every
/// core running one of the process's threads: 7 % of the CPU time of a sparse pass. Written
/// zeros fault each page once.
pub(crate) fn zeros_written<F, Sh>(shape: Sh) -> ndarray::Array2<F>
where
    F: Float,
    Sh: ndarray::ShapeBuilder<Dim = ndarray::Ix2>,
{
    ndarray::Array2::from_shape_simple_fn(shape, F::zero)
}

/// `a` with the same values, stored column-major (its transpose is a standard array).
pub(crate) fn to_column_major<F: Clone>(a: ndarray::Array2<F>) -> ndarray::Array2<F> {
    if a.t().is_standard_layout() {
        a
    } else {
        a.t().as_standard_layout().into_owned().reversed_axes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_shortcuts_match_powf() {
        for e in [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 1.3] {
            let v = 4.0f64;
            assert!((pow(v, e) - v.powf(e)).abs() < 1e-12, "{e}");
        }
    }

    /// The same answer for standard, column-major and strided views.
    #[test]
    fn all_finite_in_every_layout() {
        let mut a = ndarray::Array2::<f32>::ones((7, 300));
        assert!(
            all_finite(&a) && all_finite(&a.t()) && all_finite(&a.slice(ndarray::s![.., ..;3]))
        );
        a[[6, 297]] = f32::NAN;
        assert!(!all_finite(&a) && !all_finite(&a.t()));
        assert!(
            !all_finite(&a.slice(ndarray::s![.., ..;3])),
            "the strided view keeps 297"
        );
        assert!(all_finite(&a.slice(ndarray::s![.., 298..])));
    }

    #[test]
    fn written_zeros_are_zeros_in_the_asked_layout() {
        use ndarray::ShapeBuilder;
        let a: ndarray::Array2<f32> = zeros_written((3, 2).f());
        assert!(a.iter().all(|&v| v == 0.0) && a.t().is_standard_layout());
        let b: ndarray::Array2<f64> = zeros_written((2, 5));
        assert!(b.iter().all(|&v| v == 0.0) && b.is_standard_layout());
    }

    #[test]
    fn column_major_keeps_values() {
        let a = ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let c = to_column_major(a.clone());
        assert!(c.t().is_standard_layout());
        assert_eq!(c, a);
    }
}
