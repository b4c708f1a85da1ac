"""The pseudo-label round through DVC: a copy of the repository on tiny params (tiny.OVERLAY), `dvc repro
pseudo/dvc.yaml`, then the threshold changed as an experiment."""

import json

import pytest
import torch

from maskcls import artifacts, io, submission
from maskcls.paths import Paths
from repo_copy import copy_repo, dvc, ran, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pseudo_e2e")]

# One model (one training per round) and a threshold below 1/18: a decision's probability is never lower, so the
# round-1 model of one random-weight epoch still pseudo-labels every eval photo.
OVERRIDES = {"pipeline": {"models": ["mh"]}, "pseudo": {"threshold": 0.05}}
ROUND_2 = {f"pseudo/dvc.yaml:{s}" for s in ("pseudo_label", "train@mh-0", "predict@mh-0", "ensemble", "evaluate")}


def test_the_round_runs_through_dvc_and_a_threshold_change_reruns_only_the_round(tmp_path):
    root = copy_repo(tmp_path / "repo", overrides=OVERRIDES)
    first_round = ran(dvc(root, "repro"))
    assert {"train@mh-0", "ensemble", "evaluate"} <= first_round and not first_round & ROUND_2  # dvc.yaml only
    out = dvc(root, "repro", "pseudo/dvc.yaml")
    assert ran(out) == ROUND_2, out
    one, two = Paths(root), Paths(root, round=2)
    summary = artifacts.read_pseudo_summary(two.pseudo_labels_dir)
    eval_photos = len(artifacts.read_ensemble(one.ensemble_dir, "eval")["rows"])
    assert summary["kept"] == summary["eval_photos"] == eval_photos
    assert (two.model_dir("mh", 0) / artifacts.MODEL_FILE).is_file() and one.model_dir("mh", 0).is_dir()
    submission.check_file(two.submissions / "submission.csv", root / "data/sample/eval/info.csv")
    metrics = json.loads((two.metrics_dir / "eval.json").read_text())
    for key in ("oof_f1", "holdout_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["pseudo"]["photos"] == eval_photos and 0 <= metrics["pseudo"]["holdout_accuracy"] <= 1
    assert (root / "pseudo/dvc.lock").is_file()

    # a threshold no decision reaches: the params check, then the round alone; round 2 is then round 1 retrained
    out = dvc(root, "exp", "run", "pseudo/dvc.yaml", "-n", "none-kept", "-S", "pseudo.threshold=1.0")
    assert ran(out) == {"check_params"} | ROUND_2, out
    assert artifacts.read_pseudo_summary(two.pseudo_labels_dir)["kept"] == 0
    first, second = (torch.load(p.model_dir("mh", 0) / artifacts.MODEL_FILE, weights_only=True) for p in (one, two))
    assert all(torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"])
    preds = [io.load_npz(p.pred_dir("mh", 0) / "eval.npz")["class18"] for p in (one, two)]
    assert (preds[0] == preds[1]).all()

    # keeping the experiment stages the round's lock file and metrics with the first round's
    out = sh(root, "maskcls", "exp", "keep", "none-kept")
    staged = sh(root, "git", "diff", "--cached", "--name-only").split()
    assert {"params.yaml", "pseudo/dvc.lock", "pseudo/metrics/eval.json"} <= set(staged), out
