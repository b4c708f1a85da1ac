"""Classification losses, each a module called as loss(logits (N, C), targets (N,) int64) -> mean scalar.

ce           cross-entropy
focal        cross-entropy scaled by (1 - p_true)^gamma: easy examples count less (gamma 0 is ce)
smooth       cross-entropy against targets smoothed by `smoothing`
weighted_ce  cross-entropy with per-class weights, averaged with those weights (torch's convention)
f1           1 - macro soft F1 over the batch, from softmax probabilities
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from maskcls.params import LossSpec


class FocalLoss(nn.Module):
    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
        # (1 - p)^0 is 1 even at p == 1, so gamma 0 reduces exactly to cross-entropy
        return (-((1 - log_p.exp()) ** self.gamma) * log_p).mean()


class SoftF1Loss(nn.Module):
    """1 - mean over classes of F1 computed with probabilities in place of hard counts.

    Every class enters the mean, also one absent from the batch: its F1 is then 0 and its gradient only
    pushes false positives down. Optimises the competition's macro F1 directly, at batch level.
    """

    def __init__(self, num_classes: int, eps: float = 1e-7):
        super().__init__()
        self.num_classes = num_classes
        self.eps = eps

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        probs = F.softmax(logits.float(), dim=-1)
        onehot = F.one_hot(targets, self.num_classes).to(probs.dtype)
        tp = (probs * onehot).sum(0)
        fp = (probs * (1 - onehot)).sum(0)
        fn = ((1 - probs) * onehot).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        return 1 - f1.mean()


def inverse_frequency_class_weights(class_counts: Sequence[float], num_classes: int) -> list[float]:
    """One weight per class from training examples per class: ~ 1 / count, scaled to mean 1.

    An absent class counts as one example rather than dividing by 0.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.shape != (num_classes,):
        raise ValueError(f"class_counts: expected {num_classes} counts, got shape {counts.shape}")
    weights = 1.0 / np.maximum(counts, 1.0)
    return (weights / weights.mean()).tolist()


# --- the registry: loss name -> builder(spec, num_classes, class_counts) ------------------------------------------


def _cross_entropy(spec: LossSpec, num_classes: int, class_counts) -> nn.Module:
    return nn.CrossEntropyLoss()


def _focal(spec: LossSpec, num_classes: int, class_counts) -> nn.Module:
    return FocalLoss(spec.gamma)


def _smoothed_cross_entropy(spec: LossSpec, num_classes: int, class_counts) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=spec.smoothing)


def _weighted_cross_entropy(spec: LossSpec, num_classes: int, class_counts) -> nn.Module:
    """The class weights of params, or else inverse frequency from `class_counts`."""
    if spec.class_weights is not None:
        weights = [float(w) for w in spec.class_weights]
    elif class_counts is None:
        raise ValueError("loss weighted_ce without class_weights: pass class_counts to weigh by inverse frequency")
    else:
        weights = inverse_frequency_class_weights(class_counts, num_classes)
    return nn.CrossEntropyLoss(weight=torch.tensor(weights))


def _soft_f1(spec: LossSpec, num_classes: int, class_counts) -> nn.Module:
    return SoftF1Loss(num_classes)


# Exactly the names of params.LossName: params.yaml is checked against those before any work starts.
LOSSES: dict[str, Callable[[LossSpec, int, Sequence[float] | None], nn.Module]] = {
    "ce": _cross_entropy,
    "focal": _focal,
    "smooth": _smoothed_cross_entropy,
    "weighted_ce": _weighted_cross_entropy,
    "f1": _soft_f1,
}


def build_loss(spec: LossSpec, num_classes: int, class_counts=None) -> nn.Module:
    """The loss `spec` names for a head with `num_classes` outputs.

    `class_counts` (training examples per class) is only read by weighted_ce without explicit class_weights.
    """
    builder = LOSSES.get(spec.name)
    if builder is None:  # unreachable from params.yaml, whose loss names are checked when it is read
        raise ValueError(f"no loss named {spec.name!r}; the losses are {', '.join(LOSSES)}")
    return builder(spec, num_classes, class_counts)
