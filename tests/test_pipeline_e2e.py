"""The real pipeline end to end: a copy of the repository, shrunk params, `dvc repro`, experiments, incrementality."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from maskcls import params, submission

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

TINY = {
    "synth": {"people": 40, "eval_people": 8, "seed": 0},
    "split": {"method": "holdout", "holdout_ratio": 0.3},
    "cache": {"height": 32, "width": 24},
    "models": {
        "mh": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"},
        "mk": {"head": "mask", "backbone": "test_efficientnet", "pretrained": "none"},
    },
    "aug": {"train": [{"name": "HorizontalFlip", "p": 0.5}], "minority": []},
    "train": {
        "models": ["mh", "mk"],
        "folds": [0],
        "epochs": 1,
        "warmup_epochs": 0,
        "batch_size": 16,
        "num_workers": 0,
    },
    "predict": {"batch_size": 64},
}


def sh(cwd, *cmd, check=True):
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def dvc(cwd, *args, check=True):
    return sh(cwd, sys.executable, "-m", "dvc", *args, check=check)


def copy_repo(dest: Path) -> Path:
    """The tracked files of this checkout, as a fresh git repository (what a clone would hold)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    base = params.read_yaml(dest / "params.yaml")
    for key, value in TINY.items():
        base[key] = {**base.get(key, {}), **value} if key != "models" else value
    params.dump(base, dest / "params.yaml")
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    sh(dest, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny")
    dvc(dest, "config", "--local", "remote.storage.url", str(dest.parent / "storage"))
    return dest


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = copy_repo(tmp_path_factory.mktemp("e2e") / "repo")
    out = dvc(root, "repro")
    return root, out


def test_repro_builds_a_valid_submission_and_metrics(repo):
    root, out = repo
    assert {"synth", "validate", "cache", "train@mh-0", "train@mk-0", "ensemble", "evaluate"} <= ran(out)
    submission.check_file(root / "submissions/submission.csv", root / "data/sample/eval/info.csv")
    metrics = json.loads((root / "metrics/eval.json").read_text())
    for key in ("oof_f1", "oof_acc", "oof_mask_f1", "holdout_f1", "holdout_acc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert (root / "dvc.lock").exists()
    # models, predictions and submissions are DVC outputs: ignored by git, present in the cache
    tracked = sh(root, "git", "ls-files", "models", "preds", "submissions")
    assert tracked.strip() == ""
    assert dvc(root, "status", "--quiet", check=False) == ""


def test_changing_the_age_threshold_does_not_retrain_a_mask_model(repo):
    root, _ = repo
    dvc(root, "exp", "run", "-S", "relabel_age.old_from=60")
    out = dvc(root, "exp", "run", "-S", "relabel_age.old_from=57")
    stages = ran(out)
    assert "train@mh-0" in stages
    assert "train@mk-0" not in stages and "cache" not in stages and "split" not in stages


def test_ensemble_params_rerun_only_ensemble_and_evaluate(repo):
    root, _ = repo
    out = dvc(root, "exp", "run", "-S", "ensemble.method=hard")
    assert ran(out) == {"ensemble", "evaluate"}


def test_exp_run_set_param_changes_metrics_and_exp_show_lists_them(repo):
    root, _ = repo
    dvc(root, "exp", "run", "-n", "lr-high", "-S", "train.lr=1e-1", "-S", "seed=7")
    shown = json.loads(dvc(root, "exp", "show", "--json"))
    text = json.dumps(shown)
    assert "lr-high" in text and "oof_f1" in text
    diff = dvc(root, "metrics", "diff", "--json")
    assert "oof_f1" in diff
    # the YAML number stayed a number in params.yaml
    assert params.load(root / "params.yaml").train.lr == pytest.approx(0.1)


def test_plots_render(repo):
    root, _ = repo
    out_dir = root.parent / "plots"
    dvc(root, "plots", "show", "-o", str(out_dir))
    assert (out_dir / "index.html").exists()
    sub = pd.read_csv(root / "submissions/submission.csv")
    assert len(sub) == 8 * 7
