//! `fit --distributed mpi` as processes under `mpirun` (cargo feature `mpi`, run by
//! `scripts/test-mpi.sh`): N ranks write the model of N ranks as threads of one process,
//! one rank the ordinary pipeline's; a bad value on rank 1 stops both ranks with its
//! message; a fit interrupted by SIGTERM resumes exactly with the same number of ranks and
//! is refused with another.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dense_batches, fails, ok, run, write_parquet};
use streamnmf::synth::PlantedSpec;

/// `mpirun -np N streamnmf args…` in `dir` (as root too, oversubscribed past the cores).
fn mpirun(np: usize, args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-np", &np.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_streamnmf"))
        .args(args)
        .current_dir(dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null());
    c
}

/// Runs to the end, killed after two minutes (a hang is a failure, not a stuck CI).
fn finish(mut c: Command) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(120) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(!watch.join().unwrap(), "mpirun hung: {out:?}");
    out
}

/// A planted 4000 × 40 table in row groups of 250 rows (16 of them).
fn input(dir: &Path, bad_row: Option<usize>) -> PathBuf {
    let mut x = PlantedSpec::new(4000, 40, 6)
        .seed(8)
        .noise(0.02)
        .generate()
        .x;
    if let Some(r) = bad_row {
        x[[r, 7]] = -1.0;
    }
    let path = dir.join(if bad_row.is_some() {
        "bad.parquet"
    } else {
        "x.parquet"
    });
    write_parquet(&path, &dense_batches(&x, 4000, false), 250);
    path
}

fn fit_args<'a>(input: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "fit",
        input,
        "-k",
        "6",
        "--batch-size",
        "100",
        "--epochs",
        "3",
        "--out",
        out,
        "-q",
    ];
    a.extend(extra);
    a
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn mpi_ranks_fit_the_threads_model_and_one_rank_the_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(dir.path(), None);
    let x = x.to_str().unwrap();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    for np in [2, 3] {
        let local = format!("local:{np}");
        ok(&run(
            &fit_args(x, "threads.snmf", &["--distributed", &local]),
            dir.path(),
        ));
        ok(&finish(mpirun(
            np,
            &fit_args(x, "mpi.snmf", &["--distributed", "mpi"]),
            dir.path(),
        )));
        assert!(read("mpi.snmf") == read("threads.snmf"), "{np} ranks");
    }
    ok(&run(
        &fit_args(x, "alone.snmf", &["--staleness", "0"]),
        dir.path(),
    ));
    ok(&finish(mpirun(
        1,
        &fit_args(x, "mpi.snmf", &["--distributed", "mpi"]),
        dir.path(),
    )));
    assert!(read("mpi.snmf") == read("alone.snmf"));
}

#[test]
fn a_bad_value_on_rank_1_stops_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    // Row 300 is in the second row group: rank 1's.
    let x = input(dir.path(), Some(300));
    let out = finish(mpirun(
        2,
        &fit_args(x.to_str().unwrap(), "m.snmf", &["--distributed", "mpi"]),
        dir.path(),
    ));
    let err = fails(&out);
    assert!(
        err.contains("rank 1: ") && err.contains("row 300, column 'f7': negative value"),
        "{err}"
    );
    assert!(!dir.path().join("m.snmf").exists());
}

#[test]
fn an_interrupted_mpi_fit_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(dir.path(), None);
    let x = x.to_str().unwrap();
    let ck = dir.path().join("ck");
    let long = |out: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = fit_args(x, out, &["--distributed", "mpi"])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let at = a.iter().position(|s| s == "--epochs").unwrap();
        a[at + 1] = "400".into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let first = long(
        "m.snmf",
        &["--checkpoint-dir", "ck", "--checkpoint-every", "10"],
    );
    let child = mpirun(2, &args(&first), dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let checkpoints = || streamnmf::persist::CheckpointDir::list_in(&ck).map_or(0, |l| l.len());
    while checkpoints() < 1 {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A batch system's cancel signals every rank (mpirun itself ignores SIGINT when
    // started in the background).
    Command::new("pkill")
        .args(["-TERM", "-P", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "finished before the signal: {first:?}"
    );
    // Rank 0 says where it wrote the checkpoint, unless `mpirun`, seeing another rank
    // exit non-zero, ends it first (every rank waits for the checkpoint before exiting).
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(checkpoints() >= 1, "{err}");
    assert!(!dir.path().join("m.snmf").exists(), "{err}");

    let resumed = long("m.snmf", &["--resume", "ck"]);
    ok(&finish(mpirun(2, &args(&resumed), dir.path())));
    let whole = long("whole.snmf", &[]);
    ok(&finish(mpirun(2, &args(&whole), dir.path())));
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert!(read("m.snmf") == read("whole.snmf"));

    let other = long("three.snmf", &["--resume", "ck"]);
    let err = fails(&finish(mpirun(3, &args(&other), dir.path())));
    assert!(
        err.contains("a different run (ranks: checkpoint has 2, this run has 3)"),
        "{err}"
    );
}
