"""Every recipe runs as a named DVC experiment on CPU with a tiny sample (`maskcls recipe run NAME --quick`)."""

import json
import shutil

import pytest

from maskcls import recipes
from repo_copy import REPO, copy_repo, dvc, git, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("recipes")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = copy_repo(tmp_path_factory.mktemp("recipes") / "repo")
    # the recipes of this checkout, also those not committed yet, are the ones under test
    for old in (root / recipes.RECIPES_DIR).glob("*.yaml"):
        old.unlink()
    for path in (REPO / recipes.RECIPES_DIR).glob("*.yaml"):
        shutil.copy2(path, root / recipes.RECIPES_DIR / path.name)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "recipes", check=False)  # nothing to commit when they are all committed
    return root


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
    recipe = recipes.load(name, repo)
    changes = recipes.quick_changes(recipe, recipes.committed_params(repo))
    assert changes and all(str(change) in out for change in changes)  # it says what it changes
    used, metrics = experiment(repo, f"{name}-quick")
    assert set(used["models"]) == set(recipe.params["models"])
    assert used["train"]["epochs"] == 1
    for model, spec in recipe.params["models"].items():
        if spec.get("pretrained") == "timm":  # no hub: offline ImageNet weights, not random ones
            assert (used["models"][model]["backbone"], used["models"][model]["pretrained"]) == (
                "efficientnet_lite0",
                "offline",
            )
    assert 0.0 <= metrics["oof_f1"] <= 1.0 and 0.0 <= metrics["holdout_f1"] <= 1.0
