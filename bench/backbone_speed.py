"""Training images/s of the offline-weight backbones at candidate input sizes, side by side in one run.

    .venv/bin/python bench/backbone_speed.py --out bench/results/backbone_speed.json

Each configuration is the project's model (`maskcls.models.build_model`, multihead head, offline ImageNet
weights) trained with the project's step: channels_last input and model, AdamW, cross-entropy on the three
heads, batch 32, 2 torch threads, in portable CPU mode (repro.portable: true, as the pipeline runs). Rounds
alternate over all configurations so load from other processes falls on each alike; the figure is the median
step time over the timed steps of all rounds, and the ratio is against lite0 at 128x96 measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from maskcls import portable  # noqa: E402

portable.apply(True)  # before torch loads: the pipeline's CPU kernels

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from maskcls.models import build_model  # noqa: E402
from maskcls.params import ModelSpec  # noqa: E402

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SIZES = ((128, 96), (144, 108), (160, 128))
BATCH, THREADS = 32, 2


def make_step(backbone: str, size: tuple[int, int]):
    net = build_model(ModelSpec(head="multihead", backbone=backbone, pretrained="offline"), input_size=size)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, *size, generator=g).contiguous(memory_format=torch.channels_last)
    y = {"mask": torch.randint(0, 3, (BATCH,), generator=g), "gender": torch.randint(0, 2, (BATCH,), generator=g)}
    y["age"] = torch.randint(0, 3, (BATCH,), generator=g)

    def step() -> float:
        started = time.perf_counter()
        out = net(x)
        loss = sum(F.cross_entropy(out[k], y[k]) for k in y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - started

    return step


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbone_speed.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    configs = [(b, s) for b in BACKBONES for s in SIZES]
    steps = {c: make_step(*c) for c in configs}
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    load_start = os.getloadavg()[0]
    for c in configs:  # warm-up: first steps allocate and pick kernels
        steps[c]()
    for r in range(args.rounds):
        for c in configs if r % 2 == 0 else reversed(configs):
            times[c] += [steps[c]() for _ in range(args.steps)]
            print(f"round {r + 1}: {c[0]} {c[1][0]}x{c[1][1]}: {BATCH / statistics.median(times[c]):.1f} img/s",
                  file=sys.stderr)  # fmt: skip
    base = statistics.median(times[configs[0]])
    rows = [
        {
            "backbone": b,
            "input": list(s),
            "images_per_s": round(BATCH / statistics.median(times[(b, s)]), 1),
            "relative_to_lite0_128x96": round(base / statistics.median(times[(b, s)]), 3),
        }
        for b, s in configs
    ]
    result = {
        "method": __doc__.strip().splitlines()[0],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "load_start": load_start, "load_end": os.getloadavg()[0]},
        "config": {"batch": BATCH, "threads": THREADS, "rounds": args.rounds, "steps": args.steps,
                   "memory_format": "channels_last", "portable": True},
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        ratio = row["relative_to_lite0_128x96"]
        print(f"{row['backbone']:20s} {row['input']}: {row['images_per_s']:6.1f} img/s  x{ratio}")
    return result


if __name__ == "__main__":
    main()
