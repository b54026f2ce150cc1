//! Criterion benchmarks of the hot paths, through the public API: the per-batch code solve
//! (`transform` of a batch against a fixed dictionary: dense and CSR, f32/f64,
//! k ∈ {8, 32, 128}), one `partial_fit` (codes, statistics, dictionary update), loss
//! evaluation, and Parquet batch decoding. Compare runs with `cargo bench --bench kernels -- --save-baseline main` and
//! `-- --baseline main`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use streamnmf::io::{FileSource, InputOptions};
use streamnmf::source::BatchSource;
use streamnmf::synth::PlantedSpec;
use streamnmf::{loss, CsrMatrix, Float, Loss, MatRef, NmfParams, OnlineNmf, Solver, ValidParams};

const ROWS: usize = 1024;

fn dense_batch<F: Float>(p: usize, k: usize) -> (Array2<F>, Array2<F>) {
    let d = PlantedSpec::new(ROWS, p, k).seed(1).generate();
    (d.x.mapv(F::from_f64), d.h.mapv(F::from_f64))
}

/// A recommender-like batch: 0.5 % of 20 000 columns filled with small counts.
fn sparse_batch<F: Float>(k: usize) -> (CsrMatrix<F>, Array2<F>) {
    let p = 20_000;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
    for _ in 0..ROWS {
        let mut cols: Vec<u32> = (0..p / 200)
            .map(|_| rng.random_range(0..p as u32))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        for c in cols {
            indices.push(c);
            data.push(F::from_f64(1.0 + rng.random_range(0..5) as f64));
        }
        indptr.push(data.len());
    }
    let x = CsrMatrix::try_new(p, indptr, indices, data).expect("valid");
    let h = Array2::from_shape_simple_fn((k, p), || F::from_f64(rng.random::<f64>()));
    (x, h)
}

/// A model holding dictionary `h`, on one thread (the kernels, not the threads).
fn model<F: Float>(params: &ValidParams, h: &Array2<F>) -> OnlineNmf<F> {
    OnlineNmf::from_components(params.clone(), h.clone())
        .expect("valid dictionary")
        .with_threads(1)
}

/// The codes of one batch against a fixed dictionary (`transform`: the solver step).
fn code_solve(c: &mut Criterion) {
    let mut g = c.benchmark_group("code_solve");
    for k in [8, 32, 128] {
        let params = NmfParams::new(k).check().expect("valid");
        let (x, h) = dense_batch::<f32>(1000, k);
        let m = model(&params, &h);
        g.bench_with_input(BenchmarkId::new("dense_f32_1024x1000", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
        let (x, h) = dense_batch::<f64>(1000, k);
        let m = model(&params, &h);
        g.bench_with_input(BenchmarkId::new("dense_f64_1024x1000", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
        let (x, h) = sparse_batch::<f32>(k);
        let m = model(&params, &h);
        g.bench_with_input(BenchmarkId::new("csr_f32_1024x20000", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
        let kl = NmfParams::new(k)
            .loss(Loss::KullbackLeibler)
            .code_max_iter(50)
            .check()
            .expect("valid");
        let m = model(&kl, &h);
        g.bench_with_input(BenchmarkId::new("csr_f32_kl_50iter", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
        // The same codes by the multiplicative updates (the default is coordinate descent
        // on sparse KL batches).
        let kl_mu = NmfParams::new(k)
            .loss(Loss::KullbackLeibler)
            .solver(Solver::Multiplicative)
            .code_max_iter(50)
            .check()
            .expect("valid");
        let m = model(&kl_mu, &h);
        g.bench_with_input(BenchmarkId::new("csr_f32_kl_mu_50iter", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
        let (x, h) = sparse_batch::<f64>(k);
        let m = model(&params, &h);
        g.bench_with_input(BenchmarkId::new("csr_f64_1024x20000", k), &k, |b, _| {
            b.iter(|| black_box(m.transform(&x).expect("codes")))
        });
    }
    g.finish();
}

/// One `partial_fit`: codes, statistics and the dictionary update.
fn batch_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_update");
    for k in [8, 32, 128] {
        let params = NmfParams::new(k).check().expect("valid");
        let (x, h) = dense_batch::<f32>(1000, k);
        g.bench_with_input(BenchmarkId::new("fro_f32_p1000", k), &k, |b, _| {
            b.iter_batched(
                || model(&params, &h),
                |mut m| black_box(m.partial_fit(&x).expect("update")),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn loss_evaluation(c: &mut Criterion) {
    let mut g = c.benchmark_group("loss");
    let k = 32;
    let params = NmfParams::new(k).check().expect("valid");
    let (x, h) = dense_batch::<f32>(1000, k);
    let w = model(&params, &h).transform(&x).expect("codes");
    for beta in [2.0, 1.0] {
        g.bench_with_input(
            BenchmarkId::new("dense_f32_1024x1000", beta),
            &beta,
            |b, &beta| {
                b.iter(|| black_box(loss::divergence(MatRef::from(&x), w.view(), h.view(), beta)))
            },
        );
    }
    let (xs, hs) = sparse_batch::<f32>(k);
    let ws = model(&params, &hs).transform(&xs).expect("codes");
    for beta in [2.0, 1.0] {
        g.bench_with_input(
            BenchmarkId::new("csr_f32_1024x20000", beta),
            &beta,
            |b, &beta| {
                b.iter(|| {
                    black_box(loss::divergence(
                        MatRef::from(&xs),
                        ws.view(),
                        hs.view(),
                        beta,
                    ))
                })
            },
        );
    }
    g.finish();
}

fn parquet_decode(c: &mut Criterion) {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x.parquet");
    let d = PlantedSpec::new(16_384, 200, 8).seed(3).generate();
    let cols: Vec<(String, arrow_array::ArrayRef)> = (0..200)
        .map(|j| {
            let v: arrow_array::Float32Array = d.x.column(j).iter().map(|&v| v as f32).collect();
            (format!("f{j}"), Arc::new(v) as arrow_array::ArrayRef)
        })
        .collect();
    let rb = arrow_array::RecordBatch::try_from_iter(cols).expect("batch");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, rb.schema(), None).expect("writer");
    w.write(&rb).expect("write");
    w.close().expect("close");
    let mut g = c.benchmark_group("parquet_decode");
    g.throughput(criterion::Throughput::Elements(16_384));
    g.bench_function("16384x200_f32_to_batches_of_1024", |b| {
        b.iter(|| {
            let mut src =
                FileSource::<f32>::open(std::slice::from_ref(&path), InputOptions::new(1024))
                    .expect("open");
            let rows: usize = src
                .epoch(0)
                .expect("epoch")
                .map(|b| b.expect("batch").rows())
                .sum();
            black_box(rows)
        })
    });
    g.finish();
}

criterion_group! {
    name = kernels;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = code_solve, batch_update, loss_evaluation, parquet_decode
}
criterion_main!(kernels);
