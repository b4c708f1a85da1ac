"""A tiny pipeline run up to the cache: synth -> validate -> relabel_age -> split -> cache, with real stages.

Built once per test process and copied for every test: training writes models/, dvclive/ and checkpoints into
its root, and a test must not see another's. Images are 32x24 and the backbone is timm's `test_efficientnet`
with random weights, so an epoch takes about a second on one CPU thread.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from maskcls.params import Params, from_dict
from maskcls.paths import Paths

PEOPLE = 40
EVAL_PEOPLE = 3
HEIGHT, WIDTH = 32, 24
HEADS = ("single", "fused", "multihead", "sequential", "mask", "gender", "age")
_templates: dict[Path, Path] = {}


def tiny_params(models: dict | None = None, **train) -> Params:
    """Params of the tiny pipeline; `train` overrides keys of the train section, `models` whole model specs."""
    specs = {head: {"head": head, "backbone": "test_efficientnet", "pretrained": "none"} for head in HEADS}
    specs |= models or {}
    return from_dict(
        {
            "seed": 7,
            "data": {"raw_dir": "data/sample"},
            "synth": {"people": PEOPLE, "eval_people": EVAL_PEOPLE, "seed": 0},
            # holdout: a k-fold split needs n_folds people in every gender x age stratum, which 40 people lack
            "split": {"method": "holdout", "holdout_ratio": 0.3},
            "cache": {"height": HEIGHT, "width": WIDTH},
            "models": specs,
            "aug": {"train": [{"name": "HorizontalFlip", "p": 0.5}]},
            "train": {
                "models": list(specs),
                "folds": [0],
                "epochs": 1,
                "batch_size": 16,
                "lr": 3e-3,
                "scheduler": "none",
                "warmup_epochs": 0,
                "minority": {"mode": "none"},
                "num_workers": 0,
                "threads": 1,  # as conftest sets: the test workers share two cores
                "device": "cpu",
                **train,
            },
        },
        source="tiny_params",
    )


def build(root: Path) -> Path:
    from maskcls.stages import cache, relabel, split, synth, validate

    params = tiny_params()
    paths = Paths(root)
    raw = root / params.data.raw_dir
    synth.run(raw, people=PEOPLE, eval_people=EVAL_PEOPLE, seed=0, workers=1)
    with warnings.catch_warnings():  # the sample's duplicated csv id is reported on purpose
        warnings.simplefilter("ignore")
        validate.run(raw, out=paths.index_dir)
    relabel.run(params, root)
    split.run(params, root)
    cache.run(params, root, threads=1)
    return root


def template(tmp_path_factory) -> Path:
    """The pipeline of this test process; never modify it, copy it."""
    base = tmp_path_factory.getbasetemp()
    if base not in _templates:
        _templates[base] = build(base / "pipeline-template")
    return _templates[base]


def copy(tmp_path_factory, dest: Path) -> Path:
    """A private copy of the pipeline (the raw sample is left out: training reads only the cache and labels)."""
    shutil.copytree(template(tmp_path_factory) / "data", dest / "data", ignore=shutil.ignore_patterns("sample"))
    return dest
