#!/usr/bin/env bash
# Runs scikit-learn and streamnmf side by side on the same generated data and prints a
# table of times to target, final errors, peak RSS and speed ratios.
# Usage: benches/peers/compare.sh [CASE ...]   (default: all cases; see compare.py --help)
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example trajectory --example decode_rate
. benches/peers/venv.sh
peers_venv "sklearn, pyarrow, scipy, threadpoolctl" scikit-learn pyarrow threadpoolctl scipy
# The Python package's column: built from this checkout into the same venv.
"$VENV/bin/pip" install -q ./
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/compare.py "$@"
