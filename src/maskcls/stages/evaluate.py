"""Scores of the ensemble and of each model: out-of-fold on train, and on eval when true labels are at hand.

Truth is always the competition's definition (overrides applied, old = 60+), whatever age threshold the
models were trained with. `eval_labels.csv` exists beside the generated sample's eval/ folder only; with the
real data the holdout scores are simply absent and the leaderboard plays that role.

With `ensemble.person` or `ensemble.tune` on, the out-of-fold decisions are already cross-fitted by the ensemble
(docs/beyond.md), and what those switches chose and scored out of fold is surfaced under `person` and `tune`.

The pseudo-label round (`round` 2, pseudo/dvc.yaml) is scored the same way into pseudo/metrics/, with what its
pseudo-labels were under `pseudo`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls import artifacts, io, layout
from maskcls.metrics import accuracy, macro_f1, macro_f1_all_labels
from maskcls.params import Params
from maskcls.paths import Paths


def scores(true_class: np.ndarray, pred_class: np.ndarray, prefix: str) -> dict[str, float]:
    """Macro F1 as the leaderboard computes it (sklearn's default labels) and accuracy, overall and per task.

    `<prefix>_f1_all18` scores all 18 classes, an absent one as 0: a separate, named figure, never the headline.
    """
    out = {
        f"{prefix}_f1": macro_f1(true_class, pred_class),
        f"{prefix}_acc": accuracy(true_class, pred_class),
        f"{prefix}_f1_all18": macro_f1_all_labels(true_class, pred_class, layout.NUM_CLASSES),
    }
    for task, t, p in zip(layout.TASKS, layout.decode(true_class), layout.decode(pred_class), strict=True):
        out[f"{prefix}_{task}_f1"] = macro_f1(t, p)
    return {k: round(v, 6) for k, v in out.items()}


NAMES = np.array([layout.class_name(c) for c in range(layout.NUM_CLASSES)])


def confusion_rows(true_class: np.ndarray, pred_class: np.ndarray) -> pd.DataFrame:
    """Long format `actual,predicted` that dvc plots' confusion template reads, classes named with their
    meaning (`03 wear/female/<30`): the plot sorts them as text, which the zero-padded id keeps numeric."""
    return pd.DataFrame({"actual": NAMES[np.asarray(true_class)], "predicted": NAMES[np.asarray(pred_class)]})


def per_class_f1(true_class: np.ndarray, pred_class: np.ndarray) -> pd.DataFrame:
    """F1 of each of the 18 classes (0 where a class is absent from truth and prediction), in class order."""
    f1 = f1_score(true_class, pred_class, labels=range(layout.NUM_CLASSES), average=None, zero_division=0)
    return pd.DataFrame({"class": NAMES, "f1": np.round(f1, 6)})


def fold_spread(truth: pd.DataFrame, folds: pd.DataFrame, oof: dict) -> dict[str, float]:
    """Out-of-fold macro F1 of each fold's held-out photos: their mean and (population) standard deviation."""
    fold_of = truth["person"].map(folds.set_index("person")["fold"]).loc[oof["rows"]].to_numpy()
    true = truth["class"].loc[oof["rows"]].to_numpy()
    per_fold = [macro_f1(true[fold_of == f], oof["pred"][fold_of == f]) for f in np.unique(fold_of)]
    return {
        "oof_f1_fold_mean": round(float(np.mean(per_fold)), 6),
        "oof_f1_fold_std": round(float(np.std(per_fold)), 6),
        "oof_folds": len(per_fold),
    }


def eval_truth(params: Params, root: Path) -> np.ndarray | None:
    return artifacts.read_eval_truth(Path(root) / params.data.raw_dir)


def person_summary(report: dict) -> dict[str, float]:
    """The numbers of ensemble/person.json worth comparing between experiments (all out of fold but eval's groups)."""
    oof = report["oof"]
    return {
        "threshold": report["threshold"],
        "oof_people_whole": oof["people_whole"],
        "oof_purity": oof["purity"],
        "oof_full_groups": oof["full_groups"],
        **{f"oof_f1_{mode}": f1 for mode, f1 in report["oof_f1"].items()},
        "eval_groups": report["eval"]["groups"],
        "eval_full_groups": report["eval"]["full_groups"],
    }


def tune_summary(report: dict) -> dict[str, float]:
    """ensemble/tune.json's cross-fitted estimate: out-of-fold F1 without and with tuning, over `parts` parts."""
    fit = report["cross_fit"]
    return {"oof_f1_before": fit["before"], "oof_f1_after": fit["after"], "gain": fit["gain"], "parts": fit["parts"]}


def pseudo_summary(summary: dict, eval_true: np.ndarray | None, paths: Paths) -> dict:
    """The pseudo-labels the second round trained with: threshold, photos kept (and their share of eval), the
    out-of-fold estimate of their accuracy and, where eval's answers are at hand (the generated sample), their
    accuracy on eval: a score, computed here after the fact; the selection never saw those answers."""
    out = {"threshold": summary["threshold"], "photos": summary["kept"], "share": summary["share"]}
    oof = (summary.get("oof_estimate") or {}).get("accuracy")
    if oof is not None:  # numbers only (`dvc metrics diff`): an accuracy of no photo is left out
        out["oof_accuracy"] = oof
    if eval_true is not None:
        table = artifacts.read_pseudo_labels(paths.pseudo_labels_dir, eval_photos=len(eval_true))
        right = table["class"].to_numpy() == eval_true[table["row"].to_numpy()]
        if len(right):
            out["holdout_accuracy"] = round(float(right.mean()), 6)
    return out


def run(params: Params, root: Path = Path("."), round: int = 1) -> dict:
    """`round` 2: the pseudo-label round's ensemble scored, and what its pseudo-labels were (`pseudo_summary`)."""
    paths = Paths(root, round)
    table = artifacts.read_truth(paths.labels_dir)
    truth = table["class"]
    ens = {s: artifacts.read_ensemble(paths.ensemble_dir, s) for s in ("oof", "eval")}
    oof_true = truth.loc[ens["oof"]["rows"]].to_numpy()
    metrics = scores(oof_true, ens["oof"]["pred"], "oof")
    metrics["oof_photos"] = len(oof_true)
    metrics.update(fold_spread(table, artifacts.read_folds(paths.folds), ens["oof"]))
    plots = {"confusion_oof.csv": confusion_rows(oof_true, ens["oof"]["pred"])}
    per_class = per_class_f1(oof_true, ens["oof"]["pred"]).rename(columns={"f1": "oof_f1"})

    eval_true = eval_truth(params, root)
    if eval_true is not None:
        metrics.update(scores(eval_true, ens["eval"]["pred"], "holdout"))
        plots["confusion_holdout.csv"] = confusion_rows(eval_true, ens["eval"]["pred"])
        per_class["holdout_f1"] = per_class_f1(eval_true, ens["eval"]["pred"])["f1"]
    plots["per_class_f1.csv"] = per_class

    models = {}
    for name in params.pipeline.models if len(params.pipeline.models) > 1 else []:  # one model: the ensemble is it
        oof = artifacts.model_predictions(paths, name, list(params.pipeline.folds), "oof")
        if "class18" in oof:  # per-task models are scored as part of the ensemble
            models[name] = scores(truth.loc[oof["rows"]].to_numpy(), oof["class18"].argmax(1), "oof")
    if models:
        metrics["models"] = models
    for name, summary in (("person", person_summary), ("tune", tune_summary)):
        report = artifacts.read_ensemble_report(paths.ensemble_dir, name)
        if report is not None:
            metrics[name] = summary(report)
    if round > 1:
        metrics["pseudo"] = pseudo_summary(artifacts.read_pseudo_summary(paths.pseudo_labels_dir), eval_true, paths)

    io.write_json(paths.metrics_dir / "eval.json", metrics)
    with io.atomic_path(paths.metrics_dir / "plots") as tmp:
        tmp.mkdir(parents=True)
        for name, frame in plots.items():
            frame.to_csv(tmp / name, index=False, lineterminator="\n")
    headline = [k for k in ("oof_f1", "oof_acc", "holdout_f1", "holdout_acc") if k in metrics]
    print("evaluate: " + ", ".join(f"{k}={metrics[k]:.4f}" for k in headline))
    return metrics
