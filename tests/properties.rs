//! Invariants on random non-negative inputs: W and H never go negative, losses are finite,
//! nothing panics, whatever the shape, sparsity, loss or element type.

use ndarray::Array2;
use proptest::prelude::*;
use streamnmf::{CsrMatrix, Init, Loss, NmfParams, OnlineNmf};

fn matrix() -> impl Strategy<Value = Array2<f64>> {
    (1usize..40, 1usize..12).prop_flat_map(|(n, p)| {
        proptest::collection::vec(
            prop_oneof![3 => Just(0.0), 5 => 0.0f64..10.0, 1 => 0.0f64..1e-6, 1 => 1e3f64..1e5],
            n * p,
        )
        .prop_map(move |v| Array2::from_shape_vec((n, p), v).unwrap())
    })
}

fn loss() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::Frobenius),
        Just(Loss::KullbackLeibler),
        Just(Loss::Beta(1.5)),
        Just(Loss::Beta(0.5)),
    ]
}

fn init() -> impl Strategy<Value = Init> {
    prop_oneof![
        Just(Init::Auto),
        Just(Init::Random),
        Just(Init::Nndsvd),
        Just(Init::Nndsvda),
        Just(Init::Nndsvdar)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn factors_stay_nonnegative_and_losses_finite(
        x in matrix(), k in 1usize..5, batch in 1usize..16, loss in loss(), init in init(),
        sparse in any::<bool>(), single in any::<bool>(), seed in 0u64..1000,
    ) {
        let k = k.min(x.ncols());
        let params = NmfParams::new(k).loss(loss).init(init).batch_size(batch)
            .max_passes(3).code_max_iter(20).seed(seed).check().unwrap();
        let (h, w, l) = if single {
            let x32 = x.mapv(|v| v as f32);
            let mut m = OnlineNmf::<f32>::new(params);
            let r = if sparse { m.fit(&CsrMatrix::from_dense(x32.view())) } else { m.fit(&x32) }.unwrap();
            prop_assert!(r.pass_losses.iter().all(|v| v.is_finite()), "{:?}", r.pass_losses);
            let w = m.transform(&x32).unwrap().mapv(|v| v as f64);
            (m.components().unwrap().mapv(|v| v as f64), w, m.loss(&x32).unwrap().loss)
        } else {
            let mut m = OnlineNmf::<f64>::new(params);
            let r = if sparse { m.fit(&CsrMatrix::from_dense(x.view())) } else { m.fit(&x) }.unwrap();
            prop_assert!(r.pass_losses.iter().all(|v| v.is_finite()), "{:?}", r.pass_losses);
            (m.components().unwrap().to_owned(), m.transform(&x).unwrap(), m.loss(&x).unwrap().loss)
        };
        prop_assert!(h.iter().all(|&v| v >= 0.0 && v.is_finite()), "H {h}");
        prop_assert!(w.iter().all(|&v| v >= 0.0 && v.is_finite()), "W {w}");
        prop_assert!(l.is_finite() && l >= 0.0, "loss {l}");
    }
}
