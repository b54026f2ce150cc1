#!/usr/bin/env bash
# Soak: a long Arrow IPC stream on stdin into `streamnmf fit -`, with the fit's resident
# memory sampled every second. Prints RSS at 10 %, 50 % and 100 % of the stream and the
# ratio of the last to the 10 % mark (flat: within 10 %). Usage:
#   benches/scripts/soak_stdin.sh [ROWS] [COLS] [RECORD_BATCH_ROWS] [RANK]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-20000000}; COLS=${2:-64}; RB=${3:-4096}; RANK=${4:-8}
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example produce_stream -q
BIN=${CARGO_TARGET_DIR:-target}/release
LOG=$(mktemp)
"$BIN/examples/produce_stream" "$ROWS" "$COLS" "$RANK" "$RB" \
  | "$BIN/streamnmf" fit - -k "$RANK" --batch-size 1024 -q --json --out /tmp/soak.snmf > "$LOG.json" &
sleep 0.5
PID=$(pgrep -n -f "streamnmf fit - -k $RANK")
start=$(date +%s.%N)
while kill -0 "$PID" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/"$PID"/status 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(echo "$(date +%s.%N) - $start" | bc) $rss" >> "$LOG"
  sleep 1
done
wait
python3 - "$LOG" "$LOG.json" "$RB" <<'PY'
import json, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
summary = json.load(open(sys.argv[2]))
if len(rows) < 3:
    print("too short to judge:", rows); sys.exit(0)
t_end = rows[-1][0]
def at(frac):
    return max(r for t, r in rows if t <= frac * t_end + 1e-9) / 1024
r10, r50, r100 = at(0.1), at(0.5), at(1.0)
print(f"record batches of {sys.argv[3]} rows: {summary['rows']} rows in {summary['seconds']:.1f} s "
      f"({summary['rows_per_second']:.0f} rows/s); RSS at 10% {r10:.0f} MB, 50% {r50:.0f} MB, "
      f"100% {r100:.0f} MB; 100%/10% = {r100 / r10:.2f}; peak {summary['peak_rss_bytes']/1e6:.0f} MB")
PY
