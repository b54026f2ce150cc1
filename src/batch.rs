//! Mini-batches: dense or CSR data plus optional row ids, and the kernels that touch X.
//!
//! Every X-dependent term of the algorithms (`X Hᵀ`, `Wᵀ X`, norms, validation) lives
//! here, so a sparse batch costs O(nnz · k) for them and never gets densified, except by
//! the general-beta multiplicative updates (documented in [`crate::Loss`]).

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::error::{Error, Result};
use crate::float::Float;

/// An owned sparse matrix in compressed sparse row (CSR) form.
///
/// Column indices within a row are strictly increasing. Built with
/// [`CsrMatrix::try_new`], which checks the structure, or from a dense array.
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
    /// Builds a CSR matrix from its three arrays, checking that `indptr` starts at 0, never
    /// decreases and ends at `data.len()`, and that each row's column indices are strictly
    /// increasing and below `ncols`.
    ///
    /// ```
    /// use streamnmf::CsrMatrix;
    /// assert!(CsrMatrix::try_new(2, vec![0, 1], vec![5], vec![1.0f32]).is_err()); // column 5 >= 2
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
        let mut indptr = Vec::with_capacity(x.nrows() + 1);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        indptr.push(0);
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != F::zero() {
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

    /// Rows.
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    /// Columns.
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Stored entries.
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
    /// Rows.
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }
    /// Columns.
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    /// Stored entries in these rows.
    pub fn nnz(&self) -> usize {
        self.indptr[self.nrows()] - self.indptr[0]
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
}

/// A borrowed data matrix, dense or CSR: what every kernel takes.
///
/// `&Array2`, `ArrayView2`, `&CsrMatrix` and `&Batch` all convert into it, so
/// `model.fit(&x)` works for each.
///
/// ```
/// use ndarray::array;
/// use streamnmf::MatRef;
/// let x = array![[1.0f64, 2.0], [3.0, 4.0]];
/// let m: MatRef<f64> = (&x).into();
/// assert_eq!((m.nrows(), m.ncols()), (2, 2));
/// assert_eq!(m.squared_norm(), 30.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub enum MatRef<'a, F> {
    /// A dense array (any memory layout).
    Dense(ArrayView2<'a, F>),
    /// A CSR matrix.
    Csr(CsrView<'a, F>),
}

impl<'a, F: Float> From<&'a Array2<F>> for MatRef<'a, F> {
    fn from(x: &'a Array2<F>) -> Self {
        MatRef::Dense(x.view())
    }
}
impl<'a, F: Float> From<ArrayView2<'a, F>> for MatRef<'a, F> {
    fn from(x: ArrayView2<'a, F>) -> Self {
        MatRef::Dense(x)
    }
}
impl<'a, F: Float> From<&'a CsrMatrix<F>> for MatRef<'a, F> {
    fn from(x: &'a CsrMatrix<F>) -> Self {
        MatRef::Csr(x.view())
    }
}
impl<'a, F: Float> From<&'a Batch<F>> for MatRef<'a, F> {
    fn from(b: &'a Batch<F>) -> Self {
        b.data.view()
    }
}

impl<'a, F: Float> MatRef<'a, F> {
    /// Rows.
    pub fn nrows(&self) -> usize {
        match self {
            MatRef::Dense(x) => x.nrows(),
            MatRef::Csr(x) => x.nrows(),
        }
    }
    /// Columns.
    pub fn ncols(&self) -> usize {
        match self {
            MatRef::Dense(x) => x.ncols(),
            MatRef::Csr(x) => x.ncols(),
        }
    }
    /// Stored entries (rows × columns when dense).
    pub fn nnz(&self) -> usize {
        match self {
            MatRef::Dense(x) => x.len(),
            MatRef::Csr(x) => x.nnz(),
        }
    }
    /// Rows `range`, without copying.
    pub fn slice_rows(&self, range: Range<usize>) -> MatRef<'a, F> {
        match self {
            MatRef::Dense(x) => MatRef::Dense(x.slice_move(ndarray::s![range, ..])),
            MatRef::Csr(x) => MatRef::Csr(x.slice_rows(range)),
        }
    }
    /// The dense equivalent (a copy).
    pub fn to_dense(&self) -> Array2<F> {
        match self {
            MatRef::Dense(x) => x.to_owned(),
            MatRef::Csr(x) => x.to_dense(),
        }
    }

    /// Visits every stored entry as `(row, col, value)`, row by row.
    pub(crate) fn for_each_stored(&self, mut f: impl FnMut(usize, usize, F)) {
        match self {
            MatRef::Dense(x) => {
                for (i, row) in x.rows().into_iter().enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        f(i, j, v)
                    }
                }
            }
            MatRef::Csr(x) => {
                for i in 0..x.nrows() {
                    let (cols, vals) = x.row(i);
                    for (&j, &v) in cols.iter().zip(vals) {
                        f(i, j as usize, v)
                    }
                }
            }
        }
    }

    /// Checks every stored value: finite, non-negative, and (for `beta <= 0`, where the
    /// divergence is undefined at zero) strictly positive, including a sparse matrix's
    /// implicit zeros. `first_row` is the global index of row 0, for the error.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{Error, MatRef};
    /// let x = array![[1.0f64, 2.0], [3.0, -4.0]];
    /// let err = MatRef::from(&x).validate(100, 2.0).unwrap_err();
    /// assert!(matches!(err, Error::NegativeValue { row: 101, col: 1, .. }));
    /// ```
    pub fn validate(&self, first_row: u64, beta: f64) -> Result<()> {
        if self.nrows() == 0 || self.ncols() == 0 {
            return Err(Error::EmptyBatch {
                rows: self.nrows(),
                cols: self.ncols(),
            });
        }
        let zero_bad = beta <= 0.0;
        // Fast path: a contiguous dense batch is checked with a vectorizable scan; the
        // element-by-element walk below only runs to locate a bad value.
        if let MatRef::Dense(x) = self {
            if let Some(vals) = x.as_slice() {
                let ok = crate::kernels::all_valid(vals, zero_bad);
                if ok {
                    return Ok(());
                }
            }
        }
        let mut err = None;
        let mut check = |i: usize, j: usize, v: F| {
            if err.is_some() {
                return;
            }
            let row = first_row + i as u64;
            if !v.is_finite() {
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
            } else if zero_bad && v == F::zero() {
                err = Some(Error::ZeroForBeta { row, col: j, beta });
            }
        };
        self.for_each_stored(&mut check);
        if let Some(e) = err {
            return Err(e);
        }
        if let (true, MatRef::Csr(x)) = (zero_bad, self) {
            for i in 0..x.nrows() {
                let (cols, _) = x.row(i);
                if cols.len() < x.ncols() {
                    // The first implicit zero: the first column not stored.
                    let col = cols
                        .iter()
                        .enumerate()
                        .find(|(t, &c)| *t as u32 != c)
                        .map_or(cols.len(), |(t, _)| t);
                    return Err(Error::ZeroForBeta {
                        row: first_row + i as u64,
                        col,
                        beta,
                    });
                }
            }
        }
        Ok(())
    }

    /// Σ x², accumulated in f64.
    pub fn squared_norm(&self) -> f64 {
        if let MatRef::Dense(x) = self {
            if let Some(vals) = x.as_slice() {
                return crate::kernels::sum_squares(vals);
            }
        }
        let mut s = 0.0;
        self.for_each_stored(|_, _, v| s += v.as_f64() * v.as_f64());
        s
    }

    /// Σ x, accumulated in f64.
    pub fn sum(&self) -> f64 {
        let mut s = 0.0;
        self.for_each_stored(|_, _, v| s += v.as_f64());
        s
    }

    /// `X · Hᵀ` (b × k), given `Hᵀ` (p × k, standard layout). Costs nnz · k when sparse.
    pub fn x_ht(&self, ht: ArrayView2<F>) -> Array2<F> {
        match self {
            MatRef::Dense(x) => x.dot(&ht),
            MatRef::Csr(x) => {
                let k = ht.ncols();
                let ht = ht.as_standard_layout();
                let hs = ht.as_slice().expect("standard layout");
                let mut out = Array2::<F>::zeros((x.nrows(), k));
                let os = out.as_slice_mut().expect("fresh array");
                crate::kernels::csr_x_ht(*x, hs, k, os);
                out
            }
        }
    }

    /// `Wᵀ · X` (k × p) for codes `W` (b × k), stored column-major: its transpose `Xᵀ W` is
    /// a standard p × k array, which a sparse X fills in place (nnz · k, one zeroing, no
    /// transposition).
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{CsrMatrix, MatRef};
    /// let x = array![[1.0f64, 0.0, 2.0], [0.0, 3.0, 0.0]];
    /// let w = array![[1.0, 0.5], [2.0, 0.0]];
    /// let csr = CsrMatrix::from_dense(x.view());
    /// let wtx = MatRef::from(&csr).wt_x(w.view());
    /// assert!(wtx.t().is_standard_layout());
    /// assert_eq!(wtx, w.t().dot(&x));
    /// assert_eq!(MatRef::from(&x).wt_x(w.view()), wtx);
    /// ```
    pub fn wt_x(&self, w: ArrayView2<F>) -> Array2<F> {
        let k = w.ncols();
        let mut out = Array2::zeros((k, self.ncols()).f());
        match self {
            MatRef::Dense(x) => general_mat_mul(F::one(), &w.t(), x, F::zero(), &mut out),
            MatRef::Csr(x) => {
                let w = w.as_standard_layout();
                let ws = w.as_slice().expect("standard layout");
                let mut outt = out.view_mut().reversed_axes();
                let accs = outt.as_slice_mut().expect("column-major out");
                crate::kernels::csr_xt_w(*x, ws, k, accs);
            }
        }
        out
    }

    /// `out ← scale · out + Wᵀ · X` for codes `W` (b × k) and `out` (k × p).
    /// Costs nnz · k (+ k · p) when sparse.
    pub fn add_wt_x(&self, w: ArrayView2<F>, scale: F, out: &mut Array2<F>) {
        match self {
            MatRef::Dense(x) => general_mat_mul(F::one(), &w.t(), x, scale, out),
            MatRef::Csr(x) => {
                let k = w.ncols();
                let w = w.as_standard_layout();
                let ws = w.as_slice().expect("standard layout");
                // Accumulate Xᵀ W (p × k) so the inner loop is contiguous, then add its
                // transpose once.
                let mut acc = Array2::<F>::zeros((x.ncols(), k));
                let accs = acc.as_slice_mut().expect("fresh array");
                crate::kernels::csr_xt_w(*x, ws, k, accs);
                scale_add_transposed(out, scale, acc.view());
            }
        }
    }
}

/// `v ← x / max(v, clip)` (the KL ratio), vectorized when both are contiguous.
pub(crate) fn kl_ratio_into<F: Float>(v: &mut Array2<F>, x: &Array2<F>, clip: F) {
    match (v.as_slice_mut(), x.as_slice()) {
        (Some(vs), Some(xs)) if vs.len() == xs.len() => crate::kernels::kl_ratio(vs, xs, clip),
        _ => ndarray::Zip::from(v)
            .and(x)
            .for_each(|e, &xv| *e = xv / e.max(clip)),
    }
}

/// `out ← scale · out + accᵀ`.
pub(crate) fn scale_add_transposed<F: Float>(out: &mut Array2<F>, scale: F, acc: ArrayView2<F>) {
    if scale == F::zero() {
        out.assign(&acc.t());
    } else {
        if scale != F::one() {
            out.mapv_inplace(|v| v * scale);
        }
        *out += &acc.t();
    }
}

/// Ids that identify the rows of a batch, carried through to the outputs.
///
/// ```
/// use streamnmf::RowIds;
/// let ids = RowIds::Int64(vec![10, 11]);
/// assert_eq!(ids.len(), 2);
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
}

/// An owned data matrix, dense or CSR.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::Matrix;
/// let m = Matrix::Dense(Array2::<f32>::ones((2, 3)));
/// assert_eq!(m.view().ncols(), 3);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Matrix<F> {
    /// Dense rows.
    Dense(Array2<F>),
    /// Sparse rows.
    Csr(CsrMatrix<F>),
}

impl<F: Float> Matrix<F> {
    /// A borrowed view.
    pub fn view(&self) -> MatRef<'_, F> {
        match self {
            Matrix::Dense(x) => MatRef::Dense(x.view()),
            Matrix::Csr(x) => MatRef::Csr(x.view()),
        }
    }
}

/// Gathers `rows` (pairs of batch index and row) from `batches` (all dense or all CSR,
/// same width) into one matrix, in that order.
pub(crate) fn gather_rows<F: Float>(
    batches: &[Batch<F>],
    rows: &[(usize, usize)],
) -> (Matrix<F>, Option<RowIds>) {
    let ids = batches
        .first()
        .and_then(|b| b.ids.as_ref())
        .map(|first| match first {
            RowIds::Int64(_) => RowIds::Int64(
                rows.iter()
                    .map(|&(b, r)| match &batches[b].ids {
                        Some(RowIds::Int64(v)) => v[r],
                        _ => 0,
                    })
                    .collect(),
            ),
            RowIds::Utf8(_) => RowIds::Utf8(
                rows.iter()
                    .map(|&(b, r)| match &batches[b].ids {
                        Some(RowIds::Utf8(v)) => v[r].clone(),
                        Some(RowIds::Int64(v)) => v[r].to_string(),
                        None => String::new(),
                    })
                    .collect(),
            ),
        });
    let data = match batches.first().map(|b| &b.data) {
        Some(Matrix::Csr(first)) => {
            let mut indptr = vec![0];
            let (mut indices, mut data) = (Vec::new(), Vec::new());
            for &(b, r) in rows {
                if let Matrix::Csr(m) = &batches[b].data {
                    let (c, v) = m.view().row(r);
                    indices.extend_from_slice(c);
                    data.extend_from_slice(v);
                }
                indptr.push(data.len());
            }
            Matrix::Csr(CsrMatrix {
                ncols: first.ncols(),
                indptr,
                indices,
                data,
            })
        }
        _ => {
            let p = batches.first().map_or(0, |b| b.view().ncols());
            let mut out = Array2::zeros((rows.len(), p));
            for (mut o, &(b, r)) in out.rows_mut().into_iter().zip(rows) {
                if let Matrix::Dense(x) = &batches[b].data {
                    o.assign(&x.row(r));
                }
            }
            Matrix::Dense(out)
        }
    };
    (data, ids)
}

/// One mini-batch: data rows, optional row ids, and the global index of its first row.
///
/// ```
/// use ndarray::array;
/// use streamnmf::{Batch, RowIds};
/// let b = Batch::dense(array![[1.0f64, 0.0], [0.5, 2.0]])
///     .with_first_row(1000)
///     .with_ids(RowIds::Int64(vec![7, 8]))
///     .unwrap();
/// assert_eq!(b.rows(), 2);
/// assert_eq!(b.first_row, 1000);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<F> {
    /// The data.
    pub data: Matrix<F>,
    /// Optional ids, one per row.
    pub ids: Option<RowIds>,
    /// Global index (0-based over the whole input) of the batch's first row.
    pub first_row: u64,
}

impl<F: Float> Batch<F> {
    /// A dense batch starting at global row 0.
    pub fn dense(x: Array2<F>) -> Self {
        Self {
            data: Matrix::Dense(x),
            ids: None,
            first_row: 0,
        }
    }
    /// A sparse batch starting at global row 0.
    pub fn csr(x: CsrMatrix<F>) -> Self {
        Self {
            data: Matrix::Csr(x),
            ids: None,
            first_row: 0,
        }
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
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.data.view().nrows()
    }
    /// A borrowed view of the data.
    pub fn view(&self) -> MatRef<'_, F> {
        self.data.view()
    }
}

/// `out ← W · H`, reusing `out`'s allocation.
pub(crate) fn reconstruct_into<F: Float>(
    w: ArrayView2<F>,
    h: ArrayView2<F>,
    out: &mut ArrayViewMut2<F>,
) {
    general_mat_mul(F::one(), &w, &h, F::zero(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn sample() -> Array2<f64> {
        array![
            [1.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 3.0, 0.5, 4.0]
        ]
    }

    #[test]
    fn csr_kernels_match_dense() {
        let x = sample();
        let csr = CsrMatrix::from_dense(x.view());
        assert_eq!(csr.nnz(), 5);
        let ht = array![[1.0, 2.0], [0.5, 0.0], [3.0, 1.0], [0.0, 1.5]];
        let d = MatRef::from(&x).x_ht(ht.view());
        let s = MatRef::from(&csr).x_ht(ht.view());
        assert_eq!(d, s);
        assert_eq!(d, x.dot(&ht));

        let w = array![[1.0, 0.5], [2.0, 0.0], [0.0, 1.0]];
        let mut od = Array2::from_elem((2, 4), 1.0);
        let mut os = od.clone();
        MatRef::from(&x).add_wt_x(w.view(), 0.5, &mut od);
        MatRef::from(&csr).add_wt_x(w.view(), 0.5, &mut os);
        assert_eq!(od, os);
        assert_eq!(od, w.t().dot(&x) + 0.5);
        // The column-major product, sparse and dense.
        let of = MatRef::from(&csr).wt_x(w.view());
        assert!(of.t().is_standard_layout());
        assert_eq!(of, w.t().dot(&x));
        assert_eq!(MatRef::from(&x).wt_x(w.view()), of);
    }

    #[test]
    fn slicing_is_consistent() {
        let x = sample();
        let csr = CsrMatrix::from_dense(x.view());
        let tail = MatRef::from(&csr).slice_rows(1..3);
        assert_eq!(tail.to_dense(), x.slice(ndarray::s![1..3, ..]));
        assert_eq!(tail.nnz(), 3);
        assert_eq!(tail.squared_norm(), 9.0 + 0.25 + 16.0);
    }

    #[test]
    fn malformed_csr_is_rejected() {
        let e = CsrMatrix::<f64>::try_new(3, vec![0, 2], vec![1, 1], vec![1.0, 2.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { row: 0, .. })));
        let e = CsrMatrix::<f64>::try_new(3, vec![0, 2, 1], vec![1, 2], vec![1.0, 2.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { .. })));
        let e = CsrMatrix::<f64>::try_new(3, vec![1, 2], vec![1], vec![1.0]);
        assert!(matches!(e, Err(Error::MalformedSparse { .. })));
    }

    #[test]
    fn sparse_implicit_zero_is_caught_for_itakura_saito() {
        let csr =
            CsrMatrix::try_new(3, vec![0, 3, 5], vec![0, 1, 2, 0, 2], vec![1.0f64; 5]).unwrap();
        let e = MatRef::from(&csr).validate(10, 0.0).unwrap_err();
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
        MatRef::from(&csr).validate(10, 1.0).unwrap();
    }
}
