"""The real pipeline end to end: a copy of the repository, shrunk params, `dvc repro`, experiments, incrementality."""

import json

import pandas as pd
import pytest

from maskcls import params, submission
from repo_copy import copy_repo, dvc, ran, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


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
    # models, predictions and submissions are DVC outputs: ignored by git, present in DVC's cache
    outputs = ["models/mh/fold0/model.pt", "preds/mh/fold0/eval.npz", "submissions/submission.csv"]
    assert all((root / path).exists() for path in outputs)
    for path in outputs:
        sh(root, "git", "check-ignore", "-q", path)  # exits non-zero when git would track the file
    assert dvc(root, "status", "--cloud", "-r", "storage", check=False).count("new:") >= 3  # cached, not pushed
    assert dvc(root, "status", "--quiet", check=False) == ""


def test_changing_the_age_threshold_does_not_retrain_a_mask_model(repo):
    root, _ = repo
    dvc(root, "exp", "run", "-S", "relabel_age.old_from=60")
    out = dvc(root, "exp", "run", "-S", "relabel_age.old_from=57")
    stages = ran(out)
    assert "train@mh-0" in stages
    assert "train@mk-0" not in stages and "cache" not in stages and "split" not in stages


def test_a_per_model_training_setting_changes_only_that_models_training(repo):
    """models.<name>.train overrides one model's settings; `dvc status` shows only its train stage as stale."""
    root, _ = repo
    original = (root / "params.yaml").read_text()
    try:
        data = params.read_yaml(root / "params.yaml")
        data["models"]["mk"]["train"] = {"lr": 0.05}
        params.dump(data, root / "params.yaml")
        status = json.loads(dvc(root, "status", "--json"))
        assert "train@mk-0" in status and "train@mh-0" not in status
        assert params.load(root / "params.yaml").train_for("mk").lr == 0.05
    finally:
        (root / "params.yaml").write_text(original)
    assert "train@mk-0" not in json.loads(dvc(root, "status", "--json"))


def test_ensemble_params_rerun_only_ensemble_and_what_reads_it(repo):
    root, _ = repo
    out = dvc(root, "exp", "run", "-S", "ensemble.method=hard")
    # the params check runs first on any change; evaluate and the error report read the ensemble's output
    assert ran(out) == {"check_params", "ensemble", "evaluate", "report"}


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


def test_queued_experiments_run(repo):
    """`dvc exp run --queue` + `dvc queue start`: runs from git-tracked files in a temporary copy."""
    import time

    root, _ = repo
    dvc(root, "exp", "run", "--queue", "-n", "queued-hard", "-S", "ensemble.method=hard")
    dvc(root, "queue", "start")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = dvc(root, "queue", "status")
        if "Success" in status or "Failed" in status:
            break
        time.sleep(3)
    assert "Success" in status, status
    shown = dvc(root, "exp", "show", "--json")
    assert "queued-hard" in shown
    dvc(root, "queue", "stop", check=False)


def test_keeping_an_experiment_stages_exactly_what_belongs_in_git(repo):
    """`maskcls exp keep` (the README's step 3) stages params, lock, metrics and plots, never stray folders."""
    root, _ = repo
    dvc(root, "exp", "run", "-n", "keep-me", "-S", "ensemble.method=hard")
    stale = root / "dvclive" / "gone-fold0" / "plots"
    stale.mkdir(parents=True)
    (stale / "lr.tsv").write_text("step\tlr\n0\t0.1\n")
    (root / "dvc_plots").mkdir(exist_ok=True)
    (root / "dvc_plots" / "index.html").write_text("<html></html>")
    try:
        out = sh(root, "maskcls", "exp", "keep", "keep-me")
        staged = sh(root, "git", "diff", "--cached", "--name-only").split()
        assert "params.yaml" in staged and "metrics/eval.json" in staged, out
        assert not [p for p in staged if p.startswith(("dvclive/gone-fold0", "dvc_plots"))]
        allowed = ("params.yaml", "dvc.lock", "metrics/", "dvclive/mh-fold0/plots/", "dvclive/mk-fold0/plots/")
        assert all(p.startswith(allowed) for p in staged), staged
        assert 'git commit -m "keep-me"' in out
        # the pseudo-label round never ran here: DVC cannot check its outputs out, and keep lets exactly those pass
        assert "not checked out, their stages never ran here: pseudo/" in out
    finally:
        sh(root, "git", "reset", "-q")
