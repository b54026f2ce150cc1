//! Data matrices, dense or CSR, owned ([`Matrix`]) or borrowed ([`MatRef`]), and the
//! products every algorithm takes of the data: `X Hᵀ` and `Wᵀ X`. A sparse matrix costs
//! O(nnz · k) for both and is never densified by them.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, ShapeBuilder};

use super::csr::{CsrMatrix, CsrView};
use crate::float::Float;
use crate::linalg::gemm::mat_mul;
use crate::linalg::parallel::map_indexed;
use crate::linalg::{simd, sparse, zeros_written};

/// A borrowed data matrix, dense or CSR: what every kernel takes.
///
/// `&Array2`, `ArrayView2`, `&CsrMatrix`, `&Matrix` and `&Batch` all convert into it, so
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
impl<'a, F: Float> From<&'a Matrix<F>> for MatRef<'a, F> {
    fn from(x: &'a Matrix<F>) -> Self {
        x.view()
    }
}

impl<'a, F: Float> MatRef<'a, F> {
    /// The same view with a shorter lifetime (ndarray's views are invariant in theirs).
    pub(crate) fn reborrow<'b>(self) -> MatRef<'b, F>
    where
        'a: 'b,
    {
        match self {
            MatRef::Dense(d) => MatRef::Dense(d.reborrow()),
            MatRef::Csr(c) => MatRef::Csr(c),
        }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        match self {
            MatRef::Dense(x) => x.nrows(),
            MatRef::Csr(x) => x.nrows(),
        }
    }
    /// Number of columns (the width p).
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
    ///
    /// ```
    /// use streamnmf::MatRef;
    /// let x = ndarray::Array2::<f32>::ones((5, 2));
    /// assert_eq!(MatRef::from(&x).slice_rows(1..4).nrows(), 3);
    /// ```
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
    /// An owned copy, in the same representation.
    pub fn to_owned(&self) -> Matrix<F> {
        match self {
            MatRef::Dense(x) => Matrix::Dense(x.to_owned()),
            MatRef::Csr(x) => Matrix::Csr(x.to_owned()),
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

    /// Σ x², accumulated in f64 (in a fixed order, whatever the layout).
    pub fn squared_norm(&self) -> f64 {
        match self {
            MatRef::Dense(x) => {
                if let Some(vals) = x.as_slice() {
                    return simd::sum_squares(vals);
                }
            }
            // Vectorized too: one value at a time through `for_each_stored` was 3 % of a
            // sparse Frobenius fit (100 000 × 20 000, 10 M stored values).
            MatRef::Csr(c) => return simd::sum_squares(c.stored_values()),
        }
        let mut s = 0.0;
        self.for_each_stored(|_, _, v| s += v.as_f64() * v.as_f64());
        s
    }

    /// `(Σ x, smallest positive x, count of positive x)` over the stored values, the sum
    /// in f64 in a fixed order (lanes over the values in row-major order; a dense view in
    /// another layout is copied first).
    pub(crate) fn value_summary(&self) -> (f64, f64, usize) {
        match self {
            MatRef::Dense(x) => {
                let x = x.as_standard_layout();
                simd::value_summary(x.as_slice().expect("standard layout"))
            }
            MatRef::Csr(c) => simd::value_summary(c.stored_values()),
        }
    }

    /// Σ x, accumulated in f64.
    pub fn sum(&self) -> f64 {
        let mut s = 0.0;
        self.for_each_stored(|_, _, v| s += v.as_f64());
        s
    }

    /// `X · Hᵀ` (b × k, standard layout), given `Hᵀ` (p × k). Costs nnz · k when sparse.
    ///
    /// ```
    /// use ndarray::array;
    /// use streamnmf::{CsrMatrix, MatRef};
    /// let x = array![[1.0f64, 0.0, 2.0], [0.0, 3.0, 0.0]];
    /// let ht = array![[1.0, 0.5], [2.0, 0.0], [0.0, 1.0]];
    /// let csr = CsrMatrix::from_dense(x.view());
    /// assert_eq!(MatRef::from(&csr).x_ht(ht.view()), x.dot(&ht));
    /// ```
    pub fn x_ht(&self, ht: ArrayView2<F>) -> Array2<F> {
        let k = ht.ncols();
        match self {
            MatRef::Dense(x) => {
                let mut out = Array2::<F>::zeros((self.nrows(), k));
                mat_mul(F::one(), x, &ht, F::zero(), &mut out);
                out
            }
            MatRef::Csr(x) => {
                let mut out = zeros_written((self.nrows(), k));
                let ht = ht.as_standard_layout();
                let hs = ht.as_slice().expect("standard layout");
                let os = out.as_slice_mut().expect("fresh array");
                sparse::csr_x_ht(x.parts(), hs, k, os);
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
        self.wt_x_on(w, 1)
    }

    /// [`wt_x`](Self::wt_x) on up to `threads` threads, with the same bits for every
    /// thread count. A sparse X is cut into column blocks of about equal stored entries
    /// ([`sparse::column_blocks`]), each filled in place by one task that scans the
    /// batch's rows in order: no per-thread k × p partial sums to zero and add.
    pub(crate) fn wt_x_on(&self, w: ArrayView2<F>, threads: usize) -> Array2<F> {
        let k = w.ncols();
        let mut out = match self {
            MatRef::Dense(x) => {
                let mut out = Array2::zeros((k, self.ncols()).f());
                mat_mul(F::one(), &w.t(), x, F::zero(), &mut out);
                return out;
            }
            MatRef::Csr(_) => zeros_written((k, self.ncols()).f()),
        };
        self.xt_w_add(w, out.view_mut().reversed_axes(), threads);
        out
    }

    /// `out += Xᵀ W` for `out` p × k in standard layout, on up to `threads` threads (the
    /// same bits for any count): [`wt_x_on`](Self::wt_x_on) into a buffer the caller
    /// keeps, such as the init's, which reuses one p × l array for its products.
    pub(crate) fn xt_w_add(&self, w: ArrayView2<F>, mut out: ArrayViewMut2<F>, threads: usize) {
        let k = w.ncols();
        assert_eq!(out.dim(), (self.ncols(), k), "out is p × k");
        match self {
            MatRef::Dense(x) => mat_mul(F::one(), &x.t(), &w, F::one(), &mut out),
            MatRef::Csr(x) => {
                let p = self.ncols();
                if k == 0 {
                    return;
                }
                let w = w.as_standard_layout();
                let ws = w.as_slice().expect("standard layout");
                let mut rest = out.as_slice_mut().expect("standard layout out");
                // Disjoint blocks of Xᵀ W's rows, each behind a lock taken once, to hand
                // `&mut` slices to the pool's shared closure.
                let cuts = sparse::column_blocks(x.parts(), p, threads);
                let mut blocks = Vec::with_capacity(cuts.len());
                for pair in cuts.windows(2) {
                    let (block, tail) = rest.split_at_mut((pair[1] - pair[0]) * k);
                    blocks.push(std::sync::Mutex::new((pair[0], block)));
                    rest = tail;
                }
                map_indexed(blocks.len(), threads, |b| {
                    let mut guard = blocks[b].lock().unwrap_or_else(|e| e.into_inner());
                    let (first, ref mut accs) = *guard;
                    sparse::csr_xt_w(x.parts(), ws, k, accs, first);
                });
            }
        }
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
    fn csr_products_match_dense() {
        let x = sample();
        let csr = CsrMatrix::from_dense(x.view());
        assert_eq!(csr.nnz(), 5);
        let ht = array![[1.0, 2.0], [0.5, 0.0], [3.0, 1.0], [0.0, 1.5]];
        let d = MatRef::from(&x).x_ht(ht.view());
        assert_eq!(d, MatRef::from(&csr).x_ht(ht.view()));
        assert_eq!(d, x.dot(&ht));
        let w = array![[1.0, 0.5], [2.0, 0.0], [0.0, 1.0]];
        let of = MatRef::from(&csr).wt_x(w.view());
        assert!(of.t().is_standard_layout());
        assert_eq!(of, w.t().dot(&x));
        assert_eq!(MatRef::from(&x).wt_x(w.view()), of);
    }

    /// A sparse `Xᵀ W` filled by column blocks on any number of threads gives the bits
    /// of the one-thread product.
    #[test]
    fn sparse_wt_x_same_bits_on_any_threads() {
        let x = Array2::from_shape_fn((300, 57), |(i, j)| {
            if (i * 5 + j * 3) % 7 < 2 {
                ((i + 2 * j) % 13) as f32 * 0.31 + 0.05
            } else {
                0.0
            }
        });
        let csr = CsrMatrix::from_dense(x.view());
        let w = Array2::from_shape_fn((300, 6), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.13);
        let one = MatRef::from(&csr).wt_x(w.view());
        for threads in [2, 3, 8] {
            assert_eq!(MatRef::from(&csr).wt_x_on(w.view(), threads), one);
        }
        let dense = MatRef::from(&x).wt_x(w.view());
        assert!((&one - &dense).iter().all(|d| d.abs() < 1e-4));
    }

    /// The products give the same bits whatever the memory layout of their operands.
    #[test]
    fn products_do_not_depend_on_layout() {
        let x = Array2::from_shape_fn((37, 23), |(i, j)| ((i * 7 + j * 13) % 11) as f32 * 0.37);
        let xf = crate::linalg::to_column_major(x.clone());
        let ht = Array2::from_shape_fn((23, 5), |(j, c)| ((j * 3 + c) % 7) as f32 * 0.11);
        let htf = crate::linalg::to_column_major(ht.clone());
        let a = MatRef::from(&x).x_ht(ht.view());
        assert_eq!(a, MatRef::from(&xf).x_ht(htf.view()));
        let w = Array2::from_shape_fn((37, 5), |(i, c)| ((i + 3 * c) % 5) as f32 * 0.7);
        let wf = crate::linalg::to_column_major(w.clone());
        assert_eq!(
            MatRef::from(&x).wt_x(w.view()),
            MatRef::from(&xf).wt_x(wf.view())
        );
    }

    #[test]
    fn slicing_is_consistent() {
        let x = sample();
        let csr = CsrMatrix::from_dense(x.view());
        let tail = MatRef::from(&csr).slice_rows(1..3);
        assert_eq!(tail.to_dense(), x.slice(ndarray::s![1..3, ..]));
        assert_eq!(tail.nnz(), 3);
        assert_eq!(tail.squared_norm(), 9.0 + 0.25 + 16.0);
        assert_eq!(tail.sum(), 7.5);
    }

    /// The value summary (sum, smallest positive, positives) is the same over a dense
    /// array, a non-contiguous view of it, a CSR copy and a CSR row slice, including
    /// lengths that leave a tail after the lanes.
    #[test]
    fn value_summary_agrees_across_layouts() {
        let x = Array2::from_shape_fn((7, 13), |(i, j)| {
            if (i * 13 + j) % 3 == 0 {
                0.0
            } else {
                ((i * 31 + j * 17) % 23) as f64 / 8.0
            }
        });
        let scalar = |m: &Array2<f64>| {
            let pos: Vec<f64> = m.iter().copied().filter(|&v| v > 0.0).collect();
            (
                m.sum(),
                pos.iter().copied().fold(f64::INFINITY, f64::min),
                pos.len(),
            )
        };
        let (s, m, n) = MatRef::from(&x).value_summary();
        let (es, em, en) = scalar(&x);
        assert!((s - es).abs() < 1e-12 && m == em && n == en, "{s} {m} {n}");
        let t = x.t();
        assert_eq!(MatRef::from(t).value_summary().2, en);
        assert!((MatRef::from(t).value_summary().0 - es).abs() < 1e-12);
        let csr = CsrMatrix::from_dense(x.view());
        let (cs, cm, cn) = MatRef::Csr(csr.view()).value_summary();
        assert!((cs - es).abs() < 1e-12 && cm == em && cn == en);
        let tail = csr.view().slice_rows(4..7);
        let (ts, tm, tn) = MatRef::Csr(tail).value_summary();
        let (xs, xm, xn) = scalar(&x.slice(ndarray::s![4..7, ..]).to_owned());
        assert!((ts - xs).abs() < 1e-12 && tm == xm && tn == xn);
        let empty = Array2::<f64>::zeros((2, 3));
        assert_eq!(
            MatRef::from(&empty).value_summary(),
            (0.0, f64::INFINITY, 0)
        );
    }
}
