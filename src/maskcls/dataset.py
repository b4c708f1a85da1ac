"""Datasets and loaders over the cached uint8 arrays (data/cache), deterministic down to the augmentations.

What a training epoch sees depends only on (seed, epoch, num_workers) and the params:
- the shuffle order (or weighted draw) comes from a torch.Generator seeded with derive_seed(seed, epoch), so a
  run resumed at epoch e sees the same order as one that never stopped;
- albumentations 2.x keeps its own RNG inside each Compose and ignores the global seeds. With num_workers=0 the
  Compose is seeded from (seed, epoch); in DataLoader workers every worker reseeds its copy from torch's
  per-worker seed (base seed drawn from the same generator + worker id). Which images a worker augments
  depends on num_workers, so num_workers changes the augmentation stream, hence results: it is part of the
  experiment (runtime.num_workers in params), and runs are comparable only with the same value.

Build one train loader per epoch (`build_train_loader(..., epoch)`): iterating one loader twice draws a new
base seed and gives a different stream.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler, get_worker_info

from maskcls.errors import ParamsError
from maskcls.params import MinorityParams, Params, RuntimeParams
from maskcls.repro import derive_seed, generator
from maskcls.repro import worker_init_fn as seed_worker_globals
from maskcls.training.distributed import GlobalBatchShard, World
from maskcls.transforms import build_augment

if TYPE_CHECKING:
    import albumentations as A


class CachedDataset(Dataset):
    """Samples `rows` of the cached `images` array: (uint8 CHW tensor, {task: int target}).

    images: (N, H, W, 3) uint8, usually the memory-mapped cache (`stages.cache.open_cache`).
    rows: cache rows of the samples, in sample order (a row may repeat: resampled copies).
    targets: task -> labels aligned with `rows` (empty for prediction).
    augment: applied to every sample; minority_augment: applied on top of it where minority_mask is set.
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: Sequence[int] | np.ndarray,
        targets: Mapping[str, np.ndarray] | None = None,
        augment: A.Compose | None = None,
        minority_augment: A.Compose | None = None,
        minority_mask: Sequence[bool] | np.ndarray | None = None,
    ):
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = {k: np.asarray(v, dtype=np.int64) for k, v in (targets or {}).items()}
        for task, labels in self.targets.items():
            if len(labels) != len(self.rows):
                raise ValueError(f"targets['{task}'] has {len(labels)} labels for {len(self.rows)} rows")
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= len(images)):
            raise ValueError(f"rows must lie in 0..{len(images) - 1}; the cache is older than the index?")
        self.minority_mask = (
            np.zeros(len(self.rows), dtype=bool) if minority_mask is None else np.asarray(minority_mask, dtype=bool)
        )
        if len(self.minority_mask) != len(self.rows):
            raise ValueError(f"minority_mask has {len(self.minority_mask)} entries for {len(self.rows)} rows")
        self.augment = augment
        self.minority_augment = minority_augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        # A private, writable copy: the cache is a read-only memory map and some transforms work in place.
        image = np.array(self.images[self.rows[i]])
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        if self.minority_augment is not None and self.minority_mask[i]:
            image = self.minority_augment(image=image)["image"]
        # CHW, contiguous: the collated batch goes to the device as is and `normalize` works on it there.
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, {task: int(labels[i]) for task, labels in self.targets.items()}

    def reseed(self, seed: int) -> None:
        """Reseed the augmentations' own RNGs (albumentations ignores numpy's and torch's seeds)."""
        if self.augment is not None:
            self.augment.set_random_seed(derive_seed(seed, "augment"))
        if self.minority_augment is not None:
            self.minority_augment.set_random_seed(derive_seed(seed, "minority"))

    # A memory-mapped cache travels to spawned workers as its file name, not as a copy of every image.
    def __getstate__(self):
        return {**self.__dict__, "images": _by_name(self.images)}

    def __setstate__(self, state):
        self.__dict__.update({**state, "images": _reopened(state["images"])})


def _by_name(images):
    """A memory-mapped array as what reopens it (its file, dtype, shape, offset); anything else as it is."""
    if isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap) and images.filename:
        return ("memmap", images.filename, images.dtype.str, images.shape, images.offset)
    return images


def _reopened(images):
    if isinstance(images, tuple) and images and images[0] == "memmap":
        _, filename, dtype, shape, offset = images
        return np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset)
    return images


class StackedImages:
    """Several (N_i, H, W, 3) uint8 image arrays read as one, without copying: row r of the stack is row r of the
    first array, row len(first) + r row r of the second, and so on. The second round of pseudo-labels trains on the
    train cache followed by the eval cache (`maskcls.training.fold`). Only single rows are read (what
    `CachedDataset` does); memory-mapped parts travel to loader workers by their file names."""

    def __init__(self, *parts: np.ndarray):
        if not parts:
            raise ValueError("StackedImages needs at least one array")
        first = parts[0]
        for part in parts:
            if part.ndim != 4 or part.shape[1:] != first.shape[1:] or part.dtype != first.dtype:
                raise ValueError(
                    f"arrays of shape (N, H, W, 3) and one dtype only: {first.dtype} {tuple(first.shape)} and "
                    f"{part.dtype} {tuple(part.shape)}; rebuild the cache (`dvc repro cache`)"
                )
        self.parts = tuple(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), *first.shape[1:])
        self.dtype = first.dtype
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, row) -> np.ndarray:
        if not isinstance(row, int | np.integer):
            raise TypeError(f"StackedImages reads one row at a time, got {type(row).__name__}")
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} outside 0..{len(self) - 1}")
        part = int(np.searchsorted(self.starts, row, side="right")) - 1
        return self.parts[part][row - self.starts[part]]

    def __getstate__(self):
        return {**self.__dict__, "parts": tuple(_by_name(p) for p in self.parts)}

    def __setstate__(self, state):
        self.__dict__.update({**state, "parts": tuple(_reopened(p) for p in state["parts"])})


def worker_init_fn(worker_id: int) -> None:
    """Seed a DataLoader worker: Python and NumPy (maskcls.repro), then the dataset's augmentations.

    torch.initial_seed() in a worker is the loader's base seed + worker id, and the base seed comes from the
    loader's seeded generator, so the stream depends on (seed, epoch, worker id, num_workers) only. Without
    this, every worker would start from the same pickled Compose state and repeat the others' augmentations.
    """
    seed_worker_globals(worker_id)
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, CachedDataset):
        info.dataset.reseed(torch.initial_seed() % 2**63)


def resample_minority(
    rows: np.ndarray, targets: Mapping[str, np.ndarray], minority: MinorityParams
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Append `factor` copies of every sample whose `task` target is `label`; returns (rows, targets, is_copy).

    The seed's trick: the copies, and only they, get the minority augmentation.
    """
    labels = _task_labels(targets, minority)
    picked = np.repeat(np.flatnonzero(labels == minority.label), minority.factor)
    rows = np.asarray(rows, dtype=np.int64)
    out_rows = np.concatenate([rows, rows[picked]])
    out_targets = {k: np.concatenate([np.asarray(v), np.asarray(v)[picked]]) for k, v in targets.items()}
    is_copy = np.concatenate([np.zeros(len(rows), dtype=bool), np.ones(len(picked), dtype=bool)])
    return out_rows, out_targets, is_copy


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights 1 / (count of its class): every class is drawn equally often in expectation."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def _task_labels(targets: Mapping[str, np.ndarray], minority: MinorityParams) -> np.ndarray:
    if minority.task not in targets:
        raise ParamsError(
            f"train.minority.task: '{minority.task}' is not a target of this model "
            f"(it has {', '.join(sorted(targets)) or 'none'}); set train.minority.mode: none for it"
        )
    return np.asarray(targets[minority.task])


def loader_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle and augmentation streams: new each epoch, the same on every rerun."""
    return derive_seed(seed, "train-loader", epoch)


def build_train_loader(
    images: np.ndarray,
    rows: np.ndarray,
    targets: Mapping[str, np.ndarray],
    params: Params,
    seed: int,
    epoch: int,
    world: World = World(),
) -> DataLoader:
    """The loader of one training epoch (0-based): augmented, shuffled or weighted per train.minority.

    `targets` are aligned with `rows`. Batches: (uint8 (B, 3, H, W), {task: int64 (B,)}). In a DDP world the
    loader yields this rank's share of each global batch of `train.batch_size` (`sharded_loader`).
    """
    tp = params.train
    minority = tp.minority
    # Minority handling belongs to the models that predict its task (the seed resampled old age for the age
    # model only); a mask-only model of the same experiment trains on the plain data.
    mode = minority.mode if minority.task in targets else "none"
    epoch_seed = loader_seed(seed, epoch)
    augment = build_augment(params.aug.train, derive_seed(epoch_seed, "augment"), "aug.train", images.shape[1:3])
    minority_augment = None
    is_copy = None
    if mode == "resample":
        rows, targets, is_copy = resample_minority(rows, targets, minority)
        minority_augment = build_augment(
            params.aug.minority, derive_seed(epoch_seed, "minority"), "aug.minority", images.shape[1:3]
        )
    dataset = CachedDataset(images, rows, targets, augment, minority_augment, is_copy)

    weights = balanced_sample_weights(_task_labels(dataset.targets, minority)) if mode == "weighted" else None
    if world.distributed:
        return sharded_loader(dataset, weights, tp.batch_size, params.runtime, epoch_seed, world)
    g = generator(epoch_seed)
    sampler = None
    if weights is not None:
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(dataset), generator=g)
    return DataLoader(
        dataset,
        batch_size=tp.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=g,
        num_workers=params.runtime.num_workers,
        worker_init_fn=worker_init_fn,
        persistent_workers=False,
        pin_memory=_pin_memory(params.runtime.device),
        # A last batch of one sample breaks BatchNorm in training; dropping the remainder costs < 1 batch.
        drop_last=len(dataset) > tp.batch_size,
    )


def sharded_loader(
    dataset: CachedDataset, weights, batch_size: int, rt: RuntimeParams, epoch_seed: int, world: World
) -> DataLoader:
    """This rank's loader of a DDP epoch: every rank draws the global order (a shuffle, or weighted draws with
    replacement) that one process's loader draws, and takes its share of each global batch, so the ranks' batch i
    together hold exactly one process's batch i. The workers' seeds differ per rank: augmentations are per-rank
    streams."""
    # The generator calls of the one-process loader, in its order: DataLoader draws the workers' base seed when
    # an epoch starts, then the sampler draws the order (tests/test_distributed.py compares the two loaders).
    g = generator(epoch_seed)
    torch.empty((), dtype=torch.int64).random_(generator=g)
    n = len(dataset)
    if weights is None:
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = torch.multinomial(torch.as_tensor(weights, dtype=torch.double), n, True, generator=g).tolist()
    sampler = GlobalBatchShard(order, batch_size, world, drop_last=len(dataset) > batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size // world.size,
        sampler=sampler,
        generator=generator(derive_seed(epoch_seed, "rank", world.rank)),
        num_workers=rt.num_workers,
        worker_init_fn=worker_init_fn,
        persistent_workers=False,
        pin_memory=_pin_memory(rt.device),
    )


def build_eval_loader(
    images: np.ndarray,
    rows: np.ndarray,
    batch_size: int,
    num_workers: int,
    targets: Mapping[str, np.ndarray] | None = None,
) -> DataLoader:
    """Validation and prediction: rows in the given order, no augmentation. Targets (aligned with rows) optional."""
    return DataLoader(
        CachedDataset(images, rows, targets),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn,
        persistent_workers=False,
        pin_memory=_pin_memory("auto"),
    )


def _pin_memory(device: str) -> bool:
    # Page-locked batches make the host-to-GPU copy asynchronous; useless (and a warning) without CUDA.
    return device != "cpu" and torch.cuda.is_available()
