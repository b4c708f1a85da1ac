import io
import math
import typing

import pytest
import torch
from torch import nn

from maskcls import params
from maskcls.errors import MaskclsError, ParamsError
from maskcls.models import build_model
from maskcls.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from maskcls.params import ModelSpec, TrainParams


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2))


BATCH = (torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 0, 1, 1, 0]))


def train_step(net, opt):
    opt.zero_grad()
    nn.functional.cross_entropy(net(BATCH[0]), BATCH[1]).backward()
    opt.step()


def decay_of(opt) -> dict[int, float]:
    return {id(p): group["weight_decay"] for group in opt.param_groups for p in group["params"]}


@pytest.mark.parametrize(
    "name, cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"), ("adamp", "AdamP"), ("radam", "RAdam")]
)
def test_each_optimizer_builds_and_steps(name, cls):
    net = small_net()
    opt = build_optimizer(net, TrainParams(optimizer=name, lr=0.01, weight_decay=0.01))
    assert type(opt).__name__ == cls
    before = [p.detach().clone() for p in net.parameters()]
    train_step(net, opt)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


class Flat(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n // 64, 64))


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_cpu_update_takes_a_correctly_rounded_square_root(name):
    """With betas 0, eps 0, lr 1 and no decay, one step from 0 is -g / sqrt(fl(g * g)), which is exactly
    -sign(g) when sqrt is correctly rounded (sqrt(fl(g^2)) == |g| in IEEE arithmetic). MKL's vector math,
    which the foreach and single-tensor paths use for sqrt, is off by one bit on some of these values: under
    portable mode on an AVX-512 host 132 of these 2^18 differ. The fused kernel gets all of them right."""
    net = Flat(1 << 18)
    opt = build_optimizer(net, TrainParams(optimizer=name, lr=0.01, weight_decay=0.01))
    for group in opt.param_groups:
        group.update(lr=1.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0)
    grad = torch.randn(net.weight.shape, generator=torch.Generator().manual_seed(0))
    net.weight.grad = grad.clone()
    opt.step()
    differ = int((net.weight.detach() != -torch.sign(grad)).sum())
    assert differ == 0, f"{differ} of {grad.numel()} updates took a square root that is not correctly rounded"


def test_fused_kernel_survives_a_checkpoint():
    net = small_net()
    opt = build_optimizer(net, TrainParams(optimizer="adamw"))
    assert all(group["fused"] for group in opt.param_groups)
    train_step(net, opt)
    opt2 = build_optimizer(net, TrainParams(optimizer="adamw"))
    opt2.load_state_dict(snapshot(opt.state_dict()))
    assert all(group["fused"] for group in opt2.param_groups)
    train_step(net, opt2)


def test_sgd_is_nesterov_with_the_momentum_of_params():
    opt = build_optimizer(small_net(), TrainParams(optimizer="sgd", momentum=0.8))
    assert all(g["momentum"] == 0.8 and g["nesterov"] for g in opt.param_groups)


def test_no_weight_decay_on_biases_and_norm_layers():
    net = small_net()
    decay = decay_of(build_optimizer(net, TrainParams(weight_decay=0.05)))
    for name, p in net.named_parameters():
        assert decay[id(p)] == (0.05 if p.ndim > 1 else 0.0), name
    model = build_model(ModelSpec(head="multihead", backbone="test_efficientnet", pretrained="none"))
    decay = decay_of(build_optimizer(model, TrainParams(weight_decay=0.05)))
    assert decay[id(model.backbone.bn1.weight)] == 0.0
    assert decay[id(model.heads["age"].bias)] == 0.0
    assert decay[id(model.heads["age"].weight)] == 0.05
    assert decay[id(model.backbone.conv_stem.weight)] == 0.05
    assert len(decay) == sum(1 for _ in model.parameters())  # every parameter is trained


def run_epochs(net, opt, sched, epochs, steps, metrics=None):
    lrs = []
    for epoch in range(epochs):
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            train_step(net, opt)
            sched.step_batch()
        sched.step_epoch(None if metrics is None else metrics[epoch])
    return lrs


def test_warmup_then_cosine_per_step():
    net = small_net()
    train = TrainParams(optimizer="sgd", lr=0.1, scheduler="cosine", epochs=3, warmup_epochs=1)
    opt = build_optimizer(net, train)
    sched = build_scheduler(opt, train, steps_per_epoch=2)
    # 2 warmup steps (lr/2, lr), then cosine over the remaining 4 steps
    expected = [0.05, 0.1] + [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert run_epochs(net, opt, sched, 3, 2) == pytest.approx(expected)
    assert sched.lrs[0] == pytest.approx(0.0)


def test_plateau_reduces_lr_after_patience():
    net = small_net()
    train = TrainParams(optimizer="adam", lr=0.1, scheduler="plateau", gamma=0.5, patience=2)
    opt = build_optimizer(net, train)
    sched = build_scheduler(opt, train, steps_per_epoch=1)
    lrs = []
    for f1 in (0.5, 0.4, 0.45, 0.5, 0.3):  # best 0.5 in epoch 0; epochs 1-3 are no better
        train_step(net, opt)
        sched.step_epoch(f1)
        lrs.append(sched.lrs[0])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])
    with pytest.raises(ValueError):
        sched.step_epoch()


def test_step_decays_every_step_size_epochs():
    net = small_net()
    train = TrainParams(optimizer="sgd", lr=1.0, scheduler="step", step_size=2, gamma=0.1)
    opt = build_optimizer(net, train)
    lrs = run_epochs(net, opt, build_scheduler(opt, train, steps_per_epoch=1), 5, 1)
    assert lrs == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_no_schedule_keeps_lr():
    net = small_net()
    train = TrainParams(lr=0.3, scheduler="none")
    opt = build_optimizer(net, train)
    assert run_epochs(net, opt, build_scheduler(opt, train, 2), 2, 2) == [0.3] * 4


@pytest.mark.parametrize(
    "train, key",
    [
        ({"scheduler": "step", "warmup_epochs": 1}, "train.warmup_epochs"),
        ({"scheduler": "cosine", "epochs": 2, "warmup_epochs": 2}, "train.warmup_epochs"),
        ({"scheduler": "plateau", "gamma": 1.5, "warmup_epochs": 0}, "train.gamma"),
        ({"scheduler": "step", "step_size": 0, "warmup_epochs": 0}, "train.step_size"),
    ],
)
def test_schedule_combinations_are_checked_with_the_params(train, key):
    with pytest.raises(ParamsError, match=key):
        params.from_dict({"train": train})


def test_the_registries_hold_exactly_the_names_params_accept():
    assert tuple(OPTIMIZERS) == typing.get_args(params.OptimizerName)
    assert tuple(SCHEDULERS) == typing.get_args(params.SchedulerName)


@pytest.mark.parametrize(
    "train, key", [({"optimizer": "lamb"}, "train.optimizer"), ({"scheduler": "poly"}, "train.scheduler")]
)
def test_unknown_names_are_params_errors_naming_the_key(train, key):
    with pytest.raises(ParamsError, match=f"{key}: '.*' is not one of"):
        params.from_dict({"train": train})


def test_the_builders_refuse_names_that_skipped_the_check():
    with pytest.raises(ValueError, match="no optimizer named 'lamb'"):
        build_optimizer(small_net(), TrainParams(optimizer="lamb"))
    opt = build_optimizer(small_net(), TrainParams())
    with pytest.raises(ValueError, match="no scheduler named 'poly'"):
        build_scheduler(opt, TrainParams(scheduler="poly"), 2)


def snapshot(obj) -> dict:
    """A deep copy through the same path a checkpoint takes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("optimizer_first", [True, False])
@pytest.mark.parametrize("kind", ["cosine", "plateau", "step", "none"])
def test_resumed_schedule_continues_identically(kind, optimizer_first):
    train = TrainParams(
        optimizer="adamw",
        lr=0.1,
        scheduler=kind,
        epochs=4,
        warmup_epochs=1 if kind == "cosine" else 0,
        step_size=1,
        gamma=0.5,
        patience=0,
    )
    metrics = [0.5, 0.4, 0.3, 0.2]
    net = small_net()
    opt = build_optimizer(net, train)
    sched = build_scheduler(opt, train, steps_per_epoch=3)
    run_epochs(net, opt, sched, 2, 3, metrics[:2])
    saved = snapshot({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()})
    tail = run_epochs(net, opt, sched, 2, 3, metrics[2:])

    resumed = small_net()
    resumed.load_state_dict(saved["net"])
    opt2 = build_optimizer(resumed, train)
    sched2 = build_scheduler(opt2, train, steps_per_epoch=3)
    if optimizer_first:
        opt2.load_state_dict(saved["opt"])
        sched2.load_state_dict(saved["sched"])
    else:
        sched2.load_state_dict(saved["sched"])
        opt2.load_state_dict(saved["opt"])
    assert run_epochs(resumed, opt2, sched2, 2, 3, metrics[2:]) == tail
    for a, b in zip(net.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_of_another_schedule_is_refused():
    opt = build_optimizer(small_net(), TrainParams())
    state = build_scheduler(opt, TrainParams(scheduler="cosine"), 2).state_dict()
    with pytest.raises(MaskclsError, match="cosine"):
        build_scheduler(opt, TrainParams(scheduler="step"), 2).load_state_dict(state)
