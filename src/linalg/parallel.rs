//! Deterministic data parallelism.
//!
//! Work is cut into chunks whose boundaries depend on the data only (for batches, a
//! number of rows that follows from the batch's size and layout, at most [`CHUNK_ROWS`]
//! for dense rows), whatever the thread count; each chunk is computed on
//! its own and the results are combined in chunk order. So the threads only decide *who*
//! computes a chunk, never *what* is computed: a model is bitwise identical for 1, 2 or 16
//! threads.
//!
//! The helpers come from one process-wide pool of [`default_threads`] threads, started on
//! first use: a thread spawned and joined per call cost about 67 µs of system time on a
//! 2-core virtual machine (its stack mapped, guarded, faulted in and unmapped), and a
//! pass makes two such calls a batch, hundreds of batches a pass.

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

/// The helper pool of this process, or `None` when the system refused its threads (the
/// callers then do all the work themselves).
///
/// A pool per process id: a child made by `fork` (Python's `multiprocessing` on Linux)
/// inherits the parent's pool without its threads, and jobs queued there would never run.
/// The child starts a pool of its own; the parent's copy is left alone.
fn pool() -> Option<&'static rayon_core::ThreadPool> {
    type Pool = Option<&'static rayon_core::ThreadPool>;
    static POOLS: Mutex<Option<(u32, Pool)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    match *slot {
        Some((owner, pool)) if owner == pid => pool,
        _ => {
            let pool = rayon_core::ThreadPoolBuilder::new()
                .num_threads(default_threads())
                .thread_name(|i| format!("streamnmf-chunk-{i}"))
                .build()
                .map_err(|e| tracing::warn!("no helper threads ({e}): chunks run on the caller"))
                .ok()
                // Lives as long as the process: its threads serve every later call.
                .map(|p| &*Box::leak(Box::new(p)));
            *slot = Some((pid, pool));
            pool
        }
    }
}

/// `f` applied to every index in `0..count`, on up to `threads` threads (the caller's
/// thread and helpers from the pool), results in index order. A panic in `f` propagates
/// to the caller. Without a pool the caller does all the work.
pub(crate) fn map_indexed<T, G>(count: usize, threads: usize, f: G) -> Vec<T>
where
    T: Send,
    G: Fn(usize) -> T + Sync,
{
    let threads = threads.clamp(1, count.max(1));
    let pool = match (threads > 1).then(pool).flatten() {
        Some(pool) => pool,
        None => return (0..count).map(f).collect(),
    };
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
    pool.in_place_scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| work());
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

    /// A call from inside another call's chunk (a helper thread of the pool) completes,
    /// in order, and so do calls from several threads at once.
    #[test]
    fn nested_and_concurrent_calls_complete() {
        let nested = map_indexed(6, 2, |i| map_indexed(9, 2, |j| i * j).iter().sum::<usize>());
        assert_eq!(nested, (0..6).map(|i| i * 36).collect::<Vec<_>>());
        let sums: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| s.spawn(move || map_indexed(50, 3, |i| i + t).iter().sum()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(sums, (0..4).map(|t| 1225 + 50 * t).collect::<Vec<_>>());
    }

    /// A panic in a chunk reaches the caller, and the pool still serves later calls.
    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            map_indexed(8, 2, |i| {
                assert!(i != 5, "chunk 5");
                i
            })
        });
        assert!(r.is_err());
        assert_eq!(map_indexed(8, 2, |i| i), (0..8).collect::<Vec<_>>());
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
