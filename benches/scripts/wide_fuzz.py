"""Byte mutations of a wide Parquet file through the whole CLI.

A 300 x 140 float32 file in row groups of 128 rows goes through the readers that decode a
wide row group whole (128 columns or more) and hand it out in slices; each case flips 1-8
random bytes and runs `fit -k 3 --epochs 2`. A case fails if the process panics or exits
with a code other than 0 (fitted) or 1 (a clear error); a run slower than 5 s is counted.
Deterministic: case i mutates with seed i.

Usage: python benches/scripts/wide_fuzz.py PATH/TO/streamnmf [CASES] (needs numpy, pyarrow;
the peers' venv of benches/peers has both). Exits 1 if any case failed.
"""
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main():
    binary = sys.argv[1]
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    tmp = tempfile.mkdtemp(prefix="wide-fuzz-")
    clean = os.path.join(tmp, "wide.parquet")
    x = np.random.default_rng(0).random((300, 140), dtype=np.float32)
    pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(140)}), clean, row_group_size=128)
    base = open(clean, "rb").read()
    mutated, model = os.path.join(tmp, "m.parquet"), os.path.join(tmp, "m.snmf")
    codes, failed, slow = {}, 0, 0
    for i in range(cases):
        b = bytearray(base)
        r = random.Random(i)
        for _ in range(r.randint(1, 8)):
            b[r.randrange(len(b))] = r.randrange(256)
        open(mutated, "wb").write(b)
        t0 = time.time()
        p = subprocess.run([binary, "fit", mutated, "-k", "3", "--epochs", "2", "-q", "--out", model],
                           capture_output=True, timeout=60)
        slow += time.time() - t0 > 5
        codes[p.returncode] = codes.get(p.returncode, 0) + 1
        if b"panicked" in p.stderr or p.returncode not in (0, 1):
            failed += 1
            print(f"case {i}: exit {p.returncode}\n{p.stderr[-500:].decode(errors='replace')}")
    print(f"{cases} cases: exit codes {codes}, failed {failed}, slower than 5 s {slow}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
