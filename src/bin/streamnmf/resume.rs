//! What a `fit` run is and where it continues: the fingerprint a checkpoint must match
//! (inputs, their contents, reading settings, parameters), the checkpoint directory a run
//! holds, and what its checkpoints record.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use streamnmf::persist::{self, CheckpointDir, Metadata};
use streamnmf::pipeline::Checkpointing;
use streamnmf::ValidParams;

use crate::fit_args::FitArgs;

/// The element type of the newest readable checkpoint in `dir` (whether it is f64).
pub fn checkpoint_float(dir: &Path) -> Result<Option<bool>> {
    if !dir.is_dir() {
        bail!("--resume {}: no such checkpoint directory", dir.display());
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ckpt-") {
            if let Ok(Ok(t)) = std::fs::read(e.path()).map(|b| persist::float_type(&b)) {
                return Ok(Some(t == "f64"));
            }
        }
    }
    Ok(None)
}

/// What a run is, for telling whether a checkpoint belongs to it: the inputs (paths,
/// sizes, and what identifies their contents), reading settings, parameters and
/// staleness. Thread counts may differ.
pub fn fingerprint(a: &FitArgs, params: &ValidParams, staleness: usize, float: &str) -> Value {
    let files = streamnmf::io::expand_paths(&a.input.inputs).unwrap_or_default();
    let inputs: Vec<Value> = a
        .input
        .inputs
        .iter()
        .map(|p| json!([p, std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)]))
        .collect();
    let contents: Vec<Value> = files.iter().map(|f| content_id(f)).collect();
    let mut p = serde_json::to_value(params).unwrap_or(Value::Null);
    // Effective values, whether the parameters say them or leave them to their defaults
    // (as earlier versions' checkpoints always said them).
    p["batch_size"] = json!(params.batch_size());
    p["alpha_w"] = json!(params.alpha_w());
    p["alpha_h"] = json!(params.alpha_h());
    let mut fp = json!({
        "inputs": inputs,
        "contents": contents,
        "layout": a.input.layout,
        "columns": a.input.columns,
        "id_column": a.input.id_column,
        "width": a.input.width,
        "batch_size": params.batch_size(),
        "shuffle_rows": a.input.shuffle_rows,
        "params": p,
        "staleness": staleness,
        "float": float,
    });
    // Only when set, so checkpoints of earlier versions still match.
    if a.input.item_ids {
        fp["item_ids"] = json!(true);
    }
    fp
}

/// What identifies a file's contents cheaply: its size, modification time, and a
/// checksum of its first and last 64 KiB (a Parquet file's metadata is at its end).
pub fn content_id(path: &Path) -> Value {
    use std::io::{Read, Seek, SeekFrom};
    const EDGE: u64 = 64 * 1024;
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let mut crc = crc32fast::Hasher::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; EDGE as usize];
        for start in [0, len.saturating_sub(EDGE)] {
            if f.seek(SeekFrom::Start(start)).is_ok() {
                if let Ok(n) = f.read(&mut buf) {
                    crc.update(&buf[..n]);
                }
            }
        }
    }
    json!([path, len, mtime, crc.finalize()])
}

/// Settings of how long a run lasts, not of what it is: a resumed run may ask for more
/// passes or another convergence tolerance (checkpoints of older versions wrote no
/// tolerance, or one the pipeline never used).
const RUN_LENGTH: [&str; 2] = ["params.max_passes", "params.pass_tol"];

/// A resume that says nothing of how long the run lasts continues the interrupted run's
/// own [`RUN_LENGTH`], read from the checkpoint's fingerprint, so `fit ... --resume ck`
/// after `fit ... --epochs 3` makes those 3 passes, not the defaults' convergence test. A
/// checkpoint of a version without the test has no tolerance: its passes are all made.
pub fn inherit_run_length(a: &mut FitArgs, fingerprint: Option<&str>) {
    if a.epochs.is_some() || a.pass_tol.is_some() {
        return;
    }
    let Some(old) = fingerprint.and_then(|f| serde_json::from_str::<Value>(f).ok()) else {
        return;
    };
    let params = &old["params"];
    a.epochs = params["max_passes"]
        .as_u64()
        .and_then(|v| usize::try_from(v).ok());
    a.pass_tol = params["pass_tol"].as_f64();
}

/// The first setting that differs between two fingerprints, as `key: a vs b`, leaving out
/// [`RUN_LENGTH`]. A checkpoint written before contents were fingerprinted is compared
/// without them.
pub fn first_difference(old: &Value, new: &Value, path: &str) -> Option<String> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                if path.is_empty() && k == "contents" && !a.contains_key(k) {
                    tracing::warn!("checkpoint from an older version: input contents not checked");
                    return None;
                }
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if RUN_LENGTH.contains(&sub.as_str()) {
                    return None;
                }
                first_difference(x, y, &sub)
            })
        }
        (a, b) if a != b => Some(format!("{path}: checkpoint has {a}, this run has {b}")),
        _ => None,
    }
}

/// Where this run's checkpoints go: --checkpoint-dir, or back into the directory resumed
/// from (already held); taken (locked) now.
pub fn checkpoint_dir(
    a: &FitArgs,
    resume_dir: Option<CheckpointDir>,
) -> Result<Option<CheckpointDir>> {
    Ok(match (&a.checkpoint_dir, resume_dir) {
        (Some(d), Some(held)) if same_dir(d, held.path()) => Some(held),
        (Some(d), _) => Some(CheckpointDir::new(d, a.keep_checkpoints)?),
        (None, Some(held)) => Some(held),
        (None, None) => None,
    })
}

/// The checkpoint period when `--checkpoint-dir` (or `--resume`) names a directory but
/// neither `--checkpoint-every` nor `--checkpoint-seconds` says when: without one, a
/// run killed by SIGKILL (the OOM killer, a preempted node) before its end left nothing
/// to resume from, whatever it had read. A checkpoint costs about one model file write.
pub const DEFAULT_CHECKPOINT_SECONDS: u64 = 300;

/// The checkpoints of this run, into `dir`: at the periods asked for, every
/// [`DEFAULT_CHECKPOINT_SECONDS`] when none is, and at the end.
pub fn checkpointing(
    a: &FitArgs,
    dir: CheckpointDir,
    names: &[String],
    this_run: &Value,
) -> Checkpointing {
    let meta = Metadata {
        fingerprint: Some(this_run.to_string()),
        ..Metadata::default().with_feature_names(names.to_vec())
    };
    let mut c = Checkpointing::new(dir, meta);
    if let Some(n) = a.checkpoint_every {
        c = c.every_batches(n);
    }
    if let Some(t) = a.checkpoint_seconds {
        c = c.every(t);
    }
    if a.checkpoint_every.is_none() && a.checkpoint_seconds.is_none() {
        c = c.every(std::time::Duration::from_secs(DEFAULT_CHECKPOINT_SECONDS));
    }
    c
}

pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        fit: FitArgs,
    }

    /// The periods `fit` checkpoints at: the flags' when given (either or both), every
    /// [`DEFAULT_CHECKPOINT_SECONDS`] when a checkpoint directory comes with neither.
    #[test]
    fn checkpoint_periods_default_to_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let periods = |extra: &[&str]| {
            let mut args = vec!["fit", "in.parquet", "-k", "3", "--checkpoint-dir", "ck"];
            args.extend_from_slice(extra);
            let a = Cli::try_parse_from(args).unwrap().fit;
            let ck = CheckpointDir::new(&dir.path().join("ck"), 3).unwrap();
            checkpointing(&a, ck, &[], &Value::Null).periods()
        };
        let secs = Duration::from_secs;
        assert_eq!(periods(&[]), (None, Some(secs(DEFAULT_CHECKPOINT_SECONDS))));
        assert_eq!(periods(&["--checkpoint-every", "50"]), (Some(50), None));
        assert_eq!(
            periods(&["--checkpoint-seconds", "30"]),
            (None, Some(secs(30)))
        );
        assert_eq!(
            periods(&["--checkpoint-every", "7", "--checkpoint-seconds", "9"]),
            (Some(7), Some(secs(9)))
        );
    }
}
