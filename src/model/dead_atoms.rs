//! Dead atoms: a component whose accumulated code energy `Σ w_j²` vanishes (for
//! Frobenius, `A_jj ≈ 0`; under Itakura-Saito each row's codes are divided by its largest
//! first, as IS is blind to a frame's loudness) or whose row of H is all zero is re-seeded
//! from a random row of the rows just folded in (seeded, logged), and its statistics start
//! over.

use ndarray::{s, Array1};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dictionary::Dictionary;
use crate::error::Result;
use crate::float::Float;
use crate::matrix::Valid;

/// Code energy below this share of the largest atom's marks an atom as dead.
const DEAD_SHARE: f64 = 1e-10;

impl<F: Float> Dictionary<F> {
    /// Re-seeds the dead atoms (see the module docs) from `pool`; returns them.
    pub(super) fn reseed_dead(
        &mut self,
        energy: &Array1<f64>,
        pool: &mut dyn RowPool<F>,
        rng: &mut ChaCha8Rng,
        frobenius: bool,
        fixed: &[usize],
    ) -> Result<Vec<usize>> {
        let max_energy = energy.iter().cloned().fold(0.0, f64::max);
        // Column by column, the order H (column-major) is stored in: the same sums, in the
        // same order, as row by row, without a strided walk over k × p values per batch.
        let mut norms = vec![0.0f64; self.h.nrows()];
        for col in self.h.columns() {
            for (n, &v) in norms.iter_mut().zip(col) {
                *n += v.as_f64() * v.as_f64();
            }
        }
        norms.iter_mut().for_each(|n| *n = n.sqrt());
        let dead: Vec<usize> = (0..self.h.nrows())
            .filter(|&j| norms[j] == 0.0 || energy[j] <= DEAD_SHARE * max_energy)
            .filter(|j| fixed.binary_search(j).is_err())
            .collect();
        if dead.is_empty() {
            return Ok(dead);
        }
        let live: Vec<f64> = (0..norms.len())
            .filter(|j| !dead.contains(j))
            .map(|j| norms[j])
            .collect();
        let target = if live.is_empty() {
            1.0
        } else {
            live.iter().sum::<f64>() / live.len() as f64
        };
        let mut done = Vec::new();
        for &j in &dead {
            // A few tries to find a non-zero row; a batch of zeros cannot re-seed anything.
            for _ in 0..8 {
                let r = rng.random_range(0..pool.rows());
                let row = pool.row(r, self.h.ncols())?;
                let norm = row.iter().map(|v| v.as_f64().powi(2)).sum::<f64>().sqrt();
                if norm > 0.0 {
                    let s = F::from_f64(target / norm);
                    self.h.row_mut(j).assign(&row.mapv(|v| v * s));
                    self.current.forget_atom(j, frobenius);
                    if let Some(p) = self.previous.as_mut() {
                        p.forget_atom(j, frobenius);
                    }
                    if let Some(r) = self.replay.as_mut() {
                        r.forget_atom(j);
                    }
                    tracing::info!(component = j, source_row = r, "re-seeded a dead atom");
                    done.push(j);
                    break;
                }
            }
        }
        Ok(done)
    }
}

/// The rows a dead atom may be re-seeded from: those of the batch (or, in a distributed
/// run, of the round's batches on every rank) whose statistics were just folded in.
pub(crate) trait RowPool<F> {
    /// Rows in the pool (at least one).
    fn rows(&self) -> usize;
    /// Row `r`, dense, `width` wide (a narrower row is padded with zeros).
    fn row(&mut self, r: usize, width: usize) -> Result<Array1<F>>;
}

impl<F: Float> RowPool<F> for Valid<'_, F> {
    fn rows(&self) -> usize {
        self.nrows()
    }
    fn row(&mut self, r: usize, width: usize) -> Result<Array1<F>> {
        let dense = self.slice_rows(r..r + 1).to_dense();
        let mut row = Array1::zeros(width.max(dense.ncols()));
        row.slice_mut(s![..dense.ncols()]).assign(&dense.row(0));
        Ok(row)
    }
}
