import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maskcls import submission
from maskcls.cli import app
from maskcls.errors import DataError


@pytest.fixture
def info():
    return pd.DataFrame({"ImageID": [f"{i:040x}.jpg" for i in range(5)], "ans": 0})


def test_valid_submission_passes_and_is_written(tmp_path, info):
    sub = submission.build(info, np.array([0, 17, 3, 4, 5]))
    submission.write(tmp_path / "sub.csv", sub, info)
    info.to_csv(tmp_path / "info.csv", index=False)
    submission.check_file(tmp_path / "sub.csv", tmp_path / "info.csv")
    assert (tmp_path / "sub.csv").read_text().splitlines()[0] == "ImageID,ans"


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda s: s.iloc[:-1], "4 rows, info.csv has 5"),
        (lambda s: s.iloc[::-1].reset_index(drop=True), "order differs"),
        (lambda s: s.assign(ans=[0, 18, 1, 1, 1]), "outside integers 0..17"),
        (lambda s: s.assign(ans=[0, -1, 1, 1, 1]), "outside integers 0..17"),
        (lambda s: s.assign(ans=[0, 1.5, 1, 1, 1]), "outside integers 0..17"),
        (lambda s: s.rename(columns={"ans": "label"}), "columns"),
        (lambda s: s.reset_index(), "no index column"),
    ],
)
def test_broken_submissions_are_refused_and_never_written(tmp_path, info, mutate, words):
    sub = mutate(submission.build(info, np.arange(5)))
    with pytest.raises(DataError, match=words):
        submission.write(tmp_path / "sub.csv", sub, info)
    assert not (tmp_path / "sub.csv").exists()


def test_check_submission_cli_exit_codes(tmp_path, info):
    info.to_csv(tmp_path / "info.csv", index=False)
    submission.build(info, np.arange(5)).to_csv(tmp_path / "good.csv", index=False)
    submission.build(info, np.arange(5)).iloc[:3].to_csv(tmp_path / "bad.csv", index=False)
    runner = CliRunner()
    good = runner.invoke(app, ["check-submission", str(tmp_path / "good.csv"), str(tmp_path / "info.csv")])
    assert good.exit_code == 0
    result = runner.invoke(app, ["check-submission", str(tmp_path / "bad.csv"), str(tmp_path / "info.csv")])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError) and "bad.csv" in str(result.exception)
