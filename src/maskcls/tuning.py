"""Decisions tuned for macro F1: per-class additive offsets on log-probabilities, and member weights.

The argmax of calibrated probabilities maximises accuracy, not macro F1: a rare class that the model under-predicts
costs a whole 1/18 of the score. Adding an offset per class to the log-probabilities before the argmax trades a
little accuracy on common classes for recall on rare ones.

- `fit_class_offsets`: offsets maximising macro F1 of argmax(log_probs + offsets), by coordinate ascent on a grid.
- `fit_member_weights`: weights of ensemble members on a simplex grid.
- `fit_decision` / `apply_decision`: both together, as a JSON-friendly dict, for the modes in `TUNING_MODES`.
- `cross_fitted_gain`: the honest estimate of what tuning buys: each fold is scored by offsets (and weights) fitted
  on the other folds only.

Macro F1 here is the competition's: `sklearn.metrics.f1_score(y, pred, average="macro")` with its default labels
(the classes present in truth or prediction), computed from counts so that a grid search is cheap.
Pure numpy; no file access.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

TUNING_MODES = ("none", "bias", "bias+weights")
POOLS = ("linear", "log")
DEFAULT_GRID = np.round(np.linspace(-3.0, 3.0, 61), 10)  # offsets in steps of 0.1
MIN_GAIN = 1e-3  # a change is kept only if it raises macro F1 by more than this: smaller gains are mostly noise
SMOOTH = 4  # offsets are chosen on F1 averaged over +-4 grid steps (+-0.4 on the default grid)
_TIE = 1e-12  # scores this close count as equal


# --- scores -----------------------------------------------------------------------------------------------------


def _f1_from_counts(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Macro F1 over the last axis of per-class counts, over the classes present in truth or prediction."""
    denom = predicted + true
    present = denom > 0
    f1 = np.where(present, 2.0 * tp / np.where(present, denom, 1), 0.0)
    n_present = present.sum(-1)
    return np.where(n_present > 0, f1.sum(-1) / np.maximum(n_present, 1), 0.0)


def macro_f1(y, pred, num_classes: int | None = None) -> float:
    """sklearn's `f1_score(y, pred, average="macro")` for integer labels 0..num_classes-1, from counts."""
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    if y.shape != pred.shape:
        raise ValueError(f"{y.shape} labels but {pred.shape} predictions")
    if len(y) == 0:
        return 0.0
    c = int(max(y.max(), pred.max()) + 1) if num_classes is None else num_classes
    tp = np.bincount(y[y == pred], minlength=c)
    return float(_f1_from_counts(tp, np.bincount(pred, minlength=c), np.bincount(y, minlength=c)))


def _check(log_probs, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be (N, C), got shape {lp.shape}")
    if np.isnan(lp).any() or (lp == np.inf).any():
        raise ValueError("log_probs hold NaN or +inf")
    if y is None:
        return lp, None
    y = np.asarray(y)
    if y.shape != (len(lp),):
        raise ValueError(f"y must be ({len(lp)},), got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= lp.shape[1]):
        raise ValueError(f"labels must lie in 0..{lp.shape[1] - 1}")
    return lp, y.astype(np.int64)


# --- offsets ----------------------------------------------------------------------------------------------------


def apply_offsets(log_probs, offsets) -> np.ndarray:
    """log_probs (N, C) + offsets (C,): the scores whose argmax is the tuned decision (first index on ties)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.shape != (lp.shape[-1],):
        raise ValueError(f"offsets must be ({lp.shape[-1]},), got shape {offsets.shape}")
    return lp + offsets


def _scan_class(scores: np.ndarray, lp_c: np.ndarray, c: int, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Macro F1 of the argmax for every grid value of class c's offset, the others fixed: (G,) scores.

    A row predicts c iff lp_c + v beats the best other class (or ties it and c comes first, as argmax does).
    """
    n, num_classes = scores.shape
    others = scores.copy()
    others[:, c] = -np.inf
    best_other = others.argmax(1)
    m = others[np.arange(n), best_other]
    # cond[g, i]: row i predicts c under grid value g.
    lhs = lp_c[None, :] + grid[:, None]
    cond = (lhs > m[None, :]) | ((lhs == m[None, :]) & (c < best_other)[None, :])
    pred = np.where(cond, c, best_other[None, :])
    g = len(grid)
    key = (np.arange(g)[:, None] * num_classes + pred).ravel()
    predicted = np.bincount(key, minlength=g * num_classes).reshape(g, num_classes)
    tp = np.bincount(key[(pred == y[None, :]).ravel()], minlength=g * num_classes).reshape(g, num_classes)
    true = np.bincount(y, minlength=num_classes)[None, :]
    return _f1_from_counts(tp, predicted, true)


def _smoothed(values: np.ndarray, half_width: int) -> np.ndarray:
    """Moving average over +-half_width neighbours (fewer at the ends)."""
    if half_width <= 0:
        return values
    n = len(values)
    total = np.concatenate([[0.0], np.cumsum(values)])
    lo = np.clip(np.arange(n) - half_width, 0, n)
    hi = np.clip(np.arange(n) + half_width + 1, 0, n)
    return (total[hi] - total[lo]) / (hi - lo)


def fit_class_offsets(
    log_probs,
    y,
    grid: Sequence[float] | None = None,
    passes: int = 3,
    min_gain: float = MIN_GAIN,
    smooth: int = SMOOTH,
) -> np.ndarray:
    """Additive offsets (C,) that maximise macro F1 of argmax(log_probs + offsets) on (log_probs (N, C), y (N,)).

    Coordinate ascent: each pass visits the classes in order and sets that class's offset to the `grid` value
    (default -3..3 in steps of 0.1; 0 is always added) with the best macro F1, the other offsets fixed. Every
    candidate is scored exactly, then the scores along the grid are averaged over +-`smooth` neighbouring values:
    a value is chosen for a plateau of good scores, not for a spike that a handful of rows of a rare class made.
    Regularised toward 0: an offset moves only if its (smoothed) macro F1 beats the current value's by more than
    `min_gain`, and among equally good values the one nearest 0 wins (then the smaller). Stops after `passes`
    passes or a pass with no change. Deterministic: no randomness, fixed visiting order.

    Cost: O(passes * C * G * N) for G grid values; about a second at N = 19,000, C = 18, G = 61.
    """
    lp, y = _check(log_probs, y)
    grid = np.unique(np.append(np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64), 0.0))
    # Nearest 0 first, then the smaller: the order in which equal scores are preferred.
    preference = np.lexsort((grid, np.abs(grid)))
    offsets = np.zeros(lp.shape[1])
    if len(lp) == 0:
        return offsets
    for _ in range(passes):
        changed = False
        for c in range(lp.shape[1]):
            f1 = _smoothed(_scan_class(lp + offsets, lp[:, c], c, y, grid), smooth)
            now = int(np.flatnonzero(grid == offsets[c])[0])
            ranked = preference[f1[preference] >= f1.max() - _TIE]
            best = int(ranked[0])
            if f1[best] > f1[now] + min_gain:
                offsets[c] = grid[best]
                changed = True
        if not changed:
            break
    return offsets


# --- members ----------------------------------------------------------------------------------------------------


def _members(member_log_probs) -> list[np.ndarray]:
    """A (N, C) array (one member), a (M, N, C) array or a sequence of (N, C) arrays -> list of float64 arrays."""
    if isinstance(member_log_probs, np.ndarray) and member_log_probs.ndim == 2:
        members = [member_log_probs]
    else:
        members = list(member_log_probs)
    if not members:
        raise ValueError("no members")
    members = [_check(m)[0] for m in members]
    if len({m.shape for m in members}) != 1:
        raise ValueError(f"members differ in shape: {sorted({m.shape for m in members})}")
    return members


def combine_members(member_log_probs, weights=None, pool: str = "linear") -> np.ndarray:
    """Weighted combination of members' log-probabilities -> (N, C) log-probabilities.

    `linear` (the ensemble's weighted soft vote): log(sum_m w_m p_m) with weights normalised to sum 1.
    `log`: sum_m w_m log p_m, a weighted geometric mean (not renormalised: the argmax does not need it).
    Weights default to equal.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    members = _members(member_log_probs)
    w = np.full(len(members), 1.0 / len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {len(members)} non-negative numbers, not all 0; got {weights}")
    w = w / w.sum()
    stack = np.stack(members)
    if pool == "log":
        return np.tensordot(w, np.where(w[:, None, None] > 0, stack, 0.0), axes=1)
    with np.errstate(divide="ignore"):
        logw = np.log(w)[:, None, None]
    top = (stack + logw).max(0)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return top + np.log(np.exp(stack + logw - top).sum(0))


def simplex_grid(members: int, steps: int) -> np.ndarray:
    """Every weight vector of `members` positive multiples of 1/steps summing to 1: (C(steps-1, members-1), M)."""
    if members < 1 or steps < members:
        raise ValueError(f"steps ({steps}) must be at least the number of members ({members})")
    points = []
    for bars in itertools.combinations(range(1, steps), members - 1):
        edges = (0, *bars, steps)
        points.append([b - a for a, b in itertools.pairwise(edges)])
    return np.asarray(points, dtype=np.float64) / steps


def fit_member_weights(
    member_log_probs,
    y,
    steps: int = 10,
    min_gain: float = MIN_GAIN,
    pool: str = "linear",
) -> np.ndarray:
    """Member weights (M,) summing to 1 that maximise macro F1 of argmax(combine_members(...)), offsets 0.

    Searches `simplex_grid(M, steps)`: every weight at least 1/steps (the ensemble takes positive weights only),
    C(steps-1, M-1) points (36 for 3 members at steps 10), each scored exactly. Regularised toward equal weights:
    they are kept unless the best point beats them by more than `min_gain`; among equally good points the one
    nearest equal weights (L1) wins, then the first in grid order. Deterministic.
    """
    members = _members(member_log_probs)
    lp0, y = _check(members[0], y)
    m = len(members)
    equal = np.full(m, 1.0 / m)
    if m == 1 or len(y) == 0:
        return equal
    num_classes = lp0.shape[1]
    baseline = macro_f1(y, combine_members(members, equal, pool).argmax(1), num_classes)
    grid = simplex_grid(m, steps)
    grid = grid[np.argsort(np.abs(grid - equal).sum(1), kind="stable")]
    scores = np.array([macro_f1(y, combine_members(members, w, pool).argmax(1), num_classes) for w in grid])
    best = int(np.flatnonzero(scores >= scores.max() - _TIE)[0])
    return grid[best].copy() if scores[best] > baseline + min_gain else equal


# --- fitted decisions -------------------------------------------------------------------------------------------


def fit_decision(
    member_log_probs,
    y,
    mode: str,
    pool: str = "linear",
    grid: Sequence[float] | None = None,
    passes: int = 3,
    steps: int = 10,
    min_gain: float = MIN_GAIN,
    smooth: int = SMOOTH,
) -> dict:
    """Fit a decision rule on labelled rows: {"mode", "pool", "weights": [M], "offsets": [C]} (plain lists).

    `none`: equal weights, zero offsets. `bias`: equal weights, `fit_class_offsets` on the combination.
    `bias+weights`: `fit_member_weights` first, then offsets on the weighted combination.
    `member_log_probs`: one (N, C) array or several (a sequence or an (M, N, C) array).
    """
    if mode not in TUNING_MODES:
        raise ValueError(f"mode must be one of {TUNING_MODES}, got {mode!r}")
    members = _members(member_log_probs)
    num_classes = members[0].shape[1]
    weights = np.full(len(members), 1.0 / len(members))
    offsets = np.zeros(num_classes)
    if mode == "bias+weights":
        weights = fit_member_weights(members, y, steps=steps, min_gain=min_gain, pool=pool)
    if mode != "none":
        combined = combine_members(members, weights, pool)
        offsets = fit_class_offsets(combined, y, grid=grid, passes=passes, min_gain=min_gain, smooth=smooth)
    return {"mode": mode, "pool": pool, "weights": weights.tolist(), "offsets": offsets.tolist()}


def apply_decision(member_log_probs, decision: dict) -> np.ndarray:
    """The tuned scores (N, C) of a `fit_decision` result: combine with its weights, add its offsets.
    The decision is their argmax."""
    combined = combine_members(member_log_probs, decision["weights"], decision["pool"])
    return apply_offsets(combined, decision["offsets"])


def cross_fitted_gain(log_probs, y, folds, mode: str = "bias", **fit_kwargs) -> dict:
    """What tuning buys, estimated honestly: for each fold k, `fit_decision` on the rows of every other fold and
    apply it to fold k's rows; the rows of fold k never take part in fitting what scores them.

    `log_probs`: one (N, C) array, or for `bias+weights` several members (a sequence or an (M, N, C) array);
    `folds` (N,): any labels, each distinct value one fold (pass only out-of-fold rows). Needs two folds or more.

    Returns {"mode", "before", "after", "gain", "folds": [...]}: `before` is the macro F1 of the untuned decision
    (argmax of the equal-weight combination) over all rows, `after` that of the cross-fitted decisions over all
    held-out rows together (every row is held out once), `gain` = after - before. Each `folds` entry:
    {"fold", "rows", "before", "after", "weights", "offsets"} with that fold's own macro F1 and what was fitted
    for it. `fit_kwargs` go to `fit_decision`.
    """
    members = _members(log_probs)
    _, y = _check(members[0], y)
    folds = np.asarray(folds)
    if folds.shape != y.shape:
        raise ValueError(f"folds must be ({len(y)},), got shape {folds.shape}")
    names = np.unique(folds)
    if len(names) < 2:
        raise ValueError("cross-fitting needs at least two folds")
    num_classes = members[0].shape[1]
    pool = fit_kwargs.get("pool", "linear")
    before_pred = combine_members(members, None, pool).argmax(1)
    after_pred = np.empty_like(before_pred)
    per_fold = []
    for name in names:
        held = folds == name
        decision = fit_decision([m[~held] for m in members], y[~held], mode, **fit_kwargs)
        after_pred[held] = apply_decision([m[held] for m in members], decision).argmax(1)
        per_fold.append(
            {
                "fold": name.item() if hasattr(name, "item") else name,
                "rows": int(held.sum()),
                "before": macro_f1(y[held], before_pred[held], num_classes),
                "after": macro_f1(y[held], after_pred[held], num_classes),
                "weights": decision["weights"],
                "offsets": decision["offsets"],
            }
        )
    before = macro_f1(y, before_pred, num_classes)
    after = macro_f1(y, after_pred, num_classes)
    return {"mode": mode, "before": before, "after": after, "gain": after - before, "folds": per_fold}
