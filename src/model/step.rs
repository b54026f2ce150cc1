//! The solver step of a batch, which needs only `H` (so it can run on another thread than
//! the dictionary update): its codes, their contribution to the statistics, and what they
//! report to the model.

use ndarray::{Array2, ArrayView2};

use super::chunks::{solve_chunked, solve_codes};
use super::codes::{Codes, Learnt, Prepared};
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
                element: F::NAME,
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
    let mut prep = Prepared::new(params, h).learning_after(params, learnt);
    let (loss, mode) = (params.loss(), params.unobserved());
    if Contribution::<F>::spreads(loss, mode, x.view()) {
        let codes = solve_codes(params, &prep, x, threads);
        let (contribution, _) =
            Contribution::new_on(loss, mode, x, codes.w.view(), prep.h(), threads, false);
        return Solved {
            codes,
            contribution,
        };
    }
    let score = prep.scored_with_statistics(params, x.view());
    let (mut codes, parts) = solve_chunked(params, &prep, x, threads, None, |xc, w| {
        Contribution::new_on(loss, mode, xc, w, prep.h(), 1, score)
    });
    let mut parts = parts.into_iter();
    let (mut contribution, first) = parts.next().expect("a batch has at least one chunk");
    // The chunks' divergences in chunk order, as the solver sums its own.
    let mut scored = first;
    for (part, l) in parts {
        contribution.add(&part);
        scored = scored.zip(l).map(|(a, b)| a + b);
    }
    if let Some(l) = scored {
        codes.loss = l;
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
    if overflowed(&codes) {
        let e = Error::NumericalOverflow {
            batch,
            what: "codes",
            element: F::NAME,
        };
        return Err(narrow_overflow(e, params, h, x));
    }
    Ok(codes.w)
}

/// Whether codes left the element type's range. A NaN loss only comes from products that
/// overflowed (the solver then clamps the codes it cannot compute to 0, which look valid).
fn overflowed<F: Float>(codes: &Codes<F>) -> bool {
    codes.loss.is_nan() || !all_finite(&codes.w)
}

/// The first row of `x` whose codes against `h` leave the element type's range on its
/// own ([`transform_batch`]'s test), if any. Rows are solved independently, so a prefix
/// of `x` overflows once it holds such a row: bisection on prefixes finds it in
/// log₂(rows) + 2 solves. For the error path only.
fn first_overflowing_row<F: Float>(
    params: &ValidParams,
    h: ArrayView2<F>,
    x: Valid<F>,
) -> Option<usize> {
    let prep = Prepared::new(params, h);
    let overflows = |rows: std::ops::Range<usize>| {
        overflowed(&solve_codes(params, &prep, x.slice_rows(rows), 1))
    };
    let (mut fine, mut bad) = (0, x.nrows());
    if bad == 0 || !overflows(0..bad) {
        return None;
    }
    while bad - fine > 1 {
        let mid = fine + (bad - fine) / 2;
        if overflows(0..mid) {
            bad = mid;
        } else {
            fine = mid;
        }
    }
    overflows(bad - 1..bad).then_some(bad - 1)
}

/// `e` narrowed to the row of `x` it comes from: an overflow of the codes becomes
/// [`Error::RowOverflow`] at the first row of `x` (its index in `x`) whose codes against
/// `h` overflow on their own. Any other error, or an overflow no single row causes, is
/// returned as it is.
pub(crate) fn narrow_overflow<F: Float>(
    e: Error,
    params: &ValidParams,
    h: ArrayView2<F>,
    x: Valid<F>,
) -> Error {
    if !matches!(e, Error::NumericalOverflow { what: "codes", .. }) {
        return e;
    }
    match first_overflowing_row(params, h, x) {
        Some(row) => Error::RowOverflow {
            row: row as u64,
            element: F::NAME,
        },
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{CsrMatrix, MatRef, ValueRule};
    use crate::model::loss::Loss;
    use crate::model::options::Unobserved;
    use crate::model::params::NmfParams;

    /// Where the statistics score the codes (multiplicative updates whose contribution
    /// forms `W H`: Itakura-Saito, β = ½ and KL on a dense batch with zeros in under a
    /// tenth of it, dense and sparse, one chunk and several), a batch's loss has the bits
    /// of each chunk's `divergence` summed, and its contribution is the one built alone.
    #[test]
    fn statistics_score_the_codes_as_divergence_does() {
        let (k, p) = (4, 40);
        let h = Array2::from_shape_fn((k, p), |(r, j)| ((r * 7 + j * 3) % 11) as f32 * 0.1 + 0.05);
        let planted = |n: usize, zeros: bool| {
            Array2::from_shape_fn((n, p), |(i, j)| {
                let v = ((i * 5 + j * 11) % 13) as f32 * 0.25 + 0.1;
                if zeros && (i + j) % 3 == 0 {
                    0.0
                } else {
                    v
                }
            })
        };
        for (loss, zeros, sparse) in [
            (Loss::ItakuraSaito, false, false),
            (Loss::Beta(0.5), true, false),
            (Loss::Beta(0.5), true, true),
            (Loss::KullbackLeibler, false, false),
        ] {
            for n in [37, 300] {
                let params = NmfParams::new(k).loss(loss).check().unwrap();
                let dense = planted(n, zeros);
                let csr = CsrMatrix::from_dense(dense.view());
                let x: MatRef<f32> = if sparse {
                    (&csr).into()
                } else {
                    (&dense).into()
                };
                let x = Valid::check(x, 0, ValueRule::for_beta(loss.beta()), 1).unwrap();
                let learnt = Learnt::default();
                let prepared = || Prepared::new(&params, h.view()).learning_after(&params, learnt);
                let (mut prep, alone) = (prepared(), prepared());
                assert!(prep.scored_with_statistics(&params, x.view()), "{loss:?}");
                let got = solve_batch(&params, h.view(), x, 2, learnt);
                let (want, parts) = solve_chunked(&params, &alone, x, 2, None, |xc, w| {
                    Contribution::new(loss, Unobserved::Zero, xc, w, alone.h())
                });
                let case = format!("{loss:?} sparse {sparse} n {n}");
                assert!(got.codes.loss > 0.0, "{case}");
                assert_eq!(got.codes.loss.to_bits(), want.loss.to_bits(), "{case}");
                assert_eq!(got.codes.w, want.w, "{case}");
                let mut sum = parts[0].clone();
                for part in &parts[1..] {
                    sum.add(part);
                }
                assert_eq!(got.contribution.first, sum.first, "{case}");
                assert_eq!(got.contribution.second, sum.second, "{case}");
                assert_eq!(got.contribution.energy, sum.energy, "{case}");
            }
        }
    }
}
