//! Where the pipeline reads mini-batches from: the [`BatchSource`] trait, implemented by
//! the file and stream readers of `streamnmf::io` and by [`MemorySource`]. A source only
//! produces batches; the pipeline checks every batch it yields (width and values, with the
//! model's loss) before a solver sees it, so a source of any origin cannot feed invalid
//! data into a model.

use std::sync::Arc;

use ndarray::Array2;

use crate::error::Result;
use crate::float::Float;
use crate::matrix::{Batch, Matrix};

/// The batches of one epoch.
pub type BatchIter<F> = Box<dyn Iterator<Item = Result<Batch<F>>> + Send>;

/// Something the pipeline reads mini-batches from, once per epoch.
///
/// A batch's `first_row` is its global row index (for error messages) and its
/// [`Origin`](crate::Origin) says which file rows it holds, when it has one.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::source::{BatchSource, MemorySource};
/// let mut src = MemorySource::new(Array2::<f64>::ones((10, 3)), 4);
/// let sizes: Vec<usize> = src.epoch(0).unwrap().map(|b| b.unwrap().rows()).collect();
/// assert_eq!(sizes, vec![4, 4, 2]);
/// ```
pub trait BatchSource<F>: Send {
    /// Number of features p.
    fn width(&self) -> usize;
    /// Whether the source can be read more than once (files: yes; streams: no).
    fn rewindable(&self) -> bool;
    /// What to call the source in messages: a file name, `<stdin>` (default: none).
    fn name(&self) -> Option<String> {
        None
    }
    /// Feature names, one per column, or none (the default): features are then named by
    /// their index.
    fn feature_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether the batches are sparse with columns that name features by index, so their
    /// width may differ from a model's: a narrower batch stores nothing in the columns it
    /// lacks, and a wider one brings new features (a growing catalogue), which fitting
    /// adds to the model and computing codes ignores. Dense sources have exactly the
    /// model's columns.
    fn sparse(&self) -> bool {
        false
    }
    /// Stored entries the source dropped because they name features a fixed catalogue
    /// does not know (item ids new to a model, when computing codes).
    fn unknown_entries(&self) -> u64 {
        0
    }
    /// Key-value metadata the source carries (a table's schema metadata), or none (the
    /// default): e.g. the spectrogram settings `streamnmf stft` writes.
    fn metadata(&self) -> std::collections::HashMap<String, String> {
        Default::default()
    }
    /// Asks the source to read only rank `rank`'s share of its input among `ranks`
    /// (a distributed fit), by a fixed rule of its own (e.g. row groups of files), from
    /// the next epoch on; `false` (the default) when it cannot, and the fit takes every
    /// `ranks`-th batch instead (see [`Share`]).
    fn share(&mut self, _rank: usize, _ranks: usize) -> bool {
        false
    }
    /// Whether every epoch yields the same batches, row for row (files read in order:
    /// yes; shuffled per epoch or a stream: no, the default). A multi-pass fit then keeps
    /// each batch's statistics and replaces them exactly in later passes.
    fn same_batches_every_epoch(&self) -> bool {
        false
    }
    /// Says how many epochs the reader will ask for, before the first (a hint: a source
    /// may keep decoded batches for later epochs when there are any). Default: nothing.
    fn will_read(&mut self, _epochs: usize) {}
    /// Rows in one epoch, when the source knows before reading (a hint: it spreads a
    /// multi-pass fit's convergence sample over the whole input). Default: unknown.
    fn rows(&self) -> Option<u64> {
        None
    }
    /// The batches of epoch `epoch` (0-based). Iterators own their state.
    fn epoch(&mut self, epoch: usize) -> Result<BatchIter<F>>;
}

/// An in-memory matrix served in batches (dense or CSR).
///
/// ```
/// use streamnmf::source::{BatchSource, MemorySource};
/// use streamnmf::{CsrMatrix, Matrix};
/// let x = CsrMatrix::from_dense(ndarray::array![[1.0f32, 0.0], [0.0, 2.0], [3.0, 0.0]].view());
/// let mut src = MemorySource::from_matrix(Matrix::Csr(x), 2);
/// let firsts: Vec<u64> = src.epoch(0).unwrap().map(|b| b.unwrap().first_row()).collect();
/// assert_eq!(firsts, vec![0, 2]);
/// ```
pub struct MemorySource<F> {
    data: Arc<Matrix<F>>,
    batch_rows: usize,
}

impl<F: Float> MemorySource<F> {
    /// Serves the rows of a dense matrix in batches of `batch_rows`.
    pub fn new(x: Array2<F>, batch_rows: usize) -> Self {
        Self::from_matrix(Matrix::Dense(x), batch_rows)
    }
    /// Serves the rows of a dense or CSR matrix in batches of `batch_rows`.
    pub fn from_matrix(x: Matrix<F>, batch_rows: usize) -> Self {
        Self {
            data: Arc::new(x),
            batch_rows: batch_rows.max(1),
        }
    }
}

impl<F: Float> BatchSource<F> for MemorySource<F> {
    fn width(&self) -> usize {
        self.data.view().ncols()
    }
    fn sparse(&self) -> bool {
        matches!(*self.data, Matrix::Csr(_))
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn same_batches_every_epoch(&self) -> bool {
        true
    }
    fn rows(&self) -> Option<u64> {
        Some(self.data.view().nrows() as u64)
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let data = self.data.clone();
        let b = self.batch_rows;
        let n = data.view().nrows();
        Ok(Box::new((0..n).step_by(b).map(move |start| {
            let end = (start + b).min(n);
            let rows = data.view().slice_rows(start..end).to_owned();
            Ok(Batch::new(rows).with_first_row(start as u64))
        })))
    }
}

/// A rank's share of a source in a distributed fit: of the source's non-empty batches
/// (numbered in reading order from 0 each epoch), those whose number is `rank` modulo
/// `ranks`. Errors pass through on every rank.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::source::{BatchSource, MemorySource, Share};
/// let mut src = MemorySource::new(Array2::<f64>::ones((10, 3)), 2);
/// let mut second = Share::new(&mut src, 1, 2);
/// let firsts: Vec<u64> = second.epoch(0).unwrap().map(|b| b.unwrap().first_row()).collect();
/// assert_eq!(firsts, vec![2, 6]);
/// ```
pub struct Share<'a, F> {
    inner: &'a mut dyn BatchSource<F>,
    rank: usize,
    ranks: usize,
}

impl<'a, F> Share<'a, F> {
    /// Rank `rank`'s share of `inner` among `ranks` (at least 1).
    pub fn new(inner: &'a mut dyn BatchSource<F>, rank: usize, ranks: usize) -> Self {
        Self {
            inner,
            rank,
            ranks: ranks.max(1),
        }
    }
}

impl<F: Float> BatchSource<F> for Share<'_, F> {
    fn width(&self) -> usize {
        self.inner.width()
    }
    fn rewindable(&self) -> bool {
        self.inner.rewindable()
    }
    fn name(&self) -> Option<String> {
        self.inner.name()
    }
    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names()
    }
    fn sparse(&self) -> bool {
        self.inner.sparse()
    }
    fn unknown_entries(&self) -> u64 {
        self.inner.unknown_entries()
    }
    fn metadata(&self) -> std::collections::HashMap<String, String> {
        self.inner.metadata()
    }
    fn will_read(&mut self, epochs: usize) {
        self.inner.will_read(epochs)
    }
    fn same_batches_every_epoch(&self) -> bool {
        self.inner.same_batches_every_epoch()
    }
    fn rows(&self) -> Option<u64> {
        self.inner.rows().map(|n| n.div_ceil(self.ranks as u64))
    }
    fn epoch(&mut self, epoch: usize) -> Result<BatchIter<F>> {
        let (rank, ranks) = (self.rank, self.ranks);
        let mut t = 0usize;
        let all = self.inner.epoch(epoch)?;
        Ok(Box::new(all.filter(move |b| match b {
            Ok(b) if b.rows() == 0 => false,
            Ok(_) => {
                t += 1;
                (t - 1) % ranks == rank
            }
            Err(_) => true,
        })))
    }
}
