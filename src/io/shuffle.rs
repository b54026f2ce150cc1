//! A seeded shuffle buffer between the reader and the solvers, for file inputs sorted in a
//! way that would bias the online updates (by time, by user, by class).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::ArrowFloat;
use crate::error::Result;
use crate::matrix::{gather_rows, Batch};

/// Shuffles rows within a pool of about `pool` rows: fills the pool with batches, permutes
/// its rows with a generator seeded by `(seed, epoch)`, and hands them out in batches.
/// Rows keep their ids and origins; batches are renumbered in output order.
pub(crate) struct Shuffle<I, F> {
    inner: I,
    pool_rows: usize,
    batch_rows: usize,
    rng: ChaCha8Rng,
    out: std::collections::VecDeque<Batch<F>>,
    next_row: u64,
    done: bool,
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: ArrowFloat> Shuffle<I, F> {
    pub(crate) fn new(
        inner: I,
        pool_rows: usize,
        batch_rows: usize,
        seed: u64,
        epoch: usize,
    ) -> Self {
        let stream = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            inner,
            pool_rows: pool_rows.max(batch_rows),
            batch_rows: batch_rows.max(1),
            rng: ChaCha8Rng::seed_from_u64(stream),
            out: std::collections::VecDeque::new(),
            next_row: 0,
            done: false,
        }
    }

    /// Fills and shuffles the next pool; `Err` stops the epoch.
    fn refill(&mut self) -> Result<()> {
        let mut pool = Vec::new();
        let mut rows = 0;
        while rows < self.pool_rows {
            match self.inner.next() {
                Some(b) => {
                    let b = b?;
                    rows += b.rows();
                    pool.push(b);
                }
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        let mut order: Vec<(usize, usize)> = pool
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.rows()).map(move |r| (b, r)))
            .collect();
        order.shuffle(&mut self.rng);
        for chunk in order.chunks(self.batch_rows) {
            self.out.push_back(gather_rows(&pool, chunk, self.next_row));
            self.next_row += chunk.len() as u64;
        }
        Ok(())
    }
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: ArrowFloat> Iterator for Shuffle<I, F> {
    type Item = Result<Batch<F>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.out.is_empty() && !self.done {
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.out.pop_front().map(Ok)
    }
}
