"""The scikit-learn estimator: the API contract, numbers against scikit-learn's NMF, inputs
of every kind, persistence, errors."""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF
from sklearn.utils.estimator_checks import check_estimator

from streamnmf import StreamNMF

# fit_transform returns the codes the fit produced (each batch's, against the dictionary of
# its time: scikit-learn issue #18663), not a second solve against the final dictionary,
# so on the checks' tiny data they differ from transform's by more than atol = 0.01.
EXPECTED_FAILURES = {
    "check_transformer_general": "fit_transform returns the fit's own codes, not transform's",
    "check_transformer_data_not_an_array": "fit_transform returns the fit's own codes",
}


def planted(n=600, p=40, k=4, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.exponential(1.0, (n, k)) * (rng.random((n, k)) < 0.6)
    h = rng.exponential(1.0, (k, p)) * (rng.random((k, p)) < 0.6)
    x = w @ h
    return x + np.abs(rng.normal(0, noise * x.mean(), x.shape))


def rel_error(x, w, h):
    return np.linalg.norm(x - w @ h) / np.linalg.norm(x)


def test_check_estimator_passes_except_the_listed_checks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(StreamNMF(random_state=0), on_fail=None,
                                  expected_failed_checks=EXPECTED_FAILURES)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed, failed
    assert len(results) > 40


def test_recovers_planted_factors_as_well_as_nmf_cd():
    x = planted()
    est = StreamNMF(4, random_state=0, max_iter=30, tol=0)
    w = est.fit_transform(x)
    ours = rel_error(x, est.transform(x), est.components_)
    cd = NMF(4, solver="cd", max_iter=1000, tol=1e-8, random_state=0)
    ref = rel_error(x, cd.fit_transform(x), cd.components_)
    assert ours <= 1.05 * ref, (ours, ref)
    # The fit's own codes reconstruct nearly as well, and reconstruction_err_ is theirs.
    assert rel_error(x, w, est.components_) <= 1.05 * ref
    assert est.reconstruction_err_ == pytest.approx(np.linalg.norm(x - w @ est.components_),
                                                    rel=1e-6)
    # Dense Frobenius data without a batch size: 6 rows per component, or n / 200, within
    # 64..256 (the engine's dense_batch_rows).
    b = min(max(len(x) // 200, 6 * 4, 64), 256)
    assert est.n_iter_ == 30 and est.n_steps_ == 30 * -(-len(x) // b)
    np.testing.assert_allclose(est.inverse_transform(w), w @ est.components_)


def test_kl_and_itakura_saito_fit_and_reduce_the_divergence():
    x = planted(noise=0.05) + 0.01
    for loss in ["kullback-leibler", "itakura-saito", 1.5]:
        est = StreamNMF(4, loss=loss, random_state=0, max_iter=20)
        w = est.fit_transform(x)
        assert np.isfinite(est.reconstruction_err_) and est.reconstruction_err_ > 0
        assert np.all(w >= 0) and np.all(est.components_ >= 0)
        assert est.n_iter_ >= 2


def test_same_seed_same_bits_and_threads_do_not_matter():
    x = planted()
    a = StreamNMF(4, random_state=3, n_threads=1).fit(x).components_
    b = StreamNMF(4, random_state=3, n_threads=2).fit(x).components_
    assert np.array_equal(a, b)


def test_float32_is_kept_and_any_layout_is_read():
    x = planted().astype(np.float32)
    est = StreamNMF(4, random_state=0).fit(x)
    assert est.components_.dtype == np.float32
    assert est.transform(x).dtype == np.float32
    # Fortran order and a strided view read in place give the same codes.
    np.testing.assert_array_equal(est.transform(np.asfortranarray(x)), est.transform(x))
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), np.float32)
    wide[:, ::2] = x
    np.testing.assert_array_equal(est.transform(wide[:, ::2]), est.transform(x))


def test_sparse_inputs_match_dense():
    x = planted()
    x[x < np.quantile(x, 0.6)] = 0
    # The same settings (dense data's default batch size differs from sparse data's).
    dense = StreamNMF(4, random_state=0, max_iter=5, tol=0, batch_size=1024).fit(x)
    for m in [sp.csr_matrix(x), sp.csc_matrix(x)]:
        est = StreamNMF(4, random_state=0, max_iter=5, tol=0, batch_size=1024).fit(m)
        np.testing.assert_allclose(est.components_, dense.components_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(est.transform(m), dense.transform(x), rtol=1e-6, atol=1e-8)


def test_pandas_names_and_set_output():
    pd = pytest.importorskip("pandas")
    x = planted()
    df = pd.DataFrame(x, columns=[f"gene{j}" for j in range(x.shape[1])])
    est = StreamNMF(3, random_state=0).set_output(transform="pandas").fit(df)
    assert list(est.feature_names_in_) == list(df.columns)
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["streamnmf0", "streamnmf1", "streamnmf2"]


def test_partial_fit_learns_batch_by_batch():
    x = planted(n=2000)
    est = StreamNMF(4, random_state=0)
    for _ in range(3):
        for b in range(0, len(x), 200):
            est.partial_fit(x[b:b + 200])
    assert est.n_steps_ == 30
    assert rel_error(x, est.transform(x), est.components_) < 0.05
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(x[:10, :5])


def test_pickle_and_save_load_round_trip_bitwise(tmp_path):
    x = planted()
    est = StreamNMF(4, random_state=0).fit(x)
    back = pickle.loads(pickle.dumps(est))
    assert np.array_equal(back.components_, est.components_)
    assert np.array_equal(back.transform(x), est.transform(x))
    assert back.get_params() == est.get_params()
    path = tmp_path / "m.snmf"
    est.save(path)
    loaded = StreamNMF.load(path)
    assert np.array_equal(loaded.components_, est.components_)
    assert np.array_equal(loaded.transform(x), est.transform(x))
    # A loaded model keeps learning.
    loaded.partial_fit(x[:100])
    assert loaded.n_steps_ == est.n_steps_ + 1


def test_bad_input_raises_python_exceptions(tmp_path):
    x = planted()
    with pytest.raises(ValueError, match="Negative"):
        StreamNMF(2).fit(-x)
    with pytest.raises(ValueError):
        StreamNMF(2).fit(np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="zero"):
        StreamNMF(2, loss="itakura-saito").fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="loss"):
        StreamNMF(2, loss="hinge").fit(x)
    with pytest.raises(ValueError, match="n_components"):
        StreamNMF(0).fit(x)
    with pytest.raises(ValueError):
        StreamNMF(2, forget_factor=2.0).fit(x)
    # Errors name the estimator's parameters, not the engine's (max_passes).
    for bad_value in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_iter must be a positive integer"):
            StreamNMF(2, max_iter=bad_value).fit(x)
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            StreamNMF(2, batch_size=bad_value).fit(x)
    for bad_value in (-1e-3, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="tol must be a finite non-negative float"):
            StreamNMF(2, tol=bad_value).fit(x)
    with pytest.raises(OSError, match="nope.snmf"):
        StreamNMF.load(tmp_path / "nope.snmf")
    bad = tmp_path / "bad.snmf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="bad.snmf"):
        StreamNMF.load(bad)
    # A truncated pickle's model bytes fail their checksum: an exception, not a crash.
    state = StreamNMF(2, random_state=0).fit(x).__getstate__()
    state["_model_bytes"] = state["_model_bytes"][:-7]
    with pytest.raises(ValueError):
        StreamNMF().__setstate__(state)


def test_missing_entries_predict_held_out_ratings():
    """Explicit ratings: with unobserved="missing" the loss covers the stored entries only,
    and W H predicts hidden ones; the classic zero mode predicts near zero there."""
    rng = np.random.default_rng(1)
    n, p, k = 1500, 300, 4
    w = rng.random((n, k))
    h = rng.random((k, p))
    full = 1 + 4 * (w @ h) / (w @ h).max()
    mask = rng.random((n, p)) < 0.15
    hide = mask & (rng.random((n, p)) < 0.2)
    train = sp.csr_matrix(np.where(mask & ~hide, full, 0.0))
    rmse = {}
    for mode in ["missing", "zero"]:
        est = StreamNMF(k, unobserved=mode, max_iter=20, random_state=0).fit(train)
        pred = est.inverse_transform(est.transform(train))
        rmse[mode] = float(np.sqrt(np.mean((pred[hide] - full[hide]) ** 2)))
    assert rmse["missing"] < 0.5, rmse
    assert rmse["zero"] > 2 * rmse["missing"], rmse
    with pytest.raises(ValueError, match="unobserved"):
        StreamNMF(2, unobserved="maybe").fit(train)
    implicit = StreamNMF(k, unobserved="implicit", confidence=10.0, random_state=0).fit(train)
    assert np.all(np.isfinite(implicit.components_))


def _fit_in_child(queue):
    est = StreamNMF(4, random_state=0, max_iter=5, tol=0, batch_size=256, n_threads=2)
    est.fit(planted())
    queue.put(est.components_)


def test_a_forked_child_fits_after_its_parent():
    # The chunk threads are a pool started on first use. A child made by fork inherits
    # the pool without its threads: it must start its own, not wait for jobs that never
    # run (Python's multiprocessing forks on Linux).
    import multiprocessing as mp
    parent = StreamNMF(4, random_state=0, max_iter=5, tol=0, batch_size=256, n_threads=2)
    parent.fit(planted())
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        child = ctx.Process(target=_fit_in_child, args=(queue,))
        child.start()
    child.join(120)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child's fit hung"
    assert child.exitcode == 0
    np.testing.assert_array_equal(queue.get(timeout=10), parent.components_)
