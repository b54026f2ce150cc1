//! The in-memory API's convergence trajectory on a data set: loads a Parquet file (dense
//! columns, or triplets for sparse data) into memory, fits pass by pass, and after each pass
//! prints a JSON line with the cumulative fit time (evaluation excluded), the relative
//! Frobenius error and the divergence over the whole data. Used by `benches/peers`.
//!
//! `cargo run --release --example trajectory -- FILE.parquet --rank 20 --passes 10`

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ndarray::Array2;
use streamnmf::io::{FileSource, InputOptions, Layout};
use streamnmf::source::BatchSource;
use streamnmf::{Batch, CsrMatrix, Init, Loss, MatRef, Matrix, NmfParams, OnlineNmf};

#[derive(Parser)]
struct Args {
    /// The data (Parquet).
    file: PathBuf,
    #[arg(long)]
    rank: usize,
    #[arg(long, default_value_t = 10)]
    passes: usize,
    /// Rows per batch (default: the library's for the data, as `fit` with no batch size).
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, default_value = "fro")]
    loss: Loss,
    /// Triplet columns `row,col,value` for sparse data.
    #[arg(long)]
    triplets: Option<String>,
    /// Width of sparse data.
    #[arg(long)]
    width: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dictionary sweeps per batch (default: the library's).
    #[arg(long)]
    dict_iter: Option<usize>,
    /// Dictionary sweeps' relative-change tolerance (default: the library's).
    #[arg(long)]
    dict_tol: Option<f64>,
    /// Threads per batch (default: all cores; the model does not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the per-pass evaluation (for profiling the fit alone).
    #[arg(long)]
    no_eval: bool,
    /// Initialization: auto, random, nndsvd, nndsvda or nndsvdar.
    #[arg(long, default_value = "auto")]
    init: String,
    /// Past-data decay exponent (default: the library's).
    #[arg(long)]
    decay: Option<f64>,
    /// Forget factor (default: the library's).
    #[arg(long)]
    forget: Option<f64>,
    /// Code solver iteration cap (default: the library's).
    #[arg(long)]
    code_max_iter: Option<usize>,
    /// Code solver tolerance (default: the library's).
    #[arg(long)]
    code_tol: Option<f64>,
    /// Code solver: `hals` or `mu` (default: the library's choice for the loss).
    #[arg(long)]
    solver: Option<String>,
}

/// Stacks all batches into one matrix (dense or CSR).
fn load(batches: Vec<Batch<f32>>, width: usize) -> Matrix<f32> {
    match batches.first().map(|b| b.data()) {
        Some(Matrix::Csr(_)) => {
            let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
            for b in &batches {
                if let MatRef::Csr(v) = b.view() {
                    for i in 0..v.nrows() {
                        let (c, x) = v.row(i);
                        indices.extend_from_slice(c);
                        data.extend_from_slice(x);
                        indptr.push(data.len());
                    }
                }
            }
            Matrix::Csr(CsrMatrix::try_new(width, indptr, indices, data).expect("valid rows"))
        }
        _ => {
            let views: Vec<_> = batches
                .iter()
                .filter_map(|b| match b.data() {
                    Matrix::Dense(x) => Some(x.view()),
                    _ => None,
                })
                .collect();
            Matrix::Dense(
                ndarray::concatenate(ndarray::Axis(0), &views)
                    .unwrap_or_else(|_| Array2::zeros((0, width))),
            )
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut opts = InputOptions::new(65_536);
    if let Some(t) = &a.triplets {
        let p: Vec<&str> = t.split(',').collect();
        opts = opts.layout(Layout::Triplets {
            row: p[0].into(),
            col: p[1].into(),
            value: p[2].into(),
        });
        opts.width = a.width;
    }
    let t = Instant::now();
    let mut src = FileSource::<f32>::open(std::slice::from_ref(&a.file), opts)?;
    let width = src.width();
    let batches: Vec<Batch<f32>> = src.epoch(0)?.collect::<Result<_, _>>()?;
    let x = load(batches, width);
    let xv = x.view();
    let x_sq = xv.squared_norm();
    eprintln!(
        "loaded {} x {} ({} stored) in {:.1} s",
        xv.nrows(),
        xv.ncols(),
        xv.nnz(),
        t.elapsed().as_secs_f64()
    );

    let mut params = NmfParams::new(a.rank);
    if let Some(tol) = a.dict_tol {
        params = params.dict_tol(tol);
    }
    if let Some(it) = a.dict_iter {
        params = params.dict_max_iter(it);
    }
    if let Some(d) = a.decay {
        params = params.decay(d);
    }
    if let Some(f) = a.forget {
        params = params.forget(f);
    }
    if let Some(it) = a.code_max_iter {
        params = params.code_max_iter(it);
    }
    match a.solver.as_deref() {
        None => {}
        Some("hals") => params = params.solver(streamnmf::Solver::Hals),
        Some("mu") => params = params.solver(streamnmf::Solver::Multiplicative),
        Some(other) => return Err(format!("unknown solver '{other}': hals or mu").into()),
    }
    if let Some(tol) = a.code_tol {
        params = params.code_tol(tol);
    }
    if let Some(b) = a.batch_size {
        params = params.batch_size(b);
    }
    let params = params
        .loss(a.loss)
        .max_passes(a.passes)
        .pass_tol(0.0)
        .seed(a.seed)
        .init(match a.init.as_str() {
            "random" => Init::Random,
            "nndsvd" => Init::Nndsvd,
            "nndsvdar" => Init::Nndsvdar,
            "nndsvda" => Init::Nndsvda,
            _ => Init::Auto,
        })
        .check()?;
    let mut model = OnlineNmf::<f32>::new(params);
    if let Some(t) = a.threads {
        model.set_threads(t);
    }
    // Fit time excludes the evaluation done between passes.
    let start = Instant::now();
    let mut eval_secs = 0.0;
    let mut failed = None;
    model.fit_each_pass(xv, |m, pass| {
        let fit_secs = start.elapsed().as_secs_f64() - eval_secs;
        if a.no_eval {
            return emit(&format!("{{\"pass\": {}, \"seconds\": {fit_secs:.4}}}", pass + 1));
        }
        let t = Instant::now();
        let l = match m.loss(xv) {
            Ok(l) => l,
            Err(e) => {
                failed = Some(e);
                return false;
            }
        };
        eval_secs += t.elapsed().as_secs_f64();
        let rel = if a.loss.beta() == 2.0 {
            (2.0 * l.loss / x_sq).sqrt()
        } else {
            f64::NAN
        };
        emit(&format!(
            "{{\"pass\": {}, \"seconds\": {fit_secs:.4}, \"rel_error\": {rel:.6e}, \"loss\": {:.8e}}}",
            pass + 1,
            l.loss
        ))
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    emit(&format!("{{\"peak_rss_bytes\": {}}}", rss * 1024));
    Ok(())
}

/// Writes one line to stdout; false once stdout is gone (a reader such as `head` that
/// has what it wanted), which ends the fit quietly instead of panicking in `println!`.
fn emit(line: &str) -> bool {
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}
