//! Fits a planted data set in memory and prints the quality yardsticks.
//!
//! `cargo run --release --example planted -- [n] [p] [k] [batch] [passes] [loss] [init] [purge]`

use std::time::Instant;

use streamnmf::synth::{match_components, svd_relative_error_bound, PlantedSpec};
use streamnmf::{Init, Loss, NmfParams, OnlineNmf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, p, k, batch, passes) = (
        num(0, 5000),
        num(1, 200),
        num(2, 8),
        num(3, 256),
        num(4, 10),
    );
    let loss: Loss = a
        .get(5)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(Loss::Frobenius);
    let init = match a.get(6).map(String::as_str) {
        Some("random") => Init::Random,
        Some("nndsvd") => Init::Nndsvd,
        Some("nndsvdar") => Init::Nndsvdar,
        _ => Init::Nndsvda,
    };
    let purge = a.get(7).map(|s| s != "nopurge").unwrap_or(true);
    let spec = PlantedSpec::new(n, p, k).seed(7);
    let spec = if loss == Loss::KullbackLeibler {
        spec.poisson(20.0)
    } else {
        spec
    };
    let mut data = spec.generate();
    if loss.beta() <= 0.0 {
        // Itakura-Saito needs strictly positive data.
        data.x.mapv_inplace(|v| v + 0.1);
    }
    let bound = svd_relative_error_bound(data.x.view(), k)?;
    let params = NmfParams::new(k)
        .loss(loss)
        .batch_size(batch)
        .max_passes(passes)
        .pass_tol(0.0)
        .init(init)
        .purge_passes(purge)
        .seed(1)
        .check()?;
    let mut model = OnlineNmf::<f64>::new(params);
    let t = Instant::now();
    let report = model.fit(&data.x)?;
    let secs = t.elapsed().as_secs_f64();
    let h = model.components()?.to_owned();
    let cos = match_components(data.h.view(), h.view());
    let fro = {
        let w = model.transform(&data.x)?;
        let r = &data.x - &w.dot(&h);
        (r.iter().map(|v| v * v).sum::<f64>() / data.x.iter().map(|v| v * v).sum::<f64>()).sqrt()
    };
    println!(
        "n={n} p={p} k={k} batch={batch} loss={loss} passes={} time={secs:.2}s",
        report.passes
    );
    println!(
        "pass losses: {:?}",
        report
            .pass_losses
            .iter()
            .map(|v| format!("{v:.4e}"))
            .collect::<Vec<_>>()
    );
    println!(
        "rel err {fro:.5}  svd bound {bound:.5}  ratio {:.4}",
        fro / bound
    );
    println!(
        "min cosine {:.5}  cosines {:?}",
        cos.iter().cloned().fold(1.0, f64::min),
        cos.iter().map(|c| format!("{c:.4}")).collect::<Vec<_>>()
    );
    Ok(())
}
