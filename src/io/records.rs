//! The one epoch loop of the readers: record batches of named inputs (the files of a
//! [`FileSource`](super::FileSource), or one stream) → converted batches → mini-batches of
//! exactly `batch_rows` rows (the last one may be shorter), re-chunked across record
//! batches and inputs, numbered by their global first row.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
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

/// Mini-batches at least this large are converted from slices that end where they do.
const ALIGNED_MIN_ROWS: usize = 64;

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
    // Where a record is a row (not a triplet's entry), slices end where mini-batches do:
    // the re-chunker then hands each converted slice on as it is, instead of copying its
    // rows into mini-batches (on a 20000 × 1000 file, 160 MB of copies a pass). `filled`
    // counts the rows converted since the last mini-batch boundary. Batches under 64
    // rows keep the larger slices: a conversion has a cost per call.
    let aligned = !converter.records_are_entries() && batch_rows >= ALIGNED_MIN_ROWS;
    let mut filled = 0usize;
    let mut current: Option<(Arc<str>, RecordBatches, u64)> = None;
    // The record batch being sliced: its rows, the next row to take, its first row's
    // index in its input, and its columns as the converter readied them for its slices.
    let mut record: Option<(RecordBatch, usize, u64, Option<Vec<ArrayRef>>)> = None;
    let mut finished = false;
    let converted = std::iter::from_fn(move || loop {
        if finished {
            return None;
        }
        if let Some((rb, offset, rb_row0, ready)) = record.as_mut() {
            let name = &current.as_ref().expect("a record batch has an input").0;
            let want = if aligned {
                batch_rows - filled
            } else {
                slice_rows
            };
            let (from, len) = (*offset, want.min(rb.num_rows() - *offset));
            *offset += len;
            // Arrays a corrupt file decoded into can break invariants the conversion
            // relies on: a panic there is a corrupt input too.
            let converted = decoding("Arrow", || {
                converter.convert_rows::<F>(rb, ready, from, len, name, *rb_row0)
            });
            if *offset >= rb.num_rows() {
                record = None;
            }
            match converted {
                Ok(Some(b)) => {
                    filled = (filled + b.rows()) % batch_rows.max(1);
                    return Some(Ok(b));
                }
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
                record = (rb.num_rows() > 0).then_some((rb, 0, at, None));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::InputOptions;
    use arrow_array::Float32Array;
    use arrow_schema::{DataType, Field, Schema};

    /// Two inputs of record batches of 150, 37 and 300 rows, then 90: row r of an input
    /// holds `1000·input + 10·r + column`.
    fn inputs(schema: &Arc<Schema>) -> Vec<Named> {
        [vec![150, 37, 300], vec![90]]
            .into_iter()
            .enumerate()
            .map(|(input, sizes)| {
                let mut row = 0;
                let batches: Vec<_> = sizes
                    .into_iter()
                    .map(|n| {
                        let first = row;
                        let col = |c: usize| {
                            let v = (first..first + n).map(|r| (1000 * input + 10 * r + c) as f32);
                            Arc::new(Float32Array::from_iter_values(v)) as _
                        };
                        row += n;
                        Ok(
                            RecordBatch::try_new(schema.clone(), vec![col(0), col(1), col(2)])
                                .unwrap(),
                        )
                    })
                    .collect();
                let name: Arc<str> = format!("in{input}").into();
                Ok((name, Box::new(batches.into_iter()) as RecordBatches, 0))
            })
            .collect()
    }

    /// Slices that end where mini-batches do (batches of 64 rows or more) and the larger
    /// slices (smaller batches) give the same mini-batches: every row once, in order,
    /// exactly `rows` a batch but the last, numbered by global row and named by input.
    #[test]
    fn mini_batches_cut_rows_in_order_whatever_the_slices() {
        let fields: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| Field::new(*n, DataType::Float32, false))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let expected: Vec<[f32; 3]> = [(0, 487), (1, 90)]
            .into_iter()
            .flat_map(|(i, n)| {
                (0..n).map(move |r| [0, 1, 2].map(|c| (1000 * i + 10 * r + c) as f32))
            })
            .collect();
        for rows in [100, 64, 16, 1000] {
            let conv = Converter::new(&schema, &InputOptions::new(rows), None).unwrap();
            let batches: Vec<Batch<f32>> = mini_batches(inputs(&schema).into_iter(), conv, rows)
                .collect::<Result<_>>()
                .unwrap();
            let sizes: Vec<usize> = batches.iter().map(|b| b.rows()).collect();
            let total = expected.len();
            assert!(
                sizes[..sizes.len() - 1].iter().all(|&n| n == rows),
                "{sizes:?}"
            );
            assert_eq!(sizes.iter().sum::<usize>(), total);
            let mut seen = Vec::new();
            for (i, b) in batches.iter().enumerate() {
                assert_eq!(b.first_row(), (i * rows) as u64);
                let x = b.view().to_dense();
                seen.extend(x.rows().into_iter().map(|r| [r[0], r[1], r[2]]));
            }
            assert_eq!(seen, expected, "batches of {rows} rows");
            // The last batch of 100 rows spans both inputs: rows 400..487 of the first,
            // then 0..13 of the second.
            if rows == 100 {
                let origin = batches[4].origin();
                assert_eq!(origin.locate(0), Some(("in0", 400)));
                assert_eq!(origin.locate(87), Some(("in1", 0)));
            }
        }
    }

    /// Ranges of one record batch keep their ids, and a null anywhere in it is named by
    /// its row in the input, whichever mini-batch it falls in.
    #[test]
    fn ranges_keep_their_ids_and_name_a_null_by_its_row() {
        use arrow_array::Int64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Float32, true),
            Field::new("b", DataType::Float32, false),
        ]));
        let input = |null_at: Option<usize>| -> Vec<Named> {
            let a: Float32Array = (0..300)
                .map(|r| (Some(r) != null_at).then_some(r as f32))
                .collect();
            let rb = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values((0..300).map(|r| 7 * r))),
                    Arc::new(a),
                    Arc::new(Float32Array::from_iter_values(
                        (0..300).map(|r| -(r as f32)),
                    )),
                ],
            )
            .unwrap();
            let batches = Box::new(std::iter::once(Ok(rb))) as RecordBatches;
            vec![Ok(("in".into(), batches, 1000))]
        };
        let opts = InputOptions::new(64).id_column("id");
        let conv = Converter::new(&schema, &opts, None).unwrap();
        let batches: Vec<Batch<f32>> = mini_batches(input(None).into_iter(), conv.clone(), 64)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(batches.len(), 5);
        for (i, b) in batches.iter().enumerate() {
            let rows = (64 * i)..(64 * i + b.rows());
            let want: Vec<i64> = rows.clone().map(|r| 7 * r as i64).collect();
            assert_eq!(b.ids(), Some(&crate::matrix::RowIds::Int64(want)));
            let x = b.view().to_dense();
            let a: Vec<f32> = rows.clone().map(|r| r as f32).collect();
            assert_eq!(x.column(0).to_vec(), a);
            assert_eq!(x[[b.rows() - 1, 1]], -((rows.end - 1) as f32));
            assert_eq!(b.origin().locate(0), Some(("in", 1000 + rows.start as u64)));
        }
        let err = mini_batches(input(Some(250)).into_iter(), conv, 64)
            .find_map(|b: Result<Batch<f32>>| b.err())
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.starts_with("in: row 1250, column 'a': null value"),
            "{msg}"
        );
    }
}
