import math
import re
import typing

import pytest
import torch

from maskcls import params
from maskcls.errors import ParamsError
from maskcls.losses import LOSSES, build_loss, inverse_frequency_class_weights
from maskcls.params import LossSpec

# Two samples, three classes, chosen so the softmax is simple:
#   row 0: logits (log 2, 0, 0) -> p = (1/2, 1/4, 1/4), target 0 -> p_true = 1/2
#   row 1: logits (0, log 3, 0) -> p = (1/5, 3/5, 1/5), target 2 -> p_true = 1/5
LOGITS = torch.tensor([[math.log(2), 0.0, 0.0], [0.0, math.log(3), 0.0]], dtype=torch.float64)
TARGETS = torch.tensor([0, 2])
P = [[1 / 2, 1 / 4, 1 / 4], [1 / 5, 3 / 5, 1 / 5]]


def value(name: str, class_counts=None, **kw) -> float:
    loss = build_loss(LossSpec(name=name, **kw), num_classes=3, class_counts=class_counts)
    return loss.double()(LOGITS, TARGETS).item()


def test_cross_entropy():
    assert value("ce") == pytest.approx(-(math.log(1 / 2) + math.log(1 / 5)) / 2)


def test_focal():
    expected = -((1 - 1 / 2) ** 2 * math.log(1 / 2) + (1 - 1 / 5) ** 2 * math.log(1 / 5)) / 2
    assert value("focal", gamma=2.0) == pytest.approx(expected)


def test_focal_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(16, 18, generator=g), torch.randint(0, 18, (16,), generator=g)
    focal = build_loss(LossSpec(name="focal", gamma=0.0), 18)(logits, targets)
    ce = build_loss(LossSpec(name="ce"), 18)(logits, targets)
    torch.testing.assert_close(focal, ce)


def test_label_smoothing():
    eps, k = 0.1, 3
    q0 = [1 - eps + eps / k, eps / k, eps / k]  # smoothed target of row 0 (class 0)
    q1 = [eps / k, eps / k, 1 - eps + eps / k]  # row 1 (class 2)
    row0 = -sum(q * math.log(p) for q, p in zip(q0, P[0], strict=True))
    row1 = -sum(q * math.log(p) for q, p in zip(q1, P[1], strict=True))
    assert value("smooth", smoothing=eps) == pytest.approx((row0 + row1) / 2)


def test_weighted_ce_with_given_weights():
    # torch's weighted mean: sum(w_t * loss) / sum(w_t) over the batch's targets (classes 0 and 2)
    expected = (1.0 * -math.log(1 / 2) + 3.0 * -math.log(1 / 5)) / (1.0 + 3.0)
    assert value("weighted_ce", class_weights=[1.0, 2.0, 3.0]) == pytest.approx(expected)


def test_weights_from_counts_are_inverse_frequency_with_mean_one():
    inverse = [1 / 10, 1 / 20, 1 / 70]
    mean = sum(inverse) / 3
    expected = [w / mean for w in inverse]
    assert inverse_frequency_class_weights([10, 20, 70], 3) == pytest.approx(expected)
    assert sum(expected) / 3 == pytest.approx(1.0)
    loss = build_loss(LossSpec(name="weighted_ce"), 3, class_counts=[10, 20, 70])
    assert loss.weight.tolist() == pytest.approx(expected)
    w0, w2 = expected[0], expected[2]
    assert value("weighted_ce", class_counts=[10, 20, 70]) == pytest.approx(
        (w0 * -math.log(1 / 2) + w2 * -math.log(1 / 5)) / (w0 + w2)
    )


def test_weighted_ce_needs_weights_or_counts():
    with pytest.raises(ValueError, match="class_counts"):
        build_loss(LossSpec(name="weighted_ce"), 3)


def test_soft_f1():
    # class 0: tp 1/2, fp 1/5, fn 1/2; class 1: tp 0 -> F1 0; class 2: tp 1/5, fp 1/4, fn 4/5
    f1_0 = 2 * (1 / 2) / (2 * (1 / 2) + 1 / 5 + 1 / 2)
    f1_2 = 2 * (1 / 5) / (2 * (1 / 5) + 1 / 4 + 4 / 5)
    assert value("f1") == pytest.approx(1 - (f1_0 + 0.0 + f1_2) / 3, abs=1e-6)


def test_soft_f1_of_confident_correct_predictions_is_near_zero():
    targets = torch.arange(3)
    loss = build_loss(LossSpec(name="f1"), 3)(torch.eye(3) * 30, targets)
    assert loss.item() < 1e-6


def test_losses_are_differentiable_means():
    logits = torch.randn(8, 3, requires_grad=True)
    targets = torch.randint(0, 3, (8,))
    for name in ("ce", "focal", "smooth", "f1"):
        loss = build_loss(LossSpec(name=name), 3)(logits, targets)
        assert loss.ndim == 0
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "loss, key, words",
    [
        ({"name": "focal", "gamma": -1.0}, "losses.age.gamma", "0 or more"),
        ({"name": "smooth", "smoothing": 1.0}, "losses.age.smoothing", "[0, 1)"),
        ({"name": "weighted_ce", "class_weights": [1.0, 2.0]}, "losses.age.class_weights", "3 classes"),
        ({"name": "weighted_ce", "class_weights": [0.0, 0.0, 0.0]}, "losses.age.class_weights", "not all 0"),
    ],
)
def test_bad_loss_settings_are_refused_with_the_params(loss, key, words):
    """Checked when params.yaml is loaded (the pipeline's first stage), naming the key."""
    with pytest.raises(ParamsError, match=re.escape(words)) as err:
        params.from_dict({"models": {"multihead": {"losses": {"age": loss}}}})
    assert f"models.multihead.{key}" in str(err.value)


def test_the_registry_holds_exactly_the_loss_names_params_accept():
    assert tuple(LOSSES) == typing.get_args(params.LossName)


def test_an_unknown_loss_is_a_params_error_naming_the_key():
    with pytest.raises(ParamsError, match=re.escape("models.multihead.losses.age.name: 'hinge' is not one of")):
        params.from_dict({"models": {"multihead": {"losses": {"age": {"name": "hinge"}}}}})
    with pytest.raises(ValueError, match="no loss named 'hinge'"):  # only code that skips the check gets this far
        build_loss(LossSpec(name="hinge"), 3)
