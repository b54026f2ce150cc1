//! End-to-end behaviour of the in-memory API on planted data.

mod common;

use common::{logs, min_cosine, planted, planted_counts, relative_error};
use ndarray::s;
use streamnmf::synth::svd_relative_error_bound;
use streamnmf::{CsrMatrix, Init, Loss, MatRef, NmfParams, OnlineNmf};

fn fro_params(batch: usize, passes: usize) -> NmfParams {
    NmfParams::new(8)
        .batch_size(batch)
        .max_passes(passes)
        .pass_tol(0.0)
        .seed(3)
}

#[test]
fn planted_recovery_frobenius() {
    logs();
    let d = planted();
    let mut model = OnlineNmf::<f64>::new(fro_params(256, 10).check().unwrap());
    let report = model.fit(&d.x).unwrap();
    assert_eq!(report.passes, 10);
    let h = model.components().unwrap().to_owned();
    let cos = min_cosine(&d.h, &h);
    assert!(cos >= 0.99, "min cosine {cos}");
    // The quality bar: within 10 % of the truncated-SVD error in 10 passes.
    let w = model.transform(&d.x).unwrap();
    let err = relative_error(&d.x, &w, &h);
    let bound = svd_relative_error_bound(d.x.view(), 8).unwrap();
    assert!(err <= 1.1 * bound, "error {err} vs SVD bound {bound}");
    // The model's own full-data loss agrees with the direct computation.
    let rel = model.loss(&d.x).unwrap().relative_error.unwrap();
    assert!((rel - err).abs() < 1e-9 * err.max(1.0), "{rel} vs {err}");
    // Pass losses decrease.
    let l = &report.pass_losses;
    assert!(l.last().unwrap() < &(l[0] * 0.01), "{l:?}");
}

#[test]
fn planted_recovery_kl_on_poisson_counts() {
    let d = planted_counts();
    let params = NmfParams::new(8)
        .loss(Loss::KullbackLeibler)
        .batch_size(256)
        .max_passes(10)
        .pass_tol(0.0)
        .seed(5)
        .check()
        .unwrap();
    let mut model = OnlineNmf::<f64>::new(params);
    model.fit(&d.x).unwrap();
    let h = model.components().unwrap().to_owned();
    let cos = min_cosine(&d.h, &h);
    assert!(cos >= 0.99, "min cosine {cos}");
    // The KL of the fit is close to the KL of the truth (the Poisson noise floor).
    let fit = model.loss(&d.x).unwrap().loss;
    let truth = streamnmf::loss::divergence(MatRef::from(&d.x), d.w.view(), d.h.view(), 1.0);
    assert!(fit < 1.05 * truth, "fit KL {fit} vs truth {truth}");
}

#[test]
fn online_is_close_to_full_batch() {
    let d = planted();
    let mut online = OnlineNmf::<f64>::new(fro_params(256, 5).check().unwrap());
    online.fit(&d.x).unwrap();
    let mut full = OnlineNmf::<f64>::new(fro_params(5000, 300).check().unwrap());
    full.fit(&d.x).unwrap();
    let e_on = online.loss(&d.x).unwrap().relative_error.unwrap();
    let e_full = full.loss(&d.x).unwrap().relative_error.unwrap();
    assert!(
        e_on <= 1.02 * e_full,
        "online {e_on} vs full batch {e_full}"
    );
}

/// Scaling the past data (the default decay) forgets the codes solved against the initial
/// H: one pass gets within 2 % of the full-batch error, which weighing every batch alike
/// does not.
#[test]
fn decay_makes_one_pass_enough() {
    let d = planted();
    let mut full = OnlineNmf::<f64>::new(fro_params(5000, 300).check().unwrap());
    full.fit(&d.x).unwrap();
    let e_full = full.loss(&d.x).unwrap().relative_error.unwrap();
    let one_pass = |params: NmfParams| {
        let mut m = OnlineNmf::<f64>::new(params.check().unwrap());
        m.fit(&d.x).unwrap();
        m.loss(&d.x).unwrap().relative_error.unwrap()
    };
    let e_default = one_pass(fro_params(256, 1));
    let e_flat = one_pass(fro_params(256, 1).decay(0.0));
    assert!(
        e_default <= 1.02 * e_full,
        "default decay: one pass {e_default} vs full batch {e_full}"
    );
    assert!(
        e_flat > 1.02 * e_full,
        "no decay: one pass {e_flat} vs full batch {e_full} (the test data no longer shows the effect)"
    );
}

#[test]
fn dense_and_csr_give_the_same_dictionary() {
    let d = planted();
    let x = d.x.mapv(|v| if v < 0.05 { 0.0 } else { v });
    let csr = CsrMatrix::from_dense(x.view());
    assert!(
        csr.nnz() < x.len() / 2,
        "the test needs a genuinely sparse matrix"
    );
    for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
        let params = fro_params(256, 3).loss(loss).check().unwrap();
        let mut dense = OnlineNmf::<f64>::new(params.clone());
        dense.fit(&x).unwrap();
        let mut sparse = OnlineNmf::<f64>::new(params);
        sparse.fit(&csr).unwrap();
        let (hd, hs) = (dense.components().unwrap(), sparse.components().unwrap());
        let scale = hd.iter().cloned().fold(0.0, f64::max);
        let diff = (&hd - &hs)
            .iter()
            .cloned()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            diff <= 1e-8 * scale,
            "{loss}: max diff {diff} (scale {scale})"
        );
    }
}

#[test]
fn f32_and_f64_agree() {
    let d = planted();
    let params = fro_params(256, 5).check().unwrap();
    let mut m64 = OnlineNmf::<f64>::new(params.clone());
    m64.fit(&d.x).unwrap();
    let x32 = d.x.mapv(|v| v as f32);
    let mut m32 = OnlineNmf::<f32>::new(params);
    m32.fit(&x32).unwrap();
    let e64 = m64.loss(&d.x).unwrap().relative_error.unwrap();
    let e32 = m32.loss(&x32).unwrap().relative_error.unwrap();
    assert!((e32 - e64).abs() <= 0.01 * e64, "f32 {e32} vs f64 {e64}");
    let h32 = m32.components().unwrap().mapv(|v| v as f64);
    let cos = min_cosine(&m64.components().unwrap().to_owned(), &h32);
    assert!(cos > 0.9999, "cosine {cos}");
}

#[test]
fn same_seed_is_bitwise_identical() {
    let d = planted();
    for init in [Init::Random, Init::Nndsvdar] {
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let params = fro_params(500, 2)
                .loss(loss)
                .init(init.clone())
                .check()
                .unwrap();
            let run = || {
                let mut m = OnlineNmf::<f32>::new(params.clone());
                m.fit(&d.x.mapv(|v| v as f32)).unwrap();
                let w = m.transform(&d.x.mapv(|v| v as f32)).unwrap();
                (m.components().unwrap().to_owned(), w, m)
            };
            let (h1, w1, m1) = run();
            let (h2, w2, m2) = run();
            assert_eq!(h1, h2);
            assert_eq!(w1, w2);
            assert_eq!(m1, m2, "the whole model state, statistics and RNG included");
        }
    }
    // And the seed matters.
    let with_seed = |s| {
        let p = fro_params(500, 1)
            .init(Init::Random)
            .seed(s)
            .check()
            .unwrap();
        let mut m = OnlineNmf::<f64>::new(p);
        m.fit(&d.x).unwrap();
        m.components().unwrap().to_owned()
    };
    assert_ne!(with_seed(1), with_seed(2));
}

/// Threads only decide who solves which chunk of a batch: the model, the codes and the
/// loss are bitwise the same for 1, 2 or 3 threads, dense or sparse, HALS or MU, with
/// batches of 256-row chunks (1000 rows) and of 64-row ones (200 rows).
#[test]
fn thread_count_never_changes_the_model() {
    let d = planted();
    let x =
        d.x.slice(s![..2500, ..])
            .mapv(|v| if v < 0.05 { 0.0 } else { v as f32 });
    let csr = CsrMatrix::from_dense(x.view());
    for (loss, batch) in [
        (Loss::Frobenius, 1000),
        (Loss::KullbackLeibler, 1000),
        (Loss::Frobenius, 200),
        (Loss::KullbackLeibler, 200),
    ] {
        let params = fro_params(batch, 2).loss(loss).check().unwrap();
        for data in [MatRef::from(&x), MatRef::from(&csr)] {
            let run = |threads| {
                let mut m = OnlineNmf::<f32>::new(params.clone()).with_threads(threads);
                m.fit(data).unwrap();
                m.partial_fit(data.slice_rows(0..700)).unwrap();
                let w = m.transform(data).unwrap();
                let loss = m.loss(data).unwrap().loss;
                (m, w, loss)
            };
            let (m1, w1, l1) = run(1);
            for threads in [2, 3] {
                let (m, w, l) = run(threads);
                assert_eq!(m, m1, "{loss}, {threads} threads");
                assert_eq!(w, w1);
                assert_eq!(l.to_bits(), l1.to_bits());
            }
        }
    }
}

#[test]
fn partial_fit_keeps_learning_and_inverse_transform_reconstructs() {
    let d = planted();
    let params = fro_params(256, 1).check().unwrap();
    let mut model = OnlineNmf::<f64>::new(params);
    let mut losses = Vec::new();
    for _ in 0..4 {
        let mut total = 0.0;
        for start in (0..5000).step_by(500) {
            let r = model
                .partial_fit(d.x.slice(s![start..start + 500, ..]))
                .unwrap();
            assert_eq!(r.rows, 500);
            total += r.loss;
        }
        losses.push(total);
    }
    assert!(losses[3] < 0.05 * losses[0], "{losses:?}");
    assert_eq!(model.batches_seen(), 40);
    assert_eq!(model.rows_seen(), 20000);
    // Passes are a notion of `fit` and the pipeline; batches alone close none.
    assert!(model.loss_history().is_empty());
    let w = model.transform(&d.x).unwrap();
    let xr = model.inverse_transform(w.view()).unwrap();
    assert!(relative_error(&d.x, &w, &model.components().unwrap().to_owned()) < 0.02);
    assert_eq!(xr.dim(), d.x.dim());
    // Warm-started transform from good codes stays at least as good.
    let w2 = model.transform_from(&d.x, w.view()).unwrap();
    let h = model.components().unwrap().to_owned();
    assert!(relative_error(&d.x, &w2, &h) <= relative_error(&d.x, &w, &h) * (1.0 + 1e-9));
}

#[test]
fn itakura_saito_and_general_beta_fit_positive_data() {
    let d = planted();
    let x = d.x.slice(s![..1000, ..]).mapv(|v| v + 0.1);
    for loss in [Loss::ItakuraSaito, Loss::Beta(1.5), Loss::Beta(3.0)] {
        let params = fro_params(250, 3).loss(loss).check().unwrap();
        let mut model = OnlineNmf::<f64>::new(params);
        let r = model.fit(&x).unwrap();
        let l = &r.pass_losses;
        assert!(l.iter().all(|v| v.is_finite()), "{loss}: {l:?}");
        assert!(l[2] < l[0], "{loss}: loss did not fall {l:?}");
        assert!(model.components().unwrap().iter().all(|&v| v >= 0.0));
    }
}

#[test]
fn regularization_shrinks_and_sparsifies() {
    let d = planted();
    let fit = |alpha: f64| {
        let p = fro_params(500, 3)
            .alpha_w(alpha)
            .alpha_h(alpha)
            .l1_ratio(1.0)
            .check()
            .unwrap();
        let mut m = OnlineNmf::<f64>::new(p);
        m.fit(&d.x).unwrap();
        let w = m.transform(&d.x).unwrap();
        let zeros = w.iter().filter(|&&v| v == 0.0).count() as f64 / w.len() as f64;
        (zeros, m.loss(&d.x).unwrap().relative_error.unwrap())
    };
    let (z0, e0) = fit(0.0);
    let (z1, e1) = fit(1e-3);
    assert!(z1 > z0, "L1 should zero more codes: {z0} -> {z1}");
    assert!(e1 > e0, "a penalty costs some fit: {e0} -> {e1}");
}
