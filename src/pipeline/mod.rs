//! The streaming pipeline: [`fit`], [`fit_with`] (checkpoints, resume) and [`transform`]
//! read a [`BatchSource`] on a reader thread, solve codes on solver threads, and apply
//! the results in order on the calling thread. Every thread, channel and shutdown path is
//! in `engine.rs` (this file's only helper).
//!
//! * **Determinism**: batch `t` is always solved against dictionary version `t − s` (the
//!   dictionary after `t − s` updates), whatever the thread timing, and updates are
//!   applied in sequence order; with `s = 0` this is exactly `partial_fit` in a loop.
//! * **Validation**: every batch passes the model's validator on the reader thread before
//!   any solver sees it, whatever the source.

mod distributed;
mod engine;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::parallel::default_threads;
use crate::matrix::Batch;
use crate::matrix::ValidBatch;
use crate::model::convergence;
use crate::model::{solve_batch, BatchReport, Learnt, OnlineNmf};
use crate::persist::{CheckpointDir, InputPosition, Metadata, RunState};
use crate::source::{BatchIter, BatchSource};
pub use distributed::{fit_distributed, DistributedReport};
use engine::{run_ordered, Checker, Flow, Input, Item, Samples, Shared, Start, Versions};

/// Solver threads a pipeline may run, at most: each is a thread with its own stack, and
/// past the cores more solvers only add staleness.
pub const MAX_SOLVERS: usize = 256;

/// Batches each of a pipeline's queues may hold, at most: a queue's slots are allocated
/// when it is made (a depth of 10⁸ asked for 42 GB and aborted the process).
pub const MAX_QUEUE_DEPTH: usize = 4096;

/// How the engine runs: a builder whose settings never change a result except
/// `staleness` (and, through it, `solvers` when staleness follows them).
///
/// ```
/// use streamnmf::pipeline::PipelineOptions;
/// let o = PipelineOptions::new().with_solvers(2).with_staleness(2).with_epochs(5);
/// assert_eq!((o.solvers(), o.staleness(), o.epochs(), o.queue_depth()), (2, 2, 5, 2));
/// ```
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    solvers: usize,
    batch_threads: usize,
    staleness: usize,
    queue_depth: usize,
    epochs: usize,
    stop: Option<Arc<AtomicBool>>,
    #[cfg(feature = "test-hooks")]
    panic_in_solver_at: Option<u64>,
}

impl PartialEq for PipelineOptions {
    /// The settings (the stop flag is compared by identity).
    fn eq(&self, o: &Self) -> bool {
        let same_stop = match (&self.stop, &o.stop) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        (
            self.solvers,
            self.batch_threads,
            self.staleness,
            self.queue_depth,
            self.epochs,
        ) == (
            o.solvers,
            o.batch_threads,
            o.staleness,
            o.queue_depth,
            o.epochs,
        ) && same_stop
    }
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PipelineOptions {
    /// One solver thread using all cores inside each batch, staleness 1 (the solver works
    /// on batch t + 1 while the updater applies batch t), queues of 2 batches, one epoch.
    pub fn new() -> Self {
        Self {
            solvers: 1,
            batch_threads: default_threads(),
            staleness: 1,
            queue_depth: 2,
            epochs: 1,
            stop: None,
            #[cfg(feature = "test-hooks")]
            panic_in_solver_at: None,
        }
    }
    /// Solver threads: batches solved at the same time (they overlap only with
    /// staleness ≥ 1), at most [`MAX_SOLVERS`].
    pub fn with_solvers(mut self, n: usize) -> Self {
        self.solvers = n;
        self
    }
    /// Threads each solver uses inside one batch, on fixed row chunks: never changes the
    /// result.
    pub fn with_batch_threads(mut self, n: usize) -> Self {
        self.batch_threads = n;
        self
    }
    /// Staleness s: batch t is solved against dictionary version t − s (0 = lockstep).
    pub fn with_staleness(mut self, s: usize) -> Self {
        self.staleness = s;
        self
    }
    /// Capacity, in batches, of each of the two channels, at most [`MAX_QUEUE_DEPTH`].
    pub fn with_queue_depth(mut self, n: usize) -> Self {
        self.queue_depth = n;
        self
    }
    /// Passes over the input, at most (streams allow one): a fit stops after an earlier
    /// pass once the model's convergence test says so ([`NmfParams::pass_tol`]; 0 makes
    /// every pass).
    ///
    /// [`NmfParams::pass_tol`]: crate::NmfParams::pass_tol
    pub fn with_epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }
    /// A flag that stops the run once raised (from a signal handler, another thread, a
    /// user interface): the reader stops reading, every batch read before is solved and
    /// applied in order, a checkpoint is written if checkpoints are on, and the run
    /// returns [`Error::Interrupted`]. Resuming from that checkpoint continues exactly.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use ndarray::Array2;
    /// use streamnmf::pipeline::{fit, PipelineOptions};
    /// use streamnmf::source::MemorySource;
    /// use streamnmf::{Error, NmfParams, OnlineNmf};
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let opts = PipelineOptions::new().with_stop(stop.clone()).with_staleness(0);
    /// let x = Array2::from_shape_fn((1000, 5), |(i, j)| ((i + j) % 3) as f32);
    /// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
    /// let r = fit(&mut model, &mut MemorySource::new(x, 100), &opts, |b| {
    ///     if b.seq == 3 {
    ///         stop.store(true, Ordering::SeqCst);
    ///     }
    /// });
    /// assert!(matches!(r, Err(Error::Interrupted { .. })));
    /// assert!(model.batches_seen() >= 4 && model.batches_seen() < 10);
    /// ```
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }
    /// Fault injection for the tests: the solver panics on batch `seq`.
    #[cfg(feature = "test-hooks")]
    pub fn with_panic_in_solver_at(mut self, seq: u64) -> Self {
        self.panic_in_solver_at = Some(seq);
        self
    }
    /// Solver threads: batches solved at the same time.
    pub fn solvers(&self) -> usize {
        self.solvers
    }
    /// Threads each solver uses inside one batch.
    pub fn batch_threads(&self) -> usize {
        self.batch_threads
    }
    /// Staleness s: batch t is solved against dictionary version t − s.
    pub fn staleness(&self) -> usize {
        self.staleness
    }
    /// Capacity, in batches, of each of the two channels.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth
    }
    /// Passes over the input.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    fn check(&self) -> Result<()> {
        if self.solvers == 0 {
            return Err(Error::ZeroSolvers);
        }
        if self.batch_threads == 0 {
            return Err(Error::ZeroBatchThreads);
        }
        if self.queue_depth == 0 {
            return Err(Error::ZeroQueueDepth);
        }
        for (what, value, limit) in [
            ("solvers", self.solvers, MAX_SOLVERS),
            ("queue depth", self.queue_depth, MAX_QUEUE_DEPTH),
        ] {
            if value > limit {
                return Err(Error::PipelineLimit { what, value, limit });
            }
        }
        if self.epochs == 0 {
            return Err(Error::ZeroEpochs);
        }
        Ok(())
    }

    fn inject_faults(&self, _seq: u64) {
        #[cfg(feature = "test-hooks")]
        if self.panic_in_solver_at == Some(_seq) {
            panic!("injected solver panic at batch {_seq}");
        }
    }
}

/// What a pipeline run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    /// Epochs completed.
    pub epochs: usize,
    /// Batches processed.
    pub batches: u64,
    /// Rows processed (over all epochs).
    pub rows: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Stored entries of features beyond the model's width, ignored when computing codes
    /// of a sparse input (new items in a growing catalogue); 0 when fitting, which learns
    /// them.
    pub ignored_entries: u64,
    /// Whether the last pass of a multi-pass fit improved the loss of its convergence
    /// sample by less than the model's [`pass_tol`](crate::NmfParams::pass_tol), which
    /// ends a fit before its last epoch (see [`OnlineNmf::sample_losses`]).
    pub converged: bool,
}

/// When and where the dictionary updater writes checkpoints: every so many batches and/or
/// every so much wall-clock time, and at the end of the run.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::time::Duration;
/// use streamnmf::persist::{CheckpointDir, Metadata};
/// use streamnmf::pipeline::Checkpointing;
/// let dir = tempfile::tempdir()?;
/// let ck = Checkpointing::new(CheckpointDir::new(dir.path(), 3)?, Metadata::default())
///     .every_batches(500)
///     .every(Duration::from_secs(600));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Checkpointing {
    dir: CheckpointDir,
    every_batches: Option<u64>,
    every: Option<Duration>,
    meta: Metadata,
}

impl Checkpointing {
    /// Checkpoints into `dir` (only at the end of the run until a period is set), each
    /// holding `meta` (feature names, fingerprint of the run) and the input position.
    pub fn new(dir: CheckpointDir, meta: Metadata) -> Self {
        Self {
            dir,
            every_batches: None,
            every: None,
            meta,
        }
    }
    /// Also every `n` batches.
    pub fn every_batches(mut self, n: u64) -> Self {
        self.every_batches = Some(n);
        self
    }
    /// Also every `t` of wall-clock time.
    pub fn every(mut self, t: Duration) -> Self {
        self.every = Some(t);
        self
    }
    /// The periods set: every so many batches, every so much wall-clock time (neither:
    /// only at the end of the run and on a stop signal).
    ///
    /// ```
    /// # fn main() -> streamnmf::Result<()> {
    /// use std::time::Duration;
    /// use streamnmf::persist::{CheckpointDir, Metadata};
    /// use streamnmf::pipeline::Checkpointing;
    /// let dir = tempfile::tempdir()?;
    /// let ck = Checkpointing::new(CheckpointDir::new(dir.path(), 3)?, Metadata::default());
    /// assert_eq!(ck.periods(), (None, None));
    /// let ck = ck.every(Duration::from_secs(60));
    /// assert_eq!(ck.periods(), (None, Some(Duration::from_secs(60))));
    /// # Ok(()) }
    /// ```
    pub fn periods(&self) -> (Option<u64>, Option<Duration>) {
        (self.every_batches, self.every)
    }
}

/// Learns `model` from `source` through the threads: up to `opts.epochs()` passes (a new
/// pass starts each epoch after the first, with the statistics handled as in
/// [`OnlineNmf::fit`]), fewer when the convergence test stops the fit (see
/// [`OnlineNmf::sample_losses`]). `on_batch` sees each batch's report, in order, on the
/// calling thread (progress bars, logs).
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::pipeline::{fit, PipelineOptions};
/// use streamnmf::source::MemorySource;
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((500, 8), |(i, j)| ((i * j) % 5) as f64);
/// let mut model = OnlineNmf::<f64>::new(NmfParams::new(3).check().unwrap());
/// let opts = PipelineOptions::new().with_solvers(2).with_epochs(3);
/// let mut seen = 0;
/// let report = fit(&mut model, &mut MemorySource::new(x, 100), &opts, |_| seen += 1).unwrap();
/// assert_eq!((report.batches, seen), (15, 15));
/// ```
pub fn fit<F: Float>(
    model: &mut OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    on_batch: impl FnMut(&BatchReport),
) -> Result<PipelineReport> {
    fit_with(model, source, opts, None, None, on_batch)
}

/// [`fit`], resuming from a checkpoint's run state (`resume`, with the model loaded from
/// the same checkpoint) and/or writing checkpoints. A resumed run ends with bitwise the
/// same model as an uninterrupted one on the same input, parameters and pipeline options
/// (the thread counts may differ).
pub fn fit_with<F: Float>(
    model: &mut OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    resume: Option<RunState<F>>,
    checkpoints: Option<&Checkpointing>,
    on_batch: impl FnMut(&BatchReport),
) -> Result<PipelineReport> {
    fit_with_codes(
        model,
        source,
        opts,
        resume,
        checkpoints,
        on_batch,
        |_, _| Ok(()),
    )
}

/// [`fit_with`], also handing `on_codes` each batch's codes, in order, as the batch is
/// learned from: the codes against the dictionary the batch was solved with (online
/// activations, e.g. for a live audio stream), with the batch's row ids. An error from
/// `on_codes` stops the run.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::pipeline::{fit_with_codes, PipelineOptions};
/// use streamnmf::source::MemorySource;
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((300, 6), |(i, j)| ((i + 2 * j) % 4) as f32);
/// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
/// let mut rows = Vec::new();
/// let opts = PipelineOptions::new();
/// let src = &mut MemorySource::new(x, 64);
/// fit_with_codes(&mut model, src, &opts, None, None, |_| {}, |w, _| {
///     rows.push(w.nrows());
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(rows, [64, 64, 64, 64, 44]);
/// ```
pub fn fit_with_codes<F: Float>(
    model: &mut OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    resume: Option<RunState<F>>,
    checkpoints: Option<&Checkpointing>,
    mut on_batch: impl FnMut(&BatchReport),
    mut on_codes: impl FnMut(ndarray::ArrayView2<F>, Option<&crate::RowIds>) -> Result<()>,
) -> Result<PipelineReport> {
    opts.check()?;
    if opts.epochs > 1 && !source.rewindable() {
        return Err(Error::NotRewindable);
    }
    source.will_read(opts.epochs);
    let checker = Checker::new(model, source, true)?;
    let start_time = Instant::now();
    let s = opts.staleness as u64;
    let shared = Shared::new();
    let versions = Versions::new();
    let fresh = resume.is_none();
    let (start, mut position, first, epoch0) = match resume {
        Some(run) => {
            if model.components().is_err() {
                return Err(Error::ModelFile("checkpoint holds no dictionary".into()));
            }
            if run.ranks != 1 {
                return Err(Error::RanksDiffer {
                    checkpoint: run.ranks,
                    now: 1,
                });
            }
            for (v, h) in run.recent {
                versions.publish(v, Arc::new(h), run.next_seq.saturating_sub(s));
            }
            let start = Start {
                seq: run.next_seq,
                epoch: run.position.epoch,
                skip: run.position.batches_in_epoch,
            };
            if start.epoch >= opts.epochs {
                let converged = model.close_pass(None)?;
                return Ok(PipelineReport {
                    epochs: opts.epochs,
                    batches: 0,
                    rows: 0,
                    seconds: 0.0,
                    ignored_entries: 0,
                    converged,
                });
            }
            let epoch0 = source.epoch(start.epoch)?;
            (start, run.position, None, epoch0)
        }
        None => {
            let mut epoch0 = source.epoch(0)?;
            let first = if model.components().is_err() {
                // The first non-empty batch initializes the dictionary before any solve:
                // on the calling thread once the reader runs (`prepare` below), checked
                // here, so that a model the data cannot have fails before any reading.
                let first = first_batch(&mut epoch0, &checker, source.name())?;
                model.check_init(first.view().ncols())?;
                Some(Arc::new(first))
            } else {
                None
            };
            let start = Start {
                seq: 0,
                epoch: 0,
                skip: 0,
            };
            (start, InputPosition::default(), first, epoch0)
        }
    };
    // What the calling thread does while the reader starts: a new model's dictionary from
    // the first batch (its SVD took 70 ms of a 0.4 s sparse fit, the reader idle), the
    // pass statistics, and version 0 of H for the solvers.
    let init = first.clone();
    let keep_statistics =
        (fresh && opts.epochs > 1 && source.same_batches_every_epoch()).then(|| source.rows());
    let prepare = |model: &mut OnlineNmf<F>| -> Result<()> {
        if let Some(first) = &init {
            let read = start_time.elapsed();
            model.ensure_dictionary(first.view())?;
            tracing::debug!(
                rows = first.view().nrows(),
                read_ms = read.as_millis() as u64,
                init_ms = (start_time.elapsed() - read).as_millis() as u64,
                "first batch read, dictionary initialized"
            );
        }
        if fresh {
            if let Some(rows) = keep_statistics {
                model.keep_pass_statistics(rows);
            }
            versions.publish(0, Arc::new(model.components()?.to_owned()), 0);
        }
        Ok(())
    };

    let span = tracing::info_span!("fit", solvers = opts.solvers, staleness = opts.staleness);
    let _g = span.enter();
    let wake = || versions.wake();
    let params = model.params().clone();
    // The updates a dictionary version has had: its number, plus what the model had
    // learnt before this run's first batch (a model given to update, or the run resumed).
    let updates_before = model.batches_seen().saturating_sub(start.seq);
    let (mut batches, mut rows) = (0u64, 0u64);
    let mut since_checkpoint = (0u64, Instant::now());
    let write_checkpoint =
        |model: &OnlineNmf<F>, position: &InputPosition, next_seq: u64| match checkpoints {
            Some(c) => {
                let run = RunState {
                    next_seq,
                    position: position.clone(),
                    recent: versions.snapshot(),
                    ranks: 1,
                };
                let meta = Metadata {
                    position: Some(position.clone()),
                    ..c.meta.clone()
                };
                c.dir.write(model, &meta, &run).map(Some)
            }
            None => Ok(None),
        };
    let mut next_seq = start.seq;
    // Multi-pass fits test for convergence on a sample of rows, scored as each pass closes.
    let samples = (opts.epochs > 1 && params.pass_tol() > 0.0)
        .then(|| Samples::new(convergence::sample_stride(source.rows())));
    let mut converged = false;
    let input = Input {
        source,
        first,
        epoch0,
        start,
        epochs: opts.epochs,
        checker: &checker,
        stop: opts.stop.as_deref(),
        samples: samples.as_ref(),
    };
    let run = run_ordered(
        input,
        opts.solvers,
        opts.queue_depth,
        &shared,
        &wake,
        model,
        prepare,
        |item: &Item<F>| {
            let version = item.seq.saturating_sub(s);
            let Some(h) = versions.wait(version, &shared) else {
                return Ok(None);
            };
            opts.inject_faults(item.seq);
            let learnt = Learnt {
                updates: updates_before + version,
                pass: item.epoch as u64,
            };
            let x = item.batch.view();
            Ok(Some(solve_batch(
                &params,
                h.view(),
                x,
                opts.batch_threads,
                learnt,
            )))
        },
        |model, item, solved| {
            if item.epoch != position.epoch {
                let sample = samples.as_ref().and_then(|s| s.take(position.epoch));
                if model.close_pass(sample.as_ref())? {
                    converged = true;
                    return Ok(Flow::Finish);
                }
                model.start_pass();
                position = InputPosition {
                    epoch: item.epoch,
                    ..Default::default()
                };
            }
            on_codes(solved.codes.w.view(), item.batch.batch().ids())?;
            let report = model
                .absorb(solved, item.batch.view())
                .map_err(|e| item.batch.locate(e))?;
            batches += 1;
            rows += report.rows as u64;
            position.batches_in_epoch += 1;
            position.rows_in_epoch += report.rows as u64;
            on_batch(&report);
            let h = Arc::new(model.components()?.to_owned());
            next_seq = item.seq + 1;
            versions.publish(next_seq, h, next_seq.saturating_sub(s));
            if let Some(c) = checkpoints {
                since_checkpoint.0 += 1;
                let due = c.every_batches.is_some_and(|n| since_checkpoint.0 >= n)
                    || c.every.is_some_and(|t| since_checkpoint.1.elapsed() >= t);
                if due {
                    write_checkpoint(model, &position, next_seq)?;
                    since_checkpoint = (0, Instant::now());
                }
            }
            Ok(Flow::Continue)
        },
    );
    if let Err(Error::Interrupted { .. }) = run {
        // Stopped on request: every batch before the stop is applied; the pass is not
        // over, so the checkpoint holds it as it stands.
        let checkpoint = write_checkpoint(model, &position, next_seq)?;
        return Err(Error::Interrupted { checkpoint });
    }
    run?;
    if !converged {
        // The input ended: close its last pass (a converged run closed it already).
        let sample = samples.as_ref().and_then(|s| s.take(position.epoch));
        converged = model.close_pass(sample.as_ref())?;
    }
    model.drop_pass_statistics();
    write_checkpoint(model, &position, next_seq)?;
    Ok(PipelineReport {
        epochs: position.epoch + 1,
        batches,
        rows,
        seconds: start_time.elapsed().as_secs_f64(),
        ignored_entries: 0,
        converged,
    })
}

/// The first non-empty batch of an epoch, checked: the one that initializes a new
/// model's dictionary. An input with none is an error naming the source.
fn first_batch<F: Float>(
    epoch: &mut BatchIter<F>,
    checker: &Checker,
    name: Option<String>,
) -> Result<ValidBatch<F>> {
    for b in epoch {
        let b = b?;
        if b.rows() > 0 {
            return checker.check(b);
        }
    }
    let empty = Error::EmptyBatch {
        rows: 0,
        cols: checker.width(),
    };
    Err(match name {
        Some(name) => empty.in_file(name),
        None => empty,
    })
}

/// Codes of every row of `source` with the model's H fixed, through the threads; `sink`
/// receives each batch (with its ids) and its codes, in input order, on the calling
/// thread. Every batch is checked like in [`fit`].
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::pipeline::{transform, PipelineOptions};
/// use streamnmf::source::MemorySource;
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((300, 6), |(i, j)| ((i + j) % 4) as f32);
/// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
/// model.fit(&x).unwrap();
/// let mut rows = 0;
/// transform(&model, &mut MemorySource::new(x, 64), &PipelineOptions::new(), |b, w| {
///     assert_eq!(w.nrows(), b.rows());
///     rows += w.nrows();
///     Ok(())
/// }).unwrap();
/// assert_eq!(rows, 300);
/// ```
pub fn transform<F: Float>(
    model: &OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    mut sink: impl FnMut(&Batch<F>, Array2<F>) -> Result<()>,
) -> Result<PipelineReport> {
    opts.check()?;
    let h = model.components()?.to_owned();
    source.will_read(1);
    let checker = Checker::new(model, source, false)?;
    let start_time = Instant::now();
    let epoch0 = source.epoch(0)?;
    let shared = Shared::new();
    let params = model.params().clone();
    let (mut batches, mut rows) = (0u64, 0u64);
    let _span = tracing::info_span!("transform").entered();
    let input = Input {
        source,
        first: None,
        epoch0,
        start: Start {
            seq: 0,
            epoch: 0,
            skip: 0,
        },
        epochs: 1,
        checker: &checker,
        stop: opts.stop.as_deref(),
        samples: None,
    };
    run_ordered(
        input,
        opts.solvers,
        opts.queue_depth,
        &shared,
        &|| {},
        &mut (),
        |_| Ok(()),
        |item: &Item<F>| {
            opts.inject_faults(item.seq);
            let x = item.batch.view();
            crate::model::transform_batch(&params, h.view(), x, opts.batch_threads, item.seq)
                .map(Some)
                .map_err(|e| item.batch.locate(e))
        },
        |_, item, w| {
            batches += 1;
            rows += w.nrows() as u64;
            sink(item.batch.batch(), w).map(|()| Flow::Continue)
        },
    )?;
    Ok(PipelineReport {
        epochs: 1,
        batches,
        rows,
        seconds: start_time.elapsed().as_secs_f64(),
        ignored_entries: checker.ignored(),
        converged: false,
    })
}
