"""Byte mutations of every kind of file the CLI reads, through the commands that read them.

The corpus is made fresh in a temporary directory with the binary under test: a dense
Parquet table and its model (`fit --components-out`), a checkpoint directory, star
ratings as triplets with string item ids and their model, two tones as WAVs, their
models and the two stacked with `compose`. Each case mutates one file (bit flips,
overwritten bytes and 32-bit words, cuts, inserts) and runs one command that reads it:
models through inspect, transform, plot, fit --model, compose, recommend, evaluate and
separate; WAVs through stft, fit and separate; ratings through fit, recommend, evaluate
and rank; components through fit --components; a checkpoint directory whose newest file
is the mutant through fit --resume.

A case fails if the process exits with a code other than 0 (done), 1 (a clear error) or
2 (a usage error), prints a panic, or runs longer than 20 s. Failing inputs are kept in
the working directory. Deterministic: the same seed makes the same cases.

Usage: python benches/scripts/cli_fuzz.py PATH/TO/streamnmf [CASES] [SEED] (needs numpy
and pyarrow: the peers' venv of benches/peers has both). Exits 1 if any case failed.
"""
import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TRIPLETS = "triplets:user,item,rating"


def run(binary, args, timeout=20):
    return subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout,
                          errors="replace")


def make_corpus(binary, d):
    rng = np.random.default_rng(1)
    x = (rng.exponential(1, (200, 3)) @ rng.exponential(1, (3, 12))).astype(np.float32)
    pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(12)}), f"{d}/dense.parquet")
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 50, 700),
                                                       rng.integers(0, 40, 700))})
    pq.write_table(pa.table({"user": [p[0] for p in pairs],
                             "item": [f"it{p[1]}" for p in pairs],
                             "rating": rng.integers(1, 6, len(pairs)).astype(np.float32)}),
                   f"{d}/ratings.parquet")
    t = np.arange(16000) / 8000
    tones = {}
    for name, hz in (("a", 440), ("b", 1300)):
        tones[name] = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)
    tones["mix"] = (tones["a"] + tones["b"]) / 2
    for name, s in tones.items():
        with wave.open(f"{d}/{name}.wav", "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes((s * 32767).astype("<i2").tobytes())
    setup = [
        ["fit", f"{d}/dense.parquet", "-k", "3", "--epochs", "3", "-q", "--out", f"{d}/m.snmf",
         "--components-out", f"{d}/h.parquet"],
        ["fit", f"{d}/dense.parquet", "-k", "3", "--epochs", "3", "-q", "--out", f"{d}/c.snmf",
         "--checkpoint-dir", f"{d}/ck", "--checkpoint-every", "2", "--keep-checkpoints", "2"],
        ["fit", f"{d}/ratings.parquet", "--layout", TRIPLETS, "--item-ids", "-k", "4",
         "--epochs", "3", "-q", "--out", f"{d}/r.snmf"],
        ["fit", f"{d}/a.wav", "-k", "4", "--epochs", "3", "-q", "--loss", "kl", "--out",
         f"{d}/a.snmf"],
        ["fit", f"{d}/b.wav", "-k", "4", "--epochs", "3", "-q", "--loss", "kl", "--out",
         f"{d}/b.snmf"],
        ["compose", f"{d}/a.snmf", f"{d}/b.snmf", "--labels", "speech,noise", "--out",
         f"{d}/ab.snmf"],
    ]
    for args in setup:
        r = run(binary, args, timeout=120)
        if r.returncode != 0:
            sys.exit(f"corpus: {' '.join(args)} failed: {r.stderr.strip()}")


def targets(d):
    """(file, commands reading it); {f} is the mutant, {o} an empty output directory."""
    ratings = ["--layout", TRIPLETS, "--item-ids"]
    return [
        ("m.snmf", [["inspect", "{f}"],
                    ["transform", f"{d}/dense.parquet", "--model", "{f}", "--out",
                     "{o}/w.parquet", "-q"],
                    ["plot", "{f}", "--out", "{o}/p.png"],
                    ["fit", f"{d}/dense.parquet", "--model", "{f}", "--epochs", "1", "-q",
                     "--out", "{o}/m2.snmf"],
                    ["compose", "{f}", f"{d}/m.snmf", "--out", "{o}/c.snmf"]]),
        ("r.snmf", [["recommend", f"{d}/ratings.parquet", *ratings, "--model", "{f}", "--out",
                     "{o}/rec.parquet", "-q"],
                    ["evaluate", f"{d}/ratings.parquet", *ratings, "--model", "{f}", "--test",
                     f"{d}/ratings.parquet"],
                    ["inspect", "{f}"],
                    ["fit", f"{d}/ratings.parquet", *ratings, "--model", "{f}", "--epochs", "1",
                     "-q", "--out", "{o}/r2.snmf"]]),
        ("ab.snmf", [["separate", "--model", "{f}", f"{d}/mix.wav", "--out-dir", "{o}/sep"],
                     ["plot", "{f}", "--out", "{o}/p.png"],
                     ["transform", f"{d}/mix.wav", "--model", "{f}", "--out", "{o}/w.parquet",
                      "-q"]]),
        ("a.wav", [["stft", "{f}", "--out", "{o}/s.parquet"],
                   ["fit", "{f}", "-k", "3", "--epochs", "1", "-q", "--out", "{o}/x.snmf",
                    "--loss", "is"],
                   ["separate", "--model", f"{d}/ab.snmf", "{f}", "--out-dir", "{o}/sep"]]),
        ("ratings.parquet", [["fit", "{f}", *ratings, "-k", "3", "--epochs", "1", "-q", "--out",
                              "{o}/x.snmf"],
                             ["recommend", "{f}", *ratings, "--model", f"{d}/r.snmf", "--out",
                              "{o}/rec.parquet", "-q"],
                             ["evaluate", f"{d}/ratings.parquet", *ratings, "--model",
                              f"{d}/r.snmf", "--test", "{f}"],
                             ["rank", "{f}", *ratings, "--ranks", "2,3"]]),
        ("h.parquet", [["fit", f"{d}/dense.parquet", "-k", "3", "--components", "{f}",
                        "--epochs", "1", "-q", "--out", "{o}/x.snmf"]]),
    ]


def mutate(b, rng):
    b = bytearray(b)
    for _ in range(rng.choice([1, 1, 2, 4, 8, 32])):
        if not b:
            break
        op, i = rng.random(), rng.randrange(len(b))
        if op < 0.4:
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.6:
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif op < 0.7:
            v = rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, rng.randrange(1 << 32)])
            b[i:i + 4] = v.to_bytes(4, "little")
        elif op < 0.8:
            del b[i:]
        elif op < 0.9:
            del b[i:i + rng.randrange(1, 64)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return bytes(b)


def failed(r):
    out = r.stdout + r.stderr
    return r.returncode not in (0, 1, 2) or "panicked" in out or "internal error" in out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    d = tempfile.mkdtemp(prefix="snmf-cli-fuzz-")
    make_corpus(binary, d)
    checkpoints = sorted(glob.glob(f"{d}/ck/*.snmf"))
    work, out = os.path.join(d, "work"), os.path.join(d, "work", "out")
    os.makedirs(work)
    rng = random.Random(seed)
    bad = 0
    for c in range(cases):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        if rng.random() < 0.15:
            # A checkpoint directory whose newest checkpoint is a mutant.
            ck = os.path.join(out, "ck")
            os.makedirs(ck)
            for f in checkpoints:
                shutil.copy(f, ck)
            newest = os.path.join(ck, os.path.basename(checkpoints[-1]))
            with open(checkpoints[-1], "rb") as f:
                data = mutate(f.read(), rng)
            with open(newest, "wb") as f:
                f.write(data)
            keep = lambda: shutil.copytree(ck, os.path.join(d, f"bad-{seed}-{c}-ck"))
            args = ["fit", f"{d}/dense.parquet", "-k", "3", "--epochs", "3", "-q", "--resume",
                    ck, "--out", os.path.join(out, "r.snmf")]
        else:
            src, commands = rng.choice(targets(d))
            ext = os.path.splitext(src)[1]
            with open(os.path.join(d, src), "rb") as f:
                data = mutate(f.read(), rng)
            case = os.path.join(work, "case" + ext)
            with open(case, "wb") as f:
                f.write(data)
            keep = lambda: shutil.copy(case, os.path.join(d, f"bad-{seed}-{c}{ext}"))
            args = [a.replace("{f}", case).replace("{o}", out) for a in rng.choice(commands)]
        try:
            r = run(binary, args)
            if failed(r):
                bad += 1
                keep()
                tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
                print(f"case {c}: exit {r.returncode}: {' '.join(args[:2])}: {tail}", flush=True)
        except subprocess.TimeoutExpired:
            bad += 1
            keep()
            print(f"case {c}: timeout: {' '.join(args[:2])}", flush=True)
    print(f"seed {seed}: {cases} cases, {bad} failed; corpus and failing inputs in {d}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
