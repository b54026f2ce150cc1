//! The convergence test of multi-pass fits: where the defaults stop, that they stop on
//! data that converges slowly only when it has converged, that the in-memory fit and the
//! pipeline agree pass for pass, and that a fit interrupted anywhere resumes to the same
//! stop, bit for bit.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use ndarray::Array2;
use streamnmf::persist::{CheckpointDir, Metadata};
use streamnmf::pipeline::{fit, fit_with, Checkpointing, PipelineOptions};
use streamnmf::source::MemorySource;
use streamnmf::synth::PlantedSpec;
use streamnmf::{Error, NmfParams, OnlineNmf, ValidParams};

fn data() -> Array2<f64> {
    PlantedSpec::new(3000, 40, 5)
        .noise(0.05)
        .seed(3)
        .generate()
        .x
}

fn params() -> ValidParams {
    NmfParams::new(5).batch_size(100).seed(2).check().unwrap()
}

fn relative_improvements(losses: &[f64]) -> Vec<f64> {
    losses.windows(2).map(|w| (w[0] - w[1]) / w[0]).collect()
}

/// Defaults on planted data: once the window schedule has settled (two passes after the
/// first that gained less than 1 %), the fit stops at the first pass that gains less than
/// 0.1 %, within a few passes, at the error of a fit that runs all 50.
#[test]
fn fits_stop_where_a_pass_stops_paying() {
    let x = data();
    let mut model = OnlineNmf::<f64>::new(params());
    let report = model.fit(&x).unwrap();
    assert!(report.converged, "{report:?}");
    assert!((3..=10).contains(&report.passes), "{report:?}");
    assert_eq!(report.sample_losses, model.sample_losses());
    assert_eq!(report.sample_losses.len(), report.passes);
    let gains = relative_improvements(&report.sample_losses);
    assert!(*gains.last().unwrap() < 1e-3, "{gains:?}");
    // The gains on the best loss before each pass: the second below 1 % settles the
    // schedule, and no pass after it but the last gained less than 0.1 %.
    let on_best: Vec<f64> = (1..report.sample_losses.len())
        .map(|i| {
            let best = report.sample_losses[..i]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min);
            (best - report.sample_losses[i]) / best
        })
        .collect();
    let settled = on_best
        .iter()
        .enumerate()
        .filter(|(_, &g)| g < 1e-2)
        .nth(1)
        .map(|(i, _)| i)
        .expect("the schedule settled");
    let (_, after) = on_best[..on_best.len() - 1].split_at(settled + 1);
    assert!(after.iter().all(|&g| g >= 1e-3), "{on_best:?}");

    let all = params().into_builder().pass_tol(0.0).check().unwrap();
    let mut long = OnlineNmf::<f64>::new(all);
    let long_report = long.fit(&x).unwrap();
    assert_eq!(long_report.passes, NmfParams::DEFAULT_MAX_PASSES);
    assert!(!long_report.converged && long_report.sample_losses.is_empty());
    let stopped = model.loss(&x).unwrap().relative_error.unwrap();
    let converged = long.loss(&x).unwrap().relative_error.unwrap();
    assert!(stopped <= 1.01 * converged, "{stopped} vs {converged}");
    // The planted noise is the floor: within 10 % of it.
    let truth = PlantedSpec::new(3000, 40, 5).noise(0.05).seed(3).generate();
    let floor = relative_error(&truth.x, &truth.w, &truth.h);
    assert!(stopped <= 1.1 * floor, "{stopped} vs the noise {floor}");
}

/// k above the data's rank (10 atoms for rank-5 data): the codes' problems are
/// degenerate, and the codes the dictionary learns from stop at their cap of 10 sweeps
/// (some batches reach it, none passes it), yet the fit still comes down to the planted
/// noise, no worse than a fit at the data's own rank.
#[test]
fn k_above_the_rank_caps_the_learning_codes_and_still_fits() {
    let x = data();
    let over = NmfParams::new(10).batch_size(100).seed(2).check().unwrap();
    let mut model = OnlineNmf::<f64>::new(over);
    let mut iterations = Vec::new();
    for _ in 0..5 {
        for rows in x.axis_chunks_iter(ndarray::Axis(0), 100) {
            iterations.push(model.partial_fit(rows).unwrap().code_iterations);
        }
    }
    assert!(iterations.iter().all(|&i| i <= 10), "{iterations:?}");
    assert!(
        iterations.iter().filter(|&&i| i == 10).count() > iterations.len() / 4,
        "{iterations:?}"
    );
    let over_error = model.loss(&x).unwrap().relative_error.unwrap();

    let mut exact = OnlineNmf::<f64>::new(
        params()
            .into_builder()
            .max_passes(5)
            .pass_tol(0.0)
            .check()
            .unwrap(),
    );
    exact.fit(&x).unwrap();
    let exact_error = exact.loss(&x).unwrap().relative_error.unwrap();
    let truth = PlantedSpec::new(3000, 40, 5).noise(0.05).seed(3).generate();
    let floor = relative_error(&truth.x, &truth.w, &truth.h);
    assert!(
        over_error <= exact_error,
        "{over_error} vs rank 5's {exact_error}"
    );
    assert!(
        over_error <= 1.05 * floor,
        "{over_error} vs the noise {floor}"
    );
}

/// Nearly collinear atoms (each atom is a flat profile plus a bump of 0.3 on its own
/// features), without noise: alternating updates crawl, so the default runs past the old
/// fixed 10 passes and ends far lower than 10 passes do.
#[test]
fn slow_data_gets_the_passes_it_needs() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let h = Array2::from_shape_fn((6, 30), |(r, j)| if j % 6 == r { 1.3 } else { 1.0 });
    let w = Array2::from_shape_fn((600, 6), |_| rng.random::<f64>());
    let x = w.dot(&h);
    let p = NmfParams::new(6).batch_size(64).seed(1);
    let mut auto = OnlineNmf::<f64>::new(p.clone().check().unwrap());
    let report = auto.fit(&x).unwrap();
    assert!(report.passes > 10, "{report:?}");
    let mut ten = OnlineNmf::<f64>::new(p.max_passes(10).pass_tol(0.0).check().unwrap());
    ten.fit(&x).unwrap();
    let (a, t) = (auto.loss(&x).unwrap().loss, ten.loss(&x).unwrap().loss);
    assert!(a < 0.5 * t, "{} passes: {a}, 10 passes: {t}", report.passes);
}

/// Uniform factors (`rng.random()` for W and H, the generator a user's script is most
/// likely to use): every atom shares a large common part and the problem is
/// ill-conditioned. At the default decay's window, which grows to every row, a pass is
/// about one alternating step and gains little; the window schedule's short windows first
/// make every update a step. The defaults end closer to the truncated-SVD bound in fewer
/// passes, where the fixed decay runs to the pass cap.
#[test]
fn ill_conditioned_data_gets_short_windows_first() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (n, p, k) = (8000, 100, 6);
    let w = Array2::from_shape_fn((n, k), |_| rng.random::<f64>());
    let h = Array2::from_shape_fn((k, p), |_| rng.random::<f64>());
    let mut x = w.dot(&h);
    let scale = 0.01 * x.mean().unwrap();
    x.mapv_inplace(|v| (v + scale * (rng.random::<f64>() - 0.5) * 12f64.sqrt()).max(0.0));
    let bound = streamnmf::synth::svd_relative_error_bound(x.view(), k).unwrap();
    let fit = |p: NmfParams| {
        let mut m = OnlineNmf::<f64>::new(p.seed(1).check().unwrap());
        let report = m.fit(&x).unwrap();
        (
            m.loss(&x).unwrap().relative_error.unwrap() / bound,
            report.passes,
        )
    };
    let (scheduled, passes) = fit(NmfParams::new(k).batch_size(100));
    let (fixed, fixed_passes) = fit(NmfParams::new(k).batch_size(100).decay(8.0));
    let said = format!("scheduled {scheduled} in {passes} passes, fixed {fixed} in {fixed_passes}");
    // Here (8000 × 100, k 6) 1.012× in 21 passes against 1.037× at the cap of 50.
    assert!(scheduled <= 1.02 && passes < 30, "{said}");
    assert!(
        scheduled - 1.0 < 0.5 * (fixed - 1.0) && fixed_passes == 50,
        "{said}"
    );
}

/// The pipeline samples the same rows as the in-memory fit and stops at the same pass,
/// with the same model; with stale solves, the stop does not depend on the threads.
#[test]
fn the_pipeline_stops_at_the_same_pass_as_fit() {
    let x = data();
    let mut fitted = OnlineNmf::<f64>::new(params());
    let report = fitted.fit(&x).unwrap();
    assert!(report.converged);
    let opts = |solvers: usize, staleness: usize| {
        PipelineOptions::new()
            .with_solvers(solvers)
            .with_batch_threads(1)
            .with_staleness(staleness)
            .with_epochs(NmfParams::DEFAULT_MAX_PASSES)
    };
    for solvers in [1, 3] {
        let mut piped = OnlineNmf::<f64>::new(params());
        let mut src = MemorySource::new(x.clone(), 100);
        let r = fit(&mut piped, &mut src, &opts(solvers, 0), |_| {}).unwrap();
        assert!(r.converged);
        assert_eq!(r.epochs, report.passes);
        assert_eq!(r.batches, 30 * report.passes as u64);
        assert_eq!(piped, fitted, "{solvers} solvers");
    }
    let stale = |solvers| {
        let mut m = OnlineNmf::<f64>::new(params());
        let mut src = MemorySource::new(x.clone(), 100);
        let r = fit(&mut m, &mut src, &opts(solvers, 2), |_| {}).unwrap();
        assert!(r.converged && r.epochs < NmfParams::DEFAULT_MAX_PASSES);
        m
    };
    let one = stale(1);
    assert_eq!(stale(3), one);
    assert_eq!(stale(2), one);
}

/// Stopped at batches across the run (mid-pass, at the last batch of a pass, at the last
/// batch before the stop), checkpointed and resumed: the same model as a run that never
/// stopped. Resuming the finished run's own checkpoint changes nothing.
#[test]
fn a_fit_interrupted_anywhere_resumes_to_the_same_stop() {
    let x = data();
    let opts = PipelineOptions::new()
        .with_solvers(2)
        .with_batch_threads(1)
        .with_staleness(1)
        .with_epochs(NmfParams::DEFAULT_MAX_PASSES);
    let dir = tempfile::tempdir().unwrap();
    let checkpointing =
        |ck: CheckpointDir| Checkpointing::new(ck, Metadata::default()).every_batches(7);
    let new_dir = |name: &str| CheckpointDir::new(&dir.path().join(name), 2).unwrap();
    let open_dir = |name: &str| CheckpointDir::open(&dir.path().join(name), 2).unwrap();
    let mut whole = OnlineNmf::<f32>::new(params());
    let mut src = MemorySource::new(x.mapv(|v| v as f32), 100);
    let done = checkpointing(new_dir("whole"));
    let report = fit_with(&mut whole, &mut src, &opts, None, Some(&done), |_| {}).unwrap();
    assert!(report.converged && report.epochs >= 3, "{report:?}");
    let batches = report.batches;

    assert!(batches > 90);
    let mut resumed_runs = 0;
    for stop_at in [3, 29, 59, 61, batches - 1] {
        let name = format!("stop{stop_at}");
        let stop = Arc::new(AtomicBool::new(false));
        let mut model = OnlineNmf::<f32>::new(params());
        let mut src = MemorySource::new(x.mapv(|v| v as f32), 100);
        let ck = checkpointing(new_dir(&name));
        let flag = stop.clone();
        let o = opts.clone().with_stop(stop.clone());
        let first = fit_with(&mut model, &mut src, &o, None, Some(&ck), |b| {
            if b.seq == stop_at {
                flag.store(true, Ordering::SeqCst);
            }
        });
        match first {
            // The stop came after the last batch the fit needed: it simply converged.
            Ok(r) => assert!(r.converged && model == whole, "stop at {stop_at}"),
            Err(Error::Interrupted {
                checkpoint: Some(_),
            }) => {
                drop(ck); // its lock
                let ck = open_dir(&name);
                let (mut resumed, _, run) = ck.latest::<f32>().unwrap();
                let ck = checkpointing(ck);
                let mut src = MemorySource::new(x.mapv(|v| v as f32), 100);
                let r =
                    fit_with(&mut resumed, &mut src, &opts, Some(run), Some(&ck), |_| {}).unwrap();
                assert!(r.converged, "stop at {stop_at}");
                assert!(
                    resumed == whole,
                    "stop at {stop_at}: the resumed model differs"
                );
                resumed_runs += 1;
            }
            Err(e) => panic!("stop at {stop_at}: {e}"),
        }
    }

    assert!(resumed_runs >= 4, "only {resumed_runs} runs were stopped");
    // The finished run's final checkpoint: nothing left to do.
    drop(done);
    let (mut again, _, run) = open_dir("whole").latest::<f32>().unwrap();
    let mut src = MemorySource::new(x.mapv(|v| v as f32), 100);
    let r = fit_with(&mut again, &mut src, &opts, Some(run), None, |_| {}).unwrap();
    assert!(r.converged);
    assert_eq!(r.batches, 0);
    assert!(again == whole);
}

/// The command line: without `--epochs` a fit of a file runs until converged and says so;
/// with `--epochs N` it makes exactly N passes, unless `--pass-tol` is also given.
#[test]
fn the_command_line_stops_by_default_and_obeys_a_pass_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let truth = PlantedSpec::new(6000, 60, 6)
        .noise(0.05)
        .seed(12)
        .generate();
    write_parquet(
        &d.join("x.parquet"),
        &dense_batches(&truth.x, 2000, false),
        4096,
    );
    let fit = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["fit", "x.parquet", "-k", "6", "--json", "--out", "m.snmf"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&run(&args, d))).unwrap()
    };
    let auto = fit(&[]);
    let passes = auto["passes"].as_u64().unwrap();
    assert!(auto["converged"].as_bool().unwrap(), "{auto}");
    assert!((2..=8).contains(&passes), "{auto}");
    let losses = auto["sample_losses"].as_array().unwrap();
    assert_eq!(losses.len() as u64, passes);
    let (model, _) = streamnmf::persist::load::<f32>(&d.join("m.snmf")).unwrap();
    assert_eq!(model.sample_losses().len() as u64, passes);
    let err = model
        .loss(&truth.x.mapv(|v| v as f32))
        .unwrap()
        .relative_error
        .unwrap();
    let floor = relative_error(&truth.x, &truth.w, &truth.h);
    assert!(err <= 1.1 * floor, "{err} vs the noise {floor}");
    // `inspect` shows them.
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&run(&["inspect", "m.snmf", "--json"], d))).unwrap();
    assert_eq!(&shown["sample_losses"], &auto["sample_losses"]);
    assert!(ok(&run(&["inspect", "m.snmf"], d)).contains("convergence sample's loss by pass"));

    // The summary says so.
    let out = run(&["fit", "x.parquet", "-k", "6", "--out", "m.snmf"], d);
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains(&format!(
            "converged after {passes} passes, the last gaining"
        )),
        "{said}"
    );

    assert!(!said.contains("before converging"), "{said}");

    let four = fit(&["--epochs", "4"]);
    assert_eq!(four["passes"], 4);
    assert_eq!(four["converged"], false);
    let capped = fit(&["--epochs", "40", "--pass-tol", "0.001"]);
    assert_eq!(capped["passes"], passes);
    assert_eq!(capped["converged"], true);

    // A fit that runs out of passes with its convergence test on says so (and one with a
    // fixed pass count, no test, does not).
    let stderr = |extra: &[&str]| {
        let mut args = vec!["fit", "x.parquet", "-k", "6", "--out", "m.snmf"];
        args.extend_from_slice(extra);
        let out = run(&args, d);
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = stderr(&["--epochs", "2", "--pass-tol", "1e-9"]);
    assert!(
        said.contains("stopped at --epochs 2 passes before converging (the sample's loss fell"),
        "{said}"
    );
    assert!(said.contains("(2 passes, "), "{said}");
    assert!(!stderr(&["--epochs", "2"]).contains("before converging"));
}

/// Sparse counts under KL: the sample keeps CSR rows (of a width that grows as the
/// catalogue does), the fit converges, and the pipeline agrees with `fit` bit for bit.
#[test]
fn sparse_counts_converge_alike_in_memory_and_through_the_pipeline() {
    let x = word_counts(1500, 300, 6, 4);
    let params = NmfParams::new(6)
        .loss(streamnmf::Loss::KullbackLeibler)
        .batch_size(128)
        .seed(5)
        .check()
        .unwrap();
    let mut fitted = OnlineNmf::<f64>::new(params.clone());
    let report = fitted.fit(streamnmf::MatRef::Csr(x.view())).unwrap();
    assert!(report.converged, "{report:?}");
    assert!(report.passes < NmfParams::DEFAULT_MAX_PASSES);
    let opts = PipelineOptions::new()
        .with_batch_threads(1)
        .with_staleness(0)
        .with_epochs(NmfParams::DEFAULT_MAX_PASSES);
    let mut piped = OnlineNmf::<f64>::new(params);
    let mut src = MemorySource::from_matrix(streamnmf::Matrix::Csr(x), 128);
    let r = fit(&mut piped, &mut src, &opts, |_| {}).unwrap();
    assert!(r.converged);
    assert_eq!(r.epochs, report.passes);
    assert!(piped == fitted, "the pipeline's model differs from fit's");
}
