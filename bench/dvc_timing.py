"""`dvc repro` and DVC's experiment queue on a shrunk sample, in a temporary copy of this repository (CPU).

    .venv/bin/python bench/dvc_timing.py --out bench/results/dvc_timing.json

The copy holds the tracked files of this checkout (`git ls-files`, as a clone would) in a fresh git repository
with its own DVC cache; the virtual environment is this checkout's. params.yaml is the repository's with a
smaller sample and shorter training (the default model, input size, augmentations, threads and workers stay):

1. `dvc repro` from clean (no dvc.lock), with the time of each stage from DVC's own log lines;
2. the incremental `dvc repro` after an ensemble-only change (`ensemble.method: hard`), then after an
   age-threshold change (`relabel_age.old_from: 57`): which stages ran, how long it took;
3. two tiny queued experiments (`dvc exp run --queue`, one epoch each, each its own learning rate so neither
   comes from the run-cache), run by `dvc queue start -j 1` and by `-j 2`, first with the params' thread and
   worker settings, then with one torch thread, no DataLoader workers and OMP_WAIT_POLICY=PASSIVE per job.
   The four queue runs alternate as the other benches' variants do; the total is from `queue start` until both
   experiments are committed (git refs appear; polled cheaply, not through `dvc queue status`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT
GIT_USER = ("-c", "user.name=bench", "-c", "user.email=bench@localhost")
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")
SKIP_LINE = re.compile(r"^Stage '([^']+)' didn't change, skipping")
CACHED_LINE = re.compile(r"^Stage '([^']+)' is cached - skipping run")

# Queue settings compared: params set on each queued experiment, and the environment of its jobs.
QUEUE_SETTINGS = {
    "params_defaults": {"set": {}, "env": {}},
    "threads1_workers0_passive": {
        "set": {"train.threads": 1, "train.num_workers": 0},
        "env": {"OMP_WAIT_POLICY": "PASSIVE"},
    },
}


# --tiny: the tests' tiny backbone and inputs, so the whole script runs in a few minutes.
TINY = {
    "cache": {"height": 32, "width": 24},
    "models": {"multihead": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"}},
}


def env_with_venv(extra: dict | None = None) -> dict:
    """DVC stages call `maskcls`: this environment's bin first on PATH."""
    env = benchlib.child_env(extra)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # the venv's editable install is what the stages import
    return env


def sh(cwd: Path, *cmd: str, env: dict | None = None, check: bool = True) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env or env_with_venv(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def dvc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return sh(cwd, "git", *GIT_USER, *args, check=check)


def copy_repo(dest: Path, overrides: dict) -> Path:
    """The tracked files of this checkout as a fresh git repository, params shrunk, no dvc.lock."""
    from maskcls import params as params_mod

    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    data = benchlib.merged(params_mod.read_yaml(dest / "params.yaml"), overrides)
    params_mod.dump(data, dest / "params.yaml")
    params_mod.load(dest / "params.yaml")  # a broken overlay fails here, not inside dvc
    sh(dest, "git", "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "bench baseline")
    sh(dest, *dvc_cmd("config", "--local", "remote.storage.url", str(dest.parent / "storage")))
    return dest


def timed_repro(cwd: Path) -> dict:
    """`dvc repro`, streamed: total seconds, stages run (with seconds from one 'Running stage' line to the
    next), stages skipped and stages restored from the run-cache."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        dvc_cmd("repro"), cwd=cwd, env=env_with_venv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ran: list[list] = []
    skipped, cached, tail = [], [], []
    for line in proc.stdout:  # type: ignore[union-attr]
        now = time.perf_counter() - start
        tail = (tail + [line.rstrip()])[-40:]
        if m := STAGE_LINE.match(line):
            ran.append([m.group(1), now])
        elif m := SKIP_LINE.match(line):
            skipped.append(m.group(1))
        elif m := CACHED_LINE.match(line):
            cached.append(m.group(1))
    proc.wait()
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("dvc repro failed:\n" + "\n".join(tail))
    stages = {}
    for i, (name, t0) in enumerate(ran):
        t1 = ran[i + 1][1] if i + 1 < len(ran) else total
        stages[name] = round(t1 - t0, 1)
    return {"seconds": round(total, 1), "ran": stages, "skipped": skipped, "from_run_cache": cached}


def set_params(cwd: Path, changes: dict) -> None:
    from maskcls import params as params_mod

    data = benchlib.merged(params_mod.read_yaml(cwd / "params.yaml"), changes)
    params_mod.dump(data, cwd / "params.yaml")


def exp_refs(cwd: Path) -> set[str]:
    """Names of the experiments committed so far (their git refs), cheaply."""
    out = git(cwd, "for-each-ref", "--format=%(refname)", "refs/exps", check=False)
    return {line.rsplit("/", 1)[-1] for line in out.split()}


def wait_for(cwd: Path, names: set[str], timeout: float, poll: float = 1.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if names <= exp_refs(cwd):
            return time.perf_counter() - start
        time.sleep(poll)
    status = sh(cwd, *dvc_cmd("queue", "status"), check=False)
    raise RuntimeError(f"queued experiments {sorted(names)} not done after {timeout:.0f}s:\n{status}")


def wait_for_workers_to_leave(cwd: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "0 active, 0 idle" in sh(cwd, *dvc_cmd("queue", "status"), check=False):
            return
        time.sleep(2)


def queue_run(cwd: Path, label: str, jobs: int, setting: dict, lrs: list[float], timeout: float) -> dict:
    """Queue one experiment per learning rate with `setting`, start `jobs` workers, time until all are done."""
    names = []
    for lr in lrs:
        name = f"{label}-lr{lr:.6f}".replace(".", "p")
        sets = {"train.lr": lr, "train.epochs": 1, "train.warmup_epochs": 0, **setting["set"]}
        args = [x for k, v in sets.items() for x in ("-S", f"{k}={v}")]
        sh(cwd, *dvc_cmd("exp", "run", "--queue", "-n", name, *args))
        names.append(name)
    env = env_with_venv(setting["env"])
    start = time.perf_counter()
    sh(cwd, *dvc_cmd("queue", "start", "-j", str(jobs)), env=env)
    try:
        seconds = time.perf_counter() - start + wait_for(cwd, set(names), timeout)
    except BaseException:
        # Only then: a stop is a broadcast that a later worker of the same name would receive and obey.
        sh(cwd, *dvc_cmd("queue", "stop", "--kill"), check=False)
        raise
    finally:
        wait_for_workers_to_leave(cwd)  # the workers leave by themselves once the queue is empty
    status = sh(cwd, *dvc_cmd("queue", "status"), check=False)
    failed = [n for n in names if re.search(rf"{re.escape(n)}\s.*Failed", status)]
    return {"jobs": jobs, "experiments": names, "seconds": round(seconds, 1), "failed": failed}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "dvc_timing.json")
    ap.add_argument("--people", type=int, default=60)
    ap.add_argument("--eval-people", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the four queue runs")
    ap.add_argument("--no-queue", action="store_true", help="skip the experiment-queue part")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one queue run may take")
    ap.add_argument("--keep", type=Path, help="build the copy here and keep it (for inspection)")
    ap.add_argument("--tiny", action="store_true", help="timm's test_efficientnet at 32x24: checks the script quickly")
    args = ap.parse_args(argv)

    load_start = benchlib.load_average()
    started = time.perf_counter()
    overrides = {
        "synth": {"people": args.people, "eval_people": args.eval_people},
        "split": {"method": "holdout", "holdout_ratio": 0.2},
        "train": {"epochs": args.epochs, "folds": [0]},
    }
    if args.epochs <= 1:
        overrides["train"]["warmup_epochs"] = 0
    if args.tiny:
        overrides = benchlib.merged(overrides, TINY)
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-dvc-") as tmp:
        base = args.keep or Path(tmp)
        root = copy_repo(base / "repo", overrides)
        repro = {"clean": timed_repro(root)}
        print(f"clean: {repro['clean']}", file=sys.stderr, flush=True)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "baseline outputs")
        set_params(root, {"ensemble": {"method": "hard"}})
        repro["ensemble_method_hard"] = timed_repro(root)
        print(f"ensemble: {repro['ensemble_method_hard']}", file=sys.stderr, flush=True)
        set_params(root, {"relabel_age": {"old_from": 57}})
        repro["age_old_from_57"] = timed_repro(root)
        print(f"age: {repro['age_old_from_57']}", file=sys.stderr, flush=True)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "queue baseline")

        queue: dict = {}
        if not args.no_queue:
            runs = [(s, j) for s in QUEUE_SETTINGS for j in (1, 2)]
            labels = [f"{s}-j{j}" for s, j in runs]
            results: dict[str, list[dict]] = {label: [] for label in labels}
            lr_index = 0
            for r, label in benchlib.alternating(labels, args.rounds):
                setting_name, jobs = label.rsplit("-j", 1)
                lrs = [1e-3 * (1 + 0.01 * (lr_index + k)) for k in range(2)]  # new params: no run-cache hits
                lr_index += 2
                out = queue_run(root, f"r{r}-{label}", int(jobs), QUEUE_SETTINGS[setting_name], lrs, args.timeout)
                results[label].append(out)
                print(f"queue round {r} {label}: {out}", file=sys.stderr, flush=True)
            for setting_name, setting in QUEUE_SETTINGS.items():
                j1 = [x["seconds"] for x in results[f"{setting_name}-j1"]]
                j2 = [x["seconds"] for x in results[f"{setting_name}-j2"]]
                queue[setting_name] = {
                    "params_set": setting["set"],
                    "env": setting["env"],
                    "j1_seconds": j1,
                    "j2_seconds": j2,
                    "j2_vs_j1": benchlib.ratio(benchlib.median(j2), benchlib.median(j1)),
                    "j2_not_slower": benchlib.median(j2) <= benchlib.median(j1),
                    "failed": [f for j in ("j1", "j2") for x in results[f"{setting_name}-{j}"] for f in x["failed"]],
                }
            fastest = min(results, key=lambda k: benchlib.median([x["seconds"] for x in results[k]]))
            queue["fastest"] = fastest

    result = {
        "command": "python bench/dvc_timing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": benchlib.machine(load_start, "shared machine: other processes ran beside the benchmark"),
        "config": {
            "params_overrides": overrides,
            "queued_experiment": "train.lr unique per experiment, train.epochs 1; retrains train, predict, "
            "ensemble and evaluate",
            "queue_rounds": args.rounds,
        },
        "repro": repro,
        "queue": queue,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["targets"] = {"ensemble_only_rerun_under_30s": repro["ensemble_method_hard"]["seconds"] < 30}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("repro", "queue", "targets")}, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
