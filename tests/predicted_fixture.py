"""A tiny pipeline run through predict: pipeline_fixture's cached sample, two models trained on the holdout fold and
their predictions with embeddings, so the ensemble, evaluate and report stages run on real files.

Built once per test process and copied for every test, like pipeline_fixture's template. The raw sample comes
along (the ensemble reads eval/info.csv, evaluate and report eval_labels.csv).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np

import pipeline_fixture as pf
from maskcls import artifacts
from maskcls import params as params_mod
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.synth import people

MODELS = ("multihead", "single")  # two all-task members: `ensemble.tune: bias+weights` has weights to fit
_built: dict[Path, Path] = {}


def make_params(ensemble: dict | None = None, models=MODELS, embeddings: bool = True) -> Params:
    """The tiny pipeline's params with `models` trained, predict saving embeddings, and `ensemble` laid over."""
    data = params_mod.to_dict(pf.tiny_params())
    data["pipeline"]["models"] = list(models)
    data["predict"]["embeddings"] = embeddings
    data["ensemble"].update(ensemble or {})
    return params_mod.from_dict(data, source="predicted_fixture")


def build(root: Path) -> Path:
    from maskcls.stages import predict, train

    params = make_params()
    with contextlib.chdir(root):  # DVCLive looks for a DVC repo from the working directory: keep it here
        for model in MODELS:
            train.run(params, model, 0, root)
            predict.run(params, model, 0, root)
    return root


def template(tmp_path_factory) -> Path:
    """The trained pipeline of this test process; never modify it, copy it."""
    base = tmp_path_factory.getbasetemp()
    if base not in _built:
        root = base / "predicted-template"
        shutil.copytree(pf.template(tmp_path_factory), root)
        _built[base] = build(root)
    return _built[base]


def copy(tmp_path_factory, dest: Path) -> Path:
    """A private copy: data (with the raw sample), models and predictions."""
    src = template(tmp_path_factory)
    for name in ("data", "models", "preds"):
        shutil.copytree(src / name, dest / name)
    return dest


def eval_people(root: Path, params: Params) -> np.ndarray:
    """The generated eval photos' people (the sample's secret: eval hides identity), in info.csv order."""
    info = artifacts.read_index(Paths(root).index_dir, "eval", needs=("ImageID",))
    table = people.eval_images(people.draw_eval_people(params.synth.eval_people, params.synth.seed), params.synth.seed)
    return table.set_index("ImageID").loc[info["ImageID"], "person"].to_numpy()
