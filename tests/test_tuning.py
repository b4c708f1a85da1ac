"""Decisions tuned for macro F1: class offsets, member weights, and the cross-fitted estimate of their gain."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from maskcls.tuning import (
    apply_decision,
    apply_offsets,
    combine_members,
    cross_fitted_gain,
    fit_class_offsets,
    fit_decision,
    fit_member_weights,
    macro_f1,
    simplex_grid,
)


def sk_macro(y, pred) -> float:
    return float(f1_score(y, pred, average="macro"))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))


def calibrated(rng, n: int, priors, signal: float = 1.5):
    """Labels drawn from `priors` and the exact posteriors of a Gaussian model: argmax is right for accuracy, but
    it under-predicts the rare classes, which macro F1 weighs like the common ones."""
    priors = np.asarray(priors, dtype=np.float64) / np.sum(priors)
    y = rng.choice(len(priors), n, p=priors)
    x = signal * np.eye(len(priors))[y] + rng.normal(size=(n, len(priors)))  # one noisy score per class
    return log_softmax(signal * x + np.log(priors)), y


RARE = np.array([1.0] * 12 + [0.12] * 6)  # six classes eight times rarer than the rest
# Shaped like the competition: masks worn 5:1:1, the old age band rare.
LIKE_REAL = np.array([1.0, 1.0, 0.3, 1.2, 1.2, 0.3] * 3) * np.repeat([5.0, 1.0, 1.0], 6)


def test_macro_f1_is_sklearns():
    rng = np.random.default_rng(0)
    for n, classes in [(50, 18), (400, 18), (30, 5), (1, 18)]:
        y = rng.integers(0, classes, n)
        pred = np.where(rng.random(n) < 0.5, y, rng.integers(0, classes, n))
        pred[: n // 3] = 0  # some classes only predicted, some only true
        assert macro_f1(y, pred) == pytest.approx(sk_macro(y, pred), abs=1e-12)
        assert macro_f1(y, pred, 18) == pytest.approx(sk_macro(y, pred), abs=1e-12)


def test_offsets_raise_macro_f1_of_an_under_predicted_rare_class_on_held_out_rows():
    rng = np.random.default_rng(1)
    lp, y = calibrated(rng, 4000, RARE)
    held_lp, held_y = calibrated(rng, 4000, RARE)
    offsets = fit_class_offsets(lp, y)
    assert offsets.shape == (18,)
    assert offsets[12:].mean() > offsets[:12].mean() + 0.5  # the rare classes are lifted
    # On rows it never saw: better, and the score is sklearn's.
    before = sk_macro(held_y, held_lp.argmax(1))
    after = sk_macro(held_y, apply_offsets(held_lp, offsets).argmax(1))
    assert after > before + 0.01
    # On the rows it was fitted on, the search reports the score sklearn computes for the result.
    assert sk_macro(y, apply_offsets(lp, offsets).argmax(1)) > sk_macro(y, lp.argmax(1))


def test_offsets_stay_zero_where_argmax_is_already_optimal():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(18), 40)
    lp = log_softmax(4.0 * np.eye(18)[y] + rng.normal(0, 0.3, (len(y), 18)))
    assert (lp.argmax(1) == y).all()  # perfect: nothing to gain
    assert (fit_class_offsets(lp, y) == 0).all()
    # Balanced, symmetric noise: argmax is optimal in expectation; the small gains noise offers are refused,
    # which is the regularisation's doing: without it, many offsets chase noise.
    lp, y = calibrated(rng, 6000, np.ones(18))
    offsets = fit_class_offsets(lp, y)
    assert np.count_nonzero(offsets) <= 1 and np.abs(offsets).max() <= 0.5
    assert np.count_nonzero(fit_class_offsets(lp, y, min_gain=0.0, smooth=0)) >= 6


def test_offsets_are_deterministic_and_bounded_by_the_grid():
    rng = np.random.default_rng(3)
    lp, y = calibrated(rng, 2000, RARE)
    first = fit_class_offsets(lp, y)
    np.testing.assert_array_equal(fit_class_offsets(lp.copy(), y.copy()), first)
    bounded = fit_class_offsets(lp, y, grid=[-0.5, 0.0, 0.5, 1.0])
    assert set(bounded.tolist()) <= {-0.5, 0.0, 0.5, 1.0}
    assert (fit_class_offsets(lp, y, min_gain=1.0) == 0).all()  # an unreachable gain keeps every offset at 0


def test_cross_fitting_never_looks_at_the_scored_fold():
    rng = np.random.default_rng(4)
    lp, y = calibrated(rng, 3000, RARE)
    folds = np.arange(len(y)) % 3
    clean = cross_fitted_gain(lp, y, folds, mode="bias")
    corrupted_y = y.copy()
    scored = folds == 1
    corrupted_y[scored] = rng.integers(0, 18, scored.sum())  # fold 1's labels become noise
    corrupted = cross_fitted_gain(lp, corrupted_y, folds, mode="bias")
    by_fold = {f["fold"]: f for f in clean["folds"]}
    by_fold_c = {f["fold"]: f for f in corrupted["folds"]}
    # What scores fold 1 was fitted without fold 1: unchanged.
    assert by_fold_c[1]["offsets"] == by_fold[1]["offsets"]
    assert by_fold_c[1]["weights"] == by_fold[1]["weights"]
    # The other folds were fitted with fold 1's labels, so the corruption reaches them; fold 1's score moves.
    assert by_fold_c[0]["offsets"] != by_fold[0]["offsets"] or by_fold_c[2]["offsets"] != by_fold[2]["offsets"]
    assert by_fold_c[1]["after"] != by_fold[1]["after"]


def test_cross_fitted_scores_are_sklearns_on_the_held_out_predictions():
    rng = np.random.default_rng(5)
    lp, y = calibrated(rng, 6000, LIKE_REAL, signal=1.2)
    folds = np.repeat(["a", "b", "c"], 2000)
    result = cross_fitted_gain(lp, y, folds, mode="bias")
    pred = np.empty_like(y)
    for name in ("a", "b", "c"):
        held = folds == name
        offsets = fit_class_offsets(lp[~held], y[~held])
        pred[held] = apply_offsets(lp[held], offsets).argmax(1)
        entry = next(f for f in result["folds"] if f["fold"] == name)
        assert entry["offsets"] == offsets.tolist() and entry["rows"] == 2000
        assert entry["after"] == pytest.approx(sk_macro(y[held], pred[held]))
        assert entry["before"] == pytest.approx(sk_macro(y[held], lp[held].argmax(1)))
    assert result["before"] == pytest.approx(sk_macro(y, lp.argmax(1)))
    assert result["after"] == pytest.approx(sk_macro(y, pred))
    assert result["gain"] == pytest.approx(result["after"] - result["before"])
    assert result["gain"] > 0  # the rare classes are under-predicted everywhere
    with pytest.raises(ValueError, match="two folds"):
        cross_fitted_gain(lp, y, np.zeros(len(y)))


def test_member_weights_favour_the_informative_member():
    rng = np.random.default_rng(6)
    good, y = calibrated(rng, 3000, np.ones(18), signal=1.2)
    noise = log_softmax(rng.normal(size=good.shape) * 2)
    weights = fit_member_weights([good, noise], y)
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    assert weights[0] >= 0.8
    # Two copies of one member: nothing to gain, equal weights kept.
    np.testing.assert_array_equal(fit_member_weights([good, good], y), [0.5, 0.5])


def test_combine_members_is_the_weighted_soft_vote():
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(18), size=(2, 50))
    combined = combine_members(np.log(probs), [0.25, 0.75])
    np.testing.assert_allclose(np.exp(combined), 0.25 * probs[0] + 0.75 * probs[1])
    geometric = combine_members(np.log(probs), [0.5, 0.5], pool="log")
    np.testing.assert_allclose(geometric, 0.5 * np.log(probs).sum(0))


def test_simplex_grid():
    grid = simplex_grid(3, 10)
    assert grid.shape == (36, 3)
    np.testing.assert_allclose(grid.sum(1), 1.0)
    assert (grid >= 0.1 - 1e-12).all()
    assert len({tuple(row) for row in grid.round(6)}) == 36
    with pytest.raises(ValueError):
        simplex_grid(4, 3)


def test_bias_and_weights_mode_end_to_end():
    rng = np.random.default_rng(8)
    good, y = calibrated(rng, 3000, RARE)
    noise = log_softmax(rng.normal(size=good.shape) * 2)
    members = np.stack([good, noise])
    decision = fit_decision(members, y, "bias+weights")
    assert set(decision) == {"mode", "pool", "weights", "offsets"}
    assert decision["weights"][0] > decision["weights"][1]
    scores = apply_decision(members, decision)
    assert scores.shape == good.shape
    untuned = fit_decision(members, y, "none")
    assert untuned["offsets"] == [0.0] * 18 and untuned["weights"] == [0.5, 0.5]
    result = cross_fitted_gain(members, y, np.arange(len(y)) % 3, mode="bias+weights")
    assert result["gain"] > 0
    assert all(f["weights"][0] > 0.5 for f in result["folds"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="offsets"):
        apply_offsets(np.zeros((3, 18)), np.zeros(17))
    with pytest.raises(ValueError, match="labels"):
        fit_class_offsets(np.zeros((3, 18)), np.array([0, 1, 18]))
    with pytest.raises(ValueError, match="mode"):
        fit_decision(np.zeros((3, 18)), np.zeros(3, int), "temperature")
    with pytest.raises(ValueError, match="NaN"):
        fit_class_offsets(np.full((3, 18), np.nan), np.zeros(3, int))
