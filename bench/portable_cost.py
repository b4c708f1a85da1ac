"""Portable CPU mode (runtime.portable) vs native: the speed it costs, and the bytes it makes the same.

    .venv/bin/python bench/portable_cost.py --out bench/results/portable_cost.json

Speed: training steps (forward, cross-entropy, backward, AdamW step) of timm's efficientnet_lite0 (18 classes,
random weights) on a fixed batch of 32 x 3 x 128 x 96, 2 torch threads, in a fresh process per mode, native
and portable alternating round by round so drift on a shared machine hits both alike. channels_last (the
project default; training uses it on CUDA) and contiguous NCHW (what CPU training in this project runs) are
both timed. The figure is the median step time after warm-up steps.

Bytes: a short deterministic training run (efficientnet_lite0, batch 4 of 3 x 64 x 48, NCHW, 2 AdamW steps,
then an eval forward), md5 of the trained weights and of the logits, in processes whose CPUs differ:
- this machine, native and portable;
- this machine as an AVX2 machine would run natively, simulated by capping ATen, oneDNN and MKL's dispatch;
- portable mode started under that lower cap (it must override it);
- emulated CPUs (qemu-x86_64 user mode, when installed): `-cpu Haswell` (Intel, AVX2, no AVX-512), portable
  and native, and `-cpu EPYC-Rome` (AMD, AVX2, no AVX-512), portable. Their CPUID reports other instruction
  sets, other cache sizes and (EPYC) another vendor, so each library's own detection sees another machine;
  the emulator runs the chosen code with IEEE arithmetic in software, tens of times slower.

`--kernel foreach|single|fused` picks the AdamW update's CPU kernel for every run (foreach, torch's default,
unless given); `--kernel-speed` also times the three side by side in portable mode (NCHW, batch 32).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIM_AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}  # a native AVX2 machine, as far as dispatch goes (MKL: no CNR)
EMULATED = {"haswell": "Haswell", "epyc_rome": "EPYC-Rome"}
# The AdamW update's CPU kernel. foreach (torch's default) and single take sqrt from ATen's unary kernel, which
# hands it to MKL's vector math (VML), not correctly rounded and different per CPU; fused is one ATen kernel
# whose sqrt is the processor's own (IEEE, correctly rounded).
KERNELS = {"foreach": {"foreach": True}, "single": {"foreach": False}, "fused": {"fused": True}}


# --- child processes ------------------------------------------------------------------------------------------


def child(args) -> dict:
    from maskcls import portable

    portable.apply(args.mode == "portable")  # the code path the stages use, before torch is imported
    if args.simulate_avx2:
        os.environ.update(SIM_AVX2)
    import timm
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"mode": args.mode, "capability": torch.backends.cpu.get_cpu_capability(), "cpu": portable.cpu_model()}
    out["switches"] = {k: os.environ.get(k) for k in portable.SWITCHES}
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=18, drop_rate=0.2)
    model = model.to(memory_format=layout).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4, **KERNELS[args.kernel])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, args.height, args.width, generator=gen).contiguous(memory_format=layout)
    y = torch.randint(0, 18, (args.batch,), generator=gen)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if args.job == "time":
        times = []
        for _ in range(args.warmup + args.steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out["step_s"] = times[args.warmup :]
        return out
    losses = [step().item() for _ in range(args.steps)]
    model.eval()
    with torch.no_grad():
        logits = model(x)
    weights = b"".join(p.detach().contiguous().numpy().tobytes() for p in model.state_dict().values())
    out |= {
        "losses": [float.hex(v) for v in losses],
        "weights_md5": hashlib.md5(weights).hexdigest(),
        "logits_md5": hashlib.md5(logits.contiguous().numpy().tobytes()).hexdigest(),
    }
    return out


def run_child(
    job: str,
    mode: str,
    *,
    steps: int,
    warmup: int = 0,
    batch: int = 32,
    size: tuple[int, int] = (128, 96),
    threads: int = 2,
    channels_last: bool = True,
    simulate_avx2: bool = False,
    qemu_cpu: str | None = None,
    kernel: str = "foreach",
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--job",
        job,
        "--mode",
        mode,
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
        "--height",
        str(size[0]),
        "--width",
        str(size[1]),
        "--kernel",
        kernel,
    ]
    cmd += ["--channels-last"] if channels_last else []
    cmd += ["--simulate-avx2"] if simulate_avx2 else []
    if qemu_cpu:
        cmd = [shutil.which("qemu-x86_64"), "-cpu", qemu_cpu, *cmd]
    env = {k: v for k, v in os.environ.items() if k not in (*SIM_AVX2, "MKL_CBWR", "MASKCLS_CPU_MODE")}
    env |= {"PYTHONPATH": str(ROOT / "src"), "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["process_s"] = round(time.perf_counter() - start, 1)
    if qemu_cpu:  # /proc/cpuinfo (hence "cpu") is the host's under qemu-user; CPUID is the emulated model's
        out["emulated_cpu"] = qemu_cpu
    return out


# --- the measurements -----------------------------------------------------------------------------------------


def measure_speed(rounds: int, steps: int, warmup: int) -> dict:
    results = {}
    for layout, cl in (("channels_last", True), ("contiguous", False)):
        samples = {"native": [], "portable": []}
        rounds_median = {"native": [], "portable": []}
        capability = {}
        for r in range(rounds):
            order = ("native", "portable") if r % 2 == 0 else ("portable", "native")
            for mode in order:
                out = run_child("time", mode, steps=steps, warmup=warmup, channels_last=cl)
                samples[mode] += out["step_s"]
                rounds_median[mode].append(round(statistics.median(out["step_s"]), 4))
                capability[mode] = out["capability"]
                print(
                    f"speed {layout} round {r} {mode}: median {statistics.median(out['step_s']):.3f} s/step",
                    file=sys.stderr,
                )
        med = {mode: statistics.median(v) for mode, v in samples.items()}
        results[layout] = {
            "capability": capability,
            "median_step_s": {m: round(v, 4) for m, v in med.items()},
            "min_step_s": {m: round(min(v), 4) for m, v in samples.items()},
            "images_per_s": {m: round(32 / v, 1) for m, v in med.items()},
            "portable_slowdown": round(med["portable"] / med["native"], 3),
            "portable_slowdown_of_min": round(min(samples["portable"]) / min(samples["native"]), 3),
            "round_medians_s": rounds_median,
            "timed_steps_per_mode": len(samples["native"]),
        }
    return results


# Small enough for the emulator (tens of times slower than the host): the same for every run compared.
BYTES_RUN = {"batch": 4, "size": (64, 48), "channels_last": False}


def measure_kernel_speed(rounds: int, steps: int, warmup: int) -> dict:
    """Portable mode, NCHW: the AdamW update's kernels side by side, alternating round by round."""
    samples = {k: [] for k in KERNELS}
    for r in range(rounds):
        for kernel in list(KERNELS)[:: 1 if r % 2 == 0 else -1]:
            out = run_child("time", "portable", steps=steps, warmup=warmup, channels_last=False, kernel=kernel)
            samples[kernel] += out["step_s"]
            print(
                f"kernel speed round {r} {kernel}: median {statistics.median(out['step_s']):.3f} s/step",
                file=sys.stderr,
            )
    return {
        "config": {"mode": "portable", "layout": "contiguous", "batch": 32, "input": [3, 128, 96], "rounds": rounds},
        "median_step_s": {k: round(statistics.median(v), 4) for k, v in samples.items()},
        "min_step_s": {k: round(min(v), 4) for k, v in samples.items()},
        "timed_steps_per_kernel": len(samples["fused"]),
    }


def measure_bytes(steps: int, emulate: bool, kernel: str = "foreach") -> dict:
    kw = {"steps": steps, "kernel": kernel, **BYTES_RUN}
    runs = {
        "host_native": run_child("bytes", "native", **kw),
        "host_native_simulated_avx2": run_child("bytes", "native", simulate_avx2=True, **kw),
        "host_portable": run_child("bytes", "portable", **kw),
        "host_portable_under_simulated_avx2": run_child("bytes", "portable", simulate_avx2=True, **kw),
    }
    if emulate and shutil.which("qemu-x86_64"):
        for name, cpu in EMULATED.items():
            for mode in ("portable", "native") if name == "haswell" else ("portable",):
                print(f"bytes: qemu -cpu {cpu} {mode} ...", file=sys.stderr)
                runs[f"qemu_{name}_{mode}"] = run_child("bytes", mode, qemu_cpu=cpu, **kw)
    for name, out in runs.items():
        print(
            f"bytes {name}: {out['capability']} weights {out['weights_md5']} logits {out['logits_md5']}",
            file=sys.stderr,
        )
    ref = runs["host_portable"]
    portable_runs = [n for n in runs if n.endswith("portable") or "portable_under" in n]
    return {
        "config": {
            "model": "efficientnet_lite0",
            "batch": BYTES_RUN["batch"],
            "input": [3, *BYTES_RUN["size"]],
            "adamw_steps": steps,
            "adamw_kernel": kernel,
            "threads": 2,
            "layout": "contiguous",
        },
        "runs": runs,
        "portable_all_identical": all(
            runs[n]["weights_md5"] == ref["weights_md5"] and runs[n]["logits_md5"] == ref["logits_md5"]
            for n in portable_runs
        ),
        "portable_runs_compared": portable_runs,
        "native_equals_portable_on_host": runs["host_native"]["weights_md5"] == ref["weights_md5"],
        "native_equals_simulated_avx2_native": (
            runs["host_native"]["weights_md5"] == runs["host_native_simulated_avx2"]["weights_md5"]
        ),
        "emulator": (
            subprocess.run(["qemu-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
            if shutil.which("qemu-x86_64")
            else None
        ),
    }


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/portable_cost.json")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--byte-steps", type=int, default=2)
    parser.add_argument("--no-emulate", action="store_true", help="skip the qemu-emulated CPUs")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="measure speed again, keep the file's bytes part")
    parser.add_argument("--kernel", choices=list(KERNELS), default="foreach", help="the AdamW update's CPU kernel")
    parser.add_argument(
        "--kernel-speed", action="store_true", help="also time the AdamW kernels side by side (portable, NCHW)"
    )
    # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--job", choices=["time", "bytes"], default="time", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["native", "portable"], default="native", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=96, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--simulate-avx2", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    import torch

    from maskcls import portable

    report = {
        "command": "python bench/portable_cost.py --out bench/results/portable_cost.json",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "machine": {
            "cpu": portable.cpu_model(),
            "cpu_flags": cpu_flags(),
            "logical_cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "note": "2 logical CPUs shared with other work: absolute times are noisy, the ratio less so",
        },
        "switches": portable.SWITCHES,
    }
    if not args.skip_speed:
        report["speed"] = {
            "config": {
                "model": "efficientnet_lite0",
                "batch": 32,
                "input": [3, 128, 96],
                "threads": 2,
                "optimizer": "AdamW",
                "rounds": args.rounds,
                "steps_per_round": args.steps,
                "warmup_steps": args.warmup,
            },
            **measure_speed(args.rounds, args.steps, args.warmup),
        }
    if args.kernel_speed:
        report["kernel_speed"] = measure_kernel_speed(args.rounds, args.steps, args.warmup)
    if args.speed_only:
        report["bytes"] = json.loads(args.out.read_text())["bytes"]
    else:
        report["bytes"] = measure_bytes(args.byte_steps, emulate=not args.no_emulate, kernel=args.kernel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: report[k] for k in ("speed", "kernel_speed") if k in report}, indent=2))


if __name__ == "__main__":
    main()
