#!/usr/bin/env bash
# What a distributed fit costs, and how it would scale.
#   1. A round's collective (the statistics, k x (k + p) f32, summed in the fit's tree and
#      sent back) under `mpirun -np 1, 2, 4` (4 oversubscribes a 2-core machine), against
#      one rank's compute per round (solving a batch's codes; the dictionary update that
#      every rank repeats), for k in {16, 64} and p in {1000, 100000}: examples/mpi_exchange.
#   2. From those numbers, a model of 16-256 ranks on a 10 and a 100 Gb/s network: the
#      round time, the communication share, and the batch size per rank that keeps the
#      communication under 10 % of the compute.
#   3. Whole process on a Parquet file (median of 3): one process, --distributed local:2
#      and mpirun -np 2.
# Usage: benches/scripts/mpi_scaling.sh [BATCH_ROWS] [REPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-1024}; REPS=${2:-20}
./scripts/ensure-deps.sh mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo build --release --features mpi --bin streamnmf --example mpi_exchange --example gen_planted -q
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for k in 16 64; do
  for p in 1000 100000; do
    for np in 1 2 4; do
      mpirun -np "$np" --oversubscribe "$BIN/examples/mpi_exchange" "$k" "$p" "$B" "$REPS"
    done
  done
done > "$OUT/exchange.jsonl"

"$BIN/examples/gen_planted" "$OUT/x.parquet" 262144 500 16 >/dev/null
whole() { # label, command...
  local label=$1; shift
  for _ in 1 2 3; do
    local t0; t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    echo "$label $(echo "$(date +%s.%N) - $t0" | bc)"
  done
}
FIT=(fit "$OUT/x.parquet" -k 16 --epochs 1 --batch-size "$B" --staleness 0 -q --out "$OUT/m.snmf")
{
  whole "one-process" "$BIN/streamnmf" "${FIT[@]}"
  whole "local:2" "$BIN/streamnmf" "${FIT[@]}" --distributed local:2
  whole "mpirun-np-2" mpirun -np 2 "$BIN/streamnmf" "${FIT[@]}" --distributed mpi
} > "$OUT/whole.txt"

python3 - "$OUT/exchange.jsonl" "$OUT/whole.txt" "$B" <<'PY'
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
b = int(sys.argv[3])
print(f"## A round's collective vs one rank's compute (batch {b} rows, f32; medians)\n")
print("| k | p | message | -np 1 | -np 2 | -np 4 (oversubscribed) | solve a batch | dictionary update |")
print("|---|---|---|---|---|---|---|---|")
cases = {}
for r in rows:
    cases.setdefault((r["k"], r["p"]), {})[r["ranks"]] = r
ms = lambda s: f"{1e3 * s:.3g} ms"
for (k, p), c in sorted(cases.items()):
    one = c[1]
    print(f"| {k} | {p} | {one['message_bytes'] / 1e6:.2f} MB | {ms(one['exchange_s'])} | "
          f"{ms(c[2]['exchange_s'])} | {ms(c[4]['exchange_s'])} | {ms(one['solve_s'])} | {ms(one['update_s'])} |")

print("\n## Model: N ranks, one batch each per round\n")
print("round = solve(b) + update + collective(N); collective(N) = L * (2 (alpha + M / bandwidth) + combine),")
print("L = ceil(log2 N) tree levels, combine = the -np 2 collective here less its two shared-memory copies")
print("(taken as the whole -np 2 time: an upper bound). alpha = 20 us at 10 Gb/s (TCP), 2 us at 100 Gb/s.\n")
print("| k | p | network | N | collective | comm / compute | rows/s vs 1 rank | batch for comm < 10 % |")
print("|---|---|---|---|---|---|---|---|")
for (k, p), c in sorted(cases.items()):
    M = c[1]["message_bytes"]
    solve, update = c[1]["solve_s"], c[1]["update_s"]
    combine = c[2]["exchange_s"]
    per_row = solve / b
    for gbps, alpha in ((10, 20e-6), (100, 2e-6)):
        bw = gbps * 1e9 / 8
        for n in (16, 64, 256):
            levels = math.ceil(math.log2(n))
            coll = levels * (2 * (alpha + M / bw) + combine)
            compute = solve + update
            speed = n * b / (compute + coll) / (b / compute)
            # Smallest batch b' with coll <= 0.1 (per_row * b' + update).
            need = max(0.0, (10 * coll - update) / per_row)
            print(f"| {k} | {p} | {gbps} Gb/s | {n} | {ms(coll)} | {coll / compute:.1%} | "
                  f"{speed:.1f}x | {math.ceil(need)} rows |")

print("\n## Whole process: 262144 x 500 Parquet (8 row groups), rank 16, one pass (seconds, median of 3)\n")
times = {}
for l in open(sys.argv[2]):
    label, t = l.split()
    times.setdefault(label, []).append(float(t))
for label, ts in times.items():
    print(f"- {label}: {statistics.median(ts):.2f} s")
PY
