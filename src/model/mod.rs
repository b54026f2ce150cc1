//! The model: parameters (checked once), losses, the per-batch codes, the sufficient
//! statistics and the dictionary update, the initial dictionary, and [`OnlineNmf`], which
//! ties them together.

mod apply;
mod chunks;
mod codes;
pub(crate) mod convergence;
mod dead_atoms;
mod dictionary;
mod init;
pub mod loss;
mod masked;
mod masked_columns;
mod online;
mod options;
mod params;
mod passes;
mod replay;
mod reports;
mod statistics;
mod step;

pub use loss::Loss;
pub use online::OnlineNmf;
pub use options::{
    default_batch_rows, dense_batch_rows, sparse_batch_rows, Init, InputShape, Solver, Unobserved,
    DENSE_BETA_BATCH, IMPLICIT_BATCH, MISSING_RIDGE,
};
pub use params::{NmfParams, ValidParams};
pub use replay::REPLAY_BUDGET;
pub use reports::{BatchReport, FitReport, LossReport};

pub(crate) use codes::Learnt;
pub(crate) use dead_atoms::RowPool;
pub(crate) use dictionary::{check_size, Dictionary};
pub(crate) use masked_columns::{ColumnContribution, ColumnStats};
pub(crate) use online::State;
pub(crate) use replay::{Kept, Replay};
pub(crate) use statistics::Contribution;
pub(crate) use statistics::Statistics;
pub(crate) use step::{narrow_overflow, solve_batch, transform_batch, CodesSummary};
