//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ndarray::Array2;
use streamnmf::synth::{match_components, Planted, PlantedSpec};

/// The planted data set of the issue: 5000 × 200, k = 8, sparse factors, small noise.
pub fn planted() -> Planted {
    PlantedSpec::new(5000, 200, 8).seed(7).generate()
}

/// Poisson counts with mean W*H* (mean count 20).
pub fn planted_counts() -> Planted {
    PlantedSpec::new(5000, 200, 8)
        .poisson(20.0)
        .seed(11)
        .generate()
}

/// Smallest per-atom cosine between the true and learned dictionaries.
pub fn min_cosine(truth: &Array2<f64>, learned: &Array2<f64>) -> f64 {
    match_components(truth.view(), learned.view())
        .into_iter()
        .fold(1.0, f64::min)
}

/// `‖X − WH‖_F / ‖X‖_F` computed directly.
pub fn relative_error(x: &Array2<f64>, w: &Array2<f64>, h: &Array2<f64>) -> f64 {
    let r = x - &w.dot(h);
    (r.iter().map(|v| v * v).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>()).sqrt()
}

/// Installs a test subscriber once so `RUST_LOG=debug cargo test` shows the library's logs.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// ---- writing inputs -------------------------------------------------------------------

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeListBuilder, Float64Builder, Int64Builder, ListBuilder, StructBuilder,
};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Record batches of `x` (one Float64 column `f{j}` per feature), `rows` rows each, with
/// an `id` column (row index + 1000) when asked.
pub fn dense_batches(x: &Array2<f64>, rows: usize, with_id: bool) -> Vec<RecordBatch> {
    (0..x.nrows())
        .step_by(rows)
        .map(|s| {
            let e = (s + rows).min(x.nrows());
            let mut cols: Vec<(String, ArrayRef)> = Vec::new();
            if with_id {
                cols.push((
                    "id".into(),
                    Arc::new(Int64Array::from_iter_values(
                        (s..e).map(|i| i as i64 + 1000),
                    )),
                ));
            }
            for j in 0..x.ncols() {
                let v: Vec<f64> = (s..e).map(|i| x[[i, j]]).collect();
                cols.push((format!("f{j}"), Arc::new(Float64Array::from(v))));
            }
            RecordBatch::try_from_iter(cols).unwrap()
        })
        .collect()
}

/// Writes record batches to Parquet, `group` rows per row group.
pub fn write_parquet(path: &Path, batches: &[RecordBatch], group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut w = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// Writes record batches as an Arrow IPC file.
pub fn write_ipc_file(path: &Path, batches: &[RecordBatch]) {
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(File::create(path).unwrap(), &batches[0].schema())
            .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

/// Arrow IPC stream bytes of record batches.
pub fn ipc_stream_bytes(batches: &[RecordBatch]) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(&mut buf, &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }
    buf
}

/// Arrow IPC bytes of record batches with `codec` buffers (LZ4 is what
/// `pandas.DataFrame.to_feather` writes): a file when `file`, else a stream.
pub fn compressed_ipc_bytes(
    batches: &[RecordBatch],
    codec: arrow_ipc::CompressionType,
    file: bool,
) -> Vec<u8> {
    use arrow_ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
    let opts = IpcWriteOptions::default()
        .try_with_compression(Some(codec))
        .unwrap();
    let schema = batches[0].schema();
    let mut buf = Vec::new();
    if file {
        let mut w = FileWriter::try_new_with_options(&mut buf, &schema, opts).unwrap();
        batches.iter().for_each(|b| w.write(b).unwrap());
        w.finish().unwrap();
    } else {
        let mut w = StreamWriter::try_new_with_options(&mut buf, &schema, opts).unwrap();
        batches.iter().for_each(|b| w.write(b).unwrap());
        w.finish().unwrap();
    }
    buf
}

/// `x` as one `FixedSizeList<Float64>` column `v`.
pub fn fixed_list_batch(x: &Array2<f64>) -> RecordBatch {
    let mut b = FixedSizeListBuilder::new(Float64Builder::new(), x.ncols() as i32);
    for row in x.rows() {
        for &v in row {
            b.values().append_value(v);
        }
        b.append(true);
    }
    RecordBatch::try_from_iter([("v", Arc::new(b.finish()) as ArrayRef)]).unwrap()
}

/// `x`'s non-zeros as (row, col, value) triplets, with `rows` triplet rows per batch (so
/// rows of X span record batches).
pub fn triplet_batches(x: &Array2<f64>, rows: usize) -> Vec<RecordBatch> {
    let mut t = Vec::new();
    for ((i, j), &v) in x.indexed_iter() {
        if v != 0.0 {
            t.push((i as i64 + 7, j as i64, v));
        }
    }
    t.chunks(rows)
        .map(|c| {
            RecordBatch::try_from_iter([
                (
                    "user",
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|e| e.0))) as ArrayRef,
                ),
                (
                    "item",
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|e| e.1))) as ArrayRef,
                ),
                (
                    "rating",
                    Arc::new(Float64Array::from_iter_values(c.iter().map(|e| e.2))) as ArrayRef,
                ),
            ])
            .unwrap()
        })
        .collect()
}

/// `x` as one `List<Struct{index, value}>` column `entries`.
pub fn list_struct_batch(x: &Array2<f64>) -> RecordBatch {
    let fields = Fields::from(vec![
        Field::new("index", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
    ]);
    let mut b = ListBuilder::new(StructBuilder::new(
        fields.clone(),
        vec![
            Box::new(Int64Builder::new()),
            Box::new(Float64Builder::new()),
        ],
    ));
    for row in x.rows() {
        // Out of order on purpose: the reader sorts each row.
        for (j, &v) in row.iter().enumerate().rev() {
            if v != 0.0 {
                let s = b.values();
                s.field_builder::<Int64Builder>(0)
                    .unwrap()
                    .append_value(j as i64);
                s.field_builder::<Float64Builder>(1)
                    .unwrap()
                    .append_value(v);
                s.append(true);
            }
        }
        b.append(true);
    }
    RecordBatch::try_from_iter([("entries", Arc::new(b.finish()) as ArrayRef)]).unwrap()
}

/// Word counts of `n` documents over `p` words from `k` topics: each topic a power-law
/// distribution over a shuffled vocabulary, each document a sparse mix of topics and
/// 50–600 words drawn as Poisson counts. Real text counts look like this: about 5 %
/// dense, heavy-tailed, and many words rare.
pub fn word_counts(n: usize, p: usize, k: usize, seed: u64) -> streamnmf::CsrMatrix<f64> {
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Poisson};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let topics: Vec<Vec<f64>> = (0..k)
        .map(|_| {
            let mut w: Vec<f64> = (0..p).map(|j| 1.0 / ((j + 1) as f64).powf(1.1)).collect();
            for i in (1..p).rev() {
                let j = rng.random_range(0..=i);
                w.swap(i, j);
            }
            let s: f64 = w.iter().sum();
            w.iter().map(|v| v / s).collect()
        })
        .collect();
    let mut x = Array2::<f64>::zeros((n, p));
    for i in 0..n {
        let len = rng.random_range(50..600) as f64;
        let mix: Vec<f64> = (0..k)
            .map(|_| {
                if rng.random::<f64>() < 0.3 {
                    rng.random::<f64>()
                } else {
                    0.0
                }
            })
            .collect();
        let s: f64 = mix.iter().sum::<f64>().max(1e-9);
        for j in 0..p {
            let lam: f64 = (0..k).map(|t| mix[t] / s * topics[t][j]).sum::<f64>() * len;
            if lam > 0.0 {
                x[[i, j]] = Poisson::new(lam).unwrap().sample(&mut rng);
            }
        }
    }
    streamnmf::CsrMatrix::from_dense(x.view())
}

/// The crate's root at run time: `cargo test` sets `CARGO_MANIFEST_DIR` for the test
/// process, and unlike `env!` it follows the checkout when a shared target directory
/// holds a binary compiled from another clone.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

// ---- running the binary ----------------------------------------------------------------

/// Runs `streamnmf args` in `dir`, stdin closed.
pub fn run(args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_streamnmf"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Asserts success (showing stderr otherwise); returns stdout.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure; returns stderr.
pub fn fails(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
