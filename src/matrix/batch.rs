//! Mini-batches: data rows with their ids and where they came from (the ways rows are
//! regrouped on their way to the solvers are in [`super::buffer`]).

use std::sync::Arc;

use ndarray::Array2;

use super::csr::{CsrBuilder, CsrMatrix};
use super::mat::{MatRef, Matrix};
use super::spare;
use super::validate::Screened;
use crate::error::{Error, Result};
use crate::float::Float;

/// Ids that identify the rows of a batch, carried through to the outputs.
///
/// Integer ids stay integers; as soon as integer and string ids meet (files whose id
/// columns differ), every id becomes a string: the one rule for mixing them.
///
/// ```
/// use streamnmf::RowIds;
/// let mut ids = RowIds::Int64(vec![10, 11]);
/// ids.append(RowIds::Utf8(vec!["u7".into()]));
/// assert_eq!(ids, RowIds::Utf8(vec!["10".into(), "11".into(), "u7".into()]));
/// let tail = ids.split_off(1);
/// assert_eq!((ids.len(), tail.len()), (1, 2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum RowIds {
    /// Integer ids.
    Int64(Vec<i64>),
    /// String ids.
    Utf8(Vec<String>),
}

impl RowIds {
    /// Number of ids.
    pub fn len(&self) -> usize {
        match self {
            RowIds::Int64(v) => v.len(),
            RowIds::Utf8(v) => v.len(),
        }
    }
    /// True when there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends `other`'s ids (as strings if either side holds strings).
    pub fn append(&mut self, other: RowIds) {
        match (&mut *self, other) {
            (RowIds::Int64(a), RowIds::Int64(b)) => a.extend(b),
            (RowIds::Utf8(a), RowIds::Utf8(b)) => a.extend(b),
            (RowIds::Utf8(a), RowIds::Int64(b)) => a.extend(b.iter().map(i64::to_string)),
            (RowIds::Int64(a), RowIds::Utf8(b)) => {
                let mut s: Vec<String> = a.iter().map(i64::to_string).collect();
                s.extend(b);
                *self = RowIds::Utf8(s);
            }
        }
    }
    /// Keeps the first `at` ids and returns the rest.
    pub fn split_off(&mut self, at: usize) -> RowIds {
        match self {
            RowIds::Int64(v) => RowIds::Int64(v.split_off(at)),
            RowIds::Utf8(v) => RowIds::Utf8(v.split_off(at)),
        }
    }
    /// An empty list of the same kind.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(super) fn empty_like(&self) -> RowIds {
        match self {
            RowIds::Int64(_) => RowIds::Int64(Vec::new()),
            RowIds::Utf8(_) => RowIds::Utf8(Vec::new()),
        }
    }
    /// The id at `i`, as one of its own kind.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(super) fn one(&self, i: usize) -> RowIds {
        match self {
            RowIds::Int64(v) => RowIds::Int64(vec![v[i]]),
            RowIds::Utf8(v) => RowIds::Utf8(vec![v[i].clone()]),
        }
    }
}

/// Where the rows of a batch came from: consecutive runs of rows from a named source
/// (a file, `<stdin>`) starting at a row of that source. Errors about a value use it to
/// name the file and the row within the file.
///
/// ```
/// use streamnmf::Origin;
/// let o = Origin::source("part-1.parquet", 500);
/// assert_eq!(o.locate(3), Some(("part-1.parquet", 503)));
/// assert_eq!(Origin::default().locate(3), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// `(first batch row, source name, row of the source)`, by increasing batch row.
    runs: Vec<(usize, Arc<str>, u64)>,
}

impl Origin {
    /// Every row from `name`, the first one being that source's row `first_row`.
    pub fn source(name: impl Into<Arc<str>>, first_row: u64) -> Self {
        Self {
            runs: vec![(0, name.into(), first_row)],
        }
    }
    /// The source and its row for batch row `row`, when known.
    pub fn locate(&self, row: usize) -> Option<(&str, u64)> {
        self.run_of(row).map(|(name, r)| (&**name, r))
    }
    pub(super) fn run_of(&self, row: usize) -> Option<(&Arc<str>, u64)> {
        let i = self.runs.partition_point(|r| r.0 <= row).checked_sub(1)?;
        let (start, name, first) = &self.runs[i];
        Some((name, first + (row - start) as u64))
    }
    /// This origin with batch rows from `row` on coming from `name`, starting at its row
    /// `first` (the readers build origins row run by row run).
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn then(mut self, row: usize, name: Arc<str>, first: u64) -> Self {
        self.push_row_run(row, name, first);
        self
    }
    /// Adds the rows of `other` after the first `offset` rows of this batch.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(super) fn append(&mut self, other: Origin, offset: usize) {
        for (start, name, first) in other.runs {
            self.push_row_run(offset + start, name, first);
        }
    }
    /// A run starting at batch row `start`, merged with the last one when it continues it.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(super) fn push_row_run(&mut self, start: usize, name: Arc<str>, first: u64) {
        if let Some((s, n, f)) = self.runs.last() {
            if Arc::ptr_eq(n, &name) && f + (start - s) as u64 == first {
                return;
            }
        }
        self.runs.push((start, name, first));
    }
    /// Keeps the first `at` rows and returns the origin of the rest.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(super) fn split_off(&mut self, at: usize) -> Origin {
        let mut rest = Origin::default();
        let keep = self.runs.partition_point(|r| r.0 < at);
        if let Some((start, name, first)) = keep.checked_sub(1).map(|i| self.runs[i].clone()) {
            // The run that straddles `at` continues in the rest.
            rest.runs.push((0, name, first + (at - start) as u64));
        }
        for (start, name, first) in self.runs.drain(keep..) {
            rest.push_row_run(start - at, name, first);
        }
        rest
    }
}

/// One mini-batch: data rows, optional row ids, the global index of its first row
/// (0-based over the whole input), and where its rows came from.
///
/// ```
/// use ndarray::array;
/// use streamnmf::{Batch, RowIds};
/// let b = Batch::dense(array![[1.0f64, 0.0], [0.5, 2.0]])
///     .with_first_row(1000)
///     .with_ids(RowIds::Int64(vec![7, 8]))
///     .unwrap();
/// assert_eq!(b.rows(), 2);
/// assert_eq!(b.first_row(), 1000);
/// assert_eq!(b.ids(), Some(&RowIds::Int64(vec![7, 8])));
/// ```
#[derive(Clone, Debug)]
pub struct Batch<F> {
    pub(super) data: Matrix<F>,
    pub(super) ids: Option<RowIds>,
    pub(super) first_row: u64,
    pub(super) origin: Origin,
    /// What the reader checked of the stored values (see [`Screened`]): a record of
    /// work done, not part of the batch's content, so equality ignores it.
    pub(super) screened: Option<Screened>,
}

impl<F: PartialEq> PartialEq for Batch<F> {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
            && self.ids == other.ids
            && self.first_row == other.first_row
            && self.origin == other.origin
    }
}

impl<F: Float> Batch<F> {
    /// A batch of `data`, starting at global row 0, without ids.
    pub fn new(data: Matrix<F>) -> Self {
        Self {
            data,
            ids: None,
            first_row: 0,
            origin: Origin::default(),
            screened: None,
        }
    }
    /// A dense batch.
    pub fn dense(x: Array2<F>) -> Self {
        Self::new(Matrix::Dense(x))
    }
    /// A sparse batch.
    pub fn csr(x: CsrMatrix<F>) -> Self {
        Self::new(Matrix::Csr(x))
    }
    /// Sets the global index of the first row.
    pub fn with_first_row(mut self, first_row: u64) -> Self {
        self.first_row = first_row;
        self
    }
    /// Attaches row ids; fails when their count differs from the rows.
    pub fn with_ids(mut self, ids: RowIds) -> Result<Self> {
        if ids.len() != self.rows() {
            return Err(Error::RowIdsLength {
                rows: self.rows(),
                ids: ids.len(),
            });
        }
        self.ids = Some(ids);
        Ok(self)
    }
    /// Says where the rows came from (for error messages).
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.data.view().nrows()
    }
    /// A borrowed view of the data.
    pub fn view(&self) -> MatRef<'_, F> {
        self.data.view()
    }
    /// The data.
    pub fn data(&self) -> &Matrix<F> {
        &self.data
    }
    /// The data, without the ids and origin.
    pub(crate) fn into_data(self) -> Matrix<F> {
        self.data
    }
    /// The row ids, if the input has them.
    pub fn ids(&self) -> Option<&RowIds> {
        self.ids.as_ref()
    }
    /// The global index of the first row.
    pub fn first_row(&self) -> u64 {
        self.first_row
    }
    /// Where the rows came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
    /// Records that a reader checked every stored value (see [`Screened`]).
    pub(crate) fn screened_as(mut self, screened: Screened) -> Self {
        self.screened = Some(screened);
        self
    }
    /// What a reader checked of the stored values, if it did.
    pub(crate) fn screened(&self) -> Option<Screened> {
        self.screened
    }
    /// The same rows (ids, origin) with their data changed by `f` (same rows), which keeps
    /// the stored values or drops some (the reader's screening of them still holds).
    pub(crate) fn map_data(
        mut self,
        f: impl FnOnce(Matrix<F>) -> Result<Matrix<F>>,
    ) -> Result<Self> {
        let rows = self.rows();
        let placeholder = Matrix::Dense(Array2::zeros((0, 0)));
        self.data = f(std::mem::replace(&mut self.data, placeholder))?;
        debug_assert_eq!(self.rows(), rows);
        Ok(self)
    }
    /// Hands a sparse batch's storage to the [spare pool](super::spare), leaving the
    /// batch without rows (it is being dropped).
    pub(crate) fn recycle(&mut self) {
        if let Matrix::Csr(m) = &mut self.data {
            let empty = CsrBuilder::new(m.ncols()).finish();
            spare::give(std::mem::replace(m, empty));
        }
    }
    /// The same rows (ids, origin) holding other data of the same shape.
    pub(crate) fn with_data(mut self, data: Matrix<F>) -> Self {
        debug_assert_eq!(data.view().nrows(), self.rows());
        self.data = data;
        self.screened = None;
        self
    }
}

impl<'a, F: Float> From<&'a Batch<F>> for MatRef<'a, F> {
    fn from(b: &'a Batch<F>) -> Self {
        b.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn row_ids_length_is_checked() {
        let err = Batch::dense(Array2::<f64>::ones((3, 2)))
            .with_ids(RowIds::Int64(vec![1]))
            .unwrap_err();
        assert!(matches!(err, Error::RowIdsLength { rows: 3, ids: 1 }));
    }
}
