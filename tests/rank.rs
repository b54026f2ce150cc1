//! `streamnmf rank`: planted rank 8 at 5 % noise is picked among 4, 6, 8, 12 and 16 by
//! the error on hidden entries; the table, JSON and plot; the same choice from the
//! library; the errors.

mod common;

use common::{fails, ok, run};

use streamnmf::rank::{select_rank, RankOptions};
use streamnmf::source::MemorySource;
use streamnmf::synth::PlantedSpec;
use streamnmf::NmfParams;

#[test]
fn planted_rank_is_picked() {
    let d = PlantedSpec::new(3000, 80, 8).noise(0.05).seed(5).generate();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    common::write_parquet(
        &p.join("x.parquet"),
        &common::dense_batches(&d.x, 1000, false),
        1000,
    );
    let out = ok(&run(
        &[
            "rank",
            "x.parquet",
            "--ranks",
            "4,6,8,12,16",
            "--json",
            "--plot",
            "rank.png",
        ],
        p,
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["picked"], 8, "{report:#}");
    let rows = report["rows"].as_array().unwrap();
    let held = |i: usize| rows[i]["heldout_loss"].as_f64().unwrap();
    let train = |i: usize| rows[i]["train_loss"].as_f64().unwrap();
    assert!(
        held(0) > 2.0 * held(2),
        "rank 4 misses structure: {report:#}"
    );
    assert!(
        train(4) < train(2),
        "more atoms fit the visible entries better"
    );
    let png = std::fs::read(p.join("rank.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    let text = ok(&run(
        &["rank", "x.parquet", "--ranks", "4,8", "--epochs", "2"],
        p,
    ));
    assert!(
        text.contains("<- picked") && text.contains("picked rank"),
        "{text}"
    );

    // The library gives the same choice.
    let mut src = MemorySource::new(d.x.mapv(|v| v as f32), 1024);
    let opts = RankOptions {
        ranks: vec![4, 6, 8, 12, 16],
        holdout: 0.1,
        epochs: 10,
        seed: 0,
        threads: 2,
        stop: None,
    };
    let r = select_rank::<f32>(&mut src, NmfParams::new(1), &opts).unwrap();
    assert_eq!(r.picked, 8, "{r:?}");
}

#[test]
fn rank_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let d = PlantedSpec::new(100, 10, 2).seed(1).generate();
    common::write_parquet(
        &p.join("x.parquet"),
        &common::dense_batches(&d.x, 100, false),
        100,
    );
    let err = |args: &[&str]| fails(&run(args, p));
    assert!(err(&["rank", "x.parquet", "--ranks", "2,20"]).contains("rank 20 exceeds"));
    assert!(err(&["rank", "x.parquet", "--ranks", "0"]).contains("at least 1"));
    assert!(err(&["rank", "x.parquet", "--ranks", "2", "--holdout", "0.9"]).contains("holdout"));
    assert!(err(&["rank", "x.parquet", "--ranks", "2", "--loss", "is"]).contains("is"));
}

/// A raised stop flag ends the run between batches with `Interrupted` (the CLI raises it
/// on SIGINT / SIGTERM).
#[test]
fn a_raised_stop_flag_interrupts() {
    let d = PlantedSpec::new(600, 20, 3).seed(4).generate();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = RankOptions {
        ranks: vec![2, 3],
        holdout: 0.1,
        epochs: 3,
        seed: 0,
        threads: 1,
        stop: Some(stop),
    };
    let e =
        select_rank::<f64>(&mut MemorySource::new(d.x, 100), NmfParams::new(1), &opts).unwrap_err();
    assert!(
        matches!(e, streamnmf::Error::Interrupted { checkpoint: None }),
        "{e}"
    );
}
