//! Writers for codes (W, with the id column) and dictionaries (H), as Parquet or as an
//! Arrow IPC stream, into any `Write`: an [`AtomicFile`](crate::persist::AtomicFile) for
//! files (renamed into place only when the whole run's outputs are complete), standard
//! output or a pipe for streams (each record batch flushed as soon as it is written, so a
//! downstream reader sees codes while the input is still arriving).
//!
//! Memory stays bounded by a batch: codes are written as they come, and H in slices of
//! rows (long format), of components (wide Arrow stream) or a column at a time (wide
//! Parquet).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, ArrowPrimitiveType, Int64Array, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::ArrayView2;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

mod components;

pub use components::{write_components, ComponentsLayout};

use super::ArrowFloat;
use crate::error::Result;
use crate::matrix::RowIds;

/// How a table is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    /// Apache Parquet (a file).
    Parquet,
    /// An Arrow IPC stream, flushed after every record batch (standard output, pipes).
    ArrowStream,
}

impl TableFormat {
    /// The format a destination's name asks for: an Arrow IPC stream for `-` (standard
    /// output) and names ending in `.arrows`, `.arrow` or `.ipc`, Parquet otherwise.
    ///
    /// ```
    /// use std::path::Path;
    /// use streamnmf::io::TableFormat;
    /// assert_eq!(TableFormat::for_path(Path::new("-")), TableFormat::ArrowStream);
    /// assert_eq!(TableFormat::for_path(Path::new("w.parquet")), TableFormat::Parquet);
    /// ```
    pub fn for_path(path: &std::path::Path) -> Self {
        let ext = path.extension().and_then(|e| e.to_str());
        if path.as_os_str() == "-" || matches!(ext, Some("arrows" | "arrow" | "ipc")) {
            TableFormat::ArrowStream
        } else {
            TableFormat::Parquet
        }
    }
}

/// What a Parquet table holds, which decides its writer settings ([`properties`]).
#[derive(Clone, Copy)]
enum Content {
    /// Codes, recommendations and the like: a table of this many columns.
    Columns(usize),
    /// H's wide layout (`components::wide_parquet`): a column per feature, a row per
    /// component.
    WideComponents,
    /// H's long layout: `component`, `feature`, `value`, component by component.
    LongComponents,
}

/// Writer settings for a table of `content`.
///
/// A Parquet writer keeps a compressor per column, and zstd's is large (a 10 304-column H
/// took 150 MB more to write than to fit), so wide tables use snappy, whose state is
/// small. H's wide table is written uncompressed, with chunk statistics and no offset
/// index: each column chunk is one page of k values, which compression does not shrink
/// and a page index does not help to find.
///
/// H's long table repeats each component's index over a run of p rows and the feature
/// names over every component: delta encodings store both in next to nothing without
/// hashing every value as a dictionary would. 20 × 20 000 (a sparse fit's H, many values
/// zero): 99 KB written in 23 ms, against 456 KB in 42 ms with plain encodings and zstd
/// (dictionaries on both columns: 799 KB, 23 ms; the feature's 20 000 distinct names take
/// 15 bits an index). The names have no statistics: their minimum and maximum, compared
/// name by name, took a tenth of that write and tell a reader nothing (with the names
/// made once, see [`write_components`], 18 ms).
fn properties(content: Content) -> WriterProperties {
    let builder = WriterProperties::builder()
        // Floats rarely repeat: dictionary pages would only cost memory per column.
        .set_dictionary_enabled(false);
    match content {
        Content::WideComponents => builder
            .set_compression(Compression::UNCOMPRESSED)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .build(),
        Content::LongComponents => builder
            .set_column_encoding(ColumnPath::from("component"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(ColumnPath::from("feature"), Encoding::DELTA_BYTE_ARRAY)
            .set_column_statistics_enabled(ColumnPath::from("feature"), EnabledStatistics::None)
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build(),
        Content::Columns(columns) if columns > 256 => {
            builder.set_compression(Compression::SNAPPY).build()
        }
        Content::Columns(_) => builder
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build(),
    }
}

/// A Parquet or Arrow IPC stream writer over `W`.
enum Table<W: Write + Send> {
    Parquet(ArrowWriter<W>),
    Stream(StreamWriter<W>),
}

impl<W: Write + Send> Table<W> {
    fn new(out: W, schema: &SchemaRef, format: TableFormat) -> Result<Self> {
        Self::holding(out, schema, format, Content::Columns(schema.fields().len()))
    }
    fn holding(out: W, schema: &SchemaRef, format: TableFormat, content: Content) -> Result<Self> {
        Ok(match format {
            TableFormat::Parquet => Table::Parquet(ArrowWriter::try_new(
                out,
                schema.clone(),
                Some(properties(content)),
            )?),
            TableFormat::ArrowStream => Table::Stream(StreamWriter::try_new(out, schema)?),
        })
    }
    fn write(&mut self, rb: &RecordBatch) -> Result<()> {
        match self {
            Table::Parquet(w) => w.write(rb)?,
            Table::Stream(w) => {
                w.write(rb)?;
                w.get_mut().flush()?;
            }
        }
        Ok(())
    }
    fn finish(self) -> Result<W> {
        Ok(match self {
            Table::Parquet(w) => w.into_inner()?,
            Table::Stream(mut w) => {
                w.finish()?;
                let mut out = w.into_inner()?;
                out.flush()?;
                out
            }
        })
    }
}

fn float_column<F: ArrowFloat>(values: Vec<F>) -> ArrayRef {
    Arc::new(PrimitiveArray::<F::Arrow>::from_iter_values(values))
}

/// Writes codes, batch by batch: an optional `id` column, then `c0 .. c{k-1}`.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use ndarray::array;
/// use streamnmf::io::{CodesWriter, TableFormat};
/// use streamnmf::persist::AtomicFile;
/// use streamnmf::RowIds;
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("codes.parquet");
/// let ids = RowIds::Int64(vec![10, 11]);
/// let out = AtomicFile::create(&dest)?;
/// let mut w = CodesWriter::<f32, _>::new(out, TableFormat::Parquet, 2, Some(&ids))?;
/// w.write(array![[1.0f32, 0.0], [0.5, 2.0]].view(), Some(&ids))?;
/// let (file, rows) = w.finish()?;
/// assert_eq!(rows, 2);
/// assert!(!dest.exists()); // nothing visible until committed
/// file.commit()?;
/// assert!(dest.exists());
/// # Ok(()) }
/// ```
pub struct CodesWriter<F, W: Write + Send> {
    schema: SchemaRef,
    table: Table<W>,
    rows: u64,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: ArrowFloat, W: Write + Send> CodesWriter<F, W> {
    /// Starts a codes table of rank `k` on `out`; `ids_like` gives the id column's type
    /// (or none).
    pub fn new(out: W, format: TableFormat, k: usize, ids_like: Option<&RowIds>) -> Result<Self> {
        let names: Vec<String> = (0..k).map(|j| format!("c{j}")).collect();
        Self::named(out, format, &names, ids_like)
    }

    /// A table of rows with the value columns `names` (e.g. imputed data under the input's
    /// feature names) instead of `c0 ..`.
    pub fn named(
        out: W,
        format: TableFormat,
        names: &[String],
        ids_like: Option<&RowIds>,
    ) -> Result<Self> {
        Self::with_metadata(out, format, names, ids_like, Default::default())
    }

    /// [`named`](Self::named), with key-value metadata on the table's schema (kept by
    /// Parquet and Arrow IPC, and read back by [`BatchSource::metadata`]).
    ///
    /// [`BatchSource::metadata`]: crate::source::BatchSource::metadata
    pub fn with_metadata(
        out: W,
        format: TableFormat,
        names: &[String],
        ids_like: Option<&RowIds>,
        metadata: std::collections::HashMap<String, String>,
    ) -> Result<Self> {
        let mut fields = Vec::new();
        match ids_like {
            Some(RowIds::Int64(_)) => fields.push(Field::new("id", DataType::Int64, false)),
            Some(RowIds::Utf8(_)) => fields.push(Field::new("id", DataType::Utf8, false)),
            None => {}
        }
        for name in names {
            fields.push(Field::new(name, F::Arrow::DATA_TYPE, false));
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
        let table = Table::new(out, &schema, format)?;
        Ok(Self {
            schema,
            table,
            rows: 0,
            _f: std::marker::PhantomData,
        })
    }

    /// Appends the codes of some rows (and their ids, if the table has an id column).
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
        let rb = RecordBatch::try_new(self.schema.clone(), cols)?;
        self.table.write(&rb)?;
        self.rows += codes.nrows() as u64;
        Ok(())
    }

    /// Ends the table; returns the output (to commit, for an atomic file) and the rows.
    pub fn finish(self) -> Result<(W, u64)> {
        Ok((self.table.finish()?, self.rows))
    }
}

/// Writes recommendations in the long layout, batch by batch: `user` (the input's row id,
/// or the row number), `rank` (1 = best), `item` (the model's item id when it has a
/// catalogue, else the column index) and `score` (the predicted value `w · h`).
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::io::{RecommendationsWriter, TableFormat};
/// use streamnmf::RowIds;
/// let mut out = Vec::new();
/// let names = vec!["a".to_string(), "b".into(), "c".into()];
/// let ids = RowIds::Utf8(vec!["u1".into()]);
/// let mut w = RecommendationsWriter::<f32, _>::new(&mut out, TableFormat::ArrowStream, Some(&ids), &names)?;
/// w.write(&[vec![(2, 1.5f32), (0, 0.5)]], Some(&ids))?;
/// assert_eq!(w.finish()?.1, 2);
/// # Ok(()) }
/// ```
pub struct RecommendationsWriter<'n, F, W: Write + Send> {
    schema: SchemaRef,
    table: Table<W>,
    names: &'n [String],
    users: u64,
    rows: u64,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<'n, F: ArrowFloat, W: Write + Send> RecommendationsWriter<'n, F, W> {
    /// Starts the table on `out`: `ids_like` gives the user column's type (integer row
    /// numbers without ids), `names` the item ids (empty: column indices).
    pub fn new(
        out: W,
        format: TableFormat,
        ids_like: Option<&RowIds>,
        names: &'n [String],
    ) -> Result<Self> {
        let user = match ids_like {
            Some(RowIds::Utf8(_)) => DataType::Utf8,
            _ => DataType::Int64,
        };
        let item = if names.is_empty() {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", user, false),
            Field::new("rank", DataType::Int32, false),
            Field::new("item", item, false),
            Field::new("score", F::Arrow::DATA_TYPE, false),
        ]));
        let table = Table::new(out, &schema, format)?;
        Ok(Self {
            schema,
            table,
            names,
            users: 0,
            rows: 0,
            _f: std::marker::PhantomData,
        })
    }

    /// Appends the recommendations of some users (`(item, score)` best first), with their
    /// ids.
    pub fn write(&mut self, recs: &[Vec<(u32, F)>], ids: Option<&RowIds>) -> Result<()> {
        let total: usize = recs.iter().map(Vec::len).sum();
        let (mut rank, mut item, mut score) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        for r in recs {
            for (t, &(j, v)) in r.iter().enumerate() {
                rank.push(t as i32 + 1);
                item.push(j);
                score.push(v);
            }
        }
        let repeat = |i: usize| recs[i].len();
        let user: ArrayRef = match (ids, self.schema.field(0).data_type()) {
            (Some(RowIds::Utf8(v)), DataType::Utf8) => Arc::new(StringArray::from_iter_values(
                (0..recs.len()).flat_map(|i| std::iter::repeat_n(v[i].as_str(), repeat(i))),
            )),
            (Some(RowIds::Int64(v)), _) => Arc::new(Int64Array::from_iter_values(
                (0..recs.len()).flat_map(|i| std::iter::repeat_n(v[i], repeat(i))),
            )),
            _ => Arc::new(Int64Array::from_iter_values((0..recs.len()).flat_map(
                |i| std::iter::repeat_n(self.users as i64 + i as i64, repeat(i)),
            ))),
        };
        let item: ArrayRef = if self.names.is_empty() {
            Arc::new(Int64Array::from_iter_values(
                item.into_iter().map(i64::from),
            ))
        } else {
            Arc::new(StringArray::from_iter_values(
                item.into_iter().map(|j| self.names[j as usize].as_str()),
            ))
        };
        let rb = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                user,
                Arc::new(arrow_array::Int32Array::from(rank)),
                item,
                float_column(score),
            ],
        )?;
        self.table.write(&rb)?;
        self.users += recs.len() as u64;
        self.rows += total as u64;
        Ok(())
    }

    /// Ends the table; returns the output and the rows written.
    pub fn finish(self) -> Result<(W, u64)> {
        Ok((self.table.finish()?, self.rows))
    }
}
