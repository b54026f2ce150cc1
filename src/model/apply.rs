//! What a model does with rows it does not learn from: their codes with the dictionary
//! fixed (new users, audio frames), reconstructions, and the loss over a data set.

use ndarray::{Array2, ArrayView2};

use super::chunks::solve_chunked;
use super::codes::{Codes, Prepared};
use super::loss::divergence;
use super::online::{OnlineNmf, Wider};
use super::options::Unobserved;
use super::reports::LossReport;
use super::step::transform_batch;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::gemm::product;
use crate::matrix::{MatRef, Valid};

impl<F: Float> OnlineNmf<F> {
    /// Codes W (n × k) of new rows with H fixed (the model does not change): folds in new
    /// users or audio frames. Works in fixed row chunks on the model's threads. Codes too
    /// large for the element type are an [`Error::NumericalOverflow`], never zeros.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((120, 4), |(i, j)| ((i + 2 * j) % 5) as f32 + 0.1);
    /// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
    /// model.fit(&x).unwrap();
    /// let w = model.transform(&x).unwrap();
    /// assert_eq!(w.dim(), (120, 2));
    /// assert!(w.iter().all(|&v| v >= 0.0));
    /// ```
    pub fn transform<'a>(&self, x: impl Into<MatRef<'a, F>>) -> Result<Array2<F>> {
        let h = self.components()?;
        let x = self.check(x.into(), 0, Wider::Ignore)?;
        let x = x.valid();
        transform_batch(&self.state.params, h, x, self.threads, 0)
    }

    /// Like [`transform`](Self::transform), warm-started from given codes `w0` (n × k).
    pub fn transform_from<'a>(
        &self,
        x: impl Into<MatRef<'a, F>>,
        w0: ArrayView2<F>,
    ) -> Result<Array2<F>> {
        let h = self.components()?;
        let x = self.check(x.into(), 0, Wider::Ignore)?;
        let x = x.valid();
        let k = self.state.params.rank();
        if w0.dim() != (x.nrows(), k) {
            return Err(Error::CodesShape {
                expected: k,
                found: w0.ncols(),
            });
        }
        Ok(self.codes_of(h, x, Some(w0), |_, _| ()).0.w)
    }

    /// `W H`: the reconstruction of rows from their codes.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let h = array![[1.0f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
    /// let model = OnlineNmf::from_components(NmfParams::new(2).check().unwrap(), h).unwrap();
    /// let x = model.inverse_transform(array![[2.0, 3.0]].view()).unwrap();
    /// assert_eq!(x, array![[2.0, 3.0, 5.0]]);
    /// ```
    pub fn inverse_transform(&self, w: ArrayView2<F>) -> Result<Array2<F>> {
        let h = self.components()?;
        if w.ncols() != h.nrows() {
            return Err(Error::CodesShape {
                expected: h.nrows(),
                found: w.ncols(),
            });
        }
        Ok(product(&w, &h))
    }

    /// The loss over a whole data set, with each row's optimal codes for the current H.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((80, 5), |(i, j)| ((i * j) % 3) as f32 + 0.5);
    /// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
    /// model.fit(&x).unwrap();
    /// let l = model.loss(&x).unwrap();
    /// assert_eq!(l.rows, 80);
    /// assert!(l.relative_error.unwrap() < 1.0);
    /// ```
    pub fn loss<'a>(&self, x: impl Into<MatRef<'a, F>>) -> Result<LossReport> {
        self.measure(x.into(), false)
    }

    /// [`loss`](Self::loss), with the codes a dictionary learns from (`learning`: they
    /// stop earlier, see [`Prepared::learning`]) or the codes handed out.
    pub(super) fn measure(&self, x: MatRef<F>, learning: bool) -> Result<LossReport> {
        let h = self.components()?;
        let x = self.check(x, 0, Wider::Ignore)?;
        let x = x.valid();
        let beta = self.state.params.loss().beta();
        let mode = self.state.params.unobserved();
        let loss = if mode == Unobserved::Zero {
            // The exact divergence, not the solver's expanded form (which loses digits to
            // cancellation near a perfect fit).
            let score = |xc: Valid<F>, w: ArrayView2<F>| divergence(*xc, w, h, beta);
            let (_, parts) = self.codes_with(h, x, None, learning, score);
            parts.iter().sum::<f64>()
        } else {
            // Observed-only and implicit solvers report the loss over what they read.
            self.codes_with(h, x, None, learning, |_, _| ()).0.loss
        };
        let implicit = matches!(mode, Unobserved::Implicit { .. });
        let relative_error = (beta == 2.0 && !implicit)
            .then(|| (2.0 * loss / x.squared_norm().max(f64::MIN_POSITIVE)).sqrt());
        let rmse = (beta == 2.0 && mode == Unobserved::Missing)
            .then(|| (2.0 * loss / x.nnz().max(1) as f64).sqrt());
        Ok(LossReport {
            loss,
            rows: x.nrows() as u64,
            relative_error,
            rmse,
        })
    }

    /// Codes of valid `x` against `h`, chunk by chunk.
    fn codes_of<T: Send>(
        &self,
        h: ArrayView2<F>,
        x: Valid<F>,
        w0: Option<ArrayView2<F>>,
        extra: impl Fn(Valid<F>, ArrayView2<F>) -> T + Sync,
    ) -> (Codes<F>, Vec<T>) {
        self.codes_with(h, x, w0, false, extra)
    }

    /// [`codes_of`](Self::codes_of), with the learning caps when `learning`.
    fn codes_with<T: Send>(
        &self,
        h: ArrayView2<F>,
        x: Valid<F>,
        w0: Option<ArrayView2<F>>,
        learning: bool,
        extra: impl Fn(Valid<F>, ArrayView2<F>) -> T + Sync,
    ) -> (Codes<F>, Vec<T>) {
        let params = &self.state.params;
        let prep = Prepared::new(params, h);
        let prep = if learning {
            prep.learning(params)
        } else {
            prep
        };
        solve_chunked(params, &prep, x, self.threads, w0, extra)
    }
}
