"""The folder the synth stage writes: its layout, determinism, label noise as the csvs show it, and a visible mask."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskcls import layout
from maskcls.errors import ParamsError
from maskcls.imageio import read_rgb
from maskcls.stages import synth
from maskcls.synth import write
from maskcls.synth.people import (
    CSV_FEMALE_TRULY_MALE,
    CSV_MALE_TRULY_FEMALE,
    CSV_OLDER_TRULY_YOUNG,
    CSV_YOUNGER_TRULY_OLD,
    DUPLICATE_AGES,
    DUPLICATE_ID,
)
from maskcls.synth.write import TRAIN_TRUTH


@pytest.fixture(scope="module")
def noisy_sample(tmp_path_factory) -> Path:
    """Big enough (30 people) to hold every noisy id."""
    return synth.run(tmp_path_factory.mktemp("noisy") / "raw", people=30, eval_people=4, seed=0)


@pytest.fixture(scope="module", params=["tiny", "noisy"])
def sample(request, tmp_path_factory) -> Path:
    """The size other tests use for their tiny datasets, and the noisy one."""
    if request.param == "noisy":
        return request.getfixturevalue("noisy_sample")
    return synth.run(tmp_path_factory.mktemp("tiny") / "raw", people=6, eval_people=3, seed=0)


def read_train(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / layout.TRAIN_CSV, dtype=str, keep_default_na=False)


def photo_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if not f.name.startswith(layout.JUNK_PREFIX))


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


# --- layout ---------------------------------------------------------------------------------------------------


def test_train_csv_matches_the_competition_format(sample):
    train = read_train(sample)
    assert list(train.columns) == layout.TRAIN_COLUMNS
    assert train["id"].str.fullmatch(r"\d{6}(-\d)?").all()
    assert train["id"].str.endswith("-1").any() and train["id"].str.endswith("-2").any()
    assert list(train["id"]) == sorted(train["id"])
    assert set(train["race"]) == {"Asian"}
    assert set(train["gender"]) <= set(layout.GENDERS)
    assert train["age"].str.fullmatch(r"\d{2}").all()
    expected = [
        layout.person_folder(i, g, int(a)) for i, g, a in zip(train["id"], train["gender"], train["age"], strict=True)
    ]
    assert list(train["path"]) == expected
    assert train["path"].is_unique


def test_one_id_has_two_folders_with_different_ages(sample):
    train = read_train(sample)
    repeated = train[train["id"].duplicated(keep=False)]
    assert set(repeated["id"]) == {DUPLICATE_ID}
    assert sorted(repeated["age"].astype(int)) == sorted(DUPLICATE_AGES)
    assert repeated["path"].nunique() == 2


def test_train_folders_hold_seven_photos_with_mixed_extensions_and_junk(sample):
    train = read_train(sample)
    images = sample / layout.TRAIN_IMAGES
    assert sorted(p.name for p in images.iterdir()) == sorted(train["path"])
    exts, mixed, junk = [], 0, []
    for folder in train["path"]:
        files = photo_files(images / folder)
        assert sorted(f.stem for f in files) == sorted(layout.STEMS)
        suffixes = {f.suffix for f in files}
        assert suffixes <= set(layout.IMAGE_EXTENSIONS)
        mixed += len(suffixes) > 1
        exts += [f.suffix for f in files]
        junk += [f for f in (images / folder).iterdir() if f.name.startswith(layout.JUNK_PREFIX)]
    assert mixed >= 1
    assert set(exts) == set(layout.IMAGE_EXTENSIONS)
    assert exts.count(".jpg") > len(exts) / 2
    assert junk
    for f in junk:  # small garbage beside a real photo
        assert (f.parent / f.name[len(layout.JUNK_PREFIX) :]).exists()
        assert 0 < f.stat().st_size < 100


def test_every_photo_is_a_384x512_rgb_image(sample):
    photos = [f for f in (sample / "train" / "images").rglob("*") if f.is_file() and not f.name.startswith("._")]
    photos += list((sample / layout.EVAL_IMAGES).iterdir())
    for f in photos:
        with Image.open(f) as img:
            assert (img.size, img.mode) == ((384, 512), "RGB"), f
            assert img.format == {".png": "PNG"}.get(f.suffix, "JPEG"), f


def test_eval_info_hides_identity_and_labels_sit_beside_eval(sample):
    info = pd.read_csv(sample / layout.EVAL_CSV, dtype=str)
    assert list(info.columns) == layout.EVAL_COLUMNS
    assert info["ImageID"].str.fullmatch(r"[0-9a-f]{40}\.jpg").all() and info["ImageID"].is_unique
    assert set(info["ans"]) == {"0"}
    assert sorted(p.name for p in (sample / layout.EVAL_IMAGES).iterdir()) == sorted(info["ImageID"])
    assert sorted(p.name for p in (sample / "eval").iterdir()) == ["images", "info.csv"]

    labels = pd.read_csv(sample / layout.EVAL_LABELS, dtype={"ImageID": str})
    assert list(labels.columns) == ["ImageID", "ans", "mask", "gender", "age"]
    assert list(labels["ImageID"]) == list(info["ImageID"])
    assert labels["ans"].between(0, 17).all()
    expected = layout.encode(labels["mask"], labels["gender"], layout.age_to_label(labels["age"]))
    assert (labels["ans"] == expected).all()
    assert (labels["mask"].value_counts().sort_index() == [5, 1, 1] * np.array(len(labels) // 7)).all()


def test_eval_rows_do_not_follow_the_person_order(noisy_sample):
    # Seven photos per person, shuffled: consecutive rows rarely share a person's age and gender.
    labels = pd.read_csv(noisy_sample / layout.EVAL_LABELS)
    same = (labels[["gender", "age"]].diff().abs().sum(axis=1) == 0).iloc[1:]
    assert same.mean() < 0.7


def test_tiny_and_empty_eval_work(tmp_path):
    root = synth.run(tmp_path / "raw", people=1, eval_people=0, seed=5)
    assert len(read_train(root)) == 1
    assert len(photo_files(root / layout.TRAIN_IMAGES / read_train(root)["path"][0])) == 7
    assert pd.read_csv(root / layout.EVAL_CSV).empty


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ParamsError, match="people"):
        synth.run(tmp_path / "raw", people=0, eval_people=1)
    assert not (tmp_path / "raw").exists()


# --- writing --------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_in_one_process_or_a_pool(tmp_path):
    first = file_hashes(synth.run(tmp_path / "a", people=6, eval_people=2, seed=3))
    assert first == file_hashes(synth.run(tmp_path / "b", people=6, eval_people=2, seed=3))
    assert first == file_hashes(synth.run(tmp_path / "c", people=6, eval_people=2, seed=3, workers=2))
    other = file_hashes(synth.run(tmp_path / "d", people=6, eval_people=2, seed=4))
    assert other[layout.TRAIN_CSV] != first[layout.TRAIN_CSV]
    assert not set(other.items()) & {kv for kv in first.items() if kv[0].startswith("train/images")}


def test_a_failed_run_leaves_the_old_output_untouched(tmp_path, monkeypatch):
    root = synth.run(tmp_path / "raw", people=3, eval_people=1, seed=0)
    before = file_hashes(root)

    def broken(task):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write, "_write_person", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        synth.run(tmp_path / "raw", people=4, eval_people=1, seed=1, workers=1)
    assert file_hashes(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no temporary folder left behind


def test_a_rerun_replaces_the_whole_folder(tmp_path):
    synth.run(tmp_path / "raw", people=4, eval_people=1, seed=0)
    root = synth.run(tmp_path / "raw", people=2, eval_people=1, seed=1)
    assert sorted(p.name for p in (root / layout.TRAIN_IMAGES).iterdir()) == sorted(read_train(root)["path"])


# --- label noise in the csvs ----------------------------------------------------------------------------------


def test_train_csv_says_the_noisy_labels_and_the_truth_file_does_not(noisy_sample):
    train = read_train(noisy_sample).set_index("path")
    truth = pd.read_csv(noisy_sample / TRAIN_TRUTH, dtype={"id": str}).set_index("path")
    wrong_gender = train["gender"] != truth.loc[train.index, "gender"]
    wrong_age = train["age"].astype(int) != truth.loc[train.index, "age"]
    assert set(train.loc[wrong_gender, "id"]) == set(CSV_FEMALE_TRULY_MALE + CSV_MALE_TRULY_FEMALE)
    assert set(train.loc[wrong_age, "id"]) == set(CSV_OLDER_TRULY_YOUNG + CSV_YOUNGER_TRULY_OLD)


def test_train_folder_names_follow_the_csv_not_the_truth(noisy_sample):
    train = read_train(noisy_sample)
    for person in CSV_FEMALE_TRULY_MALE:
        (path,) = train.loc[train["id"] == person, "path"]
        assert re.fullmatch(rf"{person}_female_Asian_\d+", path)


# --- what the photos show -------------------------------------------------------------------------------------

# Regions of a face as (top, bottom, half width) in face widths from the centre of its detected (Haar) box:
# people stand nearer or further and off-centre, so the regions follow each person's bare face.
UPPER_FACE = (-0.41, -0.13, 0.26)  # brows and eyes: never under a mask
NOSE = (-0.025, 0.125, 0.135)  # under a worn mask, bare when worn wrongly or not at all


def face_region(face, region) -> tuple[slice, slice]:
    (top, left, h, w), (y0, y1, half) = face, region
    cy, cx = top + h / 2, left + w / 2
    return slice(round(cy + y0 * w), round(cy + y1 * w)), slice(round(cx - half * w), round(cx + half * w))


def standardised(path: Path) -> np.ndarray:
    """A photo with its exposure taken out, so differences come from content."""
    img = read_rgb(path).astype(np.float32)
    return (img - img.mean()) / img.std()


def region_difference(a: np.ndarray, b: np.ndarray, region) -> float:
    return float(np.abs(a[region] - b[region]).mean())


def test_a_worn_mask_hides_the_nose_and_identity_holds_over_photos(noisy_sample):
    from maskcls.stages.cache import haar_detector

    detect = haar_detector()
    truth = pd.read_csv(noisy_sample / TRAIN_TRUTH, dtype={"id": str})
    worn, wrongly, same_person, other_person = [], [], [], []
    previous = None
    for row in truth.itertuples():
        files = {f.stem: f for f in photo_files(noisy_sample / layout.TRAIN_IMAGES / row.path)}
        # A swapped person's incorrect_mask file shows the bare face, and the normal file the wrong mask.
        bare, wrong = ("incorrect_mask", "normal") if row.mask_swap else ("normal", "incorrect_mask")
        face = detect(read_rgb(files[bare]))
        if face is None:  # Haar misses about 1 in 60 bare generated faces
            continue
        upper_face, nose = face_region(face, UPPER_FACE), face_region(face, NOSE)
        normal = standardised(files[bare])
        masks = [standardised(files[f"mask{k}"]) for k in range(1, 6)]
        worn.append(np.mean([region_difference(m, normal, nose) for m in masks]))
        wrongly.append(region_difference(standardised(files[wrong]), normal, nose))
        same_person.append(np.mean([region_difference(m, normal, upper_face) for m in masks]))
        if previous is not None:
            other_person.append(region_difference(previous, normal, upper_face))
        previous = normal
    worn, wrongly = np.array(worn), np.array(wrongly)
    assert worn.mean() > 2 * wrongly.mean()
    assert (worn > wrongly).mean() >= 0.9
    assert np.mean(other_person) > 1.3 * np.mean(same_person)
