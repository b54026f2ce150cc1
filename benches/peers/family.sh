#!/usr/bin/env bash
# The benchmark family: streamnmf's CLI with default flags against scikit-learn's NMF(cd),
# NMF(mu) and MiniBatchNMF on planted data of many shapes and on real data that ships in
# scikit-learn, per member and as geometric means. See family.py for the protocol.
# Usage: benches/peers/family.sh [--quick] [--members NAME ...] [--budget SECONDS] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf
VENV=${STREAMNMF_PEERS_VENV:-$HOME/.cache/streamnmf-peers-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sklearn, pyarrow, scipy, threadpoolctl" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q scikit-learn pyarrow threadpoolctl scipy
fi
export STREAMNMF_BIN=${CARGO_TARGET_DIR:-target}/release
exec "$VENV/bin/python" benches/peers/family.py "$@"
