//! Deterministic data parallelism.
//!
//! Work is cut into chunks whose boundaries depend on the data only (for batches, a
//! number of rows that follows from the batch's size and layout, at most [`CHUNK_ROWS`]
//! for dense rows), whatever the thread count; each chunk is computed on
//! its own and the results are combined in chunk order. So the threads only decide *who*
//! computes a chunk, never *what* is computed: a model is bitwise identical for 1, 2 or 16
//! threads.
//!
//! The threads are scoped and live for one call: a batch costs milliseconds, a spawn
//! microseconds, and nothing outlives the call (no pool to configure or shut down).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Rows per chunk. A multiple of the code solver's row block (64), and small enough that
/// a chunk of a 1000-column f32 batch (1 MB) stays in a core's cache between the steps
/// that read it.
pub(crate) const CHUNK_ROWS: usize = 256;

/// The default thread count: the cores available to this process (1 when unknown).
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The ranges `0..rows, rows..2·rows, …` covering `0..n`.
pub(crate) fn chunks_of(n: usize, rows: usize) -> impl Iterator<Item = Range<usize>> {
    let rows = rows.max(1);
    (0..n).step_by(rows).map(move |s| s..(s + rows).min(n))
}

/// `f` applied to every index in `0..count`, on up to `threads` threads (the caller's
/// thread included), results in index order. A panic in `f` propagates to the caller.
/// When the system refuses a thread, the others (at least the caller) do its share.
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
            // A refused spawn only means fewer helpers.
            let _ = std::thread::Builder::new()
                .name("streamnmf-chunk".into())
                .spawn_scoped(s, work);
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
        let c: Vec<_> = chunks_of(600, CHUNK_ROWS).collect();
        assert_eq!(c, vec![0..256, 256..512, 512..600]);
        assert_eq!(chunks_of(0, CHUNK_ROWS).count(), 0);
        assert!(default_threads() >= 1);
    }
}
