//! Parquet writers for codes (W, with the id column) and dictionaries (H). Each writes
//! through an [`AtomicFile`]: renamed into place only when finished, so an error never
//! leaves a half-written output behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, ArrowPrimitiveType, Int64Array, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::ArrayView2;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::ArrowFloat;
use crate::error::{Error, Result};
use crate::matrix::RowIds;
use crate::persist::AtomicFile;

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

fn float_column<F: ArrowFloat>(values: Vec<F>) -> ArrayRef {
    Arc::new(PrimitiveArray::<F::Arrow>::from_iter_values(values))
}

/// Streams codes into a Parquet file: an optional `id` column, then `c0 .. c{k-1}`.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use ndarray::array;
/// use streamnmf::io::CodesWriter;
/// use streamnmf::RowIds;
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("codes.parquet");
/// let mut w = CodesWriter::<f32>::create(&dest, 2, Some(&RowIds::Int64(vec![])))?;
/// w.write(array![[1.0f32, 0.0], [0.5, 2.0]].view(), Some(&RowIds::Int64(vec![10, 11])))?;
/// assert!(!dest.exists()); // nothing visible until finished
/// w.finish()?;
/// assert!(dest.exists());
/// # Ok(()) }
/// ```
pub struct CodesWriter<F> {
    dest: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<AtomicFile>,
    rows: u64,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: ArrowFloat> CodesWriter<F> {
    /// Starts a codes file for rank `k`; `ids_like` gives the id column's type (or none).
    pub fn create(dest: &Path, k: usize, ids_like: Option<&RowIds>) -> Result<Self> {
        let mut fields = Vec::new();
        match ids_like {
            Some(RowIds::Int64(_)) => fields.push(Field::new("id", DataType::Int64, false)),
            Some(RowIds::Utf8(_)) => fields.push(Field::new("id", DataType::Utf8, false)),
            None => {}
        }
        for j in 0..k {
            fields.push(Field::new(format!("c{j}"), F::Arrow::DATA_TYPE, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let file = AtomicFile::create(dest)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties()))
            .map_err(|e| Error::from(e).in_file(dest))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            schema,
            writer,
            rows: 0,
            _f: std::marker::PhantomData,
        })
    }

    /// Appends the codes of some rows (and their ids, if the file has an id column).
    pub fn write(&mut self, codes: ArrayView2<F>, ids: Option<&RowIds>) -> Result<()> {
        let mut cols: Vec<ArrayRef> = Vec::new();
        let has_id = self.schema.fields().len() > codes.ncols();
        if has_id {
            let n = codes.nrows();
            cols.push(match ids {
                Some(RowIds::Int64(v)) => Arc::new(Int64Array::from(v.clone())),
                Some(RowIds::Utf8(v)) => Arc::new(StringArray::from(v.clone())),
                // Rows without ids get their running row number.
                None => Arc::new(Int64Array::from_iter_values(
                    (self.rows..self.rows + n as u64).map(|r| r as i64),
                )),
            });
        }
        for c in codes.columns() {
            cols.push(float_column(c.to_vec()));
        }
        let rb = RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| Error::from(e).in_file(&self.dest))?;
        self.writer
            .write(&rb)
            .map_err(|e| Error::from(e).in_file(&self.dest))?;
        self.rows += codes.nrows() as u64;
        Ok(())
    }

    /// Closes the file and moves it into place.
    pub fn finish(self) -> Result<u64> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::from(e).in_file(&self.dest))?;
        file.commit()?;
        Ok(self.rows)
    }
}

/// Writes H (k × p) as Parquet: a `component` column, then one column per feature.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use ndarray::array;
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("h.parquet");
/// let names = vec!["a".to_string(), "b".to_string()];
/// streamnmf::io::write_components(&dest, array![[1.0f64, 0.0], [0.0, 1.0]].view(), &names)?;
/// assert!(dest.exists());
/// # Ok(()) }
/// ```
pub fn write_components<F: ArrowFloat>(
    dest: &Path,
    h: ArrayView2<F>,
    names: &[String],
) -> Result<()> {
    let mut fields = vec![Field::new("component", DataType::Int64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(0..h.nrows() as i64))];
    for (j, c) in h.columns().into_iter().enumerate() {
        let name = names.get(j).cloned().unwrap_or_else(|| format!("f{j}"));
        fields.push(Field::new(name, F::Arrow::DATA_TYPE, false));
        cols.push(float_column(c.to_vec()));
    }
    let schema = Arc::new(Schema::new(fields));
    let rb =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::from(e).in_file(dest))?;
    let mut w = ArrowWriter::try_new(AtomicFile::create(dest)?, schema, Some(properties()))
        .map_err(|e| Error::from(e).in_file(dest))?;
    w.write(&rb).map_err(|e| Error::from(e).in_file(dest))?;
    w.into_inner()
        .map_err(|e| Error::from(e).in_file(dest))?
        .commit()
}
