"""Progress lines when no terminal is attached: steady interval, rate and time left."""

import io

import pytest

from maskcls import progress as progress_mod
from maskcls.progress import progress


class FakeClock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_lines_at_a_steady_interval_with_rate_and_time_left(monkeypatch):
    monkeypatch.setenv("MASKCLS_PROGRESS_SECONDS", "10")
    stream = io.StringIO()  # not a terminal
    batches = [[0] * 32] * 12  # 12 batches of 32 images, 5 s each
    seen = list(progress(batches, "train epoch 1/6", size=len, stream=stream, clock=FakeClock(5.0)))
    assert seen == batches
    lines = stream.getvalue().splitlines()
    # the first call starts the clock at 5 s; a line every 10 s of the 60 s loop
    assert len(lines) == 6
    assert lines[0] == "train epoch 1/6: 2/12 steps, 6.4 img/s, about 50s left"
    assert lines[-1].startswith("train epoch 1/6: 12/12 steps")


def test_zero_turns_the_lines_off_and_a_bad_value_is_an_error(monkeypatch):
    monkeypatch.setenv("MASKCLS_PROGRESS_SECONDS", "0")
    stream = io.StringIO()
    list(progress(range(100), "x", stream=stream, clock=FakeClock(60.0)))
    assert stream.getvalue() == ""
    monkeypatch.setenv("MASKCLS_PROGRESS_SECONDS", "soon")
    with pytest.raises(ValueError, match="MASKCLS_PROGRESS_SECONDS"):
        list(progress(range(3), "x", stream=io.StringIO()))


def test_durations_read_in_minutes():
    assert progress_mod._duration(59) == "59s" and progress_mod._duration(125) == "2m05s"


def test_warm_up_epochs_are_named_in_the_epoch_line():
    from maskcls.training.loop import summary_line

    record = {"epoch": 1, "train/loss/total": 1.0, "val/class18/f1": 0.1, "val/class18/accuracy": 0.2, "lr": 1.3e-5}
    assert "lr 1.30e-05 (warm-up 1/1)" in summary_line("m fold0", 6, record, "class18", True, 3.0, warmup_epochs=1)
    assert "warm-up" not in summary_line("m fold0", 6, {**record, "epoch": 2}, "class18", True, 3.0, warmup_epochs=1)
