#!/usr/bin/env bash
# Builds the Python package (`pip install ./`, maturin + PyO3, an abi3 wheel) into a
# virtual environment and runs its pytest suite: check_estimator, parity with the CLI's
# models, Arrow streams in bounded memory, pickle, errors, Ctrl-C.
# The environment lives next to the Rust build cache, so later runs only rebuild what
# changed. Needs Python >= 3.9 with venv (scripts/ensure-deps.sh installs it when missing)
# and access to PyPI for maturin and the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${STREAMNMF_PY_VENV:-$target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "./[test]"
# The CLI that the parity tests run: built by `cargo test --release`, or built here.
[ -x "$target/release/streamnmf" ] || cargo build --release --bin streamnmf
CARGO_TARGET_DIR="$target" "$venv/bin/python" -m pytest -q python/tests
