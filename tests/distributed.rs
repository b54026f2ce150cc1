//! Data-parallel fits with the ranks as threads ([`ThreadGroup`]): one rank is the
//! pipeline; N ranks agree bit for bit and repeat themselves; a Parquet input is read by
//! row-group shares; a bad value on one rank stops every rank with its message; a stopped
//! fit resumes exactly, and only with the same number of ranks. `tests/mpi.rs` runs the
//! same fits as processes under `mpirun`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{dense_batches, write_parquet};
use ndarray::Array2;
use streamnmf::distributed::{Collective, Solo, ThreadGroup};
use streamnmf::io::{FileSource, InputOptions};
use streamnmf::persist::{self, CheckpointDir, Metadata, RunState};
use streamnmf::pipeline::{
    fit, fit_distributed, Checkpointing, DistributedReport, PipelineOptions,
};
use streamnmf::source::{BatchSource, MemorySource};
use streamnmf::synth::PlantedSpec;
use streamnmf::{CsrMatrix, Error, Loss, Matrix, NmfParams, OnlineNmf, ValidParams};

fn data() -> Array2<f32> {
    planted(1300)
}

fn planted(n: usize) -> Array2<f32> {
    PlantedSpec::new(n, 30, 4)
        .seed(5)
        .noise(0.02)
        .generate()
        .x
        .mapv(|v| v as f32)
}

fn params(loss: Loss) -> ValidParams {
    // Every pass: a distributed fit does not test for convergence, and the single-process
    // pipeline it is compared with must not either.
    NmfParams::new(4)
        .loss(loss)
        .batch_size(100)
        .pass_tol(0.0)
        .seed(2)
        .check()
        .unwrap()
}

fn opts(epochs: usize) -> PipelineOptions {
    PipelineOptions::new()
        .with_batch_threads(1)
        .with_epochs(epochs)
}

type Outcome = (OnlineNmf<f32>, streamnmf::Result<DistributedReport>);

/// Runs one fit per rank of a thread group; `make` gives each rank its model, source,
/// options, resume state and checkpoints.
fn on_ranks(
    n: usize,
    make: impl Fn(
            usize,
        ) -> (
            OnlineNmf<f32>,
            Box<dyn BatchSource<f32>>,
            PipelineOptions,
            Option<RunState<f32>>,
            Option<Checkpointing>,
        ) + Sync,
) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(n)
            .into_iter()
            .map(|g| {
                let make = &make;
                s.spawn(move || {
                    let (mut model, mut src, o, resume, ck) = make(g.rank());
                    let r = fit_distributed(
                        &mut model,
                        src.as_mut(),
                        &o,
                        &g,
                        resume,
                        ck.as_ref(),
                        |_| {},
                    );
                    (model, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn bytes(m: &OnlineNmf<f32>) -> Vec<u8> {
    persist::encode(m, &Metadata::default())
}

/// One rank is the ordinary pipeline at staleness 0, bit for bit, dense and sparse,
/// Frobenius and KL, over several passes.
#[test]
fn one_rank_is_the_pipeline() {
    let x = data();
    let sparse = Matrix::Csr(CsrMatrix::from_dense(
        x.mapv(|v| if v > 0.3 { v } else { 0.0 }).view(),
    ));
    for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
        for m in [Matrix::Dense(x.clone()), sparse.clone()] {
            let mut piped = OnlineNmf::<f32>::new(params(loss));
            let mut src = MemorySource::from_matrix(m.clone(), 100);
            fit(&mut piped, &mut src, &opts(3).with_staleness(0), |_| {}).unwrap();
            let mut alone = OnlineNmf::<f32>::new(params(loss));
            let mut src = MemorySource::from_matrix(m, 100);
            let r =
                fit_distributed(&mut alone, &mut src, &opts(3), &Solo, None, None, |_| {}).unwrap();
            assert_eq!(bytes(&alone), bytes(&piped), "{loss:?}");
            assert_eq!((r.pipeline.batches, r.local_batches), (39, 39));
        }
    }
}

/// Three ranks over 13 batches (shares of 5, 4 and 4): every rank ends with the same
/// model, a second run repeats it bit for bit, one update per round, and the fit is as
/// good as one process's.
#[test]
fn ranks_agree_and_repeat() {
    let x = data();
    let run = || {
        on_ranks(3, |_| {
            let src = MemorySource::new(x.clone(), 100);
            (
                OnlineNmf::new(params(Loss::Frobenius)),
                Box::new(src),
                opts(4),
                None,
                None,
            )
        })
    };
    let first = run();
    let reports: Vec<_> = first
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().clone())
        .collect();
    assert_eq!(
        reports.iter().map(|r| r.local_batches).collect::<Vec<_>>(),
        [20, 16, 16]
    );
    // ⌈13 / 3⌉ = 5 rounds a pass.
    assert!(reports
        .iter()
        .all(|r| r.pipeline.batches == 20 && r.pipeline.rows == 5200));
    assert!(first.iter().all(|(m, _)| bytes(m) == bytes(&first[0].0)));
    let again = run();
    assert_eq!(bytes(&again[2].0), bytes(&first[0].0));

    let mut one = OnlineNmf::<f32>::new(params(Loss::Frobenius));
    fit(
        &mut one,
        &mut MemorySource::new(x.clone(), 100),
        &opts(4),
        |_| {},
    )
    .unwrap();
    let err = |m: &OnlineNmf<f32>| m.loss(&x).unwrap().relative_error.unwrap();
    let (three, single) = (err(&first[0].0), err(&one));
    assert!(
        three < 0.05 && three < 1.1 * single,
        "3 ranks {three}, one process {single}"
    );
}

/// A Parquet file of 6 row groups of 250 rows, 2 ranks: each reads its 3 row groups
/// only (750 rows: 8 batches of up to 100 rows a pass), and they agree.
#[test]
fn parquet_ranks_read_their_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    write_parquet(
        &path,
        &dense_batches(&planted(1500).mapv(f64::from), 1500, false),
        250,
    );
    let got = on_ranks(2, |_| {
        let src =
            FileSource::<f32>::open(std::slice::from_ref(&path), InputOptions::new(100)).unwrap();
        (
            OnlineNmf::new(params(Loss::Frobenius)),
            Box::new(src),
            opts(2),
            None,
            None,
        )
    });
    for (m, r) in &got {
        let r = r.as_ref().unwrap();
        assert_eq!((r.local_batches, r.pipeline.rows), (16, 3000));
        assert_eq!(bytes(m), bytes(&got[0].0));
    }
}

/// A negative value in batch 4 (rank 1's second batch): rank 1 reports it, and ranks 0
/// and 2 stop with it, named by rank, instead of waiting for rank 1.
#[test]
fn a_bad_value_on_one_rank_stops_every_rank() {
    let mut x = data();
    x[[417, 3]] = -2.0;
    let got = on_ranks(3, |_| {
        let src = MemorySource::new(x.clone(), 100);
        (
            OnlineNmf::new(params(Loss::Frobenius)),
            Box::new(src),
            opts(2),
            None,
            None,
        )
    });
    let errors: Vec<String> = got
        .iter()
        .map(|(_, r)| r.as_ref().unwrap_err().to_string())
        .collect();
    assert!(
        errors[1].contains("negative") && errors[1].contains("417"),
        "{errors:?}"
    );
    for e in [&errors[0], &errors[2]] {
        assert_eq!(*e, format!("rank 1: {}", errors[1]));
    }
    // The rounds before the bad batch's were applied, on every rank alike.
    assert!(got
        .iter()
        .all(|(m, _)| m.batches_seen() == 1 && bytes(m) == bytes(&got[0].0)));
}

/// Stopped after a few rounds (the flag every rank watches), rank 0 writes a checkpoint;
/// the same ranks resume from it to the uninterrupted fit's bits. Other rank counts, and
/// the single-process pipeline, refuse the checkpoint.
#[test]
fn a_stopped_fit_resumes_exactly_with_the_same_ranks() {
    let x = data();
    let dir = tempfile::tempdir().unwrap();
    let ck_path = dir.path().join("ck");
    let whole = on_ranks(2, |_| {
        let src = MemorySource::new(x.clone(), 100);
        (
            OnlineNmf::new(params(Loss::Frobenius)),
            Box::new(src),
            opts(3),
            None,
            None,
        )
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = std::thread::scope(|s| {
        let handles: Vec<_> = ThreadGroup::new(2)
            .into_iter()
            .map(|g| {
                let (x, stop, ck_path) = (x.clone(), stop.clone(), ck_path.clone());
                s.spawn(move || {
                    let ck = (g.rank() == 0).then(|| {
                        let dir = CheckpointDir::new(&ck_path, 2).unwrap();
                        Checkpointing::new(dir, Metadata::default()).every_batches(3)
                    });
                    let mut model = OnlineNmf::new(params(Loss::Frobenius));
                    let o = opts(3).with_stop(stop.clone());
                    let mut src = MemorySource::new(x, 100);
                    fit_distributed(&mut model, &mut src, &o, &g, None, ck.as_ref(), |b| {
                        if b.seq == 8 {
                            stop.store(true, Ordering::SeqCst);
                        }
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for r in &stopped {
        assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    }
    assert!(matches!(
        &stopped[0],
        Err(Error::Interrupted {
            checkpoint: Some(_)
        })
    ));

    let (saved, _, run) = CheckpointDir::open(&ck_path, 2)
        .unwrap()
        .latest::<f32>()
        .unwrap();
    let latest = || (saved.clone(), (), run.clone());
    assert_eq!(run.ranks(), 2);
    assert!(
        run.next_seq() >= 9 && run.next_seq() < 21,
        "{}",
        run.next_seq()
    );
    let resumed = on_ranks(2, |rank| {
        let src = MemorySource::new(x.clone(), 100);
        let (model, resume) = match rank {
            0 => {
                let (m, _, run) = latest();
                (m, Some(run))
            }
            _ => (OnlineNmf::new(params(Loss::Frobenius)), None),
        };
        (model, Box::new(src), opts(3), resume, None)
    });
    for (m, r) in &resumed {
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(bytes(m), bytes(&whole[0].0));
    }

    let three = on_ranks(3, |rank| {
        let src = MemorySource::new(x.clone(), 100);
        let (m, _, run) = latest();
        (m, Box::new(src), opts(3), (rank == 0).then_some(run), None)
    });
    for (_, r) in &three {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("2 rank(s); resume it with 2, not 3"), "{e}");
    }
    let (mut m, _, run) = latest();
    let mut src = MemorySource::new(x, 100);
    let e = streamnmf::pipeline::fit_with(&mut m, &mut src, &opts(3), Some(run), None, |_| {});
    assert!(matches!(
        e,
        Err(Error::RanksDiffer {
            checkpoint: 2,
            now: 1
        })
    ));
}
