import os
import sys
from pathlib import Path

import pytest

from maskcls import portable

# The stages run in portable CPU mode by default (runtime.portable): so do the tests that train in this process,
# so that their bytes compare with a stage's, and the CLI called in-process finds the mode it expects.
portable.apply(True)
import torch  # noqa: E402  (after the CPU mode is in place)

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# DVC stages call `maskcls`: make this environment's console scripts visible to subprocesses.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
# Two cores are shared by the test workers; more threads per worker only thrash.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
