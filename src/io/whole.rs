//! Wide Parquet row groups decoded whole, a few columns at a time.
//!
//! The parquet crate decodes record batch by record batch, and each column reader keeps
//! the page it is in. pyarrow writes a row group's column chunk as one page (20 000
//! floats are well under its 1 MB page size), so the first record batch of a row group
//! decompresses every column's page and holds them all until the row group ends: on a
//! 20 000 × 1000 file, 230 MB of fresh buffers for 80 MB of values, faulted in page by
//! page (33 600 page faults to decode it, 0.14–0.17 s on one core).
//!
//! [`WholeColumns`] reads a row group a few columns at a time instead, each in one record
//! batch of the whole row group, and drops that reader (and its pages) before the next:
//! the next columns' pages land in the memory the last ones freed. It holds the decoded
//! row group (80 MB there) and hands it out in slices (no copy). A one-pass fit of that
//! file then takes 26 300 page faults instead of 56 800, 0.20 s instead of 0.24, and
//! 135 MB instead of 234 at its peak. That is only a gain where the decoded values are
//! about the size of the pages, so [`decode_whole`] picks it for wide files of
//! fixed-width columns whose row groups decode to at most [`WHOLE_BUDGET`] bytes, at
//! most twice their pages.
//!
//! Each reader's column chunks are read in one range ([`Region`], into a buffer reused
//! reader after reader), and flat numeric columns without nulls are decoded from their
//! pages by [`pages`] rather than by the record reader: on that file 26 500 page faults
//! instead of 33 400, and 7–12 % less time for a one-pass fit.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_buffer::Buffer;
use arrow_schema::{ArrowError, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::RowGroupMetaData;

use super::pages;
use super::prefetch::SPLIT_MIN_COLUMNS;
use super::region::{Region, Spare};

/// Columns a reader decodes at once. One reader per column would hold one page at a
/// time, but building a reader walks the file's whole schema: on 5000 columns, a reader
/// per column took twice the time of the streaming decode. 64 columns' pages are a few
/// megabytes, reused by the next 64.
const COLUMNS_PER_READER: usize = 64;

/// Decoded bytes of a row group at most, to decode it whole (one is in memory at a time,
/// two only while a consumer keeps slices past [`HANDOVER_WAIT`]).
pub(super) const WHOLE_BUDGET: usize = 256 << 20;

/// How long the decoder waits, at most, for the last row group's slices to be dropped
/// before it decodes the next one (see [`WholeColumns`]).
const HANDOVER_WAIT: Duration = Duration::from_millis(250);

/// How to open a Parquet file again: its path, its footer, and the row groups to read
/// (all when `None`).
#[derive(Clone)]
pub(super) struct Reopen {
    pub(super) path: PathBuf,
    pub(super) meta: ArrowReaderMetadata,
    pub(super) groups: Option<Vec<usize>>,
}

impl Reopen {
    /// A reader builder over the row groups to read.
    pub(super) fn builder(&self) -> std::io::Result<ParquetRecordBatchReaderBuilder<File>> {
        let b = ParquetRecordBatchReaderBuilder::new_with_metadata(
            File::open(&self.path)?,
            self.meta.clone(),
        );
        Ok(match &self.groups {
            Some(g) => b.with_row_groups(g.clone()),
            None => b,
        })
    }

    fn row_groups(&self) -> Vec<usize> {
        match &self.groups {
            Some(g) => g.clone(),
            None => (0..self.meta.metadata().num_row_groups()).collect(),
        }
    }
}

/// Whether the root columns `idx` (sorted) of `open`'s row groups are decoded whole: a
/// wide projection of fixed-width columns, each row group within [`WHOLE_BUDGET`] and at
/// most twice its pages' uncompressed bytes (values that compress to little, such as
/// runs of zeros, are cheaper to hold as pages).
pub(super) fn decode_whole(open: &Reopen, idx: &[usize]) -> bool {
    if idx.len() < SPLIT_MIN_COLUMNS {
        return false;
    }
    let fields = open.meta.schema().fields();
    let width: Option<usize> = idx
        .iter()
        .map(|&i| fields.get(i).and_then(|f| f.data_type().primitive_width()))
        .sum();
    let Some(width) = width else {
        return false;
    };
    let meta = open.meta.metadata();
    let descr = meta.file_metadata().schema_descr();
    open.row_groups().iter().all(|&g| {
        let Some(rg) = meta.row_groups().get(g) else {
            return false;
        };
        let decoded = (rg.num_rows().max(0) as usize).saturating_mul(width);
        let pages: i64 = (0..rg.num_columns().min(descr.num_columns()))
            .filter(|&c| idx.binary_search(&descr.get_column_root_idx(c)).is_ok())
            .map(|c| rg.column(c).uncompressed_size().max(0))
            .sum();
        decoded <= WHOLE_BUDGET && decoded <= 2 * pages.max(0) as usize
    })
}

/// Record batches of `rows` rows (fewer at a row group's end) of the root columns `idx`,
/// each row group decoded whole, a few columns at a time.
///
/// The slices handed out share the row group's buffers, so a row group lives until its
/// last slice is dropped. Decoding the next one while the reader still converts those
/// held two row groups at once: on a file of 32 768-row row groups of 500 columns, 130 MB
/// of the fit's 269 MB peak. So before decoding the next row group the iterator waits
/// (up to [`HANDOVER_WAIT`], in case its consumer keeps slices) until the last one's
/// slices are gone. The pipeline's queues hold several mini-batches, which cover that
/// decode.
pub(super) struct WholeColumns {
    open: Reopen,
    idx: Vec<usize>,
    rows: usize,
    groups: VecDeque<usize>,
    current: Option<(RecordBatch, usize)>,
    /// A values buffer of the last row group handed out: its slices are alive while
    /// this is shared.
    last: Option<Buffer>,
    wait: Duration,
    /// The read-ahead buffer of the column chunks, reused reader after reader.
    spare: Spare,
}

impl WholeColumns {
    pub(super) fn new(open: Reopen, idx: Vec<usize>, rows: usize) -> Self {
        let groups = open.row_groups().into();
        Self {
            open,
            idx,
            rows: rows.max(1),
            groups,
            current: None,
            last: None,
            wait: HANDOVER_WAIT,
            spare: Spare::default(),
        }
    }

    /// Waits (at most `self.wait`) until no slice of the last row group is alive.
    fn await_handover(&mut self) {
        let Some(last) = self.last.take() else {
            return;
        };
        let start = Instant::now();
        while last.strong_count() > 1 && start.elapsed() < self.wait {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Row group `g`'s columns, [`COLUMNS_PER_READER`] at a time.
    fn decode(&self, g: usize) -> Result<RecordBatch, ArrowError> {
        let mut fields = Vec::with_capacity(self.idx.len());
        let mut columns = Vec::with_capacity(self.idx.len());
        let file = File::open(&self.open.path)?;
        let meta = self.open.meta.metadata();
        let descr = meta.file_metadata().schema_descr();
        let group = meta
            .row_groups()
            .get(g)
            .ok_or_else(|| ArrowError::ComputeError(format!("no row group {g}")))?;
        // The leaf columns (column chunks) of each reader's root columns, in one walk.
        let mut leaves = vec![Vec::new(); self.idx.len().div_ceil(COLUMNS_PER_READER)];
        for c in 0..group.num_columns().min(descr.num_columns()) {
            if let Ok(at) = self.idx.binary_search(&descr.get_column_root_idx(c)) {
                leaves[at / COLUMNS_PER_READER].push(c);
            }
        }
        for (chunk, leaves) in self.idx.chunks(COLUMNS_PER_READER).zip(&leaves) {
            // The file opened once for all readers, the reader's column chunks read in
            // one range.
            let region = Region::read(file.try_clone()?, group, leaves, &self.spare);
            if let Some(decoded) = self.decode_pages(&region, group, chunk, leaves)? {
                for (&i, column) in chunk.iter().zip(decoded) {
                    fields.push(self.open.meta.schema().fields()[i].clone());
                    columns.push(column);
                }
                continue;
            }
            // Row group `g` alone (not the share `Reopen::builder` selects).
            let b =
                ParquetRecordBatchReaderBuilder::new_with_metadata(region, self.open.meta.clone());
            let n = b.metadata().row_group(g).num_rows().max(0) as usize;
            let mask = ProjectionMask::roots(b.parquet_schema(), chunk.iter().copied());
            let mut reader = b
                .with_row_groups(vec![g])
                .with_projection(mask)
                .with_batch_size(n.max(1))
                .build()?;
            let rb = match reader.next() {
                Some(rb) => rb?,
                None => RecordBatch::new_empty(reader.schema()),
            };
            if reader.next().is_some() || rb.num_columns() != chunk.len() || rb.num_rows() != n {
                return Err(ArrowError::ComputeError(format!(
                    "row group {g}: columns {}..={} did not decode as {n} rows",
                    chunk[0],
                    chunk[chunk.len() - 1]
                )));
            }
            fields.extend(rb.schema().fields().iter().cloned());
            columns.extend(rb.columns().iter().cloned());
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }

    /// The root columns `roots` of `group`, with leaf columns `leaves`, decoded from their
    /// pages by [`pages::decode_column`] when it takes each of them (flat numeric columns
    /// of no nulls); `None` when it leaves one to the record reader.
    fn decode_pages(
        &self,
        region: &Region,
        group: &RowGroupMetaData,
        roots: &[usize],
        leaves: &[usize],
    ) -> Result<Option<Vec<ArrayRef>>, ArrowError> {
        let meta = self.open.meta.metadata();
        let descr = meta.file_metadata().schema_descr();
        let fields = self.open.meta.schema().fields();
        if roots.len() != leaves.len() {
            return Ok(None);
        }
        let rows = group.num_rows().max(0) as usize;
        let region = Arc::new(region.clone());
        let mut out = Vec::with_capacity(roots.len());
        for (&root, &leaf) in roots.iter().zip(leaves) {
            let (Some(field), Some(chunk)) = (fields.get(root), group.columns().get(leaf)) else {
                return Ok(None);
            };
            let column = descr.column(leaf);
            let array =
                pages::decode_column(region.clone(), &column, field.data_type(), chunk, rows)?;
            match array {
                Some(a) => out.push(a),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }
}

impl Iterator for WholeColumns {
    type Item = Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((rb, at)) = &mut self.current {
                if *at < rb.num_rows() {
                    let n = self.rows.min(rb.num_rows() - *at);
                    let slice = rb.slice(*at, n);
                    *at += n;
                    return Some(Ok(slice));
                }
                self.current = None;
            }
            let g = self.groups.pop_front()?;
            self.await_handover();
            match self.decode(g) {
                Ok(rb) => {
                    self.last = (rb.num_columns() > 0)
                        .then(|| rb.column(0).to_data().buffers().first().cloned())
                        .flatten();
                    self.current = Some((rb, 0));
                }
                Err(e) => {
                    self.groups.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float32Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// Writes `columns` (name, values) in row groups of `group` rows; returns its reopen.
    fn write(dir: &std::path::Path, columns: Vec<(String, ArrayRef)>, group: usize) -> Reopen {
        let path = dir.join("x.parquet");
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props))
            .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta =
            ArrowReaderMetadata::load(&File::open(&path).unwrap(), Default::default()).unwrap();
        Reopen {
            path,
            meta,
            groups: None,
        }
    }

    /// `cols` float columns of distinct values `i * 1000 + j` (row i, column j).
    fn distinct(rows: usize, cols: usize) -> Vec<(String, ArrayRef)> {
        (0..cols)
            .map(|j| {
                let v = (0..rows).map(|i| (i * 1000 + j) as f32);
                (
                    format!("f{j}"),
                    Arc::new(Float32Array::from_iter_values(v)) as ArrayRef,
                )
            })
            .collect()
    }

    /// Row groups decoded whole give the streaming reader's schema, rows and values, in
    /// slices of at most the batch size that never span two row groups.
    #[test]
    fn whole_row_groups_match_the_streaming_reader() {
        let dir = tempfile::tempdir().unwrap();
        let cols = SPLIT_MIN_COLUMNS + 2;
        let open = write(dir.path(), distinct(230, cols), 100);
        // Every other column, in file order.
        let idx: Vec<usize> = (0..cols).step_by(2).collect();
        let b = open.builder().unwrap();
        let mask = ProjectionMask::roots(b.parquet_schema(), idx.iter().copied());
        let streamed: Vec<RecordBatch> = b
            .with_projection(mask)
            .with_batch_size(64)
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let whole: Vec<RecordBatch> = WholeColumns::new(open.clone(), idx.clone(), 64)
            .map(|b| b.unwrap())
            .collect();
        let sizes: Vec<usize> = whole.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [64, 36, 64, 36, 30]);
        assert_eq!(whole[0].schema(), streamed[0].schema());
        assert_eq!(values(&whole), values(&streamed));
        assert_eq!(values(&whole).len(), 230 * idx.len());
        // A share of the row groups reads only those.
        let share = Reopen {
            groups: Some(vec![2]),
            ..open
        };
        let rows: Vec<usize> = WholeColumns::new(share, idx, 64)
            .map(|b| b.unwrap().num_rows())
            .collect();
        assert_eq!(rows, [30]);
    }

    /// Columns decoded from their pages and columns left to the record reader (a reader's
    /// worth for one null, another for an unsigned column) come out as the streaming
    /// reader's, nulls, doubles and integers included.
    #[test]
    fn decoded_pages_and_record_reader_columns_agree() {
        use arrow_array::{Float64Array, Int32Array, Int64Array};
        let dir = tempfile::tempdir().unwrap();
        let cols = 2 * COLUMNS_PER_READER + 3;
        let mut columns = distinct(300, cols);
        let mut with_null: Vec<Option<f32>> = (0..300).map(|i| Some(i as f32)).collect();
        with_null[7] = None;
        columns[5].1 = Arc::new(Float32Array::from(with_null));
        columns[cols - 1].1 = Arc::new(Float64Array::from_iter_values(
            (0..300).map(|i| f64::from(i) / 3.0),
        ));
        columns[cols - 2].1 = Arc::new(Int64Array::from_iter_values(0..300));
        columns[cols - 3].1 = Arc::new(Int32Array::from_iter_values((0..300).map(|i| i % 7)));
        // Stored as INT32 but read as UInt32: left to the record reader.
        columns[70].1 = Arc::new(arrow_array::UInt32Array::from_iter_values(0..300));
        let open = write(dir.path(), columns, 100);
        let idx: Vec<usize> = (0..cols).collect();
        let b = open.builder().unwrap();
        let streamed: Vec<RecordBatch> = b
            .with_batch_size(100)
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let whole: Vec<RecordBatch> = WholeColumns::new(open, idx, 100)
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole, streamed);
        assert_eq!(whole[0].column(5).null_count(), 1);
    }

    /// The next row group is decoded only once the last one's slices are dropped, or
    /// after the wait when its consumer keeps them.
    #[test]
    fn the_next_row_group_waits_for_the_last_ones_slices() {
        let dir = tempfile::tempdir().unwrap();
        let open = write(dir.path(), distinct(300, SPLIT_MIN_COLUMNS), 100);
        let mut it = WholeColumns::new(open, (0..SPLIT_MIN_COLUMNS).collect(), 100);
        it.wait = Duration::from_millis(300);
        let kept = it.next().unwrap().unwrap();
        let start = Instant::now();
        let second = it.next().unwrap().unwrap();
        assert!(start.elapsed() >= it.wait, "{:?}", start.elapsed());
        assert_eq!(kept.num_rows() + second.num_rows(), 200);
        drop((kept, second));
        it.wait = Duration::from_secs(20);
        let start = Instant::now();
        let third = it.next().unwrap().unwrap();
        assert!(start.elapsed() < it.wait / 2, "{:?}", start.elapsed());
        assert_eq!(third.num_rows(), 100);
        assert!(it.next().is_none());
    }

    /// Every value of the batches, column by column within each batch, in order.
    fn values(batches: &[RecordBatch]) -> Vec<f32> {
        let mut out = Vec::new();
        for b in batches {
            for r in 0..b.num_rows() {
                for c in b.columns() {
                    let a = c.as_any().downcast_ref::<Float32Array>().unwrap();
                    out.push(a.value(r));
                }
            }
        }
        out
    }

    /// The choice: wide projections of fixed-width columns whose values do not compress
    /// to much less than their pages.
    #[test]
    fn only_wide_fixed_width_row_groups_within_budget_decode_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cols = SPLIT_MIN_COLUMNS;
        let open = write(dir.path(), distinct(200, cols), 100);
        let all: Vec<usize> = (0..cols).collect();
        assert!(decode_whole(&open, &all));
        // Too narrow.
        assert!(!decode_whole(&open, &all[1..]));
        // Values that compress to little (zeros: one dictionary entry and a run) are
        // cheaper to hold as pages.
        let zeros = (0..cols)
            .map(|j| {
                let a = Float32Array::from_iter_values(std::iter::repeat_n(0.0, 5000));
                (format!("f{j}"), Arc::new(a) as ArrayRef)
            })
            .collect();
        let dir2 = tempfile::tempdir().unwrap();
        assert!(!decode_whole(&write(dir2.path(), zeros, 5000), &all));
        // A column of no fixed width.
        let mut mixed = distinct(200, cols);
        mixed[3].1 = Arc::new(StringArray::from_iter_values(
            (0..200).map(|i| i.to_string()),
        ));
        let dir3 = tempfile::tempdir().unwrap();
        assert!(!decode_whole(&write(dir3.path(), mixed, 100), &all));
    }

    /// A damaged page is an error of the iterator, which then ends.
    #[test]
    fn a_damaged_column_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let open = write(dir.path(), distinct(100, SPLIT_MIN_COLUMNS), 100);
        // The first column chunk's page header follows the 4-byte magic.
        let mut bytes = std::fs::read(&open.path).unwrap();
        bytes[4..40].fill(0xff);
        std::fs::write(&open.path, &bytes).unwrap();
        let mut it = WholeColumns::new(open, (0..SPLIT_MIN_COLUMNS).collect(), 64);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
