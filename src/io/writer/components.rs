//! H as a table: the wide layout (a row per component) and the long one (a row per
//! component and feature), in Parquet or an Arrow IPC stream.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::sync::Arc;

use arrow_array::{ArrayRef, ArrowPrimitiveType, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::{s, ArrayView2};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use parquet::data_type::{DoubleType, FloatType, Int64Type};
use parquet::file::writer::SerializedFileWriter;

use super::{float_column, properties, Content, Table, TableFormat};
use crate::error::{Error, Result};
use crate::io::ArrowFloat;

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
            let cells = LongCells::new(h, names);
            if format == TableFormat::Parquet {
                return long_parquet(out, &schema, &cells);
            }
            let mut table = Table::holding(out, &schema, format, Content::LongComponents)?;
            for (comps, feats) in cells.batches(0..k) {
                let cols = vec![
                    cells.ids(&comps, &feats),
                    cells.names(&comps, &feats),
                    cells.values(&comps, &feats),
                ];
                table.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
            }
            table.finish()
        }
    }
}

/// H's cells in the long layout's order (component by component, feature by feature),
/// by record batches of at most [`LONG_ROWS`] rows.
///
/// When a component's row fits a batch, a batch holds the most whole components that fit,
/// and the names of a full batch (the feature names over and over) are made once and
/// shared by every batch (a slice of them for the last): making them cell by cell took a
/// third of the write of a 20 × 20 000 H. A wider H goes by spans of a component's row,
/// each span's names made anew, so memory stays bounded by a batch.
struct LongCells<'a, F> {
    h: ArrayView2<'a, F>,
    names: &'a [String],
    /// Whole components a batch holds (0: a component's row takes several batches).
    per: usize,
    /// The names of a batch of `per` components, when there is one.
    full: Option<ArrayRef>,
}

impl<'a, F: ArrowFloat> LongCells<'a, F> {
    fn new(h: ArrayView2<'a, F>, names: &'a [String]) -> Self {
        let (k, p) = h.dim();
        let per = if p > 0 && p <= LONG_ROWS {
            LONG_ROWS / p
        } else {
            0
        };
        let mut cells = Self {
            h,
            names,
            per,
            full: None,
        };
        if per > 0 {
            let full = (0..per.min(k) * p).map(|t| cells.label(t % p));
            let full: ArrayRef = Arc::new(StringArray::from_iter_values(full));
            cells.full = Some(full);
        }
        cells
    }

    /// Feature `j`'s name: given, or its index.
    fn label(&self, j: usize) -> Cow<'a, str> {
        match self.names.get(j) {
            Some(n) => Cow::Borrowed(n.as_str()),
            None => Cow::Owned(j.to_string()),
        }
    }

    /// The batches, as (components, features), that cover the components `comps`.
    fn batches(&self, comps: Range<usize>) -> Vec<(Range<usize>, Range<usize>)> {
        let p = self.h.ncols();
        let end = comps.end;
        if self.per > 0 {
            let per = self.per;
            return comps
                .step_by(per)
                .map(|c| (c..(c + per).min(end), 0..p))
                .collect();
        }
        comps
            .flat_map(|c| {
                (0..p)
                    .step_by(LONG_ROWS)
                    .map(move |f| (c..c + 1, f..(f + LONG_ROWS).min(p)))
            })
            .collect()
    }

    /// A batch's `component` column.
    fn ids(&self, comps: &Range<usize>, feats: &Range<usize>) -> ArrayRef {
        let rows = feats.len();
        let ids = comps
            .clone()
            .flat_map(|c| std::iter::repeat_n(c as i64, rows));
        Arc::new(Int64Array::from_iter_values(ids))
    }

    /// A batch's `feature` column.
    fn names(&self, comps: &Range<usize>, feats: &Range<usize>) -> ArrayRef {
        match &self.full {
            Some(full) => full.slice(0, comps.len() * feats.len()),
            None => Arc::new(StringArray::from_iter_values(
                feats.clone().map(|j| self.label(j)),
            )),
        }
    }

    /// A batch's `value` column.
    fn values(&self, comps: &Range<usize>, feats: &Range<usize>) -> ArrayRef {
        let cells = self.h.slice(s![comps.clone(), feats.clone()]);
        float_column(cells.iter().copied().collect())
    }
}

/// H's long Parquet table (`schema`: `component`, `feature`, `value`), its three columns
/// encoded at once: the names on a thread of their own, the ids and values on this one,
/// each row group's column chunks then written in order. The names are most of the work
/// (delta encoded strings); on 20 × 20 000 the write took 18 ms on one thread. Row groups
/// hold whole components, up to the writer's row count when a component fits.
fn long_parquet<F: ArrowFloat, W: Write + Send>(
    out: W,
    schema: &SchemaRef,
    cells: &LongCells<'_, F>,
) -> Result<W> {
    let descr = ArrowSchemaConverter::new().convert(schema)?;
    let mut props = properties(Content::LongComponents);
    // The Arrow schema rides along, as an Arrow writer's does: readers get its types back.
    add_encoded_arrow_schema_to_metadata(schema, &mut props);
    let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
    let mut file = SerializedFileWriter::new(out, descr.root_schema_ptr(), Arc::new(props))?;
    let factory = ArrowRowGroupWriterFactory::new(&file, schema.clone());
    let fields = schema.fields();
    let (k, p) = cells.h.dim();
    let per_group = (group_rows / p.max(1)).max(1);
    // No cells, no row groups (an Arrow writer given no rows writes none either).
    let k = if p == 0 { 0 } else { k };
    for (g, first) in (0..k).step_by(per_group).enumerate() {
        let batches = cells.batches(first..(first + per_group).min(k));
        let writers: [ArrowColumnWriter; 3] = factory
            .create_column_writers(g)?
            .try_into()
            .map_err(|w: Vec<_>| Error::Schema(format!("{} column writers, not 3", w.len())))?;
        let [mut ids, mut names, mut values] = writers;
        let encode = |w: &mut ArrowColumnWriter, field: usize, col: &ArrayRef| -> Result<()> {
            for leaf in compute_leaves(&fields[field], col)? {
                w.write(&leaf)?;
            }
            Ok(())
        };
        let (names, rest) = std::thread::scope(|scope| {
            let job = scope.spawn(|| -> Result<ArrowColumnChunk> {
                for (c, f) in &batches {
                    encode(&mut names, 1, &cells.names(c, f))?;
                }
                Ok(names.close()?)
            });
            let rest = (|| -> Result<[ArrowColumnChunk; 2]> {
                for (c, f) in &batches {
                    encode(&mut ids, 0, &cells.ids(c, f))?;
                    encode(&mut values, 2, &cells.values(c, f))?;
                }
                Ok([ids.close()?, values.close()?])
            })();
            let names = job.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            (names, rest)
        });
        let [ids, values] = rest?;
        let mut group = file.next_row_group()?;
        for chunk in [ids, names?, values] {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
    }
    Ok(file.into_inner()?)
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
    use parquet::basic::Encoding;

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
    /// components), or a span of one component's features (more than a batch holds), and
    /// over more than a row group's rows.
    #[test]
    fn long_table_holds_every_cell_in_order() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let cases = [(2, 5, 2, 1), (7, 30_000, 3, 1), (2, LONG_ROWS + 3, 1, 1)];
        // Over a row group's million rows: two components a group.
        // No features: no cells, no row groups.
        let cases = cases.into_iter().chain([(3, 0, 0, 0)]);
        for (k, p, given, groups) in cases.chain([(3, 400_000, 0, 2)]) {
            let h = ndarray::Array2::from_shape_fn((k, p), |(i, j)| (i * p + j) as f32);
            let names: Vec<String> = (0..given).map(|j| format!("n{j}")).collect();
            let bytes = parquet_into(Vec::new(), ComponentsLayout::Long, h.view(), &names);
            let file = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
            assert_eq!(file.metadata().num_row_groups(), groups, "k {k}, p {p}");
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
