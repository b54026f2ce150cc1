//! Containment of decoder panics. The Parquet and Arrow decoders can panic on corrupt
//! bytes (an index out of bounds in a run-length decoder, an `unwrap` in the metadata
//! parser); a file we did not write must never take the process down. Every call into a
//! decoder goes through here, and a panic becomes an error saying the file is corrupt.

use std::panic::{catch_unwind, AssertUnwindSafe};

use arrow_schema::ArrowError;

use super::records::RecordBatches;
use crate::error::{Error, Result};

/// The panic's message, when it has one.
fn message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn corrupt(msg: String) -> String {
    format!("corrupt input: the decoder failed ({msg})")
}

/// Runs a decoder call; its panic becomes a `format` decode error.
pub(crate) fn decoding<T>(format: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(Error::Decode {
            format,
            message: corrupt(message(p)),
        })
    })
}

/// Record batches whose decoder's panics become an error, after which the iterator ends
/// (a decoder that panicked is in no state to go on).
pub(crate) fn guarded(inner: RecordBatches) -> RecordBatches {
    let mut inner = Some(inner);
    Box::new(std::iter::from_fn(move || {
        let it = inner.as_mut()?;
        match catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(next) => next,
            Err(p) => {
                inner = None;
                Some(Err(ArrowError::ExternalError(corrupt(message(p)).into())))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::RecordBatch;

    #[test]
    fn panics_become_errors_and_end_the_batches() {
        let batches: RecordBatches = Box::new((0..3).map(|i| {
            if i == 1 {
                panic!("index out of bounds in rle.rs");
            }
            Ok(RecordBatch::new_empty(std::sync::Arc::new(
                arrow_schema::Schema::empty(),
            )))
        }));
        let out: Vec<_> = guarded(batches).collect();
        assert_eq!(out.len(), 2);
        let e = out[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("corrupt input") && e.contains("rle.rs"), "{e}");
        let r: Result<()> = decoding("Parquet", || panic!("thrift unwrap on None"));
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with("Parquet: corrupt input"), "{e}");
    }
}
