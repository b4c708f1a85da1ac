"""The benchmark helpers (bench/benchlib.py) and the GPU check's smoke mode on the CPU."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import benchlib  # noqa: E402


def test_variants_alternate_and_reverse_every_other_round():
    order = list(benchlib.alternating(["a", "b", "c"], 3))
    assert order == [(0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c")]


def test_timed_loader_records_steps_waits_and_stops_at_its_limit():
    ticks = iter(range(100))
    batches = [([1, 2], "a"), ([3, 4], "b"), ([5, 6], "c"), ([7, 8], "d")]  # (images, targets)
    timed = benchlib.TimedLoader(batches, limit=3, clock=lambda: float(next(ticks)))
    assert len(timed) == 3
    seen = [targets for _, targets in timed]  # clock: asked 0, got 1, asked 2, got 3, asked 4, got 5, asked 6
    assert seen == ["a", "b", "c"]
    rep = timed.report()
    assert rep["step_s"] == [2.0, 2.0, 2.0] and rep["wait_s"] == [1.0, 1.0, 1.0]
    assert rep["first_batch_s"] == 1.0 and rep["images"] == [2, 2, 2]


@pytest.mark.slow
def test_gpu_check_smoke_runs_the_whole_script_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        ["bash", str(REPO / "bench/gpu_check.sh"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["smoke"] is True and data["config"]["device"] == "cpu"
    assert data["determinism"]["identical"] is True, data["determinism"]
    assert len(data["speed"]) == 2
    for run in data["speed"]:
        assert "error" not in run, run
        assert run["images_per_s"] > 0 and run["runtime"]["device"] == "cpu"
        assert run["peak_memory_mib"] is None  # CPU: no CUDA memory figure
    assert "train_compile_key" in data["config"]
