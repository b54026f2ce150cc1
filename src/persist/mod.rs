//! Model files and checkpoints: the format ([`format`](self#format)), atomic writes, and
//! the checkpoint directory.
//!
//! # Format
//! See the layout in the README ("Model file layout"): magic, version, a JSON header, raw
//! little-endian array blocks and a CRC-32. Files written by every earlier version load.

mod atomic;
mod checkpoint;
mod format;

use std::path::Path;

pub use atomic::{
    clean_stale_temps, commit_together, replaceable, resolve_links, AtomicFile, TEMP_PREFIX,
};
pub use checkpoint::{CheckpointDir, RunState};
pub use format::{InputPosition, Metadata, Spectrogram};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::OnlineNmf;

/// Writes a model file atomically (temp file in the same directory, fsync, rename, fsync
/// of the directory), streaming the arrays straight to disk.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::persist::{load, save, Metadata};
/// use streamnmf::{NmfParams, OnlineNmf};
/// let x = ndarray::Array2::from_shape_fn((40, 4), |(i, j)| ((i + j) % 3) as f32 + 0.5);
/// let mut model = OnlineNmf::<f32>::new(NmfParams::new(2).check()?);
/// model.fit(&x)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("m.snmf");
/// save(&path, &model, &Metadata::default())?;
/// let (back, _meta) = load::<f32>(&path)?;
/// assert_eq!(back, model);
/// # Ok(()) }
/// ```
pub fn save<F: Float>(path: &Path, model: &OnlineNmf<F>, meta: &Metadata) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    format::encode_to(&mut f, model, meta, None).map_err(|e| Error::Io(e).in_file(path))?;
    f.commit()
}

/// Writes a model file's bytes to `out` (a pipe, standard output, an [`AtomicFile`] the
/// caller commits with the run's other outputs).
pub fn write_model<F: Float>(
    out: impl std::io::Write,
    model: &OnlineNmf<F>,
    meta: &Metadata,
) -> Result<()> {
    format::encode_to(out, model, meta, None).map_err(Error::Io)
}

/// Reads a model file of element type `F` (see [`float_type`] to find it first).
pub fn load<F: Float>(path: &Path) -> Result<(OnlineNmf<F>, Metadata)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(e).in_file(path))?;
    decode(&bytes).map_err(|e| e.in_file(path))
}

/// Encodes a model and its metadata as model-file bytes (in memory).
pub fn encode<F: Float>(model: &OnlineNmf<F>, meta: &Metadata) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_to(&mut out, model, meta, None).expect("writing to memory cannot fail");
    out
}

/// Decodes model-file bytes into a model of element type `F` (checkpoints too: their run
/// state is ignored).
///
/// ```
/// use streamnmf::persist::{decode, encode, float_type, Metadata};
/// use streamnmf::{NmfParams, OnlineNmf};
/// let model = OnlineNmf::<f64>::new(NmfParams::new(3).check().unwrap());
/// let bytes = encode(&model, &Metadata::default());
/// assert_eq!(float_type(&bytes).unwrap(), "f64");
/// let (back, _) = decode::<f64>(&bytes).unwrap();
/// assert_eq!(back, model);
/// assert!(decode::<f32>(&bytes).is_err());
/// ```
pub fn decode<F: Float>(bytes: &[u8]) -> Result<(OnlineNmf<F>, Metadata)> {
    format::decode(bytes).map(|(m, meta, _)| (m, meta))
}

/// A model with a run state, as checkpoint bytes (what rank 0 of a distributed fit sends
/// the other ranks before the first round).
pub(crate) fn encode_run<F: Float>(model: &OnlineNmf<F>, run: &RunState<F>) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_to(&mut out, model, &Metadata::default(), Some(run))
        .expect("writing to memory cannot fail");
    out
}

/// The model and run state of [`encode_run`]'s bytes.
pub(crate) fn decode_run<F: Float>(bytes: &[u8]) -> Result<(OnlineNmf<F>, RunState<F>)> {
    match format::decode(bytes)? {
        (model, _, Some(run)) => Ok((model, run)),
        _ => Err(Error::ModelFile("no run state".into())),
    }
}

/// The element type (`"f32"` or `"f64"`) of a model file's bytes, after checking them.
pub fn float_type(bytes: &[u8]) -> Result<String> {
    format::float_type(bytes)
}
