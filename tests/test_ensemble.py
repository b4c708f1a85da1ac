"""Ensemble votes on hand-made prediction files: fold averaging, per-task composition, every vote method."""

import numpy as np
import pandas as pd
import pytest

from maskcls import artifacts, io, layout, params
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


def make_params(models, train_models, folds=(0,), split_folds=2, folds_mode="vote", **ens):
    return params.from_dict(
        {
            "split": {"method": "kfold", "n_folds": split_folds},
            "models": models,
            "train": {"models": list(train_models), "folds": list(folds)},
            "ensemble": {"folds": folds_mode, **ens},
        }
    )


def test_joint_follows_layout_order():
    mask, gender, age = np.eye(3)[[2]], np.eye(2)[[1]], np.eye(3)[[0]]
    probs = layout.joint_probabilities(mask, gender, age)
    assert probs.argmax(1)[0] == layout.encode(2, 1, 0) == 15
    np.testing.assert_allclose(layout.task_marginals(probs)["gender"], gender)


def test_folds_are_averaged_on_eval_and_stitched_out_of_fold(tmp_path):
    write_pred(tmp_path, "m", 0, "eval", [0, 1], class18=one_hot18([1, 2]))
    write_pred(tmp_path, "m", 1, "eval", [0, 1], class18=one_hot18([1, 3]))
    write_pred(tmp_path, "m", 0, "oof", [5, 1], class18=one_hot18([4, 5]))
    write_pred(tmp_path, "m", 1, "oof", [2], class18=one_hot18([6]))
    ev = artifacts.model_predictions(Paths(tmp_path), "m", [0, 1], "eval")
    np.testing.assert_allclose(ev["class18"][1], (one_hot18([2])[0] + one_hot18([3])[0]) / 2)
    oof = artifacts.model_predictions(Paths(tmp_path), "m", [0, 1], "oof")
    assert oof["rows"].tolist() == [1, 2, 5]
    assert oof["class18"].argmax(1).tolist() == [5, 6, 4]


def test_hard_vote_majority_and_tie_break():
    a, b, c = one_hot18([1, 1]), one_hot18([1, 2]), one_hot18([3, 2])
    assert ensemble.hard_vote([a, b, c])[1].tolist() == [1, 2]
    # a 1-1 tie goes to the class with more summed probability
    x = np.zeros((1, 18))
    x[0, [4, 5]] = [0.6, 0.4]
    y = np.zeros((1, 18))
    y[0, [5, 4]] = [0.9, 0.1]
    assert ensemble.hard_vote([x, y])[1].tolist() == [5]
    # equal votes and equal summed probability: the lower class id, every time
    assert ensemble.hard_vote([one_hot18([9]), one_hot18([4])])[1].tolist() == [4]


def test_hard_vote_is_not_a_soft_average():
    """One confident voter outweighs two lukewarm ones in a mean, never in a vote."""
    lukewarm = np.zeros((1, 18))
    lukewarm[0, [0, 5]] = [0.4, 0.35]
    confident = np.zeros((1, 18))
    confident[0, 5] = 1.0
    voters = [lukewarm, lukewarm.copy(), confident]
    assert np.mean(voters, axis=0).argmax(1).tolist() == [5]
    assert ensemble.hard_vote(voters)[1].tolist() == [0]


def confident(cls, also=None, p_also=0.0):
    p = np.zeros((1, 18))
    p[0, cls] = 1.0 - p_also
    if also is not None:
        p[0, also] = p_also
    return p


def write_folds(root, model, eval_by_fold, split="eval"):
    for fold, probs in enumerate(eval_by_fold):
        write_pred(root, model, fold, split, [0], class18=probs)


def test_two_of_three_folds_for_class_0_win_a_hard_vote_of_one_model(tmp_path):
    p = make_params({"m": {"head": "single"}}, "m", folds=(0, 1, 2), method="hard", split_folds=3)
    # folds 0 and 1 lean to class 0; fold 2 is so sure of class 5 that the fold average picks 5
    write_folds(tmp_path, "m", [confident(0, 5, 0.45), confident(0, 5, 0.45), confident(5)])
    rows, views = ensemble.model_views(p, Paths(tmp_path), "eval")
    voters = ensemble.member_voters(p, views)
    assert len(voters["m"]) == 3
    assert ensemble.vote(p, voters)["pred"].tolist() == [0]
    soft = make_params({"m": {"head": "single"}}, "m", folds=(0, 1, 2), method="soft", split_folds=3)
    assert ensemble.vote(soft, voters)["pred"].tolist() == [5]


def test_folds_mean_makes_one_voter_and_best_keeps_the_best_held_out_fold(tmp_path):
    truth = pd.DataFrame({"row": [10, 11], "person": ["a", "b"], "mask": 0, "gender": 0, "age": 0, "class": [3, 3]})
    (tmp_path / "data" / "labels").mkdir(parents=True)
    truth.to_csv(tmp_path / "data" / "labels" / "truth.csv", index=False)
    write_folds(tmp_path, "m", [confident(0, 5, 0.45), confident(0, 5, 0.45), confident(5)])
    for fold, right in ((0, False), (1, False), (2, True)):  # only fold 2 got its held-out photo right
        write_pred(tmp_path, "m", fold, "oof", [10 + fold % 2], class18=one_hot18([3 if right else 4]))
    mean = make_params({"m": {"head": "single"}}, "m", folds=(0, 1, 2), method="hard", folds_mode="mean", split_folds=3)
    voters = ensemble.member_voters(mean, ensemble.model_views(mean, Paths(tmp_path), "eval")[1])
    assert [len(v) for v in voters.values()] == [1]
    best = make_params({"m": {"head": "single"}}, "m", folds=(0, 1, 2), method="hard", folds_mode="best", split_folds=3)
    fold, f1 = ensemble.best_fold(Paths(tmp_path), "m", "single", [0, 1, 2])
    assert fold == 2 and f1[2] == 1.0 and f1[0] == 0.0
    voters = ensemble.member_voters(best, ensemble.model_views(best, Paths(tmp_path), "eval")[1])
    np.testing.assert_array_equal(voters["m"][0], confident(5))


@pytest.mark.parametrize(
    "ens, expected",
    [
        ({"method": "soft"}, [7]),
        ({"method": "hard"}, [1]),
        ({"method": "weighted_soft", "weights": {"a": 1.0, "b": 1.0, "c": 10.0}}, [7]),
        ({"method": "weighted_soft", "weights": {"a": 10.0, "b": 10.0, "c": 1.0}}, [1]),
        ({"method": "weighted_hard", "weights": {"a": 1.0, "b": 1.0, "c": 3.0}}, [7]),  # 3 votes beat 2
        ({"method": "weighted_hard", "weights": {"a": 1.0, "b": 1.0, "c": 1.5}}, [1]),  # 2 beat 1.5
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
    voters = {"a": [weak], "b": [weak.copy()], "c": [strong]}
    assert ensemble.vote(p, voters)["pred"].tolist() == expected


def test_per_task_models_combine_fold_by_fold_before_voting(tmp_path):
    zoo = {"m": {"head": "mask"}, "g": {"head": "gender"}, "a": {"head": "age"}}
    p = make_params(zoo, "mga", folds=(0, 1), method="hard")
    for fold, (mask, age) in enumerate([(1, 2), (0, 0)]):
        write_pred(tmp_path, "m", fold, "eval", [0], mask=np.eye(3)[[mask]])
        write_pred(tmp_path, "g", fold, "eval", [0], gender=np.eye(2)[[0]])
        write_pred(tmp_path, "a", fold, "eval", [0], age=np.eye(3)[[age]])
    voters = ensemble.member_voters(p, ensemble.model_views(p, Paths(tmp_path), "eval")[1])
    assert set(voters) == {ensemble.PER_TASK}
    assert [v.argmax(1).tolist() for v in voters[ensemble.PER_TASK]] == [
        [layout.encode(1, 0, 2)],
        [layout.encode(0, 0, 0)],
    ]


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


def test_predictions_of_unlisted_models_and_folds_are_removed_before_hashing(tmp_path):
    p = make_params({"m": {"head": "single"}, "old": {"head": "single"}}, "m", folds=(0,))
    for model, fold in (("m", 0), ("m", 1), ("old", 0)):
        write_pred(tmp_path, model, fold, "eval", [0], class18=one_hot18([1]))
    removed = ensemble.prune_unlisted(p, Paths(tmp_path))
    preds = Paths(tmp_path).preds_dir
    assert sorted(r.relative_to(preds).as_posix() for r in removed) == ["m/fold1", "old/fold0"]
    assert sorted(d.relative_to(preds).as_posix() for d in preds.glob("*/*")) == ["m/fold0"]
