//! An Arrow IPC stream (standard input, a pipe, a socket) as a batch source: read once, as
//! it arrives.

use std::io::{BufReader, Read};
use std::sync::Arc;

use arrow_ipc::reader::StreamReader;

use super::convert::Converter;
use super::guard::{decoding, guarded};
use super::ipc::Checked;
use super::records::{converter_methods, mini_batches, Named, RecordBatches};
use super::{ArrowFloat, InputOptions};
use crate::error::{Error, Result};
use crate::source::{BatchIter, BatchSource};

/// An Arrow IPC stream: one epoch only.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::sync::Arc;
/// use arrow_array::{Float32Array, RecordBatch};
/// use streamnmf::io::{InputOptions, StreamSource};
/// use streamnmf::source::BatchSource;
/// let batch = RecordBatch::try_from_iter([
///     ("a", Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0])) as _),
/// ]).unwrap();
/// let mut bytes = Vec::new();
/// let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).unwrap();
/// w.write(&batch).unwrap();
/// w.finish().unwrap();
/// drop(w);
/// let mut src = StreamSource::<f32>::new(Box::new(std::io::Cursor::new(bytes)), "<bytes>", InputOptions::new(2))?;
/// assert!(!src.rewindable());
/// assert_eq!(src.epoch(0)?.count(), 2);
/// assert!(src.epoch(1).is_err()); // read once
/// # Ok(()) }
/// ```
pub struct StreamSource<F> {
    reader: Option<RecordBatches>,
    converter: Converter,
    opts: InputOptions,
    name: Arc<str>,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: ArrowFloat> StreamSource<F> {
    /// Reads the stream's schema from `input` and resolves the layout against it. `name`
    /// labels errors (e.g. `"<stdin>"`).
    pub fn new(input: Box<dyn Read + Send>, name: &str, opts: InputOptions) -> Result<Self> {
        let reader = decoding("Arrow", || {
            Ok(StreamReader::try_new(
                Checked::new(BufReader::new(input)),
                None,
            )?)
        })
        .map_err(|e| e.in_file(name))?;
        Self::from_reader(reader, name, opts)
    }

    /// Any Arrow record batch reader as a one-epoch source: an
    /// `arrow_array::ffi_stream::ArrowArrayStreamReader` (the Arrow C stream interface,
    /// which Python's `__arrow_c_stream__` exports), or batches already in memory.
    ///
    /// ```
    /// # fn main() -> streamnmf::Result<()> {
    /// use std::sync::Arc;
    /// use arrow_array::{Float64Array, RecordBatch, RecordBatchIterator};
    /// use streamnmf::io::{InputOptions, StreamSource};
    /// use streamnmf::source::BatchSource;
    /// let batch = RecordBatch::try_from_iter([
    ///     ("a", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as _),
    ///     ("b", Arc::new(Float64Array::from(vec![0.5, 0.0, 4.0])) as _),
    /// ]).unwrap();
    /// let schema = batch.schema();
    /// let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
    /// let mut src = StreamSource::<f64>::from_reader(reader, "<memory>", InputOptions::new(2))?;
    /// assert_eq!(src.width(), 2);
    /// assert_eq!(src.epoch(0)?.count(), 2);
    /// # Ok(()) }
    /// ```
    pub fn from_reader(
        reader: impl arrow_array::RecordBatchReader + Send + 'static,
        name: &str,
        opts: InputOptions,
    ) -> Result<Self> {
        let converter = Converter::from_options(&reader.schema(), &opts, opts.width, name)
            .map_err(|e| e.in_file(name))?;
        Ok(Self {
            reader: Some(Box::new(reader)),
            converter,
            opts,
            name: name.into(),
            _f: std::marker::PhantomData,
        })
    }
}

impl<F: ArrowFloat> BatchSource<F> for StreamSource<F> {
    converter_methods!();
    fn rewindable(&self) -> bool {
        false
    }
    fn name(&self) -> Option<String> {
        Some(self.name.to_string())
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let reader = self
            .reader
            .take()
            .ok_or_else(|| Error::NotRewindable.in_file(&*self.name))?;
        let batches: RecordBatches = guarded(reader);
        let input: Named = Ok((self.name.clone(), batches, 0));
        Ok(Box::new(mini_batches(
            std::iter::once(input),
            self.converter.clone(),
            self.opts.batch_rows,
        )))
    }
}
