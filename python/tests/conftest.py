import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def cli():
    """The streamnmf binary built by `cargo test --release` / `cargo build --release`."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.environ.get("STREAMNMF_BIN") or os.path.join(target, "release", "streamnmf")
    if not os.path.exists(path):
        path = shutil.which("streamnmf")
    if not path:
        pytest.fail("the streamnmf binary is not built (cargo build --release)")
    return path
