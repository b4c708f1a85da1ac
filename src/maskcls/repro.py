"""Seeding and determinism: one seed in params drives every random stream."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(enabled: bool) -> None:
    """Bit-identical results on CUDA cost speed (no cuDNN autotuning, deterministic kernels)."""
    if enabled:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before the first CUDA call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    # Deterministic mode also fills every new tensor (torch.empty and friends) with NaN, so that reading memory
    # before writing it shows. That fill took 24% of a CPU training step's time here, and every kernel this
    # project runs writes its outputs before reading them: tests/test_train.py trains with and without the fill
    # and gets the same bytes. (bench/train_throughput.py measures the speed.)
    torch.utils.deterministic.fill_uninitialized_memory = False


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Run torch's CPU math on exactly `threads` threads (0: torch's default, one per core), then restore.

    CPU kernels such as a convolution's or a linear layer's weight gradient split their sums across threads, so
    the thread count changes the rounding, hence the trained weights: a fixed count gives the same bits on
    machines with different core counts.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def worker_init_fn(worker_id: int) -> None:
    """Seed Python and NumPy in a DataLoader worker from torch's per-worker seed (base_seed + worker_id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def derive_seed(seed: int, *names: object) -> int:
    """A stable sub-seed per (stage, model, fold, ...), independent of Python's hash randomisation."""
    import hashlib

    text = ":".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
