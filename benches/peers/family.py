#!/usr/bin/env python3
"""A family of data sets instead of one generator: streamnmf's defaults against
scikit-learn's NMF(cd), NMF(mu) and MiniBatchNMF, member by member.

Planted members vary one thing at a time around a base (20 000 x 1 000, k = 20,
exponential factors with half their entries zero, half-normal noise at 5 % of the mean,
rows in random order): factor density, noise type and level, k, p, n, and row order
(sorted by dominant component, or slowly drifting component use). Six more planted
members come from other generators (uniform, gamma, one-hot clusters, badly scaled
columns, low signal-to-noise, Dirichlet topics of counts). Real members are data
that ships inside scikit-learn (digits, breast cancer, wine, diabetes' absolute values,
the lines of its two sample photographs: no download) and TF-IDF of the Python standard
library's source files (text that ships with the interpreter).

Target per member: 1.1x the truncated-SVD error bound (planted), or 1.01x the error
NMF(cd) converges to (real data, which is not low-rank).

streamnmf runs as its CLI on Parquet with default flags (`fit INPUT -k K --epochs E`) as a
whole process, twice: with no flag but the rank (the defaults: passes until the
convergence test stops the fit; its passes, median time of three runs and error are
reported), and with `--epochs E`, E growing (1, 2, 3, 5, 8, 13, 20, 30, 50, 80) until the
model's error,
evaluated afterwards from its dictionary with the best codes (untimed), is within the
target, then bisects to the fewest passes that reach it; the reported time is the median
of three runs at that E. Peers run in memory on the same float32 array in their own
processes with tol = 0, doubling max_iter until the target and bisecting back to the
fewest iterations that reach it, then time two more runs at that count: the median of
the three, within a budget per member.

Beside each member it reports the reader floor: the whole-process time of streamnmf's
reader alone over the file (no fit), and the first peer's time over it, the most any
whole-process fit of that Parquet file could gain on that peer.

Prints a table, the geometric means of the peers' time / streamnmf's, and writes JSON.
Usage: family.py [--members NAME ...] [--quick] [--peers NMF(cd),...|none] [--json out.json]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare import one_blas_thread, svd_bound  # noqa: E402

BASE = dict(n=20_000, p=1_000, k=20, density=0.5, noise="halfnormal", level=0.05, order="iid")


def planted_members():
    out = {"base": {}}
    out["density-10"] = dict(density=0.1)
    out["density-100"] = dict(density=1.0)
    out["gauss-0.1"] = dict(noise="gaussian", level=0.001)
    out["gauss-20"] = dict(noise="gaussian", level=0.2)
    out["poisson"] = dict(noise="poisson", level=5.0)
    out["k5"] = dict(k=5)
    out["k64"] = dict(k=64)
    out["p50"] = dict(p=50, k=10)
    out["p5000"] = dict(p=5_000, n=10_000)
    out["n5k"] = dict(n=5_000)
    out["n200k"] = dict(n=200_000, p=200, k=16)
    out["sorted"] = dict(order="sorted")
    out["drift"] = dict(order="drift")
    return {name: {**BASE, **v, "kind": "planted"} for name, v in out.items()}


# Planted data from other generators than the family's own (exponential factors, half
# of them zero): what a user's or a reviewer's script is likely to make. Uniform factors
# (`rng.random`) are the hard case: every atom shares a large common part, the problem is
# ill-conditioned, and NMF(cd) needs hundreds of iterations to reach 1.1x the bound.
OTHER = {
    "uniform": dict(n=20_000, p=500, k=10, generator="uniform"),
    "gamma": dict(n=20_000, p=1_000, k=20, generator="gamma"),
    "clusters": dict(n=20_000, p=800, k=15, generator="clusters"),
    "scaled": dict(n=20_000, p=600, k=12, generator="scaled"),
    "low-snr": dict(n=20_000, p=500, k=10, generator="low-snr"),
    "topics": dict(n=20_000, p=1_000, k=20, generator="topics"),
}
OTHER = {name: {**BASE, **v, "kind": "planted"} for name, v in OTHER.items()}


def generate_other(m, rng):
    """Members of OTHER: the planted matrix of another generator (float32)."""
    n, p, k, g = m["n"], m["p"], m["k"], m["generator"]
    if g == "uniform":  # W, H ~ U(0, 1), Gaussian noise at 1 % of the mean, clipped
        x = rng.random((n, k)) @ rng.random((k, p))
        x = np.maximum(x + rng.normal(0, 0.01 * x.mean(), x.shape), 0)
    elif g == "gamma":  # very skewed factors, half-normal noise at 5 %
        x = rng.gamma(0.2, 1, (n, k)) @ rng.gamma(0.2, 1, (k, p))
        x = x + np.abs(rng.normal(0, 0.05 * x.mean(), x.shape))
    elif g == "clusters":  # one component a row (clustering), half-normal noise at 10 %
        w = np.zeros((n, k))
        w[np.arange(n), rng.integers(0, k, n)] = rng.exponential(1, n) + 0.5
        x = w @ rng.exponential(1, (k, p))
        x = x + np.abs(rng.normal(0, 0.1 * x.mean(), x.shape))
    elif g == "scaled":  # columns scaled over three decades, multiplicative noise
        h = rng.random((k, p)) * (rng.random((k, p)) < 0.4)
        x = (rng.lognormal(0, 1, (n, k)) @ h) * 10 ** rng.uniform(0, 3, p)[None, :] * 1e3
        x = x * (1 + 0.05 * np.abs(rng.normal(size=x.shape)))
    elif g == "low-snr":  # Gaussian noise at half the mean, clipped
        x = rng.exponential(1, (n, k)) @ rng.exponential(1, (k, p))
        x = np.maximum(x + rng.normal(0, 0.5 * x.mean(), x.shape), 0)
    else:  # topics: Dirichlet mixtures of peaked atoms, Poisson counts
        w = rng.dirichlet(np.full(k, 0.1), n) * rng.lognormal(3, 0.5, (n, 1))
        x = rng.poisson(w @ rng.dirichlet(np.full(p, 0.05), k) * 50).astype(np.float64)
    return x.astype(np.float32)


REAL = {
    "digits": dict(kind="real", loader="load_digits", k=16),
    "breast-cancer": dict(kind="real", loader="load_breast_cancer", k=6),
    "wine": dict(kind="real", loader="load_wine", k=4),
    "diabetes-abs": dict(kind="real", loader="load_diabetes", k=4),
    # Wide rows, few of them (like a face set): every line of scikit-learn's two sample
    # photographs (427 x 640, RGB) as a row of 1920 values in [0, 1].
    "sample-images": dict(kind="real", loader="sample_images", k=20),
    # Text: TF-IDF of the Python standard library's own source files (one document per
    # module file, words of two letters or more, the 3000 most frequent in 5 or more
    # files and at most half of them), as shipped with the interpreter that runs this.
    "stdlib-tfidf": dict(kind="real", loader="stdlib_tfidf", k=10),
}

QUICK = ["base", "density-10", "gauss-20", "poisson", "k5", "k64", "sorted", "drift", "digits",
         "breast-cancer"]


def generate(m, rng):
    """The planted matrix of member m (float32)."""
    if "generator" in m:
        return generate_other(m, rng)
    n, p, k, d = m["n"], m["p"], m["k"], m["density"]
    if m["order"] == "drift":
        # Component r is active with a probability that rises and falls along the rows.
        phase = np.arange(n)[:, None] / n + np.arange(k)[None, :] / k
        prob = d * (1 + np.sin(2 * np.pi * phase))
        mask = rng.random((n, k)) < np.clip(prob, 0, 1)
    else:
        mask = rng.random((n, k)) < d
    w = rng.exponential(1.0, (n, k)) * mask
    empty = w.sum(1) == 0
    w[empty, rng.integers(0, k, empty.sum())] = 1.0
    h = rng.exponential(1.0, (k, p)) * (rng.random((k, p)) < max(d, 0.2))
    h[h.sum(1) == 0, 0] = 1.0
    if m["order"] == "sorted":
        w = w[np.argsort(np.argmax(w, 1), kind="stable")]
    x = w @ h
    mean = x.mean()
    if m["noise"] == "gaussian":
        x = np.maximum(x + rng.normal(0, m["level"] * mean, x.shape), 0)
    elif m["noise"] == "halfnormal":
        x = x + np.abs(rng.normal(0, m["level"] * mean, x.shape))
    else:
        x = rng.poisson(x * (m["level"] / mean)).astype(np.float64)
    return x.astype(np.float32)


def real(m):
    import sklearn.datasets as ds
    if m["loader"] == "sample_images":
        images = ds.load_sample_images().images
        x = np.concatenate([im.reshape(im.shape[0], -1) for im in images]) / 255.0
        return x.astype(np.float32)
    if m["loader"] == "stdlib_tfidf":
        import glob
        import sysconfig
        from sklearn.feature_extraction.text import TfidfVectorizer
        lib = sysconfig.get_paths()["stdlib"]
        files = sorted(glob.glob(os.path.join(lib, "*.py")) + glob.glob(os.path.join(lib, "*", "*.py")))
        docs = []
        for f in files:
            with open(f, encoding="utf-8", errors="ignore") as fh:
                docs.append(fh.read())
        tfidf = TfidfVectorizer(max_features=3000, min_df=5, max_df=0.5,
                                token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
        return tfidf.fit_transform(docs).toarray().astype(np.float32)
    x = getattr(ds, m["loader"])().data
    return np.abs(x).astype(np.float32)


def rel_error(x64, w, h):
    r = x64 - w.astype(np.float64) @ h.astype(np.float64)
    return float(np.sqrt((r * r).sum() / (x64 * x64).sum()))


def best_codes_error(x, h):
    """The error of dictionary h with the best non-negative codes (cd to convergence)."""
    from sklearn.decomposition import non_negative_factorization
    w, _, _ = non_negative_factorization(x, H=h.astype(np.float32), n_components=h.shape[0],
                                         init="custom", update_H=False, solver="cd",
                                         max_iter=1000, tol=1e-6)
    return rel_error(x.astype(np.float64), w, h)


# ---------------------------------------------------------------------------- peers
def worker(args):
    import warnings
    from sklearn.decomposition import NMF, MiniBatchNMF
    warnings.filterwarnings("ignore")
    x = np.load(args.data + ".npy")
    x64 = x.astype(np.float64)
    k, method = args.k, args.method
    out = {"method": method, "seconds": None}

    def build(it, tol):
        if method == "MiniBatchNMF":
            return MiniBatchNMF(k, batch_size=1024, max_iter=it, tol=tol, max_no_improvement=None,
                                random_state=0)
        return NMF(k, solver="mu" if method == "NMF(mu)" else "cd", max_iter=it, tol=tol,
                   random_state=0)

    if args.converge:
        m = build(2000, 1e-6)
        w = m.fit_transform(x)
        out["error"] = rel_error(x64, w, m.components_)
        print(json.dumps(out))
        return
    def run(it):
        t = time.perf_counter()
        m = build(it, 0.0)
        w = m.fit_transform(x)
        return time.perf_counter() - t, rel_error(x64, w, m.components_)

    # Doubling to the first max_iter that reaches the target, then bisection between it
    # and the last that did not, so the doubling's overshoot is not charged to the peer.
    spent, it, low = 0.0, 1, 0
    while spent < args.budget and it <= 4096:
        dt, err = run(it)
        spent += dt
        out["error"], out["iterations"] = err, it
        if err <= args.target:
            out["seconds"] = dt
            break
        low, it = it, it * 2
    high = it
    while out["seconds"] is not None and high - low > 1 and spent < 2 * args.budget:
        mid = (low + high) // 2
        dt, err = run(mid)
        spent += dt
        if err <= args.target:
            high, out["seconds"], out["error"], out["iterations"] = mid, dt, err, mid
        else:
            low = mid
    if out["seconds"] is not None:
        # The median of three runs at the iteration count found, like ours.
        out["seconds"] = statistics.median([out["seconds"]] + [run(out["iterations"])[0] for _ in range(2)])
    print(json.dumps(out))


def peer(data, k, method, target, budget, converge=False):
    cmd = [sys.executable, __file__, "--worker", "--data", data, "--k", str(k), "--method", method,
           "--target", str(target), "--budget", str(budget)] + (["--converge"] if converge else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"method": method, "seconds": None, "error": None,
                "failed": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- ours
def read_h(path, k, p):
    import pyarrow.parquet as pq
    t = pq.read_table(path)
    h = np.zeros((k, p), np.float32)
    rows = np.asarray(t.column("component"), int)
    if "value" in t.column_names:  # long: component, feature (index or name), value
        feature = t.column("feature").to_pylist()
        if feature and isinstance(feature[0], str):  # f0, f1, ... (Parquet columns) or 0, 1, ...
            feature = [int(f[1:]) if f.startswith("f") else int(f) for f in feature]
        h[rows, np.asarray(feature, int)] = np.asarray(t.column("value"))
    else:  # wide: component, then one column per feature, in order
        h[rows] = np.stack([np.asarray(c) for c in t.columns[1:]], axis=1)
    return h


def cli(binary, data, k, epochs, out_dir):
    h_path = os.path.join(out_dir, "h.parquet")
    cmd = [binary, "fit", data + ".parquet", "-k", str(k), "--epochs", str(epochs), "-q",
           "--out", os.path.join(out_dir, "m.snmf"), "--components-out", h_path]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t, h_path


def ours(binary, data, x, k, target, budget, out_dir):
    def run(epochs):
        wall, h_path = cli(binary, data, k, epochs, out_dir)
        return wall, best_codes_error(x, read_h(h_path, k, x.shape[1]))

    spent, low, hit = 0.0, 0, None
    for epochs in [1, 2, 3, 5, 8, 13, 20, 30, 50, 80]:
        wall, err = run(epochs)
        spent += wall
        if err <= target:
            hit = (epochs, wall, err)
            break
        low = epochs
        if spent > budget:
            break
    if hit is None:
        return {"epochs": None, "seconds": None, "error": err}
    # Bisection down to the fewest passes that reach the target.
    while hit[0] - low > 1:
        mid = (low + hit[0]) // 2
        wall, err = run(mid)
        if err <= target:
            hit = (mid, wall, err)
        else:
            low = mid
    epochs, wall, err = hit
    walls = [wall] + [cli(binary, data, k, epochs, out_dir)[0] for _ in range(2)]
    return {"epochs": epochs, "seconds": statistics.median(walls), "error": err}


def reader_floor(binary_dir, data):
    """The whole-process wall time of streamnmf's reader alone over the member's Parquet
    file (`examples/decode_rate --reader-only`: decode, cast, checks, re-chunk into
    256-row batches, nothing else), median of three: no fit of that file as a whole process
    can take less, so a peer's in-memory time over it bounds the ratio any pass count
    could reach. None when the example is not built."""
    exe = os.path.join(binary_dir, "examples", "decode_rate")
    if not os.path.exists(exe):
        return None
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([exe, data + ".parquet", "256", "--reader-only"], check=True,
                       capture_output=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def defaults(binary, data, x, k, out_dir):
    """The CLI with no flag but the rank: passes until its convergence test stops it.
    Median wall time of three runs, the passes it made, and its error."""
    h_path = os.path.join(out_dir, "h.parquet")
    cmd = [binary, "fit", data + ".parquet", "-k", str(k), "--json",
           "--out", os.path.join(out_dir, "m.snmf"), "--components-out", h_path]
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
    report = json.loads(out.stdout)
    return {"passes": report["passes"], "seconds": statistics.median(walls),
            "error": best_codes_error(x, read_h(h_path, k, x.shape[1]))}


def write_parquet(x, path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(x.shape[1])}), path,
                   row_group_size=65536)


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--data")
    ap.add_argument("--k", type=int)
    ap.add_argument("--method")
    ap.add_argument("--target", type=float)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--converge", action="store_true")
    ap.add_argument("--members", nargs="*")
    ap.add_argument("--quick", action="store_true", help="a representative subset: " + ", ".join(QUICK))
    ap.add_argument("--peers", default="NMF(cd),NMF(mu),MiniBatchNMF",
                    help="comma-separated peers to run ('none': streamnmf only)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    one_blas_thread()
    binary_dir = os.environ.get("STREAMNMF_BIN", "target/release")
    binary = os.path.join(binary_dir, "streamnmf")
    members = {**planted_members(), **OTHER, **REAL}
    names = args.members or (QUICK if args.quick else list(members))
    peers = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    results = []
    print(f"{'member':<14} {'shape':>13} {'k':>3} {'target':>7} | {'epochs':>6} {'ours s':>7} |"
          + "".join(f" {p + ' s':>15}" for p in peers) + " | ratios (peer / ours)"
          + " | defaults: passes, s, error / target | reader floor s"
          + "".join(f", {p} / floor" for p in peers[:1]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            m = members[name]
            rng = np.random.default_rng(12345)
            x = generate(m, rng) if m["kind"] == "planted" else real(m)
            data = os.path.join(tmp, name)
            np.save(data + ".npy", x)
            write_parquet(x, data + ".parquet")
            k = m["k"]
            if m["kind"] == "planted":
                target = 1.1 * svd_bound(x, k)
            else:
                target = 1.01 * peer(data, k, "NMF(cd)", 0, 600, converge=True)["error"]
            us = ours(binary, data, x, k, target, args.budget * 2, tmp)
            auto = defaults(binary, data, x, k, tmp)
            floor = reader_floor(binary_dir, data)
            them = {p: peer(data, k, p, target, args.budget) for p in peers}
            ratios = {p: (them[p]["seconds"] / us["seconds"]
                          if them[p]["seconds"] and us["seconds"] else None) for p in peers}
            row = {"member": name, "shape": list(x.shape), "k": k, "target": target, "ours": us,
                   "peers": them, "ratios": ratios, "defaults": auto, "reader_floor": floor}
            results.append(row)
            shape = f"{x.shape[0]}x{x.shape[1]}"
            print(f"{name:<14} {shape:>13} {k:>3} {target:>7.4f} | {us['epochs'] or '-':>6} "
                  f"{fmt(us['seconds']):>7} |"
                  + "".join(f" {fmt(them[p]['seconds']):>15}" for p in peers) + " | "
                  + " ".join(f"{fmt(ratios[p], 1)}" for p in peers)
                  + f" | {auto['passes']:>3} {fmt(auto['seconds']):>6} "
                  f"{auto['error'] / target:.3f} | {fmt(floor)}"
                  + "".join(f", {fmt(them[p]['seconds'] / floor if them[p]['seconds'] and floor else None, 1)}"
                            for p in peers[:1]), flush=True)
    print()
    for p in peers:
        rs = [r["ratios"][p] for r in results if r["ratios"][p]]
        missed = [r["member"] for r in results if not r["ratios"][p]]
        if rs:
            g = math.exp(sum(math.log(v) for v in rs) / len(rs))
            print(f"{p}: geometric mean of time ratios {g:.2f} over {len(rs)} members "
                  f"(min {min(rs):.2f}); no ratio for: {', '.join(missed) or 'none'}")
    for p in peers[:1]:
        capped = [f"{r['member']} ({r['peers'][p]['seconds'] / r['reader_floor']:.1f}x)" for r in results
                  if r["reader_floor"] and r["peers"][p]["seconds"]
                  and r["peers"][p]["seconds"] / r["reader_floor"] < 5]
        print(f"{p} time over the reader floor below 5x (no whole-process fit of the file can be "
              f"5x faster there): {', '.join(capped) or 'none'}")
    hit = [r for r in results if r["defaults"]["error"] <= r["target"]]
    print(f"defaults (no --epochs): at the target on {len(hit)}/{len(results)} members; "
          f"passes {min(r['defaults']['passes'] for r in results)}.."
          f"{max(r['defaults']['passes'] for r in results)}; worst error / target "
          f"{max(r['defaults']['error'] / r['target'] for r in results):.3f}")
    for p in peers:
        rs = [r["peers"][p]["seconds"] / r["defaults"]["seconds"] for r in hit
              if r["peers"][p]["seconds"]]
        if rs:
            g = math.exp(sum(math.log(v) for v in rs) / len(rs))
            print(f"{p} time / default time where the defaults reach the target: geometric "
                  f"mean {g:.2f} over {len(rs)} members (min {min(rs):.2f})")
    reached1 = [r["member"] for r in results if r["ours"]["epochs"] == 1]
    reached3 = [r["member"] for r in results if r["ours"]["epochs"] and r["ours"]["epochs"] <= 3]
    print(f"streamnmf at the target in 1 pass: {len(reached1)}/{len(results)}; "
          f"in <= 3 passes: {len(reached3)}/{len(results)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
