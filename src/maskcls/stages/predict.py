"""Probabilities of one trained model for every eval photo and for its held-out (out-of-fold) train photos.

Inputs come from the same cache as training and pass through the same inference loop as validation
(`maskcls.training.inference`: normalisation with the data config saved in the checkpoint, the runtime's device,
precision and memory format), so inference cannot drift from training. Test-time augmentation averages
probabilities over deterministic views only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from maskcls import artifacts
from maskcls.models import load_trained
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.progress import progress
from maskcls.repro import cpu_threads
from maskcls.training.inference import predict_probabilities
from maskcls.training.runtime import actionable_errors, runtime


def oof_rows(paths: Paths, fold: int) -> np.ndarray:
    """Index rows of the train photos whose person is validated in `fold`."""
    truth = artifacts.read_truth(paths.labels_dir)
    folds = artifacts.read_folds(paths.folds)
    held_out = set(folds.loc[folds.fold == fold, "person"])
    return truth.loc[truth.person.isin(held_out), "row"].to_numpy(dtype=np.int64)


def batches(images: np.ndarray, rows: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 NCHW batches of `images[rows]` (a view of the NHWC cache, no copy of the layout)."""
    for start in range(0, len(rows), batch_size):
        yield torch.from_numpy(np.ascontiguousarray(images[rows[start : start + batch_size]])).permute(0, 3, 1, 2)


def run(params: Params, model: str, fold: int, root: Path = Path("."), round: int = 1) -> None:
    """`round` 2: the pseudo-label round's model, predictions under pseudo/ (the same photos as the first round's)."""
    paths = Paths(root, round)
    rt = runtime(params)
    net = rt.place(load_trained(paths.model_dir(model, fold)))
    size = (params.cache.height, params.cache.width)
    eval_images = artifacts.open_cache(paths.cache_dir, "eval", expected_size=size)
    train_images = artifacts.open_cache(paths.cache_dir, "train", expected_size=size)
    jobs = {
        "eval": (eval_images, np.arange(len(eval_images), dtype=np.int64)),
        "oof": (train_images, oof_rows(paths, fold)),
    }
    batch_size = params.predict.batch_size
    results = {}
    # Inference kernels too pick their blocking by thread count (seen on small last batches): same threads as train.
    with cpu_threads(params.runtime.threads), actionable_errors(f"predict {model} fold{fold}", batch_size, rt.device):
        for name, (images, rows) in jobs.items():
            desc = f"predict {model} fold{fold} {name}"
            arrays = predict_probabilities(
                net,
                progress(batches(images, rows, batch_size), desc, total=-(-len(rows) // batch_size), size=len),
                rt,
                net.data_config,
                list(params.predict.tta),
                embeddings=params.predict.embeddings,
            )
            results[name] = {"rows": rows, **arrays}
    artifacts.write_predictions(paths.pred_dir(model, fold), results)
    which = f" round {round}" if round > 1 else ""
    print(f"predict: {model} fold{fold}{which}: {len(jobs['eval'][1])} eval, {len(jobs['oof'][1])} out-of-fold photos")
