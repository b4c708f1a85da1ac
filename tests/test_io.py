"""Atomic writes: an output appears whole or not at all, and a killed run's temporaries do not pile up."""

import pytest

from maskcls import io


def test_a_failed_write_keeps_the_previous_output(tmp_path):
    out = tmp_path / "cache"
    with io.atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "train.npy").write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "train.npy").write_text("half")
        raise RuntimeError("killed")
    assert (out / "train.npy").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_writing_an_output_removes_the_temporaries_a_killed_run_left(tmp_path):
    killed = tmp_path / ".eval.k3j_9x2a.tmp"  # what SIGKILL leaves of an atomic_path(tmp_path / "eval")
    (killed / "eval").mkdir(parents=True)
    (tmp_path / ".eval.npz.k3j_9x2a.tmp").mkdir()  # another output's: `eval.npz`
    (tmp_path / ".eval2.k3j_9x2a.tmp").mkdir()  # and `eval2`'s
    io.write_text(tmp_path / "eval", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".eval.npz.k3j_9x2a.tmp", ".eval2.k3j_9x2a.tmp", "eval"]
