#!/usr/bin/env python3
"""scikit-learn vs streamnmf on the same data, in the same run.

For each case the data is generated once (seeded) and written as .npz (for the Python
peers) and Parquet (for streamnmf). Each scikit-learn method runs in its own worker
process, so its peak RSS is its own. Reported per method:

* final: the method with its default settings (what a user gets): seconds, error;
* to-target: seconds to reach 1.1x the truncated-SVD error bound (Frobenius cases);
* streamnmf's seconds to reach each peer's final loss, and the ratio.

streamnmf runs through its in-memory API (examples/trajectory.rs: per-pass trajectory,
evaluation untimed) and through its CLI on Parquet (`fit --staleness 0`, which
follows the in-memory trajectory bit for bit), timed as a whole process.

The Python side runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset; the BLAS that ran is
recorded from threadpoolctl.
"""
import argparse
import json
import os
import platform
import subprocess
import statistics
import sys
import tempfile
import time

import numpy as np

CASES = {
    "dense-20k": dict(kind="dense", n=20_000, p=1_000, k=20, batch=1024),
    "dense-200k": dict(kind="dense", n=200_000, p=500, k=16, batch=2048),
    # ours: streamnmf's batch where it differs from the peers' (its default for dense KL).
    "kl-poisson": dict(kind="poisson", n=20_000, p=500, k=10, batch=1024, ours=256),
    # ours=None: streamnmf's default batch for the data (sparse_batch_rows: 12480 rows here).
    "sparse-100k": dict(kind="sparse", n=100_000, p=20_000, k=20, batch=4096, ours=None),
    "digits": dict(kind="digits", k=16, batch=256),
}
BUDGET = float(os.environ.get("PEERS_BUDGET_SECONDS", "120"))


# ---------------------------------------------------------------------------- data
def planted(n, p, k, rng, density=0.3):
    w = np.where(rng.random((n, k)) < density, 0.1 + rng.random((n, k)), 0.0)
    w[w.sum(1) == 0, 0] = 1.0
    h = np.where(rng.random((k, p)) < density, 0.1 + rng.random((k, p)), 0.0)
    anchors = max(p // (4 * k), 1)
    for j in range(k):
        cols = [(j * anchors + a) % p for a in range(anchors)]
        h[:, cols] = 0.0
        h[j, cols] = 1.0 + rng.random(len(cols))
    return w, h


def make(case, out):
    rng = np.random.default_rng(12345)
    c = CASES[case]
    if c["kind"] == "digits":
        from sklearn.datasets import load_digits
        x = load_digits().data.astype(np.float32)
    elif c["kind"] == "dense":
        w, h = planted(c["n"], c["p"], c["k"], rng)
        x = w @ h
        x = np.maximum(x + rng.normal(0, 0.01 * x.mean(), x.shape), 0).astype(np.float32)
    elif c["kind"] == "poisson":
        w, h = planted(c["n"], c["p"], c["k"], rng)
        mean = w @ h
        x = rng.poisson(mean * (20.0 / mean.mean())).astype(np.float32)
    else:
        # Recommender-like planted counts: each item profile (atom) covers 75 random
        # columns, each user (row) mixes one or two profiles, and the entries are Poisson
        # counts of W H on its support: about 0.5% dense and genuinely low-rank.
        import scipy.sparse as sp
        n, p, k = c["n"], c["p"], c["k"]
        per_atom = int(0.005 * p * 0.75)
        h = np.zeros((k, p))
        for j in range(k):
            h[j, rng.choice(p, per_atom, replace=False)] = 0.5 + rng.random(per_atom)
        w = np.zeros((n, k))
        rows = np.arange(n)
        w[rows, rng.integers(0, k, n)] = 0.5 + rng.random(n)
        two = rng.random(n) < 0.5
        w[rows[two], rng.integers(0, k, two.sum())] += 0.5 + rng.random(two.sum())
        x = (sp.csr_matrix(w) @ sp.csr_matrix(h)).tocsr()
        x.data = rng.poisson(3.0 * x.data / x.data.mean()).astype(np.float64)
        x.eliminate_zeros()
        x = x.astype(np.float32)
        x.sort_indices()
    import pyarrow as pa
    import pyarrow.parquet as pq
    if hasattr(x, "tocoo"):
        coo = x.tocoo()
        np.savez(out + ".npz", data=x.data, indices=x.indices, indptr=x.indptr, shape=x.shape)
        pq.write_table(pa.table({"row": coo.row.astype(np.int64), "col": coo.col.astype(np.int64),
                                 "value": coo.data}), out + ".parquet", row_group_size=1 << 20)
    else:
        np.savez(out + ".npz", x=x)
        pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(x.shape[1])}),
                       out + ".parquet", row_group_size=65536)
    return x


def load(path):
    d = np.load(path + ".npz")
    if "x" in d:
        return d["x"]
    import scipy.sparse as sp
    return sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=tuple(d["shape"]))


def svd_bound(x, k):
    if hasattr(x, "tocoo"):
        from scipy.sparse.linalg import svds
        s = svds(x.astype(np.float64), k=k, return_singular_vectors=False)
        total = float((x.data.astype(np.float64) ** 2).sum())
        return float(np.sqrt(max(total - (s ** 2).sum(), 0) / total))
    x64 = x.astype(np.float64)
    ev = np.linalg.eigvalsh(x64.T @ x64)[::-1]
    total = float((x64 ** 2).sum())
    return float(np.sqrt(max(total - ev[:k].sum(), 0) / total))


# ---------------------------------------------------------------------------- peers
def errors(x, w, h, beta):
    """(relative Frobenius error, divergence) of W H for X."""
    from sklearn.decomposition._nmf import _beta_divergence
    div = float(_beta_divergence(x, w, h, beta))
    total = float((x.data.astype(np.float64) ** 2).sum()) if hasattr(x, "tocoo") \
        else float((x.astype(np.float64) ** 2).sum())
    fro = float(_beta_divergence(x, w, h, 2)) if beta != 2 else div
    return float(np.sqrt(2 * fro / total)), div


def worker(args):
    from sklearn.decomposition import NMF, MiniBatchNMF
    from threadpoolctl import threadpool_info
    c = CASES[args.case]
    x = load(args.data)
    beta = 1 if c["kind"] == "poisson" else 2
    loss = "kullback-leibler" if beta == 1 else "frobenius"
    k, method, target = c["k"], args.method, args.target
    out = {"method": method}

    def build(max_iter, tol):
        if method == "streamnmf-py":
            # The Python package (`pip install ./`): in process, on the same array.
            from streamnmf import StreamNMF
            return StreamNMF(k, loss=loss, batch_size=c.get("ours", c["batch"]), max_iter=max_iter, tol=tol,
                             random_state=0)
        if method.startswith("MiniBatchNMF"):
            b = int(method.split("b=")[1].rstrip(")"))
            extra = {} if tol else {"max_no_improvement": None}
            return MiniBatchNMF(k, batch_size=b, beta_loss=loss, max_iter=max_iter, tol=tol,
                                random_state=0, **extra)
        solver = "mu" if "mu" in method else "cd"
        return NMF(k, solver=solver, beta_loss=loss, max_iter=max_iter, tol=tol, random_state=0)

    import warnings
    warnings.filterwarnings("ignore")
    # Final, with default settings.
    t = time.perf_counter()
    m = build(200, 1e-4)
    w = m.fit_transform(x)
    out["final_seconds"] = time.perf_counter() - t
    out["final_rel_error"], out["final_loss"] = errors(x, w, m.components_, beta)
    # Time to target (Frobenius): doubling max_iter, tol 0, within the budget.
    if target:
        spent, it = 0.0, 1
        out["target_seconds"] = None
        while spent < BUDGET and it <= 512:
            t = time.perf_counter()
            m = build(it, 0.0)
            w = m.fit_transform(x)
            dt = time.perf_counter() - t
            spent += dt
            rel, _ = errors(x, w, m.components_, beta)
            out["best_rel_error"] = rel
            if rel <= target:
                out["target_seconds"] = dt
                break
            it *= 2
    # VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec and would report the parent's.
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    out["peak_rss_bytes"] = hwm * 1024
    out["blas"] = sorted({f"{i.get('internal_api')}:{i.get('architecture')}:{i.get('num_threads')}"
                          for i in threadpool_info()})
    print(json.dumps(out))


PEERS = {
    "dense": ["streamnmf-py", "MiniBatchNMF(b=1024)", "MiniBatchNMF(b=4096)", "NMF(cd)", "NMF(mu)"],
    "digits": ["streamnmf-py", "MiniBatchNMF(b=1024)", "NMF(cd)", "NMF(mu)"],
    "poisson": ["streamnmf-py", "MiniBatchNMF(b=1024)", "NMF(mu)"],
    "sparse": ["streamnmf-py", "MiniBatchNMF(b=4096)", "NMF(cd)"],
}


def run_peer(case, data, method, target):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, __file__, "--worker", "--case", case, "--data", data, "--method", method,
           "--target", str(target or 0)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"method": method, "error": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def one_blas_thread():
    """Runs this process's own BLAS (SVD bounds, scoring) on one thread from now on.

    A threaded OpenBLAS keeps its idle workers spinning for about 0.1 s after each call,
    and in the parent process they took a core from the streamnmf process timed next:
    p = 50 (20 000 x 50, one pass) took 49 ms right after a numpy GEMM in the parent and
    28 ms after a 0.5 s rest or with the parent on one BLAS thread (medians of 10,
    2026-12-07). The peers run in worker processes of their own, with their usual
    threads; only the parent's untimed work goes single-threaded.
    """
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def batch_flag(c):
    """streamnmf's --batch-size for a case: its own (`ours`; None: the default) or the peers'."""
    b = c.get("ours", c["batch"])
    return [] if b is None else ["--batch-size", str(b)]


def run_ours(case, data, passes):
    c = CASES[case]
    b = os.environ.get("STREAMNMF_BIN", "target/release")
    cmd = [f"{b}/examples/trajectory", data + ".parquet", "--rank", str(c["k"]), "--passes", str(passes)]
    cmd += batch_flag(c)
    if c["kind"] == "poisson":
        cmd += ["--loss", "kl"]
    if c["kind"] == "sparse":
        cmd += ["--triplets", "row,col,value", "--width", str(c["p"])]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    return [l for l in lines if "pass" in l], lines[-1]["peak_rss_bytes"]


def run_cli(case, data, epochs, staleness="0", components=None, runs=5):
    """Median wall time of `runs` whole CLI processes (and the last one's peak RSS):
    `--staleness 0` by default, which follows the in-memory trajectory bit for bit;
    `staleness=None` for the CLI's own default, H written to `components` when given."""
    c = CASES[case]
    b = os.environ.get("STREAMNMF_BIN", "target/release")
    cmd = [f"{b}/streamnmf", "fit", data + ".parquet", "-k", str(c["k"]), "--epochs", str(epochs),
           "--json", "-q", "--out", data + ".snmf"] + batch_flag(c)
    if staleness is not None:
        cmd += ["--staleness", staleness]
    if components:
        cmd += ["--components-out", components]
    if c["kind"] == "poisson":
        cmd += ["--loss", "kl"]
    if c["kind"] == "sparse":
        cmd += ["--layout", "triplets:row,col,value", "--width", str(c["p"])]
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls), json.loads(r.stdout)["peak_rss_bytes"]


def defaults_error(x, h):
    """Relative Frobenius error of dictionary `h` with the best non-negative codes
    (scikit-learn's cd with H fixed, untimed)."""
    from sklearn.decomposition import non_negative_factorization
    w, _, _ = non_negative_factorization(x, H=h.astype(np.float32), n_components=h.shape[0],
                                         init="custom", update_H=False, solver="cd",
                                         max_iter=500, tol=1e-6)
    return errors(x, w.astype(np.float32), h.astype(np.float32), 2)[0]


def reader_floor(case, data):
    """Median wall time of three whole processes that run streamnmf's reader alone over
    the case's Parquet file (`examples/decode_rate --reader-only`): what no whole-process
    fit of that file can undercut. None when the example is not built."""
    c = CASES[case]
    exe = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "examples", "decode_rate")
    if not os.path.exists(exe):
        return None
    cmd = [exe, data + ".parquet", "4096"]
    if c["kind"] == "sparse":
        cmd += ["row,col,value", str(c["p"])]
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(cmd + ["--reader-only"], capture_output=True, check=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def first_time(traj, key, limit):
    for t in traj:
        if t[key] <= limit:
            return t["seconds"], t["pass"]
    return None, None


def fmt(s):
    return "-" if s is None else (f"{s:.2f}" if s < 100 else f"{s:.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", default=list(CASES), help=", ".join(CASES))
    ap.add_argument("--passes", type=int, default=20, help="streamnmf passes")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.target = args.target or None
        return worker(args)
    one_blas_thread()
    tmp = tempfile.mkdtemp(prefix="streamnmf-peers-")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"data in {tmp}\n")
    for case in args.cases:
        c = CASES[case]
        data = os.path.join(tmp, case)
        t = time.perf_counter()
        x = make(case, data)
        fro = c["kind"] != "poisson"
        bound = svd_bound(x, c["k"])
        target = 1.1 * bound if fro else None
        print(f"## {case}: {x.shape[0]} x {x.shape[1]}, rank {c['k']}, "
              f"{'nnz ' + str(x.nnz) if hasattr(x, 'nnz') else 'dense'}, loss {'fro' if fro else 'kl'}; "
              f"SVD bound {bound:.5f} (made in {time.perf_counter() - t:.0f} s)")
        sys.stdout.flush()
        traj, rss = run_ours(case, data, args.passes)
        peers = [run_peer(case, data, m, target) for m in PEERS[c["kind"]]]
        key = "rel_error" if fro else "loss"
        ours_target, ours_target_pass = first_time(traj, "rel_error", target) if fro else (None, None)
        rows = []
        for pr in peers:
            if "error" in pr:
                rows.append(f"| {pr['method']} | failed: {pr['error']} |")
                continue
            peer_final = pr["final_rel_error"] if fro else pr["final_loss"]
            ours_t, _ = first_time(traj, key, peer_final)
            speed_final = pr["final_seconds"] / ours_t if ours_t else None
            speed_target = (pr["target_seconds"] / ours_target
                            if fro and pr.get("target_seconds") and ours_target else None)
            rows.append(
                f"| {pr['method']} | {fmt(pr['final_seconds'])} | {pr['final_rel_error']:.5f} "
                f"({pr['final_rel_error'] / bound:.2f}x) | {pr['final_loss']:.4e} | "
                f"{fmt(pr.get('target_seconds')) if fro else 'n/a'} | {pr['peak_rss_bytes'] / 1e6:.0f} | "
                f"{fmt(ours_t)} | {('%.1fx' % speed_final) if speed_final else '-'} | "
                f"{('%.1fx' % speed_target) if speed_target else '-'} |")
        last = traj[-1]
        cli_epochs = ours_target_pass or len(traj)
        cli_wall, cli_rss = run_cli(case, data, cli_epochs)
        # What a user gets: the CLI's own staleness (not the bit-for-bit replay of the
        # trajectory), at the same passes, with its H scored afterwards (untimed).
        h_path = data + ".h.parquet"
        dflt_wall, _ = run_cli(case, data, cli_epochs, staleness=None, components=h_path)
        dflt_err = None
        if fro:
            from family import read_h  # noqa: E402 (family imports this module)
            dflt_err = defaults_error(x, read_h(h_path, c["k"], x.shape[1]))
        print("\n| method | final s | final rel. error (x bound) | final loss | s to 1.1x bound | "
              "peak RSS MB | streamnmf s to this final loss | speedup to final | speedup to 1.1x bound |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(r)
        print(f"| **streamnmf (API)** | {fmt(last['seconds'])} ({last['pass']} passes) | "
              f"{last['rel_error']:.5f} ({last['rel_error'] / bound:.2f}x) | {last['loss']:.4e} | "
              f"{fmt(ours_target)}{f' ({ours_target_pass} passes)' if ours_target_pass else ''} | "
              f"{rss / 1e6:.0f} | | | |")
        print(f"| **streamnmf (CLI, Parquet)** | {fmt(cli_wall)} ({cli_epochs} passes, whole process, "
              f"--staleness 0, median of 5) | | | | {cli_rss / 1e6:.0f} | | | |")
        err = f"{dflt_err:.5f} ({dflt_err / bound:.2f}x)" if dflt_err is not None else "n/a"
        print(f"| **streamnmf (CLI, Parquet, default staleness, H written)** | {fmt(dflt_wall)} "
              f"({cli_epochs} passes, whole process, median of 5) | {err} | | | | | | |")
        floor = reader_floor(case, data)
        if floor:
            print(f"| streamnmf's reader alone (whole process, no fit: the floor) | {fmt(floor)} | | | | | | | |")
        blas = sorted({b for pr in peers for b in pr.get("blas", [])})
        print(f"\nPython BLAS: {', '.join(blas)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
