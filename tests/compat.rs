//! Files written by earlier versions still load: a model (f32, Frobenius), a model (f64,
//! KL) and a checkpoint written by the version before the crate's redesign, checked in
//! under `tests/fixtures/v1/` with the `inspect --json` output and the `--components-out`
//! H of the same runs.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use streamnmf::persist::{self, CheckpointDir};
use streamnmf::{Float, OnlineNmf};

fn fixture(name: &str) -> PathBuf {
    common::manifest_dir().join("tests/fixtures/v1").join(name)
}

/// H from a `--components-out` file (a `component` column, then one column per feature).
fn components(path: &Path, f64s: bool) -> Array2<f64> {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let mut p = 0;
    for rb in r {
        let rb = rb.unwrap();
        p = rb.num_columns() - 1;
        for i in 0..rb.num_rows() {
            for j in 1..=p {
                let c = rb.column(j);
                rows.push(if f64s {
                    c.as_primitive::<Float64Type>().value(i)
                } else {
                    c.as_primitive::<Float32Type>().value(i) as f64
                });
            }
        }
    }
    Array2::from_shape_vec((rows.len() / p, p), rows).unwrap()
}

fn check_model<F: Float>(model: &str, inspect: &str, h: &str) -> OnlineNmf<F> {
    let path = fixture(model);
    let (m, meta) = persist::load::<F>(&path).unwrap();
    let want: Value = serde_json::from_slice(&std::fs::read(fixture(inspect)).unwrap()).unwrap();
    assert_eq!(want["batches_seen"], m.batches_seen());
    assert_eq!(want["rows_seen"], m.rows_seen());
    let hist: Vec<f64> = serde_json::from_value(want["loss_history"].clone()).unwrap();
    assert_eq!(hist, m.loss_history(), "loss history, exactly");
    assert_eq!(want["params"], serde_json::to_value(m.params()).unwrap());
    assert_eq!(meta.feature_names.len(), m.components().unwrap().ncols());
    let h_file = components(&fixture(h), F::NAME == "f64");
    assert_eq!(
        m.components().unwrap().mapv(|v| v.as_f64()),
        h_file,
        "H, exactly"
    );
    // Loading and saving reproduces the old file byte for byte: the format is unchanged.
    assert_eq!(persist::encode(&m, &meta), std::fs::read(&path).unwrap());
    m
}

#[test]
fn models_of_the_first_format_load_exactly() {
    let m = check_model::<f32>("model-v1.snmf", "model-v1.inspect.json", "h-v1.parquet");
    assert_eq!(m.params().rank(), 3);
    let kl = check_model::<f64>(
        "model-kl-f64-v1.snmf",
        "model-kl-f64-v1.inspect.json",
        "h-kl-f64-v1.parquet",
    );
    assert_eq!(kl.params().loss(), streamnmf::Loss::KullbackLeibler);
    // And they still work: fold rows in.
    let x = Array2::from_elem((4, 8), 1.0f32);
    assert_eq!(m.transform(&x).unwrap().dim(), (4, 3));
}

/// A checkpoint written mid-run by the first format resumes with today's binary and
/// finishes the run: same counters, and a dictionary that matches the old binary's
/// uninterrupted run (not to the bit: the products are now computed by another GEMM).
#[test]
fn a_checkpoint_of_the_first_format_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ck")).unwrap();
    std::fs::copy(fixture("input.parquet"), d.join("input.parquet")).unwrap();
    std::fs::copy(fixture("ckpt-v1.snmf"), d.join("ck/ckpt-000000000020.snmf")).unwrap();
    let (_, meta, run) = CheckpointDir::new(&d.join("ck"), 3)
        .unwrap()
        .latest::<f32>()
        .unwrap();
    assert_eq!(
        (run.position().epoch, run.position().batches_in_epoch),
        (1, 8)
    );
    assert_eq!(run.next_seq(), 20);
    assert!(meta.fingerprint.is_some());
    let out = Command::new(env!("CARGO_BIN_EXE_streamnmf"))
        .args([
            "fit",
            "input.parquet",
            "-k",
            "3",
            "--epochs",
            "3",
            "--batch-size",
            "100",
            "--resume",
            "ck",
            "--out",
            "resumed.snmf",
            "-q",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (resumed, _) = persist::load::<f32>(&d.join("resumed.snmf")).unwrap();
    let (old, _) = persist::load::<f32>(&fixture("model-v1.snmf")).unwrap();
    assert_eq!(resumed.batches_seen(), old.batches_seen());
    assert_eq!(resumed.rows_seen(), old.rows_seen());
    let (a, b) = (resumed.components().unwrap(), old.components().unwrap());
    let diff = (&a - &b).mapv(|v| (v as f64).powi(2)).sum().sqrt();
    let norm = b.mapv(|v| (v as f64).powi(2)).sum().sqrt();
    assert!(diff <= 1e-3 * norm, "resumed H differs by {}", diff / norm);
}
