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
