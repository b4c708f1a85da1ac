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

Beyond the vote (docs/beyond.md), for the probability methods (soft, weighted_soft), in this order:
1. `ensemble.tune: bias+weights`: member weights fitted for macro F1 on out-of-fold photos.
2. `ensemble.person`: photos grouped into people (threshold and linkage chosen on out-of-fold photos, whose people
   are known; eval grouped with them), gender and age pooled per person (`pool`), and in a group of seven exactly
   one incorrectly worn and one missing mask (`pool+assign`).
3. `ensemble.tune`: one offset per class added to the log-probabilities, fitted for macro F1 on the out-of-fold
   photos as step 2 leaves them, so the offsets correct the decisions that are really made.
Eval is decided by what was fitted on every out-of-fold photo. Out of fold, each part (a fold, or with one fold a
seeded half of its people) is decided by what was fitted on the other parts only: `oof.npz`'s `pred` and so the
out-of-fold scores are cross-fitted, honest estimates. `ensemble/person.json` and `ensemble/tune.json` report what
was chosen and how each choice scored out of fold.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import artifacts, layout, person, tuning
from maskcls.errors import DataError
from maskcls.metrics import macro_f1
from maskcls.params import ALL_TASK_HEADS, Params
from maskcls.paths import Paths
from maskcls.submission import build, read_info, write

PER_TASK = "per_task"  # the member made of the per-task models
HARD = ("hard", "weighted_hard")
# Library names of the params' `off`.
PERSON_MODE = {"off": "none", "pool": "pool", "pool+assign": "pool+assign"}
# Merge thresholds tried for the person grouping: distances between L2-normalised features lie in [0, 2].
PERSON_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 1.5001, 0.05), 2))
HALVES_SEED = 0  # the person-level split into halves when the out-of-fold photos come from one fold
PROB_FLOOR = 1e-12  # before a log: a probability of 0 (an assigned mask's other values) stays finite


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
    folds = list(params.pipeline.folds)
    views: dict[str, list[dict]] = {}
    for name in params.pipeline.models:
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
    rows = views[params.pipeline.models[0]][0]["rows"]
    for name, parts in views.items():
        if any(not np.array_equal(p["rows"], rows) for p in parts):
            raise DataError(f"{name}: its {split} rows differ from the other models'; re-run its predict stage")
    return rows, views


def member_voters(params: Params, views: dict[str, list[dict]]) -> dict[str, list[np.ndarray]]:
    """{member: [(N, 18) probabilities of each voter]}; the per-task models combine fold by fold."""
    voters: dict[str, list[np.ndarray]] = {}
    task_models: dict[str, list[str]] = {t: [] for t in layout.TASKS}
    for name in params.pipeline.models:
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
    """Remove predictions of models or folds no longer in pipeline.models / pipeline.folds, and return them.

    `ensemble` and `evaluate` depend on the whole preds/ folder, and DVC hashes a stage's deps after it ran:
    without this, predictions left by an earlier experiment (a recipe's model, say) would enter the recorded
    hash and a later checkout would report changed deps. Each was a DVC output, so its bytes stay in the cache
    of the run that made it.
    """
    preds = paths.preds_dir
    keep = {(m, f"fold{f}") for m in params.pipeline.models for f in params.pipeline.folds}
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
        print(f"ensemble: removed {path}: not in pipeline.models x pipeline.folds")
    return removed


# --- beyond the vote: members, person grouping, tuned decisions ---------------------------------------------------


def member_probabilities(voters: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """{member: (N, 18) mean of its voters}, members in name order (as `vote` orders them)."""
    return {name: np.mean(voters[name], axis=0) for name in sorted(voters)}


def combine(members: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted mean of the members' probabilities: `soft` / `weighted_soft`'s `class18` (every member has as
    many voters as the others, so weighting members is weighting voters)."""
    total = sum(weights[m] for m in members)
    return sum(weights[m] * p for m, p in members.items()) / total


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(probs, PROB_FLOOR))


def oof_parts(params: Params, paths: Paths, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    """(part (N,) of each out-of-fold row, description): its fold when the rows come from two folds or more;
    otherwise a seeded split of their people into two halves (a person's photos never straddle two parts)."""
    truth = artifacts.read_truth(paths.labels_dir)
    people = truth.loc[rows, "person"].to_numpy()
    fold_of = artifacts.read_folds(paths.folds).set_index("person")["fold"]
    folds = pd.Series(people).map(fold_of).to_numpy()
    if len(np.unique(folds)) >= 2:
        return folds.astype(np.int64), {"split": "folds", "parts": int(len(np.unique(folds)))}
    names = np.unique(people)
    if len(names) < 2:
        raise DataError(f"cross-fitting needs out-of-fold photos of two people or more, got {len(names)}")
    half = np.random.default_rng(HALVES_SEED).permutation(len(names)) < len(names) // 2
    part = np.isin(people, names[half]).astype(np.int64)
    return part, {"split": "halves", "parts": 2, "seed": HALVES_SEED}


def model_embeddings(
    params: Params, paths: Paths, name: str, split: str, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(features, block): model `name`'s embeddings of `rows`, each fold model's standardised over its own rows.

    Eval: the first listed fold's model (one feature space for the whole set). Out of fold: each photo was embedded
    by the model of its fold; the folds' spaces differ, so each fold is a block of its own.
    """
    folds = list(params.pipeline.folds) if split == "oof" else [params.pipeline.folds[0]]
    out, block = None, np.full(len(rows), -1, np.int64)
    for fold in folds:
        part = artifacts.fold_predictions(paths, name, fold, split)
        if "embeddings" not in part:
            raise DataError(
                f"{paths.pred_dir(name, fold) / f'{split}.npz'}: no embeddings; set predict.embeddings: true and "
                f"re-run `dvc repro predict@{name}-{fold}`"
            )
        where = np.searchsorted(rows, part["rows"])
        if (where >= len(rows)).any() or not np.array_equal(rows[np.minimum(where, len(rows) - 1)], part["rows"]):
            raise DataError(f"{name} fold{fold}: its {split} embeddings cover other rows; re-run its predict stage")
        features = person.standardize(part["embeddings"])
        if out is None:
            out = np.zeros((len(rows), features.shape[1]), np.float32)
        out[where] = features
        block[where] = fold
    return out, block


def person_features(params: Params, paths: Paths, split: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(features (N, D), blocks (N,) or None) of the photos `rows` of `split` for `person.group_photos`.

    `image`: `person.image_statistics` of the cached photos, standardised over this set. `embeddings`: every
    model's embeddings from predict. Blocks of features are standardised alike and joined. Out of fold, embeddings
    of several folds come from different models: photos of different folds are then kept apart (no person spans two
    folds anyway); image statistics alone group the whole out-of-fold set together, as eval is grouped.
    """
    kinds = params.ensemble.person_features.split("+")
    parts, blocks = [], None
    if "image" in kinds:
        cache = "train" if split == "oof" else "eval"
        images = artifacts.open_cache(paths.cache_dir, cache, expected_rows=len(rows) if split == "eval" else None)
        parts.append(person.image_statistics(images, rows=rows))
    if "embeddings" in kinds:
        for name in params.pipeline.models:
            features, block = model_embeddings(params, paths, name, split, rows)
            parts.append(features)
            blocks = block if len(np.unique(block)) > 1 else None
    return np.concatenate(parts, axis=1), blocks


def choose_person_grouping(
    params: Params, paths: Paths, rows: np.ndarray
) -> tuple[dict, np.ndarray, np.ndarray | None, np.ndarray]:
    """(choice, out-of-fold features, blocks, person ids): the linkage and threshold that recover the most
    out-of-fold people whole (`person.choose_grouping`), where identity is known."""
    features, blocks = person_features(params, paths, "oof", rows)
    ids = artifacts.read_truth(paths.labels_dir).loc[rows, "person"].to_numpy()
    choice = person.choose_grouping(features, ids, PERSON_THRESHOLDS, blocks=blocks)
    return choice, features, blocks, ids


def group_sizes(groups: np.ndarray) -> dict:
    """What can be said of a grouping without identity: groups, photos per group, share of photos in groups of 7."""
    sizes = np.bincount(groups) if len(groups) else np.zeros(0, np.int64)
    full = float((sizes[groups] == person.PHOTOS_PER_PERSON).mean()) if len(groups) else 0.0
    mean = float(len(groups) / len(sizes)) if len(sizes) else 0.0
    return {
        "photos": len(groups),
        "groups": len(sizes),
        "mean_group_size": round(mean, 6),
        "full_groups": round(full, 6),
    }


def fit_rule(
    params: Params, members: dict[str, np.ndarray], y: np.ndarray, fit: np.ndarray, groups: np.ndarray | None
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """(weights, probabilities of every row, offsets or None): the rule fitted on the rows `fit` (bool (N,)).

    Weights: fitted for macro F1 with `bias+weights`, else the method's. Then person pooling over `groups` (which
    may hold rows outside `fit`: only their probabilities are used, never their labels). Then, with `tune`, class
    offsets fitted on the pooled log-probabilities of `fit`.
    """
    cfg = params.ensemble
    names = list(members)
    weights = member_weights(params, names)
    if cfg.tune == "bias+weights":
        fitted = tuning.fit_member_weights([log_probs(members[m][fit]) for m in names], y[fit])
        weights = dict(zip(names, fitted.tolist(), strict=True))
    probs = combine(members, weights)
    if groups is not None:
        probs, _ = person.apply_person_mode(probs, groups, PERSON_MODE[cfg.person])
    offsets = None
    if cfg.tune != "off":
        offsets = tuning.fit_class_offsets(log_probs(probs[fit]), y[fit])
    return weights, probs, offsets


def decide(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """argmax of the log-probabilities plus the offsets; without offsets, of the probabilities."""
    if offsets is None:
        return probs.argmax(1).astype(np.int64)
    return tuning.apply_offsets(log_probs(probs), offsets).argmax(1).astype(np.int64)


def rounded(value: float) -> float:
    return round(float(value), 6)


def beyond_the_vote(
    params: Params, paths: Paths, splits: dict[str, tuple[np.ndarray, dict[str, list[np.ndarray]]]]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
    """({split: {"class18", "pred"[, "groups"]}}, {report name: report}) for `ensemble.person` / `ensemble.tune`."""
    cfg = params.ensemble
    rows = {s: splits[s][0] for s in splits}
    members = {s: member_probabilities(splits[s][1]) for s in splits}
    y = artifacts.read_truth(paths.labels_dir).loc[rows["oof"], "class"].to_numpy(dtype=np.int64)
    everything = np.ones(len(y), bool)
    reports: dict[str, dict] = {}
    groups: dict[str, np.ndarray | None] = {"oof": None, "eval": None}

    if cfg.person != "off":
        choice, features, blocks, ids = choose_person_grouping(params, paths, rows["oof"])
        link, threshold = choice["linkage"], choice["threshold"]
        groups["oof"] = person.group_photos(features, threshold, linkage=link, blocks=blocks)
        eval_features, _ = person_features(params, paths, "eval", rows["eval"])
        groups["eval"] = person.group_photos(eval_features, threshold, linkage=link)
        base = combine(members["oof"], member_weights(params, list(members["oof"])))
        f1 = {}
        for mode, lib_mode in PERSON_MODE.items():
            f1[mode] = rounded(macro_f1(y, person.apply_person_mode(base, groups["oof"], lib_mode)[1]))
        quality = person.grouping_quality(groups["oof"], ids)
        reports["person"] = {
            "mode": cfg.person,
            "features": cfg.person_features,
            "linkage": link,
            "threshold": threshold,
            "oof": {"photos": len(ids), **{k: rounded(v) if isinstance(v, float) else v for k, v in quality.items()}},
            "oof_f1": f1,
            "eval": group_sizes(groups["eval"]),
            "candidates": {
                name: [{k: row[k] for k in ("threshold", "people_whole", "purity")} for row in table]
                for name, table in choice["table"].items()
            },
        }
        print(
            f"ensemble: person {cfg.person}: {link} linkage, threshold {threshold} (chosen out of fold); "
            f"out of fold {quality['people_whole']:.1%} of people recovered whole, {quality['purity']:.1%} of groups "
            f"pure; eval {reports['person']['eval']['groups']} groups; out-of-fold F1 "
            + ", ".join(f"{m} {v:.4f}" for m, v in f1.items())
        )

    weights, oof_probs, offsets = fit_rule(params, members["oof"], y, everything, groups["oof"])
    eval_probs = combine(members["eval"], weights)
    if groups["eval"] is not None:
        eval_probs, _ = person.apply_person_mode(eval_probs, groups["eval"], PERSON_MODE[cfg.person])
    decided = {
        "eval": {"class18": eval_probs, "pred": decide(eval_probs, offsets)},
        "oof": {"class18": oof_probs, "pred": decide(oof_probs, offsets)},
    }

    if cfg.tune != "off":
        part, how = oof_parts(params, paths, rows["oof"])
        _, plain, _ = fit_rule(untuned(params), members["oof"], y, everything, groups["oof"])
        before = decide(plain, None)
        after = np.empty_like(before)
        per_part = []
        for k in np.unique(part):
            held = part == k
            _, probs_k, offsets_k = fit_rule(params, members["oof"], y, ~held, groups["oof"])
            after[held] = decide(probs_k[held], offsets_k)
            per_part.append(
                {
                    "part": int(k),
                    "rows": int(held.sum()),
                    "before": rounded(macro_f1(y[held], before[held])),
                    "after": rounded(macro_f1(y[held], after[held])),
                }
            )
        decided["oof"]["pred"] = after  # cross-fitted: what the out-of-fold scores measure
        gain = {"before": rounded(macro_f1(y, before)), "after": rounded(macro_f1(y, after))}
        gain["gain"] = rounded(gain["after"] - gain["before"])
        reports["tune"] = {
            "mode": cfg.tune,
            "order": [
                step for step, on in (("weights", cfg.tune == "bias+weights"), ("person", cfg.person != "off")) if on
            ]
            + ["offsets"],
            "person": cfg.person,
            "weights": {m: rounded(w) for m, w in weights.items()},
            "offsets": {layout.class_name(c): rounded(o) for c, o in enumerate(offsets)},
            "cross_fit": {**how, **gain, "per_part": per_part},
        }
        moved = ", ".join(f"{layout.class_name(c)} {o:+.1f}" for c, o in enumerate(offsets) if o) or "none"
        print(
            f"ensemble: tune {cfg.tune}: offsets {moved}; cross-fitted over {how['parts']} {how['split']}: "
            f"out-of-fold F1 {gain['before']:.4f} -> {gain['after']:.4f} ({gain['gain']:+.4f})"
        )
        if gain["gain"] < 0:
            print(
                f"ensemble: tune {cfg.tune} lowers the cross-fitted out-of-fold F1: with this few out-of-fold photos "
                "the offsets follow noise; consider ensemble.tune: off (docs/beyond.md)"
            )

    for split in ("eval", "oof"):
        if groups[split] is not None:
            decided[split]["groups"] = groups[split]
    return decided, reports


def untuned(params: Params) -> Params:
    """These params with `ensemble.tune: off`: the untuned rule (the same person pooling) that tuning is measured
    against."""
    return dataclasses.replace(params, ensemble=dataclasses.replace(params.ensemble, tune="off"))


def experiment_name() -> str:
    """`dvc exp run` names the run in DVC_EXP_NAME; a plain `dvc repro` is the workspace."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


def run(params: Params, root: Path = Path("."), round: int = 1) -> None:
    """`round` 2: the pseudo-label round's predictions in, its ensemble and submission out, under pseudo/."""
    paths = Paths(root, round)
    info = read_info(Path(root) / params.data.raw_dir / layout.EVAL_CSV)
    prune_unlisted(params, paths)
    results, splits = {}, {}
    for split in ("eval", "oof"):
        rows, views = model_views(params, paths, split)
        voters = member_voters(params, views)
        combined = vote(params, voters)
        splits[split] = (rows, voters)
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
    reports: dict[str, dict] = {}
    if params.ensemble.person != "off" or params.ensemble.tune != "off":
        decided, reports = beyond_the_vote(params, paths, splits)
        for split, arrays in decided.items():
            results[split]["class18"] = arrays["class18"].astype(np.float32)
            results[split]["pred"] = arrays["pred"].astype(np.int64)
            if "groups" in arrays:
                results[split]["groups"] = arrays["groups"].astype(np.int64)
    sub = build(info, results["eval"]["pred"])
    artifacts.write_ensemble(paths.ensemble_dir, results, reports)
    # submission.csv is the DVC output; the named copy is a convenience for uploads, kept out of DVC's hash.
    write(paths.submissions / "submission.csv", sub, info)
    write(paths.submissions / f"{experiment_name()}.csv", sub, info)
    counts = np.bincount(sub["ans"], minlength=layout.NUM_CLASSES)
    print(f"ensemble: -> {paths.submissions / 'submission.csv'}")
    print(f"ensemble: predicted class counts {counts.tolist()}")
