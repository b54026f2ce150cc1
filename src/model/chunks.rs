//! A batch cut into fixed chunks of rows: each chunk's codes solved on up to `threads`
//! threads ([`solve_prepared`]) with whatever the caller builds from them (the
//! statistics), and the chunks combined in order, so the result has the same bits for
//! every thread count. The chunks depend on the data's shape, never on the threads.

use std::ops::Range;

use ndarray::{s, Array2, ArrayView2};

use super::codes::{kl_by_coordinates, solve_prepared, Codes, Prepared};
use super::params::ValidParams;
use crate::float::Float;
use crate::linalg::parallel::{chunks_of, map_indexed, CHUNK_ROWS};
use crate::matrix::{MatRef, Valid};
use crate::solve::cd::ROWS as ROW_BLOCK;
use crate::solve::SolveStats;

/// Products of a dense chunk's `X Hᵀ` (rows · p · k) at least, up to [`CHUNK_ROWS`] rows:
/// a narrower chunk is solved in less time than it takes to wake a helper for it. On
/// 20000 × 50 at k 10 (100-row batches), two chunks of 64 and 36 rows woke a helper
/// 200 times a pass for a few microseconds of work each.
const MIN_CHUNK_WORK: usize = 1 << 18;

/// The chunks of a batch solved for `k` components. Dense: [`CHUNK_ROWS`] rows, or for
/// batches of fewer than `4 · CHUNK_ROWS` rows a quarter of the batch rounded up to the
/// code solver's row block ([`ROW_BLOCK`] rows, at least one block), so that a small
/// batch still spreads over the cores: a 256-row batch was one chunk, solved on one
/// thread while the other core idled (KL codes on 20000 × 500 counts: a pass of
/// 256-row batches took 0.45 s against 0.26 s with 1024 rows, for the same work). A
/// dense chunk also takes the rows of [`MIN_CHUNK_WORK`] at least. Sparse:
/// each chunk's statistics are a dense k × p block to sum, so a chunk takes enough rows
/// (a multiple of [`CHUNK_ROWS`]) to hold at least k·p/4 stored entries, keeping that sum
/// under a quarter of the chunk's own work; without per-chunk statistics (`blocks`
/// false) a sparse batch is cut like a dense one. Depends on the data, never on the threads.
fn batch_chunks<F: Float>(x: MatRef<F>, k: usize, blocks: bool) -> Vec<Range<usize>> {
    let n = x.nrows();
    let rows = match x {
        MatRef::Csr(_) if blocks => {
            let per_row = (x.nnz() as f64 / n.max(1) as f64).max(1.0);
            let want = (k * x.ncols()) as f64 / 4.0 / per_row;
            CHUNK_ROWS * ((want / CHUNK_ROWS as f64).ceil() as usize).max(1)
        }
        _ => {
            let quarter = n.div_ceil(4).div_ceil(ROW_BLOCK) * ROW_BLOCK;
            let work = MIN_CHUNK_WORK.div_ceil((k * x.ncols()).max(1));
            quarter
                .max(work.div_ceil(ROW_BLOCK) * ROW_BLOCK)
                .clamp(ROW_BLOCK, CHUNK_ROWS)
        }
    };
    chunks_of(n, rows).collect()
}

/// Solves `x` against the H of `prep`, chunk by chunk on up to `threads` threads, warm
/// started from `warm` (n × k) when given. `extra` runs on each chunk and its codes while
/// the chunk is still in cache (the statistics, a loss). Returns the codes of the whole
/// batch and the `extra` results in chunk order: bitwise the same for any thread count.
pub(crate) fn solve_chunked<F: Float, T: Send>(
    params: &ValidParams,
    prep: &Prepared<F>,
    x: Valid<F>,
    threads: usize,
    warm: Option<ArrayView2<F>>,
    extra: impl Fn(Valid<F>, ArrayView2<F>) -> T + Sync,
) -> (Codes<F>, Vec<T>) {
    let ranges = batch_chunks(x.view(), prep.k(), true);
    solve_ranges(params, prep, x, threads, warm, ranges, extra)
}

/// The codes alone of `x` against the H of `prep`, like [`solve_chunked`] with nothing
/// built per chunk, so a sparse batch is cut into chunks of at most [`CHUNK_ROWS`] rows,
/// which spread over the cores more evenly.
pub(crate) fn solve_codes<F: Float>(
    params: &ValidParams,
    prep: &Prepared<F>,
    x: Valid<F>,
    threads: usize,
) -> Codes<F> {
    let ranges = batch_chunks(x.view(), prep.k(), false);
    solve_ranges(params, prep, x, threads, None, ranges, |_, _| ()).0
}

/// [`solve_chunked`] over the given row ranges of `x`.
fn solve_ranges<F: Float, T: Send>(
    params: &ValidParams,
    prep: &Prepared<F>,
    x: Valid<F>,
    threads: usize,
    warm: Option<ArrayView2<F>>,
    ranges: Vec<Range<usize>>,
    extra: impl Fn(Valid<F>, ArrayView2<F>) -> T + Sync,
) -> (Codes<F>, Vec<T>) {
    let kl_cd = kl_by_coordinates(prep, x.view());
    let parts = map_indexed(ranges.len(), threads, |c| {
        let r = ranges[c].clone();
        let xc = x.slice_rows(r.clone());
        let w0 = warm.map(|w| w.slice(s![r, ..]).to_owned());
        let codes = solve_prepared(params, prep, xc, w0, kl_cd);
        let t = extra(xc, codes.w.view());
        (codes, t)
    });
    if parts.len() == 1 {
        let (codes, t) = parts.into_iter().next().expect("one part");
        return (codes, vec![t]);
    }
    let mut w = Array2::zeros((x.nrows(), prep.k()));
    let mut stats = SolveStats {
        iterations: 0,
        converged: true,
    };
    let mut loss = 0.0;
    let mut extras = Vec::with_capacity(parts.len());
    for (range, (codes, t)) in ranges.into_iter().zip(parts) {
        w.slice_mut(s![range, ..]).assign(&codes.w);
        stats.iterations = stats.iterations.max(codes.stats.iterations);
        stats.converged &= codes.stats.converged;
        loss += codes.loss;
        extras.push(t);
    }
    (Codes { w, stats, loss }, extras)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::CsrMatrix;

    /// Dense batches below 1024 rows still split into about four chunks of whole row
    /// blocks; from 1024 rows on, chunks are 256 rows. Narrow data takes chunks of
    /// `MIN_CHUNK_WORK` products at least. Only the shape decides.
    #[test]
    fn small_dense_batches_split_into_row_blocks() {
        let chunks = |n: usize, p: usize, k: usize| -> Vec<usize> {
            let x = Array2::<f32>::ones((n, p));
            batch_chunks(MatRef::from(&x), k, true)
                .into_iter()
                .map(|r| r.len())
                .collect()
        };
        // 20000 × 50 at k 10: one chunk for its 100-row batches, 256 rows at most.
        assert_eq!(chunks(100, 50, 10), vec![100]);
        assert_eq!(chunks(600, 50, 10), vec![256, 256, 88]);
        // 200 columns at k 16: 82 rows of work, two row blocks.
        assert_eq!(chunks(256, 200, 16), vec![128, 128]);
        let lens = |n: usize| chunks(n, 1000, 20);
        assert_eq!(lens(1), vec![1]);
        assert_eq!(lens(64), vec![64]);
        assert_eq!(lens(120), vec![64, 56]);
        assert_eq!(lens(256), vec![64; 4]);
        assert_eq!(lens(600), vec![192, 192, 192, 24]);
        assert_eq!(lens(1024), vec![256; 4]);
        assert_eq!(lens(4096), vec![256; 16]);
        // Every chunk but the last is a whole number of the solver's row blocks.
        for n in [100, 333, 777, 1500] {
            let l = lens(n);
            assert_eq!(l.iter().sum::<usize>(), n);
            assert!(
                l[..l.len() - 1].iter().all(|c| c % ROW_BLOCK == 0),
                "{n}: {l:?}"
            );
        }
    }

    /// Sparse chunks that carry statistics grow with k·p over the stored entries per
    /// row; dense ones, and sparse ones solved for codes alone, do not.
    #[test]
    fn sparse_chunks_hold_enough_entries() {
        let dense = Array2::<f32>::ones((1000, 400));
        assert_eq!(batch_chunks(MatRef::from(&dense), 20, true).len(), 4);
        let mut sparse = Array2::<f32>::zeros((4000, 400));
        for i in 0..4000 {
            sparse[[i, i % 400]] = 1.0;
        }
        let csr = CsrMatrix::from_dense(sparse.view());
        // k·p/4 = 2000 entries at 1 per row: 2048-row chunks.
        let c = batch_chunks(MatRef::from(&csr), 20, true);
        assert_eq!(c, vec![0..2048, 2048..4000]);
        let c = batch_chunks(MatRef::from(&csr), 20, false);
        assert_eq!(c.len(), 4000usize.div_ceil(CHUNK_ROWS));
    }
}
