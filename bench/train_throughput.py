"""The project's trainer and predictor against bare PyTorch loops, side by side, and what makes the difference (CPU).

    .venv/bin/python bench/train_throughput.py --out bench/results/train_throughput.json
    .venv/bin/python bench/train_throughput.py --quick --out /tmp/tt.json     # a check of the script, ~2 minutes

Training: the same model (`models.multihead` of params.yaml through `maskcls.models.build_model`), the params'
input size (cache.height x cache.width), batch size and thread count.
- bare: a plain loop over pre-made float tensors (already normalised, in RAM): model(x), cross-entropy per head,
  backward, torch.optim.AdamW (its default kernel), native CPU kernels, NCHW; `bare_cl`: the same, channels_last.
- trainer: what `maskcls train` runs: a Job from `maskcls.training.loop.build_job` on a generated sample (the
  params' augmentations and minority resampling, runtime.num_workers, runtime.threads, runtime.deterministic,
  runtime.portable, runtime.channels_last), each epoch of the job's `TrainLoader` (as `run_epoch` asks), and the
  project's `train_one_epoch` itself (progress, per-step `loss.item()`).
- trainer_*: the trainer with one thing changed, to size each cause of the difference; grid_t<T>_w<W>: the trainer
  with runtime.threads T and runtime.num_workers W.

Prediction: `maskcls.training.inference.predict_probabilities` over the predict stage's batches
(`maskcls.stages.predict.batches`, predict.batch_size, TTA predict.tta), against a bare `torch.no_grad()` loop
doing the same forward passes and softmaxes on pre-made float tensors.

How it is measured, in lockstep: every variant of a group is its own fresh process (portable mode must be in
place before torch is imported; deterministic-algorithm and thread settings are per process), all started
together; then the parent lets them take one step at a time in turn (the order reversed every other cycle), so
each variant's steps run right beside the others' and load from other work falls on all alike. A process
waiting for its turn does nothing (its DataLoader workers may finish prefetching a batch). The loop under test is
unchanged: a gate in its loader blocks before each batch until the parent says go, and times the step from the
request for its batch to the request for the next (data wait included). Epochs are cut at `--epoch-steps` so
that the timed window holds epoch starts (the first batch of an epoch; loader workers start in the first); their
extra time is reported on its own and amortised over an epoch of the default sample. `trainer_again` repeats
the trainer in the same group: its figure shows the noise, and its weights' md5 whether the trainer gives the
same bytes twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODEL = "multihead"
RUNTIME_KEYS = ("threads", "num_workers", "channels_last", "deterministic", "portable")
# --tiny: timm's tiny test_efficientnet at 32x24, no pretrained weights: checks the script's logic in seconds.
TINY = {
    "cache": {"height": 32, "width": 24},
    "models": {"multihead": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"}},
}


# --- the variants ----------------------------------------------------------------------------------------------
# A variant's configuration is relative to the defaults (`runtime` of params.yaml) and resolved in the parent:
# every child gets explicit values. `fill`: None leaves torch.utils.deterministic.fill_uninitialized_memory as
# maskcls.repro.set_deterministic sets it; True or False forces it.


def train_variants(d: dict) -> dict[str, tuple[dict, str]]:
    """name -> (configuration, what it changes), for the defaults `d` (threads, num_workers, ...)."""
    trainer = {"kind": "train", **d, "aug": True, "lean": False, "fill": None, "env": {}}
    bare = {"kind": "bare_train", "portable": False, "channels_last": False, "threads": d["threads"]}
    layout = "NCHW" if d["channels_last"] else "channels_last"
    out = {
        "bare": (bare, "bare loop: native CPU kernels, NCHW, float tensors in RAM"),
        "bare_cl": ({**bare, "channels_last": True}, "bare loop, channels_last"),
        "bare_cl_same": (
            {**bare, "channels_last": True, "portable": d["portable"], "deterministic": d["deterministic"]},
            "bare loop, channels_last, with the trainer's CPU settings "
            f"(runtime.portable {str(d['portable']).lower()}, runtime.deterministic {str(d['deterministic']).lower()})",
        ),
        "trainer": (trainer, "the trainer as params.yaml sets it"),
        "trainer_native": (
            {**trainer, "portable": False, "deterministic": False},
            "the trainer with the bare loop's CPU settings (runtime.portable false, runtime.deterministic false)",
        ),
        "trainer_again": (trainer, "the trainer again (noise; the same bytes twice?)"),
        "trainer_fill": (
            {**trainer, "deterministic": True, "fill": True},
            "deterministic, with the NaN fill of new tensors (torch's default; maskcls turns it off)",
        ),
        "trainer_layout": ({**trainer, "channels_last": not d["channels_last"]}, f"{layout} input and model"),
        "trainer_kernels": (
            {**trainer, "portable": not d["portable"]},
            "native CPU kernels (runtime.portable: false)" if d["portable"] else "portable CPU kernels",
        ),
        "trainer_nondet": (
            {**trainer, "deterministic": not d["deterministic"]},
            f"runtime.deterministic: {str(not d['deterministic']).lower()}",
        ),
        "trainer_noaug": ({**trainer, "aug": False}, "no augmentation (aug.train and aug.minority empty)"),
        "trainer_lean": ({**trainer, "lean": True}, "the loop without its progress and per-step loss.item()"),
    }
    for t, w in GRID:
        out[grid_name(t, w)] = ({**trainer, "threads": t, "num_workers": w}, f"threads {t}, num_workers {w}")
    return out


def predict_variants(d: dict) -> dict[str, tuple[dict, str]]:
    predictor = {"kind": "predict", **d, "deterministic": False}  # the predict stage leaves them off
    bare = {"kind": "bare_predict", "portable": False, "channels_last": False, "threads": d["threads"]}
    return {
        "bare_predict": (bare, "bare no_grad loop: native CPU kernels, NCHW, float tensors in RAM"),
        "bare_predict_cl": ({**bare, "channels_last": True}, "bare loop, channels_last"),
        "bare_predict_same": (
            {**bare, "channels_last": True, "portable": d["portable"]},
            "bare loop, channels_last, with the predict stage's CPU kernels "
            f"(runtime.portable {str(d['portable']).lower()})",
        ),
        "predict": (predictor, "predict_probabilities as the predict stage runs it"),
        "predict_again": (predictor, "the same again (noise; the same bytes twice?)"),
        "predict_kernels": (
            {**predictor, "portable": not d["portable"]},
            "native CPU kernels (runtime.portable: false)" if d["portable"] else "portable CPU kernels",
        ),
    }


GRID = [(t, w) for t in (1, 2) for w in (0, 1, 2)]


def grid_name(threads: int, workers: int) -> str:
    return f"grid_t{threads}_w{workers}"


# Each group runs in lockstep (each process holds its own torch, model and activations: 1-2 GB). The first holds
# the bare loops; every other holds the trainer, so each variant is compared with the trainer measured beside it.
GROUPS: dict[str, list[str]] = {
    "reference": ["bare", "bare_cl", "bare_cl_same", "trainer", "trainer_again", "trainer_native"],
    "causes": ["trainer", "trainer_layout", "trainer_kernels", "trainer_nondet", "trainer_noaug", "trainer_lean"]
    + ["trainer_fill"],
    "workers_threads": [grid_name(t, w) for t, w in GRID],
}
PREDICT_GROUP = ["bare_predict", "bare_predict_cl", "bare_predict_same", "predict", "predict_again", "predict_kernels"]
QUICK_GROUPS = {"reference": ["bare", "trainer", "trainer_again"]}
QUICK_PREDICT = ["bare_predict", "predict"]


# --- child processes: one variant each, a step at a time -------------------------------------------------------


class Gate:
    """The child's end of the lockstep: `go()` blocks until the parent says `step` (True) or `finish` (False)."""

    def __init__(self, commands, results):
        self.commands, self.results, self.finished = commands, results, False

    def go(self) -> bool:
        if not self.finished:
            line = self.commands.readline()
            self.finished = not line or line.strip() != "step"
        return not self.finished

    def send(self, record: dict) -> None:
        self.results.write(json.dumps(record) + "\n")
        self.results.flush()


def _cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def gated(batches, gate: Gate, limit: int | None = None, carried: dict | None = None):
    """Yield `batches`, one per `step` from the parent, at most `limit`; report each step's timing.

    A step's time runs from the request for its batch to the request for the next: the data wait (for an epoch's
    first batch, the DataLoader's worker start-up too: `iter()` is called inside the step), the loop body and the
    loop's own per-step work. `carried`: what the previous epoch's end cost (worker shutdown), reported with this
    epoch's first step.
    """
    it = None
    n = 0
    try:
        while (limit is None or n < limit) and gate.go():
            cpu0, t0 = _cpu_s(), time.perf_counter()
            if it is None:
                it = iter(batches)
            batch = next(it)
            t1 = time.perf_counter()
            yield batch
            t2 = time.perf_counter()
            record = {"step_s": t2 - t0, "wait_s": t1 - t0, "cpu_s": _cpu_s() - cpu0, "epoch_start": n == 0}
            if n == 0 and carried:
                record |= carried
            gate.send(record)
            n += 1
    finally:
        t = time.perf_counter()
        del it  # a DataLoader's workers are shut down here: the cost of an epoch's end
        if carried is not None:
            carried.clear()
            carried["previous_epoch_end_s"] = time.perf_counter() - t


def _weights_md5(net) -> str:
    md5 = hashlib.md5()
    for tensor in net.state_dict().values():
        md5.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return md5.hexdigest()


def _rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _params(root: Path, cfg: dict):
    """The sample's params as model MODEL trains with them, on the CPU, with the variant's runtime and aug."""
    from maskcls import params as params_mod

    params = params_mod.load(root / "params.yaml").for_model(MODEL)
    runtime = dataclasses.replace(params.runtime, device="cpu", **{k: cfg[k] for k in RUNTIME_KEYS if k in cfg})
    aug = params.aug if cfg.get("aug", True) else dataclasses.replace(params.aug, train=[], minority=[])
    return dataclasses.replace(params, runtime=runtime, aug=aug)


def lean_epoch(net, loader, losses, weights, optimizer, scheduler, scaler, ema, rt, data_config, step, desc, *rest):
    """`train_one_epoch` without its per-step Python extras: no progress wrapper, no `loss.item()` sums."""
    from maskcls.training.loop import train_step

    net.train()
    for images, targets in loader:
        train_step(net, images, targets, losses, weights, optimizer, scheduler, scaler, rt, data_config)
        step += 1
        if ema is not None:
            ema.update(net, step=step)
    return {}, step


def train_child(cfg: dict, gate: Gate) -> dict:
    import torch

    from maskcls.paths import Paths
    from maskcls.repro import cpu_threads
    from maskcls.training import loop

    root = Path(cfg["root"])
    params = _params(root, cfg)
    epoch_fn = lean_epoch if cfg["lean"] else loop.train_one_epoch
    with cpu_threads(params.runtime.threads):
        job = loop.build_job(params, MODEL, 0, Paths(root))  # set_deterministic, seeds, Runtime, model, optimizer
        if cfg["fill"] is not None:
            torch.utils.deterministic.fill_uninitialized_memory = cfg["fill"]
        weights = loop.start_epoch(job.net, 0, params.train.epochs)

        def loader(epoch: int):
            return job.train_loader.epoch(epoch)  # as run_epoch asks for each epoch's batches

        gate.send(
            {
                "ready": True,
                "steps_per_epoch": len(loader(0)),
                "channels_last_input": job.rt.channels_last,
                "torch_threads": torch.get_num_threads(),
                "deterministic": torch.are_deterministic_algorithms_enabled(),
                "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
            }
        )
        step, epoch, carried = 0, 0, {}
        while not gate.finished:
            batches = gated(loader(epoch), gate, cfg["epoch_steps"], carried)
            _, step = epoch_fn(
                job.trainee, batches, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema, job.rt,
                job.net.data_config, step, f"bench epoch {epoch}",
            )  # fmt: skip
            epoch += 1
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "steps": step,
            "weights_md5": _weights_md5(job.net),
            "worker_cpu_s": round(kids.ru_utime + kids.ru_stime, 2),
            "max_rss_mib": _rss_mib(),
        }


def _bare_model(root: Path, cfg: dict):
    import torch

    from maskcls import params as params_mod
    from maskcls.models import build_model

    params = params_mod.load(root / "params.yaml")
    torch.set_num_threads(cfg["threads"] or os.cpu_count() or 1)
    torch.manual_seed(0)
    net = build_model(params.model(MODEL), pretrained=True, input_size=(params.cache.height, params.cache.width))
    if cfg["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    return params, net


def _premade(root: Path, n: int, batch: int, channels_last: bool, data_config: dict):
    """`n` normalised float batches from the sample's cache, made before any timing."""
    import numpy as np
    import torch

    from maskcls import artifacts
    from maskcls.paths import Paths
    from maskcls.transforms import normalize

    images = artifacts.open_cache(Paths(root).cache_dir, "train")
    rows = np.resize(np.arange(len(images)), n * batch)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = []
    for i in range(n):
        x = torch.from_numpy(np.ascontiguousarray(images[rows[i * batch : (i + 1) * batch]])).permute(0, 3, 1, 2)
        out.append(normalize(x, data_config).contiguous(memory_format=layout))
    return out


def _forever(items):
    while True:
        yield from items


def bare_train_child(cfg: dict, gate: Gate) -> dict:
    import torch
    import torch.nn.functional as F

    root = Path(cfg["root"])
    params, net = _bare_model(root, cfg)
    if cfg.get("deterministic"):
        from maskcls.repro import set_deterministic

        set_deterministic(True)  # what the trainer's build_job does
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    batch = params.train.batch_size
    xs = _premade(root, 4, batch, cfg["channels_last"], net.data_config)
    gen = torch.Generator().manual_seed(1)
    sizes = {"mask": 3, "gender": 2, "age": 3}
    ys = [{k: torch.randint(0, s, (batch,), generator=gen) for k, s in sizes.items()} for _ in xs]
    gate.send({"ready": True, "torch_threads": torch.get_num_threads(), "channels_last_input": cfg["channels_last"]})
    steps = 0
    for x, y in gated(_forever(list(zip(xs, ys, strict=True))), gate):
        out = net(x)
        loss = sum(F.cross_entropy(out[k], y[k]) for k in sizes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return {"steps": steps, "weights_md5": _weights_md5(net), "max_rss_mib": _rss_mib()}


def predict_child(cfg: dict, gate: Gate) -> dict:
    import numpy as np
    import torch

    from maskcls import artifacts
    from maskcls.models import build_model
    from maskcls.paths import Paths
    from maskcls.progress import progress
    from maskcls.repro import cpu_threads, set_deterministic
    from maskcls.stages.predict import batches
    from maskcls.training.inference import predict_probabilities
    from maskcls.training.runtime import runtime

    root = Path(cfg["root"])
    params = _params(root, cfg)
    if cfg["deterministic"]:
        set_deterministic(True)
    rt = runtime(params)
    torch.manual_seed(0)
    size = (params.cache.height, params.cache.width)
    net = rt.place(build_model(params.model(MODEL), pretrained=True, input_size=size))
    images = artifacts.open_cache(Paths(root).cache_dir, "train")
    batch = params.predict.batch_size
    rows = np.resize(np.arange(len(images)), 10_000 * batch)  # lazily batched: more than any run takes
    with cpu_threads(params.runtime.threads):
        gate.send({"ready": True, "torch_threads": torch.get_num_threads(), "channels_last_input": rt.channels_last})
        stream = progress(batches(images, rows, batch), "bench predict", total=10_000, size=len)
        probs = predict_probabilities(net, gated(stream, gate), rt, net.data_config, list(params.predict.tta))
    return {
        "probs_md5": hashlib.md5(np.ascontiguousarray(probs["class18"]).tobytes()).hexdigest(),
        "max_rss_mib": _rss_mib(),
    }


def bare_predict_child(cfg: dict, gate: Gate) -> dict:
    import torch

    root = Path(cfg["root"])
    params, net = _bare_model(root, cfg)
    net.eval()
    xs = _premade(root, 4, params.predict.batch_size, cfg["channels_last"], net.data_config)
    flips = [view == "hflip" for view in params.predict.tta]
    gate.send({"ready": True, "torch_threads": torch.get_num_threads(), "channels_last_input": cfg["channels_last"]})
    with torch.no_grad():
        for x in gated(_forever(xs), gate):
            summed = None
            for flip in flips:
                out = net(torch.flip(x, dims=[3]) if flip else x)
                probs = torch.cat([torch.softmax(v, dim=1) for v in out.values()], dim=1)
                summed = probs if summed is None else summed + probs
            _ = (summed / len(flips)).numpy()
    return {"max_rss_mib": _rss_mib()}


def child(cfg: dict) -> None:
    """Serve one variant: results on the original stdout, everything the project prints goes to stderr."""
    results = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    from maskcls import portable

    portable.apply(cfg["portable"])  # before torch is imported, as the CLI does
    import torch

    gate = Gate(sys.stdin, results)
    runner = {
        "train": train_child,
        "bare_train": bare_train_child,
        "predict": predict_child,
        "bare_predict": bare_predict_child,
    }[cfg["kind"]]
    final = runner(cfg, gate)
    gate.send({"final": True, "capability": torch.backends.cpu.get_cpu_capability(), **final})


# --- the parent -------------------------------------------------------------------------------------------------


class Child:
    def __init__(self, name: str, cfg: dict, logdir: Path):
        self.name = name
        self.log = logdir / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
            env=benchlib.child_env(cfg.get("env")),
        )

    def read(self) -> dict:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            self.proc.wait()
            tail = self.log.read_text()[-3000:]
            raise RuntimeError(f"variant {self.name} ended (exit {self.proc.returncode}):\n{tail}")
        return json.loads(line)

    def send(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_group(names: list[str], variants: dict, root: Path, warmup: int, steps: int, epoch_steps: int) -> dict:
    """Start every variant, then `warmup` + `steps` cycles of one step each, in turn; then finish them."""
    logdir = root / "logs"
    logdir.mkdir(exist_ok=True)
    children = {}
    try:
        for name in names:
            cfg = {**variants[name][0], "root": str(root), "epoch_steps": epoch_steps}
            children[name] = Child(name, cfg, logdir)
        ready = {name: c.read() for name, c in children.items()}
        records: dict[str, list[dict]] = {name: [] for name in names}
        started = time.perf_counter()
        for cycle, name in benchlib.alternating(names, warmup + steps):
            record = children[name].send("step")
            if cycle >= warmup:
                records[name].append(record)
        seconds = time.perf_counter() - started
        finals = {name: c.send("finish") for name, c in children.items()}
        for c in children.values():
            c.proc.wait(timeout=120)
    finally:
        for c in children.values():
            c.close()
    return {
        name: {"ready": ready[name], "records": records[name], "final": finals[name], "group_seconds": seconds}
        for name in names
    }


def summarise(what: str, cfg: dict, run: dict, batch: int, epoch_steps: int | None) -> dict:
    """Steady images/s (median of the steps that do not start an epoch), the extra time of an epoch's first
    step, and images/s over an epoch of `epoch_steps` steps with that start-up."""
    recs = run["records"]
    steady = [r["step_s"] for r in recs if not r["epoch_start"]]
    starts = [r["step_s"] + r.get("previous_epoch_end_s", 0.0) for r in recs if r["epoch_start"]]
    med = benchlib.median(steady)
    extra = max(0.0, benchlib.median(starts) - med) if starts else None
    total_step = sum(r["step_s"] for r in recs)
    out = {
        "what": what,
        "config": {k: v for k, v in cfg.items() if k not in ("root", "epoch_steps", "kind")},
        "steady_images_per_s": round(batch / med, 2),
        "images_per_s": round(batch / med, 2),
        "median_step_s": round(med, 4),
        "min_step_s": round(min(steady), 4),
        "timed_steps": len(recs),
        "epoch_start_extra_s": round(extra, 3) if extra is not None else None,
        "first_batch_wait_s": [round(r["wait_s"], 3) for r in recs if r["epoch_start"]],
        "data_wait_share": round(sum(r["wait_s"] for r in recs) / total_step, 4),
        "cores_busy": round(sum(r["cpu_s"] for r in recs) / total_step, 2),
        "capability": run["final"].get("capability"),
        "max_rss_mib": run["final"].get("max_rss_mib"),
    }
    if epoch_steps and extra is not None:  # over an epoch of the default sample, its start included
        out["images_per_s"] = round(batch * epoch_steps / (epoch_steps * med + extra), 2)
    for key in ("weights_md5", "probs_md5", "worker_cpu_s", "steps"):
        if key in run["final"]:
            out[key] = run["final"][key]
    for key in ("steps_per_epoch", "fill_uninitialized_memory", "deterministic", "channels_last_input"):
        if key in run["ready"]:
            out[key] = run["ready"][key]
    return out


def analyse(groups: dict, predict: dict | None, defaults: dict) -> dict:
    """Per variant: its figures and its ratios to the variants measured beside it. Against the bare loops: direct
    in the group that holds them, else through the trainer (variant / trainer in its group x trainer / bare)."""
    ref = groups["reference"]
    r = benchlib.ratio
    bares = ("bare", "bare_cl", "bare_cl_same")
    base = {b: r(ref["trainer"]["images_per_s"], ref[b]["images_per_s"]) for b in bares if b in ref}
    fastest_bare = max((b for b in base if b != "bare_cl_same"), key=lambda b: ref[b]["images_per_s"])
    default_grid = grid_name(defaults["threads"], defaults["num_workers"])
    train: dict = {}
    for gname, group in groups.items():
        anchor = "trainer" if "trainer" in group else default_grid if default_grid in group else None
        for name, v in group.items():
            if name in train:  # a reference again: the first group's figures stand
                continue
            row = {**v, "group": gname}
            if anchor:
                row["vs_trainer"] = r(v["images_per_s"], group[anchor]["images_per_s"])
            for b in base:
                if b in group:
                    row[f"vs_{b}"] = r(v["images_per_s"], group[b]["images_per_s"])
                elif anchor:
                    row[f"vs_{b}"] = round(row["vs_trainer"] * base[b], 3)
            train[name] = row
    out: dict = {"train": train}
    md5s: dict[str, list[str]] = {}  # every process of a variant, over the groups
    for group in groups.values():
        for name, v in group.items():
            if "weights_md5" in v:
                key = "trainer" if name == default_grid else name  # the same settings as the trainer
                md5s.setdefault(key, []).append(v["weights_md5"])
    trainer_md5 = set(md5s.get("trainer", []))
    others = [n for n in md5s if n != "trainer" and not n.startswith("bare") and trainer_md5]
    out["same_bytes"] = {f"trainer == {n}": len(trainer_md5 | set(md5s[n])) == 1 for n in others}
    same_settings = md5s.get("trainer", []) + md5s.get("trainer_again", [])  # default_grid is filed as trainer
    out["trainer_processes_identical"] = len(set(same_settings)) == 1
    out["trainer_processes"] = len(same_settings)
    out["weights_md5"] = md5s
    noise = abs(train["trainer_again"]["vs_trainer"] - 1) if "trainer_again" in train else None
    out["noise"] = round(noise, 3) if noise is not None else None
    out["trainer_vs_bare"] = {b: base[b] for b in base}
    out["fastest_bare"] = fastest_bare
    out["trainer_vs_fastest_bare"] = base[fastest_bare]
    out["target_trainer_at_least_0.9x_bare"] = base[fastest_bare] >= 0.9
    # The loop's own cost, each side under the same CPU settings: the trainer against the bare loop run with its
    # settings, and the trainer run with the bare loop's settings against the bare loop.
    if "bare_cl_same" in ref:
        out["trainer_vs_bare_same_settings"] = base["bare_cl_same"]
    if "trainer_native" in ref and "bare_cl" in ref:
        out["trainer_native_vs_bare_cl"] = r(ref["trainer_native"]["images_per_s"], ref["bare_cl"]["images_per_s"])
    grid = groups.get("workers_threads")
    if grid:
        fastest = max(grid, key=lambda n: grid[n]["images_per_s"])
        best, dflt = grid[fastest]["images_per_s"], grid.get(default_grid, {}).get("images_per_s")
        out["grid"] = {
            "fastest": fastest,
            "default": default_grid if default_grid in grid else None,
            "default_is_fastest": fastest == default_grid,
            "fastest_vs_default": r(best, dflt) if dflt else None,
        }
    if predict:
        bares = [b for b in ("bare_predict", "bare_predict_cl", "bare_predict_same") if b in predict]
        for v in predict.values():
            v["vs_predict"] = r(v["images_per_s"], predict["predict"]["images_per_s"])
            for b in bares:
                v[f"vs_{b}"] = r(v["images_per_s"], predict[b]["images_per_s"])
        out["predict"] = predict
        fastest_p = max((b for b in bares if b != "bare_predict_same"), key=lambda b: predict[b]["images_per_s"])
        if "bare_predict_same" in predict:  # each side with the same CPU kernels
            out["predict_vs_bare_same_settings"] = predict["predict"]["vs_bare_predict_same"]
        if "predict_kernels" in predict and "bare_predict_cl" in predict:
            out["predict_native_vs_bare_cl"] = predict["predict_kernels"]["vs_bare_predict_cl"]
        out["predict_vs_bare"] = {b: predict["predict"][f"vs_{b}"] for b in bares}
        out["fastest_bare_predict"] = fastest_p
        out["predict_vs_fastest_bare"] = predict["predict"][f"vs_{fastest_p}"]
        out["target_predict_at_least_0.9x_bare"] = out["predict_vs_fastest_bare"] >= 0.9
        if "predict_again" in predict:
            out["predict_noise"] = round(abs(predict["predict_again"]["vs_predict"] - 1), 3)
        md5 = {name: v["probs_md5"] for name, v in predict.items() if "probs_md5" in v}
        out["predict_same_bytes"] = {
            f"predict == {name}": md5["predict"] == value for name, value in md5.items() if name != "predict"
        }
    return out


def defaults_of(root: Path) -> dict:
    import torch

    from maskcls import params as params_mod
    from maskcls.training.runtime import loader_workers

    rt = params_mod.load(root / "params.yaml").runtime
    # num_workers as the trainer resolves it here (auto: 0 on CPU), so the grid holds the default
    return {k: getattr(rt, k) for k in RUNTIME_KEYS} | {"num_workers": loader_workers(rt, torch.device("cpu"))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "train_throughput.json")
    ap.add_argument("--people", type=int, default=60, help="train people of the generated sample (7 photos each)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--epoch-steps", type=int, default=7, help="steps per epoch")
    ap.add_argument("--predict-warmup", type=int, default=1)
    ap.add_argument("--predict-steps", type=int, default=6, help="timed predict batches per variant")
    ap.add_argument("--groups", help="comma-separated groups to run, in full (default: all; reference always runs)")
    ap.add_argument("--quick", action="store_true", help="three variants, few steps: a check of the script")
    ap.add_argument("--tiny", action="store_true", help="timm's tiny test_efficientnet at 32x24 (tests only)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return {}

    from maskcls import params as params_mod

    if args.quick:
        args.warmup, args.steps, args.epoch_steps = 1, 3, 2
        args.predict_warmup, args.predict_steps = 1, 2
    group_names = QUICK_GROUPS if args.quick else GROUPS
    predict_names = QUICK_PREDICT if args.quick else PREDICT_GROUP
    if args.groups:  # the full groups, whatever --quick says
        wanted = {"reference", *args.groups.split(",")}
        group_names = {g: names for g, names in GROUPS.items() if g in wanted}
        predict_names = PREDICT_GROUP
    default_people = params_mod.read_yaml(benchlib.ROOT / "params.yaml")["synth"]["people"]
    load_start = benchlib.load_average()
    started = time.perf_counter()
    groups: dict = {}
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-train-") as tmp:
        root = Path(tmp)
        sample = benchlib.build_sample(root, args.people, max(2, args.people // 6), TINY if args.tiny else None)
        print(f"sample: {sample}", file=sys.stderr, flush=True)
        params = params_mod.load(root / "params.yaml")
        defaults = defaults_of(root)
        tv, pv = train_variants(defaults), predict_variants(defaults)
        batch = params.train.batch_size
        default_steps = None
        for gname, names in group_names.items():
            runs = run_group(names, tv, root, args.warmup, args.steps, args.epoch_steps)
            if default_steps is None:  # an epoch of the default sample: this sample's, scaled by the people
                trainer = next(n for n in names if n.startswith("trainer"))
                default_steps = round(runs[trainer]["ready"]["steps_per_epoch"] * default_people / args.people)
            groups[gname] = {n: summarise(tv[n][1], tv[n][0], runs[n], batch, default_steps) for n in names}
            print(f"group {gname} ({runs[names[0]]['group_seconds']:.0f} s): "
                  + ", ".join(f"{n} {v['images_per_s']:.1f}" for n, v in groups[gname].items()),
                  file=sys.stderr, flush=True)  # fmt: skip
        runs = run_group(predict_names, pv, root, args.predict_warmup, args.predict_steps, 0)
        pbatch = params.predict.batch_size
        predict = {n: summarise(pv[n][1], pv[n][0], runs[n], pbatch, None) for n in predict_names}
        print("predict: " + ", ".join(f"{n} {v['images_per_s']:.1f}" for n, v in predict.items()), file=sys.stderr)
    analysis = analyse(groups, predict, defaults)
    spec = params.model(MODEL)
    result = {
        "command": "python bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": benchlib.machine(load_start, "shared machine: other processes may have run beside the benchmark"),
        "config": {
            "model": f"models.{MODEL}: {spec.head} head on {spec.backbone}, pretrained: {spec.pretrained}",
            "input": [3, params.cache.height, params.cache.width],
            "batch_size": batch,
            "predict_batch_size": pbatch,
            "predict_tta": list(params.predict.tta),
            "defaults": defaults,
            "sample": {"people": args.people, **sample},
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "epoch_steps": args.epoch_steps,
            "predict_warmup_batches": args.predict_warmup,
            "predict_timed_batches": args.predict_steps,
            "default_sample_people": default_people,
            "default_sample_steps_per_epoch": default_steps,
            "quick": args.quick,
            "tiny": args.tiny,
        },
        "groups": groups,
        "analysis": analysis,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    short = {k: v for k, v in analysis.items() if k not in ("train", "predict", "weights_md5")}
    print(json.dumps(short, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    main()
