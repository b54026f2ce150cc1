//! The one epoch loop of the readers: record batches of named inputs (the files of a
//! [`FileSource`](super::FileSource), or one stream) → converted batches → mini-batches of
//! exactly `batch_rows` rows (the last one may be shorter), re-chunked across record
//! batches and inputs, numbered by their global first row.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

use super::convert::Converter;
use super::guard::decoding;
use super::ArrowFloat;
use crate::error::{Error, Result};
use crate::matrix::{Batch, BatchBuffer};

/// Record batches as a decoder yields them.
pub(crate) type RecordBatches =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// One input of an epoch: its name (for errors and origins), its record batches, and the
/// row of its file they start at (0 but for a share of a file's row groups).
pub(crate) type Named = Result<(Arc<str>, RecordBatches, u64)>;

/// The [`BatchSource`](crate::source::BatchSource) methods that every Arrow-decoding source
/// (files, streams, object storage) answers from its `converter` and `opts` fields.
macro_rules! converter_methods {
    () => {
        fn width(&self) -> usize {
            self.converter.width()
        }
        fn sparse(&self) -> bool {
            !matches!(self.opts.layout, $crate::io::Layout::Dense)
        }
        fn unknown_entries(&self) -> u64 {
            self.converter.unknown_entries()
        }
        fn feature_names(&self) -> Vec<String> {
            self.converter.names()
        }
    };
}
pub(crate) use converter_methods;

/// The mini-batches of the inputs `inputs`, in order. The converter's pending triplet row
/// carries over from one input to the next (a row may span files), and any error ends the
/// epoch after naming its input.
pub(crate) fn mini_batches<F: ArrowFloat>(
    mut inputs: impl Iterator<Item = Named> + Send + 'static,
    mut converter: Converter,
    batch_rows: usize,
) -> impl Iterator<Item = Result<Batch<F>>> + Send {
    // Record batches are converted a slice at a time (a zero-copy view of at most this
    // many rows): a producer's 65 536-row record batch never becomes one 65 536-row copy,
    // so memory is bounded by the batch size whatever the record batches are.
    let slice_rows = batch_rows.max(1024);
    let mut current: Option<(Arc<str>, RecordBatches, u64)> = None;
    // The record batch being sliced: its rows, the next row to take, and its first row's
    // index in its input.
    let mut record: Option<(RecordBatch, usize, u64)> = None;
    let mut finished = false;
    let converted = std::iter::from_fn(move || loop {
        if finished {
            return None;
        }
        if let Some((rb, offset, rb_row0)) = record.as_mut() {
            let name = &current.as_ref().expect("a record batch has an input").0;
            let len = slice_rows.min(rb.num_rows() - *offset);
            let slice = rb.slice(*offset, len);
            let at = *rb_row0 + *offset as u64;
            *offset += len;
            if *offset >= rb.num_rows() {
                record = None;
            }
            // Arrays a corrupt file decoded into can break invariants the conversion
            // relies on: a panic there is a corrupt input too.
            match decoding("Arrow", || converter.convert::<F>(&slice, name, at)) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(e) => {
                    finished = true;
                    return Some(Err(e.in_file(&**name)));
                }
            }
        }
        if current.is_none() {
            match inputs.next() {
                Some(Ok((name, batches, row0))) => current = Some((name, batches, row0)),
                Some(Err(e)) => {
                    finished = true;
                    return Some(Err(e));
                }
                None => {
                    finished = true;
                    return converter.finish::<F>().transpose();
                }
            }
        }
        let (name, batches, row0) = current.as_mut().expect("opened above");
        match batches.next() {
            Some(Ok(rb)) => {
                let at = *row0;
                *row0 += rb.num_rows() as u64;
                record = (rb.num_rows() > 0).then_some((rb, 0, at));
            }
            Some(Err(e)) => {
                finished = true;
                return Some(Err(Error::from(e).in_file(&**name)));
            }
            None => current = None,
        }
    });
    Rechunk::new(converted, batch_rows)
}

/// Re-chunks batches into batches of exactly `rows` rows (the last shorter).
pub(crate) struct Rechunk<I, F> {
    inner: I,
    rows: usize,
    buf: BatchBuffer<F>,
    next_row: u64,
    done: bool,
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: ArrowFloat> Rechunk<I, F> {
    pub(crate) fn new(inner: I, rows: usize) -> Self {
        Self {
            inner,
            rows: rows.max(1),
            buf: BatchBuffer::with_target(rows.max(1)),
            next_row: 0,
            done: false,
        }
    }
    fn emit(&mut self, n: usize) -> Batch<F> {
        let b = self.buf.take(n, self.next_row);
        self.next_row += n as u64;
        b
    }
}

impl<I: Iterator<Item = Result<Batch<F>>>, F: ArrowFloat> Iterator for Rechunk<I, F> {
    type Item = Result<Batch<F>>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let have = self.buf.rows();
            if have >= self.rows {
                return Some(Ok(self.emit(self.rows)));
            }
            if self.done {
                return (have > 0).then(|| Ok(self.emit(have)));
            }
            match self.inner.next() {
                Some(Ok(b)) => self.buf.push(b),
                Some(Err(e)) => {
                    self.done = true;
                    self.buf = BatchBuffer::with_target(self.rows);
                    return Some(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}
