//! Deterministic data parallelism inside one batch.
//!
//! A batch is cut into chunks of a fixed number of rows ([`CHUNK_ROWS`]), whatever the
//! thread count; each chunk is solved on its own, and the per-chunk results are combined
//! in chunk order. So the threads only decide *who* computes a chunk, never *what* is
//! computed: a model is bitwise identical for 1, 2 or 16 threads.
//!
//! The threads are scoped and live for one call: a batch costs milliseconds, a spawn
//! microseconds, and nothing outlives the call (no pool to configure or shut down).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::batch::MatRef;
use crate::error::Result;
use crate::float::Float;

/// Rows per chunk. A multiple of the code solver's row block (64), and small enough that
/// a chunk of a 1000-column f32 batch (1 MB) stays in a core's cache between the steps
/// that read it.
pub const CHUNK_ROWS: usize = 256;

/// The default thread count: the cores available to this process (1 when unknown).
///
/// ```
/// assert!(streamnmf::parallel::default_threads() >= 1);
/// ```
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The row ranges of the chunks of `n` rows.
pub(crate) fn chunks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    chunks_of(n, CHUNK_ROWS)
}

fn chunks_of(n: usize, rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(rows).map(move |s| s..(s + rows).min(n))
}

/// The chunks of a batch solved for `k` components. Dense: [`CHUNK_ROWS`] rows. Sparse:
/// each chunk's statistics are a dense k × p block to sum, so a chunk takes enough rows
/// (a multiple of [`CHUNK_ROWS`]) to hold at least k·p/4 stored entries, keeping that sum
/// under a quarter of the chunk's own work. Depends on the data, never on the threads.
pub(crate) fn batch_chunks<F: Float>(x: MatRef<F>, k: usize) -> Vec<std::ops::Range<usize>> {
    let n = x.nrows();
    let rows = match x {
        MatRef::Dense(_) => CHUNK_ROWS,
        MatRef::Csr(_) => {
            let per_row = (x.nnz() as f64 / n.max(1) as f64).max(1.0);
            let want = (k * x.ncols()) as f64 / 4.0 / per_row;
            CHUNK_ROWS * ((want / CHUNK_ROWS as f64).ceil() as usize).max(1)
        }
    };
    chunks_of(n, rows).collect()
}

/// `f` applied to every chunk index in `0..count`, on up to `threads` threads (the caller's
/// thread included), results in index order. A panic in `f` propagates to the caller.
pub(crate) fn map_indexed<T, G>(count: usize, threads: usize, f: G) -> Vec<T>
where
    T: Send,
    G: Fn(usize) -> T + Sync,
{
    let threads = threads.clamp(1, count.max(1));
    if threads == 1 {
        return (0..count).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        let out = f(i);
        slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(out);
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|v| v.expect("every index was computed"))
        .collect()
}

/// [`MatRef::validate`] chunk by chunk on up to `threads` threads; the error reported is
/// the first in row order, as in a sequential scan.
pub(crate) fn validate<F: Float>(
    x: MatRef<F>,
    first_row: u64,
    beta: f64,
    threads: usize,
) -> Result<()> {
    if threads <= 1 || x.nrows() <= CHUNK_ROWS {
        return x.validate(first_row, beta);
    }
    let ranges: Vec<_> = chunks(x.nrows()).collect();
    map_indexed(ranges.len(), threads, |c| {
        let r = ranges[c].clone();
        x.slice_rows(r.clone())
            .validate(first_row + r.start as u64, beta)
    })
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in index order whatever the thread count.
    #[test]
    fn ordered_for_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            let out = map_indexed(37, threads, |i| i * i);
            assert_eq!(out, (0..37).map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(map_indexed(0, 4, |i| i).is_empty());
    }

    /// Chunks cover the rows exactly once, in order.
    #[test]
    fn chunks_cover_rows() {
        let c: Vec<_> = chunks(600).collect();
        assert_eq!(c, vec![0..256, 256..512, 512..600]);
        assert_eq!(chunks(0).count(), 0);
    }

    /// Sparse chunks grow with k·p over the stored entries per row; dense ones do not.
    #[test]
    fn sparse_chunks_hold_enough_entries() {
        let dense = ndarray::Array2::<f32>::ones((1000, 400));
        assert_eq!(batch_chunks(MatRef::from(&dense), 20).len(), 4);
        let mut sparse = ndarray::Array2::<f32>::zeros((4000, 400));
        for i in 0..4000 {
            sparse[[i, i % 400]] = 1.0;
        }
        let csr = crate::CsrMatrix::from_dense(sparse.view());
        // k·p/4 = 2000 entries at 1 per row: 2048-row chunks.
        let c = batch_chunks(MatRef::from(&csr), 20);
        assert_eq!(c, vec![0..2048, 2048..4000]);
    }

    /// The parallel scan reports the same (first) error as the sequential one.
    #[test]
    fn validate_reports_first_error() {
        let mut x = ndarray::Array2::<f32>::ones((1000, 3));
        x[[900, 1]] = -1.0;
        x[[300, 2]] = f32::NAN;
        let seq = MatRef::from(&x).validate(10, 2.0).unwrap_err().to_string();
        for threads in [2, 3] {
            let par = validate(MatRef::from(&x), 10, 2.0, threads).unwrap_err();
            assert_eq!(par.to_string(), seq);
        }
        assert!(seq.contains("310"), "{seq}");
        x[[300, 2]] = 1.0;
        x[[900, 1]] = 1.0;
        validate(MatRef::from(&x), 0, 2.0, 2).unwrap();
    }
}
