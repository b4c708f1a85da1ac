"""The default recipe on a GPU: bit-identical reruns, and training speed, memory and GPU use per setting.

    bash bench/gpu_check.sh            # on a CUDA machine, about 3-5 minutes; writes bench/results/gpu_check.json
    bash bench/gpu_check.sh --smoke    # the same logic on the CPU with a tiny sample, under a minute

1. Determinism: `maskcls train --model multihead --fold 0` (the CLI, as `dvc repro` runs it) twice on a
   generated sample with params.yaml as it is (runtime.deterministic: true, on `runtime.device: cuda`); the md5 of
   the trained weights (model.pt's state_dict tensors) must agree.
2. Speed: the trainer path (`build_job`, its loader's epochs, `train_one_epoch`) with runtime.amp bf16 / fp16 /
   off x runtime.channels_last on / off, and runtime.compile (torch.compile) on top of the defaults when params.py
   has that key. Each setting in a fresh process: one warm-up epoch (compilation happens there), then a timed
   epoch: images/s (batch size / median step time; `train_one_epoch` reads each step's loss, which waits for the
   GPU), peak memory (torch.cuda.max_memory_allocated over the timed epoch) and GPU utilisation (nvidia-smi
   sampled every 100 ms during the timed epoch: mean and max).

--smoke: 40 people, 32x24 inputs, timm's tiny `test_efficientnet`, one epoch, `runtime.device: cpu`, two speed
settings; memory and utilisation are then null. It proves the script's logic, not any GPU figure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODEL = "multihead"
SMOKE = {
    "synth": {"people": 40, "eval_people": 3},
    "cache": {"height": 32, "width": 24},
    "models": {"multihead": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"}},
    "train": {"epochs": 1, "warmup_epochs": 0, "batch_size": 16, "minority": {"mode": "none"}},
    "runtime": {"num_workers": 0, "threads": 1, "device": "cpu"},
    "aug": {"minority": []},
}
AMPS = ("bf16", "fp16", "off")


def has_compile_key() -> bool:
    from maskcls.params import RuntimeParams

    return "compile" in {f.name for f in dataclasses.fields(RuntimeParams)}


def speed_settings(smoke: bool) -> list[dict]:
    if smoke:
        return [{"amp": "off", "channels_last": False}, {"amp": "bf16", "channels_last": True}]
    settings = [{"amp": amp, "channels_last": cl} for amp in AMPS for cl in (True, False)]
    if has_compile_key():
        settings.append({"amp": "bf16", "channels_last": True, "compile": True})
    return settings


# --- GPU sampling -----------------------------------------------------------------------------------------------


class GpuSampler:
    """nvidia-smi's utilisation.gpu every 100 ms while running; nothing where nvidia-smi is missing."""

    def __init__(self, index: int = 0):
        self.index, self.values, self.proc, self.thread = index, [], None, None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "-i", str(self.index), "--query-gpu=utilization.gpu",
                 "--format=csv,noheader,nounits", "-lms", "100"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:  # type: ignore[union-attr]
            with contextlib.suppress(ValueError):
                self.values.append(float(line.strip()))

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.thread.join(timeout=5)  # type: ignore[union-attr]

    def summary(self) -> dict | None:
        if not self.values:
            return None
        return {
            "mean_pct": round(sum(self.values) / len(self.values), 1),
            "max_pct": max(self.values),
            "samples": len(self.values),
        }


# --- the speed child --------------------------------------------------------------------------------------------


def speed_child(cfg: dict) -> dict:
    from maskcls import portable

    portable.apply_from_params(Path(cfg["root"]) / "params.yaml")
    import torch

    from maskcls import params as params_mod
    from maskcls.paths import Paths
    from maskcls.repro import cpu_threads
    from maskcls.training import loop

    root = Path(cfg["root"])
    params = params_mod.load(root / "params.yaml").for_model(MODEL)
    changes = {"amp": cfg["amp"], "channels_last": cfg["channels_last"]}
    if cfg.get("compile"):
        changes["compile"] = True
    params = dataclasses.replace(params, runtime=dataclasses.replace(params.runtime, **changes))
    cuda = torch.cuda.is_available() and params.runtime.device != "cpu"
    setting = {"amp": cfg["amp"], "channels_last": cfg["channels_last"], "compile": bool(cfg.get("compile"))}
    out: dict = {"setting": setting}
    try:
        with cpu_threads(params.runtime.threads):
            job = loop.build_job(params, MODEL, 0, Paths(root))
            trainee = getattr(job, "trainee", job.net)
            weights = loop.start_epoch(job.net, 0, params.train.epochs)
            step = 0
            out["runtime"] = {"device": str(job.rt.device), "amp": job.rt.amp, "channels_last": job.rt.channels_last}
            for epoch in (0, 1):
                loader = job.train_loader.epoch(epoch)
                timed = benchlib.TimedLoader(loader, cfg.get("steps"))
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                with GpuSampler() as gpu:
                    start = time.perf_counter()
                    _, step = loop.train_one_epoch(
                        trainee, timed, job.losses, weights, job.optimizer, job.scheduler, job.scaler, job.ema,
                        job.rt, job.net.data_config, step, f"gpu_check epoch {epoch}",
                    )  # fmt: skip
                    if cuda:
                        torch.cuda.synchronize()
                    wall = time.perf_counter() - start
                if epoch == 0:
                    out["warmup_epoch_s"] = round(wall, 2)
        report = timed.report()
        steps = report["step_s"][1:] or report["step_s"]
        batch = params.train.batch_size
        out |= {
            "images_per_s": round(batch / benchlib.median(steps), 1),
            "epoch_images_per_s": round(sum(report["images"]) / wall, 1),
            "timed_steps": len(steps),
            "first_batch_s": report["first_batch_s"],
            "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "gpu_utilisation": gpu.summary(),
        }
    except Exception as exc:  # one setting failing (e.g. no deterministic kernel) must not hide the others
        out["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    return out


# --- the parent -------------------------------------------------------------------------------------------------


def weights_md5(model_pt: Path) -> str:
    import torch

    state = torch.load(model_pt, map_location="cpu", weights_only=False)["state_dict"]
    md5 = hashlib.md5()
    for key in sorted(state):
        md5.update(key.encode())
        md5.update(state[key].detach().contiguous().cpu().numpy().tobytes())
    return md5.hexdigest()


def train_cli(root: Path) -> dict:
    """`maskcls train` in a fresh process, from nothing; the trained weights' md5 and the time it took."""
    shutil.rmtree(root / "models", ignore_errors=True)
    shutil.rmtree(root / "dvclive", ignore_errors=True)
    shutil.rmtree(root / ".maskcls", ignore_errors=True)
    cmd = [sys.executable, "-m", "maskcls", "train", "--model", MODEL, "--fold", "0",
           "--params", str(root / "params.yaml"), "--root", str(root)]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=root, env=benchlib.child_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"error": result.stderr[-2000:], "seconds": round(seconds, 1)}
    model_pt = root / "models" / MODEL / "fold0" / "model.pt"
    return {
        "weights_md5": weights_md5(model_pt),
        "seconds": round(seconds, 1),
        "summary": [line for line in result.stdout.splitlines() if line.startswith("train:")][-1:],
    }


def gpu_info() -> dict:
    import torch

    info = {"cuda_available": torch.cuda.is_available(), "torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
    if shutil.which("nvidia-smi"):
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        info["nvidia_smi"] = query.stdout.strip()
    return info


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sample, 1 epoch, on the CPU: checks the logic")
    ap.add_argument("--out", type=Path, help="default bench/results/gpu_check.json (smoke: gpu_check_smoke.json)")
    ap.add_argument("--people", type=int, help="train people of the sample (default: params.yaml's synth.people)")
    ap.add_argument("--device", default=None, help="runtime.device (default: cuda; smoke: cpu)")
    ap.add_argument("--steps", type=int, help="limit the timed epoch to this many steps")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(speed_child(json.loads(args.child))))
        return {}

    out_path = args.out or benchlib.RESULTS / ("gpu_check_smoke.json" if args.smoke else "gpu_check.json")
    load_start = benchlib.load_average()
    started = time.perf_counter()
    overrides = benchlib.merged(SMOKE, {}) if args.smoke else {"runtime": {}}
    device = args.device or ("cpu" if args.smoke else "cuda")
    overrides["runtime"]["device"] = device
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device here; run with --smoke to check the script on the CPU")
    from maskcls import params as params_mod

    repo_params = params_mod.read_yaml(benchlib.ROOT / "params.yaml")
    people = args.people or (SMOKE["synth"]["people"] if args.smoke else repo_params["synth"]["people"])
    eval_people = SMOKE["synth"]["eval_people"] if args.smoke else repo_params["synth"]["eval_people"]
    if not args.smoke:  # the repository's split, not the bench sample's holdout: the default recipe as it is
        overrides["split"] = repo_params["split"]
    with tempfile.TemporaryDirectory(prefix="maskcls-gpu-check-") as tmp:
        root = Path(tmp)
        sample = benchlib.build_sample(root, people, eval_people, overrides)
        print(f"gpu_check: sample {sample}", file=sys.stderr, flush=True)
        runs = [train_cli(root) for _ in range(2)]
        for i, run in enumerate(runs):
            print(f"gpu_check: deterministic run {i + 1}: {run}", file=sys.stderr, flush=True)
        md5s = [r.get("weights_md5") for r in runs]
        determinism = {
            "runs": runs,
            "identical": None not in md5s and len(set(md5s)) == 1,
        }
        speed = []
        for setting in speed_settings(args.smoke):
            cfg = {**setting, "root": str(root), "steps": args.steps}
            try:
                result = benchlib.run_child(Path(__file__), cfg, timeout=600)
            except Exception as exc:
                result = {"setting": setting, "error": str(exc)[-1000:]}
            print(f"gpu_check: {result}", file=sys.stderr, flush=True)
            speed.append(result)
    params = params_mod.load(benchlib.ROOT / "params.yaml")
    result = {
        "command": "bash bench/gpu_check.sh " + " ".join(argv if argv is not None else sys.argv[1:]),
        "smoke": args.smoke,
        "machine": benchlib.machine(load_start) | gpu_info(),
        "config": {
            "device": device,
            "sample": {"people": people, "eval_people": eval_people, **sample},
            "recipe": "params.yaml" + (" with the smoke overlay" if args.smoke else ""),
            "deterministic": params.runtime.deterministic,
            "train_compile_key": has_compile_key(),
            "timed_steps_limit": args.steps,
        },
        "determinism": determinism,
        "speed": speed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not has_compile_key():
        result["config"]["compile_note"] = "params.py TrainParams has no `compile` key: torch.compile not measured"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({"determinism": determinism["identical"], "speed": speed}, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
