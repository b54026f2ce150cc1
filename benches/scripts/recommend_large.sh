#!/usr/bin/env bash
# Recommendation throughput at catalogue scale: 100 000 users x 20 000 items (about 50
# interactions per user, Zipf-skewed), an implicit-feedback model of rank 32 fitted in
# one pass, then `streamnmf recommend -n 10` for every user from their interactions
# (codes folded in, seen items excluded). Prints whole-process seconds, users/s and peak
# RSS of each step.
# Usage: benches/scripts/recommend_large.sh [USERS] [ITEMS] [RANK]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf
BIN=${CARGO_TARGET_DIR:-target}/release/streamnmf
USERS=${1:-100000}; ITEMS=${2:-20000}; RANK=${3:-32}
VENV=${STREAMNMF_PEERS_VENV:-$HOME/.cache/streamnmf-peers-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import pyarrow, numpy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy pyarrow
fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
"$VENV/bin/python" - "$DIR/x.parquet" "$USERS" "$ITEMS" <<'PY'
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
path, n, p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
per = 50
# Distinct sorted items per user: cumulative sums of random gaps, skewed toward low
# (popular) indices by a power map.
gaps = rng.integers(1, 2 * p // (per + 5), size=(n, per))
u = np.minimum(np.cumsum(gaps, axis=1), p - 1) / (p - 1)
cols = np.minimum((u ** 1.5) * (p - 1), p - 1).astype(np.int64)
keep = np.ones_like(cols, dtype=bool)
keep[:, 1:] = np.diff(cols, axis=1) > 0
users = np.repeat(np.arange(n, dtype=np.int64), per).reshape(n, per)
vals = 1.0 + rng.poisson(2.0, size=(n, per))
pq.write_table(pa.table({"user": users[keep], "item": cols[keep], "count": vals[keep].astype(np.float32)}), path)
print(f"{keep.sum()} interactions, {n} users, {p} items", file=sys.stderr)
PY
L=(--layout triplets:user,item,count --width "$ITEMS")
/usr/bin/time -f "fit (1 pass, rank $RANK, implicit): %e s, peak RSS %M KB" \
  "$BIN" fit "$DIR/x.parquet" "${L[@]}" -k "$RANK" --unobserved implicit --epochs 1 --out "$DIR/m.snmf" -q
for run in 1 2 3; do
  /usr/bin/time -f "recommend -n 10, run $run: %e s, peak RSS %M KB" \
    "$BIN" recommend --model "$DIR/m.snmf" "$DIR/x.parquet" "${L[@]}" -n 10 --out "$DIR/recs.parquet" --json -q \
    | grep -E '"users"|users_per_second|"seconds"' | tr -d '\n '; echo
done
