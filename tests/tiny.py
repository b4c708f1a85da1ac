"""The small settings every test runs the pipeline with, and the one merge that lays settings over params.

OVERLAY (section -> keys) shrinks any params: 40 synthetic people, 32x24 crops, one fold of one epoch on one
thread. Each user lays its own few differences over it with `merged`, in plain sight:
pipeline_fixture.tiny_params (in-process stages, from the parameter defaults) and repo_copy.copy_repo (the
repository's params.yaml, for the real `dvc repro`). Model specs come from `model`: timm's `test_efficientnet`
with random weights, about 0.1M parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Collection

BACKBONE = "test_efficientnet"  # timm's test model: ~0.1M parameters, fine at 32x32
PEOPLE = 40
HEIGHT, WIDTH = 32, 24

OVERLAY = {
    "synth": {"people": PEOPLE, "seed": 0},
    # holdout: a k-fold split needs n_folds people in every gender x age stratum, which 40 people lack
    "split": {"method": "holdout", "holdout_ratio": 0.3},
    "cache": {"height": HEIGHT, "width": WIDTH},
    "aug": {"train": [{"name": "HorizontalFlip", "p": 0.5}], "minority": []},
    "pipeline": {"folds": [0]},
    "train": {"epochs": 1, "warmup_epochs": 0, "batch_size": 16},
    # one thread as conftest sets: the test workers share two cores, more threads per run only thrash
    "runtime": {"num_workers": 0, "threads": 1},
    "predict": {"batch_size": 64},
}


def model(head: str) -> dict:
    """The spec of a model with head `head` on the tiny backbone, without pretrained weights."""
    return {"head": head, "backbone": BACKBONE, "pretrained": "none"}


def merged(base: dict, overlay: dict, whole: Collection[str] = ()) -> dict:
    """`base` with `overlay` laid over it mapping by mapping; neither is changed.

    A mapping in `overlay` merges key by key into the mapping it meets; anything else (a list, a value, a
    mapping where `base` holds no mapping) replaces. Top-level keys in `whole` are replaced as they are.
    """
    out = dict(base)
    for key, value in overlay.items():
        if key not in whole and isinstance(value, dict) and isinstance(out.get(key, {}), dict):
            out[key] = merged(out.get(key, {}), value)
        else:
            out[key] = copy.deepcopy(value)
    return out
