//! Writers for codes (W, with the id column) and dictionaries (H), as Parquet or as an
//! Arrow IPC stream, into any `Write`: an [`AtomicFile`](crate::persist::AtomicFile) for
//! files (renamed into place only when the whole run's outputs are complete), standard
//! output or a pipe for streams (each record batch flushed as soon as it is written, so a
//! downstream reader sees codes while the input is still arriving).
//!
//! Memory stays bounded by a batch: codes are written as they come, and H in slices of
//! rows (long format), of components (wide Arrow stream) or a column at a time (wide
//! Parquet).

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, ArrowPrimitiveType, Int64Array, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{s, ArrayView2};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::data_type::{DoubleType, FloatType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

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
    /// H's wide layout ([`wide_parquet`]): a column per feature, a row per component.
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

/// How H is laid out in a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentsLayout {
    /// One row per component: a `component` column, then one column per feature (what a
    /// data frame of H looks like; for up to a few thousand features).
    Wide,
    /// One row per (component, feature): `component`, `feature`, `value` (any number of
    /// features, in bounded memory).
    Long,
}

impl ComponentsLayout {
    /// Wide up to 1000 features, long beyond: a data frame of thousands of columns is
    /// unwieldy, and each Parquet column costs its metadata (20 × 1001 columns make a
    /// 238 KB file of 80 KB of values).
    pub fn auto(features: usize) -> Self {
        if features <= 1000 {
            ComponentsLayout::Wide
        } else {
            ComponentsLayout::Long
        }
    }
}

/// Components per record batch of the wide layout.
const WIDE_ROWS: usize = 256;

/// Rows per record batch of the long layout.
const LONG_ROWS: usize = 65_536;

/// Writes H (k × p) to `out` and returns it (to commit, for an atomic file). Feature names
/// come from `names` (the index `j` where missing).
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use ndarray::array;
/// use streamnmf::io::{write_components, ComponentsLayout, TableFormat};
/// let names = vec!["a".to_string(), "b".to_string()];
/// let h = array![[1.0f64, 0.0], [0.0, 1.0]];
/// let bytes = write_components(Vec::new(), TableFormat::Parquet, ComponentsLayout::Long, h.view(), &names)?;
/// assert!(bytes.starts_with(b"PAR1"));
/// # Ok(()) }
/// ```
pub fn write_components<F: ArrowFloat, W: Write + Send>(
    out: W,
    format: TableFormat,
    layout: ComponentsLayout,
    h: ArrayView2<F>,
    names: &[String],
) -> Result<W> {
    let name = |j: usize| names.get(j).cloned().unwrap_or_else(|| j.to_string());
    let (k, p) = h.dim();
    match layout {
        ComponentsLayout::Wide => {
            let mut fields = vec![Field::new("component", DataType::Int64, false)];
            fields.extend((0..p).map(|j| Field::new(name(j), F::Arrow::DATA_TYPE, false)));
            let schema = Arc::new(Schema::new(fields));
            if format == TableFormat::Parquet {
                return wide_parquet(out, &schema, h);
            }
            let mut table = Table::new(out, &schema, format)?;
            // Up to WIDE_ROWS components a record batch: a copy of that share of H as
            // columns, and one write for each column per batch (a component at a time,
            // k single-value arrays per column took 15 ms for 20 × 1000, in a 70 ms fit).
            for first in (0..k).step_by(WIDE_ROWS) {
                let comps = first..(first + WIDE_ROWS).min(k);
                let ids = Int64Array::from_iter_values(comps.clone().map(|c| c as i64));
                let mut cols: Vec<ArrayRef> = vec![Arc::new(ids)];
                cols.extend((0..p).map(|j| float_column(h.slice(s![comps.clone(), j]).to_vec())));
                table.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
            }
            table.finish()
        }
        ComponentsLayout::Long => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("component", DataType::Int64, false),
                Field::new("feature", DataType::Utf8, false),
                Field::new("value", F::Arrow::DATA_TYPE, false),
            ]));
            let mut table = Table::holding(out, &schema, format, Content::LongComponents)?;
            // Record batches of at most LONG_ROWS rows. When a component's row fits, a
            // batch holds the most whole components that fit, and the names of a full
            // batch (the feature names over and over) are made once and shared by every
            // batch (a slice of them for the last): making them cell by cell took a third
            // of the write of a 20 × 20 000 H. A wider H goes by spans of a component's
            // row, each span's names made anew, so memory stays bounded by a batch.
            let label = |j: usize| -> Cow<'_, str> {
                match names.get(j) {
                    Some(n) => Cow::Borrowed(n.as_str()),
                    None => Cow::Owned(j.to_string()),
                }
            };
            let mut write = |comps: Range<usize>, feats: Range<usize>, feat: ArrayRef| {
                let rows = feats.len();
                let comp = Int64Array::from_iter_values(
                    comps
                        .clone()
                        .flat_map(|c| std::iter::repeat_n(c as i64, rows)),
                );
                let vals = float_column(h.slice(s![comps, feats]).iter().copied().collect());
                let cols: Vec<ArrayRef> = vec![Arc::new(comp), feat, vals];
                table.write(&RecordBatch::try_new(schema.clone(), cols)?)
            };
            if p > 0 && p <= LONG_ROWS {
                let per = LONG_ROWS / p;
                let full: ArrayRef = Arc::new(StringArray::from_iter_values(
                    (0..per.min(k) * p).map(|t| label(t % p)),
                ));
                for first in (0..k).step_by(per) {
                    let comps = first..(first + per).min(k);
                    let feat = full.slice(0, comps.len() * p);
                    write(comps, 0..p, feat)?;
                }
            } else {
                for c in 0..k {
                    for first in (0..p).step_by(LONG_ROWS) {
                        let feats = first..(first + LONG_ROWS).min(p);
                        let feat =
                            Arc::new(StringArray::from_iter_values(feats.clone().map(label)));
                        write(c..c + 1, feats, feat)?;
                    }
                }
            }
            table.finish()
        }
    }
}

/// H as a wide Parquet table (`schema`: `component`, then a column per feature), written
/// a column at a time: one row group of the k components, each feature's column chunk
/// encoded and written before the next one's writer is made. An Arrow writer makes every
/// column's writer and buffers at once and holds the row group in memory; on 20 × 1001
/// columns that took 7–8 ms in a fresh process against 3.7 ms so, and its memory grew
/// with the width.
///
/// The file writer flushes its sink after every column chunk, which made one `write`
/// system call per feature (1001 for the base member's H); its writes go through a
/// [`Deferred`] buffer instead, handed on once, at the end. (A whole one-pass fit did not
/// move measurably: 146 against 147 ms, 20 alternating runs.)
fn wide_parquet<F: ArrowFloat, W: Write + Send>(
    out: W,
    schema: &Schema,
    h: ArrayView2<F>,
) -> Result<W> {
    let descr = ArrowSchemaConverter::new().convert(schema)?;
    let mut props = properties(Content::WideComponents);
    // The Arrow schema rides along, as an Arrow writer's does: readers get its types back.
    add_encoded_arrow_schema_to_metadata(schema, &mut props);
    let out = Deferred(BufWriter::with_capacity(DEFERRED_BYTES, out));
    let mut file = SerializedFileWriter::new(out, descr.root_schema_ptr(), Arc::new(props))?;
    let mut group = file.next_row_group()?;
    let ids: Vec<i64> = (0..h.nrows() as i64).collect();
    let mut column = 0usize;
    while let Some(mut writer) = group.next_column()? {
        match column.checked_sub(1).map(|j| h.column(j)) {
            None => {
                writer.typed::<Int64Type>().write_batch(&ids, None, None)?;
            }
            Some(values) if F::Arrow::DATA_TYPE == DataType::Float32 => {
                let v: Vec<f32> = values.iter().map(|x| x.as_f64() as f32).collect();
                writer.typed::<FloatType>().write_batch(&v, None, None)?;
            }
            Some(values) => {
                let v: Vec<f64> = values.iter().map(|x| x.as_f64()).collect();
                writer.typed::<DoubleType>().write_batch(&v, None, None)?;
            }
        }
        writer.close()?;
        column += 1;
    }
    group.close()?;
    let Deferred(buffered) = file.into_inner()?;
    Ok(buffered.into_inner().map_err(|e| e.into_error())?)
}

/// Bytes a [`Deferred`] writer holds before it writes them on.
const DEFERRED_BYTES: usize = 1 << 20;

/// A buffered writer whose `flush` keeps the buffer: the bytes go on when it is full or
/// when the caller takes the sink back ([`BufWriter::into_inner`]), not at each flush of
/// a writer that flushes after every piece it writes.
struct Deferred<W: Write>(BufWriter<W>);

impl<W: Write> Write for Deferred<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    fn read_all(bytes: Vec<u8>, format: TableFormat) -> Vec<RecordBatch> {
        match format {
            TableFormat::Parquet => {
                let mut f = tempfile::tempfile().unwrap();
                f.write_all(&bytes).unwrap();
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect()
            }
            TableFormat::ArrowStream => {
                arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect()
            }
        }
    }

    /// Both layouts, both formats, hold H exactly.
    #[test]
    fn components_round_trip() {
        let h = ndarray::array![[1.0f64, 0.0, 2.5], [0.25, 3.0, 0.0]];
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        for format in [TableFormat::Parquet, TableFormat::ArrowStream] {
            let wide =
                write_components(Vec::new(), format, ComponentsLayout::Wide, h.view(), &names)
                    .unwrap();
            let rbs = read_all(wide, format);
            let rows: usize = rbs.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 2);
            let c = rbs[rbs.len() - 1].column_by_name("c").unwrap();
            assert_eq!(c.as_primitive::<Float64Type>().values()[c.len() - 1], 0.0);
            let long =
                write_components(Vec::new(), format, ComponentsLayout::Long, h.view(), &names)
                    .unwrap();
            let rb = &read_all(long, format)[0];
            assert_eq!(rb.num_rows(), 6);
            let v = rb.column(2).as_primitive::<Float64Type>().values().to_vec();
            assert_eq!(v, h.iter().cloned().collect::<Vec<_>>());
            assert_eq!(rb.column(1).as_string::<i32>().value(4), "b");
        }
        assert_eq!(ComponentsLayout::auto(1000), ComponentsLayout::Wide);
        assert_eq!(ComponentsLayout::auto(1001), ComponentsLayout::Long);
    }

    /// H written into `sink` as a Parquet table of `layout`, through the public entry point.
    fn parquet_into<F: ArrowFloat, W: Write + Send>(
        sink: W,
        layout: ComponentsLayout,
        h: ArrayView2<F>,
        names: &[String],
    ) -> W {
        write_components(sink, TableFormat::Parquet, layout, h, names).unwrap()
    }

    /// The wide table reaches its sink in a few large writes, not one per feature (the
    /// file writer flushes after every column chunk), and whole.
    #[test]
    fn wide_parquet_writes_its_sink_in_few_pieces() {
        /// Counts the writes and flushes it is handed.
        #[derive(Default)]
        struct Counting {
            bytes: Vec<u8>,
            writes: usize,
            flushes: usize,
        }
        impl Write for Counting {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.writes += 1;
                self.bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.flushes += 1;
                Ok(())
            }
        }
        let (k, p) = (3, 400);
        let h = ndarray::Array2::from_shape_fn((k, p), |(i, j)| (i * p + j) as f32);
        let names: Vec<String> = (0..p).map(|j| format!("f{j}")).collect();
        let sink = parquet_into(
            Counting::default(),
            ComponentsLayout::Wide,
            h.view(),
            &names,
        );
        assert!(sink.writes <= 2, "{} writes", sink.writes);
        assert_eq!(sink.flushes, 0);
        let rbs = read_all(sink.bytes, TableFormat::Parquet);
        assert_eq!(rbs[0].num_columns(), p + 1);
        let last = rbs[0]
            .column(p)
            .as_primitive::<arrow_array::types::Float32Type>();
        assert_eq!(last.values().to_vec(), h.column(p - 1).to_vec());
    }

    /// H's wide Parquet table, written a column at a time, reads back as the Arrow table
    /// of H: the component ids, a non-null column per feature of the model's float type
    /// named after it, and every value bit for bit (f32 and f64).
    #[test]
    fn wide_parquet_holds_h_exactly() {
        fn check<F: ArrowFloat>(h: ndarray::Array2<F>) {
            let (k, p) = h.dim();
            let names: Vec<String> = (0..p).map(|j| format!("feature {j}")).collect();
            let bytes = parquet_into(Vec::new(), ComponentsLayout::Wide, h.view(), &names);
            let rbs = read_all(bytes, TableFormat::Parquet);
            assert_eq!(rbs.len(), 1);
            let rb = &rbs[0];
            assert_eq!((rb.num_rows(), rb.num_columns()), (k, p + 1));
            let schema = rb.schema();
            assert_eq!(schema.field(0).name(), "component");
            let ids = rb.column(0).as_primitive::<arrow_array::types::Int64Type>();
            assert_eq!(ids.values().to_vec(), (0..k as i64).collect::<Vec<_>>());
            for (j, name) in names.iter().enumerate() {
                let f = schema.field(j + 1);
                assert_eq!((f.name(), f.data_type()), (name, &F::Arrow::DATA_TYPE));
                assert!(!f.is_nullable());
                let col = rb.column(j + 1).as_primitive::<F::Arrow>();
                assert_eq!(col.values().to_vec(), h.column(j).to_vec(), "{name}");
            }
        }
        let h32 = ndarray::Array2::from_shape_fn((7, 300), |(i, j)| {
            f32::from_bits(0x3e00_0000 + (i * 7919 + j * 104_729) as u32 % 0x0100_0000)
        });
        check(h32.clone());
        check(h32.mapv(|v| f64::from(v) * (1.0 + f64::EPSILON)));
    }

    /// The long table holds every (component, feature, value) in order, features without
    /// a name named by their index, whether a record batch holds one component (two here),
    /// several with the last batch short (30 000 features: two components a batch, seven
    /// components), or a span of one component's features (more than a batch holds).
    #[test]
    fn long_table_holds_every_cell_in_order() {
        for (k, p, given) in [(2, 5, 2), (7, 30_000, 3), (2, LONG_ROWS + 3, 1)] {
            let h = ndarray::Array2::from_shape_fn((k, p), |(i, j)| (i * p + j) as f32);
            let names: Vec<String> = (0..given).map(|j| format!("n{j}")).collect();
            let bytes = parquet_into(Vec::new(), ComponentsLayout::Long, h.view(), &names);
            let (mut comps, mut feats, mut vals) = (Vec::new(), Vec::new(), Vec::new());
            for rb in read_all(bytes, TableFormat::Parquet) {
                let comp = rb.column(0).as_primitive::<arrow_array::types::Int64Type>();
                comps.extend(comp.values().iter().map(|&c| c as usize));
                let feat = rb.column(1).as_string::<i32>();
                feats.extend(feat.iter().map(|f| f.unwrap().to_string()));
                let val = rb
                    .column(2)
                    .as_primitive::<arrow_array::types::Float32Type>();
                vals.extend(val.values().iter().copied());
            }
            let want = |j: usize| names.get(j).cloned().unwrap_or_else(|| j.to_string());
            let expected: Vec<String> = (0..k * p).map(|t| want(t % p)).collect();
            assert!(feats == expected, "names, k {k}, p {p}");
            assert!(
                comps == (0..k * p).map(|t| t / p).collect::<Vec<_>>(),
                "k {k}, p {p}"
            );
            assert!(
                vals == h.iter().copied().collect::<Vec<_>>(),
                "k {k}, p {p}"
            );
        }
    }

    /// H's long Parquet table, over more rows than a record batch: every (component,
    /// feature, value) in order, the feature names and the component ids stored delta
    /// encoded, so their repeats cost almost nothing (20 × 5000 here: plain with zstd,
    /// 45 KB of ids and 23 KB of names; delta encoded, 0.3 KB and 8 KB).
    #[test]
    fn long_parquet_holds_h_and_stores_repeats_compactly() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let (k, p) = (20, 5000);
        let h = ndarray::Array2::from_shape_fn((k, p), |(i, j)| {
            if (i + j) % 3 == 0 {
                (i * p + j) as f32 * 0.5
            } else {
                0.0
            }
        });
        let names: Vec<String> = (0..p).map(|j| format!("word {j}")).collect();
        let bytes = parquet_into(Vec::new(), ComponentsLayout::Long, h.view(), &names);
        let meta = SerializedFileReader::new(bytes::Bytes::from(bytes.clone()))
            .unwrap()
            .metadata()
            .row_group(0)
            .clone();
        let chunk = |name: &str| {
            meta.columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .clone()
        };
        let (comp, feat) = (chunk("component"), chunk("feature"));
        assert!(comp.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED));
        assert!(feat.encodings().any(|e| e == Encoding::DELTA_BYTE_ARRAY));
        assert!(comp.compressed_size() < 2_000, "{}", comp.compressed_size());
        assert!(
            feat.compressed_size() < 12_000,
            "{}",
            feat.compressed_size()
        );
        let rbs = read_all(bytes, TableFormat::Parquet);
        let mut cells = 0;
        for rb in &rbs {
            let comp = rb.column(0).as_primitive::<arrow_array::types::Int64Type>();
            let feat = rb.column(1).as_string::<i32>();
            let vals = rb
                .column(2)
                .as_primitive::<arrow_array::types::Float32Type>();
            for r in 0..rb.num_rows() {
                let (i, j) = (cells / p, cells % p);
                assert_eq!(comp.value(r), i as i64);
                assert_eq!(feat.value(r), names[j]);
                assert_eq!(vals.value(r).to_bits(), h[[i, j]].to_bits());
                cells += 1;
            }
        }
        assert_eq!(cells, k * p);
    }
}
