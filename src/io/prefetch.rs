//! Decoding ahead: a file's record batches are decoded on a helper thread while the
//! reader converts the previous ones to rows; a wide file's columns are decoded in
//! groups, one thread each, and joined row-aligned.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema, SchemaRef};

use super::records::RecordBatches;

/// Record batches decoded ahead on a helper thread: decoding (the file's codec and
/// encodings) overlaps with the conversion to rows in the reader thread. At most
/// [`PREFETCH`] batches wait in the channel, so memory stays bounded. A panic in the
/// decoder (malformed files can trigger them in the parquet crate) becomes an error, not a
/// silently short input.
pub(crate) struct Prefetch {
    rx: crossbeam_channel::Receiver<std::result::Result<RecordBatch, ArrowError>>,
    decoder: Option<std::thread::JoinHandle<()>>,
}

/// Record batches decoded ahead of the reader.
const PREFETCH: usize = 2;

impl Prefetch {
    pub(crate) fn start(mut batches: RecordBatches) -> RecordBatches {
        let (tx, rx) = crossbeam_channel::bounded(PREFETCH);
        let decoder = std::thread::Builder::new()
            .name("streamnmf-decode".into())
            .spawn(move || {
                for rb in batches.by_ref() {
                    if tx.send(rb).is_err() {
                        break; // the reader went away
                    }
                }
            });
        match decoder {
            Ok(handle) => Box::new(Self {
                rx,
                decoder: Some(handle),
            }),
            Err(e) => Box::new(std::iter::once(Err(ArrowError::ExternalError(Box::new(e))))),
        }
    }
}

/// Projected columns from which a Parquet file is decoded in column groups.
pub(crate) const SPLIT_MIN_COLUMNS: usize = 128;

/// How many column groups (decoder threads) a file of `columns` projected columns is
/// decoded in: one per core, at most 4, and only for wide files.
///
/// Why: pyarrow writes a row group's column chunk as one page (a 20 000-row chunk of
/// floats is well under its 1 MB page size), so the first record batch of a row group
/// decompresses and reads every column's page. On a 20 000 × 1000 file that is 160 ms on
/// one core before the first mini-batch, half the whole fit, while the second core waits.
pub(crate) fn column_groups(columns: usize) -> usize {
    if columns < SPLIT_MIN_COLUMNS {
        return 1;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Record batches of column groups (readers over the same rows with the same batch size)
/// joined side by side into one record batch per step: the columns of the first group,
/// then the second's, and so on. The first group decodes on the thread that pulls the
/// joined batches (the reader's own prefetch thread), every other group on a thread of
/// its own. Decoded values do not depend on the threads, so neither does anything
/// downstream.
pub(crate) struct Joined {
    parts: Vec<RecordBatches>,
    schema: Option<SchemaRef>,
    done: bool,
}

impl Joined {
    pub(crate) fn start(parts: Vec<RecordBatches>) -> RecordBatches {
        let parts = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| if i == 0 { p } else { Prefetch::start(p) })
            .collect();
        Box::new(Self {
            parts,
            schema: None,
            done: false,
        })
    }

    fn join(&mut self, batches: Vec<RecordBatch>) -> std::result::Result<RecordBatch, ArrowError> {
        let rows = batches[0].num_rows();
        if let Some(b) = batches.iter().find(|b| b.num_rows() != rows) {
            return Err(ArrowError::ComputeError(format!(
                "column groups decoded {} and {rows} rows for the same record batch",
                b.num_rows()
            )));
        }
        let schema = self
            .schema
            .get_or_insert_with(|| {
                let fields: Vec<_> = batches
                    .iter()
                    .flat_map(|b| b.schema().fields().iter().cloned().collect::<Vec<_>>())
                    .collect();
                Arc::new(Schema::new(fields))
            })
            .clone();
        let columns = batches
            .iter()
            .flat_map(|b| b.columns().iter().cloned())
            .collect();
        RecordBatch::try_new(schema, columns)
    }
}

impl Iterator for Joined {
    type Item = std::result::Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut batches = Vec::with_capacity(self.parts.len());
        let mut ended = 0;
        for part in &mut self.parts {
            match part.next() {
                Some(Ok(b)) => batches.push(b),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => ended += 1,
            }
        }
        if ended > 0 {
            self.done = true;
            return (ended < self.parts.len()).then(|| {
                Err(ArrowError::ComputeError(
                    "column groups of the file ended at different rows".into(),
                ))
            });
        }
        Some(self.join(batches))
    }
}

impl Iterator for Prefetch {
    type Item = std::result::Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(rb) = self.rx.recv() {
            return Some(rb);
        }
        // The decoder finished or died: tell which.
        let handle = self.decoder.take()?;
        match handle.join() {
            Ok(()) => None,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Some(Err(ArrowError::ExternalError(
                    format!("the decoder failed: {msg}").into(),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> RecordBatch {
        RecordBatch::new_empty(std::sync::Arc::new(arrow_schema::Schema::empty()))
    }

    /// Prefetched batches arrive in order and the iterator ends with the input.
    #[test]
    fn prefetch_passes_everything_in_order() {
        let input: RecordBatches = Box::new((0..5).map(|i| {
            if i == 3 {
                Err(ArrowError::ComputeError("bad page".into()))
            } else {
                Ok(empty())
            }
        }));
        let out: Vec<_> = Prefetch::start(input).collect();
        assert_eq!(out.len(), 5);
        assert!(out[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("bad page"));
        assert!(out[4].is_ok());
    }

    fn numbers(name: &str, rows: std::ops::Range<i32>, per: usize) -> RecordBatches {
        let schema = Arc::new(Schema::new(vec![arrow_schema::Field::new(
            name,
            arrow_schema::DataType::Int32,
            false,
        )]));
        let v: Vec<i32> = rows.collect();
        let batches: Vec<_> = v
            .chunks(per)
            .map(|c| {
                let a = arrow_array::Int32Array::from(c.to_vec());
                Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap())
            })
            .collect();
        Box::new(batches.into_iter())
    }

    /// Groups are joined side by side, row-aligned, in group order; groups that end at
    /// different rows are an error, not a short input.
    #[test]
    fn column_groups_join_side_by_side() {
        use arrow_array::cast::AsArray;
        let out: Vec<_> =
            Joined::start(vec![numbers("a", 0..10, 4), numbers("b", 100..110, 4)]).collect();
        assert_eq!(out.len(), 3);
        let last = out[2].as_ref().unwrap();
        assert_eq!(last.num_rows(), 2);
        assert_eq!(last.schema().field(1).name(), "b");
        let b = last
            .column(1)
            .as_primitive::<arrow_array::types::Int32Type>();
        assert_eq!(b.values().as_ref(), &[108, 109]);

        let out: Vec<_> =
            Joined::start(vec![numbers("a", 0..10, 4), numbers("b", 0..8, 4)]).collect();
        assert_eq!(out.len(), 3);
        let e = out[2].as_ref().unwrap_err().to_string();
        assert!(e.contains("ended at different rows"), "{e}");
        let out: Vec<_> =
            Joined::start(vec![numbers("a", 0..10, 4), numbers("b", 0..10, 5)]).collect();
        let e = out[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("decoded 5 and 4 rows"), "{e}");
    }

    /// A decoder that panics ends the input with an error, never silently short.
    #[test]
    fn prefetch_turns_a_decoder_panic_into_an_error() {
        let input: RecordBatches = Box::new((0..3).map(|i| {
            if i == 1 {
                panic!("corrupt dictionary page");
            }
            Ok(empty())
        }));
        let out: Vec<_> = Prefetch::start(input).collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let e = out[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("decoder failed: corrupt dictionary page"), "{e}");
    }
}
