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
/// let mut bytes = Vec::new();
/// 1.5f32.put_le(&mut bytes);
/// assert_eq!((bytes.len(), <f32 as Float>::from_le(&bytes)), (4, 1.5));
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
    /// Bytes per value.
    const BYTES: usize;
    /// Appends the value's little-endian bytes to `out` (messages between processes).
    fn put_le(self, out: &mut Vec<u8>);
    /// The value from its little-endian bytes (exactly [`BYTES`](Self::BYTES) of them).
    fn from_le(bytes: &[u8]) -> Self;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    const BYTES: usize = 4;
    #[inline]
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn from_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[..4]);
        f32::from_le_bytes(b)
    }
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
    const BYTES: usize = 8;
    #[inline]
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn from_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        f64::from_le_bytes(b)
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}
