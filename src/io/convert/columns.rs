//! The column-level pieces of a conversion: where the chosen columns are, their casts to
//! floats (nulls rejected or read as missing), integer and id columns, and the warnings
//! about columns that look like row numbers or that a default selection leaves out.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema};

use super::super::list_rows;
use super::super::{ArrowFloat, InputOptions, Layout};
use crate::error::{Error, Result};
use crate::matrix::RowIds;

/// Where each of `cols` is in `schema` (the last of a repeated name), by one map of the
/// names: a lookup per column would cost O(p²) string comparisons.
pub(super) fn positions(schema: &Schema, cols: &[String]) -> Result<Vec<usize>> {
    let index: std::collections::HashMap<&str, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().as_str(), i))
        .collect();
    cols.iter()
        .map(|name| {
            index
                .get(name.as_str())
                .copied()
                .ok_or_else(|| Error::Schema(format!("missing column '{name}'")))
        })
        .collect()
}

/// A schema's fields by name (the first of a repeated name, as `Schema::field_with_name`).
pub(crate) fn fields_by_name(schema: &Schema) -> std::collections::HashMap<&str, &Field> {
    let mut map = std::collections::HashMap::with_capacity(schema.fields().len());
    for f in schema.fields().iter() {
        map.entry(f.name().as_str()).or_insert(f.as_ref());
    }
    map
}

pub(super) fn column<'a>(rb: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    rb.column_by_name(name)
        .ok_or_else(|| Error::Schema(format!("missing column '{name}'")))
}

/// An integer column named like an identifier (`id`, `user_id`, `userId`, `index`, a
/// pandas index saved as `__index_level_0__`, …).
pub(super) fn looks_like_an_id(name: &str, t: &DataType) -> bool {
    let lower = name.to_ascii_lowercase();
    t.is_integer()
        && (matches!(
            lower.as_str(),
            "id" | "index"
                | "idx"
                | "key"
                | "uuid"
                | "row"
                | "rowid"
                | "row_id"
                | "__index_level_0__"
        ) || lower.ends_with("_id")
            || name.ends_with("Id")
            || name.ends_with("ID"))
}

/// Warns when a feature column holds strictly increasing integers (16 rows or more): row
/// numbers or ids, most likely, which would be learned as a feature.
pub(super) fn warn_if_row_numbers(a: &ArrayRef, name: &str) {
    if !a.data_type().is_integer() || a.len() < 16 || a.null_count() > 0 {
        return;
    }
    let Ok(ints) = cast(a, &DataType::Int64) else {
        return;
    };
    let v = ints.as_primitive::<Int64Type>().values();
    if v.windows(2).all(|w| w[0] < w[1]) {
        tracing::warn!(
            column = name,
            "column '{name}' holds increasing integers, like row numbers or ids: learned as a \
             feature; carry it as the row id (`--id-column {name}`) or list the features \
             (`--columns`) if it is not one"
        );
    }
}

pub(super) fn first_null(a: &dyn Array) -> Option<usize> {
    (a.null_count() > 0).then(|| (0..a.len()).find(|&i| a.is_null(i)).unwrap_or(0))
}

pub(super) fn null_error(row0: u64, i: usize, name: &str) -> Error {
    Error::Column {
        row: row0 + i as u64,
        column: name.to_string(),
        message: "null value: fill or drop missing values first".into(),
    }
}

/// Casts a numeric column to F, rejecting nulls and non-numeric types.
pub(super) fn floats<F: ArrowFloat>(a: &ArrayRef, name: &str, row0: u64) -> Result<ArrayRef> {
    if let Some(i) = first_null(a.as_ref()) {
        return Err(null_error(row0, i, name));
    }
    floats_or_nan::<F>(a, name, row0)
}

/// Whether a column of this type can be a feature: numbers, and booleans as 0 / 1
/// (one-hot and binary interaction tables), also dictionary-encoded (pyarrow keeps a
/// categorical's codes so, and writes a dictionary-encoded column's Arrow type to Parquet).
pub(crate) fn is_feature_type(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, values) => is_feature_type(values),
        t => t.is_numeric() || *t == DataType::Boolean,
    }
}

/// The columns a default selection (no `--columns`) leaves out that look like data rather
/// than labels (strings and bytes are names and labels): they are named in one warning
/// a process, since a table whose dates or lists went missing would be fitted without a
/// word.
pub(super) fn warn_left_out(schema: &Schema, opts: &InputOptions, source: &str) {
    if opts.columns.is_some() || !matches!(opts.layout, Layout::Dense) {
        return;
    }
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let rows = list_rows::list_column(schema, opts);
    let left: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| Some(f.name()) != opts.id_column.as_ref() && Some(f.name()) != rows.as_ref())
        .filter(|f| {
            let t = f.data_type();
            !is_feature_type(t)
                && !matches!(
                    t,
                    DataType::FixedSizeList(..)
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                        | DataType::Dictionary(..)
                        | DataType::Null
                )
        })
        .map(|f| format!("'{}' ({})", f.name(), f.data_type()))
        .collect();
    if !left.is_empty() && !WARNED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        tracing::warn!(
            "{source}: columns that are not numbers are left out of the features: {} \
             (convert them, or name the features with --columns)",
            left.join(", ")
        );
    }
}

/// Casts a numeric column to F, with nulls as NaN (missing entries).
pub(super) fn floats_or_nan<F: ArrowFloat>(
    a: &ArrayRef,
    name: &str,
    row0: u64,
) -> Result<ArrayRef> {
    if !is_feature_type(a.data_type()) {
        return Err(Error::Schema(format!(
            "column '{name}' has type {}, not a number",
            a.data_type()
        )));
    }
    if F::Arrow::DATA_TYPE == DataType::Float32 && a.data_type() == &DataType::Float64 {
        // A cast would turn these into infinities and report them as such.
        let big = f32::MAX as f64;
        let values = a.as_primitive::<arrow_array::types::Float64Type>().values();
        if let Some(i) = values.iter().position(|v| v.is_finite() && v.abs() > big) {
            return Err(Error::Column {
                row: row0 + i as u64,
                column: name.into(),
                message: format!(
                    "value {:e} is beyond the f32 range (±3.4e38): use f64 (`--float f64`)",
                    values[i]
                ),
            });
        }
    }
    // Already F: the array itself (a cast to the same type rebuilds its array data, a
    // cost per column and call that showed once slices got as small as mini-batches).
    let values = if a.data_type() == &F::Arrow::DATA_TYPE {
        a.clone()
    } else {
        cast(a, &F::Arrow::DATA_TYPE)?
    };
    if values.null_count() == 0 {
        return Ok(values);
    }
    let p = values.as_primitive::<F::Arrow>();
    let nan = F::from_f64(f64::NAN);
    let filled: Vec<F> = (0..p.len())
        .map(|i| if p.is_null(i) { nan } else { p.value(i) })
        .collect();
    Ok(Arc::new(PrimitiveArray::<F::Arrow>::from_iter_values(
        filled,
    )))
}

pub(super) fn integers(a: &ArrayRef, name: &str, row0: u64) -> Result<Vec<i64>> {
    Ok(integer_values(a, name, row0)?.to_vec())
}

/// [`integers`] without the copy: the column's own buffer when it is already `Int64`.
pub(super) fn integer_values(
    a: &ArrayRef,
    name: &str,
    row0: u64,
) -> Result<arrow_buffer::ScalarBuffer<i64>> {
    if !a.data_type().is_integer() {
        return Err(Error::Schema(format!(
            "column '{name}' has type {}, not an integer",
            a.data_type()
        )));
    }
    if let Some(i) = first_null(a.as_ref()) {
        return Err(null_error(row0, i, name));
    }
    if a.data_type() == &DataType::UInt64 {
        // Values past i64::MAX cannot be column indices or ids we can carry.
        let u = a.as_primitive::<UInt64Type>();
        if let Some(i) = u.values().iter().position(|&v| v > i64::MAX as u64) {
            return Err(Error::Column {
                row: row0 + i as u64,
                column: name.into(),
                message: "value too large".into(),
            });
        }
    }
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .values()
        .clone())
}

pub(super) fn ids_of(a: &ArrayRef, name: &str, row0: u64) -> Result<RowIds> {
    if let Some(i) = first_null(a.as_ref()) {
        return Err(null_error(row0, i, name));
    }
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = cast(a, &DataType::Utf8)?;
            Ok(RowIds::Utf8(
                s.as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect(),
            ))
        }
        t if t.is_integer() => Ok(RowIds::Int64(integers(a, name, row0)?)),
        t => Err(Error::Schema(format!(
            "id column '{name}' has type {t}: use an integer or string column"
        ))),
    }
}
