"""Arrow streams, files, the command-line tool's model files, memory and Ctrl-C."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from streamnmf import StreamNMF

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def planted(n, p=30, k=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.exponential(1.0, (n, k)) * (rng.random((n, k)) < 0.6)
    h = rng.exponential(1.0, (k, p)) * (rng.random((k, p)) < 0.6)
    x = w @ h
    return (x + np.abs(rng.normal(0, 0.01 * x.mean(), x.shape))).astype(np.float32)


def table(x):
    return pa.table({f"c{j}": x[:, j] for j in range(x.shape[1])})


def test_cli_model_equals_python_fit_bitwise(tmp_path, cli):
    """Same data, seed and settings: the CLI (on Parquet, staleness 0) and the Python
    estimator (in memory) learn the same dictionary to the bit, and each reads the
    other's model file."""
    x = planted(3000)
    pq.write_table(table(x), tmp_path / "x.parquet")
    subprocess.run([cli, "fit", str(tmp_path / "x.parquet"), "-k", "4", "--epochs", "3",
                    "--batch-size", "500", "--staleness", "0", "--seed", "9", "-q",
                    "--out", str(tmp_path / "cli.snmf")], check=True)
    est = StreamNMF(4, batch_size=500, max_iter=3, tol=0, random_state=9).fit(x)
    from_cli = StreamNMF.load(tmp_path / "cli.snmf")
    assert from_cli.components_.dtype == np.float32
    assert np.array_equal(from_cli.components_, est.components_)
    assert list(from_cli.feature_names_in_) == [f"c{j}" for j in range(30)]
    # Python's model serves from the CLI.
    est.save(tmp_path / "py.snmf")
    subprocess.run([cli, "transform", "--model", str(tmp_path / "py.snmf"), "-q",
                    str(tmp_path / "x.parquet"), "--out", str(tmp_path / "w.parquet")],
                   check=True)
    w = pq.read_table(tmp_path / "w.parquet")
    w = np.stack([np.asarray(w.column(f"c{j}")) for j in range(4)], axis=1)
    # The CLI solves 500-row batches (a row's codes depend on the rows solved with it only
    # through when its block of rows stops iterating): the same batches give the same bits.
    mine = np.concatenate([est.transform(x[b:b + 500]) for b in range(0, len(x), 500)])
    np.testing.assert_array_equal(w, mine)


def test_fit_stream_reads_pyarrow_readers_and_tables():
    x = planted(5000)
    t = table(x)
    a = StreamNMF(4, batch_size=500, random_state=0).fit_stream(t.to_reader(max_chunksize=700))
    b = StreamNMF(4, batch_size=500, random_state=0).fit_stream(t)
    assert a.n_features_in_ == 30 and list(a.feature_names_in_)[:2] == ["c0", "c1"]
    assert np.array_equal(a.components_, b.components_), "record batch sizes do not matter"
    assert a.n_steps_ == 10
    err = np.linalg.norm(x - a.transform(x) @ a.components_) / np.linalg.norm(x)
    assert err < 0.1
    # Only some columns, and a second stream continues the model.
    c = StreamNMF(2, random_state=0).fit_stream(t, columns=["c0", "c1", "c2"])
    assert c.n_features_in_ == 3
    c.fit_stream(t.select(["c0", "c1", "c2"]))
    assert c.n_steps_ == 10


def test_fit_stream_names_the_bad_row_and_column():
    x = planted(3000)
    x[2100, 7] = -1.0
    with pytest.raises(ValueError, match=r"row 2100.*c7|c7.*row 2100"):
        StreamNMF(4).fit_stream(table(x))
    with pytest.raises(ValueError, match="__arrow_c_stream__"):
        StreamNMF(4).fit_stream([[1.0, 2.0]])


def test_fit_files_like_the_cli(tmp_path, cli):
    x = planted(4000)
    pq.write_table(table(x[:2500]), tmp_path / "a.parquet")
    pq.write_table(table(x[2500:]), tmp_path / "b.parquet")
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    est = StreamNMF(4, max_iter=2, batch_size=500, random_state=0).fit_files(paths)
    assert est.n_iter_ == 2 and est.n_steps_ == 16
    # Without a batch size, a new dense Frobenius model takes the CLI's: 6 rows per
    # component or n / 200, within 64..256: 64 rows here, batches running across the files.
    auto = StreamNMF(4, max_iter=2, random_state=0).fit_files(paths)
    assert auto.n_steps_ == 2 * -(-4000 // 64)
    # Under KL, 256-row batches, as the CLI's.
    kl = StreamNMF(4, loss="kullback-leibler", max_iter=1, random_state=0).fit_files(paths)
    assert kl.n_steps_ == -(-4000 // 256)
    err = np.linalg.norm(x - est.transform(x) @ est.components_) / np.linalg.norm(x)
    assert err < 0.1
    # Sparse triplets: the CLI's rule from the footers' shape (20 000 rows of 5 entries,
    # 4000 wide, k 4: 2496-row batches, 8 a pass); string row ids say nothing of the
    # rows, so the mode's 1024.
    n, width = 20_000, 4000
    rows = np.repeat(np.arange(n), 5)
    cols = (rows % 4) * 1000 + np.tile(np.arange(5) * 97, n) + rows % 13
    vals = 1.0 + (rows % 7).astype(np.float64)
    trip = tmp_path / "t.parquet"
    pq.write_table(pa.table({"row": rows, "col": cols, "value": vals}), trip)
    sparse = StreamNMF(4, max_iter=1, random_state=0).fit_files(
        trip, layout="triplets:row,col,value", width=width)
    assert sparse.n_steps_ == -(-n // 2496)
    named = tmp_path / "s.parquet"
    pq.write_table(pa.table({"row": [f"u{r}" for r in rows], "col": cols, "value": vals}), named)
    by_name = StreamNMF(4, max_iter=1, random_state=0).fit_files(
        named, layout="triplets:row,col,value", width=width)
    assert by_name.n_steps_ == -(-n // 1024)
    with pytest.raises(OSError, match="missing.parquet"):
        StreamNMF(4).fit_files(tmp_path / "missing.parquet")


def signal_masks(pid):
    """Each thread's blocked, ignored, caught and pending signal sets (hex, from /proc)."""
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        out.append(tid + " " + " ".join(f"{k}={fields[k].strip()}" for k in ("Name", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")))
    return "; ".join(out)


def run_python(code, **kw):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_million_row_stream_in_bounded_memory():
    """1 000 000 rows x 50 float32 (200 MB) generated batch by batch into a pyarrow reader:
    the peak RSS grows by far less than the data."""
    proc = run_python("""
        import resource, numpy as np, pyarrow as pa
        from streamnmf import StreamNMF
        rng = np.random.default_rng(0)
        h = rng.exponential(1.0, (5, 50))
        schema = pa.schema([(f"c{j}", pa.float32()) for j in range(50)])
        def batches():
            for _ in range(100):
                x = (rng.exponential(1.0, (10_000, 5)) @ h).astype(np.float32)
                yield pa.record_batch([x[:, j] for j in range(50)], schema=schema)
        # Warm up every code path on a small stream first, then measure.
        StreamNMF(5, random_state=0).fit_stream(pa.RecordBatchReader.from_batches(
            schema, (b.slice(0, 2000) for b, _ in zip(batches(), range(2)))))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        est = StreamNMF(5, random_state=0).fit_stream(
            pa.RecordBatchReader.from_batches(schema, batches()))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(est.n_steps_, (after - before) * 1024)
    """)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    steps, grown = map(int, out.split())
    assert steps == 1_000_000 // 1024 + 1
    assert grown < 60 * 2**20, f"peak RSS grew by {grown / 2**20:.0f} MB for 200 MB of data"


def test_ctrl_c_interrupts_a_long_fit():
    proc = run_python("""
        import faulthandler, signal, numpy as np, time
        from streamnmf import StreamNMF
        # A shell that starts a job in the background without job control (CI runners
        # do) makes it ignore SIGINT, and Python then leaves it ignored: Ctrl-C in a
        # terminal is what this test is about, so it is what the child gets.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        x = np.random.default_rng(0).random((50_000, 200))
        print("ready", flush=True)
        t = time.time()
        try:
            StreamNMF(20, max_iter=10_000, tol=0, random_state=0).fit(x)
            print("finished")
        except KeyboardInterrupt:
            print("interrupted", round(time.time() - t, 1))
    """)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        t = time.time()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Tell an unhandled SIGINT (ignored, blocked: the signal sets show it) from a
            # fit that ignores its stop flag, then fail with that evidence.
            masks = signal_masks(proc.pid)
            proc.send_signal(signal.SIGUSR1)  # the child's Python stacks, on stderr
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=15)
                second = "a second SIGINT stopped it"
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                second = "a second SIGINT did not stop it either"
            raise AssertionError(f"no stop within 60 s of SIGINT; {second}; here {signal_masks(os.getpid())}; child {masks}", out, err)
        assert "interrupted" in out, (out, err)
        assert time.time() - t < 5, "stopped within a few batches"
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()  # never leave a fit spinning for the rest of the run


def test_engine_logs_reach_python_logging_and_progress_is_reported(tmp_path, caplog):
    import logging
    x = planted(3000)
    pq.write_table(table(x), tmp_path / "x.parquet")
    seen = []
    est = StreamNMF(4, max_iter=2, batch_size=1000, random_state=0)
    est._progress = lambda: (None, seen.append)
    est.fit_files(tmp_path / "x.parquet")
    assert seen == [1000] * 6, "one call per batch, with its rows"
    with caplog.at_level(logging.INFO, logger="streamnmf"):
        StreamNMF(4, max_iter=2, tol=0, random_state=0).fit(x)
    messages = [r.getMessage() for r in caplog.records if r.name == "streamnmf"]
    assert len(messages) == 2 and messages[1].startswith("pass pass=1 mean_loss="), messages


def test_recommend_skips_seen_items_and_ranks_by_score():
    import scipy.sparse as sp
    rng = np.random.default_rng(2)
    n, p, k = 800, 120, 3
    w = rng.random((n, k)) * (rng.random((n, k)) < 0.5)
    h = rng.random((k, p)) * (rng.random((k, p)) < 0.3)
    x = sp.csr_matrix(np.where(rng.random((n, p)) < 0.1, w @ h, 0.0))
    est = StreamNMF(k, unobserved="implicit", confidence=20.0, random_state=0).fit(x)
    items, scores = est.recommend(x[:50], n=5)
    assert items.shape == (50, 5) and scores.shape == (50, 5)
    for i in range(50):
        seen = set(x[i].indices)
        assert not seen & set(items[i][items[i] >= 0])
        valid = scores[i][items[i] >= 0]
        assert np.all(np.diff(valid) <= 0), "best first"
        full = est.transform(x[i]) @ est.components_
        expect = [j for j in np.argsort(-full[0], kind="stable") if j not in seen][:5]
        assert list(items[i]) == expect
    all_items, _ = est.recommend(x[:5], n=p, exclude_seen=False)
    assert np.all(all_items >= 0)


def test_polars_frames_fit_and_stream():
    pl = pytest.importorskip("polars")
    x = planted(3000)
    df = pl.DataFrame({f"v{j}": x[:, j] for j in range(x.shape[1])})
    a = StreamNMF(4, batch_size=500, random_state=0).fit(df)
    assert list(a.feature_names_in_[:2]) == ["v0", "v1"]
    b = StreamNMF(4, batch_size=500, random_state=0).fit_stream(df)
    assert b.n_steps_ == 6 and list(b.feature_names_in_[:2]) == ["v0", "v1"]
    lazy = df.lazy().filter(pl.col("v0") > 0)
    c = StreamNMF(4, batch_size=500, random_state=0).fit_stream(lazy.collect())
    assert c.n_features_in_ == x.shape[1]


def test_partial_fit_takes_arrow_streams_too():
    x = planted(2000)
    est = StreamNMF(4, batch_size=500, random_state=0)
    est.partial_fit(table(x[:1000]).to_reader())
    est.partial_fit(x[1000:1500])
    est.partial_fit(table(x[1500:]))
    assert est.n_steps_ == 4 and est.n_features_in_ == 30


def test_streams_and_files_need_an_explicit_rank(tmp_path):
    t = table(planted(100))
    for k in (None, "auto"):
        with pytest.raises(ValueError, match="needs n_components"):
            StreamNMF(k).fit_stream(t)
        with pytest.raises(ValueError, match="needs n_components"):
            StreamNMF(k).fit_files(tmp_path / "x.parquet")
