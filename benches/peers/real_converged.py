#!/usr/bin/env python3
"""The real members of the benchmark family (family.py) against NMF(cd) twice over: the
error each reaches at the same whole-process time, and the error each converges to.

For each member: streamnmf's CLI on Parquet with no flag but the rank (its convergence
test stops it), its wall time T and error; NMF(cd) in memory from max_iter 1, doubling,
with tol 0, and its error at the largest count whose in-process time is at most T (the
equal-time comparison: the peer gets T without a process start or a Parquet read);
then streamnmf with `--epochs 300` against NMF(cd) with tol 1e-6 and 2000 iterations
(the converged comparison). Errors are ‖X − WH‖/‖X‖, ours from its dictionary with the
best codes (family.py's `best_codes_error`), the peer's from its own codes.

Usage: real_converged.py [--members NAME ...] [--passes N]  (run by real_converged.sh)
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import family as F  # noqa: E402


def ours(binary, data, x, k, extra, out_dir):
    h_path = os.path.join(out_dir, "h.parquet")
    cmd = [binary, "fit", data + ".parquet", "-k", str(k), "-q", "--out",
           os.path.join(out_dir, "m.snmf"), "--components-out", h_path] + extra
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t
    return wall, F.best_codes_error(x, F.read_h(h_path, k, x.shape[1]))


def cd(x, k, max_iter, tol):
    from sklearn.decomposition import NMF
    t = time.perf_counter()
    m = NMF(k, solver="cd", max_iter=max_iter, tol=tol, random_state=0)
    w = m.fit_transform(x)
    return time.perf_counter() - t, F.rel_error(x.astype(np.float64), w, m.components_)


def main():
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", nargs="*", default=list(F.REAL))
    ap.add_argument("--passes", type=int, default=300)
    args = ap.parse_args()
    binary = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "streamnmf")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.members:
            m = F.REAL[name]
            x = F.real(m)
            data = os.path.join(tmp, name)
            F.write_parquet(x, data + ".parquet")
            k = m["k"]
            walls, err = [], None
            for _ in range(3):
                wall, err = ours(binary, data, x, k, [], tmp)
                walls.append(wall)
            t_ours = sorted(walls)[1]
            cd_err, it = None, 1
            while it <= 4096:
                dt, e = cd(x, k, it, 0.0)
                if dt > t_ours:
                    break
                cd_err, it = e, it * 2
            _, conv_ours = ours(binary, data, x, k, ["--epochs", str(args.passes)], tmp)
            _, conv_cd = cd(x, k, 2000, 1e-6)
            rows.append((name, t_ours, err, cd_err, conv_ours, conv_cd))
            print(f"{name}: defaults {t_ours:.2f} s error {err:.5f}; NMF(cd) in that time "
                  f"{'-' if cd_err is None else f'{cd_err:.5f}'}; converged: ours "
                  f"{conv_ours:.5f}, NMF(cd) {conv_cd:.5f}", file=sys.stderr)
    print("| member | defaults: s, error | NMF(cd) in that time | "
          f"ours, {args.passes} passes | NMF(cd) converged | ratio |")
    print("|---|---|---|---|---|---|")
    for name, t, e, c, co, cc in rows:
        c = "-" if c is None else f"{c:.5f}"
        print(f"| {name} | {t:.2f}, {e:.5f} | {c} | {co:.5f} | {cc:.5f} | {co / cc:.4f} |")


if __name__ == "__main__":
    main()
