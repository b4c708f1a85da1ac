"""The benchmark scripts: their timing and summary logic, the page they write, and the GPU check's smoke mode."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import benchlib  # noqa: E402
import dvc_timing  # noqa: E402
import report  # noqa: E402
import train_throughput  # noqa: E402


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


def test_summary_pools_rounds_and_sets_the_first_step_apart():
    runs = [
        {"step_s": [5.0, 1.0, 1.0, 2.0], "wait_s": [4.0, 0.1, 0.1, 0.1], "first_batch_s": 4.0, "weights_md5": "x"},
        {"step_s": [6.0, 1.0, 1.0, 1.0], "wait_s": [5.0, 0.1, 0.1, 0.1], "first_batch_s": 5.0, "weights_md5": "x"},
    ]
    out = train_throughput.summarise("t", runs, 32, "what", {"kind": "train", "root": "/x", "steps": 3})
    assert out["median_step_s"] == 1.0 and out["images_per_s"] == 32.0
    assert out["first_step_s"] == [5.0, 6.0] and out["timed_steps"] == 6
    assert out["same_bytes_every_round"] is True and "root" not in out["config"]
    assert out["data_wait_share"] == pytest.approx(0.6 / 7, abs=1e-4)


def test_ratios_name_the_targets():
    def v(ips):
        return {"images_per_s": ips}

    train = {"bare": v(100.0), "trainer": v(80.0), "trainer_cl": v(95.0), "trainer_proposed": v(92.0)}
    predict = {"bare_predict": v(200.0), "predict": v(190.0)}
    ratios = train_throughput.analyse(train, predict)
    assert ratios["train"]["trainer_vs_bare"] == 0.8
    assert ratios["train"]["target_trainer_at_least_0.9x_bare"] is False
    assert ratios["train"]["target_met_by_proposed"] is True
    assert ratios["train"]["trainer_cl"] == {"vs_trainer": 1.188, "vs_bare": 0.95}
    assert ratios["predict"]["target_predict_at_least_0.9x_bare"] is True


def test_dvc_log_lines_are_parsed():
    assert dvc_timing.STAGE_LINE.match("Running stage 'train@multihead-0':").group(1) == "train@multihead-0"
    assert dvc_timing.SKIP_LINE.match("Stage 'synth' didn't change, skipping").group(1) == "synth"


def test_the_page_is_what_the_results_make():
    """docs/benchmarks.md is generated: `make bench` writes the results and the page together."""
    assert (REPO / "docs/benchmarks.md").read_text() == report.render(REPO / "bench/results")


def test_the_page_says_gpu_figures_are_pending_without_a_gpu_run(tmp_path):
    page = report.render(tmp_path)  # no results at all
    assert "Pending: no GPU was available" in page and report.GPU_COMMAND in page
    smoke = {"smoke": True, "determinism": {}, "speed": [], "machine": {}}
    (tmp_path / "gpu_check.json").write_text(json.dumps(smoke))
    assert "Pending: no GPU was available" in report.render(tmp_path)  # a smoke run is no GPU figure


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
