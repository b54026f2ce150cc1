//! Model files and checkpoints: versioned, checksummed, written atomically.
//!
//! # Layout (all integers little-endian)
//! ```text
//! offset  size  field
//! 0       8     magic "SNMFMODL"
//! 8       4     format version (u32, currently 1)
//! 12      8     header length H (u64)
//! 20      H     header: UTF-8 JSON, keys sorted
//! 20+H    ...   array blocks, back to back: raw little-endian f32 or f64 values
//! end-4   4     CRC-32 (IEEE) of every byte before it
//! ```
//! The header holds `float` (`"f32"`/`"f64"`), `meta` (feature names, input position,
//! writer version) and `model`: the complete model state (parameters, counters, RNG state,
//! loss history, dictionary and statistics) as serde JSON in which every array is replaced
//! by `{"block": i, "dtype": "f32"|"f64", "dim": [...], "offset": o, "len": n}`, pointing
//! into the blocks (offset in bytes from the first block). A block is stored as f32 when
//! all its values are exactly f32, so nothing is ever rounded: loading and saving a model
//! gives the same bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::OnlineNmf;

const MAGIC: &[u8; 8] = b"SNMFMODL";
const VERSION: u32 = 1;

/// Where an input stood when a checkpoint was taken (for exact resume).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPosition {
    /// Epoch being read (0-based).
    pub epoch: usize,
    /// Batches of that epoch already applied to the model.
    pub batches_in_epoch: u64,
    /// Rows of that epoch already applied.
    pub rows_in_epoch: u64,
}

/// What a model file says besides the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Names of the p features (columns of H).
    pub feature_names: Vec<String>,
    /// Input position, in checkpoints.
    pub position: Option<InputPosition>,
    /// A fingerprint of the input and run settings a checkpoint belongs to.
    pub fingerprint: Option<String>,
    /// The `streamnmf` version that wrote the file.
    pub writer: String,
}

fn is_ndarray(m: &Map<String, Value>) -> bool {
    m.len() == 3
        && m.get("v") == Some(&json!(1))
        && m.get("dim").is_some_and(Value::is_array)
        && m.get("data").is_some_and(Value::is_array)
}

/// Replaces every serialized ndarray in `v` by a block reference, appending its values.
fn lift(v: &mut Value, blocks: &mut Vec<u8>, count: &mut usize) -> Result<()> {
    match v {
        Value::Object(m) if is_ndarray(m) => {
            let data = m["data"].as_array().expect("checked");
            let vals: Vec<f64> = data
                .iter()
                .map(|x| {
                    x.as_f64()
                        .ok_or_else(|| Error::ModelFile("non-numeric array".into()))
                })
                .collect::<Result<_>>()?;
            let as_f32 = vals.iter().all(|&x| (x as f32) as f64 == x || x.is_nan());
            let offset = blocks.len();
            for &x in &vals {
                if as_f32 {
                    blocks.extend_from_slice(&(x as f32).to_le_bytes());
                } else {
                    blocks.extend_from_slice(&x.to_le_bytes());
                }
            }
            *v = json!({
                "block": *count,
                "dtype": if as_f32 { "f32" } else { "f64" },
                "dim": m["dim"].clone(),
                "offset": offset,
                "len": vals.len(),
            });
            *count += 1;
        }
        Value::Object(m) => {
            for x in m.values_mut() {
                lift(x, blocks, count)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                lift(x, blocks, count)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The inverse of [`lift`].
fn lower(v: &mut Value, blocks: &[u8]) -> Result<()> {
    let bad = |s: &str| Error::ModelFile(format!("corrupt array block: {s}"));
    match v {
        Value::Object(m) if m.contains_key("block") && m.contains_key("dtype") => {
            let offset = m["offset"].as_u64().ok_or_else(|| bad("offset"))? as usize;
            let len = m["len"].as_u64().ok_or_else(|| bad("len"))? as usize;
            let width = match m["dtype"].as_str() {
                Some("f32") => 4,
                Some("f64") => 8,
                _ => return Err(bad("dtype")),
            };
            let end = len
                .checked_mul(width)
                .and_then(|n| n.checked_add(offset))
                .filter(|&e| e <= blocks.len())
                .ok_or_else(|| bad("out of range"))?;
            let data: Vec<Value> = blocks[offset..end]
                .chunks_exact(width)
                .map(|c| {
                    let x = if width == 4 {
                        f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64
                    } else {
                        f64::from_le_bytes(c.try_into().expect("8 bytes"))
                    };
                    json!(x)
                })
                .collect();
            *v = json!({"v": 1, "dim": m["dim"].clone(), "data": data});
        }
        Value::Object(m) => {
            for x in m.values_mut() {
                lower(x, blocks)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                lower(x, blocks)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Encodes a model and its metadata as model-file bytes.
pub fn encode<F: Float>(model: &OnlineNmf<F>, meta: &Metadata) -> Result<Vec<u8>> {
    encode_run(model, meta, None)
}

/// Encodes a model, its metadata and (in checkpoints) the state of the run.
pub fn encode_run<F: Float>(
    model: &OnlineNmf<F>,
    meta: &Metadata,
    run: Option<&RunState<F>>,
) -> Result<Vec<u8>> {
    let json_err = |e: serde_json::Error| Error::ModelFile(e.to_string());
    let mut state = serde_json::to_value(model).map_err(json_err)?;
    let mut run = serde_json::to_value(run).map_err(json_err)?;
    let (mut blocks, mut count) = (Vec::new(), 0);
    lift(&mut state, &mut blocks, &mut count)?;
    lift(&mut run, &mut blocks, &mut count)?;
    let mut header = json!({"float": F::NAME, "meta": meta, "model": state});
    if !run.is_null() {
        header["run"] = run;
    }
    let header = serde_json::to_vec(&header).map_err(|e| Error::ModelFile(e.to_string()))?;
    let mut out = Vec::with_capacity(24 + header.len() + blocks.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&blocks);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks magic, version, length and checksum; returns the header and the blocks.
fn open_bytes(bytes: &[u8]) -> Result<(Value, &[u8])> {
    let bad = |s: String| Error::ModelFile(s);
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(bad("not a streamnmf model file (bad magic)".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}, this build reads version {VERSION}"
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(bad(
            "checksum mismatch: the file is truncated or corrupt".into()
        ));
    }
    let hlen = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")) as usize;
    if 20usize.checked_add(hlen).is_none_or(|e| e > body.len()) {
        return Err(bad("header length past the end of the file".into()));
    }
    let header: Value =
        serde_json::from_slice(&body[20..20 + hlen]).map_err(|e| bad(format!("header: {e}")))?;
    Ok((header, &body[20 + hlen..]))
}

/// The element type (`"f32"` or `"f64"`) of a model file's bytes, after checking them.
pub fn float_type(bytes: &[u8]) -> Result<String> {
    let (h, _) = open_bytes(bytes)?;
    h["float"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::ModelFile("header has no float type".into()))
}

/// Decodes model-file bytes into a model of element type `F`.
pub fn decode<F: Float>(bytes: &[u8]) -> Result<(OnlineNmf<F>, Metadata)> {
    decode_run(bytes).map(|(m, meta, _)| (m, meta))
}

/// Decodes a model, its metadata and the run state (present in checkpoints).
pub fn decode_run<F: Float>(bytes: &[u8]) -> Result<(OnlineNmf<F>, Metadata, Option<RunState<F>>)> {
    let (mut header, blocks) = open_bytes(bytes)?;
    if header["float"].as_str() != Some(F::NAME) {
        return Err(Error::ModelFile(format!(
            "model holds {}, asked for {}",
            header["float"],
            F::NAME
        )));
    }
    let meta: Metadata = serde_json::from_value(header["meta"].take())
        .map_err(|e| Error::ModelFile(format!("metadata: {e}")))?;
    let mut state = header["model"].take();
    lower(&mut state, blocks)?;
    let model =
        serde_json::from_value(state).map_err(|e| Error::ModelFile(format!("model: {e}")))?;
    let mut run = header["run"].take();
    lower(&mut run, blocks)?;
    let run = serde_json::from_value(run).map_err(|e| Error::ModelFile(format!("run: {e}")))?;
    Ok((model, meta, run))
}

/// Writes a model file atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub fn save<F: Float>(path: &Path, model: &OnlineNmf<F>, meta: &Metadata) -> Result<()> {
    write_atomic(path, &encode(model, meta)?)
}

/// Test hook: milliseconds to pause halfway through writing a checkpoint, so a test can
/// kill the process mid-write.
const PAUSE_ENV: &str = "STREAMNMF_TEST_CHECKPOINT_PAUSE_MS";

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".streamnmf-")
        .tempfile_in(&dir)
        .map_err(|e| Error::Io(e).in_file(path))?;
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    tmp.write_all(head)
        .map_err(|e| Error::Io(e).in_file(path))?;
    if let Some(ms) = std::env::var(PAUSE_ENV).ok().and_then(|v| v.parse().ok()) {
        tmp.flush().map_err(|e| Error::Io(e).in_file(path))?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    tmp.write_all(tail)
        .map_err(|e| Error::Io(e).in_file(path))?;
    crate::io::persist(tmp, path)
}

/// The pipeline's state at a checkpoint, beyond the model: what is needed to continue
/// bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState<F> {
    /// Sequence number of the next batch (batches applied in this run so far).
    pub next_seq: u64,
    /// Where the input stood.
    pub position: InputPosition,
    /// The dictionary versions later batches may still be solved against (staleness):
    /// `(version, H)` for versions `next_seq - s ..= next_seq`.
    pub recent: Vec<(u64, ndarray::Array2<F>)>,
}

/// A directory of numbered checkpoints, `ckpt-<batches>.snmf`, keeping the newest `keep`.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    dir: std::path::PathBuf,
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
    pub fn list(&self) -> Result<Vec<std::path::PathBuf>> {
        let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(&self.dir)
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
    pub fn write<F: Float>(
        &self,
        model: &OnlineNmf<F>,
        meta: &Metadata,
        run: &RunState<F>,
    ) -> Result<std::path::PathBuf> {
        let path = self
            .dir
            .join(format!("ckpt-{:012}.snmf", model.batches_seen()));
        write_atomic(&path, &encode_run(model, meta, Some(run))?)?;
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
                if e.file_name().to_string_lossy().starts_with(".streamnmf-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for path in self.list()? {
            let loaded = std::fs::read(&path)
                .map_err(Error::Io)
                .and_then(|b| decode_run::<F>(&b));
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

/// Reads a model file of element type `F`.
pub fn load<F: Float>(path: &Path) -> Result<(OnlineNmf<F>, Metadata)> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(e).in_file(path))?;
    decode(&bytes).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::NmfParams;
    use ndarray::Array2;

    fn fitted<F: Float>() -> OnlineNmf<F> {
        let x = Array2::from_shape_fn((300, 7), |(i, j)| F::from_f64(((i * j) % 5) as f64 + 0.1));
        let mut m = OnlineNmf::<F>::new(
            NmfParams::new(3)
                .batch_size(64)
                .max_passes(3)
                .check()
                .unwrap(),
        );
        m.fit(&x).unwrap();
        m.partial_fit(&x).unwrap();
        m
    }

    #[test]
    fn round_trip_is_exact_and_bytes_are_stable() {
        let meta = Metadata {
            feature_names: vec!["a".into()],
            ..Default::default()
        };
        let m = fitted::<f32>();
        let bytes = encode(&m, &meta).unwrap();
        let (back, meta2) = decode::<f32>(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(meta2, meta);
        assert_eq!(encode(&back, &meta2).unwrap(), bytes);
        let m = fitted::<f64>();
        let bytes = encode(&m, &meta).unwrap();
        assert_eq!(decode::<f64>(&bytes).unwrap().0, m);
        assert_eq!(float_type(&bytes).unwrap(), "f64");
        assert!(matches!(decode::<f32>(&bytes), Err(Error::ModelFile(_))));
    }

    /// Many loss-history floats in the JSON header: every one must come back exactly
    /// (serde_json needs `float_roundtrip` for that; without it about one value in a few
    /// hundred comes back one ULP off).
    #[test]
    fn header_floats_round_trip_exactly() {
        for seed in 0..8 {
            let x = Array2::from_shape_fn((400, 9), |(i, j)| {
                ((i * 31 + j * 7 + seed) % 11) as f64 * 0.37
            });
            let p = NmfParams::new(3)
                .batch_size(16)
                .max_passes(40)
                .pass_tol(0.0)
                .seed(seed as u64);
            let mut m = OnlineNmf::<f64>::new(p.check().unwrap());
            m.fit(&x).unwrap();
            assert_eq!(m.loss_history().len(), 40);
            let bytes = encode(&m, &Metadata::default()).unwrap();
            let (back, meta) = decode::<f64>(&bytes).unwrap();
            assert_eq!(back.loss_history(), m.loss_history());
            assert_eq!(encode(&back, &meta).unwrap(), bytes, "seed {seed}");
        }
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let bytes = encode(&fitted::<f64>(), &Metadata::default()).unwrap();
        for cut in [0, 10, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(decode::<f64>(&bytes[..cut]), Err(Error::ModelFile(_))),
                "cut {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        let err = decode::<f64>(&flipped).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let mut wrong = bytes;
        wrong[8] = 9;
        assert!(decode::<f64>(&wrong)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
    }
}
