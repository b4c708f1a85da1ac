"""Every recipe runs as a named DVC experiment on CPU with a tiny sample (`maskcls recipe run NAME --quick`)."""

import json

import pytest

from maskcls import recipes
from repo_copy import REPO, copy_repo, dvc, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("recipes")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("recipes") / "repo")


def experiment(root, name: str) -> tuple[dict, dict]:
    """(params.yaml, metrics/eval.json) of the experiment `name`, as `dvc exp show --json` reports them."""
    for baseline in json.loads(dvc(root, "exp", "show", "--json")):
        for exp in baseline.get("experiments") or []:
            for run in exp.get("revs", []):
                if run.get("name") == name:
                    data = run["data"]
                    return data["params"]["params.yaml"]["data"], data["metrics"]["metrics/eval.json"]["data"]
    raise AssertionError(f"no experiment {name}")


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_recipe_runs_quick_as_a_named_experiment(repo, name):
    out = sh(repo, "maskcls", "recipe", "run", name, "--quick")
    assert f"experiment {name}-quick" in out
    used, metrics = experiment(repo, f"{name}-quick")
    assert set(used["models"]) == set(recipes.load(name, REPO).params["models"])
    assert used["train"]["epochs"] == 1
    assert 0.0 <= metrics["oof_f1"] <= 1.0 and 0.0 <= metrics["holdout_f1"] <= 1.0
