"""validate: each kind of broken competition folder is refused with the offending file or row named."""

import shutil
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import rawsample
from maskcls import cli, layout, scan
from maskcls.errors import DataError
from maskcls.imageio import ImageModeWarning, read_rgb
from maskcls.stages import validate

# The sample has the real data's one id on two folders; the tests that are about it catch the warning.
pytestmark = pytest.mark.filterwarnings("ignore::maskcls.scan.DataWarning")


@pytest.fixture
def raw(tmp_path, tmp_path_factory):
    return rawsample.copy(tmp_path_factory, tmp_path / "raw")


def test_valid_folder_writes_index_and_is_not_touched(raw, tmp_path):
    before = rawsample.digest(raw)
    out = tmp_path / "index"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train, evaluation = validate.run(raw, out=out)
    # The sample copies the real data's one id on two folders; nothing else is odd about it.
    assert [str(w.message).splitlines()[0] for w in record] == [
        "one csv id on several folders, kept as separate people (1):"
    ]
    assert rawsample.digest(raw) == before
    assert sorted(p.name for p in out.iterdir()) == ["eval.csv", "train.csv"]
    written = pd.read_csv(out / "train.csv", dtype={"person": str, "folder": str})
    pd.testing.assert_frame_equal(written, train, check_dtype=False)
    assert pd.read_csv(out / "eval.csv")["ImageID"].tolist() == evaluation["ImageID"].tolist()
    assert len(train) == 7 * rawsample.PEOPLE


# --- one breakage each: (what to do to a fresh copy) -> text the message must contain -------------------


def _drop_train_row(raw):
    csv = rawsample.read_train(raw)
    rawsample.write_train(raw, csv.iloc[1:])
    return [f"{csv['path'].iloc[0]}/: folder has no row"]


def _remove_folder(raw):
    folder = rawsample.folders(raw)[2]
    shutil.rmtree(folder)
    line = rawsample.read_train(raw)["path"].tolist().index(folder.name) + 2
    return [f"train/train.csv line {line}", f"no folder train/images/{folder.name}/"]


def _remove_photo(raw):
    folder = rawsample.folders(raw)[0]
    rawsample.photo(folder, "incorrect_mask").unlink()
    return [f"{folder.name}/incorrect_mask.*: photo missing"]


def _extra_photo(raw):
    folder = rawsample.folders(raw)[0]
    shutil.copy(rawsample.photo(folder, "mask5"), folder / "mask6.jpg")
    return [f"{folder.name}/mask6.jpg: unexpected file"]


def _two_files_one_stem(raw):
    folder = rawsample.folders(raw)[1]
    first = rawsample.photo(folder, "mask1")
    with Image.open(first) as img:
        img.save(folder / "mask1.png")
    return [f"{folder.name}/mask1.*: 2 files for one photo", "mask1.png"]


def _zero_bytes(raw):
    path = rawsample.photo(rawsample.folders(raw)[0], "normal")
    path.write_bytes(b"")
    return [f"{path.parent.name}/{path.name}: empty (0 bytes)"]


def _truncated(raw):
    path = rawsample.photo(rawsample.folders(raw)[3], "mask2")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return [f"{path.parent.name}/{path.name}", "truncated"]


def _not_an_image(raw):
    path = rawsample.eval_images(raw)[0]
    path.write_text("this is not a photo\n")
    return [f"eval/images/{path.name}: not a readable image"]


def _repeated_row(raw):
    csv = rawsample.read_train(raw)
    rawsample.write_train(raw, pd.concat([csv, csv.iloc[[1]]], ignore_index=True))
    return [f"train/train.csv line {len(csv) + 2}", "repeats train/train.csv line 3"]


def _two_rows_one_folder(raw):
    csv = rawsample.read_train(raw)
    twin = csv.iloc[[0]].assign(id="999999")
    rawsample.write_train(raw, pd.concat([csv, twin], ignore_index=True))
    return [f"line {len(csv) + 2} (id '999999')", f"points at folder {csv['path'].iloc[0]}"]


def _set_cell(column, value, line=3):
    def breaker(raw):
        csv = rawsample.read_train(raw)
        csv.loc[line - 2, column] = value
        rawsample.write_train(raw, csv)
        return [f"train/train.csv line {line}", value or column]

    breaker.__name__ = f"_{column}_{value}"
    return breaker


def _drop_column(column):
    def breaker(raw):
        rawsample.write_train(raw, rawsample.read_train(raw).drop(columns=column))
        return [f"train/train.csv: missing column(s) {column}"]

    breaker.__name__ = f"_no_{column}"
    return breaker


def _long_row(raw):
    path = raw / layout.TRAIN_CSV
    lines = path.read_text().splitlines()
    lines[2] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    return ["train/train.csv: not a readable csv"]


def _not_utf8(raw):
    path = raw / layout.EVAL_CSV
    path.write_bytes(path.read_bytes() + b"caf\xe9.jpg,0\n")
    return ["eval/info.csv: not a readable csv"]


def _no_train_csv(raw):
    (raw / layout.TRAIN_CSV).unlink()
    return ["train/train.csv: file not found"]


def _no_eval_folder(raw):
    shutil.rmtree(raw / layout.EVAL_IMAGES)
    return ["eval/images/: folder not found"]


def _info_row_without_image(raw):
    path = rawsample.eval_images(raw)[1]
    path.unlink()
    return [f"(ImageID '{path.name}'): no image eval/images/{path.name}"]


def _extra_eval_image(raw):
    source = rawsample.eval_images(raw)[0]
    shutil.copy(source, source.parent / "f00d.jpg")
    return ["eval/images/f00d.jpg: not listed in eval/info.csv"]


def _duplicate_image_id(raw):
    info = rawsample.read_info(raw)
    info.loc[2, "ImageID"] = info.loc[1, "ImageID"]
    rawsample.write_info(raw, info)
    return ["eval/info.csv line 4", "duplicate ImageID, also on eval/info.csv line 3", info.loc[2, "ImageID"]]


BREAKERS = [
    _drop_train_row,
    _remove_folder,
    _remove_photo,
    _extra_photo,
    _two_files_one_stem,
    _zero_bytes,
    _truncated,
    _not_an_image,
    _repeated_row,
    _two_rows_one_folder,
    _set_cell("gender", "unknown"),
    _set_cell("gender", "Female"),
    _set_cell("age", "4O"),
    _set_cell("age", "150"),
    _set_cell("age", "0"),
    _set_cell("id", ""),
    _set_cell("id", "000002#2"),
    _set_cell("path", "../outside"),
    _drop_column("race"),
    _drop_column("path"),
    _long_row,
    _not_utf8,
    _no_train_csv,
    _no_eval_folder,
    _info_row_without_image,
    _extra_eval_image,
    _duplicate_image_id,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda b: b.__name__.strip("_"))
def test_broken_folder_is_refused_with_the_offender_named(raw, tmp_path, breaker):
    expected = breaker(raw)
    before = rawsample.digest(raw)
    out = tmp_path / "index"
    with pytest.raises(DataError) as info:
        validate.run(raw, out=out)
    message = str(info.value)
    for text in expected:
        assert text in message, message
    assert "\n  " in message  # one indented line per problem
    assert not out.exists(), "nothing is written for a broken folder"
    assert rawsample.digest(raw) == before, "the raw folder is only read"


def test_every_problem_is_reported_not_only_the_first(raw):
    expected = [*_set_cell("age", "abc", line=3)(raw), *_extra_eval_image(raw)]
    # A photo missing from the folder of the row with the bad age is reported in the same run.
    folder = rawsample.read_train(raw)["path"].iloc[1]
    rawsample.photo(raw / layout.TRAIN_IMAGES / folder, "mask4").unlink()
    expected.append(f"{folder}/mask4.*: photo missing")
    with pytest.raises(DataError) as info:
        validate.run(raw)
    assert all(text in str(info.value) for text in expected), str(info.value)
    assert str(info.value).startswith(f"{raw}: 3 problems")


def test_long_reports_are_capped(raw):
    source = rawsample.eval_images(raw)[0]
    for i in range(scan.MESSAGE_LINES + 7):
        shutil.copy(source, source.parent / f"extra{i:03d}.jpg")
    with pytest.raises(DataError) as info:
        validate.run(raw)
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + scan.MESSAGE_LINES + 1
    assert lines[-1].strip() == "... and 7 more"


def test_byte_order_mark_is_accepted(raw):
    path = raw / layout.EVAL_CSV
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as spreadsheet programs save csv
    assert list(validate.run(raw)[1].columns) == scan.EVAL_INDEX_COLUMNS


def test_missing_raw_dir(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        validate.run(tmp_path / "nowhere")


def test_cli_prints_the_problem_and_exits_2(raw, monkeypatch, capsys):
    expected = _extra_photo(raw)
    monkeypatch.setattr(sys, "argv", ["maskcls", "validate", str(raw)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert expected[0] in err and "Traceback" not in err


# --- accepted with a warning ---------------------------------------------------------------------------


def _save_odd(path, mode):
    """Replace a photo by one in `mode` (same size), keeping its file name."""
    size = (layout.IMAGE_SIZE[1], layout.IMAGE_SIZE[0])
    if mode == "I;16":
        ramp = np.linspace(0, 65535, size[0] * size[1]).astype(np.uint16).reshape(size[1], size[0])
        img = Image.fromarray(ramp)
    else:
        img = Image.new(mode, size)
    target = path.with_suffix(".jpg" if mode == "CMYK" else ".png")
    path.unlink()
    img.save(target)
    return target


def test_odd_modes_are_converted_and_named(raw):
    folder = rawsample.folders(raw)[0]
    odd = {
        "L": _save_odd(rawsample.photo(folder, "mask1"), "L"),
        "RGBA": _save_odd(rawsample.photo(folder, "mask2"), "RGBA"),
        "CMYK": _save_odd(rawsample.photo(folder, "mask3"), "CMYK"),
        "I;16": _save_odd(rawsample.eval_images(raw)[0], "I;16"),
    }
    # An eval image keeps its ImageID (.jpg) even when its bytes are a PNG: rename it back.
    odd["I;16"] = odd["I;16"].rename(odd["I;16"].with_suffix(".jpg"))
    with pytest.warns(scan.DataWarning) as record:
        validate.run(raw)
    text = "\n".join(str(w.message) for w in record)
    assert validate.CONVERTED in text
    said = {"L": "grayscale", "RGBA": "RGBA", "CMYK": "CMYK", "I;16": "16-bit"}
    for mode, path in odd.items():
        assert any(path.name in line and said[mode] in line for line in text.splitlines()), text
    for mode, path in odd.items():
        with pytest.warns(ImageModeWarning, match=mode):
            image = read_rgb(path)
        assert image.dtype == np.uint8 and image.shape == (*layout.IMAGE_SIZE, 3)
    with pytest.warns(ImageModeWarning):
        ramp = read_rgb(odd["I;16"])
    assert 100 < ramp.mean() < 155, "16 bits are scaled down, not clipped to white"


def test_unexpected_size_is_a_warning(raw):
    path = rawsample.photo(rawsample.folders(raw)[1], "normal")
    with Image.open(path) as img:
        img.resize((300, 400)).save(path, format=img.format)
    with pytest.warns(scan.DataWarning, match=r"(?s)resizes them.*normal\..*300x400"):
        validate.run(raw)


def test_one_id_with_two_folders_is_accepted_with_a_warning(raw):
    csv = rawsample.read_train(raw)
    row = csv.iloc[0].copy()
    row["age"] = str(int(row["age"]) + 1)
    row["path"] = layout.person_folder(row["id"], row["gender"], row["age"], row["race"])
    shutil.copytree(raw / layout.TRAIN_IMAGES / csv["path"].iloc[0], raw / layout.TRAIN_IMAGES / row["path"])
    rawsample.write_train(raw, pd.concat([csv, row.to_frame().T], ignore_index=True))
    with pytest.warns(scan.DataWarning, match=f"id {row['id']}"):
        train, _ = validate.run(raw)
    assert train["person"].nunique() == rawsample.PEOPLE + 1
