from pathlib import Path

import pytest

from maskcls import params, recipes
from maskcls.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
BASE = (REPO / "params.yaml").read_text()
SEED_SYSTEMS = {"v1": "single", "v2": "fused", "v3": "sequential", "v5": "multihead"}


def resolved(name, quick=False):
    text = recipes.resolve(recipes.load(name, REPO), BASE, quick=quick)
    return params.from_dict(recipes._yaml("safe").load(text))


def test_every_seed_system_and_our_best_has_a_recipe():
    assert {"v1", "v2", "v3", "v4", "v5", "best"} <= set(recipes.names(REPO))


@pytest.mark.parametrize("name", recipes.names(REPO))
@pytest.mark.parametrize("quick", [False, True])
def test_recipes_resolve_to_valid_params(name, quick):
    p = resolved(name, quick)
    # a recipe brings its own model zoo: nothing of the default survives in it
    assert set(p.models) == set(recipes.load(name, REPO).params["models"])
    if quick:
        assert p.train.epochs == 1 and p.train.folds == [0] and p.cache.height == 64
        assert all(spec.pretrained != "timm" for spec in p.models.values())  # no hub on a sample run


def test_recipes_encode_the_seed_systems():
    for name, head in SEED_SYSTEMS.items():
        assert {s.head for s in resolved(name).models.values()} == {head}
    v4 = resolved("v4")
    assert sorted(s.head for s in v4.models.values()) == ["age", "gender", "mask"]
    assert v4.relabel_age.old_from == 58 and v4.train.minority.mode == "resample"
    v5 = resolved("v5")
    assert sorted(s.backbone for s in v5.models.values()) == ["efficientnet_b0", "resnext50_32x4d"]
    assert (v5.train.epochs, v5.train.batch_size, v5.train.lr, v5.train.scheduler) == (12, 16, 3e-5, "plateau")
    assert v5.ensemble.method == "soft"


def test_merge_keeps_untouched_keys_and_replaces_models():
    base = {"train": {"lr": 1.0, "epochs": 3}, "models": {"a": {"head": "single"}}}
    out = recipes.merge(base, {"train": {"lr": 2.0}, "models": {"b": {"head": "mask"}}})
    assert out == {"train": {"lr": 2.0, "epochs": 3}, "models": {"b": {"head": "mask"}}}
    assert base["train"]["lr"] == 1.0  # the base is not modified


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(ParamsError, match="available: .*v1"):
        recipes.load("v9", REPO)
