"""Ensemble votes on hand-made prediction files: fold averaging, per-task composition, every vote method."""

import numpy as np
import pandas as pd
import pytest

from maskcls import io, layout, params
from maskcls.paths import Paths
from maskcls.stages import ensemble


def one_hot18(classes):
    p = np.full((len(classes), 18), 0.01)
    p[np.arange(len(classes)), classes] = 1.0
    return p / p.sum(1, keepdims=True)


def write_pred(root, model, fold, split, rows, **arrays):
    d = Paths(root).pred_dir(model, fold)
    d.mkdir(parents=True, exist_ok=True)
    io.save_npz(d / f"{split}.npz", rows=np.asarray(rows), **arrays)


def make_params(models, train_models, folds=(0,), **ens):
    return params.from_dict(
        {
            "split": {"method": "kfold", "n_folds": 2},
            "models": models,
            "train": {"models": list(train_models), "folds": list(folds)},
            "ensemble": ens,
        }
    )


def test_joint_follows_layout_order():
    mask, gender, age = np.eye(3)[[2]], np.eye(2)[[1]], np.eye(3)[[0]]
    probs = ensemble.joint(mask, gender, age)
    assert probs.argmax(1)[0] == layout.encode(2, 1, 0) == 15
    np.testing.assert_allclose(ensemble.marginals(probs)["gender"], gender)


def test_folds_are_averaged_on_eval_and_stitched_out_of_fold(tmp_path):
    write_pred(tmp_path, "m", 0, "eval", [0, 1], class18=one_hot18([1, 2]))
    write_pred(tmp_path, "m", 1, "eval", [0, 1], class18=one_hot18([1, 3]))
    write_pred(tmp_path, "m", 0, "oof", [5, 1], class18=one_hot18([4, 5]))
    write_pred(tmp_path, "m", 1, "oof", [2], class18=one_hot18([6]))
    ev = ensemble.model_probs(tmp_path, "m", [0, 1], "eval")
    np.testing.assert_allclose(ev["class18"][1], (one_hot18([2])[0] + one_hot18([3])[0]) / 2)
    oof = ensemble.model_probs(tmp_path, "m", [0, 1], "oof")
    assert oof["rows"].tolist() == [1, 2, 5]
    assert oof["class18"].argmax(1).tolist() == [5, 6, 4]


def test_hard_vote_majority_and_tie_break():
    a, b, c = one_hot18([1, 1]), one_hot18([1, 2]), one_hot18([3, 2])
    assert ensemble.hard_vote([a, b, c]).argmax(1).tolist() == [1, 2]
    # a 1-1 tie goes to the class with more summed probability
    x = np.zeros((1, 18))
    x[0, [4, 5]] = [0.6, 0.4]
    y = np.zeros((1, 18))
    y[0, [5, 4]] = [0.9, 0.1]
    assert ensemble.hard_vote([x, y]).argmax(1).tolist() == [5]


@pytest.mark.parametrize(
    "ens, expected",
    [
        ({"method": "soft"}, [7]),
        ({"method": "hard"}, [1]),
        ({"method": "weighted", "weights": {"a": 1.0, "b": 1.0, "c": 10.0}}, [7]),
        ({"method": "nested", "groups": [["a"], ["b"]]}, [1]),  # three groups: a, b, c -> 2 votes for 1
        ({"method": "nested", "groups": [["a", "b"]]}, [7]),  # two groups tie; c's confidence wins
    ],
)
def test_vote_methods(ens, expected):
    zoo = {n: {"head": "single"} for n in "abc"}
    p = make_params(zoo, "abc", **ens)
    weak = np.full((1, 18), 0.0)
    weak[0, [1, 7]] = [0.4, 0.35]
    strong = np.zeros((1, 18))
    strong[0, 7] = 1.0
    members = {"a": weak, "b": weak.copy(), "c": strong}
    assert ensemble.vote(p, members, {n: n for n in "abc"}).argmax(1).tolist() == expected


def test_per_task_models_compose_into_18_classes(tmp_path):
    zoo = {"m": {"head": "mask"}, "g": {"head": "gender"}, "a": {"head": "age"}}
    p = make_params(zoo, "mga")
    write_pred(tmp_path, "m", 0, "eval", [0], mask=np.eye(3)[[1]])
    write_pred(tmp_path, "g", 0, "eval", [0], gender=np.eye(2)[[0]])
    write_pred(tmp_path, "a", 0, "eval", [0], age=np.eye(3)[[2]])
    rows, members, member_of = ensemble.members(p, tmp_path, "eval")
    assert set(members) == {ensemble.COMPOSITE}
    assert members[ensemble.COMPOSITE].argmax(1).tolist() == [layout.encode(1, 0, 2)]


def test_run_writes_a_checked_submission_named_after_the_experiment(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    (raw / "eval").mkdir(parents=True)
    info = pd.DataFrame({"ImageID": [f"{i:040x}.jpg" for i in range(3)], "ans": 0})
    info.to_csv(raw / layout.EVAL_CSV, index=False)
    p = params.from_dict(
        {"data": {"raw_dir": "raw"}, "split": {"n_folds": 2}, "train": {"models": ["multihead"], "folds": [0]}}
    )
    write_pred(tmp_path, "multihead", 0, "eval", [0, 1, 2], class18=one_hot18([3, 17, 0]))
    write_pred(tmp_path, "multihead", 0, "oof", [4], class18=one_hot18([9]))
    monkeypatch.setenv("DVC_EXP_NAME", "my-exp")
    ensemble.run(p, root=tmp_path)
    sub = pd.read_csv(tmp_path / "submissions" / "submission.csv", dtype={"ImageID": str})
    assert sub["ans"].tolist() == [3, 17, 0]
    subs = tmp_path / "submissions"
    assert (subs / "my-exp.csv").read_bytes() == (subs / "submission.csv").read_bytes()
    assert io.load_npz(tmp_path / "ensemble" / "oof.npz")["pred"].tolist() == [9]
