//! Dictionaries read back from tables, for `fit --components` and `compose`: the wide
//! layout (one row per atom, one numeric column per feature, an optional `component`
//! column giving the atom's index) and the long layout (`component`, `feature`, `value`),
//! which is what [`write_components`](super::write_components) writes, or any table of
//! those shapes.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use ndarray::Array2;

use super::files::open_file;
use crate::error::{Error, Result};

/// Atoms a file may hold, at most (a guard against a corrupt `component` index).
const MAX_ATOMS: usize = 1 << 16;

/// A dictionary from a file: H (atoms × features, f64) and the feature names.
///
/// Every value must be finite and non-negative; a bad one is named by its atom and
/// feature.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::io::{read_components, write_components, ComponentsLayout, TableFormat};
/// let h = ndarray::array![[1.0f64, 0.0, 2.0], [0.5, 3.0, 0.0]];
/// let names = vec!["100 Hz".to_string(), "200 Hz".into(), "300 Hz".into()];
/// let dir = tempfile::tempdir()?;
/// for layout in [ComponentsLayout::Wide, ComponentsLayout::Long] {
///     let path = dir.path().join("h.parquet");
///     let bytes = write_components(Vec::new(), TableFormat::Parquet, layout, h.view(), &names)?;
///     std::fs::write(&path, bytes)?;
///     let (back, back_names) = read_components(&path)?;
///     assert_eq!((back, back_names), (h.clone(), names.clone()));
/// }
/// # Ok(()) }
/// ```
pub fn read_components(path: &Path) -> Result<(Array2<f64>, Vec<String>)> {
    read(path).map_err(|e| e.in_file(path))
}

fn read(path: &Path) -> Result<(Array2<f64>, Vec<String>)> {
    let (schema, _) = open_file(path, &[], 1)?;
    let all: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let (_, batches) = open_file(path, &all, 8192)?;
    let batches: Vec<RecordBatch> = batches.collect::<std::result::Result<_, _>>()?;
    let long = ["component", "feature", "value"]
        .iter()
        .all(|c| all.iter().any(|a| a == c))
        && all.len() == 3;
    let (h, names) = if long {
        long_layout(&batches)?
    } else {
        wide_layout(&batches, &all)?
    };
    if let Some(((atom, feature), v)) = h
        .indexed_iter()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(Error::Schema(format!(
            "atom {atom}, feature '{}': {v} is not a finite non-negative value",
            names[feature]
        )));
    }
    if h.nrows() == 0 || h.ncols() == 0 {
        return Err(Error::Schema("no atoms in the file".into()));
    }
    Ok((h, names))
}

fn float_column(b: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let col = b
        .column_by_name(name)
        .ok_or_else(|| Error::Schema(format!("missing column '{name}'")))?;
    if !col.data_type().is_numeric() {
        return Err(Error::Schema(format!(
            "column '{name}' is {}, not a number",
            col.data_type()
        )));
    }
    let col = arrow_cast::cast(col, &DataType::Float64)?;
    Ok(col.as_primitive::<Float64Type>().iter().collect())
}

fn index_column(b: &RecordBatch, name: &str) -> Result<Vec<usize>> {
    let col = b
        .column_by_name(name)
        .ok_or_else(|| Error::Schema(format!("missing column '{name}'")))?;
    if !col.data_type().is_integer() {
        return Err(Error::Schema(format!("column '{name}' must hold integers")));
    }
    let col = arrow_cast::cast(col, &DataType::Int64)?;
    col.as_primitive::<Int64Type>()
        .iter()
        .map(|v| match v {
            Some(v) if (0..MAX_ATOMS as i64).contains(&v) => Ok(v as usize),
            v => Err(Error::Schema(format!(
                "column '{name}': atom index {v:?} is not in 0..{MAX_ATOMS}"
            ))),
        })
        .collect()
}

fn wide_layout(batches: &[RecordBatch], all: &[String]) -> Result<(Array2<f64>, Vec<String>)> {
    let names: Vec<String> = all.iter().filter(|c| *c != "component").cloned().collect();
    let indexed = all.iter().any(|c| c == "component");
    let mut rows: Vec<(usize, Vec<f64>)> = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<f64>>> = names
            .iter()
            .map(|n| float_column(b, n))
            .collect::<Result<_>>()?;
        let ids = if indexed {
            index_column(b, "component")?
        } else {
            (rows.len()..rows.len() + b.num_rows()).collect()
        };
        for (r, id) in ids.into_iter().enumerate() {
            let mut row = Vec::with_capacity(names.len());
            for (c, col) in cols.iter().enumerate() {
                row.push(col[r].ok_or_else(|| {
                    Error::Schema(format!("atom {id}, feature '{}': null", names[c]))
                })?);
            }
            rows.push((id, row));
        }
    }
    rows.sort_by_key(|r| r.0);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::Schema(format!("atom {} given twice", w[0].0)));
    }
    let k = rows.len();
    let flat: Vec<f64> = rows.into_iter().flat_map(|r| r.1).collect();
    let h = Array2::from_shape_vec((k, names.len()), flat).expect("rows of equal width");
    Ok((h, names))
}

fn long_layout(batches: &[RecordBatch]) -> Result<(Array2<f64>, Vec<String>)> {
    let mut names: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut entries = Vec::new();
    for b in batches {
        let atoms = index_column(b, "component")?;
        let values = float_column(b, "value")?;
        let features = arrow_cast::cast(
            b.column_by_name("feature").expect("checked"),
            &DataType::Utf8,
        )?;
        let features = features.as_string::<i32>();
        for (r, (&atom, v)) in atoms.iter().zip(&values).enumerate() {
            if features.is_null(r) {
                return Err(Error::Schema(format!("atom {atom}: null feature name")));
            }
            let name = features.value(r);
            let col = *index.entry(name.to_string()).or_insert_with(|| {
                names.push(name.to_string());
                names.len() - 1
            });
            let v =
                v.ok_or_else(|| Error::Schema(format!("atom {atom}, feature '{name}': null")))?;
            entries.push((atom, col, v));
        }
    }
    let k = entries.iter().map(|e| e.0 + 1).max().unwrap_or(0);
    let mut h = Array2::from_elem((k, names.len()), f64::NAN);
    for (atom, col, v) in entries {
        if !h[[atom, col]].is_nan() {
            return Err(Error::Schema(format!(
                "atom {atom}, feature '{}' given twice",
                names[col]
            )));
        }
        h[[atom, col]] = v;
    }
    if let Some(((atom, col), _)) = h.indexed_iter().find(|(_, v)| v.is_nan()) {
        return Err(Error::Schema(format!(
            "atom {atom}, feature '{}': missing from the long table",
            names[col]
        )));
    }
    Ok((h, names))
}
