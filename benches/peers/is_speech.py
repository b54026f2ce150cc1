"""Itakura-Saito on a speech magnitude spectrogram, side by side: scikit-learn's
MiniBatchNMF(IS) and NMF(mu, IS) in memory against streamnmf in process
(`examples/trajectory`, fit time per pass) and as a whole CLI process, to each peer's
final divergence. The spectrogram is `examples/separate`'s training speech (`streamnmf
stft`), plus 1e-6 of its mean so IS is defined everywhere; both sides read the same
values. Run through `benches/peers/is_speech.sh [--code-max-iter N] [--batch-size B]`."""
import argparse, json, os, subprocess, tempfile, time, warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.decomposition import NMF, MiniBatchNMF
from sklearn.decomposition._nmf import _beta_divergence

warnings.filterwarnings("ignore")
BIN = os.environ.get("STREAMNMF_BIN", "target/release")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rank", type=int, default=20)
    # The CLI's own default for dense data under a loss other than Frobenius
    # (`DENSE_BETA_BATCH`), so the script measures what a user gets without flags.
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--passes", type=int, default=30)
    ap.add_argument("--code-max-iter", type=int)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="snmf-is-")
    subprocess.run([f"{BIN}/examples/separate", d], check=True, capture_output=True)
    spec = os.path.join(d, "s.parquet")
    subprocess.run([f"{BIN}/streamnmf", "stft", os.path.join(d, "train_speech.wav"), "--out", spec],
                   check=True, capture_output=True)
    x = pq.read_table(spec).to_pandas().to_numpy(np.float64)
    x = x + 1e-6 * x.mean()
    data = os.path.join(d, "s_is.parquet")
    pq.write_table(pa.table({f"f{j}": x[:, j].astype(np.float32) for j in range(x.shape[1])}), data)
    k = a.rank
    print(f"speech: {x.shape[0]} frames x {x.shape[1]} bins, k {k}")
    peers = {
        "MiniBatchNMF(IS, b=128)": lambda: MiniBatchNMF(k, batch_size=128, beta_loss="itakura-saito",
                                                        max_iter=200, tol=1e-4, random_state=0),
        "NMF(mu, IS)": lambda: NMF(k, solver="mu", beta_loss="itakura-saito", max_iter=200, tol=1e-4,
                                   init="nndsvda", random_state=0),
    }
    res = {}
    for name, make in peers.items():
        secs, final = [], None
        for _ in range(3):
            m = make()
            t = time.perf_counter()
            w = m.fit_transform(x)
            secs.append(time.perf_counter() - t)
            final = float(_beta_divergence(x, w, m.components_, 0))
        res[name] = (float(np.median(secs)), final)
        print(f"{name}: median {np.median(secs):.2f} s, final IS {final:.6g}", flush=True)
    # The peers ran in this process: its idle OpenBLAS workers spin for about 0.1 s after
    # each call and would take a core from the streamnmf processes timed next (see
    # compare.one_blas_thread). One thread from here on, and a pause for the spin to end.
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    time.sleep(0.5)
    extra = ["--batch-size", str(a.batch_size)]
    if a.code_max_iter:
        extra += ["--code-max-iter", str(a.code_max_iter)]
    out = subprocess.run([f"{BIN}/examples/trajectory", data, "--rank", str(k), "--passes", str(a.passes),
                          "--loss", "is", *extra], capture_output=True, text=True, check=True).stdout
    traj = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"pass"' in l]
    for t in traj:
        if t["pass"] in (1, 2, 5, 10, 20, 40, 60):
            print(f"streamnmf pass {t['pass']}: {t['seconds']:.2f} s, IS {t['loss']:.6g}")
    for name, (secs, final) in res.items():
        hit = next((t for t in traj if t["loss"] <= final), None)
        if hit is None:
            print(f"{name}: its final {final:.6g} not reached in {a.passes} passes")
            continue
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([f"{BIN}/streamnmf", "fit", data, "-k", str(k), "--loss", "is", "--epochs",
                            str(hit["pass"]), "--staleness", "0", "-q", "--out", os.path.join(d, "is.snmf"),
                            *extra], check=True)
            walls.append(time.perf_counter() - t0)
        cli = float(np.median(walls))
        print(f"{name}: its final {final:.6g} reached after {hit['pass']} passes, {hit['seconds']:.2f} s in "
              f"process ({secs / hit['seconds']:.2f}x), CLI whole process {cli:.2f} s ({secs / cli:.2f}x)")


if __name__ == "__main__":
    main()
