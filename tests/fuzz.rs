//! A seeded mutation fuzzer over a corpus of valid files: Parquet (dense, triplets, list of
//! structs), Arrow IPC files and streams, model files and checkpoints. Each mutant (bit
//! flips, overwritten bytes, truncations, splices, and model headers edited with their
//! checksum recomputed) goes through the readers and a short fit, or the model loader and
//! a transform; whatever the bytes, the outcome is a value or an error, never a panic.
//!
//! CI runs a short, fixed set of cases (`STREAMNMF_FUZZ_CASES`, default 40 per corpus
//! file). A long run explores new ones:
//! `STREAMNMF_FUZZ_SECONDS=600 STREAMNMF_FUZZ_SEED=$RANDOM cargo test --release --test fuzz
//! -- --nocapture` (or `benches/scripts/fuzz_long.sh`, which survives aborts). Every case is
//! written to `target/tmp/fuzz-current.*` before it runs, so one that kills the process is
//! on disk; crashing inputs are kept in `tests/fixtures/fuzz/` and re-run first, always.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use streamnmf::io::{FileSource, InputOptions, Layout};
use streamnmf::persist::{self, CheckpointDir, Metadata};
use streamnmf::pipeline::{fit, PipelineOptions};
use streamnmf::source::BatchSource;
use streamnmf::synth::PlantedSpec;
use streamnmf::{Loss, NmfParams, OnlineNmf};

/// What a corpus file is, and so how a mutant of it is exercised.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Dense,
    Triplets,
    List,
    Model,
    Checkpoint,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Dense => "dense",
            Kind::Triplets => "triplets",
            Kind::List => "list",
            Kind::Model => "model",
            Kind::Checkpoint => "checkpoint",
        }
    }
    fn from_ext(e: &str) -> Option<Kind> {
        [
            Kind::Dense,
            Kind::Triplets,
            Kind::List,
            Kind::Model,
            Kind::Checkpoint,
        ]
        .into_iter()
        .find(|k| k.ext() == e)
    }
}

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Valid files of every kind, small enough that a case takes a few milliseconds.
fn corpus() -> Vec<(Kind, &'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(300, 8, 3).seed(1).generate().x;
    let sparse = x.mapv(|v| if v < 0.3 { 0.0 } else { v });
    let mut out = Vec::new();
    let p = d.join("dense.parquet");
    write_parquet(&p, &dense_batches(&x, 100, true), 64);
    out.push((Kind::Dense, "parquet", bytes_of(&p)));
    let p = d.join("dense.arrow");
    write_ipc_file(&p, &dense_batches(&x, 100, false));
    out.push((Kind::Dense, "arrow file", bytes_of(&p)));
    out.push((
        Kind::Dense,
        "arrow stream",
        ipc_stream_bytes(&dense_batches(&x, 100, false)),
    ));
    let dense = dense_batches(&x, 100, false);
    let lz4 = compressed_ipc_bytes(&dense, arrow_ipc::CompressionType::LZ4_FRAME, true);
    out.push((Kind::Dense, "arrow file, lz4", lz4));
    let zstd = compressed_ipc_bytes(&dense, arrow_ipc::CompressionType::ZSTD, false);
    out.push((Kind::Dense, "arrow stream, zstd", zstd));
    let p = d.join("fl.parquet");
    write_parquet(&p, &[fixed_list_batch(&x)], 100);
    out.push((Kind::Dense, "fixed-size list", bytes_of(&p)));
    let p = d.join("lists.parquet");
    let rows = x
        .rows()
        .into_iter()
        .map(|r| Some(r.iter().map(|&v| Some(v)).collect::<Vec<_>>()));
    let lists =
        arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Float64Type, _, _>(rows);
    let batch =
        arrow_array::RecordBatch::try_from_iter([("v", std::sync::Arc::new(lists) as _)]).unwrap();
    write_parquet(&p, &[batch], 100);
    out.push((Kind::Dense, "list of floats", bytes_of(&p)));
    let p = d.join("tr.parquet");
    write_parquet(&p, &triplet_batches(&sparse, 97), 200);
    out.push((Kind::Triplets, "triplets", bytes_of(&p)));
    let p = d.join("ls.parquet");
    write_parquet(&p, &[list_struct_batch(&sparse)], 100);
    out.push((Kind::List, "list of structs", bytes_of(&p)));
    for (loss, f64s) in [(Loss::Frobenius, false), (Loss::KullbackLeibler, true)] {
        let params = NmfParams::new(3).loss(loss).batch_size(50).max_passes(2);
        let meta =
            Metadata::default().with_feature_names((0..8).map(|j| format!("f{j}")).collect());
        let bytes = if f64s {
            let mut m = OnlineNmf::<f64>::new(params.check().unwrap());
            m.fit(&x).unwrap();
            persist::encode(&m, &meta)
        } else {
            let mut m = OnlineNmf::<f32>::new(params.check().unwrap());
            m.fit(&x.mapv(|v| v as f32)).unwrap();
            persist::encode(&m, &meta)
        };
        out.push((Kind::Model, "model", bytes));
    }
    let ck = d.join("ck");
    let params = NmfParams::new(3).batch_size(50).check().unwrap();
    let mut m = OnlineNmf::<f32>::new(params);
    let src = d.join("dense.parquet");
    let mut s = FileSource::<f32>::open(&[src], InputOptions::new(50).id_column("id")).unwrap();
    let c = streamnmf::pipeline::Checkpointing::new(
        CheckpointDir::new(&ck, 1).unwrap(),
        Metadata::default(),
    );
    streamnmf::pipeline::fit_with(
        &mut m,
        &mut s,
        &PipelineOptions::new(),
        None,
        Some(&c),
        |_| {},
    )
    .unwrap();
    drop(c);
    let newest = CheckpointDir::list_in(&ck).unwrap()[0].clone();
    out.push((Kind::Checkpoint, "checkpoint", bytes_of(&newest)));
    // Wide enough (≥ 128 columns) to decode in column groups, one thread each.
    let wide = PlantedSpec::new(40, 140, 3).seed(2).generate().x;
    let p = d.join("wide.parquet");
    write_parquet(&p, &dense_batches(&wide, 20, false), 20);
    out.push((Kind::Dense, "wide parquet", bytes_of(&p)));
    out
}

/// One mutation of `b`.
fn mutate(b: &[u8], kind: Kind, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut m = b.to_vec();
    if m.is_empty() {
        return m;
    }
    let n = m.len();
    match rng.random_range(0..7) {
        0 => {
            for _ in 0..rng.random_range(1..9) {
                let i = rng.random_range(0..n);
                m[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => {
            let v = [0u8, 0xFF, 0x7F, 0x80, rng.random()][rng.random_range(0..5)];
            let i = rng.random_range(0..n);
            let len = rng.random_range(1..=8).min(n - i);
            m[i..i + len].fill(v);
        }
        2 => m.truncate(rng.random_range(0..n)),
        3 => {
            // Splice: a chunk copied over another place.
            let (a, c) = (rng.random_range(0..n), rng.random_range(0..n));
            let len = rng.random_range(1..=64).min(n - a).min(n - c);
            let chunk = m[a..a + len].to_vec();
            m[c..c + len].copy_from_slice(&chunk);
        }
        4 => {
            // A chunk inserted twice: lengths and offsets no longer line up.
            let a = rng.random_range(0..n);
            let len = rng.random_range(1..=32).min(n - a);
            let chunk = m[a..a + len].to_vec();
            let at = rng.random_range(0..n);
            m.splice(at..at, chunk);
        }
        5 => {
            // The tail (Parquet's footer, a model's checksum) hit where it hurts.
            let i = n - 1 - rng.random_range(0..n.min(64));
            m[i] = rng.random();
        }
        _ if matches!(kind, Kind::Model | Kind::Checkpoint) => {
            if let Some(e) = edit_header(b, rng) {
                return e;
            }
        }
        _ => {
            let i = rng.random_range(0..n);
            m[i] = m[i].wrapping_add(1);
        }
    }
    m
}

/// A model file whose JSON header has one number or string replaced by a hostile value,
/// with the header length and the checksum recomputed: past the CRC check, into the
/// parser.
fn edit_header(b: &[u8], rng: &mut ChaCha8Rng) -> Option<Vec<u8>> {
    let hlen = u64::from_le_bytes(b.get(12..20)?.try_into().ok()?) as usize;
    let end = hlen.checked_add(20).filter(|&e| e + 4 <= b.len())?;
    let mut header: serde_json::Value = serde_json::from_slice(&b[20..end]).ok()?;
    let blocks = &b[end..b.len() - 4];
    let mut leaves = Vec::new();
    collect_leaves(&header, String::new(), &mut leaves);
    if leaves.is_empty() {
        return None;
    }
    let path = &leaves[rng.random_range(0..leaves.len())];
    let hostile = [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(u64::MAX),
        serde_json::json!(1u64 << 40),
        serde_json::json!(1e308),
        serde_json::json!("x"),
        serde_json::json!(null),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(3),
    ];
    *header.pointer_mut(path)? = hostile[rng.random_range(0..hostile.len())].clone();
    let hb = serde_json::to_vec(&header).unwrap();
    let mut out = b[..12].to_vec();
    out.extend_from_slice(&(hb.len() as u64).to_le_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(blocks);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
}

fn collect_leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect_leaves(x, format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() && a.len() < 64 => {
            for (i, x) in a.iter().enumerate() {
                collect_leaves(x, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// What a user would do with the file; errors are fine, panics are not.
fn exercise(kind: Kind, path: &Path) {
    match kind {
        Kind::Dense | Kind::Triplets | Kind::List => {
            let layout = match kind {
                Kind::Triplets => Layout::Triplets {
                    row: "user".into(),
                    col: "item".into(),
                    value: "rating".into(),
                },
                Kind::List => Layout::SparseList {
                    column: "entries".into(),
                },
                _ => Layout::Dense,
            };
            let opts = InputOptions::new(64).layout(layout);
            let Ok(mut src) = FileSource::<f32>::open(&[path.to_path_buf()], opts) else {
                return;
            };
            if src.width() > 1 << 16 {
                return; // a mutant width: the model-size check is tested elsewhere
            }
            if let Ok(it) = src.epoch(0) {
                for b in it.take(50) {
                    if b.is_err() {
                        break;
                    }
                }
            }
            let k = src.width().clamp(1, 2);
            let params = NmfParams::new(k)
                .batch_size(64)
                .code_max_iter(10)
                .check()
                .unwrap();
            let mut m = OnlineNmf::<f32>::new(params);
            let opts = PipelineOptions::new().with_epochs(2).with_batch_threads(1);
            let _ = fit(&mut m, &mut src, &opts, |_| {});
        }
        Kind::Model => {
            let bytes = std::fs::read(path).unwrap();
            if let Ok((m, _)) = persist::decode::<f32>(&bytes) {
                use_model(&m);
            }
            if let Ok((m, _)) = persist::decode::<f64>(&bytes) {
                use_model(&m);
            }
        }
        Kind::Checkpoint => {
            let dir = path.parent().unwrap().join("ck-case");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(path, dir.join("ckpt-000000000001.snmf")).unwrap();
            if let Ok(ck) = CheckpointDir::open(&dir, 1) {
                if let Ok((m, _, _)) = ck.latest::<f32>() {
                    use_model(&m);
                }
            }
        }
    }
}

fn use_model<F: streamnmf::Float>(m: &OnlineNmf<F>) {
    if let Ok(h) = m.components() {
        if h.ncols() <= 1 << 12 {
            let x = Array2::from_elem((5, h.ncols()), F::one());
            let _ = m.transform(&x);
            let _ = m.loss(&x);
        }
    }
    let mut m = m.clone();
    if let Ok(h) = m.components() {
        let p = h.ncols();
        if p <= 1 << 12 {
            let _ = m.partial_fit(&Array2::from_elem((4, p), F::one()));
        }
    }
}

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs one case; `Err` with the panic message if it panicked.
fn case(kind: Kind, bytes: &[u8], label: &str) -> Result<(), String> {
    let path = scratch().join(format!("fuzz-current.{}", kind.ext()));
    std::fs::write(&path, bytes).unwrap();
    catch_unwind(AssertUnwindSafe(|| exercise(kind, &path))).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let keep = scratch().join(format!("crash-{label}.{}", kind.ext()));
        let _ = std::fs::write(&keep, bytes);
        format!("{label}: {msg} (input kept in {})", keep.display())
    })
}

/// Crashing inputs found before, re-run every time.
/// Decoder panics are caught and reported as errors; the default hook would still print
/// each one (with a backtrace), burying the report.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn regressions_never_panic() {
    quiet_panics();
    let dir = common::manifest_dir().join("tests/fixtures/fuzz");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut failures = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let Some(kind) = p
            .extension()
            .and_then(|x| x.to_str())
            .and_then(Kind::from_ext)
        else {
            continue;
        };
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Err(f) = case(kind, &std::fs::read(&p).unwrap(), &name) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mutants_never_panic() {
    quiet_panics();
    let cases: usize = std::env::var("STREAMNMF_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seconds: Option<u64> = std::env::var("STREAMNMF_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok());
    let seed: u64 = std::env::var("STREAMNMF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_130);
    let corpus = corpus();
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0usize;
    for round in 0.. {
        let done = match seconds {
            Some(s) => start.elapsed() > Duration::from_secs(s),
            None => round >= cases,
        };
        if done {
            break;
        }
        for (i, (kind, what, bytes)) in corpus.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (round as u64) << 8 ^ i as u64);
            let mut mutant = mutate(bytes, *kind, &mut rng);
            // Sometimes twice: a mutant of a mutant.
            if rng.random_bool(0.3) {
                mutant = mutate(&mutant, *kind, &mut rng);
            }
            let label = format!("{}-seed{seed}-round{round}-{i}", what.replace(' ', "_"));
            let t = Instant::now();
            if let Err(f) = case(*kind, &mutant, &label) {
                failures.push(f);
            }
            if t.elapsed() > Duration::from_secs(2) {
                eprintln!(
                    "fuzz: slow case {label}: {:.1} s",
                    t.elapsed().as_secs_f64()
                );
            }
            ran += 1;
        }
    }
    eprintln!(
        "fuzz: {ran} cases in {:.1} s, {} panics",
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
