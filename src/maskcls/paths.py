"""Where every stage reads and writes, relative to the repository root. dvc.yaml names the same paths.

`round` 2 is the pseudo-label round (pseudo/dvc.yaml, docs/beyond.md): it reads the same data (index, labels, folds,
cache) and the pseudo-labels, and keeps every result of its own (models, curves, checkpoints, predictions,
ensemble, submission, metrics) under `pseudo/`, outside the first round's folders: the first round's ensemble and
evaluate depend on the whole `preds/` folder, and its ensemble removes there what it did not train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROUNDS = (1, 2)
PSEUDO_DIR = "pseudo"  # the pseudo-label round: its pipeline file, its labels and every result of its own


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")
    round: int = 1  # 1: the pipeline (dvc.yaml); 2: the pseudo-label round (pseudo/dvc.yaml)

    def __post_init__(self):
        if self.round not in ROUNDS:
            raise ValueError(f"round must be one of {ROUNDS}, got {self.round!r}")

    @property
    def results(self) -> Path:
        """The folder this round's results go under: the root, or pseudo/ for the second round."""
        return self.root if self.round == 1 else self.root / PSEUDO_DIR

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

    @property
    def pseudo_labels_dir(self) -> Path:  # pseudo_label (pseudo/dvc.yaml): labels.csv, summary.json; round 2 reads it
        return self.root / PSEUDO_DIR / "labels"

    def model_dir(self, model: str, fold: int) -> Path:
        return self.results / "models" / model / f"fold{fold}"

    def live_dir(self, model: str, fold: int) -> Path:  # DVCLive curves and confusion matrices
        return self.results / "dvclive" / f"{model}-fold{fold}"

    def checkpoint_dir(self, model: str, fold: int) -> Path:
        # Outside the stage's outputs: DVC deletes outputs before a re-run, a resumable checkpoint must survive it.
        base = self.root / ".maskcls" / "checkpoints"
        return (base if self.round == 1 else base / f"round{self.round}") / f"{model}-fold{fold}"

    @property
    def preds_dir(self) -> Path:  # every model's predictions; ensemble and evaluate depend on it whole
        return self.results / "preds"

    def pred_dir(self, model: str, fold: int) -> Path:  # predict: eval.npz, oof.npz
        return self.preds_dir / model / f"fold{fold}"

    @property
    def ensemble_dir(self) -> Path:  # ensemble: combined eval.npz, oof.npz (beside preds/, which it reads whole)
        return self.results / "ensemble"

    @property
    def submissions(self) -> Path:
        return self.results / "submissions"

    @property
    def metrics_dir(self) -> Path:
        return self.results / "metrics"
