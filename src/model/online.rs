//! The online NMF model: its state, construction, and `partial_fit` one batch at a time
//! (`fit`, several passes in memory, is in `passes.rs`; `transform` and the loss over a
//! data set, with the dictionary fixed, in `apply.rs`).

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::codes::Learnt;
use super::convergence;
use super::dead_atoms::RowPool;
use super::dictionary::{check_size, floor_start, Dictionary};
use super::init::initial_dictionary;
use super::loss::Loss;
use super::options::{Init, Unobserved};
use super::params::ValidParams;
use super::reports::BatchReport;
use super::statistics::Contribution;
use super::step::{narrow_overflow, solve_batch, CodesSummary, Solved};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::parallel::default_threads;
use crate::matrix::{MatRef, Matrix, Observed, Valid, ValueRule};

/// What [`OnlineNmf::check`] does with sparse data wider than the dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wider {
    /// Learning: the dictionary grows to the new features.
    Grow,
    /// Codes of new rows: entries of unknown features are dropped.
    Ignore,
}

/// Everything a model file holds about a model: parameters, dictionary and statistics,
/// the random generator and the counters. Threads are not state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct State<F> {
    pub(crate) params: ValidParams,
    pub(crate) dict: Option<Dictionary<F>>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) batches: u64,
    pub(crate) rows: u64,
    pub(crate) passes: u64,
    pub(crate) pass_loss: f64,
    pub(crate) pass_rows: u64,
    pub(crate) history: Vec<f64>,
    /// The convergence sample's loss after each pass of a multi-pass fit.
    pub(crate) sample_losses: Vec<f64>,
}

/// Online (mini-batch) NMF: X (n × p) ≈ W (n × k) · H (k × p).
///
/// Each batch is solved on all cores by default ([`with_threads`](Self::with_threads)).
/// The model learned depends on the data, the parameters and the seed only: not on the
/// thread count, and not on anything else in the process. Two models are equal (`==`)
/// when their state is; the thread count is an execution setting and is not compared.
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
#[derive(Clone, Debug)]
pub struct OnlineNmf<F> {
    pub(super) state: State<F>,
    pub(super) threads: usize,
}

impl<F: PartialEq> PartialEq for OnlineNmf<F> {
    /// The state (parameters, dictionary, statistics, generator, counters); not the
    /// thread count, which never changes a result.
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl<F: Float> OnlineNmf<F> {
    /// A model with no dictionary yet: the first batch initializes it.
    pub fn new(params: ValidParams) -> Self {
        Self::from_state(State {
            rng: ChaCha8Rng::seed_from_u64(params.seed()),
            params,
            dict: None,
            batches: 0,
            rows: 0,
            passes: 0,
            pass_loss: 0.0,
            pass_rows: 0,
            history: Vec::new(),
            sample_losses: Vec::new(),
        })
    }

    /// A model whose dictionary is `h` (k × p, non-negative and finite), with empty
    /// statistics: to fold rows in against a known dictionary right away, or to keep
    /// learning from it with `partial_fit`.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{Error, NmfParams, OnlineNmf};
    /// let params = NmfParams::new(2).check().unwrap();
    /// let h = array![[1.0f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
    /// let model = OnlineNmf::from_components(params.clone(), h.clone()).unwrap();
    /// let w = model.transform(&array![[2.0, 3.0, 5.0]]).unwrap();
    /// assert!((w[[0, 0]] - 2.0).abs() < 1e-6 && (w[[0, 1]] - 3.0).abs() < 1e-6);
    /// let bad = OnlineNmf::from_components(params, -h);
    /// assert!(matches!(bad, Err(Error::InitValue { .. })));
    /// ```
    pub fn from_components(params: ValidParams, h: Array2<F>) -> Result<Self> {
        let (k, p) = h.dim();
        if k != params.rank() || p < k {
            return Err(Error::InitShape {
                rank: params.rank(),
                width: p,
                found_rows: k,
                found_cols: p,
            });
        }
        if let Some(((row, col), &v)) = h
            .indexed_iter()
            .find(|(_, v)| !(v.is_finite() && **v >= F::zero()))
        {
            return Err(Error::InitValue {
                row,
                col,
                value: v.as_f64(),
            });
        }
        let (loss, mode) = (params.loss(), params.unobserved());
        let mut model = Self::new(params);
        model.state.dict = Some(Dictionary::new(h, loss, mode));
        Ok(model)
    }

    /// One model whose dictionary stacks the parts' atoms, in order: codes against it
    /// explain a row by every part at once (supervised source separation, Smaragdis et al.
    /// 2007). The parts must share their loss, mode and width; the settings are the first
    /// part's, with the rank summed, and the statistics start empty.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let params = |k| NmfParams::new(k).check().unwrap();
    /// let a = OnlineNmf::from_components(params(1), array![[1.0f64, 1.0, 0.0]]).unwrap();
    /// let b = OnlineNmf::from_components(params(1), array![[0.0f64, 0.0, 2.0]]).unwrap();
    /// let ab = OnlineNmf::compose(&[&a, &b]).unwrap();
    /// assert_eq!(ab.params().rank(), 2);
    /// let w = ab.transform(&array![[3.0, 3.0, 4.0]]).unwrap();
    /// assert!((w[[0, 0]] - 3.0).abs() < 1e-6 && (w[[0, 1]] - 2.0).abs() < 1e-6);
    /// ```
    pub fn compose(parts: &[&OnlineNmf<F>]) -> Result<Self> {
        let first = parts.first().ok_or(Error::NotFitted)?;
        let mut atoms = Vec::with_capacity(parts.len());
        for (i, m) in parts.iter().enumerate() {
            let (a, b) = (first.params(), m.params());
            if (a.loss(), a.unobserved()) != (b.loss(), b.unobserved()) {
                return Err(Error::ComposeMismatch {
                    part: i,
                    what: format!(
                        "loss {} ({:?}), the first part has {} ({:?})",
                        b.loss(),
                        b.unobserved(),
                        a.loss(),
                        a.unobserved()
                    ),
                });
            }
            let h = m.components()?;
            let p0 = first.components()?.ncols();
            if h.ncols() != p0 {
                return Err(Error::ComposeMismatch {
                    part: i,
                    what: format!("{} features, the first part has {p0}", h.ncols()),
                });
            }
            atoms.push(h);
        }
        let h = ndarray::concatenate(ndarray::Axis(0), &atoms).expect("same widths");
        let params = first
            .params()
            .clone()
            .into_builder()
            .rank(h.nrows())
            .init(Init::Auto)
            .fixed_components([])
            .check()?;
        let mut model = Self::from_components(params, h)?;
        model.threads = first.threads;
        Ok(model)
    }

    pub(crate) fn from_state(state: State<F>) -> Self {
        Self {
            state,
            threads: default_threads(),
        }
    }

    pub(crate) fn state(&self) -> &State<F> {
        &self.state
    }

    /// Solves each batch on up to `threads` threads (default: all cores). The model
    /// learned is bitwise the same for any thread count.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((1000, 6), |(i, j)| ((i * 3 + j) % 5) as f32);
    /// let params = NmfParams::new(2).max_passes(3).check().unwrap();
    /// let mut one = OnlineNmf::<f32>::new(params.clone()).with_threads(1);
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
        self.threads = threads.max(1);
    }

    /// Replaces the parameters that only say how the model is fitted: the batch size,
    /// the passes of `fit` and their tolerance, and the solvers' limits. Parameters that
    /// say what the model is (rank, loss, solver, forget, decay, purging, regularization,
    /// init, seed) must stay as they are.
    ///
    /// ```
    /// use streamnmf::{Error, Loss, NmfParams, OnlineNmf};
    /// let mut m = OnlineNmf::<f32>::new(NmfParams::new(3).check().unwrap());
    /// m.set_params(NmfParams::new(3).batch_size(64).code_tol(1e-6).check().unwrap()).unwrap();
    /// assert_eq!(m.params().batch_size(), 64);
    /// let kl = NmfParams::new(3).loss(Loss::KullbackLeibler).check().unwrap();
    /// assert!(matches!(m.set_params(kl), Err(Error::ModelParamChange("loss"))));
    /// ```
    pub fn set_params(&mut self, params: ValidParams) -> Result<()> {
        let old = &self.state.params;
        let checks: [(&'static str, bool); 10] = [
            ("rank", old.rank() == params.rank()),
            ("loss", old.loss() == params.loss()),
            ("solver", old.solver() == params.solver()),
            ("forget", old.forget() == params.forget()),
            ("decay", old.decay() == params.decay()),
            ("purge_passes", old.purge_passes() == params.purge_passes()),
            ("alpha_w", old.alpha_w() == params.alpha_w()),
            ("alpha_h", old.alpha_h() == params.alpha_h()),
            ("l1_ratio", old.l1_ratio() == params.l1_ratio()),
            (
                "seed",
                old.seed() == params.seed() && old.init() == params.init(),
            ),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, same)| !same) {
            return Err(Error::ModelParamChange(name));
        }
        self.state.params = params;
        Ok(())
    }

    /// Threads per batch.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The parameters.
    pub fn params(&self) -> &ValidParams {
        &self.state.params
    }

    /// The dictionary H (k × p), once the model has seen data.
    ///
    /// ```
    /// use streamnmf::{Error, NmfParams, OnlineNmf};
    /// let model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
    /// assert!(matches!(model.components(), Err(Error::NotFitted)));
    /// ```
    pub fn components(&self) -> Result<ArrayView2<'_, F>> {
        self.state
            .dict
            .as_ref()
            .map(|d| d.components())
            .ok_or(Error::NotFitted)
    }

    /// Batches learned from over the model's life.
    pub fn batches_seen(&self) -> u64 {
        self.state.batches
    }

    /// Rows learned from over the model's life (over all passes).
    pub fn rows_seen(&self) -> u64 {
        self.state.rows
    }

    /// Mean loss per row of every completed pass.
    pub fn loss_history(&self) -> &[f64] {
        &self.state.history
    }

    /// The loss of the convergence sample after each pass of the multi-pass fits that
    /// tested for convergence: a fixed sample of about 2048 of the input's rows (a quarter
    /// of a smaller input), scored against the dictionary at the end of each pass with
    /// fresh codes, solved as the codes the dictionary learns from are.
    /// A fit stops when a pass improves it by less than
    /// [`pass_tol`](crate::NmfParams::pass_tol).
    ///
    /// ```
    /// use ndarray::Array2;
    /// use streamnmf::{NmfParams, OnlineNmf};
    /// let x = Array2::from_shape_fn((300, 6), |(i, j)| ((i * (j + 1)) % 7) as f64 + 0.5);
    /// let p = NmfParams::new(2).batch_size(50).max_passes(40).check().unwrap();
    /// let mut model = OnlineNmf::<f64>::new(p);
    /// let report = model.fit(&x).unwrap();
    /// let losses = model.sample_losses();
    /// assert_eq!(losses.len(), report.passes);
    /// if report.converged {
    ///     let [.., a, b] = losses else { unreachable!() };
    ///     assert!((a - b) / a < 1e-3);
    /// }
    /// ```
    pub fn sample_losses(&self) -> &[f64] {
        &self.state.sample_losses
    }

    /// Ends the current pass (as [`end_pass`](Self::end_pass)); when it had rows and a
    /// convergence `sample` is given, scores the sample against the dictionary. Returns
    /// whether the fit has converged: what a resumed fit that already stopped finds again.
    pub(crate) fn close_pass(&mut self, sample: Option<&Matrix<F>>) -> Result<bool> {
        if self.state.pass_rows > 0 {
            self.end_pass();
            self.score_pass(sample)?;
        }
        // A fit whose window schedule has stages left does not stop: its next stage
        // weighs more of the data.
        let settled = !self.window_schedule()
            || convergence::window_stage(&self.state.sample_losses)
                >= convergence::WINDOW_STAGES.len();
        Ok(settled
            && convergence::converged(&self.state.sample_losses, self.state.params.pass_tol()))
    }

    /// Whether this fit follows the window schedule ([`convergence::pass_decay`]): the
    /// Frobenius loss at its default decay, in a fit that scored its convergence sample
    /// after every pass (several passes with a pass tolerance).
    fn window_schedule(&self) -> bool {
        let st = &self.state;
        st.params.loss() == Loss::Frobenius
            && !st.params.decay_given()
            && st.passes > 0
            && st.sample_losses.len() as u64 == st.passes
    }

    /// The past-data decay of the current pass: the parameter's, or under the window
    /// schedule the decay of this pass's stage.
    pub(crate) fn pass_decay(&self) -> f64 {
        let st = &self.state;
        if self.window_schedule() {
            // Rows a pass (every pass of a fit reads the same rows) over the rank, from the
            // passes closed: the decay holds for the whole pass, as replay needs to take
            // out each kept contribution at the weight it was given.
            let closed = st.rows - st.pass_rows;
            let per_atom = closed as f64 / st.passes as f64 / st.params.rank() as f64;
            convergence::pass_decay(st.params.decay(), st.passes, &st.sample_losses, per_atom)
        } else {
            st.params.decay()
        }
    }

    /// Logs the pass just closed and scores the convergence sample, if any.
    fn score_pass(&mut self, sample: Option<&Matrix<F>>) -> Result<()> {
        let (pass, mean_loss) = (self.state.passes - 1, self.state.history.last().copied());
        match sample {
            Some(sample) => {
                // With the codes the dictionary learns from: the sample's loss only has to
                // move as the dictionary's does, and full-precision codes (200 updates under
                // Itakura-Saito against the 20 learned from) made scoring a 1251-row speech
                // sample cost 6 times a pass.
                let loss = self.measure(sample.view(), true)?.loss;
                self.state.sample_losses.push(loss);
                let improvement = convergence::improvement(&self.state.sample_losses);
                tracing::info!(
                    pass,
                    mean_loss,
                    sample_rows = sample.view().nrows(),
                    sample_loss = loss,
                    ?improvement,
                    "pass"
                );
            }
            None => tracing::info!(pass, mean_loss, "pass"),
        }
        Ok(())
    }

    /// The rule every batch's values must follow under this model's loss.
    pub(crate) fn value_rule(&self) -> ValueRule {
        let p = &self.state.params;
        ValueRule::for_beta(p.loss().beta())
            .reading(p.unobserved().reading())
            .with_floor(p.epsilon())
    }

    /// Checks `x`'s width against the dictionary (when there is one) and its values, and
    /// converts it to what the solvers read. Sparse data may be narrower than the
    /// dictionary (it stores nothing in the columns it lacks) or wider: new features,
    /// which `wider` grows the dictionary for (learning) or ignores (codes of new rows).
    pub(super) fn check<'a>(
        &self,
        x: MatRef<'a, F>,
        first_row: u64,
        wider: Wider,
    ) -> Result<Observed<'a, F>> {
        let rule = self.value_rule();
        let Some(p) = self.state.dict.as_ref().map(|d| d.components().ncols()) else {
            return Ok(Valid::check(x, first_row, rule, self.threads)?.observed(rule));
        };
        match x {
            MatRef::Csr(c) if c.ncols() > p && wider == Wider::Ignore => {
                let (kept, dropped) = c.first_columns(p);
                if dropped > 0 {
                    tracing::warn!(
                        entries = dropped,
                        features = c.ncols() - p,
                        "entries of features the model has not learned are ignored"
                    );
                }
                Observed::owned(kept, first_row, rule, self.threads)
            }
            MatRef::Csr(c) => {
                if c.ncols() > p {
                    let params = &self.state.params;
                    check_size::<F>(params.rank(), c.ncols(), params.loss(), params.unobserved())?;
                }
                Ok(Valid::check(x, first_row, rule, self.threads)?
                    .observed(rule)
                    .widened(p))
            }
            MatRef::Dense(_) if x.ncols() != p => Err(Error::WidthMismatch {
                expected: p,
                found: x.ncols(),
            }),
            MatRef::Dense(_) => Ok(Valid::check(x, first_row, rule, self.threads)?.observed(rule)),
        }
    }

    /// Whether a new dictionary can start on data of width `width`: the model fits in
    /// memory, the rank is at most the width, given atoms are as wide as the data and
    /// every fixed atom is a given one. What [`ensure_dictionary`](Self::ensure_dictionary)
    /// checks first, for the pipeline to check before its threads start.
    pub(crate) fn check_init(&self, width: usize) -> Result<()> {
        let p = &self.state.params;
        check_size::<F>(p.rank(), width, p.loss(), p.unobserved())?;
        super::init::check_shape(p.init(), p.rank(), width)?;
        let given = match p.init() {
            Init::Custom(h) => h.nrows(),
            _ => 0,
        };
        match p.fixed_components().iter().find(|&&a| a >= given) {
            Some(&atom) => Err(Error::FixedNotGiven { atom, given }),
            None => Ok(()),
        }
    }

    /// On the very first batch, initializes the dictionary from it.
    pub(crate) fn ensure_dictionary(&mut self, x: Valid<F>) -> Result<()> {
        if self.state.dict.is_none() {
            self.check_init(x.ncols())?;
            let p = &self.state.params;
            let (loss, mode) = (p.loss(), p.unobserved());
            let mut h =
                initial_dictionary(p.effective_init(), x, p.rank(), mode, &mut self.state.rng)?;
            if loss != Loss::Frobenius && mode == Unobserved::Zero {
                floor_start(&mut h, p.fixed_components());
            }
            self.state.dict = Some(Dictionary::new(h, loss, mode));
        }
        Ok(())
    }

    /// Folds a solved batch into the statistics and updates H: the dictionary-updater
    /// step. `x` must be the batch that `solved` came from.
    pub(crate) fn absorb(&mut self, solved: Solved<F>, x: Valid<F>) -> Result<BatchReport> {
        let Solved {
            codes,
            contribution,
        } = solved;
        let summary = match CodesSummary::of(&codes, x.nrows(), self.state.batches) {
            Ok(summary) => summary,
            Err(e) => {
                let h = self.components()?;
                return Err(narrow_overflow(e, &self.state.params, h, x));
            }
        };
        self.absorb_contribution(contribution, summary, &mut { x })
    }

    /// Folds the statistics of one or more batches (summed, in a fixed order) into the
    /// statistics and updates H; `pool` holds those batches' rows, to re-seed dead atoms
    /// from. One dictionary update, whatever the number of batches.
    pub(crate) fn absorb_contribution(
        &mut self,
        contribution: Contribution<F>,
        summary: CodesSummary,
        pool: &mut dyn RowPool<F>,
    ) -> Result<BatchReport> {
        let decay = self.pass_decay();
        let st = &mut self.state;
        let dict = st.dict.as_mut().ok_or(Error::NotFitted)?;
        let overflow = |what| Error::NumericalOverflow {
            batch: st.batches,
            what,
            element: F::NAME,
        };
        if !contribution.is_finite() {
            return Err(overflow("statistics"));
        }
        let update = dict.apply(
            contribution,
            pool,
            &st.params,
            decay,
            &mut st.rng,
            self.threads,
        )?;
        if !dict.is_finite() {
            return Err(overflow("dictionary"));
        }
        let report = BatchReport {
            seq: st.batches,
            rows: summary.rows,
            loss: summary.loss,
            code_iterations: summary.iterations,
            codes_converged: summary.converged,
            dict_sweeps: update.sweeps,
            reseeded: update.reseeded,
        };
        st.batches += 1;
        st.rows += summary.rows as u64;
        st.pass_loss += summary.loss;
        st.pass_rows += summary.rows as u64;
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

    /// Learns from one mini-batch: checks it, solves its codes against the current H,
    /// folds them into the statistics and updates H. A batch that fails the check
    /// changes nothing.
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
        let x = self.check(x.into(), self.state.rows, Wider::Grow)?;
        let x = x.valid();
        // A batch that overflows leaves the model as it was.
        let before = (self.state.dict.clone(), self.state.rng.clone());
        let result = self.ensure_dictionary(x).and_then(|()| {
            let (h, learnt) = (self.components()?, self.learnt(0));
            let solved = solve_batch(&self.state.params, h, x, self.threads, learnt);
            let first = self.state.rows;
            self.absorb(solved, x).map_err(|e| e.counted_from(first))
        });
        if result.is_err() {
            (self.state.dict, self.state.rng) = before;
        }
        result
    }

    /// How far the dictionary has learnt (its updates so far) for a batch of pass `pass`
    /// of a fit: what sets the code solver's cap ([`solve_batch`]).
    pub(crate) fn learnt(&self, pass: u64) -> Learnt {
        Learnt {
            updates: self.state.batches,
            pass,
        }
    }

    /// Marks the start of another pass over the same data: closes the current pass in the
    /// loss history and, with `purge_passes`, starts fresh statistics.
    pub(crate) fn start_pass(&mut self) {
        self.end_pass();
        let (purge, decay) = (self.state.params.purge_passes(), self.pass_decay());
        if let Some(d) = self.state.dict.as_mut() {
            d.start_pass(purge, decay);
        }
    }

    /// Before the first pass of a fit that will make several over a source that yields the
    /// same batches every pass: keeps each batch's statistics so that later passes
    /// replace them exactly (see `model::replay`), when the model allows it (Frobenius
    /// loss over every entry, forget factor 1, `purge_passes`) and, when the source's
    /// `rows` are known, they fit in [`REPLAY_BUDGET`](super::REPLAY_BUDGET) (otherwise
    /// the first pass finds out, and stops keeping them). Otherwise a no-op.
    pub(crate) fn keep_pass_statistics(&mut self, rows: Option<u64>) {
        let p = &self.state.params;
        let allowed = p.loss() == Loss::Frobenius
            && p.unobserved() == Unobserved::Zero
            && p.forget() == 1.0
            && p.purge_passes();
        let Some(d) = self.state.dict.as_mut().filter(|_| allowed) else {
            return;
        };
        let (k, width) = d.h.dim();
        let batches = rows.map(|n| n.div_ceil(p.batch_size().max(1) as u64));
        let bytes = batches.map(|b| b as f64 * (k * (k + width)) as f64 * size_of::<F>() as f64);
        if bytes.is_none_or(|b| b <= super::REPLAY_BUDGET as f64) {
            d.keep_contributions();
        }
    }

    /// The fit is over: drops kept batch statistics, which belong to its passes only.
    pub(crate) fn drop_pass_statistics(&mut self) {
        if let Some(d) = self.state.dict.as_mut() {
            d.drop_contributions();
        }
    }

    /// Closes the current pass in the loss history (its mean loss per row) without touching
    /// the statistics; a no-op when the pass saw no rows.
    pub(crate) fn end_pass(&mut self) {
        let st = &mut self.state;
        if st.pass_rows > 0 {
            st.history.push(st.pass_loss / st.pass_rows as f64);
            st.passes += 1;
        }
        st.pass_loss = 0.0;
        st.pass_rows = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NmfParams;
    use crate::synth::PlantedSpec;
    use ndarray::s;

    /// With ρ = 1 and no decay the statistics are the exact sums of the batches' WᵀW and
    /// WᵀX; otherwise, before each batch of b rows after t rows, the old statistics are
    /// scaled by `ρ (t / (t + b))^decay`.
    #[test]
    fn statistics_are_exact_sums() {
        let x = PlantedSpec::new(1024, 60, 8).seed(7).generate().x;
        for (rho, decay) in [(1.0, 0.0), (0.5, 0.0), (1.0, 8.0), (0.7, 2.5)] {
            let params = NmfParams::new(8)
                .forget(rho)
                .decay(decay)
                .seed(3)
                .check()
                .unwrap();
            let mut model = OnlineNmf::<f64>::new(params.clone());
            let (mut a, mut b) = (Array2::<f64>::zeros((8, 8)), Array2::<f64>::zeros((8, 60)));
            // Uneven batches: the scaling counts rows, not batches.
            let bounds = [0, 256, 384, 768, 1024];
            for pair in bounds.windows(2) {
                let (start, end) = (pair[0], pair[1]);
                let xb = x.slice(s![start..end, ..]);
                let obs = model
                    .check(MatRef::from(xb), start as u64, Wider::Grow)
                    .unwrap();
                let xv = obs.valid();
                model.ensure_dictionary(xv).unwrap();
                let h = model.components().unwrap();
                let solved = solve_batch(&params, h, xv, 2, model.learnt(0));
                let w = solved.codes.w.clone();
                let scale = rho * (start as f64 / end as f64).powf(decay);
                a = a * scale + w.t().dot(&w);
                b = b * scale + w.t().dot(&xb);
                model.absorb(solved, xv).unwrap();
            }
            let st = &model.state.dict.as_ref().unwrap().current;
            let close = |p: &Array2<f64>, q: &Array2<f64>| {
                p.iter()
                    .zip(q.iter())
                    .all(|(u, v)| (u - v).abs() <= 1e-10 * (1.0 + v.abs()))
            };
            assert!(close(&st.a, &a), "rho {rho}, decay {decay}: A differs");
            assert!(close(&st.b, &b), "rho {rho}, decay {decay}: B differs");
            assert_eq!(st.raw_rows, 1024);
        }
    }

    /// `fit_transform` returns the codes of the last pass, which the fit computed: close
    /// to, but not the same as, a second solve against the final dictionary.
    #[test]
    fn fit_transform_returns_the_fits_codes() {
        let x = PlantedSpec::new(900, 30, 4).seed(2).generate().x;
        let p = NmfParams::new(4)
            .batch_size(300)
            .max_passes(4)
            .pass_tol(0.0);
        let mut a = OnlineNmf::<f64>::new(p.clone().check().unwrap());
        let (w, report) = a.fit_transform(&x).unwrap();
        assert_eq!(report.passes, 4);
        let mut b = OnlineNmf::<f64>::new(p.check().unwrap());
        b.fit(&x).unwrap();
        assert_eq!(a, b, "fit_transform fits exactly as fit");
        let again = b.transform(&x).unwrap();
        let rel = (&w - &again).mapv(|v| v * v).sum().sqrt() / again.mapv(|v| v * v).sum().sqrt();
        assert!(rel > 0.0 && rel < 0.05, "{rel}");
    }

    /// An in-memory fit of dense Frobenius data with no batch size set takes
    /// [`dense_batch_rows`](crate::model::dense_batch_rows) of its rank and rows (and
    /// records it), dense data under other losses
    /// [`DENSE_BETA_BATCH`](crate::model::DENSE_BETA_BATCH); sparse data under Frobenius
    /// [`sparse_batch_rows`](crate::model::sparse_batch_rows) of its shape, under KL the
    /// mode's 1024; a set size is kept.
    #[test]
    fn in_memory_fit_sizes_dense_batches() {
        let x = PlantedSpec::new(3000, 30, 4).seed(2).generate().x;
        let fit = |p: NmfParams, x: MatRef<f64>| {
            let mut m = OnlineNmf::<f64>::new(p.max_passes(1).check().unwrap());
            m.fit(x).unwrap();
            m.params().batch_size()
        };
        assert_eq!(fit(NmfParams::new(4), MatRef::from(&x)), 64);
        let tall = PlantedSpec::new(30_000, 30, 12).seed(2).generate().x;
        assert_eq!(fit(NmfParams::new(12), MatRef::from(&tall)), 150);
        assert_eq!(
            fit(NmfParams::new(4).batch_size(500), MatRef::from(&x)),
            500
        );
        let kl = NmfParams::new(4).loss(crate::Loss::KullbackLeibler);
        assert_eq!(fit(kl.clone(), MatRef::from(&x)), 256);
        let csr = crate::CsrMatrix::from_dense(x.view());
        let rule = crate::model::sparse_batch_rows(4, 3000, csr.nnz() as u64, 30);
        assert_eq!(fit(NmfParams::new(4), MatRef::Csr(csr.view())), rule);
        assert_eq!(rule, 1024);
        // 40 000 × 2000 with 5 entries a row (each row in one of 4 column blocks).
        let indptr = (0..=40_000).map(|i| 5 * i).collect();
        let indices = (0..40_000u32)
            .flat_map(|i| (0..5).map(move |e| (i % 4) * 500 + e * 97 + i % 13))
            .collect();
        let wide = crate::CsrMatrix::try_new(2000, indptr, indices, vec![1.0; 200_000]).unwrap();
        let rule = crate::model::sparse_batch_rows(4, 40_000, 200_000, 2000);
        assert_eq!(rule, 2816);
        assert_eq!(fit(NmfParams::new(4), MatRef::Csr(wide.view())), rule);
        assert_eq!(fit(kl, MatRef::Csr(csr.view())), 1024);
    }
}
