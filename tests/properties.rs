//! Invariants on random non-negative inputs: W and H never go negative, losses are finite,
//! nothing panics, whatever the shape, sparsity, loss or element type.

use ndarray::Array2;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// `cases` cases from a fixed seed, so CI runs the same cases every time (and any failure
/// reproduces); `PROPTEST_RNG_SEED=n` explores other cases, `PROPTEST_CASES=n` more of them.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_CASES").is_some() {
        c.cases = ProptestConfig::default().cases;
    }
    if matches!(c.rng_seed, RngSeed::Random) {
        c.rng_seed = RngSeed::Fixed(20_261_130);
    }
    c
}
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
    #![proptest_config(config(256))]

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

// ---- random batches, valid or not, through every entry point --------------------------

use streamnmf::pipeline::{fit_with, PipelineOptions};
use streamnmf::source::{BatchIter, BatchSource};
use streamnmf::{Batch, Error};

/// A value a user might send: ordinary, zero, tiny, huge, negative, NaN or infinite.
fn any_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0f64..10.0,
        2 => Just(0.0),
        1 => 0.0f64..1e-30,
        1 => 1e6f64..1e9,
        1 => -10.0f64..0.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

/// A batch of 0..12 rows, of width `p` or (rarely) another width, dense or sparse.
fn any_batch(p: usize) -> impl Strategy<Value = (Array2<f64>, bool)> {
    (
        0usize..12,
        prop_oneof![8 => Just(p), 1 => Just(p + 1), 1 => Just(p.saturating_sub(1).max(1))],
        any::<bool>(),
    )
        .prop_flat_map(|(n, w, sparse)| {
            proptest::collection::vec(any_value(), n * w)
                .prop_map(move |v| (Array2::from_shape_vec((n, w), v).unwrap(), sparse))
        })
}

/// Errors a bad batch may cause: each names what is wrong, none is a panic.
fn expected(e: &Error) -> bool {
    matches!(
        e,
        Error::NegativeValue { .. }
            | Error::NonFinite { .. }
            | Error::ZeroForBeta { .. }
            | Error::WidthMismatch { .. }
            | Error::EmptyBatch { .. }
            | Error::RankTooLarge { .. }
    )
}

struct Replay(Vec<Batch<f64>>, usize);

impl BatchSource<f64> for Replay {
    fn width(&self) -> usize {
        self.1
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn epoch(&mut self, _: usize) -> streamnmf::Result<BatchIter<f64>> {
        Ok(Box::new(self.0.clone().into_iter().map(Ok)))
    }
}

fn batch_of(x: &Array2<f64>, sparse: bool, first_row: u64) -> Batch<f64> {
    if sparse {
        Batch::csr(CsrMatrix::from_dense(x.view())).with_first_row(first_row)
    } else {
        Batch::dense(x.clone()).with_first_row(first_row)
    }
}

proptest! {
    #![proptest_config(config(192))]

    /// `partial_fit` either learns from a batch or refuses it with a data error and
    /// changes nothing; the pipeline, fed the same batches by a custom source, stops at
    /// the first bad one with a data error. Nothing panics.
    #[test]
    fn random_batches_never_panic(
        p in 2usize..8, k in 1usize..3, loss in prop_oneof![
            Just(Loss::Frobenius), Just(Loss::KullbackLeibler), Just(Loss::ItakuraSaito), Just(Loss::Beta(1.5))
        ],
        batches in proptest::collection::vec(any_batch(6), 1..6),
        f32_model in any::<bool>(), solvers in 1usize..3,
    ) {
        let p = p.min(6);
        let batches: Vec<(Array2<f64>, bool)> = batches
            .into_iter()
            .map(|(x, s)| if x.ncols() == 6 { (x.slice(ndarray::s![.., ..p]).to_owned(), s) } else { (x, s) })
            .collect();
        let params = NmfParams::new(k).loss(loss).batch_size(8).code_max_iter(20).check().unwrap();
        // Batch by batch.
        if f32_model {
            let mut m = OnlineNmf::<f32>::new(params.clone());
            for (x, sparse) in &batches {
                let x32 = x.mapv(|v| v as f32);
                let before = m.clone();
                let r = if *sparse { m.partial_fit(&CsrMatrix::from_dense(x32.view())) } else { m.partial_fit(&x32) };
                if let Err(e) = r {
                    prop_assert!(expected(&e), "{e}");
                    prop_assert!(m == before, "a refused batch changed the model");
                }
            }
        } else {
            let mut m = OnlineNmf::<f64>::new(params.clone());
            for (x, sparse) in &batches {
                let before = m.clone();
                let r = if *sparse { m.partial_fit(&CsrMatrix::from_dense(x.view())) } else { m.partial_fit(x) };
                if let Err(e) = r {
                    prop_assert!(expected(&e), "{e}");
                    prop_assert!(m == before, "a refused batch changed the model");
                }
            }
        }
        // Through the pipeline, from a custom source.
        let mut row = 0;
        let replay: Vec<Batch<f64>> = batches.iter().map(|(x, s)| {
            let b = batch_of(x, *s, row);
            row += x.nrows() as u64;
            b
        }).collect();
        let mut m = OnlineNmf::<f64>::new(params);
        let opts = PipelineOptions::new().with_solvers(solvers).with_epochs(2).with_batch_threads(2);
        match fit_with(&mut m, &mut Replay(replay, p), &opts, None, None, |_| {}) {
            Ok(_) => prop_assert!(m.components().unwrap().iter().all(|v| *v >= 0.0)),
            Err(e) => prop_assert!(expected(&e), "{e}"),
        }
    }
}
