"""params.yaml -> typed, frozen dataclasses, checked before any work starts.

params.yaml is the only source of settings. It is read with a YAML 1.2 loader, so `1e-4` is a number
(PyYAML's YAML 1.1 would make it a string). Unknown keys, wrong types and impossible combinations are
rejected with the offending key named and, for typos, the closest valid key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML

from maskcls.errors import ParamsError
from maskcls.layout import HEAD_OUTPUTS

HeadType = Literal["single", "fused", "multihead", "sequential", "mask", "gender", "age"]
# Heads that predict all three factors; the others are per-task models.
ALL_TASK_HEADS = ("single", "fused", "multihead", "sequential")


@dataclass(frozen=True)
class DataParams:
    raw_dir: str = "data/sample"  # competition folder: train/ and eval/ as the organisers ship them


@dataclass(frozen=True)
class SynthParams:
    people: int = 300
    eval_people: int = 150
    seed: int = 0


@dataclass(frozen=True)
class RelabelParams:
    old_from: int = 58  # training targets: age >= old_from is "old" (the competition uses 60; 58 is the seed's filter)
    overrides: Literal["off", "core", "all"] = "core"  # label-noise fixes: none, published core list, + disputed


@dataclass(frozen=True)
class SplitParams:
    method: Literal["kfold", "holdout"] = "kfold"  # person-level either way
    n_folds: int = 5
    holdout_ratio: float = 0.2


@dataclass(frozen=True)
class CacheParams:
    height: int = 128  # model input size; images are decoded, cropped and resized once to this
    width: int = 96
    crop: Literal["none", "center", "face"] = "center"
    crop_size: tuple[int, int] = (448, 336)  # (h, w) in source pixels, before resizing
    crop_center: tuple[float, float] = (0.45, 0.5)  # (y, x) as a fraction of the photo, for `center`


@dataclass(frozen=True)
class LossSpec:
    name: Literal["ce", "focal", "smooth", "weighted_ce", "f1"] = "ce"
    gamma: float = 2.0  # focal
    smoothing: float = 0.1  # smooth
    class_weights: list[float] | None = None  # weighted_ce; None -> inverse frequency from the training labels


@dataclass(frozen=True)
class ModelSpec:
    head: HeadType = "multihead"
    backbone: str = "efficientnet_lite0"
    pretrained: str = "offline"  # none | offline | timm | path/to/weights.pth
    drop_rate: float = 0.2
    # One loss per head: keys mask/gender/age, or class18 for the single head. Missing keys get cross-entropy.
    losses: dict[str, LossSpec] = field(default_factory=dict)
    head_weights: dict[str, float] = field(default_factory=dict)  # multihead loss = sum w_task * loss_task


@dataclass(frozen=True)
class AugSpec:
    name: str  # an albumentations transform, e.g. HorizontalFlip
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AugParams:
    train: list[AugSpec] = field(default_factory=list)  # applied to every training image
    minority: list[AugSpec] = field(default_factory=list)  # applied to resampled minority copies only


@dataclass(frozen=True)
class MinorityParams:
    """Applies to the models that predict `task`; the others of the same experiment train on the plain data."""

    mode: Literal["none", "resample", "weighted"] = "none"
    task: Literal["mask", "gender", "age"] = "age"
    label: int = 2  # the minority class of `task` (old age)
    factor: int = 3  # resample: each minority image appears this many extra times


@dataclass(frozen=True)
class TrainParams:
    models: list[str] = field(default_factory=lambda: ["multihead"])  # names in `models` to train
    folds: list[int] = field(default_factory=lambda: [0])  # folds to train (each holds one fold out)
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adam", "adamw", "sgd", "adamp", "radam"] = "adamw"
    momentum: float = 0.9
    scheduler: Literal["none", "plateau", "cosine", "step"] = "cosine"
    warmup_epochs: int = 0
    step_size: int = 3
    gamma: float = 0.1  # step / plateau decay factor
    patience: int = 2  # plateau
    early_stop: int = 0  # epochs without val F1 gain before stopping; 0 = never
    ema: float = 0.0  # EMA decay of weights; 0 = off
    minority: MinorityParams = field(default_factory=MinorityParams)
    num_workers: int = 2  # changes augmentation RNG streams, hence results: part of the experiment
    threads: int = 2  # CPU threads of train and predict; the rounding of CPU sums depends on it: part of the experiment
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "bf16"  # CUDA only
    channels_last: bool = True  # CUDA only
    deterministic: bool = True
    checkpoint_every: int = 1  # epochs between resumable checkpoints


@dataclass(frozen=True)
class PredictParams:
    tta: list[Literal["none", "hflip"]] = field(default_factory=lambda: ["none", "hflip"])
    batch_size: int = 64
    embeddings: bool = False  # also save backbone features (per-person clustering, error analysis)


@dataclass(frozen=True)
class EnsembleParams:
    method: Literal["soft", "hard", "weighted", "nested"] = "soft"
    weights: dict[str, float] = field(default_factory=dict)  # weighted: model name -> weight
    groups: list[list[str]] = field(default_factory=list)  # nested: soft vote inside a group, hard across


@dataclass(frozen=True)
class Params:
    seed: int = 42
    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    relabel_age: RelabelParams = field(default_factory=RelabelParams)
    split: SplitParams = field(default_factory=SplitParams)
    cache: CacheParams = field(default_factory=CacheParams)
    models: dict[str, ModelSpec] = field(default_factory=lambda: {"multihead": ModelSpec()})
    aug: AugParams = field(default_factory=AugParams)
    train: TrainParams = field(default_factory=TrainParams)
    predict: PredictParams = field(default_factory=PredictParams)
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ParamsError(f"models.{name}: no such model; defined: {', '.join(sorted(self.models))}")
        return self.models[name]


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    return yaml


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run from the repository root or pass --params")
    with path.open() as fh:
        data = _yaml().load(fh)
    return data or {}


def load(path: str | Path = "params.yaml") -> Params:
    """Read and check params.yaml."""
    return from_dict(read_yaml(path), source=str(path))


def from_dict(data: dict, source: str = "params") -> Params:
    params = _build(Params, data, path="", source=source)
    check(params, source)
    return params


def to_dict(params) -> dict:
    """Plain data again (tuples as lists), e.g. to write a shrunk params.yaml."""

    def plain(value):
        if isinstance(value, AugSpec):  # written back in the flat form params.yaml uses
            return {"name": value.name, **plain(value.kwargs)}
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(params)


def digest(params: Params) -> str:
    """Stable short hash of the full, resolved params (defaults included)."""
    text = json.dumps(to_dict(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dump(data: dict, path: str | Path) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    with Path(path).open("w") as fh:
        yaml.dump(data, fh)


# --- building and type checking --------------------------------------------------------------------------


def _err(source: str, path: str, message: str) -> ParamsError:
    return ParamsError(f"{source}: {path or '<root>'}: {message}")


def _build(tp, value, path: str, source: str):
    """Turn plain YAML data into `tp`, checking every key and type on the way."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is AugSpec:  # `- HorizontalFlip` is shorthand for {name: HorizontalFlip}
            value = {"name": value}
        if not isinstance(value, dict):
            raise _err(source, path, f"expected a mapping, got {type(value).__name__} {value!r}")
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        if tp is AugSpec:  # any key but `name` is a keyword argument of the transform
            value = {"name": value.get("name"), "kwargs": {k: v for k, v in value.items() if k != "name"}}
        for key in value:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
                raise _err(source, f"{path}.{key}".lstrip("."), f"unknown key{hint}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{path}.{f.name}".lstrip("."), source)
        try:
            return tp(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise _err(source, path, str(exc)) from None

    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _err(source, path, f"{value!r} is not one of {', '.join(map(str, args))}{hint}")
        return value

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _build(non_none[0], value, path, source)

    if origin is list:
        if not isinstance(value, list):
            raise _err(source, path, f"expected a list, got {value!r}")
        return [_build(args[0], v, f"{path}[{i}]", source) for i, v in enumerate(value)]

    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _err(source, path, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(_build(a, v, f"{path}[{i}]", source) for i, (a, v) in enumerate(zip(args, value, strict=True)))

    if origin is dict:
        if not isinstance(value, dict):
            raise _err(source, path, f"expected a mapping, got {value!r}")
        return {str(k): _build(args[1], v, f"{path}.{k}", source) for k, v in value.items()}

    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(source, path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(source, path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _err(source, path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _err(source, path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {tp!r} at {path}")


# --- cross-field checks -------------------------------------------------------------------------------------


def check(p: Params, source: str = "params") -> None:
    """Combinations that no single type can rule out."""

    def bad(key: str, message: str):
        raise _err(source, key, message)

    for name, spec in p.models.items():
        allowed = HEAD_OUTPUTS[spec.head]
        for key in (*spec.losses, *spec.head_weights):
            if key not in allowed:
                bad(f"models.{name}", f"head '{spec.head}' has no output '{key}'; it has {', '.join(sorted(allowed))}")
    for name in p.train.models:
        if name not in p.models:
            close = difflib.get_close_matches(name, list(p.models), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            bad("train.models", f"'{name}' is not defined under models{hint}")
    if not p.train.models:
        bad("train.models", "at least one model must be trained")
    if len(set(p.train.models)) != len(p.train.models):
        bad("train.models", "a model is listed twice")
    n_folds = p.split.n_folds if p.split.method == "kfold" else 1
    if p.split.method == "kfold" and p.split.n_folds < 2:
        bad("split.n_folds", "k-fold needs at least 2 folds (use split.method: holdout for one)")
    if not 0 < p.split.holdout_ratio < 1:
        bad("split.holdout_ratio", "must be between 0 and 1")
    for fold in p.train.folds:
        if not 0 <= fold < n_folds:
            bad("train.folds", f"fold {fold} does not exist: the split has folds 0..{n_folds - 1}")
    if not p.train.folds or len(set(p.train.folds)) != len(p.train.folds):
        bad("train.folds", "list each fold once, at least one")
    for key in ("epochs", "batch_size"):
        if getattr(p.train, key) < 1:
            bad(f"train.{key}", "must be at least 1")
    if p.train.lr <= 0:
        bad("train.lr", "must be positive")
    t = p.train
    if t.warmup_epochs and t.scheduler != "cosine":
        bad("train.warmup_epochs", f"warmup is implemented for scheduler cosine only, not '{t.scheduler}'")
    if not 0 <= t.warmup_epochs < t.epochs:
        bad("train.warmup_epochs", f"must be 0 .. epochs-1 ({t.epochs - 1}), got {t.warmup_epochs}")
    if t.scheduler in ("step", "plateau") and not 0 < t.gamma < 1:
        bad("train.gamma", f"the decay factor must be between 0 and 1, got {t.gamma}")
    if t.step_size < 1:
        bad("train.step_size", f"must be at least 1 epoch, got {t.step_size}")
    if t.patience < 0:
        bad("train.patience", f"must be 0 or more, got {t.patience}")
    if p.train.num_workers < 0:
        bad("train.num_workers", "must be 0 or more")
    if p.train.threads < 0:
        bad("train.threads", "must be 0 (one per core) or more")
    if not 0 <= p.train.ema < 1:
        bad("train.ema", "EMA decay must be in [0, 1)")
    if p.cache.height < 8 or p.cache.width < 8:
        bad("cache", "height and width must be at least 8 pixels")
    if not p.predict.tta:
        bad("predict.tta", "list at least one view, e.g. [none]")
    trained = set(p.train.models)
    if p.ensemble.method == "hard" and len(p.train.models) * len(p.train.folds) < 2:
        bad("ensemble.method", "a hard vote needs at least two models or folds; use soft")
    for name in p.ensemble.weights:
        if name not in trained:
            bad("ensemble.weights", f"'{name}' is not in train.models")
    if p.ensemble.method == "weighted" and not p.ensemble.weights:
        bad("ensemble.weights", "method 'weighted' needs a weight per model")
    for group in p.ensemble.groups:
        for name in group:
            if name not in trained:
                bad("ensemble.groups", f"'{name}' is not in train.models")
    if p.ensemble.method == "nested" and not p.ensemble.groups:
        bad("ensemble.groups", "method 'nested' needs groups of model names")
    per_task = {p.models[m].head for m in p.train.models} & {"mask", "gender", "age"}
    has_all_task = any(p.models[m].head in ALL_TASK_HEADS for m in p.train.models)
    if per_task and per_task != {"mask", "gender", "age"} and not has_all_task:
        missing = {"mask", "gender", "age"} - per_task
        bad(
            "train.models",
            f"per-task models need all three tasks (or an all-task model) to make 18 classes; "
            f"missing {', '.join(sorted(missing))}",
        )
