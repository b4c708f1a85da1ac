"""One inference loop for validation and prediction: the same inputs, device, precision and memory format.

Both take uint8 NCHW batches and pass them through `Runtime.inputs` (normalisation with the model's data config,
channels_last where the runtime uses it) and `Runtime.autocast`. Validation keeps the logits (its losses need
them); prediction averages probabilities over test-time views (deterministic ones only) and can add the pooled
backbone features.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from maskcls.training.runtime import Runtime

VIEWS = {
    "none": lambda x: x,
    "hflip": lambda x: torch.flip(x, dims=[3]),  # NCHW: flip width
}


def batch_images(batch) -> torch.Tensor:
    """A loader yields (images, targets); a plain iterable yields the images."""
    return batch[0] if isinstance(batch, list | tuple) else batch


def forward(net, x: torch.Tensor, rt: Runtime) -> dict[str, torch.Tensor]:
    """Logits per output in float32: half-precision logits lose the small differences softmax and losses use."""
    with rt.autocast():
        out = net(x)
    return {key: value.float() for key, value in out.items()}


@torch.no_grad()
def predict_logits(net, batches: Iterable, rt: Runtime, data_config: dict) -> dict[str, torch.Tensor]:
    """Logits of every image, float32 on the CPU, in batch order."""
    net.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        for key, value in forward(net, rt.inputs(batch_images(batch), data_config), rt).items():
            chunks.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(parts) for key, parts in chunks.items()}


@torch.no_grad()
def predict_probabilities(
    net, batches: Iterable, rt: Runtime, data_config: dict, views: list[str], embeddings: bool = False
) -> dict[str, np.ndarray]:
    """Per-task and 18-class probabilities averaged over the `views`; with `embeddings`, pooled features too."""
    net.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        x = rt.inputs(batch_images(batch), data_config)
        summed: dict[str, torch.Tensor] = {}
        for view in views:
            for key, value in net.probabilities(forward(net, VIEWS[view](x), rt)).items():
                summed[key] = summed.get(key, 0) + value
        for key, value in summed.items():
            chunks.setdefault(key, []).append((value / len(views)).cpu().numpy())
        if embeddings:
            with rt.autocast():
                features = net.features(x)
            chunks.setdefault("embeddings", []).append(features.float().cpu().numpy())
    return {key: np.concatenate(parts) for key, parts in chunks.items()}
