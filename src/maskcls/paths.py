"""Where every stage reads and writes, relative to the repository root. dvc.yaml names the same paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")

    @property
    def index_dir(self) -> Path:  # validate: train.csv (one row per photo), eval.csv (info.csv order)
        return self.root / "data" / "index"

    @property
    def labels_dir(self) -> Path:  # relabel_age: truth.csv and one <model>.csv of training targets per model
        return self.root / "data" / "labels"

    @property
    def folds(self) -> Path:  # split: person -> fold
        return self.root / "data" / "split" / "folds.csv"

    @property
    def cache_dir(self) -> Path:  # cache: decoded uint8 arrays, memory-mapped
        return self.root / "data" / "cache"

    def model_dir(self, model: str, fold: int) -> Path:
        return self.root / "models" / model / f"fold{fold}"

    def live_dir(self, model: str, fold: int) -> Path:  # DVCLive curves and confusion matrices
        return self.root / "dvclive" / f"{model}-fold{fold}"

    def checkpoint_dir(self, model: str, fold: int) -> Path:
        # Outside the stage's outputs: DVC deletes outputs before a re-run, a resumable checkpoint must survive it.
        return self.root / ".maskcls" / "checkpoints" / f"{model}-fold{fold}"

    @property
    def preds_dir(self) -> Path:  # every model's predictions; ensemble and evaluate depend on it whole
        return self.root / "preds"

    def pred_dir(self, model: str, fold: int) -> Path:  # predict: eval.npz, oof.npz
        return self.preds_dir / model / f"fold{fold}"

    @property
    def ensemble_dir(self) -> Path:  # ensemble: combined eval.npz, oof.npz (beside preds/, which it reads whole)
        return self.root / "ensemble"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"
