#!/usr/bin/env python3
"""Whole-process A/B of two streamnmf binaries on the same command, run alternately.

On a shared, noisy machine, two hyperfine runs one after the other can differ by 20 %
while the code did not change. Alternating A and B run by run (the order flipped every
round) exposes both to the same drift, so the ratio of their medians means something.

Usage: benches/ab.py BIN_A BIN_B ROUNDS -- ARGS...
  e.g. benches/ab.py /tmp/streamnmf-before target/release/streamnmf 100 -- \
           fit x.parquet -k 10 --epochs 1 -q --out /tmp/m.snmf
Prints each binary's median, quartiles and the ratio A / B of the medians (> 1: B is
faster). Standard library only.
"""
import statistics
import subprocess
import sys
import time


def main():
    if "--" not in sys.argv or sys.argv.index("--") != 4:
        sys.exit(__doc__)
    a, b, rounds, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5:]
    times = {a: [], b: []}
    for i in range(rounds):
        for exe in (a, b) if i % 2 else (b, a):
            start = time.perf_counter()
            subprocess.run([exe] + args, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            times[exe].append(time.perf_counter() - start)
    for name, exe in (("A", a), ("B", b)):
        q = statistics.quantiles(times[exe], n=4)
        print(f"{name} {exe}: median {statistics.median(times[exe]) * 1000:.1f} ms "
              f"(quartiles {q[0] * 1000:.1f} .. {q[2] * 1000:.1f}) over {rounds} runs")
    print(f"A / B of the medians: {statistics.median(times[a]) / statistics.median(times[b]):.3f}")


if __name__ == "__main__":
    main()
