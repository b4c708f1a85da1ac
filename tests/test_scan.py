"""The index tables: their format, and the real data's quirks (string ids, junk files, mixed extensions)."""

import shutil

import pandas as pd
import pytest
from PIL import Image

import rawsample
from maskcls import layout, scan
from maskcls.errors import DataError

# The sample has the real data's one id on two folders; the tests that are about it catch the warning.
pytestmark = pytest.mark.filterwarnings("ignore::maskcls.scan.DataWarning")


@pytest.fixture
def raw(tmp_path, tmp_path_factory):
    return rawsample.copy(tmp_path_factory, tmp_path / "raw")


def test_train_index_format(raw):
    frame = scan.load_train(raw)
    csv = rawsample.read_train(raw)
    assert list(frame.columns) == scan.TRAIN_INDEX_COLUMNS
    assert len(frame) == 7 * len(csv)
    assert frame["row"].tolist() == list(range(len(frame)))
    # Sorted by folder, then the stem order of layout.STEMS, so the row number is a stable key.
    assert frame["folder"].tolist() == sorted(frame["folder"])
    for _, group in frame.groupby("folder"):
        assert tuple(group["stem"]) == layout.STEMS
    for _, row in frame.iterrows():
        assert (raw / row["file"]).is_file()
        assert row["file"].startswith(f"{layout.TRAIN_IMAGES}/{row['folder']}/{row['stem']}.")
        assert row["mask"] == layout.STEM_TO_MASK[row["stem"]]
    by_folder = csv.set_index("path")
    base_id = frame["person"].str.split("#").str[0]
    assert (base_id == by_folder.loc[frame["folder"], "id"].to_numpy()).all()
    assert (frame["gender"] == by_folder.loc[frame["folder"], "gender"].map(layout.GENDER_TO_LABEL).to_numpy()).all()
    assert (frame["age"] == by_folder.loc[frame["folder"], "age"].astype(int).to_numpy()).all()


def test_eval_index_in_info_order(raw):
    frame = scan.load_eval(raw)
    info = rawsample.read_info(raw)
    assert list(frame.columns) == scan.EVAL_INDEX_COLUMNS
    assert frame["ImageID"].tolist() == info["ImageID"].tolist()
    assert frame["row"].tolist() == list(range(len(info)))
    assert frame["file"].tolist() == [f"{layout.EVAL_IMAGES}/{i}" for i in info["ImageID"]]


def test_order_does_not_depend_on_csv_order(raw):
    before = scan.load_train(raw)
    csv = rawsample.read_train(raw)
    rawsample.write_train(raw, csv.iloc[::-1])
    pd.testing.assert_frame_equal(scan.load_train(raw), before)


def _rename_person(raw, folder, new_id):
    """Give the person in `folder` a new csv id (and the folder name that goes with it)."""
    csv = rawsample.read_train(raw)
    i = csv.index[csv["path"] == folder.name][0]
    new_folder = layout.person_folder(new_id, csv.at[i, "gender"], csv.at[i, "age"], csv.at[i, "race"])
    folder.rename(folder.parent / new_folder)
    csv.loc[i, ["id", "path"]] = [new_id, new_folder]
    rawsample.write_train(raw, csv)
    return new_folder


def test_suffixed_and_zero_padded_ids_stay_strings(raw):
    first, second = rawsample.folders(raw)[:2]
    _rename_person(raw, first, "004500-1")
    _rename_person(raw, second, "000010")
    frame = scan.load_train(raw)
    csv_ids = set(rawsample.read_train(raw)["id"])
    assert {"004500-1", "000010"} <= set(frame["person"])
    assert set(frame["person"].str.split("#").str[0]) == csv_ids
    assert frame["person"].map(type).eq(str).all()


def test_junk_files_are_skipped(raw):
    folder = rawsample.folders(raw)[0]
    before = (scan.load_train(raw), scan.load_eval(raw))
    (folder / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (raw / layout.TRAIN_IMAGES / f"._{folder.name}").write_bytes(b"\x00")
    (raw / layout.EVAL_IMAGES / "._0123abcd.jpg").write_bytes(b"\x00")
    pd.testing.assert_frame_equal(scan.load_train(raw), before[0])
    pd.testing.assert_frame_equal(scan.load_eval(raw), before[1])


def test_mixed_extensions_in_one_folder(raw):
    folder = rawsample.folders(raw)[0]
    for stem, ext in (("mask2", ".PNG"), ("mask3", ".jpeg"), ("normal", ".JPG")):
        old = rawsample.photo(folder, stem)
        with Image.open(old) as img:
            img.convert("RGB").save(folder / f"{stem}{ext}", format="PNG" if ext == ".PNG" else "JPEG")
        if old.name != f"{stem}{ext}":
            old.unlink()
    frame = scan.load_train(raw).set_index(["folder", "stem"])
    for stem, ext in (("mask2", ".PNG"), ("mask3", ".jpeg"), ("normal", ".JPG")):
        assert frame.loc[(folder.name, stem), "file"].endswith(f"/{stem}{ext}")
    assert len(frame.loc[folder.name]) == 7


def test_the_samples_doubled_id_is_two_people(raw):
    # Like the real data, the sample has id 003397 on two folders.
    with pytest.warns(scan.DataWarning, match="id 003397: "):
        frame = scan.load_train(raw)
    persons = frame.groupby("folder")["person"].first()
    first, second = sorted(f for f in persons.index if f.startswith("003397_"))
    assert (persons[first], persons[second]) == ("003397", "003397#2")


def test_one_id_with_two_folders_is_two_people(raw):
    csv = rawsample.read_train(raw)
    first = csv.iloc[0]
    age = str(int(first["age"]) - 1)
    twin = layout.person_folder(first["id"], first["gender"], age, first["race"])
    shutil.copytree(raw / layout.TRAIN_IMAGES / first["path"], raw / layout.TRAIN_IMAGES / twin)
    extra = first.copy()
    extra["age"], extra["path"] = age, twin
    rawsample.write_train(raw, pd.concat([csv, extra.to_frame().T], ignore_index=True))

    with pytest.warns(scan.DataWarning, match=first["id"]):
        frame = scan.load_train(raw)
    persons = frame.groupby("folder")["person"].unique()
    # Folder-name order decides which folder keeps the plain id.
    first_folder, second_folder = sorted([first["path"], twin])
    assert list(persons[first_folder]) == [first["id"]]
    assert list(persons[second_folder]) == [f"{first['id']}#2"]
    assert frame.groupby("person")["folder"].nunique().eq(1).all()
    assert len(frame) == 7 * (len(csv) + 1)


def test_load_refuses_broken_folder(raw):
    rawsample.photo(rawsample.folders(raw)[0], "mask4").unlink()
    with pytest.raises(DataError, match="mask4"):
        scan.load_train(raw)
    rawsample.eval_images(raw)[0].unlink()
    with pytest.raises(DataError, match="no image"):
        scan.load_eval(raw)
