#!/usr/bin/env bash
# The benchmark family: streamnmf's CLI with default flags against scikit-learn's NMF(cd),
# NMF(mu) and MiniBatchNMF on planted data of many shapes and on real data that ships in
# scikit-learn, per member and as geometric means. See family.py for the protocol.
# Usage: benches/peers/family.sh [--quick] [--members NAME ...] [--budget SECONDS] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example decode_rate
. benches/peers/venv.sh
peers_venv "sklearn, pyarrow, scipy, threadpoolctl, PIL" scikit-learn pyarrow threadpoolctl scipy pillow
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/family.py "$@"
