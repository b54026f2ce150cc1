//! Rank selection by held-out entries: every candidate rank learns from the same stream
//! with a seeded share of each row's entries hidden from it (the observed-only loss of
//! [`Unobserved::Missing`]), and is scored on predicting them. Error that keeps falling
//! on the entries it learned from but not on the hidden ones is noise being fitted.
//!
//! Which entries are hidden depends only on the seed and the entry's place (global row,
//! column), not on batch boundaries or threads. The entries are every cell of the
//! matrix, unless the template's parameters say unstored entries are missing
//! ([`Unobserved::Missing`], ratings): then a sparse batch's stored entries only. The
//! ranks run side by side on each batch as it is read (one thread each), so the data is
//! read once per pass for all of them.
//! In the last pass, each batch is scored before it is learned from: its hidden entries
//! are predicted from the codes of its visible entries against the current dictionary.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::{CsrBuilder, CsrMatrix, MatRef};
use crate::model::{Loss, NmfParams, OnlineNmf, Unobserved};
use crate::source::BatchSource;

/// How [`select_rank`] runs.
#[derive(Clone, Debug)]
pub struct RankOptions {
    /// The candidate ranks.
    pub ranks: Vec<usize>,
    /// Share of the entries hidden for scoring, in (0, 0.5].
    pub holdout: f64,
    /// Passes over the source.
    pub epochs: usize,
    /// Seed of the hidden entries (the models use their parameters' seed).
    pub seed: u64,
    /// Threads in all.
    pub threads: usize,
    /// Raised (by a signal handler, say) to stop between batches with
    /// [`Error::Interrupted`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// One candidate's result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RankRow {
    /// The rank.
    pub rank: usize,
    /// Mean loss per hidden entry in the last pass (squared error for Frobenius, the KL
    /// divergence for KL). With noise of variance σ², a rank that captures the structure
    /// scores about σ² under Frobenius.
    pub heldout_loss: f64,
    /// Its standard error (the spread of the per-entry losses over √entries).
    pub heldout_se: f64,
    /// Root mean squared error on the hidden entries.
    pub heldout_rmse: f64,
    /// Mean loss per visible entry in the last pass, on the same scale (progressive: each
    /// batch against the dictionary before it).
    pub train_loss: f64,
    /// Hidden entries scored.
    pub heldout_entries: u64,
}

/// What [`select_rank`] found.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RankReport {
    /// One row per candidate, by rank.
    pub rows: Vec<RankRow>,
    /// The rank chosen: the smallest whose held-out loss is within one standard error of
    /// the best (the one-standard-error rule of Breiman et al. 1984).
    pub picked: usize,
    /// Why, in words.
    pub reason: String,
}

/// Whether entry (row, col) is hidden: a seeded hash below the share.
fn hidden(seed: u64, row: u64, col: usize, share: f64) -> bool {
    let mut z = seed
        .wrapping_add(row.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add((col as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// A batch split into its visible entries (CSR holding every visible observation) and its
/// hidden ones (row, column, value). Every cell is an observation (zeros included) unless
/// `stored_only`, where a sparse batch's unstored cells are unknown (ratings): only its
/// stored entries are hidden or shown.
fn split<F: Float>(
    x: MatRef<'_, F>,
    stored_only: bool,
    first_row: u64,
    seed: u64,
    share: f64,
) -> (CsrMatrix<F>, Vec<(usize, usize, F)>) {
    let mut b = CsrBuilder::new(x.ncols());
    let mut held = Vec::new();
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    let mut row_entries = |i: usize, entries: &mut dyn Iterator<Item = (usize, F)>| {
        cols.clear();
        vals.clear();
        for (j, v) in entries {
            if hidden(seed, first_row + i as u64, j, share) {
                held.push((i, j, v));
            } else {
                cols.push(j as u32);
                vals.push(v);
            }
        }
        b.push_row(&cols, &vals);
    };
    match x {
        MatRef::Csr(c) if stored_only => {
            for i in 0..c.nrows() {
                let (cs, vs) = c.row(i);
                row_entries(
                    i,
                    &mut cs.iter().map(|&j| j as usize).zip(vs.iter().copied()),
                );
            }
        }
        x => {
            // Every cell: a dense batch as it is, a sparse one densified.
            let densified: Array2<F>;
            let d = match x {
                MatRef::Dense(d) => d,
                MatRef::Csr(c) => {
                    densified = c.to_dense();
                    densified.view()
                }
            };
            for (i, row) in d.rows().into_iter().enumerate() {
                row_entries(i, &mut row.iter().copied().enumerate());
            }
        }
    }
    (b.finish(), held)
}

/// One candidate's running sums.
#[derive(Default, Clone)]
struct Score {
    sum: f64,
    sum_sq: f64,
    sq_err: f64,
    n: u64,
    train: f64,
    train_n: u64,
}

/// Fits every rank of `opts.ranks` with `template`'s other settings (made observed-only)
/// on `source` with `opts.holdout` of the entries hidden, and scores them on the hidden
/// entries (of a sparse batch, its stored ones only when `template` says unstored entries
/// are [`Unobserved::Missing`]). Frobenius and KL.
///
/// ```
/// use streamnmf::rank::{select_rank, RankOptions};
/// use streamnmf::source::MemorySource;
/// use streamnmf::synth::PlantedSpec;
/// use streamnmf::NmfParams;
/// let d = PlantedSpec::new(1500, 60, 4).noise(0.05).seed(2).generate();
/// let mut src = MemorySource::new(d.x, 256);
/// let opts = RankOptions { ranks: vec![2, 4, 8], holdout: 0.1, epochs: 10, seed: 1, threads: 2, stop: None };
/// let report = select_rank::<f64>(&mut src, NmfParams::new(1), &opts).unwrap();
/// assert_eq!(report.picked, 4, "{report:?}");
/// ```
pub fn select_rank<F: Float>(
    source: &mut dyn BatchSource<F>,
    template: NmfParams,
    opts: &RankOptions,
) -> Result<RankReport> {
    if opts.ranks.is_empty() {
        return Err(Error::ZeroRank);
    }
    if !(opts.holdout > 0.0 && opts.holdout <= 0.5) {
        return Err(Error::Schema(format!(
            "holdout {} is not a share in (0, 0.5]",
            opts.holdout
        )));
    }
    if opts.epochs == 0 {
        return Err(Error::ZeroEpochs);
    }
    if opts.epochs > 1 && !source.rewindable() {
        return Err(Error::NotRewindable);
    }
    let mut ranks = opts.ranks.clone();
    ranks.sort_unstable();
    ranks.dedup();
    let per = (opts.threads / ranks.len()).max(1);
    // What an unstored entry of sparse data is: a zero (every cell scored, as in a
    // classic fit) or unknown (ratings: only stored entries are hidden and scored).
    let stored_only = match template.clone().check()?.unobserved() {
        Unobserved::Zero => false,
        Unobserved::Missing => true,
        Unobserved::Implicit { .. } => {
            return Err(Error::Schema(
                "rank scores hidden values: unstored entries are zeros or missing, not \
                 implicit feedback"
                    .into(),
            ))
        }
    };
    // The template's regularization as it would be with every entry observed (none by
    // default): the observed-only default, a ridge for sparse ratings, would shrink the
    // small ranks most and tilt the choice upward.
    let base = template.clone().unobserved(Unobserved::Zero).check()?;
    let template = template.alpha_w(base.alpha_w()).alpha_h(base.alpha_h());
    let mut models = Vec::new();
    for &k in &ranks {
        let params = template
            .clone()
            .rank(k)
            .unobserved(Unobserved::Missing)
            .check()?;
        if !matches!(params.loss(), Loss::Frobenius | Loss::KullbackLeibler) {
            return Err(Error::UnobservedNeedsLoss(
                params.loss(),
                Unobserved::Missing,
            ));
        }
        models.push(OnlineNmf::<F>::new(params).with_threads(per));
    }
    let beta = models[0].params().loss().beta();
    let mut scores = vec![Score::default(); ranks.len()];
    for epoch in 0..opts.epochs {
        let last = epoch + 1 == opts.epochs;
        if epoch > 0 {
            for m in models.iter_mut() {
                m.start_pass();
            }
        }
        for batch in source.epoch(epoch)? {
            if opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            {
                return Err(Error::Interrupted { checkpoint: None });
            }
            let batch = batch?;
            if batch.rows() == 0 {
                continue;
            }
            let (visible, held) = split(
                batch.view(),
                stored_only,
                batch.first_row(),
                opts.seed,
                opts.holdout,
            );
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = models
                    .iter_mut()
                    .zip(scores.iter_mut())
                    .map(|(m, sc)| {
                        let (visible, held) = (&visible, &held);
                        s.spawn(move || -> Result<()> {
                            if last && m.components().is_ok() {
                                score(m, visible, held, beta, sc)?;
                            }
                            let r = m.partial_fit(visible)?;
                            if last {
                                // Per entry, on the held-out scale (Frobenius: squared error).
                                sc.train += if beta == 2.0 { 2.0 * r.loss } else { r.loss };
                                sc.train_n += visible.nnz() as u64;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::WorkerPanic {
                                thread: "rank".into(),
                                message: "a rank's fit panicked".into(),
                            })
                        })
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<Vec<()>>>()?;
        }
        for m in models.iter_mut() {
            m.end_pass();
        }
    }
    let rows: Vec<RankRow> = ranks
        .iter()
        .zip(&scores)
        .map(|(&rank, s)| {
            let n = s.n.max(1) as f64;
            let mean = s.sum / n;
            let var = (s.sum_sq / n - mean * mean).max(0.0);
            RankRow {
                rank,
                heldout_loss: mean,
                heldout_se: (var / n).sqrt(),
                heldout_rmse: (s.sq_err / n).sqrt(),
                train_loss: s.train / s.train_n.max(1) as f64,
                heldout_entries: s.n,
            }
        })
        .collect();
    let best = rows
        .iter()
        .min_by(|a, b| a.heldout_loss.total_cmp(&b.heldout_loss))
        .expect("at least one rank");
    let bar = best.heldout_loss + best.heldout_se;
    let picked = rows
        .iter()
        .find(|r| r.heldout_loss <= bar)
        .expect("the best is within its own bar");
    let reason = if picked.rank == best.rank {
        format!(
            "rank {} has the lowest held-out loss ({:.6e} ± {:.2e})",
            best.rank, best.heldout_loss, best.heldout_se
        )
    } else {
        format!(
            "rank {} is the smallest within one standard error of the best, rank {} ({:.6e} ± {:.2e}); its loss is {:.6e}",
            picked.rank, best.rank, best.heldout_loss, best.heldout_se, picked.heldout_loss
        )
    };
    Ok(RankReport {
        picked: picked.rank,
        reason,
        rows,
    })
}

/// Scores the hidden entries of a batch: codes from the visible entries, then the
/// predicted `w · h` of each hidden one.
fn score<F: Float>(
    m: &OnlineNmf<F>,
    visible: &CsrMatrix<F>,
    held: &[(usize, usize, F)],
    beta: f64,
    sc: &mut Score,
) -> Result<()> {
    let w = m.transform(visible)?;
    let h = m.components()?;
    for &(i, j, x) in held {
        if j >= h.ncols() {
            continue;
        }
        let v = w.row(i).dot(&h.column(j)).as_f64();
        let x = x.as_f64();
        let e = crate::loss::element(x, v, beta);
        let e = if beta == 2.0 { 2.0 * e } else { e };
        sc.sum += e;
        sc.sum_sq += e * e;
        sc.sq_err += (x - v) * (x - v);
        sc.n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Stored-only splitting hides and shows exactly the stored entries, with the same
    /// choice of hidden cells as splitting every cell; otherwise unstored cells join in as
    /// zeros.
    #[test]
    fn split_keeps_to_stored_entries_when_asked() {
        let x = array![
            [0.0, 2.0, 0.0, 4.0],
            [1.0, 0.0, 0.0, 3.0],
            [0.0, 0.0, 5.0, 0.0]
        ];
        let csr = CsrMatrix::from_dense(x.view());
        let mut stored_hidden = 0;
        for seed in 0..40 {
            let (vis, held) = split(MatRef::Csr(csr.view()), true, 7, seed, 0.4);
            assert_eq!(vis.nnz() + held.len(), 5);
            assert!(held.iter().all(|&(i, j, v)| v != 0.0 && x[[i, j]] == v));
            stored_hidden += held.len();
            let (all_vis, all_held) = split(MatRef::Csr(csr.view()), false, 7, seed, 0.4);
            assert_eq!(all_vis.nnz() + all_held.len(), 12);
            let nonzero: Vec<_> = all_held.iter().filter(|h| h.2 != 0.0).cloned().collect();
            assert_eq!(nonzero, held, "seed {seed}");
            // A dense batch is every cell either way.
            let (dv, dh) = split(MatRef::Dense(x.view()), true, 7, seed, 0.4);
            assert_eq!((dv.nnz(), dh), (all_vis.nnz(), all_held));
        }
        // About 40 % of the 5 stored entries over 40 seeds.
        assert!((40..=120).contains(&stored_hidden), "{stored_hidden}");
    }
}
