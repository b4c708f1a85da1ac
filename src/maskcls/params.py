"""params.yaml -> typed, frozen dataclasses, checked before any work starts.

params.yaml is the only source of settings. It is read with a YAML 1.2 loader, so `1e-4` is a number
(PyYAML's YAML 1.1 would make it a string). Unknown keys, wrong types and impossible combinations are
rejected with the offending key named and, for typos, the closest valid key suggested. Every check of a value
lives here; the code that builds losses, optimizers, schedules and label fixes from these values trusts them.
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
from maskcls.layout import HEAD_OUTPUTS, IMAGE_SIZE, NUM_LABELS, OLD_FROM, YOUNG_BELOW

HeadType = Literal["single", "fused", "multihead", "sequential", "mask", "gender", "age"]
# Heads that predict all three factors; the others are per-task models.
ALL_TASK_HEADS = ("single", "fused", "multihead", "sequential")
# The names maskcls.losses.LOSSES, maskcls.optim.OPTIMIZERS and SCHEDULERS, and maskcls.overrides.SETS_BY_MODE
# register (a test holds them equal): an unknown name is refused here, naming its key, before any work starts.
LossName = Literal["ce", "focal", "smooth", "weighted_ce", "f1"]
OptimizerName = Literal["adam", "adamw", "sgd", "adamp", "radam"]
SchedulerName = Literal["none", "plateau", "cosine", "step"]
OverridesMode = Literal["off", "core", "all"]  # label-noise fixes: none, published core list, + disputed


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
    overrides: OverridesMode = "core"


@dataclass(frozen=True)
class SplitParams:
    method: Literal["kfold", "holdout"] = "kfold"  # person-level either way
    n_folds: int = 5
    holdout_ratio: float = 0.2
    # Folds have their own seed, so two training seeds are compared on the same people. 42 is the value the
    # top-level `seed` had when it also drew the folds: existing folds stay as they were.
    seed: int = 42
    # What must never straddle two folds. `base_id`: an id and its suffixed variants (001498, 001498-1): whether
    # they are one person is unknown, so they are kept together. `id`: each csv id is a group of its own.
    group: Literal["base_id", "id"] = "base_id"


@dataclass(frozen=True)
class CacheParams:
    height: int = 128  # model input size; images are decoded, cropped and resized once to this
    width: int = 96
    crop: Literal["none", "center", "face"] = "center"
    # `center`: a fixed (h, w) box in source pixels around crop_center, (y, x) as fractions of the photo. `face`
    # uses it only when no photo of either split has a detected face.
    crop_size: tuple[int, int] = (448, 336)
    crop_center: tuple[float, float] = (0.45, 0.5)
    # `face`: box width = detected face width x face_margin, height from the input's aspect (height / width),
    # centred on the face. Haar's box spans roughly forehead to chin; at 1.7 and a 4:3 input the crop adds 0.63
    # face widths above and below it: room for the hair top (grey hair, hairline: age cues), the chin and a
    # dropped mask, and the detector's jitter; 1.4 leaves 0.43. A face then spans width / 1.7 input pixels (56 of
    # 96) at any distance from the camera. docs/face-crop.md has the measurements.
    face_margin: float = 1.7
    # `center` and `none`: also detect faces, only to report the share found and their size in input pixels.
    detect_faces: bool = False


@dataclass(frozen=True)
class LossSpec:
    name: LossName = "ce"
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
    # Any `train.*` key (lr, epochs, optimizer, ...), overriding the shared recipe for this model only. Mappings
    # merge key by key (`minority: {factor: 5}`). Checked like `train`. `runtime` is the same for every model.
    train: dict[str, Any] = field(default_factory=dict)


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
class PipelineParams:
    """The pipeline's matrix: dvc.yaml trains and predicts each of `models` on each of `folds`."""

    models: list[str] = field(default_factory=lambda: ["multihead"])  # names under `models`
    folds: list[int] = field(default_factory=lambda: [0])  # folds to train (each holds one fold out)


@dataclass(frozen=True)
class TrainParams:
    """The training recipe; `models.<name>.train` overrides any of it for one model."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: OptimizerName = "adamw"
    momentum: float = 0.9
    scheduler: SchedulerName = "cosine"
    warmup_epochs: int = 0
    step_size: int = 3
    gamma: float = 0.1  # step / plateau decay factor
    patience: int = 2  # plateau
    early_stop: int = 0  # epochs without val F1 gain before stopping; 0 = never
    ema: float = 0.0  # EMA decay of weights; 0 = off
    minority: MinorityParams = field(default_factory=MinorityParams)


@dataclass(frozen=True)
class RuntimeParams:
    """Where and how train and predict compute, the same for every model. On CPU, threads and portable change
    the bytes of the results too, so the train stage declares them; num_workers changes no byte."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 2  # CPU threads of train and predict; the rounding of CPU sums depends on it
    # DataLoader worker processes; no byte depends on them (each draw carries its augmentation seed, maskcls.dataset).
    # auto: 0 on CPU, where the loader's work is small and workers take cores from the model; on CUDA one per core
    # of this process's share of the machine, at most 8 (`loader_workers`).
    num_workers: int | Literal["auto"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "bf16"  # CUDA only
    channels_last: bool = True  # model and inputs in NHWC memory order, on CPU and CUDA
    deterministic: bool = True
    # Cap the CPU kernels of torch at AVX2 (maskcls.portable): the same bytes on any current x86-64 CPU, at a
    # measured speed cost (docs/reproducibility.md). false: this machine's fastest kernels, bytes hold on this
    # CPU model only. CPU kernels only; GPU kernels are unaffected.
    portable: bool = True
    compile: bool = False  # torch.compile the model for training (measured in bench/gpu_check.sh)
    checkpoint_every: int = 1  # epochs between resumable checkpoints
    # Data-parallel training (DDP through torchrun, maskcls.training.distributed): processes per machine and
    # machines. train.batch_size stays the global batch. Results are close to, not bit-identical with, one process.
    devices: int = 1
    nodes: int = 1
    # nodes > 1: host:port of machine 0, the one that runs DVC, reachable from every machine. torchrun's static
    # rendezvous: each machine passes its own number (`maskcls train --node-rank`), so rank 0, the process that
    # writes the outputs, is on the machine that runs DVC.
    rdzv_endpoint: str = "localhost:29400"


@dataclass(frozen=True)
class PredictParams:
    tta: list[Literal["none", "hflip"]] = field(default_factory=lambda: ["none", "hflip"])
    batch_size: int = 64
    # Also save each photo's pooled backbone features; `ensemble.person_features` with embeddings needs them.
    embeddings: bool = False


@dataclass(frozen=True)
class EnsembleParams:
    """How fold models and members become one answer per photo; docs/ensemble.md defines each method."""

    # soft: mean probability | hard: majority of argmaxes | weighted_soft / weighted_hard: the same with a weight
    # per member | nested: soft inside each group of `groups`, hard across groups
    method: Literal["soft", "hard", "weighted_soft", "weighted_hard", "nested"] = "soft"
    # How a member's fold models take part on eval: each one a voter (vote), one averaged voter (mean), or only
    # the fold with the best validation F1 (best, what the seed kept). Out-of-fold always stitches every fold.
    folds: Literal["vote", "mean", "best"] = "vote"
    weights: dict[str, float] = field(default_factory=dict)  # weighted_*: every trained model -> weight > 0
    groups: list[list[str]] = field(default_factory=list)  # nested: model names; an unlisted member stands alone
    # Per-person decisions on eval, whose photos come seven to a person with the identity hidden (docs/beyond.md):
    # off | pool (gender and age pooled over each recovered person) | pool+assign (and, in a group of seven, exactly
    # one incorrectly worn and one missing mask). The grouping threshold is chosen on out-of-fold photos.
    person: Literal["off", "pool", "pool+assign"] = "off"
    # What groups photos: image (statistics of the cached photo outside the mask area), embeddings (predict's
    # backbone features: needs predict.embeddings) or both.
    person_features: Literal["image", "embeddings", "image+embeddings"] = "image"
    # Decisions tuned for macro F1 on out-of-fold probabilities, applied to eval: off | bias (one offset per class)
    # | bias+weights (member weights, then offsets). After person pooling when both are on.
    tune: Literal["off", "bias", "bias+weights"] = "off"


@dataclass(frozen=True)
class PseudoParams:
    """The optional second round (pseudo/dvc.yaml, docs/beyond.md): eval photos whose first-round ensemble decision
    is at least `threshold` probable join every fold's training photos, with that decision as their label; per
    recovered person (all of a person's photos or none, on its least confident photo) when `ensemble.person` is on."""

    # 0.9: the first round's ensemble must give its decision nine chances in ten. Lower cut-offs add photos whose
    # labels are wrong more often: on the generated sample out of fold, where labels are known, the share of right
    # labels among kept photos rises from 64% at 0.5 to 74% at 0.7 and stays there up to 0.9, while the photos kept
    # fall from 80% to 9% (docs/beyond.md). The pseudo_label stage reports that estimate for the data at hand.
    threshold: float = 0.9


# --- building and type checking --------------------------------------------------------------------------


def _err(source: str, path: str, message: str) -> ParamsError:
    return ParamsError(f"{source}: {path or '<root>'}: {message}")


def moved_to(key: str) -> str | None:
    """Where a key of the older layout lives now: the pipeline's matrix and the runtime left `train`, and the CPU
    mode left `repro`. A params file of that layout is refused with the new name of each key."""
    section, _, name = key.partition(".")
    if key == "repro" or key == "repro.portable":
        return "runtime.portable"
    if section == "train":
        for new, fields in (("pipeline", PipelineParams), ("runtime", RuntimeParams)):
            if name in {f.name for f in dataclasses.fields(fields)}:
                return f"{new}.{name}"
    return None


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
                where = f"{path}.{key}".lstrip(".")
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
                if moved_to(where):
                    hint = f"; it is {moved_to(where)} now"
                raise _err(source, where, f"unknown key{hint}")
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
        reasons = []
        for alternative in (a for a in args if a is not type(None)):  # the first that takes the value
            try:
                return _build(alternative, value, path, source)
            except ParamsError as exc:
                reasons.append(str(exc).removeprefix(f"{source}: {path or '<root>'}: "))
        raise _err(source, path, "; or ".join(reasons))

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


# --- per-model training settings ------------------------------------------------------------------------------


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def resolve_train(train: TrainParams, overrides: dict, where: str, source: str = "params") -> TrainParams:
    """`train` with one model's `overrides` merged into it, built and checked as the section `where`."""
    for key in overrides:
        for section, fields in (("pipeline", PipelineParams), ("runtime", RuntimeParams)):
            if key in {f.name for f in dataclasses.fields(fields)}:
                raise _err(source, f"{where}.{key}", f"set for all models under {section}.{key}, not per model")
    if not overrides:
        return train
    return _build(TrainParams, _merged(to_dict(train), overrides), path=where, source=source)


# --- the whole file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    seed: int = 42
    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    relabel_age: RelabelParams = field(default_factory=RelabelParams)
    split: SplitParams = field(default_factory=SplitParams)
    cache: CacheParams = field(default_factory=CacheParams)
    pipeline: PipelineParams = field(default_factory=PipelineParams)
    models: dict[str, ModelSpec] = field(default_factory=lambda: {"multihead": ModelSpec()})
    aug: AugParams = field(default_factory=AugParams)
    train: TrainParams = field(default_factory=TrainParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    predict: PredictParams = field(default_factory=PredictParams)
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)
    pseudo: PseudoParams = field(default_factory=PseudoParams)

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ParamsError(f"models.{name}: no such model; defined: {', '.join(sorted(self.models))}")
        return self.models[name]

    def train_for(self, name: str) -> TrainParams:
        """`train` with `models.<name>.train` laid over it: the settings that model trains with."""
        return resolve_train(self.train, self.model(name).train, f"models.{name}.train")

    def for_model(self, name: str) -> Params:
        """These params as model `name`'s training sees them (its overrides resolved into `train`)."""
        return dataclasses.replace(self, train=self.train_for(name))


# --- cross-field checks -------------------------------------------------------------------------------------
# Ranges and combinations that no single type can rule out, one function per section. Each gets `bad(key, message)`,
# which raises the ParamsError naming the key.


def _check_loss(spec: LossSpec, where: str, num_classes: int, bad) -> None:
    if spec.gamma < 0:
        bad(f"{where}.gamma", f"must be 0 or more, got {spec.gamma}")
    if not 0 <= spec.smoothing < 1:
        bad(f"{where}.smoothing", f"must be in [0, 1), got {spec.smoothing}")
    weights = spec.class_weights
    if weights is not None:
        if len(weights) != num_classes:
            bad(f"{where}.class_weights", f"has {len(weights)} values, the head has {num_classes} classes")
        if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
            bad(f"{where}.class_weights", "must be 0 or more, and not all 0")


def _check_models(models: dict[str, ModelSpec], bad) -> None:
    """Each model's name (it names a file), the outputs its losses and head weights refer to, and its losses."""
    for name, spec in models.items():
        if name == "truth" or not name.strip() or name.startswith(".") or "/" in name or "\\" in name:
            bad(
                f"models.{name}",
                f"the name becomes data/labels/{name}.csv; rename the model (letters, digits, - and _; not 'truth')",
            )
        allowed = HEAD_OUTPUTS[spec.head]
        for key in (*spec.losses, *spec.head_weights):
            if key not in allowed:
                bad(f"models.{name}", f"head '{spec.head}' has no output '{key}'; it has {', '.join(sorted(allowed))}")
        for key, loss in spec.losses.items():
            _check_loss(loss, f"models.{name}.losses.{key}", NUM_LABELS[key], bad)


def _check_trained_models(p: Params, bad) -> None:
    """pipeline.models: defined under models, each once, and together able to make the 18 classes."""
    for name in p.pipeline.models:
        if name not in p.models:
            close = difflib.get_close_matches(name, list(p.models), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            bad("pipeline.models", f"'{name}' is not defined under models{hint}")
    if not p.pipeline.models:
        bad("pipeline.models", "at least one model must be trained")
    if len(set(p.pipeline.models)) != len(p.pipeline.models):
        bad("pipeline.models", "a model is listed twice")
    per_task = {p.models[m].head for m in p.pipeline.models} & {"mask", "gender", "age"}
    has_all_task = any(p.models[m].head in ALL_TASK_HEADS for m in p.pipeline.models)
    if per_task and per_task != {"mask", "gender", "age"} and not has_all_task:
        missing = {"mask", "gender", "age"} - per_task
        bad(
            "pipeline.models",
            f"per-task models need all three tasks (or an all-task model) to make 18 classes; "
            f"missing {', '.join(sorted(missing))}",
        )


def _check_split(split: SplitParams, bad) -> None:
    if split.method == "kfold" and split.n_folds < 2:
        bad("split.n_folds", "k-fold needs at least 2 folds (use split.method: holdout for one)")
    if not 0 < split.holdout_ratio < 1:
        bad("split.holdout_ratio", "must be between 0 and 1")


def _check_folds(folds: list[int], split: SplitParams, bad) -> None:
    """pipeline.folds: folds the split makes, each once."""
    n_folds = split.n_folds if split.method == "kfold" else 1
    for fold in folds:
        if not 0 <= fold < n_folds:
            bad("pipeline.folds", f"fold {fold} does not exist: the split has folds 0..{n_folds - 1}")
    if not folds or len(set(folds)) != len(folds):
        bad("pipeline.folds", "list each fold once, at least one")


def _check_relabel(relabel: RelabelParams, bad) -> None:
    old_from = relabel.old_from
    if not YOUNG_BELOW < old_from <= OLD_FROM:
        bad(
            "relabel_age.old_from",
            f"{old_from} leaves no middle age band or widens it past the competition's; "
            f"use {YOUNG_BELOW + 1}..{OLD_FROM}",
        )


def _check_cache(cache: CacheParams, bad) -> None:
    (ref_h, ref_w), (h, w) = IMAGE_SIZE, cache.crop_size
    if not (0 < h <= ref_h and 0 < w <= ref_w):
        bad("cache.crop_size", f"{h}x{w} must fit inside the {ref_h}x{ref_w} photo")
    if not all(0.0 <= c <= 1.0 for c in cache.crop_center):
        bad("cache.crop_center", f"{list(cache.crop_center)} must be fractions of the photo (0..1)")
    if cache.height < 8 or cache.width < 8:
        bad("cache", "height and width must be at least 8 pixels")
    if not 1.0 <= cache.face_margin <= 4.0:
        bad("cache.face_margin", f"{cache.face_margin} must be 1..4 (below 1 the crop cuts the detected face)")


def _check_train(t: TrainParams, where: str, runtime: RuntimeParams, bad) -> None:
    """Ranges and combinations of one model's recipe; `where` is the section the user wrote."""
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            bad(f"{where}.{key}", "must be at least 1")
    if t.lr <= 0:
        bad(f"{where}.lr", "must be positive")
    if t.weight_decay < 0:
        bad(f"{where}.weight_decay", f"must be 0 or more, got {t.weight_decay}")
    if t.warmup_epochs and t.scheduler != "cosine":
        bad(f"{where}.warmup_epochs", f"warmup is implemented for scheduler cosine only, not '{t.scheduler}'")
    if not 0 <= t.warmup_epochs < t.epochs:
        bad(f"{where}.warmup_epochs", f"must be 0 .. epochs-1 ({t.epochs - 1}), got {t.warmup_epochs}")
    if t.scheduler in ("step", "plateau") and not 0 < t.gamma < 1:
        bad(f"{where}.gamma", f"the decay factor must be between 0 and 1, got {t.gamma}")
    if t.step_size < 1:
        bad(f"{where}.step_size", f"must be at least 1 epoch, got {t.step_size}")
    if t.patience < 0:
        bad(f"{where}.patience", f"must be 0 or more, got {t.patience}")
    if not 0 <= t.ema < 1:
        bad(f"{where}.ema", "EMA decay must be in [0, 1)")
    world = runtime.devices * runtime.nodes
    if world > 1 and t.batch_size % world:
        bad(
            f"{where}.batch_size",
            f"{t.batch_size} is the global batch and must divide evenly over the {world} processes "
            f"(runtime.devices {runtime.devices} x runtime.nodes {runtime.nodes})",
        )


def _check_runtime(r: RuntimeParams, bad) -> None:
    if r.num_workers != "auto" and r.num_workers < 0:
        bad("runtime.num_workers", "must be auto, 0 or more")
    if r.threads < 0:
        bad("runtime.threads", "must be 0 (one per core) or more")
    if r.checkpoint_every < 1:
        bad("runtime.checkpoint_every", "must be at least 1 epoch")
    for key in ("devices", "nodes"):
        if getattr(r, key) < 1:
            bad(f"runtime.{key}", "must be at least 1")
    host, _, port = r.rdzv_endpoint.rpartition(":")
    if r.nodes > 1 and (not host or not port.isdigit()):
        bad("runtime.rdzv_endpoint", f"expected host:port reachable from every machine, got {r.rdzv_endpoint!r}")


def _check_predict(predict: PredictParams, bad) -> None:
    if not predict.tta:
        bad("predict.tta", "list at least one view, e.g. [none]")


def _check_ensemble(p: Params, bad) -> None:
    cfg = p.ensemble
    trained = list(p.pipeline.models)
    weighted = cfg.method in ("weighted_soft", "weighted_hard")
    if cfg.weights and not weighted:
        bad("ensemble.weights", f"weights are used by weighted_soft and weighted_hard only, not '{cfg.method}'")
    if weighted:
        missing = [m for m in trained if m not in cfg.weights]
        extra = [m for m in cfg.weights if m not in trained]
        if missing:
            bad(
                "ensemble.weights",
                f"method '{cfg.method}' needs a weight for every trained model; missing: {', '.join(missing)}",
            )
        if extra:
            bad("ensemble.weights", f"not in pipeline.models: {', '.join(extra)}")
        non_positive = [f"{m}: {w}" for m, w in cfg.weights.items() if not w > 0]
        if non_positive:
            bad("ensemble.weights", f"weights must be positive; got {', '.join(non_positive)}")
        per_task = {p.models[m].head: cfg.weights[m] for m in trained if p.models[m].head not in ALL_TASK_HEADS}
        if len(set(per_task.values())) > 1:
            bad(
                "ensemble.weights",
                f"the per-task models (mask, gender, age) form one member and share one weight; got {per_task}",
            )
    if cfg.groups and cfg.method != "nested":
        bad("ensemble.groups", f"groups are used by method nested only, not '{cfg.method}'")
    if cfg.method == "nested":
        if not cfg.groups:
            bad("ensemble.groups", "method 'nested' needs groups of model names, e.g. [[a, b], [c]]")
        seen: set[str] = set()
        for group in cfg.groups:
            if not group:
                bad("ensemble.groups", "a group is empty")
            for name in group:
                if name not in trained:
                    bad("ensemble.groups", f"'{name}' is not in pipeline.models")
                if name in seen:
                    bad("ensemble.groups", f"'{name}' is in two groups")
                seen.add(name)
        per_task = [m for m in trained if p.models[m].head not in ALL_TASK_HEADS]
        homes = {i for i, g in enumerate(cfg.groups) for m in g if m in per_task}
        listed = [m for m in per_task if m in seen]
        if listed and (len(homes) > 1 or len(listed) != len(per_task)):
            bad(
                "ensemble.groups",
                "the per-task models (mask, gender, age) form one member: list all of them in the same group, or none",
            )
    soft = ("soft", "weighted_soft")
    for key, value in (("person", cfg.person), ("tune", cfg.tune)):
        if value != "off" and cfg.method not in soft:
            bad(
                f"ensemble.{key}",
                f"'{value}' works on the ensemble's probabilities, and method '{cfg.method}' decides by votes: "
                "use method soft or weighted_soft",
            )
    if cfg.person != "off" and "embeddings" in cfg.person_features and not p.predict.embeddings:
        bad(
            "ensemble.person_features",
            f"'{cfg.person_features}' needs the embeddings predict saves only with predict.embeddings: true",
        )
    if cfg.tune == "bias+weights":
        members = {m if p.models[m].head in ALL_TASK_HEADS else "per_task" for m in trained}
        if len(members) < 2:
            bad("ensemble.tune", "bias+weights fits weights between members, and there is one: use bias")
        if cfg.method != "soft":
            bad("ensemble.tune", f"bias+weights fits the member weights itself: use method soft, not '{cfg.method}'")


def _check_pseudo(pseudo: PseudoParams, bad) -> None:
    if not 0 < pseudo.threshold <= 1:  # NaN fails too
        bad(
            "pseudo.threshold",
            f"{pseudo.threshold} is not a probability a decision can reach: use a value in (0, 1], e.g. 0.9",
        )


def check(p: Params, source: str = "params") -> None:
    """Every range and combination, section by section; the first problem raises, naming its key."""

    def bad(key: str, message: str):
        raise _err(source, key, message)

    _check_models(p.models, bad)
    _check_trained_models(p, bad)
    _check_split(p.split, bad)
    _check_folds(p.pipeline.folds, p.split, bad)
    _check_relabel(p.relabel_age, bad)
    _check_cache(p.cache, bad)
    _check_runtime(p.runtime, bad)
    _check_train(p.train, "train", p.runtime, bad)
    for name, spec in p.models.items():  # each model's training settings as that model trains with them
        if spec.train:
            where = f"models.{name}.train"
            _check_train(resolve_train(p.train, spec.train, where, source), where, p.runtime, bad)
    _check_predict(p.predict, bad)
    _check_ensemble(p, bad)
    _check_pseudo(p.pseudo, bad)


# --- reading and writing --------------------------------------------------------------------------------------


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


def from_dict(data: dict, source: str = "params") -> Params:
    params = _build(Params, data, path="", source=source)
    check(params, source)
    return params


def load(path: str | Path = "params.yaml") -> Params:
    """Read and check params.yaml."""
    return from_dict(read_yaml(path), source=str(path))


def digest(params) -> str:
    """Stable short hash of resolved params (defaults included): a Params, one section, or plain data."""
    data = params if isinstance(params, dict) else to_dict(params)
    text = json.dumps(to_dict(data), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dump(data: dict, path: str | Path) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    with Path(path).open("w") as fh:
        yaml.dump(data, fh)
