"""Fold models and members -> one answer per eval photo, and the submission (docs/ensemble.md).

Voters. An all-task model (single, fused, multihead, sequential) is a member of its own. The per-task models
(mask, gender, age) together form one member, `per_task`: for each fold, its 18-class probabilities are the
product of its task probabilities (several models of one task are averaged; a task with no per-task model
takes the all-task models' marginal of the same fold). On eval, `ensemble.folds` decides how a member's fold
models take part: `vote` makes each one a voter, `mean` averages them into one voter, `best` keeps the fold
whose held-out photos it scored best on (macro F1 of the head it predicts). Out of fold, every photo was
predicted by exactly one fold model of each model, so each member is one voter there, whatever `folds` says.

Votes. `soft`: mean probability. `hard`: each voter's argmax is one vote; the class with most votes wins, a
tie goes to the tied class with the larger summed probability, then to the lower class id. `weighted_soft` /
`weighted_hard`: the same with each voter counting its member's weight. `nested`: each group of
`ensemble.groups` (an unlisted member is a group of its own) soft-averages all its voters into one, then the
groups vote hard.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from maskcls import artifacts, layout
from maskcls.errors import DataError
from maskcls.metrics import macro_f1
from maskcls.params import ALL_TASK_HEADS, Params
from maskcls.paths import Paths
from maskcls.submission import build, read_info, write

PER_TASK = "per_task"  # the member made of the per-task models
HARD = ("hard", "weighted_hard")


def scored_key(head: str) -> str:
    """The output whose validation F1 ranks a model's folds."""
    return "class18" if head in ALL_TASK_HEADS else head


def truth_of(paths: Paths, rows: np.ndarray, key: str) -> np.ndarray:
    truth = artifacts.read_truth(paths.labels_dir)
    return truth.loc[rows, "class" if key == "class18" else key].to_numpy(dtype=np.int64)


def best_fold(paths: Paths, model: str, head: str, folds: list[int]) -> tuple[int, dict[int, float]]:
    """The fold whose model scored the best macro F1 on its own held-out photos; ties go to the lower fold."""
    key = scored_key(head)
    f1 = {}
    for fold in folds:
        oof = artifacts.fold_predictions(paths, model, fold, "oof")
        f1[fold] = macro_f1(truth_of(paths, oof["rows"], key), oof[key].argmax(1))
    return max(folds, key=lambda f: (f1[f], -f)), f1


def model_views(params: Params, paths: Paths, split: str) -> tuple[np.ndarray, dict[str, list[dict]]]:
    """rows, {model: its views}: the probability sets each model contributes, one per voter it gives its member."""
    folds = list(params.train.folds)
    views: dict[str, list[dict]] = {}
    for name in params.train.models:
        if split == "oof":
            views[name] = [artifacts.model_predictions(paths, name, folds, "oof")]
            continue
        parts = [artifacts.fold_predictions(paths, name, f, "eval") for f in folds]
        how = params.ensemble.folds
        if how == "mean":
            keys = artifacts.output_keys(parts[0])
            parts = [{"rows": parts[0]["rows"], **{k: np.mean([p[k] for p in parts], 0) for k in keys}}]
        elif how == "best":
            fold, f1 = best_fold(paths, name, params.model(name).head, folds)
            scores = ", ".join(f"fold{k} {v:.4f}" for k, v in f1.items())
            print(f"ensemble: {name}: keeps fold {fold}, the best held-out F1 ({scores})")
            parts = [parts[folds.index(fold)]]
        views[name] = parts
    rows = views[params.train.models[0]][0]["rows"]
    for name, parts in views.items():
        if any(not np.array_equal(p["rows"], rows) for p in parts):
            raise DataError(f"{name}: its {split} rows differ from the other models'; re-run its predict stage")
    return rows, views


def member_voters(params: Params, views: dict[str, list[dict]]) -> dict[str, list[np.ndarray]]:
    """{member: [(N, 18) probabilities of each voter]}; the per-task models combine fold by fold."""
    voters: dict[str, list[np.ndarray]] = {}
    task_models: dict[str, list[str]] = {t: [] for t in layout.TASKS}
    for name in params.train.models:
        head = params.model(name).head
        if head in ALL_TASK_HEADS:
            voters[name] = [v["class18"] for v in views[name]]
        else:
            task_models[head].append(name)
    if any(task_models.values()):
        all_task = list(voters)
        n = len(views[next(m for ms in task_models.values() for m in ms)])
        combined = []
        for i in range(n):
            factors = {}
            for task, names in task_models.items():
                own = [views[m][i][task] for m in names]
                sources = own or [layout.task_marginals(voters[m][i])[task] for m in all_task]
                factors[task] = np.mean(sources, axis=0)
            combined.append(layout.joint_probabilities(factors["mask"], factors["gender"], factors["age"]))
        voters[PER_TASK] = combined
    return voters


def member_of(params: Params, name: str) -> str:
    return name if params.model(name).head in ALL_TASK_HEADS else PER_TASK


def member_weights(params: Params, members: list[str]) -> dict[str, float]:
    if params.ensemble.method not in ("weighted_soft", "weighted_hard"):
        return dict.fromkeys(members, 1.0)
    # params checks that the per-task models share one weight, so any of them names the member's
    return {member_of(params, m): w for m, w in params.ensemble.weights.items()}


def hard_vote(voters: list[np.ndarray], weights: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vote shares (N, 18), decision (N,)): most (weighted) votes; ties -> larger summed probability -> lower id."""
    weights = weights or [1.0] * len(voters)
    votes = np.zeros_like(voters[0], dtype=np.float64)
    summed = np.zeros_like(voters[0], dtype=np.float64)
    for p, w in zip(voters, weights, strict=True):
        votes[np.arange(len(p)), p.argmax(1)] += w
        summed += w * p
    top = votes == votes.max(1, keepdims=True)
    # argmax returns the first maximum, so among classes equal in votes and probability the lower id wins
    decision = np.where(top, summed, -np.inf).argmax(1)
    return votes / votes.sum(1, keepdims=True), decision


def vote(params: Params, voters: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """{"class18": combined probabilities, "pred": decision, "votes": vote shares (hard methods only)}."""
    method = params.ensemble.method
    names = sorted(voters)
    if method == "nested":
        home = {member_of(params, m): i for i, group in enumerate(params.ensemble.groups) for m in group}
        groups: dict[object, list[np.ndarray]] = {}
        for name in names:
            groups.setdefault(home.get(name, name), []).extend(voters[name])
        flat = [np.mean(g, axis=0) for g in groups.values()]
        weights = [1.0] * len(flat)
    else:
        member_weight = member_weights(params, names)
        flat = [p for n in names for p in voters[n]]
        weights = [member_weight[n] for n in names for _ in voters[n]]
    w = np.asarray(weights) / np.sum(weights)
    probs = np.tensordot(w, np.stack(flat), axes=1)
    if method in (*HARD, "nested"):
        shares, decision = hard_vote(flat, weights)
        return {"class18": probs, "pred": decision, "votes": shares}
    return {"class18": probs, "pred": probs.argmax(1)}


def describe(params: Params, voters: dict[str, list[np.ndarray]]) -> str:
    counts = ", ".join(f"{name} x{len(v)}" for name, v in sorted(voters.items()))
    return f"{params.ensemble.method} vote, folds: {params.ensemble.folds}, voters: {counts}"


def prune_unlisted(params: Params, paths: Paths) -> list[Path]:
    """Remove predictions of models or folds no longer in train.models / train.folds, and return them.

    `ensemble` and `evaluate` depend on the whole preds/ folder, and DVC hashes a stage's deps after it ran:
    without this, predictions left by an earlier experiment (a recipe's model, say) would enter the recorded
    hash and a later checkout would report changed deps. Each was a DVC output, so its bytes stay in the cache
    of the run that made it.
    """
    preds = paths.preds_dir
    keep = {(m, f"fold{f}") for m in params.train.models for f in params.train.folds}
    removed = []
    for model_dir in sorted(preds.iterdir()) if preds.is_dir() else []:
        if not model_dir.is_dir() or model_dir.name.startswith("."):
            continue
        stale = [d for d in sorted(model_dir.iterdir()) if (model_dir.name, d.name) not in keep]
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
        if not any(model_dir.iterdir()):
            model_dir.rmdir()
    for path in removed:
        print(f"ensemble: removed {path}: not in train.models x train.folds")
    return removed


def experiment_name() -> str:
    """`dvc exp run` names the run in DVC_EXP_NAME; a plain `dvc repro` is the workspace."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


def run(params: Params, root: Path = Path(".")) -> None:
    paths = Paths(root)
    info = read_info(Path(root) / params.data.raw_dir / layout.EVAL_CSV)
    prune_unlisted(params, paths)
    results = {}
    for split in ("eval", "oof"):
        rows, views = model_views(params, paths, split)
        voters = member_voters(params, views)
        combined = vote(params, voters)
        results[split] = {
            "rows": rows,
            **{k: v.astype(np.float32) for k, v in combined.items() if k != "pred"},
            "pred": combined["pred"].astype(np.int64),
        }
        if split == "eval":
            print(f"ensemble: {describe(params, voters)}")
    if len(results["eval"]["rows"]) != len(info):
        raise DataError(
            f"eval predictions cover {len(results['eval']['rows'])} photos but info.csv has {len(info)}; "
            "re-run cache and predict"
        )
    sub = build(info, results["eval"]["pred"])
    artifacts.write_predictions(paths.ensemble_dir, results)
    # submission.csv is the DVC output; the named copy is a convenience for uploads, kept out of DVC's hash.
    write(paths.submissions / "submission.csv", sub, info)
    write(paths.submissions / f"{experiment_name()}.csv", sub, info)
    counts = np.bincount(sub["ans"], minlength=layout.NUM_CLASSES)
    print(f"ensemble: -> {paths.submissions / 'submission.csv'}")
    print(f"ensemble: predicted class counts {counts.tolist()}")
