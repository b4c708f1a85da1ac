"""Pseudo-labels: which eval photos join the second round's training, with which labels, and how (docs/beyond.md).

The selection rule on hand-made probabilities (threshold, per person); the pseudo_label stage on files, with the
eval answers removed or corrupted (selection unchanged: it never reads them); the second round's training set (the
fold's training rows plus the pseudo-labelled photos, validation unchanged).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import pipeline_fixture as pf
import tiny
from maskcls import artifacts, layout, pseudo
from maskcls import params as params_mod
from maskcls.dataset import CachedDataset, StackedImages
from maskcls.errors import DataError, ParamsError
from maskcls.paths import Paths
from maskcls.stages import evaluate, pseudo_label, train
from maskcls.training.fold import load_fold

REPO = Path(__file__).resolve().parents[1]


def probs(rows: list[tuple[int, float]]) -> np.ndarray:
    """(N, 18): each photo's probability `p` on class `c`, the rest spread evenly over the other 17 classes."""
    out = np.empty((len(rows), layout.NUM_CLASSES))
    for i, (c, p) in enumerate(rows):
        out[i] = (1 - p) / (layout.NUM_CLASSES - 1)
        out[i, c] = p
    return out


# --- the rule ------------------------------------------------------------------------------------------------------


def test_a_photo_is_kept_when_the_probability_of_its_decision_reaches_the_threshold():
    p = probs([(0, 0.95), (4, 0.9), (17, 0.89), (3, 0.5)])
    pred = p.argmax(1)
    assert pseudo.select(p, pred, 0.9).tolist() == [True, True, False, False]
    assert pseudo.select(p, pred, 0.5).tolist() == [True, True, True, True]
    assert pseudo.select(p, pred, 1.0).tolist() == [False] * 4


def test_the_confidence_is_that_of_the_decision_not_of_the_argmax():
    """With ensemble.tune the decision may be another class than the most probable: the decision is the label."""
    p = probs([(0, 0.95)])
    assert pseudo.confidence(p, np.array([0])).tolist() == pytest.approx([0.95])
    assert pseudo.confidence(p, np.array([5])).tolist() == pytest.approx([0.05 / 17])
    assert not pseudo.select(p, np.array([5]), 0.9).any()


def test_per_person_a_group_is_kept_or_dropped_whole_on_its_least_confident_photo():
    p = probs([(0, 0.99), (6, 0.95), (12, 0.91), (1, 0.99), (7, 0.6), (2, 0.97)])
    pred = p.argmax(1)
    groups = np.array([5, 5, 5, 8, 8, 9])  # ids need not count from 0
    assert pseudo.confidence(p, pred, groups).tolist() == pytest.approx([0.91, 0.91, 0.91, 0.6, 0.6, 0.97])
    assert pseudo.select(p, pred, 0.9, groups).tolist() == [True, True, True, False, False, True]
    # photo by photo, the confident photo of the unsure person would have joined
    assert pseudo.select(p, pred, 0.9).tolist() == [True, True, True, True, False, True]


def test_the_table_holds_the_decisions_their_task_labels_and_groups_in_row_order():
    p = probs([(17, 0.99), (0, 0.2), (6, 0.95)])
    rows = np.array([12, 10, 11])  # not sorted: the table is
    table = pseudo.label_table(rows, p, p.argmax(1), 0.9)
    assert list(table.columns) == list(pseudo.COLUMNS)
    assert table["row"].tolist() == [11, 12]
    assert table["class"].tolist() == [6, 17]
    assert table[["mask", "gender", "age"]].values.tolist() == [[1, 0, 0], [2, 1, 2]]
    assert (layout.encode(table["mask"], table["gender"], table["age"]) == table["class"]).all()
    assert table["group"].tolist() == [pseudo.NO_GROUP] * 2
    assert table["confidence"].tolist() == pytest.approx([0.95, 0.99])
    groups = np.array([3, 4, 3])
    by_person = pseudo.label_table(rows, p, p.argmax(1), 0.1, groups)
    assert by_person["group"].tolist() == [4, 3, 3] and by_person["row"].tolist() == [10, 11, 12]


def test_a_table_of_no_photos_reads_back_with_its_types_and_adds_no_training_photo(tmp_path, tmp_path_factory):
    folder = Paths(tmp_path).pseudo_labels_dir
    p = probs([(0, 0.5), (1, 0.5)])
    artifacts.write_pseudo_labels(folder, pseudo.label_table(np.arange(2), p, p.argmax(1), 0.9), {})
    table = artifacts.read_pseudo_labels(folder, eval_photos=2)
    assert len(table) == 0 and table["row"].dtype == np.int64 and table["class"].dtype == np.int64
    root = pf.copy(tmp_path_factory, tmp_path / "repo")
    artifacts.write_pseudo_labels(Paths(root).pseudo_labels_dir, table, {})
    one = load_fold(Paths(root), "multihead", "multihead", 0, (pf.HEIGHT, pf.WIDTH))
    two = load_fold(Paths(root, round=2), "multihead", "multihead", 0, (pf.HEIGHT, pf.WIDTH))
    assert np.array_equal(two.train_rows, one.train_rows) and two.pseudo_photos == 0
    assert all(two.train_targets[k].dtype == np.int64 for k in two.train_targets)


def test_nothing_kept_is_an_empty_table_and_a_summary_of_zeros():
    p = probs([(0, 0.5), (1, 0.5)])
    table = pseudo.label_table(np.arange(2), p, p.argmax(1), 0.9)
    assert len(table) == 0 and list(table.columns) == list(pseudo.COLUMNS)
    summary = pseudo.summary(table, 2, 0.9, "photo")
    assert summary["kept"] == 0 and summary["share"] == 0.0 and sum(summary["per_class"].values()) == 0


def test_the_summary_counts_per_class_and_people():
    p = probs([(0, 0.99), (0, 0.99), (6, 0.97), (17, 0.5)])
    groups = np.array([0, 0, 1, 2])
    table = pseudo.label_table(np.arange(4), p, p.argmax(1), 0.9, groups)
    summary = pseudo.summary(table, 4, 0.9, "person", oof={"photos": 1})
    assert summary["kept"] == 3 and summary["share"] == 0.75 and summary["people"] == 2
    assert summary["per_class"][layout.class_name(0)] == 2 and summary["per_class"][layout.class_name(6)] == 1
    assert len(summary["per_class"]) == layout.NUM_CLASSES
    assert summary["oof_estimate"] == {"photos": 1}
    assert pseudo.summary(table, 4, 0.9, "photo")["people"] is None


def test_the_out_of_fold_estimate_scores_the_same_rule_where_labels_are_known():
    p = probs([(0, 0.99), (1, 0.95), (2, 0.5), (3, 0.99)])
    truth = np.array([0, 5, 2, 3])
    est = pseudo.oof_estimate(p, p.argmax(1), truth, 0.9)
    assert est == {"photos": 4, "kept": 3, "share": 0.75, "accuracy": pytest.approx(2 / 3, abs=1e-6)}
    assert pseudo.oof_estimate(p, p.argmax(1), truth, 1.0)["accuracy"] is None
    by_person = pseudo.oof_estimate(p, p.argmax(1), truth, 0.9, groups=np.array([0, 0, 0, 1]))
    assert by_person["kept"] == 1 and by_person["accuracy"] == 1.0


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, float("nan")])
def test_a_threshold_outside_0_to_1_is_refused(threshold):
    p = probs([(0, 0.9)])
    with pytest.raises(ValueError, match="threshold"):
        pseudo.select(p, p.argmax(1), threshold)


def test_malformed_inputs_are_refused():
    p = probs([(0, 0.9), (1, 0.9)])
    with pytest.raises(ValueError, match="class18"):
        pseudo.select(p[:, :17], p.argmax(1), 0.5)
    with pytest.raises(ValueError, match="pred"):
        pseudo.select(p, np.array([0, 18]), 0.5)
    with pytest.raises(ValueError, match="groups"):
        pseudo.select(p, p.argmax(1), 0.5, groups=np.array([0]))
    with pytest.raises(ValueError, match="unit"):
        pseudo.summary(pseudo.label_table(np.arange(2), p, p.argmax(1), 0.5), 2, 0.5, "people")


# --- params ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, -0.5, 1.5])
def test_params_refuse_a_threshold_no_decision_can_reach(threshold):
    with pytest.raises(ParamsError, match=r"pseudo\.threshold: .*\(0, 1\]"):
        params_mod.from_dict({"pseudo": {"threshold": threshold}})


def test_params_name_a_misspelt_pseudo_key():
    with pytest.raises(ParamsError, match="pseudo.treshold: unknown key; did you mean 'threshold'"):
        params_mod.from_dict({"pseudo": {"treshold": 0.9}})


def test_the_committed_params_have_a_pseudo_section():
    assert params_mod.load(REPO / "params.yaml").pseudo.threshold == params_mod.PseudoParams().threshold


# --- the pseudo_label stage on files ----------------------------------------------------------------------------------

EVAL_N, OOF_N = 14, 7


def stage_root(root: Path, person: bool = False) -> Path:
    """An ensemble's output (eval: 14 photos, two people of seven; out of fold: one person) and the truth beside it."""
    rng = np.random.default_rng(3)

    def draw(top: np.ndarray) -> np.ndarray:
        return probs([(int(c), float(p)) for c, p in zip(rng.integers(0, 18, len(top)), top, strict=True)])

    # the first eval person is sure (every photo above 0.65), the second is not (one photo at 0.35)
    eval_p = draw(np.concatenate([rng.uniform(0.65, 1.0, 7), [0.35], rng.uniform(0.3, 1.0, 6)]))
    oof_p = draw(rng.uniform(0.3, 1.0, OOF_N))
    splits = {
        "eval": {"rows": np.arange(EVAL_N), "class18": eval_p.astype(np.float32), "pred": eval_p.argmax(1)},
        "oof": {"rows": np.arange(OOF_N) + 3, "class18": oof_p.astype(np.float32), "pred": oof_p.argmax(1)},
    }
    if person:
        splits["eval"]["groups"] = np.repeat([0, 1], 7)
        splits["oof"]["groups"] = np.zeros(OOF_N, np.int64)
    paths = Paths(root)
    artifacts.write_ensemble(paths.ensemble_dir, splits, {})
    truth = pd.DataFrame({"row": np.arange(12), "person": ["p"] * 12, "class": rng.integers(0, 18, 12)})
    artifacts.write_labels(paths.labels_dir, {artifacts.TRUTH: truth})
    return root


def labels_bytes(root: Path) -> dict[str, bytes]:
    folder = Paths(root).pseudo_labels_dir
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("person", ["off", "pool"])
def test_the_stage_never_reads_eval_answers(tmp_path, monkeypatch, person):
    """The selection is the same with the sample's eval answers present, corrupted or gone, and the function that
    reads them is never called."""
    params = params_mod.from_dict({"pseudo": {"threshold": 0.6}, "ensemble": {"person": person}})
    root = stage_root(tmp_path, person=person != "off")
    answers = root / params.data.raw_dir / layout.EVAL_LABELS
    answers.parent.mkdir(parents=True)
    answers.write_text("ImageID,ans\n" + "".join(f"{i}.jpg,{i % 18}\n" for i in range(EVAL_N)))
    pseudo_label.run(params, root)
    first = labels_bytes(root)
    answers.write_text("ImageID,ans\nnot,a,table\n\x00\x01")  # unreadable
    pseudo_label.run(params, root)
    assert labels_bytes(root) == first
    answers.unlink()

    def never(*args, **kwargs):
        raise AssertionError("the pseudo_label stage read the eval answers")

    monkeypatch.setattr(artifacts, "read_eval_truth", never)
    summary = pseudo_label.run(params, root)
    assert labels_bytes(root) == first
    table = artifacts.read_pseudo_labels(Paths(root).pseudo_labels_dir, eval_photos=EVAL_N)
    assert summary["kept"] == len(table) > 0 and summary["unit"] == ("photo" if person == "off" else "person")
    assert json.loads(first["summary.json"]) == summary


def test_the_stage_keeps_what_the_rule_keeps_and_estimates_out_of_fold(tmp_path):
    params = params_mod.from_dict({"pseudo": {"threshold": 0.6}})
    root = stage_root(tmp_path)
    summary = pseudo_label.run(params, root)
    ens = {s: artifacts.read_ensemble(Paths(root).ensemble_dir, s) for s in ("eval", "oof")}
    keep = pseudo.select(ens["eval"]["class18"], ens["eval"]["pred"], 0.6)
    table = artifacts.read_pseudo_labels(Paths(root).pseudo_labels_dir)
    assert table["row"].tolist() == np.flatnonzero(keep).tolist()
    assert table["class"].tolist() == ens["eval"]["pred"][keep].tolist()
    truth = artifacts.read_truth(Paths(root).labels_dir).loc[ens["oof"]["rows"], "class"].to_numpy()
    assert summary["oof_estimate"] == pseudo.oof_estimate(ens["oof"]["class18"], ens["oof"]["pred"], truth, 0.6)


def test_per_person_the_stage_keeps_whole_recovered_people(tmp_path):
    params = params_mod.from_dict({"pseudo": {"threshold": 0.6}, "ensemble": {"person": "pool"}})
    root = stage_root(tmp_path, person=True)
    summary = pseudo_label.run(params, root)
    table = artifacts.read_pseudo_labels(Paths(root).pseudo_labels_dir)
    assert table["row"].tolist() == list(range(7)) and table["group"].tolist() == [0] * 7
    assert summary["people"] == 1 and summary["kept"] == 7
    # photo by photo, some of the second person's photos would have joined
    photo = pseudo_label.run(params_mod.from_dict({"pseudo": {"threshold": 0.6}}), stage_root(tmp_path / "photo"))
    assert photo["kept"] > 7


@pytest.mark.parametrize("person, has_groups", [("pool", False), ("off", True)])
def test_an_ensemble_output_of_other_person_settings_is_refused(tmp_path, person, has_groups):
    params = params_mod.from_dict({"ensemble": {"person": person}})
    root = stage_root(tmp_path, person=has_groups)
    with pytest.raises(DataError, match=r"ensemble/eval\.npz: .*ensemble\.person.*run `dvc repro ensemble`"):
        pseudo_label.run(params, root)
    assert not Paths(root).pseudo_labels_dir.exists()


def test_a_missing_first_round_names_the_stage_to_run(tmp_path):
    with pytest.raises(DataError, match=r"ensemble/eval\.npz: missing; run the ensemble stage first"):
        pseudo_label.run(params_mod.from_dict({}), tmp_path)
    with pytest.raises(DataError, match=r"pseudo/labels/labels\.csv: not found; .*pseudo/dvc\.yaml:pseudo_label"):
        artifacts.read_pseudo_labels(Paths(tmp_path).pseudo_labels_dir)


def test_a_damaged_table_is_refused_naming_the_file(tmp_path):
    folder = Paths(tmp_path).pseudo_labels_dir
    good = pseudo.label_table(np.arange(3), probs([(0, 0.9), (7, 0.95), (17, 0.99)]), np.array([0, 7, 17]), 0.5)
    artifacts.write_pseudo_labels(folder, good, {})
    assert artifacts.read_pseudo_labels(folder, eval_photos=3).equals(good)
    with pytest.raises(DataError, match="rows outside the 2 eval photos"):
        artifacts.read_pseudo_labels(folder, eval_photos=2)
    for broken, words in (
        (good.assign(mask=[1, 1, 2]), "do not make the class"),
        (good.assign(age=[0.5, 1, 2]), "not whole numbers"),
        (good.assign(confidence=["high", "x", "y"]), "confidences that are not numbers"),
        (good.assign(row=[0, 0, 1]), "a row listed twice"),
        (good.drop(columns="age"), "missing column"),
    ):
        broken.to_csv(folder / artifacts.PSEUDO_LABELS, index=False)
        with pytest.raises(DataError, match=rf"labels\.csv: .*{words}"):
            artifacts.read_pseudo_labels(folder)


def test_the_second_rounds_metrics_say_what_it_trained_with_and_how_right_it_was(tmp_path):
    """evaluate --round 2 scores the pseudo-labels against eval's answers where they exist: after the fact."""
    folder = Paths(tmp_path).pseudo_labels_dir
    p = probs([(0, 0.9), (7, 0.95), (17, 0.99), (3, 0.2)])
    table = pseudo.label_table(np.arange(4), p, p.argmax(1), 0.5)
    summary = pseudo.summary(table, 4, 0.5, "photo", {"photos": 2, "kept": 1, "share": 0.5, "accuracy": 1.0})
    artifacts.write_pseudo_labels(folder, table, summary)
    out = evaluate.pseudo_summary(summary, np.array([0, 7, 16, 3]), Paths(tmp_path))
    assert out == {"threshold": 0.5, "photos": 3, "share": 0.75, "oof_accuracy": 1.0, "holdout_accuracy": 0.666667}
    assert "holdout_accuracy" not in evaluate.pseudo_summary(summary, None, Paths(tmp_path))
    none = pseudo.summary(table.iloc[:0], 4, 0.5, "photo", {"photos": 2, "kept": 0, "share": 0.0, "accuracy": None})
    assert all(isinstance(v, int | float) for v in evaluate.pseudo_summary(none, None, Paths(tmp_path)).values())


# --- the second round's training set ----------------------------------------------------------------------------------


def test_paths_of_the_second_round_share_the_data_and_keep_their_results_apart(tmp_path):
    one, two = Paths(tmp_path), Paths(tmp_path, round=2)
    for attr in ("index_dir", "labels_dir", "folds", "cache_dir", "pseudo_labels_dir"):
        assert getattr(one, attr) == getattr(two, attr)
    results = [
        (one.model_dir("m", 0), two.model_dir("m", 0)),
        (one.live_dir("m", 0), two.live_dir("m", 0)),
        (one.checkpoint_dir("m", 0), two.checkpoint_dir("m", 0)),
        (one.pred_dir("m", 0), two.pred_dir("m", 0)),
        (one.ensemble_dir, two.ensemble_dir),
        (one.submissions, two.submissions),
        (one.metrics_dir, two.metrics_dir),
    ]
    for first, second in results:
        assert first != second and not second.is_relative_to(one.preds_dir)
    assert all(second.is_relative_to(tmp_path / "pseudo") for _, second in results[:2] + results[3:])
    with pytest.raises(ValueError, match="round"):
        Paths(tmp_path, round=3)


@pytest.fixture
def fold_root(tmp_path, tmp_path_factory):
    return pf.copy(tmp_path_factory, tmp_path / "repo")


@pytest.mark.parametrize("head", ["multihead", "single", "age"])
def test_the_second_round_trains_on_the_folds_photos_and_the_pseudo_labelled_ones_and_validates_as_the_first(
    fold_root, head
):
    size = (pf.HEIGHT, pf.WIDTH)
    one = load_fold(Paths(fold_root), head, head, 0, size)
    eval_images = artifacts.open_cache(Paths(fold_root).cache_dir, "eval")
    kept = np.array([2, 5, 6, 11, 20])
    labels = np.array([0, 7, 17, 10, 3])
    p = np.full((len(eval_images), layout.NUM_CLASSES), 0.01)
    p[kept, labels] = 0.9
    pred = p.argmax(1)
    artifacts.write_pseudo_labels(
        Paths(fold_root).pseudo_labels_dir, pseudo.label_table(np.arange(len(p)), p, pred, 0.5), {}
    )
    two = load_fold(Paths(fold_root, round=2), head, head, 0, size)

    offset = len(one.images)
    assert two.train_rows.tolist() == one.train_rows.tolist() + (offset + kept).tolist()
    assert two.pseudo_photos == len(kept) and one.pseudo_photos == 0
    mask, gender, age = layout.decode(labels)
    expected = {"mask": mask, "gender": gender, "age": age, "class18": labels}
    for key, values in two.train_targets.items():
        assert values.tolist() == one.train_targets[key].tolist() + expected[key].tolist()
    assert two.train_targets.keys() == one.train_targets.keys()
    # validation: the same photos, targets and truth
    assert np.array_equal(two.val_rows, one.val_rows)
    assert all(np.array_equal(two.val_targets[k], one.val_targets[k]) for k in one.val_targets)
    assert all(np.array_equal(two.val_truth[k], one.val_truth[k]) for k in one.val_truth)
    assert not np.isin(two.train_rows, two.val_rows).any() and two.val_rows.max() < offset
    # the rows read the right photos
    assert np.array_equal(two.images[int(one.train_rows[0])], one.images[int(one.train_rows[0])])
    assert all(np.array_equal(two.images[offset + int(r)], eval_images[r]) for r in kept)


def test_stacked_images_read_row_by_row_and_travel_to_workers_by_file_name(tmp_path):
    a = (np.arange(2 * 32 * 24 * 3) % 256).astype(np.uint8).reshape(2, 32, 24, 3)
    b = (255 - np.arange(3 * 32 * 24 * 3) % 256).astype(np.uint8).reshape(3, 32, 24, 3)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    stack = StackedImages(np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r"))
    assert len(stack) == 5 and stack.shape == (5, 32, 24, 3)
    assert [np.array_equal(stack[i], x) for i, x in enumerate([*a, *b])] == [True] * 5
    with pytest.raises(IndexError):
        stack[5]
    dataset = CachedDataset(stack, np.array([4, 0, 3]))
    blob = pickle.dumps(dataset)
    assert len(blob) < a.nbytes  # file names, not pixels
    back = pickle.loads(blob)
    assert all(isinstance(p, np.memmap) for p in back.images.parts)
    assert all(torch.equal(back[i][0], dataset[i][0]) for i in range(3))
    with pytest.raises(ValueError, match="rebuild the cache"):
        StackedImages(a, b[:, :2])


def test_a_second_round_run_trains_with_the_pseudo_labels_and_writes_under_pseudo(fold_root, monkeypatch, capsys):
    monkeypatch.chdir(fold_root)  # DVCLive looks for a DVC repo from the working directory: keep it in the copy
    params = pf.tiny_params()
    eval_n = len(artifacts.open_cache(Paths(fold_root).cache_dir, "eval"))
    p = np.full((eval_n, layout.NUM_CLASSES), 1 / layout.NUM_CLASSES)
    artifacts.write_pseudo_labels(
        Paths(fold_root).pseudo_labels_dir, pseudo.label_table(np.arange(eval_n), p, np.zeros(eval_n, int), 0.05), {}
    )
    train.run(params, "multihead", 0, fold_root, round=2)
    one = load_fold(Paths(fold_root), "multihead", "multihead", 0, (pf.HEIGHT, pf.WIDTH))
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("train: multihead fold0 "))
    assert line == (
        f"train: multihead fold0 round 2: multihead {tiny.BACKBONE}, {len(one.train_rows) + eval_n} train "
        f"({eval_n} of them pseudo-labelled eval photos) / {len(one.val_rows)} val photos, 1 epochs on cpu"
    )
    two = Paths(fold_root, round=2)
    assert (two.model_dir("multihead", 0) / artifacts.MODEL_FILE).is_file()
    assert (two.live_dir("multihead", 0) / "metrics.json").is_file()
    assert not Paths(fold_root).model_dir("multihead", 0).exists() and not two.checkpoint_dir("multihead", 0).exists()


# --- pseudo/dvc.yaml -------------------------------------------------------------------------------------------------


def pipelines() -> tuple[dict, dict]:
    return params_mod.read_yaml(REPO / "dvc.yaml")["stages"], params_mod.read_yaml(REPO / "pseudo/dvc.yaml")["stages"]


def test_the_round_is_the_first_rounds_stages_run_with_round_2_under_pseudo():
    first, second = pipelines()
    assert list(second) == ["pseudo_label", "train", "predict", "ensemble", "evaluate"]
    for name in ("train", "predict", "ensemble", "evaluate"):
        assert second[name]["cmd"] == first[name]["cmd"].replace(f"maskcls {name}", f"maskcls {name} --round 2")
        assert second[name]["params"] == first[name]["params"], name  # what changes its outputs, as in round 1
        assert second[name].get("matrix") == first[name].get("matrix")
    for name, stage in second.items():
        assert "data/checked/params.ok" in stage["deps"], name  # a params typo stops at check_params
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", []) + stage.get("metrics", [])]
        assert outs and all(o.startswith("pseudo/") for o in outs), (name, outs)
    assert "pseudo/labels" in second["train"]["deps"] and "pseudo/labels" in second["evaluate"]["deps"]
    # selection reads the first round's ensemble, never the competition folder (eval's answers live there)
    assert not [d for d in second["pseudo_label"]["deps"] if "raw_dir" in d or d.startswith("data/sample")]
    assert "pseudo" in first["check_params"]["params"]
