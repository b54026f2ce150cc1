//! What a set of files holds, told from their footers before any data is read: the
//! files a path names, their rows, the shape of the matrix they make, and the width of a
//! sparse layout (its largest column index, scanned).

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_schema::DataType;

use super::{open_file, parquet_metadata};
use crate::error::{Error, Result};
use crate::io::{Format, Layout};

/// Expands directories into their `.parquet`, `.arrow`, `.arrows`, `.ipc` and `.feather`
/// files (sorted by name) and checks that every path exists: the files a
/// [`FileSource`](super::FileSource) opened on `paths` reads, in order.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// let dir = tempfile::tempdir()?;
/// for f in ["b.parquet", "a.arrow", "notes.txt"] {
///     std::fs::write(dir.path().join(f), b"")?;
/// }
/// let files = streamnmf::io::expand_paths(&[dir.path().to_path_buf()])?;
/// let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_owned()).collect();
/// assert_eq!(names, ["a.arrow", "b.parquet"]);
/// # Ok(()) }
/// ```
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::Io(e).in_file(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|e| e.to_str()),
                            Some("parquet" | "arrow" | "arrows" | "ipc" | "feather")
                        )
                })
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(
                    Error::Schema("directory holds no Parquet or Arrow files".into()).in_file(p),
                );
            }
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file or directory",
            ))
            .in_file(p));
        }
    }
    if out.is_empty() {
        return Err(Error::Schema("no input files".into()));
    }
    Ok(out)
}

/// The rows of `paths` (files or directories) from the Parquet footers alone, or `None`
/// when some input is not a readable Parquet file (Arrow IPC files do not say it without
/// reading their batches).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use arrow_array::{Float32Array, RecordBatch};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.parquet");
/// let batch = RecordBatch::try_from_iter([("a", Arc::new(Float32Array::from(vec![1.0; 7])) as _)])?;
/// let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), None)?;
/// w.write(&batch)?;
/// w.close()?;
/// assert_eq!(streamnmf::io::parquet_rows(&[path]), Some(7));
/// assert_eq!(streamnmf::io::parquet_rows(&[dir.path().join("none.parquet")]), None);
/// # Ok(()) }
/// ```
pub fn parquet_rows(paths: &[PathBuf]) -> Option<u64> {
    parquet_shape(paths, &Layout::Dense).rows
}

/// What the Parquet footers of `paths` say of the matrix `layout` reads from them: its
/// rows, stored entries and (triplets) width. Dense files: rows, and rows × columns
/// stored. Triplets: one entry per record; the rows from each file's range of integer row
/// ids in the column statistics, when every row group has them and no range exceeds its
/// file's records (else unknown: string ids, or ids too scattered to count rows by); the
/// width from the greatest column index. Sparse lists: one row per record, and the
/// entries from the list's leaf values. Unknown (`None` fields) when some input is not a
/// readable Parquet file. A given `--width` takes precedence over this one.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use arrow_array::{Float32Array, Int64Array, RecordBatch};
/// use streamnmf::io::{parquet_shape, Layout};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("t.parquet");
/// let batch = RecordBatch::try_from_iter([
///     ("row", Arc::new(Int64Array::from(vec![10, 10, 11, 13, 13])) as _),
///     ("col", Arc::new(Int64Array::from(vec![0, 4, 2, 1, 3])) as _),
///     ("value", Arc::new(Float32Array::from(vec![1.0; 5])) as _),
/// ])?;
/// let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), None)?;
/// w.write(&batch)?;
/// w.close()?;
/// let layout = Layout::Triplets { row: "row".into(), col: "col".into(), value: "value".into() };
/// let shape = parquet_shape(&[path], &layout);
/// assert_eq!((shape.rows, shape.stored, shape.width), (Some(4), Some(5), Some(5)));
/// # Ok(()) }
/// ```
pub fn parquet_shape(paths: &[PathBuf], layout: &Layout) -> crate::model::InputShape {
    let mut shape = crate::model::InputShape::default();
    let Ok(files) = expand_paths(paths) else {
        return shape;
    };
    let (mut rows, mut stored, mut width) = (Some(0u64), Some(0u64), Some(0u64));
    for f in files {
        let meta = match Format::detect(&f) {
            Ok(Format::Parquet) => parquet_metadata(&f).ok(),
            _ => None,
        };
        let Some(meta) = meta else {
            return shape;
        };
        let meta = meta.metadata();
        let records = u64::try_from(meta.file_metadata().num_rows()).ok();
        let (r, s, w) = match layout {
            Layout::Dense => {
                let p = meta.file_metadata().schema_descr().num_columns() as u64;
                (records, records.and_then(|n| n.checked_mul(p)), None)
            }
            // An empty file adds nothing.
            _ if records == Some(0) => (Some(0), Some(0), Some(0)),
            Layout::Triplets { row, col, .. } => {
                let n = i128::from(records.unwrap_or(0));
                let ids = id_range(meta, row).filter(|&(lo, hi)| hi - lo < n);
                let cols = id_range(meta, col).filter(|&(lo, _)| lo >= 0);
                (
                    ids.and_then(|(lo, hi)| u64::try_from(hi - lo + 1).ok()),
                    records,
                    cols.and_then(|(_, hi)| u64::try_from(hi + 1).ok()),
                )
            }
            Layout::SparseList { column } => (records, leaf_values(meta, column), None),
        };
        rows = rows.zip(r).map(|(a, b)| a + b);
        stored = stored.zip(s).map(|(a, b)| a + b);
        width = width.zip(w).map(|(a, b)| a.max(b));
    }
    shape.rows = rows;
    shape.stored = stored;
    shape.width = width;
    shape
}

/// The least and greatest values of the integer column `name` over every row group of a
/// file, from the column statistics (as i128: no range overflows).
fn id_range(meta: &parquet::file::metadata::ParquetMetaData, name: &str) -> Option<(i128, i128)> {
    use parquet::file::statistics::Statistics;
    let mut range: Option<(i128, i128)> = None;
    for g in meta.row_groups() {
        let c = g
            .columns()
            .iter()
            .find(|c| c.column_path().parts() == [name])?;
        let (a, b) = match c.statistics()? {
            Statistics::Int32(s) => (i128::from(*s.min_opt()?), i128::from(*s.max_opt()?)),
            Statistics::Int64(s) => (i128::from(*s.min_opt()?), i128::from(*s.max_opt()?)),
            _ => return None,
        };
        range = Some(range.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))));
    }
    range.filter(|(lo, hi)| lo <= hi)
}

/// The values of the first leaf under column `name` (a list's entries), over every row
/// group of a file.
fn leaf_values(meta: &parquet::file::metadata::ParquetMetaData, name: &str) -> Option<u64> {
    meta.row_groups().iter().try_fold(0u64, |sum, g| {
        let c = g
            .columns()
            .iter()
            .find(|c| c.column_path().parts().first().map(String::as_str) == Some(name))?;
        Some(sum + u64::try_from(c.num_values()).ok()?)
    })
}

/// The length of the first list in column `col` of `file` (0 when it has no rows).
pub(super) fn first_list_length(file: &Path, col: &str) -> Result<usize> {
    let (_, batches) = open_file(file, &[col.to_string()], 1024)?;
    for rb in batches {
        let rb = rb.map_err(|e| Error::from(e).in_file(file))?;
        let Some(a) = rb.column_by_name(col).filter(|a| !a.is_empty()) else {
            continue;
        };
        return Ok(match a.data_type() {
            DataType::List(_) => a.as_list::<i32>().value_length(0).max(0) as usize,
            DataType::LargeList(_) => a.as_list::<i64>().value_length(0).max(0) as usize,
            _ => 0,
        });
    }
    Ok(0)
}

/// Width of sparse inputs: one more than the largest column index in any file.
pub(super) fn prescan_width(files: &[PathBuf], layout: &Layout) -> Result<usize> {
    let col = match layout {
        Layout::Triplets { col, .. } => col.clone(),
        Layout::SparseList { column } => column.clone(),
        Layout::Dense => return Err(Error::Schema("dense inputs have a schema width".into())),
    };
    let mut max: i64 = -1;
    for f in files {
        let (_, batches) = open_file(f, std::slice::from_ref(&col), 65536)?;
        for rb in batches {
            let rb = rb.map_err(|e| Error::from(e).in_file(f))?;
            let missing = || Error::Schema(format!("missing column '{col}'")).in_file(f);
            let a = rb.column_by_name(&col).ok_or_else(missing)?.clone();
            let a = match layout {
                Layout::SparseList { .. } => match a.data_type() {
                    DataType::List(_) => a.as_list::<i32>().values().clone(),
                    DataType::LargeList(_) => a.as_list::<i64>().values().clone(),
                    _ => {
                        return Err(
                            Error::Schema(format!("column '{col}' is not a list")).in_file(f)
                        )
                    }
                },
                _ => a,
            };
            let a = match a.data_type() {
                DataType::Struct(_) => a.as_struct().column(0).clone(),
                _ => a,
            };
            if !a.data_type().is_integer() {
                return Err(Error::Schema(format!(
                    "column '{col}' holds {}, not integer indices",
                    a.data_type()
                ))
                .in_file(f));
            }
            let ints =
                arrow_cast::cast(&a, &DataType::Int64).map_err(|e| Error::from(e).in_file(f))?;
            let ints = ints.as_primitive::<arrow_array::types::Int64Type>();
            if let Some(m) = ints.iter().flatten().max() {
                max = max.max(m);
            }
        }
    }
    Ok((max + 1).max(0) as usize)
}
