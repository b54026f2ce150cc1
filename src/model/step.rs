//! The solver step of a batch, which needs only `H` (so it can run on another thread than
//! the dictionary update): its codes, their contribution to the statistics, and what they
//! report to the model.

use ndarray::{Array2, ArrayView2};

use super::codes::{solve_chunked, solve_codes, Codes, Learnt, Prepared};
use super::dictionary::padded;
use super::params::ValidParams;
use super::statistics::Contribution;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::all_finite;
use crate::matrix::Valid;

/// A batch's codes and its contribution to the statistics: the output of the solver step,
/// which needs only `H` (so it can run on another thread than the dictionary update).
#[derive(Clone, Debug)]
pub(crate) struct Solved<F> {
    pub(crate) codes: Codes<F>,
    pub(crate) contribution: Contribution<F>,
}

/// What a batch's codes (or a round's, summed over its batches) report to the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CodesSummary {
    /// Loss of the rows against the dictionary they were solved with.
    pub(crate) loss: f64,
    /// Rows.
    pub(crate) rows: usize,
    /// Most code-solver iterations any row block took.
    pub(crate) iterations: usize,
    /// Whether every block converged.
    pub(crate) converged: bool,
}

impl CodesSummary {
    /// The summary of `codes` of a batch of `rows` rows; an error if the codes or their
    /// loss overflowed (`batch`: the model's batch counter, for the message).
    pub(crate) fn of<F: Float>(codes: &Codes<F>, rows: usize, batch: u64) -> Result<Self> {
        if !codes.loss.is_finite() || !all_finite(&codes.w) {
            return Err(Error::NumericalOverflow {
                batch,
                what: "codes",
            });
        }
        Ok(Self {
            loss: codes.loss,
            rows,
            iterations: codes.stats.iterations,
            converged: codes.stats.converged,
        })
    }

    /// The summary of two sets of rows together.
    pub(crate) fn add(self, o: Self) -> Self {
        Self {
            loss: self.loss + o.loss,
            rows: self.rows + o.rows,
            iterations: self.iterations.max(o.iterations),
            converged: self.converged && o.converged,
        }
    }
}

/// The solver step: the codes of `x` against `h` and their contribution, on up to
/// `threads` threads, in fixed chunks combined in order (bitwise the same for every
/// thread count). `learnt`: how far `h` has learnt, which sets the code solver's cap
/// ([`Prepared::learning_after`]).
pub(crate) fn solve_batch<F: Float>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: Valid<F>,
    threads: usize,
    learnt: Learnt,
) -> Solved<F> {
    // A growing catalogue: a batch narrower than H stores nothing in the columns it
    // lacks; a wider one is solved against H with its new features at their start values
    // (the dictionary grows to them when the contribution is folded in).
    let x = x.widened(h.ncols());
    let wide;
    let h = if x.ncols() > h.ncols() {
        wide = padded(h, x.ncols(), params.loss());
        wide.view()
    } else {
        h
    };
    let prep = Prepared::new(params, h).learning_after(params, learnt);
    let (loss, mode) = (params.loss(), params.unobserved());
    if Contribution::<F>::spreads(loss, mode, x.view()) {
        let codes = solve_codes(params, &prep, x, threads);
        let contribution = Contribution::new_on(loss, mode, x, codes.w.view(), prep.h(), threads);
        return Solved {
            codes,
            contribution,
        };
    }
    let (codes, parts) = solve_chunked(params, &prep, x, threads, None, |xc, w| {
        Contribution::new(loss, mode, xc, w, prep.h())
    });
    let mut parts = parts.into_iter();
    let mut contribution = parts.next().expect("a batch has at least one chunk");
    for part in parts {
        contribution.add(&part);
    }
    Solved {
        codes,
        contribution,
    }
}

/// The codes of `x` against `h` (the pipeline's `transform` step and
/// [`OnlineNmf::transform`](crate::OnlineNmf::transform)), on up to `threads` threads; an
/// overflow error, naming `batch`, when they leave the element type's range.
pub(crate) fn transform_batch<F: Float>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: Valid<F>,
    threads: usize,
    batch: u64,
) -> Result<Array2<F>> {
    let prep = Prepared::new(params, h);
    let codes = solve_codes(params, &prep, x, threads);
    // A NaN loss only comes from products that left the element type's range (the
    // solver then clamps the codes it cannot compute to 0, which look valid).
    if codes.loss.is_nan() || !all_finite(&codes.w) {
        return Err(Error::NumericalOverflow {
            batch,
            what: "codes",
        });
    }
    Ok(codes.w)
}
