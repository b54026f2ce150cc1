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
