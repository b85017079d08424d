"""Test-wide settings: offline switches for every hub-aware library, paths and seeds."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# No test may reach the network: every hub-aware library's offline switch, before any import of them.
from data_gen.offline import set_offline_env  # noqa: E402  (a tiny module: os and tempfile only)

_YOLO_CONFIG = tempfile.mkdtemp(prefix="acsar-yolo-config-")   # this session's own: test runs side by side
atexit.register(shutil.rmtree, _YOLO_CONFIG, ignore_errors=True)  # do not share ultralytics' settings file
set_offline_env(Path(_YOLO_CONFIG))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def ntu_samples_dir() -> Path:
    path = SHARED_DATA / "ntu_samples"
    if not path.is_dir():
        pytest.skip(f"real NTU samples not available ({path} is absent; only developers have ../shared/data)")
    return path


@pytest.fixture(scope="session")
def nwucla_dir() -> Path:
    path = SHARED_DATA / "nw_ucla"
    if not path.is_dir():
        pytest.skip(f"NW-UCLA not available ({path} is absent; only developers have ../shared/data)")
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
