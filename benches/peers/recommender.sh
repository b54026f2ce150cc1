#!/usr/bin/env bash
# Recommender peers side by side (scikit-surprise on ratings, implicit's ALS on implicit
# feedback) with streamnmf's CLI on the same data; see recommender.py.
# Usage: benches/peers/recommender.sh [--users N] [--items P] [--rank K] [--only explicit|implicit]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf
. benches/peers/venv.sh
peers_venv "surprise, implicit, pyarrow, pandas" numpy scipy pandas pyarrow scikit-surprise implicit
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
# implicit warns (and slows down) when OpenBLAS runs its own threads under its own.
export OPENBLAS_NUM_THREADS=1
exec "$VENV/bin/python" benches/peers/recommender.py "$@"
