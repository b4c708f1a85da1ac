import os

import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Two cores are shared by the test workers; more threads per worker only thrash.
torch.set_num_threads(1)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
