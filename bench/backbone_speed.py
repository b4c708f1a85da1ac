"""Training images/s of the offline-weight backbones at the default input size, side by side in one run.

    .venv/bin/python bench/backbone_speed.py --out bench/results/backbone_speed.json

Each backbone is the project's model (`maskcls.models.build_model`, the multihead head, offline ImageNet weights)
at the input size of params.yaml (cache.height x cache.width) trained with the project's step: channels_last
input and model, fused AdamW, cross-entropy on the three heads, train.batch_size, runtime.threads torch threads,
in the CPU mode of runtime.portable (as the pipeline runs). Rounds alternate over the backbones (the order
reversed every other round) so load from other processes falls on each alike; the figure is the median step
time over the timed steps of all rounds, and the ratio is against efficientnet_lite0 measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from maskcls import params as params_mod  # noqa: E402
from maskcls import portable  # noqa: E402

PARAMS = benchlib.ROOT / "params.yaml"
PORTABLE = portable.apply_from_params(PARAMS)  # before torch loads: the pipeline's CPU kernels

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from maskcls.models import build_model  # noqa: E402
from maskcls.params import ModelSpec  # noqa: E402

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def make_step(backbone: str, size: tuple[int, int], batch: int):
    net = build_model(ModelSpec(head="multihead", backbone=backbone, pretrained="offline"), input_size=size)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *size, generator=g).contiguous(memory_format=torch.channels_last)
    y = {"mask": torch.randint(0, 3, (batch,), generator=g), "gender": torch.randint(0, 2, (batch,), generator=g)}
    y["age"] = torch.randint(0, 3, (batch,), generator=g)

    def step() -> float:
        started = time.perf_counter()
        out = net(x)
        loss = sum(F.cross_entropy(out[k], y[k]) for k in y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - started

    return step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "backbone_speed.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per backbone and round")
    ap.add_argument("--quick", action="store_true", help="one round of one step: a check of the script")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 1
    params = params_mod.load(PARAMS)
    size = (params.cache.height, params.cache.width)
    batch, threads = params.train.batch_size, params.runtime.threads
    load_start = benchlib.load_average()
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    steps = {b: make_step(b, size, batch) for b in BACKBONES}
    times: dict[str, list[float]] = {b: [] for b in BACKBONES}
    for b in BACKBONES:  # warm-up: first steps allocate and pick kernels
        steps[b]()
    for r, b in benchlib.alternating(BACKBONES, args.rounds):
        times[b] += [steps[b]() for _ in range(args.steps)]
        print(f"round {r + 1}: {b}: {batch / benchlib.median(times[b]):.1f} img/s", file=sys.stderr)
    base = benchlib.median(times[BACKBONES[0]])
    rows = [
        {
            "backbone": b,
            "images_per_s": round(batch / benchlib.median(times[b]), 1),
            "relative_to_lite0": round(base / benchlib.median(times[b]), 3),
            "step_s": [round(t, 4) for t in times[b]],
        }
        for b in BACKBONES
    ]
    result = {
        "command": "python bench/backbone_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "method": __doc__.strip().splitlines()[0],
        "machine": benchlib.machine(load_start, "shared machine: other processes may have run beside the benchmark"),
        "config": {"input": list(size), "batch": batch, "threads": torch.get_num_threads(), "rounds": args.rounds,
                   "steps": args.steps, "memory_format": "channels_last", "portable": PORTABLE,
                   "capability": torch.backends.cpu.get_cpu_capability()},
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['backbone']:20s} {row['images_per_s']:6.1f} img/s  x{row['relative_to_lite0']}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
