//! Numerics that hold on data we did not plant: no NaN or infinity ever reaches a model,
//! at any number of passes or batch size, and overflow is an error, not a silent model.

mod common;

use common::word_counts;
use ndarray::Array2;
use streamnmf::{CsrMatrix, Error, Loss, NmfParams, OnlineNmf};

/// KL on real-shaped word counts (300 documents × 3294 words, 5 % dense), 300 passes of
/// 64-row batches: every pass's loss is finite, H stays finite with no feature that has
/// counts left dead, and the fit ends within 2 % of the full-batch fit's divergence.
/// (Before the atoms kept a floor, 16-row batches killed 1545 of the 3294 columns and
/// ended 2.8 times higher.)
#[test]
fn kl_on_word_counts_over_many_passes_stays_finite() {
    let x = word_counts(300, 3294, 10, 1);
    let x32 = CsrMatrix::from_dense(x.to_dense().mapv(|v| v as f32).view());
    let fit = |batch, passes| {
        let p = NmfParams::new(10)
            .loss(Loss::KullbackLeibler)
            .batch_size(batch)
            .max_passes(passes)
            .pass_tol(0.0)
            .seed(0)
            .check()
            .unwrap();
        let mut m = OnlineNmf::<f32>::new(p);
        let r = m.fit(&x32).unwrap();
        assert!(
            r.pass_losses.iter().all(|l| l.is_finite()),
            "batch {batch}: {:?}",
            r.pass_losses
        );
        let h = m.components().unwrap();
        assert!(
            h.iter().all(|v| v.is_finite() && *v >= 0.0),
            "batch {batch}"
        );
        let dense = x.to_dense();
        let dead = (0..h.ncols())
            .filter(|&j| dense.column(j).sum() > 0.0 && h.column(j).iter().all(|&v| v == 0.0))
            .count();
        assert_eq!(
            dead, 0,
            "batch {batch}: features with counts but a dead column"
        );
        m.loss(&x32).unwrap().loss
    };
    let full = fit(300, 300);
    let online = fit(64, 300);
    assert!(
        online <= 1.02 * full,
        "batch 64: {online} vs full batch {full}"
    );
    let small = fit(16, 60);
    assert!(
        small.is_finite() && small <= 1.1 * full,
        "batch 16: {small} vs {full}"
    );
}

/// Values whose squares overflow f32 (1e30): the batch is refused with an error naming it
/// and the remedy, the model is left as it was; in f64 the same data fits.
#[test]
fn overflow_is_an_error_not_a_model() {
    let x = Array2::from_shape_fn((200, 6), |(i, j)| 1e30f32 * (1.0 + ((i + j) % 3) as f32));
    let params = NmfParams::new(2).batch_size(100).check().unwrap();
    let mut m = OnlineNmf::<f32>::new(params.clone());
    let err = m.partial_fit(&x).unwrap_err();
    assert!(
        matches!(err, Error::NumericalOverflow { batch: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--float f64"), "{err}");
    assert!(m.components().is_err(), "nothing kept");
    let mut m64 = OnlineNmf::<f64>::new(params);
    m64.partial_fit(&x.mapv(|v| v as f64)).unwrap();
    assert!(m64.components().unwrap().iter().all(|v| v.is_finite()));
}

/// KL codes by coordinate descent on a dense batch whose scale spans 12 orders (a count of
/// 9e4 next to 4e-7) against an NNDSVD start with near-zero atoms: the Newton step along
/// a code whose atom is almost zero where the data is large is the ratio of two tiny sums,
/// and must not overflow the codes (found by `tests/properties.rs` once dense KL batches
/// went to coordinate descent).
#[test]
fn kl_codes_survive_near_zero_atoms() {
    let mut x = Array2::<f64>::zeros((9, 8));
    x[[6, 4]] = 90270.77628004605;
    x[[7, 5]] = 0.8140243972080868;
    x[[7, 7]] = 5.863931486529327;
    for (j, v) in [
        (1, 76317.30839832696),
        (2, 0.8735113826250149),
        (3, 8.043466054036394),
        (4, 5.0017359777986e-7),
        (6, 7.591841687668403),
        (7, 4.154237670444014e-7),
    ] {
        x[[8, j]] = v;
    }
    let p = NmfParams::new(2)
        .loss(Loss::KullbackLeibler)
        .init(streamnmf::Init::Nndsvd)
        .batch_size(12)
        .max_passes(3)
        .code_max_iter(20)
        .seed(655)
        .check()
        .unwrap();
    let mut m = OnlineNmf::<f64>::new(p);
    let r = m.fit(&x).unwrap();
    assert!(
        r.pass_losses.iter().all(|l| l.is_finite()),
        "{:?}",
        r.pass_losses
    );
    let w = m.transform(&x).unwrap();
    assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0), "{w}");
}
