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


# --- the benchmark scripts of `make bench` and the page they make (docs/benchmarks.md) ---------------------------


def run_bench(script: str, *args: str, timeout: float = 600) -> None:
    cmd = [sys.executable, str(REPO / "bench" / script), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]


def test_report_without_results_says_what_is_pending(tmp_path):
    import report

    text = report.render(tmp_path)
    assert "Not measured yet" in text
    assert "GPU figures pending: no GPU was available" in text


def test_report_shows_the_gpu_check_figures_when_they_exist(tmp_path):
    import report

    md5 = "0123456789abcdef" * 2
    gpu = {
        "command": "bash bench/gpu_check.sh",
        "smoke": False,
        "machine": {"gpu": "Some GPU", "torch": "2.14.1", "cuda": "13.0", "date": "2026-01-01"},
        "determinism": {"runs": [{"weights_md5": md5}, {"weights_md5": md5}], "identical": True},
        "speed": [
            {"setting": {"amp": "bf16", "channels_last": True}, "images_per_s": 5123.0, "peak_memory_mib": 2048.0,
             "gpu_utilisation": {"mean_pct": 81, "max_pct": 99}, "warmup_epoch_s": 3.5},
            {"setting": {"amp": "fp16", "channels_last": False}, "error": "RuntimeError: no kernel"},
        ],
    }  # fmt: skip
    (tmp_path / "gpu_check.json").write_text(json.dumps(gpu))
    section = report.render(tmp_path).split("## GPU check", 1)[1]
    assert "pending" not in section and "Some GPU" in section
    assert "5,123" in section and "**identical**" in section and "error: RuntimeError" in section


def test_train_throughput_quick_mode_and_its_page(tmp_path):
    """The lockstep trainer / predict comparison on the tiny model: every variant reports, the trainer gives the
    same bytes twice, and the page renders from the result."""
    import report

    out = tmp_path / "train_throughput.json"
    run_bench("train_throughput.py", "--quick", "--tiny", "--people", "20", "--out", str(out))
    data = json.loads(out.read_text())
    an = data["analysis"]
    assert set(an["train"]) == {"bare", "trainer", "trainer_again"}
    assert set(an["predict"]) == {"bare_predict", "predict"}
    assert all(v["images_per_s"] > 0 and v["timed_steps"] == 3 for v in an["train"].values())
    assert all(v["images_per_s"] > 0 and v["timed_steps"] == 2 for v in an["predict"].values())
    trainer = an["train"]["trainer"]  # params.yaml's runtime: deterministic, without the NaN fill, portable
    assert trainer["deterministic"] is True and trainer["fill_uninitialized_memory"] is False
    assert trainer["capability"] == "AVX2"
    assert an["same_bytes"] == {"trainer == trainer_again": True}
    assert an["trainer_vs_fastest_bare"] > 0
    text = report.render(tmp_path)
    assert "## 1. Training throughput" in text and "## 2. Prediction throughput" in text


@pytest.mark.slow
def test_backbone_speed_quick_mode(tmp_path):
    out = tmp_path / "backbone_speed.json"
    run_bench("backbone_speed.py", "--quick", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [r["backbone"] for r in rows] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert rows[0]["relative_to_lite0"] == 1.0 and all(r["images_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_dvc_timing_tiny_mode(tmp_path):
    """`dvc repro` from clean and the two incremental reruns, then the four queue runs, on the tiny model."""
    import report

    run_bench("dvc_timing.py", "--tiny", "--people", "30", "--eval-people", "8", "--epochs", "1",
              "--out", str(tmp_path / "dvc_timing.json"), timeout=1500)  # fmt: skip
    data = json.loads((tmp_path / "dvc_timing.json").read_text())
    repro = data["repro"]
    assert {s for s, _ in repro["clean"]["ran"]} >= {"check_params", "synth", "cache", "train@multihead-0"}
    ensemble = {s for s, _ in repro["ensemble_method_hard"]["ran"]}
    assert {"check_params", "ensemble", "evaluate"} <= ensemble and not any("train" in s for s in ensemble)
    age = {s for s, _ in repro["age_old_from"]["ran"]}
    assert "relabel_age" in age and not age & {"synth", "validate", "split", "cache"}  # train: if a target moved
    for setting in ("params_defaults", "threads1_workers0_passive"):
        q = data["queue"][setting]
        assert len(q["j1_seconds"]) == 1 and len(q["j2_seconds"]) == 1 and q["j2_vs_j1"] > 0
    assert "## 5. Experiment queue" in report.render(tmp_path)


@pytest.mark.slow
def test_backbone_equal_time_with_a_tiny_budget(tmp_path):
    out = tmp_path / "backbone_equal_time.json"
    run_bench("backbone_equal_time.py", "--budget-s", "5", "--people", "20", "--backbones", "efficientnet_lite0",
              "--out", str(out))  # fmt: skip
    (run,) = json.loads(out.read_text())["runs"]
    assert run["backbone"] == "efficientnet_lite0" and run["epochs_planned"] >= 1 and run["epochs_reached"] >= 1
    assert 0 <= run["holdout"]["f1"] <= 1 and 0 <= run["val_f1"] <= 1
