//! Storage of sparse mini-batches a run has finished with, kept for its reader's next
//! ones.
//!
//! A mini-batch's CSR arrays are megabytes (12 480 rows of 100 entries: 10 MB), and an
//! array allocated fresh is fresh pages: the kernel faults in and zeroes every 4 KB of
//! it as the reader first writes there, and unmaps it when the consumer drops the
//! batch. On 100 000 × 20 000 ratings-like triplets those faults in the reader's
//! buffers were over half of a whole process's 32 000 (`perf record -e page-faults`). So
//! a run's consumer hands each finished batch's arrays to the run's [`Spares`] and the
//! reader builds a later batch in them: the pages stay mapped.
//!
//! A pool belongs to one run: the threads that take part [`enter`](Spares::enter) it,
//! and [`give`] and [`take`] use the calling thread's pool (none: storage is dropped, or
//! allocated fresh). Only capacity is reused, never a value: a taken builder is empty.
//! A pool keeps at most [`KEEP`] storages of at least [`LEAST_ENTRIES`] entries, so it
//! holds no more than a couple of batches beyond the ones in flight.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use super::csr::{CsrBuilder, CsrMatrix};
use crate::float::Float;

/// Storages a pool keeps at most: the consumer returns one a batch and the reader takes
/// one a batch, so a steady stream needs one or two.
pub(crate) const KEEP: usize = 2;

/// Storages smaller than this many entries are not kept: the allocator reuses small
/// blocks well (a record batch's pieces are small).
pub(crate) const LEAST_ENTRIES: usize = 1 << 16;

/// One run's pool of empty CSR builders (of either float type), shared by its threads.
#[derive(Clone, Default)]
pub(crate) struct Spares(Arc<Mutex<Vec<Box<dyn Any + Send>>>>);

thread_local! {
    static CURRENT: RefCell<Option<Spares>> = const { RefCell::new(None) };
}

/// The calling thread's membership of a pool, until dropped.
pub(crate) struct Entered(Option<Spares>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

impl Spares {
    /// Makes this the calling thread's pool until the guard is dropped.
    pub(crate) fn enter(&self) -> Entered {
        Entered(CURRENT.with(|c| c.borrow_mut().replace(self.clone())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Any + Send>>> {
        // The pool holds only empty builders: one a panicking thread left is as good.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give<F: Float>(&self, m: CsrMatrix<F>) {
        let mut b = CsrBuilder::from_matrix(m);
        if b.capacity() < LEAST_ENTRIES {
            return;
        }
        b.clear(0);
        let mut pool = self.lock();
        if pool.len() < KEEP {
            pool.push(Box::new(b));
        }
    }

    fn take<F: Float>(&self, ncols: usize, entries: usize) -> Option<CsrBuilder<F>> {
        let mut b = {
            let mut pool = self.lock();
            let at = pool.iter().position(|b| b.is::<CsrBuilder<F>>())?;
            *pool.swap_remove(at).downcast::<CsrBuilder<F>>().ok()?
        };
        b.clear(ncols);
        b.reserve(entries);
        Some(b)
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }
}

/// Keeps `m`'s storage in the calling thread's pool, if it has one with room and `m` is
/// large enough; otherwise drops it.
pub(crate) fn give<F: Float>(m: CsrMatrix<F>) {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(pool) => pool.give(m),
        None => drop(m),
    })
}

/// An empty builder of width `ncols` with room for at least `entries` stored entries, in
/// a storage from the calling thread's pool (grown if it is short); `None` when there is
/// none of this float type.
pub(crate) fn take<F: Float>(ncols: usize, entries: usize) -> Option<CsrBuilder<F>> {
    CURRENT.with(|c| c.borrow().as_ref()?.take(ncols, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(entries: usize) -> CsrMatrix<f32> {
        let rows = entries / 4;
        let indptr = (0..=rows).map(|r| r * 4).collect();
        let indices = (0..rows * 4).map(|e| (e % 4) as u32).collect();
        CsrMatrix::try_new(4, indptr, indices, vec![1.0f32; rows * 4]).unwrap()
    }

    #[test]
    fn a_pool_keeps_large_storage_empty_and_bounded() {
        // No pool entered: nothing is kept or found.
        give(matrix(LEAST_ENTRIES));
        assert!(take::<f32>(1, 1).is_none());

        let spares = Spares::default();
        let entered = spares.enter();
        give(matrix(16)); // too small to keep
        assert_eq!(spares.kept(), 0);
        for _ in 0..KEEP + 2 {
            give(matrix(LEAST_ENTRIES));
        }
        assert_eq!(spares.kept(), KEEP);
        // The other float type finds nothing.
        assert!(take::<f64>(3, 10).is_none());
        let b = take::<f32>(7, 10).expect("a kept storage");
        assert!(b.capacity() >= LEAST_ENTRIES);
        let m = b.finish();
        assert_eq!((m.nrows(), m.ncols(), m.nnz()), (0, 7, 0));
        // Asked for more than it holds, a kept storage grows.
        let b = take::<f32>(1, 4 * LEAST_ENTRIES).expect("the second one");
        assert!(b.spare() >= 4 * LEAST_ENTRIES);
        assert!(take::<f32>(1, 1).is_none());

        // Another thread sees the pool only once it enters it.
        let other = spares.clone();
        std::thread::spawn(move || {
            give(matrix(LEAST_ENTRIES));
            assert_eq!(other.kept(), 0);
            let _e = other.enter();
            give(matrix(LEAST_ENTRIES));
            assert_eq!(other.kept(), 1);
        })
        .join()
        .unwrap();
        assert!(take::<f32>(1, 1).is_some());
        drop(entered);
        give(matrix(LEAST_ENTRIES));
        assert_eq!(spares.kept(), 0);
    }
}
