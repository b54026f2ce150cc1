//! Flat numeric column chunks decoded straight from their pages.
//!
//! A wide row group decoded whole ([`super::whole`]) spends most of its time in the
//! parquet crate's record reader rather than in the values: for each column it copies
//! the dictionary page into a fresh dictionary (zeroed first), grows a zeroed values
//! buffer by doubling, decodes the definition levels into a buffer of their own, and
//! builds a struct array of the columns. On a 20 000 × 1000 file of pyarrow's defaults
//! (one snappy dictionary page and one data page a column) that was a third of a one-pass
//! fit's page faults.
//!
//! [`decode_chunk`] reads the pages of a `FLOAT`, `DOUBLE`, `INT32` or `INT64` column
//! chunk with no repetition through the crate's page reader (which parses the headers and decompresses)
//! and decodes PLAIN and dictionary-encoded values itself: the dictionary indices are
//! gathered from the dictionary page's bytes into one values buffer of the row group's
//! rows, written once. Anything else (nulls, other encodings) is left to the record
//! reader: the chunk decodes to `None`, and the caller decodes those columns as before.
//! A page that contradicts its header or its footer is an error, never a panic.

use std::sync::Arc;

use arrow_array::types::{ArrowPrimitiveType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, PrimitiveArray};
use arrow_schema::DataType;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;
use parquet::schema::types::ColumnDescriptor;

use hybrid::{all_defined, gather};

mod hybrid;

/// A value type stored as little-endian bytes in a Parquet page.
pub(super) trait Plain: Copy + Default + Send + 'static {
    /// The column chunks' physical type.
    const PHYSICAL: PhysicalType;
    /// Bytes a value.
    const SIZE: usize;
    /// The value of `SIZE` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

/// `Plain` for a primitive of `$n` bytes stored as `$physical`.
macro_rules! plain {
    ($($t:ty: $physical:ident, $n:literal;)*) => {
        $(impl Plain for $t {
            const PHYSICAL: PhysicalType = PhysicalType::$physical;
            const SIZE: usize = $n;
            fn from_le(b: &[u8]) -> Self {
                let mut le = [0u8; $n];
                le.copy_from_slice(&b[..$n]);
                <$t>::from_le_bytes(le)
            }
        })*
    };
}

plain! {
    f32: FLOAT, 4;
    f64: DOUBLE, 8;
    i32: INT32, 4;
    i64: INT64, 8;
}

/// Whether `descr` is a column this module decodes as `T`: its physical type, no
/// repetition, at most one level of definition (a nullable top-level field).
pub(super) fn decodes<T: Plain>(descr: &ColumnDescriptor) -> bool {
    descr.physical_type() == T::PHYSICAL && descr.max_rep_level() == 0 && descr.max_def_level() <= 1
}

/// Column chunk `meta` (leaf `descr`, read as `data_type`) as an array of its `rows`
/// values, when this module decodes it: a `Float32`, `Float64`, `Int32` or `Int64` field
/// (exactly these arrow types: `INT32` also stores dates and narrower or unsigned
/// integers, `INT64` timestamps, which the arrow type tells apart) of no nulls and of
/// PLAIN or dictionary pages; `None` otherwise.
pub(super) fn decode_column<R: ChunkReader + 'static>(
    reader: Arc<R>,
    descr: &ColumnDescriptor,
    data_type: &DataType,
    meta: &ColumnChunkMetaData,
    rows: usize,
) -> Result<Option<ArrayRef>> {
    match data_type {
        DataType::Float32 => primitive::<Float32Type, R>(reader, descr, meta, rows),
        DataType::Float64 => primitive::<Float64Type, R>(reader, descr, meta, rows),
        DataType::Int32 => primitive::<Int32Type, R>(reader, descr, meta, rows),
        DataType::Int64 => primitive::<Int64Type, R>(reader, descr, meta, rows),
        _ => Ok(None),
    }
}

/// [`decode_column`] for the arrow type `A`.
fn primitive<A: ArrowPrimitiveType, R: ChunkReader + 'static>(
    reader: Arc<R>,
    descr: &ColumnDescriptor,
    meta: &ColumnChunkMetaData,
    rows: usize,
) -> Result<Option<ArrayRef>>
where
    A::Native: Plain,
{
    if !decodes::<A::Native>(descr) {
        return Ok(None);
    }
    let values = decode_chunk::<A::Native, R>(reader, meta, rows, descr.max_def_level() == 1)?;
    Ok(values.map(|v| Arc::new(PrimitiveArray::<A>::new(v.into(), None)) as ArrayRef))
}

fn corrupt(what: String) -> ParquetError {
    ParquetError::General(what)
}

/// A data page of `len` bytes whose levels' length runs past its end.
fn levels_past(len: usize) -> ParquetError {
    corrupt(format!("a data page's levels run past its {len} bytes"))
}

/// The `rows` values of column chunk `meta` (a column [`decodes`] accepts, `optional` when
/// it has a definition level), read through `reader`; `None` when the chunk holds a null
/// or an encoding this module leaves to the record reader.
pub(super) fn decode_chunk<T: Plain, R: ChunkReader + 'static>(
    reader: Arc<R>,
    meta: &ColumnChunkMetaData,
    rows: usize,
    optional: bool,
) -> Result<Option<Vec<T>>> {
    let props = ReaderProperties::builder()
        .set_read_page_statistics(false)
        .build();
    let mut pages =
        SerializedPageReader::new_with_properties(reader, meta, rows, None, props.into())?;
    let mut dict: Vec<T> = Vec::new();
    let mut values: Vec<T> = Vec::with_capacity(rows);
    while let Some(page) = pages.get_next_page()? {
        let (buf, count, encoding, levels) = match page {
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                ..
            } => {
                if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                    return Ok(None);
                }
                let n = num_values as usize;
                let bytes = buf.get(..n.saturating_mul(T::SIZE)).ok_or_else(|| {
                    corrupt(format!(
                        "a dictionary page of {n} values holds {} bytes",
                        buf.len()
                    ))
                })?;
                dict.clear();
                dict.extend(bytes.chunks_exact(T::SIZE).map(T::from_le));
                continue;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                ..
            } => {
                let mut at = 0;
                if optional {
                    if def_level_encoding != Encoding::RLE {
                        return Ok(None);
                    }
                    let len = buf
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .ok_or_else(|| corrupt("a data page ends in its levels".into()))?;
                    at = 4 + len;
                    let levels = buf.get(4..at).ok_or_else(|| levels_past(buf.len()))?;
                    if !all_defined(levels, num_values as usize)? {
                        return Ok(None);
                    }
                }
                (buf, num_values as usize, encoding, at)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                num_nulls,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                if num_nulls != 0 {
                    return Ok(None);
                }
                let rep = rep_levels_byte_len as usize;
                let at = rep + def_levels_byte_len as usize;
                let levels = buf.get(rep..at).ok_or_else(|| levels_past(buf.len()))?;
                if optional && !all_defined(levels, num_values as usize)? {
                    return Ok(None);
                }
                (buf, num_values as usize, encoding, at)
            }
        };
        if count > rows - values.len() {
            return Err(corrupt(format!(
                "the column chunk holds more values than its row group's {rows} rows"
            )));
        }
        let data = buf.get(levels..).unwrap_or_default();
        match encoding {
            Encoding::PLAIN => {
                let bytes = data.get(..count * T::SIZE).ok_or_else(|| {
                    corrupt(format!(
                        "a page of {count} values holds {} bytes",
                        data.len()
                    ))
                })?;
                values.extend(bytes.chunks_exact(T::SIZE).map(T::from_le));
            }
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                if dict.is_empty() && count > 0 {
                    return Err(corrupt(
                        "a dictionary-encoded page without a dictionary".into(),
                    ));
                }
                let (&width, runs) = data.split_first().ok_or_else(|| {
                    corrupt("a dictionary-encoded page without its bit width".into())
                })?;
                gather(runs, u32::from(width), count, &dict, &mut values)?;
            }
            _ => return Ok(None),
        }
    }
    if values.len() != rows {
        return Err(corrupt(format!(
            "the column chunk holds {} of its row group's {rows} values",
            values.len()
        )));
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, RecordBatch};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    use proptest::prelude::*;

    /// A file of one row group holding `columns`, written with `props`.
    fn write(columns: Vec<(&str, ArrayRef)>, props: WriterProperties) -> bytes::Bytes {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out.into()
    }

    /// Column `c` of the file's one row group decoded here (as `T`), and by the record
    /// reader as floats.
    fn both<T: Plain>(file: &bytes::Bytes, c: usize) -> (Result<Option<Vec<T>>>, Vec<f64>) {
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let meta = reader.metadata().row_group(0);
        let descr = meta.schema_descr().column(c);
        assert!(decodes::<T>(&descr));
        let rows = meta.num_rows() as usize;
        let ours = decode_chunk::<T, _>(
            Arc::new(file.clone()),
            meta.column(c),
            rows,
            descr.max_def_level() == 1,
        );
        let rb = ParquetRecordBatchReaderBuilder::try_new(file.clone())
            .unwrap()
            .with_batch_size(rows)
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let col = rb.column(c);
        let theirs = match col.as_any().downcast_ref::<Float32Array>() {
            Some(a) => a.iter().map(|v| f64::from(v.unwrap_or(f32::NAN))).collect(),
            None => col
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect(),
        };
        (ours, theirs)
    }

    /// `rows` values with `distinct` different ones (a dictionary index of its bits).
    fn values(rows: usize, distinct: usize) -> Vec<f32> {
        (0..rows)
            .map(|i| ((i * 7919) % distinct) as f32 * 0.5)
            .collect()
    }

    /// Every value equals the record reader's, across page versions, codecs, dictionary
    /// or plain pages (and a dictionary that overflows to plain pages), several pages a
    /// chunk, nullable and required fields, `FLOAT` and `DOUBLE`, and index widths 0..=15.
    #[test]
    fn pages_decode_as_the_record_reader_does() {
        use arrow_schema::{DataType, Field, Schema};
        let rows = 20_011;
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for compression in [
                Compression::UNCOMPRESSED,
                Compression::SNAPPY,
                Compression::ZSTD(Default::default()),
            ] {
                for (dictionary, page_rows) in [
                    (true, 1 << 20),
                    (false, 1 << 20),
                    (true, 1000),
                    (false, 999),
                ] {
                    let props = WriterProperties::builder()
                        .set_writer_version(version)
                        .set_compression(compression)
                        .set_dictionary_enabled(dictionary)
                        .set_dictionary_page_size_limit(16 << 10)
                        .set_data_page_row_count_limit(page_rows)
                        .set_write_batch_size(page_rows.min(1024))
                        .build();
                    let distinct = [1, 2, 300, 20_000];
                    let mut columns: Vec<(String, ArrayRef)> = distinct
                        .iter()
                        .map(|&d| {
                            (
                                format!("d{d}"),
                                Arc::new(Float32Array::from(values(rows, d))) as ArrayRef,
                            )
                        })
                        .collect();
                    let wide: Vec<f64> = values(rows, 700)
                        .iter()
                        .map(|&v| f64::from(v) + 0.25)
                        .collect();
                    columns.push(("f64".into(), Arc::new(Float64Array::from(wide))));
                    let batch = RecordBatch::try_from_iter(columns.clone()).unwrap();
                    // The same columns required (no definition level).
                    let required = Schema::new(
                        batch
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| Field::new(f.name(), f.data_type().clone(), false))
                            .collect::<Vec<_>>(),
                    );
                    let batch2 =
                        RecordBatch::try_new(Arc::new(required), batch.columns().to_vec()).unwrap();
                    for b in [batch, batch2] {
                        let mut out = Vec::new();
                        let mut w = ArrowWriter::try_new(&mut out, b.schema(), Some(props.clone()))
                            .unwrap();
                        w.write(&b).unwrap();
                        w.close().unwrap();
                        let file: bytes::Bytes = out.into();
                        let case = format!("{version:?} {compression:?} dictionary {dictionary}, {page_rows} rows a page");
                        for c in 0..distinct.len() {
                            let (ours, theirs) = both::<f32>(&file, c);
                            let ours: Vec<f64> = ours
                                .unwrap()
                                .expect(&case)
                                .into_iter()
                                .map(f64::from)
                                .collect();
                            assert_eq!(ours, theirs, "{case}, column {c}");
                        }
                        let (ours, theirs) = both::<f64>(&file, distinct.len());
                        assert_eq!(ours.unwrap().expect(&case), theirs, "{case}, f64");
                        assert_eq!(b.column(0).data_type(), &DataType::Float32);
                    }
                }
            }
        }
    }

    /// Integer chunks (counts as pandas writes them) decode to their values, dictionary
    /// or plain.
    #[test]
    fn integer_pages_decode_to_their_values() {
        use arrow_array::{Int32Array, Int64Array};
        for dictionary in [true, false] {
            let props = WriterProperties::builder()
                .set_dictionary_enabled(dictionary)
                .build();
            let counts: Vec<i64> = (0..3000).map(|i| (i * 31) % 17 - 3).collect();
            let small: Vec<i32> = counts.iter().map(|&c| c as i32 * 1000).collect();
            let file = write(
                vec![
                    ("n", Arc::new(Int64Array::from(counts.clone())) as ArrayRef),
                    ("m", Arc::new(Int32Array::from(small.clone())) as ArrayRef),
                ],
                props,
            );
            let reader = SerializedFileReader::new(file.clone()).unwrap();
            let meta = reader.metadata().row_group(0);
            let optional = meta.schema_descr().column(0).max_def_level() == 1;
            let n = decode_chunk::<i64, _>(Arc::new(file.clone()), meta.column(0), 3000, optional);
            assert_eq!(n.unwrap().unwrap(), counts);
            let m = decode_chunk::<i32, _>(Arc::new(file.clone()), meta.column(1), 3000, optional);
            assert_eq!(m.unwrap().unwrap(), small);
            assert!(!decodes::<i32>(&meta.schema_descr().column(0)));
        }
    }

    /// A column with a null is left to the record reader, in either page version.
    #[test]
    fn a_null_is_left_to_the_record_reader() {
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let mut v: Vec<Option<f32>> = (0..500).map(|i| Some(i as f32)).collect();
            v[321] = None;
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .build();
            let file = write(
                vec![("x", Arc::new(Float32Array::from(v)) as ArrayRef)],
                props,
            );
            let (ours, theirs) = both::<f32>(&file, 0);
            assert!(ours.unwrap().is_none(), "{version:?}");
            assert!(theirs[321].is_nan());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Damaged pages decode to an error or to values, never to a panic: bytes of a
        /// small dictionary-encoded (or plain) chunk overwritten at random.
        #[test]
        fn damaged_pages_never_panic(
            dictionary in any::<bool>(),
            v2 in any::<bool>(),
            hits in proptest::collection::vec((0usize..4000, any::<u8>()), 1..8),
        ) {
            let props = WriterProperties::builder()
                .set_dictionary_enabled(dictionary)
                .set_writer_version(if v2 { WriterVersion::PARQUET_2_0 } else { WriterVersion::PARQUET_1_0 })
                .set_compression(Compression::UNCOMPRESSED)
                .build();
            let file = write(vec![("x", Arc::new(Float32Array::from(values(700, 90))) as ArrayRef)], props);
            let reader = SerializedFileReader::new(file.clone()).unwrap();
            let meta = reader.metadata().row_group(0).column(0).clone();
            let (start, len) = meta.byte_range();
            let mut bytes = file.to_vec();
            for (at, b) in hits {
                let i = start as usize + at % len as usize;
                bytes[i] = b;
            }
            let damaged: bytes::Bytes = bytes.into();
            let optional = reader.metadata().row_group(0).schema_descr().column(0).max_def_level() == 1;
            let _ = decode_chunk::<f32, _>(Arc::new(damaged.clone()), &meta, 700, optional);
            let _ = decode_chunk::<f32, _>(Arc::new(damaged), &meta, 700, !optional);
        }
    }
}
