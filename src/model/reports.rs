//! What fitting and scoring report: one batch, a whole fit, a loss over a data set.

use serde::{Deserialize, Serialize};

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
    /// The convergence sample's loss after each pass (see
    /// [`sample_losses`](crate::OnlineNmf::sample_losses)); empty for a single pass.
    #[serde(default)]
    pub sample_losses: Vec<f64>,
    /// True when the last pass improved the sample's loss by less than the pass tolerance
    /// (or made it worse), which ended the fit.
    pub converged: bool,
}

/// A loss over a whole data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    /// `D(X | W H)` summed over all entries, with W the optimal codes for the current H.
    pub loss: f64,
    /// Rows evaluated.
    pub rows: u64,
    /// `‖X − WH‖_F / ‖X‖_F` (Frobenius loss only; over the observed entries when
    /// unstored entries are missing, and `None` for implicit feedback).
    pub relative_error: Option<f64>,
    /// The root mean squared error over the observed entries (Frobenius loss with
    /// [`Unobserved::Missing`]: the rating-prediction error).
    ///
    /// [`Unobserved::Missing`]: crate::Unobserved::Missing
    #[serde(default)]
    pub rmse: Option<f64>,
}
