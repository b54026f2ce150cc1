//! A Parquet file read a byte range at a time: the column chunks a reader is about to
//! decode, fetched with one read and handed to the parquet crate as slices.
//!
//! The parquet crate reads a `File` page by page: for every page a duplicated file
//! descriptor, a seek and an 8 KB buffered read for its header, then another descriptor,
//! seek and read for its body, and the descriptors closed. A file of 1000 single-page,
//! dictionary-encoded columns made about 16 000 system calls to decode one row group,
//! and re-read 16 MB of it through the header buffers. [`Region`] reads the byte range
//! of the column chunks one reader decodes (consecutive in the file) at once and serves
//! pages and headers from it; anything outside the range, as a corrupt file's offsets may
//! ask for, still comes from the file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use parquet::errors::Result;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, Length};

/// Bytes read ahead at most, whatever the columns' spread: a projection that skips wide
/// columns between the ones it reads, or footer offsets that do not describe the file,
/// fall back to reading page by page.
const MOST: u64 = 64 << 20;

/// The file, and the range of it read ahead (a clone shares both).
#[derive(Clone)]
pub(super) struct Region {
    file: Arc<File>,
    /// The file's length (the parquet crate asks for it).
    len: u64,
    /// Where `bytes` starts in the file.
    start: u64,
    bytes: Bytes,
}

/// A buffer of read-ahead bytes between uses: a region's bytes go back to it once their
/// last slice is dropped, so the next region reads into memory already faulted in (on a
/// 20 000 × 1000 file, 117 MB of column chunks read through one 7 MB buffer a thread
/// instead of fresh pages each time).
#[derive(Clone, Default)]
pub(super) struct Spare(Arc<Mutex<Vec<u8>>>);

/// Read-ahead bytes on loan from a [`Spare`].
struct Lent {
    buf: Vec<u8>,
    home: Spare,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Ok(mut home) = self.home.0.lock() {
            if home.capacity() < self.buf.capacity() {
                *home = std::mem::take(&mut self.buf);
            }
        }
    }
}

impl Spare {
    /// `size` bytes of `file` from its current position, read into the spare buffer
    /// (not zeroed first); `None` when the file ends before.
    fn read(&self, file: &mut File, size: usize) -> Option<Bytes> {
        let mut buf = self
            .0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        buf.clear();
        buf.reserve(size);
        let read = file.take(size as u64).read_to_end(&mut buf);
        let lent = Lent {
            buf,
            home: self.clone(),
        };
        (read.is_ok() && lent.buf.len() == size).then(|| Bytes::from_owner(lent))
    }
}

impl Region {
    /// Reads the column chunks `columns` (leaf indices) of `group` from `file` in one
    /// range, into `spare`'s buffer, when they are close together (their range at most
    /// twice their bytes and [`MOST`]) and the footer's offsets lie within the file;
    /// otherwise reads nothing ahead.
    pub(super) fn read(
        mut file: File,
        group: &RowGroupMetaData,
        columns: &[usize],
        spare: &Spare,
    ) -> Self {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut ahead = (0, Bytes::new());
        if let Some((start, end, sum)) = span(group, columns) {
            let size = end - start;
            if end <= len && size <= MOST && size <= 2 * sum.max(1) {
                let read = file
                    .seek(SeekFrom::Start(start))
                    .ok()
                    .and_then(|_| spare.read(&mut file, size as usize));
                if let Some(bytes) = read {
                    ahead = (start, bytes);
                }
            }
        }
        Self {
            file: Arc::new(file),
            len,
            start: ahead.0,
            bytes: ahead.1,
        }
    }

    /// The read-ahead bytes from `start` for `length` bytes, when they hold all of them.
    fn slice(&self, start: u64, length: u64) -> Option<Bytes> {
        let from = start.checked_sub(self.start)?;
        let to = from.checked_add(length)?;
        (to <= self.bytes.len() as u64).then(|| self.bytes.slice(from as usize..to as usize))
    }
}

/// The file range `[start, end)` covering the column chunks `columns` of `group`, and the
/// sum of their sizes; `None` when a chunk's offsets are negative or overflow.
fn span(group: &RowGroupMetaData, columns: &[usize]) -> Option<(u64, u64, u64)> {
    let (mut start, mut end, mut sum) = (u64::MAX, 0u64, 0u64);
    for &c in columns {
        let col = group.columns().get(c)?;
        let first = col
            .dictionary_page_offset()
            .unwrap_or(col.data_page_offset());
        let first = u64::try_from(first).ok()?;
        let size = u64::try_from(col.compressed_size()).ok()?;
        start = start.min(first);
        end = end.max(first.checked_add(size)?);
        sum = sum.checked_add(size)?;
    }
    (start < end).then_some((start, end, sum))
}

impl Length for Region {
    fn len(&self) -> u64 {
        self.len
    }
}

/// A page header's reader: the read-ahead bytes from its offset to the range's end,
/// then the file from there, opened only if asked for (a header never needs more than the
/// range holds when the footer is right, but a corrupt one must get the file's answer, not
/// an early end).
pub(super) struct RegionRead {
    ahead: bytes::buf::Reader<Bytes>,
    file: Arc<File>,
    /// The file offset where `ahead` ends.
    end: u64,
    rest: Option<BufReader<File>>,
}

impl Read for RegionRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ahead.get_ref().has_remaining() || buf.is_empty() {
            return self.ahead.read(buf);
        }
        if self.rest.is_none() {
            let mut f = self.file.try_clone()?;
            f.seek(SeekFrom::Start(self.end))?;
            self.rest = Some(BufReader::new(f));
        }
        self.rest.as_mut().map_or(Ok(0), |r| r.read(buf))
    }
}

impl ChunkReader for Region {
    type T = RegionRead;

    fn get_read(&self, start: u64) -> Result<RegionRead> {
        let end = self.start + self.bytes.len() as u64;
        let ahead = self
            .slice(start, end.saturating_sub(start))
            .unwrap_or_default();
        Ok(RegionRead {
            end: start + ahead.len() as u64,
            ahead: ahead.reader(),
            file: self.file.clone(),
            rest: None,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        match self.slice(start, length as u64) {
            Some(b) => Ok(b),
            None => ChunkReader::get_bytes(&*self.file, start, length),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Array, Float32Array, RecordBatch};
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::{ArrowWriter, ProjectionMask};
    use parquet::file::properties::WriterProperties;

    /// Writes 6 float columns of 500 distinct values in row groups of 200 rows.
    fn file(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("r.parquet");
        let cols: Vec<(String, Arc<dyn Array>)> = (0..6)
            .map(|j| {
                let v = (0..500).map(|i| (i * 10 + j) as f32);
                (
                    format!("c{j}"),
                    Arc::new(Float32Array::from_iter_values(v)) as _,
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(200))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(props))
            .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// Row group 1's columns `cols` (its 200 rows), decoded from `reader`.
    fn group_1<R: ChunkReader + 'static>(
        reader: R,
        meta: &ArrowReaderMetadata,
        cols: &[usize],
    ) -> RecordBatch {
        let b = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, meta.clone());
        let mask = ProjectionMask::roots(b.parquet_schema(), cols.iter().copied());
        let mut r = b
            .with_row_groups(vec![1])
            .with_projection(mask)
            .with_batch_size(200)
            .build()
            .unwrap();
        r.next().unwrap().unwrap()
    }

    /// Columns 1..=3 of row group 1 decode the same through the read-ahead range as
    /// through the file, and the range is one read of just those chunks.
    #[test]
    fn a_range_decodes_as_the_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        let meta =
            ArrowReaderMetadata::load(&File::open(&path).unwrap(), Default::default()).unwrap();
        let cols = [1usize, 2, 3];
        let via_file = group_1(File::open(&path).unwrap(), &meta, &cols);
        let region = Region::read(
            File::open(&path).unwrap(),
            meta.metadata().row_group(1),
            &cols,
            &Spare::default(),
        );
        let sum: u64 = cols
            .iter()
            .map(|&c| meta.metadata().row_group(1).column(c).compressed_size() as u64)
            .sum();
        assert_eq!(
            region.bytes.len() as u64,
            sum,
            "one range of the three chunks"
        );
        let via_region = group_1(region, &meta, &cols);
        assert_eq!(via_region, via_file);
        let c2 = via_region
            .column(1)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(c2.value(0), 2002.0);
    }

    /// Offsets outside the range (or the file) come from the file, never from the wrong
    /// bytes: a range that holds none of them serves everything from the file.
    #[test]
    fn reads_outside_the_range_go_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        let meta =
            ArrowReaderMetadata::load(&File::open(&path).unwrap(), Default::default()).unwrap();
        let region = Region::read(
            File::open(&path).unwrap(),
            meta.metadata().row_group(0),
            &[0],
            &Spare::default(),
        );
        let whole = std::fs::read(&path).unwrap();
        let at = region.start + region.bytes.len() as u64 - 2;
        assert_eq!(
            &region.get_bytes(at, 6).unwrap()[..],
            &whole[at as usize..at as usize + 6]
        );
        let mut header = Vec::new();
        region
            .get_read(at)
            .unwrap()
            .take(6)
            .read_to_end(&mut header)
            .unwrap();
        assert_eq!(&header[..], &whole[at as usize..at as usize + 6]);
        assert_eq!(&region.get_bytes(0, 4).unwrap()[..], b"PAR1");
        assert!(region.get_bytes(whole.len() as u64 - 2, 8).is_err());
    }
}
