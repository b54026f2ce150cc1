//! Rows regrouped on their way to the solvers: re-chunked into batches of a fixed size
//! ([`BatchBuffer`]), and gathered in a shuffled order ([`gather_rows`]).

use ndarray::Array2;

use super::batch::{Batch, Origin, RowIds};
use super::csr::CsrBuilder;
use super::mat::Matrix;
use super::spare;
use super::validate::Screened;
use crate::float::Float;

/// Bytes a [`BatchBuffer`] reserves ahead at most (address space, not memory: pages no
/// row is written to are never touched).
const RESERVE_BYTES: usize = 256 << 20;

/// Collects rows of batches (all dense or all CSR, of one width) and hands them out again
/// in batches of any size: the re-chunking between record batches and mini-batches (and
/// the rows of a convergence sample).
pub(crate) struct BatchBuffer<F> {
    width: usize,
    // The stored rows; the first `start` of them were already taken. Taking copies only
    // the rows taken (a remainder is compacted once, at the next push): taking 120-row
    // batches out of 1024-row slices used to copy the rest at every take, 4x the data.
    dense: Vec<F>,
    csr: Option<CsrBuilder<F>>,
    start: usize,
    rows: usize,
    ids: Option<RowIds>,
    origin: Origin,
    /// What holds of every stored row's values (see [`Screened::both`]).
    screened: Option<Screened>,
    /// Rows the batches taken out usually have (0: unknown): a buffer that takes a batch's
    /// storage makes room for that many rows at once, so the pushes that follow do not
    /// grow it by reallocations (copies) of everything stored so far.
    target: usize,
}

impl<F: Float> BatchBuffer<F> {
    pub(crate) fn new() -> Self {
        Self::with_target(0)
    }
    /// A buffer whose takes are usually of `target` rows.
    pub(crate) fn with_target(target: usize) -> Self {
        Self {
            width: 0,
            dense: Vec::new(),
            csr: None,
            start: 0,
            rows: 0,
            ids: None,
            origin: Origin::default(),
            screened: None,
            target,
        }
    }
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
    /// Rows to make room for after a first batch of `n` rows of about `row_bytes` each:
    /// up to the target, at most [`RESERVE_BYTES`] (a batch size beyond the input's rows
    /// must not reserve memory that no row will use).
    fn rows_to_reserve(&self, n: usize, row_bytes: usize) -> usize {
        self.target
            .saturating_sub(n)
            .min(RESERVE_BYTES / row_bytes.max(1))
    }
    /// Appends a batch's rows. An empty buffer takes a dense batch's storage as it is.
    pub(crate) fn push(&mut self, b: Batch<F>) {
        let n = b.rows();
        if self.rows == 0 {
            self.dense.clear();
            self.csr = None;
            self.ids = None;
            self.origin = Origin::default();
        } else if self.start > 0 {
            match self.csr.as_mut() {
                Some(c) => c.drop_front(self.start),
                None => drop(self.dense.drain(..self.start * self.width)),
            }
        }
        self.start = 0;
        self.screened = if self.rows == 0 {
            b.screened
        } else {
            Screened::both(self.screened, b.screened)
        };
        self.origin.append(b.origin, self.rows);
        match (self.ids.as_mut(), b.ids) {
            (Some(a), Some(o)) => a.append(o),
            (None, Some(o)) if self.rows == 0 => self.ids = Some(o),
            // Sources give ids to all their rows or to none; if they ever did not, the
            // rows without ids are numbered, as the codes writer numbers rows.
            (None, Some(o)) => {
                let mut filled = RowIds::Int64((0..self.rows as i64).collect());
                filled.append(o);
                self.ids = Some(filled);
            }
            (Some(a), None) => a.append(RowIds::Int64((0..n as i64).collect())),
            (None, None) => {}
        }
        match b.data {
            Matrix::Dense(x) => {
                self.width = x.ncols();
                if self.dense.is_empty() && x.is_standard_layout() {
                    let (v, offset) = x.into_raw_vec_and_offset();
                    if offset.unwrap_or(0) == 0 {
                        self.dense = v;
                    } else {
                        self.dense.extend_from_slice(&v[offset.unwrap_or(0)..]);
                    }
                    let more = self.rows_to_reserve(n, self.width * std::mem::size_of::<F>());
                    self.dense.reserve(more * self.width);
                } else {
                    let x = x.as_standard_layout();
                    self.dense
                        .extend_from_slice(x.as_slice().expect("standard layout"));
                }
            }
            Matrix::Csr(m) => {
                // A growing catalogue: later rows may be wider; the buffer takes the
                // widest (earlier rows store nothing in the new columns).
                self.width = if self.rows == 0 {
                    m.ncols()
                } else {
                    self.width.max(m.ncols())
                };
                // Room for the rest of a usual batch, at a quarter more entries per row
                // than this batch had.
                let per_row = (m.nnz().div_ceil(n.max(1)) * 5).div_ceil(4);
                let more = self
                    .rows_to_reserve(self.rows + n, per_row * (std::mem::size_of::<F>() + 4))
                    * per_row;
                match self.csr.as_mut() {
                    // An empty buffer builds in the storage of a finished batch if the
                    // pool has one (warm pages), else takes this batch's as it is.
                    None => match spare::take(self.width, m.nnz() + more) {
                        Some(mut c) => {
                            c.append(&m);
                            self.csr = Some(c);
                        }
                        None => {
                            let mut c = CsrBuilder::from_matrix(m);
                            c.reserve(more);
                            self.csr = Some(c);
                        }
                    },
                    Some(c) => {
                        c.widen(self.width);
                        // A builder left with a split-off remainder holds exactly that:
                        // it makes room for the rest of a usual batch at once (in a
                        // finished batch's storage if the pool has one), not by doubling
                        // reallocations (each a copy of everything so far).
                        if c.spare() < m.nnz() {
                            let room = c.nnz() + m.nnz() + more;
                            match spare::take(self.width, room) {
                                Some(s) => {
                                    let rest = std::mem::replace(c, s);
                                    c.append(&rest.finish());
                                }
                                None => c.reserve(m.nnz() + more),
                            }
                        }
                        c.append(&m);
                    }
                }
            }
        }
        self.rows += n;
    }
    /// Takes the first `n` rows (at most [`rows`](Self::rows)) out as a batch whose first
    /// row has the global index `first_row`.
    pub(crate) fn take(&mut self, n: usize, first_row: u64) -> Batch<F> {
        let n = n.min(self.rows);
        // All that is left, from the front: the storage itself, no copy.
        let whole = self.start == 0 && n == self.rows;
        let rows = self.start..self.start + n;
        let mut split = false;
        let data = match self.csr.as_mut() {
            Some(c) if whole => {
                c.widen(self.width);
                Matrix::Csr(std::mem::replace(c, CsrBuilder::new(self.width)).finish())
            }
            Some(c) => {
                c.widen(self.width);
                // Copy the smaller side: the rows taken, or (from the front) the rest.
                let rest = self.start + self.rows;
                if self.start == 0 && c.entries(n..rest) < c.entries(rows.clone()) {
                    let front = c.split_front(n);
                    split = true;
                    Matrix::Csr(front)
                } else {
                    Matrix::Csr(c.copy_rows(rows))
                }
            }
            None => {
                let w = self.width;
                let head = if whole {
                    std::mem::take(&mut self.dense)
                } else {
                    self.dense[rows.start * w..rows.end * w].to_vec()
                };
                Matrix::Dense(Array2::from_shape_vec((n, w), head).expect("n rows of the width"))
            }
        };
        self.start = if whole || split { 0 } else { self.start + n };
        let ids = self.ids.as_mut().map(|ids| {
            let rest = ids.split_off(n);
            std::mem::replace(ids, rest)
        });
        let rest_origin = self.origin.split_off(n);
        let origin = std::mem::replace(&mut self.origin, rest_origin);
        self.rows -= n;
        Batch {
            data,
            ids,
            first_row,
            origin,
            screened: self.screened,
        }
    }
}

/// Gathers `rows` (pairs of batch index and row) from `batches` (all dense or all CSR,
/// one width) into one batch, in that order, with their ids and origins.
#[cfg_attr(not(feature = "arrow"), allow(dead_code))] // used by the readers
pub(crate) fn gather_rows<F: Float>(
    batches: &[Batch<F>],
    rows: &[(usize, usize)],
    first_row: u64,
) -> Batch<F> {
    let mut ids = batches
        .first()
        .and_then(|b| b.ids.as_ref())
        .map(RowIds::empty_like);
    let mut origin = Origin::default();
    for (t, &(b, r)) in rows.iter().enumerate() {
        if let (Some(ids), Some(from)) = (ids.as_mut(), batches[b].ids.as_ref()) {
            ids.append(from.one(r));
        }
        if let Some((name, row)) = batches[b].origin.run_of(r) {
            origin.push_row_run(t, name.clone(), row);
        }
    }
    let data = match batches.first().map(|b| &b.data) {
        Some(Matrix::Csr(first)) => {
            let mut c = CsrBuilder::new(first.ncols());
            for &(b, r) in rows {
                if let Matrix::Csr(m) = &batches[b].data {
                    let (cols, vals) = m.view().row(r);
                    c.push_row(cols, vals);
                }
            }
            Matrix::Csr(c.finish())
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
    Batch {
        data,
        ids,
        first_row,
        origin,
        screened: batches
            .iter()
            .map(|b| b.screened)
            .reduce(Screened::both)
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::matrix::{CsrMatrix, MatRef};
    use ndarray::array;

    fn batch(rows: std::ops::Range<usize>, name: &str) -> Batch<f64> {
        let x = Array2::from_shape_fn((rows.len(), 2), |(i, j)| {
            (rows.start + i) as f64 + j as f64 / 10.0
        });
        Batch::dense(x)
            .with_ids(RowIds::Int64(rows.clone().map(|i| i as i64).collect()))
            .unwrap()
            .with_origin(Origin::source(name, rows.start as u64))
    }

    /// Re-chunking keeps every row, id and origin, across batches of two sources.
    #[test]
    fn buffer_rechunks_rows_ids_and_origins() {
        let mut buf = BatchBuffer::new();
        let a: Arc<str> = "a.parquet".into();
        buf.push(batch(0..5, "a.parquet").with_origin(Origin::source(a.clone(), 0)));
        buf.push(batch(5..8, "b.parquet").with_origin(Origin::source("b.parquet", 0)));
        let first = buf.take(6, 100);
        assert_eq!(first.rows(), 6);
        assert_eq!(first.first_row(), 100);
        assert_eq!(first.ids(), Some(&RowIds::Int64((0..6).collect())));
        assert_eq!(first.origin().locate(4), Some(("a.parquet", 4)));
        assert_eq!(first.origin().locate(5), Some(("b.parquet", 0)));
        let rest = buf.take(6, 106);
        assert_eq!(rest.rows(), 2);
        assert_eq!(rest.origin().locate(1), Some(("b.parquet", 2)));
        assert_eq!(rest.view().to_dense()[[1, 0]], 7.0);
        assert_eq!(buf.rows(), 0);
    }

    /// Takes that leave a remainder, pushes after them, and a take of all that is left:
    /// every row comes out once, in order, dense and sparse alike.
    #[test]
    fn partial_takes_and_pushes_keep_row_order() {
        for sparse in [false, true] {
            let to = |b: Batch<f64>| {
                if sparse {
                    let (ids, origin) = (b.ids.clone(), b.origin.clone());
                    let mut s = Batch::csr(CsrMatrix::from_dense(b.view().to_dense().view()));
                    s.ids = ids;
                    s.origin = origin;
                    s
                } else {
                    b
                }
            };
            let mut buf = BatchBuffer::new();
            buf.push(to(batch(0..5, "a")));
            let mut seen = Vec::new();
            for n in [2, 2] {
                seen.push(buf.take(n, 0));
            }
            buf.push(to(batch(5..8, "a")));
            buf.push(to(batch(8..9, "b")));
            seen.push(buf.take(3, 0));
            seen.push(buf.take(5, 0));
            assert_eq!(buf.rows(), 0);
            buf.push(to(batch(9..11, "b")));
            seen.push(buf.take(2, 0));
            let mut row = 0;
            for b in &seen {
                let x = b.view().to_dense();
                for i in 0..b.rows() {
                    assert_eq!(x[[i, 0]], row as f64, "sparse: {sparse}");
                    assert_eq!(x[[i, 1]], row as f64 + 0.1);
                    assert_eq!(b.ids().unwrap().one(i), RowIds::Int64(vec![row as i64]));
                    row += 1;
                }
            }
            assert_eq!(row, 11);
            assert_eq!(seen[3].origin().locate(1), Some(("b", 8)));
        }
    }

    /// Sparse takes of every size after pushes of every size (taken by copying the rows
    /// taken or, from the front, the rest): the rows come out in order, whole, with their
    /// origins.
    #[test]
    fn sparse_takes_of_any_size_keep_rows_whole() {
        // Row r holds r % 4 entries, in columns r % 7 .. (one row in four is empty).
        let row = |r: usize| -> Vec<(u32, f64)> {
            (0..r % 4)
                .map(|t| ((r % 7 + t) as u32, r as f64 + t as f64 / 10.0))
                .collect()
        };
        let rows_batch = |range: std::ops::Range<usize>| {
            let mut b = CsrBuilder::new(12);
            for r in range.clone() {
                let (c, v): (Vec<u32>, Vec<f64>) = row(r).into_iter().unzip();
                b.push_row(&c, &v);
            }
            Batch::csr(b.finish()).with_origin(Origin::source("f", range.start as u64))
        };
        for (push, take) in [(1, 5), (5, 2), (3, 3), (7, 4), (2, 9)] {
            let mut buf = BatchBuffer::new();
            let (mut next, mut out) = (0, Vec::new());
            while next < 60 || buf.rows() > 0 {
                if next < 60 {
                    let end = (next + push).min(60);
                    buf.push(rows_batch(next..end));
                    next = end;
                }
                while buf.rows() >= take || (next >= 60 && buf.rows() > 0) {
                    out.push(buf.take(take, 0));
                }
            }
            let mut r = 0;
            for b in &out {
                let MatRef::Csr(m) = b.view() else {
                    panic!("sparse rows")
                };
                for i in 0..m.nrows() {
                    let (c, v) = m.row(i);
                    let want: (Vec<u32>, Vec<f64>) = row(r).into_iter().unzip();
                    assert_eq!((c.to_vec(), v.to_vec()), want, "push {push} take {take}");
                    assert_eq!(b.origin().locate(i), Some(("f", r as u64)));
                    r += 1;
                }
            }
            assert_eq!(r, 60);
        }
    }

    /// The remainder a split leaves behind holds exactly its entries; the next push makes
    /// room for the rest of a usual batch at once (growth by doubling copied the buffer
    /// about log2(batch / record batch) times per mini-batch), and the rows stay right.
    #[test]
    fn sparse_remainder_makes_room_for_a_batch() {
        // 10-row pushes of 4 entries a row, 25-row takes: a take from 30 rows splits off
        // the front and keeps a 5-row remainder.
        let rows_batch = |first: usize| {
            let mut b = CsrBuilder::new(8);
            for r in first..first + 10 {
                b.push_row(&[0, 2, 4, 6], &[r as f64, 1.0, 2.0, 3.0]);
            }
            Batch::csr(b.finish())
        };
        let mut buf = BatchBuffer::with_target(25);
        for first in [0, 10, 20] {
            buf.push(rows_batch(first));
        }
        let a = buf.take(25, 0);
        assert_eq!(buf.rows(), 5);
        buf.push(rows_batch(30));
        let spare = buf.csr.as_ref().map(|c| c.spare()).unwrap();
        // 15 rows stored, 10 more to the target at 5 entries a row (a quarter extra).
        assert!(spare >= 10 * 5, "spare {spare}");
        buf.push(rows_batch(40));
        let b = buf.take(25, 25);
        for (batch, first) in [(&a, 0), (&b, 25)] {
            let MatRef::Csr(m) = batch.view() else {
                panic!("sparse rows")
            };
            assert_eq!(m.nrows(), 25);
            for i in 0..25 {
                assert_eq!(m.row(i).1[0], (first + i) as f64);
            }
        }
    }

    /// With a pool entered, a buffer builds its next batch in the storage of a batch that
    /// was recycled (same allocation), from empty and after a split-off remainder, and
    /// the rows come out as pushed.
    #[test]
    fn sparse_batches_are_built_in_recycled_storage() {
        let rows = 1000;
        let batch = |first: usize, n: usize, room: usize| {
            let mut b = CsrBuilder::new(8);
            b.reserve(room);
            for r in first..first + n {
                b.push_row(&[0, 2, 4, 6], &[r as f32, 1.0, 2.0, 3.0]);
            }
            Batch::csr(b.finish())
        };
        let storage = |b: &Batch<f32>| match b.view() {
            MatRef::Csr(m) => m.stored_values().as_ptr(),
            MatRef::Dense(_) => panic!("sparse rows"),
        };
        let spares = spare::Spares::default();
        let _entered = spares.enter();
        let mut buf = BatchBuffer::with_target(rows);
        // A finished batch with room for several of these.
        let mut done = batch(0, 1, 4 * spare::LEAST_ENTRIES);
        let kept = storage(&done);
        done.recycle();
        assert_eq!(done.rows(), 0);
        buf.push(batch(0, 10, 0));
        buf.push(batch(10, rows - 10, 0));
        let mut first = buf.take(rows, 0);
        assert_eq!(storage(&first), kept, "built in the recycled storage");
        // A remainder moves into a kept storage when it needs room.
        buf.push(batch(rows, rows + 5, 0));
        let second = buf.take(rows, rows as u64);
        first.recycle();
        buf.push(batch(2 * rows + 5, rows, 0));
        let third = buf.take(rows, 2 * rows as u64);
        assert_eq!(storage(&third), kept, "the remainder moved into it");
        for (b, first) in [(&second, rows), (&third, 2 * rows)] {
            let MatRef::Csr(m) = b.view() else {
                panic!("sparse rows")
            };
            assert_eq!(m.nrows(), rows);
            for i in [0, 4, 5, 6, rows - 1] {
                assert_eq!(m.row(i).1[0], (first + i) as f32);
            }
        }
    }

    #[test]
    fn buffer_rechunks_sparse_rows() {
        let x = array![[1.0f64, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.5]];
        let mut buf = BatchBuffer::new();
        buf.push(Batch::csr(CsrMatrix::from_dense(x.view())));
        buf.push(Batch::csr(CsrMatrix::from_dense(x.view())));
        let a = buf.take(4, 0);
        let b = buf.take(4, 4);
        assert!(matches!(a.view(), MatRef::Csr(_)));
        assert_eq!(a.view().to_dense().row(3), x.row(0));
        assert_eq!(b.view().to_dense(), x.slice(ndarray::s![1..3, ..]));
    }

    /// A reader's screening of the values (see [`Screened`]) travels with the rows: a
    /// batch taken out of the buffer is screened as leniently as the most lenient batch
    /// pushed since the buffer was last empty, and not at all once an unscreened batch
    /// joined; a gathered batch likewise. Equality ignores it.
    #[test]
    fn screening_travels_with_the_rows() {
        let x = array![[1.0f64, 0.0, 2.0], [0.0, 3.0, 0.5]];
        let strict = Screened {
            nan_allowed: false,
            zero_allowed: false,
        };
        let zeros = Screened {
            zero_allowed: true,
            ..strict
        };
        let part = |s: Option<Screened>| {
            let b = Batch::csr(CsrMatrix::from_dense(x.view()));
            s.map_or(b.clone(), |s| b.screened_as(s))
        };
        let mut buf = BatchBuffer::new();
        buf.push(part(Some(strict)));
        buf.push(part(Some(zeros)));
        assert_eq!(buf.take(1, 0).screened(), Some(zeros));
        assert_eq!(buf.take(3, 1).screened(), Some(zeros));
        // Empty again: the next rows start afresh.
        buf.push(part(Some(strict)));
        assert_eq!(buf.take(1, 4).screened(), Some(strict));
        buf.push(part(None));
        assert_eq!(buf.take(3, 5).screened(), None);
        let gathered = gather_rows(
            &[part(Some(strict)), part(Some(zeros))],
            &[(0, 1), (1, 0)],
            0,
        );
        assert_eq!(gathered.screened(), Some(zeros));
        let gathered = gather_rows(&[part(Some(strict)), part(None)], &[(0, 1)], 0);
        assert_eq!(gathered.screened(), None);
        assert_eq!(part(Some(strict)), part(None));
        // New data is not what the reader saw.
        let replaced = part(Some(strict)).with_data(Matrix::Csr(CsrMatrix::from_dense(x.view())));
        assert_eq!(replaced.screened(), None);
    }

    /// Rows of a growing catalogue: a wider batch widens the buffer, and the rows before
    /// it store nothing in the new columns.
    #[test]
    fn buffer_takes_the_widest_sparse_rows() {
        let narrow = array![[1.0f64, 2.0], [0.0, 3.0]];
        let wide = array![[0.0f64, 0.0, 4.0]];
        let mut buf = BatchBuffer::new();
        buf.push(Batch::csr(CsrMatrix::from_dense(narrow.view())));
        buf.push(Batch::csr(CsrMatrix::from_dense(wide.view())));
        buf.push(Batch::csr(CsrMatrix::from_dense(narrow.view())));
        let a = buf.take(3, 0);
        assert_eq!(
            a.view().to_dense(),
            array![[1.0, 2.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]]
        );
        let b = buf.take(2, 3);
        assert_eq!(b.view().ncols(), 3);
        assert_eq!(b.view().to_dense().column(2).sum(), 0.0);
    }

    #[test]
    fn gathered_rows_keep_ids_and_origins() {
        let parts = vec![batch(0..3, "a"), batch(10..12, "b")];
        let g = gather_rows(&parts, &[(1, 1), (0, 2), (0, 0)], 7);
        assert_eq!(g.ids(), Some(&RowIds::Int64(vec![11, 2, 0])));
        assert_eq!(g.origin().locate(0), Some(("b", 11)));
        assert_eq!(g.origin().locate(1), Some(("a", 2)));
        assert_eq!(g.origin().locate(2), Some(("a", 0)));
        assert_eq!(g.view().to_dense()[[0, 0]], 11.0);
        assert_eq!(g.first_row(), 7);
    }
}
