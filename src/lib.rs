//! # streamnmf
//!
//! Streaming, online (mini-batch) non-negative matrix factorization:
//! X (n × p, non-negative) ≈ W (n × k) · H (k × p), where the dictionary H is learned from
//! sufficient statistics accumulated batch by batch (Mairal et al. 2010 for Frobenius;
//! Lefèvre, Bach & Févotte 2011 for any beta-divergence), so memory is bounded by the
//! batch size and the model, never by n.
//!
//! ```
//! use ndarray::Array2;
//! use streamnmf::{Loss, NmfParams, OnlineNmf};
//!
//! // Rank-3 data, 300 rows x 12 columns.
//! let w = Array2::from_shape_fn((300, 3), |(i, j)| ((i * (j + 2)) % 7) as f64);
//! let h = Array2::from_shape_fn((3, 12), |(j, c)| if c % 3 == j { 1.0 } else { 0.1 });
//! let x = w.dot(&h);
//!
//! let params = NmfParams::new(3).batch_size(64).max_passes(20).seed(42).check()?;
//! let mut model = OnlineNmf::<f64>::new(params);
//! let report = model.fit(&x)?;
//! println!("{} passes, mean loss per row {:?}", report.passes, report.pass_losses.last());
//! let rel = model.loss(&x)?.relative_error.unwrap();
//! assert!(rel < 0.01, "relative error {rel}");
//!
//! // Learn from a new batch, then fold new rows in without changing the model.
//! model.partial_fit(&x.slice(ndarray::s![0..64, ..]).to_owned())?;
//! let codes = model.transform(&x)?;
//! assert_eq!(codes.ncols(), 3);
//! # Ok::<(), streamnmf::Error>(())
//! ```
//!
//! # Layers
//! Each module is one layer and imports only from the layers before it:
//! [`linalg`](crate) (kernels, no knowledge of batches) → [`matrix`] (dense/CSR data,
//! batches, the one validator) → `solve` (non-negative solvers shared by codes and
//! dictionary) → [`model`] (parameters, losses, statistics, dictionary, [`OnlineNmf`]) →
//! [`persist`] (model files, checkpoints, atomic writes) → [`source`] (where batches come
//! from) → [`pipeline`] (threads) and, with the `arrow` feature, `io` (Parquet and Arrow
//! IPC readers and writers). The math compiles without Arrow, Parquet or the
//! command-line crates: `default-features = false`.
#![deny(missing_docs)]

pub mod distributed;
mod error;
mod float;
mod linalg;
pub mod matrix;
pub mod model;
pub mod persist;
pub mod pipeline;
pub mod rank;
pub mod recommend;
mod solve;
pub mod source;
pub mod synth;

#[cfg(feature = "audio")]
pub mod audio;
#[cfg(feature = "arrow")]
pub mod io;

pub use error::{Error, Result};
pub use float::Float;
pub use matrix::{Batch, CsrMatrix, CsrView, MatRef, Matrix, Origin, RowIds};
pub use model::loss;
pub use model::{
    BatchReport, FitReport, Init, Loss, LossReport, NmfParams, OnlineNmf, Solver, Unobserved,
    ValidParams,
};

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "arrow"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
