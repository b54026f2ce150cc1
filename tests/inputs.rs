//! The input side of the attack catalogue: inputs that used to give a silent wrong answer
//! (unsorted triplets, an id learned as a feature, values too large for f32, flags that
//! contradict a saved model) are errors or honoured, named by file, row and column.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use common::*;
use streamnmf::persist;
use streamnmf::synth::PlantedSpec;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamnmf"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Fails with exit code 1 and one line holding every needle; writes nothing.
fn refused(dir: &Path, args: &[&str], needles: &[&str]) {
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let o = run(dir, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {err}");
    }
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "an output was left: {after:?}");
}

fn triplets(rows: &[(i64, i64, f64)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "user",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
        ),
        (
            "item",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef,
        ),
        (
            "rating",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// Under Itakura-Saito (undefined at zero) a triplet's stored zero is refused at its own
/// line and the value column, not at its row's first line; with `--epsilon` it is data.
#[test]
fn a_zero_triplet_under_itakura_saito_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rows = Vec::new();
    for r in 0..4 {
        for c in 0..3 {
            rows.push((r, c, 1.0 + (r * 3 + c) as f64));
        }
    }
    rows[10].2 = 0.0; // row 3, item 1: line 10 of the file, row 3's first line is 9
    write_parquet(&d.join("t.parquet"), &[triplets(&rows)], 100);
    refused(
        d,
        &triplet_fit("3", &["--loss", "is"]),
        &["t.parquet", "row 10, column 'rating'", "zero value"],
    );
    let floored = ["--loss", "is", "--epsilon", "1e-6", "--out", "m.snmf"];
    ok(&run(d, &triplet_fit("3", &floored)));
}

/// `fit t.parquet -k 1 -q` over `user,item,rating` triplets of `width` columns, then `extra`.
fn triplet_fit<'a>(width: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "fit",
        "t.parquet",
        "-k",
        "1",
        "--layout",
        "triplets:user,item,rating",
        "--width",
        width,
        "-q",
    ];
    a.extend_from_slice(extra);
    a
}

/// Triplets not grouped by row: the first row id that comes back is named, with the line.
/// A column past `--width` and a (row, item) pair given twice name the line or the row id,
/// and the real column.
#[test]
fn triplets_must_be_grouped_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fit_refused = |rows: &[(i64, i64, f64)], needles: &[&str]| {
        write_parquet(&d.join("t.parquet"), &[triplets(rows)], 100);
        refused(d, &triplet_fit("4", &[]), needles);
    };
    let returning = [
        (1, 0, 1.0),
        (1, 2, 2.0),
        (2, 1, 1.0),
        (1, 3, 4.0),
        (3, 0, 1.0),
    ];
    fit_refused(
        &returning,
        &[
            "t.parquet",
            "row 3, column 'user'",
            "row id 1 comes back after other rows",
        ],
    );
    // A column past a fixed width inside a row's run names its own line.
    let wide = [
        (1, 0, 1.0),
        (1, 2, 2.0),
        (2, 1, 1.0),
        (2, 9, 1.0),
        (3, 0, 1.0),
    ];
    fit_refused(
        &wide,
        &[
            "t.parquet",
            "row 3, column 'item'",
            "column index 9 outside 0..4",
        ],
    );
    let dup = [(1, 0, 1.0), (1, 2, 2.0), (1, 2, 3.0), (2, 1, 1.0)];
    fit_refused(
        &dup,
        &[
            "t.parquet",
            "column 'item'",
            "index 2 appears twice in one row of row id 1",
        ],
    );
}

/// Values too large for f32: reported as such (not as infinities) in f64 inputs; values
/// whose products overflow f32 inside the model stop the run naming the file and row, and
/// nothing is written; with `--float f64` both fit.
#[test]
fn values_beyond_f32_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(300, 5, 2).seed(1).generate().x;
    let mut big = x.clone();
    big[[123, 3]] = 1e300;
    write_parquet(
        &d.join("big.parquet"),
        &dense_batches(&big, 100, false),
        100,
    );
    refused(
        d,
        &["fit", "big.parquet", "-k", "2", "-q"],
        &[
            "big.parquet: row 123, column 'f3'",
            "1e300 is beyond the f32 range",
            "--float f64",
        ],
    );
    // 1e39 is beyond f32 too, and fits in f64 (1e300 does not: its square overflows f64).
    big[[123, 3]] = 1e39;
    write_parquet(
        &d.join("big.parquet"),
        &dense_batches(&big, 100, false),
        100,
    );
    refused(
        d,
        &["fit", "big.parquet", "-k", "2", "-q"],
        &["1e39 is beyond the f32 range"],
    );
    ok(&run(
        d,
        &[
            "fit",
            "big.parquet",
            "-k",
            "2",
            "-q",
            "--float",
            "f64",
            "--out",
            "a.snmf",
        ],
    ));
    let huge = x.mapv(|v| (v + 0.5) * 1e30);
    write_parquet(
        &d.join("huge.parquet"),
        &dense_batches(&huge, 100, false),
        100,
    );
    refused(
        d,
        &[
            "fit",
            "huge.parquet",
            "-k",
            "2",
            "-q",
            "--out",
            "h.snmf",
            "--components-out",
            "h.parquet",
        ],
        &["huge.parquet: row 0: its codes overflow f32", "--float f64"],
    );
    ok(&run(
        d,
        &[
            "fit",
            "huge.parquet",
            "-k",
            "2",
            "-q",
            "--float",
            "f64",
            "--out",
            "h.snmf",
        ],
    ));
    // In f64, KL statistics of values near its limit overflow: no single row is to blame,
    // so the error names the file and the batch, and there is no wider type to suggest.
    let limit = x.mapv(|v| (v + 0.5) * 1e300);
    write_parquet(
        &d.join("limit.parquet"),
        &dense_batches(&limit, 100, false),
        100,
    );
    let args = ["fit", "limit.parquet", "-k", "2", "-q", "--float", "f64"];
    let o = run(d, &[&args[..], &["--loss", "kl"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("limit.parquet: batch "), "{err}");
    assert!(err.contains("overflowed") && err.contains("f64"), "{err}");
    assert!(!err.contains("--float"), "{err}");
}

/// A table with no column that can be a feature: the error lists the columns it found
/// and their types (a variable-length list is not a dense row).
#[test]
fn a_table_without_numbers_lists_its_columns() {
    use arrow_array::builder::{LargeListBuilder, StringBuilder};
    use arrow_array::StringArray;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Lists of words (a list of numbers would hold the rows: see below).
    let mut lists = LargeListBuilder::new(StringBuilder::new());
    for i in 0..50 {
        lists.values().append_value("tag");
        lists.values().append_value(format!("t{i}"));
        lists.append(true);
    }
    let names = StringArray::from_iter_values((0..50).map(|i| format!("row {i}")));
    let batch = RecordBatch::try_from_iter([
        ("name", Arc::new(names) as ArrayRef),
        ("v", Arc::new(lists.finish()) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&d.join("lists.parquet"), &[batch], 50);
    refused(
        d,
        &["fit", "lists.parquet", "-k", "1", "-q"],
        &[
            "lists.parquet: no numeric columns to factorize",
            "'name' (Utf8)",
            "'v' (LargeList(Utf8",
        ],
    );
}

/// An empty file: the error names it.
#[test]
fn an_empty_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(10, 4, 2).seed(1).generate().x;
    let empty = dense_batches(&x, 10, false)[0].slice(0, 0);
    write_parquet(&d.join("empty.parquet"), &[empty], 10);
    refused(
        d,
        &["fit", "empty.parquet", "-k", "2", "-q"],
        &["empty.parquet", "no data to factorize: 0 rows x 4 columns"],
    );
}

/// All-zero data fits (there is nothing wrong with the file) but says that the model it
/// learned is all zeros; data with signal says nothing of the kind.
#[test]
fn an_all_zero_table_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(300, 6, 2).seed(1).generate().x;
    write_parquet(&d.join("x.parquet"), &dense_batches(&x, 100, false), 100);
    write_parquet(
        &d.join("zeros.parquet"),
        &dense_batches(&(x * 0.0), 100, false),
        100,
    );
    let warned = |input: &str| {
        let o = run(d, &["fit", input, "-k", "2", "-q", "--out", "m.snmf"]);
        ok(&o);
        String::from_utf8_lossy(&o.stderr)
            .contains("every atom of the model is zero: the data holds no signal")
    };
    assert!(warned("zeros.parquet"));
    assert!(!warned("x.parquet"));
}

/// A bad rating in a triplet file is named by its own line and the value column, in
/// either mode of unstored entries: the batch's checks knew only the row's first line and
/// a column index ("row 0, column '1'" for the second line's rating).
#[test]
fn a_bad_triplet_value_names_its_line() {
    use arrow_array::StringArray;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, rating: f64| {
        let batch = RecordBatch::try_from_iter([
            (
                "user",
                Arc::new(Int64Array::from(vec![1, 1, 1, 2])) as ArrayRef,
            ),
            (
                "item",
                Arc::new(StringArray::from(vec!["a", "b", "c", "a"])) as ArrayRef,
            ),
            (
                "rating",
                Arc::new(Float64Array::from(vec![4.0, 3.0, rating, 5.0])) as ArrayRef,
            ),
        ])
        .unwrap();
        write_parquet(&d.join(name), &[batch], 4);
    };
    write("neg.parquet", -3.0);
    write("inf.parquet", f64::INFINITY);
    write("nan.parquet", f64::NAN);
    let fit = |file: &'static str, mode: &'static str| {
        vec![
            "fit",
            file,
            "--layout",
            "triplets:user,item,rating",
            "--item-ids",
            "-k",
            "1",
            "-q",
            "--unobserved",
            mode,
        ]
    };
    for mode in ["zero", "missing"] {
        refused(
            d,
            &fit("neg.parquet", mode),
            &["neg.parquet: row 2, column 'rating': negative value -3"],
        );
        refused(
            d,
            &fit("inf.parquet", mode),
            &["inf.parquet: row 2, column 'rating': non-finite value inf"],
        );
    }
    refused(
        d,
        &fit("nan.parquet", "zero"),
        &["nan.parquet: row 2, column 'rating': non-finite value NaN"],
    );
    // Observed-only: a NaN rating is a missing one.
    ok(&run(d, &fit("nan.parquet", "missing")));
}

/// An integer column named like an id, among the columns taken by default, is refused
/// with the flags to use; named as the id column it is carried through.
#[test]
fn an_id_among_the_features_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(500, 6, 2).seed(1).generate().x;
    write_parquet(&d.join("x.parquet"), &dense_batches(&x, 250, true), 250);
    refused(
        d,
        &["fit", "x.parquet", "-k", "2", "-q"],
        &[
            "x.parquet",
            "column 'id' looks like a row id",
            "--id-column id",
            "--columns",
        ],
    );
    ok(&run(
        d,
        &[
            "fit",
            "x.parquet",
            "-k",
            "2",
            "-q",
            "--id-column",
            "id",
            "--out",
            "m.snmf",
        ],
    ));
    let (m, meta) = persist::load::<f32>(&d.join("m.snmf")).unwrap();
    assert_eq!(m.components().unwrap().ncols(), 6);
    assert!(!meta.feature_names.contains(&"id".to_string()));
    // Duplicate feature names would make an H that data frames cannot read.
    refused(
        d,
        &["fit", "x.parquet", "-k", "2", "-q", "--columns", "f0,f0,f1"],
        &["column 'f0' is asked for twice"],
    );
    refused(
        d,
        &["fit", "x.parquet", "-k", "2", "-q", "--columns", "f0,,f1"],
        &["x.parquet", "an empty column name", "--columns"],
    );
}

/// Boolean columns are features (0 and 1: one-hot and binary tables); columns that are
/// not numbers are left out of a default selection, and those that look like data (a
/// timestamp here, not the string label) are named in a warning naming the file; asked for by name, they
/// are refused.
#[test]
fn booleans_are_features_and_left_out_columns_are_named() {
    use arrow_array::{BooleanArray, StringArray, TimestampMicrosecondArray};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 300;
    let flag: Vec<bool> = (0..n).map(|i| (i * 7) % 3 != 0).collect();
    let batch = RecordBatch::try_from_iter([
        (
            "flag",
            Arc::new(BooleanArray::from(flag.clone())) as ArrayRef,
        ),
        (
            "when",
            Arc::new(TimestampMicrosecondArray::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        (
            "label",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("r{i}")),
            )) as ArrayRef,
        ),
        (
            "twice",
            Arc::new(Float64Array::from_iter_values(flag.iter().map(|&f| {
                if f {
                    2.0
                } else {
                    0.0
                }
            }))) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&d.join("x.parquet"), &[batch], 100);
    let o = run(d, &["fit", "x.parquet", "-k", "1", "-q", "--out", "m.snmf"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("'when' (Timestamp"), "{err}");
    assert!(
        err.contains("x.parquet: columns that are not numbers"),
        "{err}"
    );
    assert!(!err.contains("label"), "{err}");
    let (m, meta) = persist::load::<f32>(&d.join("m.snmf")).unwrap();
    assert_eq!(meta.feature_names, ["flag", "twice"]);
    // X = [f, 2f] is exactly rank one: the atom is (1, 2) up to scale.
    let h = m.components().unwrap();
    assert!((h[[0, 1]] / h[[0, 0]] - 2.0).abs() < 1e-3, "{h}");
    refused(
        d,
        &[
            "fit",
            "x.parquet",
            "-k",
            "1",
            "-q",
            "--columns",
            "when,twice",
        ],
        &[
            "x.parquet",
            "column 'when' has type Timestamp",
            "not a number",
        ],
    );
}

/// A saved model keeps its settings: flags that contradict them are refused naming them;
/// settings not given come from the model (its batch size, its rank), and --resume needs
/// no --rank.
#[test]
fn a_saved_model_keeps_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(2000, 8, 3).seed(1).generate().x;
    write_parquet(&d.join("x.parquet"), &dense_batches(&x, 1000, false), 500);
    ok(&run(
        d,
        &[
            "fit",
            "x.parquet",
            "-k",
            "3",
            "--loss",
            "kl",
            "--batch-size",
            "100",
            "--epochs",
            "1",
            "-q",
            "--out",
            "m.snmf",
        ],
    ));
    refused(
        d,
        &[
            "fit",
            "x.parquet",
            "--model",
            "m.snmf",
            "--loss",
            "fro",
            "--forget",
            "0.5",
            "-q",
            "--out",
            "n.snmf",
        ],
        &[
            "cannot keep learning with m.snmf",
            "--loss fro (the model has kl)",
            "--forget 0.5 (the model has 1)",
        ],
    );
    ok(&run(
        d,
        &[
            "fit",
            "x.parquet",
            "--model",
            "m.snmf",
            "--loss",
            "kl",
            "--epochs",
            "1",
            "-q",
            "--out",
            "n.snmf",
        ],
    ));
    let (n, _) = persist::load::<f32>(&d.join("n.snmf")).unwrap();
    assert_eq!(n.params().batch_size(), 100, "the model's batch size");
    assert_eq!(n.batches_seen(), 40);
    // --resume takes the rank (and everything else) from the checkpoint.
    ok(&run(
        d,
        &[
            "fit",
            "x.parquet",
            "-k",
            "3",
            "--epochs",
            "2",
            "-q",
            "--checkpoint-dir",
            "ck",
            "--out",
            "a.snmf",
        ],
    ));
    ok(&run(
        d,
        &[
            "fit",
            "x.parquet",
            "--epochs",
            "3",
            "-q",
            "--resume",
            "ck",
            "--out",
            "b.snmf",
        ],
    ));
    let (b, _) = persist::load::<f32>(&d.join("b.snmf")).unwrap();
    assert_eq!((b.params().rank(), b.loss_history().len()), (3, 3));
}

/// A sparse input whose largest column index is 2^40, without `--width`: an error saying
/// so, not an attempt to allocate a dictionary of 2^40 columns.
#[test]
fn a_huge_column_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_parquet(
        &d.join("t.parquet"),
        &[triplets(&[(1, 0, 1.0), (1, 1 << 40, 2.0), (2, 3, 1.0)])],
        10,
    );
    refused(
        d,
        &[
            "fit",
            "t.parquet",
            "-k",
            "2",
            "--layout",
            "triplets:user,item,rating",
            "-q",
        ],
        &[
            "t.parquet",
            "1099511627777 features",
            "more than the 4294967295 a sparse layout can index",
        ],
    );
    // Within the index range but beyond the machine's memory: refused before allocating.
    write_parquet(
        &d.join("t.parquet"),
        &[triplets(&[(1, 0, 1.0), (1, 4_000_000_000, 2.0)])],
        10,
    );
    refused(
        d,
        &[
            "fit",
            "t.parquet",
            "-k",
            "64",
            "--layout",
            "triplets:user,item,rating",
            "-q",
        ],
        &["a rank-64 model of 4000000001 features needs about", "GiB"],
    );
}

/// Rows at the top of f32's range, (3e38, 3e38): each row's code is 3e38·√2, beyond
/// f32. The code solver could not compute them and left them at 0, so a fit reported a
/// perfect loss and `transform` wrote zeros. Both are refused now, naming f64, which fits
/// the same file.
#[test]
fn codes_beyond_f32_are_refused_not_zeroed() {
    use arrow_array::Float32Array;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = || Arc::new(Float32Array::from(vec![3e38f32; 500])) as ArrayRef;
    let batch = RecordBatch::try_from_iter([("a", big()), ("b", big())]).unwrap();
    write_parquet(&d.join("big.parquet"), &[batch], 100);
    let needles = ["big.parquet: row 0: its codes overflow f32", "--float f64"];
    refused(
        d,
        &["fit", "big.parquet", "-k", "1", "-q", "--out", "m.snmf"],
        &needles,
    );
    // One such row among ordinary ones, in the file's third row group: the fit and the
    // transform of a model fitted without it both name its file and row.
    let row = 1234;
    let column = |scale: f32| {
        let v: Vec<f32> = (0..2000)
            .map(|i| {
                if i == row {
                    3e38
                } else {
                    scale * (1 + i % 7) as f32
                }
            })
            .collect();
        Arc::new(Float32Array::from(v)) as ArrayRef
    };
    let batch = RecordBatch::try_from_iter([("a", column(1.0)), ("b", column(2.0))]).unwrap();
    write_parquet(&d.join("one.parquet"), &[batch], 500);
    let at_row = "one.parquet: row 1234: its codes overflow f32";
    refused(
        d,
        &["fit", "one.parquet", "-k", "1", "-q", "--out", "m.snmf"],
        &[at_row, "--float f64"],
    );
    let plain = RecordBatch::try_from_iter([("a", column(1.0)), ("b", column(2.0))])
        .unwrap()
        .slice(0, row);
    write_parquet(&d.join("plain.parquet"), &[plain], 500);
    ok(&run(
        d,
        &["fit", "plain.parquet", "-k", "1", "-q", "--out", "p.snmf"],
    ));
    let transform = ["transform", "one.parquet", "--model", "p.snmf", "-q"];
    refused(
        d,
        &[&transform[..], &["--out", "w.parquet"]].concat(),
        &[at_row],
    );
    // A dictionary of the right direction, (1, 1)/√2, written by a fit in f64.
    let args = ["fit", "big.parquet", "-k", "1", "-q", "--out", "m.snmf"];
    ok(&run(d, &[&args[..], &["--float", "f64"]].concat()));
    let (m, _) = persist::load::<f64>(&d.join("m.snmf")).unwrap();
    let h = m.components().unwrap();
    assert!((h[[0, 0]] - h[[0, 1]]).abs() < 1e-6 * h[[0, 0]], "{h}");
    // The same atom, unit length, in f32: these rows' codes do not fit f32 either.
    let norm = h.row(0).dot(&h.row(0)).sqrt();
    let h32 = h.mapv(|v| (v / norm) as f32);
    let params = streamnmf::NmfParams::new(1).check().unwrap();
    let m32 = streamnmf::OnlineNmf::<f32>::from_components(params, h32).unwrap();
    let mut x = ndarray::Array2::from_elem((6, 2), 3.0f32);
    x.row_mut(4).fill(3e38);
    let e = m32.transform(&x).unwrap_err();
    assert!(
        matches!(
            e,
            streamnmf::Error::RowOverflow {
                row: 4,
                element: "f32"
            }
        ),
        "{e}"
    );
    // Ordinary magnitudes still transform.
    let w = m32
        .transform(&ndarray::Array2::from_elem((4, 2), 3.0f32))
        .unwrap();
    assert!((w[[0, 0]] - 3.0 * 2f32.sqrt()).abs() < 1e-4, "{w}");
}

/// A column of arrays (`List<float>`, as pyarrow stores a pandas column of numpy arrays,
/// and `LargeList`) holds dense rows: the same model as the same values in a
/// `FixedSizeList` column; the width is the first row's length or `--width`, and a row
/// of another length is named.
#[test]
fn a_column_of_arrays_holds_dense_rows() {
    use arrow_array::types::Float64Type;
    use arrow_array::{FixedSizeListArray, GenericListArray, OffsetSizeTrait};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(600, 10, 3).seed(4).generate().x;
    let rows = |short: Option<usize>| {
        (0..x.nrows())
            .map(|i| {
                let len = if short == Some(i) { 7 } else { x.ncols() };
                Some((0..len).map(|j| Some(x[[i, j]])).collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    };
    fn list<O: OffsetSizeTrait>(rows: Vec<Option<Vec<Option<f64>>>>) -> ArrayRef {
        Arc::new(GenericListArray::<O>::from_iter_primitive::<
            Float64Type,
            _,
            _,
        >(rows))
    }
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..x.nrows() as i64));
    let table =
        |emb: ArrayRef| RecordBatch::try_from_iter([("id", ids.clone()), ("emb", emb)]).unwrap();
    let fixed: ArrayRef = Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(rows(None), x.ncols() as i32),
    );
    write_parquet(&d.join("fixed.parquet"), &[table(fixed)], 250);
    write_parquet(
        &d.join("list.parquet"),
        &[table(list::<i32>(rows(None)))],
        250,
    );
    write_ipc_file(&d.join("large.arrow"), &[table(list::<i64>(rows(None)))]);
    write_parquet(
        &d.join("ragged.parquet"),
        &[table(list::<i32>(rows(Some(420))))],
        250,
    );
    let fit = |input: &str, out: &str, more: &[&str]| {
        let mut args = vec![
            "fit",
            input,
            "--id-column",
            "id",
            "-k",
            "3",
            "--epochs",
            "2",
            "-q",
            "--out",
            out,
        ];
        args.extend_from_slice(more);
        ok(&run(d, &args));
        let (m, meta) = persist::load::<f32>(&d.join(out)).unwrap();
        (
            m.components().unwrap().to_owned(),
            meta.feature_names.clone(),
        )
    };
    let want = fit("fixed.parquet", "fixed.snmf", &[]);
    assert_eq!(want.1[9], "emb[9]");
    assert_eq!(fit("list.parquet", "list.snmf", &[]), want);
    assert_eq!(fit("large.arrow", "large.snmf", &[]), want);
    assert_eq!(
        fit(
            "list.parquet",
            "w.snmf",
            &["--width", "10", "--columns", "emb"]
        ),
        want
    );
    refused(
        d,
        &[
            "fit",
            "ragged.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--out",
            "r.snmf",
        ],
        &[
            "ragged.parquet",
            "row 420",
            "column 'emb'",
            "a list of 7 values, where the rows have 10",
        ],
    );
    refused(
        d,
        &[
            "fit",
            "list.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--width",
            "12",
            "--out",
            "r.snmf",
        ],
        &["row 0", "a list of 10 values, where the rows have 12"],
    );
}
