#!/usr/bin/env bash
# Runs scikit-learn and streamnmf side by side on the same generated data and prints a
# table of times to target, final errors, peak RSS and speed ratios.
# Usage: benches/peers/compare.sh [CASE ...]   (default: all cases; see compare.py --help)
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example trajectory
VENV=${STREAMNMF_PEERS_VENV:-$HOME/.cache/streamnmf-peers-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sklearn, pyarrow, scipy, threadpoolctl" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q scikit-learn pyarrow threadpoolctl scipy
fi
# The Python package's column: built from this checkout into the same venv.
"$VENV/bin/pip" install -q ./
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/compare.py "$@"
