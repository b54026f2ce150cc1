#!/usr/bin/env python3
"""Recommender peers side by side on the same planted data: streamnmf's CLI (whole
processes on Parquet) against scikit-surprise (SVD, NMF) on explicit ratings and against
`implicit`'s ALS on implicit feedback.

Data (seeded): a non-negative rank-k preference matrix, items drawn with a Zipf
popularity skew and kept with a probability growing with the user's preference
(missing not at random); 20 % of each user's entries held out.

* explicit: 1-5 star ratings (rounded to whole stars); held-out RMSE and MAE, seconds
  per epoch, whole fit seconds.
* implicit: interaction counts; P@10, NDCG@10, MAP@10 of held-out interactions with the
  training interactions excluded (implicit's `ranking_metrics_at_k`), seconds per epoch.
  streamnmf's recommendations are also scored by `ranking_metrics_at_k` itself (through a
  wrapper model), which must agree with `streamnmf evaluate` to rounding.

Usage: benches/peers/recommender.sh [--users N] [--items P] [--rank K]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

BIN = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "streamnmf")


def planted(users, items, k, per_user, rng, counts):
    w = rng.random((users, k)) ** 2
    h = rng.random((k, items)) ** 2
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    pop = pop[rng.permutation(items)]
    pop /= pop.sum()
    r = w @ h
    r_max = np.quantile(r, 0.999)
    rows, cols, vals = [], [], []
    for u in range(users):
        want = rng.poisson(per_user)
        cand = rng.choice(items, size=min(items, 6 * want + 10), replace=False, p=pop)
        keep = cand[rng.random(len(cand)) < np.minimum(r[u, cand] / r_max, 1.0)][:want]
        keep.sort()
        if counts:
            v = 1.0 + rng.poisson(3.0 * r[u, keep] / r.mean())
        else:
            v = np.clip(np.rint(1.0 + 4.0 * r[u, keep] / r_max + rng.normal(0, 0.5, len(keep))), 1, 5)
        rows.append(np.full(len(keep), u))
        cols.append(keep)
        vals.append(v)
    rows, cols, vals = map(np.concatenate, (rows, cols, vals))
    test = rng.random(len(rows)) < 0.2
    return (rows[~test], cols[~test], vals[~test]), (rows[test], cols[test], vals[test])


def write(path, t):
    u, i, v = t
    pq.write_table(pa.table({"user": u.astype(np.int64), "item": i.astype(np.int64),
                             "rating": v.astype(np.float64)}), path)


def cli(*args):
    t = time.perf_counter()
    out = subprocess.run([BIN, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def explicit(args, d, rng):
    train, test = planted(args.users, args.items, args.rank, args.per_user, rng, counts=False)
    write(f"{d}/train.parquet", train)
    write(f"{d}/test.parquet", test)
    lay = ["--layout", "triplets:user,item,rating"]
    rows, curve = [], []
    for epochs in sorted({1, 2, 3, 5, 8, args.epochs}):
        secs, out = cli("fit", f"{d}/train.parquet", *lay, "-k", str(args.rank), "--unobserved",
                        "missing", "--epochs", str(epochs), "--out", f"{d}/m.snmf", "--json", "-q")
        fit = json.loads(out)
        _, ev = cli("evaluate", "--model", f"{d}/m.snmf", f"{d}/train.parquet", *lay,
                    "--test", f"{d}/test.parquet", "--json")
        ev = json.loads(ev)
        curve.append((epochs, secs, ev["rmse"]))
    rows.append(("streamnmf (observed-only, CLI)", ev["rmse"], ev["mae"], secs / fit["passes"], secs))
    # The defaults: no --epochs, passes until the convergence test stops the fit.
    secs, out = cli("fit", f"{d}/train.parquet", *lay, "-k", str(args.rank), "--unobserved",
                    "missing", "--out", f"{d}/m.snmf", "--json", "-q")
    auto = json.loads(out)
    _, ev = cli("evaluate", "--model", f"{d}/m.snmf", f"{d}/train.parquet", *lay,
                "--test", f"{d}/test.parquet", "--json")
    ev = json.loads(ev)
    rows.append((f"streamnmf defaults ({auto['passes']} passes)", ev["rmse"], ev["mae"],
                 secs / auto["passes"], secs))

    from surprise import NMF, SVD, Dataset, Reader, accuracy
    import pandas as pd
    reader = Reader(rating_scale=(1, 5))
    df = pd.DataFrame({"u": train[0], "i": train[1], "r": train[2]})
    trainset = Dataset.load_from_df(df, reader).build_full_trainset()
    testset = list(zip(test[0], test[1], test[2]))
    for name, algo, epochs in [
        ("surprise SVD (biased)", SVD(n_factors=args.rank, n_epochs=20, random_state=0), 20),
        ("surprise NMF", NMF(n_factors=args.rank, n_epochs=50, random_state=0), 50),
    ]:
        t = time.perf_counter()
        algo.fit(trainset)
        secs = time.perf_counter() - t
        pred = algo.test(testset)
        rows.append((name, accuracy.rmse(pred, verbose=False), accuracy.mae(pred, verbose=False),
                     secs / epochs, secs))
    print(f"\nexplicit ratings: {args.users} users x {args.items} items, rank {args.rank}, "
          f"{len(train[0])} training / {len(test[0])} held-out ratings")
    print(f"{'method':34} {'RMSE':>7} {'MAE':>7} {'s/epoch':>9} {'fit s':>7}")
    for r in rows:
        print(f"{r[0]:34} {r[1]:7.4f} {r[2]:7.4f} {r[3]:9.4f} {r[4]:7.2f}")
    best = min(r[1] for r in rows[2:])
    print("streamnmf by epochs (whole process, seconds, RMSE): "
          + ", ".join(f"{e}: {s:.2f} s {r:.4f}" for e, s, r in curve))
    print(f"streamnmf RMSE / best surprise RMSE: {rows[0][1] / best:.3f}; "
          f"s/epoch ratio (surprise SVD / streamnmf): {rows[2][3] / rows[0][3]:.2f}x")
    for name, rmse, _, _, secs in rows[2:]:
        reach = next(((e, s) for e, s, r in curve if r <= rmse), None)
        if reach:
            print(f"streamnmf reaches {name}'s RMSE {rmse:.4f} after {reach[0]} epochs, "
                  f"{reach[1]:.2f} s whole process: {secs / reach[1]:.1f}x faster than its fit")


class Wrapped:
    """Hands streamnmf's recommendations to implicit's ranking_metrics_at_k."""

    def __init__(self, recs):
        self.recs = recs

    def recommend(self, userid, user_items, N=10, **kw):
        users = np.atleast_1d(userid)
        ids = np.full((len(users), N), -1, dtype=np.int32)
        for r, u in enumerate(users):
            got = self.recs.get(int(u), [])[:N]
            ids[r, :len(got)] = got
        scores = np.zeros(ids.shape, dtype=np.float32)
        if np.ndim(userid) == 0:
            return ids[0], scores[0]
        return ids, scores


def implicit_case(args, d, rng):
    train, test = planted(args.users, args.items, args.rank, args.per_user, rng, counts=True)
    write(f"{d}/itrain.parquet", train)
    write(f"{d}/itest.parquet", test)
    lay = ["--layout", "triplets:user,item,rating"]
    n, p = args.users, args.items
    X = sp.csr_matrix((train[2], (train[0], train[1])), shape=(n, p))
    T = sp.csr_matrix((test[2], (test[0], test[1])), shape=(n, p))
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    rows = []
    secs, out = cli("fit", f"{d}/itrain.parquet", *lay, "-k", str(args.rank), "--unobserved",
                    "implicit", "--confidence-alpha", "1", "--epochs", str(args.epochs),
                    "--width", str(p), "--out", f"{d}/i.snmf", "--json", "-q")
    fit = json.loads(out)
    _, ev = cli("evaluate", "--model", f"{d}/i.snmf", f"{d}/itrain.parquet", *lay, "--width", str(p),
                "--test", f"{d}/itest.parquet", "--json")
    ev = json.loads(ev)
    rows.append(("streamnmf (implicit, CLI)", ev["precision"], ev["ndcg"], ev["map"],
                 secs / fit["passes"], secs))
    cli("recommend", "--model", f"{d}/i.snmf", f"{d}/itrain.parquet", *lay, "--width", str(p),
        "--out", f"{d}/recs.parquet", "-n", "10")
    t = pq.read_table(f"{d}/recs.parquet").to_pydict()
    recs = {}
    for u, i in zip(t["user"], t["item"]):
        recs.setdefault(u, []).append(i)
    check = ranking_metrics_at_k(Wrapped(recs), X, T, K=10, show_progress=False)
    for alpha in (1.0, 40.0):
        m = AlternatingLeastSquares(factors=args.rank, regularization=0.01, alpha=alpha,
                                    iterations=15, random_state=0)
        t0 = time.perf_counter()
        m.fit(X, show_progress=False)
        secs = time.perf_counter() - t0
        r = ranking_metrics_at_k(m, X, T, K=10, show_progress=False)
        rows.append((f"implicit ALS (alpha {alpha:g})", r["precision"], r["ndcg"], r["map"], secs / 15, secs))
    print(f"\nimplicit feedback: {n} users x {p} items, rank {args.rank}, "
          f"{len(train[0])} training / {len(test[0])} held-out interactions")
    print(f"{'method':34} {'P@10':>7} {'NDCG@10':>8} {'MAP@10':>7} {'s/epoch':>9} {'fit s':>7}")
    for r in rows:
        print(f"{r[0]:34} {r[1]:7.4f} {r[2]:8.4f} {r[3]:7.4f} {r[4]:9.4f} {r[5]:7.2f}")
    print(f"implicit's ranking_metrics_at_k on streamnmf's recommendations: P@10 "
          f"{check['precision']:.6f}, NDCG@10 {check['ndcg']:.6f}, MAP@10 {check['map']:.6f} "
          f"(streamnmf evaluate: {ev['precision']:.6f}, {ev['ndcg']:.6f}, {ev['map']:.6f})")
    for key, ours in (("precision", ev["precision"]), ("ndcg", ev["ndcg"]), ("map", ev["map"])):
        if abs(check[key] - ours) > 1e-6:
            sys.exit(f"metric mismatch on {key}: implicit {check[key]} vs streamnmf {ours}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=6000)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--per-user", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--only", choices=["explicit", "implicit"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if args.only != "implicit":
            explicit(args, d, np.random.default_rng(1))
        if args.only != "explicit":
            implicit_case(args, d, np.random.default_rng(2))


if __name__ == "__main__":
    main()
