//! Hyper-parameters: a consuming builder ([`NmfParams`]) checked once into
//! [`ValidParams`]; only checked parameters can build a model.
//!
//! # Regularization convention
//! scikit-learn's: with `alpha_w`, `alpha_h` and `l1_ratio`, the objective adds
//! `alpha_w · p · (l1_ratio ‖W‖₁ + ½(1 − l1_ratio) ‖W‖²)` and
//! `alpha_h · n · (l1_ratio ‖H‖₁ + ½(1 − l1_ratio) ‖H‖²)`, so the penalties keep their
//! weight relative to the data term whatever the shape. Online, `n` is the (forget-weighted)
//! number of rows in the accumulated statistics, so each mini-batch of `b` rows brings
//! `b`'s worth of the H penalty.

use serde::{Deserialize, Serialize};

use super::loss::Loss;
use super::options::{Init, Solver, Unobserved, IMPLICIT_BATCH, MISSING_RIDGE};
use crate::error::{Error, Result};

/// The largest |β| a fit takes: the β-divergence raises the data to the powers β and
/// β − 1, and beyond 10 data of a few hundred overflows f32 (β = 50 on pixel values of 16
/// did), with an error that blamed the data.
pub(crate) const MAX_BETA: f64 = 10.0;

/// Parameters of an online NMF, as a consuming builder. Regularization follows
/// scikit-learn: the objective adds `alpha_w · p · (l1_ratio ‖W‖₁ + ½(1 − l1_ratio) ‖W‖²)`
/// and `alpha_h · n · (l1_ratio ‖H‖₁ + ½(1 − l1_ratio) ‖H‖²)`, with `n` the (forget-weighted)
/// rows in the statistics online.
///
/// ```
/// use streamnmf::{Loss, NmfParams};
/// let params = NmfParams::new(8)
///     .loss(Loss::KullbackLeibler)
///     .batch_size(512)
///     .max_passes(5)
///     .seed(7)
///     .check()
///     .unwrap();
/// assert_eq!(params.rank(), 8);
/// assert_eq!(params.solver(), streamnmf::Solver::Multiplicative);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NmfParams {
    rank: usize,
    loss: Loss,
    solver: Option<Solver>,
    init: Init,
    /// `None`: the default of the mode (see [`ValidParams::batch_size`]).
    #[serde(default)]
    batch_size: Option<usize>,
    max_passes: usize,
    pass_tol: f64,
    forget: f64,
    #[serde(default)]
    decay: Option<f64>,
    purge_passes: bool,
    code_max_iter: usize,
    code_tol: f64,
    dict_max_iter: usize,
    dict_tol: f64,
    /// `None`: the default of the mode (see [`ValidParams::alpha_w`]).
    #[serde(default)]
    alpha_w: Option<f64>,
    #[serde(default)]
    alpha_h: Option<f64>,
    l1_ratio: f64,
    seed: u64,
    /// Written only when not the default, so files of the zero mode stay as they were.
    #[serde(default, skip_serializing_if = "Unobserved::is_zero")]
    unobserved: Unobserved,
    /// Atoms the dictionary updates never change (sorted); written only when some are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fixed_components: Vec<usize>,
    /// The data floor for β < 2; written only when set.
    #[serde(default, skip_serializing_if = "is_zero")]
    epsilon: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl NmfParams {
    /// Passes a fit makes at most, by default: it stops sooner once a pass improves the
    /// loss of its convergence sample by less than [`DEFAULT_PASS_TOL`](Self::DEFAULT_PASS_TOL).
    /// Planted low-rank data stop after 3 to 5 passes; scikit-learn's breast cancer table
    /// (569 × 30, k = 6) after 48.
    pub const DEFAULT_MAX_PASSES: usize = 50;
    /// The default [`pass_tol`](Self::pass_tol). With 1e-4, a 20000 × 1000 planted set
    /// ran 13 passes where passes 3 to 13 moved its error by 0.1 %.
    pub const DEFAULT_PASS_TOL: f64 = 1e-3;

    /// Defaults for rank `k`: Frobenius loss, HALS codes, [`Init::Auto`], batches of 1024
    /// rows, up to [`DEFAULT_MAX_PASSES`](Self::DEFAULT_MAX_PASSES) passes stopping at
    /// convergence, forget factor 1, the loss's default decay, no regularization, seed 0.
    pub fn new(rank: usize) -> Self {
        Self {
            rank,
            loss: Loss::Frobenius,
            solver: None,
            init: Init::Auto,
            batch_size: None,
            max_passes: Self::DEFAULT_MAX_PASSES,
            pass_tol: Self::DEFAULT_PASS_TOL,
            forget: 1.0,
            decay: None,
            purge_passes: true,
            code_max_iter: 200,
            code_tol: 1e-4,
            dict_max_iter: 20,
            dict_tol: 3e-3,
            alpha_w: None,
            alpha_h: None,
            l1_ratio: 0.0,
            seed: 0,
            unobserved: Unobserved::Zero,
            fixed_components: Vec::new(),
            epsilon: 0.0,
        }
    }
    /// A floor for the data under losses with β < 2: values below `epsilon` are raised
    /// to it before any solver sees them (default 0: none). Itakura-Saito is undefined at
    /// zero, so digital silence is an error without a floor; with one, silence is fitted
    /// as a very quiet frame. The floor is in the data's units: for a spectrogram, a
    /// value well below the quietest sound of interest (e.g. 1e-6 of the mean power).
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{Loss, NmfParams, OnlineNmf};
    /// let x = array![[0.0f64, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]];
    /// let is = NmfParams::new(2).loss(Loss::ItakuraSaito);
    /// assert!(OnlineNmf::new(is.clone().check().unwrap()).fit(&x).is_err());
    /// let mut m = OnlineNmf::new(is.epsilon(1e-6).check().unwrap());
    /// assert!(m.fit(&x).is_ok());
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Atoms (rows of H) that the dictionary updates never change: supervised (all of
    /// them) or semi-supervised NMF (Smaragdis et al. 2007), where atoms learned on clean
    /// sources are fixed and the rest learn what they do not explain. Codes are still
    /// solved against every atom. The fixed atoms come from [`Init::Custom`] or from the
    /// model being continued. Frobenius and β-divergences with unstored entries as zeros.
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// use streamnmf::{Init, NmfParams, OnlineNmf};
    /// let given = array![[1.0f64, 1.0, 0.0, 0.0]];
    /// let params = NmfParams::new(2)
    ///     .init(Init::Custom(given.clone()))
    ///     .fixed_components([0])
    ///     .check()
    ///     .unwrap();
    /// let x = Array2::from_shape_fn((64, 4), |(i, j)| ((i + j) % 3) as f64);
    /// let mut model = OnlineNmf::new(params);
    /// model.fit(&x).unwrap();
    /// let h = model.components().unwrap();
    /// assert_eq!(h.row(0), given.row(0));
    /// ```
    pub fn fixed_components(mut self, atoms: impl IntoIterator<Item = usize>) -> Self {
        self.fixed_components = atoms.into_iter().collect();
        self
    }
    /// The rank k (atoms of H).
    pub fn rank(mut self, k: usize) -> Self {
        self.rank = k;
        self
    }
    /// What an unstored entry means: a zero (default), missing (observed-only loss), or
    /// implicit feedback. See [`Unobserved`].
    pub fn unobserved(mut self, u: Unobserved) -> Self {
        self.unobserved = u;
        self
    }
    /// The loss to minimize.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }
    /// The code solver (default: HALS for Frobenius, multiplicative otherwise).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = Some(solver);
        self
    }
    /// How H is initialized.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }
    /// Rows per mini-batch in [`crate::OnlineNmf::fit`] and the pipeline.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = Some(rows);
        self
    }
    /// Maximum passes over the data in `fit`.
    pub fn max_passes(mut self, passes: usize) -> Self {
        self.max_passes = passes;
        self
    }
    /// A multi-pass fit (`fit`, and the pipeline over more than one epoch) stops when a
    /// pass improves on the best loss of its convergence sample so far by less than this
    /// fraction, after a pass that improved on the best before it by less than 4× that
    /// (so two passes in a row above the best stop it too); a loss that went up within
    /// the last three passes stops once its best of them gains less than 3× that (see
    /// [`OnlineNmf::sample_losses`](crate::OnlineNmf::sample_losses)); 0 runs every pass.
    pub fn pass_tol(mut self, tol: f64) -> Self {
        self.pass_tol = tol;
        self
    }
    /// Forget factor ρ ∈ (0, 1]: statistics are multiplied by ρ before each batch is added
    /// (1 keeps exact sums; smaller values track drifting data).
    pub fn forget(mut self, rho: f64) -> Self {
        self.forget = rho;
        self
    }
    /// Down-weights old statistics (Mairal et al. 2010, "scaling the past data"): after
    /// `t` rows, the batch that ended at row `s` weighs `(s / t)^decay`, on top of the
    /// forget factor. Before each batch of `b` rows the statistics are multiplied by
    /// `(t / (t + b))^decay`, so the weights do not depend on the batch size.
    ///
    /// Codes solved against an early, poor H are forgotten after a few batches, while the
    /// statistics still average over the last `t / (decay + 1)` rows, a window that keeps
    /// growing, so H still converges. 0 weighs every batch alike. The default is 8 for the
    /// Frobenius loss, whose dictionary update solves its statistics exactly, and 32 for
    /// other betas, whose statistics are a majorizer anchored at each batch's H and go
    /// stale sooner. Left at its default, a multi-pass Frobenius fit with a pass
    /// tolerance follows a window schedule from its second pass: shorter windows first,
    /// the default decay once they stop paying (ill-conditioned data, e.g. uniform
    /// factors, needed far fewer passes). A decay set here holds for every pass.
    ///
    /// ```
    /// use streamnmf::{Loss, NmfParams};
    /// assert_eq!(NmfParams::new(4).check().unwrap().decay(), 8.0);
    /// let kl = NmfParams::new(4).loss(Loss::KullbackLeibler).check().unwrap();
    /// assert_eq!(kl.decay(), 32.0);
    /// assert_eq!(NmfParams::new(4).decay(0.0).check().unwrap().decay(), 0.0);
    /// ```
    pub fn decay(mut self, decay: f64) -> Self {
        self.decay = Some(decay);
        self
    }
    /// Over several passes, keep only the current and the previous pass's statistics
    /// (SPAMS' scheme), so codes solved against an early, poor H stop weighing on H.
    pub fn purge_passes(mut self, purge: bool) -> Self {
        self.purge_passes = purge;
        self
    }
    /// Maximum inner iterations of the code solver per batch. The codes a dictionary
    /// learns from stop earlier: at 20 under a beta below 1 (multiplicative updates with
    /// γ = ½, IS's exponent until 2026-12, ran to any cap, and precise codes against a
    /// moving dictionary buy little),
    /// at 10 sweeps under Frobenius (well-posed rows converge sooner; degenerate ones, k
    /// above the data's rank, would creep on); `transform` and the codes written out keep
    /// this cap.
    pub fn code_max_iter(mut self, iters: usize) -> Self {
        self.code_max_iter = iters;
        self
    }
    /// Relative change of the codes below which the solver stops.
    pub fn code_tol(mut self, tol: f64) -> Self {
        self.code_tol = tol;
        self
    }
    /// Maximum sweeps of the dictionary update per batch (Frobenius).
    pub fn dict_max_iter(mut self, iters: usize) -> Self {
        self.dict_max_iter = iters;
        self
    }
    /// Relative change of H below which the dictionary sweeps stop (default 3e-3). The
    /// statistics move by a few percent a batch in a first pass, so a tighter H only
    /// chases a target about to move: against 1e-4, one pass on a 20000 × 1000 planted
    /// set took 0.097 s instead of 0.118 s in process (k 64: 0.46 s instead of 0.56 s) at
    /// the same error, the benchmark family needed the same passes on every member with
    /// times 0–10 % lower, digits ended lower after 10 passes, and ratings' held-out RMSE
    /// moved by 1e-4.
    pub fn dict_tol(mut self, tol: f64) -> Self {
        self.dict_tol = tol;
        self
    }
    /// Regularization strength on W (default: none, except for observed-only data: see
    /// [`ValidParams::alpha_w`]).
    pub fn alpha_w(mut self, alpha: f64) -> Self {
        self.alpha_w = Some(alpha);
        self
    }
    /// Regularization strength on H (default as for [`alpha_w`](Self::alpha_w)).
    pub fn alpha_h(mut self, alpha: f64) -> Self {
        self.alpha_h = Some(alpha);
        self
    }
    /// Share of L1 in the regularization (0 = pure L2, 1 = pure L1).
    pub fn l1_ratio(mut self, ratio: f64) -> Self {
        self.l1_ratio = ratio;
        self
    }
    /// Seed of every random choice (initialization, dead-atom re-seeding).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every rule once; each broken rule has its own [`Error`] variant.
    ///
    /// ```
    /// use streamnmf::{Error, NmfParams};
    /// assert!(matches!(NmfParams::new(4).forget(0.0).check(), Err(Error::InvalidForget(_))));
    /// ```
    pub fn check(mut self) -> Result<ValidParams> {
        if self.rank == 0 {
            return Err(Error::ZeroRank);
        }
        if self.batch_size == Some(0) {
            return Err(Error::ZeroBatchSize);
        }
        if !(self.forget > 0.0 && self.forget <= 1.0) {
            return Err(Error::InvalidForget(self.forget));
        }
        if let Some(d) = self.decay {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::InvalidDecay(d));
            }
        }
        for (name, value) in [
            ("pass_tol", self.pass_tol),
            ("code_tol", self.code_tol),
            ("dict_tol", self.dict_tol),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::InvalidTolerance { name, value });
            }
        }
        if self.max_passes == 0 {
            return Err(Error::ZeroPasses);
        }
        if self.code_max_iter == 0 {
            return Err(Error::ZeroCodeIterations);
        }
        if self.dict_max_iter == 0 {
            return Err(Error::ZeroDictIterations);
        }
        for (name, value) in [("alpha_w", self.alpha_w), ("alpha_h", self.alpha_h)] {
            let Some(value) = value else { continue };
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::InvalidAlpha { name, value });
            }
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return Err(Error::InvalidL1Ratio(self.l1_ratio));
        }
        let beta = self.loss.beta();
        if !beta.is_finite() || beta.abs() > MAX_BETA {
            return Err(Error::InvalidBeta(beta));
        }
        self.loss = Loss::from_beta(beta);
        if self.solver == Some(Solver::Hals) && beta != 2.0 {
            return Err(Error::SolverNeedsFrobenius(beta));
        }
        match self.unobserved {
            Unobserved::Zero => {}
            Unobserved::Missing if beta == 2.0 || beta == 1.0 => {}
            Unobserved::Implicit { alpha, .. } if beta == 2.0 => {
                if !(alpha.is_finite() && alpha > 0.0) {
                    return Err(Error::InvalidConfidence(alpha));
                }
            }
            u => return Err(Error::UnobservedNeedsLoss(self.loss, u)),
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0)
            || (self.epsilon > 0.0 && (beta >= 2.0 || self.unobserved != Unobserved::Zero))
        {
            return Err(Error::InvalidEpsilon(self.epsilon));
        }
        self.fixed_components.sort_unstable();
        self.fixed_components.dedup();
        if let Some(&atom) = self.fixed_components.last() {
            if atom >= self.rank {
                return Err(Error::FixedComponent {
                    atom,
                    rank: self.rank,
                });
            }
            if self.unobserved != Unobserved::Zero {
                return Err(Error::FixedNeedsZeroMode(self.unobserved));
            }
        }
        if let Init::Custom(h) = &self.init {
            if h.nrows() > self.rank || h.nrows() == 0 {
                return Err(Error::InitShape {
                    rank: self.rank,
                    width: h.ncols(),
                    found_rows: h.nrows(),
                    found_cols: h.ncols(),
                });
            }
            if let Some(&atom) = self.fixed_components.iter().find(|&&a| a >= h.nrows()) {
                return Err(Error::FixedNotGiven {
                    atom,
                    given: h.nrows(),
                });
            }
            if let Some(((row, col), &value)) = h
                .indexed_iter()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(Error::InitValue { row, col, value });
            }
        }
        Ok(ValidParams(self))
    }
}

/// Parameters that passed [`NmfParams::check`], with a getter of the same name for every
/// setting of the builder. Only checked parameters build a model, and parameters read
/// from a model file are checked again on the way in.
///
/// ```
/// use streamnmf::{Init, Loss, NmfParams, Solver};
/// let p = NmfParams::new(4).loss(Loss::KullbackLeibler).batch_size(256).check().unwrap();
/// assert_eq!((p.rank(), p.loss(), p.batch_size()), (4, Loss::KullbackLeibler, 256));
/// assert_eq!(p.solver(), Solver::Multiplicative);
/// assert_eq!(p.init(), &Init::Auto);
/// assert_eq!(p.effective_init(), &Init::Nndsvda);
/// // Back to a builder to change one setting.
/// let q = p.into_builder().batch_size(64).check().unwrap();
/// assert_eq!(q.batch_size(), 64);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NmfParams", into = "NmfParams")]
pub struct ValidParams(NmfParams);

impl TryFrom<NmfParams> for ValidParams {
    type Error = Error;
    fn try_from(p: NmfParams) -> Result<Self> {
        p.check()
    }
}

impl From<ValidParams> for NmfParams {
    fn from(p: ValidParams) -> Self {
        p.0
    }
}

impl ValidParams {
    /// Rank k: the number of components.
    pub fn rank(&self) -> usize {
        self.0.rank
    }
    /// The loss minimized.
    pub fn loss(&self) -> Loss {
        self.0.loss
    }
    /// The code solver in effect (the default resolved: HALS for Frobenius, multiplicative
    /// updates otherwise).
    pub fn solver(&self) -> Solver {
        self.0.solver.unwrap_or(if self.0.loss.beta() == 2.0 {
            Solver::Hals
        } else {
            Solver::Multiplicative
        })
    }
    /// Whether the solver was set explicitly (else [`solver`](Self::solver) picks, and
    /// the codes of sparse KL batches may use coordinate descent).
    pub(crate) fn solver_is_chosen(&self) -> bool {
        self.0.solver.is_some()
    }
    /// The initialization as asked for (see [`effective_init`](Self::effective_init)).
    pub fn init(&self) -> &Init {
        &self.0.init
    }
    /// The init that runs: [`Init::Auto`] resolved for the solver.
    ///
    /// ```
    /// use streamnmf::{Init, Loss, NmfParams};
    /// let fro = NmfParams::new(3).check().unwrap();
    /// assert_eq!(fro.effective_init(), &Init::Nndsvd);
    /// let kl = NmfParams::new(3).loss(Loss::KullbackLeibler).check().unwrap();
    /// assert_eq!(kl.effective_init(), &Init::Nndsvda);
    /// ```
    pub fn effective_init(&self) -> &Init {
        match (&self.0.init, self.solver()) {
            // An SVD would read missing entries and non-interactions as data.
            (Init::Auto, _) if self.0.unobserved != Unobserved::Zero => &Init::Random,
            (Init::Auto, Solver::Hals) => &Init::Nndsvd,
            (Init::Auto, Solver::Multiplicative) => &Init::Nndsvda,
            (init, _) => init,
        }
    }
    /// Whether a batch size was set (else the defaults below, and [`dense_batch_rows`](super::options::dense_batch_rows)
    /// for an in-memory `fit` of dense data under the Frobenius loss).
    pub fn batch_size_is_set(&self) -> bool {
        self.0.batch_size.is_some()
    }
    /// Rows per mini-batch.
    ///
    /// Unset, 1024 rows (an in-memory [`fit`](crate::OnlineNmf::fit) of dense data sets
    /// [`dense_batch_rows`](super::options::dense_batch_rows) under the Frobenius loss and
    /// [`DENSE_BETA_BATCH`](super::options::DENSE_BETA_BATCH) under the
    /// others instead), or [`IMPLICIT_BATCH`] for
    /// implicit feedback, whose every
    /// dictionary update solves every item's column (the shared `Σ w wᵀ` changes them
    /// all), so larger batches amortize it: on planted interactions (6000 users × 3000
    /// items, rank 16) 4096-row batches fitted in 1.7 s instead of 2.1 s and ranked better
    /// (NDCG@10 0.084 instead of 0.076).
    pub fn batch_size(&self) -> usize {
        self.0.batch_size.unwrap_or(match self.0.unobserved {
            Unobserved::Implicit { .. } => IMPLICIT_BATCH,
            _ => 1024,
        })
    }
    /// Maximum passes in `fit`.
    pub fn max_passes(&self) -> usize {
        self.0.max_passes
    }
    /// Relative pass improvement below which `fit` stops.
    pub fn pass_tol(&self) -> f64 {
        self.0.pass_tol
    }
    /// Forget factor ρ.
    pub fn forget(&self) -> f64 {
        self.0.forget
    }
    /// The exponent that scales past statistics (see [`NmfParams::decay`]), with the
    /// loss's default filled in.
    pub fn decay(&self) -> f64 {
        self.0
            .decay
            .unwrap_or(if self.0.loss.beta() == 2.0 { 8.0 } else { 32.0 })
    }
    /// Whether the decay was set (not the loss's default): a set decay holds for every
    /// pass, the default one follows the window schedule of multi-pass fits (see
    /// `convergence::pass_decay`).
    pub(crate) fn decay_given(&self) -> bool {
        self.0.decay.is_some()
    }
    /// Whether statistics older than the previous pass are dropped.
    pub fn purge_passes(&self) -> bool {
        self.0.purge_passes
    }
    /// Maximum inner iterations of the code solver per batch.
    pub fn code_max_iter(&self) -> usize {
        self.0.code_max_iter
    }
    /// Relative change of the codes at which the code solver stops.
    pub fn code_tol(&self) -> f64 {
        self.0.code_tol
    }
    /// Maximum sweeps of the dictionary update per batch.
    pub fn dict_max_iter(&self) -> usize {
        self.0.dict_max_iter
    }
    /// Relative change of H at which the dictionary sweeps stop.
    pub fn dict_tol(&self) -> f64 {
        self.0.dict_tol
    }
    /// Regularization strength on W.
    ///
    /// Unset, it is 0, except with [`Unobserved::Missing`] and the Frobenius loss, where it
    /// is [`MISSING_RIDGE`]: a row (or item) with fewer observations than the rank has
    /// infinitely many exact fits, and without a ridge the solver picks extreme ones (a user
    /// with one rating got codes of 300 and predicted ratings of 1300).
    pub fn alpha_w(&self) -> f64 {
        self.0.alpha_w.unwrap_or(self.default_alpha())
    }
    /// Regularization strength on H (default as for [`alpha_w`](Self::alpha_w)).
    pub fn alpha_h(&self) -> f64 {
        self.0.alpha_h.unwrap_or(self.default_alpha())
    }
    fn default_alpha(&self) -> f64 {
        if self.0.unobserved == Unobserved::Missing && self.0.loss.beta() == 2.0 {
            MISSING_RIDGE
        } else {
            0.0
        }
    }
    /// Share of L1 in the regularization.
    pub fn l1_ratio(&self) -> f64 {
        self.0.l1_ratio
    }
    /// The seed of every random choice (initialization, dead-atom re-seeding).
    pub fn seed(&self) -> u64 {
        self.0.seed
    }
    /// What an unstored entry means.
    pub fn unobserved(&self) -> Unobserved {
        self.0.unobserved
    }
    /// The data floor for β < 2 (see [`NmfParams::epsilon`]).
    pub fn epsilon(&self) -> f64 {
        self.0.epsilon
    }
    /// Atoms the dictionary updates never change, sorted (see
    /// [`NmfParams::fixed_components`]).
    pub fn fixed_components(&self) -> &[usize] {
        &self.0.fixed_components
    }
    /// Back to a builder, to change a setting and check again.
    pub fn into_builder(self) -> NmfParams {
        self.0
    }
    /// `(l1, l2)` penalties on each code row for data of width `p` (observed-only data:
    /// the row's observed entries).
    pub(crate) fn w_penalties(&self, p: usize) -> (f64, f64) {
        let a = self.alpha_w() * p as f64;
        (a * self.0.l1_ratio, a * (1.0 - self.0.l1_ratio))
    }
    /// `(l1, l2)` penalties on H for statistics accumulated over `rows` rows (observed-only
    /// data: per item, the rows that observe it).
    pub(crate) fn h_penalties(&self, rows: f64) -> (f64, f64) {
        let a = self.alpha_h() * rows;
        (a * self.0.l1_ratio, a * (1.0 - self.0.l1_ratio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    // One test per validation rule.
    #[test]
    fn zero_rank() {
        assert!(matches!(NmfParams::new(0).check(), Err(Error::ZeroRank)));
    }
    #[test]
    fn zero_batch() {
        assert!(matches!(
            NmfParams::new(2).batch_size(0).check(),
            Err(Error::ZeroBatchSize)
        ));
    }
    #[test]
    fn forget_range() {
        for rho in [0.0, -0.5, 1.5, f64::NAN] {
            assert!(matches!(
                NmfParams::new(2).forget(rho).check(),
                Err(Error::InvalidForget(_))
            ));
        }
        NmfParams::new(2).forget(0.5).check().unwrap();
    }
    #[test]
    fn decay_range() {
        for d in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                NmfParams::new(2).decay(d).check(),
                Err(Error::InvalidDecay(_))
            ));
        }
        let p = NmfParams::new(2).decay(2.5).check().unwrap();
        assert_eq!(p.decay(), 2.5);
        // Parameters saved before `decay` existed load with the loss's default.
        let mut v = serde_json::to_value(NmfParams::new(2)).unwrap();
        v.as_object_mut().unwrap().remove("decay").unwrap();
        let old: ValidParams = serde_json::from_value(v).unwrap();
        assert_eq!(old.decay(), 8.0);
    }
    #[test]
    fn tolerances() {
        assert!(matches!(
            NmfParams::new(2).code_tol(-1.0).check(),
            Err(Error::InvalidTolerance {
                name: "code_tol",
                ..
            })
        ));
        assert!(matches!(
            NmfParams::new(2).pass_tol(f64::INFINITY).check(),
            Err(Error::InvalidTolerance {
                name: "pass_tol",
                ..
            })
        ));
    }
    #[test]
    fn iterations() {
        assert!(matches!(
            NmfParams::new(2).code_max_iter(0).check(),
            Err(Error::ZeroCodeIterations)
        ));
        assert!(matches!(
            NmfParams::new(2).max_passes(0).check(),
            Err(Error::ZeroPasses)
        ));
    }
    #[test]
    fn alphas() {
        assert!(matches!(
            NmfParams::new(2).alpha_h(-1.0).check(),
            Err(Error::InvalidAlpha {
                name: "alpha_h",
                ..
            })
        ));
    }
    #[test]
    fn l1_ratio() {
        assert!(matches!(
            NmfParams::new(2).l1_ratio(1.5).check(),
            Err(Error::InvalidL1Ratio(_))
        ));
    }
    #[test]
    fn beta_finite_and_in_range() {
        for beta in [f64::NAN, f64::INFINITY, 1e308, 10.5, -11.0] {
            assert!(matches!(
                NmfParams::new(2).loss(Loss::Beta(beta)).check(),
                Err(Error::InvalidBeta(_))
            ));
        }
        for beta in [-10.0, 3.0, 10.0] {
            assert_eq!(
                NmfParams::new(2)
                    .loss(Loss::Beta(beta))
                    .check()
                    .unwrap()
                    .loss(),
                Loss::Beta(beta)
            );
        }
    }
    #[test]
    fn hals_needs_frobenius() {
        assert!(matches!(
            NmfParams::new(2)
                .loss(Loss::KullbackLeibler)
                .solver(Solver::Hals)
                .check(),
            Err(Error::SolverNeedsFrobenius(_))
        ));
    }
    #[test]
    fn custom_init_shape_and_values() {
        let h = Array2::<f64>::ones((3, 5));
        assert!(matches!(
            NmfParams::new(2).init(Init::Custom(h)).check(),
            Err(Error::InitShape { found_rows: 3, .. })
        ));
        let mut h = Array2::<f64>::ones((2, 5));
        h[[1, 3]] = -1.0;
        assert!(matches!(
            NmfParams::new(2).init(Init::Custom(h)).check(),
            Err(Error::InitValue { row: 1, col: 3, .. })
        ));
    }
    #[test]
    fn fixed_components() {
        let p = NmfParams::new(4)
            .fixed_components([2, 0, 2])
            .check()
            .unwrap();
        assert_eq!(p.fixed_components(), &[0, 2]);
        assert!(matches!(
            NmfParams::new(4).fixed_components([4]).check(),
            Err(Error::FixedComponent { atom: 4, rank: 4 })
        ));
        assert!(matches!(
            NmfParams::new(4)
                .fixed_components([0])
                .unobserved(Unobserved::Missing)
                .check(),
            Err(Error::FixedNeedsZeroMode(_))
        ));
        // Fewer given atoms than the rank is fine (the rest are learned); none is not.
        let h = Array2::<f64>::ones((2, 5));
        assert!(NmfParams::new(4).init(Init::Custom(h)).check().is_ok());
        let none = Array2::<f64>::ones((0, 5));
        assert!(NmfParams::new(4).init(Init::Custom(none)).check().is_err());
    }
    /// Parameters read back from JSON are checked: a bad value is an error, not a model.
    #[test]
    fn deserialized_params_are_checked() {
        let p = NmfParams::new(3).check().unwrap();
        let mut v = serde_json::to_value(&p).unwrap();
        let back: ValidParams = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, p);
        v["forget"] = serde_json::json!(7.0);
        let err = serde_json::from_value::<ValidParams>(v).unwrap_err();
        assert!(err.to_string().contains("forget factor"), "{err}");
    }
    #[test]
    fn beta_two_becomes_frobenius() {
        let p = NmfParams::new(2).loss(Loss::Beta(2.0)).check().unwrap();
        assert_eq!(p.loss(), Loss::Frobenius);
        assert_eq!(p.solver(), Solver::Hals);
    }
    #[test]
    fn penalties_follow_the_convention() {
        let p = NmfParams::new(2)
            .alpha_w(0.1)
            .alpha_h(0.2)
            .l1_ratio(0.25)
            .check()
            .unwrap();
        let (l1, l2) = p.w_penalties(100);
        assert!((l1 - 2.5).abs() < 1e-12 && (l2 - 7.5).abs() < 1e-12);
        let (l1, l2) = p.h_penalties(1000.0);
        assert!((l1 - 50.0).abs() < 1e-12 && (l2 - 150.0).abs() < 1e-12);
    }
}
