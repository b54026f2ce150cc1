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
#![deny(missing_docs)]

// Links the system OpenBLAS behind ndarray's `blas` feature.
extern crate blas_src;

pub mod batch;
pub mod blas;
pub mod checkpoint;
pub mod codes;
pub mod dictionary;
pub mod error;
pub mod float;
pub mod init;
pub mod io;
mod kernels;
pub mod loss;
pub mod model;
pub mod parallel;
pub mod params;
pub mod pipeline;
pub mod synth;

pub use batch::{Batch, CsrMatrix, CsrView, MatRef, Matrix, RowIds};
pub use codes::{Codes, SolveStats};
pub use dictionary::{Contribution, Dictionary, Statistics};
pub use error::{Error, Result};
pub use float::Float;
pub use loss::Loss;
pub use model::{
    codes_threads, solve_batch, solve_batch_threads, BatchReport, FitReport, LossReport, OnlineNmf,
    Solved,
};
pub use params::{Init, NmfParams, Solver, ValidParams};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
