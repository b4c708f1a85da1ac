"""Scores of the ensemble and of each model: out-of-fold on train, and on eval when true labels are at hand.

Truth is always the competition's definition (overrides applied, old = 60+), whatever age threshold the
models were trained with. `eval_labels.csv` exists beside the generated sample's eval/ folder only; with the
real data the holdout scores are simply absent and the leaderboard plays that role.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls import io, layout
from maskcls.metrics import accuracy, macro_f1
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.stages.ensemble import model_probs


def scores(true_class: np.ndarray, pred_class: np.ndarray, prefix: str) -> dict[str, float]:
    """Macro F1 (over all 18 classes, as the leaderboard computes it) and accuracy, overall and per task."""
    out = {
        f"{prefix}_f1": macro_f1(true_class, pred_class, layout.NUM_CLASSES),
        f"{prefix}_acc": accuracy(true_class, pred_class),
    }
    for task, t, p in zip(layout.TASKS, layout.decode(true_class), layout.decode(pred_class), strict=True):
        out[f"{prefix}_{task}_f1"] = macro_f1(t, p, layout.TASK_SIZES[task])
    return {k: round(v, 6) for k, v in out.items()}


def confusion_rows(true_class: np.ndarray, pred_class: np.ndarray) -> pd.DataFrame:
    """Long format `actual,predicted` that dvc plots' confusion template reads."""
    return pd.DataFrame({"actual": np.asarray(true_class), "predicted": np.asarray(pred_class)})


def per_class_f1(true_class: np.ndarray, pred_class: np.ndarray) -> pd.DataFrame:
    f1 = f1_score(true_class, pred_class, labels=range(layout.NUM_CLASSES), average=None, zero_division=0)
    return pd.DataFrame({"class": range(18), "f1": np.round(f1, 6)})


def eval_truth(params: Params, root: Path) -> np.ndarray | None:
    path = Path(root) / params.data.raw_dir / layout.EVAL_LABELS
    if not path.exists():
        return None
    labels = pd.read_csv(path, dtype={"ImageID": str})
    info = pd.read_csv(Path(root) / params.data.raw_dir / layout.EVAL_CSV, dtype={"ImageID": str})
    return labels.set_index("ImageID").loc[info["ImageID"], "ans"].to_numpy(dtype=np.int64)


def run(params: Params, root: Path = Path(".")) -> dict:
    paths = Paths(root)
    truth_csv = io.require(paths.labels_dir / "truth.csv", "run relabel_age first (dvc repro relabel_age)")
    truth = pd.read_csv(truth_csv, dtype={"person": str}).set_index("row")["class"]
    ens = {s: io.load_npz(io.require(paths.ensemble_dir / f"{s}.npz", "run ensemble first")) for s in ("oof", "eval")}
    oof_true = truth.loc[ens["oof"]["rows"]].to_numpy()
    metrics = scores(oof_true, ens["oof"]["pred"], "oof")
    metrics["oof_photos"] = len(oof_true)
    plots = {"confusion_oof.csv": confusion_rows(oof_true, ens["oof"]["pred"])}
    per_class = per_class_f1(oof_true, ens["oof"]["pred"]).rename(columns={"f1": "oof_f1"})

    eval_true = eval_truth(params, root)
    if eval_true is not None:
        metrics.update(scores(eval_true, ens["eval"]["pred"], "holdout"))
        plots["confusion_holdout.csv"] = confusion_rows(eval_true, ens["eval"]["pred"])
        per_class["holdout_f1"] = per_class_f1(eval_true, ens["eval"]["pred"])["f1"]
    plots["per_class_f1.csv"] = per_class

    models = {}
    for name in params.train.models:
        oof = model_probs(root, name, list(params.train.folds), "oof")
        if "class18" in oof:  # per-task models are scored as part of the ensemble
            models[name] = scores(truth.loc[oof["rows"]].to_numpy(), oof["class18"].argmax(1), "oof")
    metrics["models"] = models

    io.write_json(paths.metrics_dir / "eval.json", metrics)
    with io.atomic_path(paths.metrics_dir / "plots") as tmp:
        tmp.mkdir(parents=True)
        for name, frame in plots.items():
            frame.to_csv(tmp / name, index=False, lineterminator="\n")
    headline = [k for k in ("oof_f1", "oof_acc", "holdout_f1", "holdout_acc") if k in metrics]
    print("evaluate: " + ", ".join(f"{k}={metrics[k]:.4f}" for k in headline))
    return metrics
