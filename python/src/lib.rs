//! `streamnmf._streamnmf`: the engine behind the Python package's `StreamNMF` estimator.
//!
//! One class, `Model`, holds an `OnlineNmf` in float32 or float64 (the dtype of the data
//! it was created for) and the model file's metadata. Every call that computes releases
//! the GIL; the long ones (`fit`, `fit_transform`, `fit_stream`, `fit_files`) run on a
//! worker thread while the calling thread watches for Python signals, so Ctrl-C stops
//! them between batches with `KeyboardInterrupt`. Library errors become `ValueError`
//! (bad input, with its row and column), `OSError` (files) or `KeyboardInterrupt`.
//!
//! The estimator logic (scikit-learn's API, input validation) lives in Python; this
//! module takes dense C-contiguous or any-strided NumPy arrays without copying them, and
//! CSR matrices as their three arrays.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyCapsuleMethods, PyDict};

use streamnmf::io::{FileSource, InputOptions, Layout, StreamSource};
use streamnmf::persist::{self, Metadata};
use streamnmf::pipeline::{self, PipelineOptions};
use streamnmf::{
    CsrMatrix, Error, FitReport, Float, Init, Loss, MatRef, NmfParams, OnlineNmf, Unobserved,
    ValidParams,
};

/// Forwards the engine's `tracing` events (INFO and above: passes, checkpoints,
/// warnings) to Python's `logging.getLogger("streamnmf")`, which decides what is shown.
struct PythonLogging;

/// The event's message and fields as one line: `message key=value …`.
#[derive(Default)]
struct Line(String);

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
fn py_err(e: Error) -> PyErr {
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
fn interruptible<T: Send>(
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

/// The model in the dtype it computes in.
enum Inner {
    F32(OnlineNmf<f32>),
    F64(OnlineNmf<f64>),
}

/// Runs `$body` with `$m` bound to the typed model and `$F` to its float type.
macro_rules! with_model {
    ($inner:expr, $m:ident, $F:ident => $body:expr) => {
        match $inner {
            Inner::F32($m) => {
                #[allow(dead_code)]
                type $F = f32;
                $body
            }
            Inner::F64($m) => {
                #[allow(dead_code)]
                type $F = f64;
                $body
            }
        }
    };
}

/// Data handed in from Python: a dense array view (no copy) or a CSR matrix built from
/// scipy's three arrays (indices converted to u32).
enum Data<'py, F: Float + numpy::Element> {
    Dense(PyReadonlyArray2<'py, F>),
    Csr(CsrMatrix<F>),
}

impl<'py, F: Float + numpy::Element> Data<'py, F> {
    fn extract(x: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(t) = x.extract::<(
            PyReadonlyArray1<'py, i64>,
            PyReadonlyArray1<'py, i64>,
            PyReadonlyArray1<'py, F>,
            usize,
        )>() {
            let (indptr, indices, data, ncols) = t;
            let indptr: Vec<usize> = indptr
                .as_array()
                .iter()
                .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
                .collect();
            let indices: Vec<u32> = indices
                .as_array()
                .iter()
                .map(|&v| u32::try_from(v).unwrap_or(u32::MAX))
                .collect();
            let data = data.as_array().to_vec();
            let csr = CsrMatrix::try_new(ncols, indptr, indices, data).map_err(py_err)?;
            return Ok(Data::Csr(csr));
        }
        Ok(Data::Dense(x.extract()?))
    }
    fn view(&self) -> MatRef<'_, F> {
        match self {
            Data::Dense(a) => MatRef::from(a.as_array()),
            Data::Csr(c) => MatRef::from(c),
        }
    }
}

/// What an unstored entry means: `zero`, `missing`, `implicit:ALPHA` (confidence
/// `1 + ALPHA·r`) or `implicit-log:ALPHA` (`1 + ALPHA·log(1 + r)`).
fn parse_unobserved(s: &str) -> PyResult<Unobserved> {
    let bad = || {
        PyValueError::new_err(format!(
            "unobserved must be zero, missing, implicit:ALPHA or implicit-log:ALPHA, not {s:?}"
        ))
    };
    match s.split_once(':') {
        None if s == "zero" => Ok(Unobserved::Zero),
        None if s == "missing" => Ok(Unobserved::Missing),
        Some((kind @ ("implicit" | "implicit-log"), alpha)) => Ok(Unobserved::Implicit {
            alpha: alpha.parse().map_err(|_| bad())?,
            log: kind == "implicit-log",
        }),
        _ => Err(bad()),
    }
}

/// `dense`, `triplets:ROW,COL,VALUE` or `list:COLUMN`, as the CLI's `--layout`.
fn parse_layout(s: &str) -> PyResult<Layout> {
    let bad = || {
        PyValueError::new_err(format!(
            "layout must be dense, triplets:ROW,COL,VALUE or list:COLUMN, not {s:?}"
        ))
    };
    match s.split_once(':') {
        None if s == "dense" => Ok(Layout::Dense),
        Some(("triplets", cols)) => match cols.split(',').collect::<Vec<_>>()[..] {
            [row, col, value] if !row.is_empty() && !col.is_empty() && !value.is_empty() => {
                Ok(Layout::Triplets {
                    row: row.into(),
                    col: col.into(),
                    value: value.into(),
                })
            }
            _ => Err(bad()),
        },
        Some(("list", column)) if !column.is_empty() => Ok(Layout::SparseList {
            column: column.into(),
        }),
        _ => Err(bad()),
    }
}

/// Calls the Python progress callback, if any, with the rows of a learned batch.
fn report_progress(progress: Option<&Py<PyAny>>, rows: usize) {
    if let Some(cb) = progress {
        Python::attach(|py| {
            if let Err(e) = cb.call1(py, (rows,)) {
                e.print(py);
            }
        });
    }
}

fn report<'py>(py: Python<'py>, r: &FitReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("passes", r.passes)?;
    d.set_item("batches", r.batches)?;
    d.set_item("pass_losses", r.pass_losses.clone())?;
    d.set_item("converged", r.converged)?;
    Ok(d)
}

/// An online NMF model (see the Python package's `StreamNMF` for the estimator).
#[pyclass(module = "streamnmf._streamnmf")]
struct Model {
    inner: Inner,
    meta: Metadata,
}

fn parse_params(n_components: usize, kw: &Bound<'_, PyDict>) -> PyResult<ValidParams> {
    let mut p = NmfParams::new(n_components);
    for (key, value) in kw.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        p = match key.as_str() {
            "loss" => {
                let s: String = value.extract()?;
                let loss: Loss = s.parse().map_err(PyValueError::new_err)?;
                p.loss(loss)
            }
            "init" => p.init(match value.extract::<String>()?.as_str() {
                "auto" => Init::Auto,
                "random" => Init::Random,
                "nndsvd" => Init::Nndsvd,
                "nndsvda" => Init::Nndsvda,
                "nndsvdar" => Init::Nndsvdar,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "init must be one of auto, random, nndsvd, nndsvda, nndsvdar, not {other:?}"
                    )))
                }
            }),
            "batch_size" => p.batch_size(value.extract()?),
            "max_passes" => p.max_passes(value.extract()?),
            "pass_tol" => p.pass_tol(value.extract()?),
            "forget" => p.forget(value.extract()?),
            "decay" => p.decay(value.extract()?),
            "alpha_w" => p.alpha_w(value.extract()?),
            "alpha_h" => p.alpha_h(value.extract()?),
            "l1_ratio" => p.l1_ratio(value.extract()?),
            "seed" => p.seed(value.extract()?),
            "code_max_iter" => p.code_max_iter(value.extract()?),
            "code_tol" => p.code_tol(value.extract()?),
            "dict_max_iter" => p.dict_max_iter(value.extract()?),
            "dict_tol" => p.dict_tol(value.extract()?),
            "epsilon" => p.epsilon(value.extract()?),
            // "zero", "missing", or "implicit:ALPHA" / "implicit-log:ALPHA".
            "unobserved" => p.unobserved(parse_unobserved(&value.extract::<String>()?)?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown parameter {other:?}"
                )))
            }
        };
    }
    p.check().map_err(py_err)
}

#[pymethods]
impl Model {
    /// `Model(n_components, dtype, threads, **params)`: a new, unfitted model computing in
    /// `dtype` ("float32" or "float64"); `params` as `NmfParams` names them.
    #[new]
    #[pyo3(signature = (n_components, dtype="float64", threads=None, **params))]
    fn new(
        n_components: usize,
        dtype: &str,
        threads: Option<usize>,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let py_params = match params {
            Some(d) => parse_params(n_components, d)?,
            None => NmfParams::new(n_components).check().map_err(py_err)?,
        };
        let inner = match dtype {
            "float32" => {
                let m = OnlineNmf::<f32>::new(py_params);
                Inner::F32(match threads {
                    Some(t) => m.with_threads(t.max(1)),
                    None => m,
                })
            }
            "float64" => {
                let m = OnlineNmf::<f64>::new(py_params);
                Inner::F64(match threads {
                    Some(t) => m.with_threads(t.max(1)),
                    None => m,
                })
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "dtype must be float32 or float64, not {other}"
                )))
            }
        };
        Ok(Model {
            inner,
            meta: Metadata::default(),
        })
    }

    /// "float32" or "float64".
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.inner {
            Inner::F32(_) => "float32",
            Inner::F64(_) => "float64",
        }
    }

    /// Rank k.
    #[getter]
    fn n_components(&self) -> usize {
        with_model!(&self.inner, m, F => m.params().rank())
    }

    /// Features of the dictionary (0 before the first batch).
    #[getter]
    fn n_features(&self) -> usize {
        with_model!(&self.inner, m, F => m.components().map(|h| h.ncols()).unwrap_or(0))
    }

    /// Batches learned from.
    #[getter]
    fn batches_seen(&self) -> u64 {
        with_model!(&self.inner, m, F => m.batches_seen())
    }

    /// Rows learned from.
    #[getter]
    fn rows_seen(&self) -> u64 {
        with_model!(&self.inner, m, F => m.rows_seen())
    }

    /// Mean loss per row of every completed pass.
    #[getter]
    fn loss_history(&self) -> Vec<f64> {
        with_model!(&self.inner, m, F => m.loss_history().to_vec())
    }

    /// The parameters, as the model file stores them (JSON).
    #[getter]
    fn params_json(&self) -> PyResult<String> {
        with_model!(&self.inner, m, F => serde_json::to_string(m.params()))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Feature names kept with the model (written to its file).
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.meta.feature_names.clone()
    }

    #[setter]
    fn set_feature_names(&mut self, names: Vec<String>) {
        self.meta.feature_names = names;
    }

    /// H (k × p) as a new array.
    fn components<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_model!(&self.inner, m, F => {
            let h = m.components().map_err(py_err)?.to_owned();
            Ok(h.into_pyarray(py).into_any())
        })
    }

    /// Fits from scratch on in-memory data (all passes); returns the fit's report.
    fn fit<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let stop = AtomicBool::new(false);
        let r = with_model!(&mut self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let view = data.view();
            interruptible(py, &stop, || m.fit_until(view, &stop))?.map_err(py_err)?
        });
        report(py, &r)
    }

    /// Fits from scratch and returns `(codes of the fit's last pass, report)`.
    fn fit_transform<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        let stop = AtomicBool::new(false);
        with_model!(&mut self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let view = data.view();
            let (w, r) = interruptible(py, &stop, || m.fit_transform_until(view, Some(&stop)))?
                .map_err(py_err)?;
            Ok((w.into_pyarray(py).into_any(), report(py, &r)?))
        })
    }

    /// Learns from one batch; returns its mean loss per row.
    fn partial_fit<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<f64> {
        with_model!(&mut self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let view = data.view();
            let r = py.detach(|| m.partial_fit(view)).map_err(py_err)?;
            Ok(r.loss / r.rows.max(1) as f64)
        })
    }

    /// Codes of new rows with the dictionary fixed.
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_model!(&self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let view = data.view();
            let w = py.detach(|| m.transform(view)).map_err(py_err)?;
            Ok(w.into_pyarray(py).into_any())
        })
    }

    /// `W H` for codes `w`.
    fn inverse_transform<'py>(
        &self,
        py: Python<'py>,
        w: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_model!(&self.inner, m, F => {
            let w: PyReadonlyArray2<F> = w.extract()?;
            let wv: ArrayView2<F> = w.as_array();
            let x: Array2<F> = py.detach(|| m.inverse_transform(wv)).map_err(py_err)?;
            Ok(x.into_pyarray(py).into_any())
        })
    }

    /// The `n` best items for each row of `x` (its interactions): `(items, scores)`, both
    /// rows × n, best first, items the row already has skipped when `exclude_seen`;
    /// `-1` (score NaN) pads rows with fewer candidates.
    #[pyo3(signature = (x, n=10, exclude_seen=true))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n: usize,
        exclude_seen: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        with_model!(&self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let seen = match (&data, exclude_seen) {
                (_, false) => None,
                (Data::Csr(c), true) => Some(c.view().to_owned()),
                (Data::Dense(d), true) => Some(CsrMatrix::from_dense(d.as_array())),
            };
            let view = data.view();
            let ranked = py.detach(|| -> streamnmf::Result<_> {
                let w = m.transform(view)?;
                let h = m.components()?;
                Ok(streamnmf::recommend::top_n(
                    w.view(),
                    h,
                    seen.as_ref().map(|s| s.view()),
                    n,
                    m.threads(),
                ))
            })
            .map_err(py_err)?;
            let mut items = Array2::<i64>::from_elem((ranked.len(), n), -1);
            let mut scores = Array2::<F>::from_elem((ranked.len(), n), <F as Float>::from_f64(f64::NAN));
            for (i, row) in ranked.iter().enumerate() {
                for (j, &(item, score)) in row.iter().enumerate() {
                    items[[i, j]] = i64::from(item);
                    scores[[i, j]] = score;
                }
            }
            Ok((items.into_pyarray(py).into_any(), scores.into_pyarray(py).into_any()))
        })
    }

    /// `{"loss", "rows", "relative_error"}` of the data with the best codes.
    fn loss<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let r = with_model!(&self.inner, m, F => {
            let data = Data::<F>::extract(x)?;
            let view = data.view();
            py.detach(|| m.loss(view)).map_err(py_err)?
        });
        let d = PyDict::new(py);
        d.set_item("loss", r.loss)?;
        d.set_item("rows", r.rows)?;
        d.set_item("relative_error", r.relative_error)?;
        Ok(d)
    }

    /// Learns from an object with `__arrow_c_stream__` (pyarrow `RecordBatchReader`,
    /// tables, dataset scanners, polars frames) through the threaded pipeline, one pass
    /// (a stream is read once). `columns`: feature columns (default: every numeric one).
    /// `progress(rows)` is called after every batch (e.g. a tqdm bar's `update`).
    #[pyo3(signature = (stream, columns=None, batch_size=None, progress=None))]
    fn fit_stream<'py>(
        &mut self,
        py: Python<'py>,
        stream: &Bound<'py, PyAny>,
        columns: Option<Vec<String>>,
        batch_size: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let capsule = stream.call_method0("__arrow_c_stream__").map_err(|e| {
            PyValueError::new_err(format!(
                "fit_stream needs an object with __arrow_c_stream__ (pyarrow, polars): {e}"
            ))
        })?;
        let capsule = capsule.cast::<PyCapsule>()?;
        let ptr = capsule
            .pointer_checked(Some(c"arrow_array_stream"))?
            .cast::<FFI_ArrowArrayStream>();
        // SAFETY: the capsule holds a valid, unreleased ArrowArrayStream (checked by its
        // name); `from_raw` moves it out and leaves a released one for the capsule.
        let raw = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr()) };
        let reader = RecordBatchStreamReader::try_new(raw)
            .map_err(|e| PyValueError::new_err(format!("Arrow stream: {e}")))?;
        let mut opts = self.input_options(batch_size);
        if let Some(c) = columns {
            opts = opts.columns(c);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pipe = PipelineOptions::new().with_stop(stop.clone());
        let (report, names) = with_model!(&mut self.inner, m, F => {
            let mut src = StreamSource::<F>::from_reader(reader, "<arrow stream>", opts)
                .map_err(py_err)?;
            let names = streamnmf::source::BatchSource::feature_names(&src);
            let r = interruptible(py, &stop, || {
                pipeline::fit(m, &mut src, &pipe, |b| report_progress(progress.as_ref(), b.rows))
            })?
            .map_err(py_err)?;
            (r, names)
        });
        if self.meta.feature_names.is_empty() {
            self.meta.feature_names = names;
        }
        let d = PyDict::new(py);
        d.set_item("batches", report.batches)?;
        d.set_item("rows", report.rows)?;
        d.set_item("seconds", report.seconds)?;
        Ok(d)
    }

    /// Learns from Parquet / Arrow IPC files like the CLI's `fit`: `epochs` passes through
    /// the threaded pipeline. `layout`: "dense", "triplets:ROW,COL,VALUE" or "list:COL".
    #[pyo3(signature = (paths, columns=None, layout="dense", width=None, epochs=1, batch_size=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit_files<'py>(
        &mut self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        columns: Option<Vec<String>>,
        layout: &str,
        width: Option<usize>,
        epochs: usize,
        batch_size: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let layout = parse_layout(layout)?;
        let mut opts = self.input_options(batch_size).layout(layout);
        if let Some(c) = columns {
            opts = opts.columns(c);
        }
        if let Some(w) = width {
            opts = opts.width(w);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pipe = PipelineOptions::new()
            .with_epochs(epochs)
            .with_stop(stop.clone());
        let (report, names) = with_model!(&mut self.inner, m, F => {
            let mut src = FileSource::<F>::open(&paths, opts).map_err(py_err)?;
            let names = streamnmf::source::BatchSource::feature_names(&src);
            let r = interruptible(py, &stop, || {
                pipeline::fit(m, &mut src, &pipe, |b| report_progress(progress.as_ref(), b.rows))
            })?
            .map_err(py_err)?;
            (r, names)
        });
        if self.meta.feature_names.is_empty() {
            self.meta.feature_names = names;
        }
        let d = PyDict::new(py);
        d.set_item("epochs", report.epochs)?;
        d.set_item("batches", report.batches)?;
        d.set_item("rows", report.rows)?;
        d.set_item("seconds", report.seconds)?;
        Ok(d)
    }

    /// The model file's bytes (the CLI's format, checksummed).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = with_model!(&self.inner, m, F => persist::encode(m, &self.meta));
        PyBytes::new(py, &bytes)
    }

    /// A model from [`to_bytes`](Self::to_bytes)' output.
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Self> {
        let (inner, meta) = match persist::float_type(bytes).map_err(py_err)?.as_str() {
            "f32" => {
                let (m, meta) = persist::decode::<f32>(bytes).map_err(py_err)?;
                (Inner::F32(m), meta)
            }
            _ => {
                let (m, meta) = persist::decode::<f64>(bytes).map_err(py_err)?;
                (Inner::F64(m), meta)
            }
        };
        Ok(Model { inner, meta })
    }

    /// Writes the model file (atomically: a temporary file, then a rename).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let meta = &self.meta;
        let inner = &self.inner;
        py.detach(|| with_model!(inner, m, F => persist::save(&path, m, meta)))
            .map_err(py_err)
    }

    /// Reads a model file written by `save` or the CLI.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let bytes = std::fs::read(&path)
            .map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes).map_err(|e| {
            Python::attach(|py| {
                PyErr::from_type(
                    e.get_type(py),
                    format!("{}: {}", path.display(), e.value(py)),
                )
            })
        })
    }
}

impl Model {
    fn input_options(&self, batch_size: Option<usize>) -> InputOptions {
        let b = with_model!(&self.inner, m, F => m.params().batch_size());
        InputOptions::new(batch_size.unwrap_or(b))
    }
}

/// The native part of the `streamnmf` package.
#[pymodule]
fn _streamnmf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let subscriber = tracing_subscriber::registry()
        .with(PythonLogging.with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    // Fails only when the process already has a global subscriber: keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
    m.add_class::<Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
