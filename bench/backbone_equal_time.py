"""EfficientNet-Lite0, Lite1 and Lite2 trained for the same wall time each: holdout macro F1 and epochs reached.

    .venv/bin/python bench/backbone_equal_time.py                   # by hand, not part of make bench: ~15 minutes
    .venv/bin/python bench/backbone_equal_time.py --budget-s 10 --people 20 --out /tmp/eq.json   # a check

A faster backbone fits more epochs into the same time; this asks which one scores best when time, not epochs,
is what is fixed. Data: the repository's `data/` after `dvc repro` (its cache, labels and split, params.yaml as
it is), or with `--people N`, or when data/ is incomplete, a generated sample in a temporary folder.

Each backbone trains in a fresh process (the CPU mode of runtime.portable is set before torch is imported) with
the recipe of params.yaml for `models.multihead`, only the backbone changed, through the project's own loop
(`maskcls.training.loop`: build_job, run_epoch, validation on the held-out fold every epoch). The number of
epochs is fitted to the budget first, so each schedule (warm-up, cosine decay) runs to its end: a probe times a
few training steps and one validation pass, and train.epochs = 1.1 x budget / estimated epoch time (at least 1). An
epoch is not started when the epochs so far say it would end more than 10% past the budget. The best epoch's
weights (by validation macro F1, as the train stage keeps them) then predict the eval photos
(`predict_probabilities` with predict.tta) and are scored against the generated sample's eval labels with
`maskcls.metrics`: the holdout macro F1. The figures are from one run each: two runs of one backbone differ
by the run-to-run noise of a small validation set, which this script does not measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODEL = "multihead"
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# Timed probe steps, after PROBE_WARMUP untimed ones: a bigger backbone's first steps run up to 1.5x slower than
# the rest (its kernels are set up), and a probe of 4 steps planned Lite1 3 epochs where 5 fitted.
PROBE_WARMUP = 3
PROBE_STEPS = 6
GRACE = 1.1  # an epoch may end up to 10% past the budget, so that a slightly optimistic probe keeps the schedule


def repo_data_ready(root: Path) -> bool:
    from maskcls import params as params_mod
    from maskcls.paths import Paths

    paths = Paths(root)
    params = params_mod.load(root / "params.yaml")
    needed = [paths.cache_dir / "train.npy", paths.cache_dir / "eval.npy", paths.labels_dir / f"{MODEL}.csv",
              paths.labels_dir / "truth.csv", paths.folds]  # fmt: skip
    return MODEL in params.models and all(p.exists() for p in needed)


def child(cfg: dict) -> dict:
    """Train one backbone for the budget; the last stdout line is the result."""
    from maskcls import params as params_mod
    from maskcls import portable

    root = Path(cfg["root"])
    portable.apply(params_mod.load(root / "params.yaml").runtime.portable)  # before torch is imported
    import numpy as np
    import torch

    from maskcls import artifacts, metrics
    from maskcls.paths import Paths
    from maskcls.repro import cpu_threads
    from maskcls.stages.predict import batches
    from maskcls.training import loop
    from maskcls.training.checkpoint import State
    from maskcls.training.inference import predict_probabilities

    base = params_mod.load(root / "params.yaml")
    spec = dataclasses.replace(base.model(MODEL), backbone=cfg["backbone"])
    base = dataclasses.replace(base, models={**base.models, MODEL: spec}).for_model(MODEL)
    paths, fold = Paths(root), cfg["fold"]

    def with_epochs(epochs: int):
        train = dataclasses.replace(base.train, epochs=epochs, warmup_epochs=min(base.train.warmup_epochs, epochs - 1))
        return dataclasses.replace(base, train=train)

    with cpu_threads(base.runtime.threads):
        # The probe: a few steps and one validation pass of a throw-away job.
        started = time.perf_counter()
        job = loop.build_job(with_epochs(1), MODEL, fold, paths)
        data = job.data
        train_loader = job.train_loader.epoch(0)
        steps_per_epoch = len(train_loader)
        weights = loop.start_epoch(job.net, 0, 1)
        timed = benchlib.TimedLoader(train_loader, limit=PROBE_WARMUP + PROBE_STEPS)
        loop.train_one_epoch(
            job.trainee, timed, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema, job.rt,
            job.net.data_config, 0, "probe",
        )  # fmt: skip
        probe_steps = timed.report()["step_s"]
        step_s = benchlib.median(probe_steps[PROBE_WARMUP:] or probe_steps[-1:])  # a tiny sample has fewer steps
        start_s = max(0.0, probe_steps[0] - step_s)  # an epoch's first step also starts the loader's workers
        t = time.perf_counter()
        net, config = job.net, job.net.data_config
        loop.evaluate(net, job.val_loader, job.losses, data.val_truth, data.val_targets, job.rt, config)
        val_s = time.perf_counter() - t
        estimate = start_s + steps_per_epoch * step_s + val_s
        # As many epochs as the stopping rule below lets run: up to GRACE x the budget.
        epochs = max(1, math.floor(GRACE * cfg["budget_s"] / estimate))
        probe = {"seconds": round(time.perf_counter() - started, 1), "step_s": round(step_s, 3),
                 "epoch_start_s": round(start_s, 2), "val_s": round(val_s, 2),
                 "epoch_s_estimate": round(estimate, 1)}  # fmt: skip
        print(f"{cfg['backbone']}: probe {probe}: {epochs} epochs in {cfg['budget_s']} s", file=sys.stderr)
        del job, train_loader, timed

        # The run: the schedule of `epochs` epochs, stopped early only if the budget runs out.
        params = with_epochs(epochs)
        started = time.perf_counter()
        job = loop.build_job(params, MODEL, fold, paths)
        state = State()
        epoch_s: list[float] = []
        while not loop.should_stop(params.train, state):
            elapsed = time.perf_counter() - started
            if epoch_s and elapsed + benchlib.median(epoch_s) > GRACE * cfg["budget_s"]:
                break  # the budget is spent: the schedule stops short (reported)
            t = time.perf_counter()
            record, improved = loop.run_epoch(job, state)
            epoch_s.append(time.perf_counter() - t)
            seconds = epoch_s[-1]
            print(loop.summary_line(job.name, epochs, record, job.select, improved, seconds), file=sys.stderr)
        trained_s = time.perf_counter() - started

        # The best epoch's weights on the eval photos.
        job.scored.load_state_dict(state.best_weights)
        size = (params.cache.height, params.cache.width)
        images = artifacts.open_cache(paths.cache_dir, "eval", expected_size=size)
        rows = np.arange(len(images), dtype=np.int64)
        probs = predict_probabilities(
            job.scored, batches(images, rows, params.predict.batch_size), job.rt, job.net.data_config,
            list(params.predict.tta),
        )  # fmt: skip
    truth = artifacts.read_eval_truth(root / params.data.raw_dir)
    pred = probs["class18"].argmax(axis=1)
    holdout = None
    if truth is not None:
        holdout = {"f1": round(metrics.macro_f1(truth, pred), 4), "accuracy": round(metrics.accuracy(truth, pred), 4)}
    return {
        "backbone": cfg["backbone"],
        "budget_s": cfg["budget_s"],
        "probe": probe,
        "epochs_planned": epochs,
        "epochs_reached": state.epoch,
        "schedule_completed": state.epoch >= epochs,
        "training_s": round(trained_s, 1),
        "epoch_s": [round(s, 1) for s in epoch_s],
        "steps_per_epoch": steps_per_epoch,
        "best_epoch": state.best_epoch,
        "val_f1": round(state.best_score, 4),
        "holdout": holdout,
        "eval_photos": len(rows),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "backbone_equal_time.json")
    ap.add_argument("--budget-s", type=float, default=240, help="training seconds per backbone (epochs fitted)")
    ap.add_argument("--people", type=int, help="train on a generated sample of this many people, not data/")
    ap.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated timm names")
    ap.add_argument("--fold", type=int, help="fold to hold out (default: the first of pipeline.folds)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return {}

    from maskcls import params as params_mod

    load_start = benchlib.load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-equal-time-") as tmp:
        if args.people is None and repo_data_ready(benchlib.ROOT):
            root, source = benchlib.ROOT, "data/ of the repository (params.yaml as it is)"
        else:
            people = args.people or 60
            root = Path(tmp)
            benchlib.build_sample(root, people, max(2, people // 3))
            source = f"a generated sample of {people} people (holdout split), params.yaml otherwise"
        params = params_mod.load(root / "params.yaml")
        fold = args.fold if args.fold is not None else params.pipeline.folds[0]
        runs = []
        for backbone in args.backbones.split(","):
            cfg = {"root": str(root), "backbone": backbone, "budget_s": args.budget_s, "fold": fold}
            runs.append(benchlib.run_child(Path(__file__), cfg, timeout=3 * args.budget_s + 900))
            print(f"{backbone}: {runs[-1]}", file=sys.stderr, flush=True)
    scored = [r for r in runs if r["holdout"]]
    best = max(scored, key=lambda r: r["holdout"]["f1"])["backbone"] if scored else None
    result = {
        "command": "python bench/backbone_equal_time.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": benchlib.machine(load_start, "shared machine: other processes may have run beside the benchmark"),
        "config": {
            "data": source,
            "fold": fold,
            "budget_s": args.budget_s,
            "input": [params.cache.height, params.cache.width],
            "recipe": f"models.{MODEL} and train of params.yaml, the backbone changed; epochs fitted to the budget",
        },
        "runs": runs,
        "best_holdout_f1": best,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
