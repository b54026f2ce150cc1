//! Parquet and Arrow IPC files (and directories of them) as a batch source: read with a
//! column projection, record batch by record batch (decoded ahead on a helper thread),
//! never a whole file at once.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::ProjectionMask;

use super::convert::Converter;
use super::footer::footer;
use super::guard::{decoding, guarded};
use super::ipc;
use super::list_rows::list_column;
#[cfg(test)]
use super::prefetch::SPLIT_MIN_COLUMNS;
use super::prefetch::{column_groups, Joined, Prefetch};
use super::records::{converter_methods, mini_batches, Named, RecordBatches};
use super::shuffle::Shuffle;
use super::whole::{decode_whole, Reopen, WholeColumns};
use super::{ArrowFloat, Format, InputOptions, Layout};
use crate::error::{Error, Result};
use crate::matrix::{Batch, Matrix};
use crate::source::{BatchIter, BatchSource};
pub use shape::{expand_paths, parquet_rows, parquet_shape};
use shape::{first_list_length, prescan_width};

mod shape;

/// Values per decoded record batch, at most (rows × columns).
const DECODE_VALUES: usize = 4 << 20;

/// Rows per decoded record batch of a matrix-row layout (dense, list), at most.
const DECODE_ROWS: usize = 8192;

/// Entries per decoded record batch of the triplet layout, at most: a record is one
/// entry of a few bytes, and a file's 10 M entries took 0.25 s as a whole process in
/// record batches of 8192 and 0.22 s in 32 768 (medians of 20 alternating runs: the
/// per-batch hand-offs and re-chunking cost more than the memory, 0.7 MB a batch).
/// Larger batches gained nothing more. Matrix rows keep [`DECODE_ROWS`]: narrow dense
/// files gained 2–5 % from 32 768 rows, but a 100-column file of f64 then held 26 MB a
/// record batch, and the decoder keeps a few ahead.
const DECODE_ENTRIES: usize = 32_768;

/// Records per decoded record batch for `converter`'s layout: at most about
/// [`DECODE_VALUES`] values (16 MB of f32), whatever the width, since the decoder keeps a
/// few batches ahead and a 10 000-column file decoded 8192 rows at a time would hold
/// hundreds of megabytes. A triplet record is one entry, not a row of the matrix: sized
/// by the matrix width, a 20 000-column file's triplets came 209 to a record batch, and
/// handing them between threads cost more than decoding them (one pass over 10 M entries
/// took 0.97 s as a whole process, 0.43 s with 8192 a batch).
pub(super) fn decode_rows(converter: &Converter) -> usize {
    let most = if converter.records_are_entries() {
        DECODE_ENTRIES
    } else {
        DECODE_ROWS
    };
    (DECODE_VALUES / converter.values_per_record()).clamp(16, most)
}

/// Opens one file's record batches, reading only `columns`.
pub(super) fn open_file(
    path: &Path,
    columns: &[String],
    decode_rows: usize,
) -> Result<(SchemaRef, RecordBatches)> {
    let located = |e: Error| e.in_file(path);
    let file = || File::open(path).map_err(|e| located(Error::Io(e)));
    let (schema, batches): (SchemaRef, RecordBatches) = match Format::detect(path)? {
        Format::Parquet => decoding("Parquet", || {
            let meta = footer(&file()?, path)?;
            let schema = meta.schema().clone();
            let open = Reopen {
                path: path.to_path_buf(),
                meta,
                groups: None,
            };
            Ok((schema, parquet_reader(open, columns, decode_rows)?))
        }),
        Format::ArrowFile => decoding("Arrow", || {
            let mut f = file()?;
            ipc::check_file(&mut f)?;
            let r = FileReader::try_new(BufReader::new(f), None)?;
            Ok((r.schema(), Box::new(r) as RecordBatches))
        }),
        Format::ArrowStream => decoding("Arrow", || {
            let r = StreamReader::try_new(ipc::Checked::new(BufReader::new(file()?)), None)?;
            Ok((r.schema(), Box::new(r) as RecordBatches))
        }),
    }
    .map_err(located)?;
    Ok((schema, guarded(batches)))
}

/// The record batches of Parquet readers that `open` builds (over the same rows), reading
/// only `columns`, at most `decode_rows` rows each. A wide projection is decoded in
/// [`column_groups`] groups of columns, one reader and thread each, joined row-aligned.
fn parquet_reader(open: Reopen, columns: &[String], decode_rows: usize) -> Result<RecordBatches> {
    // Validate names ourselves: ProjectionMask::roots panics on a bad index.
    let schema = open.meta.schema().clone();
    let mut position = std::collections::HashMap::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        position.entry(f.name().as_str()).or_insert(i);
    }
    let mut idx = Vec::new();
    for c in columns {
        match position.get(c.as_str()) {
            Some(&i) => idx.push(i),
            None => return Err(Error::Schema(format!("missing column '{c}'"))),
        }
    }
    // File order, so that the groups joined in order keep the one reader's column order.
    idx.sort_unstable();
    idx.dedup();
    let whole = decode_whole(&open, &idx);
    let read = |idx: &[usize]| -> Result<_> {
        if whole {
            return Ok(
                Box::new(WholeColumns::new(open.clone(), idx.to_vec(), decode_rows))
                    as RecordBatches,
            );
        }
        let builder = open.builder().map_err(Error::Io)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), idx.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(decode_rows)
            .build()?;
        Ok(Box::new(reader) as RecordBatches)
    };
    let groups = column_groups(idx.len());
    if groups <= 1 {
        return read(&idx);
    }
    let size = idx.len().div_ceil(groups);
    let mut parts = Vec::with_capacity(groups);
    for chunk in idx.chunks(size) {
        parts.push(guarded(read(chunk)?));
    }
    Ok(Joined::start(parts))
}

/// A Parquet file's footer (schema, row groups and their row counts), read once.
fn parquet_metadata(path: &Path) -> Result<ArrowReaderMetadata> {
    decoding("Parquet", || {
        let file = File::open(path).map_err(Error::Io)?;
        Ok(footer(&file, path)?)
    })
    .map_err(|e| e.in_file(path))
}

/// A Parquet row group to read: its file's name, the file's metadata, its index and the
/// file row it starts at.
type RowGroup = Result<(Arc<str>, ArrowReaderMetadata, usize, u64)>;

/// Rank `rank`'s row groups of `files`: of the row groups numbered in reading order
/// across the files, those whose number is `rank` modulo `ranks`. Each file's metadata
/// is read once, when the reading reaches it.
fn row_group_share(
    files: Vec<PathBuf>,
    rank: usize,
    ranks: usize,
) -> impl Iterator<Item = RowGroup> + Send {
    let mut number = 0usize;
    files.into_iter().flat_map(move |f| -> Vec<RowGroup> {
        let name: Arc<str> = f.display().to_string().into();
        let meta = match parquet_metadata(&f) {
            Ok(m) => m,
            Err(e) => return vec![Err(e)],
        };
        let mut row0 = 0u64;
        let mut mine = Vec::new();
        for (g, rg) in meta.metadata().row_groups().iter().enumerate() {
            if number % ranks == rank {
                mine.push(Ok((name.clone(), meta.clone(), g, row0)));
            }
            number += 1;
            row0 += rg.num_rows().max(0) as u64;
        }
        mine
    })
}

/// One row group's record batches, reading only `columns`.
fn open_row_group(
    name: &Arc<str>,
    meta: ArrowReaderMetadata,
    group: usize,
    columns: &[String],
    decode_rows: usize,
) -> Result<RecordBatches> {
    let path = Path::new(&**name);
    let batches = decoding("Parquet", || {
        let open = Reopen {
            path: path.to_path_buf(),
            meta,
            groups: Some(vec![group]),
        };
        parquet_reader(open, columns, decode_rows)
    })
    .map_err(|e| e.in_file(path))?;
    Ok(guarded(batches))
}

/// Schema of a file without reading its data.
fn schema_of(path: &Path) -> Result<SchemaRef> {
    Ok(open_file(path, &[], 1)?.0)
}

/// Parquet / Arrow IPC files (and directories of them), read with a projection, record
/// batch by record batch: never a whole file at once.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::sync::Arc;
/// use arrow_array::{Float64Array, RecordBatch};
/// use streamnmf::io::{FileSource, InputOptions};
/// use streamnmf::source::BatchSource;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.parquet");
/// let batch = RecordBatch::try_from_iter([
///     ("a", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as _),
///     ("b", Arc::new(Float64Array::from(vec![0.0, 0.5, 1.0])) as _),
/// ]).unwrap();
/// let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), None).unwrap();
/// w.write(&batch).unwrap();
/// w.close().unwrap();
///
/// let mut src = FileSource::<f64>::open(&[path], InputOptions::new(2))?;
/// assert_eq!(src.width(), 2);
/// let rows: Vec<usize> = src.epoch(0)?.map(|b| b.unwrap().rows()).collect();
/// assert_eq!(rows, vec![2, 1]);
/// # Ok(()) }
/// ```
pub struct FileSource<F> {
    files: Vec<PathBuf>,
    opts: InputOptions,
    converter: Converter,
    replay: Arc<Mutex<Replay<F>>>,
    metadata: std::collections::HashMap<String, String>,
    /// A rank's share of the row groups: (rank, ranks).
    share: Option<(usize, usize)>,
}

/// Decoded batches kept for later epochs, at most this many bytes: small inputs are
/// decoded once. A 400 × 10 304 zstd Parquet file (faces-shaped) took 0.74 s a pass to
/// decode against 0.06 s for the whole pass from Arrow IPC, and its decoders' memory
/// grew the process to 1.5 GB over 10 passes.
pub const REPLAY_BYTES: usize = 256 << 20;

/// The first epoch's batches, as they are being kept or once complete.
enum Replay<F> {
    /// Keeping the batches of the epoch being read, and their size in bytes.
    Recording(Vec<Batch<F>>, usize),
    /// Every batch of an epoch: later epochs replay them.
    Ready(Arc<Vec<Batch<F>>>),
    /// Too large, shuffled, or the epoch failed: every epoch decodes.
    Off,
}

/// Bytes a batch holds (its values, and indices for CSR).
fn batch_bytes<F: crate::Float>(b: &Batch<F>) -> usize {
    let f = std::mem::size_of::<F>();
    match b.data() {
        Matrix::Dense(d) => d.len() * f,
        Matrix::Csr(c) => c.nnz() * (f + 4) + (c.nrows() + 1) * 8,
    }
}

impl<F: ArrowFloat> FileSource<F> {
    /// Opens `paths` (files or directories): resolves the layout against the first file's
    /// schema and checks every other file's schema against it, before reading any data.
    pub fn open(paths: &[PathBuf], opts: InputOptions) -> Result<Self> {
        let files = expand_paths(paths)?;
        let first = schema_of(&files[0])?;
        let width = match (&opts.layout, opts.width) {
            // Rows in a column of arrays: --width, else the first row's length.
            (Layout::Dense, w) => match list_column(&first, &opts) {
                Some(c) => Some(match w {
                    Some(w) => w,
                    None => first_list_length(&files[0], &c)?,
                }),
                None => None,
            },
            // A catalogue of item ids sets the width as it reads.
            _ if opts.item_ids.is_some() => None,
            (_, Some(w)) => Some(w),
            (layout, None) => Some(prescan_width(&files, layout)?),
        };
        let converter =
            Converter::from_options(&first, &opts, width, &files[0].display().to_string())
                .map_err(|e| e.in_file(&files[0]))?;
        for f in &files[1..] {
            let s = schema_of(f)?;
            converter
                .check_same_schema(&first, &s)
                .map_err(|e| e.in_file(f))?;
        }
        let replay = if opts.shuffle.is_some() {
            Replay::Off
        } else {
            Replay::Recording(Vec::new(), 0)
        };
        Ok(Self {
            files,
            opts,
            converter,
            replay: Arc::new(Mutex::new(replay)),
            metadata: first
                .metadata()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            share: None,
        })
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Passes an epoch's batches through, keeping copies while they fit in
/// [`REPLAY_BYTES`]; at the end of the epoch the copies become the replay.
struct Recorder<F> {
    inner: BatchIter<F>,
    replay: Arc<Mutex<Replay<F>>>,
}

impl<F: crate::Float> Iterator for Recorder<F> {
    type Item = Result<Batch<F>>;
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        let mut r = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let state = std::mem::replace(&mut *r, Replay::Off);
        *r = match (state, &item) {
            (Replay::Recording(mut kept, bytes), Some(Ok(b))) => {
                let bytes = bytes + batch_bytes(b);
                if bytes <= REPLAY_BYTES {
                    kept.push(b.clone());
                    Replay::Recording(kept, bytes)
                } else {
                    Replay::Off
                }
            }
            (Replay::Recording(kept, _), None) => Replay::Ready(Arc::new(kept)),
            (Replay::Recording(..), Some(Err(_))) => Replay::Off,
            (other, _) => other,
        };
        item
    }
}

impl<F: ArrowFloat> BatchSource<F> for FileSource<F> {
    converter_methods!();
    fn rewindable(&self) -> bool {
        true
    }
    fn same_batches_every_epoch(&self) -> bool {
        // The files in the same order, cut the same way; a shuffle is seeded per epoch.
        self.opts.shuffle.is_none()
    }
    fn name(&self) -> Option<String> {
        match self.files.as_slice() {
            [one] => Some(one.display().to_string()),
            [first, rest @ ..] => Some(format!(
                "{} (and {} more files)",
                first.display(),
                rest.len()
            )),
            [] => None,
        }
    }
    fn metadata(&self) -> std::collections::HashMap<String, String> {
        self.metadata.clone()
    }
    /// Parquet files in a dense or list layout read a share of their row groups (every
    /// row is within one row group); triplets (a row's entries may cross row groups)
    /// and Arrow IPC files do not.
    fn share(&mut self, rank: usize, ranks: usize) -> bool {
        let parquet = self
            .files
            .iter()
            .all(|f| matches!(Format::detect(f), Ok(Format::Parquet)));
        if !parquet || matches!(self.opts.layout, Layout::Triplets { .. }) {
            return false;
        }
        self.share = Some((rank, ranks.max(1)));
        true
    }
    /// Dense and list layouts of Parquet files: the rows their footers count.
    fn rows(&self) -> Option<u64> {
        if matches!(self.opts.layout, Layout::Triplets { .. }) {
            return None;
        }
        parquet_rows(&self.files)
    }
    fn will_read(&mut self, epochs: usize) {
        if epochs <= 1 {
            // Nothing to replay: keeping copies would only cost memory.
            *self.replay.lock().unwrap_or_else(|e| e.into_inner()) = Replay::Off;
        }
    }
    fn epoch(&mut self, epoch: usize) -> Result<BatchIter<F>> {
        let replay = self.replay.clone();
        {
            let mut r = replay.lock().unwrap_or_else(|e| e.into_inner());
            match &*r {
                Replay::Ready(kept) => {
                    let kept = kept.clone();
                    tracing::debug!(epoch, batches = kept.len(), "replaying decoded batches");
                    return Ok(Box::new((0..kept.len()).map(move |i| Ok(kept[i].clone()))));
                }
                // An epoch that stopped early left a partial recording: start again.
                Replay::Recording(..) => *r = Replay::Recording(Vec::new(), 0),
                Replay::Off => {}
            }
        }
        let columns = self.converter.needed_columns();
        let decode_rows = decode_rows(&self.converter);
        let files = self.files.clone();
        let batches = match self.share {
            None => {
                let inputs = files.into_iter().map(move |f| -> Named {
                    let (_, batches) = open_file(&f, &columns, decode_rows)?;
                    let name: Arc<str> = f.display().to_string().into();
                    Ok((name, Prefetch::start(batches), 0))
                });
                Box::new(mini_batches(
                    inputs,
                    self.converter.clone(),
                    self.opts.batch_rows,
                )) as BatchIter<F>
            }
            Some((rank, ranks)) => {
                let inputs = row_group_share(files, rank, ranks).map(move |g| -> Named {
                    let (name, meta, group, row0) = g?;
                    let batches = open_row_group(&name, meta, group, &columns, decode_rows)?;
                    Ok((name, Prefetch::start(batches), row0))
                });
                Box::new(mini_batches(
                    inputs,
                    self.converter.clone(),
                    self.opts.batch_rows,
                )) as BatchIter<F>
            }
        };
        Ok(match self.opts.shuffle {
            Some((pool, seed)) => Box::new(Shuffle::new(
                batches,
                pool,
                self.opts.batch_rows,
                seed,
                epoch,
            )),
            None => Box::new(Recorder {
                inner: batches,
                replay,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, RecordBatch};

    fn file(dir: &Path) -> PathBuf {
        let path = dir.join("x.parquet");
        let batch = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Float64Array::from_iter_values((0..50).map(f64::from))) as _,
            ),
            (
                "b",
                Arc::new(Float64Array::from_iter_values(
                    (0..50).map(|i| f64::from(i % 7)),
                )) as _,
            ),
        ])
        .unwrap();
        let f = File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// Decoded record batches hold about 4 M values: a dense row is its width, a sparse
    /// list row up to the matrix width, a triplet one entry whatever the width.
    #[test]
    fn decode_sizes_follow_the_layout() {
        use arrow_schema::{DataType, Field, Schema};
        let conv = super::super::convert::test_triplets(20_000);
        assert_eq!(conv.values_per_record(), 3);
        assert_eq!(decode_rows(&conv), DECODE_ENTRIES);
        let dense = Schema::new(
            (0..1000)
                .map(|j| Field::new(format!("f{j}"), DataType::Float32, false))
                .collect::<Vec<_>>(),
        );
        let conv = Converter::new(&dense, &InputOptions::new(64), None).unwrap();
        assert_eq!(decode_rows(&conv), DECODE_VALUES / 1000);
        // Narrow rows stop at DECODE_ROWS (4 M values would be 41 943 rows of 100).
        let narrow = Schema::new(
            (0..100)
                .map(|j| Field::new(format!("f{j}"), DataType::Float64, false))
                .collect::<Vec<_>>(),
        );
        let conv = Converter::new(&narrow, &InputOptions::new(64), None).unwrap();
        assert_eq!(decode_rows(&conv), DECODE_ROWS);
    }

    /// A `rows × cols` file of value `i * 1000 + j` at row i, column j (no id column),
    /// written in row groups of `group` rows.
    fn wide_file(dir: &Path, rows: usize, cols: usize, group: usize) -> PathBuf {
        let path = dir.join("wide.parquet");
        let columns: Vec<(String, arrow_array::ArrayRef)> = (0..cols)
            .map(|j| {
                let v = (0..rows).map(|i| (i * 1000 + j) as f64);
                (
                    format!("f{j}"),
                    Arc::new(Float64Array::from_iter_values(v)) as _,
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let f = File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// A projection wide enough to decode in column groups (one thread each, joined
    /// row-aligned) gives every row and value in order, in files and in row-group shares.
    #[test]
    fn wide_files_decode_in_column_groups() {
        let cols = SPLIT_MIN_COLUMNS + 72;
        let (rows, group) = (230, 100);
        let dir = tempfile::tempdir().unwrap();
        let path = wide_file(dir.path(), rows, cols, group);
        let check = |batches: &[Batch<f64>], expect_rows: &[usize]| {
            let got: Vec<usize> = batches
                .iter()
                .flat_map(|b| {
                    let x = b.view().to_dense();
                    assert_eq!(x.ncols(), cols);
                    for (i, row) in x.rows().into_iter().enumerate() {
                        let r = row[0] as usize / 1000;
                        for (j, &v) in row.iter().enumerate() {
                            assert_eq!(v, (r * 1000 + j) as f64, "row {i} column {j}");
                        }
                    }
                    x.rows()
                        .into_iter()
                        .map(|r| r[0] as usize / 1000)
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(got, expect_rows);
        };
        let mut src =
            FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(64)).unwrap();
        let all = read(&mut src, 0);
        assert_eq!(all.len(), rows.div_ceil(64));
        check(&all, &(0..rows).collect::<Vec<_>>());
        // Rank 1 of 2 reads row group 1 (rows 100..200).
        let mut share =
            FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(64)).unwrap();
        assert!(share.share(1, 2));
        check(&read(&mut share, 0), &(100..200).collect::<Vec<_>>());
    }

    fn read(src: &mut FileSource<f64>, epoch: usize) -> Vec<Batch<f64>> {
        src.epoch(epoch).unwrap().map(|b| b.unwrap()).collect()
    }

    /// Later epochs replay the first epoch's decoded batches, identical to decoding
    /// again; a single-epoch read keeps nothing; an unfinished epoch is not replayed.
    #[test]
    fn small_inputs_are_decoded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        let mut src =
            FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(8)).unwrap();
        src.will_read(3);
        let first = read(&mut src, 0);
        assert!(matches!(*src.replay.lock().unwrap(), Replay::Ready(_)));
        assert_eq!(read(&mut src, 1), first);
        assert_eq!(first.len(), 7);

        let mut once =
            FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(8)).unwrap();
        once.will_read(1);
        assert_eq!(read(&mut once, 0), first);
        assert!(matches!(*once.replay.lock().unwrap(), Replay::Off));

        let mut partial = FileSource::<f64>::open(&[path], InputOptions::new(8)).unwrap();
        let _ = partial.epoch(0).unwrap().next();
        assert!(matches!(
            *partial.replay.lock().unwrap(),
            Replay::Recording(..)
        ));
        assert_eq!(
            read(&mut partial, 1),
            first,
            "a fresh decode after a partial epoch"
        );
    }
}
