//! The engine under [`super::fit_with`] and [`super::transform`]: every thread, channel
//! and shutdown path.
//!
//! ```text
//!   reader thread ──batches──▶ solver workers (N) ──solved──▶ calling thread
//!   (read, check, epochs)      (codes W_b against H          (consume in sequence
//!          ▲                    version t − s)                order: the dictionary
//!          │                          ▲                       updater, or a sink)
//!          └── bounded(queue) ────────┴──── bounded(queue) ──────────┘
//! ```
//!
//! * **Start**: a new model's first batch is read and checked on the calling thread,
//!   and the model's shape checked against it, before the threads start; the calling
//!   thread then initializes the dictionary from it (`prepare`) while the reader reads
//!   on, and the solvers wait for that dictionary (version 0).
//! * **Checking**: the reader passes every batch a source yields through the one
//!   validator ([`ValidBatch::check`]) before it is queued, so no solver ever sees a batch
//!   that was not checked, whatever the source. Sources with no rows left in a batch (an
//!   empty record batch) are skipped.
//! * **Errors in order**: a source's error or a batch that fails the check travels down
//!   the queues in its place, numbered like a batch; the consumer applies every batch
//!   before it, then stops. So a failed run has applied exactly the batches before the
//!   bad one, whatever the timing.
//! * **Back-pressure**: both channels are bounded, and batch `t` cannot be solved before
//!   dictionary version `t − s` exists, so at most `2·queue + N + s` batches are in flight:
//!   memory is bounded by the batch size, never by the input.
//! * **Recycling**: the consumer drops each sparse batch it has applied into the run's
//!   [`Spares`] and the reader builds later batches in that storage (warm pages, no
//!   faults); the pool keeps at most two, so the bound above grows by two batches at most.
//! * **Convergence**: the reader copies each epoch's convergence sample aside and leaves
//!   it in [`Samples`] when the epoch is read; the consumer scores it as it closes the
//!   pass, and a converged fit ends the run with [`Flow::Finish`]: the quit flag without an
//!   error. Batches of the next epoch already read or solved are dropped unapplied.
//! * **Shutdown**: end of input closes the batch channel; workers drain and drop their
//!   senders; the consumer's loop ends when all have. An error anywhere is recorded (first
//!   one wins) and raises a shared quit flag; a panicking thread raises it from a drop
//!   guard. Every blocking point either watches the flag or sees its channel close, and
//!   the join turns a panic into [`Error::WorkerPanic`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::spare::Spares;
use crate::matrix::{Batch, MatRef, Matrix, ValidBatch, ValueRule};
use crate::model::convergence::RowSample;
use crate::model::{check_size, Loss, OnlineNmf, Unobserved};
use crate::source::{BatchIter, BatchSource};

/// How the reader checks each batch of a source for a model: the model's value rule, the
/// width (the model's, once it has a dictionary) and the source's feature names for
/// messages. Sparse sources may be narrower or wider than the model (see
/// [`BatchSource::sparse`]): a narrower batch is widened; a wider one grows the width
/// (fitting: the dictionary-updater grows H when its contribution arrives) or loses its
/// entries beyond the width, which are counted (codes).
pub(super) struct Checker {
    rule: ValueRule,
    width: AtomicUsize,
    names: Vec<String>,
    sparse: bool,
    grow: Option<(usize, Loss, Unobserved)>,
    ignored: AtomicU64,
}

impl Checker {
    /// A checker for fitting (`grow`) or computing codes with `model`.
    pub(super) fn new<F: Float>(
        model: &OnlineNmf<F>,
        source: &dyn BatchSource<F>,
        grow: bool,
    ) -> Result<Self> {
        let (sparse, mut width) = (source.sparse(), source.width());
        if let Ok(h) = model.components() {
            if sparse {
                width = width.max(h.ncols());
            } else if h.ncols() != width {
                return Err(Error::WidthMismatch {
                    expected: h.ncols(),
                    found: width,
                });
            }
            if !grow {
                width = h.ncols();
            }
        }
        let p = model.params();
        if grow && sparse {
            check_size::<F>(p.rank(), width, p.loss(), p.unobserved())?;
        }
        Ok(Self {
            rule: model.value_rule(),
            width: AtomicUsize::new(width),
            names: source.feature_names(),
            sparse,
            grow: grow.then(|| (p.rank(), p.loss(), p.unobserved())),
            ignored: AtomicU64::new(0),
        })
    }
    pub(super) fn check<F: Float>(&self, b: Batch<F>) -> Result<ValidBatch<F>> {
        let mut width = self.width.load(Ordering::SeqCst);
        let b = match (self.sparse, b.view()) {
            (true, MatRef::Csr(c)) if c.ncols() > width => match self.grow {
                Some((k, loss, mode)) => {
                    check_size::<F>(k, c.ncols(), loss, mode)?;
                    width = c.ncols();
                    self.width.store(width, Ordering::SeqCst);
                    b
                }
                None => b.map_data(|m| {
                    let Matrix::Csr(c) = m else {
                        unreachable!("matched CSR")
                    };
                    let (kept, dropped) = c.view().first_columns(width);
                    self.ignored.fetch_add(dropped as u64, Ordering::SeqCst);
                    Ok(Matrix::Csr(kept))
                })?,
            },
            (true, MatRef::Csr(c)) if c.ncols() < width => b.map_data(|m| match m {
                Matrix::Csr(c) => Ok(Matrix::Csr(c.widen(width))),
                dense => Ok(dense),
            })?,
            _ => b,
        };
        ValidBatch::check(b, self.rule, width, &self.names)
    }
    pub(super) fn width(&self) -> usize {
        self.width.load(Ordering::SeqCst)
    }
    /// Stored entries dropped because their feature is beyond the model's width (codes
    /// only).
    pub(super) fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::SeqCst)
    }
}

/// Where a run starts: the first sequence number, epoch, and batches of that epoch to
/// skip (already applied before a checkpoint).
pub(super) struct Start {
    pub(super) seq: u64,
    pub(super) epoch: usize,
    pub(super) skip: u64,
}

/// What travels down the queues: a checked batch, or the error that took its place.
type Msg<T> = (u64, Result<T>);

/// What the consumer says after each batch: go on, or the run is complete (a converged
/// fit), which ends it without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Finish,
}

/// The convergence samples of the epochs the reader has read to the end (see
/// [`crate::model::convergence`]), for the updater to score as it closes each pass. The
/// reader samples every batch of an epoch, those a resumed run skips included, so a
/// resumed fit scores the same rows as one that never stopped.
pub(super) struct Samples<F> {
    stride: u64,
    done: Mutex<BTreeMap<usize, Option<Matrix<F>>>>,
}

impl<F> Samples<F> {
    /// Samples taking every `stride`-th row of each epoch.
    pub(super) fn new(stride: u64) -> Self {
        Self {
            stride,
            done: Mutex::new(BTreeMap::new()),
        }
    }
    fn put(&self, epoch: usize, sample: Option<Matrix<F>>) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.insert(epoch, sample);
    }
    /// The sample of `epoch`, once the reader has read all of it.
    pub(super) fn take(&self, epoch: usize) -> Option<Matrix<F>> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.remove(&epoch).flatten()
    }
}

/// One batch on its way through the threads.
pub(super) struct Item<F: Float> {
    pub(super) seq: u64,
    pub(super) epoch: usize,
    pub(super) batch: Arc<ValidBatch<F>>,
}

/// The last holder of a sparse batch hands its storage to the run's
/// [spare pool](crate::matrix::spare), if its thread takes part in one (a batch still
/// shared with the init is someone else's).
impl<F: Float> Drop for Item<F> {
    fn drop(&mut self) {
        if let Some(b) = Arc::get_mut(&mut self.batch) {
            b.recycle();
        }
    }
}

/// What the reader reads: the source, its first epoch already opened (and possibly its
/// first batch already taken and checked, to initialize the model, shared with the
/// calling thread that does so), how to check each batch, how many epochs, and the flag
/// that asks it to stop.
pub(super) struct Input<'a, F> {
    pub(super) source: &'a mut dyn BatchSource<F>,
    pub(super) first: Option<Arc<ValidBatch<F>>>,
    pub(super) epoch0: BatchIter<F>,
    pub(super) start: Start,
    pub(super) epochs: usize,
    pub(super) checker: &'a Checker,
    pub(super) stop: Option<&'a AtomicBool>,
    /// Where to leave each epoch's convergence sample (multi-pass fits).
    pub(super) samples: Option<&'a Samples<F>>,
}

/// State every thread sees: the quit flag and the first error.
pub(super) struct Shared {
    quit: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            quit: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }
    pub(super) fn quitting(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }
    /// Ends the run without an error: every thread stops as on a failure.
    fn finish(&self) {
        self.quit.store(true, Ordering::SeqCst);
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
pub(super) struct Versions<F> {
    list: Mutex<VecDeque<(u64, Arc<Array2<F>>)>>,
    changed: Condvar,
}

impl<F> Versions<F> {
    pub(super) fn new() -> Self {
        Self {
            list: Mutex::new(VecDeque::new()),
            changed: Condvar::new(),
        }
    }
    pub(super) fn publish(&self, version: u64, h: Arc<Array2<F>>, keep_from: u64) {
        let mut l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        l.push_back((version, h));
        while l.front().is_some_and(|(v, _)| *v < keep_from) {
            l.pop_front();
        }
        self.changed.notify_all();
    }
    pub(super) fn snapshot(&self) -> Vec<(u64, Array2<F>)>
    where
        F: Clone,
    {
        let l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        l.iter().map(|(v, h)| (*v, (**h).clone())).collect()
    }
    pub(super) fn wake(&self) {
        let _l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.notify_all();
    }
    /// Blocks until `version` is published; `None` when the pipeline is quitting.
    pub(super) fn wait(&self, version: u64, shared: &Shared) -> Option<Arc<Array2<F>>> {
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

/// The reader: epochs of checked batches, numbered in order, into `tx`; the first error
/// goes down the queue in place of its batch and ends the reading.
fn read<F: Float>(
    input: Input<'_, F>,
    tx: crossbeam_channel::Sender<Msg<Item<F>>>,
    shared: &Shared,
) {
    let Input {
        source,
        first,
        epoch0,
        start,
        epochs,
        checker,
        stop,
        samples,
    } = input;
    let stopped = || stop.is_some_and(|s| s.load(Ordering::SeqCst));
    let mut seq = start.seq;
    let mut epoch0 = Some(epoch0);
    let mut first = first;
    // A failed send means downstream stopped: end quietly.
    let fail = |seq, e| {
        let _ = tx.send((seq, Err(e)));
    };
    for epoch in start.epoch..epochs {
        let mut iter = match epoch0.take() {
            Some(it) => it,
            None => match source.epoch(epoch) {
                Ok(it) => it,
                Err(e) => return fail(seq, e),
            },
        };
        let mut sample = samples.map(|s| RowSample::new(s.stride));
        let mut row = 0u64;
        let mut offer = |b: &Batch<F>| {
            if let Some(s) = sample.as_mut() {
                s.offer(b.view(), b.origin(), row);
            }
            row += b.rows() as u64;
        };
        if epoch == start.epoch {
            // Resuming: these batches are already in the model (but in the sample).
            for _ in 0..start.skip {
                match iter.next() {
                    Some(Ok(b)) => offer(&b),
                    Some(Err(e)) => return fail(seq, e),
                    None => break,
                }
            }
        }
        let batches = first.take().map(Ok).into_iter().chain(
            iter.map(|b| {
                b.and_then(|b| {
                    if b.rows() == 0 {
                        Ok(None)
                    } else {
                        checker.check(b).map(|b| Some(Arc::new(b)))
                    }
                })
            })
            .filter_map(|b| b.transpose()),
        );
        for b in batches {
            if shared.quitting() {
                return;
            }
            if stopped() {
                // Asked to stop: the batches before this one are applied, then the run
                // ends here, at a position a checkpoint can name exactly.
                return fail(seq, Error::Interrupted { checkpoint: None });
            }
            match b {
                Ok(batch) => {
                    offer(batch.batch());
                    let item = Item { seq, epoch, batch };
                    if tx.send((seq, Ok(item))).is_err() {
                        return;
                    }
                    seq += 1;
                }
                Err(e) => return fail(seq, e),
            }
        }
        tracing::debug!(epoch, batches = seq, "reader finished an epoch");
        if let (Some(s), Some(sample)) = (samples, sample) {
            s.put(epoch, sample.finish());
        }
    }
}

type Handles<'scope> = Vec<(String, thread::ScopedJoinHandle<'scope, ()>)>;

/// Starts a named scoped thread; a refusal by the system stops the pipeline with an
/// error naming the thread.
fn spawn_named<'scope, 'env>(
    scope: &'scope thread::Scope<'scope, 'env>,
    name: String,
    f: impl FnOnce() + Send + 'scope,
    handles: &mut Handles<'scope>,
    shared: &Shared,
    wake: &dyn Fn(),
) {
    match thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(scope, f)
    {
        Ok(h) => handles.push((name, h)),
        Err(source) => {
            shared.fail(Error::ThreadSpawn {
                thread: name,
                source,
            });
            wake();
        }
    }
}

/// The engine: a reader thread, `solvers` workers running `work`, and on the calling
/// thread `prepare` (while the reader already reads) then `consume`, in sequence order,
/// until the input ends or `consume` says [`Flow::Finish`]. Both get `state`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_ordered<F, S, R, W, C>(
    input: Input<'_, F>,
    solvers: usize,
    queue_depth: usize,
    shared: &Shared,
    wake: &(dyn Fn() + Sync),
    state: &mut S,
    prepare: impl FnOnce(&mut S) -> Result<()>,
    work: W,
    mut consume: C,
) -> Result<()>
where
    F: Float,
    R: Send,
    W: Fn(&Item<F>) -> Result<Option<R>> + Sync,
    C: FnMut(&mut S, Item<F>, R) -> Result<Flow>,
{
    let (batch_tx, batch_rx) = bounded::<Msg<Item<F>>>(queue_depth);
    let (solved_tx, solved_rx) = bounded::<Msg<(Item<F>, R)>>(queue_depth);
    let span = tracing::Span::current();
    let mut next = input.start.seq;
    // The consumer (this thread) drops the batches it has applied into this pool, and
    // the reader builds later sparse batches in their storage.
    let spares = Spares::default();
    let _spares = spares.enter();
    let panic = thread::scope(|scope| {
        let mut handles = Vec::new();
        let reader_span = span.clone();
        let reader_spares = spares.clone();
        spawn_named(
            scope,
            "streamnmf-reader".into(),
            move || {
                let _g = reader_span.entered();
                let _guard = QuitOnPanic(shared, wake);
                let _spares = reader_spares.enter();
                read(input, batch_tx, shared);
            },
            &mut handles,
            shared,
            wake,
        );
        for i in 0..solvers {
            let (rx, tx) = (batch_rx.clone(), solved_tx.clone());
            let (work, span) = (&work, span.clone());
            spawn_named(
                scope,
                format!("streamnmf-solver-{i}"),
                move || {
                    let _g = span.entered();
                    let _guard = QuitOnPanic(shared, wake);
                    for (seq, msg) in rx {
                        if shared.quitting() {
                            break;
                        }
                        let out = match msg {
                            Ok(item) => match work(&item) {
                                Ok(Some(r)) => Ok((item, r)),
                                Ok(None) => break,
                                Err(e) => Err(e),
                            },
                            Err(e) => Err(e),
                        };
                        if tx.send((seq, out)).is_err() {
                            break;
                        }
                    }
                },
                &mut handles,
                shared,
                wake,
            );
        }
        drop(batch_rx);
        drop(solved_tx);
        // A panic below (in `prepare`, `consume` or a callback they run, such as a user's
        // sink) unwinds out of this scope, which then waits for the threads above: they
        // must be told to stop, or the reader blocks on a full queue and the solvers wait
        // for a dictionary that never comes, for ever.
        let _guard = QuitOnPanic(shared, wake);

        // The calling thread's own start (a new model's dictionary, which the solvers wait
        // for), overlapping the reading; then the consumer, strictly in sequence order,
        // errors included.
        if let Err(e) = prepare(state) {
            shared.fail(e);
            wake();
        }
        let mut pending = BTreeMap::new();
        'recv: for (seq, out) in solved_rx.iter() {
            if shared.quitting() {
                break;
            }
            pending.insert(seq, out);
            while let Some(out) = pending.remove(&next) {
                match out.and_then(|(item, r)| consume(state, item, r)) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Finish) => {
                        shared.finish();
                        wake();
                        break 'recv;
                    }
                    Err(e) => {
                        shared.fail(e);
                        wake();
                        break 'recv;
                    }
                }
                next += 1;
            }
        }
        drop(solved_rx); // unblocks solvers waiting to send
        wake();

        let mut panic = None;
        for (name, h) in handles {
            if let Err(p) = h.join() {
                panic.get_or_insert(Error::WorkerPanic {
                    thread: name,
                    message: panic_message(p),
                });
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
