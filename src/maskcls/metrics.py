"""Scores as the competition computes them: macro F1 over a whole set, accuracy beside it.

F1 is always computed once over every prediction of a set. Averaging per-batch F1 (a pitfall of public code)
over-weights small batches and rewards a model for the classes a batch happens to contain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls.layout import TASKS

KEYS = (*TASKS, "class18")  # output keys of a model: the three tasks and the competition's 18 classes


def macro_f1(y_true, y_pred) -> float:
    """The competition's score: `sklearn.metrics.f1_score(y_true, y_pred, average="macro")`, exactly.

    sklearn's default labels are the union of the classes present in truth and prediction: a class absent from
    both does not count. That is what the leaderboard computes, so it is the headline of every report.
    """
    return float(f1_score(np.asarray(y_true), np.asarray(y_pred), average="macro"))


def macro_f1_all_labels(y_true, y_pred, num_classes: int) -> float:
    """Macro F1 over the fixed labels 0..num_classes-1; a class absent from both truth and prediction scores 0.

    Not the competition's score. It keeps a small fold's number comparable with another fold's that happens to
    contain other classes, which is why `evaluate` reports it beside the headline, under its own name.
    """
    return float(
        f1_score(
            np.asarray(y_true),
            np.asarray(y_pred),
            labels=list(range(num_classes)),
            average="macro",
            zero_division=0,
        )
    )


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def truth_arrays(truth: pd.DataFrame) -> dict[str, np.ndarray]:
    """truth.csv rows -> label arrays keyed like model outputs (`class` becomes `class18`)."""
    arrays = {task: truth[task].to_numpy(dtype=np.int64) for task in TASKS}
    arrays["class18"] = truth["class"].to_numpy(dtype=np.int64)
    return arrays


def task_scores(truth: dict, probs: dict) -> dict[str, dict[str, float]]:
    """Macro F1 and accuracy of every output present in both `probs` and `truth`.

    `truth`: key -> int labels (N,); `probs`: key -> probabilities or logits (N, C) over the whole set.
    Returns e.g. {"mask": {"f1": .., "accuracy": ..}, "class18": {...}} in KEYS order.
    """
    scores = {}
    for key in KEYS:
        if key not in probs or key not in truth:
            continue
        pred = np.asarray(probs[key]).argmax(axis=1)
        scores[key] = {
            "f1": macro_f1(truth[key], pred),
            "accuracy": accuracy(truth[key], pred),
        }
    return scores
