//! The library builds without its default features: the math (batches, losses, codes,
//! dictionary, model, pipeline, model files) needs neither Arrow nor Parquet nor the
//! command-line crates, so a library user can take `default-features = false`.

use std::process::Command;

fn cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(manifest_dir());
    c
}

const CLI_AND_IO: [&str; 7] = [
    "arrow-array",
    "arrow-schema",
    "parquet",
    "clap",
    "indicatif",
    "anyhow",
    "tracing-subscriber",
];

#[test]
fn library_dependencies_without_default_features() {
    let out = cargo()
        .args([
            "tree",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for krate in CLI_AND_IO {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{krate} "))),
            "{krate} is a dependency of the library without default features:\n{tree}"
        );
    }
    assert!(tree.lines().any(|l| l.starts_with("ndarray ")));
    // With the defaults, the readers and the CLI are there.
    let out = cargo()
        .args([
            "tree", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("parquet ")));
}

#[test]
fn library_builds_without_default_features() {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-default-features");
    let out = cargo()
        .args(["check", "--lib", "--no-default-features", "--quiet"])
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo check --no-default-features failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The crate's root at run time: `cargo test` sets `CARGO_MANIFEST_DIR` for the test
/// process, and unlike `env!` it follows the checkout when a shared target directory
/// holds a binary compiled from another clone.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
