//! The model file format's round trips, checks and stability.

use super::*;
use crate::matrix::Valid;
use crate::model::NmfParams;

fn fitted<F: Float>() -> OnlineNmf<F> {
    let x = Array2::from_shape_fn((300, 7), |(i, j)| F::from_f64(((i * j) % 5) as f64 + 0.1));
    let mut m = OnlineNmf::<F>::new(
        NmfParams::new(3)
            .batch_size(64)
            .max_passes(3)
            .check()
            .unwrap(),
    );
    m.fit(&x).unwrap();
    m.partial_fit(&x).unwrap();
    m
}

fn encode<F: Float>(m: &OnlineNmf<F>, meta: &Metadata) -> Vec<u8> {
    let mut v = Vec::new();
    encode_to(&mut v, m, meta, None).unwrap();
    v
}

/// A file of `header` and `blocks`, checksummed as the writer does (for headers edited
/// by a test).
fn reseal(header: &Value, blocks: &[u8]) -> Vec<u8> {
    let hb = serde_json::to_vec(header).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(hb.len() as u64).to_le_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(blocks);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn round_trip_is_exact_and_bytes_are_stable() {
    let meta = Metadata::default().with_feature_names(vec!["a".into()]);
    let m = fitted::<f32>();
    let bytes = encode(&m, &meta);
    let (back, meta2, run) = decode::<f32>(&bytes).unwrap();
    assert!(run.is_none());
    assert_eq!(back, m);
    assert_eq!(meta2, meta);
    assert_eq!(encode(&back, &meta2), bytes);
    let m = fitted::<f64>();
    let bytes = encode(&m, &meta);
    assert_eq!(decode::<f64>(&bytes).unwrap().0, m);
    assert_eq!(float_type(&bytes).unwrap(), "f64");
    assert!(matches!(decode::<f32>(&bytes), Err(Error::ModelFile(_))));
}

/// Many loss-history floats in the JSON header: every one must come back exactly
/// (serde_json needs `float_roundtrip` for that; without it about one value in a few
/// hundred comes back one ULP off).
#[test]
fn header_floats_round_trip_exactly() {
    for seed in 0..8 {
        let x = Array2::from_shape_fn((400, 9), |(i, j)| {
            ((i * 31 + j * 7 + seed) % 11) as f64 * 0.37
        });
        let p = NmfParams::new(3)
            .batch_size(16)
            .max_passes(40)
            .pass_tol(0.0)
            .seed(seed as u64);
        let mut m = OnlineNmf::<f64>::new(p.check().unwrap());
        m.fit(&x).unwrap();
        assert_eq!(m.loss_history().len(), 40);
        let bytes = encode(&m, &Metadata::default());
        let (back, meta, _) = decode::<f64>(&bytes).unwrap();
        assert_eq!(back.loss_history(), m.loss_history());
        assert_eq!(encode(&back, &meta), bytes, "seed {seed}");
    }
}

/// A checkpoint taken while a multi-pass fit keeps its batches' statistics (in the first
/// pass, and while a later pass replaces them) comes back bit for bit, and goes on to
/// the same model; a model file after `fit` has no such state.
#[test]
fn kept_batch_statistics_round_trip() {
    let x = Array2::from_shape_fn((200, 6), |(i, j)| ((i * 7 + j) % 5) as f64 + 0.2);
    let p = NmfParams::new(2).batch_size(50).check().unwrap();
    let mut m = OnlineNmf::<f64>::new(p);
    m.ensure_dictionary(Valid::check((&x).into(), 0, m.value_rule(), 1).unwrap())
        .unwrap();
    m.keep_pass_statistics(None);
    let chunk = |i: usize| x.slice(ndarray::s![i * 50..(i + 1) * 50, ..]);
    let round_trip = |m: &OnlineNmf<f64>| {
        let bytes = encode(m, &Metadata::default());
        assert!(String::from_utf8_lossy(&bytes).contains("\"replay\""));
        let back = decode::<f64>(&bytes).unwrap().0;
        assert_eq!(&back, m);
        back
    };
    for i in 0..3 {
        m.partial_fit(chunk(i)).unwrap();
    }
    let mut back = round_trip(&m);
    for model in [&mut m, &mut back] {
        model.partial_fit(chunk(3)).unwrap();
        model.start_pass();
        model.partial_fit(chunk(0)).unwrap();
    }
    assert!(
        m.state()
            .dict
            .as_ref()
            .unwrap()
            .replay
            .as_ref()
            .unwrap()
            .replacing
    );
    assert_eq!(back, m);
    let mut back = round_trip(&m);
    for model in [&mut m, &mut back] {
        model.partial_fit(chunk(1)).unwrap();
    }
    assert_eq!(back, m);
    let plain = encode(&fitted::<f64>(), &Metadata::default());
    assert!(!String::from_utf8_lossy(&plain).contains("\"replay\""));
}

#[test]
fn corruption_and_truncation_are_detected() {
    let bytes = encode(&fitted::<f64>(), &Metadata::default());
    for cut in [0, 10, 30, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(decode::<f64>(&bytes[..cut]), Err(Error::ModelFile(_))),
            "cut {cut}"
        );
    }
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let err = decode::<f64>(&flipped).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let mut wrong = bytes;
    wrong[8] = 9;
    assert!(decode::<f64>(&wrong)
        .unwrap_err()
        .to_string()
        .contains("version 9"));
}

/// A header that passes the checksum but lies about an array's shape or place is an
/// error naming the array, never a panic.
#[test]
fn lying_headers_are_errors() {
    let bytes = encode(&fitted::<f32>(), &Metadata::default());
    let (header, blocks) = open_bytes(&bytes).unwrap();
    let reencode = |h: &Value| reseal(h, blocks);
    assert!(decode::<f32>(&reencode(&header)).is_ok());
    for (path, value, needle) in [
        ("/model/dict/current/a/dim", json!([2, 2]), "statistics A"),
        ("/model/dict/h/offset", json!(1u64 << 40), "dictionary H"),
        ("/model/dict/h/dtype", json!("f16"), "dtype"),
        ("/model/params/rank", json!(0), "rank"),
        ("/model/dict/loss", json!("KullbackLeibler"), "loss"),
        ("/model/batches", json!("many"), "model"),
    ] {
        let mut h = header.clone();
        *h.pointer_mut(path).unwrap() = value;
        let err = decode::<f32>(&reencode(&h)).unwrap_err();
        assert!(err.to_string().contains(needle), "{path}: {err}");
    }
}

/// Itakura-Saito statistics written with the exponent ½ of earlier versions (numerators
/// summed with `H²`) are re-weighted on load, so `(A / B)^γ` is still the saved H and
/// the next batch updates it as this build would; files that record their exponent are
/// read as they are.
#[test]
fn statistics_of_an_older_exponent_are_reweighted() {
    let x = Array2::from_shape_fn((300, 7), |(i, j)| ((i * j) % 5) as f64 + 0.1);
    let params = NmfParams::new(3)
        .loss(crate::Loss::ItakuraSaito)
        .batch_size(64);
    let mut m = OnlineNmf::<f64>::new(params.check().unwrap());
    m.fit(&x).unwrap();
    let mut state = m.state().clone();
    let dict = state.dict.as_mut().unwrap();
    assert_eq!(dict.loss.mu_exponent(), 1.0);
    let (h, a_now) = (dict.h.clone(), dict.current.a.clone());
    // What an earlier version summed: every numerator times H once more (1/γ = 2).
    dict.current.a = &a_now * &h;
    let old = OnlineNmf::from_state(state);
    let bytes = encode(&old, &Metadata::default());
    let (header, blocks) = open_bytes(&bytes).unwrap();
    assert_eq!(header.pointer("/model/dict/mu_exponent"), Some(&json!(1.0)));
    // As written: the exponent is on record, nothing is converted.
    let as_written = decode::<f64>(&bytes).unwrap().0;
    assert_eq!(as_written, old);
    // Without the key (an earlier version's file): A comes back as this build sums it.
    let reencode = |h: &Value| reseal(h, blocks);
    // An exponent no rule gives is a lie, not a re-weighting by any power of H.
    for bad in [
        json!(0.0),
        json!(-1.0),
        json!(2.0),
        json!("one"),
        json!(1e-300),
    ] {
        let mut h = header.clone();
        h["model"]["dict"]["mu_exponent"] = bad;
        assert!(matches!(
            decode::<f64>(&reencode(&h)),
            Err(Error::ModelFile(_))
        ));
    }
    let mut legacy = header.clone();
    legacy["model"]["dict"]
        .as_object_mut()
        .unwrap()
        .remove("mu_exponent");
    let back = decode::<f64>(&reencode(&legacy)).unwrap().0;
    let a_back = &back.state().dict.as_ref().unwrap().current.a;
    for (got, want) in a_back.iter().zip(&a_now) {
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    }
    assert_eq!(back.components().unwrap(), m.components().unwrap());
}
