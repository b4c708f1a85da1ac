from pathlib import Path

import pytest

from maskcls import params
from maskcls.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


def test_committed_params_load_and_numbers_stay_numbers(tmp_path):
    p = params.load(REPO / "params.yaml")
    assert isinstance(p.train.lr, float)
    # YAML 1.2: `1e-4` (what `dvc exp run -S train.lr=1e-4` writes) is a number, not a string.
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  lr: 1e-4\n  weight_decay: 0\n")
    loaded = params.load(f)
    assert loaded.train.lr == pytest.approx(1e-4)
    assert isinstance(loaded.train.weight_decay, float)


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"train": {"lrr": 0.1}}, "train.lrr", "did you mean 'lr'"),
        ({"trian": {}}, "trian", "did you mean 'train'"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "expected an integer"),
        ({"runtime": {"channels_last": "yes"}}, "runtime.channels_last", "true or false"),
        ({"train": {"optimizer": "adma"}}, "train.optimizer", "did you mean 'adam'"),
        ({"cache": {"crop_size": [1, 2, 3]}}, "cache.crop_size", "list of 2"),
        ({"pipeline": {"models": ["nope"]}}, "pipeline.models", "not defined"),
        ({"pipeline": {"folds": [7]}}, "pipeline.folds", "does not exist"),
        ({"train": {"threads": 2}}, "train.threads", "unknown key; it is runtime.threads now"),
        ({"train": {"folds": [0]}}, "train.folds", "unknown key; it is pipeline.folds now"),
        ({"repro": {"portable": True}}, "repro", "unknown key; it is runtime.portable now"),
        ({"split": {"method": "kfold", "n_folds": 1}}, "split.n_folds", "at least 2"),
        ({"ensemble": {"method": "weighted_soft"}}, "ensemble.weights", "missing: multihead"),
        ({"ensemble": {"method": "hard", "weights": {"multihead": 2}}}, "ensemble.weights", "weighted_soft"),
        ({"ensemble": {"method": "weighted"}}, "ensemble.method", "not one of"),
        ({"models": {"multihead": {"train": {"lrr": 1}}}}, "models.multihead.train.lrr", "did you mean 'lr'"),
        ({"models": {"multihead": {"train": {"epochs": 0}}}}, "models.multihead.train.epochs", "at least 1"),
        ({"models": {"multihead": {"train": {"folds": [0]}}}}, "models.multihead.train.folds", "pipeline.folds"),
        ({"models": {"multihead": {"train": {"amp": "off"}}}}, "models.multihead.train.amp", "under runtime.amp"),
        ({"split": {"group": "person"}}, "split.group", "not one of"),
        ({"train": {"scheduler": "cosin"}}, "train.scheduler", "did you mean 'cosine'"),
        ({"relabel_age": {"overrides": "some"}}, "relabel_age.overrides", "not one of off, core, all"),
        (
            {"models": {"multihead": {"losses": {"age": {"name": "hinge"}}}}},
            "models.multihead.losses.age.name",
            "not one of",
        ),
        (
            {"models": {"truth": {"head": "multihead"}}, "pipeline": {"models": ["truth"]}},
            "models.truth",
            "not 'truth'",
        ),
        ({"cache": {"height": 4}}, "cache", "at least 8 pixels"),
        ({"predict": {"tta": []}}, "predict.tta", "at least one view"),
        (
            {"runtime": {"num_workers": "many"}},
            "runtime.num_workers",
            "expected an integer, got 'many'; or 'many' is not one of auto",
        ),
        ({"runtime": {"num_workers": -1}}, "runtime.num_workers", "must be auto, 0 or more"),
        (
            {"models": {"multihead": {"head": "mask", "losses": {"age": {"name": "ce"}}}}},
            "models.multihead",
            "no output",
        ),
    ],
)
def test_bad_params_name_the_key(data, key, words):
    with pytest.raises(ParamsError) as err:
        params.from_dict(data)
    assert key in str(err.value)
    assert words in str(err.value)


def test_per_task_models_need_all_tasks_unless_an_all_task_model_fills_in():
    zoo = {"m": {"head": "mask"}, "g": {"head": "gender"}, "a": {"head": "age"}, "mh": {"head": "multihead"}}
    with pytest.raises(ParamsError, match="missing age"):
        params.from_dict({"models": zoo, "pipeline": {"models": ["m", "g"]}})
    params.from_dict({"models": zoo, "pipeline": {"models": ["m", "g", "a"]}})
    params.from_dict({"models": zoo, "pipeline": {"models": ["a", "mh"]}})


def test_round_trip_and_digest_stable():
    p = params.load(REPO / "params.yaml")
    again = params.from_dict(params.to_dict(p))
    assert again == p
    assert params.digest(again) == params.digest(p)
    changed = params.from_dict({**params.to_dict(p), "seed": p.seed + 1})
    assert params.digest(changed) != params.digest(p)


def two_models(**ensemble):
    zoo = {"a": {"head": "single"}, "b": {"head": "single"}}
    return {"models": zoo, "pipeline": {"models": ["a", "b"]}, "ensemble": ensemble}


@pytest.mark.parametrize(
    "weights, words",
    [
        ({"a": 2}, "missing: b"),
        ({"a": 1, "b": 1, "c": 1}, "not in pipeline.models: c"),
        ({"a": 1, "b": 0}, "b: 0.0"),
        ({"a": -1, "b": 1}, "a: -1.0"),
    ],
)
def test_ensemble_weights_are_checked_against_train_models(weights, words):
    with pytest.raises(ParamsError, match="ensemble.weights") as err:
        params.from_dict(two_models(method="weighted_hard", weights=weights))
    assert words in str(err.value)


def test_per_model_train_overrides_resolve_over_the_shared_section():
    p = params.from_dict(
        {
            "models": {
                "a": {"head": "single", "train": {"lr": 3e-5, "minority": {"factor": 5}}},
                "b": {"head": "single"},
            },
            "pipeline": {"models": ["a", "b"]},
            "train": {"lr": 1e-3, "minority": {"mode": "resample", "factor": 3}},
        }
    )
    assert p.train_for("a").lr == 3e-5 and p.train_for("b").lr == 1e-3
    assert p.train_for("a").minority.mode == "resample" and p.train_for("a").minority.factor == 5
    assert p.for_model("a").train == p.train_for("a") and p.train.lr == 1e-3


def test_num_workers_is_auto_or_a_count():
    assert params.from_dict({}).runtime.num_workers == "auto"
    assert params.from_dict({"runtime": {"num_workers": 3}}).runtime.num_workers == 3


def test_auto_loader_workers_are_none_on_cpu_and_a_share_of_the_cores_on_cuda(monkeypatch):
    import torch

    from maskcls.training.runtime import loader_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    auto = params.RuntimeParams()
    assert loader_workers(auto, torch.device("cpu")) == 0
    assert loader_workers(auto, torch.device("cuda")) == 8
    assert loader_workers(params.RuntimeParams(devices=4), torch.device("cuda")) == 4
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert loader_workers(auto, torch.device("cuda")) == 2
    assert loader_workers(params.RuntimeParams(num_workers=3), torch.device("cpu")) == 3
