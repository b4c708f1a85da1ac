"""Datasets and loaders over the cached uint8 arrays (data/cache), deterministic down to the augmentations.

What a training epoch sees depends only on (seed, epoch) and the params, never on how many processes load it:
- the order (a shuffle, or weighted draws with replacement) comes from a torch.Generator seeded with
  loader_seed(seed, epoch), so a run resumed at epoch e sees the same order as one that never stopped;
- every draw carries its own augmentation seed, derived from (seed, epoch, its place in the epoch). Albumentations
  2.x keeps its own RNG inside each Compose and ignores the global seeds, so the dataset reseeds its Composes
  with the draw's seed before augmenting it. Which loader worker augments a sample, and how many workers there
  are, changes nothing: runtime.num_workers is a speed setting, not part of the experiment, and a DDP run's
  ranks augment their shares of a global batch exactly as one process augments the whole batch.

A run builds one `TrainLoader` and asks it for each epoch's batches (`TrainLoader.epoch`): its DataLoader workers
start once per run, not once per epoch.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from maskcls.errors import ParamsError
from maskcls.params import MinorityParams, Params
from maskcls.repro import derive_seed, generator, worker_init_fn
from maskcls.training.distributed import GlobalBatchShard, World, check_batch
from maskcls.training.runtime import loader_workers, resolve_device
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

    def __getitem__(self, key: int | tuple[int, int]):
        """key: the sample's index, or (index, augmentation seed), what `TrainDraws` yields. An augmented
        dataset needs the seed: its Composes are reseeded with it, so the sample looks the same in any process."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None and (self.augment is not None or self.minority_augment is not None):
            raise TypeError("an augmented CachedDataset is indexed by (index, augmentation seed): see TrainDraws")
        # A private, writable copy: the cache is a read-only memory map and some transforms work in place.
        image = np.array(self.images[self.rows[i]])
        if self.augment is not None:
            self.augment.set_random_seed(seed)
            image = self.augment(image=image)["image"]
        if self.minority_augment is not None and self.minority_mask[i]:
            self.minority_augment.set_random_seed(derive_seed(seed, "minority"))
            image = self.minority_augment(image=image)["image"]
        # CHW, contiguous: the collated batch goes to the device as is and `normalize` works on it there.
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, {task: int(labels[i]) for task, labels in self.targets.items()}

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
    """The seed of one epoch's order and augmentations: new each epoch, the same on every rerun."""
    return derive_seed(seed, "train-loader", epoch)


class TrainDraws(Sampler[tuple[int, int]]):
    """One epoch's draws, as (sample index, augmentation seed), in this rank's order; `set_epoch` picks the epoch.

    The global order is what one process draws from loader_seed(seed, epoch): a shuffle of the n samples, or n
    weighted draws with replacement. Draw p's augmentation seed is derived from (epoch seed, p). In a DDP world
    each rank yields its share of every global batch (`GlobalBatchShard`), seeds included, so the ranks' batch i
    together hold exactly one process's batch i, augmented alike.
    """

    def __init__(self, n: int, weights: np.ndarray | None, global_batch: int, seed: int, world: World = World()):
        self.n = n
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.global_batch = global_batch
        self.seed = seed
        self.world = world
        # A last batch of one sample breaks BatchNorm in training; dropping the remainder costs < 1 batch.
        self.drop_last = n > global_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self, draws: Sequence) -> GlobalBatchShard:
        return GlobalBatchShard(draws, self.global_batch, self.world, self.drop_last)

    def __iter__(self):
        epoch_seed = loader_seed(self.seed, self.epoch)
        g = generator(epoch_seed)
        if self.weights is None:
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = torch.multinomial(self.weights, self.n, True, generator=g).tolist()
        draws = [(i, derive_seed(epoch_seed, "draw", p)) for p, i in enumerate(order)]
        return iter(self._shard(draws))

    def __len__(self) -> int:
        return len(self._shard(range(self.n)))


class TrainLoader:
    """A run's training batches, epoch after epoch: augmented, shuffled or weighted per train.minority.

    `targets` are aligned with `rows`. Batches: (uint8 (B, 3, H, W), {task: int64 (B,)}); in a DDP world, this
    rank's share of each global batch of `train.batch_size`. One DataLoader serves every epoch, so its workers
    (runtime.num_workers) start once per run; which worker loads what changes no byte (see the module's doc).
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        targets: Mapping[str, np.ndarray],
        params: Params,
        seed: int,
        world: World = World(),
    ):
        tp = params.train
        minority = tp.minority
        # Minority handling belongs to the models that predict its task (the seed resampled old age for the age
        # model only); a mask-only model of the same experiment trains on the plain data.
        mode = minority.mode if minority.task in targets else "none"
        # Every draw reseeds the Composes (CachedDataset): these seeds only fill them until the first draw.
        augment = build_augment(params.aug.train, derive_seed(seed, "augment"), "aug.train", images.shape[1:3])
        minority_augment = None
        is_copy = None
        if mode == "resample":
            rows, targets, is_copy = resample_minority(rows, targets, minority)
            minority_augment = build_augment(
                params.aug.minority, derive_seed(seed, "minority"), "aug.minority", images.shape[1:3]
            )
        self.dataset = CachedDataset(images, rows, targets, augment, minority_augment, is_copy)
        weights = balanced_sample_weights(_task_labels(self.dataset.targets, minority)) if mode == "weighted" else None
        self.draws = TrainDraws(len(self.dataset), weights, tp.batch_size, seed, world)
        workers = loader_workers(params.runtime, resolve_device(params.runtime.device))
        self.loader = DataLoader(
            self.dataset,
            batch_size=check_batch(tp.batch_size, world),
            sampler=self.draws,
            num_workers=workers,
            worker_init_fn=worker_init_fn,
            generator=generator(derive_seed(seed, "workers")),
            persistent_workers=workers > 0,
            pin_memory=_pin_memory(params.runtime.device),
        )

    def epoch(self, epoch: int) -> DataLoader:
        """The batches of epoch `epoch` (0-based): iterate the returned loader once."""
        self.draws.set_epoch(epoch)
        return self.loader

    def __len__(self) -> int:
        """Steps per epoch: the same every epoch (resampling is fixed, weighted draws are n per epoch)."""
        return len(self.loader)


def build_train_loader(
    images: np.ndarray,
    rows: np.ndarray,
    targets: Mapping[str, np.ndarray],
    params: Params,
    seed: int,
    epoch: int,
    world: World = World(),
) -> DataLoader:
    """The batches of one epoch alone (0-based): what `TrainLoader(...).epoch(epoch)` yields, for a look at a
    single epoch (tests, benchmarks). Training keeps one TrainLoader for the whole run."""
    return TrainLoader(images, rows, targets, params, seed, world).epoch(epoch)


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
        # Validation iterates the same loader every epoch: its workers start once.
        persistent_workers=num_workers > 0,
        pin_memory=_pin_memory("auto"),
    )


def _pin_memory(device: str) -> bool:
    # Page-locked batches make the host-to-GPU copy asynchronous; useless (and a warning) without CUDA.
    return device != "cpu" and torch.cuda.is_available()
