#!/usr/bin/env bash
# Audio separation side by side: streamnmf's CLI (fit on WAVs, compose, separate) against
# scikit-learn's NMF(mu) with KL and Itakura-Saito on the same spectrograms; see audio.py.
# Usage: benches/peers/audio.sh [--seconds S] [--loss kl|is] [--rank K]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example separate
. benches/peers/venv.sh
peers_venv "sklearn, scipy, pyarrow, pandas" numpy scipy pandas pyarrow scikit-learn
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/audio.py "$@"
