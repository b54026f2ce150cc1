//! How the engine meets the interpreter: library errors as Python exceptions, long calls
//! run with the GIL released and Ctrl-C watched, the engine's logs into Python's
//! `logging`, and progress callbacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use streamnmf::Error;

/// Forwards the engine's `tracing` events (INFO and above: passes, checkpoints,
/// warnings) to Python's `logging.getLogger("streamnmf")`, which decides what is shown.
pub(crate) struct PythonLogging;

/// The event's message and fields as one line: `message key=value …`.
#[derive(Default)]
pub(crate) struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, "{}={value:?}", field.name())
        };
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PythonLogging {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => 40,
            tracing::Level::WARN => 30,
            tracing::Level::INFO => 20,
            tracing::Level::DEBUG => 10,
            tracing::Level::TRACE => 5,
        };
        let mut line = Line::default();
        event.record(&mut line);
        // Every computing call releases the GIL first, so taking it here cannot wait on
        // a thread that waits on this one.
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|l| l.call_method1("getLogger", ("streamnmf",)))
                .and_then(|logger| logger.call_method1("log", (level, line.0)));
            if let Err(e) = logged {
                e.print(py);
            }
        });
    }
}

/// A library error as the Python exception a user expects.
pub(crate) fn py_err(e: Error) -> PyErr {
    let mut cause: &Error = &e;
    while let Error::InFile { source, .. } = cause {
        cause = source;
    }
    match cause {
        Error::Io(_) | Error::Locked { .. } => PyOSError::new_err(e.to_string()),
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err("interrupted"),
        Error::WorkerPanic { .. } | Error::ThreadSpawn { .. } => {
            PyRuntimeError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Runs `work` on a scoped thread with the GIL released, checking for Python signals
/// every 50 ms: a pending one (Ctrl-C) sets `stop`, which the work polls between
/// batches, and its exception is raised once the work has returned.
pub(crate) fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let handle = s.spawn(move || {
                let out = work();
                let _ = tx.send(());
                out
            });
            let mut signal = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(50))
            {
                if signal.is_none() {
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        stop.store(true, Ordering::Relaxed);
                        signal = Some(e);
                    }
                }
            }
            let out = handle
                .join()
                .map_err(|_| PyRuntimeError::new_err("streamnmf: a worker thread panicked"))?;
            match signal {
                Some(e) => Err(e),
                None => Ok(out),
            }
        })
    })
}

/// Calls the Python progress callback, if any, with the rows of a learned batch.
pub(crate) fn report_progress(progress: Option<&Py<PyAny>>, rows: usize) {
    if let Some(cb) = progress {
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, (rows,)) {
                e.print(py);
            }
        });
    }
}
