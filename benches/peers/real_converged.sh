#!/usr/bin/env bash
# The family's real members: streamnmf's defaults against NMF(cd) at equal time, and both
# converged. See real_converged.py. Usage: benches/peers/real_converged.sh [--members ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf
. benches/peers/venv.sh
peers_venv "sklearn, pyarrow, scipy, threadpoolctl, PIL" scikit-learn pyarrow threadpoolctl scipy pillow
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/real_converged.py "$@"
