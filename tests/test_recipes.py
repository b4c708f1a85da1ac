import copy
import subprocess
from pathlib import Path

import pytest
import torch

from maskcls import params, recipes
from maskcls.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
BASE = (REPO / "params.yaml").read_text()
SEED_SYSTEMS = {"v1": "single", "v2": "fused", "v3": "sequential", "v5": "multihead"}


def resolved(name, quick=False):
    text = recipes.resolve(recipes.load(name, REPO), BASE, quick=quick)
    return params.from_dict(recipes._yaml("safe").load(text))


def test_every_seed_system_and_our_own_has_a_recipe():
    assert {"v1", "v2", "v3", "v4", "v4-focal", "v5", "lite0-cv5"} <= set(recipes.names(REPO))
    # "best" would claim a measured win over v5 at the same budget, which no run has shown
    assert "best" not in recipes.names(REPO)


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_recipe_names_are_valid_experiment_names(name):
    # dvc exp run -n NAME (and NAME-quick) accepts what git accepts as a ref name, without "/"
    for exp in (name, f"{name}-quick"):
        assert "/" not in exp
        result = subprocess.run(["git", "check-ref-format", f"refs/exps/x/{exp}"], check=False)
        assert result.returncode == 0, exp


@pytest.mark.parametrize("name", recipes.names(REPO))
@pytest.mark.parametrize("quick", [False, True])
def test_recipes_resolve_to_valid_params(name, quick):
    p = resolved(name, quick)
    # a recipe brings its own model zoo: nothing of the default survives in it
    assert set(p.models) == set(recipes.load(name, REPO).params["models"])
    if quick:
        assert p.train.epochs == 1 and p.pipeline.folds == [0] and p.cache.height == 64
        assert all(spec.pretrained != "timm" for spec in p.models.values())  # no hub on a sample run


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_quick_starts_timm_models_from_offline_weights(name):
    own = resolved(name).models
    quick = resolved(name, quick=True).models
    for model, spec in own.items():
        if spec.pretrained == "timm":
            assert (quick[model].backbone, quick[model].pretrained) == ("efficientnet_lite0", "offline")
        else:
            assert quick[model] == spec
        # everything else that defines the model stays
        assert (quick[model].head, quick[model].losses, quick[model].head_weights) == (
            spec.head,
            spec.losses,
            spec.head_weights,
        )


def _leaves(p):
    return recipes._leaves(params.to_dict(p))


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_quick_summary_names_every_changed_key(name):
    recipe = recipes.load(name, REPO)
    full, quick = _leaves(resolved(name)), _leaves(resolved(name, quick=True))
    changed = {k for k in full.keys() | quick.keys() if full.get(k) != quick.get(k)}
    assert changed, "a quick run changes something"
    summary = recipes.quick_summary(recipe, BASE)
    listed = {line.split(":")[0].strip() for line in summary.splitlines()[1:]}
    assert listed == changed
    for key in changed:
        assert f"{key}: {recipes.flow(full.get(key))} -> {recipes.flow(quick.get(key))}" in summary
    # the params.yaml of the quick run carries the same summary as comments
    text = recipes.resolve(recipe, BASE, quick=True)
    assert text.startswith("".join(f"# {line}\n" for line in summary.splitlines()))


def test_quick_summary_of_v5_says_what_it_shrinks():
    summary = recipes.quick_summary(recipes.load("v5", REPO), BASE)
    for line in (
        "models.v5_effb0.backbone: efficientnet_b0 -> efficientnet_lite0",
        "models.v5_resnext50.backbone: resnext50_32x4d -> efficientnet_lite0",
        "models.v5_effb0.pretrained: timm -> offline",
        "train.epochs: 12 -> 1",
        "cache.height: 360 -> 64",
        "cache.width: 200 -> 48",
        "split.holdout_ratio: 0.05 -> 0.2",
        "runtime.device: auto -> cpu",
    ):
        assert line in summary
    v4 = recipes.quick_summary(recipes.load("v4", REPO), BASE)
    assert "pipeline.folds: [0, 1, 2, 3, 4] -> [0]" in v4 and "split.method: kfold -> holdout" in v4


def test_quick_drops_per_model_cost_overrides():
    spec = {"head": "age", "backbone": "efficientnet_b0", "pretrained": "timm", "train": {"epochs": 30, "lr": 1e-3}}
    assert recipes.quick_model(spec) == {
        "head": "age",
        "backbone": "efficientnet_lite0",
        "pretrained": "offline",
        "train": {"lr": 1e-3},
    }
    assert spec["train"]["epochs"] == 30  # the recipe's spec is not modified


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


def test_v4_age_is_cross_entropy_and_focal_is_its_own_recipe():
    v4, focal = resolved("v4"), resolved("v4-focal")
    assert v4.models["v4_age"].losses["age"].name == "ce"
    assert (focal.models["v4_age"].losses["age"].name, focal.models["v4_age"].losses["age"].gamma) == ("focal", 2.0)
    # nothing else differs
    assert params.to_dict(v4) | {"models": None} == params.to_dict(focal) | {"models": None}
    assert {k: v for k, v in v4.models.items() if k != "v4_age"} == {
        k: v for k, v in focal.models.items() if k != "v4_age"
    }
    for p in (v4, focal):
        assert (p.ensemble.method, p.ensemble.folds) == ("hard", "best")
        assert p.pipeline.folds == [0, 1, 2, 3, 4]


def test_v2_v3_crop_360x200_and_rotate_20():
    for name in ("v2", "v3"):
        p = resolved(name)
        assert (p.cache.crop, p.cache.crop_size, p.cache.crop_center) == ("center", (360, 200), (0.5, 0.5))
        assert (p.cache.height, p.cache.width) == (360, 200)  # the crop itself, not resized
        assert [(a.name, a.kwargs) for a in p.aug.train] == [("Rotate", {"limit": [-20, 20], "p": 1.0})]


def test_v1_random_crop_never_shows_a_border():
    """v1's RandomCrop: a fixed zoom with a shift inside its margin is a crop of 8/9 of each side, resized."""
    import numpy as np

    from maskcls.transforms import build_augment

    p = resolved("v1")
    assert p.cache.crop == "none"
    image = np.random.default_rng(0).integers(1, 256, (p.cache.height, p.cache.width, 3), dtype=np.uint8)
    augment = build_augment(p.aug.train, seed=0, image_size=(p.cache.height, p.cache.width))
    outputs = [augment(image=image)["image"] for _ in range(50)]
    assert all(out.shape == image.shape and (out > 0).any(-1).all() for out in outputs)
    assert len({out.tobytes() for out in outputs}) > 1  # the position is random


def test_v2_trains_on_the_fused_18_class_output_only():
    """head_weights 0 take the per-task losses out of the gradient: the same steps as training class18 alone."""
    from maskcls.models import build_model
    from maskcls.training import loop
    from maskcls.training.runtime import Runtime

    v2_weights = resolved("v2").models["v2_fused"].head_weights
    spec = params.ModelSpec(head="fused", backbone="test_efficientnet", pretrained="none", head_weights=v2_weights)
    net = build_model(spec, pretrained=False, input_size=(32, 32))
    weights = loop.start_epoch(net, 0, 10)
    assert weights == {"mask": 0.0, "gender": 0.0, "age": 0.0, "class18": 1.0}

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=gen)
    cls = torch.randint(0, 18, (8,), generator=gen)
    targets = {"mask": cls // 6, "gender": (cls // 3) % 2, "age": cls % 3, "class18": cls}
    loader = [(images, targets)] * 3
    losses = {k: torch.nn.CrossEntropyLoss() for k in targets}
    rt = Runtime(torch.device("cpu"), "off", False)

    class NoSchedule:
        def step_batch(self):
            pass

    def trained(w):
        model = copy.deepcopy(net)
        torch.manual_seed(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        loop.train_one_epoch(model, loader, losses, w, opt, NoSchedule(), scaler, None, rt, net.data_config, 0, "t")
        return [t.detach().clone() for t in model.state_dict().values()]

    alone = trained({"class18": 1.0})
    assert all(torch.equal(a, b) for a, b in zip(trained(weights), alone, strict=True))
    summed = trained(dict.fromkeys(targets, 1.0))  # the per-task losses do change training when weighted in
    assert not all(torch.equal(a, b) for a, b in zip(summed, alone, strict=True))


def test_merge_keeps_untouched_keys_and_replaces_models():
    base = {"train": {"lr": 1.0, "epochs": 3}, "models": {"a": {"head": "single"}}}
    out = recipes.merge(base, {"train": {"lr": 2.0}, "models": {"b": {"head": "mask"}}})
    assert out == {"train": {"lr": 2.0, "epochs": 3}, "models": {"b": {"head": "mask"}}}
    assert base["train"]["lr"] == 1.0  # the base is not modified


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(ParamsError, match="available: .*v1"):
        recipes.load("v9", REPO)


def test_committed_params_come_from_git_and_fall_back_to_the_workspace(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert recipes.committed_params(tmp_path) == "seed: 1\n"  # not a git repository yet
    user = ("-c", "user.name=t", "-c", "user.email=t@t")
    for args in (("init", "-q"), ("add", "params.yaml"), (*user, "commit", "-qm", "params")):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    assert recipes.committed_params(tmp_path) == "seed: 1\n"
