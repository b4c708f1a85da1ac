"""A tiny pipeline run up to the cache: synth -> validate -> relabel_age -> split -> cache, with real stages.

Built once per test process and copied for every test: training writes models/, dvclive/ and checkpoints into
its root, and a test must not see another's. Images are 32x24 and the backbone is timm's `test_efficientnet`
with random weights, so an epoch takes about a second on one CPU thread.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import tiny
from maskcls.params import Params, RuntimeParams, from_dict
from maskcls.paths import Paths

PEOPLE, HEIGHT, WIDTH = tiny.PEOPLE, tiny.HEIGHT, tiny.WIDTH
EVAL_PEOPLE = 3
HEADS = ("single", "fused", "multihead", "sequential", "mask", "gender", "age")
_templates: dict[Path, Path] = {}


# Laid over tiny.OVERLAY: the parameter defaults (not params.yaml) with a seed of its own, 3 eval people, a
# constant learning rate, no minority resampling, the CPU.
FIXTURE = {
    "seed": 7,
    "data": {"raw_dir": "data/sample"},
    "synth": {"eval_people": EVAL_PEOPLE},
    "train": {"lr": 3e-3, "scheduler": "none", "minority": {"mode": "none"}},
    "runtime": {"device": "cpu"},
}


def tiny_params(models: dict | None = None, **settings) -> Params:
    """Params of the tiny pipeline; `settings` override keys of the train or runtime section (by name), `models`
    whole model specs."""
    specs = {head: tiny.model(head) for head in HEADS}
    specs |= models or {}
    runtime_keys = {f.name for f in dataclasses.fields(RuntimeParams)}
    runtime = {k: v for k, v in settings.items() if k in runtime_keys}
    train = {k: v for k, v in settings.items() if k not in runtime_keys}
    overlay = {"models": specs, "pipeline": {"models": list(specs)}, "train": train, "runtime": runtime}
    data = tiny.merged(tiny.merged(tiny.OVERLAY, FIXTURE), overlay)
    return from_dict(data, source="tiny_params")


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
