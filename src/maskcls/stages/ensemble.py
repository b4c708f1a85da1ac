"""Folds and models -> one answer per eval photo, and the submission.

Each model's folds are averaged (eval) or stitched together (out-of-fold). Per-task models (mask, gender, age)
form one composite member whose 18-class probabilities are the product of its task probabilities; a task with
no per-task model takes the all-task models' marginal. Members are then combined:
soft (mean), weighted (weighted mean), hard (majority of argmaxes, ties broken by summed probabilities),
nested (soft inside each group of `ensemble.groups`, hard across groups).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maskcls import io, layout
from maskcls.errors import DataError
from maskcls.params import ALL_TASK_HEADS, Params
from maskcls.paths import Paths
from maskcls.submission import build, read_info, write

COMPOSITE = "per_task"  # the member made of the per-task models


def model_probs(root: Path, model: str, folds: list[int], split: str) -> dict[str, np.ndarray]:
    """eval: mean over folds; oof: each fold's held-out rows, concatenated and sorted by row."""
    parts = []
    for fold in folds:
        path = Paths(root).pred_dir(model, fold) / f"{split}.npz"
        if not path.exists():
            raise DataError(f"{path}: missing; run `dvc repro predict@{model}-{fold}` first")
        parts.append(io.load_npz(path))
    keys = [k for k in parts[0] if k not in ("rows", "embeddings")]
    if split == "eval":
        return {"rows": parts[0]["rows"], **{k: np.mean([p[k] for p in parts], axis=0) for k in keys}}
    rows = np.concatenate([p["rows"] for p in parts])
    order = np.argsort(rows, kind="stable")
    if len(np.unique(rows)) != len(rows):
        raise DataError(f"{model}: out-of-fold rows overlap between folds {folds}; re-run split and train")
    return {"rows": rows[order], **{k: np.concatenate([p[k] for p in parts])[order] for k in keys}}


def joint(mask: np.ndarray, gender: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Independent task probabilities -> (N, 18) in the layout's class order (mask*6 + gender*3 + age)."""
    return np.einsum("nm,ng,na->nmga", mask, gender, age).reshape(len(mask), layout.NUM_CLASSES)


def marginals(class18: np.ndarray) -> dict[str, np.ndarray]:
    cube = class18.reshape(-1, 3, 2, 3)
    return {"mask": cube.sum((2, 3)), "gender": cube.sum((1, 3)), "age": cube.sum((1, 2))}


def members(params: Params, root: Path, split: str) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """rows, {member: (N, 18) probabilities}, {model name: member name}."""
    folds = list(params.train.folds)
    per_model = {m: model_probs(root, m, folds, split) for m in params.train.models}
    rows = next(iter(per_model.values()))["rows"]
    for name, probs in per_model.items():
        if not np.array_equal(probs["rows"], rows):
            raise DataError(f"{name}: its {split} rows differ from the other models'; re-run its predict stage")
    out: dict[str, np.ndarray] = {}
    member_of: dict[str, str] = {}
    task_models: dict[str, list[str]] = {t: [] for t in layout.TASKS}
    for name in params.train.models:
        head = params.model(name).head
        if head in ALL_TASK_HEADS:
            out[name] = per_model[name]["class18"]
            member_of[name] = name
        else:
            task_models[head].append(name)
            member_of[name] = COMPOSITE
    if any(task_models.values()):
        all_task = [marginals(p) for p in out.values()]
        factors = {}
        for task, names in task_models.items():
            sources = [per_model[n][task] for n in names] or [m[task] for m in all_task]
            factors[task] = np.mean(sources, axis=0)
        out[COMPOSITE] = joint(factors["mask"], factors["gender"], factors["age"])
    return rows, out, member_of


def hard_vote(probs: list[np.ndarray]) -> np.ndarray:
    """Majority of argmaxes; ties go to the class with the larger summed probability."""
    votes = np.zeros_like(probs[0])
    for p in probs:
        votes[np.arange(len(p)), p.argmax(1)] += 1
    tie_break = np.sum(probs, axis=0) / (len(probs) + 1)  # < 1, so it never outweighs a vote
    score = votes + tie_break
    return score / score.sum(1, keepdims=True)


def vote(params: Params, member_probs: dict[str, np.ndarray], member_of: dict[str, str]) -> np.ndarray:
    cfg = params.ensemble
    names = sorted(member_probs)
    if cfg.method == "soft" or len(names) == 1:
        return np.mean([member_probs[n] for n in names], axis=0)
    if cfg.method == "weighted":
        weight = {}
        for model, member in member_of.items():
            weight.setdefault(member, []).append(cfg.weights[model])
        w = np.array([np.mean(weight[n]) for n in names])
        return np.tensordot(w / w.sum(), np.stack([member_probs[n] for n in names]), axes=1)
    if cfg.method == "hard":
        return hard_vote([member_probs[n] for n in names])
    # nested: soft within each group, hard across groups; members outside every group stand alone.
    groups: list[list[str]] = []
    grouped: set[str] = set()
    for group in cfg.groups:
        group_members = sorted({member_of[m] for m in group} - grouped)
        if group_members:
            groups.append(group_members)
            grouped.update(group_members)
    groups += [[n] for n in names if n not in grouped]
    return hard_vote([np.mean([member_probs[n] for n in g], axis=0) for g in groups])


def experiment_name() -> str:
    """`dvc exp run` names the run in DVC_EXP_NAME; a plain `dvc repro` is the workspace."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


def run(params: Params, root: Path = Path(".")) -> None:
    paths = Paths(root)
    info = read_info(Path(root) / params.data.raw_dir / layout.EVAL_CSV)
    results = {}
    for split in ("eval", "oof"):
        rows, member_probs, member_of = members(params, root, split)
        probs = vote(params, member_probs, member_of)
        results[split] = dict(rows=rows, class18=probs.astype(np.float32), pred=probs.argmax(1).astype(np.int64))
    if len(results["eval"]["rows"]) != len(info):
        raise DataError(
            f"eval predictions cover {len(results['eval']['rows'])} photos but info.csv has {len(info)}; "
            "re-run cache and predict"
        )
    sub = build(info, results["eval"]["pred"])
    with io.atomic_path(paths.ensemble_dir) as tmp:
        tmp.mkdir(parents=True)
        for split, arrays in results.items():
            io.save_npz(tmp / f"{split}.npz", **arrays)
    # submission.csv is the DVC output; the named copy is a convenience for uploads, kept out of DVC's hash.
    write(paths.submissions / "submission.csv", sub, info)
    write(paths.submissions / f"{experiment_name()}.csv", sub, info)
    counts = np.bincount(sub["ans"], minlength=layout.NUM_CLASSES)
    target = paths.submissions / "submission.csv"
    print(f"ensemble: {params.ensemble.method} vote over {sorted(member_probs)} -> {target}")
    print(f"ensemble: predicted class counts {counts.tolist()}")
