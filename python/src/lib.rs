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
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyReadonlyArray2};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyCapsuleMethods, PyDict};

use streamnmf::io::{parquet_shape, FileSource, InputOptions, Layout, StreamSource};
use streamnmf::model::default_batch_rows;

mod convert;
mod runtime;

use convert::{parse_layout, parse_params, report, Data};
use runtime::{interruptible, py_err, report_progress, PythonLogging};
use streamnmf::persist::{self, Metadata};
use streamnmf::pipeline::{self, PipelineOptions};
use streamnmf::source::BatchSource;
use streamnmf::{CsrMatrix, Float, NmfParams, OnlineNmf};

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

/// An online NMF model (see the Python package's `StreamNMF` for the estimator).
#[pyclass(module = "streamnmf._streamnmf")]
struct Model {
    inner: Inner,
    meta: Metadata,
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
        with_model!(&mut self.inner, m, F => {
            let mut src = StreamSource::<F>::from_reader(reader, "<arrow stream>", opts)
                .map_err(py_err)?;
            run_pipeline(py, m, &mut src, 1, progress, &mut self.meta)
        })
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
        // A new model sizes its batches like the CLI (`default_batch_rows`: by the loss,
        // the rank and the files' shape).
        let batch_size = batch_size.or_else(|| {
            with_model!(&self.inner, m, F => {
                let p = m.params();
                let fresh = m.components().is_err() && !p.batch_size_is_set();
                let dense = layout == Layout::Dense;
                let shape = || parquet_shape(&paths, &layout).given_width(width);
                fresh
                    .then(|| default_batch_rows(p.loss(), p.unobserved(), dense, p.rank(), shape))
                    .flatten()
            })
        });
        let mut opts = self.input_options(batch_size).layout(layout);
        if let Some(c) = columns {
            opts = opts.columns(c);
        }
        if let Some(w) = width {
            opts = opts.width(w);
        }
        with_model!(&mut self.inner, m, F => {
            let mut src = FileSource::<F>::open(&paths, opts).map_err(py_err)?;
            run_pipeline(py, m, &mut src, epochs, progress, &mut self.meta)
        })
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

/// Runs the threaded pipeline over `src` for `epochs` passes, Ctrl-C watched and
/// `progress` told each batch's rows; keeps the source's feature names when the model has
/// none. Returns `{"epochs", "batches", "rows", "seconds"}`.
fn run_pipeline<'py, F: Float>(
    py: Python<'py>,
    model: &mut OnlineNmf<F>,
    src: &mut dyn BatchSource<F>,
    epochs: usize,
    progress: Option<Py<PyAny>>,
    meta: &mut Metadata,
) -> PyResult<Bound<'py, PyDict>> {
    let stop = Arc::new(AtomicBool::new(false));
    let pipe = PipelineOptions::new()
        .with_epochs(epochs)
        .with_stop(stop.clone());
    let names = src.feature_names();
    let report = interruptible(py, &stop, || {
        pipeline::fit(model, src, &pipe, |b| {
            report_progress(progress.as_ref(), b.rows)
        })
    })?
    .map_err(py_err)?;
    if meta.feature_names.is_empty() {
        meta.feature_names = names;
    }
    let d = PyDict::new(py);
    d.set_item("epochs", report.epochs)?;
    d.set_item("batches", report.batches)?;
    d.set_item("rows", report.rows)?;
    d.set_item("seconds", report.seconds)?;
    d.set_item("converged", report.converged)?;
    Ok(d)
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
