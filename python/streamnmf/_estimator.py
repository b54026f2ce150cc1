"""The scikit-learn estimator over the Rust engine (``streamnmf._streamnmf.Model``)."""
import logging
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ._streamnmf import Model

log = logging.getLogger("streamnmf")

_LOSSES = {
    "frobenius": "fro",
    "kullback-leibler": "kl",
    "itakura-saito": "is",
}


def _engine_loss(loss):
    """The engine's name of a scikit-learn style loss (a name or a beta)."""
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)} or a float beta, not {loss!r}")
        return _LOSSES[loss]
    if isinstance(loss, numbers.Real) and not isinstance(loss, bool):
        beta = float(loss)
        return {2.0: "fro", 1.0: "kl", 0.0: "is"}.get(beta, f"beta={beta!r}")
    raise ValueError(f"loss must be a string or a float beta, not {loss!r}")


def _beta(loss):
    name = _engine_loss(loss)
    named = {"fro": 2.0, "kl": 1.0, "is": 0.0}
    return named[name] if name in named else float(name.split("=")[1])


def _engine_data(x):
    """A dense array as it is (the engine reads any strides without copying), a sparse
    matrix as CSR arrays."""
    if sp.issparse(x):
        x = x.tocsr()
        x.sum_duplicates()
        return (x.indptr.astype(np.int64), x.indices.astype(np.int64), x.data, x.shape[1])
    return x


def _divergence(x, w, h, beta):
    """sqrt(2 * D_beta(X | W H)), scikit-learn's reconstruction_err_."""
    from sklearn.decomposition._nmf import _beta_divergence

    return float(_beta_divergence(x, w, h, beta, square_root=True))


class StreamNMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Online (mini-batch) non-negative matrix factorization, X ~= W H.

    A drop-in for ``sklearn.decomposition.MiniBatchNMF``: the dictionary H
    (``components_``) is learned from mini-batches through accumulated statistics, by
    coordinate descent (Frobenius) or multiplicative / coordinate-Newton updates (other
    beta-divergences). Computation runs in Rust with the GIL released; Ctrl-C stops a
    long fit with ``KeyboardInterrupt``.

    Parameters
    ----------
    n_components : int or None
        Rank k. None or "auto": the number of features.
    loss : {"frobenius", "kullback-leibler", "itakura-saito"} or float
        The beta-divergence minimized (a float is beta).
    init : {None, "random", "nndsvd", "nndsvda", "nndsvdar"}
        Dictionary initialization from the first batch (None: NNDSVD for Frobenius,
        NNDSVDa otherwise).
    batch_size : int or None
        Rows per mini-batch (None: the engine's default: for ``fit`` and ``fit_files`` of
        dense data under the Frobenius loss, 6 rows per component or enough for 200
        dictionary updates a pass, within 64..256; of dense data under other losses, 256;
        otherwise 1024).
    max_iter : int or None
        Passes over the data in ``fit`` and ``fit_files``, at most (None: the engine's
        default, 50).
    tol : float
        ``fit`` and ``fit_files`` stop when a pass improves on the best loss so far of a
        fixed sample of about 2048 rows (scored against the dictionary at the end of each
        pass) by less than this share, after a pass that gained less than 4x it (two
        passes in a row above the best stop them too; a loss that went up within the last
        three passes is judged on their trend); 0 runs every pass.
    forget_factor : float
        rho in (0, 1]: past statistics are multiplied by it at every batch.
    decay : float or None
        Down-weights early batches within a pass (None: the engine's default).
    alpha_W, alpha_H : float, or "same" for alpha_H
        Regularization of W and H (elastic net with ``l1_ratio``), scaled as in
        scikit-learn (by the number of features and of samples).
    l1_ratio : float
        Share of L1 in the regularization.
    random_state : int, RandomState or None
        Seed of the initialization.
    n_threads : int or None
        Threads per batch (None: all cores). Never changes the result.
    dtype : None, "float32" or "float64"
        The engine's float type; None follows the data (float32 for streams and files).
    verbose : int
        When > 0: logs each pass of ``fit`` to the ``streamnmf`` logger, and shows a tqdm
        progress bar (if installed) in ``fit_stream`` and ``fit_files``. The engine's own
        messages always go to that logger (at INFO and above).
    unobserved : {"zero", "missing", "implicit"}
        What an entry a sparse matrix does not store means: a zero (classic NMF), a
        missing value (the loss covers stored entries only: explicit ratings; predict
        them with ``inverse_transform``), or implicit feedback (stored entries are
        interactions weighted by ``1 + confidence * value``).
    confidence : float
        The implicit-feedback confidence alpha.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    n_components_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when the data had column names
    reconstruction_err_ : float
        sqrt(2 D(X | W H)) with the fit's own codes W.
    n_iter_ : int
        Passes made.
    n_steps_ : int
        Mini-batches learned from.
    """

    def __init__(self, n_components=None, *, loss="frobenius", init=None, batch_size=None,
                 max_iter=None, tol=1e-3, forget_factor=1.0, decay=None, alpha_W=0.0,
                 alpha_H="same", l1_ratio=0.0, random_state=None, n_threads=None, dtype=None,
                 verbose=0, unobserved="zero", confidence=40.0):
        self.n_components = n_components
        self.loss = loss
        self.init = init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.forget_factor = forget_factor
        self.decay = decay
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.random_state = random_state
        self.n_threads = n_threads
        self.dtype = dtype
        self.verbose = verbose
        self.unobserved = unobserved
        self.confidence = confidence

    # ------------------------------------------------------------------ engine
    def _seed(self):
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state) % (1 << 63)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _engine_unobserved(self):
        if self.unobserved in ("zero", "missing"):
            return self.unobserved
        if self.unobserved == "implicit":
            return f"implicit:{float(self.confidence)!r}"
        raise ValueError(f"unobserved must be zero, missing or implicit, not {self.unobserved!r}")

    def _explicit_rank(self, method):
        """The number of features to hand ``_new_model`` where the data's width is not
        known up front: n_components itself, which must then be given."""
        k = self.n_components
        if k is None or (isinstance(k, str) and k == "auto"):
            raise ValueError(f"{method} needs n_components: the data's width is not known up front")
        return k

    def _new_model(self, n_features, dtype):
        k = self.n_components
        if k is None or (isinstance(k, str) and k == "auto"):
            k = n_features
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"n_components must be a positive integer, None or 'auto', not {k!r}")
        alpha_h = self.alpha_W if isinstance(self.alpha_H, str) and self.alpha_H == "same" \
            else self.alpha_H
        for name, v in [("alpha_W", self.alpha_W), ("alpha_H", alpha_h)]:
            if not isinstance(v, numbers.Real) or v < 0:
                raise ValueError(f"{name} must be a non-negative float, not {v!r}")
        # The engine's names (max_passes, batch size) are not the estimator's.
        for name, v in [("max_iter", self.max_iter), ("batch_size", self.batch_size)]:
            if v is not None and (not isinstance(v, numbers.Integral) or isinstance(v, bool)
                                  or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {v!r}")
        if (not isinstance(self.tol, numbers.Real) or isinstance(self.tol, bool)
                or not self.tol >= 0 or self.tol == float("inf")):
            raise ValueError(f"tol must be a finite non-negative float, not {self.tol!r}")
        params = dict(
            loss=_engine_loss(self.loss),
            init=self.init or "auto",
            batch_size=self.batch_size,
            max_passes=self.max_iter,
            pass_tol=self.tol,
            forget=self.forget_factor,
            decay=self.decay,
            alpha_w=float(self.alpha_W) or None,
            alpha_h=float(alpha_h) or None,
            l1_ratio=self.l1_ratio,
            seed=self._seed(),
            unobserved=self._engine_unobserved(),
        )
        dtype = np.dtype(self.dtype or dtype).name
        return Model(int(k), dtype=dtype, threads=self.n_threads, **params)

    def _validate(self, x, reset):
        dtypes = [np.float64, np.float32]
        if not reset and hasattr(self, "_model"):
            dtypes = [np.dtype(self._model.dtype).type]
        x = validate_data(self, x, accept_sparse=("csr", "csc"), dtype=dtypes, reset=reset)
        check_non_negative(x, f"{type(self).__name__} (input X)")
        if self.dtype is not None and (reset or not hasattr(self, "_model")):
            x = x.astype(self.dtype, copy=False)
        return x

    def _fitted(self, model, n_features=None):
        self._model = model
        self.components_ = model.components()
        self.n_components_ = model.n_components
        self.n_steps_ = model.batches_seen
        if n_features is not None:
            self.n_features_in_ = n_features
        return self

    def _log_passes(self, report):
        if self.verbose:
            for i, v in enumerate(report["pass_losses"]):
                log.info("pass %d: mean loss per row %.6g", i + 1, v)

    # ------------------------------------------------------------------ scikit-learn API
    def fit(self, X, y=None, **params):
        """Learns H from X (array-like or sparse, non-negative), from scratch."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None, W=None, H=None):
        """Learns H and returns the codes the fit itself produced (each row's codes from
        the last pass, against the dictionary of their batch), not a second solve."""
        x = self._validate(X, reset=True)
        model = self._new_model(x.shape[1], x.dtype)
        w, report = model.fit_transform(_engine_data(x))
        self._log_passes(report)
        self._fitted(model)
        self.n_iter_ = report["passes"]
        self.reconstruction_err_ = _divergence(x, w, self.components_, _beta(self.loss))
        return w

    def partial_fit(self, X, y=None, W=None, H=None):
        """Learns from one mini-batch, keeping everything learned so far. An Arrow
        stream (an object with ``__arrow_c_stream__`` but no ``__array__``: a pyarrow
        ``RecordBatchReader`` or ``Table``) goes through ``fit_stream``."""
        if hasattr(X, "__arrow_c_stream__") and not hasattr(X, "__array__"):
            return self.fit_stream(X)
        first = not hasattr(self, "_model")
        x = self._validate(X, reset=first)
        model = self._new_model(x.shape[1], x.dtype) if first else self._model
        model.partial_fit(_engine_data(x))
        self._fitted(model)
        self.n_iter_ = getattr(self, "n_iter_", 0) if not first else 0
        return self

    def transform(self, X):
        """Codes W of X with H fixed."""
        check_is_fitted(self)
        x = self._validate(X, reset=False)
        return self._model.transform(_engine_data(x))

    def inverse_transform(self, X=None, *, Xt=None):
        """W H for codes W (the data's reconstruction)."""
        w = Xt if X is None else X
        check_is_fitted(self)
        w = check_array(w, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32])
        if w.shape[1] != self.n_components_:
            raise ValueError(f"codes have {w.shape[1]} columns, the model {self.n_components_} components")
        return w @ self.components_

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def recommend(self, X, n=10, *, exclude_seen=True):
        """The ``n`` best items (columns) for each row of ``X`` (users' interactions,
        typically sparse): ``(items, scores)``, each of shape (rows, n), best first.
        Items a row already has are skipped unless ``exclude_seen=False``; a row with
        fewer than ``n`` candidates is padded with item -1 and score NaN. Users the model
        has never seen are folded in by ``transform`` (their codes against H)."""
        check_is_fitted(self)
        x = self._validate(X, reset=False)
        return self._model.recommend(_engine_data(x), int(n), bool(exclude_seen))

    # ------------------------------------------------------------------ streams and files
    def _progress(self):
        """A tqdm bar's ``update`` when ``verbose`` and tqdm is installed, else None."""
        if not self.verbose:
            return None, None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None, None
        bar = tqdm(unit=" rows", unit_scale=True, desc="streamnmf")
        return bar, bar.update
    def _adopt_names(self, names):
        self.n_features_in_ = self._model.n_features
        if names and any(n != f"f{i}" for i, n in enumerate(names)):
            self.feature_names_in_ = np.asarray(names, dtype=object)

    def fit_stream(self, source, *, columns=None):
        """Learns from an Arrow stream: anything with ``__arrow_c_stream__`` (a pyarrow
        ``RecordBatchReader``, ``Table`` or dataset scanner, a polars ``DataFrame``), read
        once through the threaded pipeline with bounded memory. Continues a fitted
        model, like ``partial_fit`` over every batch."""
        if not hasattr(self, "_model"):
            self._model = self._new_model(self._explicit_rank("fit_stream"), "float32")
        bar, progress = self._progress()
        try:
            report = self._model.fit_stream(source, columns=columns, batch_size=self.batch_size,
                                            progress=progress)
        finally:
            if bar is not None:
                bar.close()
        self._fitted(self._model)
        self._adopt_names(self._model.feature_names)
        self.n_iter_ = getattr(self, "n_iter_", 0)
        log.info("fit_stream: %d rows in %d batches, %.2f s", report["rows"], report["batches"],
                 report["seconds"])
        return self

    def fit_files(self, paths, *, columns=None, layout="dense", width=None):
        """Learns from Parquet / Arrow IPC files from scratch, as the command-line tool's
        ``fit`` does: up to ``max_iter`` passes (default 50, stopping at convergence: see
        ``tol``) through the threaded pipeline.
        ``layout``: "dense", "triplets:ROW,COL,VALUE" or "list:COLUMN"."""
        if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
            paths = [paths]
        model = self._new_model(self._explicit_rank("fit_files"), "float32")
        bar, progress = self._progress()
        try:
            report = model.fit_files([str(p) for p in paths], columns=columns, layout=layout,
                                     width=width, epochs=self.max_iter or 50,
                                     batch_size=self.batch_size, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        for attr in ("feature_names_in_", "n_iter_", "reconstruction_err_"):
            self.__dict__.pop(attr, None)
        self._fitted(model)
        self._adopt_names(model.feature_names)
        self.n_iter_ = report["epochs"]
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Writes the model file the command-line tool reads (``streamnmf transform
        --model``, ``inspect``, ``recommend``)."""
        check_is_fitted(self)
        if hasattr(self, "feature_names_in_"):
            self._model.feature_names = [str(n) for n in self.feature_names_in_]
        self._model.save(str(path))

    @classmethod
    def load(cls, path):
        """A fitted estimator from a model file (written by ``save`` or the CLI)."""
        model = Model.load(str(path))
        import json

        p = json.loads(model.params_json)
        loss = p["loss"]
        if isinstance(loss, dict):
            loss = float(loss["Beta"])
        else:
            loss = {"Frobenius": "frobenius", "KullbackLeibler": "kullback-leibler",
                    "ItakuraSaito": "itakura-saito"}[loss]
        est = cls(n_components=model.n_components, loss=loss, batch_size=p.get("batch_size"),
                  max_iter=p["max_passes"], tol=p["pass_tol"], forget_factor=p["forget"],
                  decay=p.get("decay"), random_state=p["seed"], dtype=model.dtype)
        est._fitted(model, n_features=model.n_features)
        est._adopt_names(model.feature_names)
        est.n_iter_ = len(model.loss_history)
        return est

    def __getstate__(self):
        # A copy: object.__getstate__ hands out the instance's own __dict__.
        state = dict(super().__getstate__())
        model = state.pop("_model", None)
        if model is not None:
            state["_model_bytes"] = model.to_bytes()
        return state

    def __setstate__(self, state):
        data = state.pop("_model_bytes", None)
        super().__setstate__(state)
        if data is not None:
            self._model = Model.from_bytes(data)
