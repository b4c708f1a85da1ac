"""Resumable training state: what a checkpoint holds, when it is still valid, and how a run resumes from it.

A checkpoint (`.maskcls/checkpoints/<model>-fold<k>/last.pt`) lives outside DVC's outputs. Its fingerprint names
the params digest and the md5 of every input file, so a checkpoint of other inputs is ignored, never resumed;
with the RNG states restored, a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from maskcls import artifacts, io
from maskcls.paths import Paths

if TYPE_CHECKING:
    from maskcls.training.loop import Job


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


def fingerprint(params_digest: str, paths: Paths, model: str, fold: int) -> dict[str, str]:
    """What a checkpoint was trained from (the digest of the stage's params, every input file's md5); any change
    makes it stale."""
    files = {
        "labels": artifacts.model_labels_path(paths.labels_dir, model),
        "truth": paths.labels_dir / f"{artifacts.TRUTH}.csv",
        "folds": paths.folds,
        "cache": paths.cache_dir / artifacts.CACHE_META,
    }
    if paths.round == 2:  # the pseudo-labels join the training photos: another threshold, another run
        files["pseudo"] = paths.pseudo_labels_dir / artifacts.PSEUDO_LABELS
    return {"params": params_digest, "model": model, "fold": str(fold)} | {
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
