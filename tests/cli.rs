//! The real binary: end-to-end runs, one test per kind of bad input (clear one-line error
//! naming file, row and column; non-zero exit; nothing left behind), stdin streaming, and
//! bounded memory.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use common::*;
use ndarray::Array2;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use streamnmf::persist;
use streamnmf::synth::PlantedSpec;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streamnmf"))
}

fn run(args: &[&str], dir: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn data(n: usize, p: usize) -> Array2<f64> {
    PlantedSpec::new(n, p, 4).seed(2).generate().x
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Reads a codes file: ids and codes.
fn read_codes(path: &Path) -> (Vec<i64>, Array2<f32>) {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (mut ids, mut rows) = (Vec::new(), Vec::new());
    let mut k = 0;
    for rb in r {
        let rb = rb.unwrap();
        ids.extend(
            rb.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .iter(),
        );
        k = rb.num_columns() - 1;
        for i in 0..rb.num_rows() {
            rows.extend((0..k).map(|j| rb.column(j + 1).as_primitive::<Float32Type>().value(i)));
        }
    }
    let n = ids.len();
    (ids, Array2::from_shape_vec((n, k), rows).unwrap())
}

#[test]
fn fit_transform_inspect_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data(3000, 20);
    write_parquet(&d.join("x.parquet"), &dense_batches(&x, 700, true), 500);
    let out = run(
        &[
            "fit",
            "x.parquet",
            "-k",
            "4",
            "--epochs",
            "6",
            "--batch-size",
            "256",
            "--id-column",
            "id",
            "--threads",
            "2",
            "--out",
            "m.snmf",
            "--components-out",
            "h.parquet",
            "--codes-out",
            "w.parquet",
            "--json",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], 18000);
    assert_eq!(summary["passes"], 6);
    assert_eq!(summary["codes_rows"], 3000);
    assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0);
    let hist = summary["loss_history"].as_array().unwrap();
    assert_eq!(hist.len(), 6);
    assert!(hist[5].as_f64().unwrap() < hist[0].as_f64().unwrap());

    // The codes carry the ids and equal the library's transform with the saved model.
    let (model, meta) = persist::load::<f32>(&d.join("m.snmf")).unwrap();
    assert_eq!(meta.feature_names[0], "f0");
    let (ids, w) = read_codes(&d.join("w.parquet"));
    assert_eq!(ids, (1000..4000).collect::<Vec<i64>>());
    let expected = model.transform(&x.mapv(|v| v as f32)).unwrap();
    assert_eq!(w, expected);
    let rel = model
        .loss(&x.mapv(|v| v as f32))
        .unwrap()
        .relative_error
        .unwrap();
    assert!(rel < 0.05, "relative error {rel}");

    // transform with the saved model gives the same file contents.
    let out = run(
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "--id-column",
            "id",
            "--out",
            "w2.parquet",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_codes(&d.join("w2.parquet")), (ids, w));

    let out = run(&["inspect", "m.snmf", "--json", "--top", "3"], d);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["width"], 20);
    assert_eq!(v["rows_seen"], 18000);
    assert_eq!(v["top_features"].as_array().unwrap().len(), 4);
    assert!(v["top_features"][0][0][0]
        .as_str()
        .unwrap()
        .starts_with('f'));
    let text = run(&["inspect", "m.snmf"], d);
    assert!(String::from_utf8_lossy(&text.stdout).contains("component 3:"));
    let names = files_in(d);
    assert_eq!(
        names,
        vec![
            "h.parquet",
            "m.snmf",
            "w.parquet",
            "w2.parquet",
            "x.parquet"
        ]
    );
}

/// With no `--batch-size`, a new fit sizes its batches by the data, as the library and the
/// Python package do: dense Frobenius from its rank and the footers' row count (3000 rows,
/// k 4: 64), dense KL 256 (`DENSE_BETA_BATCH`); a given size is kept. The saved model
/// records the size.
#[test]
fn default_batch_sizes_follow_the_data() {
    let dir = dir_with(&data(3000, 20));
    let batch = |extra: &[&str]| fitted_batch_size(dir.path(), "x.parquet", extra);
    assert_eq!(batch(&[]), 64);
    assert_eq!(batch(&["--loss", "kl"]), 256);
    assert_eq!(batch(&["--loss", "kl", "--batch-size", "100"]), 100);
}

/// The batch size a one-pass fit of `file` at k 4 (with `extra` flags) records in its
/// model.
fn fitted_batch_size(dir: &Path, file: &str, extra: &[&str]) -> usize {
    let mut args = vec![
        "fit", file, "-k", "4", "--epochs", "1", "-q", "--out", "m.snmf",
    ];
    args.extend_from_slice(extra);
    ok(&run(&args, dir));
    let (model, _) = persist::load::<f32>(&dir.join("m.snmf")).unwrap();
    model.params().batch_size()
}

/// Sparse triplets with no `--batch-size`: a Frobenius fit sizes its batches by the rank
/// and the shape the footers give (`sparse_batch_rows`: 20 000 rows with 5 entries each,
/// 4000 wide, k 4: at least 8 updates a pass, 2496 rows); string row ids (rows unknown)
/// and KL keep the mode's 1024.
#[test]
fn default_batch_sizes_of_sparse_data() {
    use arrow_array::Int64Array;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, per_row, width) = (20_000usize, 5usize, 4000usize);
    let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for e in 0..per_row {
            rows.push(i as i64);
            cols.push(((i % 4) * 1000 + e * 37 + i % 29) as i64);
            vals.push(1.0 + (i % 7) as f64);
        }
    }
    let names: Vec<String> = rows.iter().map(|r| format!("user{r}")).collect();
    let write = |file: &str, row: ArrayRef| {
        let rb = RecordBatch::try_from_iter([
            ("row", row),
            ("col", Arc::new(Int64Array::from(cols.clone())) as ArrayRef),
            (
                "value",
                Arc::new(Float64Array::from(vals.clone())) as ArrayRef,
            ),
        ])
        .unwrap();
        write_parquet(&d.join(file), &[rb], 30_000);
    };
    write("ints.parquet", Arc::new(Int64Array::from(rows.clone())));
    write("names.parquet", Arc::new(StringArray::from(names)));
    let w = width.to_string();
    let batch = |file: &str, extra: &[&str]| {
        let mut args = vec!["--layout", "triplets:row,col,value", "--width", &w];
        args.extend_from_slice(extra);
        fitted_batch_size(d, file, &args)
    };
    assert_eq!(
        batch("ints.parquet", &[]),
        streamnmf::model::sparse_batch_rows(4, n as u64, (n * per_row) as u64, width as u64)
    );
    assert_eq!(batch("ints.parquet", &[]), 2496);
    assert_eq!(batch("names.parquet", &[]), 1024);
    assert_eq!(batch("ints.parquet", &["--loss", "kl"]), 1024);
    assert_eq!(batch("ints.parquet", &["--batch-size", "300"]), 300);
}

#[test]
fn fit_from_stdin_stream() {
    let dir = tempfile::tempdir().unwrap();
    let x = data(2000, 12);
    let bytes = ipc_stream_bytes(&dense_batches(&x, 300, false));
    let mut child = bin()
        .args([
            "fit",
            "-",
            "-k",
            "3",
            "--batch-size",
            "200",
            "--json",
            "--out",
            "live.snmf",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 2000);
    assert_eq!(v["passes"], 1);
    let (m, _) = persist::load::<f32>(&dir.path().join("live.snmf")).unwrap();
    assert_eq!(m.components().unwrap().dim(), (3, 12));
}

/// Runs a failing command; checks exit code, a one-line error containing `needles`, and
/// that the directory holds exactly the files it held before.
fn fails(args: &[&str], dir: &Path, needles: &[&str]) {
    let before = files_in(dir);
    let out = run(args, dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {err}");
    }
    assert_eq!(files_in(dir), before, "output left behind");
}

fn dir_with(x: &Array2<f64>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("x.parquet"),
        &dense_batches(x, 500, false),
        400,
    );
    dir
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        &["fit", "nope.parquet", "-k", "2"],
        dir.path(),
        &["nope.parquet", "no such file"],
    );
}

#[test]
fn not_parquet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.parquet"), "id,a,b\n1,2,3\n").unwrap();
    fails(
        &["fit", "x.parquet", "-k", "2"],
        dir.path(),
        &["x.parquet", "not a Parquet or Arrow IPC file"],
    );
}

#[test]
fn truncated_parquet() {
    let dir = dir_with(&data(1000, 6));
    let p = dir.path().join("x.parquet");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["fit", "x.parquet", "-k", "2"],
        dir.path(),
        &["x.parquet", "Parquet"],
    );
}

#[test]
fn missing_column() {
    let dir = dir_with(&data(1000, 6));
    fails(
        &["fit", "x.parquet", "-k", "2", "--columns", "f1,zzz"],
        dir.path(),
        &["x.parquet", "missing column 'zzz'"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--id-column", "user"],
        dir.path(),
        &["missing column 'user'"],
    );
}

#[test]
fn non_numeric_column() {
    let dir = tempfile::tempdir().unwrap();
    let rb = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringArray::from(vec!["x", "y", "z"])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&dir.path().join("x.parquet"), &[rb], 10);
    fails(
        &["fit", "x.parquet", "-k", "1", "--columns", "a,name"],
        dir.path(),
        &["x.parquet", "column 'name'", "not a number"],
    );
}

#[test]
fn null_value() {
    let dir = tempfile::tempdir().unwrap();
    let vals: Vec<Option<f64>> = (0..50)
        .map(|i| if i == 17 { None } else { Some(i as f64) })
        .collect();
    let rb = RecordBatch::try_from_iter([
        (
            "f1",
            Arc::new(Float64Array::from(vec![1.0; 50])) as ArrayRef,
        ),
        ("f2", Arc::new(Float64Array::from(vals)) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&dir.path().join("x.parquet"), &[rb], 10);
    fails(
        &["fit", "x.parquet", "-k", "1"],
        dir.path(),
        &["x.parquet", "row 17, column 'f2'", "null"],
    );
}

#[test]
fn negative_value_and_nan() {
    let mut x = data(3000, 8);
    x[[1234, 5]] = -1.0;
    // A later row in an earlier column: the first bad value in row order is reported.
    x[[1500, 1]] = -2.0;
    let dir = dir_with(&x);
    fails(
        &["fit", "x.parquet", "-k", "2", "--out", "m.snmf"],
        dir.path(),
        &["x.parquet", "row 1234, column 'f5'", "negative value -1"],
    );
    let mut x = data(3000, 8);
    x[[2999, 0]] = f64::NAN;
    let dir = dir_with(&x);
    fails(
        &["fit", "x.parquet", "-k", "2"],
        dir.path(),
        &["x.parquet", "row 2999, column 'f0'", "non-finite"],
    );
}

#[test]
fn itakura_saito_zero() {
    let dir = dir_with(&data(500, 6));
    fails(
        &["fit", "x.parquet", "-k", "2", "--loss", "is"],
        dir.path(),
        &["x.parquet", "column 'f", "zero value"],
    );
}

#[test]
fn schema_changes_between_files() {
    let x = data(1000, 8);
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("a.parquet"),
        &dense_batches(&x, 500, false),
        400,
    );
    write_parquet(
        &dir.path().join("b.parquet"),
        &dense_batches(&x.mapv(|v| v as f32 as f64), 500, false),
        400,
    );
    // Same names, another type in b.
    let rb = RecordBatch::try_from_iter([(
        "f0",
        Arc::new(arrow_array::Float32Array::from(vec![1.0f32; 10])) as ArrayRef,
    )])
    .unwrap();
    write_parquet(&dir.path().join("c.parquet"), &[rb], 10);
    fails(
        &[
            "fit",
            "a.parquet",
            "c.parquet",
            "-k",
            "2",
            "--columns",
            "f0",
        ],
        dir.path(),
        &["c.parquet", "schema changes between files", "'f0'"],
    );
    fails(
        &["fit", ".", "-k", "2"],
        dir.path(),
        &["c.parquet", "schema changes between files"],
    );
}

#[test]
fn width_differs_from_model() {
    let dir = dir_with(&data(1000, 8));
    let d = dir.path();
    let ok = run(
        &[
            "fit",
            "x.parquet",
            "-k",
            "2",
            "--epochs",
            "1",
            "--out",
            "m.snmf",
        ],
        d,
    );
    assert!(ok.status.success());
    let narrow = data(300, 5);
    write_parquet(
        &d.join("narrow.parquet"),
        &dense_batches(&narrow, 100, false),
        100,
    );
    fails(
        &[
            "transform",
            "--model",
            "m.snmf",
            "narrow.parquet",
            "--out",
            "w.parquet",
        ],
        d,
        &["narrow.parquet", "missing column 'f5'"],
    );
    fails(
        &[
            "transform",
            "--model",
            "m.snmf",
            "narrow.parquet",
            "--columns",
            "f0,f1,f2,f3,f4",
            "--out",
            "w.parquet",
        ],
        d,
        // The input is named, not the output being written.
        &["narrow.parquet: data has 5 columns but the model was built for 8"],
    );
    fails(&["inspect", "x.parquet"], d, &["x.parquet", "bad magic"]);
}

#[test]
fn rank_larger_than_width_and_bad_layout() {
    let dir = dir_with(&data(100, 3));
    fails(
        &["fit", "x.parquet", "-k", "5"],
        dir.path(),
        &["rank k = 5 exceeds the number of columns p = 3"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--layout", "csv"],
        dir.path(),
        &["unknown layout 'csv'"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--forget", "0"],
        dir.path(),
        &["forget factor must be in (0, 1]"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--decay=-1"],
        dir.path(),
        &["decay must be finite and >= 0, got -1"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--code-tol=-0.5"],
        dir.path(),
        &["code_tol must be finite and >= 0, got -0.5"],
    );
    fails(
        &["fit", "x.parquet", "-k", "2", "--code-max-iter", "0"],
        dir.path(),
        &["code_max_iter must be at least 1"],
    );
}

/// Peak memory is flat in n: streaming a file 4x larger costs no more memory, and far
/// less than the data.
#[test]
fn memory_is_bounded_by_the_queues_not_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let spec = PlantedSpec::new(200_000, 100, 6).seed(1);
    let h = spec.dictionary();
    let write = |name: &str, n: usize| -> PathBuf {
        let path = dir.path().join(name);
        let mut parts = Vec::new();
        for start in (0..n).step_by(20_000) {
            let (x, _) = spec.rows(h.view(), start, 20_000);
            parts.extend(dense_batches(&x, 20_000, false));
        }
        write_parquet(&path, &parts, 8192);
        path
    };
    let small = write("small.parquet", 40_000);
    let big = write("big.parquet", 200_000);
    let rss = |p: &Path| {
        let out = run(
            &[
                "fit",
                p.to_str().unwrap(),
                "-k",
                "6",
                "--epochs",
                "1",
                "--batch-size",
                "1024",
                "--json",
                "-q",
                "--out",
                "m.snmf",
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["peak_rss_bytes"].as_u64().unwrap() as f64 / 1e6
    };
    let (rs, rb) = (rss(&small), rss(&big));
    let raw_mb = 200_000.0 * 100.0 * 8.0 / 1e6;
    // Five times the rows (160 MB of values) may not add more than the allocator's
    // slack: with the other tests of this file running at the same time, glibc's
    // per-thread arenas alone moved the peak by 16 MB between runs.
    assert!(
        rb < rs + 24.0,
        "peak RSS grew with n: {rs:.0} MB -> {rb:.0} MB"
    );
    assert!(rb < 96.0, "peak RSS {rb:.0} MB for {raw_mb:.0} MB of data");
}
