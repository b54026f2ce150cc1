//! The threaded engine: equivalence with `partial_fit`, determinism whatever the timing,
//! failure and panic propagation, and every input layout read back exactly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ndarray::{s, Array2};
use streamnmf::io::{FileSource, InputOptions, Layout, StreamSource};
use streamnmf::pipeline::{fit, transform, PipelineOptions};
use streamnmf::source::{BatchIter, BatchSource, MemorySource};
use streamnmf::synth::PlantedSpec;
use streamnmf::{Batch, Error, Loss, MatRef, NmfParams, OnlineNmf, RowIds};

fn data() -> Array2<f64> {
    PlantedSpec::new(2000, 40, 5).seed(3).generate().x
}

fn params(loss: Loss) -> streamnmf::ValidParams {
    NmfParams::new(5)
        .loss(loss)
        .batch_size(128)
        .seed(9)
        .check()
        .unwrap()
}

fn opts(threads: usize, staleness: usize, epochs: usize) -> PipelineOptions {
    PipelineOptions::new()
        .with_solvers(threads)
        .with_batch_threads(1)
        .with_staleness(staleness)
        .with_epochs(epochs)
}

/// With s = 0 the pipeline is exactly `partial_fit` in a loop for one pass, and exactly
/// the in-memory `fit` for several, bit for bit.
#[test]
fn lockstep_equals_partial_fit_and_fit() {
    let x = data();
    for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
        let mut looped = OnlineNmf::<f64>::new(params(loss));
        for start in (0..2000).step_by(128) {
            looped
                .partial_fit(x.slice(s![start..(start + 128).min(2000), ..]))
                .unwrap();
        }
        let p3 = params(loss)
            .into_builder()
            .max_passes(3)
            .pass_tol(0.0)
            .check()
            .unwrap();
        let mut fitted = OnlineNmf::<f64>::new(p3.clone());
        fitted.fit(&x).unwrap();
        for threads in [1, 3] {
            let mut piped = OnlineNmf::<f64>::new(params(loss));
            let mut src = MemorySource::new(x.clone(), 128);
            fit(&mut piped, &mut src, &opts(threads, 0, 1), |_| {}).unwrap();
            assert_eq!(piped.components().unwrap(), looped.components().unwrap());
            assert_eq!(piped.batches_seen(), looped.batches_seen());

            let mut piped = OnlineNmf::<f64>::new(p3.clone());
            let mut src = MemorySource::new(x.clone(), 128);
            let r = fit(&mut piped, &mut src, &opts(threads, 0, 3), |_| {}).unwrap();
            assert_eq!(r.batches, 48);
            assert_eq!(r.rows, 6000);
            assert_eq!(piped, fitted, "{loss}, {threads} threads");
        }
    }
}

/// For any staleness, the result does not depend on thread timing or thread count.
#[test]
fn any_staleness_is_deterministic() {
    let x = data();
    for s in [1, 3] {
        let run = |threads| {
            let mut m = OnlineNmf::<f32>::new(params(Loss::Frobenius));
            let mut src = MemorySource::new(x.mapv(|v| v as f32), 100);
            fit(&mut m, &mut src, &opts(threads, s, 2), |_| {}).unwrap();
            m
        };
        let a = run(1);
        for _ in 0..3 {
            assert_eq!(run(3), a, "staleness {s}");
        }
        assert_eq!(run(2), a, "staleness {s}");
    }
}

/// Threads inside a batch (fixed 256-row chunks) never change the model, in `fit` and in
/// `transform`, alone or with several solvers.
#[test]
fn batch_threads_never_change_the_result() {
    let x = data().mapv(|v| v as f32);
    let run = |solvers, batch_threads| {
        let mut m = OnlineNmf::<f32>::new(params(Loss::Frobenius));
        let o = opts(solvers, 1, 2).with_batch_threads(batch_threads);
        fit(&mut m, &mut MemorySource::new(x.clone(), 700), &o, |_| {}).unwrap();
        let mut codes = Vec::new();
        transform(&m, &mut MemorySource::new(x.clone(), 700), &o, |_, w| {
            codes.push(w);
            Ok(())
        })
        .unwrap();
        (m, codes)
    };
    let (m1, c1) = run(1, 1);
    for (solvers, batch_threads) in [(1, 2), (1, 3), (2, 2)] {
        let (m, c) = run(solvers, batch_threads);
        assert_eq!(m, m1, "{solvers} solvers x {batch_threads} threads");
        assert_eq!(c, c1);
    }
}

/// Staleness costs little accuracy on planted data.
#[test]
fn stale_solves_still_converge() {
    let d = PlantedSpec::new(4000, 60, 6).seed(5).generate();
    let p = NmfParams::new(6).batch_size(200).seed(1).check().unwrap();
    let err = |s| {
        let mut m = OnlineNmf::<f64>::new(p.clone());
        fit(
            &mut m,
            &mut MemorySource::new(d.x.clone(), 200),
            &opts(2, s, 8),
            |_| {},
        )
        .unwrap();
        m.loss(&d.x).unwrap().relative_error.unwrap()
    };
    let (e0, e4) = (err(0), err(4));
    assert!(e4 < 1.05 * e0, "staleness 4: {e4} vs lockstep {e0}");
}

struct FailingSource {
    x: Array2<f64>,
}

impl BatchSource<f64> for FailingSource {
    fn width(&self) -> usize {
        self.x.ncols()
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn epoch(&mut self, _: usize) -> streamnmf::Result<BatchIter<f64>> {
        let x = self.x.clone();
        Ok(Box::new((0..100).map(move |i| {
            if i == 3 {
                Err(Error::Schema("disk on fire".into()))
            } else {
                Ok(Batch::dense(x.slice(s![0..50, ..]).to_owned()).with_first_row(i * 50))
            }
        })))
    }
}

#[test]
fn reader_error_stops_everything_promptly() {
    let t = Instant::now();
    let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
    let err = fit(
        &mut m,
        &mut FailingSource { x: data() },
        &opts(2, 1, 5),
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Schema(s) if s == "disk on fire"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn solver_panic_is_returned_not_hung() {
    for threads in [1, 3] {
        let t = Instant::now();
        let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
        let o = opts(threads, 1, 5).with_panic_in_solver_at(7);
        let err = fit(&mut m, &mut MemorySource::new(data(), 50), &o, |_| {}).unwrap_err();
        match &err {
            Error::WorkerPanic { thread, message } => {
                assert!(thread.starts_with("streamnmf-solver-"), "{thread}");
                assert!(
                    message.contains("injected solver panic at batch 7"),
                    "{message}"
                );
            }
            other => panic!("{other}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // And in transform.
        let mut fitted = OnlineNmf::<f64>::new(params(Loss::Frobenius));
        fitted.fit(&data()).unwrap();
        let err = transform(&fitted, &mut MemorySource::new(data(), 50), &o, |_, _| {
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::WorkerPanic { .. }), "{err}");
    }
}

#[test]
fn sink_error_stops_transform() {
    let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
    m.fit(&data()).unwrap();
    let mut calls = 0;
    let err = transform(
        &m,
        &mut MemorySource::new(data(), 10),
        &opts(2, 0, 1),
        |_, _| {
            calls += 1;
            if calls == 4 {
                Err(Error::Schema("disk full".into()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Schema(_)));
    assert_eq!(calls, 4);
}

/// Runs `f` on a thread of its own and returns whether it panicked, failing the test if
/// it has not returned within 30 s (a hung pipeline).
fn panics_within_30s(f: impl FnOnce() + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r.is_err());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the pipeline hung after a panic on the calling thread")
}

/// A panic in the caller's own code (a transform's sink, a fit's progress callback)
/// reaches the caller, and the pipeline's threads stop. Before, the reader stayed blocked
/// on a full queue and the solvers waited for a dictionary for ever, and so did the
/// caller (a CLI fit whose stderr was closed hung so).
#[test]
fn caller_panic_stops_the_threads() {
    for threads in [1, 3] {
        assert!(panics_within_30s(move || {
            let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
            m.fit(&data()).unwrap();
            let mut calls = 0;
            let _ = transform(
                &m,
                &mut MemorySource::new(data(), 10),
                &opts(threads, 0, 1).with_queue_depth(1),
                |_, _| {
                    calls += 1;
                    assert!(calls < 4, "sink panics at its fourth batch");
                    Ok(())
                },
            );
        }));
        assert!(panics_within_30s(move || {
            let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
            let mut calls = 0;
            let _ = fit(
                &mut m,
                &mut MemorySource::new(data(), 10),
                &opts(threads, 1, 3).with_queue_depth(1),
                |_| {
                    calls += 1;
                    assert!(calls < 4, "progress panics at its fourth batch");
                },
            );
        }));
    }
}

#[test]
fn pipeline_transform_equals_in_memory_transform() {
    let x = data();
    let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
    m.fit(&x).unwrap();
    let mut rows = Vec::new();
    transform(
        &m,
        &mut MemorySource::new(x.clone(), 128),
        &opts(3, 0, 1),
        |_, w| {
            rows.push(w);
            Ok(())
        },
    )
    .unwrap();
    let views: Vec<_> = rows.iter().map(|w| w.view()).collect();
    let w = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    assert_eq!(w, m.transform(&x).unwrap());
}

/// All batches of a source's epoch, stacked.
fn read_all(src: &mut dyn BatchSource<f64>) -> (Array2<f64>, Vec<Batch<f64>>) {
    let batches: Vec<Batch<f64>> = src.epoch(0).unwrap().map(|b| b.unwrap()).collect();
    let dense: Vec<Array2<f64>> = batches.iter().map(|b| b.view().to_dense()).collect();
    let views: Vec<_> = dense.iter().map(|d| d.view()).collect();
    (
        ndarray::concatenate(ndarray::Axis(0), &views).unwrap(),
        batches,
    )
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn parquet_files_are_rechunked_across_record_batches_and_files() {
    let x = data();
    let dir = tmp();
    let batches = dense_batches(&x, 300, true);
    // Three files with row groups of 170 rows; batches of 128 span both.
    let mut paths = Vec::new();
    for (f, part) in batches.chunks(3).enumerate() {
        let p = dir.path().join(format!("part-{f}.parquet"));
        write_parquet(&p, part, 170);
        paths.push(p);
    }
    let opts_in = InputOptions::new(128).id_column("id");
    let mut src = FileSource::<f64>::open(&[dir.path().to_path_buf()], opts_in.clone()).unwrap();
    assert_eq!(src.width(), 40);
    assert_eq!(src.feature_names()[3], "f3");
    let (got, bs) = read_all(&mut src);
    assert_eq!(got, x);
    assert!(bs[..bs.len() - 1].iter().all(|b| b.rows() == 128));
    assert_eq!(bs[1].first_row(), 128);
    assert_eq!(bs[1].ids(), Some(&RowIds::Int64((1128..1256).collect())));

    // Fitting from the files equals fitting from memory in the same batches.
    let mut a = OnlineNmf::<f64>::new(params(Loss::Frobenius));
    fit(&mut a, &mut src, &opts(2, 1, 2), |_| {}).unwrap();
    let mut b = OnlineNmf::<f64>::new(params(Loss::Frobenius));
    fit(
        &mut b,
        &mut MemorySource::new(x.clone(), 128),
        &opts(1, 1, 2),
        |_| {},
    )
    .unwrap();
    assert_eq!(a, b);

    // Column selection by name.
    let sel = InputOptions::new(500).columns(vec!["f7".into(), "f2".into()]);
    let (got, _) = read_all(&mut FileSource::<f64>::open(&paths, sel).unwrap());
    assert_eq!(got.column(0), x.column(7));
    assert_eq!(got.column(1), x.column(2));
}

#[test]
fn arrow_ipc_file_and_stream() {
    let x = data();
    let dir = tmp();
    let batches = dense_batches(&x, 333, false);
    let file = dir.path().join("x.arrow");
    write_ipc_file(&file, &batches);
    let (got, _) = read_all(&mut FileSource::<f64>::open(&[file], InputOptions::new(100)).unwrap());
    assert_eq!(got, x);

    let stream = dir.path().join("x.arrows");
    std::fs::write(&stream, ipc_stream_bytes(&batches)).unwrap();
    let (got, _) =
        read_all(&mut FileSource::<f64>::open(&[stream], InputOptions::new(100)).unwrap());
    assert_eq!(got, x);

    // A live stream (any reader, e.g. stdin): one epoch only.
    let bytes = ipc_stream_bytes(&batches);
    let mut live = StreamSource::<f32>::new(
        Box::new(std::io::Cursor::new(bytes)),
        "<stdin>",
        InputOptions::new(64),
    )
    .unwrap();
    assert!(!live.rewindable());
    let mut m = OnlineNmf::<f32>::new(params(Loss::Frobenius));
    let err = fit(&mut m, &mut live, &opts(1, 1, 2), |_| {}).unwrap_err();
    assert!(err.to_string().contains("only once"), "{err}");
    let r = fit(&mut m, &mut live, &opts(2, 1, 1), |_| {}).unwrap();
    assert_eq!(r.rows, 2000);
}

/// Dictionary-encoded number columns (a pyarrow categorical of numbers, which Parquet
/// files keep as such through their stored Arrow schema) read as plain numbers; Arrow IPC
/// files with LZ4 buffers (`pandas.DataFrame.to_feather`'s default) read as any other.
#[test]
fn compressed_ipc_and_dictionary_encoded_columns() {
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch};
    use std::sync::Arc;
    let x = data();
    let dir = tmp();
    // A 20 × 2 table pyarrow wrote with `IpcWriteOptions(compression="lz4")`.
    let lz4 = manifest_dir().join("tests/fixtures/lz4.arrow");
    let (got, _) = read_all(&mut FileSource::<f64>::open(&[lz4], InputOptions::new(100)).unwrap());
    let want = Array2::from_shape_fn((20, 2), |(i, j)| if j == 0 { i as f64 } else { 1.0 });
    assert_eq!(got, want);

    // Each column as a dictionary of its distinct values (here every value, in reverse
    // order of rows) and keys into it.
    let n = x.nrows() as i32;
    let encoded: Vec<(String, ArrayRef)> = (0..x.ncols())
        .map(|j| {
            let values = Float64Array::from_iter_values(x.column(j).iter().rev().copied());
            let keys = Int32Array::from_iter_values((0..n).map(|i| n - 1 - i));
            let column = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
            (format!("f{j}"), Arc::new(column) as ArrayRef)
        })
        .collect();
    let table = RecordBatch::try_from_iter(encoded).unwrap();
    let parquet = dir.path().join("dict.parquet");
    write_parquet(&parquet, std::slice::from_ref(&table), 700);
    let ipc = dir.path().join("dict.arrow");
    write_ipc_file(&ipc, &[table]);
    for path in [parquet, ipc] {
        let (got, _) =
            read_all(&mut FileSource::<f64>::open(&[path], InputOptions::new(100)).unwrap());
        assert_eq!(got, x);
    }
}

#[test]
fn fixed_size_list_triplets_and_list_of_structs() {
    let mut x = data();
    x.mapv_inplace(|v| if v < 0.3 { 0.0 } else { v });
    let x = x.slice(s![..500, ..]).to_owned();
    let dir = tmp();

    let fl = dir.path().join("fl.parquet");
    write_parquet(&fl, &[fixed_list_batch(&x)], 128);
    let mut src = FileSource::<f64>::open(&[fl], InputOptions::new(64)).unwrap();
    assert_eq!(src.feature_names()[2], "v[2]");
    assert_eq!(read_all(&mut src).0, x);

    let tr = dir.path().join("tr.parquet");
    write_parquet(&tr, &triplet_batches(&x, 97), 1000);
    let layout = Layout::Triplets {
        row: "user".into(),
        col: "item".into(),
        value: "rating".into(),
    };
    // Width found by a pre-scan (x's last column has non-zeros).
    assert!(x.column(39).iter().any(|&v| v > 0.0));
    let mut src = FileSource::<f64>::open(&[tr], InputOptions::new(50).layout(layout)).unwrap();
    let (got, bs) = read_all(&mut src);
    let nonzero_rows: Vec<usize> = (0..500)
        .filter(|&i| x.row(i).iter().any(|&v| v > 0.0))
        .collect();
    assert_eq!(got, x.select(ndarray::Axis(0), &nonzero_rows));
    assert!(matches!(bs[0].view(), MatRef::Csr(_)));
    assert_eq!(bs[0].ids().map(|i| i.len()), Some(50));

    let ls = dir.path().join("ls.parquet");
    write_parquet(&ls, &[list_struct_batch(&x)], 100);
    let opts_in = InputOptions::new(64)
        .layout(Layout::SparseList {
            column: "entries".into(),
        })
        .width(40);
    let (got, _) = read_all(&mut FileSource::<f64>::open(&[ls], opts_in).unwrap());
    assert_eq!(got, x);
}

/// The footers' shape of each layout (what the default batch size is chosen from):
/// rows, stored entries and width, summed over files; ids too scattered to count rows by
/// leave the rows unknown.
#[test]
fn parquet_shape_of_each_layout() {
    use arrow_array::cast::AsArray;
    use arrow_array::RecordBatch;
    use std::sync::Arc;
    use streamnmf::io::parquet_shape;
    let mut x = data();
    x.mapv_inplace(|v| if v < 0.3 { 0.0 } else { v });
    let x = x.slice(s![..500, ..]).to_owned();
    let nnz = x.iter().filter(|&&v| v > 0.0).count() as u64;
    let live = (0..500).filter(|&i| x.row(i).iter().any(|&v| v > 0.0));
    let (first, last) = (live.clone().min().unwrap(), live.max().unwrap());
    assert!(x.column(39).iter().any(|&v| v > 0.0));
    let dir = tmp();
    let tr = dir.path().join("tr.parquet");
    write_parquet(&tr, &triplet_batches(&x, 97), 1000);
    let triplets = Layout::Triplets {
        row: "user".into(),
        col: "item".into(),
        value: "rating".into(),
    };
    let shape = parquet_shape(std::slice::from_ref(&tr), &triplets);
    let rows = (last - first + 1) as u64;
    assert_eq!(shape.rows, Some(rows));
    assert_eq!((shape.stored, shape.width), (Some(nnz), Some(40)));
    // Two files: rows and entries add up.
    let tr2 = dir.path().join("tr2.parquet");
    write_parquet(&tr2, &triplet_batches(&x, 97), 300);
    let both = parquet_shape(&[tr.clone(), tr2], &triplets);
    assert_eq!((both.rows, both.stored), (Some(2 * rows), Some(2 * nnz)));

    let ls = dir.path().join("ls.parquet");
    write_parquet(&ls, &[list_struct_batch(&x)], 100);
    let list = Layout::SparseList {
        column: "entries".into(),
    };
    let shape = parquet_shape(&[ls], &list);
    assert_eq!(shape.rows, Some(500));
    // Empty lists hold a placeholder leaf value each.
    let empty = (0..500)
        .filter(|&i| x.row(i).iter().all(|&v| v == 0.0))
        .count() as u64;
    assert_eq!(shape.stored, Some(nnz + empty));

    let dense = dir.path().join("d.parquet");
    write_parquet(&dense, &dense_batches(&x, 100, false), 128);
    let shape = parquet_shape(&[dense], &Layout::Dense);
    assert_eq!((shape.rows, shape.stored), (Some(500), Some(500 * 40)));

    // Ids spread wider than the entries: rows unknown, the rest known.
    let sc = dir.path().join("sc.parquet");
    let scattered: Vec<RecordBatch> = triplet_batches(&x, 97)
        .into_iter()
        .map(|b| {
            let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
            let far =
                arrow_array::Int64Array::from_iter_values(ids.values().iter().map(|i| i * 1000));
            RecordBatch::try_new(
                b.schema(),
                vec![Arc::new(far), b.column(1).clone(), b.column(2).clone()],
            )
            .unwrap()
        })
        .collect();
    write_parquet(&sc, &scattered, 1000);
    let shape = parquet_shape(&[sc], &triplets);
    assert_eq!((shape.rows, shape.stored), (None, Some(nnz)));
    assert_eq!(
        parquet_shape(&[dir.path().join("none.parquet")], &triplets).stored,
        None
    );
}

#[test]
fn schema_change_between_files_is_caught_before_reading() {
    let x = data();
    let dir = tmp();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    write_parquet(&a, &dense_batches(&x, 100, false), 100);
    let narrow = x.slice(s![.., ..39]).to_owned();
    write_parquet(&b, &dense_batches(&narrow, 100, false), 100);
    let err = FileSource::<f64>::open(
        &[a, b.clone()],
        InputOptions::new(10).columns((0..40).map(|j| format!("f{j}")).collect()),
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("b.parquet") && msg.contains("missing column 'f39'"),
        "{msg}"
    );
}

#[test]
fn shuffle_buffer_is_seeded_per_epoch_and_keeps_every_row() {
    let x = data();
    let dir = tmp();
    let path = dir.path().join("x.parquet");
    write_parquet(&path, &dense_batches(&x, 500, true), 400);
    let open = |seed| {
        FileSource::<f64>::open(
            std::slice::from_ref(&path),
            InputOptions::new(100).id_column("id").shuffle(700, seed),
        )
        .unwrap()
    };
    let ids_of = |src: &mut FileSource<f64>, epoch| -> Vec<i64> {
        src.epoch(epoch)
            .unwrap()
            .flat_map(|b| match b.unwrap().ids() {
                Some(RowIds::Int64(v)) => v.clone(),
                _ => panic!("ids"),
            })
            .collect()
    };
    let mut a = open(5);
    let (e0, e1) = (ids_of(&mut a, 0), ids_of(&mut a, 1));
    assert_ne!(e0, e1, "each epoch gets its own order");
    assert_eq!(e0, ids_of(&mut open(5), 0), "same seed, same order");
    assert_ne!(e0, ids_of(&mut open(6), 0));
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1000..3000).collect::<Vec<i64>>(),
        "every row exactly once"
    );
    // Rows travel with their ids.
    let b = a.epoch(0).unwrap().next().unwrap().unwrap();
    let Some(RowIds::Int64(ids)) = b.ids() else {
        panic!()
    };
    let d = b.view().to_dense();
    for (r, &id) in ids.iter().enumerate() {
        assert_eq!(d.row(r), x.row((id - 1000) as usize));
    }
    // And a shuffled fit is deterministic across thread counts.
    let fit_with = |threads| {
        let mut m = OnlineNmf::<f64>::new(params(Loss::Frobenius));
        fit(&mut m, &mut open(5), &opts(threads, 1, 2), |_| {}).unwrap();
        m
    };
    assert_eq!(fit_with(1), fit_with(2));
}
