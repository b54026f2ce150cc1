"""streamnmf: streaming, online (mini-batch) non-negative matrix factorization.

``StreamNMF`` is a scikit-learn estimator (``fit``, ``partial_fit``, ``transform``,
``fit_transform``, ``inverse_transform``) over a Rust engine that also learns from Arrow
streams (``fit_stream``) and Parquet / Arrow IPC files (``fit_files``) through a threaded
reader -> solver -> updater pipeline, with the GIL released. Models are the command-line
tool's files: ``save`` / ``StreamNMF.load`` and pickle both use that format.

>>> import numpy as np
>>> from streamnmf import StreamNMF
>>> x = np.random.default_rng(0).random((200, 12))
>>> model = StreamNMF(n_components=3, random_state=0).fit(x)
>>> model.transform(x).shape
(200, 3)
"""
from ._estimator import StreamNMF
from ._streamnmf import __version__

__all__ = ["StreamNMF", "__version__"]
