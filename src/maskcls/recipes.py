"""Named recipes: params overlays in recipes/<name>.yaml, applied to the committed params.yaml and run as a
named DVC experiment, so `maskcls recipe run v5` is one reproducible, comparable row in `dvc exp show`.

A recipe's `params` are merged key by key into params.yaml, except `models`, which it replaces whole (a recipe
brings its own model zoo). `--quick` shrinks a recipe to run on CPU with the generated sample: one holdout fold,
one epoch, small inputs, and no hub download (models asking for `timm` weights start from scratch).
"""

from __future__ import annotations

import copy
import io as _io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from maskcls import params as params_mod
from maskcls.errors import MaskclsError, ParamsError

RECIPES_DIR = "recipes"
REPLACED_WHOLE = ("models",)
QUICK = {
    "split": {"method": "holdout", "holdout_ratio": 0.2},  # one fold is trained anyway; fits a tiny sample
    "cache": {"height": 64, "width": 48},
    "train": {"epochs": 1, "warmup_epochs": 0, "folds": [0], "batch_size": 32, "device": "cpu"},
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


def quick_overlay(recipe: Recipe) -> dict:
    """CPU/sample-sized version: keep everything that defines the recipe, shrink only cost."""
    overlay = copy.deepcopy(QUICK)
    models = recipe.params.get("models") or {}
    overlay["models"] = {
        name: {**spec, "pretrained": "none" if spec.get("pretrained") == "timm" else spec.get("pretrained", "offline")}
        for name, spec in models.items()
    }
    return overlay


def resolve(recipe: Recipe, base_text: str, quick: bool = False) -> str:
    """params.yaml text with the recipe applied; checked as full params before it is returned."""
    base = _yaml().load(base_text)
    merged = merge(base, recipe.params)
    if quick:
        merged = merge(merged, quick_overlay(recipe))
    buf = _io.StringIO()
    _yaml().dump(merged, buf)
    text = buf.getvalue()
    params_mod.from_dict(_yaml("safe").load(text), source=f"recipe {recipe.name}")
    return text


def committed_params(root: Path = Path(".")) -> str:
    """The committed params.yaml: recipes apply to it, not to whatever the workspace was left with."""
    result = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=root, capture_output=True, text=True, check=False)
    return result.stdout if result.returncode == 0 else (Path(root) / "params.yaml").read_text()


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def tool_env() -> dict:
    """Environment in which DVC finds the `maskcls` command of this same installation."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


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
    params_path.write_text(resolve(recipe, committed_params(root), quick=quick))
    exp_name = f"{name}-quick" if quick else name
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "-n", exp_name]
    cmd += ["--queue"] if queue else []
    cmd += ["--force"] if force else []
    print("$ dvc " + " ".join(cmd[3:]), file=sys.stderr)
    try:
        result = subprocess.run(cmd, cwd=root, check=False, env=tool_env())
    finally:
        if queue:  # the queue stashed its own copy; give the workspace its params back
            params_path.write_text(original)
    if result.returncode != 0:
        raise MaskclsError(f"dvc exp run for recipe {name} failed (exit {result.returncode}); see the output above")
    return exp_name
