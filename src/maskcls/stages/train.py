"""Train one model on one fold: the stage that wires the training package to its inputs and outputs.

Reads the image cache, `data/labels/<model>.csv` (this model's training targets), `data/labels/truth.csv`
(the competition's labels, for every validation score) and `data/split/folds.csv` (train on persons of the
other folds, validate on this one): see `maskcls.training.fold`. The epoch loop is `maskcls.training.loop`.

In the pseudo-label round (`round` 2, pseudo/dvc.yaml) the pseudo-labelled eval photos join the training photos
(`maskcls.training.fold.with_pseudo_labels`) and every output goes under `pseudo/` (`maskcls.paths.Paths`).

Writes `models/<model>/fold<k>/` as one directory, renamed into place only when complete:
`model.pt` (best weights, spec, data config, params digest) and `metrics.json` (best epoch's scores);
and DVCLive curves in `dvclive/<model>-fold<k>/`.

DVCLive logs per epoch (step = epoch, from 1) `train/loss/{total,<output>}`, `val/loss/<output>`,
`val/<output>/{f1,accuracy}` and `lr`; at the end the best epoch's confusion matrix of the selection output
(`plots/sklearn/confusion_matrix.json`) and `best` in its metrics.json. Nothing it writes holds a timestamp.

A resumable checkpoint (`.maskcls/checkpoints/<model>-fold<k>/last.pt`, see `maskcls.training.checkpoint`)
lives outside DVC's outputs: a rerun after an interruption continues from it and ends with exactly the weights
of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dvclive import Live

from maskcls import artifacts, curves, layout
from maskcls.params import ModelSpec, Params, digest, to_dict
from maskcls.paths import Paths
from maskcls.repro import cpu_threads
from maskcls.rerun import user_command
from maskcls.training import distributed
from maskcls.training.checkpoint import State, fingerprint, load_checkpoint, restore, save_checkpoint
from maskcls.training.distributed import World
from maskcls.training.loop import build_job, run_epoch, should_stop, summary_line
from maskcls.training.runtime import actionable_errors

# runtime keys that change no byte of a train stage's outputs: how many processes load the data (every draw
# carries its augmentation seed, maskcls.dataset), how often a resumable checkpoint is written and where the
# machines of a DDP run meet. dvc.yaml's train stage declares every other runtime key (tests/test_dvc_graph.py
# keeps the two in step).
UNDECLARED_RUNTIME_KEYS = ("num_workers", "checkpoint_every", "rdzv_endpoint")


def declared_params(params: Params, model: str) -> dict:
    """The params a train stage declares in dvc.yaml (seed, models.<model>, aug, the model's resolved recipe and
    the runtime that shapes its bytes): exactly what its outputs depend on, so another experiment that reuses
    them finds a truthful digest."""
    runtime = {k: v for k, v in to_dict(params.runtime).items() if k not in UNDECLARED_RUNTIME_KEYS}
    return {
        "seed": params.seed,
        "model": to_dict(params.model(model)),
        "aug": to_dict(params.aug),
        "train": to_dict(params.train_for(model)),
        "runtime": runtime,
    }


def declared_digest(params: Params, model: str) -> str:
    return digest(declared_params(params, model))


def log_epoch(live, record: dict) -> None:
    live.step = record["epoch"]
    for name, value in record.items():
        if name != "epoch":
            live.log_metric(name, value)
    live.next_step()


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
    artifacts.write_trained_model(model_dir, checkpoint, result)
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


def _run(params: Params, model: str, fold: int, paths: Paths, on_epoch_end: Callable[[int], None] | None) -> dict:
    world = World.from_env()  # one process, or one of torchrun's (maskcls.training.distributed)
    try:
        return _train(params, model, fold, paths, on_epoch_end, world)
    finally:
        distributed.stop(world)


def _train(params, model: str, fold: int, paths: Paths, on_epoch_end, world: World) -> dict:
    """The run; in a DDP world every rank trains and validates, rank 0 alone logs, checkpoints and writes."""
    job = build_job(params, model, fold, paths, world)
    main = world.is_main
    spec, tp, rp = params.model(model), params.train, params.runtime
    if main:
        print(
            f"train: {job.name}: {spec.head} {spec.backbone}, {len(job.data.train_rows)} train"
            + (f" ({job.data.pseudo_photos} of them pseudo-labelled eval photos)" if paths.round > 1 else "")
            + f" / {len(job.data.val_rows)} val photos, {tp.epochs} epochs on {job.rt.device}"
            + (f" ({job.rt.amp})" if job.rt.amp != "off" else "")
            + (f", {world.size} processes" if world.distributed else "")
        )
    ckpt_path = paths.checkpoint_dir(model, fold) / "last.pt"
    fp = fingerprint(declared_digest(params, model), paths, model, fold)
    payload = load_checkpoint(ckpt_path, fp)
    state = restore(payload, job) if payload else State()
    distributed.check_same_start(world, state.epoch, str(paths.checkpoint_dir(model, fold).parent))
    if payload and main:
        print(f"train: {job.name}: resuming after epoch {state.epoch} from {ckpt_path}")

    # DVCLive starts clean each run; a resumed run replays the finished epochs so its logs match a fresh run's.
    live = Live(str(paths.live_dir(model, fold)), save_dvc_exp=False, dvcyaml=None) if main else None
    for record in state.history if main else []:
        log_epoch(live, record)

    cuda_errors = actionable_errors(job.name, tp.batch_size, job.rt.device)
    with sigterm_as_interrupt(), cuda_errors, resume_hint(job.name, ckpt_path):
        while not should_stop(tp, state):
            started = time.monotonic()
            record, improved = run_epoch(job, state)
            if main:
                log_epoch(live, record)
                seconds = time.monotonic() - started
                print(summary_line(job.name, tp.epochs, record, job.select, improved, seconds, tp.warmup_epochs))
                if rp.checkpoint_every > 0 and (state.epoch % rp.checkpoint_every == 0 or should_stop(tp, state)):
                    save_checkpoint(ckpt_path, fp, job, state)
            if on_epoch_end is not None:
                on_epoch_end(state.epoch)

    distributed.barrier(world)  # every rank finished its last step before rank 0 writes
    if not main:
        return {"best_epoch": state.best_epoch, "epochs_trained": state.epoch}
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


def run(
    params: Params,
    model: str,
    fold: int,
    root: Path = Path("."),
    on_epoch_end: Callable[[int], None] | None = None,
    round: int = 1,
) -> dict:
    """Train `model` on all folds but `fold`, validate on `fold`; returns the best epoch's metrics. `round` 2: the
    pseudo-label round (pseudo-labelled eval photos added to the training photos, outputs under pseudo/).

    `on_epoch_end(epoch)` is called after each epoch's checkpoint (epoch counts from 1); tests use it to
    interrupt a run.
    """
    params = params.for_model(model)  # from here on, `params.train` is this model's own resolved settings
    with cpu_threads(params.runtime.threads):
        return _run(params, model, fold, Paths(Path(root), round), on_epoch_end)
