//! Errors: one enum for the whole crate, one variant per rule that input, parameters or
//! options can break. Every variant about data names the row (0-based, counted over the
//! whole input, not the batch) and the column where it applies; the I/O layer and the
//! pipeline wrap them with the file and the column's name ([`Error::InFile`],
//! [`Error::Column`]).

use std::path::PathBuf;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `streamnmf`.
///
/// Not converging is never an error: it is reported in [`crate::BatchReport`] and
/// [`crate::FitReport`].
///
/// ```
/// use streamnmf::{Error, NmfParams};
/// let err = NmfParams::new(0).check().unwrap_err();
/// assert!(matches!(err, Error::ZeroRank));
/// assert_eq!(err.to_string(), "rank k must be at least 1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- data -------------------------------------------------------------------------
    /// A value below zero: NMF needs non-negative data.
    #[error("negative value {value} at row {row}, column {col}: NMF needs non-negative data")]
    NegativeValue {
        /// Row, 0-based over the whole input.
        row: u64,
        /// Column (feature) index.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// NaN or ±infinity.
    #[error("non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Row, 0-based over the whole input.
        row: u64,
        /// Column (feature) index.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// A zero entry under a loss that is undefined at zero (beta <= 0, e.g. Itakura-Saito).
    #[error(
        "zero value at row {row}, column {col}: the beta={beta} divergence (Itakura-Saito for \
         beta=0) is undefined at zero; floor the data with --epsilon (NmfParams::epsilon) or use another loss"
    )]
    ZeroForBeta {
        /// Row, 0-based over the whole input.
        row: u64,
        /// Column (feature) index.
        col: usize,
        /// The loss's beta.
        beta: f64,
    },
    /// The data's width p differs from the model's.
    #[error("data has {found} columns but the model was built for {expected}")]
    WidthMismatch {
        /// The model's width.
        expected: usize,
        /// The data's width.
        found: usize,
    },
    /// A batch or data set with no rows (or no columns).
    #[error("no data to factorize: {rows} rows x {cols} columns")]
    EmptyBatch {
        /// Rows in the batch.
        rows: usize,
        /// Columns in the batch.
        cols: usize,
    },
    /// A CSR matrix whose structure is inconsistent.
    #[error("malformed sparse matrix at row {row}: {detail}")]
    MalformedSparse {
        /// Row (local to the matrix) where the inconsistency was found.
        row: usize,
        /// What is wrong.
        detail: String,
    },
    /// A row-id column whose length differs from the batch's row count.
    #[error("row ids: {ids} ids for {rows} rows")]
    RowIdsLength {
        /// Rows in the batch.
        rows: usize,
        /// Ids given.
        ids: usize,
    },
    /// Codes `W` whose shape does not match the model and the data.
    #[error("codes have {found} columns but the model has rank {expected}")]
    CodesShape {
        /// The model's rank.
        expected: usize,
        /// Columns of the codes given.
        found: usize,
    },
    /// A value that arose inside the model (codes, statistics, dictionary) is not finite:
    /// the data's scale overflowed the element type. Nothing of the batch is kept.
    #[error("batch {batch}: the {what} overflowed (values too large or too small for {element}: products of them leave its range); {}", overflow_remedy(element))]
    NumericalOverflow {
        /// The batch's sequence number.
        batch: u64,
        /// What overflowed: `"codes"`, `"statistics"`, `"dictionary"`.
        what: &'static str,
        /// The element type: `"f32"` or `"f64"`.
        element: &'static str,
    },
    /// One row's codes leave the element type's range: its values are too large or too
    /// small for it. `row` counts from 0 in its source (wrapped in [`Error::InFile`] when
    /// the source is a file), or across the input when the source has no rows of its own.
    #[error("row {row}: its codes overflow {element} (the row's values are too large or too small: products of them leave the type's range); {}", overflow_remedy(element))]
    RowOverflow {
        /// The row.
        row: u64,
        /// The element type: `"f32"` or `"f64"`.
        element: &'static str,
    },
    /// The model has not seen any data yet, so it has no dictionary.
    #[error("the model has no dictionary yet: fit it on data first")]
    NotFitted,

    // ---- parameters: one variant per rule ---------------------------------------------
    /// `rank == 0`.
    #[error("rank k must be at least 1")]
    ZeroRank,
    /// `rank > p`: more components than features.
    #[error("rank k = {rank} exceeds the number of columns p = {width}")]
    RankTooLarge {
        /// Requested rank.
        rank: usize,
        /// Data width.
        width: usize,
    },
    /// `batch_size == 0`.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// `max_passes == 0`.
    #[error("max_passes must be at least 1")]
    ZeroPasses,
    /// `code_max_iter == 0`.
    #[error("code_max_iter must be at least 1")]
    ZeroCodeIterations,
    /// `dict_max_iter == 0`.
    #[error("dict_max_iter must be at least 1")]
    ZeroDictIterations,
    /// `forget` outside (0, 1].
    #[error("forget factor must be in (0, 1], got {0}")]
    InvalidForget(f64),
    /// `decay` negative or not finite.
    #[error("decay must be finite and >= 0, got {0}")]
    InvalidDecay(f64),
    /// A tolerance that is negative or not finite.
    #[error("{name} must be finite and >= 0, got {value}")]
    InvalidTolerance {
        /// The parameter: `pass_tol`, `code_tol` or `dict_tol`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A negative or non-finite regularization strength.
    #[error("{name} must be finite and >= 0, got {value}")]
    InvalidAlpha {
        /// `"alpha_w"` or `"alpha_h"`.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// `l1_ratio` outside [0, 1].
    #[error("l1_ratio must be in [0, 1], got {0}")]
    InvalidL1Ratio(f64),
    /// A beta that is not finite or lies outside `[-MAX_BETA, MAX_BETA]`.
    #[error("beta must be a finite number in [-10, 10] (the divergence's powers x^beta of the data leave the float range beyond), got {0}")]
    InvalidBeta(f64),
    /// A confidence scale for implicit feedback that is not a positive number.
    #[error("the implicit-feedback confidence alpha must be finite and > 0, got {0}")]
    InvalidConfidence(f64),
    /// A data floor that is negative, not finite, or set where it means nothing.
    #[error("epsilon {0} is invalid: a finite floor >= 0, for losses with beta < 2 and unstored entries as zeros")]
    InvalidEpsilon(f64),
    /// Dictionaries that cannot be stacked.
    #[error("cannot compose part {part}: {what}")]
    ComposeMismatch {
        /// The part (0-based).
        part: usize,
        /// What differs.
        what: String,
    },
    /// A fixed atom beyond the rank.
    #[error("fixed component {atom} does not exist: the rank is {rank} (atoms 0..{rank})")]
    FixedComponent {
        /// The atom asked for.
        atom: usize,
        /// Rank k.
        rank: usize,
    },
    /// Fixed atoms with observed-only or implicit data.
    #[error("fixed components need unstored entries as zeros, not {0:?}")]
    FixedNeedsZeroMode(crate::model::Unobserved),
    /// A fixed atom that neither the initial dictionary nor the model gives.
    #[error("fixed component {atom} is not given: the initial dictionary has {given} atoms (give them with `fit --components` or Init::Custom)")]
    FixedNotGiven {
        /// The atom.
        atom: usize,
        /// Atoms given.
        given: usize,
    },
    /// An unobserved-entry mode that the loss does not support.
    #[error("the {0} loss cannot treat unstored entries as {1:?}: observed-only needs fro or kl, implicit needs fro")]
    UnobservedNeedsLoss(crate::model::Loss, crate::model::Unobserved),
    /// HALS asked for with a loss other than Frobenius.
    #[error("the HALS code solver needs the Frobenius loss (beta = 2), got beta = {0}; use the multiplicative solver")]
    SolverNeedsFrobenius(f64),
    /// New parameters for a model that change what the model is (its rank, loss,
    /// forgetting, regularization, init or seed), not only how it is fitted.
    #[error("the model's {0} cannot change: it is part of what the model learned")]
    ModelParamChange(&'static str),
    /// A model whose dictionary and statistics would not fit in this machine's memory.
    #[error("a rank-{rank} model of {width} features needs about {gib:.1} GiB for its dictionary and statistics, more than this machine has ({total_gib:.1} GiB); lower the rank or the width")]
    ModelTooLarge {
        /// Rank k.
        rank: usize,
        /// Width p.
        width: usize,
        /// Memory the model needs, GiB.
        gib: f64,
        /// Memory the machine has, GiB.
        total_gib: f64,
    },
    /// A user-given initial dictionary with the wrong shape.
    #[error("initial dictionary is {found_rows} x {found_cols}, expected {rank} x {width}")]
    InitShape {
        /// Rank k.
        rank: usize,
        /// Width p.
        width: usize,
        /// Rows given.
        found_rows: usize,
        /// Columns given.
        found_cols: usize,
    },
    /// A user-given initial dictionary with a negative or non-finite entry.
    #[error("initial dictionary has invalid value {value} at row {row}, column {col}")]
    InitValue {
        /// Component (row of H).
        row: usize,
        /// Feature (column of H).
        col: usize,
        /// The value.
        value: f64,
    },

    // ---- pipeline options: one variant per rule ---------------------------------------
    /// No solver thread.
    #[error("the pipeline needs at least 1 solver thread")]
    ZeroSolvers,
    /// No thread inside a batch.
    #[error("the pipeline needs at least 1 thread per batch")]
    ZeroBatchThreads,
    /// Channels of capacity 0.
    #[error("the pipeline's queue depth must be at least 1")]
    ZeroQueueDepth,
    /// More solver threads or queued batches than a machine can hold: every solver is a
    /// thread with its own stack, and each queue's slots are allocated up front.
    #[error("the pipeline's {what} is {value}, above its limit of {limit}")]
    PipelineLimit {
        /// `solvers` or `queue depth`.
        what: &'static str,
        /// What was asked.
        value: usize,
        /// The most allowed.
        limit: usize,
    },
    /// Zero passes over the input.
    #[error("the pipeline needs at least 1 epoch")]
    ZeroEpochs,
    /// Several passes asked of a source that can be read once (a stream).
    #[error("a stream can be read only once: use one epoch")]
    NotRewindable,
    /// The run was asked to stop (its stop flag was raised, e.g. on Ctrl-C). Every batch
    /// read before was applied, and a checkpoint was written when checkpoints were on.
    #[error("interrupted{}", match checkpoint {
        Some(c) => format!("; checkpoint written to {}", c.display()),
        None => String::new(),
    })]
    Interrupted {
        /// The checkpoint written at the stop, if any.
        checkpoint: Option<PathBuf>,
    },
    /// Another rank of a distributed fit failed; every rank stops with its message.
    #[error("rank {rank}: {message}")]
    Rank {
        /// The failing rank (the lowest, when several failed in the same round).
        rank: usize,
        /// Its error.
        message: String,
    },
    /// A checkpoint resumed with another number of ranks than the fit that wrote it.
    #[error("the checkpoint was written by a fit over {checkpoint} rank(s); resume it with {checkpoint}, not {now}")]
    RanksDiffer {
        /// Ranks of the fit that wrote the checkpoint.
        checkpoint: usize,
        /// Ranks now.
        now: usize,
    },
    /// The ranks of a distributed fit could not talk to each other.
    #[error("distributed fit: {0}")]
    Collective(String),

    // ---- files and sources --------------------------------------------------------------
    /// An error, located in a file (or a named stream such as `<stdin>`).
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong there.
        #[source]
        source: Box<Error>,
    },
    /// A bad value in a named column of a file.
    #[error("row {row}, column '{column}': {message}")]
    Column {
        /// Row, 0-based within the file.
        row: u64,
        /// The column's name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Input whose schema or layout cannot be used.
    #[error("{0}")]
    Schema(String),
    /// A sparse layout read from a stream without its number of features.
    #[error("a sparse layout needs the number of features (its width) when it cannot be scanned")]
    SparseWidthUnknown,
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A file decoder (Parquet, Arrow IPC) failed: a corrupt or truncated file.
    #[error("{format}: {message}")]
    Decode {
        /// `"Parquet"` or `"Arrow"`.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A checkpoint directory another run holds (an advisory lock on its `.lock` file,
    /// held for the run's lifetime).
    #[error("{}: in use by another run{}; wait for it to end or use another directory", path.display(), match pid {
        Some(p) => format!(" (process {p})"),
        None => String::new(),
    })]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The holder's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// A model or checkpoint file that cannot be read.
    #[error("model file: {0}")]
    ModelFile(String),
    /// A dense linear-algebra routine (LAPACK) failed.
    #[error("linear algebra: {0}")]
    Linalg(String),
    /// A worker thread panicked; the message is the panic's.
    #[error("worker thread '{thread}' panicked: {message}")]
    WorkerPanic {
        /// The thread's name.
        thread: String,
        /// The panic payload, if it was a string.
        message: String,
    },
    /// The operating system refused to start a thread.
    #[error("could not start thread '{thread}': {source}")]
    ThreadSpawn {
        /// The thread's name.
        thread: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

/// What to do about values that overflow `element`: a wider type, while there is one.
fn overflow_remedy(element: &str) -> &'static str {
    if element == "f32" {
        "use f64 (`--float f64`) or rescale the data"
    } else {
        "rescale the data"
    }
}

impl Error {
    /// Wraps `self` with the file it happened in; a no-op if already located.
    ///
    /// ```
    /// use streamnmf::Error;
    /// let e = Error::EmptyBatch { rows: 0, cols: 3 }.in_file("data.parquet");
    /// assert_eq!(e.to_string(), "data.parquet: no data to factorize: 0 rows x 3 columns");
    /// ```
    pub fn in_file(self, path: impl Into<PathBuf>) -> Error {
        match self {
            e @ Error::InFile { .. } => e,
            e => Error::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }

    /// An [`Error::RowOverflow`] counted from `first` (the row its batch starts at in
    /// the input) instead of from its batch's start; any other error as it is.
    pub(crate) fn counted_from(self, first: u64) -> Error {
        match self {
            Error::RowOverflow { row, element } => Error::RowOverflow {
                row: first + row,
                element,
            },
            e => e,
        }
    }

    /// Replaces a column index by the column's name and the row by `row`, for the errors
    /// about one value (negative, non-finite, zero under Itakura-Saito).
    ///
    /// ```
    /// use streamnmf::Error;
    /// let e = Error::NegativeValue { row: 7, col: 1, value: -2.0 };
    /// let named = e.at_named_column(3, &["a".to_string(), "b".to_string()]);
    /// assert_eq!(named.to_string(), "row 3, column 'b': negative value -2: NMF needs non-negative data");
    /// ```
    pub fn at_named_column(self, row: u64, names: &[String]) -> Error {
        let (col, message) = match &self {
            Error::NegativeValue { col, value, .. } => (
                *col,
                format!("negative value {value}: NMF needs non-negative data"),
            ),
            Error::NonFinite { col, value, .. } => (*col, format!("non-finite value {value}")),
            Error::ZeroForBeta { col, beta, .. } => (
                *col,
                format!("zero value, undefined under the beta={beta} divergence"),
            ),
            _ => return self,
        };
        // Without names (sparse layouts), the column is named by its index.
        let column = names.get(col).cloned().unwrap_or_else(|| col.to_string());
        Error::Column {
            row,
            column,
            message,
        }
    }
}
