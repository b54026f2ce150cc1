//! Data: dense and CSR matrices, mini-batches with their row ids and origins, and the one
//! validator every batch passes before a solver sees it.

mod batch;
mod buffer;
mod csr;
mod mat;
pub(crate) mod spare;
mod validate;

pub use batch::{Batch, Origin, RowIds};
pub use csr::{CsrMatrix, CsrView};
pub use mat::{MatRef, Matrix};

#[cfg(feature = "arrow")]
pub(crate) use buffer::gather_rows;
pub(crate) use buffer::BatchBuffer;
pub(crate) use csr::CsrBuilder;
pub(crate) use validate::{Observed, Reading, Screened, Valid, ValidBatch, ValueRule};
