"""Pseudo-labels: the eval photos the first round's ensemble is confident about, as training targets of a second round.

The rule (docs/beyond.md, "Pseudo-labels"): a photo's confidence is the probability the ensemble gives its own
decision (`class18[i, pred[i]]`: with `ensemble.tune` the decision may be another class than the argmax, and it is
the decision that becomes the label). With the ensemble's recovered people (`ensemble.person` on) the unit is the
person: the ensemble decided gender and age per person, so a person's photos are kept or dropped together, on the
confidence of the person's least confident photo, and each photo keeps the person-level decision the ensemble made.
A photo (or person) is kept when that confidence reaches `pseudo.threshold`.

The same rule applied to the out-of-fold photos, whose labels are known, estimates how often the kept labels are
right (`oof_estimate`). Nothing here takes eval labels: none of these functions has an argument for them.

Pure numpy and pandas; no file access (`maskcls.artifacts` writes and reads the table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from maskcls import layout
from maskcls.artifacts import PSEUDO_COLUMNS as COLUMNS  # the pseudo-label table: its format lives with its file

UNITS = ("photo", "person")
NO_GROUP = -1  # `group` of a photo selected on its own


def _check(class18: np.ndarray, pred: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(class18, dtype=np.float64)
    pred = np.asarray(pred)
    if p.ndim != 2 or p.shape[1] != layout.NUM_CLASSES:
        raise ValueError(f"class18 must be (N, {layout.NUM_CLASSES}), got shape {p.shape}")
    if pred.shape != (len(p),):
        raise ValueError(f"pred must be ({len(p)},), got shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.integer) or (len(pred) and (pred.min() < 0 or pred.max() >= p.shape[1])):
        raise ValueError(f"pred must hold class ids 0..{layout.NUM_CLASSES - 1}")
    if not np.isfinite(p).all():
        raise ValueError("class18 holds NaN or infinite values")
    if groups is not None and np.asarray(groups).shape != (len(p),):
        raise ValueError(f"groups must be ({len(p)},), got shape {np.asarray(groups).shape}")
    return p, pred.astype(np.int64)


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return float(threshold)


def confidence(class18: np.ndarray, pred: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """(N,) what the threshold is compared with: the probability of each photo's decision; with `groups` (the
    recovered person of each photo), the lowest such probability among the photos of its group, for every one."""
    p, pred = _check(class18, pred, groups)
    own = p[np.arange(len(p)), pred]
    if groups is None or len(own) == 0:
        return own
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    lowest = np.full(inverse.max() + 1, np.inf)
    np.minimum.at(lowest, inverse, own)
    return lowest[inverse]


def select(class18: np.ndarray, pred: np.ndarray, threshold: float, groups: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the photos whose `confidence` reaches `threshold` (a person's photos all or none)."""
    return confidence(class18, pred, groups) >= check_threshold(threshold)


def label_table(
    rows: np.ndarray, class18: np.ndarray, pred: np.ndarray, threshold: float, groups: np.ndarray | None = None
) -> pd.DataFrame:
    """The pseudo-label table (`COLUMNS`), one line per kept photo in row order: its eval index `row`, its recovered
    person (`group`, NO_GROUP when the unit is the photo), the ensemble's decision as `class` and its `mask`,
    `gender`, `age` labels, and the `confidence` it was kept on."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.shape != (len(np.asarray(pred)),):
        raise ValueError(f"rows must be ({len(np.asarray(pred))},), got shape {rows.shape}")
    conf = confidence(class18, pred, groups)
    keep = conf >= check_threshold(threshold)
    order = np.argsort(rows[keep], kind="stable")
    cls = np.asarray(pred, dtype=np.int64)[keep][order]
    mask, gender, age = layout.decode(cls)
    group = np.full(len(cls), NO_GROUP, np.int64) if groups is None else np.asarray(groups, np.int64)[keep][order]
    return pd.DataFrame(
        {
            "row": rows[keep][order],
            "group": group,
            "class": cls,
            "mask": mask.astype(np.int64),
            "gender": gender.astype(np.int64),
            "age": age.astype(np.int64),
            "confidence": np.round(conf[keep][order], 6),
        },
        columns=list(COLUMNS),
    )


def oof_estimate(
    class18: np.ndarray, pred: np.ndarray, truth: np.ndarray, threshold: float, groups: np.ndarray | None = None
) -> dict:
    """The rule applied where the labels are known (the out-of-fold photos): how many photos it keeps and how many
    of their labels are right. `accuracy` is None when it keeps none."""
    keep = select(class18, pred, threshold, groups)
    truth = np.asarray(truth)
    if truth.shape != keep.shape:
        raise ValueError(f"truth must be ({len(keep)},), got shape {truth.shape}")
    right = np.asarray(pred)[keep] == truth[keep]
    return {
        "photos": int(len(keep)),
        "kept": int(keep.sum()),
        "share": round(float(keep.mean()), 6) if len(keep) else 0.0,
        "accuracy": round(float(right.mean()), 6) if keep.any() else None,
    }


def summary(table: pd.DataFrame, eval_photos: int, threshold: float, unit: str, oof: dict | None = None) -> dict:
    """What the table holds, for people and `dvc exp show`: counts overall, per class (by name) and, per person,
    the people kept; with `oof`, the out-of-fold estimate of the labels' accuracy."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    counts = np.bincount(table["class"].to_numpy(dtype=np.int64), minlength=layout.NUM_CLASSES)
    out = {
        "threshold": check_threshold(threshold),
        "unit": unit,
        "eval_photos": int(eval_photos),
        "kept": int(len(table)),
        "share": round(len(table) / eval_photos, 6) if eval_photos else 0.0,
        "people": int(table["group"].nunique()) if unit == "person" else None,
        "per_class": {layout.class_name(c): int(n) for c, n in enumerate(counts)},
    }
    if oof is not None:
        out["oof_estimate"] = oof
    return out
