"""Random damage to a valid competition folder: validate refuses it, with DataError only, naming the damage."""

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rawsample
from maskcls import layout
from maskcls.errors import DataError
from maskcls.stages import validate

pytestmark = pytest.mark.filterwarnings("ignore::maskcls.scan.DataWarning")

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=6)  # what a csv cell can hold
JUNK_EXT = st.sampled_from(["", ".jpg", ".PNG", ".jpeg", ".txt", ".csv"])
# Each problem line starts with the file, folder or csv line it is about.
PROBLEM_LINE = re.compile(r"^  (train/|eval/|\.\.\. and \d+ more$)")


def photos(raw: Path) -> list[Path]:
    return [p for f in rawsample.folders(raw) for p in sorted(f.iterdir()) if not p.name.startswith(".")]


def all_images(raw: Path) -> list[Path]:
    return photos(raw) + rawsample.eval_images(raw)


def rel(raw: Path, path: Path) -> str:
    return path.relative_to(raw).as_posix()


# Each corruption damages the folder and returns the text the report must then contain.


def delete_file(raw, data):
    path = data.draw(st.sampled_from(all_images(raw)))
    path.unlink()
    if path.parent.parent == raw / layout.TRAIN_IMAGES:  # reported as a missing photo, whatever its extension
        return f"{rel(raw, path.parent)}/{path.name.rpartition('.')[0]}.*"
    return path.name


def rename_file(raw, data):
    path = data.draw(st.sampled_from(all_images(raw)))
    new = path.with_name("x" + data.draw(NAME) + data.draw(JUNK_EXT))
    path.rename(new)
    return rel(raw, new)


def truncate_file(raw, data):
    path = data.draw(st.sampled_from(all_images(raw)))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: data.draw(st.integers(0, max(size - 1, 0)))])
    return rel(raw, path)


def zero_file(raw, data):
    csvs = [raw / layout.TRAIN_CSV, raw / layout.EVAL_CSV]
    path = data.draw(st.sampled_from(all_images(raw) + csvs))
    path.write_bytes(b"")
    return rel(raw, path)


def drop_row(raw, data):
    if data.draw(st.booleans()):
        csv = rawsample.read_train(raw)
        i = data.draw(st.integers(0, len(csv) - 1))
        rawsample.write_train(raw, csv.drop(index=i))
        return csv.at[i, "path"]
    info = rawsample.read_info(raw)
    i = data.draw(st.integers(0, len(info) - 1))
    rawsample.write_info(raw, info.drop(index=i))
    return info.at[i, "ImageID"]


def duplicate_row(raw, data):
    train = data.draw(st.booleans())
    table = rawsample.read_train(raw) if train else rawsample.read_info(raw)
    i = data.draw(st.integers(0, len(table) - 1))
    (rawsample.write_train if train else rawsample.write_info)(
        raw, pd.concat([table, table.iloc[[i]]], ignore_index=True)
    )
    return f"line {len(table) + 2}"


BAD_VALUES = {
    "gender": TEXT.filter(lambda v: v not in layout.GENDERS),
    "age": st.one_of(
        st.integers(-5, 0).map(str),
        st.integers(101, 10_000).map(str),
        TEXT.filter(lambda v: not v.isascii() or not v.isdigit()),
    ),
    "id": st.sampled_from(["", "00 01", "0001#2", "a/b"]),
    "path": NAME.map(lambda v: f"missing_{v}"),
}


def alter_row(raw, data):
    if data.draw(st.booleans()):
        csv = rawsample.read_train(raw)
        i = data.draw(st.integers(0, len(csv) - 1))
        column = data.draw(st.sampled_from(sorted(BAD_VALUES)))
        csv.loc[i, column] = data.draw(BAD_VALUES[column])
        rawsample.write_train(raw, csv)
        return f"{layout.TRAIN_CSV} line {i + 2}"
    info = rawsample.read_info(raw)
    i = data.draw(st.integers(0, len(info) - 1))
    info.loc[i, "ImageID"] = "f" + data.draw(NAME) + ".jpg"
    rawsample.write_info(raw, info)
    return f"{layout.EVAL_CSV} line {i + 2}"


def add_junk(raw, data):
    where = data.draw(st.sampled_from([*rawsample.folders(raw), raw / layout.TRAIN_IMAGES, raw / layout.EVAL_IMAGES]))
    path = where / ("junk_" + data.draw(NAME) + data.draw(JUNK_EXT))
    if data.draw(st.booleans()):
        path.mkdir()
    else:
        path.write_bytes(data.draw(st.binary(max_size=64)))
    return rel(raw, path)


CORRUPTIONS = [delete_file, rename_file, truncate_file, zero_file, drop_row, duplicate_row, alter_row, add_junk]


# derandomize: the same 30 cases on every run, so CI never flakes (raise max_examples locally to explore).
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_damaged_folder_is_always_refused_and_named(tmp_path_factory, data):
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as tmp:
        raw = rawsample.copy(tmp_path_factory, Path(tmp) / "raw")
        # One corruption each: two can undo each other (drop an info.csv row, then delete its image).
        named = data.draw(st.sampled_from(CORRUPTIONS))(raw, data)
        with pytest.raises(DataError) as info:
            validate.run(raw)
        message = str(info.value)
        assert named in message, message
        lines = message.splitlines()[1:]
        assert lines and all(PROBLEM_LINE.match(line) for line in lines), message
