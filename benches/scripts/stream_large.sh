#!/usr/bin/env bash
# Streams a large generated Parquet file (default ~5.5 GB: 2.8 M rows x 500 columns, f32)
# through `streamnmf fit` and compares its rows/s with the plain Parquet decode rate of the
# same file; reports peak RSS. Usage: benches/scripts/stream_large.sh [ROWS] [COLS] [RANK] [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-2800000}; COLS=${2:-500}; RANK=${3:-16}; DIR=${4:-$(mktemp -d)}
./scripts/ensure-deps.sh
cargo build --release --bin streamnmf --example gen_planted --example decode_rate
BIN=${CARGO_TARGET_DIR:-target}/release
FILE="$DIR/large.parquet"
if [ ! -f "$FILE" ]; then
  echo "generating $ROWS x $COLS (rank $RANK) into $FILE ..." >&2
  "$BIN/examples/gen_planted" "$FILE" "$ROWS" "$COLS" "$RANK" >/dev/null
fi
echo "file: $(du -h "$FILE" | cut -f1)" >&2
# Decode once to warm the page cache, then measure.
"$BIN/examples/decode_rate" "$FILE" 4096 >/dev/null
DEC=$("$BIN/examples/decode_rate" "$FILE" 4096)
for K in 16 32; do
  FIT=$("$BIN/streamnmf" fit "$FILE" -k "$K" --epochs 1 --batch-size 4096 --threads 2 --json -q --out "$DIR/m.snmf")
  python3 - "$DEC" "$FIT" "$K" <<'PY'
import json, sys
dec, fit, k = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"k={k}: fit {fit['rows_per_second']:.0f} rows/s, plain Parquet decode "
      f"{dec['plain_decode_rows_per_s']:.0f} rows/s, streamnmf reader {dec['reader_rows_per_s']:.0f} rows/s; "
      f"fit/decode = {fit['rows_per_second']/dec['plain_decode_rows_per_s']:.2f}; "
      f"peak RSS {fit['peak_rss_bytes']/1e6:.0f} MB")
PY
done
