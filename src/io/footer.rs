//! Parquet footers, read once per version of a file.
//!
//! Opening a fit reads a file's footer several times before the first value is decoded:
//! for the input's shape (batch size, planning), for its schema (the converter) and for
//! the reader itself. A footer of a wide file is not small: 1.5–2.7 ms to parse for 1000
//! columns, 5–10 ms for 5000, each time on the thread the fit waits for. The last few
//! footers read are kept, keyed by the path and what `fstat` says of the opened file
//! (length and modification time), so a file rewritten in between is read again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use parquet::arrow::arrow_reader::ArrowReaderMetadata;

/// Footers kept (those of the files being read, and of a multi-file input's next).
const KEPT: usize = 4;

/// A file as it was when its footer was read.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Version {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

static FOOTERS: Mutex<Vec<(Version, ArrowReaderMetadata)>> = Mutex::new(Vec::new());

/// The footer of the Parquet file `file`, opened from `path`: the one read before when
/// the file has not changed since, else read now (and kept).
pub(super) fn footer(file: &File, path: &Path) -> parquet::errors::Result<ArrowReaderMetadata> {
    let version = file.metadata().ok().map(|m| Version {
        path: path.to_path_buf(),
        len: m.len(),
        modified: m.modified().ok(),
    });
    let Some(version) = version else {
        return ArrowReaderMetadata::load(file, Default::default());
    };
    {
        let kept = FOOTERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, meta)) = kept.iter().find(|(v, _)| *v == version) {
            return Ok(meta.clone());
        }
    }
    let meta = ArrowReaderMetadata::load(file, Default::default())?;
    let mut kept = FOOTERS.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|(v, _)| v.path != version.path);
    kept.insert(0, (version, meta.clone()));
    kept.truncate(KEPT);
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float32Array, RecordBatch};
    use parquet::arrow::ArrowWriter;

    fn write(path: &Path, rows: usize) {
        let batch =
            RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![1.0; rows])) as _)])
                .unwrap();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn rows(path: &Path) -> i64 {
        let meta = footer(&File::open(path).unwrap(), path).unwrap();
        meta.metadata().file_metadata().num_rows()
    }

    /// A footer read twice is the one kept; a file rewritten in between (another length)
    /// is read again, not served from the cache.
    #[test]
    fn a_rewritten_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, 10);
        let first = footer(&File::open(&path).unwrap(), &path).unwrap();
        let again = footer(&File::open(&path).unwrap(), &path).unwrap();
        assert!(Arc::ptr_eq(first.metadata(), again.metadata()));
        write(&path, 25);
        assert_eq!(rows(&path), 25);
        write(&path, 10_000);
        assert_eq!(rows(&path), 10_000);
    }
}
