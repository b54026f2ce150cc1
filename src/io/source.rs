//! Batch sources: files (Parquet, Arrow IPC), a stream (Arrow IPC stream on any reader,
//! standard input included) and memory. Each epoch yields mini-batches of exactly
//! `batch_rows` rows (the last one may be shorter), re-chunked across record batches and
//! files, validated, with the global index of their first row.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_schema::{ArrowError, SchemaRef};
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::convert::{Chunk, Converter};
use super::prefetch::Prefetch;
use super::{Format, InputOptions, Layout};
use crate::batch::{Batch, CsrMatrix, MatRef, Matrix, RowIds};
use crate::error::{Error, Result};
use crate::float::Float;

/// The batches of one epoch.
pub type BatchIter<F> = Box<dyn Iterator<Item = Result<Batch<F>>> + Send>;

/// Something the pipeline reads mini-batches from, once per epoch.
///
/// ```
/// use ndarray::Array2;
/// use streamnmf::io::{BatchSource, MemorySource};
/// let mut src = MemorySource::new(Array2::<f64>::ones((10, 3)), 4);
/// let sizes: Vec<usize> = src.epoch(0).unwrap().map(|b| b.unwrap().rows()).collect();
/// assert_eq!(sizes, vec![4, 4, 2]);
/// ```
pub trait BatchSource<F>: Send {
    /// Number of features p.
    fn width(&self) -> usize;
    /// Whether the source can be read more than once (files: yes; streams: no).
    fn rewindable(&self) -> bool;
    /// Feature names, one per column.
    fn feature_names(&self) -> Vec<String> {
        (0..self.width()).map(|j| j.to_string()).collect()
    }
    /// The batches of epoch `epoch` (0-based). Iterators own their state.
    fn epoch(&mut self, epoch: usize) -> Result<BatchIter<F>>;
}

/// An in-memory matrix served in batches (dense or CSR).
pub struct MemorySource<F> {
    data: std::sync::Arc<Matrix<F>>,
    batch_rows: usize,
}

impl<F: Float> MemorySource<F> {
    /// Serves the rows of a dense matrix in batches of `batch_rows`.
    pub fn new(x: Array2<F>, batch_rows: usize) -> Self {
        Self::from_matrix(Matrix::Dense(x), batch_rows)
    }
    /// Serves the rows of a dense or CSR matrix in batches of `batch_rows`.
    pub fn from_matrix(x: Matrix<F>, batch_rows: usize) -> Self {
        Self {
            data: std::sync::Arc::new(x),
            batch_rows: batch_rows.max(1),
        }
    }
}

impl<F: Float> BatchSource<F> for MemorySource<F> {
    fn width(&self) -> usize {
        self.data.view().ncols()
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let data = self.data.clone();
        let b = self.batch_rows;
        let n = data.view().nrows();
        Ok(Box::new((0..n).step_by(b).map(move |start| {
            let end = (start + b).min(n);
            let view = data.view().slice_rows(start..end);
            let m = match view {
                MatRef::Dense(d) => Matrix::Dense(d.to_owned()),
                MatRef::Csr(c) => Matrix::Csr(c.to_owned()),
            };
            Ok(Batch {
                data: m,
                ids: None,
                first_row: start as u64,
            })
        })))
    }
}

pub(crate) type RecordBatches =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// Opens one file's record batches, reading only `columns`.
fn open_file(
    path: &Path,
    columns: &[String],
    decode_rows: usize,
) -> Result<(SchemaRef, RecordBatches)> {
    let located = |e: Error| e.in_file(path);
    let file = || File::open(path).map_err(|e| located(Error::Io(e)));
    match Format::detect(path)? {
        Format::Parquet => {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file()?).map_err(|e| located(e.into()))?;
            let schema = builder.schema().clone();
            // Validate names ourselves: ProjectionMask::roots panics on a bad index.
            let mut idx = Vec::new();
            for c in columns {
                match schema.index_of(c) {
                    Ok(i) => idx.push(i),
                    Err(_) => return Err(located(Error::Schema(format!("missing column '{c}'")))),
                }
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(decode_rows)
                .build()
                .map_err(|e| located(e.into()))?;
            Ok((schema, Box::new(reader)))
        }
        Format::ArrowFile => {
            let r = FileReader::try_new(BufReader::new(file()?), None)
                .map_err(|e| located(e.into()))?;
            Ok((r.schema(), Box::new(r)))
        }
        Format::ArrowStream => {
            let r = StreamReader::try_new(BufReader::new(file()?), None)
                .map_err(|e| located(e.into()))?;
            Ok((r.schema(), Box::new(r)))
        }
    }
}

/// Schema of a file without reading its data.
fn schema_of(path: &Path) -> Result<SchemaRef> {
    Ok(open_file(path, &[], 1)?.0)
}

/// Expands directories into their `.parquet`, `.arrow`, `.arrows`, `.ipc` and `.feather`
/// files (sorted by name) and checks that every path exists.
pub(crate) fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
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

/// Parquet / Arrow IPC files (and directories of them), read with a projection, record
/// batch by record batch: never a whole file at once.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::sync::Arc;
/// use arrow_array::{Float64Array, RecordBatch};
/// use streamnmf::io::{BatchSource, FileSource, InputOptions};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("x.parquet");
/// let batch = RecordBatch::try_from_iter([
///     ("a", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as _),
///     ("b", Arc::new(Float64Array::from(vec![0.0, 0.5, 1.0])) as _),
/// ])?;
/// let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), None)?;
/// w.write(&batch)?;
/// w.close()?;
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
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: Float> FileSource<F> {
    /// Opens `paths` (files or directories): resolves the layout against the first file's
    /// schema and checks every other file's schema against it, before reading any data.
    pub fn open(paths: &[PathBuf], opts: InputOptions) -> Result<Self> {
        let files = expand_paths(paths)?;
        let first = schema_of(&files[0])?;
        let width = match (&opts.layout, opts.width) {
            (Layout::Dense, _) => None,
            (_, Some(w)) => Some(w),
            (layout, None) => Some(prescan_width(&files, layout)?),
        };
        let converter = Converter::new(&first, &opts, width).map_err(|e| e.in_file(&files[0]))?;
        for f in &files[1..] {
            let s = schema_of(f)?;
            converter
                .check_same_schema(&first, &s)
                .map_err(|e| e.in_file(f))?;
        }
        Ok(Self {
            files,
            opts,
            converter,
            _f: std::marker::PhantomData,
        })
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Width of sparse inputs: one more than the largest column index in any file.
fn prescan_width(files: &[PathBuf], layout: &Layout) -> Result<usize> {
    use arrow_array::cast::AsArray;
    let mut max: i64 = -1;
    for f in files {
        let col = match layout {
            Layout::Triplets { col, .. } => col.clone(),
            Layout::SparseList { column } => column.clone(),
            Layout::Dense => unreachable!("dense inputs have a schema width"),
        };
        let (_, batches) = open_file(f, std::slice::from_ref(&col), 65536)?;
        for rb in batches {
            let rb = rb.map_err(|e| Error::from(e).in_file(f))?;
            let a = rb.column_by_name(&col).expect("projected").clone();
            let a = match layout {
                Layout::SparseList { .. } => match a.data_type() {
                    arrow_schema::DataType::List(_) => {
                        a.as_list::<i32>().values().as_struct().column(0).clone()
                    }
                    arrow_schema::DataType::LargeList(_) => {
                        a.as_list::<i64>().values().as_struct().column(0).clone()
                    }
                    _ => {
                        return Err(
                            Error::Schema(format!("column '{col}' is not a list")).in_file(f)
                        )
                    }
                },
                _ => a,
            };
            let ints = arrow_cast::cast(&a, &arrow_schema::DataType::Int64)
                .map_err(|e| Error::from(e).in_file(f))?;
            let ints = ints.as_primitive::<arrow_array::types::Int64Type>();
            if let Some(m) = ints.iter().flatten().max() {
                max = max.max(m);
            }
        }
    }
    Ok((max + 1).max(0) as usize)
}

impl<F: Float> BatchSource<F> for FileSource<F> {
    fn width(&self) -> usize {
        self.converter.names().len()
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn feature_names(&self) -> Vec<String> {
        self.converter.names().to_vec()
    }
    fn epoch(&mut self, epoch: usize) -> Result<BatchIter<F>> {
        let columns = self.converter.needed_columns();
        let decode_rows = self.opts.batch_rows.clamp(1, 8192);
        let files = self.files.clone();
        let mut opened = files.into_iter().map(move |f| {
            let (_, batches) = open_file(&f, &columns, decode_rows)?;
            Ok((f, Prefetch::start(batches)))
        });
        let mut converter = self.converter.clone();
        let mut current: Option<(PathBuf, RecordBatches, u64)> = None;
        let records = std::iter::from_fn(move || loop {
            if current.is_none() {
                match opened.next()? {
                    Ok((f, b)) => current = Some((f, b, 0)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, batches, row0) = current.as_mut().expect("opened above");
            match batches.next() {
                Some(Ok(rb)) => {
                    let at = *row0;
                    *row0 += rb.num_rows() as u64;
                    match converter.convert::<F>(&rb, at) {
                        Ok(Some(c)) => return Some(Ok(c)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e.in_file(path.as_path()))),
                    }
                }
                Some(Err(e)) => return Some(Err(Error::from(e).in_file(path.as_path()))),
                None => {
                    let (path, _, row0) = current.take().expect("opened above");
                    match converter.finish::<F>(row0) {
                        Ok(Some(c)) => return Some(Ok(c)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e.in_file(path))),
                    }
                }
            }
        });
        let batches = Rechunk::new(records, self.opts.batch_rows);
        Ok(match self.opts.shuffle {
            Some((pool, seed)) => Box::new(Shuffle::new(
                batches,
                pool,
                self.opts.batch_rows,
                seed,
                epoch,
            )),
            None => Box::new(batches),
        })
    }
}

/// Shuffles rows within a pool of about `pool` rows: fills the pool with batches, permutes
/// its rows with a generator seeded by `(seed, epoch)`, and hands them out in batches.
struct Shuffle<I, F> {
    inner: I,
    pool_rows: usize,
    batch_rows: usize,
    rng: rand_chacha::ChaCha8Rng,
    out: std::collections::VecDeque<Batch<F>>,
    next_row: u64,
    done: bool,
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: Float> Shuffle<I, F> {
    fn new(inner: I, pool_rows: usize, batch_rows: usize, seed: u64, epoch: usize) -> Self {
        use rand::SeedableRng;
        let stream = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            inner,
            pool_rows: pool_rows.max(batch_rows),
            batch_rows,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(stream),
            out: std::collections::VecDeque::new(),
            next_row: 0,
            done: false,
        }
    }

    /// Fills and shuffles the next pool; `Err` stops the epoch.
    fn refill(&mut self) -> Result<()> {
        use rand::seq::SliceRandom;
        let mut pool = Vec::new();
        let mut rows = 0;
        while rows < self.pool_rows {
            match self.inner.next() {
                Some(b) => {
                    let b = b?;
                    rows += b.rows();
                    pool.push(b);
                }
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        let mut order: Vec<(usize, usize)> = pool
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.rows()).map(move |r| (b, r)))
            .collect();
        order.shuffle(&mut self.rng);
        for chunk in order.chunks(self.batch_rows) {
            let (data, ids) = crate::batch::gather_rows(&pool, chunk);
            self.out.push_back(Batch {
                data,
                ids,
                first_row: self.next_row,
            });
            self.next_row += chunk.len() as u64;
        }
        Ok(())
    }
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: Float> Iterator for Shuffle<I, F> {
    type Item = Result<Batch<F>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.out.is_empty() && !self.done {
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.out.pop_front().map(Ok)
    }
}

/// An Arrow IPC stream (standard input, a pipe, a socket): read once, as it arrives.
pub struct StreamSource<F> {
    reader: Option<StreamReader<BufReader<Box<dyn Read + Send>>>>,
    converter: Converter,
    opts: InputOptions,
    name: String,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: Float> StreamSource<F> {
    /// Reads the stream's schema from `input` and resolves the layout against it. `name`
    /// labels errors (e.g. `"<stdin>"`).
    pub fn new(input: Box<dyn Read + Send>, name: &str, opts: InputOptions) -> Result<Self> {
        let reader = StreamReader::try_new(BufReader::new(input), None)
            .map_err(|e| Error::from(e).in_file(name))?;
        let converter =
            Converter::new(&reader.schema(), &opts, opts.width).map_err(|e| e.in_file(name))?;
        Ok(Self {
            reader: Some(reader),
            converter,
            opts,
            name: name.to_string(),
            _f: std::marker::PhantomData,
        })
    }
}

impl<F: Float> BatchSource<F> for StreamSource<F> {
    fn width(&self) -> usize {
        self.converter.names().len()
    }
    fn rewindable(&self) -> bool {
        false
    }
    fn feature_names(&self) -> Vec<String> {
        self.converter.names().to_vec()
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let mut reader = self.reader.take().ok_or_else(|| {
            Error::Schema("a stream can be read only once: use one epoch".into())
                .in_file(&self.name)
        })?;
        let mut converter = self.converter.clone();
        let name = self.name.clone();
        let mut row0 = 0u64;
        let mut finished = false;
        let records = std::iter::from_fn(move || loop {
            if finished {
                return None;
            }
            match reader.next() {
                Some(Ok(rb)) => {
                    let at = row0;
                    row0 += rb.num_rows() as u64;
                    match converter.convert::<F>(&rb, at) {
                        Ok(Some(c)) => return Some(Ok(c)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e.in_file(&name))),
                    }
                }
                Some(Err(e)) => return Some(Err(Error::from(e).in_file(&name))),
                None => {
                    finished = true;
                    return converter
                        .finish::<F>(row0)
                        .map_err(|e| e.in_file(&name))
                        .transpose();
                }
            }
        });
        Ok(Box::new(Rechunk::new(records, self.opts.batch_rows)))
    }
}

/// Re-chunks converted chunks into batches of exactly `rows` rows (the last shorter).
struct Rechunk<I, F> {
    chunks: I,
    rows: usize,
    buf: Option<Buffer<F>>,
    next_row: u64,
    done: bool,
}

enum Buffer<F> {
    Dense {
        p: usize,
        vals: Vec<F>,
        ids: Option<RowIds>,
    },
    Csr {
        p: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        vals: Vec<F>,
        ids: Option<RowIds>,
    },
}

fn extend_ids(into: &mut Option<RowIds>, from: Option<RowIds>) {
    match (into.as_mut(), from) {
        (Some(RowIds::Int64(a)), Some(RowIds::Int64(b))) => a.extend(b),
        (Some(RowIds::Utf8(a)), Some(RowIds::Utf8(b))) => a.extend(b),
        (Some(RowIds::Utf8(a)), Some(RowIds::Int64(b))) => {
            a.extend(b.iter().map(|v| v.to_string()))
        }
        (Some(RowIds::Int64(_)), Some(RowIds::Utf8(b))) => {
            // Mixed id types across files: keep them all as strings.
            let Some(RowIds::Int64(a)) = into.take() else {
                unreachable!()
            };
            let mut s: Vec<String> = a.iter().map(|v| v.to_string()).collect();
            s.extend(b);
            *into = Some(RowIds::Utf8(s));
        }
        (None, from) => *into = from,
        (Some(_), None) => {}
    }
}

fn split_ids(ids: &mut Option<RowIds>, n: usize) -> Option<RowIds> {
    match ids {
        Some(RowIds::Int64(v)) => {
            let rest = v.split_off(n);
            Some(RowIds::Int64(std::mem::replace(v, rest)))
        }
        Some(RowIds::Utf8(v)) => {
            let rest = v.split_off(n);
            Some(RowIds::Utf8(std::mem::replace(v, rest)))
        }
        None => None,
    }
}

impl<F: Float> Buffer<F> {
    fn from_chunk(c: Chunk<F>) -> Self {
        match c.data {
            Matrix::Dense(x) => {
                let p = x.ncols();
                let vals = x.as_standard_layout().iter().cloned().collect();
                Buffer::Dense {
                    p,
                    vals,
                    ids: c.ids,
                }
            }
            Matrix::Csr(m) => {
                let v = m.view();
                let mut indptr = vec![0];
                let (mut indices, mut vals) =
                    (Vec::with_capacity(v.nnz()), Vec::with_capacity(v.nnz()));
                for i in 0..v.nrows() {
                    let (c, x) = v.row(i);
                    indices.extend_from_slice(c);
                    vals.extend_from_slice(x);
                    indptr.push(vals.len());
                }
                Buffer::Csr {
                    p: m.ncols(),
                    indptr,
                    indices,
                    vals,
                    ids: c.ids,
                }
            }
        }
    }
    fn rows(&self) -> usize {
        match self {
            Buffer::Dense { p, vals, .. } => vals.len() / p,
            Buffer::Csr { indptr, .. } => indptr.len() - 1,
        }
    }
    fn push(&mut self, c: Chunk<F>) {
        match (self, c.data) {
            (Buffer::Dense { vals, ids, .. }, Matrix::Dense(x)) => {
                vals.extend(x.as_standard_layout().iter().cloned());
                extend_ids(ids, c.ids);
            }
            (
                Buffer::Csr {
                    indptr,
                    indices,
                    vals,
                    ids,
                    ..
                },
                Matrix::Csr(m),
            ) => {
                let v = m.view();
                for i in 0..v.nrows() {
                    let (c, x) = v.row(i);
                    indices.extend_from_slice(c);
                    vals.extend_from_slice(x);
                    indptr.push(vals.len());
                }
                extend_ids(ids, c.ids);
            }
            _ => unreachable!("one layout per source"),
        }
    }
    /// Takes the first `n` rows out as a matrix.
    fn take(&mut self, n: usize) -> (Matrix<F>, Option<RowIds>) {
        match self {
            Buffer::Dense { p, vals, ids } => {
                let rest = vals.split_off(n * *p);
                let head = std::mem::replace(vals, rest);
                let x = Array2::from_shape_vec((n, *p), head).expect("n rows");
                (Matrix::Dense(x), split_ids(ids, n))
            }
            Buffer::Csr {
                p,
                indptr,
                indices,
                vals,
                ids,
            } => {
                let cut = indptr[n];
                let rest_i = indices.split_off(cut);
                let rest_v = vals.split_off(cut);
                let rest_p: Vec<usize> = indptr[n..].iter().map(|o| o - cut).collect();
                let head_p: Vec<usize> = indptr[..=n].to_vec();
                let m = CsrMatrix::try_new(
                    *p,
                    head_p,
                    std::mem::replace(indices, rest_i),
                    std::mem::replace(vals, rest_v),
                )
                .expect("rows were validated");
                *indptr = rest_p;
                (Matrix::Csr(m), split_ids(ids, n))
            }
        }
    }
}

impl<I: Iterator<Item = Result<Chunk<F>>>, F: Float> Rechunk<I, F> {
    fn new(chunks: I, rows: usize) -> Self {
        Self {
            chunks,
            rows: rows.max(1),
            buf: None,
            next_row: 0,
            done: false,
        }
    }
    fn emit(&mut self, n: usize) -> Batch<F> {
        let (data, ids) = self.buf.as_mut().expect("buffer").take(n);
        let b = Batch {
            data,
            ids,
            first_row: self.next_row,
        };
        self.next_row += n as u64;
        b
    }
}

impl<I: Iterator<Item = Result<Chunk<F>>>, F: Float> Iterator for Rechunk<I, F> {
    type Item = Result<Batch<F>>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let have = self.buf.as_ref().map_or(0, |b| b.rows());
            if have >= self.rows {
                return Some(Ok(self.emit(self.rows)));
            }
            if self.done {
                return (have > 0).then(|| Ok(self.emit(have)));
            }
            match self.chunks.next() {
                Some(Ok(c)) => match self.buf.as_mut() {
                    // An emptied buffer takes the chunk's storage instead of copying it.
                    Some(b) if b.rows() > 0 => b.push(c),
                    _ => self.buf = Some(Buffer::from_chunk(c)),
                },
                Some(Err(e)) => {
                    self.done = true;
                    self.buf = None;
                    return Some(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}
