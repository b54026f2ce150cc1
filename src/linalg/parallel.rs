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
//!
//! The pool's threads sleep on a channel between calls. (A work-stealing pool's idle
//! threads spin on `sched_yield` before they sleep: between the 0.5 ms batches of a
//! one-pass fit they made 6 400 such calls, on cores the decoder, the reader and the
//! solver needed.) A call hands the pool *offers* to join it; the caller works through the
//! chunks itself meanwhile, so a helper that wakes late finds nothing left, and the caller
//! withdraws the offers no helper took before it returns.

use std::any::Any;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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

/// The work of one call, as the helpers see it: the caller's closure behind a pointer
/// that is dereferenced only by a helper that took an offer, and the caller does not
/// return while such a helper runs (see [`Offers::withdraw`]).
struct Call {
    /// `offers + RUNNING · running`: offers not yet taken (or withdrawn), and helpers
    /// running the work. One atomic, so that taking an offer and counting oneself as
    /// running is one step the caller cannot come between.
    state: AtomicU64,
    work: *const (dyn Fn() + Sync),
    /// The first panic of a helper, handed to the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Signalled when the last running helper finishes.
    idle: (Mutex<()>, Condvar),
}

// SAFETY: `work` points to a `Sync` closure, and is only called while the caller waits
// for it (see `Offers`); everything else in `Call` is `Send + Sync`.
unsafe impl Send for Call {}
unsafe impl Sync for Call {}

/// One helper running, in [`Call::state`].
const RUNNING: u64 = 1 << 32;
/// The offers of [`Call::state`].
const OFFERS: u64 = RUNNING - 1;

impl Call {
    /// Run by a helper: takes an offer if one is left, runs the work, and reports.
    fn help(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & OFFERS == 0 {
                return; // withdrawn, or taken by others
            }
            match self.state.compare_exchange_weak(
                s,
                s - 1 + RUNNING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // SAFETY: this helper counts as running, so the caller is still waiting in
        // `Offers::withdraw` and the closure is alive.
        let work = unsafe { &*self.work };
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(p);
        }
        let before = self.state.fetch_sub(RUNNING, Ordering::AcqRel);
        if before >> 32 == 1 {
            let _guard = self.idle.0.lock().unwrap_or_else(|e| e.into_inner());
            self.idle.1.notify_all();
        }
    }
}

/// The offers of a call: on drop (the caller's own work done, or unwinding from it),
/// withdraws those not taken and waits for the helpers that took one.
struct Offers(Arc<Call>);

impl Offers {
    fn withdraw(&self) {
        let call = &self.0;
        let s = call.state.fetch_and(!OFFERS, Ordering::AcqRel) & !OFFERS;
        if s == 0 {
            return;
        }
        let mut guard = call.idle.0.lock().unwrap_or_else(|e| e.into_inner());
        while call.state.load(Ordering::Acquire) >> 32 > 0 {
            guard = call.idle.1.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Offers {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// The helper pool of this process (a channel its threads wait on), or `None` when the
/// system refused its threads (the callers then do all the work themselves).
///
/// A pool per process id: a child made by `fork` (Python's `multiprocessing` on Linux)
/// inherits the parent's pool without its threads, and offers sent there would never be
/// taken. The child starts a pool of its own; the parent's copy is left alone.
fn pool() -> Option<crossbeam_channel::Sender<Arc<Call>>> {
    type Pool = Option<crossbeam_channel::Sender<Arc<Call>>>;
    static POOLS: Mutex<Option<(u32, Pool)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    match &*slot {
        Some((owner, pool)) if *owner == pid => pool.clone(),
        _ => {
            let (tx, rx) = crossbeam_channel::unbounded::<Arc<Call>>();
            let mut started = 0;
            for i in 0..default_threads() {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("streamnmf-chunk-{i}"))
                    .spawn(move || {
                        for call in rx.iter() {
                            call.help();
                        }
                    });
                match spawned {
                    Ok(_) => started += 1,
                    Err(e) => tracing::warn!("helper thread {i} not started ({e})"),
                }
            }
            let pool = (started > 0).then_some(tx);
            if pool.is_none() {
                tracing::warn!("no helper threads: chunks run on the caller");
            }
            *slot = Some((pid, pool.clone()));
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
    let work_ref: &(dyn Fn() + Sync) = &work;
    // SAFETY (of the lifetime's erasure): `offers` below withdraws every offer and waits
    // for the helpers that took one before `work` goes out of scope, also on unwinding.
    let work_ptr: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(work_ref) };
    let call = Arc::new(Call {
        state: AtomicU64::new(threads as u64 - 1),
        work: work_ptr,
        panic: Mutex::new(None),
        idle: (Mutex::new(()), Condvar::new()),
    });
    let offers = Offers(call.clone());
    for _ in 1..threads {
        if pool.send(call.clone()).is_err() {
            break; // no helper left: the caller does the rest
        }
    }
    work();
    drop(offers);
    if let Some(p) = call.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
        std::panic::resume_unwind(p);
    }
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

    /// Helpers join calls whose chunks take time, and calls that end before a helper
    /// wakes withdraw their offers: thousands of short calls over borrowed data all come
    /// back whole (a helper running a finished call's closure would read freed stack).
    #[test]
    fn helpers_join_slow_calls_and_miss_finished_ones_safely() {
        let caller = std::thread::current().id();
        let mut helped = false;
        for _ in 0..20 {
            let ids = map_indexed(4, 2, |_| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                std::thread::current().id()
            });
            helped |= ids.iter().any(|&id| id != caller);
        }
        assert!(helped, "no chunk ran on a helper in 20 calls of 8 ms");
        for round in 0..5000usize {
            let data: Vec<usize> = (0..8).map(|i| i * round).collect();
            let out = map_indexed(8, 2, |i| data[i] + 1);
            assert_eq!(out, (0..8).map(|i| i * round + 1).collect::<Vec<_>>());
        }
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
