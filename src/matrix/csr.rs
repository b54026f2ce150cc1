//! Compressed sparse row matrices: owned ([`CsrMatrix`]) and borrowed ([`CsrView`]).

use std::ops::Range;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::sparse::CsrParts;

/// An owned sparse matrix in compressed sparse row (CSR) form.
///
/// Column indices within a row are strictly increasing and below the width; the structure
/// is checked once, when the matrix is built ([`CsrMatrix::try_new`]).
///
/// ```
/// use ndarray::array;
/// use streamnmf::CsrMatrix;
/// let m = CsrMatrix::try_new(3, vec![0, 2, 2, 3], vec![0, 2, 1], vec![1.0f64, 2.0, 3.0]).unwrap();
/// assert_eq!(m.nrows(), 3);
/// assert_eq!(m.nnz(), 3);
/// assert_eq!(m.to_dense(), array![[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CsrMatrix<F> {
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<F>,
}

impl<F: Float> CsrMatrix<F> {
    /// Builds a CSR matrix of width `ncols` from its three arrays, checking that `indptr`
    /// starts at 0, never decreases and ends at `data.len()`, and that each row's column
    /// indices are strictly increasing and below `ncols`.
    ///
    /// ```
    /// use streamnmf::{CsrMatrix, Error};
    /// let err = CsrMatrix::try_new(2, vec![0, 1], vec![5], vec![1.0f32]).unwrap_err();
    /// assert!(matches!(err, Error::MalformedSparse { row: 0, .. })); // column 5 >= width 2
    /// ```
    pub fn try_new(
        ncols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<F>,
    ) -> Result<Self> {
        let bad = |row, detail: String| Err(Error::MalformedSparse { row, detail });
        if indptr.first() != Some(&0) {
            return bad(0, "indptr must start with 0".into());
        }
        if indices.len() != data.len() || *indptr.last().unwrap_or(&0) != data.len() {
            return bad(
                indptr.len().saturating_sub(1),
                format!(
                    "indptr ends at {} but there are {} indices and {} values",
                    indptr.last().unwrap_or(&0),
                    indices.len(),
                    data.len()
                ),
            );
        }
        for (row, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return bad(row, "indptr decreases".into());
            }
            let cols = &indices[w[0]..w[1]];
            for (t, &c) in cols.iter().enumerate() {
                if c as usize >= ncols {
                    return bad(row, format!("column index {c} >= width {ncols}"));
                }
                if t > 0 && cols[t - 1] >= c {
                    return bad(
                        row,
                        format!("column indices not strictly increasing at {c}"),
                    );
                }
            }
        }
        Ok(Self {
            ncols,
            indptr,
            indices,
            data,
        })
    }

    /// Converts a dense array, keeping its non-zero entries.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::CsrMatrix;
    /// let x = array![[0.0f64, 1.0], [2.0, 0.0]];
    /// assert_eq!(CsrMatrix::from_dense(x.view()).to_dense(), x);
    /// ```
    pub fn from_dense(x: ArrayView2<F>) -> Self {
        Self::from_dense_keeping(x, |v| v != F::zero())
    }

    /// The entries of `x` for which `keep` holds, zeros included if it says so.
    pub(crate) fn from_dense_keeping(x: ArrayView2<F>, keep: impl Fn(F) -> bool) -> Self {
        let mut indptr = Vec::with_capacity(x.nrows() + 1);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        indptr.push(0);
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if keep(v) {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(data.len());
        }
        Self {
            ncols: x.ncols(),
            indptr,
            indices,
            data,
        }
    }

    /// The same rows in a wider matrix (see [`CsrView::widened`]).
    pub(crate) fn widen(self, ncols: usize) -> Self {
        Self {
            ncols: ncols.max(self.ncols),
            ..self
        }
    }

    /// Number of rows.
    ///
    /// ```
    /// let m = streamnmf::CsrMatrix::<f32>::try_new(4, vec![0, 0, 0], vec![], vec![]).unwrap();
    /// assert_eq!((m.nrows(), m.ncols(), m.nnz()), (2, 4, 0));
    /// ```
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    /// Number of columns (the width p), stored or not.
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
    /// A borrowed view of the whole matrix.
    pub fn view(&self) -> CsrView<'_, F> {
        CsrView {
            ncols: self.ncols,
            indptr: &self.indptr,
            indices: &self.indices,
            data: &self.data,
        }
    }
    /// The dense equivalent.
    pub fn to_dense(&self) -> Array2<F> {
        self.view().to_dense()
    }
}

/// A borrowed CSR matrix, possibly a row range of a larger one (zero-copy).
///
/// ```
/// use streamnmf::CsrMatrix;
/// let m = CsrMatrix::try_new(2, vec![0, 1, 2, 3], vec![0, 1, 0], vec![1.0f64, 2.0, 3.0]).unwrap();
/// let tail = m.view().slice_rows(1..3);
/// assert_eq!(tail.nrows(), 2);
/// assert_eq!(tail.row(1), (&[0u32][..], &[3.0][..]));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CsrView<'a, F> {
    ncols: usize,
    indptr: &'a [usize],
    indices: &'a [u32],
    data: &'a [F],
}

impl<'a, F: Float> CsrView<'a, F> {
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    /// Number of columns (the width p).
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Stored entries in these rows.
    pub fn nnz(&self) -> usize {
        self.indptr[self.nrows()] - self.indptr[0]
    }
    /// The values stored in these rows, in row-major order (a view of some rows of a
    /// larger matrix shares that matrix's arrays: this is the part in its rows).
    pub(crate) fn stored_values(&self) -> &'a [F] {
        &self.data[self.indptr[0]..self.indptr[self.nrows()]]
    }
    /// Column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&'a [u32], &'a [F]) {
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[s..e], &self.data[s..e])
    }
    /// Rows `range` of this view, without copying.
    pub fn slice_rows(&self, range: Range<usize>) -> CsrView<'a, F> {
        CsrView {
            ncols: self.ncols,
            indptr: &self.indptr[range.start..range.end + 1],
            indices: self.indices,
            data: self.data,
        }
    }
    /// An owned copy of these rows.
    pub fn to_owned(&self) -> CsrMatrix<F> {
        let (s, e) = (self.indptr[0], self.indptr[self.nrows()]);
        CsrMatrix {
            ncols: self.ncols,
            indptr: self.indptr.iter().map(|o| o - s).collect(),
            indices: self.indices[s..e].to_vec(),
            data: self.data[s..e].to_vec(),
        }
    }
    /// The dense equivalent.
    pub fn to_dense(&self) -> Array2<F> {
        let mut out = Array2::zeros((self.nrows(), self.ncols));
        for (i, mut orow) in out.rows_mut().into_iter().enumerate() {
            let (cols, vals) = self.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                orow[j as usize] = v;
            }
        }
        out
    }
    /// The same rows in a wider matrix (`ncols` at least the width): the new columns
    /// store nothing.
    pub(crate) fn widened(&self, ncols: usize) -> CsrView<'a, F> {
        CsrView {
            ncols: ncols.max(self.ncols),
            ..*self
        }
    }

    /// The first `ncols` columns, and the number of stored entries beyond them.
    pub(crate) fn first_columns(&self, ncols: usize) -> (CsrMatrix<F>, usize) {
        let m = self.filtered_at(|j, _| (j as usize) < ncols);
        let dropped = self.nnz() - m.nnz();
        (CsrMatrix { ncols, ..m }, dropped)
    }

    /// The stored entries for which `keep` holds.
    pub(crate) fn filtered(&self, keep: impl Fn(F) -> bool) -> CsrMatrix<F> {
        self.filtered_at(|_, v| keep(v))
    }

    /// The stored entries `(column, value)` for which `keep` holds.
    fn filtered_at(&self, keep: impl Fn(u32, F) -> bool) -> CsrMatrix<F> {
        let mut b = CsrBuilder::new(self.ncols());
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for i in 0..self.nrows() {
            let (c, v) = self.row(i);
            cols.clear();
            vals.clear();
            for (&j, &x) in c.iter().zip(v) {
                if keep(j, x) {
                    cols.push(j);
                    vals.push(x);
                }
            }
            b.push_row(&cols, &vals);
        }
        b.finish()
    }

    /// The raw parts, for the kernels of [`crate::linalg`]. `data` and `indices` are the
    /// whole arrays of the matrix viewed: index them through `indptr`.
    pub(crate) fn parts(&self) -> CsrParts<'a, F> {
        CsrParts {
            indptr: self.indptr,
            indices: self.indices,
            data: self.data,
        }
    }
}

/// Builds CSR matrices row by row (the readers, the shuffle buffer, the samples of the
/// init): rows are appended already sorted and in range, so nothing is checked twice.
#[derive(Clone, Debug)]
pub(crate) struct CsrBuilder<F> {
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<F>,
}

impl<F: Float> CsrBuilder<F> {
    pub(crate) fn new(ncols: usize) -> Self {
        Self {
            ncols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }
    /// Makes room for `entries` more stored entries.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn reserve(&mut self, entries: usize) {
        self.indices.reserve(entries);
        self.data.reserve(entries);
    }
    /// Stored entries that fit without a reallocation.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn spare(&self) -> usize {
        self.capacity() - self.data.len()
    }
    /// Stored entries the storage holds without a reallocation.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn capacity(&self) -> usize {
        self.indices.capacity().min(self.data.capacity())
    }
    /// Empties the builder (keeping its storage) for a matrix of `ncols` columns.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn clear(&mut self, ncols: usize) {
        self.ncols = ncols;
        self.indptr.clear();
        self.indptr.push(0);
        self.indices.clear();
        self.data.clear();
    }
    /// Widens the matrix being built to at least `ncols` columns.
    pub(crate) fn widen(&mut self, ncols: usize) {
        self.ncols = self.ncols.max(ncols);
    }
    /// A builder that continues `m` (its storage, no copy).
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn from_matrix(m: CsrMatrix<F>) -> Self {
        Self {
            ncols: m.ncols,
            indptr: m.indptr,
            indices: m.indices,
            data: m.data,
        }
    }
    /// Appends every row of a valid CSR matrix of the same width (or narrower), in bulk.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn append(&mut self, m: &CsrMatrix<F>) {
        let base = self.data.len();
        self.indices.extend_from_slice(&m.indices);
        self.data.extend_from_slice(&m.data);
        self.indptr.extend(m.indptr[1..].iter().map(|&o| base + o));
    }
    /// Splits off the first `rows` rows built so far as a matrix of the current width:
    /// the rest is copied, the front keeps the storage (cheaper than
    /// [`copy_rows`](Self::copy_rows) when the rest is the smaller part).
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn split_front(&mut self, rows: usize) -> CsrMatrix<F> {
        let s = self.indptr[rows];
        let indices = self.indices.split_off(s);
        let data = self.data.split_off(s);
        let indptr = self.indptr[rows..].iter().map(|&o| o - s).collect();
        self.indptr.truncate(rows + 1);
        CsrMatrix {
            ncols: self.ncols,
            indptr: std::mem::replace(&mut self.indptr, indptr),
            indices: std::mem::replace(&mut self.indices, indices),
            data: std::mem::replace(&mut self.data, data),
        }
    }
    /// Stored entries of the rows `rows` built so far.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn entries(&self, rows: Range<usize>) -> usize {
        self.indptr[rows.end] - self.indptr[rows.start]
    }
    /// Appends a row of a valid CSR matrix of the same width (or narrower).
    pub(crate) fn push_row(&mut self, cols: &[u32], vals: &[F]) {
        self.indices.extend_from_slice(cols);
        self.data.extend_from_slice(vals);
        self.indptr.push(self.data.len());
    }
    /// Adds entries to the open row: the entries stored after the last row closed by
    /// [`close_row`](Self::close_row) or [`push_row`](Self::push_row). A reader builds a
    /// row in place this way, then checks it ([`open_row`](Self::open_row)) and closes
    /// it, where staging it elsewhere first cost a copy of every entry.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn extend_open_row(&mut self, cols: impl IntoIterator<Item = u32>, vals: &[F]) {
        self.indices.extend(cols);
        self.data.extend_from_slice(vals);
        debug_assert_eq!(self.indices.len(), self.data.len());
    }
    /// The open row's columns and values, to check or reorder in place.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn open_row(&mut self) -> (&mut [u32], &mut [F]) {
        let s = self.indptr.last().copied().unwrap_or(0);
        (&mut self.indices[s..], &mut self.data[s..])
    }
    /// Ends the open row (possibly empty) as the next row; its columns must be sorted,
    /// distinct and below the width by then.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn close_row(&mut self) {
        self.indptr.push(self.data.len());
    }
    /// Removes the open row's entries, handing them to `f` as `(column, value)` pairs.
    #[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
    pub(crate) fn drain_open_row(&mut self, mut f: impl FnMut(u32, F)) {
        let s = self.indptr.last().copied().unwrap_or(0);
        for (c, v) in self.indices.drain(s..).zip(self.data.drain(s..)) {
            f(c, v);
        }
    }
    pub(crate) fn nnz(&self) -> usize {
        self.data.len()
    }
    /// A copy of the rows `rows` built so far, as a matrix of the current width.
    pub(crate) fn copy_rows(&self, rows: Range<usize>) -> CsrMatrix<F> {
        let (s, e) = (self.indptr[rows.start], self.indptr[rows.end]);
        CsrMatrix {
            ncols: self.ncols,
            indptr: self.indptr[rows.start..=rows.end]
                .iter()
                .map(|&o| o - s)
                .collect(),
            indices: self.indices[s..e].to_vec(),
            data: self.data[s..e].to_vec(),
        }
    }
    /// Drops the first `rows` rows built so far.
    pub(crate) fn drop_front(&mut self, rows: usize) {
        let s = self.indptr[rows];
        self.indices.drain(..s);
        self.data.drain(..s);
        self.indptr.drain(..rows);
        self.indptr.iter_mut().for_each(|o| *o -= s);
    }
    pub(crate) fn finish(self) -> CsrMatrix<F> {
        CsrMatrix {
            ncols: self.ncols,
            indptr: self.indptr,
            indices: self.indices,
            data: self.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row built in place: entries added in pieces, reordered through `open_row`,
    /// closed; an open row drained out leaves the rows before it as they were, and an
    /// empty open row closes as an empty row.
    #[test]
    fn open_rows_build_in_place() {
        let mut b = CsrBuilder::<f32>::new(6);
        b.push_row(&[0, 2], &[1.0, 2.0]);
        b.extend_open_row([5, 1], &[3.0, 4.0]);
        b.extend_open_row([3], &[5.0]);
        let (cols, vals) = b.open_row();
        assert_eq!((&*cols, &*vals), (&[5, 1, 3][..], &[3.0, 4.0, 5.0][..]));
        cols.copy_from_slice(&[1, 3, 5]);
        vals.copy_from_slice(&[4.0, 5.0, 3.0]);
        b.close_row();
        b.extend_open_row([4, 0], &[6.0, 7.0]);
        let mut out = Vec::new();
        b.drain_open_row(|c, v| out.push((c, v)));
        assert_eq!(out, [(4, 6.0), (0, 7.0)]);
        b.close_row();
        let m = b.finish();
        assert_eq!(m.nrows(), 3);
        assert_eq!(m.view().row(0), (&[0, 2][..], &[1.0, 2.0][..]));
        assert_eq!(m.view().row(1), (&[1, 3, 5][..], &[4.0, 5.0, 3.0][..]));
        assert_eq!(m.view().row(2), (&[][..], &[][..]));
        assert_eq!(m.nnz(), 5);
    }

    #[test]
    fn malformed_csr_is_rejected() {
        let e = CsrMatrix::<f64>::try_new(3, vec![0, 2], vec![1, 1], vec![1.0, 2.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { row: 0, .. })));
        let e = CsrMatrix::<f64>::try_new(3, vec![0, 2, 1], vec![1, 2], vec![1.0, 2.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { .. })));
        let e = CsrMatrix::<f64>::try_new(3, vec![1, 2], vec![1], vec![1.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { .. })));
        let e = CsrMatrix::<f64>::try_new(3, vec![], vec![], vec![]);
        assert!(matches!(e, Err(Error::MalformedSparse { .. })));
    }

    #[test]
    fn builder_and_slices_round_trip() {
        let x = ndarray::array![[1.0f32, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.5]];
        let m = CsrMatrix::from_dense(x.view());
        let mut b = CsrBuilder::new(3);
        for i in [2, 0] {
            let (c, v) = m.view().row(i);
            b.push_row(c, v);
        }
        assert_eq!(b.nnz(), 4);
        let back = b.finish().to_dense();
        assert_eq!(back.row(0), x.row(2));
        assert_eq!(back.row(1), x.row(0));
        assert_eq!(
            m.view().slice_rows(1..3).to_owned().to_dense(),
            x.slice(ndarray::s![1..3, ..])
        );
    }

    /// A row range's stored values are its own rows' only (the scans over a batch's
    /// values, such as validation, read no other row of the matrix it views).
    #[test]
    fn row_ranges_store_their_own_values() {
        let x = ndarray::array![[1.0f32, 0.0, 2.0], [0.0, 4.0, 0.0], [0.0, 3.0, 0.5]];
        let m = CsrMatrix::from_dense(x.view());
        assert_eq!(m.view().stored_values(), &[1.0, 2.0, 4.0, 3.0, 0.5]);
        assert_eq!(m.view().slice_rows(1..2).stored_values(), &[4.0]);
        assert_eq!(m.view().slice_rows(2..3).stored_values(), &[3.0, 0.5]);
        assert!(m.view().slice_rows(0..0).stored_values().is_empty());
    }
}
