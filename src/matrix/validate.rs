//! The one validator. Every batch that reaches a solver has passed it, whatever its
//! source: the in-memory API validates what it is given, and the pipeline validates every
//! batch a source yields (files, streams, a user's own `BatchSource`) before a solver
//! sees it. The types make that a property of the data path: solvers take [`Valid`]
//! data, which only [`Valid::check`] and [`ValidBatch::check`] create. One scan is left
//! to the reader where it already made it: a batch whose stored values its reader
//! checked, naming their lines ([`Screened`]), is not scanned again.

use std::ops::{Deref, Range};

use super::batch::Batch;
use super::csr::CsrMatrix;
use super::mat::{MatRef, Matrix};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::parallel::{chunks_of, map_indexed, CHUNK_ROWS};
use crate::linalg::simd;

/// What values a loss accepts: finite and non-negative always, and strictly positive when
/// the loss is undefined at zero (beta <= 0, e.g. Itakura-Saito), counting a sparse
/// matrix's implicit zeros.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ValueRule {
    beta: f64,
    reading: Reading,
    /// Values below this are raised to it before the solvers see them (0: none). With a
    /// floor, zeros are valid under Itakura-Saito (digital silence).
    floor: f64,
}

/// What the stored entries of a matrix are, for the loss (the model's `Unobserved`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Reading {
    /// Every entry is data; an unstored sparse entry is a zero.
    Zeros,
    /// Stored entries are observations (zeros included); NaN and unstored entries are
    /// missing. Solvers get CSR holding the observed entries.
    Observed,
    /// Stored non-zero entries are interactions; zeros and unstored entries are not.
    /// Solvers get CSR holding the non-zero entries.
    Interactions,
}

impl ValueRule {
    /// The rule of the beta-divergence with this beta.
    pub(crate) fn for_beta(beta: f64) -> Self {
        Self {
            beta,
            reading: Reading::Zeros,
            floor: 0.0,
        }
    }
    /// The same rule, raising values below `floor` to it.
    pub(crate) fn with_floor(self, floor: f64) -> Self {
        Self { floor, ..self }
    }
    /// The same rule, reading stored entries as `reading`.
    pub(crate) fn reading(self, reading: Reading) -> Self {
        Self { reading, ..self }
    }
    fn zero_is_bad(&self) -> bool {
        self.beta <= 0.0 && self.reading == Reading::Zeros && self.floor <= 0.0
    }
    fn nan_is_missing(&self) -> bool {
        self.reading == Reading::Observed
    }
    /// Whether a stored value is kept by the conversion to what solvers see.
    fn keeps<F: Float>(&self, v: F) -> bool {
        match self.reading {
            Reading::Zeros => true,
            Reading::Observed => !v.is_nan(),
            Reading::Interactions => v != F::zero(),
        }
    }
}

/// What a reader already checked of a batch's stored values, where it could name each
/// value's line and column: all finite and non-negative, with NaN (a missing entry) and
/// zero allowed or not. [`ValidBatch::check`] skips its own scan of the stored values when
/// this is at least as strict as the loss's rule: the triplet reader checks each record
/// batch's value column, and the batch's scan of the same values after it was 1.8 % of a
/// one-pass sparse fit's CPU (`perf`, 100 000 × 20 000 triplets). Unstored entries
/// (zeros a strict rule refuses) are still checked by the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Screened {
    /// NaN values passed (as missing entries).
    pub(crate) nan_allowed: bool,
    /// Zero values passed.
    pub(crate) zero_allowed: bool,
}

impl Screened {
    /// Whether every value this screening passed also passes `rule`'s check of stored
    /// values.
    fn covers(self, rule: ValueRule) -> bool {
        (!self.nan_allowed || rule.nan_is_missing()) && (!self.zero_allowed || !rule.zero_is_bad())
    }

    /// What holds of the rows of two batches together: a screening of both, as lenient as
    /// the more lenient one (`None` when either was not screened).
    pub(crate) fn both(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        let (a, b) = (a?, b?);
        Some(Self {
            nan_allowed: a.nan_allowed || b.nan_allowed,
            zero_allowed: a.zero_allowed || b.zero_allowed,
        })
    }
}

/// Valid data in the form solvers take: the data itself, or (for observed-only and
/// implicit readings) its CSR of kept entries.
#[derive(Debug)]
pub(crate) enum Observed<'a, F> {
    Same(Valid<'a, F>),
    Converted(Matrix<F>),
}

impl<F: Float> Observed<'_, F> {
    /// Checks an owned matrix (for data the caller had to copy first) and converts it.
    pub(crate) fn owned(
        x: CsrMatrix<F>,
        first_row: u64,
        rule: ValueRule,
        threads: usize,
    ) -> Result<Self> {
        Valid::check(MatRef::Csr(x.view()), first_row, rule, threads)?;
        Ok(Observed::Converted(
            match convert(MatRef::Csr(x.view()), rule) {
                None => Matrix::Csr(x),
                Some(c) => c,
            },
        ))
    }

    /// Sparse data in a matrix of at least `ncols` columns (see [`Valid::widened`]).
    pub(crate) fn widened(self, ncols: usize) -> Self {
        match self {
            Observed::Same(v) => Observed::Same(v.widened(ncols)),
            Observed::Converted(Matrix::Csr(c)) => Observed::Converted(Matrix::Csr(c.widen(ncols))),
            dense => dense,
        }
    }

    /// The data solvers see.
    pub(crate) fn valid(&self) -> Valid<'_, F> {
        match self {
            Observed::Same(v) => Valid(v.0.reborrow()),
            Observed::Converted(m) => Valid(m.view()),
        }
    }
}

/// What solvers see of `x` under `rule`, or `None` when it is `x` itself: the CSR of the
/// entries `rule` keeps (observed-only and implicit readings), or a dense copy raised to
/// the floor.
fn convert<F: Float>(x: MatRef<F>, rule: ValueRule) -> Option<Matrix<F>> {
    match (rule.reading, x) {
        (Reading::Zeros, _) if rule.floor > 0.0 => Some(Matrix::Dense(floored(x, rule.floor))),
        (Reading::Zeros, _) => None,
        (_, MatRef::Dense(d)) => Some(Matrix::Csr(CsrMatrix::from_dense_keeping(d, |v| {
            rule.keeps(v)
        }))),
        (_, MatRef::Csr(c)) => {
            if c.stored_values().iter().all(|&v| rule.keeps(v)) {
                None
            } else {
                Some(Matrix::Csr(c.filtered(|v| rule.keeps(v))))
            }
        }
    }
}

/// Data that passed the validator (derefs to the [`MatRef`] it wraps).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Valid<'a, F>(MatRef<'a, F>);

impl<'a, F> Deref for Valid<'a, F> {
    type Target = MatRef<'a, F>;
    fn deref(&self) -> &MatRef<'a, F> {
        &self.0
    }
}

impl<'a, F: Float> Valid<'a, F> {
    /// Checks every stored value of `x` against `rule`; `first_row` is the global index of
    /// row 0, for the error. With `threads > 1` the rows are checked in fixed chunks on
    /// that many threads; the error reported is still the first in row order.
    pub(crate) fn check(
        x: MatRef<'a, F>,
        first_row: u64,
        rule: ValueRule,
        threads: usize,
    ) -> Result<Self> {
        Self::check_unless_screened(x, first_row, rule, threads, false)
    }

    /// [`Valid::check`], skipping the scan of the stored values when `screened` (a
    /// reader checked them under a rule at least as strict).
    fn check_unless_screened(
        x: MatRef<'a, F>,
        first_row: u64,
        rule: ValueRule,
        threads: usize,
        screened: bool,
    ) -> Result<Self> {
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::EmptyBatch {
                rows: x.nrows(),
                cols: x.ncols(),
            });
        }
        if threads <= 1 || x.nrows() <= CHUNK_ROWS {
            check_values(x, first_row, rule, screened)?;
        } else {
            let ranges: Vec<Range<usize>> = chunks_of(x.nrows(), CHUNK_ROWS).collect();
            map_indexed(ranges.len(), threads, |c| {
                let r = ranges[c].clone();
                let rows = x.slice_rows(r.clone());
                check_values(rows, first_row + r.start as u64, rule, screened)
            })
            .into_iter()
            .collect::<Result<()>>()?;
        }
        Ok(Valid(x))
    }

    /// Rows `range`: still valid.
    pub(crate) fn slice_rows(&self, range: Range<usize>) -> Valid<'a, F> {
        Valid(self.0.slice_rows(range))
    }

    /// The data, as a plain view.
    pub(crate) fn view(&self) -> MatRef<'a, F> {
        self.0
    }

    /// Sparse data in a matrix of at least `ncols` columns (the new ones store nothing,
    /// so it stays valid); dense data as it is.
    pub(crate) fn widened(&self, ncols: usize) -> Valid<'a, F> {
        match self.0 {
            MatRef::Csr(c) if c.ncols() < ncols => Valid(MatRef::Csr(c.widened(ncols))),
            _ => *self,
        }
    }

    /// The data as solvers under `rule` see it (see [`Reading`]).
    pub(crate) fn observed(self, rule: ValueRule) -> Observed<'a, F> {
        match convert(self.0, rule) {
            None => Observed::Same(self),
            Some(c) => Observed::Converted(c),
        }
    }
}

/// A batch that passed the validator, with the width the model expects.
#[derive(Debug)]
pub(crate) struct ValidBatch<F>(Batch<F>);

impl<F: Float> ValidBatch<F> {
    /// Checks a batch's width and values. A bad value is reported at the batch's origin
    /// (file, row in the file, column name from `names`) when the batch has one, and at
    /// its global row otherwise.
    pub(crate) fn check(
        batch: Batch<F>,
        rule: ValueRule,
        width: usize,
        names: &[String],
    ) -> Result<Self> {
        let x = batch.view();
        if x.ncols() != width {
            return Err(Error::WidthMismatch {
                expected: width,
                found: x.ncols(),
            });
        }
        let screened = batch.screened().is_some_and(|s| s.covers(rule));
        if let Err(e) = Valid::check_unless_screened(x, batch.first_row(), rule, 1, screened) {
            let local = match &e {
                Error::NegativeValue { row, .. }
                | Error::NonFinite { row, .. }
                | Error::ZeroForBeta { row, .. } => (row - batch.first_row()) as usize,
                _ => return Err(e),
            };
            return Err(match batch.origin().locate(local) {
                Some((source, row)) => e.at_named_column(row, names).in_file(source),
                None => e,
            });
        }
        match convert(batch.view(), rule) {
            None => Ok(Self(batch)),
            Some(m) => Ok(Self(batch.with_data(m))),
        }
    }

    /// The validated data.
    pub(crate) fn view(&self) -> Valid<'_, F> {
        Valid(self.0.view())
    }

    /// `e` placed where this batch came from: an error about one of its rows
    /// ([`Error::RowOverflow`], counted from the batch's start) at the file and the row
    /// in it, or at the row in the whole input when the batch has no origin; an overflow
    /// of the whole batch in its file, when all its rows come from one.
    pub(crate) fn locate(&self, e: Error) -> Error {
        let origin = self.0.origin();
        match e {
            Error::RowOverflow { row, element } => match origin.locate(row as usize) {
                Some((source, row)) => Error::RowOverflow { row, element }.in_file(source),
                None => Error::RowOverflow { row, element }.counted_from(self.0.first_row()),
            },
            e @ Error::NumericalOverflow { .. } => {
                let last = self.0.rows().saturating_sub(1);
                match (origin.locate(0), origin.locate(last)) {
                    (Some((first, _)), Some((end, _))) if first == end => e.in_file(first),
                    _ => e,
                }
            }
            e => e,
        }
    }

    /// The batch.
    pub(crate) fn batch(&self) -> &Batch<F> {
        &self.0
    }

    /// Hands a sparse batch's storage to the [spare pool](super::spare) for the reader's
    /// next batches, leaving no rows: for a batch that is being dropped.
    pub(crate) fn recycle(&mut self) {
        self.0.recycle();
    }
}

/// `x` densely, with values below `floor` raised to it. Warns once per process when more
/// than 1 % of a batch's values sit below the floor: the floor then shapes the fit.
fn floored<F: Float>(x: MatRef<F>, floor: f64) -> ndarray::Array2<F> {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut d = x.to_dense();
    let f = F::from_f64(floor);
    let mut below = 0usize;
    d.mapv_inplace(|v| {
        if v < f {
            below += 1;
            f
        } else {
            v
        }
    });
    let share = below as f64 / d.len().max(1) as f64;
    if share > 0.01 && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            percent = format!("{:.1}", 100.0 * share),
            epsilon = floor,
            "values below the epsilon floor were raised to it (e.g. silence); a smaller epsilon fits them more closely"
        );
    }
    d
}

/// The rule applied to every stored value of `x`, row by row (unless `screened`: a reader
/// checked them already), then (for a strict rule and a sparse `x`) to the implicit zeros.
/// Contiguous dense data and a CSR matrix's stored values are first checked with a
/// vectorized scan; the element walk only runs to locate a bad value (a sparse batch's
/// walk was 4 % of a sparse pass's CPU time).
fn check_values<F: Float>(
    x: MatRef<F>,
    first_row: u64,
    rule: ValueRule,
    screened: bool,
) -> Result<()> {
    let strict = rule.zero_is_bad();
    let stored_valid = screened
        || match x {
            MatRef::Dense(d) => d.as_slice().is_some_and(|v| simd::all_valid(v, strict)),
            MatRef::Csr(c) => simd::all_valid(c.stored_values(), strict),
        };
    if !stored_valid {
        let mut err = None;
        x.for_each_stored(|i, j, v| {
            if err.is_some() {
                return;
            }
            let row = first_row + i as u64;
            if v.is_nan() && rule.nan_is_missing() {
                // A missing observation.
            } else if !v.is_finite() {
                err = Some(Error::NonFinite {
                    row,
                    col: j,
                    value: v.as_f64(),
                });
            } else if v < F::zero() {
                err = Some(Error::NegativeValue {
                    row,
                    col: j,
                    value: v.as_f64(),
                });
            } else if strict && v == F::zero() {
                err = Some(Error::ZeroForBeta {
                    row,
                    col: j,
                    beta: rule.beta,
                });
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
    }
    if let (true, MatRef::Csr(c)) = (strict, x) {
        for i in 0..c.nrows() {
            let (cols, _) = c.row(i);
            if cols.len() < c.ncols() {
                // The first implicit zero: the first column not stored.
                let col = cols
                    .iter()
                    .enumerate()
                    .find(|(t, &c)| *t as u32 != c)
                    .map_or(cols.len(), |(t, _)| t);
                return Err(Error::ZeroForBeta {
                    row: first_row + i as u64,
                    col,
                    beta: rule.beta,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{CsrMatrix, Origin};
    use ndarray::{array, Array2};

    const FRO: ValueRule = ValueRule {
        beta: 2.0,
        reading: Reading::Zeros,
        floor: 0.0,
    };

    /// A batch whose reader screened its stored values skips the batch's own scan only
    /// when that screening was at least as strict as the loss's rule: a NaN the reader
    /// passed as missing is still refused where the rule has no missing entries, and a
    /// strict rule still finds the implicit zeros of a screened sparse batch.
    #[test]
    fn screened_batches_skip_only_the_scan_they_cover() {
        let strict = Screened {
            nan_allowed: false,
            zero_allowed: false,
        };
        let lenient = Screened {
            nan_allowed: true,
            zero_allowed: true,
        };
        let is = ValueRule::for_beta(0.0);
        let observed = FRO.reading(Reading::Observed);
        assert!(strict.covers(FRO) && strict.covers(is) && strict.covers(observed));
        assert!(lenient.covers(observed) && !lenient.covers(FRO) && !lenient.covers(is));
        let nan =
            CsrMatrix::try_new(3, vec![0, 3], vec![0, 1, 2], vec![1.0f64, f64::NAN, 2.0]).unwrap();
        let batch = |s: Option<Screened>| {
            let b = Batch::csr(nan.clone()).with_first_row(40);
            match s {
                Some(s) => b.screened_as(s),
                None => b,
            }
        };
        // Unscreened, and screened leniently: the batch's scan finds the NaN.
        for s in [None, Some(lenient)] {
            let Err(e) = ValidBatch::check(batch(s), FRO, 3, &[]) else {
                panic!("NaN refused")
            };
            assert!(
                matches!(
                    e,
                    Error::NonFinite {
                        row: 40,
                        col: 1,
                        ..
                    }
                ),
                "{e}"
            );
        }
        // Screened strictly (the reader would have refused that NaN): the scan is skipped.
        assert!(ValidBatch::check(batch(Some(strict)), FRO, 3, &[]).is_ok());
        // Under the observed-only reading the NaN is missing either way.
        assert!(ValidBatch::check(batch(Some(lenient)), observed, 3, &[]).is_ok());
        // A strict rule still checks what is not stored: column 2 of row 0.
        let gap = CsrMatrix::try_new(3, vec![0, 2], vec![0, 1], vec![1.0f64, 2.0]).unwrap();
        let Err(e) = ValidBatch::check(Batch::csr(gap).screened_as(strict), is, 3, &[]) else {
            panic!("implicit zero refused")
        };
        assert!(
            matches!(e, Error::ZeroForBeta { row: 0, col: 2, .. }),
            "{e}"
        );
    }

    /// With a floor, zeros pass under Itakura-Saito and solvers see the floored copy.
    #[test]
    fn floor_admits_zeros_and_raises_them() {
        let x = CsrMatrix::from_dense(array![[0.0f64, 2.0], [1e-9, 0.0]].view());
        let is = ValueRule::for_beta(0.0);
        assert!(Valid::check(MatRef::from(&x), 0, is, 1).is_err());
        let rule = is.with_floor(1e-6);
        let v = Valid::check(MatRef::from(&x), 0, rule, 1).unwrap();
        let seen = v.observed(rule);
        assert_eq!(
            seen.valid().to_dense(),
            array![[1e-6, 2.0], [1e-6, 1e-6]],
            "dense, floored"
        );
    }

    #[test]
    fn reports_the_global_row_and_column() {
        let x = array![[1.0f64, 2.0], [3.0, -4.0]];
        let err = Valid::check(MatRef::from(&x), 100, FRO, 1).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NegativeValue {
                    row: 101,
                    col: 1,
                    ..
                }
            ),
            "{err}"
        );
        let empty = Array2::<f64>::zeros((0, 3));
        let e = Valid::check(MatRef::from(&empty), 0, FRO, 1);
        assert!(matches!(e, Err(Error::EmptyBatch { rows: 0, cols: 3 })));
    }

    /// The parallel scan reports the same (first) error as the sequential one.
    #[test]
    fn parallel_check_reports_the_first_error() {
        let mut x = Array2::<f32>::ones((1000, 3));
        x[[900, 1]] = -1.0;
        x[[300, 2]] = f32::NAN;
        let seq = Valid::check(MatRef::from(&x), 10, FRO, 1)
            .unwrap_err()
            .to_string();
        for threads in [2, 3] {
            let par = Valid::check(MatRef::from(&x), 10, FRO, threads).unwrap_err();
            assert_eq!(par.to_string(), seq);
        }
        assert!(seq.contains("310"), "{seq}");
    }

    /// Stored values of a sparse batch: the vectorized scan passes good ones, and a bad
    /// one is still located (row and real column); a NaN is missing where the rule says.
    #[test]
    fn sparse_stored_values_are_checked_and_located() {
        let csr = |v: Vec<f64>| CsrMatrix::try_new(4, vec![0, 2, 4], vec![0, 3, 1, 2], v).unwrap();
        Valid::check(MatRef::from(&csr(vec![1.0, 2.0, 0.5, 3.0])), 0, FRO, 1).unwrap();
        let bad = csr(vec![1.0, 2.0, 0.5, -3.0]);
        let e = Valid::check(MatRef::from(&bad), 7, FRO, 1).unwrap_err();
        assert!(
            matches!(e, Error::NegativeValue { row: 8, col: 2, .. }),
            "{e}"
        );
        let inf = csr(vec![1.0, f64::INFINITY, 0.5, 3.0]);
        let e = Valid::check(MatRef::from(&inf), 0, FRO, 1).unwrap_err();
        assert!(matches!(e, Error::NonFinite { row: 0, col: 3, .. }), "{e}");
        // Rows sliced off a batch are judged by their own values only.
        let view = bad.view().slice_rows(0..1);
        Valid::check(MatRef::Csr(view), 0, FRO, 1).unwrap();
    }

    #[test]
    fn sparse_implicit_zero_is_caught_for_itakura_saito() {
        let csr =
            CsrMatrix::try_new(3, vec![0, 3, 5], vec![0, 1, 2, 0, 2], vec![1.0f64; 5]).unwrap();
        let is = ValueRule::for_beta(0.0);
        let e = Valid::check(MatRef::from(&csr), 10, is, 1).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ZeroForBeta {
                    row: 11,
                    col: 1,
                    ..
                }
            ),
            "{e}"
        );
        Valid::check(MatRef::from(&csr), 10, ValueRule::for_beta(1.0), 1).unwrap();
    }

    /// A batch with an origin reports the file, the row in the file and the column name.
    #[test]
    fn batch_errors_name_file_row_and_column() {
        let mut x = Array2::<f64>::ones((4, 2));
        x[[2, 1]] = f64::INFINITY;
        let names = vec!["a".to_string(), "b".to_string()];
        let b = Batch::dense(x.clone())
            .with_first_row(50)
            .with_origin(Origin::source("part.parquet", 7));
        let err = ValidBatch::check(b, FRO, 2, &names).unwrap_err();
        assert_eq!(
            err.to_string(),
            "part.parquet: row 9, column 'b': non-finite value inf"
        );
        let err = ValidBatch::check(Batch::dense(x.clone()).with_first_row(50), FRO, 2, &names)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NonFinite {
                    row: 52,
                    col: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = ValidBatch::check(Batch::dense(x), FRO, 3, &names).unwrap_err();
        assert!(matches!(
            err,
            Error::WidthMismatch {
                expected: 3,
                found: 2
            }
        ));
    }
}
