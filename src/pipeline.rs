//! The streaming engine: every thread, channel and shutdown path, in one file.
//!
//! ```text
//!   reader thread ──batches──▶ solver workers (N) ──solved──▶ calling thread
//!   (decode, validate,         (codes W_b against H          (dictionary updater:
//!    re-chunk, epochs)          version t − s)                apply in sequence order,
//!          ▲                          ▲                        publish H version t + 1)
//!          └── bounded(queue) ────────┴──── bounded(queue) ──────────┘
//! ```
//!
//! Two helpers live outside this file, both scoped to one step: a file source decodes
//! record batches on a `streamnmf-decode` thread, at most two ahead, behind a bounded
//! channel (`io::source`, so decoding overlaps conversion; dropped with the epoch's
//! iterator), and each solver spreads a batch's fixed row chunks over `batch_threads`
//! scoped threads (`parallel`), joined before the batch leaves the solver.
//!
//! * **Back-pressure**: both channels are bounded, and batch `t` cannot be solved before
//!   dictionary version `t − s` exists, so at most `2·queue + N + s` batches are in flight:
//!   memory is bounded by the batch size, never by the input.
//! * **Determinism**: batch `t` is always solved against dictionary version `t − s` (the
//!   dictionary after `t − s` updates), whatever the thread timing, and updates are
//!   applied in sequence order; with `s = 0` this is exactly `partial_fit` in a loop.
//! * **Shutdown**: end of input closes the batch channel; workers drain and drop their
//!   senders; the updater's loop ends when all have. An error anywhere is recorded (first
//!   one wins) and raises a shared quit flag; a panicking thread raises it from a drop
//!   guard. Every blocking point either watches the flag or sees its channel close, and
//!   the join turns a panic into [`Error::WorkerPanic`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::checkpoint::{CheckpointDir, InputPosition, Metadata, RunState};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{BatchIter, BatchSource};
use crate::model::{codes_threads, solve_batch_threads, BatchReport, OnlineNmf};

/// How the engine runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineOptions {
    /// Solver worker threads: batches solved at the same time (needs staleness ≥ 1 to
    /// overlap).
    pub solver_threads: usize,
    /// Threads each solver uses inside one batch, on fixed row chunks: never changes the
    /// result (see [`crate::solve_batch_threads`]).
    #[serde(default = "crate::parallel::default_threads")]
    pub batch_threads: usize,
    /// Staleness s: batch t is solved against dictionary version t − s (0 = lockstep).
    pub staleness: usize,
    /// Capacity, in batches, of each of the two channels.
    pub queue_depth: usize,
    /// Passes over the input (streams allow one).
    pub epochs: usize,
    /// Test hook: the solver panics on this batch.
    #[doc(hidden)]
    pub panic_in_solver_at: Option<u64>,
}

impl Default for PipelineOptions {
    /// One solver thread using all cores inside each batch, staleness 1 (the solver works
    /// on batch t + 1 while the updater applies batch t), queues of 2 batches, one epoch.
    fn default() -> Self {
        Self {
            solver_threads: 1,
            batch_threads: crate::parallel::default_threads(),
            staleness: 1,
            queue_depth: 2,
            epochs: 1,
            panic_in_solver_at: None,
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
}

/// Where a run starts: the first sequence number, epoch, and batches of that epoch to
/// skip (already applied before a checkpoint).
struct Start {
    seq: u64,
    epoch: usize,
    skip: u64,
}

/// When and where the dictionary updater writes checkpoints: every `every_batches`
/// batches and/or every `every` of wall-clock time, and at the end of the run.
#[derive(Clone, Debug)]
pub struct Checkpointing {
    /// Where.
    pub dir: CheckpointDir,
    /// Every so many batches.
    pub every_batches: Option<u64>,
    /// Every so much time.
    pub every: Option<Duration>,
    /// Written into each checkpoint (feature names, fingerprint of the run).
    pub meta: Metadata,
}

/// One batch on its way through the threads.
struct Item<F> {
    seq: u64,
    epoch: usize,
    batch: Arc<Batch<F>>,
}

/// State every thread sees: the quit flag and the first error.
struct Shared {
    quit: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            quit: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }
    fn quitting(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.quit.store(true, Ordering::SeqCst);
    }
    fn take_error(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Dictionary versions published by the updater, kept while a worker may still need them.
struct Versions<F> {
    list: Mutex<VecDeque<(u64, Arc<Array2<F>>)>>,
    changed: Condvar,
}

impl<F> Versions<F> {
    fn new() -> Self {
        Self {
            list: Mutex::new(VecDeque::new()),
            changed: Condvar::new(),
        }
    }
    fn publish(&self, version: u64, h: Arc<Array2<F>>, keep_from: u64) {
        let mut l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        l.push_back((version, h));
        while l.front().is_some_and(|(v, _)| *v < keep_from) {
            l.pop_front();
        }
        self.changed.notify_all();
    }
    fn snapshot(&self) -> Vec<(u64, Array2<F>)>
    where
        F: Clone,
    {
        let l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        l.iter().map(|(v, h)| (*v, (**h).clone())).collect()
    }
    fn wake(&self) {
        let _l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.notify_all();
    }
    /// Blocks until `version` is published; `None` when the pipeline is quitting.
    fn wait(&self, version: u64, shared: &Shared) -> Option<Arc<Array2<F>>> {
        let mut l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if shared.quitting() {
                return None;
            }
            if let Some((_, h)) = l.iter().find(|(v, _)| *v == version) {
                return Some(h.clone());
            }
            // The timeout is a safety net; quits and publishes notify.
            l = self
                .changed
                .wait_timeout(l, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Raises the quit flag if the thread that owns it unwinds.
struct QuitOnPanic<'a>(&'a Shared, &'a dyn Fn());

impl Drop for QuitOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.quit.store(true, Ordering::SeqCst);
            (self.1)();
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

fn check_options(opts: &PipelineOptions) -> Result<()> {
    if opts.solver_threads == 0 {
        return Err(Error::ZeroIterations("solver_threads"));
    }
    if opts.batch_threads == 0 {
        return Err(Error::ZeroIterations("batch_threads"));
    }
    crate::blas::single_threaded();
    if opts.queue_depth == 0 {
        return Err(Error::ZeroIterations("queue_depth"));
    }
    if opts.epochs == 0 {
        return Err(Error::ZeroIterations("epochs"));
    }
    Ok(())
}

/// The engine: a reader thread, `solver_threads` workers running `work`, and `consume`
/// on the calling thread, in sequence order.
#[allow(clippy::too_many_arguments)]
fn run_ordered<F, R, W, C>(
    first: Option<Batch<F>>,
    epoch0: BatchIter<F>,
    start: &Start,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    shared: &Shared,
    wake: &(dyn Fn() + Sync),
    work: W,
    mut consume: C,
) -> Result<()>
where
    F: Float,
    R: Send,
    W: Fn(&Item<F>) -> Result<Option<R>> + Sync,
    C: FnMut(Item<F>, R) -> Result<()>,
{
    let (batch_tx, batch_rx) = bounded::<Item<F>>(opts.queue_depth);
    let (solved_tx, solved_rx) = bounded::<(Item<F>, R)>(opts.queue_depth);
    let span = tracing::Span::current();
    let panic = thread::scope(|scope| {
        let mut handles = Vec::new();

        // Reader: epochs of batches, numbered in order.
        let reader_span = span.clone();
        let reader = move || {
            let _g = reader_span.entered();
            let _guard = QuitOnPanic(shared, wake);
            let mut seq = start.seq;
            let mut epoch0 = Some(epoch0);
            let mut first = first;
            'epochs: for epoch in start.epoch..opts.epochs {
                let mut iter = match epoch0.take() {
                    Some(it) => it,
                    None => match source.epoch(epoch) {
                        Ok(it) => it,
                        Err(e) => {
                            shared.fail(e);
                            wake();
                            break;
                        }
                    },
                };
                if epoch == start.epoch {
                    // Resuming: these batches are already in the model.
                    for _ in 0..start.skip {
                        match iter.next() {
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                shared.fail(e);
                                wake();
                                break 'epochs;
                            }
                            None => break,
                        }
                    }
                }
                for b in first.take().map(Ok).into_iter().chain(iter) {
                    if shared.quitting() {
                        break 'epochs;
                    }
                    match b {
                        Ok(batch) => {
                            let item = Item {
                                seq,
                                epoch,
                                batch: Arc::new(batch),
                            };
                            seq += 1;
                            if batch_tx.send(item).is_err() {
                                break 'epochs; // downstream stopped
                            }
                        }
                        Err(e) => {
                            shared.fail(e);
                            wake();
                            break 'epochs;
                        }
                    }
                }
                tracing::debug!(epoch, batches = seq, "reader finished an epoch");
            }
        };
        handles.push((
            "streamnmf-reader".to_string(),
            thread::Builder::new()
                .name("streamnmf-reader".into())
                .spawn_scoped(scope, reader),
        ));

        // Solvers.
        for i in 0..opts.solver_threads {
            let (rx, tx) = (batch_rx.clone(), solved_tx.clone());
            let (work, span) = (&work, span.clone());
            let name = format!("streamnmf-solver-{i}");
            let solver = move || {
                let _g = span.entered();
                let _guard = QuitOnPanic(shared, wake);
                for item in rx {
                    if shared.quitting() {
                        break;
                    }
                    match work(&item) {
                        Ok(Some(r)) => {
                            if tx.send((item, r)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            shared.fail(e);
                            wake();
                            break;
                        }
                    }
                }
            };
            handles.push((
                name.clone(),
                thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, solver),
            ));
        }
        drop(batch_rx);
        drop(solved_tx);

        // The consumer, here: strictly in sequence order.
        let mut pending = BTreeMap::new();
        let mut next = start.seq;
        'recv: for (item, r) in solved_rx.iter() {
            if shared.quitting() {
                break;
            }
            pending.insert(item.seq, (item, r));
            while let Some((item, r)) = pending.remove(&next) {
                if let Err(e) = consume(item, r) {
                    shared.fail(e);
                    wake();
                    break 'recv;
                }
                next += 1;
            }
        }
        drop(solved_rx); // unblocks solvers waiting to send
        wake();

        let mut panic = None;
        for (name, h) in handles {
            match h {
                Ok(h) => {
                    if let Err(p) = h.join() {
                        panic.get_or_insert(Error::WorkerPanic {
                            thread: name,
                            message: panic_message(p),
                        });
                    }
                }
                Err(e) => {
                    shared.fail(Error::Io(e));
                    wake();
                }
            }
        }
        panic
    });
    match (panic, shared.take_error()) {
        (Some(p), _) => Err(p),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(()),
    }
}

/// Learns `model` from `source` through the threads: `opts.epochs` passes (a new pass
/// starts each epoch after the first, as [`OnlineNmf::start_pass`]). `on_batch` sees each
/// batch's report, in order, on the calling thread (progress bars, logs, checkpoints).
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::io::MemorySource;
/// use streamnmf::pipeline::{fit, PipelineOptions};
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((500, 8), |(i, j)| ((i * j) % 5) as f64);
/// let mut model = OnlineNmf::<f64>::new(NmfParams::new(3).check().unwrap());
/// let opts = PipelineOptions { solver_threads: 2, epochs: 3, ..Default::default() };
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
/// (the thread count may differ).
pub fn fit_with<F: Float>(
    model: &mut OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    opts: &PipelineOptions,
    resume: Option<RunState<F>>,
    checkpoints: Option<&Checkpointing>,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<PipelineReport> {
    check_options(opts)?;
    if opts.epochs > 1 && !source.rewindable() {
        return Err(Error::Schema(
            "a stream can be read only once: use one epoch".into(),
        ));
    }
    if let Ok(h) = model.components() {
        if h.ncols() != source.width() {
            return Err(Error::WidthMismatch {
                expected: h.ncols(),
                found: source.width(),
            });
        }
    }
    let start_time = Instant::now();
    let s = opts.staleness as u64;
    let shared = Shared::new();
    let versions = Versions::new();
    let (start, mut position, first, it0) = match resume {
        Some(run) => {
            if model.components().is_err() {
                return Err(Error::ModelFile("checkpoint holds no dictionary".into()));
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
                model.end_pass();
                return Ok(PipelineReport {
                    epochs: opts.epochs,
                    batches: 0,
                    rows: 0,
                    seconds: 0.0,
                });
            }
            let it0 = source.epoch(start.epoch)?;
            (start, run.position, None, it0)
        }
        None => {
            let mut it0 = source.epoch(0)?;
            let first = if model.components().is_err() {
                let first = match it0.next() {
                    Some(b) => b?,
                    None => {
                        return Err(Error::EmptyBatch {
                            rows: 0,
                            cols: source.width(),
                        })
                    }
                };
                // The first batch initializes the dictionary before any solve.
                model.admit(first.view(), first.first_row)?;
                Some(first)
            } else {
                None
            };
            versions.publish(0, Arc::new(model.components()?.to_owned()), 0);
            let start = Start {
                seq: 0,
                epoch: 0,
                skip: 0,
            };
            (start, InputPosition::default(), first, it0)
        }
    };

    let span = tracing::info_span!(
        "fit",
        threads = opts.solver_threads,
        staleness = opts.staleness
    );
    let _g = span.enter();
    let wake = || versions.wake();
    let params = model.params().clone();
    let (mut batches, mut rows) = (0u64, 0u64);
    let mut since_checkpoint = (0u64, Instant::now());
    let write_checkpoint =
        |model: &OnlineNmf<F>, position: &InputPosition, next_seq: u64| match checkpoints {
            Some(c) => {
                let run = RunState {
                    next_seq,
                    position: position.clone(),
                    recent: versions.snapshot(),
                };
                let meta = Metadata {
                    position: Some(position.clone()),
                    ..c.meta.clone()
                };
                c.dir.write(model, &meta, &run).map(|_| ())
            }
            None => Ok(()),
        };
    let mut next_seq = start.seq;
    run_ordered(
        first,
        it0,
        &start,
        source,
        opts,
        &shared,
        &wake,
        |item: &Item<F>| {
            let Some(h) = versions.wait(item.seq.saturating_sub(s), &shared) else {
                return Ok(None);
            };
            if opts.panic_in_solver_at == Some(item.seq) {
                panic!("injected solver panic at batch {}", item.seq);
            }
            Ok(Some(solve_batch_threads(
                &params,
                h.view(),
                item.batch.view(),
                opts.batch_threads,
            )))
        },
        |item, solved| {
            if item.epoch != position.epoch {
                model.start_pass();
                position = InputPosition {
                    epoch: item.epoch,
                    ..Default::default()
                };
            }
            let report = model.absorb(solved, item.batch.view())?;
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
            Ok(())
        },
    )?;
    model.end_pass();
    write_checkpoint(model, &position, next_seq)?;
    Ok(PipelineReport {
        epochs: position.epoch + 1,
        batches,
        rows,
        seconds: start_time.elapsed().as_secs_f64(),
    })
}

/// Codes of every row of `source` with the model's H fixed, through the threads; `sink`
/// receives each batch (with its ids) and its codes, in input order, on the calling thread.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::io::MemorySource;
/// use streamnmf::pipeline::{transform, PipelineOptions};
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = Array2::from_shape_fn((300, 6), |(i, j)| ((i + j) % 4) as f32);
/// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check().unwrap());
/// model.fit(&x).unwrap();
/// let mut rows = 0;
/// transform(&model, &mut MemorySource::new(x, 64), &PipelineOptions::default(), |b, w| {
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
    check_options(opts)?;
    let h = model.components()?.to_owned();
    if h.ncols() != source.width() {
        return Err(Error::WidthMismatch {
            expected: h.ncols(),
            found: source.width(),
        });
    }
    let start = Instant::now();
    let it0 = source.epoch(0)?;
    let shared = Shared::new();
    let one = PipelineOptions {
        epochs: 1,
        ..opts.clone()
    };
    let params = model.params().clone();
    let (mut batches, mut rows) = (0u64, 0u64);
    let _span = tracing::info_span!("transform").entered();
    run_ordered(
        None,
        it0,
        &Start {
            seq: 0,
            epoch: 0,
            skip: 0,
        },
        source,
        &one,
        &shared,
        &|| {},
        |item: &Item<F>| {
            if opts.panic_in_solver_at == Some(item.seq) {
                panic!("injected solver panic at batch {}", item.seq);
            }
            Ok(Some(
                codes_threads(&params, h.view(), item.batch.view(), opts.batch_threads).w,
            ))
        },
        |item, w| {
            batches += 1;
            rows += w.nrows() as u64;
            sink(&item.batch, w)
        },
    )?;
    Ok(PipelineReport {
        epochs: 1,
        batches,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}
