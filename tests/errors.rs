//! One test per data/usage error variant, through the public API: each names the row and
//! column where it applies, and none panics.

use ndarray::{array, s, Array2};
use streamnmf::{
    Batch, CsrMatrix, Error, Init, Loss, MatRef, NmfParams, OnlineNmf, RowIds, ValidParams,
};

fn params(k: usize) -> ValidParams {
    NmfParams::new(k)
        .batch_size(2)
        .max_passes(2)
        .check()
        .unwrap()
}

fn data() -> Array2<f64> {
    Array2::from_shape_fn((6, 4), |(i, j)| (i + j) as f64 + 1.0)
}

#[test]
fn negative_value_names_global_row_and_column() {
    let mut x = data();
    x[[5, 2]] = -0.5;
    let mut m = OnlineNmf::<f64>::new(params(2));
    // In fit: the row is global (batch 3, local row 1 -> row 5).
    match m.fit(&x) {
        Err(Error::NegativeValue {
            row: 5,
            col: 2,
            value,
        }) => assert_eq!(value, -0.5),
        other => panic!("{other:?}"),
    }
    // In partial_fit: rows count on from what the model has seen.
    let mut m = OnlineNmf::<f64>::new(params(2));
    m.partial_fit(x.slice(s![0..4, ..])).unwrap();
    let err = m.partial_fit(x.slice(s![4..6, ..])).unwrap_err();
    assert!(
        matches!(err, Error::NegativeValue { row: 5, col: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("row 5, column 2"), "{err}");
}

#[test]
fn nan_and_infinity_are_rejected() {
    for bad in [f64::NAN, f64::INFINITY] {
        let mut x = data();
        x[[1, 3]] = bad;
        let err = OnlineNmf::<f64>::new(params(2)).fit(&x).unwrap_err();
        assert!(
            matches!(err, Error::NonFinite { row: 1, col: 3, .. }),
            "{err}"
        );
    }
    // A value that overflows f32 is caught after conversion too.
    let x = array![[1.0f32, f32::MAX * 2.0]];
    let err = OnlineNmf::<f32>::new(params(1))
        .partial_fit(&x)
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { row: 0, col: 1, .. }),
        "{err}"
    );
}

#[test]
fn itakura_saito_rejects_zeros() {
    let mut x = data();
    x[[3, 0]] = 0.0;
    let p = NmfParams::new(2).loss(Loss::ItakuraSaito).check().unwrap();
    let err = OnlineNmf::<f64>::new(p.clone()).fit(&x).unwrap_err();
    assert!(
        matches!(err, Error::ZeroForBeta { row: 3, col: 0, .. }),
        "{err}"
    );
    // Implicit zeros of a sparse matrix too.
    let csr = CsrMatrix::from_dense(x.view());
    let err = OnlineNmf::<f64>::new(p).fit(&csr).unwrap_err();
    assert!(
        matches!(err, Error::ZeroForBeta { row: 3, col: 0, .. }),
        "{err}"
    );
}

#[test]
fn width_mismatch() {
    let mut m = OnlineNmf::<f64>::new(params(2));
    m.partial_fit(&data()).unwrap();
    let wide = Array2::<f64>::ones((3, 5));
    let err = m.partial_fit(&wide).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WidthMismatch {
                expected: 4,
                found: 5
            }
        ),
        "{err}"
    );
    assert!(matches!(
        m.transform(&wide),
        Err(Error::WidthMismatch { .. })
    ));
}

#[test]
fn empty_batch() {
    let mut m = OnlineNmf::<f64>::new(params(2));
    let err = m.partial_fit(&Array2::<f64>::zeros((0, 4))).unwrap_err();
    assert!(
        matches!(err, Error::EmptyBatch { rows: 0, cols: 4 }),
        "{err}"
    );
    let err = m.fit(&Array2::<f64>::zeros((0, 4))).unwrap_err();
    assert!(matches!(err, Error::EmptyBatch { .. }), "{err}");
}

#[test]
fn rank_larger_than_width() {
    let err = OnlineNmf::<f64>::new(params(5)).fit(&data()).unwrap_err();
    assert!(
        matches!(err, Error::RankTooLarge { rank: 5, width: 4 }),
        "{err}"
    );
}

#[test]
fn malformed_sparse() {
    let err = CsrMatrix::<f64>::try_new(4, vec![0, 1, 2], vec![0, 9], vec![1.0, 1.0]).unwrap_err();
    assert!(
        matches!(err, Error::MalformedSparse { row: 1, .. }),
        "{err}"
    );
}

#[test]
fn row_ids_length() {
    let err = Batch::dense(data())
        .with_ids(RowIds::Int64(vec![1, 2]))
        .unwrap_err();
    assert!(
        matches!(err, Error::RowIdsLength { rows: 6, ids: 2 }),
        "{err}"
    );
}

#[test]
fn codes_shape() {
    let mut m = OnlineNmf::<f64>::new(params(2));
    m.fit(&data()).unwrap();
    let err = m
        .inverse_transform(Array2::zeros((3, 3)).view())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CodesShape {
                expected: 2,
                found: 3
            }
        ),
        "{err}"
    );
    let err = m
        .transform_from(&data(), Array2::zeros((6, 3)).view())
        .unwrap_err();
    assert!(matches!(err, Error::CodesShape { .. }), "{err}");
}

#[test]
fn not_fitted() {
    let m = OnlineNmf::<f64>::new(params(2));
    assert!(matches!(m.components(), Err(Error::NotFitted)));
    assert!(matches!(m.transform(&data()), Err(Error::NotFitted)));
    assert!(matches!(m.loss(&data()), Err(Error::NotFitted)));
}

#[test]
fn custom_init_width_checked_against_data() {
    let p = NmfParams::new(2)
        .init(Init::Custom(Array2::ones((2, 7))))
        .check()
        .unwrap();
    let err = OnlineNmf::<f64>::new(p).fit(&data()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InitShape {
                width: 4,
                found_cols: 7,
                ..
            }
        ),
        "{err}"
    );
}

/// A failed batch leaves the model as it was.
#[test]
fn failed_batch_changes_nothing() {
    let mut m = OnlineNmf::<f64>::new(params(2));
    m.partial_fit(&data()).unwrap();
    let before = m.clone();
    let mut x = data();
    x[[0, 0]] = f64::NAN;
    assert!(m.partial_fit(MatRef::from(&x)).is_err());
    assert_eq!(m, before);
}

/// `fit` validates all of X before it discards the model's state.
#[test]
fn failed_fit_changes_nothing() {
    let mut m = OnlineNmf::<f64>::new(params(2));
    m.fit(&data()).unwrap();
    let before = m.clone();
    let mut x = data();
    x[[5, 1]] = -1.0;
    assert!(m.fit(&x).is_err());
    assert_eq!(m, before);
}
