//! The recommender workflow through the binary: observed-only fits on ratings with item
//! ids, a later chunk with new users and new items, codes and recommendations that ignore
//! unknown items (and count them), `evaluate` against metrics computed here, and the
//! errors of the new flags.

mod common;

use common::{fails, ok, run};

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::write_parquet;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use streamnmf::synth::RatingsSpec;

/// Ratings as triplets `user` (int), `item` (string id "m<j>"), `rating`.
fn write_ratings(path: &Path, rows: &[(usize, usize, f64)]) {
    let items = StringArray::from_iter_values(rows.iter().map(|r| format!("m{}", r.1)));
    write_parquet(path, &[ratings_batch(rows, Arc::new(items))], 4096);
}

/// Ratings as triplets `user` (int), `item` (int index), `rating`, in row groups of 1000.
fn write_int_ratings(path: &Path, rows: &[(usize, usize, f64)]) {
    let items = Int64Array::from_iter_values(rows.iter().map(|r| r.1 as i64));
    write_parquet(path, &[ratings_batch(rows, Arc::new(items))], 1000);
}

/// `rows` as a `user`, `item`, `rating` record batch, with the item column given.
fn ratings_batch(rows: &[(usize, usize, f64)], items: ArrayRef) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "user",
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.0 as i64),
            )) as ArrayRef,
        ),
        ("item", items),
        (
            "rating",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// The training entries of users `users` as triplets, keeping items accepted by `item`.
fn triplets(
    d: &streamnmf::synth::Ratings,
    users: std::ops::Range<usize>,
    item: impl Fn(usize) -> bool,
) -> Vec<(usize, usize, f64)> {
    let mut out = Vec::new();
    for i in users {
        let (cols, vals) = d.train.view().row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            if item(j as usize) {
                out.push((i, j as usize, v));
            }
        }
    }
    out
}

fn read_table(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

const LAYOUT: &[&str] = &["--layout", "triplets:user,item,rating", "--item-ids"];

/// The whole workflow: fit on a first chunk, keep learning from a chunk with new users
/// and new items (none dropped), then codes, recommendations and evaluation.
#[test]
fn ratings_with_item_ids_from_fit_to_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = RatingsSpec::new(1200, 150, 3)
        .density(0.15)
        .noise(0.3)
        .range(1.0, 5.0)
        .seed(3)
        .generate();
    // Chunk A: the first 600 users, items 0..120 only. Chunk B: the rest, every item.
    let a = triplets(&d, 0..600, |j| j < 120);
    let b = triplets(&d, 600..1200, |_| true);
    write_ratings(&dir.join("a.parquet"), &a);
    write_ratings(&dir.join("b.parquet"), &b);
    let test: Vec<(usize, usize, f64)> = d.test.iter().filter(|t| t.0 >= 600).cloned().collect();
    write_ratings(&dir.join("test.parquet"), &test);

    let fit = |args: &[&str]| {
        let mut v = vec!["fit"];
        v.extend_from_slice(args);
        v.extend_from_slice(LAYOUT);
        v.extend_from_slice(&["-q", "--epochs", "15", "--batch-size", "200"]);
        ok(&run(&v, dir))
    };
    fit(&[
        "a.parquet",
        "-k",
        "4",
        "--unobserved",
        "missing",
        "--out",
        "a.snmf",
    ]);
    let (_, meta) = streamnmf::persist::load::<f32>(&dir.join("a.snmf")).unwrap();
    let items_a: std::collections::BTreeSet<usize> = a.iter().map(|r| r.1).collect();
    assert_eq!(meta.feature_names.len(), items_a.len());
    // The model keeps its settings: a contradicting mode is refused.
    let e = fails(&run(
        &[
            "fit",
            "b.parquet",
            "--model",
            "a.snmf",
            "--unobserved",
            "zero",
            "--out",
            "x.snmf",
        ]
        .iter()
        .chain(LAYOUT)
        .copied()
        .collect::<Vec<_>>(),
        dir,
    ));
    assert!(e.contains("--unobserved"), "{e}");
    fit(&["b.parquet", "--model", "a.snmf", "--out", "b.snmf"]);
    let (model, meta) = streamnmf::persist::load::<f32>(&dir.join("b.snmf")).unwrap();
    let all: std::collections::BTreeSet<usize> = a.iter().chain(&b).map(|r| r.1).collect();
    assert_eq!(meta.feature_names.len(), all.len(), "no item dropped");
    // Old items keep their columns; new ones follow.
    assert_eq!(
        meta.feature_names[..items_a.len()],
        streamnmf::persist::load::<f32>(&dir.join("a.snmf"))
            .unwrap()
            .1
            .feature_names[..]
    );
    assert_eq!(model.components().unwrap().ncols(), all.len());

    // Codes with the first model: chunk B's new items are unknown to it, and counted.
    let out = ok(&run(
        &[
            "transform",
            "--model",
            "a.snmf",
            "b.parquet",
            "--out",
            "codes.parquet",
            "--json",
            "-q",
        ]
        .iter()
        .chain(LAYOUT)
        .copied()
        .collect::<Vec<_>>(),
        dir,
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let unknown = b.iter().filter(|r| r.1 >= 120).count();
    assert_eq!(v["ignored_entries"], unknown as u64);

    // Recommendations: N per user, best first, never an item the user rated.
    for threads in ["1", "2"] {
        let name = format!("recs{threads}.parquet");
        ok(&run(
            &[
                "recommend",
                "--model",
                "b.snmf",
                "b.parquet",
                "--out",
                &name,
                "-n",
                "5",
                "-q",
                "--threads",
                threads,
            ]
            .iter()
            .chain(LAYOUT)
            .copied()
            .collect::<Vec<_>>(),
            dir,
        ));
    }
    let recs = read_table(&dir.join("recs1.parquet"));
    assert_eq!(
        recs,
        read_table(&dir.join("recs2.parquet")),
        "threads change nothing"
    );
    let rated: std::collections::HashSet<(i64, String)> = b
        .iter()
        .map(|r| (r.0 as i64, format!("m{}", r.1)))
        .collect();
    let mut per_user = std::collections::BTreeMap::<i64, Vec<(i32, f32)>>::new();
    for rb in &recs {
        let user = rb.column(0).as_primitive::<Int64Type>();
        let rank = rb.column(1).as_primitive::<Int32Type>();
        let item = rb.column(2).as_string::<i32>();
        let score = rb.column(3).as_primitive::<Float32Type>();
        for r in 0..rb.num_rows() {
            assert!(!rated.contains(&(user.value(r), item.value(r).to_string())));
            per_user
                .entry(user.value(r))
                .or_default()
                .push((rank.value(r), score.value(r)));
        }
    }
    assert_eq!(per_user.len(), 600);
    for list in per_user.values() {
        assert_eq!(
            list.iter().map(|e| e.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(list.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    // Evaluation: the RMSE the command reports is the one computed here from the same
    // codes, and the model predicts held-out ratings to about the noise level.
    let out = ok(&run(
        &[
            "evaluate",
            "--model",
            "b.snmf",
            "b.parquet",
            "--test",
            "test.parquet",
            "--json",
        ]
        .iter()
        .chain(LAYOUT)
        .copied()
        .collect::<Vec<_>>(),
        dir,
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    let rmse = v["rmse"].as_f64().unwrap();
    let column: std::collections::HashMap<&str, usize> = meta
        .feature_names
        .iter()
        .enumerate()
        .map(|(j, n)| (n.as_str(), j))
        .collect();
    let mut x = streamnmf::CsrMatrix::<f32>::try_new(all.len(), vec![0], vec![], vec![]).unwrap();
    let _ = &mut x;
    let users: Vec<usize> = (600..1200).collect();
    let mut indptr = vec![0];
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    for &u in &users {
        let mut row: Vec<(u32, f32)> = b
            .iter()
            .filter(|r| r.0 == u)
            .map(|r| (column[format!("m{}", r.1).as_str()] as u32, r.2 as f32))
            .collect();
        row.sort_by_key(|e| e.0);
        idx.extend(row.iter().map(|e| e.0));
        val.extend(row.iter().map(|e| e.1));
        indptr.push(idx.len());
    }
    let hist = streamnmf::CsrMatrix::try_new(all.len(), indptr, idx, val).unwrap();
    let w = model.transform(&hist).unwrap();
    let h = model.components().unwrap();
    let (mut se, mut count) = (0.0, 0);
    for &(u, j, r) in &test {
        let Some(&c) = column.get(format!("m{j}").as_str()) else {
            continue;
        };
        let pred: f64 = w
            .row(u - 600)
            .iter()
            .zip(h.column(c))
            .map(|(a, b)| (a * b) as f64)
            .sum();
        se += (pred - r).powi(2);
        count += 1;
    }
    let want = (se / count as f64).sqrt();
    assert!(
        (rmse - want).abs() < 1e-3,
        "evaluate says {rmse}, computed {want}"
    );
    assert!(rmse < 0.6, "held-out RMSE {rmse}");
    assert_eq!(v["ratings"], count as u64);
    for key in ["precision", "recall", "ndcg", "map"] {
        let m = v[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m) && m > 0.0, "{key} {m}");
    }

    // A test set of users with no history in the inputs scores nothing: every metric is
    // undefined (null, "-"), not 0, and a warning says why.
    let strangers: Vec<(usize, usize, f64)> =
        test.iter().map(|&(u, j, r)| (u + 5000, j, r)).collect();
    write_ratings(&dir.join("strangers.parquet"), &strangers);
    let args: Vec<&str> = ["evaluate", "--model", "b.snmf", "b.parquet"]
        .iter()
        .chain(&["--test", "strangers.parquet"])
        .chain(LAYOUT)
        .copied()
        .collect();
    let out = run(&[&args[..], &["--json"]].concat(), dir);
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    for key in ["rmse", "mae", "precision", "recall", "ndcg", "map"] {
        assert!(v[key].is_null(), "{key}: {}", v[key]);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no held-out entry could be scored"), "{err}");
    let table = ok(&run(&args, dir));
    assert!(table.contains("NDCG@10       -"), "{table}");
}

/// Column indices (no ids): a later chunk with higher indices grows the model, a
/// narrower one is fine, without `--width`.
#[test]
fn integer_item_indices_grow_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = RatingsSpec::new(400, 60, 3)
        .density(0.3)
        .range(1.0, 5.0)
        .seed(8)
        .generate();
    let write = |name: &str, rows: &[(usize, usize, f64)]| {
        write_int_ratings(&dir.join(name), rows);
    };
    write("a.parquet", &triplets(&d, 0..200, |j| j < 40));
    write("b.parquet", &triplets(&d, 200..400, |_| true));
    write("c.parquet", &triplets(&d, 0..100, |j| j < 20));
    let l = [
        "--layout",
        "triplets:user,item,rating",
        "--unobserved",
        "missing",
        "-q",
    ];
    fn args<'a>(extra: &[&'a str], l: &[&'a str]) -> Vec<&'a str> {
        extra.iter().chain(l).copied().collect()
    }
    ok(&run(
        &args(&["fit", "a.parquet", "-k", "3", "--out", "a.snmf"], &l),
        dir,
    ));
    let l2 = ["--layout", "triplets:user,item,rating", "-q"];
    ok(&run(
        &args(
            &["fit", "b.parquet", "--model", "a.snmf", "--out", "b.snmf"],
            &l2,
        ),
        dir,
    ));
    ok(&run(
        &args(
            &["fit", "c.parquet", "--model", "b.snmf", "--out", "c.snmf"],
            &l2,
        ),
        dir,
    ));
    let width = |m: &str| {
        streamnmf::persist::load::<f32>(&dir.join(m))
            .unwrap()
            .0
            .components()
            .unwrap()
            .ncols()
    };
    assert_eq!(
        (width("a.snmf"), width("b.snmf"), width("c.snmf")),
        (40, 60, 60)
    );
}

/// `rank` on ratings with item ids: the catalogue grows as the ids arrive, as in `fit`
/// (it started empty and fixed, so every batch had no columns: "rank 2 exceeds the number
/// of columns p = 0"). With `--unobserved missing` only stored ratings are hidden and
/// scored (every cell was, unstored ones as zeros: a held-out RMSE of 1.6 on 1–5 stars at
/// every rank). Ids numbered in the order of their first appearance give the columns of
/// integer indices, so both tables score the same; a rank beyond the catalogue is refused
/// naming its size.
#[test]
fn rank_reads_item_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Rank 3 plus the rating scale's constant component: 4.
    let d = RatingsSpec::new(1500, 80, 3)
        .density(0.4)
        .noise(0.05)
        .range(1.0, 5.0)
        .seed(11)
        .generate();
    let rows = triplets(&d, 0..1500, |_| true);
    let mut first = std::collections::HashMap::new();
    let renumbered: Vec<(usize, usize, f64)> = rows
        .iter()
        .map(|&(u, j, v)| {
            let n = first.len();
            (u, *first.entry(j).or_insert(n), v)
        })
        .collect();
    write_ratings(&dir.join("ids.parquet"), &renumbered);
    write_int_ratings(&dir.join("ints.parquet"), &renumbered);
    let rank = |file: &str, extra: &[&str]| {
        let mut v = vec![
            "rank",
            file,
            "--layout",
            "triplets:user,item,rating",
            "--ranks",
            "1,2,4,8",
            "--json",
        ];
        v.extend_from_slice(extra);
        run(&v, dir)
    };
    let report = |file: &str, extra: &[&str]| -> Value {
        serde_json::from_str(&ok(&rank(file, extra))).unwrap()
    };
    let missing = ["--unobserved", "missing"];
    let by_ids = report("ids.parquet", &[&missing[..], &["--item-ids"]].concat());
    let by_ints = report("ints.parquet", &missing);
    assert_eq!(by_ids, by_ints);
    let rows = by_ids["rows"].as_array().unwrap();
    let stored = renumbered.len() as f64;
    let rmse: Vec<f64> = rows
        .iter()
        .map(|r| {
            let held = r["heldout_entries"].as_f64().unwrap();
            assert!((held / stored - 0.1).abs() < 0.01, "{r}");
            r["heldout_rmse"].as_f64().unwrap()
        })
        .collect();
    // Each rank up to the planted 4 predicts hidden ratings better; at 4, within 0.15 stars.
    assert!(rmse[0] > rmse[1] && rmse[1] > rmse[2], "{rmse:?}");
    assert!(rmse[2] < 0.15, "{rmse:?}");
    assert!(by_ids["picked"].as_u64().unwrap() >= 4, "{by_ids}");
    // The default, unstored entries as zeros: every cell is hidden or shown.
    let zeros = report("ids.parquet", &["--item-ids"]);
    let held = zeros["rows"][0]["heldout_entries"].as_f64().unwrap();
    assert!((held / (1500.0 * 80.0) - 0.1).abs() < 0.01, "{zeros}");
    let e = fails(&rank("ids.parquet", &["--item-ids", "--ranks", "2,100"]));
    assert!(e.contains("exceeds the number of columns p = 80"), "{e}");
    let e = fails(&rank("ids.parquet", &["--unobserved", "implicit"]));
    assert!(e.contains("--unobserved implicit"), "{e}");
}

/// Flag errors and missing values: one clear line each.
#[test]
fn recommender_flag_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rb = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                None,
                Some(2.0),
                Some(4.0),
            ])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(Float64Array::from(vec![
                Some(3.0),
                Some(1.0),
                Some(f64::NAN),
                Some(2.0),
            ])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&dir.join("d.parquet"), &[rb], 10);
    // Zero mode: a null is an error naming its row and column.
    let e = fails(&run(&["fit", "d.parquet", "-k", "1", "-q"], dir));
    assert!(
        e.contains("null") && e.contains("'a'") && e.contains("row 1"),
        "{e}"
    );
    // Missing mode: nulls and NaN are missing entries.
    ok(&run(
        &[
            "fit",
            "d.parquet",
            "-k",
            "1",
            "-q",
            "--unobserved",
            "missing",
            "--out",
            "m.snmf",
        ],
        dir,
    ));
    let e = fails(&run(&["fit", "d.parquet", "-k", "1", "--item-ids"], dir));
    assert!(e.contains("--item-ids needs --layout triplets"), "{e}");
    let e = fails(&run(
        &["fit", "d.parquet", "-k", "1", "--confidence-alpha", "5"],
        dir,
    ));
    assert!(e.contains("--unobserved implicit"), "{e}");
    let e = fails(&run(
        &[
            "fit",
            "d.parquet",
            "-k",
            "1",
            "--unobserved",
            "implicit",
            "--loss",
            "kl",
        ],
        dir,
    ));
    assert!(e.contains("implicit needs fro"), "{e}");
    let e = fails(&run(
        &[
            "fit",
            "d.parquet",
            "-k",
            "1",
            "--unobserved",
            "implicit",
            "--confidence-alpha=-1",
        ],
        dir,
    ));
    assert!(e.contains("confidence alpha"), "{e}");
    assert!(!e.contains("panicked"));
}

/// `transform --impute` fills the missing entries of a dense table (nulls) with W·H and
/// keeps the observed ones: on a noiseless rank-3 table with 30 % of the entries missing,
/// the filled values are within 5 % of the truth.
#[test]
fn impute_fills_missing_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (n, p) = (600, 12);
    let w =
        ndarray::Array2::from_shape_fn((n, 3), |(i, j)| 0.5 + ((i * 7 + j * 5) % 11) as f64 / 5.0);
    let h =
        ndarray::Array2::from_shape_fn((3, p), |(i, j)| 0.2 + ((i * 3 + j * 7) % 5) as f64 / 2.0);
    let x = w.dot(&h);
    let missing = |i: usize, j: usize| (i * 31 + j * 17) % 10 < 3;
    let cols: Vec<(String, ArrayRef)> = (0..p)
        .map(|j| {
            let v: Float64Array = (0..n)
                .map(|i| (!missing(i, j)).then_some(x[[i, j]]))
                .collect();
            (format!("f{j}"), Arc::new(v) as ArrayRef)
        })
        .collect();
    write_parquet(
        &dir.join("x.parquet"),
        &[RecordBatch::try_from_iter(cols).unwrap()],
        200,
    );
    ok(&run(
        &[
            "fit",
            "x.parquet",
            "-k",
            "3",
            "--unobserved",
            "missing",
            "--alpha-w",
            "0",
            "--alpha-h",
            "0",
            "--epochs",
            "60",
            "--float",
            "f64",
            "-q",
        ],
        dir,
    ));
    ok(&run(
        &[
            "transform",
            "--model",
            "model.snmf",
            "x.parquet",
            "--impute",
            "--out",
            "filled.parquet",
            "-q",
        ],
        dir,
    ));
    let t = read_table(&dir.join("filled.parquet"));
    let mut row = 0;
    let (mut err, mut norm) = (0.0, 0.0);
    for rb in &t {
        assert_eq!(rb.num_columns(), p);
        for r in 0..rb.num_rows() {
            for j in 0..p {
                let v = rb
                    .column(j)
                    .as_primitive::<arrow_array::types::Float64Type>()
                    .value(r);
                if missing(row, j) {
                    err += (v - x[[row, j]]).powi(2);
                    norm += x[[row, j]].powi(2);
                } else {
                    assert_eq!(v, x[[row, j]], "observed entries are kept");
                }
            }
            row += 1;
        }
    }
    assert_eq!(row, n);
    assert!(
        (err / norm).sqrt() < 0.05,
        "relative error of the filled entries {}",
        (err / norm).sqrt()
    );
    // A model of the zero mode has nothing to impute with.
    let full: Vec<(String, ArrayRef)> = (0..p)
        .map(|j| {
            (
                format!("f{j}"),
                Arc::new(Float64Array::from(x.column(j).to_vec())) as ArrayRef,
            )
        })
        .collect();
    write_parquet(
        &dir.join("full.parquet"),
        &[RecordBatch::try_from_iter(full).unwrap()],
        200,
    );
    ok(&run(
        &["fit", "full.parquet", "-k", "3", "-q", "--out", "z.snmf"],
        dir,
    ));
    let e = fails(&run(
        &[
            "transform",
            "--model",
            "z.snmf",
            "x.parquet",
            "--impute",
            "--out",
            "y.parquet",
        ],
        dir,
    ));
    assert!(
        e.contains("--impute needs a model fitted with --unobserved missing"),
        "{e}"
    );
    assert!(!dir.join("y.parquet").exists());
}
