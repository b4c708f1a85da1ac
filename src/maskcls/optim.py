"""Optimizer and learning-rate schedule from `TrainParams`, each built by the registered builder of its name.

The schedule object hides which torch scheduler runs underneath: the training loop calls `step_batch()` after
every optimizer step and `step_epoch(val_f1)` after every epoch, and saves `state_dict()` in its resumable
checkpoint, so a resumed run follows the same learning rates as an uninterrupted one.

Names and combinations (warmup only with cosine, decay factor, step size, patience) are checked with the rest of
params.yaml before any work starts: see maskcls.params.check.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from timm.optim import create_optimizer_v2
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau, StepLR

from maskcls.errors import MaskclsError
from maskcls.params import TrainParams


def _registered(registry: dict[str, Callable], name: str, what: str) -> Callable:
    builder = registry.get(name)
    if builder is None:  # unreachable from params.yaml, whose names are checked when it is read
        raise ValueError(f"no {what} named {name!r}; the {what}s are {', '.join(registry)}")
    return builder


# --- optimizers -------------------------------------------------------------------------------------------------

# Adam and AdamW on the CPU run torch's fused kernel: the same update, one ATen kernel per parameter whose
# square root is the processor's own instruction (IEEE, correctly rounded, so the same bits on every CPU). The
# default (foreach) path and the single-tensor one (foreach=False) both take sqrt from ATen's unary kernel,
# which hands it to MKL's vector math: not correctly rounded, and under portable mode the bits differ between
# an AVX-512 CPU and AVX2 CPUs from the first step on (docs/reproducibility.md, "The optimizer step").
# The fused update is elementwise, so it is deterministic. On CUDA the default stays. sgd has no square root;
# adamp and radam have no fused kernel and keep the vector-math sqrt (portable only within one CPU model).
FUSED_ON_CPU = ("adam", "adamw")


def cpu_kernel(model: nn.Module, optimizer: str) -> dict:
    """Extra optimizer arguments: `fused=True` for Adam/AdamW when every trained parameter is on the CPU."""
    trained = [p for p in model.parameters() if p.requires_grad]
    if optimizer in FUSED_ON_CPU and trained and all(p.device.type == "cpu" for p in trained):
        return {"fused": True}
    return {}


def _timm_optimizer(name: str) -> Callable[[nn.Module, TrainParams], Optimizer]:
    """The builder of timm's optimizer `name` (timm's names: sgd is Nesterov momentum SGD, adamp is timm's AdamP)."""

    def build(model: nn.Module, train: TrainParams) -> Optimizer:
        return create_optimizer_v2(
            model,
            opt=name,
            lr=train.lr,
            weight_decay=train.weight_decay,
            momentum=train.momentum,
            filter_bias_and_bn=True,
            **cpu_kernel(model, name),
        )

    return build


# Optimizer name -> builder(model, train), exactly the names of params.OptimizerName.
OPTIMIZERS: dict[str, Callable[[nn.Module, TrainParams], Optimizer]] = {
    "adam": _timm_optimizer("adam"),
    "adamw": _timm_optimizer("adamw"),
    "sgd": _timm_optimizer("sgd"),
    "adamp": _timm_optimizer("adamp"),
    "radam": _timm_optimizer("radam"),
}


def build_optimizer(model: nn.Module, train: TrainParams) -> Optimizer:
    """Biases and normalisation weights (every 1-d parameter) get no weight decay.

    Decaying them only pulls BatchNorm scales towards 0 and buys no regularisation. `sgd` is Nesterov SGD
    with `train.momentum`. Parameters with requires_grad=False are left out, as timm does.
    """
    return _registered(OPTIMIZERS, train.optimizer, "optimizer")(model, train)


# --- learning-rate schedules ------------------------------------------------------------------------------------


def warmup_cosine(warmup_steps: int, total_steps: int):
    """LR factor at optimizer step s (0-based): linear up to 1 over the warmup, then cosine down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps  # never 0: the first step already learns
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Schedule:
    """One interface over the per-step, per-epoch and metric-driven schedulers."""

    def __init__(self, optimizer: Optimizer, kind: str, scheduler=None, per_batch: bool = False):
        self.optimizer = optimizer
        self.kind = kind
        self.scheduler = scheduler
        self.per_batch = per_batch

    @property
    def lrs(self) -> list[float]:
        """Current learning rate of each parameter group (for logging)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def step_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def step_epoch(self, val_metric: float | None = None) -> None:
        """`val_metric`: validation macro F1 (higher is better); the plateau schedule needs it."""
        if self.kind == "plateau":
            if val_metric is None:
                raise ValueError("the plateau schedule needs the epoch's validation metric")
            self.scheduler.step(val_metric)
        elif self.scheduler is not None and not self.per_batch:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return {"kind": self.kind, "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise MaskclsError(
                f"the checkpoint was saved with scheduler '{state.get('kind')}', params say '{self.kind}'; "
                "resume with the params it was started with, or start afresh"
            )
        if self.scheduler is None:
            return
        self.scheduler.load_state_dict(state["scheduler"])
        # A new LambdaLR already wrote its step-0 rate into the optimizer, over the rate a restored optimizer
        # state holds; put back the rate of the saved step, whichever of the two was loaded first.
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True):
            group["lr"] = lr


def _constant_schedule(optimizer: Optimizer, train: TrainParams, steps_per_epoch: int) -> Schedule:
    return Schedule(optimizer, "none")


def _plateau_schedule(optimizer: Optimizer, train: TrainParams, steps_per_epoch: int) -> Schedule:
    # the metric is validation macro F1, so higher is better
    return Schedule(
        optimizer, "plateau", ReduceLROnPlateau(optimizer, mode="max", factor=train.gamma, patience=train.patience)
    )


def _cosine_schedule(optimizer: Optimizer, train: TrainParams, steps_per_epoch: int) -> Schedule:
    factor = warmup_cosine(train.warmup_epochs * steps_per_epoch, train.epochs * steps_per_epoch)
    return Schedule(optimizer, "cosine", LambdaLR(optimizer, factor), per_batch=True)


def _step_schedule(optimizer: Optimizer, train: TrainParams, steps_per_epoch: int) -> Schedule:
    return Schedule(optimizer, "step", StepLR(optimizer, step_size=train.step_size, gamma=train.gamma))


# Scheduler name -> builder(optimizer, train, steps_per_epoch), exactly the names of params.SchedulerName.
SCHEDULERS: dict[str, Callable[[Optimizer, TrainParams, int], Schedule]] = {
    "none": _constant_schedule,
    "plateau": _plateau_schedule,
    "cosine": _cosine_schedule,
    "step": _step_schedule,
}


def build_scheduler(optimizer: Optimizer, train: TrainParams, steps_per_epoch: int) -> Schedule:
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    return _registered(SCHEDULERS, train.scheduler, "scheduler")(optimizer, train, steps_per_epoch)
