"""Supervised and semi-supervised separation of a speech-like source from noise (the
WAVs `examples/separate.rs` writes), streamnmf's CLI against scikit-learn's NMF(mu).

Both sides see the same magnitude spectrograms (`streamnmf stft`, FFT 1024, hop 256):
dictionaries of the clean training clips (speech k, noise k/2), codes of the mixture with
the stacked dictionary fixed, Wiener masks on the mixture's STFT, SDR improvement of the
speech estimate. Times are whole processes for the CLI (WAV in, WAVs out) and in-process
for scikit-learn (arrays already in memory). Also: the divergence scikit-learn's fit of the
speech dictionary ends at, and the passes and seconds streamnmf needs to reach it.
"""
import argparse, json, os, subprocess, sys, tempfile, time
import numpy as np
import pyarrow.parquet as pq
from scipy.io import wavfile
from scipy.signal import stft, istft
from sklearn.decomposition import NMF, non_negative_factorization

BIN = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "streamnmf")
EX = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "examples", "separate")
N, HOP = 1024, 256


def run(*args):
    t = time.perf_counter()
    out = subprocess.run([BIN, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def wav(path):
    sr, x = wavfile.read(path)
    return sr, x.astype(np.float64)


def sdr(ref, est):
    m = min(len(ref), len(est))
    ref, est = ref[:m], est[:m]
    return 10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-300))


def spectrogram(d, name):
    out = os.path.join(d, name + ".parquet")
    run("stft", os.path.join(d, name + ".wav"), "--out", out, "--fft-size", str(N), "--hop", str(HOP))
    return pq.read_table(out).to_pandas().to_numpy(dtype=np.float64)


def beta_div(x, v, beta):
    v = np.maximum(v, 1e-12)
    if beta == 1:
        return float(np.sum(np.where(x > 0, x * np.log(np.maximum(x, 1e-300) / v), 0) - x + v))
    r = np.maximum(x, 1e-12) / v
    return float(np.sum(r - np.log(r) - 1))


def separate_sklearn(mix, sr, h, k_speech, beta, max_iter, xm):
    loss = {1: "kullback-leibler", 0: "itakura-saito"}[beta]
    w, _, _ = non_negative_factorization(
        xm, H=h, n_components=h.shape[0], update_H=False, solver="mu", beta_loss=loss,
        max_iter=max_iter, init="custom", W=np.full((xm.shape[0], h.shape[0]), xm.mean() / h.shape[0] + 1e-9))
    vs = w[:, :k_speech] @ h[:k_speech]
    v = w @ h
    mask = np.where(v > 0, vs / np.maximum(v, 1e-300), 0.5)
    _, _, z = stft(mix, fs=sr, window="hann", nperseg=N, noverlap=N - HOP, boundary="zeros", padded=True)
    z = z[:, : mask.shape[0]] * mask.T
    _, y = istft(z, fs=sr, window="hann", nperseg=N, noverlap=N - HOP, boundary=True)
    return y[: len(mix)]


def semi_mu(xm, h_fixed, k_free, beta, iters, seed=0):
    """Multiplicative updates with the first atoms fixed (numpy, the textbook rules)."""
    rng = np.random.default_rng(seed)
    kf = h_fixed.shape[0]
    h = np.vstack([h_fixed, rng.uniform(0.5, 1.5, (k_free, xm.shape[1])) * xm.mean()])
    w = np.full((xm.shape[0], h.shape[0]), xm.mean() / h.shape[0])
    g = 1.0 if beta >= 1 else 0.5
    for _ in range(iters):
        v = np.maximum(w @ h, 1e-12)
        w *= (((v ** (beta - 2) * xm) @ h.T) / np.maximum(v ** (beta - 1) @ h.T, 1e-300)) ** g
        v = np.maximum(w @ h, 1e-12)
        num = w.T @ (v ** (beta - 2) * xm)
        den = np.maximum(w.T @ v ** (beta - 1), 1e-300)
        h[kf:] *= (num[kf:] / den[kf:]) ** g
    return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loss", default="kl", choices=["kl", "is"])
    ap.add_argument("--rank", type=int, default=20)
    ap.add_argument("--iters", type=int, default=200, help="scikit-learn max_iter")
    ap.add_argument("--epochs", type=int, default=30,
                    help="streamnmf passes (0: its defaults, passes until converged)")
    ap.add_argument("--batch-size", type=int, default=128, help="streamnmf frames per batch")
    ap.add_argument("--code-max-iter", type=int, help="streamnmf code iterations (default: its own)")
    a = ap.parse_args()
    beta = 1 if a.loss == "kl" else 0
    k, kn = a.rank, a.rank // 2
    d = tempfile.mkdtemp(prefix="snmf-audio-")
    subprocess.run([EX, d], check=True, capture_output=True)
    sr, speech = wav(os.path.join(d, "speech.wav"))
    _, noise = wav(os.path.join(d, "noise.wav"))
    _, mix = wav(os.path.join(d, "mixture.wav"))
    base = sdr(speech, mix)
    xs, xn, xm = (spectrogram(d, n) for n in ("train_speech", "train_noise", "mixture"))
    floor = 1e-6 * xm.mean()
    if beta == 0:
        xs, xn, xm = xs + floor, xn + floor, xm + floor
    print(f"{a.loss}: train {xs.shape[0]} frames x {xs.shape[1]} bins, mixture {xm.shape[0]} frames; mixture SDR {base:.2f} dB")
    loss = {1: "kullback-leibler", 0: "itakura-saito"}[beta]

    # scikit-learn, supervised.
    t = time.perf_counter()
    ms = NMF(k, solver="mu", beta_loss=loss, max_iter=a.iters, init="nndsvda", random_state=0).fit(xs)
    t_speech = time.perf_counter() - t
    mn = NMF(kn, solver="mu", beta_loss=loss, max_iter=a.iters, init="nndsvda", random_state=0).fit(xn)
    h = np.vstack([ms.components_, mn.components_])
    est = separate_sklearn(mix, sr, h, k, beta, a.iters, xm)
    t_sk = time.perf_counter() - t
    sk_div = beta_div(xs, ms.transform(xs) @ ms.components_, beta)
    sk_fit_div = ms.reconstruction_err_ ** 2 / 2
    sdri_sk = sdr(speech, est) - base
    # scikit-learn, semi-supervised (speech atoms fixed, numpy MU for the free ones).
    t = time.perf_counter()
    hs = semi_mu(xm, ms.components_, kn, beta, a.iters)
    est = separate_sklearn(mix, sr, hs, k, beta, a.iters, xm)
    t_sk_semi = time.perf_counter() - t
    sdri_sk_semi = sdr(speech, est) - base

    # streamnmf CLI, whole processes from WAV.
    epochs = ["--epochs", str(a.epochs)] if a.epochs else []
    common = ["--loss", a.loss, *epochs, "--batch-size", str(a.batch_size), "-q", "--json"]
    if beta == 0:
        common += ["--epsilon", f"{floor:.6g}"]
    if a.code_max_iter:
        common += ["--code-max-iter", str(a.code_max_iter)]
    t1, js = run("fit", os.path.join(d, "train_speech.wav"), "-k", str(k), "--label", "speech", "--out", os.path.join(d, "s.snmf"), *common)
    hist = json.loads(js)["loss_history"]
    t2, _ = run("fit", os.path.join(d, "train_noise.wav"), "-k", str(kn), "--label", "noise", "--out", os.path.join(d, "n.snmf"), *common)
    t3, _ = run("compose", os.path.join(d, "s.snmf"), os.path.join(d, "n.snmf"), "--out", os.path.join(d, "sn.snmf"))
    t4, _ = run("separate", "--model", os.path.join(d, "sn.snmf"), os.path.join(d, "mixture.wav"), "--out-dir", os.path.join(d, "sep"))
    _, est = wav(os.path.join(d, "sep", "speech.wav"))
    sdri_us = sdr(speech, est) - base
    t_us = t1 + t2 + t3 + t4
    # Semi-supervised: speech atoms fixed, kn learned on the mixture.
    t5, _ = run("fit", os.path.join(d, "mixture.wav"), "--components", os.path.join(d, "s.snmf"), "-k", str(k + kn),
                "--fixed-components", "speech", "--label", "noise", "--out", os.path.join(d, "semi.snmf"), *common)
    t6, _ = run("separate", "--model", os.path.join(d, "semi.snmf"), os.path.join(d, "mixture.wav"), "--out-dir", os.path.join(d, "sep2"))
    _, est = wav(os.path.join(d, "sep2", "speech.wav"))
    sdri_us_semi = sdr(speech, est) - base

    # Passes of streamnmf to the divergence scikit-learn's speech fit reached.
    rows = xs.shape[0]
    per_pass = [v * rows for v in hist]
    reach = next((i + 1 for i, v in enumerate(per_pass) if v <= sk_fit_div), None)
    print(f"{'':28} {'SDRi dB':>8} {'seconds':>8}")
    print(f"{'sklearn NMF(mu) supervised':28} {sdri_sk:8.2f} {t_sk:8.2f}   (in process)")
    print(f"{'streamnmf supervised':28} {sdri_us:8.2f} {t_us:8.2f}   (whole processes, WAV in/out)")
    print(f"{'numpy MU semi-supervised':28} {sdri_sk_semi:8.2f} {t_sk_semi:8.2f}")
    print(f"{'streamnmf semi-supervised':28} {sdri_us_semi:8.2f} {t5 + t6:8.2f}")
    print(f"speech dictionary: sklearn {a.iters} iterations end at divergence {sk_fit_div:.4g} in {t_speech:.2f} s; "
          f"streamnmf per pass (progressive) {', '.join(f'{v:.4g}' for v in per_pass[:8])} ...; "
          f"reaches it after {reach} passes of {len(hist)} ({t1:.2f} s for all {len(hist)}, whole process)")
    print(json.dumps({"loss": a.loss, "sdri": {"sklearn": sdri_sk, "streamnmf": sdri_us, "sklearn_semi": sdri_sk_semi, "streamnmf_semi": sdri_us_semi},
                      "seconds": {"sklearn": t_sk, "streamnmf": t_us, "sklearn_semi": t_sk_semi, "streamnmf_semi": t5 + t6},
                      "speech_fit": {"sklearn_divergence": sk_fit_div, "sklearn_seconds": t_speech, "streamnmf_passes_to_reach": reach, "streamnmf_seconds": t1}}))


if __name__ == "__main__":
    main()
