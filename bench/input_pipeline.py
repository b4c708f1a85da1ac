"""Cached input pipeline vs the usual per-image loader, side by side, on a generated sample (CPU).

    .venv/bin/python bench/input_pipeline.py --out bench/results/input_pipeline.json

Both loaders yield the same thing, uint8 (B, 3, 128, 96) batches with the same train augmentations, the same
DataLoader settings (2 workers, seeded shuffle) and the same `normalize` on the batch. The only difference is
where the photo comes from:
- cached: a row of data/cache/train.npy (decoded, cropped and resized once by `maskcls cache`);
- per-image: decode the photo file with PIL on every step, then albumentations CenterCrop + Resize.
So the comparison is conservative: the public per-image loaders also normalise to float in the workers,
which moves four times the bytes between processes.

Measured: images/s of each loader alone (one full epoch, worker start-up included, as every epoch pays it),
and images/s of full training steps (forward, backward, optimizer step) with the share of step time spent
blocked in `next(iterator)` waiting for data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from maskcls import artifacts, io, layout, portable, scan  # noqa: E402
from maskcls import params as params_mod  # noqa: E402
from maskcls.dataset import build_train_loader, loader_seed  # noqa: E402
from maskcls.params import MinorityParams, Params  # noqa: E402
from maskcls.paths import Paths  # noqa: E402
from maskcls.repro import derive_seed, generator  # noqa: E402
from maskcls.repro import worker_init_fn as seed_worker_globals  # noqa: E402
from maskcls.stages import cache, synth  # noqa: E402
from maskcls.transforms import build_transform, normalize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("per_image", "cached")


class PerImageDataset(Dataset):
    """The usual loader: decode the photo file and crop/resize it on every access."""

    def __init__(self, files: list[Path], targets: dict[str, np.ndarray], compose: A.Compose):
        self.files, self.targets, self.compose = files, targets, compose

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as img:
            image = np.asarray(img.convert("RGB"))
        image = self.compose(image=image)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, {k: int(v[i]) for k, v in self.targets.items()}


def per_image_worker_init(worker_id: int) -> None:
    seed_worker_globals(worker_id)
    info = torch.utils.data.get_worker_info()
    info.dataset.compose.set_random_seed(derive_seed(torch.initial_seed(), "augment"))


def per_image_loader(files, targets, params: Params, seed: int, epoch: int) -> DataLoader:
    c = params.cache
    crop = cache.scaled_crop_size(layout.IMAGE_SIZE, c.crop_size)
    steps = [
        A.CenterCrop(*crop),
        A.Resize(c.height, c.width, interpolation=cv2.INTER_AREA),
        *(build_transform(s) for s in params.aug.train),
    ]
    compose = A.Compose(steps, seed=derive_seed(seed, epoch), strict=True)
    return DataLoader(
        PerImageDataset(files, targets, compose),
        batch_size=params.train.batch_size,
        shuffle=True,
        generator=generator(loader_seed(seed, epoch)),
        num_workers=params.runtime.num_workers,
        worker_init_fn=per_image_worker_init,
        persistent_workers=False,
        drop_last=True,
    )


def prepare(work: Path, people: int, params: Params) -> tuple[Params, dict]:
    """Generate the sample, index it, build the cache; returns the params pointing at it and the cache timing."""
    raw = work / "data" / "sample"
    synth.run(raw, people=people, eval_people=max(1, people // 10), seed=0)
    index = Paths(work).index_dir
    artifacts.write_index(index, scan.load_train(raw), scan.load_eval(raw))
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, raw_dir=str(raw)))
    start = time.perf_counter()
    meta = cache.run(params, root=work)
    seconds = time.perf_counter() - start
    n = sum(meta["counts"].values())
    return params, {"images": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_loader(loader: DataLoader) -> dict:
    """One epoch: images/s from iter() (worker start-up included) and after the first batch, and the CPU
    time the workers spent per image (they are joined at the end of the epoch, so their usage is counted)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter()
    n_rest = sum(len(x) for x, _ in it)
    end = time.perf_counter()
    del it
    n = len(first[0]) + n_rest
    return {
        "worker_cpu_ms_per_image": round(1000 * (_children_cpu() - cpu) / n, 2),
        "images": n,
        "seconds": round(end - start, 3),
        "images_per_s": round(n / (end - start), 1),
        "first_batch_s": round(t_first - start, 3),
        "steady_images_per_s": round(n_rest / max(end - t_first, 1e-9), 1),
    }


class Trainer:
    """A model and optimizer that train on batches; times each step and the wait for its batch."""

    def __init__(self, name: str, device: torch.device):
        torch.manual_seed(0)
        self.device = device
        self.model = timm.create_model(name, pretrained=False, num_classes=layout.NUM_CLASSES).to(device).train()
        self.data_config = timm.data.resolve_data_config({}, model=self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.wait = self.total = 0.0
        self.images = self.steps = 0

    def run(self, loader: DataLoader, steps: int, warmup: int) -> None:
        """`warmup` untimed steps (worker start-up), then `steps` timed ones."""
        it = iter(loader)
        for step in range(warmup + steps):
            t0 = time.perf_counter()
            x, y = next(it)
            t1 = time.perf_counter()
            target = torch.as_tensor(layout.encode(y["mask"], y["gender"], y["age"])).to(self.device)
            logits = self.model(normalize(x.to(self.device), self.data_config))
            loss = torch.nn.functional.cross_entropy(logits, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()  # count the step's GPU time in the step, not in the next data wait
            t2 = time.perf_counter()
            if step >= warmup:
                self.wait += t1 - t0
                self.total += t2 - t0
                self.images += len(x)
                self.steps += 1

    def report(self) -> dict:
        return {
            "steps": self.steps,
            "images": self.images,
            "seconds": round(self.total, 3),
            "images_per_s": round(self.images / self.total, 1),
            "data_wait_s": round(self.wait, 3),
            "data_wait_share": round(self.wait / self.total, 4),
        }


def time_training(make, name: str, device: torch.device, rounds: int, steps: int, warmup: int) -> dict:
    """Both pipelines train their own copy of the model, alternating in short rounds so that load from other
    processes on the machine falls on both alike."""
    trainers = {kind: Trainer(name, device) for kind in KINDS}
    for r in range(rounds):
        for kind in KINDS:
            trainers[kind].run(make(kind, 100 + r), steps, warmup)
    result = {kind: t.report() for kind, t in trainers.items()}
    result["speedup"] = round(result["cached"]["images_per_s"] / result["per_image"]["images_per_s"], 2)
    print(f"train {name}: {result}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/input_pipeline.json")
    ap.add_argument("--people", type=int, default=100, help="train people in the generated sample (7 photos each)")
    ap.add_argument(
        "--models",
        default="test_efficientnet",
        help="timm models for the training steps, comma-separated (a tiny fast one shows the loader's share most "
        "clearly on a CPU; bench/train_throughput.py measures the project's backbone through the trainer)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--loader-epochs", type=int, default=2, help="loader-only epochs per pipeline")
    ap.add_argument("--rounds", type=int, default=3, help="training rounds, alternating the pipelines")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps per round")
    ap.add_argument("--warmup-steps", type=int, default=1, help="untimed steps at the start of each round")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    base = params_mod.load(ROOT / "params.yaml")
    train = dataclasses.replace(base.train, batch_size=args.batch_size, minority=MinorityParams(mode="none"))
    runtime = dataclasses.replace(base.runtime, num_workers=args.workers)
    params = dataclasses.replace(base, train=train, runtime=runtime)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-") as tmp:
        work = Path(tmp)
        params, cache_build = prepare(work, args.people, params)
        index = scan.load_train(Path(params.data.raw_dir))
        rows = index["row"].to_numpy()
        targets = {
            "mask": index["mask"].to_numpy(),
            "gender": index["gender"].to_numpy(),
            "age": layout.age_to_label(index["age"].to_numpy()),
        }
        files = [Path(params.data.raw_dir) / f for f in index["file"]]
        images = artifacts.open_cache(Paths(work).cache_dir, "train", expected_rows=len(rows))

        def make(kind: str, epoch: int) -> DataLoader:
            if kind == "cached":
                return build_train_loader(images, rows, targets, params, args.seed, epoch)
            return per_image_loader(files, targets, params, args.seed, epoch)

        loader = {k: [] for k in KINDS}
        for epoch in range(args.loader_epochs):  # interleaved, so a noisy neighbour hits both alike
            for kind in KINDS:
                loader[kind].append(time_loader(make(kind, epoch)))
                print(f"loader {kind} epoch {epoch}: {loader[kind][-1]}", file=sys.stderr)

        device = torch.device(args.device)
        trained = {
            name: time_training(make, name, device, args.rounds, args.train_steps, args.warmup_steps)
            for name in args.models.split(",")
        }

    def mean(kind: str, key: str) -> float:
        return round(float(np.mean([r[key] for r in loader[kind]])), 1)

    result = {
        "command": "python bench/input_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu": portable.cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
            "note": "shared machine: other processes ran beside the benchmark",
        },
        "config": {
            "people": args.people,
            "train_images": len(rows),
            "image_size": [params.cache.height, params.cache.width],
            "crop": params.cache.crop,
            "augment": [s.name for s in params.aug.train],
            "models": args.models.split(","),
            "device": args.device,
            "batch_size": args.batch_size,
            "num_workers": args.workers,
            "loader_epochs": args.loader_epochs,
            "train_rounds": args.rounds,
            "timed_steps_per_round": args.train_steps,
            "warmup_steps_per_round": args.warmup_steps,
        },
        "cache_build": cache_build,
        "loader": {
            kind: {
                "epochs": loader[kind],
                "images_per_s": mean(kind, "images_per_s"),
                "steady_images_per_s": mean(kind, "steady_images_per_s"),
                "worker_cpu_ms_per_image": round(
                    float(np.mean([r["worker_cpu_ms_per_image"] for r in loader[kind]])), 2
                ),
            }
            for kind in KINDS
        },
        "train": trained,
    }
    result["loader"]["speedup"] = round(mean("cached", "images_per_s") / mean("per_image", "images_per_s"), 2)
    result["targets"] = {
        "loader_speedup_at_least_3x": result["loader"]["speedup"] >= 3,
        "cached_data_wait_below_10pct": all(t["cached"]["data_wait_share"] < 0.10 for t in trained.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("loader", "train", "targets")}, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
