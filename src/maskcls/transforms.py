"""Augmentation pipelines built from params, and the one normalisation used at train and inference.

The cache already decoded, cropped and resized every photo to the network input size, so augmentations here
work on uint8 HWC arrays of that size and must keep it. Normalisation is not an augmentation: it runs on the
batch, on the device, in `normalize`, which training and prediction both call.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from maskcls.errors import ParamsError
from maskcls.params import AugSpec

# albumentations otherwise checks for updates over the network on import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402

# Size of the probe image each transform is tried on when the pipeline is built (the default cache size).
PROBE_SIZE = (128, 96)


def transform_names() -> list[str]:
    """Every single transform albumentations offers (not the Compose / OneOf containers)."""
    return sorted(
        name
        for name, obj in vars(A).items()
        if inspect.isclass(obj) and issubclass(obj, BasicTransform) and not inspect.isabstract(obj)
    )


def valid_arguments(cls: type) -> list[str]:
    """Keyword arguments a transform accepts from params (`strict` is always set by the builder)."""
    return sorted(set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs", "strict"})


def _tuples(value: Any) -> Any:
    """YAML has no tuples; albumentations wants them for ranges such as rotate: [-10, 10]."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def build_transform(spec: AugSpec, where: str = "aug") -> BasicTransform:
    """One albumentations transform from its params spec, with every argument checked strictly."""
    names = transform_names()
    cls = getattr(A, spec.name, None) if spec.name in names else None
    if cls is None:
        raise ParamsError(f"{where}: '{spec.name}' is not an albumentations transform{_suggest(spec.name, names)}")
    allowed = valid_arguments(cls)
    for key in spec.kwargs:
        if key not in allowed:
            raise ParamsError(
                f"{where}: {spec.name} has no argument '{key}'{_suggest(key, allowed)} (valid: {', '.join(allowed)})"
            )
    kwargs = _tuples(spec.kwargs)
    try:
        # strict: albumentations 2.x otherwise drops unknown arguments, and replaces invalid values by the
        # defaults, with at most a warning.
        try:
            return cls(**kwargs, strict=True)
        except TypeError as exc:
            if "strict" not in str(exc):
                raise
            # A transform without a validation schema (e.g. RandomRotate90) takes no `strict`; its argument
            # names were checked above.
            return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"{where}: {spec.name}: {_explain(exc)}") from None


def _explain(exc: BaseException) -> str:
    """pydantic's multi-line report (albumentations wraps it in a ValueError) -> one line per bad argument."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    errors = getattr(cause, "errors", None)
    if not callable(errors):
        return str(exc)
    by_arg: dict[str, list[str]] = {}
    for err in errors():
        arg = str(err["loc"][0]) if err.get("loc") else "?"
        if err.get("type") == "missing":
            by_arg[arg] = ["is required"]
        else:
            by_arg.setdefault(arg, [f"= {err.get('input')!r}:"]).append(err["msg"])
    return "; ".join(f"argument '{arg}' {msgs[0]} {' / '.join(msgs[1:])}".strip() for arg, msgs in by_arg.items())


def _check_keeps_size(transform: BasicTransform, spec: AugSpec, where: str, size: tuple[int, int]) -> None:
    """Run the transform, forced on, on probe images: it must return uint8 of the same shape.

    A few seeds, because some size changes are random (RandomRotate90 turns a 128x96 image only sometimes).
    The final Compose reseeds the transform, so probing leaves no trace in the training stream.
    """
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    saved_p = transform.p
    transform.p = 1.0
    try:
        for seed in range(4):
            transform.set_random_seed(seed)
            try:
                out = transform(image=image.copy())["image"]
            except Exception as exc:  # any failure here is a params problem the user must see before training
                raise ParamsError(f"{where}: {spec.name} fails on a {size[0]}x{size[1]} image: {exc}") from None
            if out.shape != image.shape or out.dtype != np.uint8:
                raise ParamsError(
                    f"{where}: {spec.name} turns a uint8 {size[0]}x{size[1]}x3 image into {out.dtype} "
                    f"{'x'.join(map(str, out.shape))}; augmentations must keep size and dtype (the cache crops "
                    "and resizes: see cache.crop / cache.crop_size; normalisation is done on the batch)"
                )
    finally:
        transform.p = saved_p


def build_augment(
    specs: Sequence[AugSpec], seed: int, where: str = "aug", image_size: tuple[int, int] = PROBE_SIZE
) -> A.Compose | None:
    """The augmentation pipeline of `specs` (uint8 HWC in and out), or None when there is nothing to do.

    `seed` seeds the Compose's own RNG (albumentations 2.x ignores numpy's and Python's global seeds).
    DataLoader workers reseed it per worker, see `maskcls.dataset`. `where` names the params key in errors.
    """
    if not specs:
        return None
    transforms = []
    for i, spec in enumerate(specs):
        t = build_transform(spec, f"{where}[{i}]")
        _check_keeps_size(t, spec, f"{where}[{i}]", image_size)
        transforms.append(t)
    return A.Compose(transforms, seed=seed, strict=True)


def _channel_stats(values: Sequence[float], device: torch.device) -> torch.Tensor:
    stats = torch.as_tensor(values, dtype=torch.float32, device=device)
    if stats.numel() == 1:
        stats = stats.expand(3)
    return stats.view(1, -1, 1, 1)


def normalize(batch: torch.Tensor, data_config: Mapping[str, Any]) -> torch.Tensor:
    """uint8 images (N, 3, H, W) or (N, H, W, 3), on any device -> float32 NCHW, (x / 255 - mean) / std.

    `data_config` is the model's (timm `resolve_data_config`: keys `mean` and `std`, 0..1 scale). The one
    normalisation of the project: training, validation and prediction all call it, so they cannot differ.
    """
    if batch.dtype != torch.uint8:
        # A float batch here means something normalised it already; doing it twice silently ruins training.
        raise TypeError(f"normalize expects a uint8 image batch, got {batch.dtype}")
    if batch.ndim != 4:
        raise ValueError(f"normalize expects a 4-d batch (N, C, H, W), got shape {tuple(batch.shape)}")
    if batch.shape[1] != 3 and batch.shape[-1] == 3:
        batch = batch.permute(0, 3, 1, 2)
    if batch.shape[1] != 3:
        raise ValueError(f"normalize expects 3 channels, got shape {tuple(batch.shape)}")
    mean = _channel_stats(data_config["mean"], batch.device)
    std = _channel_stats(data_config["std"], batch.device)
    return (batch.float() / 255.0 - mean) / std
