import dataclasses
import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from maskcls.dataset import (
    CachedDataset,
    TrainLoader,
    balanced_sample_weights,
    build_eval_loader,
    build_train_loader,
    resample_minority,
)
from maskcls.params import AugParams, AugSpec, MinorityParams, Params, RuntimeParams, TrainParams
from maskcls.transforms import build_augment

N = 40
MINORITY = np.arange(N) % 10 == 3  # rows 3, 13, 23, 33 are "old"


@pytest.fixture
def images(rng):
    return rng.integers(0, 256, (N, 16, 12, 3), dtype=np.uint8)


@pytest.fixture
def targets():
    return {"age": np.where(MINORITY, 2, 0), "gender": np.arange(N) % 2}


def make_params(num_workers: int = 0, **train):
    aug = AugParams(
        train=[AugSpec("HorizontalFlip"), AugSpec("RandomBrightnessContrast", {"p": 0.8})],
        minority=[AugSpec("Affine", {"rotate": [-20, 20], "p": 1.0})],
    )
    train.setdefault("batch_size", 8)
    runtime = RuntimeParams(num_workers=num_workers)
    return Params(aug=aug, train=dataclasses.replace(TrainParams(), **train), runtime=runtime)


class Marker:
    """A deterministic stand-in for an albumentations Compose: writes `value` into one channel."""

    def __init__(self, channel, value):
        self.channel, self.value = channel, value

    def __call__(self, image):
        image = image.copy()
        image[..., self.channel] = self.value
        return {"image": image}

    def set_random_seed(self, seed):
        pass


def test_resample_copies_get_the_minority_augment_on_top(images, targets):
    minority = MinorityParams(mode="resample", task="age", label=2, factor=3)
    rows, tgts, is_copy = resample_minority(np.arange(N), targets, minority)
    counts = Counter(rows.tolist())
    assert all(counts[r] == (4 if MINORITY[r] else 1) for r in range(N))
    assert is_copy.sum() == 3 * MINORITY.sum() and not is_copy[:N].any()
    assert (tgts["age"][is_copy] == 2).all() and len(tgts["gender"]) == len(rows)

    ds = CachedDataset(images, rows, tgts, augment=Marker(1, 7), minority_augment=Marker(2, 9), minority_mask=is_copy)
    for i in range(len(ds)):
        x, y = ds[(i, 0)]
        assert x.dtype == torch.uint8 and x.shape == (3, 16, 12)
        assert (x[1] == 7).all()  # every sample gets the train augment
        assert (x[2] == 9).all() == bool(is_copy[i])  # only copies get the minority one
        assert (x[0] == torch.from_numpy(images[rows[i], :, :, 0])).all()
        assert y == {"age": int(tgts["age"][i]), "gender": int(tgts["gender"][i])}


def test_train_loader_resamples(images, targets):
    params = make_params(minority=MinorityParams(mode="resample", factor=2))
    loader = build_train_loader(images, np.arange(N), targets, params, seed=0, epoch=0)
    assert len(loader.dataset) == N + 2 * MINORITY.sum()
    assert loader.dataset.minority_augment is not None


def test_weighted_sampler_favours_the_minority(images, targets):
    params = make_params(minority=MinorityParams(mode="weighted"), batch_size=N)
    weights = balanced_sample_weights(targets["age"])
    assert weights[MINORITY].sum() == pytest.approx(weights[~MINORITY].sum())
    ages = torch.cat(
        [
            y["age"]
            for epoch in range(10)
            for _, y in build_train_loader(images, np.arange(N), targets, params, 0, epoch)
        ]
    )
    assert 0.35 < (ages == 2).float().mean() < 0.65  # ~0.5 drawn, against 0.1 in the data


def test_models_without_the_minority_task_train_on_plain_data(images, targets):
    params = make_params(minority=MinorityParams(mode="resample", task="mask"))  # targets have no mask
    loader = build_train_loader(images, np.arange(N), targets, params, seed=0, epoch=0)
    assert len(loader.dataset) == N and not loader.dataset.minority_mask.any()


def batches(loader):
    return [(x.clone(), {k: v.clone() for k, v in y.items()}) for x, y in loader]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and ya.keys() == yb.keys() and all(torch.equal(ya[k], yb[k]) for k in ya)


@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_and_epoch_same_batches(images, targets, workers):
    params = make_params(num_workers=workers, minority=MinorityParams(mode="resample"))
    rows = np.arange(N)
    first = batches(build_train_loader(images, rows, targets, params, seed=5, epoch=3))
    again = batches(build_train_loader(images, rows, targets, params, seed=5, epoch=3))
    assert_same(first, again)
    later = batches(build_train_loader(images, rows, targets, params, seed=5, epoch=4))
    assert not torch.equal(first[0][1]["gender"], later[0][1]["gender"]) or not torch.equal(first[0][0], later[0][0])


def test_epochs_shuffle_differently(images, targets):
    params = make_params()
    order = [
        torch.cat(
            [
                y["gender"] * 1000 + y["age"]
                for _, y in build_train_loader(
                    images, np.arange(N), {"gender": np.arange(N), "age": targets["age"]}, params, 0, e
                )
            ]
        )
        for e in (0, 1)
    ]
    assert not torch.equal(order[0], order[1])


def test_workers_do_not_repeat_each_other(rng):
    same = np.repeat(rng.integers(0, 256, (1, 16, 12, 3), dtype=np.uint8), 16, axis=0)  # 16 identical photos
    params = dataclasses.replace(
        make_params(num_workers=2, batch_size=4), aug=AugParams(train=[AugSpec("RandomBrightnessContrast", {"p": 1.0})])
    )
    xs = [x for x, _ in build_train_loader(same, np.arange(16), {}, params, seed=0, epoch=0)]
    assert not torch.equal(xs[0], xs[1])  # batch 0 from worker 0, batch 1 from worker 1


@pytest.mark.parametrize("minority", ["resample", "weighted"])
def test_the_number_of_workers_changes_no_batch(images, targets, minority):
    """Every draw carries its augmentation seed: in-process loading and two workers give the same bytes."""
    params = {w: make_params(num_workers=w, minority=MinorityParams(mode=minority)) for w in (0, 2)}
    for epoch in (0, 3):
        in_process = batches(build_train_loader(images, np.arange(N), targets, params[0], seed=5, epoch=epoch))
        two_workers = batches(build_train_loader(images, np.arange(N), targets, params[2], seed=5, epoch=epoch))
        assert_same(in_process, two_workers)


def test_one_loader_for_the_whole_run_gives_each_epoch_as_a_fresh_one(images, targets):
    """A run iterates one TrainLoader (persistent workers): epoch e is what a loader built for epoch e alone
    gives, whatever epochs came before it, so a resumed run sees what an uninterrupted one saw."""
    params = make_params(num_workers=2, minority=MinorityParams(mode="resample"))
    run = TrainLoader(images, np.arange(N), targets, params, seed=5)
    assert run.loader.persistent_workers
    seen = {epoch: batches(run.epoch(epoch)) for epoch in (0, 1, 2)}
    for epoch in (2, 0):
        assert_same(seen[epoch], batches(build_train_loader(images, np.arange(N), targets, params, 5, epoch)))
    assert not torch.equal(seen[0][0][0], seen[1][0][0])


def test_a_draw_looks_the_same_whatever_was_drawn_before(images):
    augment = build_augment([AugSpec("RandomBrightnessContrast", {"p": 1.0})], seed=0, image_size=(16, 12))
    ds = CachedDataset(images, np.arange(N), augment=augment)
    first = ds[(3, 123)][0]
    ds[(4, 7)], ds[(3, 8)]  # other draws move the Compose's RNG
    assert torch.equal(ds[(3, 123)][0], first) and not torch.equal(ds[(3, 8)][0], first)


def test_an_augmented_dataset_needs_a_seed_per_sample(images):
    augment = build_augment([AugSpec("HorizontalFlip")], seed=0, image_size=(16, 12))
    with pytest.raises(TypeError, match="augmentation seed"):
        CachedDataset(images, np.arange(N), augment=augment)[0]
    assert torch.equal(CachedDataset(images, np.arange(N))[0][0], torch.from_numpy(images[0]).permute(2, 0, 1))


def test_eval_loader_keeps_order_and_no_augment(images):
    rows = np.array([5, 2, 9])
    ((x, y),) = list(build_eval_loader(images, rows, batch_size=8, num_workers=0))
    assert torch.equal(x, torch.from_numpy(images[rows]).permute(0, 3, 1, 2)) and y == {}


def test_memmap_dataset_pickles_as_a_file_name(tmp_path, images):
    np.save(tmp_path / "train.npy", images)
    mm = np.load(tmp_path / "train.npy", mmap_mode="r")
    ds = CachedDataset(mm, np.arange(N))
    blob = pickle.dumps(ds)
    assert len(blob) < images.nbytes / 4
    back = pickle.loads(blob)
    assert isinstance(back.images, np.memmap) and torch.equal(back[7][0], ds[7][0])
