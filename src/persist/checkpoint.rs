//! Checkpoints: model files that also hold the run's state, in a directory that keeps the
//! newest few, falls back past a corrupt one, and cleans up after interrupted writes.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Ranks of the distributed fit that wrote it (1: one process); `next_seq` and the
    /// position then count rounds.
    pub(crate) ranks: usize,
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
    /// Ranks of the distributed fit that wrote it (1 for a single process).
    pub fn ranks(&self) -> usize {
        self.ranks
    }
}

/// A directory of numbered checkpoints, `ckpt-<batches>.snmf`, keeping the newest `keep`.
///
/// A run holds the directory for as long as this value lives: an exclusive advisory lock
/// on its `.lock` file (which names the holder's process), so two runs cannot write into
/// the same directory and a `--resume` cannot take a directory a live run is writing.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::persist::CheckpointDir;
/// use streamnmf::Error;
/// let dir = tempfile::tempdir()?;
/// let ck = CheckpointDir::new(&dir.path().join("ck"), 3)?;
/// assert!(ck.list()?.is_empty());
/// assert!(ck.latest::<f32>().is_err()); // nothing to resume from yet
/// let second = CheckpointDir::open(&dir.path().join("ck"), 3);
/// assert!(matches!(second, Err(Error::Locked { .. })));
/// drop(ck);
/// assert!(CheckpointDir::open(&dir.path().join("ck"), 3).is_ok());
/// assert!(CheckpointDir::open(&dir.path().join("nowhere"), 3).is_err()); // not created
/// std::fs::write(dir.path().join("file"), b"x")?;
/// let e = CheckpointDir::new(&dir.path().join("file"), 3).unwrap_err();
/// assert!(e.to_string().contains("a file is in the way"), "{e}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
    _lock: Arc<File>,
}

impl CheckpointDir {
    /// Uses (and creates) `dir`, keeping the newest `keep` checkpoints (at least 1).
    pub fn new(dir: &Path, keep: usize) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            let e = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file is in the way: checkpoints need a directory",
            );
            return Err(Error::Io(e).in_file(dir));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(e).in_file(dir))?;
        Self::open(dir, keep)
    }

    /// Uses an existing `dir` (to resume from): never creates it.
    pub fn open(dir: &Path, keep: usize) -> Result<Self> {
        if !dir.is_dir() {
            let e =
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint directory");
            return Err(Error::Io(e).in_file(dir));
        }
        let lock = Self::lock(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            _lock: Arc::new(lock),
        })
    }

    /// Takes the directory's lock, or says who holds it.
    fn lock(dir: &Path) -> Result<File> {
        let path = dir.join(".lock");
        let io = |e| Error::Io(e).in_file(&path);
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match f.try_lock() {
            Ok(()) => {
                f.set_len(0).map_err(io)?;
                f.rewind().map_err(io)?;
                write!(f, "{}", std::process::id()).map_err(io)?;
                f.flush().map_err(io)?;
                Ok(f)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                Err(Error::Locked {
                    path: dir.to_path_buf(),
                    pid: pid.trim().parse().ok(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint files, newest first.
    pub fn list(&self) -> Result<Vec<PathBuf>> {
        Self::list_in(&self.dir)
    }

    /// The checkpoint files in `dir`, newest first, without taking the directory (to
    /// watch a run from outside).
    pub fn list_in(dir: &Path) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::Io(e).in_file(dir))?
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
        Self::newest_in(&self.dir)
    }

    /// The newest checkpoint in `dir` that loads, read without taking the directory
    /// (the other ranks of a distributed fit, whose rank 0 holds it).
    pub fn peek<F: Float>(dir: &Path) -> Result<(OnlineNmf<F>, Metadata, RunState<F>)> {
        if !dir.is_dir() {
            let e =
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint directory");
            return Err(Error::Io(e).in_file(dir));
        }
        Self::newest_in(dir)
    }

    fn newest_in<F: Float>(dir: &Path) -> Result<(OnlineNmf<F>, Metadata, RunState<F>)> {
        for path in Self::list_in(dir)? {
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
            dir.display()
        )))
    }
}
