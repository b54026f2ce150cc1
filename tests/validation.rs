//! Validation is a property of the data path: every batch that reaches a solver has passed
//! the one validator, whatever its source (a user's own `BatchSource`, files, a stream),
//! with the model's loss deciding what is valid.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use ndarray::{s, Array2};
use streamnmf::io::{FileSource, InputOptions};
use streamnmf::pipeline::{fit, transform, PipelineOptions};
use streamnmf::source::{BatchIter, BatchSource};
use streamnmf::synth::PlantedSpec;
use streamnmf::{Batch, CsrMatrix, Error, Loss, Matrix, NmfParams, OnlineNmf};

fn clean() -> Array2<f64> {
    PlantedSpec::new(600, 10, 3)
        .seed(4)
        .generate()
        .x
        .mapv(|v| v + 0.01)
}

/// Makes a batch invalid.
type Spoil = fn(&mut Array2<f64>);

/// A user's source: serves `x` in batches of 50 rows, spoiling batch `bad` with `spoil`,
/// and counts the batches it hands out.
struct Custom {
    x: Array2<f64>,
    bad: usize,
    spoil: Spoil,
    served: Arc<AtomicUsize>,
}

impl BatchSource<f64> for Custom {
    fn width(&self) -> usize {
        self.x.ncols()
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn epoch(&mut self, _: usize) -> streamnmf::Result<BatchIter<f64>> {
        let (x, bad, spoil, served) = (self.x.clone(), self.bad, self.spoil, self.served.clone());
        Ok(Box::new((0..x.nrows() / 50).map(move |i| {
            served.fetch_add(1, Ordering::SeqCst);
            let mut b = x.slice(s![i * 50..(i + 1) * 50, ..]).to_owned();
            if i == bad {
                spoil(&mut b);
            }
            Ok(Batch::dense(b).with_first_row(i as u64 * 50))
        })))
    }
}

fn lockstep() -> PipelineOptions {
    // Staleness 0: batch t is solved only after batch t − 1 was applied, so the number of
    // batches applied when the run stops is exact.
    PipelineOptions::new()
        .with_staleness(0)
        .with_batch_threads(1)
}

/// Each kind of bad value from a custom source stops the fit at that batch with the
/// validator's error (global row and column); no batch after it reaches the model.
#[test]
fn a_custom_source_cannot_feed_invalid_values() {
    let cases: [(Spoil, Loss, &str); 4] = [
        (
            |b| b[[7, 2]] = -1.0,
            Loss::Frobenius,
            "negative value -1 at row 157, column 2",
        ),
        (
            |b| b[[7, 2]] = f64::NAN,
            Loss::KullbackLeibler,
            "non-finite value NaN at row 157, column 2",
        ),
        (
            |b| b[[7, 2]] = f64::INFINITY,
            Loss::Frobenius,
            "non-finite value inf at row 157",
        ),
        (
            |b| b[[7, 2]] = 0.0,
            Loss::ItakuraSaito,
            "zero value at row 157, column 2",
        ),
    ];
    for (spoil, loss, needle) in cases {
        let served = Arc::new(AtomicUsize::new(0));
        let mut src = Custom {
            x: clean(),
            bad: 3,
            spoil,
            served: served.clone(),
        };
        let params = NmfParams::new(3).loss(loss).batch_size(50).check().unwrap();
        let mut m = OnlineNmf::<f64>::new(params);
        let err = fit(&mut m, &mut src, &lockstep(), |_| {}).unwrap_err();
        assert!(err.to_string().contains(needle), "{loss}: {err}");
        assert_eq!(
            m.batches_seen(),
            3,
            "{loss}: batches applied before the bad one"
        );
        assert_eq!(
            served.load(Ordering::SeqCst),
            4,
            "{loss}: the reader stopped there"
        );
    }
}

/// A source whose batches do not have its declared width, or whose first batch is bad,
/// is refused before anything is learned; `transform` checks like `fit`.
#[test]
fn widths_first_batches_and_transform_are_checked() {
    struct Wrong(usize);
    impl BatchSource<f64> for Wrong {
        fn width(&self) -> usize {
            10
        }
        fn rewindable(&self) -> bool {
            true
        }
        fn epoch(&mut self, _: usize) -> streamnmf::Result<BatchIter<f64>> {
            let p = self.0;
            Ok(Box::new(
                (0..3).map(move |_| Ok(Batch::dense(Array2::ones((20, p))))),
            ))
        }
    }
    let params = NmfParams::new(3).check().unwrap();
    let mut m = OnlineNmf::<f64>::new(params.clone());
    let err = fit(&mut m, &mut Wrong(9), &lockstep(), |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WidthMismatch {
                expected: 10,
                found: 9
            }
        ),
        "{err}"
    );
    assert!(m.components().is_err(), "nothing learned");

    let mut first_bad = Custom {
        x: clean(),
        bad: 0,
        spoil: |b| b[[0, 0]] = -5.0,
        served: Arc::new(AtomicUsize::new(0)),
    };
    let err = fit(&mut m, &mut first_bad, &lockstep(), |_| {}).unwrap_err();
    assert!(
        matches!(err, Error::NegativeValue { row: 0, col: 0, .. }),
        "{err}"
    );
    assert!(m.components().is_err(), "the init never saw the bad batch");

    m.fit(&clean()).unwrap();
    let err = transform(&m, &mut first_bad, &lockstep(), |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(err, Error::NegativeValue { row: 0, col: 0, .. }),
        "{err}"
    );
}

/// A sparse custom source under Itakura-Saito: its implicit zeros are zeros too.
#[test]
fn sparse_sources_are_checked_for_implicit_zeros() {
    struct Sparse;
    impl BatchSource<f64> for Sparse {
        fn width(&self) -> usize {
            4
        }
        fn rewindable(&self) -> bool {
            true
        }
        fn epoch(&mut self, _: usize) -> streamnmf::Result<BatchIter<f64>> {
            let x = ndarray::array![[1.0, 2.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]];
            let m = Matrix::Csr(CsrMatrix::from_dense(x.view()));
            Ok(Box::new(std::iter::once(Ok(
                Batch::new(m).with_first_row(40)
            ))))
        }
    }
    let params = NmfParams::new(2).loss(Loss::ItakuraSaito).check().unwrap();
    let mut m = OnlineNmf::<f64>::new(params);
    let err = fit(&mut m, &mut Sparse, &lockstep(), |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ZeroForBeta {
                row: 40,
                col: 2,
                ..
            }
        ),
        "{err}"
    );
}

/// Itakura-Saito over files: the reader knows nothing of the loss, the pipeline's check
/// does, and names the file, the row in the file and the column.
#[test]
fn itakura_saito_over_files_rejects_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = clean();
    x[[437, 6]] = 0.0;
    let path = dir.path().join("x.parquet");
    write_parquet(&path, &dense_batches(&x, 200, false), 150);
    let is = NmfParams::new(3)
        .loss(Loss::ItakuraSaito)
        .batch_size(64)
        .check()
        .unwrap();
    let mut m = OnlineNmf::<f64>::new(is);
    let mut src =
        FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(64)).unwrap();
    let err = fit(&mut m, &mut src, &lockstep(), |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("x.parquet: row 437, column 'f6': zero value"),
        "{msg}"
    );
    // The same file is fine under Frobenius and KL, where zero is a valid value.
    for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
        let p = NmfParams::new(3).loss(loss).batch_size(64).check().unwrap();
        let mut src =
            FileSource::<f64>::open(std::slice::from_ref(&path), InputOptions::new(64)).unwrap();
        fit(&mut OnlineNmf::<f64>::new(p), &mut src, &lockstep(), |_| {}).unwrap();
    }
}
