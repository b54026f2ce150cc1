//! Recommendations and their evaluation: the best `n` items for rows of codes
//! ([`top_n`]), and the rating and ranking metrics of a held-out set ([`Evaluation`]).
//!
//! Scores are `W H` computed a block of rows at a time (one matrix product per block,
//! then a partial selection per row), so memory stays at `block × p` scores per thread
//! whatever the number of users, and the blocks are spread over threads in a fixed order:
//! the output does not depend on the thread count.

mod metrics;

pub use metrics::{Evaluation, Metrics};

use ndarray::{s, ArrayView2};

use crate::float::Float;
use crate::linalg::gemm::product;
use crate::linalg::parallel::{chunks_of, map_indexed};
use crate::matrix::CsrView;

/// Rows of codes scored per block: 64 × 20 000 items is 5 MB of f32 scores.
const BLOCK_ROWS: usize = 64;

/// One row's recommendations: `(item, score)`, best first.
pub type Ranked<F> = Vec<(u32, F)>;

/// The `n` best-scored items of each row of `w` (codes, rows × k) against `h` (k × p),
/// best first; ties go to the lower item index. Items stored in the row's `seen` entries
/// (its interactions, when given) are skipped. Up to `threads` threads.
///
/// ```
/// use ndarray::array;
/// use streamnmf::recommend::top_n;
/// use streamnmf::CsrMatrix;
/// let h = array![[1.0f64, 0.0, 2.0, 0.5], [0.0, 3.0, 0.0, 1.0]];
/// let w = array![[1.0, 0.0], [0.0, 1.0]];
/// assert_eq!(top_n(w.view(), h.view(), None, 2, 1)[0], vec![(2, 2.0), (0, 1.0)]);
/// // Row 1 has seen item 1: its best is item 3.
/// let seen = CsrMatrix::try_new(4, vec![0, 0, 1], vec![1], vec![5.0]).unwrap();
/// assert_eq!(top_n(w.view(), h.view(), Some(seen.view()), 1, 1)[1], vec![(3, 1.0)]);
/// ```
pub fn top_n<F: Float>(
    w: ArrayView2<F>,
    h: ArrayView2<F>,
    seen: Option<CsrView<F>>,
    n: usize,
    threads: usize,
) -> Vec<Ranked<F>> {
    let blocks: Vec<_> = chunks_of(w.nrows(), BLOCK_ROWS).collect();
    let parts = map_indexed(blocks.len(), threads.max(1), |b| {
        let rows = blocks[b].clone();
        let scores = product(&w.slice(s![rows.clone(), ..]), &h);
        scores
            .rows()
            .into_iter()
            .zip(rows)
            .map(|(row, i)| {
                let skip = seen.map_or(&[][..], |s| s.row(i).0);
                best(row.as_slice().expect("a row of a standard array"), skip, n)
            })
            .collect::<Vec<_>>()
    });
    parts.into_iter().flatten().collect()
}

/// The `n` largest `scores` (by index), skipping the sorted indices `skip`; best first,
/// ties to the lower index.
fn best<F: Float>(scores: &[F], skip: &[u32], n: usize) -> Ranked<F> {
    let mut out: Ranked<F> = Vec::with_capacity(n + 1);
    if n == 0 {
        return out;
    }
    // The worst kept score once `n` are kept: most scores fail this one comparison
    // (which NaN fails too), and whole blocks whose largest score fails it are skipped
    // after one vectorizable pass.
    let mut worst = F::zero();
    for (b, block) in scores.chunks(SCAN_BLOCK).enumerate() {
        if out.len() == n {
            let top = block
                .iter()
                .fold(F::neg_infinity(), |m, &v| if v > m { v } else { m });
            if top <= worst {
                continue;
            }
        }
        for (t, &v) in block.iter().enumerate() {
            if out.len() == n && (v <= worst || v.is_nan()) {
                continue;
            }
            let j = (b * SCAN_BLOCK + t) as u32;
            if v.is_nan() || skip.binary_search(&j).is_ok() {
                continue;
            }
            // After every kept item scored at least as high (ties stay in index order).
            let at = out.partition_point(|&(_, s)| s >= v);
            out.insert(at, (j, v));
            out.truncate(n);
            if out.len() == n {
                worst = out[n - 1].1;
            }
        }
    }
    out
}

/// Scores scanned per block by [`best`] before it looks at any one of them.
const SCAN_BLOCK: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The selection agrees with a full sort, ties included, for many rows and sizes.
    #[test]
    fn selection_matches_a_full_sort() {
        let (rows, p, k) = (150, 97, 3);
        let w = Array2::from_shape_fn((rows, k), |(i, j)| ((i * 7 + j * 3) % 5) as f64);
        let h = Array2::from_shape_fn((k, p), |(i, j)| ((i * 11 + j * 13) % 4) as f64);
        let seen_rows: Vec<Vec<u32>> = (0..rows)
            .map(|i| {
                (0..p as u32)
                    .filter(|j| (*j as usize + i).is_multiple_of(9))
                    .collect()
            })
            .collect();
        let mut indptr = vec![0];
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        for r in &seen_rows {
            idx.extend(r);
            val.extend(r.iter().map(|_| 1.0));
            indptr.push(idx.len());
        }
        let seen = crate::CsrMatrix::try_new(p, indptr, idx, val).unwrap();
        let scores = w.dot(&h);
        for n in [1, 5, 40, 200] {
            let got = top_n(w.view(), h.view(), Some(seen.view()), n, 2);
            for i in 0..rows {
                let mut all: Vec<(u32, f64)> = (0..p as u32)
                    .filter(|j| !seen_rows[i].contains(j))
                    .map(|j| (j, scores[[i, j as usize]]))
                    .collect();
                all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(n);
                assert_eq!(got[i], all, "row {i}, n {n}");
            }
        }
    }
}
