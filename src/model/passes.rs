//! Fitting in memory, pass by pass: `fit` and its variants (per-pass callback, the fit's
//! own codes, a stop flag), with the convergence test between passes.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{s, Array2, ArrayView2};

use super::convergence::{self, RowSample};
use super::online::OnlineNmf;
use super::reports::FitReport;
use super::step::solve_batch;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::{MatRef, Origin, Valid};

impl<F: Float> OnlineNmf<F> {
    /// Fits from scratch on an in-memory matrix: up to `max_passes` passes of mini-batches
    /// of `batch_size` rows, stopping early when a pass improves the loss of the
    /// convergence sample by less than `pass_tol` (see
    /// [`sample_losses`](Self::sample_losses)). Any previous state is discarded (use
    /// `partial_fit` to keep learning);
    /// all of `x` is checked before anything is discarded.
    pub fn fit<'a>(&mut self, x: impl Into<MatRef<'a, F>>) -> Result<FitReport> {
        self.fit_passes(x.into(), None, |_, _| {}, |_, _| true)
    }

    /// [`fit`](Self::fit), calling `after_pass(model, pass)` after each pass (0-based):
    /// to evaluate, log or plot as the model learns. Returning `false` stops the fit.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((200, 5), |(i, j)| ((i + 3 * j) % 4) as f64 + 0.2);
    /// let p = NmfParams::new(2).batch_size(50).max_passes(8).pass_tol(0.0).check().unwrap();
    /// let mut model = OnlineNmf::<f64>::new(p);
    /// let mut errors = Vec::new();
    /// let report = model.fit_each_pass(&x, |m, pass| {
    ///     errors.push(m.loss(&x).unwrap().relative_error.unwrap());
    ///     pass < 4 // stop after the fifth pass
    /// }).unwrap();
    /// assert_eq!((report.passes, errors.len()), (5, 5));
    /// assert!(errors[4] <= errors[0]);
    /// ```
    pub fn fit_each_pass<'a>(
        &mut self,
        x: impl Into<MatRef<'a, F>>,
        after_pass: impl FnMut(&Self, usize) -> bool,
    ) -> Result<FitReport> {
        self.fit_passes(x.into(), None, |_, _| {}, after_pass)
    }

    /// [`fit`](Self::fit), returning the codes each row got in the last pass along with
    /// the report: the codes the fit produced (each batch's, solved against the dictionary
    /// of its time), not a second solve against the final dictionary (that is
    /// [`transform`](Self::transform)).
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((300, 6), |(i, j)| ((i * 5 + j) % 7) as f64 + 0.5);
    /// let mut model = OnlineNmf::<f64>::new(NmfParams::new(3).batch_size(100).check().unwrap());
    /// let (w, report) = model.fit_transform(&x).unwrap();
    /// assert_eq!(w.dim(), (300, 3));
    /// assert_eq!(report.batches as usize, 3 * report.passes);
    /// ```
    pub fn fit_transform<'a>(
        &mut self,
        x: impl Into<MatRef<'a, F>>,
    ) -> Result<(Array2<F>, FitReport)> {
        self.fit_transform_until(x, None)
    }

    /// [`fit`](Self::fit), checking `stop` before every batch: once it is set, the fit
    /// returns [`Error::Interrupted`] with the batches before
    /// applied (a caller's Ctrl-C, a time limit).
    ///
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use ndarray::Array2;
    /// use streamnmf::{Error, NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((100, 4), |(i, j)| ((i + j) % 3) as f64 + 0.5);
    /// let mut model = OnlineNmf::<f64>::new(NmfParams::new(2).check().unwrap());
    /// let stop = AtomicBool::new(true);
    /// assert!(matches!(model.fit_until(&x, &stop), Err(Error::Interrupted { .. })));
    /// assert!(model.fit_until(&x, &AtomicBool::new(false)).is_ok());
    /// ```
    pub fn fit_until<'a>(
        &mut self,
        x: impl Into<MatRef<'a, F>>,
        stop: &AtomicBool,
    ) -> Result<FitReport> {
        self.fit_passes(x.into(), Some(stop), |_, _| {}, |_, _| true)
    }

    /// [`fit_transform`](Self::fit_transform), stopping as [`fit_until`](Self::fit_until)
    /// does when `stop` is given and set.
    pub fn fit_transform_until<'a>(
        &mut self,
        x: impl Into<MatRef<'a, F>>,
        stop: Option<&AtomicBool>,
    ) -> Result<(Array2<F>, FitReport)> {
        let x = x.into();
        let mut w = Array2::zeros((x.nrows(), self.state.params.rank()));
        let report = self.fit_passes(
            x,
            stop,
            |start, codes| {
                w.slice_mut(s![start..start + codes.nrows(), ..])
                    .assign(&codes);
            },
            |_, _| true,
        )?;
        Ok((w, report))
    }

    /// The passes of `fit`; `codes` sees each batch's first row and codes, `after_pass`
    /// the model after each pass (and stops the fit by returning `false`).
    fn fit_passes(
        &mut self,
        x: MatRef<F>,
        stop: Option<&AtomicBool>,
        mut codes: impl FnMut(usize, ArrayView2<F>),
        mut after_pass: impl FnMut(&Self, usize) -> bool,
    ) -> Result<FitReport> {
        // Validate everything before discarding any state.
        let rule = self.value_rule();
        let x = Valid::check(x, 0, rule, self.threads)?.observed(rule);
        let x = x.valid();
        let mut params = self.state.params.clone();
        if !params.batch_size_is_set() {
            let dense = matches!(x.view(), MatRef::Dense(_));
            let (loss, mode, k) = (params.loss(), params.unobserved(), params.rank());
            let shape = super::options::InputShape {
                rows: Some(x.nrows() as u64),
                stored: Some(x.view().nnz() as u64),
                width: Some(x.ncols() as u64),
            };
            if let Some(rows) = super::options::default_batch_rows(loss, mode, dense, k, || shape) {
                params = params.into_builder().batch_size(rows).check()?;
            }
        }
        let mut fresh = Self::new(params).with_threads(self.threads);
        let (n, b) = (x.nrows(), fresh.state.params.batch_size());
        fresh.ensure_dictionary(x.slice_rows(0..b.min(n)))?;
        *self = fresh;
        let p = &self.state.params;
        let sample = (p.max_passes() > 1 && p.pass_tol() > 0.0).then(|| {
            let mut s = RowSample::new(convergence::sample_stride(Some(n as u64)));
            s.offer(x.view(), &Origin::default(), 0);
            s
        });
        let sample = sample.and_then(RowSample::finish);
        if self.state.params.max_passes() > 1 {
            self.keep_pass_statistics(Some(n as u64));
        }
        let mut converged = false;
        for pass in 0..self.state.params.max_passes() {
            if pass > 0 {
                self.start_pass();
            }
            for start in (0..n).step_by(b) {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    self.drop_pass_statistics();
                    return Err(Error::Interrupted { checkpoint: None });
                }
                let xb = x.slice_rows(start..(start + b).min(n));
                let (h, learnt) = (self.components()?, self.learnt(pass as u64));
                let solved = solve_batch(&self.state.params, h, xb, self.threads, learnt);
                codes(start, solved.codes.w.view());
                self.absorb(solved, xb)
                    .map_err(|e| e.counted_from(start as u64))?;
            }
            // The pass is complete: close it so `after_pass` sees it in the history.
            converged = self.close_pass(sample.as_ref())?;
            if !after_pass(self, pass) || converged {
                break;
            }
        }
        self.drop_pass_statistics();
        Ok(FitReport {
            passes: self.state.passes as usize,
            batches: self.state.batches,
            pass_losses: self.state.history.clone(),
            sample_losses: self.state.sample_losses.clone(),
            converged,
        })
    }
}
