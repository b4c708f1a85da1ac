"""Ensemble votes on hand-made prediction files: fold averaging, per-task composition, every vote method."""

import numpy as np
import pandas as pd
import pytest

from maskcls import artifacts, io, layout, params
from maskcls.errors import DataError
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
            "pipeline": {"models": list(train_models), "folds": list(folds)},
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
        {"data": {"raw_dir": "raw"}, "split": {"n_folds": 2}, "pipeline": {"models": ["multihead"], "folds": [0]}}
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


# --- beyond the vote: per-person decisions and tuned decisions, through the stage on a trained tiny pipeline --------
# (docs/beyond.md). The tiny models are barely trained: these tests check what is computed from what, not its worth.


@pytest.fixture
def predicted(tmp_path, tmp_path_factory):
    import predicted_fixture as pfx

    return pfx.copy(tmp_path_factory, tmp_path / "repo")


def pfx_params(ens=None, **kwargs):
    import predicted_fixture as pfx

    return pfx.make_params(ens, **kwargs)


def logp(p):
    return np.log(np.maximum(p, ensemble.PROB_FLOOR))


def members(root, split, models=("multihead", "single")):
    """Each model's probabilities (one fold: one voter per member), rows in the ensemble's order."""
    return {m: artifacts.model_predictions(Paths(root), m, [0], split)["class18"] for m in models}


def soft(root, split):
    return np.mean(list(members(root, split).values()), axis=0)


def oof_truth(root, rows):
    truth = artifacts.read_truth(Paths(root).labels_dir)
    return truth.loc[rows, "class"].to_numpy(), truth.loc[rows, "person"].to_numpy()


def oof_image_features(root, rows):
    from maskcls import person

    return person.image_statistics(artifacts.open_cache(Paths(root).cache_dir, "train"), rows=rows)


def sk_f1(y, pred):
    from sklearn.metrics import f1_score

    return round(float(f1_score(y, pred, average="macro")), 6)


@pytest.mark.xdist_group("predicted")
def test_person_pool_groups_eval_with_a_threshold_chosen_out_of_fold_and_pools_gender_and_age(predicted):
    import predicted_fixture as pfx
    from maskcls import person

    root, p = predicted, pfx_params({"person": "pool"})
    ensemble.run(p, root)
    paths = Paths(root)
    report = artifacts.read_ensemble_report(paths.ensemble_dir, "person")
    oof, ev = (artifacts.read_ensemble(paths.ensemble_dir, s) for s in ("oof", "eval"))
    y, ids = oof_truth(root, oof["rows"])
    # Chosen where identity is known: the out-of-fold photos, featurised on their own, with their people.
    features = oof_image_features(root, oof["rows"])
    choice = person.choose_grouping(features, ids, ensemble.PERSON_THRESHOLDS)
    assert (report["linkage"], report["threshold"]) == (choice["linkage"], choice["threshold"])
    # Eval grouped with that choice, on eval's own image statistics; the three generated people come back whole.
    eval_features = person.image_statistics(artifacts.open_cache(paths.cache_dir, "eval"))
    groups = person.group_photos(eval_features, choice["threshold"], linkage=choice["linkage"])
    np.testing.assert_array_equal(ev["groups"], groups)
    assert person.grouping_quality(groups, pfx.eval_people(root, p))["people_whole"] == 1.0
    assert report["eval"] == {"photos": 21, "groups": 3, "mean_group_size": 7.0, "full_groups": 1.0}
    # Decisions: gender and age pooled per group, the mask each photo's own.
    probs, decision = person.apply_person_mode(soft(root, "eval"), groups, "pool")
    np.testing.assert_allclose(ev["class18"], probs, atol=1e-6)
    np.testing.assert_array_equal(ev["pred"], decision)
    mask, gender, age = layout.decode(ev["pred"])
    for g in np.unique(groups):
        assert len(set(gender[groups == g])) == 1 and len(set(age[groups == g])) == 1
    np.testing.assert_array_equal(mask, layout.task_marginals(soft(root, "eval"))["mask"].argmax(1))
    sub = pd.read_csv(root / "submissions" / "submission.csv", dtype={"ImageID": str})
    assert sub["ans"].tolist() == ev["pred"].tolist()
    # Out of fold: the whole set grouped with identity hidden, then scored; every mode's F1 is sklearn's.
    oof_groups = person.group_photos(features, choice["threshold"], linkage=choice["linkage"])
    np.testing.assert_array_equal(oof["groups"], oof_groups)
    quality = person.grouping_quality(oof_groups, ids)
    assert report["oof"]["people_whole"] == round(quality["people_whole"], 6)
    assert report["oof"]["purity"] == round(quality["purity"], 6)
    for mode, lib_mode in (("off", "none"), ("pool", "pool"), ("pool+assign", "pool+assign")):
        assert report["oof_f1"][mode] == sk_f1(y, person.apply_person_mode(soft(root, "oof"), oof_groups, lib_mode)[1])
    np.testing.assert_array_equal(oof["pred"], person.apply_person_mode(soft(root, "oof"), oof_groups, "pool")[1])
    assert artifacts.read_ensemble_report(paths.ensemble_dir, "tune") is None


@pytest.mark.xdist_group("predicted")
def test_pool_assign_gives_each_group_of_seven_one_incorrect_and_one_missing_mask(predicted):
    root = predicted
    ensemble.run(pfx_params({"person": "pool"}), root)
    pooled = artifacts.read_ensemble(Paths(root).ensemble_dir, "eval")
    ensemble.run(pfx_params({"person": "pool+assign"}), root)
    ev = artifacts.read_ensemble(Paths(root).ensemble_dir, "eval")
    np.testing.assert_array_equal(ev["groups"], pooled["groups"])
    sizes = np.bincount(ev["groups"])
    assert (sizes == 7).sum() == 3
    masks = layout.decode(ev["pred"])[0]
    for g in np.flatnonzero(sizes == 7):
        assert sorted(masks[ev["groups"] == g].tolist()) == [0, 0, 0, 0, 0, 1, 2]
    # Gender and age as with pool; the barely trained models' own masks break the rule that the assignment keeps.
    np.testing.assert_array_equal(layout.decode(ev["pred"])[1:], layout.decode(pooled["pred"])[1:])
    per_photo = layout.decode(pooled["pred"])[0]
    assert any(sorted(per_photo[ev["groups"] == g].tolist()) != [0, 0, 0, 0, 0, 1, 2] for g in range(3))
    assert (ev["class18"].argmax(1) == ev["pred"]).all()


@pytest.mark.xdist_group("predicted")
def test_tune_bias_fits_offsets_out_of_fold_applies_them_to_eval_and_cross_fits_the_out_of_fold_decisions(predicted):
    from maskcls import tuning

    root, p = predicted, pfx_params({"tune": "bias"})
    ensemble.run(p, root)
    paths = Paths(root)
    report = artifacts.read_ensemble_report(paths.ensemble_dir, "tune")
    oof, ev = (artifacts.read_ensemble(paths.ensemble_dir, s) for s in ("oof", "eval"))
    y, ids = oof_truth(root, oof["rows"])
    offsets = tuning.fit_class_offsets(logp(soft(root, "oof")), y)
    assert np.count_nonzero(offsets)  # the case is not trivial
    assert list(report["offsets"]) == [layout.class_name(c) for c in range(18)]
    np.testing.assert_allclose(list(report["offsets"].values()), offsets, atol=1e-6)
    np.testing.assert_array_equal(ev["pred"], (logp(soft(root, "eval")) + offsets).argmax(1))
    assert (oof["pred"] != soft(root, "oof").argmax(1)).any()  # the offsets move decisions: not a trivial case
    # One fold (the tiny pipeline's holdout split): two seeded halves of the out-of-fold people.
    part, how = ensemble.oof_parts(p, paths, oof["rows"])
    assert how == {"split": "halves", "parts": 2, "seed": ensemble.HALVES_SEED}
    assert not set(ids[part == 0]) & set(ids[part == 1])
    assert abs(len(set(ids[part == 0])) - len(set(ids[part == 1]))) <= 1
    for k in (0, 1):
        held = part == k
        fitted = tuning.fit_class_offsets(logp(soft(root, "oof")[~held]), y[~held])  # the other half only
        np.testing.assert_array_equal(oof["pred"][held], (logp(soft(root, "oof")[held]) + fitted).argmax(1))
    fit = report["cross_fit"]
    assert fit["before"] == sk_f1(y, soft(root, "oof").argmax(1))
    assert fit["after"] == sk_f1(y, oof["pred"])
    assert fit["gain"] == pytest.approx(fit["after"] - fit["before"], abs=2e-6)
    assert [q["rows"] for q in fit["per_part"]] == [int((part == 0).sum()), int((part == 1).sum())]
    assert artifacts.read_ensemble_report(paths.ensemble_dir, "person") is None


@pytest.mark.xdist_group("predicted")
def test_tune_bias_weights_fits_member_weights_then_offsets(predicted):
    from maskcls import tuning

    root = predicted
    ensemble.run(pfx_params({"tune": "bias+weights"}), root)
    paths = Paths(root)
    report = artifacts.read_ensemble_report(paths.ensemble_dir, "tune")
    ev = artifacts.read_ensemble(paths.ensemble_dir, "eval")
    y, _ = oof_truth(root, artifacts.read_ensemble(paths.ensemble_dir, "oof")["rows"])
    oof_m, eval_m = members(root, "oof"), members(root, "eval")
    names = sorted(oof_m)
    weights = tuning.fit_member_weights([logp(oof_m[m]) for m in names], y)
    assert report["weights"] == {m: round(float(w), 6) for m, w in zip(names, weights, strict=True)}
    assert report["order"] == ["weights", "offsets"]

    def combined(ms):
        return sum(w * ms[m] for m, w in zip(names, weights, strict=True)) / weights.sum()

    offsets = tuning.fit_class_offsets(logp(combined(oof_m)), y)
    np.testing.assert_allclose(list(report["offsets"].values()), offsets, atol=1e-6)
    np.testing.assert_array_equal(ev["pred"], (logp(combined(eval_m)) + offsets).argmax(1))


@pytest.mark.xdist_group("predicted")
def test_person_pooling_comes_first_then_the_offsets_fitted_on_pooled_out_of_fold_photos(predicted):
    from maskcls import person, tuning
    from maskcls.stages import evaluate

    root, p = predicted, pfx_params({"person": "pool", "tune": "bias"})
    ensemble.run(p, root)
    paths = Paths(root)
    tune = artifacts.read_ensemble_report(paths.ensemble_dir, "tune")
    pooled_report = artifacts.read_ensemble_report(paths.ensemble_dir, "person")
    oof, ev = (artifacts.read_ensemble(paths.ensemble_dir, s) for s in ("oof", "eval"))
    y, _ = oof_truth(root, oof["rows"])
    pooled_oof = person.apply_person_mode(soft(root, "oof"), oof["groups"], "pool")[0]
    offsets = tuning.fit_class_offsets(logp(pooled_oof), y)
    assert tune["order"] == ["person", "offsets"]
    np.testing.assert_allclose(list(tune["offsets"].values()), offsets, atol=1e-6)
    pooled_eval = person.apply_person_mode(soft(root, "eval"), ev["groups"], "pool")[0]
    np.testing.assert_array_equal(ev["pred"], (logp(pooled_eval) + offsets).argmax(1))
    np.testing.assert_allclose(ev["class18"], pooled_eval, atol=1e-6)  # the probabilities before the offsets
    # Tuning is measured against the pooled decisions, and the headline out-of-fold F1 is the cross-fitted one.
    assert tune["cross_fit"]["before"] == pooled_report["oof_f1"]["pool"]
    metrics = evaluate.run(p, root)
    assert metrics["oof_f1"] == tune["cross_fit"]["after"]
    assert metrics["tune"]["gain"] == tune["cross_fit"]["gain"]
    assert metrics["person"]["oof_f1_pool"] == pooled_report["oof_f1"]["pool"]
    assert metrics["person"]["eval_groups"] == 3


@pytest.mark.xdist_group("predicted")
def test_embeddings_features_come_from_predict_each_block_standardised(predicted):
    from maskcls import person

    root, p = predicted, pfx_params({"person": "pool", "person_features": "image+embeddings"})
    ensemble.run(p, root)
    paths = Paths(root)
    report = artifacts.read_ensemble_report(paths.ensemble_dir, "person")
    ev = artifacts.read_ensemble(paths.ensemble_dir, "eval")
    blocks = [person.image_statistics(artifacts.open_cache(paths.cache_dir, "eval"))]
    blocks += [
        person.standardize(artifacts.fold_predictions(paths, m, 0, "eval")["embeddings"]) for m in p.pipeline.models
    ]
    features = np.concatenate(blocks, axis=1)
    assert features.shape[1] > blocks[0].shape[1] + 8
    groups = person.group_photos(features, report["threshold"], linkage=report["linkage"])
    np.testing.assert_array_equal(ev["groups"], groups)
    assert report["features"] == "image+embeddings"
    # Predictions without embeddings: the stage names the setting and the stage to re-run.
    for split in ("eval", "oof"):
        path = paths.pred_dir("single", 0) / f"{split}.npz"
        arrays = io.load_npz(path)
        io.save_npz(path, **{k: v for k, v in arrays.items() if k != "embeddings"})
    with pytest.raises(DataError, match=r"predict\.embeddings: true.*predict@single-0"):
        ensemble.run(p, root)


@pytest.mark.parametrize(
    "ens, predict, key, words",
    [
        ({"person": "pool", "person_features": "embeddings"}, {}, "ensemble.person_features", "predict.embeddings"),
        ({"person": "pool", "person_features": "image+embeddings"}, {}, "ensemble.person_features", "true"),
        ({"person": "pool", "method": "hard"}, {"embeddings": True}, "ensemble.person", "soft or weighted_soft"),
        ({"tune": "bias", "method": "nested", "groups": [["a"]]}, {}, "ensemble.tune", "decides by votes"),
        ({"tune": "bias+weights", "method": "weighted_soft", "weights": {"a": 1, "b": 2}}, {}, "ensemble.tune", "soft"),
    ],
)
def test_bad_combinations_are_params_errors(ens, predict, key, words):
    from maskcls.errors import ParamsError

    data = {"models": {"a": {"head": "single"}, "b": {"head": "fused"}}, "pipeline": {"models": ["a", "b"]}}
    with pytest.raises(ParamsError) as err:
        params.from_dict({**data, "ensemble": ens, "predict": predict})
    assert key in str(err.value) and words in str(err.value)


def test_bias_weights_needs_two_members_and_the_per_task_models_are_one():
    from maskcls.errors import ParamsError

    zoo = {"m": {"head": "mask"}, "g": {"head": "gender"}, "a": {"head": "age"}, "mh": {"head": "multihead"}}
    with pytest.raises(
        ParamsError, match="ensemble.tune: bias\\+weights fits weights between members, and there is one"
    ):
        params.from_dict({"models": zoo, "pipeline": {"models": ["m", "g", "a"]}, "ensemble": {"tune": "bias+weights"}})
    params.from_dict(
        {"models": zoo, "pipeline": {"models": ["m", "g", "a", "mh"]}, "ensemble": {"tune": "bias+weights"}}
    )
    params.from_dict(
        {"ensemble": {"tune": "bias", "person": "pool+assign", "method": "weighted_soft", "weights": {"multihead": 2}}}
    )
