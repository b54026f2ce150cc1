#!/usr/bin/env bash
# Recommender peers side by side (scikit-surprise on ratings, implicit's ALS on implicit
# feedback) with streamnmf's CLI on the same data; see recommender.py.
# Usage: benches/peers/recommender.sh [--users N] [--items P] [--rank K] [--only explicit|implicit]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf
VENV=${STREAMNMF_PEERS_VENV:-$HOME/.cache/streamnmf-peers-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import surprise, implicit, pyarrow, pandas" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy scipy pandas pyarrow scikit-surprise implicit
fi
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
# implicit warns (and slows down) when OpenBLAS runs its own threads under its own.
export OPENBLAS_NUM_THREADS=1
exec "$VENV/bin/python" benches/peers/recommender.py "$@"
