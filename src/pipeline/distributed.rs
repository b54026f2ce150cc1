//! [`fit_distributed`]: one rank of a data-parallel fit (see [`crate::distributed`] for
//! the algorithm and what it equals).
//!
//! On each rank the engine's reader thread reads and checks the rank's share of the input
//! ahead, as in [`super::fit`]; the calling thread solves each batch against the current
//! H, takes part in the round that sums every rank's statistics, and applies the round's
//! update. Every rank takes part in every round, so no rank can wait for another that
//! has stopped:
//!
//! * a rank whose share of the epoch is done takes part with nothing to add, until a
//!   round in which no rank had a batch ends the epoch on every rank at once;
//! * a rank's own failure (a bad value, an unreadable file, a checkpoint it could not
//!   write) goes into its next round, and every rank returns [`Error::Rank`];
//! * a stop request (the stop flag, e.g. Ctrl-C forwarded by `mpirun`) goes into the next
//!   round the same way: every rank stops after the same round, and rank 0 writes the
//!   checkpoint.
//!
//! Rank 0 alone writes checkpoints, whose position counts rounds: resuming with the same
//! number of ranks skips that many batches of each rank's share.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::Array1;
use serde::{Deserialize, Serialize};

use super::engine::{run_ordered, Checker, Flow, Input, Shared, Start};
use super::{first_batch, Checkpointing, PipelineOptions, PipelineReport};
use crate::distributed::wire::{self, Round};
use crate::distributed::{agree, broadcast_from, broadcast_result, reduce_broadcast, Collective};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::Valid;
use crate::model::{
    narrow_overflow, solve_batch, BatchReport, CodesSummary, OnlineNmf, RowPool, ValidParams,
};
use crate::persist::{decode_run, encode_run, InputPosition, Metadata, RunState};
use crate::source::{BatchSource, Share};

/// What one rank of a distributed fit did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributedReport {
    /// The whole fit: epochs, dictionary updates (rounds) and rows of every rank.
    pub pipeline: PipelineReport,
    /// Ranks in the group.
    pub ranks: usize,
    /// Batches this rank solved.
    pub local_batches: u64,
    /// Seconds this rank spent solving codes.
    pub solve_seconds: f64,
    /// Seconds in the rounds' collectives: sending, receiving, combining, and waiting for
    /// the slowest rank.
    pub exchange_seconds: f64,
    /// Seconds applying the rounds' dictionary updates.
    pub update_seconds: f64,
    /// Bytes of this rank's largest round message.
    pub largest_message: u64,
}

impl DistributedReport {
    /// A fit over `ranks` ranks that has done nothing yet.
    fn nothing(ranks: usize) -> Self {
        Self {
            pipeline: PipelineReport {
                epochs: 0,
                batches: 0,
                rows: 0,
                seconds: 0.0,
                ignored_entries: 0,
                converged: false,
            },
            ranks,
            local_batches: 0,
            solve_seconds: 0.0,
            exchange_seconds: 0.0,
            update_seconds: 0.0,
            largest_message: 0,
        }
    }
}

/// One rank of a data-parallel fit over `group`: the same call on every rank, with the
/// same source (each reads its share, see [`Share`]), parameters and options. Every rank
/// ends with the same model. `resume` and `checkpoints` are read on rank 0 only (the
/// other ranks receive the model and run state from it); staleness and solver threads
/// are not used (each round is solved against the current dictionary).
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::distributed::{Collective, ThreadGroup};
/// use streamnmf::pipeline::{fit_distributed, PipelineOptions};
/// use streamnmf::source::MemorySource;
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((600, 8), |(i, j)| ((i * 7 + j * 3) % 5) as f32 + 0.5);
/// let params = NmfParams::new(3).batch_size(100).seed(1).check().unwrap();
/// let opts = PipelineOptions::new().with_epochs(2);
/// let models: Vec<OnlineNmf<f32>> = std::thread::scope(|s| {
///     let handles: Vec<_> = ThreadGroup::new(2)
///         .into_iter()
///         .map(|g| {
///             let (x, params, opts) = (x.clone(), params.clone(), opts.clone());
///             s.spawn(move || {
///                 let mut model = OnlineNmf::new(params);
///                 let mut src = MemorySource::new(x, 100);
///                 let r = fit_distributed(&mut model, &mut src, &opts, &g, None, None, |_| {});
///                 assert_eq!(r.unwrap().local_batches, 6); // 3 of the 6 batches, twice
///                 model
///             })
///         })
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(models[0], models[1]);
/// assert_eq!(models[0].batches_seen(), 6); // 3 rounds per epoch
/// ```
pub fn fit_distributed<F: Float>(
    model: &mut OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    group: &dyn Collective,
    resume: Option<RunState<F>>,
    checkpoints: Option<&Checkpointing>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<DistributedReport> {
    let (rank, ranks) = (group.rank(), group.size());
    let start_time = Instant::now();
    let local = opts.check().and_then(|()| {
        if opts.epochs > 1 && !source.rewindable() {
            Err(Error::NotRewindable)
        } else {
            Ok(())
        }
    });
    agree(group, local)?;
    source.will_read(opts.epochs);
    // The source reads its own share when it can; otherwise every rank reads everything
    // and keeps every `ranks`-th batch.
    let (r, n) = if source.share(rank, ranks) {
        (0, 1)
    } else {
        (rank, ranks)
    };
    let mut share = Share::new(source, r, n);

    // Rank 0 readies the model (resumed, or new and initialized from the input's first
    // batch) and sends it, with the run state, to every rank; all of them (rank 0 too)
    // continue from the decoded copy, so they start from identical bits.
    let (mut first, mut opened) = (None, None);
    let ready = if rank == 0 {
        (|| {
            let run = match resume {
                Some(_) if model.components().is_err() => {
                    return Err(Error::ModelFile("checkpoint holds no dictionary".into()));
                }
                Some(run) if run.ranks != ranks => {
                    return Err(Error::RanksDiffer {
                        checkpoint: run.ranks,
                        now: ranks,
                    })
                }
                Some(run) => run,
                None => {
                    if model.components().is_err() {
                        let checker = Checker::new(model, &share, true)?;
                        let mut epoch = share.epoch(0)?;
                        let b = first_batch(&mut epoch, &checker, share.name())?;
                        model.ensure_dictionary(b.view())?;
                        (first, opened) = (Some(b), Some(epoch));
                    }
                    // Every rank gets the kept-statistics state with the model.
                    if opts.epochs > 1 && share.same_batches_every_epoch() {
                        model.keep_pass_statistics(share.rows());
                    }
                    RunState {
                        next_seq: 0,
                        position: InputPosition::default(),
                        recent: Vec::new(),
                        ranks,
                    }
                }
            };
            Ok(encode_run(model, &run))
        })()
    } else {
        Ok(Vec::new())
    };
    let bytes = broadcast_result(group, 0, ready)?;
    let (synced, run) = decode_run::<F>(&bytes)?;
    let threads = model.threads();
    *model = synced.with_threads(threads);

    let start = Start {
        seq: 0,
        epoch: run.position.epoch,
        skip: run.position.batches_in_epoch,
    };
    let setup = Checker::new(model, &share, true).and_then(|checker| {
        let epoch0 = match opened {
            Some(it) => it,
            None if start.epoch < opts.epochs => share.epoch(start.epoch)?,
            None => Box::new(std::iter::empty()),
        };
        Ok((checker, epoch0))
    });
    let (checker, epoch0) = agree(group, setup)?;
    if start.epoch >= opts.epochs {
        model.end_pass();
        let mut done = DistributedReport::nothing(ranks);
        done.pipeline.epochs = opts.epochs;
        return Ok(done);
    }

    let span = tracing::info_span!("fit_distributed", rank, ranks);
    let _g = span.enter();
    let params = model.params().clone();
    let mut rounds = Rounds {
        group,
        model,
        params,
        threads: opts.batch_threads,
        epochs: opts.epochs,
        position: run.position,
        next_seq: run.next_seq,
        checkpoints,
        since_checkpoint: (0, Instant::now()),
        stop: opts.stop.as_deref(),
        agreed: false,
        on_batch: &mut on_batch,
        report: DistributedReport::nothing(ranks),
    };
    let input = Input {
        source: &mut share,
        first: first.map(std::sync::Arc::new),
        epoch0,
        start,
        epochs: opts.epochs,
        checker: &checker,
        stop: opts.stop.as_deref(),
        // Every rank runs every epoch: ranks see different rows, and stopping early
        // would need them to agree on a sample's loss.
        samples: None,
    };
    let shared = Shared::new();
    // The reader reads and checks ahead; the one worker passes batches on in order, and
    // the calling thread does the rest, since each batch needs the previous round's H.
    let read = run_ordered(
        input,
        1,
        opts.queue_depth,
        &shared,
        &|| {},
        &mut (),
        |_| Ok(()),
        |_| Ok(Some(())),
        |_, item, ()| {
            while item.epoch > rounds.position.epoch {
                rounds.close_epoch()?;
                rounds.next_epoch();
            }
            rounds
                .solve(item.batch.view())
                .map_err(|e| item.batch.locate(e))
                .map(|()| Flow::Continue)
        },
    );
    let result = read.and_then(|()| loop {
        rounds.close_epoch()?;
        if rounds.position.epoch + 1 < rounds.epochs {
            rounds.next_epoch();
        } else {
            break Ok(());
        }
    });
    if let Err(e) = result {
        if !rounds.agreed {
            // This rank's own error: the other ranks learn it in the next round.
            let mine = match &e {
                Error::Interrupted { .. } => Round::stop(),
                e => Round::failed(rank, e.to_string()),
            };
            let _ = rounds.exchange(mine);
        }
        if let Error::Interrupted { .. } = e {
            // Every rank waits for rank 0's checkpoint: a rank that exited first could
            // have its job ended (`mpirun` stops the others once one exits non-zero)
            // before the checkpoint is on disk.
            let checkpoint = agree(group, rounds.write_checkpoint())?;
            return Err(Error::Interrupted { checkpoint });
        }
        return Err(e);
    }
    rounds.model.end_pass();
    rounds.model.drop_pass_statistics();
    let written = rounds.write_checkpoint().map(|_| ());
    agree(group, written)?;
    let mut report = rounds.report;
    report.pipeline.epochs = opts.epochs;
    report.pipeline.seconds = start_time.elapsed().as_secs_f64();
    tracing::info!(
        rounds = report.pipeline.batches,
        local_batches = report.local_batches,
        solve_s = report.solve_seconds,
        exchange_s = report.exchange_seconds,
        update_s = report.update_seconds,
        largest_message = report.largest_message,
        "distributed fit done"
    );
    Ok(report)
}

/// The rounds of one rank: its model, where the fit stands, and what it measured.
struct Rounds<'a, F> {
    group: &'a dyn Collective,
    model: &'a mut OnlineNmf<F>,
    params: ValidParams,
    threads: usize,
    epochs: usize,
    /// Epoch, and rounds and rows of it applied.
    position: InputPosition,
    /// Rounds applied since the fit began (across resumes).
    next_seq: u64,
    checkpoints: Option<&'a Checkpointing>,
    since_checkpoint: (u64, Instant),
    stop: Option<&'a AtomicBool>,
    /// Whether the error being returned is known to every rank (no round needed to tell).
    agreed: bool,
    on_batch: &'a mut dyn FnMut(&BatchReport),
    report: DistributedReport,
}

impl<F: Float> Rounds<'_, F> {
    /// Solves this rank's batch against the current H and takes part in the round.
    fn solve(&mut self, x: Valid<F>) -> Result<()> {
        let t = Instant::now();
        let learnt = self.model.learnt(self.position.epoch as u64);
        let h = self.model.components()?;
        let solved = solve_batch(&self.params, h, x, self.threads, learnt);
        let summary = CodesSummary::of(&solved.codes, x.nrows(), self.model.batches_seen())
            .map_err(|e| narrow_overflow(e, &self.params, h, x))?;
        self.report.solve_seconds += t.elapsed().as_secs_f64();
        self.report.local_batches += 1;
        let mine = Round::batch(self.group.rank(), solved.contribution, summary);
        self.round(mine, Some(x)).map(|_| ())
    }

    /// Rounds with nothing to add until one in which no rank had a batch: the epoch is
    /// over on every rank.
    fn close_epoch(&mut self) -> Result<()> {
        loop {
            let stopped = self.stop.is_some_and(|s| s.load(Ordering::SeqCst));
            let mine = if stopped {
                Round::stop()
            } else {
                Round::idle()
            };
            if !self.round(mine, None)? {
                return Ok(());
            }
        }
    }

    fn next_epoch(&mut self) {
        self.model.start_pass();
        self.position = InputPosition {
            epoch: self.position.epoch + 1,
            ..Default::default()
        };
    }

    /// Every rank's state for this round, combined; an error (known to every rank) if a
    /// rank failed or was asked to stop.
    fn exchange(&mut self, mine: Round<F>) -> Result<Round<F>> {
        let t = Instant::now();
        let bytes = mine.encode();
        self.report.largest_message = self.report.largest_message.max(bytes.len() as u64);
        let all = reduce_broadcast(self.group, bytes, |a, b| {
            Ok(Round::<F>::decode(&a)?.combine(Round::decode(&b)?).encode())
        })
        .and_then(|b| Round::<F>::decode(&b));
        self.report.exchange_seconds += t.elapsed().as_secs_f64();
        // From here on, whatever goes wrong is known to every rank (or the group is
        // broken and no round can tell anyone).
        self.agreed = true;
        let all = all?;
        if let Some((rank, message)) = all.failed {
            return Err(Error::Rank { rank, message });
        }
        if all.stop {
            return Err(Error::Interrupted { checkpoint: None });
        }
        self.agreed = false;
        Ok(all)
    }

    /// One round: applies its update (false when no rank brought a batch).
    fn round(&mut self, mine: Round<F>, batch: Option<Valid<F>>) -> Result<bool> {
        let all = self.exchange(mine)?;
        let (Some(c), Some(summary)) = (all.contribution, all.summary) else {
            return Ok(false);
        };
        let t = Instant::now();
        let mut pool = RoundRows {
            group: self.group,
            batches: &all.batches,
            mine: batch,
        };
        // The same statistics and H on every rank: an update fails on all or on none.
        self.agreed = true;
        let report = self.model.absorb_contribution(c, summary, &mut pool)?;
        self.agreed = false;
        self.report.update_seconds += t.elapsed().as_secs_f64();
        self.report.pipeline.batches += 1;
        self.report.pipeline.rows += report.rows as u64;
        self.position.batches_in_epoch += 1;
        self.position.rows_in_epoch += report.rows as u64;
        self.next_seq += 1;
        (self.on_batch)(&report);
        if let Some(c) = self.checkpoints {
            self.since_checkpoint.0 += 1;
            let due = c
                .every_batches
                .is_some_and(|n| self.since_checkpoint.0 >= n)
                || c.every
                    .is_some_and(|t| self.since_checkpoint.1.elapsed() >= t);
            if due {
                self.write_checkpoint()?;
                self.since_checkpoint = (0, Instant::now());
            }
        }
        Ok(true)
    }

    /// Rank 0 writes a checkpoint of where the fit stands (other ranks: nothing).
    fn write_checkpoint(&self) -> Result<Option<PathBuf>> {
        let Some(c) = self.checkpoints.filter(|_| self.group.rank() == 0) else {
            return Ok(None);
        };
        let run = RunState {
            next_seq: self.next_seq,
            position: self.position.clone(),
            recent: vec![(self.next_seq, self.model.components()?.to_owned())],
            ranks: self.group.size(),
        };
        let meta = Metadata {
            position: Some(self.position.clone()),
            ..c.meta.clone()
        };
        c.dir.write(self.model, &meta, &run).map(Some)
    }
}

/// The rows of a round's batches, in rank order, to re-seed a dead atom from: a row of
/// another rank's batch is sent by that rank (every rank asks for the same rows, in the
/// same order, so each request is a collective).
struct RoundRows<'g, 'b, 'x, F> {
    group: &'g dyn Collective,
    batches: &'b [(usize, usize)],
    mine: Option<Valid<'x, F>>,
}

impl<F: Float> RowPool<F> for RoundRows<'_, '_, '_, F> {
    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.1).sum()
    }
    fn row(&mut self, r: usize, width: usize) -> Result<Array1<F>> {
        let mut left = r;
        let mut owner = None;
        for &(rank, rows) in self.batches {
            if left < rows {
                owner = Some(rank);
                break;
            }
            left -= rows;
        }
        let owner = owner.ok_or_else(|| Error::Collective(format!("no row {r} in the round")))?;
        let row = match (&mut self.mine, owner == self.group.rank()) {
            (Some(x), true) => Some(wire::encode_row(&x.row(left, width)?)),
            _ => None,
        };
        wire::decode_row(&broadcast_from(self.group, owner, row)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::ThreadGroup;
    use crate::matrix::{MatRef, ValueRule};
    use crate::source::MemorySource;
    use crate::NmfParams;
    use ndarray::Array2;

    /// Every rank asks for every row of a round (2 rows on rank 0, 3 on rank 1) and gets
    /// it from its owner, padded to the width asked.
    #[test]
    fn round_rows_come_from_their_rank() {
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (10 * i + j) as f64);
        let got: Vec<Vec<Array1<f64>>> = std::thread::scope(|s| {
            let hs: Vec<_> = ThreadGroup::new(2)
                .into_iter()
                .map(|g| {
                    let x = &x;
                    s.spawn(move || {
                        let mine = match g.rank() {
                            0 => x.slice(ndarray::s![..2, ..]),
                            _ => x.slice(ndarray::s![2.., ..]),
                        };
                        let rule = ValueRule::for_beta(2.0);
                        let valid = Valid::check(MatRef::from(mine), 0, rule, 1).unwrap();
                        let batches = [(0, 2), (1, 3)];
                        let mut pool = RoundRows {
                            group: &g,
                            batches: &batches,
                            mine: Some(valid),
                        };
                        assert_eq!(pool.rows(), 5);
                        (0..5).map(|r| pool.row(r, 4).unwrap()).collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for rows in got {
            for (r, row) in rows.iter().enumerate() {
                let want: Vec<f64> = (0..3).map(|j| (10 * r + j) as f64).chain([0.0]).collect();
                assert_eq!(row.to_vec(), want);
            }
        }
    }

    /// More atoms than the data has: dead atoms are re-seeded from rows of other ranks'
    /// batches too, and the ranks still agree.
    #[test]
    fn ranks_reseed_dead_atoms_alike() {
        // Rank-1 data: k = 6 leaves atoms with no energy.
        let x = Array2::from_shape_fn((800, 12), |(i, j)| {
            ((i % 7) as f64 + 1.0) * ((j % 4) as f64 + 0.5)
        });
        let params = NmfParams::new(6).batch_size(50).seed(4).check().unwrap();
        let opts = PipelineOptions::new().with_batch_threads(1).with_epochs(2);
        let got: Vec<(OnlineNmf<f64>, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = ThreadGroup::new(3)
                .into_iter()
                .map(|g| {
                    let (x, params, opts) = (x.clone(), params.clone(), opts.clone());
                    s.spawn(move || {
                        let mut m = OnlineNmf::new(params);
                        let mut reseeded = 0;
                        let mut src = MemorySource::new(x, 50);
                        fit_distributed(&mut m, &mut src, &opts, &g, None, None, |b| {
                            reseeded += b.reseeded.len()
                        })
                        .unwrap();
                        (m, reseeded)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got[0].1 > 0, "no atom was re-seeded");
        assert!(got.iter().all(|(m, r)| *m == got[0].0 && *r == got[0].1));
    }
}
