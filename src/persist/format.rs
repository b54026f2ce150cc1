//! The model file format: versioned, checksummed, read back bit for bit.
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
//! fingerprint, writer version), `model` (parameters, counters, generator state, loss
//! history, dictionary and statistics) and, in checkpoints, `run`. Every array is a
//! `{"block": i, "dtype": "f32"|"f64", "dim": [...], "offset": o, "len": n}` reference
//! into the blocks (offset in bytes from the first block), in logical (row-major) order.
//! A block is stored as f32 when all its values are exactly f32, so nothing is ever
//! rounded: loading and saving a model gives the same bytes.
//!
//! The encoder writes the header and streams the arrays straight to the output (no copy
//! of the model); the decoder checks every array's shape against the model's rank and
//! width, so a file that passes the checksum but lies about its contents is an error,
//! not a panic later.

use std::io::Write;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ShapeBuilder};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::checkpoint::RunState;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::linalg::to_column_major;
use crate::model::{
    ColumnStats, Dictionary, Kept, Loss, OnlineNmf, Replay, State, Statistics, Unobserved,
    ValidParams,
};
use crate::solve::mu::descent_exponent;

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
///
/// ```
/// use streamnmf::persist::Metadata;
/// let m = Metadata::default().with_feature_names(vec!["a".into(), "b".into()]);
/// assert_eq!(m.feature_names, ["a", "b"]);
/// assert!(m.writer.starts_with("streamnmf "));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Names of the p features (columns of H).
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// A fingerprint of the input and run settings a checkpoint belongs to.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Input position, in checkpoints.
    #[serde(default)]
    pub position: Option<InputPosition>,
    /// The `streamnmf` version that wrote the file.
    #[serde(default)]
    pub writer: String,
    /// The source each atom belongs to (`compose`, `separate`), one per atom, or none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub atom_labels: Vec<String>,
    /// How the rows were made from audio, when they are spectrogram frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spectrogram: Option<Spectrogram>,
}

/// The short-time Fourier transform that turned audio into the rows of a model's data:
/// enough to turn a WAV into the same frames, and masked frames back into audio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spectrogram {
    /// Samples per second of the audio.
    pub sample_rate: u32,
    /// FFT size (and Hann window length), samples.
    pub fft_size: usize,
    /// Hop between frames, samples.
    pub hop: usize,
    /// The frames hold |STFT|^power: 1 (magnitude) or 2 (power).
    pub power: u8,
}

impl Default for Metadata {
    /// No names, no position, no fingerprint; written by this version.
    fn default() -> Self {
        Self {
            feature_names: Vec::new(),
            fingerprint: None,
            position: None,
            writer: format!("streamnmf {}", env!("CARGO_PKG_VERSION")),
            atom_labels: Vec::new(),
            spectrogram: None,
        }
    }
}

impl Metadata {
    /// Sets the feature names.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = names;
        self
    }
    /// Sets the atoms' source labels (one per atom, or none).
    pub fn with_atom_labels(mut self, labels: Vec<String>) -> Self {
        self.atom_labels = labels;
        self
    }
}

/// One array of the file: where it is and what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BlockRef {
    block: usize,
    dim: Vec<usize>,
    dtype: String,
    len: usize,
    offset: usize,
}

/// An array on its way out, read in logical order.
enum Out<'a, F> {
    Mat(ArrayView2<'a, F>),
    Vec(ArrayView1<'a, f64>),
    Flat(&'a [F]),
}

impl<F: Float> Out<'_, F> {
    fn dim(&self) -> Vec<usize> {
        match self {
            Out::Mat(a) => vec![a.nrows(), a.ncols()],
            Out::Vec(v) => vec![v.len()],
            Out::Flat(v) => vec![v.len()],
        }
    }
    fn for_each(&self, mut f: impl FnMut(f64)) {
        match self {
            Out::Mat(a) => a.iter().for_each(|v| f(v.as_f64())),
            Out::Vec(v) => v.iter().for_each(|&v| f(v)),
            Out::Flat(v) => v.iter().for_each(|v| f(v.as_f64())),
        }
    }
}

/// The arrays of a model (and run), in block order, with their header references.
struct Blocks<'a, F> {
    arrays: Vec<(Out<'a, F>, bool)>,
    bytes: usize,
}

impl<'a, F: Float> Blocks<'a, F> {
    fn new() -> Self {
        Self {
            arrays: Vec::new(),
            bytes: 0,
        }
    }
    /// Registers an array and returns its header reference.
    fn add(&mut self, a: Out<'a, F>) -> Value {
        let mut exact_f32 = true;
        a.for_each(|x| exact_f32 &= (x as f32) as f64 == x || x.is_nan());
        let dim = a.dim();
        let len: usize = dim.iter().product();
        let r = BlockRef {
            block: self.arrays.len(),
            dim,
            dtype: if exact_f32 { "f32" } else { "f64" }.into(),
            len,
            offset: self.bytes,
        };
        self.bytes += len * if exact_f32 { 4 } else { 8 };
        self.arrays.push((a, exact_f32));
        serde_json::to_value(r).expect("plain struct")
    }
    fn stats(&mut self, s: &'a Statistics<F>) -> Value {
        let mut v = json!({
            "a": self.add(Out::Mat(s.a.view())),
            "b": self.add(Out::Mat(s.b.view())),
            "energy": self.add(Out::Vec(s.energy.view())),
            "raw_rows": s.raw_rows,
            "rows": s.rows,
        });
        // Only models with per-column statistics have the key: other files are unchanged.
        if let Some(c) = &s.columns {
            v["columns"] = json!({
                "a": self.add(Out::Flat(&c.a)),
                "b": self.add(Out::Flat(&c.b)),
                "n": self.add(Out::Flat(&c.n)),
                "scale": c.scale,
            });
        }
        v
    }
}

/// A writer that keeps the CRC-32 of what went through it.
struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a model, its metadata and (in checkpoints) the run state to `out`.
pub(crate) fn encode_to<F: Float, W: Write>(
    out: W,
    model: &OnlineNmf<F>,
    meta: &Metadata,
    run: Option<&RunState<F>>,
) -> std::io::Result<()> {
    let st = model.state();
    let mut blocks = Blocks::new();
    // Block order: the sorted keys of the header (dict.current, dict.h, dict.previous,
    // then run.recent), as every version of the format has written them.
    let dict = st.dict.as_ref().map(|d| {
        let current = blocks.stats(&d.current);
        let h = blocks.add(Out::Mat(d.h.view()));
        let previous = d.previous.as_ref().map(|p| blocks.stats(p));
        let mut v = json!({
            "current": current,
            "h": h,
            "life_rows": d.life_rows,
            "loss": d.loss,
            "previous": previous,
            "rows_in_pass": d.rows_in_pass,
            "version": d.version,
        });
        // Checkpoints of an exact multi-pass fit only: model files never have the key.
        if let Some(r) = &d.replay {
            let kept: Vec<Value> = r
                .kept
                .iter()
                .map(|e| json!({"at": e.at, "stats": blocks.stats(&e.stats)}))
                .collect();
            v["replay"] = json!({"kept": kept, "next": r.next, "replacing": r.replacing});
        }
        // Only where files without the key mean another exponent (Itakura-Saito): the
        // others keep their bytes.
        if d.loss.mu_exponent() != descent_exponent(d.loss.beta()) {
            v["mu_exponent"] = json!(d.loss.mu_exponent());
        }
        v
    });
    let json_err = |e: serde_json::Error| std::io::Error::other(e.to_string());
    let mut model_json = json!({
        "batches": st.batches,
        "dict": dict,
        "history": st.history,
        "params": serde_json::to_value(&st.params).map_err(json_err)?,
        "pass_loss": st.pass_loss,
        "pass_rows": st.pass_rows,
        "passes": st.passes,
        "rng": serde_json::to_value(&st.rng).map_err(json_err)?,
        "rows": st.rows,
    });
    // Written only when there is one: files of single-pass models stay as they were.
    if !st.sample_losses.is_empty() {
        model_json["sample_losses"] = json!(st.sample_losses);
    }
    let mut header = json!({
        "float": F::NAME,
        "meta": serde_json::to_value(meta).map_err(json_err)?,
        "model": model_json,
    });
    if let Some(run) = run {
        let recent: Vec<Value> = run
            .recent
            .iter()
            .map(|(v, h)| json!([v, blocks.add(Out::Mat(h.view()))]))
            .collect();
        header["run"] = json!({
            "next_seq": run.next_seq,
            "position": run.position,
            "recent": recent,
        });
        // Only for distributed fits, so single-process checkpoints keep their bytes.
        if run.ranks != 1 {
            header["run"]["ranks"] = json!(run.ranks);
        }
    }
    let header = serde_json::to_vec(&header).map_err(json_err)?;

    let mut w = Crc {
        inner: out,
        hasher: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(&header)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for (a, exact_f32) in &blocks.arrays {
        let mut err = Ok(());
        a.for_each(|x| {
            if *exact_f32 {
                buf.extend_from_slice(&(x as f32).to_le_bytes());
            } else {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            if buf.len() >= 1 << 16 && err.is_ok() {
                err = w.write_all(&buf);
                buf.clear();
            }
        });
        err?;
    }
    w.write_all(&buf)?;
    let crc = w.hasher.clone().finalize();
    w.inner.write_all(&crc.to_le_bytes())?;
    w.inner.flush()
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
    let hlen = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
    let end = usize::try_from(hlen)
        .ok()
        .and_then(|h| h.checked_add(20))
        .filter(|&e| e <= body.len())
        .ok_or_else(|| bad("header length past the end of the file".into()))?;
    let header: Value =
        serde_json::from_slice(&body[20..end]).map_err(|e| bad(format!("header: {e}")))?;
    Ok((header, &body[end..]))
}

/// The element type (`"f32"` or `"f64"`) of a model file's bytes, after checking them.
pub(crate) fn float_type(bytes: &[u8]) -> Result<String> {
    let (h, _) = open_bytes(bytes)?;
    h["float"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::ModelFile("header has no float type".into()))
}

#[derive(Deserialize)]
struct ModelRec {
    batches: u64,
    dict: Option<DictRec>,
    history: Vec<f64>,
    #[serde(default)]
    sample_losses: Vec<f64>,
    params: ValidParams,
    pass_loss: f64,
    pass_rows: u64,
    passes: u64,
    rng: ChaCha8Rng,
    rows: u64,
}

#[derive(Deserialize)]
struct DictRec {
    current: StatsRec,
    h: BlockRef,
    /// Files written before the past-data scaling have none: it restarts at 0.
    #[serde(default)]
    life_rows: u64,
    loss: Loss,
    /// The multiplicative updates' exponent the statistics were summed with, written where
    /// it is not Févotte & Idier's, which files without it used.
    #[serde(default)]
    mu_exponent: Option<f64>,
    previous: Option<StatsRec>,
    #[serde(default)]
    replay: Option<ReplayRec>,
    rows_in_pass: u64,
    version: u64,
}

#[derive(Deserialize)]
struct ReplayRec {
    kept: Vec<KeptRec>,
    next: usize,
    replacing: bool,
}

#[derive(Deserialize)]
struct KeptRec {
    at: u64,
    stats: StatsRec,
}

#[derive(Deserialize)]
struct StatsRec {
    a: BlockRef,
    b: BlockRef,
    #[serde(default)]
    columns: Option<ColumnsRec>,
    energy: BlockRef,
    raw_rows: u64,
    rows: f64,
}

#[derive(Deserialize)]
struct ColumnsRec {
    a: BlockRef,
    b: BlockRef,
    n: BlockRef,
    scale: f64,
}

#[derive(Deserialize)]
struct RunRec {
    next_seq: u64,
    position: InputPosition,
    recent: Vec<(u64, BlockRef)>,
    #[serde(default = "one_rank")]
    ranks: usize,
}

fn one_rank() -> usize {
    1
}

/// Reads arrays out of the blocks, checking each against the shape it must have.
struct Reader<'a> {
    blocks: &'a [u8],
}

impl Reader<'_> {
    fn values(&self, r: &BlockRef, dim: &[usize], what: &str) -> Result<Vec<f64>> {
        let bad = |s: String| Error::ModelFile(format!("{what}: {s}"));
        if r.dim != dim {
            return Err(bad(format!("shape {:?}, expected {:?}", r.dim, dim)));
        }
        let len = dim
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {dim:?} too large")))?;
        if r.len != len {
            return Err(bad(format!("{} values for shape {:?}", r.len, dim)));
        }
        let width = match r.dtype.as_str() {
            "f32" => 4,
            "f64" => 8,
            other => return Err(bad(format!("unknown dtype '{other}'"))),
        };
        let bytes = len
            .checked_mul(width)
            .and_then(|n| n.checked_add(r.offset).map(|end| (r.offset, end)))
            .and_then(|(s, e)| self.blocks.get(s..e))
            .ok_or_else(|| bad("block past the end of the file".into()))?;
        let vals: Vec<f64> = bytes
            .chunks_exact(width)
            .map(|c| match c.try_into() {
                Ok(b4) => f32::from_le_bytes(b4) as f64,
                Err(_) => f64::from_le_bytes(c.try_into().expect("8 bytes")),
            })
            .collect();
        if let Some(v) = vals.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("non-finite value {v}")));
        }
        Ok(vals)
    }
    fn matrix<F: Float>(&self, r: &BlockRef, k: usize, p: usize, what: &str) -> Result<Array2<F>> {
        let v = self.values(r, &[k, p], what)?;
        Array2::from_shape_vec((k, p), v.into_iter().map(F::from_f64).collect())
            .map_err(|e| Error::ModelFile(format!("{what}: {e}")))
    }
    fn stats<F: Float>(
        &self,
        s: &StatsRec,
        loss: Loss,
        mode: Unobserved,
        k: usize,
        p: usize,
    ) -> Result<Statistics<F>> {
        let frobenius = loss.beta() == 2.0;
        let per_column = frobenius && mode != Unobserved::Zero;
        let a = self.matrix(&s.a, k, if frobenius { k } else { p }, "statistics A")?;
        let b_cols = if per_column { 0 } else { p };
        let b = self.matrix::<F>(&s.b, k, b_cols, "statistics B")?;
        let columns = match (&s.columns, per_column) {
            (None, false) => None,
            (Some(c), true) => {
                let flat = |r: &BlockRef, len: usize, what: &str| -> Result<Vec<F>> {
                    let n = p
                        .checked_mul(len)
                        .ok_or_else(|| Error::ModelFile(format!("{what}: too large")))?;
                    Ok(self
                        .values(r, &[n], what)?
                        .into_iter()
                        .map(F::from_f64)
                        .collect())
                };
                if !(c.scale.is_finite() && c.scale > 0.0) {
                    return Err(Error::ModelFile(format!(
                        "column statistics scale {}",
                        c.scale
                    )));
                }
                Some(ColumnStats {
                    k,
                    scale: c.scale,
                    a: flat(&c.a, k * (k + 1) / 2, "column statistics A")?,
                    b: flat(&c.b, k, "column statistics B")?,
                    n: flat(&c.n, 1, "column statistics counts")?,
                })
            }
            (None, true) => return Err(Error::ModelFile("column statistics missing".into())),
            (Some(_), false) => {
                return Err(Error::ModelFile(
                    "column statistics in a model without them".into(),
                ))
            }
        };
        // Frobenius keeps B column-major (see `Statistics::zeros`).
        let b = if frobenius {
            let mut cm = Array2::zeros((k, b_cols).f());
            cm.assign(&b);
            cm
        } else {
            b
        };
        let energy = Array1::from(self.values(&s.energy, &[k], "statistics energy")?);
        if !(s.rows.is_finite() && s.rows >= 0.0) {
            return Err(Error::ModelFile(format!("statistics rows {}", s.rows)));
        }
        Ok(Statistics {
            a,
            b,
            energy,
            rows: s.rows,
            raw_rows: s.raw_rows,
            columns,
        })
    }
}

/// The kept batch statistics of a checkpoint (see `model::replay`), checked.
fn replay<F: Float>(
    reader: &Reader,
    r: &ReplayRec,
    loss: Loss,
    mode: Unobserved,
    k: usize,
    p: usize,
) -> Result<Replay<F>> {
    if loss != Loss::Frobenius || mode != Unobserved::Zero || r.next > r.kept.len() {
        return Err(Error::ModelFile(
            "replay state does not fit the model".into(),
        ));
    }
    let kept = r
        .kept
        .iter()
        .map(|e| {
            Ok(Kept {
                stats: reader.stats(&e.stats, loss, mode, k, p)?,
                at: e.at,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Replay {
        kept,
        next: r.next,
        replacing: r.replacing,
    })
}

fn field<T: serde::de::DeserializeOwned>(v: &mut Value, key: &str) -> Result<T> {
    serde_json::from_value(v[key].take()).map_err(|e| Error::ModelFile(format!("{key}: {e}")))
}

/// Decodes a model, its metadata and the run state (present in checkpoints).
pub(crate) fn decode<F: Float>(
    bytes: &[u8],
) -> Result<(OnlineNmf<F>, Metadata, Option<RunState<F>>)> {
    let (mut header, blocks) = open_bytes(bytes)?;
    if header["float"].as_str() != Some(F::NAME) {
        return Err(Error::ModelFile(format!(
            "model holds {}, asked for {}",
            header["float"],
            F::NAME
        )));
    }
    let meta: Metadata = field(&mut header, "meta")?;
    let rec: ModelRec = field(&mut header, "model")?;
    let reader = Reader { blocks };
    let k = rec.params.rank();
    let dict = match &rec.dict {
        Some(d) => {
            let p = *d.h.dim.get(1).unwrap_or(&0);
            if d.loss != rec.params.loss() {
                return Err(Error::ModelFile(format!(
                    "dictionary built for loss {}, parameters say {}",
                    d.loss,
                    rec.params.loss()
                )));
            }
            let h = to_column_major(reader.matrix::<F>(&d.h, k, p, "dictionary H")?);
            if h.iter().any(|&v| v < F::zero()) {
                return Err(Error::ModelFile("dictionary H has negative values".into()));
            }
            let mode = rec.params.unobserved();
            let written = d
                .mu_exponent
                .unwrap_or_else(|| descent_exponent(d.loss.beta()));
            // Every exponent either rule gives lies in (0, 1].
            if !(written > 0.0 && written <= 1.0) {
                return Err(Error::ModelFile(format!(
                    "multiplicative exponent {written} outside (0, 1]"
                )));
            }
            let mut dict = Dictionary {
                h,
                loss: d.loss,
                mode,
                current: reader.stats(&d.current, d.loss, mode, k, p)?,
                previous: d
                    .previous
                    .as_ref()
                    .map(|s| reader.stats(s, d.loss, mode, k, p))
                    .transpose()?,
                rows_in_pass: d.rows_in_pass,
                version: d.version,
                life_rows: d.life_rows,
                replay: d
                    .replay
                    .as_ref()
                    .map(|r| replay(&reader, r, d.loss, mode, k, p))
                    .transpose()?,
            };
            if !dict.adopt_mu_exponent(written) {
                return Err(Error::ModelFile(format!(
                    "statistics overflow when re-weighted from exponent {written}"
                )));
            }
            Some(dict)
        }
        None => None,
    };
    let p = dict.as_ref().map(|d| d.h.ncols());
    let run = match header.get_mut("run").map(Value::take) {
        None | Some(Value::Null) => None,
        Some(mut v) => {
            let r: RunRec = serde_json::from_value(v.take())
                .map_err(|e| Error::ModelFile(format!("run: {e}")))?;
            let p = p.ok_or_else(|| Error::ModelFile("run state without a dictionary".into()))?;
            let recent = r
                .recent
                .iter()
                .map(|(ver, b)| {
                    // Narrower than H when the catalogue grew since that version.
                    let q = match b.dim.as_slice() {
                        [_, q] if *q <= p => *q,
                        _ => p,
                    };
                    let h = reader.matrix::<F>(b, k, q, "recent dictionary")?;
                    Ok((*ver, to_column_major(h)))
                })
                .collect::<Result<_>>()?;
            Some(RunState {
                next_seq: r.next_seq,
                position: r.position,
                recent,
                ranks: r.ranks,
            })
        }
    };
    let model = OnlineNmf::from_state(State {
        params: rec.params,
        dict,
        rng: rec.rng,
        batches: rec.batches,
        rows: rec.rows,
        passes: rec.passes,
        pass_loss: rec.pass_loss,
        pass_rows: rec.pass_rows,
        history: rec.history,
        sample_losses: rec.sample_losses,
    });
    Ok((model, meta, run))
}

#[cfg(test)]
mod tests;
