//! Python values into the engine's: arrays and CSR matrices, parameters, layouts, and
//! reports back as dicts.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use streamnmf::io::Layout;
use streamnmf::{
    CsrMatrix, FitReport, Float, Init, Loss, MatRef, NmfParams, Unobserved, ValidParams,
};

use crate::runtime::py_err;

/// Data handed in from Python: a dense array view (no copy) or a CSR matrix built from
/// scipy's three arrays (indices converted to u32).
pub(crate) enum Data<'py, F: Float + numpy::Element> {
    Dense(PyReadonlyArray2<'py, F>),
    Csr(CsrMatrix<F>),
}

impl<'py, F: Float + numpy::Element> Data<'py, F> {
    pub(crate) fn extract(x: &Bound<'py, PyAny>) -> PyResult<Self> {
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
    pub(crate) fn view(&self) -> MatRef<'_, F> {
        match self {
            Data::Dense(a) => MatRef::from(a.as_array()),
            Data::Csr(c) => MatRef::from(c),
        }
    }
}

/// What an unstored entry means: `zero`, `missing`, `implicit:ALPHA` (confidence
/// `1 + ALPHA·r`) or `implicit-log:ALPHA` (`1 + ALPHA·log(1 + r)`).
pub(crate) fn parse_unobserved(s: &str) -> PyResult<Unobserved> {
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
pub(crate) fn parse_layout(s: &str) -> PyResult<Layout> {
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

pub(crate) fn report<'py>(py: Python<'py>, r: &FitReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("passes", r.passes)?;
    d.set_item("batches", r.batches)?;
    d.set_item("pass_losses", r.pass_losses.clone())?;
    d.set_item("sample_losses", r.sample_losses.clone())?;
    d.set_item("converged", r.converged)?;
    Ok(d)
}

pub(crate) fn parse_params(n_components: usize, kw: &Bound<'_, PyDict>) -> PyResult<ValidParams> {
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
