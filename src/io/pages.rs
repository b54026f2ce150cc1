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

/// A run of an RLE / bit-packed hybrid encoding: `count` repeats of a value, or `count`
/// values of `width` bits packed from the start of `bytes`, least significant bit first.
enum Run<'a> {
    Repeat(u32, usize),
    Packed(&'a [u8], usize),
}

/// Calls `f` with the runs of `count` values of `width` bits in `data`.
fn runs<'a>(
    data: &'a [u8],
    width: u32,
    mut count: usize,
    mut f: impl FnMut(Run<'a>) -> Result<()>,
) -> Result<()> {
    if width > 32 {
        return Err(corrupt(format!("a bit width of {width}")));
    }
    let short = |left: usize| move || corrupt(format!("a page ends {left} values early"));
    let mut at = 0usize;
    while count > 0 {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let byte = *data.get(at).ok_or_else(short(count))?;
            at += 1;
            header |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
            if shift > 35 {
                return Err(corrupt("a run header of more than 5 bytes".into()));
            }
        }
        if header & 1 == 1 {
            // Groups of 8 values; the last run may stop short of its groups' end.
            let n = ((header >> 1) as usize * 8).min(count);
            let bytes = (n * width as usize).div_ceil(8);
            let packed = data.get(at..at + bytes).ok_or_else(short(count))?;
            at += (header >> 1) as usize * width as usize;
            f(Run::Packed(packed, n))?;
            count -= n;
        } else {
            let n = ((header >> 1) as usize).min(count);
            let size = width.div_ceil(8) as usize;
            let raw = data.get(at..at + size).ok_or_else(short(count))?;
            at += size;
            let value = raw.iter().rev().fold(0u32, |v, &b| (v << 8) | u32::from(b));
            f(Run::Repeat(value, n))?;
            count -= n;
        }
    }
    Ok(())
}

/// Whether all `count` definition levels (one bit each) in `data` are 1.
fn all_defined(data: &[u8], count: usize) -> Result<bool> {
    let mut all = true;
    runs(data, 1, count, |run| {
        all &= match run {
            Run::Repeat(v, n) => v == 1 || n == 0,
            Run::Packed(bytes, n) => {
                let (full, rest) = (n / 8, n % 8);
                bytes[..full].iter().all(|&b| b == 0xff)
                    && (rest == 0 || bytes[full] | (0xffu8 << rest) == 0xff)
            }
        };
        Ok(())
    })?;
    Ok(all)
}

/// Appends to `out` the dictionary values of `count` indices of `width` bits in `data`.
fn gather<T: Plain>(
    data: &[u8],
    width: u32,
    count: usize,
    dict: &[T],
    out: &mut Vec<T>,
) -> Result<()> {
    let bad = |i: u32| {
        corrupt(format!(
            "dictionary index {i} of a dictionary of {} values",
            dict.len()
        ))
    };
    runs(data, width, count, |run| {
        match run {
            Run::Repeat(_, 0) => {}
            Run::Repeat(i, n) => {
                let v = *dict.get(i as usize).ok_or_else(|| bad(i))?;
                out.extend(std::iter::repeat_n(v, n));
            }
            Run::Packed(bytes, n) => {
                let start = out.len();
                let worst = packed(bytes, width as usize, n, dict, out);
                if worst as usize >= dict.len() && out.len() > start {
                    return Err(bad(worst));
                }
            }
        }
        Ok(())
    })
}

/// Appends to `out` the dictionary values of the `n` indices of `w` bits packed in
/// `bytes` (a run's, at least `n * w` bits); returns an index past the dictionary if
/// there is one (it appends a default value: the caller makes that an error), some index
/// within it otherwise.
fn packed<T: Plain>(bytes: &[u8], w: usize, n: usize, dict: &[T], out: &mut Vec<T>) -> u32 {
    // Whole groups of 8 values (`w` bytes each) through an unpacker of their width.
    let groups = (n / 8).min(bytes.len() / w.max(1));
    macro_rules! widths {
        ($($w:literal)*) => {
            match w {
                $($w => by_groups::<$w, T>(bytes, groups, dict, out),)*
                _ => 0,
            }
        };
    }
    let mut worst = widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
        26 27 28 29 30 31 32);
    let done = if (1..=32).contains(&w) { groups * 8 } else { 0 };
    // The rest one at a time, through 8 bytes padded with zeros.
    let mask = if w == 0 {
        0
    } else {
        u64::MAX >> (64 - w.min(64))
    };
    for k in done..n {
        let bit = k * w;
        let mut word = [0u8; 8];
        let tail = bytes.get(bit / 8..).unwrap_or_default();
        let m = tail.len().min(8);
        word[..m].copy_from_slice(&tail[..m]);
        let i = ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32;
        worst = worst.max(i);
        out.push(dict.get(i as usize).copied().unwrap_or_default());
    }
    worst
}

/// Bytes from a group's start that [`unpack8_words`] reads: the last value's 8-byte word
/// starts at most 28 bytes in (7 × 32 / 8).
const WINDOW: usize = 36;

/// [`packed`]'s first `groups` groups of 8 indices of `W` bits (`W` bytes a group).
/// Returns the largest index of a group holding one past the dictionary, if any (0, or
/// some index within it, otherwise).
fn by_groups<const W: usize, T: Plain>(
    bytes: &[u8],
    groups: usize,
    dict: &[T],
    out: &mut Vec<T>,
) -> u32 {
    let mut worst = 0u32;
    let mut put = |idx: [u32; 8], out: &mut Vec<T>| {
        let most = idx.iter().fold(0, |m, &i| m.max(i));
        if (most as usize) < dict.len() {
            // Straight into the spare capacity: through an array of 8 (`extend`, `map`),
            // the values took a round trip through the stack.
            out.reserve(8);
            let spare = &mut out.spare_capacity_mut()[..8];
            for (o, &i) in spare.iter_mut().zip(&idx) {
                o.write(dict[i as usize]);
            }
            // SAFETY: the 8 values past the length were written above.
            unsafe { out.set_len(out.len() + 8) };
        } else {
            worst = worst.max(most);
            out.extend(idx.map(|i| dict.get(i as usize).copied().unwrap_or_default()));
        }
    };
    // Groups with a whole window after their start are read a word a value; the last
    // few, byte by byte.
    let by_words = groups.min(bytes.len().saturating_sub(WINDOW - W) / W);
    let mut seq: Option<Sequence<W>> = None;
    // Dictionary values `from..to`: the groups of a sequence, copied when it ends.
    let (mut from, mut to) = (0, 0);
    for g in 0..by_words {
        let Some(Ok(w)) = bytes
            .get(g * W..g * W + WINDOW)
            .map(<&[u8; WINDOW]>::try_from)
        else {
            break;
        };
        if let Some(s) = seq
            .as_ref()
            .filter(|s| s.holds(w) && s.start + 8 <= dict.len())
        {
            if to != s.start {
                out.extend_from_slice(&dict[from..to]);
                from = s.start;
            }
            to = s.start + 8;
            seq = s.next();
            continue;
        }
        out.extend_from_slice(&dict[from..to]);
        (from, to) = (0, 0);
        let idx = unpack8_words::<W>(w);
        put(idx, out);
        seq = Sequence::after(idx[7]);
    }
    out.extend_from_slice(&dict[from..to]);
    for g in bytes[by_words * W..]
        .chunks_exact(W)
        .take(groups - by_words)
    {
        let Ok(g) = <&[u8; W]>::try_from(g) else {
            continue;
        };
        put(unpack8::<W>(g), out);
    }
    worst
}

/// The next group of indices of a run of consecutive ones (`start`, `start + 1`, …):
/// what a dictionary in first-appearance order encodes where the values seldom repeat
/// (floats). Where the 8 indices fit in 128 bits (`W` ≤ 16), such a group's bits are the
/// last group's plus 8 in each field, so one comparison tells it (and its values are the
/// dictionary's, copied in one piece) instead of 8 unpacked indices and 8 lookups.
struct Sequence<const W: usize> {
    start: usize,
    /// The group's bits: `start + j` in field `j`.
    bits: u128,
}

impl<const W: usize> Sequence<W> {
    /// 8 in each of the 8 fields.
    const STEP: u128 = {
        let (mut step, mut j) = (0u128, 0);
        while j < 8 && W * j < 128 {
            step |= 8 << (W * j);
            j += 1;
        }
        step
    };
    /// The group's 8 × `W` bits.
    const MASK: u128 = if 8 * W >= 128 {
        u128::MAX
    } else {
        (1 << (8 * W)) - 1
    };

    /// The sequence that continues a group ending in index `last`; `None` where its
    /// indices would not fit in `W` bits or its group in 128.
    fn after(last: u32) -> Option<Self> {
        let start = last as usize + 1;
        if W > 16 || start + 7 >= 1 << W {
            return None;
        }
        let bits = (0..8).fold(0u128, |b, j| b | ((start + j) as u128) << (W * j));
        Some(Self { start, bits })
    }

    /// Whether the group starting `w` holds this sequence's indices.
    fn holds(&self, w: &[u8; WINDOW]) -> bool {
        let mut b = [0u8; 16];
        b.copy_from_slice(&w[..16]);
        u128::from_le_bytes(b) & Self::MASK == self.bits
    }

    /// The group after this one.
    fn next(&self) -> Option<Self> {
        let start = self.start + 8;
        (start + 7 < 1 << W).then(|| Self {
            start,
            bits: self.bits + Self::STEP,
        })
    }
}

/// [`unpack8`] from a group's first [`WINDOW`] bytes: each value by one 8-byte load, a
/// shift and a mask (the bytes past the group are the next groups').
#[inline(always)]
fn unpack8_words<const W: usize>(g: &[u8; WINDOW]) -> [u32; 8] {
    let mask = u64::MAX >> (64 - W);
    std::array::from_fn(|j| {
        let bit = j * W;
        let mut word = [0u8; 8];
        word.copy_from_slice(&g[bit / 8..bit / 8 + 8]);
        ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32
    })
}

/// The 8 values of `W` bits packed in `W` bytes, least significant bit first.
#[inline(always)]
fn unpack8<const W: usize>(g: &[u8; W]) -> [u32; 8] {
    let mask = u64::MAX >> (64 - W);
    std::array::from_fn(|j| {
        let bit = j * W;
        let (first, last) = (bit / 8, (bit + W - 1) / 8);
        let mut v = 0u64;
        for (s, &b) in g[first..=last].iter().enumerate() {
            v |= u64::from(b) << (8 * s);
        }
        ((v >> (bit % 8)) & mask) as u32
    })
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

    /// Hand-made hybrid runs: a repeat, a bit-packed run whose last group stops short,
    /// and the errors of an index past the dictionary and of a run that ends early.
    #[test]
    fn hybrid_runs_decode_and_fail_cleanly() {
        let dict = [10.0f32, 11.0, 12.0, 13.0];
        // Repeat of index 2, 3 times: header 3 << 1, value byte 2.
        // Bit-packed, one group (header 1 << 1 | 1), 2-bit indices 0,1,2,3,3,2,1,0 of
        // which 6 are used.
        let data = [6u8, 2, 3, 0b1110_0100, 0b0001_1011];
        let mut out = Vec::new();
        gather(&data, 2, 9, &dict, &mut out).unwrap();
        assert_eq!(out, [12.0, 12.0, 12.0, 10.0, 11.0, 12.0, 13.0, 13.0, 12.0]);
        // Only the bytes of the values used must be there.
        out.clear();
        gather(&data[..4], 2, 7, &dict, &mut out).unwrap();
        assert_eq!(out.len(), 7);
        out.clear();
        let err = gather(&data, 2, 12, &dict, &mut out).unwrap_err();
        assert!(err.to_string().contains("ends 1 values early"), "{err}");
        let err = gather(&data, 2, 9, &dict[..2], &mut out).unwrap_err();
        assert!(err.to_string().contains("dictionary index"), "{err}");
        assert!(gather(&data, 40, 1, &dict, &mut out).is_err());
        // Definition levels: all ones in a repeat and in a packed run, then a zero.
        assert!(all_defined(&[20, 1], 10).unwrap());
        assert!(all_defined(&[5, 0xff, 0b0000_0111], 11).unwrap());
        assert!(!all_defined(&[5, 0xff, 0b0000_0101], 11).unwrap());
        // Every width's groups unpack as the one-at-a-time path does, by words (the
        // first groups) and byte by byte (the last few), with an index past the
        // dictionary (from width 13) reported; the padded run is read by words whole.
        for (w, pad) in (1..=32usize).flat_map(|w| [(w, 0), (w, 40)]) {
            let bytes: Vec<u8> = (0..w * 12 + pad).map(|i| (i * 37 + w) as u8).collect();
            let dict: Vec<f32> = (0..1 << w.min(12)).map(|i| i as f32).collect();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let wf = packed(&bytes, w, 92, &dict, &mut fast);
            let mut ws = 0;
            for k in 0..92 {
                let bit = k * w;
                let mut v = 0u64;
                for b in 0..w {
                    let at = bit + b;
                    v |= u64::from(bytes[at / 8] >> (at % 8) & 1) << b;
                }
                ws = ws.max(v as u32);
                slow.push(dict.get(v as usize).copied().unwrap_or_default());
            }
            assert_eq!(fast, slow, "width {w}");
            assert_eq!(
                wf as usize >= dict.len(),
                ws as usize >= dict.len(),
                "width {w}"
            );
            assert_eq!(w > 12, ws as usize >= dict.len(), "width {w}");
        }
    }

    /// Indices `idx` bit-packed `w` bits each, least significant bit first, with 40 bytes
    /// of padding after them.
    fn pack(idx: &[u32], w: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; (idx.len() * w).div_ceil(8) + 40];
        for (k, &v) in idx.iter().enumerate() {
            for b in 0..w {
                if v >> b & 1 == 1 {
                    bytes[(k * w + b) / 8] |= 1 << ((k * w + b) % 8);
                }
            }
        }
        bytes
    }

    /// Runs of consecutive indices (a dictionary in first-appearance order of values that
    /// seldom repeat), read by groups whole, decode as their lookups do: with repeats
    /// between them, from any start, up to the last index a width holds, and past the end
    /// of a dictionary (an error, not its values).
    #[test]
    fn consecutive_indices_decode_as_their_lookups() {
        for w in 1..=16usize {
            let top = (1u32 << w) - 1;
            let n = 200usize;
            let patterns: Vec<Vec<u32>> = vec![
                (0..n as u32).map(|i| i.min(top)).collect(),
                (0..n as u32)
                    .map(|i| {
                        if i % 37 == 5 {
                            1
                        } else {
                            (i + 3 - i / 37).min(top)
                        }
                    })
                    .collect(),
                (0..n as u32)
                    .map(|i| (top.saturating_sub(150) + i).min(top))
                    .collect(),
            ];
            for (p, idx) in patterns.iter().enumerate() {
                let bytes = pack(idx, w);
                let dict: Vec<f64> = (0..=top.min(1 << 12)).map(|i| f64::from(i) + 0.5).collect();
                let mut got = Vec::new();
                let worst = packed(&bytes, w, n, &dict, &mut got);
                let want: Vec<f64> = idx
                    .iter()
                    .map(|&i| dict.get(i as usize).copied().unwrap_or_default())
                    .collect();
                assert_eq!(got, want, "width {w}, pattern {p}");
                let past = idx.iter().any(|&i| i as usize >= dict.len());
                assert_eq!(worst as usize >= dict.len(), past, "width {w}, pattern {p}");
            }
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
