//! The choices a fit is made of, beside its numbers: the code solver, the start of the
//! dictionary, what an unstored entry means, and the batch sizes used when none is set.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::loss::Loss;

/// How the codes `W` of a batch are solved with `H` fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Solver {
    /// Hierarchical ALS / exact coordinate descent, row by row (Frobenius only; default
    /// there). Converges in a few sweeps.
    Hals,
    /// Multiplicative updates (any beta; the default for beta ≠ 2). Left to the default
    /// under KL, the codes of sparse batches are solved by coordinate (Newton) descent
    /// instead (Hsieh & Dhillon 2011), which converges faster there; set it explicitly
    /// to keep the updates everywhere.
    Multiplicative,
}

/// The default `alpha_w` and `alpha_h` of observed-only Frobenius fits (see
/// [`ValidParams::alpha_w`](crate::ValidParams::alpha_w)). The penalties count
/// observations, as in ALS-WR (Zhou et al. 2008): a row's is
/// `alpha_w · |observed entries| · ½‖w‖²`, an item's likewise. Chosen on planted 1–5
/// star ratings (densities 1–12 %, ranks 4–16): within 5 % of the best held-out RMSE of
/// 0.03–0.2 on every case, where no ridge gave errors of 10¹⁰ on the sparsest. It is a strength per squared unit of the data: rescale it with the ratings.
pub const MISSING_RIDGE: f64 = 0.1;

/// The default batch size of implicit-feedback fits (see
/// [`ValidParams::batch_size`](crate::ValidParams::batch_size)).
pub const IMPLICIT_BATCH: usize = 4096;

/// Rows per batch of a fit of dense data under a loss other than Frobenius (KL,
/// Itakura-Saito, other betas) when no batch size is set: the multiplicative dictionary
/// update is one majorization step a batch, so a pass gains with the number of batches.
/// Poisson counts (20000 × 500, k 10, KL, `examples/trajectory`): 256-row batches end the
/// first pass at 2.7275e6 against 2.7763e6 with 1024, and reach in 6 passes what 1024 did
/// in 12, at the same cost a pass (0.27 s against 0.26 s, on two cores); 512 rows were
/// close to 1024, 64–160 no better than 256 and 10–80 % dearer a pass. Speech magnitudes
/// (1251 × 513, k 20; 40 passes): under KL 256 rows end at 5.67e4 against 5.65e4 with
/// 1024 in 0.6 times the time; under Itakura-Saito 2.91e5 against 2.94e5 with 1024 (512:
/// 2.84e5). Sparse data keeps 1024 (see [`dense_batch_rows`]).
pub const DENSE_BETA_BATCH: usize = 256;

/// Rows per batch of a Frobenius fit on dense data of rank `rank` when no batch size is
/// set, given the row count when it is known (an in-memory `fit`, Parquet files): enough
/// batches for 200 dictionary updates a pass, and at least `6·rank` rows as long as that
/// leaves 64 updates a pass, within 64..=256, and at most as many rows as leave 2.5
/// updates a pass per component (64 at least).
///
/// What a pass achieves depends on how many updates it makes: on the benchmark family
/// (`benches/peers/family.sh`, passes to 1.1× the SVD bound, or to 1.01× NMF(cd)'s
/// converged error on real data), 256-row batches took 5 passes on 0.1 % Gaussian
/// noise (20000 × 1000, k 20; 78 updates a pass), 2 on slowly drifting rows, 27 on
/// scikit-learn's digits (1797 rows: 7 updates a pass), 31 on breast cancer and 9 on wine;
/// 120-row batches: 1, 1, 7, 5 and 5. An update costs about `k²·p` a dictionary sweep
/// against `b·k·p` for a batch's codes, so small batches cost time where the rows alone
/// give enough updates (200000 × 200: 0.44 s with 256 rows, 0.54 s with 96) and at large
/// k (k = 64: one pass either way, 0.76 s with 256 rows, 1.03 s with 128): hence the
/// row count and the `6·rank` floor. Sparse data (100 000 × 20 000 ratings-like counts:
/// the same error in 4.9 s with 256 rows instead of 3.5 s with 1024) keeps 1024; other
/// losses take [`DENSE_BETA_BATCH`] (KL on Poisson counts: this rule's 100 rows gave the
/// same divergence a pass as 256, at 0.32 s a pass against 0.27 s).
///
/// The `6·rank` floor gives way where it would leave fewer than 64 updates a pass: on few
/// rows a pass is cheap and its updates are what it lacks. Passes to 1.1× the SVD bound
/// (family generator, whole process, median of 5): 5000 × 1000 at k 20, 2 passes in 120-row
/// batches (0.126 s), 1 in 78-row ones (0.098 s); 3000 × 1000, 3 passes (0.117 s) against
/// 1 (0.088 s). Where 120 rows already made it in one pass (5000 rows with 20 %
/// Gaussian noise or 10 % dense factors) the smaller batches cost 8 % more.
///
/// Each component also gets 2.5 updates a pass at least (`DENSE_UPDATES_PER_ATOM`), where
/// that leaves 64 rows a batch: at large k the `6·rank` floor made too few updates for
/// the atoms to settle in one pass. Family generator at k 64 (2026-12-08, error of H with
/// the best codes against 1.1× the SVD bound, one pass): 20000 × 1000 ends at 1.28× in
/// 256-row batches (79 updates), 1.13× in 156-row ones (128), 1.03× in 128- or 125-row
/// ones (156–160), so the rule's 125 rows take one pass (0.33–0.40 s) where 256 took
/// two (0.46–0.65 s); 10000 × 1000 ends at 1.46× in the `6·rank` rule's 156-row batches,
/// 0.99× in 128-row ones and 1.02× in the new rule's 64-row ones (0.26–0.30 s, against
/// two passes of 156 rows, 0.31 s). At 20 000 rows nothing changes below rank 37 (k 32
/// keeps its 192 rows); k 40 goes from 240 rows to 200 (20000 × 500: one pass to the
/// target either way, 0.13 s then 0.16 s, one run each).
///
/// ```
/// use streamnmf::model::dense_batch_rows;
/// assert_eq!(dense_batch_rows(20, Some(20_000)), 120);
/// assert_eq!(dense_batch_rows(16, Some(200_000)), 256);
/// assert_eq!(dense_batch_rows(6, Some(569)), 64);
/// assert_eq!(dense_batch_rows(20, None), 120);
/// // Few rows: 64 updates a pass rather than 6·rank rows a batch.
/// assert_eq!(dense_batch_rows(20, Some(5000)), 78);
/// // Large k: 2.5 updates a pass per component (64 rows at least).
/// assert_eq!(dense_batch_rows(64, Some(20_000)), 125);
/// assert_eq!(dense_batch_rows(64, Some(10_000)), 64);
/// assert_eq!(dense_batch_rows(32, Some(20_000)), 192);
/// assert_eq!(dense_batch_rows(40, Some(20_000)), 200);
/// assert_eq!(dense_batch_rows(20, Some(8000)), 120);
/// ```
pub fn dense_batch_rows(rank: usize, rows: Option<u64>) -> usize {
    let by_rows = rows.map_or(0, |n| n / DENSE_UPDATES_PER_PASS);
    let floor = rows.map_or(u64::MAX, |n| n / DENSE_MIN_UPDATES_PER_PASS);
    let floor = rank
        .saturating_mul(6)
        .min(usize::try_from(floor).unwrap_or(usize::MAX));
    let rows_a_batch = usize::try_from(by_rows)
        .unwrap_or(usize::MAX)
        .max(floor)
        .clamp(64, 256);
    let per_atom = rows.map_or(usize::MAX, |n| {
        (n as f64 / (DENSE_UPDATES_PER_ATOM * rank.max(1) as f64)) as usize
    });
    rows_a_batch.min(per_atom.max(64))
}

/// What is known of an input's matrix before it is read (from Parquet footers, or an
/// in-memory matrix): its rows, its stored entries (the non-zeros of a sparse input) and
/// its width, each `None` when unknown. The default batch size is chosen from it.
///
/// ```
/// use streamnmf::model::InputShape;
/// let s = InputShape::rows(20_000);
/// assert_eq!((s.rows, s.stored, s.width), (Some(20_000), None, None));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputShape {
    /// Rows of the matrix.
    pub rows: Option<u64>,
    /// Stored entries: rows × columns for dense data, the non-zeros of sparse data.
    pub stored: Option<u64>,
    /// Columns of the matrix.
    pub width: Option<u64>,
}

impl InputShape {
    /// A shape of which only the row count is known.
    pub fn rows(rows: u64) -> Self {
        Self {
            rows: Some(rows),
            ..Self::default()
        }
    }
    /// This shape with a width the user gave (`--width`), which wins over a found one.
    ///
    /// ```
    /// use streamnmf::model::InputShape;
    /// let found = InputShape { width: Some(40), ..InputShape::rows(9) };
    /// assert_eq!(found.given_width(Some(50)).width, Some(50));
    /// assert_eq!(found.given_width(None).width, Some(40));
    /// ```
    pub fn given_width(self, width: Option<usize>) -> Self {
        Self {
            width: width.map(|w| w as u64).or(self.width),
            ..self
        }
    }
}

/// The batch size a new fit takes when none is set, or `None` for the mode's own default
/// ([`ValidParams::batch_size`](crate::ValidParams::batch_size): 1024 rows, 4096 for
/// implicit feedback). Data whose unstored entries are zeros gets, under the Frobenius
/// loss, [`dense_batch_rows`] of its rank and row count when dense, and
/// [`sparse_batch_rows`] of its rank and shape when sparse (if rows, stored entries and
/// width are all known); dense data gets [`DENSE_BETA_BATCH`] under the other losses.
/// `shape` is asked only when needed. One rule for the in-memory `fit`, the command line
/// and the Python package.
///
/// ```
/// use streamnmf::model::{default_batch_rows, InputShape};
/// use streamnmf::{Loss, Unobserved};
/// let shape = || InputShape::rows(20_000);
/// let dense = |loss| default_batch_rows(loss, Unobserved::Zero, true, 20, shape);
/// assert_eq!(dense(Loss::Frobenius), Some(120));
/// assert_eq!(dense(Loss::KullbackLeibler), Some(256));
/// let kl = Loss::KullbackLeibler;
/// assert_eq!(default_batch_rows(kl, Unobserved::Zero, false, 20, InputShape::default), None);
/// let ratings = default_batch_rows(Loss::Frobenius, Unobserved::Missing, true, 20, shape);
/// assert_eq!(ratings, None);
/// let counts = InputShape { rows: Some(100_000), stored: Some(10_000_000), width: Some(20_000) };
/// let sparse = default_batch_rows(Loss::Frobenius, Unobserved::Zero, false, 20, || counts);
/// assert_eq!(sparse, Some(12_480));
/// // Unknown row count (string row ids): the mode's default.
/// let unknown = InputShape { rows: None, ..counts };
/// assert_eq!(default_batch_rows(Loss::Frobenius, Unobserved::Zero, false, 20, || unknown), None);
/// ```
pub fn default_batch_rows(
    loss: Loss,
    unobserved: Unobserved,
    dense: bool,
    rank: usize,
    shape: impl FnOnce() -> InputShape,
) -> Option<usize> {
    if unobserved != Unobserved::Zero {
        return None;
    }
    match (dense, loss == Loss::Frobenius) {
        (true, true) => Some(dense_batch_rows(rank, shape().rows)),
        (true, false) => Some(DENSE_BETA_BATCH),
        (false, true) => {
            let s = shape();
            Some(sparse_batch_rows(rank, s.rows?, s.stored?, s.width?))
        }
        (false, false) => None,
    }
}

/// Rows per batch of a Frobenius fit on sparse data (unstored entries are zeros) of rank
/// `rank`, `rows` × `width` with `stored` non-zeros, when no batch size is set.
///
/// A batch costs its codes, about `b·(2·k·s + k²·t)` for `s` stored entries a row and `t`
/// code sweeps, and one dictionary update, about `k²·p` a sweep over the `p` columns,
/// whatever the batch's rows. Dense rows (`s = p`) balance the two at a hundred-odd rows,
/// where [`dense_batch_rows`] lands; sparse rows with a wide catalogue need thousands.
/// The rule: `6·k·p / (s + 3k)` rows, at most an 8th of the rows (at least 8 updates a
/// pass) and at most 2 M stored entries a batch (the memory of the queues), within
/// 1024..=32768 (never below the former fixed default), in multiples of 64.
///
/// Measured in process, one pass (`examples/trajectory`), against the former fixed 1024
/// rows: 100 000 × 20 000 Poisson counts with 100 entries a row (k 20) 0.42 → 0.19 s;
/// 300 000 × 5000 with 9 a row (k 10) 0.35 → 0.16 s; 40 000 × 20 000 topic-model counts
/// with 181 a row 0.50 → 0.26 s; 100 000 × 20 000 Zipf-popular columns with 317 a row
/// 0.69 → 0.41–0.58 s; 20 000 × 50 000 with 887 a row (k 30) 0.67 → 0.64 s; every one at
/// the same error a pass (within 0.03 %) and within 1.1× its SVD bound after one pass.
/// The number of batches matters too: the 20 000-row set in 16 384-row batches (one
/// update) was at 1.17× its bound after one pass, in 2500-row batches (8) at 1.002×. But
/// not below 1024 rows: on TF-IDF of the Python standard library's sources as triplets
/// (1069 × 3000, 199 entries a row, k 10; the CLI as a whole process) 1024-row batches
/// reach 1.01× NMF(cd)'s converged error in one pass (0.06 s), 256-row batches in three
/// (0.06 s); a dense 20 000 × 1000 matrix stored as triplets takes two passes in 1024-row
/// batches and one in 256-row batches, in the same time (0.21 s).
///
/// ```
/// use streamnmf::model::sparse_batch_rows;
/// assert_eq!(sparse_batch_rows(20, 100_000, 10_000_000, 20_000), 12_480);
/// assert_eq!(sparse_batch_rows(30, 20_000, 17_746_483, 50_000), 2240);
/// assert_eq!(sparse_batch_rows(20, 20_000, 20_000_000, 1000), 1024);
/// assert_eq!(sparse_batch_rows(10, 1069, 212_746, 3000), 1024);
/// assert_eq!(sparse_batch_rows(8, 10_000_000, 20_000_000, 1_000_000), 32_768);
/// ```
pub fn sparse_batch_rows(rank: usize, rows: u64, stored: u64, width: u64) -> usize {
    let k = rank.max(1) as f64;
    let per_row = (stored as f64 / rows.max(1) as f64).max(1.0);
    let balance = SPARSE_BALANCE * k * width as f64 / (per_row + 3.0 * k);
    let updates = rows as f64 / SPARSE_UPDATES_PER_PASS;
    let entries = SPARSE_BATCH_ENTRIES / per_row;
    let b = balance.min(updates).min(entries).clamp(1024.0, 32768.0) as usize;
    b / 64 * 64
}

/// Dense rows' share of the cost balance of [`sparse_batch_rows`].
const SPARSE_BALANCE: f64 = 6.0;
/// Dictionary updates a pass of a sparse fit makes, at least (unless its batches would
/// hold fewer than 1024 rows).
const SPARSE_UPDATES_PER_PASS: f64 = 8.0;
/// Stored entries a default sparse batch holds, at most.
const SPARSE_BATCH_ENTRIES: f64 = 2.0e6;

/// Dictionary updates a pass should make (see [`dense_batch_rows`]).
const DENSE_UPDATES_PER_PASS: u64 = 200;
/// Dictionary updates a pass makes at least, unless its batches would hold fewer than 64
/// rows (see [`dense_batch_rows`]).
const DENSE_MIN_UPDATES_PER_PASS: u64 = 64;
/// Dictionary updates a pass makes per component at least, unless its batches would hold
/// fewer than 64 rows (see [`dense_batch_rows`]).
const DENSE_UPDATES_PER_ATOM: f64 = 2.5;

/// What an entry that is not stored means (sparse inputs; NaN in dense ones).
///
/// ```
/// use streamnmf::{NmfParams, Unobserved};
/// let p = NmfParams::new(8).unobserved(Unobserved::Missing).check().unwrap();
/// assert_eq!(p.unobserved(), Unobserved::Missing);
/// let i = Unobserved::Implicit { alpha: 40.0, log: false };
/// assert_eq!(i.confidence(2.0), 81.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Unobserved {
    /// A zero: the loss covers every entry of X (the classic NMF; the default).
    #[default]
    Zero,
    /// Missing: the loss covers the stored (observed) entries only, as for explicit
    /// ratings. Frobenius and KL. Unstored entries are predicted by `W H` (imputation).
    Missing,
    /// Implicit feedback (Hu, Koren & Volinsky 2008): a stored entry is a preference of 1
    /// with confidence `1 + alpha·x` (or `1 + alpha·ln(1 + x)` with `log`), an unstored
    /// one a preference of 0 with confidence 1. Frobenius only.
    Implicit {
        /// Confidence per unit of the stored value.
        alpha: f64,
        /// Confidence grows with the logarithm of the value instead.
        log: bool,
    },
}

impl Unobserved {
    pub(super) fn is_zero(&self) -> bool {
        *self == Unobserved::Zero
    }
    /// How the validator and solvers read stored entries under this mode.
    pub(crate) fn reading(&self) -> crate::matrix::Reading {
        use crate::matrix::Reading;
        match self {
            Unobserved::Zero => Reading::Zeros,
            Unobserved::Missing => Reading::Observed,
            Unobserved::Implicit { .. } => Reading::Interactions,
        }
    }
    /// The confidence of a stored value (implicit feedback; 1 otherwise).
    pub fn confidence(&self, x: f64) -> f64 {
        match *self {
            Unobserved::Implicit { alpha, log: false } => 1.0 + alpha * x,
            Unobserved::Implicit { alpha, log: true } => 1.0 + alpha * x.ln_1p(),
            _ => 1.0,
        }
    }
}

/// How the dictionary `H` is initialized from the first batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// The default: NNDSVD for HALS, whose coordinate steps move codes and atoms off zero,
    /// and NNDSVDa for multiplicative updates, which never can (scikit-learn's advice for
    /// its `cd` and `mu` solvers). On the planted peer cases HALS from NNDSVD reaches 1.1×
    /// the SVD error bound up to a pass sooner than from NNDSVDa (`benches/peers`).
    Auto,
    /// Seeded uniform values scaled to the data: `sqrt(mean(X) / k) · U(0, 2)`.
    Random,
    /// NNDSVD (Boutsidis & Gallopoulos 2008) of the first batch: sparse, with zeros.
    Nndsvd,
    /// NNDSVD with zeros filled at the scale of H's entries, `sqrt(mean(X) / k)` (no atom
    /// starts dead, and the start does not depend on the data's units).
    Nndsvda,
    /// NNDSVD with zeros filled by small seeded random values (up to 1 % of that scale).
    Nndsvdar,
    /// A user-given H (g × p, g ≤ k), non-negative and finite: the first g atoms. Atoms
    /// g..k, if any, start from NNDSVDa of rank k − g on the first batch (a dictionary
    /// learned elsewhere plus free atoms: semi-supervised NMF, with
    /// [`NmfParams::fixed_components`](crate::NmfParams::fixed_components)).
    Custom(Array2<f64>),
}
