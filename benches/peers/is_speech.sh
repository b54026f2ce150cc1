#!/usr/bin/env bash
# Itakura-Saito on speech magnitudes: scikit-learn's MiniBatchNMF(IS) and NMF(mu, IS)
# against streamnmf, to each peer's final divergence; see is_speech.py.
# Usage: benches/peers/is_speech.sh [--code-max-iter N] [--batch-size B] [--passes P]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example separate --example trajectory
. benches/peers/venv.sh
peers_venv "sklearn, scipy, pyarrow, pandas" numpy scipy pandas pyarrow scikit-learn
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/is_speech.py "$@"
