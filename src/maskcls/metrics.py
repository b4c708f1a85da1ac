"""Scores as the competition computes them: macro F1 over a whole set, accuracy beside it.

F1 is always computed once over every prediction of a set. Averaging per-batch F1 (a pitfall of public code)
over-weights small batches and rewards a model for the classes a batch happens to contain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls.layout import NUM_CLASSES, TASK_SIZES, TASKS

# Output keys of a model and their number of classes: the three tasks and the competition's 18 classes.
NUM_LABELS = {**TASK_SIZES, "class18": NUM_CLASSES}
KEYS = (*TASKS, "class18")


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over all `num_classes` labels.

    Labels are fixed to 0..num_classes-1 so the score's meaning does not depend on which classes a set happens
    to contain; a class absent from both truth and predictions scores 0.
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
            "f1": macro_f1(truth[key], pred, NUM_LABELS[key]),
            "accuracy": accuracy(truth[key], pred),
        }
    return scores
