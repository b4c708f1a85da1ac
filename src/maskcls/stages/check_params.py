"""check_params: the pipeline's first stage. params.yaml is loaded and checked, and data.raw_dir looked at, before
any other stage runs, so a typo or a wrong folder stops `dvc repro` before DVC removes any stage's outputs.

Every other stage depends on the marker it writes. The marker's bytes never change, so a valid edit of params.yaml
re-runs this check and then only the stages that read the edited keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskcls import io
from maskcls import params as params_mod
from maskcls.errors import ParamsError
from maskcls.params import Params

MARKER = Path("data") / "checked" / "params.ok"
MARKER_TEXT = "params.yaml passed `maskcls check-params`\n"
RAW_FIX = "point it at the competition folder holding train/ and eval/"


def run(params_path: Path = Path("params.yaml"), root: Path = Path("."), generated: Path | None = None) -> Params:
    """Check `params_path` and its data.raw_dir; write the marker under `root`.

    `generated` is the folder the synth stage writes (data/sample): a raw_dir equal to it may not exist yet,
    since synth runs after this check.
    """
    params = params_mod.load(params_path)
    check_raw_dir(params.data.raw_dir, root, generated=generated, source=str(params_path))
    check_builders(params)
    io.write_text(root / MARKER, MARKER_TEXT)
    return params


def check_builders(params: Params) -> None:
    """What only the libraries can tell: every backbone is a timm model, every augmentation an albumentations
    transform that accepts its arguments and keeps a cached image's size. A few seconds of imports, spent here so
    that a typo stops the pipeline before any stage has run."""
    from maskcls.models import check_backbones
    from maskcls.transforms import build_augment

    check_backbones(params)
    size = (params.cache.height, params.cache.width)
    build_augment(params.aug.train, seed=0, where="aug.train", image_size=size)
    build_augment(params.aug.minority, seed=0, where="aug.minority", image_size=size)


def check_raw_dir(raw_dir: str, root: Path = Path("."), generated: Path | None = None, source: str = "params") -> None:
    """`raw_dir` (relative to `root`) holds train/ and eval/, unless it is the `generated` sample."""
    path = root / raw_dir
    if generated is not None and _same(path, root / generated):
        return  # DVC owns that folder: the synth stage writes or restores it
    fix = RAW_FIX if generated is None else f"{RAW_FIX} (or at {generated.as_posix()}, the generated sample)"
    if not path.exists():
        raise ParamsError(f"{source}: data.raw_dir: {raw_dir!r} does not exist; {fix}")
    if not path.is_dir():
        raise ParamsError(f"{source}: data.raw_dir: {raw_dir!r} is a file, not a folder; {fix}")
    missing = [f"{name}/" for name in ("train", "eval") if not (path / name).is_dir()]
    if missing:
        raise ParamsError(f"{source}: data.raw_dir: {raw_dir!r} has no {' and no '.join(missing)}; {fix}")


def _same(a: Path, b: Path) -> bool:
    """The same path once `.`, `..`, trailing slashes and links are resolved (neither needs to exist)."""
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())
