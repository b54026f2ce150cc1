//! The element types a model can work in.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};

/// A floating-point element type: implemented for `f32` and `f64`.
///
/// Every array in a model (data, codes `W`, dictionary `H`, statistics) uses one `Float`.
/// Losses are always accumulated and reported in `f64`, so an `f32` model still reports
/// losses that can be compared with an `f64` run.
///
/// ```
/// use streamnmf::Float;
/// assert_eq!(<f32 as Float>::from_f64(0.5), 0.5f32);
/// assert_eq!(2.0f32.as_f64(), 2.0);
/// assert_eq!(<f64 as Float>::NAME, "f64");
/// ```
pub trait Float:
    num_traits::Float
    + LinalgScalar
    + ScalarOperand
    + Default
    + Debug
    + Display
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + 'static
{
    /// The type's name as written in model files and the CLI (`"f32"` or `"f64"`).
    const NAME: &'static str;
    /// Converts from `f64`, rounding to nearest (`as` semantics: out-of-range values
    /// become infinite, which validation rejects).
    fn from_f64(x: f64) -> Self;
    /// Widens (or copies) to `f64`.
    fn as_f64(self) -> f64;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}
