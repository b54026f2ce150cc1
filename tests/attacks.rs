//! The attack catalogue: what a user, a script or a system does to the binary that it must
//! survive. Outputs are never destroyed or left half-done, signals stop a run cleanly,
//! concurrent runs cannot clobber each other, and nothing panics.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use streamnmf::persist::{self, CheckpointDir};
use streamnmf::synth::PlantedSpec;

const BIN: &str = env!("CARGO_BIN_EXE_streamnmf");

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().unwrap()
}

/// `fit x.parquet --id-column id -k 2` (the file of [`setup`]) and `more`.
fn fit_x<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["fit", "x.parquet", "--id-column", "id", "-k", "2"];
    v.extend_from_slice(more);
    v
}

/// `rank x.parquet --id-column id --ranks 2` and `more`.
fn rank_x<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["rank", "x.parquet", "--id-column", "id", "--ranks", "2"];
    v.extend_from_slice(more);
    v
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: the exit code, one line on stderr with each needle, no panic.
fn failed(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A directory with `x.parquet` (`n` × 12, rank 3) and a model `m.snmf` fitted on it.
fn setup(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let x = PlantedSpec::new(n, 12, 3).seed(6).generate().x;
    write_parquet(
        &dir.path().join("x.parquet"),
        &dense_batches(&x, 1000, true),
        800,
    );
    let o = run(
        dir.path(),
        &[
            "fit",
            "x.parquet",
            "-k",
            "3",
            "--epochs",
            "2",
            "--id-column",
            "id",
            "-q",
            "--out",
            "m.snmf",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

fn is_parquet(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1")
}

// ---- outputs ---------------------------------------------------------------------------

/// `--out /dev/stdout` writes through to the process's standard output (a pipe here):
/// the link and the pipe are left as they are.
#[test]
fn out_to_dev_stdout_streams_through() {
    let dir = setup(2000);
    let o = run(
        dir.path(),
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "--id-column",
            "id",
            "-q",
            "--out",
            "/dev/stdout",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_parquet(&o.stdout), "{} bytes", o.stdout.len());
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
}

/// `--out -` is an Arrow IPC stream on standard output, one record batch per batch.
#[test]
fn out_dash_is_an_arrow_stream() {
    let dir = setup(2000);
    let o = run(
        dir.path(),
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "--id-column",
            "id",
            "--batch-size",
            "500",
            "-q",
            "--out",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(o.stdout), None).unwrap();
    let batches: Vec<_> = r.map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2000);
    assert_eq!(batches[0].schema().field(0).name(), "id");
    assert!(!dir.path().join("-").exists());
}

/// A FIFO's reader gets the whole file; the FIFO stays a FIFO.
#[test]
fn out_to_a_fifo_streams_in_place() {
    let dir = setup(2000);
    let fifo = dir.path().join("codes.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = run(
        dir.path(),
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "-q",
            "--out",
            "codes.fifo",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(is_parquet(&reader.join().unwrap()));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

/// A symbolic link is written through: the target is replaced, the link stays.
#[test]
fn out_through_a_symlink_keeps_the_link() {
    let dir = setup(2000);
    let d = dir.path();
    std::fs::create_dir(d.join("store")).unwrap();
    std::fs::write(d.join("store/w.parquet"), b"old").unwrap();
    std::os::unix::fs::symlink("store/w.parquet", d.join("w.parquet")).unwrap();
    let o = run(
        d,
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "-q",
            "--out",
            "w.parquet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(d.join("w.parquet"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(is_parquet(
        &std::fs::read(d.join("store/w.parquet")).unwrap()
    ));
}

/// No output may be an input (by name, through a link, or a hard link) or another
/// output: refused before anything is read or written.
#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let dir = setup(2000);
    let d = dir.path();
    std::fs::hard_link(d.join("x.parquet"), d.join("hard.parquet")).unwrap();
    std::os::unix::fs::symlink("x.parquet", d.join("soft.parquet")).unwrap();
    let before = std::fs::read(d.join("x.parquet")).unwrap();
    let listing = files(d);
    for out in ["x.parquet", "./x.parquet", "hard.parquet", "soft.parquet"] {
        let o = run(
            d,
            &[
                "transform",
                "--model",
                "m.snmf",
                "x.parquet",
                "-q",
                "--out",
                out,
            ],
        );
        failed(&o, 1, &["--out", "is an input of this run"]);
    }
    let o = run(
        d,
        &fit_x(&["-q", "--out", "a.snmf", "--components-out", "a.snmf"]),
    );
    failed(&o, 1, &["--components-out a.snmf: the same file as --out"]);
    let o = run(
        d,
        &fit_x(&["-q", "--out", "a.snmf", "--codes-out", "nodir/w.parquet"]),
    );
    failed(&o, 1, &["nodir/w.parquet: the directory does not exist"]);
    assert_eq!(std::fs::read(d.join("x.parquet")).unwrap(), before);
    assert_eq!(files(d), listing);
}

/// A run's outputs are all-or-nothing: when the last one fails (a full disk), the model
/// and H written before it are not left behind, nor any temporary file.
#[test]
fn a_failing_output_leaves_no_other_output() {
    let dir = setup(2000);
    let d = dir.path();
    let listing = files(d);
    let o = run(
        d,
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--epochs",
            "1",
            "-q",
            "--out",
            "new.snmf",
            "--components-out",
            "h.parquet",
            "--codes-out",
            "/dev/full",
        ],
    );
    failed(&o, 1, &["/dev/full", "No space left on device"]);
    assert_eq!(files(d), listing);
}

/// An output named with a trailing separator (`h.parquet.d/`, a typo for a directory that
/// does not exist) is refused before anything is written: its rename used to fail after
/// the model had been renamed into place, leaving it behind with exit code 1.
#[test]
fn an_output_named_like_a_directory_leaves_no_other_output() {
    let dir = setup(400);
    let d = dir.path();
    let listing = files(d);
    for args in [
        &["--out", "new.snmf", "--components-out", "h.parquet.d/"][..],
        &["--out", "h.parquet.d/"][..],
    ] {
        let o = run(d, &fit_x(args));
        failed(&o, 1, &["h.parquet.d/", "names a directory"]);
        assert_eq!(files(d), listing, "{args:?}");
    }
}

/// Temporary files of a run that was killed are removed by the next run writing there;
/// another program's files (or a live run's) are not.
#[test]
fn stale_temporary_files_are_cleaned() {
    let dir = setup(2000);
    let d = dir.path();
    std::fs::write(d.join(".streamnmf-999999999-abc123"), b"half").unwrap();
    std::fs::write(d.join(".streamnmf-notes"), b"someone else's").unwrap();
    let o = run(
        d,
        &[
            "transform",
            "--model",
            "m.snmf",
            "x.parquet",
            "-q",
            "--out",
            "w.parquet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.join(".streamnmf-999999999-abc123").exists());
    assert!(d.join(".streamnmf-notes").exists());
}

/// Outputs get the permissions `File::create` gives: 0666 less the umask.
#[test]
fn outputs_honour_the_umask() {
    let dir = setup(2000);
    let d = dir.path();
    for (umask, mode) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let script = format!("umask {umask} && exec {BIN} transform --model m.snmf x.parquet -q --out w{umask}.parquet");
        let o = Command::new("sh")
            .args(["-c", &script])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let m = std::fs::metadata(d.join(format!("w{umask}.parquet"))).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, mode, "umask {umask}");
    }
}

// ---- standard output and flags ---------------------------------------------------------

/// `c` spawned with its outputs piped, as under `| head -c 10`: 10 bytes read from its
/// stdout (stderr when `from_stderr`), then that pipe closed.
fn head_c_10(mut c: Command, from_stderr: bool) -> Child {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    if from_stderr {
        let mut e = child.stderr.take().unwrap();
        e.read_exact(&mut first).unwrap();
    } else {
        let mut o = child.stdout.take().unwrap();
        o.read_exact(&mut first).unwrap();
    }
    child
}

/// `inspect … | head -1`: the reader goes away; the program ends quietly.
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = setup(2000);
    let child = head_c_10(
        cmd(dir.path(), &["inspect", "m.snmf", "--top", "12"]),
        false,
    );
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

/// `fit … --codes-out - | head -c 10`: the codes' reader goes away during the codes pass.
/// The program ends quietly, and the model (whole by then) is still written.
#[test]
fn a_closed_codes_pipe_keeps_the_model() {
    let dir = setup(20_000);
    let fit = cmd(
        dir.path(),
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--epochs",
            "1",
            "-q",
            "--out",
            "n.snmf",
            "--codes-out",
            "-",
        ],
    );
    let child = head_c_10(fit, false);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert!(
        dir.path().join("n.snmf").exists(),
        "{:?}",
        files(dir.path())
    );
}

/// `fit … 2>&1 | head -1` with debug logs: stderr goes away in the middle of a fit. The
/// fit carries on and writes its model (log lines to nobody are dropped). Before, the
/// logger's report of the failed write panicked on the thread that applies batches, and
/// the pipeline's other threads waited for it for ever (SIGTERM did not end it either).
#[test]
fn a_closed_stderr_does_not_stop_a_fit() {
    let dir = setup(2000);
    let mut fit = cmd(
        dir.path(),
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--out",
            "n.snmf",
        ],
    );
    fit.env("RUST_LOG", "streamnmf=debug");
    let mut child = head_c_10(fit, true);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the fit hung once its stderr was closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(dir.path().join("n.snmf").exists());
}

/// A full standard output is an error, on one line.
#[test]
fn a_full_stdout_is_an_error() {
    let dir = setup(2000);
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = cmd(dir.path(), &["inspect", "m.snmf", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    failed(&o, 1, &["No space left on device"]);
}

/// Solver and queue counts past what a machine holds are one-line errors. Before, a queue
/// depth of 10⁸ aborted on a 42 GB allocation with a backtrace, 100 000 solvers aborted
/// while spawning their threads, and 100 000 local ranks were killed for memory.
#[test]
fn pipeline_limits_are_errors_not_aborts() {
    let dir = setup(2000);
    for (flag, value, what) in [
        (
            "--queue-depth",
            "100000000",
            "queue depth is 100000000, above its limit of 4096",
        ),
        (
            "--solvers",
            "100000",
            "solvers is 100000, above its limit of 256",
        ),
    ] {
        let o = run(
            dir.path(),
            &[
                "fit",
                "x.parquet",
                "--id-column",
                "id",
                "-k",
                "3",
                "-q",
                "--out",
                "n.snmf",
                flag,
                value,
            ],
        );
        failed(&o, 1, &[what]);
        assert!(!dir.path().join("n.snmf").exists());
    }
    // Ranks as threads, each with a model of its own: 100 000 were killed for memory.
    let o = run(
        dir.path(),
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "-q",
            "--out",
            "n.snmf",
            "--distributed",
            "local:100000",
        ],
    );
    failed(&o, 2, &["1 ≤ N ≤ 256"]);
}

/// Bad numbers for flags are usage errors (exit 2, one line), never panics.
#[test]
fn bad_flag_values_are_usage_errors() {
    let dir = setup(2000);
    for v in ["-1", "nan", "inf", "0", "1e400", "soon"] {
        let flag = format!("--checkpoint-seconds={v}");
        let o = run(dir.path(), &fit_x(&["--checkpoint-dir", "ck", &flag]));
        failed(&o, 2, &["--checkpoint-seconds"]);
    }
    // No pass at all, in every command that takes --epochs: the flag is named.
    for cmd in [
        &fit_x(&["--epochs", "0"])[..],
        &rank_x(&["--epochs", "0"]),
        &["demo", "--rows", "100", "--epochs", "0"],
        &fit_x(&["--epochs=-1"]),
    ] {
        let o = run(dir.path(), cmd);
        failed(&o, 2, &["--epochs"]);
    }
    // A negative number after a space is the flag's value, refused for what it is (it was
    // reported as an unknown argument '-1').
    let o = run(dir.path(), &fit_x(&["--epochs", "-1"]));
    failed(&o, 2, &["--epochs"]);
    let o = run(dir.path(), &fit_x(&["--decay", "-1"]));
    failed(&o, 1, &["decay must be finite and >= 0, got -1"]);
    // In exponent form too, which clap does not take for a number on its own.
    let o = run(dir.path(), &fit_x(&["--code-tol", "-1e-3"]));
    failed(&o, 1, &["code_tol", "-0.001"]);
    let o = run(dir.path(), &fit_x(&["--pass-tol", "-2E-4"]));
    failed(&o, 1, &["pass_tol", "-0.0002"]);
    // A beta whose powers of the data leave the float range is refused for itself.
    for beta in ["beta=1e308", "beta=50"] {
        let o = run(dir.path(), &fit_x(&["--loss", beta]));
        failed(&o, 1, &["beta must be a finite number in [-10, 10]"]);
    }
}

/// A command without its required arguments names them, on the one line of a usage error.
#[test]
fn missing_arguments_are_named() {
    let dir = setup(2000);
    let o = run(dir.path(), &["fit"]);
    let named = [
        "required arguments were not provided: ",
        "--rank <RANK>",
        "<INPUTS>",
    ];
    failed(&o, 2, &named);
    let o = run(dir.path(), &["transform", "x.parquet"]);
    failed(&o, 2, &["--model <MODEL>", "--out <OUT>"]);
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
}

/// A file where the checkpoint directory should be is named with the cause, and the
/// run writes nothing (the model from `setup` stays as it was).
#[test]
fn a_file_as_checkpoint_dir_is_refused() {
    let dir = setup(2000);
    std::fs::write(dir.path().join("ck"), b"not a directory").unwrap();
    let model = std::fs::read(dir.path().join("m.snmf")).unwrap();
    let o = run(
        dir.path(),
        &fit_x(&["--out", "m.snmf", "--checkpoint-dir", "ck"]),
    );
    failed(&o, 1, &["ck", "a file is in the way"]);
    assert_eq!(std::fs::read(dir.path().join("m.snmf")).unwrap(), model);
    assert_eq!(
        std::fs::read(dir.path().join("ck")).unwrap(),
        b"not a directory"
    );
}

/// The image and data writers rename a finished file into place, so a destination that
/// is not a regular file (a FIFO here; `/dev/full` as root was replaced by a PNG before)
/// is refused, directly or through a link, before any work, and stays as it was. (`fit`
/// and `transform` outputs stream into a FIFO instead: `out_to_a_fifo_streams_in_place`.)
#[test]
fn outputs_never_replace_a_device_or_fifo() {
    let dir = setup(2000);
    let d = dir.path();
    let made = Command::new("mkfifo").arg(d.join("fifo")).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("fifo", d.join("link")).unwrap();
    for out in ["fifo", "link"] {
        let cases: [&[&str]; 2] = [&["plot", "m.snmf", "--out", out], &rank_x(&["--plot", out])];
        for args in cases {
            let o = run(d, args);
            assert!(!o.status.success(), "{args:?} succeeded");
            let e = stderr(&o);
            assert!(!e.contains("panicked"), "{args:?}: {e}");
            assert!(e.contains("fifo") || e.contains(out), "{args:?}: {e}");
            let t = std::fs::symlink_metadata(d.join("fifo"))
                .unwrap()
                .file_type();
            assert!(
                std::os::unix::fs::FileTypeExt::is_fifo(&t),
                "{args:?} replaced it"
            );
        }
    }
    // The demo's data file in a --keep directory.
    std::fs::create_dir(d.join("kept")).unwrap();
    std::os::unix::fs::symlink("../fifo", d.join("kept/planted.parquet")).unwrap();
    let args = [
        "demo", "--rows", "200", "--cols", "20", "--rank", "2", "--keep", "kept",
    ];
    let o = run(d, &args);
    failed(&o, 1, &["fifo", "not a regular file"]);
    let t = std::fs::symlink_metadata(d.join("fifo"))
        .unwrap()
        .file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&t));
}

/// An output whose directory takes no new files (`/proc`): the error names the output
/// and the directory, not the temporary file the user never asked for.
#[test]
#[cfg(target_os = "linux")]
fn an_output_where_no_file_can_be_made_is_named() {
    let dir = setup(400);
    let o = run(dir.path(), &fit_x(&["--out", "/proc/version"]));
    failed(&o, 1, &["/proc/version", "cannot create a file in /proc"]);
    assert!(!stderr(&o).contains(".streamnmf-"), "{}", stderr(&o));
}

// ---- signals and concurrency -----------------------------------------------------------

/// A fit on a stream that waits for more input (stdin held open): the process runs until
/// the stream ends.
fn waiting_fit(dir: &Path, extra: &[&str]) -> (Child, std::process::ChildStdin) {
    let x = PlantedSpec::new(600, 12, 3).seed(6).generate().x;
    let batches = dense_batches(&x, 200, false);
    let mut bytes = Vec::new();
    {
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batches[0].schema()).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        // No end-of-stream marker: the reader waits for more.
    }
    let mut args = vec![
        "fit",
        "-",
        "-k",
        "3",
        "--batch-size",
        "100",
        "-q",
        "--out",
        "live.snmf",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    (child, stdin)
}

fn wait_for(mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The demo refuses more planted values than it writes, and SIGTERM stops it while it
/// writes its data, leaving nothing in its `--keep` directory. Before, `--rows 10¹²`
/// started a file that would have filled the disk and ignored SIGTERM.
#[test]
fn demo_is_bounded_and_stops_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["demo", "--rows", "1000000000000"]);
    failed(&o, 1, &["more than the demo writes"]);
    let keep = dir.path().join("k");
    let child = cmd(
        dir.path(),
        &["demo", "--rows", "100000000", "--cols", "20", "--keep", "k"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Its temporary file has some data in it: the writing is under way.
    wait_for(|| {
        std::fs::read_dir(&keep).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 1_000_000))
        })
    });
    let t = Instant::now();
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    failed(&o, 143, &["interrupted by SIGTERM"]);
    assert!(files(&keep).is_empty(), "{:?}", files(&keep));
}

/// A checkpoint directory is held by its run: a second run, or a `--resume` of it,
/// fails at once naming the holder; once the run ends, the directory is free again.
#[test]
fn a_checkpoint_directory_is_held_by_one_run() {
    let dir = setup(2000);
    let d = dir.path();
    let (child, stdin) = waiting_fit(d, &["--checkpoint-dir", "ck"]);
    wait_for(|| {
        d.join("ck/.lock").exists()
            && !std::fs::read_to_string(d.join("ck/.lock"))
                .unwrap_or_default()
                .is_empty()
    });
    let pid = child.id().to_string();
    let t = Instant::now();
    let o = run(
        d,
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "-q",
            "--checkpoint-dir",
            "ck",
            "--out",
            "b.snmf",
        ],
    );
    failed(&o, 1, &["ck: in use by another run", &pid]);
    let o = run(
        d,
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "-q",
            "--resume",
            "ck",
            "--out",
            "b.snmf",
        ],
    );
    failed(&o, 1, &["in use by another run", &pid]);
    assert!(t.elapsed() < Duration::from_secs(5), "refused at once");
    drop(stdin); // end of stream: the first run finishes
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!CheckpointDir::list_in(&d.join("ck")).unwrap().is_empty());
    let o = run(
        d,
        &[
            "fit",
            "x.parquet",
            "--id-column",
            "id",
            "-k",
            "3",
            "--epochs",
            "1",
            "-q",
            "--checkpoint-dir",
            "ck",
            "--out",
            "b.snmf",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// SIGINT and SIGTERM stop a run cleanly: exit 130 / 143, one line saying where to
/// resume, a checkpoint of every batch applied, no output and no temporary file; the
/// resumed run ends with exactly the model of an uninterrupted one. A second signal exits
/// at once.
#[test]
fn signals_stop_cleanly_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(60_000, 40, 5).seed(2).generate().x;
    write_parquet(
        &d.join("x.parquet"),
        &dense_batches(&x, 10_000, false),
        8192,
    );
    let args = |out: &'static str| -> Vec<&'static str> {
        vec![
            "fit",
            "x.parquet",
            "-k",
            "5",
            "--epochs",
            "40",
            // Every pass: the run must last long enough to be interrupted.
            "--pass-tol",
            "0",
            "--batch-size",
            "500",
            "--staleness",
            "2",
            "--threads",
            "1",
            "-q",
            "--out",
            out,
        ]
    };
    let o = run(d, &args("full.snmf"));
    assert!(o.status.success(), "{}", stderr(&o));
    let want = std::fs::read(d.join("full.snmf")).unwrap();
    for (sig, code) in [("-INT", 130), ("-TERM", 143)] {
        let ck = format!("ck{code}");
        let mut a = args("stopped.snmf");
        let ck_arg: &'static str = Box::leak(ck.clone().into_boxed_str());
        a.extend(["--checkpoint-dir", ck_arg, "--checkpoint-every", "50"]);
        let child = cmd(d, &a).stderr(Stdio::piped()).spawn().unwrap();
        // Once the run is under way (a first periodic checkpoint), interrupt it.
        wait_for(|| {
            !CheckpointDir::list_in(&d.join(&ck))
                .unwrap_or_default()
                .is_empty()
        });
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        failed(
            &o,
            code,
            &[
                "interrupted by SIG",
                "checkpoint",
                &format!("--resume {ck}"),
            ],
        );
        assert!(
            !d.join("stopped.snmf").exists(),
            "no output from a stopped run"
        );
        assert!(files(d).iter().all(|f| !f.starts_with(".streamnmf-")));
        let newest = CheckpointDir::list_in(&d.join(&ck)).unwrap()[0].clone();
        let newest = newest.file_name().unwrap().to_string_lossy().into_owned();
        assert!(stderr(&o).contains(&newest), "{}", stderr(&o));
        let mut a = args("resumed.snmf");
        a.extend(["--resume", Box::leak(ck.into_boxed_str())]);
        let o = run(d, &a);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            std::fs::read(d.join("resumed.snmf")).unwrap() == want,
            "{sig}: the resumed model differs"
        );
    }
    // Two signals: the second exits at once, whatever the run was doing.
    let (child, _stdin) = waiting_fit(d, &[]);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(t.elapsed() < Duration::from_secs(2));
    let (m, _) = persist::load::<f32>(&d.join("full.snmf")).unwrap();
    assert_eq!(m.batches_seen(), 4800);
}

// ---- compressed Arrow IPC ---------------------------------------------------------------

/// Arrow IPC with LZ4 (pandas' `to_feather` default) or zstd buffers, as a file, a stream
/// on standard input and a file piped in, fits to the same model as the Parquet file; a buffer whose size
/// prefix declares 2⁵⁰ bytes is refused with the file named and nothing written, where
/// the reader would have aborted the process reserving them.
#[test]
fn compressed_arrow_ipc_reads_and_lying_sizes_are_refused() {
    let d = setup(900);
    let dir = d.path();
    let x = PlantedSpec::new(900, 12, 3).seed(6).generate().x;
    let fit = |input: &str, out: &str, stdin: Option<Vec<u8>>| {
        let mut args = vec![
            "fit",
            input,
            "-k",
            "3",
            "--batch-size",
            "100",
            "--epochs",
            "1",
        ];
        if input == "x.parquet" {
            args.extend(["--id-column", "id"]);
        }
        args.extend(["-q", "--out", out]);
        let mut c = cmd(dir, &args);
        let Some(bytes) = stdin else {
            return c.output().unwrap();
        };
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        // A refusal may close the pipe before everything is written.
        let _ = pipe.write_all(&bytes);
        drop(pipe);
        child.wait_with_output().unwrap()
    };
    let h = |name: &str| {
        let (m, _) = persist::load::<f32>(&dir.join(name)).unwrap();
        m.components().unwrap().to_owned()
    };
    let o = fit("x.parquet", "p.snmf", None);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = h("p.snmf");
    for (codec, name) in [
        (arrow_ipc::CompressionType::LZ4_FRAME, "lz4"),
        (arrow_ipc::CompressionType::ZSTD, "zstd"),
    ] {
        let file = format!("{name}.feather");
        let bytes = |file| compressed_ipc_bytes(&dense_batches(&x, 300, false), codec, file);
        std::fs::write(dir.join(&file), bytes(true)).unwrap();
        // A file, a stream on stdin, and `cat x.feather | streamnmf fit -`.
        for (input, stdin, what) in [
            (file.as_str(), None, "file"),
            ("-", Some(bytes(false)), "stream"),
            ("-", Some(bytes(true)), "file on stdin"),
        ] {
            let o = fit(input, "f.snmf", stdin);
            assert!(o.status.success(), "{}", stderr(&o));
            assert_eq!(h("f.snmf"), want, "{name} {what}");
        }

        // The first value buffer: 300 f64 of column f0, 2400 bytes once decompressed.
        let lie = |mut bytes: Vec<u8>| {
            let at = bytes
                .windows(8)
                .position(|w| w == 2400i64.to_le_bytes())
                .unwrap();
            bytes[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
            bytes
        };
        let bad = format!("bad-{name}.feather");
        std::fs::write(
            dir.join(&bad),
            lie(compressed_ipc_bytes(
                &dense_batches(&x, 300, false),
                codec,
                true,
            )),
        )
        .unwrap();
        let before = files(dir);
        let o = fit(&bad, "bad.snmf", None);
        failed(&o, 1, &[&bad, "1125899906842624 bytes", "corrupt"]);
        assert_eq!(files(dir), before);
        let o = fit(
            "-",
            "bad.snmf",
            Some(lie(compressed_ipc_bytes(
                &dense_batches(&x, 300, false),
                codec,
                false,
            ))),
        );
        failed(&o, 1, &["<stdin>", "1125899906842624 bytes", "corrupt"]);
        assert_eq!(files(dir), before);
    }
}

// ---- memory ----------------------------------------------------------------------------

/// Writing a wide H (10 304 features, as a 112 × 92 face image) costs no memory beyond
/// the fit's: it goes out in the long layout, in bounded slices.
#[test]
fn a_wide_dictionary_is_written_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = PlantedSpec::new(400, 10_304, 25).seed(3).generate().x;
    write_parquet(
        &d.join("faces.parquet"),
        &dense_batches(&x, 400, false),
        400,
    );
    let peak = |extra: &[&str]| -> f64 {
        let mut a = vec![
            "fit",
            "faces.parquet",
            "-k",
            "25",
            "--epochs",
            "2",
            "-q",
            "--json",
            "--out",
            "m.snmf",
        ];
        a.extend_from_slice(extra);
        let o = run(d, &a);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["peak_rss_bytes"].as_f64().unwrap() / 1e6
    };
    // The peak depends on how many of the input's 16 MB batches are in flight when it is
    // reached: 197-222 MB between runs of this binary, 194 and 228 MB in one CI run. So
    // the least of two runs each, and a margin of three batches; writing H through zstd
    // cost 380 MB more.
    let least = |extra: &[&str]| peak(extra).min(peak(extra));
    let (fit, with_h) = (least(&[]), least(&["--components-out", "h.parquet"]));
    assert!(
        with_h <= fit + 48.0,
        "peak RSS {fit:.0} MB, {with_h:.0} MB with H"
    );
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(d.join("h.parquet")).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = r
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["component", "feature", "value"]);
    let rows: usize = r.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 25 * 10_304);
}
