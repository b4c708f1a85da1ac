"""evaluate on hand-made files: every reported F1 is sklearn's macro F1 of the same labels."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from maskcls import io, layout, params
from maskcls.paths import Paths
from maskcls.stages import evaluate


def one_hot18(classes):
    p = np.full((len(classes), 18), 0.01)
    p[np.arange(len(classes)), classes] = 1.0
    return p / p.sum(1, keepdims=True)


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(3)
    n_people = 12
    true = rng.choice([0, 3, 4, 7, 13], n_people * 7)  # most of the 18 classes are absent
    persons = np.repeat([f"{i:06d}" for i in range(n_people)], 7)
    mask, gender, age = layout.decode(true)
    truth = pd.DataFrame({"row": np.arange(len(true)), "person": persons, "mask": mask, "gender": gender, "age": age})
    truth["class"] = true
    paths = Paths(tmp_path)
    paths.labels_dir.mkdir(parents=True)
    truth.to_csv(paths.labels_dir / "truth.csv", index=False)
    folds = pd.DataFrame({"person": [f"{i:06d}" for i in range(n_people)], "fold": np.arange(n_people) % 2})
    paths.folds.parent.mkdir(parents=True)
    folds.to_csv(paths.folds, index=False)
    pred = np.where(rng.random(len(true)) < 0.7, true, rng.integers(0, 18, len(true)))
    rows = np.arange(len(true))
    paths.ensemble_dir.mkdir()
    io.save_npz(paths.ensemble_dir / "oof.npz", rows=rows, class18=one_hot18(pred), pred=pred)
    io.save_npz(paths.ensemble_dir / "eval.npz", rows=np.arange(4), class18=one_hot18([1, 2, 3, 3]), pred=[1, 2, 3, 3])
    for fold in (0, 1):
        held = rows[folds.fold.to_numpy()[np.arange(len(true)) // 7] == fold]
        d = paths.pred_dir("m", fold)
        d.mkdir(parents=True)
        io.save_npz(d / "oof.npz", rows=held, class18=one_hot18(pred[held]))
    raw = tmp_path / "raw" / "eval"
    raw.mkdir(parents=True)
    ids = [f"{i:040x}.jpg" for i in range(4)]
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(tmp_path / "raw" / layout.EVAL_CSV, index=False)
    pd.DataFrame({"ImageID": ids, "ans": [1, 2, 3, 5]}).to_csv(tmp_path / "raw" / layout.EVAL_LABELS, index=False)
    return tmp_path, truth, folds, pred


def test_every_f1_is_the_competitions_sklearn_call(root):
    tmp, truth, folds, pred = root
    p = params.from_dict({"data": {"raw_dir": "raw"}, "split": {"n_folds": 2}, "pipeline": {"models": ["multihead"]}})
    metrics = evaluate.run(p, tmp)
    true = truth["class"].to_numpy()
    assert metrics["oof_f1"] == round(f1_score(true, pred, average="macro"), 6)
    assert metrics["oof_f1_all18"] == round(f1_score(true, pred, labels=range(18), average="macro"), 6)
    assert metrics["oof_f1"] != metrics["oof_f1_all18"]  # the two really differ on a set missing classes
    for task, t, q in zip(layout.TASKS, layout.decode(true), layout.decode(pred), strict=True):
        assert metrics[f"oof_{task}_f1"] == round(f1_score(t, q, average="macro"), 6)
    fold_of = folds.fold.to_numpy()[np.arange(len(true)) // 7]
    per_fold = [f1_score(true[fold_of == f], pred[fold_of == f], average="macro") for f in (0, 1)]
    assert metrics["oof_f1_fold_mean"] == pytest.approx(np.mean(per_fold), abs=1e-6)
    assert metrics["oof_f1_fold_std"] == pytest.approx(np.std(per_fold), abs=1e-6)
    assert metrics["holdout_f1"] == round(f1_score([1, 2, 3, 5], [1, 2, 3, 3], average="macro"), 6)
    assert "models" not in metrics  # one model: its scores are the ensemble's, reported once
    assert json.loads((tmp / "metrics" / "eval.json").read_text()) == metrics
    per_class = pd.read_csv(tmp / "metrics" / "plots" / "per_class_f1.csv")
    assert per_class["class"].tolist() == sorted(per_class["class"]) == [layout.class_name(c) for c in range(18)]
    assert per_class["class"][3] == "03 wear/female/<30" and per_class["class"][17] == "17 none/female/>=60"
    confusion = pd.read_csv(tmp / "metrics" / "plots" / "confusion_oof.csv")
    assert confusion["actual"].tolist() == [layout.class_name(c) for c in true]


def test_several_models_are_scored_each(root):
    tmp, truth, _, pred = root
    zoo = {"m": {"head": "single"}, "n": {"head": "single"}}
    p = params.from_dict(
        {
            "data": {"raw_dir": "raw"},
            "split": {"n_folds": 2},
            "models": zoo,
            "pipeline": {"models": ["m", "n"], "folds": [0, 1]},
        }
    )
    for fold in (0, 1):  # n: copies of m's predictions
        src, dst = Paths(tmp).pred_dir("m", fold), Paths(tmp).pred_dir("n", fold)
        dst.mkdir(parents=True)
        (dst / "oof.npz").write_bytes((src / "oof.npz").read_bytes())
    metrics = evaluate.run(p, tmp)
    expected = round(f1_score(truth["class"], pred, average="macro"), 6)
    assert metrics["models"]["m"]["oof_f1"] == metrics["models"]["n"]["oof_f1"] == expected


def test_what_person_and_tune_chose_is_surfaced_and_absent_when_they_are_off(root):
    tmp, *_ = root
    p = params.from_dict({"data": {"raw_dir": "raw"}, "split": {"n_folds": 2}, "pipeline": {"models": ["multihead"]}})
    metrics = evaluate.run(p, tmp)
    assert "person" not in metrics and "tune" not in metrics
    person = {
        "mode": "pool",
        "features": "image",
        "linkage": "average",
        "threshold": 0.75,
        "oof": {"photos": 84, "people_whole": 0.9, "people_together": 0.95, "purity": 0.97, "full_groups": 0.88},
        "oof_f1": {"off": 0.5, "pool": 0.55, "pool+assign": 0.56},
        "eval": {"photos": 21, "groups": 4, "mean_group_size": 5.25, "full_groups": 0.667},
    }
    tune = {"mode": "bias", "cross_fit": {"split": "halves", "parts": 2, "before": 0.55, "after": 0.57, "gain": 0.02}}
    io.write_json(Paths(tmp).ensemble_dir / "person.json", person)
    io.write_json(Paths(tmp).ensemble_dir / "tune.json", tune)
    metrics = evaluate.run(p, tmp)
    assert metrics["person"] == {
        "threshold": 0.75,
        "oof_people_whole": 0.9,
        "oof_purity": 0.97,
        "oof_full_groups": 0.88,
        "oof_f1_off": 0.5,
        "oof_f1_pool": 0.55,
        "oof_f1_pool+assign": 0.56,
        "eval_groups": 4,
        "eval_full_groups": 0.667,
    }
    assert metrics["tune"] == {"oof_f1_before": 0.55, "oof_f1_after": 0.57, "gain": 0.02, "parts": 2}
    # Numbers only: `dvc metrics diff` compares them between experiments.
    flat = [v for section in ("person", "tune") for v in metrics[section].values()]
    assert all(isinstance(v, int | float) for v in flat)
