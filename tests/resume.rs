//! Checkpoints and exact resume with real crashes (SIGKILL of the CLI, also mid-write),
//! fallback past a corrupt checkpoint, refusing a different run, and incremental updates.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ndarray::s;
use streamnmf::persist;
use streamnmf::synth::PlantedSpec;

const BIN: &str = env!("CARGO_BIN_EXE_streamnmf");

fn fit_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "fit",
        "x.parquet",
        "-k",
        "5",
        "--epochs",
        "3",
        "--batch-size",
        "256",
        "--staleness",
        "2",
        // The convergence test's sample and scores go through the checkpoints too.
        "--pass-tol",
        "0.001",
        "-q",
    ];
    v.extend_from_slice(extra);
    v
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let x = PlantedSpec::new(20_000, 50, 5).seed(4).generate().x;
    write_parquet(
        &dir.path().join("x.parquet"),
        &dense_batches(&x, 5000, false),
        4096,
    );
    dir
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".streamnmf-")
        })
        .count()
}

#[test]
fn killed_and_resumed_runs_end_bitwise_identical() {
    let dir = setup();
    let d = dir.path();
    let full = run(&fit_args(&["--threads", "2", "--out", "full.snmf"]), d);
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let want = std::fs::read(d.join("full.snmf")).unwrap();

    let ck = d.join("ck");
    let mut mid_write_kills = 0;
    let mut kills = 0;
    // Kill at several points; every attempt after the first resumes.
    for (attempt, after_ms) in [5u64, 60, 25, 90, 45].into_iter().enumerate() {
        let threads = if attempt % 2 == 0 { "1" } else { "2" };
        let mut args = fit_args(&[
            "--threads",
            threads,
            "--checkpoint-every",
            "3",
            "--keep-checkpoints",
            "2",
            "--out",
            "resumed.snmf",
        ]);
        if attempt == 0 {
            args.extend_from_slice(&["--checkpoint-dir", "ck"]);
        } else {
            args.extend_from_slice(&["--resume", "ck"]);
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .current_dir(d)
            .env("STREAMNMF_TEST_CHECKPOINT_PAUSE_MS", "40")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a checkpoint newer than the last one seen, then a little more, so each
        // attempt makes progress and the kill lands at a different point.
        let newest = |ck: &Path| {
            persist::CheckpointDir::list_in(ck)
                .unwrap_or_default()
                .first()
                .cloned()
        };
        let before = newest(&ck);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none() {
            if newest(&ck) != before {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(after_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            mid_write_kills += (temp_files(&ck) > 0) as usize;
        }
        assert!(!d.join("resumed.snmf").exists() || child.try_wait().unwrap().is_some());
        if attempt == 2 {
            // Corrupt the newest checkpoint: resume must fall back to an older one.
            let newest = persist::CheckpointDir::list_in(&ck).unwrap()[0].clone();
            let bytes = std::fs::read(&newest).unwrap();
            std::fs::write(&newest, &bytes[..bytes.len() / 3]).unwrap();
        }
    }
    assert!(kills >= 3, "only {kills} kills landed");
    assert!(
        mid_write_kills >= 1,
        "no kill landed during a checkpoint write"
    );

    // Finish: the fallback past the corrupt checkpoint is reported on stderr.
    let out = Command::new(BIN)
        .args(fit_args(&[
            "--threads",
            "2",
            "--resume",
            "ck",
            "--keep-checkpoints",
            "2",
            "--out",
            "resumed.snmf",
        ]))
        .env("RUST_LOG", "warn")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(d.join("resumed.snmf")).unwrap();
    assert!(
        got == want,
        "resumed model differs from the uninterrupted one"
    );
    assert_eq!(temp_files(&ck), 0, "temp files cleaned up");
    assert!(persist::CheckpointDir::list_in(&ck).unwrap().len() <= 2);
}

/// `--resume` alone continues the interrupted run as it was started: with `--epochs 2`
/// it makes those 2 passes (the defaults would run the convergence test for up to 50),
/// at its `--staleness 0` (the default is 1), and ends with the uninterrupted run's
/// model, byte for byte.
#[test]
fn a_bare_resume_keeps_the_runs_number_of_passes() {
    let dir = setup();
    let d = dir.path();
    let first = run(
        &[
            "fit",
            "x.parquet",
            "-k",
            "5",
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--staleness",
            "0",
            "-q",
            "--checkpoint-dir",
            "ck",
            "--checkpoint-every",
            "20",
            "--keep-checkpoints",
            "100",
            "--out",
            "full.snmf",
        ],
        d,
    );
    ok(&first);
    // Keep only the oldest checkpoint, from the middle of the first pass.
    let mut all = persist::CheckpointDir::list_in(&d.join("ck")).unwrap();
    let oldest = all.pop().unwrap();
    assert!(!all.is_empty(), "one checkpoint only");
    for c in all {
        std::fs::remove_file(c).unwrap();
    }
    assert!(oldest.exists());
    let out = run(
        &[
            "fit",
            "x.parquet",
            "--resume",
            "ck",
            "-q",
            "--json",
            "--out",
            "resumed.snmf",
        ],
        d,
    );
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passes"], 2, "{report}");
    assert!(
        std::fs::read(d.join("resumed.snmf")).unwrap()
            == std::fs::read(d.join("full.snmf")).unwrap(),
        "the resumed model differs from the uninterrupted one"
    );
}

#[test]
fn corrupt_newest_checkpoint_falls_back_with_a_warning() {
    let dir = setup();
    let d = dir.path();
    let out = run(
        &fit_args(&[
            "--checkpoint-dir",
            "ck",
            "--checkpoint-every",
            "40",
            "--keep-checkpoints",
            "5",
            "--out",
            "a.snmf",
        ]),
        d,
    );
    assert!(out.status.success());
    let list = persist::CheckpointDir::list_in(&d.join("ck")).unwrap();
    assert!(list.len() >= 3, "{list:?}");
    std::fs::write(&list[0], b"SNMFMODL garbage").unwrap();
    let out = Command::new(BIN)
        .args(fit_args(&["--resume", "ck", "--out", "b.snmf"]))
        .env("RUST_LOG", "warn")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("falling back"), "{err}");
    assert_eq!(
        std::fs::read(d.join("a.snmf")).unwrap(),
        std::fs::read(d.join("b.snmf")).unwrap()
    );
}

#[test]
fn resuming_a_different_run_is_refused() {
    let dir = setup();
    let d = dir.path();
    let out = run(
        &fit_args(&[
            "--checkpoint-dir",
            "ck",
            "--checkpoint-every",
            "50",
            "--out",
            "a.snmf",
        ]),
        d,
    );
    assert!(out.status.success());
    let refuse = |args: Vec<&str>, needle: &str| {
        let out = run(&args, d);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("cannot resume") && err.contains(needle),
            "{err}"
        );
    };
    let mut a = fit_args(&["--resume", "ck"]);
    a[3] = "4";
    refuse(
        a,
        "--rank 4 (the model has 5) contradicts the model's own settings",
    );
    refuse(
        fit_args(&["--resume", "ck", "--loss", "kl"]),
        "--loss kl (the model has fro)",
    );
    let mut a = fit_args(&["--resume", "ck"]);
    a[7] = "128";
    refuse(a, "batch_size: checkpoint has 256, this run has 128");
    std::fs::copy(d.join("x.parquet"), d.join("y.parquet")).unwrap();
    let mut a = fit_args(&["--resume", "ck"]);
    a[1] = "y.parquet";
    refuse(
        a,
        "a different run (contents: checkpoint has [[\"x.parquet\"",
    );
    // The input rewritten in place, same size (here: same bytes, a new modification
    // time): refused too, since resuming would mix two inputs.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        d.join("x.parquet"),
        std::fs::read(d.join("y.parquet")).unwrap(),
    )
    .unwrap();
    refuse(fit_args(&["--resume", "ck"]), "a different run (contents");
    // A directory that does not exist is an error, and is not created.
    let out = run(&fit_args(&["--resume", "nowhere"]), d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nowhere: no such checkpoint directory"),
        "{err}"
    );
    assert!(!d.join("nowhere").exists());
    // An empty one has nothing to resume from.
    std::fs::create_dir(d.join("empty")).unwrap();
    let out = run(&fit_args(&["--resume", "empty"]), d);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no valid checkpoint"));
}

/// A model fitted on the first half, then updated on the second half, is within 2 % of a
/// model fitted on everything at once.
#[test]
fn incremental_update_matches_a_fit_on_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(20_000, 50, 5).seed(8).generate().x;
    write_parquet(
        &d.join("a.parquet"),
        &dense_batches(&x.slice(s![..10_000, ..]).to_owned(), 5000, false),
        4096,
    );
    write_parquet(
        &d.join("b.parquet"),
        &dense_batches(&x.slice(s![10_000.., ..]).to_owned(), 5000, false),
        4096,
    );
    let ok = |args: &[&str]| {
        let out = run(args, d);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&[
        "fit",
        "a.parquet",
        "-k",
        "5",
        "--epochs",
        "5",
        "--batch-size",
        "256",
        "-q",
        "--out",
        "old.snmf",
    ]);
    ok(&[
        "fit",
        "b.parquet",
        "--model",
        "old.snmf",
        "--epochs",
        "5",
        "--batch-size",
        "256",
        "-q",
        "--out",
        "new.snmf",
    ]);
    ok(&[
        "fit",
        "a.parquet",
        "b.parquet",
        "-k",
        "5",
        "--epochs",
        "5",
        "--batch-size",
        "256",
        "-q",
        "--out",
        "all.snmf",
    ]);
    let x32 = x.mapv(|v| v as f32);
    let loss = |f: &str| {
        persist::load::<f32>(&d.join(f))
            .unwrap()
            .0
            .loss(&x32)
            .unwrap()
            .loss
    };
    let (old, new, all) = (loss("old.snmf"), loss("new.snmf"), loss("all.snmf"));
    assert!(new <= 1.02 * all, "updated {new} vs all at once {all}");
    let (m_old, _) = persist::load::<f32>(&d.join("old.snmf")).unwrap();
    let (m_new, _) = persist::load::<f32>(&d.join("new.snmf")).unwrap();
    assert!(
        m_new.rows_seen() == m_old.rows_seen() + 50_000,
        "the update kept the old counters"
    );
    assert!(
        new <= old * 1.001,
        "learning more did not hurt: {old} -> {new}"
    );
    // Rank must match the model's.
    let out = run(
        &[
            "fit",
            "b.parquet",
            "--model",
            "old.snmf",
            "-k",
            "3",
            "--out",
            "z.snmf",
        ],
        d,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rank 3 (the model has 5)"));
}

#[test]
fn load_then_save_is_byte_identical() {
    let dir = setup();
    let d = dir.path();
    assert!(run(&fit_args(&["--out", "m.snmf"]), d).status.success());
    let (m, meta) = persist::load::<f32>(&d.join("m.snmf")).unwrap();
    persist::save(&d.join("again.snmf"), &m, &meta).unwrap();
    assert_eq!(
        std::fs::read(d.join("m.snmf")).unwrap(),
        std::fs::read(d.join("again.snmf")).unwrap()
    );
}
