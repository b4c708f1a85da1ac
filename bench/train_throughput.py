"""The project's trainer and predictor against bare PyTorch loops, and what makes the difference (CPU).

    .venv/bin/python bench/train_throughput.py --out bench/results/train_throughput.json

Training: the same model (the default `models.multihead` spec: efficientnet_lite0 with its three heads, through
`maskcls.models.build_model`), input 128x96, batch 32, 2 torch threads.
- bare: a plain loop over pre-made float tensors (already normalised, in RAM): model(x), cross-entropy per head,
  backward, torch.optim.AdamW (its default kernel), native CPU kernels, NCHW; `bare_cl`: the same, channels_last.
- trainer: what `maskcls train` runs: a Job from `maskcls.training.loop.build_job` on a generated sample (the
  params' augmentations, minority resampling, num_workers, threads, deterministic algorithms, portable CPU
  mode, fused AdamW, focal loss for age), a new DataLoader per epoch from `build_train_loader`, and the
  project's `train_one_epoch` itself (progress, per-step `loss.item()`).
- trainer_*: the trainer with one thing changed, to size each cause of the difference.

Prediction: `maskcls.training.inference.predict_probabilities` over the predict stage's batches of 64 with TTA
none + hflip, against a bare `torch.no_grad()` loop doing the same two forward passes and softmaxes.

How it is measured, in lockstep: every variant of a group is its own fresh process (portable mode must be in
place before torch is imported, and deterministic-algorithm and thread settings are per process), all started
together; then the parent lets them take one training step at a time in turn (the order reversed every other
cycle), so each variant's steps run right beside the others' and load from other work falls on all alike.
A process waiting for its turn does nothing. The loop under test is unchanged: a gate in its loader blocks
before each batch until the parent says go, and times the step from the request for its batch to the request
for the next (data wait included). Epochs are cut at `--epoch-steps` so that the timed window holds epoch
starts: the extra time of an epoch's first step (DataLoader worker start-up) is reported on its own and
amortised over an epoch of the default sample. `trainer_again` and `trainer_cl_again` repeat a variant in the
same group: their figures show the noise, and their weights' md5 whether a setting gives the same bytes twice.
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
BATCH = 32
PREDICT_BATCH = 64

TRAINER = {
    "kind": "train",
    "portable": True,
    "channels_last": None,  # None: as the project's Runtime decides from params (train.channels_last, device)
    "workers": 2,
    "threads": 2,
    "aug": True,
    "lean": False,
    "deterministic": True,
    "fill_uninitialized": True,
    "adamw": "fused",
    "env": {},
}
BARE = {"kind": "bare_train", "portable": False, "channels_last": False, "threads": 2}
PROPOSED = {**TRAINER, "channels_last": True, "fill_uninitialized": False}

# name -> (configuration, what it changes)
TRAIN_VARIANTS: dict[str, tuple[dict, str]] = {
    "bare": (BARE, "bare loop: native kernels, NCHW, float tensors in RAM"),
    "bare_cl": ({**BARE, "channels_last": True}, "bare loop, channels_last"),
    "trainer": (TRAINER, "the trainer as params.yaml runs it on the CPU"),
    "trainer_again": (TRAINER, "the trainer again (noise, and the same bytes twice)"),
    "trainer_nchw": ({**TRAINER, "channels_last": False}, "(a) NCHW input and model"),
    "trainer_cl": ({**TRAINER, "channels_last": True}, "(a) channels_last input and model"),
    "trainer_cl_again": ({**TRAINER, "channels_last": True}, "(a) channels_last again (the same bytes twice)"),
    "trainer_native_nchw": ({**TRAINER, "portable": False, "channels_last": False}, "(f) native kernels, NCHW"),
    "trainer_native_cl": ({**TRAINER, "portable": False, "channels_last": True}, "(f) native kernels, channels_last"),
    "trainer_w0": ({**TRAINER, "workers": 0}, "(b) num_workers 0"),
    "trainer_w1": ({**TRAINER, "workers": 1}, "(b) num_workers 1"),
    "trainer_t1_w0": ({**TRAINER, "threads": 1, "workers": 0}, "(b) threads 1, num_workers 0"),
    "trainer_t1_w1": ({**TRAINER, "threads": 1, "workers": 1}, "(b) threads 1, num_workers 1"),
    "trainer_t1_w2": ({**TRAINER, "threads": 1, "workers": 2}, "(b) threads 1, num_workers 2"),
    "trainer_passive": ({**TRAINER, "env": {"OMP_WAIT_POLICY": "PASSIVE"}}, "(b) OMP_WAIT_POLICY=PASSIVE"),
    "trainer_noaug": ({**TRAINER, "aug": False}, "(c) no augmentation (aug.train and aug.minority empty)"),
    "trainer_lean": ({**TRAINER, "lean": True}, "(d) loop without progress and per-step loss.item()"),
    "trainer_nondet": ({**TRAINER, "deterministic": False}, "(e) train.deterministic: false"),
    "trainer_nofill": (
        {**TRAINER, "fill_uninitialized": False},
        "(e') deterministic, new tensors not filled (fill_uninitialized_memory off)",
    ),
    "trainer_foreach": ({**TRAINER, "adamw": "foreach"}, "AdamW's default (foreach) kernel instead of fused"),
    "trainer_proposed": (PROPOSED, "proposed: channels_last, fill_uninitialized_memory off"),
}
BARE_PREDICT = {"kind": "bare_predict", "portable": False, "channels_last": False, "threads": 2}
# The predict stage does not turn deterministic algorithms on (only build_job does, for training).
PREDICTOR = {"kind": "predict", "portable": True, "channels_last": None, "threads": 2, "deterministic": False}
PREDICT_VARIANTS: dict[str, tuple[dict, str]] = {
    "bare_predict": (BARE_PREDICT, "bare no_grad loop: native kernels, NCHW, float tensors in RAM"),
    "bare_predict_cl": ({**BARE_PREDICT, "channels_last": True}, "bare loop, channels_last"),
    "predict": (PREDICTOR, "predict_probabilities as the predict stage runs it"),
    "predict_again": (PREDICTOR, "the same again (noise, and the same bytes twice)"),
    "predict_nchw": ({**PREDICTOR, "channels_last": False}, "NCHW"),
    "predict_cl": ({**PREDICTOR, "channels_last": True}, "channels_last"),
    "predict_det": ({**PREDICTOR, "deterministic": True}, "deterministic algorithms on (as in validation)"),
    "predict_native": ({**PREDICTOR, "portable": False}, "native CPU kernels"),
}
# Each group runs in lockstep; every group holds the two references, so each variant is compared with the
# references measured beside it.
GROUPS: dict[str, list[str]] = {
    "layout_and_kernels": [
        "bare", "bare_cl", "trainer", "trainer_again", "trainer_nchw", "trainer_cl", "trainer_cl_again",
        "trainer_native_nchw", "trainer_native_cl",
    ],
    "workers_and_threads": [
        "bare", "trainer", "trainer_w0", "trainer_w1", "trainer_t1_w0", "trainer_t1_w1", "trainer_t1_w2",
        "trainer_passive",
    ],
    "loop_extras": [
        "bare", "trainer", "trainer_noaug", "trainer_lean", "trainer_nondet", "trainer_nofill", "trainer_foreach",
        "trainer_proposed",
    ],
}  # fmt: skip
PREDICT_GROUP = list(PREDICT_VARIANTS)
QUICK_GROUPS = {"quick": ["bare", "trainer", "trainer_again", "trainer_cl"]}
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

    A step's time runs from the request for its batch to the request for the next: the data wait, the loop
    body and the loop's own per-step work. `carried`: what the previous epoch's end cost (worker shutdown),
    reported with this epoch's first step.
    """
    it = iter(batches)
    n = 0
    try:
        while (limit is None or n < limit) and gate.go():
            cpu0, t0 = _cpu_s(), time.perf_counter()
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


def _params(root: Path, cfg: dict):
    from maskcls import params as params_mod

    params = params_mod.load(root / "params.yaml").for_model(MODEL)
    train = dataclasses.replace(
        params.train,
        num_workers=cfg.get("workers", params.train.num_workers),
        threads=cfg["threads"],
        deterministic=cfg.get("deterministic", params.train.deterministic),
        device="cpu",
    )
    aug = params.aug if cfg.get("aug", True) else dataclasses.replace(params.aug, train=[], minority=[])
    return dataclasses.replace(params, train=train, aug=aug)


def lean_epoch(net, loader, losses, weights, optimizer, scheduler, scaler, ema, rt, data_config, step, desc, *rest):
    """`train_one_epoch` without its per-step Python extras: no progress wrapper, no `loss.item()` sums."""
    net.train()
    for images, targets in loader:
        x = rt.inputs(images, data_config)
        with rt.autocast():
            out = net(x)
        parts = {k: losses[k](out[k].float(), targets[k].to(rt.device)) for k in weights}
        loss = sum(w * parts[k] for k, w in weights.items())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step_batch()
        step += 1
        if ema is not None:
            ema.update(net, step=step)
    return {}, step


def train_child(cfg: dict, gate: Gate) -> dict:
    import torch

    from maskcls import optim
    from maskcls.dataset import build_train_loader
    from maskcls.paths import Paths
    from maskcls.repro import cpu_threads
    from maskcls.training import loop

    root = Path(cfg["root"])
    params = _params(root, cfg)
    layout = cfg["channels_last"]
    if layout is not None:  # the Runtime the project builds, with this memory format on any device
        project_runtime = loop.runtime
        loop.runtime = lambda *a, **k: dataclasses.replace(project_runtime(*a, **k), channels_last=layout)
    if cfg["adamw"] == "foreach":
        optim.cpu_kernel = lambda model, name: {}
    epoch_fn = lean_epoch if cfg["lean"] else loop.train_one_epoch
    with cpu_threads(params.train.threads):
        job = loop.build_job(params, MODEL, 0, Paths(root))
        if not cfg["fill_uninitialized"]:
            torch.utils.deterministic.fill_uninitialized_memory = False
        trainee = getattr(job, "trainee", job.net)
        weights = loop.start_epoch(job.net, 0, params.train.epochs)
        data = job.data
        info = {
            "steps_per_epoch": len(
                build_train_loader(data.images, data.train_rows, data.train_targets, params, job.seed, 0)
            ),
            "channels_last_input": job.rt.channels_last,
            "torch_threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        }
        gate.send({"ready": True, **info})
        step, epoch, carried = 0, 0, {}
        while not gate.finished:
            loader = build_train_loader(data.images, data.train_rows, data.train_targets, params, job.seed, epoch)
            batches = gated(loader, gate, cfg["epoch_steps"], carried)
            _, step = epoch_fn(
                trainee, batches, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema, job.rt,
                job.net.data_config, step, f"bench epoch {epoch}",
            )  # fmt: skip
            epoch += 1
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "steps": step,
            "weights_md5": _weights_md5(job.net),
            "worker_cpu_s": kids.ru_utime + kids.ru_stime,
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }


def _premade(root: Path, n: int, batch: int, channels_last: bool):
    """`n` normalised float batches from the sample's cache, made before any timing."""
    import numpy as np
    import torch

    from maskcls import artifacts
    from maskcls.models import OFFLINE_MEAN, OFFLINE_STD
    from maskcls.paths import Paths
    from maskcls.transforms import normalize

    images = artifacts.open_cache(Paths(root).cache_dir, "train")
    rows = np.resize(np.arange(len(images)), n * batch)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = []
    for i in range(n):
        x = torch.from_numpy(np.ascontiguousarray(images[rows[i * batch : (i + 1) * batch]])).permute(0, 3, 1, 2)
        out.append(normalize(x, {"mean": OFFLINE_MEAN, "std": OFFLINE_STD}).contiguous(memory_format=layout))
    return out


def _forever(items):
    while True:
        yield from items


def bare_train_child(cfg: dict, gate: Gate) -> dict:
    import torch
    import torch.nn.functional as F

    from maskcls import params as params_mod
    from maskcls.models import build_model

    root = Path(cfg["root"])
    params = params_mod.load(root / "params.yaml")
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    net = build_model(params.model(MODEL), pretrained=True, input_size=(params.cache.height, params.cache.width))
    if cfg["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xs = _premade(root, 4, BATCH, cfg["channels_last"])
    gen = torch.Generator().manual_seed(1)
    sizes = {"mask": 3, "gender": 2, "age": 3}
    ys = [{k: torch.randint(0, s, (BATCH,), generator=gen) for k, s in sizes.items()} for _ in xs]
    gate.send({"ready": True, "torch_threads": torch.get_num_threads()})
    steps = 0
    for x, y in gated(_forever(list(zip(xs, ys, strict=True))), gate):
        out = net(x)
        loss = sum(F.cross_entropy(out[k], y[k]) for k in out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return {
        "steps": steps,
        "weights_md5": _weights_md5(net),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


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
    set_deterministic(cfg["deterministic"])
    rt = runtime(params)
    if cfg["channels_last"] is not None:
        rt = dataclasses.replace(rt, channels_last=cfg["channels_last"])
    torch.manual_seed(0)
    size = (params.cache.height, params.cache.width)
    net = rt.place(build_model(params.model(MODEL), pretrained=True, input_size=size))
    images = artifacts.open_cache(Paths(root).cache_dir, "train")
    rows = np.resize(np.arange(len(images)), 10_000 * PREDICT_BATCH)  # lazily batched: more than any run takes
    with cpu_threads(params.train.threads):
        gate.send({"ready": True, "torch_threads": torch.get_num_threads(), "channels_last_input": rt.channels_last})
        stream = progress(batches(images, rows, PREDICT_BATCH), "bench predict", total=10_000, size=len)
        probs = predict_probabilities(net, gated(stream, gate), rt, net.data_config, list(params.predict.tta))
    return {
        "probs_md5": hashlib.md5(np.ascontiguousarray(probs["class18"]).tobytes()).hexdigest(),
        "batches": len(probs["class18"]) // PREDICT_BATCH,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def bare_predict_child(cfg: dict, gate: Gate) -> dict:
    import torch

    from maskcls import params as params_mod
    from maskcls.models import build_model

    root = Path(cfg["root"])
    params = params_mod.load(root / "params.yaml")
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    net = build_model(params.model(MODEL), pretrained=True, input_size=(params.cache.height, params.cache.width))
    if cfg["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    net.eval()
    xs = _premade(root, 4, PREDICT_BATCH, cfg["channels_last"])
    gate.send({"ready": True, "torch_threads": torch.get_num_threads()})
    with torch.no_grad():
        for x in gated(_forever(xs), gate):
            summed = None
            for view in (x, torch.flip(x, dims=[3])):
                probs = torch.cat([torch.softmax(v, dim=1) for v in net(view).values()], dim=1)
                summed = probs if summed is None else summed + probs
            _ = (summed / 2).numpy()
    return {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


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
        last = -1
        for cycle, name in benchlib.alternating(names, warmup + steps):
            if cycle != last:
                print(f"  cycle {cycle + 1}/{warmup + steps}, {time.perf_counter() - started:.0f}s", file=sys.stderr)
                last = cycle
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
    extra = max(0.0, benchlib.median(starts) - med) if starts else 0.0
    out = {
        "what": what,
        "config": {k: v for k, v in cfg.items() if k not in ("root", "epoch_steps")},
        "steady_images_per_s": round(batch / med, 2),
        "median_step_s": round(med, 4),
        "min_step_s": round(min(steady), 4),
        "timed_steps": len(recs),
        "epoch_starts_timed": len(starts),
        "epoch_start_extra_s": round(extra, 3) if starts else None,
        "first_batch_wait_s": [round(r["wait_s"], 3) for r in recs if r["epoch_start"]],
        "data_wait_share": round(sum(r["wait_s"] for r in recs) / sum(r["step_s"] for r in recs), 4),
        "cores_busy": round(sum(r["cpu_s"] for r in recs) / sum(r["step_s"] for r in recs), 2),
        "capability": run["final"].get("capability"),
        "max_rss_mib": run["final"].get("max_rss_mib"),
    }
    out["images_per_s"] = out["steady_images_per_s"]
    if epoch_steps and starts:
        out["epoch_images_per_s"] = round(batch * epoch_steps / (epoch_steps * med + extra), 2)
        out["images_per_s"] = out["epoch_images_per_s"]
    for key in ("weights_md5", "probs_md5", "worker_cpu_s", "steps"):
        if key in run["final"]:
            out[key] = run["final"][key]
    for key in ("steps_per_epoch", "fill_uninitialized_memory", "deterministic", "channels_last_input"):
        if key in run["ready"]:
            out[key] = run["ready"][key]
    return out


def group_ratios(group: dict, base: str, bare: str) -> dict:
    """Each variant of a group against the group's own references."""
    ref, ref_bare = group[base]["images_per_s"], group[bare]["images_per_s"]
    return {
        name: {
            "vs_reference": benchlib.ratio(v["images_per_s"], ref),
            "vs_bare": benchlib.ratio(v["images_per_s"], ref_bare),
        }
        for name, v in group.items()
    }


def analyse(groups: dict, predict: dict | None) -> dict:
    """Per variant: its figures and ratios from the group it was measured in (the references from the first)."""
    train: dict = {}
    for gname, group in groups.items():
        ratios = group_ratios(group, "trainer", "bare")
        for name, v in group.items():
            if name in train and name in ("trainer", "bare"):
                continue
            r = ratios[name]
            train[name] = {**v, "group": gname, "vs_trainer": r["vs_reference"], "vs_bare": r["vs_bare"]}
    out: dict = {"train": train}
    md5s: dict[str, list[str]] = {}  # every process of a variant, over the groups
    for group in groups.values():
        for name, v in group.items():
            if "weights_md5" in v:
                md5s.setdefault(name, []).append(v["weights_md5"])
    pairs = [("trainer", "trainer_again"), ("trainer_cl", "trainer_cl_again"), ("trainer", "trainer_nofill"),
             ("trainer", "trainer_lean"), ("trainer", "trainer_nondet"), ("trainer_cl", "trainer_proposed"),
             ("trainer", "trainer_passive"), ("trainer_nchw", "trainer_cl"), ("trainer_nchw", "trainer_native_nchw"),
             ("trainer_cl", "trainer_native_cl")]  # fmt: skip
    out["same_bytes"] = {f"{a} == {b}": len(set(md5s[a] + md5s[b])) == 1 for a, b in pairs if a in md5s and b in md5s}
    out["weights_md5"] = md5s
    noise = [abs(train["trainer_again"]["vs_trainer"] - 1)] if "trainer_again" in train else []
    if "trainer_cl_again" in train:
        noise.append(abs(train["trainer_cl_again"]["images_per_s"] / train["trainer_cl"]["images_per_s"] - 1))
    out["noise"] = round(max(noise), 3) if noise else None
    trainer, bare = train["trainer"], train["bare"]
    out["trainer_vs_bare"] = benchlib.ratio(trainer["images_per_s"], bare["images_per_s"])
    out["target_trainer_at_least_0.9x_bare"] = out["trainer_vs_bare"] >= 0.9
    if "trainer_proposed" in train:
        out["proposed_vs_bare"] = train["trainer_proposed"]["vs_bare"]
        out["target_met_by_proposed"] = train["trainer_proposed"]["vs_bare"] >= 0.9
    if predict:
        ratios = group_ratios(predict, "predict", "bare_predict")
        out["predict"] = {name: {**v, "vs_predict": ratios[name]["vs_reference"], "vs_bare": ratios[name]["vs_bare"]}
                          for name, v in predict.items()}  # fmt: skip
        out["predict_vs_bare"] = ratios["predict"]["vs_bare"]
        out["target_predict_at_least_0.9x_bare"] = ratios["predict"]["vs_bare"] >= 0.9
        md5 = {name: v["probs_md5"] for name, v in predict.items() if "probs_md5" in v}
        out["predict_same_bytes"] = {
            f"predict == {name}": md5["predict"] == value for name, value in md5.items() if name != "predict"
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "train_throughput.json")
    ap.add_argument("--people", type=int, default=60, help="train people of the generated sample (7 photos each)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per variant")
    ap.add_argument("--epoch-steps", type=int, default=8, help="steps per epoch (a new DataLoader each)")
    ap.add_argument("--predict-warmup", type=int, default=1)
    ap.add_argument("--predict-steps", type=int, default=8, help="timed predict batches (of 64) per variant")
    ap.add_argument("--quick", action="store_true", help="a few variants, few steps (a check of the script)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return {}

    from maskcls import params as params_mod

    load_start = benchlib.load_average()
    started = time.perf_counter()
    group_names = QUICK_GROUPS if args.quick else GROUPS
    predict_names = QUICK_PREDICT if args.quick else PREDICT_GROUP
    default_people = params_mod.read_yaml(benchlib.ROOT / "params.yaml")["synth"]["people"]
    groups: dict = {}
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-train-") as tmp:
        root = Path(tmp)
        sample = benchlib.build_sample(root, args.people, max(2, args.people // 6))
        print(f"sample: {sample}", file=sys.stderr, flush=True)
        default_steps = None
        for gname, names in group_names.items():
            runs = run_group(names, TRAIN_VARIANTS, root, args.warmup, args.steps, args.epoch_steps)
            if default_steps is None:  # an epoch of the default sample: this sample's, scaled by the people
                default_steps = round(runs["trainer"]["ready"]["steps_per_epoch"] * default_people / args.people)
            groups[gname] = {
                n: summarise(TRAIN_VARIANTS[n][1], TRAIN_VARIANTS[n][0], runs[n], BATCH, default_steps) for n in names
            }
            print(f"group {gname}: " + ", ".join(f"{n} {v['images_per_s']:.1f}" for n, v in groups[gname].items()),
                  file=sys.stderr, flush=True)  # fmt: skip
        runs = run_group(predict_names, PREDICT_VARIANTS, root, args.predict_warmup, args.predict_steps, 0)
        predict = {
            n: summarise(PREDICT_VARIANTS[n][1], PREDICT_VARIANTS[n][0], runs[n], PREDICT_BATCH, None)
            for n in predict_names
        }
        print("predict: " + ", ".join(f"{n} {v['images_per_s']:.1f}" for n, v in predict.items()), file=sys.stderr)
    analysis = analyse(groups, predict)
    result = {
        "command": "python bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": benchlib.machine(load_start, "shared machine: other processes ran beside the benchmark"),
        "config": {
            "model": "models.multihead of params.yaml (efficientnet_lite0, offline ImageNet weights, 3 heads)",
            "input": [3, 128, 96],
            "batch_size": BATCH,
            "predict_batch_size": PREDICT_BATCH,
            "sample": {"people": args.people, **sample},
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "epoch_steps": args.epoch_steps,
            "predict_warmup_batches": args.predict_warmup,
            "predict_timed_batches": args.predict_steps,
            "default_sample_people": default_people,
            "default_sample_steps_per_epoch": default_steps,
            "images_per_s": "trainer variants: over an epoch of the default sample (steady steps at their median, "
            "plus one epoch start); the others: batch size / median step time",
        },
        "groups": groups,
        "analysis": analysis,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    short = {k: v for k, v in analysis.items() if k not in ("train", "predict")}
    print(json.dumps(short, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    main()
