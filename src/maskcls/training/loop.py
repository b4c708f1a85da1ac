"""The training loop: build a run, train an epoch, validate it over the whole held-out fold, keep the best.

What each head trains (loss weights default to 1, `spec.head_weights` overrides them):
  single      the 18-class loss
  fused       mask + gender + age + class18 losses
  multihead   mask + gender + age losses, weighted
  sequential  the epochs are cut into three consecutive phases in TASKS order (mask, gender, age); phase i
              trains only head i's loss while the shared backbone keeps learning. The seed author dropped
              this for its order dependence; it stays as an ablation. With fewer epochs than tasks the last
              heads never train.
  mask|gender|age  the one task's loss

Validation predicts the whole held-out fold, then scores it once (never per batch). The best epoch is the one
with the highest macro F1 of the selection output: class18 for all-task heads, the task for per-task models.
With `train.ema` the moving average of the weights is what is validated and saved. `train.early_stop` ends a
run after that many epochs without a better score (for sequential, counted in its last phase only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from maskcls import layout, metrics
from maskcls.dataset import TrainLoader, build_eval_loader
from maskcls.losses import build_loss
from maskcls.models import MaskModel, build_model, check_backbone
from maskcls.optim import Schedule, build_optimizer, build_scheduler
from maskcls.params import ALL_TASK_HEADS, LossSpec, ModelSpec, Params
from maskcls.paths import Paths
from maskcls.progress import progress
from maskcls.repro import derive_seed, seed_everything, set_deterministic
from maskcls.training import distributed
from maskcls.training.checkpoint import State, cpu_copy
from maskcls.training.distributed import World
from maskcls.training.fold import FoldData, load_fold
from maskcls.training.inference import predict_logits
from maskcls.training.runtime import Runtime, loader_workers, runtime


def selection_key(head: str) -> str:
    """The output whose validation macro F1 picks the best epoch."""
    return "class18" if head in ALL_TASK_HEADS else head


def phase_of(epoch: int, epochs: int, phases: int) -> int:
    """Sequential head: epoch (0-based) -> phase, the epochs split into `phases` runs as evenly as possible."""
    return min(epoch * phases // epochs, phases - 1)


def start_epoch(net: MaskModel, epoch: int, epochs: int) -> dict[str, float]:
    """Select the sequential phase's head; return the loss weight of every output trained this epoch."""
    if net.task_order:
        net.set_active_task(net.task_order[phase_of(epoch, epochs, len(net.task_order))])
    return {key: net.spec.head_weights.get(key, 1.0) for key in net.loss_keys}


def in_last_phase(net: MaskModel, epoch: int, epochs: int) -> bool:
    phases = max(1, len(net.task_order))
    return phase_of(epoch, epochs, phases) == phases - 1


def build_losses(spec: ModelSpec, targets: dict[str, np.ndarray], device: torch.device) -> dict:
    losses = {}
    for key, y in targets.items():
        n = layout.NUM_LABELS[key]
        counts = np.bincount(y, minlength=n)  # for weighted_ce's inverse-frequency weights
        losses[key] = build_loss(spec.losses.get(key, LossSpec()), n, counts).to(device)
    return losses


def train_step(net, images, targets, losses, weights, optimizer, scheduler, scaler, rt, data_config):
    """One optimizer step on one batch: (weighted loss, each output's loss), as tensors."""
    x = rt.inputs(images, data_config)
    with rt.autocast():
        out = net(x)
    # Losses in float32: half-precision logits lose the small differences cross-entropy lives on.
    parts = {k: losses[k](out[k].float(), targets[k].to(rt.device)) for k in weights}
    loss = sum(w * parts[k] for k, w in weights.items())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step_batch()
    return loss, parts


def train_one_epoch(
    net, loader, losses, weights, optimizer, scheduler, scaler, ema, rt, data_config, step, desc, world=World()
):
    """One pass over the training loader. Returns mean losses (total and per output, over every rank's
    samples) and the global step. `net` is what the step runs (a DDP or compiled wrapper); EMA follows the
    model inside it."""
    net.train()
    followed = distributed.unwrap(net)
    sums = dict.fromkeys(["loss", *weights], 0.0)
    seen = 0
    batches = progress(loader, desc, size=lambda batch: len(batch[0])) if world.is_main else loader
    for images, targets in batches:
        loss, parts = train_step(net, images, targets, losses, weights, optimizer, scheduler, scaler, rt, data_config)
        step += 1
        if ema is not None:
            ema.update(followed, step=step)
        n = len(images)
        seen += n
        sums["loss"] += loss.item() * n
        for k, v in parts.items():
            sums[k] += v.item() * n
    *totals, seen = distributed.sum_across(world, [*sums.values(), seen])
    return {k: v / max(seen, 1) for k, v in zip(sums, totals, strict=True)}, step


@torch.no_grad()
def evaluate(
    net, loader, losses, truth, targets, rt, data_config, world=World()
) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """Scores over the whole validation set: (scores per output, validation losses, probabilities). In a DDP
    world `loader` holds this rank's share (`distributed.shard_rows`) and the logits are gathered first."""
    logits = distributed.gather_logits(world, predict_logits(net, loader, rt, data_config))
    probs = {k: v.numpy() for k, v in net.probabilities(logits).items()}
    val_losses = {
        k: float(losses[k](logits[k].to(rt.device), torch.as_tensor(y, device=rt.device))) for k, y in targets.items()
    }
    return metrics.task_scores(truth, probs), val_losses, probs


@dataclass
class Job:
    """Everything a run builds before its first epoch."""

    params: Params
    name: str  # "<model> fold<k>", for messages
    seed: int
    rt: Runtime
    world: World
    data: FoldData
    net: MaskModel  # the model; EMA, validation and outputs use it
    trainee: torch.nn.Module  # what the training step runs: `net`, or a DDP / torch.compile wrapper of it
    losses: dict
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    scaler: torch.amp.GradScaler
    ema: ModelEmaV3 | None
    train_loader: TrainLoader
    val_loader: DataLoader
    select: str  # output whose validation F1 picks the best epoch

    @property
    def scored(self) -> torch.nn.Module:
        """The weights that are validated and saved: the EMA's when it is on."""
        return self.ema.module if self.ema is not None else self.net


def build_job(params: Params, model: str, fold: int, paths: Paths, world: World = World()) -> Job:
    spec = params.model(model)
    check_backbone(spec.backbone, key=f"models.{model}.backbone")  # a params error before any data is read
    tp, rp = params.train, params.runtime
    set_deterministic(rp.deterministic)  # before the first CUDA call: cuBLAS reads its workspace setting once
    rt = runtime(params, world)
    distributed.start(world, rt.device)
    seed = derive_seed(params.seed, "train", model, fold)
    seed_everything(seed)

    image_size = (params.cache.height, params.cache.width)
    data = load_fold(paths, model, spec.head, fold, image_size)
    net = build_model(spec, pretrained=True, input_size=image_size)
    if world.distributed and rt.device.type == "cuda":
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # BatchNorm over the global batch (CUDA only)
    net = rt.place(net)
    # Sequential heads train one head per phase: DDP must expect parameters without gradients then.
    trainee = distributed.wrap(net, world, rt.device, unused_parameters=bool(net.task_order))
    if rp.compile:
        trainee = torch.compile(trainee)
    train_loader = TrainLoader(data.images, data.train_rows, data.train_targets, params, seed, world)
    optimizer = build_optimizer(net, tp)
    val_rows = data.val_rows[distributed.shard_rows(len(data.val_rows), world)]
    return Job(
        params=params,
        name=f"{model} fold{fold}" + (f" round {paths.round}" if paths.round > 1 else ""),
        seed=seed,
        rt=rt,
        world=world,
        data=data,
        net=net,
        trainee=trainee,
        losses=build_losses(spec, data.train_targets, rt.device),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, tp, len(train_loader)),  # every epoch has as many steps
        scaler=torch.amp.GradScaler("cuda", enabled=rt.amp == "fp16"),
        ema=ModelEmaV3(net, decay=tp.ema) if tp.ema > 0 else None,
        train_loader=train_loader,
        val_loader=build_eval_loader(data.images, val_rows, tp.batch_size, loader_workers(rp, rt.device)),
        select=selection_key(spec.head),
    )


def epoch_record(epoch: int, train_losses: dict, val_losses: dict, scores: dict, lr: float) -> dict:
    """Flat metric names as DVCLive files them: plots/metrics/<name>.tsv."""
    record = {"epoch": epoch, "train/loss/total": train_losses["loss"]}
    record |= {f"train/loss/{k}": v for k, v in train_losses.items() if k != "loss"}
    record |= {f"val/loss/{k}": v for k, v in val_losses.items()}
    for key, s in scores.items():
        record |= {f"val/{key}/f1": s["f1"], f"val/{key}/accuracy": s["accuracy"]}
    record["lr"] = lr
    return record


def run_epoch(job: Job, state: State) -> tuple[dict, bool]:
    """Train and validate epoch `state.epoch + 1`; update `state`. Returns the epoch's record and whether it
    is the best so far."""
    tp, data = job.params.train, job.data
    epoch = state.epoch + 1
    loader = job.train_loader.epoch(epoch - 1)
    weights = start_epoch(job.net, epoch - 1, tp.epochs)
    lr = job.scheduler.lrs[0]  # the epoch's starting rate; per-step schedules move it within the epoch
    train_losses, state.step = train_one_epoch(
        job.trainee, loader, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema, job.rt,
        job.net.data_config, state.step, f"{job.name} epoch {epoch}/{tp.epochs}", job.world,
    )  # fmt: skip
    scores, val_losses, probs = evaluate(
        job.scored, job.val_loader, job.losses, data.val_truth, data.val_targets, job.rt, job.net.data_config,
        job.world,
    )  # fmt: skip
    score = scores[job.select]["f1"]
    improved = score > state.best_score  # ties keep the earlier epoch
    if improved:
        state.best_score, state.best_epoch, state.best_scores = score, epoch, scores
        state.best_weights = cpu_copy(job.scored.state_dict())
        state.best_truth = data.val_truth[job.select].tolist()
        state.best_pred = probs[job.select].argmax(axis=1).tolist()
        state.stale = 0
    elif not in_last_phase(job.net, epoch - 1, tp.epochs):
        state.stale = 0  # early sequential phases cannot score well on 18 classes: patience starts later
    else:
        state.stale += 1
    job.scheduler.step_epoch(score)
    state.epoch = epoch
    record = epoch_record(epoch, train_losses, val_losses, scores, lr)
    state.history.append(record)
    return record, improved


def should_stop(tp, state: State) -> bool:
    return state.epoch >= tp.epochs or bool(tp.early_stop and state.stale >= tp.early_stop)


def summary_line(
    name: str, epochs: int, record: dict, select: str, best: bool, seconds: float, warmup_epochs: int = 0
) -> str:
    """One line per epoch. `lr` is the epoch's starting rate; during warm-up it climbs from near zero, so say so."""
    heads = " ".join(f"{key} {record[f'val/{key}/f1']:.3f}" for key in metrics.KEYS if f"val/{key}/f1" in record)
    warming = f" (warm-up {record['epoch']}/{warmup_epochs})" if record["epoch"] <= warmup_epochs else ""
    return (
        f"{name} epoch {record['epoch']}/{epochs}: loss {record['train/loss/total']:.4f} | val F1 {heads} "
        f"| {select} acc {record[f'val/{select}/accuracy']:.3f} | lr {record['lr']:.2e}{warming} | {seconds:.0f}s"
        + (" | best" if best else "")
    )
