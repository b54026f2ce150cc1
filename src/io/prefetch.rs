//! Decoding ahead: a file's record batches are decoded on a helper thread while the
//! reader converts the previous ones to rows.

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

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
