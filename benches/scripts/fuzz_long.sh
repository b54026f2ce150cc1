#!/usr/bin/env bash
# The long fuzz run: tests/fuzz.rs for SECONDS seconds per round, ROUNDS rounds with new
# seeds. A round whose process dies (an abort, which no test can catch) leaves its input
# in target/tmp/fuzz/fuzz-current.*: it is copied to tests/fixtures/fuzz/ as a regression.
# Usage: benches/scripts/fuzz_long.sh [SECONDS] [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_ROUND=${1:-120}; ROUNDS=${2:-5}
./scripts/ensure-deps.sh
cargo test --release --test fuzz --no-run -q || exit 1
TMP=${CARGO_TARGET_DIR:-target}/tmp/fuzz
mkdir -p "$TMP"
for r in $(seq "$ROUNDS"); do
  seed=$RANDOM$RANDOM
  echo "round $r: seed $seed, ${SECONDS_PER_ROUND}s" >&2
  STREAMNMF_FUZZ_SECONDS=$SECONDS_PER_ROUND STREAMNMF_FUZZ_SEED=$seed \
    cargo test --release --test fuzz mutants -- --nocapture > "$TMP.log" 2>&1
  status=$?
  grep -E "^fuzz:|crash-|^error" "$TMP.log" >&2
  if grep -q "signal:" "$TMP.log"; then
    # Killed by a signal (an abort): the case it was running, the newest on disk.
    f=$(ls -t "$TMP"/fuzz-current.* | head -1)
    keep=tests/fixtures/fuzz/abort-$seed.${f##*.}
    cp "$f" "$keep"; echo "kept $keep ($(grep -o 'signal: [^)]*' "$TMP.log"))" >&2
  elif [ "$status" -ne 0 ] && ! grep -q "crash-" "$TMP.log"; then
    echo "round failed without a kept input (status $status); see $TMP.log" >&2
  fi
  ls "$TMP"/crash-* 2>/dev/null | while read -r c; do
    cp "$c" tests/fixtures/fuzz/; echo "kept $(basename "$c")" >&2
  done
  rm -f "$TMP"/crash-*
done
