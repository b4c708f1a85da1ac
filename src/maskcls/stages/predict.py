"""Probabilities of one trained model for every eval photo and for its held-out (out-of-fold) train photos.

Inputs come from the same cache as training and pass through the same `normalize` with the data config saved
in the checkpoint, so inference cannot drift from training (size, crop, mean/std). Test-time augmentation
averages probabilities over deterministic views only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from maskcls import io
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.progress import progress
from maskcls.repro import cpu_threads
from maskcls.stages.cache import open_cache
from maskcls.stages.split import read_folds
from maskcls.transforms import normalize

VIEWS = {
    "none": lambda x: x,
    "hflip": lambda x: torch.flip(x, dims=[3]),  # NCHW: flip width
}


def oof_rows(root: Path, fold: int) -> np.ndarray:
    """Index rows of the train photos whose person is validated in `fold`."""
    paths = Paths(root)
    truth_csv = io.require(paths.labels_dir / "truth.csv", "run relabel_age first (dvc repro relabel_age)")
    truth = pd.read_csv(truth_csv, dtype={"person": str})
    folds = read_folds(root)
    held_out = set(folds.loc[folds.fold == fold, "person"])
    return truth.loc[truth.person.isin(held_out), "row"].to_numpy(dtype=np.int64)


@torch.no_grad()
def predict_arrays(
    net,
    data_config: dict,
    images: np.ndarray,
    rows: np.ndarray,
    views: list[str],
    batch_size: int,
    device: torch.device,
    embeddings: bool = False,
    desc: str = "predict",
) -> dict[str, np.ndarray]:
    """Average per-task and 18-class probabilities over TTA views; optionally pooled backbone features."""
    net.eval().to(device)
    chunks: dict[str, list[np.ndarray]] = {}
    starts = range(0, len(rows), batch_size)
    for start in progress(starts, desc, size=lambda start: len(rows[start : start + batch_size])):
        batch = torch.from_numpy(np.ascontiguousarray(images[rows[start : start + batch_size]]))
        x = normalize(batch.permute(0, 3, 1, 2).to(device), data_config)
        summed: dict[str, torch.Tensor] = {}
        for view in views:
            probs = net.probabilities(net(VIEWS[view](x)))
            for key, value in probs.items():
                summed[key] = summed.get(key, 0) + value.float()
        for key, value in summed.items():
            chunks.setdefault(key, []).append((value / len(views)).cpu().numpy())
        if embeddings:
            chunks.setdefault("embeddings", []).append(net.features(x).float().cpu().numpy())
    return {key: np.concatenate(parts) for key, parts in chunks.items()}


def run(params: Params, model: str, fold: int, root: Path = Path(".")) -> None:
    from maskcls.stages.train import load_model, resolve_device

    paths = Paths(root)
    net, data_config = load_model(paths.model_dir(model, fold))
    device = resolve_device(params.train.device)
    out_dir = paths.pred_dir(model, fold)
    size = (params.cache.height, params.cache.width)
    eval_images = open_cache(paths.cache_dir, "eval", expected_size=size)
    train_images = open_cache(paths.cache_dir, "train", expected_size=size)
    jobs = {
        "eval": (eval_images, np.arange(len(eval_images), dtype=np.int64)),
        "oof": (train_images, oof_rows(root, fold)),
    }
    # Inference kernels too pick their blocking by thread count (seen on small last batches): same threads as train.
    with io.atomic_path(out_dir) as tmp, cpu_threads(params.train.threads):
        tmp.mkdir(parents=True)
        for name, (images, rows) in jobs.items():
            arrays = predict_arrays(
                net,
                data_config,
                images,
                rows,
                list(params.predict.tta),
                params.predict.batch_size,
                device,
                embeddings=params.predict.embeddings,
                desc=f"predict {model} fold{fold} {name}",
            )
            io.save_npz(tmp / f"{name}.npz", rows=rows, **arrays)
    print(f"predict: {model} fold{fold}: {len(jobs['eval'][1])} eval, {len(jobs['oof'][1])} out-of-fold photos")
