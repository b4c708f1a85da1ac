"""Train one model on one fold.

Reads the image cache, `data/labels/<model>.csv` (this model's training targets), `data/labels/truth.csv`
(the competition's labels: every validation score uses them, so an age threshold lowered for training never
flatters the scores) and `data/split/folds.csv` (train on persons of the other folds, validate on this one).

Writes `models/<model>/fold<k>/` as one directory, renamed into place only when complete:
`model.pt` (best weights, spec, data config, params digest) and `metrics.json` (best epoch's scores);
and DVCLive curves in `dvclive/<model>-fold<k>/`.

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

DVCLive logs per epoch (step = epoch, from 1) `train/loss/{total,<output>}`, `val/loss/<output>`,
`val/<output>/{f1,accuracy}` and `lr`; at the end the best epoch's confusion matrix of the selection output
(`plots/sklearn/confusion_matrix.json`) and `best` in its metrics.json. Nothing it writes holds a timestamp.

A resumable checkpoint (`.maskcls/checkpoints/<model>-fold<k>/last.pt`) lives outside DVC's outputs: a rerun
after an interruption continues from it and ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader

from maskcls import curves, io, layout, metrics
from maskcls.data import build_eval_loader, build_train_loader
from maskcls.errors import DataError, MaskclsError, ResourceError
from maskcls.layout import HEAD_OUTPUTS
from maskcls.losses import build_loss
from maskcls.models import MaskModel, build_model, check_backbone, model_from_checkpoint
from maskcls.optim import Schedule, build_optimizer, build_scheduler
from maskcls.params import ALL_TASK_HEADS, SHARED_TRAIN_KEYS, LossSpec, ModelSpec, Params, digest, to_dict
from maskcls.paths import Paths
from maskcls.progress import progress
from maskcls.repro import cpu_threads, derive_seed, seed_everything, set_deterministic
from maskcls.rerun import user_command
from maskcls.stages.cache import open_cache
from maskcls.transforms import normalize


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


# --- inputs ---------------------------------------------------------------------------------------------------


@dataclass
class FoldData:
    images: np.ndarray  # the whole train cache, memory-mapped; rows index it
    train_rows: np.ndarray
    train_targets: dict[str, np.ndarray]  # this model's targets, aligned with train_rows
    val_rows: np.ndarray
    val_targets: dict[str, np.ndarray]  # the same targets for the validation rows (validation loss)
    val_truth: dict[str, np.ndarray]  # competition labels of the validation rows (scores)


def target_arrays(labels: pd.DataFrame, head: str, source: Path) -> dict[str, np.ndarray]:
    keys = HEAD_OUTPUTS[head]
    needed = layout.TASKS if "class18" in keys else keys
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise DataError(f"{source}: no column {', '.join(missing)} for head '{head}'; re-run `dvc repro relabel_age`")
    arrays = {task: labels[task].to_numpy(dtype=np.int64) for task in needed}
    if "class18" in keys:
        arrays["class18"] = np.asarray(layout.encode(arrays["mask"], arrays["gender"], arrays["age"]))
    return {key: arrays[key] for key in keys}


def load_fold(paths: Paths, model: str, head: str, fold: int, image_size: tuple[int, int]) -> FoldData:
    labels_path = paths.labels_dir / f"{model}.csv"
    for path in (labels_path, paths.labels_dir / "truth.csv", paths.folds):
        if not path.exists():
            raise DataError(f"{path}: missing; run the stages before train (`dvc repro train@{model}-{fold}`)")
    labels = pd.read_csv(labels_path, dtype={"person": str})
    truth = pd.read_csv(paths.labels_dir / "truth.csv", dtype={"person": str}).set_index("row")
    folds = pd.read_csv(paths.folds, dtype={"person": str})

    fold_of = labels["person"].map(folds.set_index("person")["fold"])
    if fold_of.isna().any():
        unknown = labels.loc[fold_of.isna(), "person"].unique()[:5]
        raise DataError(f"{paths.folds}: no fold for persons {', '.join(unknown)}; re-run `dvc repro split`")
    if not (fold_of == fold).any():
        raise DataError(f"{paths.folds}: fold {fold} has no validation persons; check train.folds and split")
    is_val = (fold_of == fold).to_numpy()
    rows = labels["row"].to_numpy(dtype=np.int64)
    targets = target_arrays(labels, head, labels_path)
    missing_rows = np.setdiff1d(rows, truth.index.to_numpy())
    if len(missing_rows):
        raise DataError(f"{labels_path}: rows {missing_rows[:5].tolist()} are not in truth.csv; re-run relabel_age")
    return FoldData(
        images=open_cache(paths.cache_dir, "train", expected_rows=len(truth), expected_size=image_size),
        train_rows=rows[~is_val],
        train_targets={k: v[~is_val] for k, v in targets.items()},
        val_rows=rows[is_val],
        val_targets={k: v[is_val] for k, v in targets.items()},
        val_truth=metrics.truth_arrays(truth.loc[rows[is_val]]),
    )


def build_losses(spec: ModelSpec, targets: dict[str, np.ndarray], device: torch.device) -> dict:
    losses = {}
    for key, y in targets.items():
        n = layout.NUM_LABELS[key]
        counts = np.bincount(y, minlength=n)  # for weighted_ce's inverse-frequency weights
        losses[key] = build_loss(spec.losses.get(key, LossSpec()), n, counts).to(device)
    return losses


# --- device ---------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ResourceError(
            "train.device is 'cuda' but PyTorch sees no CUDA device (no GPU, no driver, or a CPU-only torch "
            "build); set train.device: auto or cpu"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Runtime:
    """How tensors are placed and computed: the same for training and validation."""

    device: torch.device
    amp: str  # off | bf16 | fp16; only on CUDA
    channels_last: bool

    def autocast(self):
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def inputs(self, images: torch.Tensor, data_config: dict) -> torch.Tensor:
        x = normalize(images.to(self.device, non_blocking=True), data_config)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def runtime(params: Params) -> Runtime:
    device = resolve_device(params.train.device)
    cuda = device.type == "cuda"
    amp = params.train.amp if cuda else "off"
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ResourceError("this GPU has no bfloat16 support; set train.amp: fp16 or off")
    return Runtime(device, amp, params.train.channels_last and cuda)


# --- one epoch ------------------------------------------------------------------------------------------------


def train_one_epoch(net, loader, losses, weights, optimizer, scheduler, scaler, ema, rt, data_config, step, desc):
    """One pass over the training loader. Returns mean losses (total and per output) and the global step."""
    net.train()
    sums = dict.fromkeys(["loss", *weights], 0.0)
    seen = 0
    for images, targets in progress(loader, desc, size=lambda batch: len(batch[0])):
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
        step += 1
        if ema is not None:
            ema.update(net, step=step)
        n = len(x)
        seen += n
        sums["loss"] += loss.item() * n
        for k, v in parts.items():
            sums[k] += v.item() * n
    return {k: v / max(seen, 1) for k, v in sums.items()}, step


@torch.no_grad()
def predict_logits(net, loader, rt, data_config) -> dict[str, torch.Tensor]:
    """Logits of every validation image, float32 on the CPU, in loader (row) order."""
    net.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        with rt.autocast():
            out = net(rt.inputs(images, data_config))
        for key, value in out.items():
            chunks.setdefault(key, []).append(value.float().cpu())
    return {key: torch.cat(parts) for key, parts in chunks.items()}


@torch.no_grad()
def evaluate(net, loader, losses, truth, targets, rt, data_config) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """Scores over the whole validation set: (scores per output, validation losses, probabilities)."""
    logits = predict_logits(net, loader, rt, data_config)
    probs = {k: v.numpy() for k, v in net.probabilities(logits).items()}
    val_losses = {
        k: float(losses[k](logits[k].to(rt.device), torch.as_tensor(y, device=rt.device))) for k, y in targets.items()
    }
    return metrics.task_scores(truth, probs), val_losses, probs


# --- state, checkpoints ---------------------------------------------------------------------------------------


@dataclass
class State:
    """Progress that a resumed run needs besides model, optimizer, scheduler and EMA."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_score: float = -1.0
    best_epoch: int = 0
    best_scores: dict = field(default_factory=dict)
    best_weights: dict | None = None
    best_truth: list[int] = field(default_factory=list)  # selection labels and predictions at the best epoch
    best_pred: list[int] = field(default_factory=list)
    stale: int = 0  # epochs since the best one
    history: list[dict] = field(default_factory=list)  # one record per epoch, replayed into DVCLive on resume


def cpu_copy(state_dict: dict) -> dict:
    return {k: v.detach().clone(memory_format=torch.contiguous_format).cpu() for k, v in state_dict.items()}


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def declared_params(params: Params, model: str) -> dict:
    """The params a train stage declares in dvc.yaml (seed, models.<model>, aug, its resolved train settings, repro):
    exactly what its outputs depend on, so another experiment that reuses them finds a truthful digest."""
    train = {k: v for k, v in to_dict(params.train).items() if k not in SHARED_TRAIN_KEYS}
    return {
        "seed": params.seed,
        "model": to_dict(params.model(model)),
        "aug": to_dict(params.aug),
        "train": train,
        "repro": to_dict(params.repro),  # portable or native CPU kernels make other bytes
    }


def declared_digest(params: Params, model: str) -> str:
    return digest(declared_params(params, model))


def fingerprint(params: Params, paths: Paths, model: str, fold: int) -> dict[str, str]:
    """What a checkpoint was trained from; any change makes it stale."""
    files = {
        "labels": paths.labels_dir / f"{model}.csv",
        "truth": paths.labels_dir / "truth.csv",
        "folds": paths.folds,
        "cache": paths.cache_dir / "meta.json",
    }
    return {"params": declared_digest(params, model), "model": model, "fold": str(fold)} | {
        name: file_md5(path) for name, path in files.items()
    }


def rng_states() -> dict:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()  # plain data: loadable with weights_only
    return {
        "python": random.getstate(),
        "numpy": np_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np_state = dict(states["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.asarray(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, fp: dict, job: Job, state: State) -> None:
    payload = {
        "fingerprint": fp,
        "model": cpu_copy(job.net.state_dict()),
        "optimizer": job.optimizer.state_dict(),
        "scheduler": job.scheduler.state_dict(),
        "scaler": job.scaler.state_dict(),
        "ema": cpu_copy(job.ema.state_dict()) if job.ema is not None else None,
        "state": asdict(state),
        "rng": rng_states(),
    }
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, fp) -> dict | None:
    """The checkpoint at `path` if it was written for exactly these inputs, else None (with the reason)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is only a lost head start, never a reason to stop
        print(f"train: ignoring unreadable checkpoint {path}: {exc}")
        return None
    if payload.get("fingerprint") != fp:
        print(f"train: ignoring checkpoint {path}: params or inputs changed since it was written")
        return None
    return payload


def restore(payload: dict, job: Job) -> State:
    job.net.load_state_dict(payload["model"])
    job.optimizer.load_state_dict(payload["optimizer"])
    job.scheduler.load_state_dict(payload["scheduler"])
    job.scaler.load_state_dict(payload["scaler"])
    if job.ema is not None:
        job.ema.load_state_dict(payload["ema"])
    set_rng_states(payload["rng"])
    return State(**payload["state"])


# --- one run -------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """Everything a run builds before its first epoch."""

    params: Params
    name: str  # "<model> fold<k>", for messages
    seed: int
    rt: Runtime
    data: FoldData
    net: MaskModel
    losses: dict
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    scaler: torch.amp.GradScaler
    ema: ModelEmaV3 | None
    val_loader: DataLoader
    select: str  # output whose validation F1 picks the best epoch

    @property
    def scored(self) -> torch.nn.Module:
        """The weights that are validated and saved: the EMA's when it is on."""
        return self.ema.module if self.ema is not None else self.net


def build_job(params: Params, model: str, fold: int, paths: Paths) -> Job:
    spec = params.model(model)
    check_backbone(spec.backbone, key=f"models.{model}.backbone")  # a params error before any data is read
    tp = params.train
    set_deterministic(tp.deterministic)  # before the first CUDA call: cuBLAS reads its workspace setting once
    rt = runtime(params)
    seed = derive_seed(params.seed, "train", model, fold)
    seed_everything(seed)

    image_size = (params.cache.height, params.cache.width)
    data = load_fold(paths, model, spec.head, fold, image_size)
    net = build_model(spec, pretrained=True, input_size=image_size).to(rt.device)
    if rt.channels_last:
        net = net.to(memory_format=torch.channels_last)
    # The schedule counts optimizer steps; every epoch's loader has the same length (resampling is fixed).
    steps_per_epoch = len(build_train_loader(data.images, data.train_rows, data.train_targets, params, seed, 0))
    optimizer = build_optimizer(net, tp)
    return Job(
        params=params,
        name=f"{model} fold{fold}",
        seed=seed,
        rt=rt,
        data=data,
        net=net,
        losses=build_losses(spec, data.train_targets, rt.device),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, tp, steps_per_epoch),
        scaler=torch.amp.GradScaler("cuda", enabled=rt.amp == "fp16"),
        ema=ModelEmaV3(net, decay=tp.ema) if tp.ema > 0 else None,
        val_loader=build_eval_loader(data.images, data.val_rows, tp.batch_size, tp.num_workers),
        select=selection_key(spec.head),
    )


def run_epoch(job: Job, state: State) -> tuple[dict, bool]:
    """Train and validate epoch `state.epoch + 1`; update `state`. Returns the epoch's record and whether it
    is the best so far."""
    tp, data = job.params.train, job.data
    epoch = state.epoch + 1
    loader = build_train_loader(data.images, data.train_rows, data.train_targets, job.params, job.seed, epoch - 1)
    weights = start_epoch(job.net, epoch - 1, tp.epochs)
    lr = job.scheduler.lrs[0]  # the epoch's starting rate; per-step schedules move it within the epoch
    train_losses, state.step = train_one_epoch(
        job.net, loader, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema, job.rt,
        job.net.data_config, state.step, f"{job.name} epoch {epoch}/{tp.epochs}",
    )  # fmt: skip
    scores, val_losses, probs = evaluate(
        job.scored, job.val_loader, job.losses, data.val_truth, data.val_targets, job.rt, job.net.data_config
    )
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


# --- outputs (the only side effects; under DDP only rank 0 would call these) ----------------------------------


def log_epoch(live, record: dict) -> None:
    live.step = record["epoch"]
    for name, value in record.items():
        if name != "epoch":
            live.log_metric(name, value)
    live.next_step()


def epoch_record(epoch: int, train_losses: dict, val_losses: dict, scores: dict, lr: float) -> dict:
    """Flat metric names as DVCLive files them: plots/metrics/<name>.tsv."""
    record = {"epoch": epoch, "train/loss/total": train_losses["loss"]}
    record |= {f"train/loss/{k}": v for k, v in train_losses.items() if k != "loss"}
    record |= {f"val/loss/{k}": v for k, v in val_losses.items()}
    for key, s in scores.items():
        record |= {f"val/{key}/f1": s["f1"], f"val/{key}/accuracy": s["accuracy"]}
    record["lr"] = lr
    return record


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


def write_outputs(
    model_dir: Path, model: str, spec: ModelSpec, data_config: dict, params: Params, state: State, select: str
):
    """model.pt and metrics.json, renamed into place together: a killed run leaves no complete-looking dir."""
    scores = state.best_scores
    result = {
        "best_epoch": state.best_epoch,
        "epochs_trained": state.epoch,
        "selection": select,
        "f1": scores[select]["f1"],
        "accuracy": scores[select]["accuracy"],
        "heads": scores,
        "params_digest": declared_digest(params, model),
    }
    checkpoint = {
        "state_dict": state.best_weights,
        "spec": to_dict(spec),
        "data_config": dict(data_config),
        "params_digest": result["params_digest"],
    }
    with io.atomic_path(model_dir) as tmp:
        tmp.mkdir(parents=True)
        torch.save(checkpoint, tmp / "model.pt")
        io.write_json(tmp / "metrics.json", result)
    return result


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a cancelled job) unwinds like Ctrl-C, so temporary outputs are cleaned up on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the stage ------------------------------------------------------------------------------------------------


def run(
    params: Params,
    model: str,
    fold: int,
    root: Path = Path("."),
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict:
    """Train `model` on all folds but `fold`, validate on `fold`; returns the best epoch's metrics.

    `on_epoch_end(epoch)` is called after each epoch's checkpoint (epoch counts from 1); tests use it to
    interrupt a run.
    """
    params = params.for_model(model)  # from here on, `params.train` is this model's own resolved settings
    with cpu_threads(params.train.threads):
        return _run(params, model, fold, Paths(Path(root)), on_epoch_end)


def _run(params: Params, model: str, fold: int, paths: Paths, on_epoch_end: Callable[[int], None] | None) -> dict:
    from dvclive import Live  # here, not at the top: predict imports this module for load_model only

    job = build_job(params, model, fold, paths)
    spec, tp = params.model(model), params.train
    print(
        f"train: {job.name}: {spec.head} {spec.backbone}, {len(job.data.train_rows)} train / "
        f"{len(job.data.val_rows)} val photos, {tp.epochs} epochs on {job.rt.device}"
        + (f" ({job.rt.amp})" if job.rt.amp != "off" else "")
    )
    ckpt_path = paths.checkpoint_dir(model, fold) / "last.pt"
    fp = fingerprint(params, paths, model, fold)
    payload = load_checkpoint(ckpt_path, fp)
    state = restore(payload, job) if payload else State()
    if payload:
        print(f"train: {job.name}: resuming after epoch {state.epoch} from {ckpt_path}")

    # DVCLive starts clean each run; a resumed run replays the finished epochs so its logs match a fresh run's.
    live = Live(str(paths.live_dir(model, fold)), save_dvc_exp=False, dvcyaml=None)
    for record in state.history:
        log_epoch(live, record)

    with sigterm_as_interrupt(), actionable_errors(job), resume_hint(job.name, ckpt_path):
        while not should_stop(tp, state):
            started = time.monotonic()
            record, improved = run_epoch(job, state)
            log_epoch(live, record)
            seconds = time.monotonic() - started
            print(summary_line(job.name, tp.epochs, record, job.select, improved, seconds, tp.warmup_epochs))
            if tp.checkpoint_every > 0 and (state.epoch % tp.checkpoint_every == 0 or should_stop(tp, state)):
                save_checkpoint(ckpt_path, fp, job, state)
            if on_epoch_end is not None:
                on_epoch_end(state.epoch)

    result = write_outputs(paths.model_dir(model, fold), model, spec, job.net.data_config, params, state, job.select)
    # class ids as names (`03 wear/female/<30`): the plot sorts labels as text, the zero-padded id keeps them in order
    named = (lambda labels: [layout.class_name(c) for c in labels]) if job.select == "class18" else list
    live.log_sklearn_plot(
        "confusion_matrix", named(state.best_truth), named(state.best_pred), name="confusion_matrix",
        title=f"{job.select} confusion, best epoch {state.best_epoch}",
    )  # fmt: skip
    live.summary["best"] = {"epoch": state.best_epoch, job.select: state.best_scores[job.select]}
    curves.write(paths.live_dir(model, fold), state.history)
    live.end()
    shutil.rmtree(paths.checkpoint_dir(model, fold), ignore_errors=True)  # done: a rerun must start afresh
    print(f"train: {job.name}: best epoch {state.best_epoch}, val {job.select} F1 {result['f1']:.4f}")
    return result


@contextlib.contextmanager
def resume_hint(name: str, ckpt_path: Path):
    """The CLI ends on Ctrl-C with exit code 130 and no message: say what was kept and how to go on."""
    try:
        yield
    except KeyboardInterrupt:
        if ckpt_path.exists():
            hint = f"run `{user_command()}` again to resume from {ckpt_path}"
        else:
            hint = "no epoch was checkpointed, a rerun starts afresh"
        print(f"train: {name}: interrupted, no model written; {hint}", file=sys.stderr)
        raise


@contextlib.contextmanager
def actionable_errors(job: Job):
    """CUDA failures a user can fix with params, as ResourceError naming the key to change."""
    tp = job.params.train
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise ResourceError(
            f"CUDA ran out of memory training {job.name} with train.batch_size {tp.batch_size}: lower "
            "train.batch_size, or set train.amp: bf16 (or fp16) to halve activation memory"
        ) from exc
    except RuntimeError as exc:
        if "does not have a deterministic implementation" not in str(exc):
            raise
        raise ResourceError(
            f"{job.name}: this model uses an operation without a deterministic kernel on {job.rt.device} "
            f"({str(exc).split(',')[0]}); set train.deterministic: false to train it (runs are then not "
            "bit-identical)"
        ) from exc


# --- loading for prediction -----------------------------------------------------------------------------------


def load_model(model_dir: Path) -> tuple[MaskModel, dict]:
    """The trained model (CPU, eval mode) and the data config it was trained with."""
    path = Path(model_dir) / "model.pt"
    if not path.exists():
        raise MaskclsError(f"{path}: no trained model; run `maskcls train` (or `dvc repro`) for it first")
    net = model_from_checkpoint(path)
    return net.eval(), net.data_config
