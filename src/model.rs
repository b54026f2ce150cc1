//! The online NMF model: `partial_fit` one batch at a time, `fit` several passes in memory,
//! `transform` new rows with the dictionary fixed.

use ndarray::{s, Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::MatRef;
use crate::codes::{self, Codes, Prepared};
use crate::dictionary::{Contribution, Dictionary, Statistics};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::initial_dictionary;
use crate::loss::divergence;
use crate::parallel;
use crate::params::ValidParams;

/// What one `partial_fit` did. The loss is measured on the batch against the dictionary
/// *before* the batch updates it (a progressive-validation loss).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// 0-based sequence number of the batch in the model's life.
    pub seq: u64,
    /// Rows in the batch.
    pub rows: usize,
    /// `D(X_b | W_b H)`, summed over the batch's entries.
    pub loss: f64,
    /// Most inner iterations any row's code solve took.
    pub code_iterations: usize,
    /// Whether every row's codes met the tolerance.
    pub codes_converged: bool,
    /// Sweeps of the dictionary update.
    pub dict_sweeps: usize,
    /// Components re-seeded because they were dead.
    pub reseeded: Vec<usize>,
}

/// What `fit` did. Not converging within `max_passes` is reported here, not an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Passes made.
    pub passes: usize,
    /// Batches processed.
    pub batches: u64,
    /// Mean loss per row in each pass (progressive: each batch against the H before it).
    pub pass_losses: Vec<f64>,
    /// True when a pass improved the mean loss by less than the pass tolerance.
    pub converged: bool,
}

/// A loss over a whole data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    /// `D(X | W H)` summed over all entries, with W the optimal codes for the current H.
    pub loss: f64,
    /// Rows evaluated.
    pub rows: u64,
    /// `‖X − WH‖_F / ‖X‖_F` (Frobenius loss only).
    pub relative_error: Option<f64>,
}

/// A batch's codes and its contribution to the statistics: the output of the solver step,
/// which needs only `H` (so it can run on another thread than the dictionary update).
#[derive(Clone, Debug)]
pub struct Solved<F> {
    /// The codes.
    pub codes: Codes<F>,
    /// What the batch adds to the statistics.
    pub contribution: Contribution<F>,
}

/// The solver step: codes of `x` against `h`, and their contribution.
pub fn solve_batch<F: Float>(params: &ValidParams, h: ArrayView2<F>, x: MatRef<F>) -> Solved<F> {
    solve_batch_threads(params, h, x, 1)
}

/// [`solve_batch`] on up to `threads` threads. The batch is cut into fixed chunks of
/// [`CHUNK_ROWS`](crate::parallel::CHUNK_ROWS) rows whose results are combined in order,
/// so the answer is bitwise the same for every thread count.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::{solve_batch_threads, NmfParams};
/// let params = NmfParams::new(2).check().unwrap();
/// let h = ndarray::array![[1.0f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let x = Array2::from_shape_fn((600, 3), |(i, j)| ((i + j) % 4) as f64);
/// let one = solve_batch_threads(&params, h.view(), (&x).into(), 1);
/// let two = solve_batch_threads(&params, h.view(), (&x).into(), 2);
/// assert_eq!(one.codes.w, two.codes.w);
/// assert_eq!(one.contribution.second, two.contribution.second);
/// ```
pub fn solve_batch_threads<F: Float>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: MatRef<F>,
    threads: usize,
) -> Solved<F> {
    let (codes, parts) = solve_chunks(params, h, x, threads, |xc, w| {
        Contribution::new(params.loss_kind(), xc, w, h)
    });
    let mut parts = parts.into_iter();
    let mut contribution = parts
        .next()
        .unwrap_or_else(|| Contribution::new(params.loss_kind(), x, codes.w.view(), h));
    for part in parts {
        contribution.add(&part);
    }
    Solved {
        codes,
        contribution,
    }
}

/// The codes of `x` against `h` on up to `threads` threads, in fixed chunks (see
/// [`solve_batch_threads`]): what the pipeline's `transform` runs per batch.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::{codes_threads, NmfParams};
/// let params = NmfParams::new(2).check().unwrap();
/// let h = ndarray::array![[1.0f32, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let x = Array2::from_shape_fn((700, 3), |(i, j)| ((i * j) % 3) as f32);
/// let codes = codes_threads(&params, h.view(), (&x).into(), 2);
/// assert_eq!(codes.w.dim(), (700, 2));
/// assert!(codes.w.iter().all(|&v| v >= 0.0));
/// ```
pub fn codes_threads<F: Float>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: MatRef<F>,
    threads: usize,
) -> Codes<F> {
    solve_chunks(params, h, x, threads, |_, _| ()).0
}

/// Solves `x` chunk by chunk on up to `threads` threads; `extra` runs on each chunk and
/// its codes while the chunk is still in cache. Returns the codes of the whole batch and
/// the `extra` results in chunk order.
fn solve_chunks<F: Float, T: Send>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: MatRef<F>,
    threads: usize,
    extra: impl Fn(MatRef<F>, ArrayView2<F>) -> T + Sync,
) -> (Codes<F>, Vec<T>) {
    crate::blas::single_threaded();
    let prep = Prepared::new(params, h);
    let ranges = parallel::batch_chunks(x, h.nrows());
    if ranges.len() <= 1 {
        let codes = codes::solve_prepared(params, &prep, h, x, None);
        let t = extra(x, codes.w.view());
        return (codes, vec![t]);
    }
    let parts = parallel::map_indexed(ranges.len(), threads, |c| {
        let xc = x.slice_rows(ranges[c].clone());
        let codes = codes::solve_prepared(params, &prep, h, xc, None);
        let t = extra(xc, codes.w.view());
        (codes, t)
    });
    let mut w = Array2::zeros((x.nrows(), h.nrows()));
    let mut stats = codes::SolveStats {
        iterations: 0,
        converged: true,
    };
    let mut loss = 0.0;
    let mut extras = Vec::with_capacity(parts.len());
    for (range, (codes, t)) in ranges.into_iter().zip(parts) {
        w.slice_mut(s![range, ..]).assign(&codes.w);
        stats.iterations = stats.iterations.max(codes.stats.iterations);
        stats.converged &= codes.stats.converged;
        loss += codes.loss;
        extras.push(t);
    }
    (Codes { w, stats, loss }, extras)
}

/// Online (mini-batch) NMF: X (n × p) ≈ W (n × k) · H (k × p).
///
/// Each batch is solved on all cores by default ([`with_threads`](Self::with_threads));
/// creating a model sets OpenBLAS to one thread per call, process-wide, unless
/// `OPENBLAS_NUM_THREADS` is set (see [`crate::blas`] for why).
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::{NmfParams, OnlineNmf};
/// // A 200 x 6 matrix of rank 2.
/// let w = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 5) as f64 + 0.5);
/// let h = ndarray::array![[1.0, 0.0, 2.0, 0.0, 1.0, 0.5], [0.0, 1.0, 0.5, 2.0, 0.0, 1.0]];
/// let x = w.dot(&h);
/// let params = NmfParams::new(2).batch_size(50).max_passes(30).seed(1).check().unwrap();
/// let mut model = OnlineNmf::<f64>::new(params);
/// let report = model.fit(&x).unwrap();
/// assert!(report.passes >= 1);
/// let fit = model.loss(&x).unwrap();
/// assert!(fit.relative_error.unwrap() < 1e-3, "{fit:?}");
/// let codes = model.transform(&x).unwrap();
/// assert_eq!(codes.dim(), (200, 2));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "F: Deserialize<'de> + Clone"))]
pub struct OnlineNmf<F> {
    params: ValidParams,
    dict: Option<Dictionary<F>>,
    rng: ChaCha8Rng,
    batches: u64,
    rows: u64,
    passes: u64,
    pass_loss: f64,
    pass_rows: u64,
    history: Vec<f64>,
    #[serde(skip)]
    threads: Threads,
}

/// Threads for one batch's solve. An execution setting, not model state: never saved,
/// and ignored when models are compared, since no result depends on it.
#[derive(Clone, Copy, Debug)]
struct Threads(usize);

impl Default for Threads {
    fn default() -> Self {
        Self(parallel::default_threads())
    }
}

impl PartialEq for Threads {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<F: Float> OnlineNmf<F> {
    /// A model with no dictionary yet: the first batch initializes it.
    pub fn new(params: ValidParams) -> Self {
        crate::blas::single_threaded();
        Self {
            rng: ChaCha8Rng::seed_from_u64(params.seed_value()),
            params,
            dict: None,
            batches: 0,
            rows: 0,
            passes: 0,
            pass_loss: 0.0,
            pass_rows: 0,
            history: Vec::new(),
            threads: Threads::default(),
        }
    }

    /// Solves each batch on up to `threads` threads (default: all cores). The model
    /// learned is bitwise the same for any thread count (see [`solve_batch_threads`]).
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((1000, 6), |(i, j)| ((i * 3 + j) % 5) as f32);
    /// let params = NmfParams::new(2).max_passes(3).check().unwrap();
    /// let mut one = OnlineNmf::<f32>::new(params.clone());
    /// let mut two = OnlineNmf::<f32>::new(params).with_threads(2);
    /// one.fit(&x).unwrap();
    /// two.fit(&x).unwrap();
    /// assert_eq!(one, two);
    /// assert_eq!(one.components().unwrap(), two.components().unwrap());
    /// ```
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.set_threads(threads);
        self
    }

    /// Sets the threads per batch (at least 1); see [`with_threads`](Self::with_threads).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = Threads(threads.max(1));
    }

    /// Threads per batch.
    pub fn threads(&self) -> usize {
        self.threads.0
    }

    /// The parameters.
    pub fn params(&self) -> &ValidParams {
        &self.params
    }

    /// The dictionary H (k × p), once the model has seen data.
    pub fn components(&self) -> Result<ArrayView2<'_, F>> {
        self.dict
            .as_ref()
            .map(|d| d.components())
            .ok_or(Error::NotFitted)
    }

    /// The dictionary with its statistics, once the model has seen data.
    pub fn dictionary(&self) -> Option<&Dictionary<F>> {
        self.dict.as_ref()
    }

    /// The statistics accumulated in the current pass.
    pub fn statistics(&self) -> Option<&Statistics<F>> {
        self.dict.as_ref().map(|d| d.statistics())
    }

    /// Batches seen.
    pub fn batches_seen(&self) -> u64 {
        self.batches
    }

    /// Rows seen (over all passes).
    pub fn rows_seen(&self) -> u64 {
        self.rows
    }

    /// Mean loss per row of every completed pass.
    pub fn loss_history(&self) -> &[f64] {
        &self.history
    }

    /// Validates a batch against the model (values, width) and, on the very first batch,
    /// initializes the dictionary from it. `first_row` is the batch's global row index,
    /// used in errors.
    pub fn admit(&mut self, x: MatRef<F>, first_row: u64) -> Result<()> {
        if let Some(d) = &self.dict {
            let p = d.components().ncols();
            if x.ncols() != p {
                return Err(Error::WidthMismatch {
                    expected: p,
                    found: x.ncols(),
                });
            }
        }
        parallel::validate(x, first_row, self.params.loss_kind().beta(), self.threads.0)?;
        if self.dict.is_none() {
            let h = initial_dictionary(
                self.params.effective_init(),
                x,
                self.params.rank(),
                &mut self.rng,
            )?;
            self.dict = Some(Dictionary::new(h, self.params.loss_kind()));
        }
        Ok(())
    }

    /// Folds a solved batch into the statistics and updates H: the dictionary-updater
    /// step. `x` must be the batch that `solved` came from.
    pub fn absorb(&mut self, solved: Solved<F>, x: MatRef<F>) -> Result<BatchReport> {
        let dict = self.dict.as_mut().ok_or(Error::NotFitted)?;
        let Solved {
            codes,
            contribution,
        } = solved;
        let update =
            dict.apply_threads(contribution, x, &self.params, &mut self.rng, self.threads.0);
        let report = BatchReport {
            seq: self.batches,
            rows: x.nrows(),
            loss: codes.loss,
            code_iterations: codes.stats.iterations,
            codes_converged: codes.stats.converged,
            dict_sweeps: update.sweeps,
            reseeded: update.reseeded,
        };
        self.batches += 1;
        self.rows += x.nrows() as u64;
        self.pass_loss += codes.loss;
        self.pass_rows += x.nrows() as u64;
        tracing::debug!(
            seq = report.seq,
            rows = report.rows,
            loss = report.loss,
            code_iters = report.code_iterations,
            sweeps = report.dict_sweeps,
            "batch"
        );
        Ok(report)
    }

    /// Learns from one mini-batch: solves its codes against the current H, folds them into
    /// the statistics and updates H.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
    /// let x = Array2::from_shape_fn((64, 5), |(i, j)| ((i + j) % 3) as f32);
    /// let report = model.partial_fit(&x).unwrap();
    /// assert_eq!((report.seq, report.rows), (0, 64));
    /// assert!(report.loss.is_finite());
    /// ```
    pub fn partial_fit<'a>(&mut self, x: impl Into<MatRef<'a, F>>) -> Result<BatchReport> {
        let x = x.into();
        self.admit(x, self.rows)?;
        let h = self.components()?;
        let solved = solve_batch_threads(&self.params, h, x, self.threads.0);
        self.absorb(solved, x)
    }

    /// Marks the start of another pass over the same data: closes the current pass in the
    /// loss history and, with `purge_passes`, starts fresh statistics (see
    /// [`crate::dictionary`]).
    pub fn start_pass(&mut self) {
        self.end_pass();
        let purge = self.params.purges_passes();
        if let Some(d) = self.dict.as_mut() {
            d.start_pass(purge);
        }
    }

    /// Closes the current pass in the loss history (its mean loss per row) without touching
    /// the statistics; a no-op when the pass saw no rows.
    pub fn end_pass(&mut self) {
        if self.pass_rows > 0 {
            self.history.push(self.pass_loss / self.pass_rows as f64);
            self.passes += 1;
        }
        self.pass_loss = 0.0;
        self.pass_rows = 0;
    }

    /// Fits from scratch on an in-memory matrix: up to `max_passes` passes of mini-batches
    /// of `batch_size` rows, stopping early when a pass improves the mean loss by less than
    /// `pass_tol`. Any previous state is discarded (use `partial_fit` to keep learning).
    pub fn fit<'a>(&mut self, x: impl Into<MatRef<'a, F>>) -> Result<FitReport> {
        let x = x.into();
        // Validate everything before discarding any state.
        parallel::validate(x, 0, self.params.loss_kind().beta(), self.threads.0)?;
        let mut fresh = Self::new(self.params.clone()).with_threads(self.threads.0);
        let n = x.nrows();
        let b = self.params.batch_rows();
        fresh.admit(x.slice_rows(0..b.min(n)), 0)?;
        *self = fresh;
        let mut converged = false;
        for pass in 0..self.params.passes() {
            if pass > 0 {
                self.start_pass();
            }
            for start in (0..n).step_by(b) {
                let xb = x.slice_rows(start..(start + b).min(n));
                let h = self.components()?;
                let solved = solve_batch_threads(&self.params, h, xb, self.threads.0);
                self.absorb(solved, xb)?;
            }
            let mean = self.pass_loss / self.pass_rows.max(1) as f64;
            if let Some(&prev) = self.history.last() {
                let improvement = (prev - mean) / prev.max(f64::MIN_POSITIVE);
                tracing::info!(pass, mean_loss = mean, improvement, "pass");
                if improvement.abs() < self.params.pass_tolerance() {
                    converged = true;
                    break;
                }
            } else {
                tracing::info!(pass, mean_loss = mean, "pass");
            }
        }
        self.end_pass();
        Ok(FitReport {
            passes: self.passes as usize,
            batches: self.batches,
            pass_losses: self.history.clone(),
            converged,
        })
    }

    /// Codes W (n × k) of new rows with H fixed (the model does not change): folds in new
    /// users or audio frames. Works in fixed row chunks on the model's threads.
    pub fn transform<'a>(&self, x: impl Into<MatRef<'a, F>>) -> Result<Array2<F>> {
        Ok(self.codes_in_chunks(x.into(), None, false)?.0)
    }

    /// Like [`transform`](Self::transform), warm-started from given codes `w0` (n × k).
    pub fn transform_from<'a>(
        &self,
        x: impl Into<MatRef<'a, F>>,
        w0: ArrayView2<F>,
    ) -> Result<Array2<F>> {
        let x = x.into();
        let k = self.params.rank();
        if w0.dim() != (x.nrows(), k) {
            return Err(Error::CodesShape {
                expected: k,
                found: w0.ncols(),
            });
        }
        Ok(self.codes_in_chunks(x, Some(w0), false)?.0)
    }

    /// `W H`: the reconstruction of rows from their codes.
    pub fn inverse_transform(&self, w: ArrayView2<F>) -> Result<Array2<F>> {
        let h = self.components()?;
        if w.ncols() != h.nrows() {
            return Err(Error::CodesShape {
                expected: h.nrows(),
                found: w.ncols(),
            });
        }
        Ok(w.dot(&h))
    }

    /// The loss over a whole data set, with each row's optimal codes for the current H.
    pub fn loss<'a>(&self, x: impl Into<MatRef<'a, F>>) -> Result<LossReport> {
        let x = x.into();
        let (_, loss) = self.codes_in_chunks(x, None, true)?;
        let relative_error = (self.params.loss_kind().beta() == 2.0)
            .then(|| (2.0 * loss / x.squared_norm().max(f64::MIN_POSITIVE)).sqrt());
        Ok(LossReport {
            loss,
            rows: x.nrows() as u64,
            relative_error,
        })
    }

    /// Codes of `x` chunk by chunk, and the exact total loss at them.
    fn codes_in_chunks(
        &self,
        x: MatRef<F>,
        w0: Option<ArrayView2<F>>,
        with_loss: bool,
    ) -> Result<(Array2<F>, f64)> {
        let h = self.components()?;
        if x.ncols() != h.ncols() {
            return Err(Error::WidthMismatch {
                expected: h.ncols(),
                found: x.ncols(),
            });
        }
        parallel::validate(x, 0, self.params.loss_kind().beta(), self.threads.0)?;
        let ranges = parallel::batch_chunks(x, h.nrows());
        let prep = Prepared::new(&self.params, h);
        let beta = self.params.loss_kind().beta();
        let parts = parallel::map_indexed(ranges.len(), self.threads.0, |c| {
            let r = ranges[c].clone();
            let xb = x.slice_rows(r.clone());
            let warm = w0.map(|w0| w0.slice(s![r, ..]).to_owned());
            let Codes { w: wb, .. } = codes::solve_prepared(&self.params, &prep, h, xb, warm);
            // The exact divergence, not the solver's expanded form (which loses digits to
            // cancellation near a perfect fit); only when asked for.
            let loss = if with_loss {
                divergence(xb, wb.view(), h, beta)
            } else {
                0.0
            };
            (wb, loss)
        });
        let mut w = Array2::zeros((x.nrows(), h.nrows()));
        let mut loss = 0.0;
        for (r, (wb, l)) in ranges.into_iter().zip(parts) {
            w.slice_mut(s![r, ..]).assign(&wb);
            loss += l;
        }
        Ok((w, loss))
    }
}
