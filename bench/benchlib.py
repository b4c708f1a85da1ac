"""What the benchmark scripts share: the machine's description, a generated sample pipeline, fresh child
processes, a timed loader and a few statistics.

Every script measures its figures side by side in one run: the variants alternate round by round (the order
reversed every other round), each in a fresh process, so load from other work on the machine falls on all of
them alike, and a figure is a ratio of two variants of the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from maskcls import portable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The environment variables a measured child must not inherit from whoever started the benchmark: the CPU mode
# is set by each child itself (maskcls.portable), thread counts by its configuration.
CLEARED_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MASKCLS_CPU_MODE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
)


# --- the machine ------------------------------------------------------------------------------------------------


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine(load_start: float, note: str = "") -> dict:
    """CPU, cores, versions and the 1-minute load average at the start and end of the run."""
    import torch

    info = {
        "cpu": portable.cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_1min": {"start": load_start, "end": load_average()},
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    if note:
        info["note"] = note
    return info


# --- statistics -------------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def alternating(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, name) in the order the variants run: forward in even rounds, backward in odd ones."""
    for r in range(rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            yield r, name


# --- child processes --------------------------------------------------------------------------------------------


def child_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    env["MASKCLS_PROGRESS_SECONDS"] = env.get("MASKCLS_PROGRESS_SECONDS", "30")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def run_child(script: Path, config: dict, env: dict | None = None, timeout: float = 600) -> dict:
    """Run `script --child '<config json>'` in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, str(script), "--child", json.dumps(config)]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=child_env(env), timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["process_s"] = round(time.perf_counter() - start, 2)
    return out


# --- a generated sample, up to the cache ---------------------------------------------------------------------


def sample_params(people: int, eval_people: int, overrides: dict | None = None) -> dict:
    """params.yaml of this checkout for a generated sample at `root`: one model, one holdout split (a 5-fold
    split needs more people per stratum than a small sample has), the rest as the repository sets it."""
    from maskcls import params as params_mod

    data = params_mod.read_yaml(ROOT / "params.yaml")
    layers = [
        {
            "data": {"raw_dir": "data/sample"},
            "synth": {"people": people, "eval_people": eval_people, "seed": 0},
            "split": {"method": "holdout", "holdout_ratio": 0.2},
            "pipeline": {"folds": [0], "models": ["multihead"]},
        },
        overrides or {},
    ]
    for layer in layers:
        data = merged(data, layer)
    data["models"] = {"multihead": data["models"]["multihead"], **(overrides or {}).get("models", {})}
    return data


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def build_sample(root: Path, people: int, eval_people: int, overrides: dict | None = None) -> dict:
    """synth -> validate -> relabel_age -> split -> cache in `root` with the real stages; writes root/params.yaml.

    Must run under `if __name__ == "__main__"`: synth writes with a spawned process pool. Returns timings.
    """
    from maskcls import params as params_mod
    from maskcls.paths import Paths
    from maskcls.stages import cache, relabel, split, synth, validate

    root.mkdir(parents=True, exist_ok=True)
    data = sample_params(people, eval_people, overrides)
    params_mod.dump(data, root / "params.yaml")
    params = params_mod.load(root / "params.yaml")
    paths = Paths(root)
    raw = root / params.data.raw_dir
    times = {}
    start = time.perf_counter()
    synth.run(raw, people=params.synth.people, eval_people=params.synth.eval_people, seed=params.synth.seed)
    times["synth_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    with warnings.catch_warnings():  # the generated sample's duplicated id is reported on purpose
        warnings.simplefilter("ignore")
        validate.run(raw, out=paths.index_dir)
    relabel.run(params, root)
    split.run(params, root)
    meta = cache.run(params, root)
    times["index_to_cache_s"] = round(time.perf_counter() - start, 2)
    times["photos"] = dict(meta["counts"])
    return times


# --- timing a loop ----------------------------------------------------------------------------------------------


class TimedLoader:
    """Wraps a loader: yields at most `limit` of its batches and records, per batch, when the loop asked for it
    (`asked`) and when it arrived (`got`); `end` is when the loop asked for the batch after the last.

    Step i's wall time (its data wait included) is asked[i + 1] - asked[i]; asked[0] is when iteration began,
    so got[0] - asked[0] is the first batch's latency (worker start-up, with workers).
    """

    def __init__(self, loader: Iterable, limit: int | None = None, clock: Callable[[], float] = time.perf_counter):
        self.loader, self.limit, self.clock = loader, limit, clock
        self.asked: list[float] = []
        self.got: list[float] = []
        self.sizes: list[int] = []
        self.end: float | None = None

    def __len__(self) -> int:
        n = len(self.loader)  # type: ignore[arg-type]
        return n if self.limit is None else min(n, self.limit)

    def __iter__(self):
        self.asked.append(self.clock())
        it = iter(self.loader)
        for i, batch in enumerate(it):
            self.got.append(self.clock())
            first = batch[0] if isinstance(batch, list | tuple) else batch
            self.sizes.append(len(first))
            yield batch
            self.asked.append(self.clock())
            if self.limit is not None and i + 1 >= self.limit:
                break
        self.end = self.asked[-1]
        del it  # DataLoader workers are shut down here, not inside the timed window of the next loop

    def report(self) -> dict:
        """Per-step seconds (data wait included), the waits, and the first batch's latency."""
        steps = [b - a for a, b in zip(self.asked, self.asked[1:], strict=False)]
        waits = [g - a for a, g in zip(self.asked, self.got, strict=False)]
        return {
            "step_s": [round(s, 5) for s in steps],
            "wait_s": [round(w, 5) for w in waits],
            "images": self.sizes,
            "first_batch_s": round(waits[0], 4) if waits else None,
        }
