"""Latency and throughput of live activations: `streamnmf fit - --codes-out -`.

Writes spectrogram frames (513 bins, gamma-distributed magnitudes) into the process's
stdin as an Arrow IPC stream, one record batch per frame, at a real-time rate (16 kHz
audio, hop 256: 62.5 frames/s) or as fast as possible, and reads the codes from its
stdout as they are flushed. A frame's latency is the time from its record batch being
written to the codes batch holding its row arriving. Batches fill before they are
solved, so at real-time rate the latency is mostly the wait for the batch's last frame.

Usage: python benches/scripts/live_latency.py [--loss kl|is] [--batch-size 64]
       [--seconds 20] [--rate 62.5 | --rate 0 (as fast as possible)] [--rank 16]
"""
import argparse, os, subprocess, threading, time
import numpy as np
import pyarrow as pa

BIN = os.path.join(os.environ.get("STREAMNMF_BIN", "target/release"), "streamnmf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loss", default="kl")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=62.5)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--frames", type=int, default=0, help="frames when --rate 0")
    ap.add_argument("--per-write", type=int, default=1, help="frames per record batch written")
    a = ap.parse_args()
    n = a.frames or int(a.seconds * (a.rate or 62.5))
    rng = np.random.default_rng(0)
    basis = rng.gamma(0.5, 1.0, (8, 513)).astype(np.float32)
    acts = rng.gamma(0.5, 1.0, (n, 8)).astype(np.float32)
    x = acts @ basis + 1e-3
    schema = pa.schema([(f"f{j}", pa.float32()) for j in range(513)])
    cmd = [BIN, "fit", "-", "-k", str(a.rank), "--loss", a.loss, "--batch-size", str(a.batch_size),
           "--codes-out", "-", "--out", os.devnull, "-q"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sent = np.zeros(n)
    got = np.zeros(n)

    def read():
        r = pa.ipc.open_stream(p.stdout)
        row = 0
        for rb in r:
            t = time.perf_counter()
            got[row:row + rb.num_rows] = t
            row += rb.num_rows

    reader = threading.Thread(target=read)
    reader.start()
    w = pa.ipc.new_stream(p.stdin, schema)
    t0 = time.perf_counter()
    for i in range(0, n, a.per_write):
        if a.rate > 0:
            due = t0 + (i + a.per_write - 1) / a.rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.002, due - time.perf_counter())))
        j = min(n, i + a.per_write)
        cols = [pa.array(x[i:j, c]) for c in range(513)]
        w.write_batch(pa.record_batch(cols, schema=schema))
        p.stdin.flush()
        sent[i:j] = time.perf_counter()
    w.close()
    p.stdin.close()
    reader.join()
    p.wait()
    total = time.perf_counter() - t0
    lat = (got - sent) * 1000
    print(f"loss {a.loss}, batch {a.batch_size}, {n} frames, rate {'max' if a.rate == 0 else a.rate} frames/s: "
          f"{n / total:.0f} frames/s end to end; latency ms median {np.median(lat):.1f}, p95 {np.percentile(lat, 95):.1f}, max {lat.max():.1f}")


if __name__ == "__main__":
    main()
