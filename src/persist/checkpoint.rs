//! Checkpoints: model files that also hold the run's state, in a directory that keeps the
//! newest few, falls back past a corrupt one, and cleans up after interrupted writes.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::atomic::{AtomicFile, TEMP_PREFIX};
use super::format::{decode, encode_to, InputPosition, Metadata};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::OnlineNmf;

/// The pipeline's state at a checkpoint, beyond the model: what is needed to continue
/// bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState<F> {
    /// Sequence number of the next batch (batches applied in this run so far).
    pub(crate) next_seq: u64,
    /// Where the input stood.
    pub(crate) position: InputPosition,
    /// The dictionary versions later batches may still be solved against (staleness):
    /// `(version, H)` for versions `next_seq - s ..= next_seq`.
    pub(crate) recent: Vec<(u64, Array2<F>)>,
}

impl<F> RunState<F> {
    /// Where the input stood: epoch, and batches and rows of it already applied.
    pub fn position(&self) -> &InputPosition {
        &self.position
    }
    /// Batches applied in the run so far.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// A directory of numbered checkpoints, `ckpt-<batches>.snmf`, keeping the newest `keep`.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::persist::CheckpointDir;
/// let dir = tempfile::tempdir()?;
/// let ck = CheckpointDir::new(&dir.path().join("ck"), 3)?;
/// assert!(ck.list()?.is_empty());
/// assert!(ck.latest::<f32>().is_err()); // nothing to resume from yet
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// Uses (and creates) `dir`, keeping the newest `keep` checkpoints (at least 1).
    pub fn new(dir: &Path, keep: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(e).in_file(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint files, newest first.
    pub fn list(&self) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::Io(e).in_file(&self.dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ckpt-") && n.ends_with(".snmf"))
            })
            .collect();
        v.sort();
        v.reverse();
        Ok(v)
    }

    /// Writes a checkpoint atomically and drops the oldest beyond `keep`.
    pub(crate) fn write<F: Float>(
        &self,
        model: &OnlineNmf<F>,
        meta: &Metadata,
        run: &RunState<F>,
    ) -> Result<PathBuf> {
        let path = self
            .dir
            .join(format!("ckpt-{:012}.snmf", model.batches_seen()));
        let mut f = AtomicFile::create(&path)?;
        encode_to(&mut f, model, meta, Some(run)).map_err(|e| Error::Io(e).in_file(&path))?;
        f.commit()?;
        for old in self.list()?.into_iter().skip(self.keep) {
            let _ = std::fs::remove_file(old);
        }
        tracing::debug!(path = %path.display(), "checkpoint written");
        Ok(path)
    }

    /// The newest checkpoint that loads, skipping (with a warning) any that are truncated
    /// or corrupt, and removing temp files left by a write that was cut short.
    pub fn latest<F: Float>(&self) -> Result<(OnlineNmf<F>, Metadata, RunState<F>)> {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for path in self.list()? {
            let loaded = std::fs::read(&path)
                .map_err(Error::Io)
                .and_then(|b| decode::<F>(&b));
            match loaded {
                Ok((m, meta, Some(run))) => return Ok((m, meta, run)),
                Ok((_, _, None)) => {
                    tracing::warn!(path = %path.display(), "not a checkpoint (no run state): skipped")
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "unreadable checkpoint: falling back to an older one"
                ),
            }
        }
        Err(Error::ModelFile(format!(
            "no valid checkpoint in {}",
            self.dir.display()
        )))
    }
}
